//! The requirement a named check of the runner judges. The runner's code names its checks
//! (`check("wire.json-object")`) and `features/checks.toml` says which requirement each one's
//! failure breaks: grep a check's name here to find the code that makes it.

/// The requirement the check named `name` judges (`features/checks.toml`).
///
/// Every name the runner passes is in the file (a test reads the runner's sources for them):
/// one that is not is a bug of the suite, reported as such.
pub(crate) fn check(name: &str) -> &'static str {
    goldenpath_spec::checks::requirement(name).unwrap_or_else(|| {
        panic!("[suite error] {name:?} is no check of features/checks.toml (a bug of the suite)")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Every `check("…")` call in the runner's sources, by name.
    fn names_used() -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("the suite's sources") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("checks.rs")
                {
                    let text = std::fs::read_to_string(&path).expect("a source file");
                    for (_, rest) in text
                        .match_indices("check(\"")
                        .map(|(i, _)| text.split_at(i + 7))
                    {
                        if let Some((name, _)) = rest.split_once('"') {
                            names.insert(name.to_owned());
                        }
                    }
                }
            }
        }
        names
    }

    #[test]
    fn every_check_the_runner_names_is_in_the_checks_file_and_every_one_there_is_used() {
        let used = names_used();
        let listed: BTreeSet<String> = goldenpath_spec::checks::checks()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let unknown: Vec<_> = used.difference(&listed).collect();
        let unused: Vec<_> = listed.difference(&used).collect();
        assert!(
            unknown.is_empty(),
            "the runner names checks features/checks.toml lacks: {unknown:?}"
        );
        assert!(
            unused.is_empty(),
            "features/checks.toml names checks the runner never makes: {unused:?}"
        );
    }
}
