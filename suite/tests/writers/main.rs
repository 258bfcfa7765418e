//! Snapshot tests of every report writer — the terminal summary, the JSON report, JUnit XML, the
//! HTML page, the Markdown summary, the baseline comparison and the diff of two reports — one
//! module per writer, over the same three reports (`fixtures`):
//!
//! - `real`: a real run of a small selection (`--only GP-HB --only GP-CONN-003`) against the
//!   embedded reference router;
//! - `constructed`: a report built with [`Report::build`](goldenpath::report::Report::build)
//!   from hand-made scenario results — a failed MUST with a leak matrix and a wire finding, a
//!   missed SHOULD (`pass-nonstrict`), a skip with its reason, an error, passes, two rows of one
//!   outline, and transcripts — which shows how failure evidence is formatted;
//! - `dialect`: an offline capture of a legacy backend judged through the `netra-legacy`
//!   dialect.
//!
//! The snapshots are [insta](https://insta.rs) files in `suite/tests/snapshots/`, one per
//! writer and report (`constructed.junit.snap`, …). What differs run to run is hidden the insta
//! way (`snapshot::settings`): the JSON report's times are *redactions* by path
//! (`.scenarios[].duration_ms`), everything else *filters* (regular expressions) — times,
//! timestamps, ports, temporary paths, server-assigned ids, the run's user-id prefix, fractional
//! `Duration`s and JWTs; `snapshot::filters_hide_every_volatile_field` shows each at work.
//!
//! Every JSON report is also validated against `schemas/report/report.json` and read back, and
//! every JUnit file is read back with quick-xml's reader (`junit`).
//!
//! # Accepting a change of the output
//!
//! A changed output fails its test with a diff. To accept it, review the new snapshots:
//!
//! ```sh
//! cargo insta test -p goldenpath --test writers --review   # with cargo-insta installed
//! INSTA_UPDATE=always cargo test -p goldenpath --test writers && git diff suite/tests/snapshots/
//! ```
//!
//! Without either, a run writes `*.snap.new` files beside the snapshots (ignored by git) and
//! fails. CI runs with `INSTA_UPDATE=no` (as `CI=true` implies): a mismatch fails and nothing is
//! written.

mod baseline;
mod constructed;
mod diff;
mod fixtures;
mod html;
mod json;
mod junit;
mod markdown;
mod names;
mod reports;
mod snapshot;
mod terminal;
