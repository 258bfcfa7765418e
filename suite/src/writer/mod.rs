//! Writers over the one result model: the terminal summary, the JSON report, JUnit XML, the HTML
//! page, the Markdown job summary, and the comparison of two reports (`diff`, `--baseline`). The
//! executor never prints; these do.

mod baseline;
mod diff;
mod html;
mod json;
mod junit;
mod markdown;
mod terminal;

pub use baseline::{Baseline, BaselineClass, BaselineError, compare};
pub use diff::{Change, DebtDelta, Diff, RuleDelta, Transition, diff};
pub use html::to_html;
pub use json::to_json;
pub use junit::to_junit;
pub use markdown::to_markdown;
pub use terminal::summary;

use crate::report::{Report, ScenarioResult, Verdict};

/// How a scenario shows in a writer: its verdict, except that a failure whose every finding
/// names a requirement the report judged `pass-nonstrict` (a SHOULD missed without `--strict`)
/// is `PassNonstrict`, so that no writer calls a conformant run's scenario a failure.
fn outcome(report: &Report, s: &ScenarioResult) -> Verdict {
    let nonstrict = |id: &str| {
        report
            .requirements
            .iter()
            .any(|r| r.id == id && r.verdict == Verdict::PassNonstrict)
    };
    if s.verdict == Verdict::Fail
        && !s.findings.is_empty()
        && s.findings.iter().all(|f| nonstrict(&f.requirement))
    {
        Verdict::PassNonstrict
    } else {
        s.verdict
    }
}
