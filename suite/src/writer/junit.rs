//! `--junit FILE`: one `<testsuite>` per feature, one `<testcase>` per scenario, its
//! requirement ids as `<properties>`.
//!
//! A scenario that only missed SHOULDs is not a `<failure>` unless the run was `--strict`
//! (the report counts those requirements `pass-nonstrict`, and the run can be conformant): its
//! evidence goes to the testcase's `<system-out>` instead.

use super::outcome;
use crate::report::{Report, ScenarioResult, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
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

/// The report as JUnit XML.
pub fn to_junit(report: &Report) -> String {
    let mut features: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
    for s in &report.scenarios {
        features.entry(s.feature.as_str()).or_default().push(s);
    }
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let count = |v: Verdict| {
        report
            .scenarios
            .iter()
            .filter(|s| outcome(report, s) == v)
            .count()
    };
    let _ = writeln!(
        xml,
        "<testsuites name=\"goldenpath\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        report.scenarios.len(),
        count(Verdict::Fail),
        count(Verdict::Error),
        count(Verdict::Skip),
        report.duration_ms / 1000.0
    );
    for (feature, scenarios) in features {
        let n = |v: Verdict| scenarios.iter().filter(|s| outcome(report, s) == v).count();
        let time: f64 = scenarios.iter().map(|s| s.duration_ms).sum::<f64>() / 1000.0;
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">",
            escape(feature),
            scenarios.len(),
            n(Verdict::Fail),
            n(Verdict::Error),
            n(Verdict::Skip)
        );
        if let Some(d) = &report.dialect {
            // Every verdict of the suite was reached through the dialect.
            let _ = writeln!(
                xml,
                "    <properties>\n      <property name=\"dialect\" value=\"{}\"/>\n      <property name=\"migration_debt\" value=\"{}\"/>\n    </properties>",
                escape(&d.name),
                d.debt
            );
        }
        for s in scenarios {
            let _ = writeln!(
                xml,
                "    <testcase classname=\"goldenpath.{}\" name=\"{}\" time=\"{:.3}\">",
                escape(feature),
                escape(&s.name),
                s.duration_ms / 1000.0
            );
            xml.push_str("      <properties>\n");
            for r in &s.requirements {
                let level = goldenpath_spec::catalogue::requirement(r)
                    .map(|q| q.level.to_string())
                    .unwrap_or_default();
                let _ = writeln!(
                    xml,
                    "        <property name=\"requirement\" value=\"{}\"/>",
                    escape(r)
                );
                let _ = writeln!(
                    xml,
                    "        <property name=\"{}\" value=\"{}\"/>",
                    escape(r),
                    escape(&level)
                );
            }
            xml.push_str("      </properties>\n");
            match outcome(report, s) {
                Verdict::Fail => {
                    let _ = writeln!(
                        xml,
                        "      <failure message=\"{}\">{}</failure>",
                        escape(&s.requirements.join(", ")),
                        escape(&failure_text(s))
                    );
                }
                Verdict::Error => {
                    let _ = writeln!(
                        xml,
                        "      <error message=\"suite or network error\">{}</error>",
                        escape(&failure_text(s))
                    );
                }
                Verdict::Skip => {
                    let _ = writeln!(
                        xml,
                        "      <skipped message=\"{}\"/>",
                        escape(s.skip_reason.as_deref().unwrap_or(""))
                    );
                }
                Verdict::PassNonstrict => {
                    let _ = writeln!(
                        xml,
                        "      <system-out>SHOULD missed (a failure only with --strict):\n{}</system-out>",
                        escape(&failure_text(s))
                    );
                }
                Verdict::Pass => {}
            }
            xml.push_str("    </testcase>\n");
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}
