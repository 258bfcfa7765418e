//! The terminal summary: a table per requirement family, then each failure with its evidence.

use super::outcome;
use crate::report::{DialectReport, Direction, Report, ScenarioResult, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How many frames of each connection's transcript a failure shows (the last ones).
const TRANSCRIPT_TAIL: usize = 8;

/// The migration debt, first thing after the title: each rule applied and how often, by message
/// type, the share of frames that came native, and the capabilities lacked.
fn debt(out: &mut String, d: &DialectReport) {
    let _ = writeln!(
        out,
        "migration debt via {} ({}): {} ({} mapping rules needed, {} capabilities lacked)",
        d.name,
        d.origin,
        d.debt,
        d.rules.len(),
        d.lacks.len()
    );
    if d.by_type.is_empty() {
        for r in &d.rules {
            let _ = writeln!(out, "  rule  {:>6}x  {}", r.count, r.rule);
        }
    } else {
        let _ = writeln!(
            out,
            "  native frames: {} of {} received ({:.1} %)",
            d.native,
            d.frames,
            d.native_percent()
        );
        for t in &d.by_type {
            let _ = writeln!(
                out,
                "  {:<24} {:>6} frames {:>6} native",
                t.kind, t.frames, t.native
            );
            for r in &t.rules {
                let _ = writeln!(out, "    {:>6}x  {}", r.count, r.rule);
            }
        }
        // Rules on no frame in particular (the handshake's).
        for r in d.rules.iter().filter(|r| {
            !d.by_type
                .iter()
                .any(|t| t.rules.iter().any(|x| x.rule == r.rule))
        }) {
            let _ = writeln!(out, "  handshake {:>6}x  {}", r.count, r.rule);
        }
    }
    for l in &d.lacks {
        let ids = if l.requirements.is_empty() {
            String::new()
        } else {
            format!(" [{}]", l.requirements.join(" "))
        };
        let _ = writeln!(out, "  lacks {}{ids}: {}", l.capability, l.reason);
    }
}

/// The summary printed after a run.
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    let via = report
        .dialect
        .as_ref()
        .map(|d| format!(" via {}", d.name))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "goldenpath: spec v{} against {}{via}",
        report.spec_version, report.target
    );
    if let Some(d) = &report.dialect {
        let _ = writeln!(out);
        debt(&mut out, d);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<8} {:>5} {:>5} {:>5} {:>5} {:>5}",
        "family", "pass", "warn", "skip", "fail", "error"
    );
    let mut families: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
    for r in &report.requirements {
        let row = families.entry(r.family.as_str()).or_default();
        let i = match r.verdict {
            Verdict::Pass => 0,
            Verdict::PassNonstrict => 1,
            Verdict::Skip => 2,
            Verdict::Fail => 3,
            Verdict::Error => 4,
        };
        row[i] += 1;
    }
    for (family, row) in &families {
        let _ = writeln!(
            out,
            "{:<8} {:>5} {:>5} {:>5} {:>5} {:>5}",
            family, row[0], row[1], row[2], row[3], row[4]
        );
    }
    let t = &report.totals;
    let _ = writeln!(
        out,
        "{:<8} {:>5} {:>5} {:>5} {:>5} {:>5}",
        "total", t.pass, t.pass_nonstrict, t.skip, t.fail, t.error
    );

    let notable: Vec<_> = report
        .requirements
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .collect();
    if !notable.is_empty() {
        let _ = writeln!(out);
        for r in notable {
            let why = r
                .reason
                .as_deref()
                .map(|s| format!(" ({})", s.replace('\n', " ")))
                .or_else(|| r.via.as_deref().map(|d| format!(" (via {d})")))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<14} {:<6} {:<14} {}{}",
                r.verdict.as_str(),
                r.level,
                r.id,
                r.text,
                why
            );
        }
    }

    for s in report
        .scenarios
        .iter()
        .filter(|s| matches!(s.verdict, Verdict::Fail | Verdict::Error))
    {
        let _ = writeln!(out);
        evidence(&mut out, s, outcome(report, s));
    }
    let _ = writeln!(out);
    if !report.unchecked.is_empty() {
        let _ = writeln!(
            out,
            "{} MUST requirement{} not checked:",
            report.unchecked.len(),
            if report.unchecked.len() == 1 {
                " was"
            } else {
                "s were"
            }
        );
        for u in &report.unchecked {
            let _ = writeln!(out, "  {:<14} {}", u.id, u.reason.replace('\n', " "));
        }
        let _ = writeln!(out);
    }
    let scope = &report.scope;
    if scope.is_partial() {
        let mut narrowed = Vec::new();
        if let Some(tags) = &scope.tags {
            narrowed.push(format!("--tags {tags:?}"));
        }
        for only in &scope.only {
            narrowed.push(format!("--only {only}"));
        }
        if let Some(why) = &scope.limited_to {
            narrowed.push(why.clone());
        }
        let _ = writeln!(
            out,
            "selection: {} (a part of the spec: this run cannot say CONFORMANT)",
            narrowed.join(", ")
        );
    }
    if let Some(b) = &report.budgets {
        let ms = |v: u64| crate::human(std::time::Duration::from_millis(v));
        let _ = writeln!(
            out,
            "budgets ({}): first event {}, gap {}, completion {}, run timeout {}",
            b.source,
            ms(b.first_event_ms),
            ms(b.max_gap_ms),
            ms(b.completion_ms),
            ms(b.run_timeout_ms)
        );
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let scenarios = report.scenarios.len();
    let _ = writeln!(
        out,
        "{}{via}: {} requirements passed, {} failed, {} errors, {} skipped, {} SHOULD missed; {scenarios} scenarios, {} agent runs, in {:.1} s",
        report.state,
        t.pass,
        t.fail,
        t.error,
        t.skip,
        t.pass_nonstrict,
        report.agent_runs,
        report.duration_ms / 1000.0
    );
    out
}

fn evidence(out: &mut String, s: &ScenarioResult, verdict: Verdict) {
    let _ = writeln!(
        out,
        "{} {}: {} [{}]",
        verdict.as_str().to_uppercase(),
        s.feature,
        s.name,
        s.requirements.join(" ")
    );
    for step in &s.steps {
        let mark = match step.verdict {
            Verdict::Pass | Verdict::PassNonstrict => "ok  ",
            Verdict::Skip => "skip",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERR ",
        };
        let _ = writeln!(out, "  {mark} {} {}", step.keyword.trim(), step.text);
        if let Some(m) = &step.message {
            for line in m.lines() {
                let _ = writeln!(out, "         {line}");
            }
        }
    }
    // A failed step's message is shown with its step: skip the findings that only repeat it.
    let repeats = |got: &str| {
        s.steps
            .iter()
            .any(|step| step.message.as_deref() == Some(got))
    };
    for f in s.findings.iter().filter(|f| !repeats(&f.got)) {
        let at = match (&f.connection, f.frame_index) {
            (Some(c), Some(i)) => format!(" on {c} frame {i}"),
            (Some(c), None) => format!(" on {c}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  [{}]{at}: expected {}; got {}",
            f.requirement, f.expected, f.got
        );
    }
    if let Some(m) = &s.leak_matrix {
        let _ = writeln!(
            out,
            "  leak matrix (rows: run owner, columns: receiving user):"
        );
        let _ = writeln!(
            out,
            "    {:>10} {}",
            "",
            m.users
                .iter()
                .map(|u| format!("{u:>10}"))
                .collect::<String>()
        );
        for (i, row) in m.counts.iter().enumerate() {
            let _ = writeln!(
                out,
                "    {:>10} {}",
                m.users.get(i).map_or("?", String::as_str),
                row.iter().map(|c| format!("{c:>10}")).collect::<String>()
            );
        }
    }
    for t in &s.transcripts {
        let skipped = t.frames.len().saturating_sub(TRANSCRIPT_TAIL);
        let _ = writeln!(
            out,
            "  transcript {} ({}), last {} of {} frames:",
            t.connection,
            t.user,
            t.frames.len() - skipped,
            t.frames.len() + t.omitted
        );
        if t.omitted > 0 && skipped < t.omitted_after {
            let _ = writeln!(
                out,
                "    ({} frames left out after the first {}; --evidence full keeps them)",
                t.omitted, t.omitted_after
            );
        }
        for f in &t.frames[skipped..] {
            let arrow = if f.direction == Direction::Sent {
                "->"
            } else {
                "<-"
            };
            let mut frame = f.frame.clone();
            if frame.len() > 200 {
                let mut end = 200;
                while !frame.is_char_boundary(end) {
                    end -= 1;
                }
                frame = format!("{}…", &frame[..end]);
            }
            let _ = writeln!(out, "    {:>9.1} ms {arrow} {frame}", f.t_ms);
        }
    }
}
