//! No import loop between files: each module owns one idea, and who uses whom goes one way.
//!
//! The test reads every crate's `src/` files, takes a file for a module (`a/mod.rs` for `a`),
//! collects the file → file edges its `crate::…` and `super::…` paths make (`use` trees with
//! their braces, and paths in expressions), and fails naming the files of any cycle. Comments
//! and the inline `#[cfg(test)] mod tests { … }` block at a file's end are not read: a test
//! may use whatever it tests. A path to an item of a module (`crate::world::fail`) is an edge
//! to that module's file; a path to an item of the crate root (`crate::human`) an edge to
//! `lib.rs` (or `main.rs`, for the modules the binary declares).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The crates whose files are checked, as `src` directories relative to the repository.
const CRATES: [&str; 3] = ["spec/src", "suite/src", "reference/src"];

/// One file of a crate: its path and its module path from the crate root.
struct File {
    path: String,
    module: Vec<String>,
    /// The crate root its `crate::` means: `lib.rs` or `main.rs`.
    root: String,
    text: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the suite crate sits in the repository")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments, and without the trailing inline test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else if rest.starts_with('"') {
            // A string literal: skipped whole, so that `//` or `crate::` inside is no code.
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            rest = rest.get(i + 1..).unwrap_or("");
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The modules the binary declares at its root (`main.rs`): their files mean `main.rs` by
/// `crate::`.
fn binary_modules(src: &Path) -> BTreeSet<String> {
    let Ok(main) = fs::read_to_string(src.join("main.rs")) else {
        return BTreeSet::new();
    };
    code(&main)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

fn files_of(krate: &str) -> Vec<File> {
    let src = repo().join(krate);
    let bin = binary_modules(&src);
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src").to_path_buf();
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let is_bin =
                rel == Path::new("main.rs") || module.first().is_some_and(|m| bin.contains(m));
            File {
                path: format!("{krate}/{}", rel.display()),
                module,
                root: format!("{krate}/{}", if is_bin { "main.rs" } else { "lib.rs" }),
                text: fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            }
        })
        .collect()
}

/// Reads a `use` tree (or a path in an expression) at the start of `s`: every path it names,
/// as segments (`a::{b, c::d}` is `[a, b]` and `[a, c, d]`).
fn paths(s: &str) -> Vec<Vec<String>> {
    fn ident(s: &str) -> (&str, &str) {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        s.split_at(end)
    }
    fn tree(s: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
        let start = s.len();
        let mut s = s.trim_start();
        let mut path = prefix;
        loop {
            if let Some(inner) = s.strip_prefix('{') {
                let mut rest = inner;
                loop {
                    rest = rest.trim_start();
                    if let Some(after) = rest.strip_prefix('}') {
                        return start - after.len();
                    }
                    if let Some(after) = rest.strip_prefix(',') {
                        rest = after;
                        continue;
                    }
                    let used = tree(rest, path.clone(), out);
                    if used == 0 {
                        return start - rest.len();
                    }
                    rest = &rest[used..];
                }
            }
            let (name, rest) = ident(s);
            if name.is_empty() {
                break;
            }
            path.push(name.to_owned());
            s = rest;
            match s.trim_start().strip_prefix("::") {
                Some(after) => s = after.trim_start(),
                None => break,
            }
        }
        out.push(path);
        start - s.len()
    }
    let mut out = Vec::new();
    tree(s, Vec::new(), &mut out);
    out
}

/// The file → file edges of one crate.
fn edges(files: &[File]) -> BTreeMap<String, BTreeSet<String>> {
    let by_module: BTreeMap<(&str, &[String]), &str> = files
        .iter()
        .map(|f| ((f.root.as_str(), f.module.as_slice()), f.path.as_str()))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let code = code(&f.text);
        let mut targets = BTreeSet::new();
        for (at, _) in code
            .match_indices("crate::")
            .chain(code.match_indices("super::"))
        {
            if code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                continue;
            }
            // The module the path starts from, and the rest of the path.
            let mut rest = &code[at..];
            let mut base: Vec<String> = Vec::new();
            if let Some(after) = rest.strip_prefix("crate::") {
                rest = after;
            } else {
                // `super` in `a/b.rs` is `a`; in `a/mod.rs` (module `a`), the crate root.
                base = f.module.clone();
                while let Some(after) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = after.trim_start();
                }
            }
            for path in paths(rest) {
                let mut full = base.clone();
                full.extend(path);
                // The longest prefix that is a module of this crate root.
                let file = (0..=full.len())
                    .rev()
                    .find_map(|n| by_module.get(&(f.root.as_str(), &full[..n])));
                if let Some(file) = file
                    && *file != f.path
                {
                    targets.insert((*file).to_owned());
                }
            }
        }
        edges.insert(f.path.clone(), targets);
    }
    edges
}

/// Every cycle of the graph, as the files of each strongly connected component of more than
/// one file, with one path around it.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<(BTreeSet<String>, Vec<String>)> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(n) = todo.pop() {
            for m in edges.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|n| (n, reaches(n))).collect();
    let mut found: Vec<(BTreeSet<String>, Vec<String>)> = Vec::new();
    for n in edges.keys() {
        if !reach[n].contains(n) || found.iter().any(|(c, _)| c.contains(n)) {
            continue;
        }
        let component: BTreeSet<String> = reach[n]
            .iter()
            .filter(|m| reach[*m].contains(n))
            .cloned()
            .collect();
        // One way around: from n, always to a file of the component that leads back to n
        // soonest (breadth-first).
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([n.clone()]);
        let mut back = None;
        while let Some(m) = queue.pop_front() {
            for next in edges.get(&m).into_iter().flatten() {
                if next == n {
                    back = Some(m.clone());
                    queue.clear();
                    break;
                }
                if component.contains(next) && !prev.contains_key(next) {
                    prev.insert(next.clone(), m.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut path = vec![n.clone()];
        let mut at = back.expect("a component leads back to its start");
        let mut rev = vec![];
        while at != *n {
            rev.push(at.clone());
            at = prev[&at].clone();
        }
        path.extend(rev.into_iter().rev());
        path.push(n.clone());
        found.push((component, path));
    }
    found
}

#[test]
fn no_file_imports_itself_through_others() {
    let mut problems = Vec::new();
    for krate in CRATES {
        let files = files_of(krate);
        assert!(files.len() > 1, "{krate}: no source files found");
        for (component, path) in cycles(&edges(&files)) {
            problems.push(format!(
                "{} (files: {})",
                path.join(" → "),
                component.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "import loops between files (each module should own one idea; move what both sides use \
         to a module of its own):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_reader_sees_use_trees_and_module_paths() {
    assert_eq!(
        paths("{a::B, c::{d, e::F}};"),
        [vec!["a", "B"], vec!["c", "d"], vec!["c", "e", "F"]]
    );
    assert_eq!(paths("world::fail!(w)"), [vec!["world", "fail"]]);
    assert_eq!(code("x // crate::a\ny \"crate::b\" z"), "x \ny \"\" z");
    let files = [
        File {
            path: "s/a.rs".into(),
            module: vec!["a".into()],
            root: "s/lib.rs".into(),
            text: "use crate::b::X;".into(),
        },
        File {
            path: "s/b/mod.rs".into(),
            module: vec!["b".into()],
            root: "s/lib.rs".into(),
            text: "use crate::{a, b::c::Y};".into(),
        },
        File {
            path: "s/b/c.rs".into(),
            module: vec!["b".into(), "c".into()],
            root: "s/lib.rs".into(),
            text: "fn f() { super::g() }".into(),
        },
    ];
    let e = edges(&files);
    assert_eq!(
        e["s/b/mod.rs"],
        ["s/a.rs", "s/b/c.rs"].map(String::from).into()
    );
    assert_eq!(e["s/b/c.rs"], ["s/b/mod.rs"].map(String::from).into());
    let found = cycles(&e);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1.first(), found[0].1.last());
}
