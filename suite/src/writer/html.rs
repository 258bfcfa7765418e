//! `--html FILE`: one self-contained page (no script, no network) for a person to read: the
//! verdict, a summary per family, every requirement with its level and verdict, the failing
//! scenarios with their evidence and transcripts (folded), leak matrices as tables, and the
//! comparison with the baseline when there is one. Rendered by minijinja from
//! `templates/report.html`.

use super::{Baseline, BaselineClass, compare, outcome};
use crate::report::{Direction, Report, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

const TEMPLATE: &str = include_str!("templates/report.html");

/// A family's row of the summary.
#[derive(Serialize, Default)]
struct FamilyRow {
    family: String,
    pass: usize,
    warn: usize,
    skip: usize,
    fail: usize,
    error: usize,
}

/// A frame as the page shows it.
#[derive(Serialize)]
struct FrameRow {
    t_ms: String,
    arrow: &'static str,
    frame: String,
}

#[derive(Serialize)]
struct TranscriptView {
    connection: String,
    user: String,
    frames: Vec<FrameRow>,
}

#[derive(Serialize)]
struct ScenarioView<'a> {
    verdict: Verdict,
    scenario: &'a crate::report::ScenarioResult,
    transcripts: Vec<TranscriptView>,
}

#[derive(Serialize)]
struct BaselineRow {
    id: String,
    class: BaselineClass,
}

#[derive(Serialize)]
struct Page<'a> {
    headline: &'static str,
    report: &'a Report,
    families: Vec<FamilyRow>,
    failing: Vec<ScenarioView<'a>>,
    baseline: Option<Vec<BaselineRow>>,
    stale: Vec<String>,
}

/// The headline verdict of a report, as the summaries print it.
pub(crate) fn headline(report: &Report) -> &'static str {
    report.state.as_str()
}

/// The report as one self-contained HTML page; with a baseline, how each requirement moved.
pub fn to_html(report: &Report, baseline: Option<&Baseline>) -> String {
    let mut families: BTreeMap<&str, FamilyRow> = BTreeMap::new();
    for r in &report.requirements {
        let row = families
            .entry(r.family.as_str())
            .or_insert_with(|| FamilyRow {
                family: r.family.clone(),
                ..FamilyRow::default()
            });
        match r.verdict {
            Verdict::Pass => row.pass += 1,
            Verdict::PassNonstrict => row.warn += 1,
            Verdict::Skip => row.skip += 1,
            Verdict::Fail => row.fail += 1,
            Verdict::Error => row.error += 1,
        }
    }
    let failing = report
        .scenarios
        .iter()
        .filter(|s| matches!(s.verdict, Verdict::Fail | Verdict::Error))
        .map(|s| ScenarioView {
            verdict: outcome(report, s),
            scenario: s,
            transcripts: s
                .transcripts
                .iter()
                .map(|t| TranscriptView {
                    connection: t.connection.clone(),
                    user: t.user.clone(),
                    frames: t
                        .frames
                        .iter()
                        .map(|f| FrameRow {
                            t_ms: format!("{:.1}", f.t_ms),
                            arrow: if f.direction == Direction::Sent {
                                "→"
                            } else {
                                "←"
                            },
                            frame: f.frame.clone(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let classes = baseline.map(|b| compare(report, b)).unwrap_or_default();
    let page = Page {
        headline: headline(report),
        report,
        families: families.into_values().collect(),
        failing,
        baseline: baseline.map(|_| {
            classes
                .iter()
                .filter(|(_, c)| {
                    !matches!(c, BaselineClass::Unchanged | BaselineClass::StaleBaseline)
                })
                .map(|(id, class)| BaselineRow {
                    id: id.clone(),
                    class: *class,
                })
                .collect()
        }),
        stale: classes
            .iter()
            .filter(|(_, c)| *c == BaselineClass::StaleBaseline)
            .map(|(id, _)| id.clone())
            .collect(),
    };
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)
        .expect("the report template parses (a test renders it)");
    env.get_template("report.html")
        .and_then(|t| t.render(minijinja::value::Serde(&page)))
        .expect("the report template renders every report (a test renders it)")
}
