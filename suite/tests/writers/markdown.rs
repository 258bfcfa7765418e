//! The Markdown job summary (`--markdown`): one snapshot per report.

use goldenpath::writer;
use rstest::rstest;

use crate::{fixtures, snapshot};

#[rstest]
fn the_markdown_summary_shows_the_verdicts_and_the_failures(
    #[values("real", "constructed", "dialect")] report: &str,
) {
    snapshot::text(
        &format!("{report}.summary.md"),
        &writer::to_markdown(fixtures::report(report), None),
    );
}
