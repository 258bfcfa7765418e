// Which feature files the spec crate embeds, and in which order. Shared, by `include!`, between
// the build script (which embeds what it finds) and the crate's tests (which run it on a copy of
// `features/` with a file added): std only, no crate items.

/// The feature files of `dir` (`*.feature`), in the order of the families table of `readme` (the
/// text of `features/README.md`: rows between `<!-- families:start -->` and
/// `<!-- families:end -->`, the first cell the family's tag, its file `<tag>.feature`); files no
/// row names follow, by name, for the catalogue's test to report.
fn discover_features(dir: &std::path::Path, readme: &str) -> std::io::Result<Vec<String>> {
    let order: Vec<String> = readme
        .split_once("<!-- families:start -->")
        .and_then(|(_, rest)| rest.split_once("<!-- families:end -->"))
        .map(|(table, _)| {
            table
                .lines()
                .filter_map(|line| line.trim().strip_prefix('|'))
                .filter_map(|row| row.split('|').next())
                .map(str::trim)
                .filter(|tag| !tag.is_empty() && *tag != "tag" && !tag.starts_with("---"))
                .map(|tag| format!("{tag}.feature"))
                .collect()
        })
        .unwrap_or_default();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".feature") {
            files.push(name);
        }
    }
    let rank = |name: &String| order.iter().position(|o| o == name).unwrap_or(order.len());
    files.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    Ok(files)
}
