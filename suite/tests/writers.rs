//! Golden-file tests of every report writer: the terminal summary, the JSON report, JUnit XML, the
//! HTML page, the Markdown summary and the baseline comparison, each compared with a committed
//! file in `tests/golden/`.
//!
//! Two reports are rendered:
//!
//! - `real.*`: a real run of a small selection (`--only GP-HB --only GP-CONN-003`) against the
//!   embedded reference router;
//! - `constructed.*`: a report built with [`Report::build`] from hand-made scenario results — a
//!   failed MUST with a leak matrix and a wire finding, a missed SHOULD (`pass-nonstrict`), a skip
//!   with its reason, an error, passes, and transcripts — which shows how failure evidence is
//!   formatted; `constructed.baseline.txt` classifies it against an edited copy of itself.
//!
//! What differs run to run is normalised before comparing (see [`normalise`]): durations and
//! transcript times, timestamps, ports, server-assigned ids (`event_id`, `run_id`, `thread_id`,
//! `connection_id`, `tool_call_id`), the run's user-id prefix (`gp1a2b3c-s12-`), fractional
//! `Duration`s in messages, and JWTs.
//!
//! Every JSON report is also validated against `schemas/report/report.json`, and every JUnit
//! file is parsed by hand: well-formed, one `<testcase>` per scenario, the scenario's
//! requirement ids as its properties.
//!
//! To accept a change of the output, rewrite the goldens and review their diff:
//!
//! ```sh
//! GOLDENPATH_BLESS=1 cargo test -p goldenpath --test writers
//! git diff suite/tests/golden/
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use goldenpath::report::{
    Direction, Finding, Frame, LeakMatrix, Report, ScenarioResult, StepResult, Transcript,
};
use goldenpath::writer::{self, Baseline};
use goldenpath::{Options, Selection, Verdict};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Goldens

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("GOLDENPATH_BLESS").is_some_and(|v| v == "1")
}

/// Compares outputs with their goldens, collecting every difference before failing.
#[derive(Default)]
struct Goldens {
    failures: Vec<String>,
}

impl Goldens {
    /// Normalise `actual` and compare it with `tests/golden/<name>` (or rewrite that file when
    /// blessing).
    fn check(&mut self, name: &str, actual: &str) {
        let actual = normalise(actual);
        let path = golden_dir().join(name);
        if bless() {
            std::fs::create_dir_all(golden_dir()).expect("tests/golden is writable");
            std::fs::write(&path, &actual).expect("the golden is writable");
            return;
        }
        let expected = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                self.failures.push(format!(
                    "{}: {e} (run with GOLDENPATH_BLESS=1 to create it)",
                    path.display()
                ));
                return;
            }
        };
        if expected == actual {
            return;
        }
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("golden")
            .join(name);
        let _ = std::fs::create_dir_all(out.parent().expect("a parent"));
        let _ = std::fs::write(&out, &actual);
        self.failures.push(format!(
            "{name} differs from its golden\n{}  whole output: {}\n  golden:       {}",
            first_difference(&expected, &actual),
            out.display(),
            path.display()
        ));
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "\n{}\n\nIf the change is intended, rerun with GOLDENPATH_BLESS=1 and review `git diff suite/tests/golden/`.",
            self.failures.join("\n\n")
        );
    }
}

/// The first differing line of two texts, with two lines of context before it.
fn first_difference(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let Some(at) = (0..e.len().max(a.len())).find(|&i| e.get(i) != a.get(i)) else {
        return "  the lines are equal: they differ in line endings or the final newline\n".into();
    };
    let mut out = String::new();
    for (i, line) in e.iter().enumerate().take(at).skip(at.saturating_sub(2)) {
        let _ = writeln!(out, "  {:>5}   {line}", i + 1);
    }
    let line = |l: Option<&&str>| l.map_or("<end of file>".to_owned(), |s| s.to_string());
    let _ = writeln!(out, "  {:>5} - {}", at + 1, line(e.get(at)));
    let _ = writeln!(out, "  {:>5} + {}", at + 1, line(a.get(at)));
    out
}

/// Every writer's output for `report`, checked against `<prefix>.*` goldens, plus the schema and
/// the JUnit structure.
fn check_writers(goldens: &mut Goldens, prefix: &str, report: &Report) {
    let json = writer::to_json(report);
    let junit = writer::to_junit(report);
    goldens.check(&format!("{prefix}.summary.txt"), &writer::summary(report));
    goldens.check(&format!("{prefix}.report.json"), &json);
    goldens.check(&format!("{prefix}.junit.xml"), &junit);
    goldens.check(
        &format!("{prefix}.report.html"),
        &writer::to_html(report, None),
    );
    goldens.check(
        &format!("{prefix}.summary.md"),
        &writer::to_markdown(report, None),
    );

    let value: Value = serde_json::from_str(&json).expect("the JSON report is JSON");
    if let Err(errors) = validate_report(&value) {
        panic!(
            "{prefix}: the JSON report breaks schemas/report/report.json:\n  {}",
            errors.join("\n  ")
        );
    }
    let back: Report = serde_json::from_str(&json).expect("the JSON report reads back");
    assert_eq!(
        &back, report,
        "{prefix}: the JSON report does not round-trip"
    );
    check_junit(prefix, &junit, report);
}

// ---------------------------------------------------------------------------------------------
// The normaliser

/// Mask what differs run to run, keeping the layout: times become `<ms>` or `<s>`, the rest a
/// placeholder naming what it hides.
fn normalise(text: &str) -> String {
    let text = mask_numbers_after(text, "\"duration_ms\": ", "\"<ms>\"");
    let text = mask_numbers_after(&text, "\"t_ms\": ", "\"<ms>\"");
    let text = mask_numbers_after(&text, " time=\"", "<s>");
    let text = mask_numbers_after(&text, " scenarios in ", "<s>");
    let text = mask_numbers_after(&text, " agent runs, in ", "<s>");
    let text = mask_numbers_after(&text, "<span class=\"t\">", "<ms>");
    let text = text
        .lines()
        .map(mask_transcript_time)
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" };
    let mut text = text;
    for key in [
        "event_id",
        "run_id",
        "thread_id",
        "connection_id",
        "tool_call_id",
    ] {
        text = mask_json_string(&text, key);
    }
    mask_tokens(&text)
}

/// Replace the number that follows each `marker` with `placeholder`.
fn mask_numbers_after(text: &str, marker: &str, placeholder: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        let after = &rest[i + marker.len()..];
        let len = number_len(after);
        out.push_str(&rest[..i + marker.len()]);
        if len > 0 {
            out.push_str(placeholder);
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The length of the decimal number (`-`, digits, `.`, exponent) at the start of `s`.
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return 0;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        digits(&mut i);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if digits(&mut j) {
            i = j;
        }
    }
    i
}

/// A terminal transcript line, `    {t_ms:>9.1} ms -> {frame}`, with its time masked.
fn mask_transcript_time(line: &str) -> String {
    let trimmed = line.trim_start();
    let len = number_len(trimmed);
    let tail = &trimmed[len..];
    if len > 0 && (tail.starts_with(" ms -> ") || tail.starts_with(" ms <- ")) {
        format!("    {:>9}{tail}", "<ms>")
    } else {
        line.to_owned()
    }
}

/// Replace the string value of `key` wherever it appears as a JSON member, plain
/// (`"key":"v"`, `"key": "v"`) or escaped inside a JSON string (`\"key\":\"v\"`), with `<key>`.
fn mask_json_string(text: &str, key: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let quoted = format!("\"{key}");
    while let Some(i) = rest.find(&quoted) {
        let start = i + quoted.len();
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        // `"` or `\"`, then `:`, spaces, then `"` or `\"`: the value runs to the next quote.
        let head: String = rest
            .chars()
            .take_while(|c| matches!(c, '"' | '\\' | ':' | ' '))
            .collect();
        let opens = head.contains(':') && head.ends_with('"') && head.starts_with(['"', '\\']);
        if !opens {
            continue;
        }
        let value = &rest[head.len()..];
        let end = value.find(['"', '\\']).unwrap_or(value.len());
        out.push_str(&head);
        out.push_str(&format!("<{key}>"));
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// Mask volatile tokens that start at a word boundary: timestamps, ports, the run's user-id
/// prefix, the reference's `<kind>-<instance>-<n>` ids, fractional `Duration`s, JWTs.
fn mask_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut boundary = true;
    while i < text.len() {
        let rest = &text[i..];
        // A token ending in a letter or digit must end a word: `1.5s` but not `1.5sec`.
        if boundary
            && let Some((len, replacement)) = volatile_token(rest)
            && !(rest[..len].ends_with(|c: char| c.is_ascii_alphanumeric())
                && rest[len..].starts_with(|c: char| c.is_ascii_alphanumeric()))
        {
            out.push_str(&replacement);
            i += len;
            boundary = !replacement.ends_with(|c: char| c.is_ascii_alphanumeric());
            continue;
        }
        let c = rest.chars().next().expect("not at the end");
        out.push(c);
        i += c.len_utf8();
        boundary = !(c.is_ascii_alphanumeric() || c == '_');
    }
    out
}

fn volatile_token(s: &str) -> Option<(usize, String)> {
    timestamp(s)
        .map(|len| (len, "<timestamp>".to_owned()))
        .or_else(|| port(s))
        .or_else(|| run_tag(s))
        .or_else(|| reference_id(s))
        .or_else(|| fractional_duration(s))
        .or_else(|| jwt(s))
}

/// Matches a pattern where `d` is a digit, `h` a hex digit, `x` any alphanumeric, and any other
/// character itself; returns the length matched.
fn shape(s: &str, pattern: &str) -> Option<usize> {
    let b = s.as_bytes();
    for (i, p) in pattern.bytes().enumerate() {
        let c = *b.get(i)?;
        let ok = match p {
            b'd' => c.is_ascii_digit(),
            b'h' => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
            p => c == p,
        };
        if !ok {
            return None;
        }
    }
    Some(pattern.len())
}

fn digits_len(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// RFC 3339: `2026-01-02T03:04:05.678Z` or with an offset.
fn timestamp(s: &str) -> Option<usize> {
    let mut len = shape(s, "dddd-dd-ddTdd:dd:dd")?;
    if s[len..].starts_with('.') && digits_len(&s[len + 1..]) > 0 {
        len += 1 + digits_len(&s[len + 1..]);
    }
    if s[len..].starts_with('Z') {
        Some(len + 1)
    } else {
        shape(&s[len..], "+dd:dd")
            .or_else(|| shape(&s[len..], "-dd:dd"))
            .map(|n| len + n)
    }
}

fn port(s: &str) -> Option<(usize, String)> {
    for host in ["127.0.0.1:", "localhost:", "[::1]:"] {
        if let Some(after) = s.strip_prefix(host) {
            let n = digits_len(after);
            if n > 0 {
                return Some((host.len() + n, format!("{host}<port>")));
            }
        }
    }
    None
}

/// `gp1a2b3c-` and, after it, `s12-`: the prefix every user id of one run carries.
fn run_tag(s: &str) -> Option<(usize, String)> {
    let mut len = shape(s, "gphhhhhh-")?;
    let mut replacement = "gp<run>-".to_owned();
    if let Some(after) = s[len..].strip_prefix('s') {
        let n = digits_len(after);
        if n > 0 && after[n..].starts_with('-') {
            len += 1 + n + 1;
            replacement.push_str("s<n>-");
        }
    }
    Some((len, replacement))
}

/// The reference router's ids: `<kind>-<8 hex>-<n>`, e.g. `r-1a2b3c4d-17`.
fn reference_id(s: &str) -> Option<(usize, String)> {
    let kind = s.bytes().take_while(u8::is_ascii_lowercase).count();
    if kind == 0 || kind > 8 {
        return None;
    }
    let len = shape(&s[kind..], "-hhhhhhhh-")?;
    let n = digits_len(&s[kind + len..]);
    (n > 0).then(|| (kind + len + n, format!("{}-<id>", &s[..kind])))
}

/// A `Duration`'s `Debug` with a fraction, e.g. `4.998123s` or `612.4ms` (whole ones, such as a
/// configured `5s`, are stable and kept).
fn fractional_duration(s: &str) -> Option<(usize, String)> {
    let whole = digits_len(s);
    if whole == 0 || !s[whole..].starts_with('.') {
        return None;
    }
    let fraction = digits_len(&s[whole + 1..]);
    if fraction == 0 {
        return None;
    }
    let len = whole + 1 + fraction;
    ["ns", "µs", "ms", "s"]
        .iter()
        .find(|unit| s[len..].starts_with(**unit))
        .map(|unit| (len + unit.len(), "<duration>".to_owned()))
}

fn jwt(s: &str) -> Option<(usize, String)> {
    if !s.starts_with("eyJ") {
        return None;
    }
    let len = s
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        .count();
    (s[..len].matches('.').count() == 2).then(|| (len, "<jwt>".to_owned()))
}

#[test]
fn the_normaliser_masks_every_volatile_field() {
    let raw = concat!(
        "{\n  \"duration_ms\": 1173.289544,\n  \"t_ms\": 0.5,\n",
        "  \"frame\": \"{\\\"event_id\\\":\\\"e-1a2b3c4d-1\\\",\\\"timestamp\\\":\\\"2026-01-02T03:04:05.678Z\\\",",
        "\\\"run_id\\\":\\\"run-42\\\",\\\"user_id\\\":\\\"gp1a2b3c-s12-alice\\\"}\",\n",
        "  \"thread_id\": \"t-x\"\n}\n",
        "<testsuites time=\"1.173\"> ws://127.0.0.1:41234/ws at 2026-01-02T03:04:05+01:00\n",
        "      12.3 ms -> <close 1000>\n",
        "alice#1 waited 4.998123s, the budget is 1s; call-0badcafe-7; token eyJhbGc.eyJzdWI.c2ln\n",
        "probe gp1a2b3c-probe; 5 scenarios in 1.2 s; thread_id and run_id stay words\n",
    );
    let expected = concat!(
        "{\n  \"duration_ms\": \"<ms>\",\n  \"t_ms\": \"<ms>\",\n",
        "  \"frame\": \"{\\\"event_id\\\":\\\"<event_id>\\\",\\\"timestamp\\\":\\\"<timestamp>\\\",",
        "\\\"run_id\\\":\\\"<run_id>\\\",\\\"user_id\\\":\\\"gp<run>-s<n>-alice\\\"}\",\n",
        "  \"thread_id\": \"<thread_id>\"\n}\n",
        "<testsuites time=\"<s>\"> ws://127.0.0.1:<port>/ws at <timestamp>\n",
        "         <ms> ms -> <close 1000>\n",
        "alice#1 waited <duration>, the budget is 1s; call-<id>; token <jwt>\n",
        "probe gp<run>-probe; 5 scenarios in <s> s; thread_id and run_id stay words\n",
    );
    assert_eq!(normalise(raw), expected);
    assert_eq!(normalise(expected), expected, "normalising is idempotent");
}

// ---------------------------------------------------------------------------------------------
// The JSON schema

fn report_schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/report/report.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// Every violation of the report schema, with the instance path.
fn validate_report(instance: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&report_schema())
        .expect("schemas/report/report.json compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Properties and definitions without a description, below `node` at `at`.
fn undocumented(node: &Value, at: &str, out: &mut Vec<String>) {
    let Some(object) = node.as_object() else {
        return;
    };
    for (keyword, value) in object {
        let here = format!("{at}/{keyword}");
        match keyword.as_str() {
            "properties" | "$defs" => {
                for (name, sub) in value.as_object().into_iter().flatten() {
                    if sub["description"].as_str().is_none_or(str::is_empty) {
                        out.push(format!("{here}/{name}"));
                    }
                    undocumented(sub, &format!("{here}/{name}"), out);
                }
            }
            "items" | "additionalProperties" => undocumented(value, &here, out),
            _ => {}
        }
    }
}

#[test]
fn the_report_schema_is_a_documented_2020_12_schema() {
    let schema = report_schema();
    if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
        panic!(
            "breaks the 2020-12 meta-schema: {e} at {}",
            e.instance_path()
        );
    }
    assert_eq!(schema["$id"], "urn:goldenpath:v1:report");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["title"].is_string() && schema["description"].is_string());
    assert_eq!(
        schema["properties"]["format"]["const"],
        goldenpath::report::REPORT_FORMAT
    );
    let verdicts: Vec<&str> = [
        Verdict::Pass,
        Verdict::PassNonstrict,
        Verdict::Skip,
        Verdict::Fail,
        Verdict::Error,
    ]
    .iter()
    .map(|v| v.as_str())
    .collect();
    assert_eq!(schema["$defs"]["verdict"]["enum"], json!(verdicts));
    let mut missing = Vec::new();
    undocumented(&schema, "", &mut missing);
    assert!(missing.is_empty(), "no description: {missing:?}");
}

#[test]
fn the_report_schema_refuses_what_the_writer_never_writes() {
    let good: Value = serde_json::from_str(&writer::to_json(&constructed())).unwrap();
    assert_eq!(validate_report(&good), Ok(()));
    type Edit = fn(&mut Value);
    let broken: [(&str, Edit); 6] = [
        ("an unknown verdict", |r| {
            r["requirements"][0]["verdict"] = json!("warn")
        }),
        ("another format", |r| {
            r["format"] = json!("goldenpath-report/2")
        }),
        ("an unknown field", |r| {
            r["scenarios"][0]["extra"] = json!(1)
        }),
        ("a missing total", |r| {
            r["totals"].as_object_mut().unwrap().remove("error");
        }),
        ("a negative duration", |r| r["duration_ms"] = json!(-1.0)),
        ("a bad requirement id", |r| {
            r["requirements"][0]["id"] = json!("ISO-2")
        }),
    ];
    for (what, edit) in broken {
        let mut report = good.clone();
        edit(&mut report);
        assert!(
            validate_report(&report).is_err(),
            "the schema accepts {what}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// JUnit, parsed by hand

/// One piece of an XML text.
#[derive(Debug)]
enum Xml {
    Open {
        name: String,
        attributes: Vec<(String, String)>,
        empty: bool,
    },
    Close(String),
    Text(String),
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(';')
            .ok_or_else(|| format!("unterminated entity in {text:?}"))?;
        out.push(match &rest[i..i + end + 1] {
            "&amp;" => '&',
            "&lt;" => '<',
            "&gt;" => '>',
            "&quot;" => '"',
            "&apos;" => '\'',
            other => return Err(format!("unknown entity {other}")),
        });
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Split an XML document (after its declaration) into tags and text, checking what this test
/// relies on: tags nest, attribute values are quoted, entities are known.
fn parse_xml(xml: &str) -> Result<Vec<Xml>, String> {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .ok_or("no XML declaration")?;
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            out.push(Xml::Text(unescape(rest)?));
            break;
        };
        if lt > 0 {
            out.push(Xml::Text(unescape(&rest[..lt])?));
        }
        let gt = rest[lt..].find('>').ok_or("unterminated tag")? + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => out.push(Xml::Close(name.to_owned())),
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let (tag, empty) = match tag.strip_suffix('/') {
            Some(t) => (t, true),
            None => (tag, false),
        };
        let name_len = tag.find(' ').unwrap_or(tag.len());
        let name = tag[..name_len].to_owned();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("bad tag name in <{tag}>"));
        }
        let mut attributes = Vec::new();
        let mut attrs = tag[name_len..].trim_start();
        while !attrs.is_empty() {
            let eq = attrs
                .find("=\"")
                .ok_or_else(|| format!("bad attribute in <{tag}>"))?;
            let key = attrs[..eq].to_owned();
            let value_end = attrs[eq + 2..]
                .find('"')
                .ok_or_else(|| format!("unquoted attribute in <{tag}>"))?;
            let value = unescape(&attrs[eq + 2..eq + 2 + value_end])?;
            attributes.push((key, value));
            attrs = attrs[eq + 2 + value_end + 1..].trim_start();
        }
        if !empty {
            stack.push(name.clone());
        }
        out.push(Xml::Open {
            name,
            attributes,
            empty,
        });
    }
    if !stack.is_empty() {
        return Err(format!("unclosed: {stack:?}"));
    }
    Ok(out)
}

fn attribute<'a>(attributes: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The JUnit file is well-formed, has one testcase per scenario (in the report's order within
/// each feature) with its requirement ids as properties, the outcome its verdict implies with
/// the findings' requirement ids in its text, and counts that add up.
fn check_junit(prefix: &str, junit: &str, report: &Report) {
    let xml = parse_xml(junit).unwrap_or_else(|e| panic!("{prefix}.junit.xml: {e}"));
    struct Case {
        suite: String,
        name: String,
        requirements: Vec<String>,
        outcome: Option<String>,
        text: String,
    }
    let mut cases: Vec<Case> = Vec::new();
    let mut suite = String::new();
    let mut declared_failures = None;
    let mut path: Vec<&str> = Vec::new();
    for piece in &xml {
        let (name, attributes, empty) = match piece {
            Xml::Open {
                name,
                attributes,
                empty,
            } => (name, attributes, *empty),
            Xml::Close(name) => {
                assert_eq!(path.pop(), Some(name.as_str()), "{prefix}: nesting");
                continue;
            }
            Xml::Text(text) => {
                if let Some(case) = cases.last_mut()
                    && path.last().is_some_and(|p| *p != "testcase")
                {
                    case.text.push_str(text);
                }
                continue;
            }
        };
        let parent = path.join("/");
        let attr = |key: &str| attribute(attributes, key).unwrap_or_default().to_owned();
        match name.as_str() {
            "testsuites" => declared_failures = Some(attr("failures")),
            "testsuite" => suite = attr("name"),
            "testcase" => {
                assert_eq!(attr("classname"), format!("goldenpath.{suite}"));
                cases.push(Case {
                    suite: suite.clone(),
                    name: attr("name"),
                    requirements: Vec::new(),
                    outcome: None,
                    text: String::new(),
                });
            }
            "property" if attr("name") == "requirement" => {
                assert!(empty, "{prefix}: <property> has content");
                assert_eq!(parent, "testsuites/testsuite/testcase/properties");
                let case = cases.last_mut().expect("a property inside a testcase");
                case.requirements.push(attr("value"));
            }
            "failure" | "error" | "skipped" => {
                assert_eq!(
                    parent, "testsuites/testsuite/testcase",
                    "{prefix}: <{name}>"
                );
                let case = cases.last_mut().expect("an outcome inside a testcase");
                assert!(case.outcome.is_none(), "{prefix}: two outcomes");
                case.outcome = Some(name.clone());
            }
            _ => {}
        }
        if !empty {
            path.push(name);
        }
    }
    assert_eq!(
        cases.len(),
        report.scenarios.len(),
        "{prefix}: one testcase per scenario"
    );
    let mut scenarios: Vec<&ScenarioResult> = report.scenarios.iter().collect();
    scenarios.sort_by(|a, b| a.feature.cmp(&b.feature));
    for (case, s) in cases.iter().zip(&scenarios) {
        assert_eq!((&case.suite, &case.name), (&s.feature, &s.name), "{prefix}");
        assert_eq!(case.requirements, s.requirements, "{prefix}: {}", s.name);
        let expected = match s.verdict {
            Verdict::Skip => Some("skipped"),
            Verdict::Error => Some("error"),
            // A scenario that only missed SHOULDs fails only a strict run.
            Verdict::Fail
                if !s.findings.is_empty()
                    && s.findings.iter().all(|f| {
                        report
                            .requirements
                            .iter()
                            .any(|r| r.id == f.requirement && r.verdict == Verdict::PassNonstrict)
                    }) =>
            {
                None
            }
            Verdict::Fail => Some("failure"),
            Verdict::Pass | Verdict::PassNonstrict => None,
        };
        assert_eq!(case.outcome.as_deref(), expected, "{prefix}: {}", s.name);
        for f in &s.findings {
            assert!(
                case.text.contains(&format!("[{}]", f.requirement)),
                "{prefix}: {}: the JUnit text does not name {}",
                s.name,
                f.requirement
            );
        }
    }
    let failures = cases
        .iter()
        .filter(|c| c.outcome.as_deref() == Some("failure"))
        .count();
    assert_eq!(
        declared_failures,
        Some(failures.to_string()),
        "{prefix}: <testsuites failures>"
    );
}

// ---------------------------------------------------------------------------------------------
// (a) A real run

#[tokio::test]
async fn a_real_run_renders_stably() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = Options {
        selection: Selection {
            tags: None,
            tags_text: None,
            only: vec!["GP-HB".into(), "GP-CONN-003".into()],
        },
        ..Options::default()
    };
    let report = goldenpath::check(options, None)
        .await
        .expect("the embedded reference router can be checked");
    let mut goldens = Goldens::default();
    check_writers(&mut goldens, "real", &report);
    goldens.finish();
}

// ---------------------------------------------------------------------------------------------
// (b) A constructed report

fn step(keyword: &str, text: &str, verdict: Verdict, message: Option<&str>) -> StepResult {
    StepResult {
        keyword: keyword.to_owned(),
        text: text.to_owned(),
        verdict,
        message: message.map(str::to_owned),
    }
}

fn passed(keyword: &str, text: &str) -> StepResult {
    step(keyword, text, Verdict::Pass, None)
}

fn frame(direction: Direction, t_ms: f64, frame: impl Into<String>) -> Frame {
    Frame {
        direction,
        t_ms,
        frame: frame.into(),
    }
}

/// A server frame as the reference router sends it (its members in the router's order, which
/// `json!` would sort); `seq` makes it a frame of the one run.
fn server(kind: &str, n: u32, user: &str, seq: Option<u32>, payload: Value) -> String {
    let run = seq.map_or(String::new(), |seq| {
        format!(
            r#","user_id":"{user}","thread_id":"t-1a2b3c4d-2","run_id":"r-1a2b3c4d-3","seq":{seq}"#
        )
    });
    format!(
        r#"{{"type":"{kind}","event_id":"e-1a2b3c4d-{n}","timestamp":"2026-03-04T05:06:07.{n:03}Z"{run},"payload":{payload}}}"#
    )
}

fn scenario(feature: &str, name: &str, tags: &[&str], verdict: Verdict) -> ScenarioResult {
    let tags: Vec<String> = std::iter::once(feature)
        .chain(tags.iter().copied())
        .map(str::to_owned)
        .collect();
    ScenarioResult {
        feature: feature.to_owned(),
        name: name.to_owned(),
        requirements: tags
            .iter()
            .filter(|t| t.starts_with("GP-"))
            .cloned()
            .collect(),
        tags,
        verdict,
        skip_reason: None,
        // A hand-made scenario that passed or failed ran all its (absent) steps.
        ran_through: matches!(verdict, Verdict::Pass | Verdict::Fail),
        duration_ms: 0.0,
        steps: Vec::new(),
        findings: Vec::new(),
        transcripts: Vec::new(),
        leak_matrix: None,
    }
}

/// A report with every kind of outcome and all the evidence a failure can carry. The scenarios
/// are given out of order: the report sorts them.
fn constructed() -> Report {
    let alice = "gp1a2b3c-s7-alice";
    let bob = "gp1a2b3c-s7-bob";
    let leak_message = format!(
        "[GP-ISO-002] 2 frame(s) reached another user: bob#1 received a frame owned by \"{alice}\": \"agent_started\"; bob#1 received a frame owned by \"{alice}\": \"agent_completed\""
    );

    // A failed MUST: a leak, with its matrix, and a wire finding on a requirement the scenario
    // is not tagged with.
    let mut leak = scenario(
        "isolation",
        "Another user receives no frame of alice's run",
        &["GP-ISO-002"],
        Verdict::Fail,
    );
    leak.duration_ms = 153.25;
    leak.steps = vec![
        passed("Given ", "alice and bob are connected"),
        passed("When ", "alice sends a user message"),
        step(
            "Then ",
            "bob receives no frame of alice's run",
            Verdict::Fail,
            Some(&leak_message),
        ),
    ];
    leak.findings = vec![
        Finding {
            requirement: "GP-WIRE-004".into(),
            expected: "a fresh event_id".into(),
            got: "event_id \"e-1a2b3c4d-5\" again".into(),
            connection: Some("bob#1".into()),
            frame_index: Some(3),
            leak: None,
        },
        Finding {
            requirement: "GP-ISO-002".into(),
            expected: "the step to hold".into(),
            got: leak_message.clone(),
            connection: None,
            frame_index: None,
            leak: None,
        },
    ];
    let greeting = |n: u32, user: &str, connection: &str| {
        server(
            "connection_established",
            n,
            user,
            None,
            json!({"connection_id": connection, "user_id": user, "spec_version": "1",
                   "max_frame_bytes": 65536, "capabilities": ["directives"],
                   "heartbeat_interval_ms": 30000}),
        )
    };
    let started = server(
        "agent_started",
        4,
        alice,
        Some(1),
        json!({"agent_name": "goldenpath-scripted", "request_id": "m-1"}),
    );
    let completed = server(
        "agent_completed",
        5,
        alice,
        Some(7),
        json!({"result": {"text": format!("Done: 2 tool call(s), 0 failed. {}", "A long result & more. ".repeat(8))}, "tool_calls": 2}),
    );
    leak.transcripts = vec![
        Transcript {
            omitted: 0,
            omitted_after: 0,
            connection: "alice#1".into(),
            user: alice.into(),
            frames: vec![
                frame(Direction::Received, 1.5, greeting(1, alice, "c-1a2b3c4d-1")),
                frame(
                    Direction::Sent,
                    10.0,
                    json!({"type": "user_message", "id": "m-1", "payload": {"content": "hello [tools=2]"}}).to_string(),
                ),
                frame(Direction::Received, 12.25, started.clone()),
                frame(
                    Direction::Received,
                    13.0,
                    server("agent_thinking", 6, alice, Some(2), json!({"text": "Step 1 of 1: working on the request.", "step": 1})),
                ),
                frame(
                    Direction::Received,
                    14.0,
                    server("tool_executing", 7, alice, Some(3), json!({"tool_call_id": "call-1a2b3c4d-8", "tool_name": "word_count", "parameters": {"text": "hello"}})),
                ),
                frame(
                    Direction::Received,
                    15.0,
                    server("tool_completed", 9, alice, Some(4), json!({"tool_call_id": "call-1a2b3c4d-8", "tool_name": "word_count", "status": "ok", "result": {"words": 1}})),
                ),
                frame(
                    Direction::Received,
                    16.0,
                    server("tool_executing", 10, alice, Some(5), json!({"tool_call_id": "call-1a2b3c4d-11", "tool_name": "word_count", "parameters": {"text": "hello"}})),
                ),
                frame(
                    Direction::Received,
                    17.0,
                    server("tool_completed", 12, alice, Some(6), json!({"tool_call_id": "call-1a2b3c4d-11", "tool_name": "word_count", "status": "ok", "result": {"words": 1}})),
                ),
                frame(Direction::Received, 18.5, completed.clone()),
                frame(Direction::Sent, 20.0, "<close 1000>"),
                frame(Direction::Received, 21.0, "<close 1000>"),
            ],
        },
        Transcript {
            omitted: 0,
            omitted_after: 0,
            connection: "bob#1".into(),
            user: bob.into(),
            frames: vec![
                frame(Direction::Received, 1.25, greeting(2, bob, "c-1a2b3c4d-2")),
                frame(Direction::Received, 12.5, started),
                frame(Direction::Received, 18.75, completed.clone()),
                frame(Direction::Received, 18.75, completed),
            ],
        },
    ];
    leak.leak_matrix = Some(LeakMatrix {
        users: vec!["alice".into(), "bob".into(), "unknown".into()],
        counts: vec![vec![7, 2, 0], vec![0, 0, 0], vec![0, 0, 0]],
    });

    // A pass of a requirement the failed scenario also checks (and one of its own).
    let mut tabs = scenario(
        "isolation",
        "Every tab of the sender receives the whole run",
        &["GP-ISO-001", "GP-ISO-002"],
        Verdict::Pass,
    );
    tabs.duration_ms = 88.0;
    tabs.steps = vec![
        passed("Given ", "alice is connected with 2 connections"),
        passed("When ", "alice sends a user message"),
        passed(
            "Then ",
            "each of alice's connections receives the whole run",
        ),
    ];

    // A missed SHOULD: a failed scenario whose only finding is a SHOULD.
    let pong_message = "[GP-HB-004] the pong arrived after 1.204518s; the pong budget is 1s";
    let mut slow = scenario(
        "heartbeat",
        "A pong arrives within the pong budget",
        &["GP-HB-004"],
        Verdict::Fail,
    );
    slow.duration_ms = 1210.5;
    slow.steps = vec![
        passed("Given ", "alice is connected"),
        passed("When ", "alice sends a ping with id \"p-4\""),
        step(
            "Then ",
            "the pong arrives within the pong budget",
            Verdict::Fail,
            Some(pong_message),
        ),
    ];
    slow.findings = vec![Finding {
        requirement: "GP-HB-004".into(),
        expected: "the step to hold".into(),
        got: pong_message.into(),
        connection: None,
        frame_index: None,
        leak: None,
    }];
    slow.transcripts = vec![Transcript {
        omitted: 0,
        omitted_after: 0,
        connection: "alice#1".into(),
        user: alice.into(),
        frames: vec![
            frame(Direction::Received, 1.0, greeting(1, alice, "c-1a2b3c4d-9")),
            frame(
                Direction::Sent,
                2.0,
                json!({"type": "ping", "id": "p-4"}).to_string(),
            ),
            frame(
                Direction::Received,
                1206.5,
                server("pong", 3, alice, None, json!({"request_id": "p-4"})),
            ),
        ],
    }];

    // A skip, with its reason.
    let mut scripted = scenario(
        "sequence",
        "A scripted run has the shape its directive asks for",
        &["directives", "GP-SEQ-011"],
        Verdict::Skip,
    );
    scripted.skip_reason =
        Some("the server does not advertise the \"directives\" capability (@directives)".into());
    scripted.duration_ms = 2.0;
    scripted.steps = vec![
        passed("Given ", "alice is connected"),
        step(
            "When ",
            "alice sends \"go [tools=3 think=2]\"",
            Verdict::Skip,
            None,
        ),
        step(
            "Then ",
            "the run has 3 tool calls and 2 thinking steps",
            Verdict::Skip,
            None,
        ),
    ];

    // An error: the network broke, so there is no verdict on the target.
    let mut broke = scenario(
        "connection",
        "A client close is answered with a close frame",
        &["GP-CONN-005"],
        Verdict::Error,
    );
    broke.duration_ms = 5003.0;
    broke.steps = vec![
        passed("Given ", "alice is connected"),
        passed("When ", "alice closes her connection"),
        step(
            "Then ",
            "alice's close is answered with a close frame",
            Verdict::Error,
            Some(
                "[suite error] ws://127.0.0.1:41234/ws: nothing arrived on alice#1 within 4.999873s\n(the target stopped answering)",
            ),
        ),
    ];
    broke.transcripts = vec![Transcript {
        omitted: 0,
        omitted_after: 0,
        connection: "alice#1".into(),
        user: alice.into(),
        frames: vec![
            frame(
                Direction::Received,
                0.75,
                greeting(1, alice, "c-1a2b3c4d-4"),
            ),
            frame(Direction::Sent, 3.0, "<close 1000>"),
        ],
    }];

    // Passes, two of them rows of one outline (same name: they keep their given order).
    let mut not_json = scenario(
        "routing",
        "A text frame that is not JSON is answered with invalid_json",
        &["GP-ROUTE-002"],
        Verdict::Pass,
    );
    not_json.duration_ms = 20.0;
    not_json.steps = vec![
        passed("Given ", "alice is connected"),
        passed("When ", "alice sends the text frame \"{not json\""),
        passed(
            "Then ",
            "alice receives an error with code \"invalid_json\"",
        ),
    ];
    let row = |value: &str| {
        let mut s = scenario(
            "routing",
            "JSON that is not an object is answered with not_an_object",
            &["GP-ROUTE-003"],
            Verdict::Pass,
        );
        s.duration_ms = 19.5;
        s.steps = vec![
            passed("Given ", "alice is connected"),
            passed("When ", &format!("alice sends the text frame \"{value}\"")),
            passed(
                "Then ",
                "alice receives an error with code \"not_an_object\"",
            ),
        ];
        s
    };

    Report::build(
        "ws://127.0.0.1:41234/ws".into(),
        false,
        6543.21,
        vec![
            row("[1, 2]"),
            broke,
            tabs,
            scripted,
            slow,
            row("null"),
            not_json,
            leak,
        ],
    )
}

#[test]
fn a_constructed_report_shows_its_evidence() {
    let report = constructed();
    let verdict = |id: &str| {
        report
            .requirements
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.verdict)
    };
    // The cases this report exists to show.
    assert_eq!(verdict("GP-ISO-002"), Some(Verdict::Fail));
    assert_eq!(verdict("GP-WIRE-004"), Some(Verdict::Fail));
    assert_eq!(verdict("GP-HB-004"), Some(Verdict::PassNonstrict));
    assert_eq!(verdict("GP-SEQ-011"), Some(Verdict::Skip));
    assert_eq!(verdict("GP-CONN-005"), Some(Verdict::Error));
    assert_eq!(verdict("GP-ISO-001"), Some(Verdict::Pass));
    // A scenario both tagged with a requirement and finding it broken is listed once.
    let iso = &report.requirements.iter().find(|r| r.id == "GP-ISO-002");
    assert_eq!(
        iso.map(|r| r.scenarios.clone()),
        Some(vec![
            "isolation:Another user receives no frame of alice's run".to_owned(),
            "isolation:Every tab of the sender receives the whole run".to_owned(),
        ])
    );

    let mut goldens = Goldens::default();
    check_writers(&mut goldens, "constructed", &report);
    goldens.finish();
}

/// A capture of the netra legacy backend (`suite/dialects/README.md`): greeting, a run in its three
/// envelopes, a flat error and an idle heartbeat.
fn legacy_capture() -> String {
    let user = "0123abcd-gp1a2b3c-s7-alice";
    let received = |t_ms: f64, frame: Value| {
        json!({"direction": "received", "t_ms": t_ms, "frame": frame}).to_string()
    };
    let run = |kind: &str| {
        json!({"type": kind, "run_id": "run_1", "user_id": user, "thread_id": "thread_1",
               "agent_name": "supervisor_agent", "timestamp": "2026-11-23T10:00:00.5+00:00"})
    };
    let mut started = run("agent_started");
    started["data"] = json!({"status": "started"});
    let mut thinking = run("agent_thinking");
    thinking["timestamp"] = json!(1795428000.6);
    thinking["reasoning"] = json!("Looking for what the user asks.");
    thinking["step_number"] = json!(1);
    let mut executing = run("tool_executing");
    executing["tool_name"] = json!("knowledge_search");
    executing["data"] = json!({"parameters": {"query": "hello"}});
    let mut completed = run("tool_completed");
    completed["user_id"] = Value::Null;
    for (k, v) in [
        ("tool_name", json!("knowledge_search")),
        ("execution_id", json!("exec_1")),
        ("results", json!({"matches": 1})),
        ("success", json!(true)),
        ("timestamp", json!(1795428000.7)),
    ] {
        completed[k] = v;
    }
    let lines = [
        json!({"capture": "goldenpath/1", "connection": "alice#1", "user": user,
               "feature": "legacy", "scenario": "A legacy run"})
        .to_string(),
        received(
            2.0,
            json!({"type": "connection_established", "timestamp": 1795428000.25,
                   "data": {"connection_id": "main_0a1b2c3d", "user_id": "0123abcd...",
                            "mode": "isolated"}, "server_id": null, "correlation_id": null}),
        ),
        json!({"direction": "sent", "t_ms": 3.0,
               "frame": {"type": "user_message", "payload": {"content": "hello"}}})
        .to_string(),
        received(4.0, started),
        received(5.0, thinking),
        received(6.0, executing),
        received(7.0, completed),
        received(
            8.0,
            json!({"type": "agent_completed", "run_id": "run_1", "agent_name": "supervisor_agent",
                   "timestamp": "2026-11-23T10:00:00.8Z",
                   "payload": {"status": "completed", "final_response": "Found 1 match."}}),
        ),
        received(
            9.0,
            json!({"type": "error_message", "error_code": "JSON_PARSE_ERROR",
                   "error_message": "invalid JSON", "details": {}, "timestamp": 1795428001.0}),
        ),
        received(
            40000.0,
            json!({"type": "heartbeat", "data": {"connection_id": "main_0a1b2c3d", "stats": {}},
                   "timestamp": 1795428040.0}),
        ),
    ];
    lines.join("\n") + "\n"
}

#[test]
fn a_report_through_a_dialect_marks_its_verdicts_and_shows_its_debt() {
    let dir = std::env::temp_dir().join(format!("gp-writers-dialect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("alice.jsonl");
    std::fs::write(&file, legacy_capture()).unwrap();
    let judge = |dialect: &str| {
        let options = goldenpath::ValidateOptions {
            captures: vec![file.clone()],
            strict: false,
            dialect: goldenpath::Dialect::load(dialect).unwrap(),
        };
        goldenpath::validate(&options).unwrap()
    };
    let raw = judge("canonical");
    let mut report = judge("netra-legacy");
    std::fs::remove_dir_all(&dir).unwrap();
    // Read raw, the legacy breaks the contract; through its dialect, what can be judged holds.
    assert!(!raw.conformant());
    assert!(raw.dialect.is_none());
    // Offline, only part of the spec is judged: PARTIAL, with nothing failed.
    assert_eq!(
        report.state,
        goldenpath::RunState::Partial,
        "{}",
        writer::summary(&report)
    );
    assert_eq!(report.totals.fail, 0, "{}", writer::summary(&report));
    for r in &report.requirements {
        match r.verdict {
            Verdict::Skip => assert!(r.reason.as_deref().unwrap().contains("netra-legacy lacks")),
            _ => assert_eq!(r.via.as_deref(), Some("netra-legacy"), "{}", r.id),
        }
    }
    let skipped: Vec<&str> = report.ids_with(Verdict::Skip);
    assert_eq!(skipped, ["GP-SEQ-003", "GP-SEQ-006", "GP-WIRE-004"]);
    let debt = report.dialect.clone().unwrap();
    assert_eq!(debt.debt, debt.rules.len() + debt.lacks.len());
    let rule = |name: &str| debt.rules.iter().find(|r| r.rule == name).map(|r| r.count);
    assert_eq!(rule("alias: type error_message → error"), Some(1));
    assert_eq!(rule("ignore: heartbeat"), Some(1));
    assert_eq!(
        rule("synthesize: seq (counted per run on each connection)"),
        Some(5)
    );
    report.target = "a legacy capture (offline)".into();
    let mut goldens = Goldens::default();
    check_writers(&mut goldens, "dialect", &report);
    goldens.finish();
}

#[test]
fn a_strict_run_fails_a_missed_should_everywhere() {
    let lenient = constructed();
    let strict = Report::build(
        lenient.target.clone(),
        true,
        lenient.duration_ms,
        lenient.scenarios.clone(),
    );
    assert_eq!((lenient.totals.pass_nonstrict, lenient.totals.fail), (1, 2));
    assert_eq!((strict.totals.pass_nonstrict, strict.totals.fail), (0, 3));
    let failures = |r: &Report| writer::to_junit(r).matches("<failure ").count();
    assert_eq!(failures(&strict), failures(&lenient) + 1);
    assert!(writer::summary(&lenient).contains("\nPASS-NONSTRICT heartbeat: A pong arrives"));
    assert!(writer::summary(&strict).contains("\nFAIL heartbeat: A pong arrives"));
    check_junit("strict", &writer::to_junit(&strict), &strict);
}

#[test]
fn a_report_does_not_depend_on_the_order_scenarios_finished_in() {
    let report = constructed();
    let mut reversed = report.scenarios.clone();
    reversed.reverse();
    // Rows of one outline share a name: only they keep the order they were given in.
    let rows = |s: &[ScenarioResult]| -> Vec<String> {
        s.iter()
            .filter(|s| s.name.starts_with("JSON that is not an object"))
            .map(|s| s.steps[1].text.clone())
            .collect()
    };
    let mut again = Report::build(report.target.clone(), false, report.duration_ms, reversed);
    assert_eq!(rows(&again.scenarios), {
        let mut r = rows(&report.scenarios);
        r.reverse();
        r
    });
    again.scenarios.retain(|s| !s.name.starts_with("JSON"));
    let mut expected = report.clone();
    expected.scenarios.retain(|s| !s.name.starts_with("JSON"));
    assert_eq!(again, expected);
}

// ---------------------------------------------------------------------------------------------
// The baseline comparison

#[test]
fn baseline_classes() {
    let now = constructed();
    // The previous run, as its JSON: the same report with other verdicts, and one requirement
    // that is not checked now.
    let mut prev: Value = serde_json::from_str(&writer::to_json(&now)).unwrap();
    let requirements = prev["requirements"].as_array_mut().unwrap();
    for r in requirements.iter_mut() {
        let verdict = match r["id"].as_str().unwrap() {
            "GP-ISO-002" => "fail",     // fail → fail: still failing
            "GP-CONN-005" => "error",   // error → error: still failing
            "GP-WIRE-004" => "pass",    // pass → fail: new failure
            "GP-ROUTE-002" => "fail",   // fail → pass: fixed
            "GP-HB-004" => "fail",      // fail → pass-nonstrict: fixed
            "GP-ISO-001" => "pass",     // pass → pass: unchanged
            "GP-SEQ-011" => "skip",     // skip → skip: unchanged
            "GP-ROUTE-003" => "remove", // absent → pass: unchanged
            other => panic!("unexpected requirement {other}"),
        };
        r["verdict"] = json!(verdict);
    }
    requirements.retain(|r| r["verdict"] != "remove");
    requirements.push(json!({
        "id": "GP-AUTH-001", "level": "MUST", "text": "gone", "family": "AUTH",
        "verdict": "fail", "scenarios": ["auth:A connection without a token is refused"],
    }));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("writers-baseline.json");
    std::fs::write(&path, serde_json::to_string_pretty(&prev).unwrap()).unwrap();
    let baseline = Baseline::read(&path).expect("a JSON report is a baseline");

    let mut text = String::new();
    for (id, class) in writer::compare(&now, &baseline) {
        let class = serde_json::to_value(class).unwrap();
        let _ = writeln!(text, "{id:<14} {}", class.as_str().unwrap());
    }
    let mut goldens = Goldens::default();
    goldens.check("constructed.baseline.txt", &text);
    goldens.finish();

    let mut garbage = path.clone();
    garbage.set_extension("txt");
    std::fs::write(&garbage, "not json").unwrap();
    let e = Baseline::read(&garbage).unwrap_err();
    assert!(
        e.to_string().contains("not a goldenpath JSON report"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// The diff of two reports (`goldenpath diff`, `check --baseline`)

#[test]
fn a_diff_names_every_transition_and_the_debt_delta() {
    let now = constructed();
    // The older report: the same with other verdicts, a requirement gone since, and a dialect.
    let mut prev: Value = serde_json::from_str(&writer::to_json(&now)).unwrap();
    let requirements = prev["requirements"].as_array_mut().unwrap();
    for r in requirements.iter_mut() {
        let verdict = match r["id"].as_str().unwrap() {
            "GP-ISO-002" => "fail",     // fail → fail: still failing
            "GP-CONN-005" => "pass",    // pass → error: new failure
            "GP-WIRE-004" => "pass",    // pass → fail: new failure
            "GP-ROUTE-002" => "fail",   // fail → pass: fixed
            "GP-HB-004" => "pass",      // pass → pass-nonstrict: SHOULD newly missed
            "GP-ISO-001" => "skip",     // skip → pass: gained
            "GP-SEQ-011" => "pass",     // pass → skip: lost
            "GP-ROUTE-003" => "remove", // absent → pass: new
            other => panic!("unexpected requirement {other}"),
        };
        r["verdict"] = json!(verdict);
    }
    requirements.retain(|r| r["verdict"] != "remove");
    requirements.push(json!({
        "id": "GP-AUTH-001", "level": "MUST", "text": "gone", "family": "AUTH",
        "verdict": "pass", "scenarios": ["auth:A connection without a token is refused"],
    }));
    prev["target"] = json!("ws://legacy.example/ws");
    prev["dialect"] = json!({
        "name": "netra-legacy", "origin": "built-in netra-legacy", "debt": 3,
        "rules": [{"rule": "ignore: heartbeat", "count": 2},
                  {"rule": "alias: type error_message → error", "count": 1}],
        "lacks": [{"capability": "seq", "requirements": ["GP-SEQ-006"], "reason": "no seq"}],
        "frames": 10, "native": 1,
    });
    let prev: Report = serde_json::from_value(prev).unwrap();
    let diff = writer::diff(&prev, &now);
    use goldenpath::writer::Transition as T;
    let expected = [
        ("GP-ISO-002", T::StillFailing),
        ("GP-CONN-005", T::NewFailure),
        ("GP-WIRE-004", T::NewFailure),
        ("GP-ROUTE-002", T::Fixed),
        ("GP-HB-004", T::ShouldMissed),
        ("GP-ISO-001", T::Gained),
        ("GP-SEQ-011", T::Lost),
        ("GP-ROUTE-003", T::New),
        ("GP-AUTH-001", T::Gone),
    ];
    for (id, t) in expected {
        assert_eq!(diff.change(id).map(|c| c.transition), Some(t), "{id}");
    }
    assert!(diff.regressed());
    assert_eq!((diff.debt.old_debt, diff.debt.new_debt), (3, 0));
    // Backwards, the losses are gains and nothing regressed but what failed before.
    let back = writer::diff(&now, &prev);
    assert_eq!(back.change("GP-SEQ-011").unwrap().transition, T::Gained);
    assert_eq!(back.change("GP-ISO-001").unwrap().transition, T::Lost);
    let mut goldens = Goldens::default();
    goldens.check("constructed.diff.txt", &diff.to_text());
    goldens.check("constructed.diff.md", &diff.to_markdown());
    goldens.finish();
}
