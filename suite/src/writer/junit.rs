//! `--junit FILE`: one `<testsuite>` per feature, one `<testcase>` per scenario, its
//! requirement ids as `<properties>`.
//!
//! A scenario that only missed SHOULDs is not a `<failure>` unless the run was `--strict`
//! (the report counts those requirements `pass-nonstrict`, and the run can be conformant): its
//! evidence goes to the testcase's `<system-out>` instead.
//!
//! The XML is written with `quick-xml`, which escapes every text and attribute value (markup
//! characters, quotes, and line breaks in attributes). What it cannot escape, XML 1.0 cannot
//! carry at all: a control character other than tab, line feed and carriage return (a hostile
//! server can put one in a frame, hence in a finding) is written as its Rust escape, `\u{1b}`,
//! so that the evidence stays visible and the file stays well-formed.

use super::outcome;
use crate::report::{Report, ScenarioResult, Verdict};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

/// `text` with every character XML 1.0 cannot hold replaced by its Rust escape.
fn xml_chars(text: &str) -> Cow<'_, str> {
    let invalid = |c: char| matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if !text.contains(invalid) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if invalid(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn failure_text(s: &ScenarioResult) -> String {
    let mut text = String::new();
    for step in &s.steps {
        if let Some(m) = &step.message {
            let _ = writeln!(text, "{} {}: {}", step.keyword.trim(), step.text, m);
        }
    }
    for f in &s.findings {
        let _ = writeln!(
            text,
            "[{}] expected {}; got {}",
            f.requirement, f.expected, f.got
        );
    }
    text
}

/// Seconds, as JUnit's `time` attribute has them.
fn seconds(ms: f64) -> String {
    format!("{:.3}", ms / 1000.0)
}

/// The report as JUnit XML.
pub fn to_junit(report: &Report) -> String {
    let mut xml = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_report(&mut xml, report).expect("writing XML to memory does not fail");
    let mut text = String::from_utf8(xml.into_inner()).expect("quick-xml writes the UTF-8 given");
    text.push('\n');
    text
}

fn write_report(xml: &mut Writer<Vec<u8>>, report: &Report) -> io::Result<()> {
    let mut features: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
    for s in &report.scenarios {
        features.entry(s.feature.as_str()).or_default().push(s);
    }
    let count = |scenarios: &[&ScenarioResult], v: Verdict| {
        scenarios
            .iter()
            .filter(|s| outcome(report, s) == v)
            .count()
            .to_string()
    };
    let all: Vec<&ScenarioResult> = report.scenarios.iter().collect();
    xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    xml.create_element("testsuites")
        .with_attributes([
            ("name", "goldenpath"),
            ("tests", &all.len().to_string()),
            ("failures", &count(&all, Verdict::Fail)),
            ("errors", &count(&all, Verdict::Error)),
            ("skipped", &count(&all, Verdict::Skip)),
            ("time", &seconds(report.duration_ms)),
        ])
        .write_inner_content(|xml| {
            for (feature, scenarios) in &features {
                let time = scenarios.iter().map(|s| s.duration_ms).sum::<f64>();
                xml.create_element("testsuite")
                    .with_attributes([
                        ("name", &*xml_chars(feature)),
                        ("tests", &scenarios.len().to_string()),
                        ("failures", &count(scenarios, Verdict::Fail)),
                        ("errors", &count(scenarios, Verdict::Error)),
                        ("skipped", &count(scenarios, Verdict::Skip)),
                        ("time", &seconds(time)),
                    ])
                    .write_inner_content(|xml| {
                        if let Some(d) = &report.dialect {
                            // Every verdict of the suite was reached through the dialect.
                            xml.create_element("properties")
                                .write_inner_content(|xml| {
                                    property(xml, "dialect", &d.name)?;
                                    property(xml, "migration_debt", &d.debt.to_string())
                                })?;
                        }
                        for s in scenarios {
                            write_case(xml, report, feature, s)?;
                        }
                        Ok(())
                    })?;
            }
            Ok(())
        })?;
    Ok(())
}

fn property(xml: &mut Writer<Vec<u8>>, name: &str, value: &str) -> io::Result<()> {
    xml.create_element("property")
        .with_attributes([("name", &*xml_chars(name)), ("value", &*xml_chars(value))])
        .write_empty()?;
    Ok(())
}

fn write_case(
    xml: &mut Writer<Vec<u8>>,
    report: &Report,
    feature: &str,
    s: &ScenarioResult,
) -> io::Result<()> {
    let classname = format!("goldenpath.{}", xml_chars(feature));
    xml.create_element("testcase")
        .with_attributes([
            ("classname", classname.as_str()),
            ("name", &xml_chars(&s.name)),
            ("time", &seconds(s.duration_ms)),
        ])
        .write_inner_content(|xml| {
            xml.create_element("properties")
                .write_inner_content(|xml| {
                    for r in &s.requirements {
                        let level = goldenpath_spec::catalogue::requirement(r)
                            .map(|q| q.level.to_string())
                            .unwrap_or_default();
                        property(xml, "requirement", r)?;
                        property(xml, r, &level)?;
                    }
                    Ok(())
                })?;
            let text = |prefix: &str| format!("{prefix}{}", xml_chars(&failure_text(s)));
            match outcome(report, s) {
                Verdict::Fail => {
                    xml.create_element("failure")
                        .with_attribute(("message", &*xml_chars(&s.requirements.join(", "))))
                        .write_text_content(BytesText::new(&text("")))?;
                }
                Verdict::Error => {
                    xml.create_element("error")
                        .with_attribute(("message", "suite or network error"))
                        .write_text_content(BytesText::new(&text("")))?;
                }
                Verdict::Skip => {
                    let reason = s.skip_reason.as_deref().unwrap_or("");
                    xml.create_element("skipped")
                        .with_attribute(("message", &*xml_chars(reason)))
                        .write_empty()?;
                }
                Verdict::PassNonstrict => {
                    xml.create_element("system-out")
                        .write_text_content(BytesText::new(&text(
                            "SHOULD missed (a failure only with --strict):\n",
                        )))?;
                }
                Verdict::Pass => {}
            }
            Ok(())
        })?;
    Ok(())
}
