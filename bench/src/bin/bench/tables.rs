//! The side-by-side tables of BENCHMARKS.md, from the rounds' figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Figures, Server};

/// The tables of BENCHMARKS.md: one row per figure and round, reference vs peer vs floor, with
/// the ratios.
pub(crate) fn tables(rounds: &[BTreeMap<Server, Figures>]) -> String {
    type Get = fn(&Figures) -> f64;
    // (name, unit, getter, lower is better)
    let rows: [(&str, &str, Get, bool); 14] = [
        ("routing p50 @ 1k ev/s", "ms", |f| f.p50_1k, true),
        ("routing p99 @ 1k ev/s", "ms", |f| f.p99_1k, true),
        ("routing p50 @ 5k ev/s", "ms", |f| f.p50_5k, true),
        ("routing p99 @ 5k ev/s", "ms", |f| f.p99_5k, true),
        (
            "from actual send, p50 @ 1k ev/s",
            "ms",
            |f| f.sent_p50_1k,
            true,
        ),
        (
            "from actual send, p99 @ 1k ev/s",
            "ms",
            |f| f.sent_p99_1k,
            true,
        ),
        (
            "from actual send, p50 @ 5k ev/s",
            "ms",
            |f| f.sent_p50_5k,
            true,
        ),
        (
            "from actual send, p99 @ 5k ev/s",
            "ms",
            |f| f.sent_p99_5k,
            true,
        ),
        ("max rate, p99 < 5 ms", "ev/s", |f| f.max_rate_ev, false),
        (
            "delivered at saturation",
            "ev/s",
            |f| f.saturation_ev,
            false,
        ),
        ("server CPU at saturation", "%", |f| f.saturation_cpu, false),
        (
            "events per server CPU-second",
            "ev",
            |f| f.events_per_cpu_s,
            false,
        ),
        (
            "RSS per idle connection",
            "KB",
            |f| f.rss_per_conn / 1000.0,
            true,
        ),
        ("handshake + auth", "conn/s", |f| f.handshakes_per_s, false),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| figure | round | reference | peer (FastAPI) | floor (tungstenite) | reference vs peer | reference / floor |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for (name, unit, get, lower) in rows {
        for (i, round) in rounds.iter().enumerate() {
            let r = get(&round[&Server::Reference]);
            let p = get(&round[&Server::Peer]);
            let fl = get(&round[&Server::Floor]);
            let vs_peer = if lower {
                format!("{:.1}× lower", p / r)
            } else {
                format!("{:.1}×", r / p)
            };
            let vs_floor = format!("{:.2}", r / fl);
            let _ = writeln!(
                out,
                "| {name} ({unit}) | {} | {} | {} | {} | {vs_peer} | {vs_floor} |",
                i + 1,
                fmt(r),
                fmt(p),
                fmt(fl)
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| correctness (all load runs of the round) | round | reference | peer (FastAPI) | floor (tungstenite) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (i, round) in rounds.iter().enumerate() {
        let c = |s: Server| {
            let f = &round[&s];
            let c = f.counters;
            format!(
                "{} runs: lost {} dup {} misrouted {} order {} schema {}",
                f.runs, c.lost, c.duplicated, c.misrouted, c.out_of_order, c.schema_invalid
            )
        };
        let _ = writeln!(
            out,
            "| counters | {} | {} | {} | {} |",
            i + 1,
            c(Server::Reference),
            c(Server::Peer),
            c(Server::Floor)
        );
    }
    let _ = writeln!(out);
    let checks: Vec<String> = rounds
        .iter()
        .filter_map(|r| r[&Server::Reference].check_s)
        .map(|s| format!("{s:.2} s"))
        .collect();
    let _ = writeln!(
        out,
        "`goldenpath check` (full suite) against the reference, wall time per round: {}",
        checks.join(", ")
    );
    out
}

/// A figure with as many digits as it needs.
pub(crate) fn fmt(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}
