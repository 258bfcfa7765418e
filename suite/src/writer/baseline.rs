//! `--baseline PREV.json`: compare this run with a previous report. The comparison `check
//! --baseline` prints and exits by is [`diff`](super::diff()) (the code of `goldenpath diff`);
//! [`compare`] is the coarser classification by failures alone.

use crate::report::{Report, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// A previous report, read from its JSON.
#[derive(Debug, Clone)]
pub struct Baseline {
    verdicts: BTreeMap<String, Verdict>,
    report: Report,
}

/// The baseline file is unusable.
#[derive(Debug, thiserror::Error)]
#[error("baseline {path}: {reason}")]
pub struct BaselineError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl Baseline {
    /// Read a report written by `--json`.
    pub fn read(path: &std::path::Path) -> Result<Baseline, BaselineError> {
        let err = |reason: String| BaselineError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let report: Report = serde_json::from_str(&text)
            .map_err(|e| err(format!("not a goldenpath JSON report: {e}")))?;
        Ok(Baseline::from_report(&report))
    }

    /// The verdicts of a report.
    pub fn from_report(report: &Report) -> Baseline {
        Baseline {
            verdicts: report
                .requirements
                .iter()
                .map(|r| (r.id.clone(), r.verdict))
                .collect(),
            report: report.clone(),
        }
    }

    /// The previous report.
    pub fn report(&self) -> &Report {
        &self.report
    }
}

/// How a requirement moved since the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineClass {
    /// Failing now, not failing then: a regression (exit 1).
    NewFailure,
    /// Failing then, not now.
    Fixed,
    /// Failing then and now.
    StillFailing,
    /// In the baseline, not checked now (deselected, renamed or gone): the baseline is stale.
    StaleBaseline,
    /// Not failing then or now.
    Unchanged,
}

/// Each requirement of `now` and of `baseline`, classified.
pub fn compare(now: &Report, baseline: &Baseline) -> Vec<(String, BaselineClass)> {
    let failing = |v: Verdict| matches!(v, Verdict::Fail | Verdict::Error);
    let mut out = Vec::new();
    for r in &now.requirements {
        let class = match (
            baseline.verdicts.get(&r.id).copied().map(failing),
            failing(r.verdict),
        ) {
            (Some(true), true) => BaselineClass::StillFailing,
            (Some(true), false) => BaselineClass::Fixed,
            (_, true) => BaselineClass::NewFailure,
            (_, false) => BaselineClass::Unchanged,
        };
        out.push((r.id.clone(), class));
    }
    for id in baseline.verdicts.keys() {
        if !now.requirements.iter().any(|r| &r.id == id) {
            out.push((id.clone(), BaselineClass::StaleBaseline));
        }
    }
    out
}
