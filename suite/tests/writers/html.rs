//! The HTML page (`--html`): one snapshot per report. (That the page renders in a real browser
//! is an end-to-end test: `tests/e2e/`.)

use goldenpath::writer;
use rstest::rstest;

use crate::{fixtures, snapshot};

#[rstest]
fn the_html_page_shows_the_verdicts_and_the_evidence(
    #[values("real", "constructed", "dialect")] report: &str,
) {
    snapshot::text(
        &format!("{report}.report.html"),
        &writer::to_html(fixtures::report(report), None),
    );
}
