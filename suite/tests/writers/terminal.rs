//! The terminal summary (`goldenpath check`'s output): one snapshot per report.

use goldenpath::writer;
use rstest::rstest;

use crate::{fixtures, snapshot};

#[rstest]
fn the_summary_shows_each_family_and_each_failure_with_its_evidence(
    #[values("real", "constructed", "dialect")] report: &str,
) {
    snapshot::text(
        &format!("{report}.summary"),
        &writer::summary(fixtures::report(report)),
    );
}
