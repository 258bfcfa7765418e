//! JUnit XML (`--junit`): one snapshot per report, each read back with quick-xml's reader and
//! checked against the report (one testcase per scenario, its requirement ids as properties,
//! the outcome its verdict implies, counts that add up); and hostile text — markup, quotes,
//! `]]>`, control characters — that stays text and keeps the file well-formed.

use std::collections::BTreeMap;

use goldenpath::Verdict;
use goldenpath::report::{Finding, Report, ScenarioResult, StepResult};
use goldenpath::writer;
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use rstest::rstest;

use crate::{fixtures, snapshot};

#[rstest]
fn the_junit_file_has_one_testcase_per_scenario_and_is_stable(
    #[values("real", "constructed", "dialect")] name: &str,
) {
    let report = fixtures::report(name);
    let junit = writer::to_junit(report);
    check_junit(name, &junit, report);
    snapshot::text(&format!("{name}.junit.xml"), &junit);
}

/// Whether XML 1.0 can carry `c` (its `Char` production).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// `text` as the JUnit file has it: a character XML 1.0 cannot carry written as its Rust escape.
fn as_written(text: &str) -> String {
    text.chars()
        .map(|c| {
            if is_xml_char(c) {
                c.to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect()
}

/// One `<testcase>`, as read back.
#[derive(Debug, Default)]
struct Case {
    suite: String,
    classname: String,
    name: String,
    requirements: Vec<String>,
    /// `failure`, `error`, `skipped` or none.
    outcome: Option<String>,
    /// The outcome's `message` attribute.
    message: Option<String>,
    /// The text of the testcase's elements (its failure, its system-out).
    text: String,
}

/// A JUnit file, as read back.
#[derive(Debug, Default)]
struct Junit {
    /// The attributes of `<testsuites>`.
    totals: BTreeMap<String, String>,
    cases: Vec<Case>,
}

fn attributes(e: &BytesStart<'_>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        let key = a.key.as_ref().to_owned();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Explicit1_0)
            .map_err(|e| format!("{key}: {e}"))?;
        out.insert(key, value.into_owned());
    }
    Ok(out)
}

/// Read a JUnit file with quick-xml's reader, which checks that it is well-formed (tags
/// nest and close, attributes are quoted, entities are known); and check what a JUnit consumer
/// relies on: the XML declaration, the nesting of testsuites, testcase, properties and outcome,
/// and no character XML 1.0 cannot carry.
fn read_junit(xml: &str) -> Result<Junit, String> {
    if let Some(c) = xml.chars().find(|c| !is_xml_char(*c)) {
        return Err(format!("{c:?} is not an XML 1.0 character"));
    }
    let mut reader = Reader::from_str(xml);
    let mut out = Junit::default();
    let mut path: Vec<String> = Vec::new();
    let mut suite = String::new();
    let mut declared = false;
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {at}: {e}"))?;
        let (e, empty) = match event {
            Event::Decl(d) => {
                let version = d.version().map_err(|e| e.to_string())?;
                let encoding = d.encoding().transpose().map_err(|e| e.to_string())?;
                if version != "1.0" || encoding.as_deref() != Some("UTF-8") {
                    return Err("the declaration is not XML 1.0 in UTF-8".into());
                }
                declared = true;
                continue;
            }
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::Text(t) => {
                let inside = path.len() > 3 && path[2] == "testcase";
                if let (true, Some(case)) = (inside, out.cases.last_mut()) {
                    case.text.push_str(&t.xml10_content());
                } else if !t.xml10_content().trim().is_empty() {
                    return Err(format!("text outside a testcase: {:?}", t.xml10_content()));
                }
                continue;
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.xml10_content();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown entity &{name};"))?
                            .to_owned()
                    }
                };
                if let Some(case) = out.cases.last_mut() {
                    case.text.push_str(&c);
                }
                continue;
            }
            Event::CData(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {
                return Err("a JUnit file of ours has no CDATA, comment, PI or DOCTYPE".into());
            }
            Event::Eof => break,
        };
        let name = e.name().as_ref().to_owned();
        let attrs = attributes(&e)?;
        let attr = |key: &str| attrs.get(key).cloned().unwrap_or_default();
        let parent = path.join("/");
        let expected_parent = match name.as_str() {
            "testsuites" => "",
            "testsuite" => "testsuites",
            "testcase" => "testsuites/testsuite",
            "properties" if parent == "testsuites/testsuite" => "testsuites/testsuite",
            "properties" => "testsuites/testsuite/testcase",
            "property" if parent == "testsuites/testsuite/properties" => {
                "testsuites/testsuite/properties"
            }
            "property" => "testsuites/testsuite/testcase/properties",
            "failure" | "error" | "skipped" | "system-out" => "testsuites/testsuite/testcase",
            other => return Err(format!("unexpected element <{other}>")),
        };
        if parent != expected_parent {
            return Err(format!("<{name}> inside {parent:?}"));
        }
        match name.as_str() {
            "testsuites" => out.totals = attrs.clone(),
            "testsuite" => suite = attr("name"),
            "testcase" => out.cases.push(Case {
                suite: suite.clone(),
                classname: attr("classname"),
                name: attr("name"),
                ..Case::default()
            }),
            "property"
                if attr("name") == "requirement" && parent.ends_with("testcase/properties") =>
            {
                out.cases
                    .last_mut()
                    .expect("inside a testcase")
                    .requirements
                    .push(attr("value"));
            }
            "failure" | "error" | "skipped" => {
                let case = out.cases.last_mut().expect("inside a testcase");
                if case.outcome.is_some() {
                    return Err(format!("{}: two outcomes", case.name));
                }
                case.outcome = Some(name.clone());
                case.message = attrs.get("message").cloned();
            }
            _ => {}
        }
        if !empty {
            path.push(name);
        }
    }
    if !declared {
        return Err("no XML declaration".into());
    }
    if !path.is_empty() {
        return Err(format!("unclosed: {path:?}"));
    }
    Ok(out)
}

/// The JUnit file of `report` is well-formed, has one testcase per scenario (in the report's
/// order within each feature) with its requirement ids as properties, the outcome its verdict
/// implies with the findings' requirement ids in its text, and counts that add up.
pub(crate) fn check_junit(name: &str, junit: &str, report: &Report) {
    let read = read_junit(junit).unwrap_or_else(|e| panic!("{name}: the JUnit file: {e}"));
    assert_eq!(
        read.cases.len(),
        report.scenarios.len(),
        "{name}: one testcase per scenario"
    );
    let mut scenarios: Vec<&ScenarioResult> = report.scenarios.iter().collect();
    scenarios.sort_by(|a, b| a.feature.cmp(&b.feature));
    for (case, s) in read.cases.iter().zip(&scenarios) {
        assert_eq!(
            (&case.suite, &case.name),
            (&s.feature, &as_written(&s.name)),
            "{name}"
        );
        assert_eq!(case.classname, format!("goldenpath.{}", s.feature));
        assert_eq!(case.requirements, s.requirements, "{name}: {}", s.name);
        let expected = match s.verdict {
            Verdict::Skip => Some("skipped"),
            Verdict::Error => Some("error"),
            // A scenario that only missed SHOULDs fails only a strict run.
            Verdict::Fail
                if !s.findings.is_empty()
                    && s.findings.iter().all(|f| {
                        report
                            .requirements
                            .iter()
                            .any(|r| r.id == f.requirement && r.verdict == Verdict::PassNonstrict)
                    }) =>
            {
                None
            }
            Verdict::Fail => Some("failure"),
            Verdict::Pass | Verdict::PassNonstrict => None,
        };
        assert_eq!(case.outcome.as_deref(), expected, "{name}: {}", s.name);
        for f in &s.findings {
            assert!(
                case.text.contains(&format!("[{}]", f.requirement)),
                "{name}: {}: the JUnit text does not name {}",
                s.name,
                f.requirement
            );
        }
    }
    let count = |outcome: &str| {
        read.cases
            .iter()
            .filter(|c| c.outcome.as_deref() == Some(outcome))
            .count()
            .to_string()
    };
    for (attribute, outcome) in [
        ("failures", "failure"),
        ("errors", "error"),
        ("skipped", "skipped"),
    ] {
        assert_eq!(
            read.totals.get(attribute),
            Some(&count(outcome)),
            "{name}: <testsuites {attribute}>"
        );
    }
    assert_eq!(
        read.totals.get("tests"),
        Some(&read.cases.len().to_string())
    );
}

/// What a hostile server can put in a report's text: markup, both quotes, an entity, the end
/// of a CDATA section, a line break and a tab, and control characters (ESC, NUL, BEL).
const HOSTILE: &str =
    "<b>\"bold\" & 'quoted'</b> ]]> &amp; done\n\tline\u{1b}[31m red \u{0} nul \u{7}";

/// [`HOSTILE`] as the JUnit file carries it: control characters as their Rust escapes.
const HOSTILE_READ: &str =
    "<b>\"bold\" & 'quoted'</b> ]]> &amp; done\n\tline\\u{1b}[31m red \\u{0} nul \\u{7}";

fn hostile_report() -> Report {
    let scenario = |name: &str, verdict: Verdict| ScenarioResult {
        feature: "routing".into(),
        name: name.into(),
        requirements: vec!["GP-ROUTE-003".into()],
        tags: vec!["routing".into(), "GP-ROUTE-003".into()],
        verdict,
        skip_reason: None,
        ran_through: verdict == Verdict::Fail,
        duration_ms: 1.0,
        steps: Vec::new(),
        findings: Vec::new(),
        transcripts: Vec::new(),
        leak_matrix: None,
    };
    let mut failed = scenario(&format!("A failure [frame={HOSTILE}]"), Verdict::Fail);
    failed.steps = vec![StepResult {
        keyword: "Then ".into(),
        text: "alice receives an error frame".into(),
        verdict: Verdict::Fail,
        message: Some(format!(
            "[GP-ROUTE-003] got {HOSTILE}</failure><testcase name=\"x\">"
        )),
    }];
    failed.findings = vec![Finding {
        requirement: "GP-ROUTE-003".into(),
        expected: "an error frame".into(),
        got: HOSTILE.into(),
        connection: Some("alice#1".into()),
        frame_index: Some(1),
        leak: None,
    }];
    let mut skipped = scenario("A skip", Verdict::Skip);
    skipped.skip_reason = Some(HOSTILE.into());
    Report::build(
        "ws://127.0.0.1:1/ws".into(),
        false,
        2.0,
        vec![failed, skipped],
    )
}

#[test]
fn hostile_text_stays_text_and_the_file_stays_well_formed() {
    let report = hostile_report();
    let junit = writer::to_junit(&report);
    let read = read_junit(&junit).unwrap_or_else(|e| panic!("{e}\n{junit}"));
    // Nothing the text holds became markup: two testcases, one failure, one skip.
    assert_eq!(read.cases.len(), 2, "{junit}");
    let failed = read
        .cases
        .iter()
        .find(|c| c.name.starts_with("A failure"))
        .unwrap();
    assert_eq!(failed.name, format!("A failure [frame={HOSTILE_READ}]"));
    assert_eq!(failed.outcome.as_deref(), Some("failure"));
    assert!(
        failed.text.contains(&format!(
            "got {HOSTILE_READ}</failure><testcase name=\"x\">"
        )),
        "{:?}",
        failed.text
    );
    assert!(failed.text.contains(&format!(
        "[GP-ROUTE-003] expected an error frame; got {HOSTILE_READ}"
    )));
    // An attribute keeps its line break and tab (escaped as character references).
    let skipped = read.cases.iter().find(|c| c.name == "A skip").unwrap();
    assert_eq!(skipped.outcome.as_deref(), Some("skipped"));
    assert_eq!(skipped.message.as_deref(), Some(HOSTILE_READ));
    check_junit("hostile", &junit, &report);
}
