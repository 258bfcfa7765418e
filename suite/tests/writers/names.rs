//! Scenario names: every row of a Scenario Outline is named by its values
//! (`Name [frame=null]`), so that no two scenarios of a feature share a name in
//! `goldenpath check --list`, the reports or JUnit.

use std::collections::BTreeSet;
use std::path::Path;

use goldenpath::report::{Finding, Report};
use goldenpath::writer;
use goldenpath::{Selection, Verdict};

use crate::fixtures;

/// Every Scenario Outline of `features/`: (family, name, the rows' values as `[k=v, …]`).
fn outlines() -> Vec<(String, String, Vec<String>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../features");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "feature"))
        .collect();
    files.sort();
    for path in files {
        let feature = gherkin::Feature::parse_path(&path, gherkin::GherkinEnv::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let family = path.file_stem().unwrap().to_string_lossy().into_owned();
        let scenarios = feature
            .scenarios
            .iter()
            .chain(feature.rules.iter().flat_map(|r| &r.scenarios));
        for s in scenarios.filter(|s| !s.examples.is_empty()) {
            let mut rows = Vec::new();
            for table in s.examples.iter().filter_map(|e| e.table.as_ref()) {
                let (header, values) = table.rows.split_first().expect("a header row");
                for row in values {
                    let pairs: Vec<String> = header
                        .iter()
                        .zip(row)
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    rows.push(format!("[{}]", pairs.join(", ")));
                }
            }
            out.push((family.clone(), s.name.clone(), rows));
        }
    }
    out
}

#[test]
fn every_outline_row_is_listed_under_its_own_name() {
    let outlines = outlines();
    assert!(!outlines.is_empty(), "features/ has Scenario Outlines");
    let listed = goldenpath::list(&Selection::default());
    let mut seen = BTreeSet::new();
    for (family, name, _) in &listed {
        assert!(
            seen.insert((family, name)),
            "--list shows {family}: {name} twice"
        );
    }
    for (family, name, rows) in &outlines {
        let shown: Vec<&str> = listed
            .iter()
            .filter(|(f, n, _)| f == family && n.starts_with(&format!("{name} [")))
            .map(|(_, n, _)| n.as_str())
            .collect();
        let expected: Vec<String> = rows.iter().map(|r| format!("{name} {r}")).collect();
        assert_eq!(shown, expected, "{family}: the rows of {name:?}");
    }
}

#[test]
fn the_rows_of_an_outline_are_distinct_in_every_writer() {
    // The real run checks the six rows of GP-ROUTE-003's outline; failed, every writer names
    // each (the Markdown summary names requirements, not scenarios).
    let real = fixtures::real();
    let outline = "JSON that is not an object is answered with not_an_object [";
    let mut scenarios = real.scenarios.clone();
    for s in scenarios.iter_mut().filter(|s| s.name.starts_with(outline)) {
        s.verdict = Verdict::Fail;
        s.findings = vec![Finding {
            requirement: "GP-ROUTE-003".into(),
            expected: "an error frame".into(),
            got: "nothing".into(),
            connection: None,
            frame_index: None,
            leak: None,
        }];
    }
    let report = Report::build(real.target.clone(), false, real.duration_ms, scenarios);
    let rows: Vec<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.name.starts_with(outline))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert_eq!(rows.iter().collect::<BTreeSet<_>>().len(), 6, "{rows:?}");
    assert!(
        rows.contains(&"JSON that is not an object is answered with not_an_object [frame=null]")
    );
    let summary = writer::summary(&report);
    let junit = writer::to_junit(&report);
    let json = writer::to_json(&report);
    let html = writer::to_html(&report, None);
    for row in &rows {
        assert!(
            summary.contains(&format!("FAIL routing: {row} [GP-ROUTE-003]")),
            "summary: {row}"
        );
        assert!(
            junit.contains(&format!("name=\"{}\"", xml_escaped(row))),
            "JUnit: {row}"
        );
        assert!(
            json.contains(&serde_json::to_string(row).unwrap()),
            "JSON: {row}"
        );
        assert!(
            html.contains(&format!("routing: {}", html_escaped(row))),
            "HTML: {row}"
        );
    }
}

fn xml_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// As minijinja's HTML auto-escaping has it.
fn html_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}
