//! `--summary-md FILE`: the verdict and the failing requirements as GitHub-flavoured Markdown,
//! short enough for a CI job summary (`$GITHUB_STEP_SUMMARY`). Rendered by minijinja from
//! `templates/summary.md`.

use super::{Baseline, BaselineClass, compare, html::headline};
use crate::report::{Report, RequirementResult, Verdict};
use serde::Serialize;

const TEMPLATE: &str = include_str!("templates/summary.md");

#[derive(Serialize)]
struct Summary<'a> {
    headline: &'static str,
    report: &'a Report,
    failing: Vec<&'a RequirementResult>,
    new_failures: Option<Vec<String>>,
    fixed: Vec<String>,
}

/// A table cell: no pipes or line breaks to break the row.
fn cell(s: String) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The run as a Markdown summary: headline, totals, and each requirement that failed, errored
/// or missed a SHOULD; with a baseline, the new failures and the fixed.
pub fn to_markdown(report: &Report, baseline: Option<&Baseline>) -> String {
    let classes = baseline.map(|b| compare(report, b));
    let with = |class| -> Vec<String> {
        classes
            .iter()
            .flatten()
            .filter(|(_, c)| *c == class)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let summary = Summary {
        headline: headline(report),
        report,
        failing: report
            .requirements
            .iter()
            .filter(|r| {
                matches!(
                    r.verdict,
                    Verdict::Fail | Verdict::Error | Verdict::PassNonstrict
                )
            })
            .collect(),
        new_failures: classes.as_ref().map(|_| with(BaselineClass::NewFailure)),
        fixed: with(BaselineClass::Fixed),
    };
    let mut env = minijinja::Environment::new();
    env.add_filter("cell", cell);
    env.add_template("summary.md", TEMPLATE)
        .expect("the summary template parses (a test renders it)");
    env.get_template("summary.md")
        .and_then(|t| t.render(minijinja::value::Serde(&summary)))
        .expect("the summary template renders every report (a test renders it)")
}
