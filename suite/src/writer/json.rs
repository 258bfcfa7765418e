//! `--json FILE`: the report as JSON, in the format `schemas/report/report.json` describes
//! (`goldenpath-report/1`).

use crate::report::Report;

/// The most bytes a JSON report holds. A report over it keeps the first and last
/// [`CUT_KEEP`] frames of each transcript and at most [`CUT_KEEP`] findings per scenario (then,
/// if still over, no transcripts), and says so, with the cap, in its `notes`.
pub(crate) const MAX_REPORT_BYTES: usize = 16 << 20;

/// What a report cut to its size cap keeps of each transcript's ends and each scenario's
/// findings.
pub(crate) const CUT_KEEP: usize = 10;

/// The report as pretty-printed JSON, within [`MAX_REPORT_BYTES`].
pub fn to_json(report: &Report) -> String {
    let text = pretty(report);
    if text.len() <= MAX_REPORT_BYTES {
        return text;
    }
    let mut cut = report.clone();
    for s in &mut cut.scenarios {
        s.findings.truncate(CUT_KEEP);
        for t in &mut s.transcripts {
            if t.frames.len() > 2 * CUT_KEEP {
                let dropped = t.frames.len() - 2 * CUT_KEEP;
                t.frames.drain(CUT_KEEP..CUT_KEEP + dropped);
                t.omitted += dropped;
                t.omitted_after = CUT_KEEP;
            }
        }
    }
    cut.notes.push(format!(
        "the JSON report was over its size cap of {} bytes: transcripts keep their first and last {CUT_KEEP} frames, scenarios their first {CUT_KEEP} findings",
        MAX_REPORT_BYTES
    ));
    let text = pretty(&cut);
    if text.len() <= MAX_REPORT_BYTES {
        return text;
    }
    for s in &mut cut.scenarios {
        s.transcripts.clear();
    }
    cut.notes
        .push("still over the cap: transcripts left out".to_owned());
    pretty(&cut)
}

fn pretty(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report always serializes")
}
