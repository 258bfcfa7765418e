//! The insta settings every writer's snapshot is taken with: where the snapshots live, and what
//! is hidden because it differs run to run.

use goldenpath::report::Report;

/// What differs run to run in a writer's text, as insta filters: (regular expression,
/// replacement), applied in this order to every snapshot.
const FILTERS: &[(&str, &str)] = &[
    // A terminal transcript line, `{t_ms:>9.1} ms -> {frame}`.
    (
        r"(?m)^ +\d+(?:\.\d+)? ms (->|<-) ",
        "         [ms] ms ${1} ",
    ),
    // JUnit's seconds, the summary's run time, the HTML transcript's milliseconds.
    (r#" time="\d+(?:\.\d+)?""#, r#" time="[s]""#),
    (r"( scenarios in | agent runs, in )\d+(?:\.\d+)?", "${1}[s]"),
    (
        r#"<span class="t">\d+(?:\.\d+)?"#,
        r#"<span class="t">[ms]"#,
    ),
    // Server-assigned ids as JSON members, plain or inside a JSON string (`\"run_id\":\"…\"`).
    (
        r#"(\\?"(event_id|run_id|thread_id|connection_id|tool_call_id)\\?": ?\\?")[^"\\]*"#,
        "${1}[${2}]",
    ),
    // RFC 3339 timestamps, with a fraction and a zone or offset.
    (
        r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})",
        "[timestamp]",
    ),
    // Ports the OS gave.
    (r"(127\.0\.0\.1|localhost|\[::1\]):\d+", "${1}:[port]"),
    // The prefix every user id of one run carries, `gp1a2b3c-s12-`.
    (r"\bgp[0-9a-f]{6}-s\d+-", "gp[run]-s[n]-"),
    (r"\bgp[0-9a-f]{6}-", "gp[run]-"),
    // The reference router's ids, `<kind>-<8 hex>-<n>`, e.g. `r-1a2b3c4d-17`.
    (r"\b([a-z]{1,8})-[0-9a-f]{8}-\d+\b", "${1}-[id]"),
    // A `Duration`'s `Debug` with a fraction (a whole one, such as a configured `5s`, is stable).
    (r"\b\d+\.\d+(?:ns|µs|ms|s)\b", "[duration]"),
    // JWTs.
    (
        r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*",
        "[jwt]",
    ),
];

/// The JSON report's times, as insta redactions by path.
const REDACTIONS: &[&str] = &[
    ".duration_ms",
    ".scenarios[].duration_ms",
    ".scenarios[].transcripts[].frames[].t_ms",
];

/// The settings of every snapshot: in `suite/tests/snapshots/`, named by the test alone (no
/// module prefix), with [`FILTERS`] and [`REDACTIONS`] and the temporary directory hidden.
pub(crate) fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    // Relative to this file: suite/tests/snapshots/.
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let tmp = std::env::temp_dir();
    let tmp = tmp.to_string_lossy();
    settings.add_filter(&regex_escape(tmp.trim_end_matches('/')), "[tmp]");
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    for path in REDACTIONS {
        settings.add_redaction(path, "[ms]");
    }
    settings
}

/// `text` as a regular expression that matches it literally.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Compare a writer's text with the snapshot `name`.
pub(crate) fn text(name: &str, text: &str) {
    settings().bind(|| insta::assert_snapshot!(name, text));
}

/// Compare a report, as JSON, with the snapshot `name`.
pub(crate) fn json(name: &str, report: &Report) {
    settings().bind(|| insta::assert_json_snapshot!(name, report));
}

#[test]
fn filters_hide_every_volatile_field() {
    let raw = concat!(
        "{\"event_id\":\"e-1a2b3c4d-1\",\"timestamp\":\"2026-01-02T03:04:05.678Z\",",
        "\"run_id\":\"run-42\",\"user_id\":\"gp1a2b3c-s12-alice\"}\n",
        "\"frame\": \"{\\\"thread_id\\\":\\\"t-x\\\"}\"\n",
        "<testsuites time=\"1.173\"> ws://127.0.0.1:41234/ws at 2026-01-02T03:04:05+01:00\n",
        "      12.3 ms -> <close 1000>\n",
        "alice#1 waited 4.998123s, the budget is 1s; call-0badcafe-7; token eyJhbGc.eyJzdWI.c2ln\n",
        "probe gp1a2b3c-probe; 5 scenarios in 1.2 s; thread_id and run_id stay words\n",
    );
    settings().bind(|| {
        insta::assert_snapshot!(raw, @r#"
        {"event_id":"[event_id]","timestamp":"[timestamp]","run_id":"[run_id]","user_id":"gp[run]-s[n]-alice"}
        "frame": "{\"thread_id\":\"[thread_id]\"}"
        <testsuites time="[s]"> ws://127.0.0.1:[port]/ws at [timestamp]
                 [ms] ms -> <close 1000>
        alice#1 waited [duration], the budget is 1s; call-[id]; token [jwt]
        probe gp[run]-probe; 5 scenarios in [s] s; thread_id and run_id stay words
        "#);
    });
}
