//! Offline judging: re-judge recorded captures against the schemas and the run's state machine,
//! with the checks a live `check` runs on every frame as it arrives ([`Judge`]).
//!
//! Each capture file (one connection, see [`capture`](crate::capture)) becomes one scenario of
//! the report, checking what can be decided from the frames alone: the wire requirements
//! (`GP-WIRE-*`) when the connection received a frame, and the run's requirements (`GP-SEQ-*`
//! but the run timeout) when it received a run frame. What needs a live server (auth, routing,
//! isolation, liveness) is not judged, and does not appear in the report.

use goldenpath_spec::MessageType;
use goldenpath_spec::machine::RunTracker;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Instant;

use crate::capture::{self, Capture, CaptureError, Kind};
use crate::judge::{Judge, Judged};
use crate::report::{Direction, Frame, Report, ScenarioResult, Transcript, Verdict};

/// What to judge offline, and how.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Capture files (`*.jsonl`), or directories holding them (searched recursively).
    pub captures: Vec<PathBuf>,
    /// SHOULD requirements count as failures.
    pub strict: bool,
    /// The dialect the captured frames are read through.
    pub dialect: crate::Dialect,
}

/// Why captures could not be judged (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// A capture could not be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// No capture was named.
    #[error("no capture to judge: name capture files or directories")]
    NothingToJudge,
}

/// The requirements decided from a connection's frames alone, without a live server: the wire
/// rules and the run's state machine, but the run timeout (which needs the clock of a live
/// wait) and the resume after a reconnect (which needs the reconnect: a capture that sent a
/// `resume` has the run's continuation judged as such, so it is not mistaken for a run of its
/// own, but what breaks only the resume is left to the live run).
pub fn judged_requirements() -> Vec<&'static str> {
    let machine = goldenpath_spec::machine::machine();
    let mut ids: Vec<&'static str> = crate::judge::wire_requirements().to_vec();
    ids.extend(
        machine
            .requirements()
            .into_iter()
            .filter(|id| *id != machine.unfinished_requirement())
            .filter(|id| *id != machine.resume_requirement()),
    );
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Judge recorded captures offline.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("gp-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let file = dir.join("alice.jsonl");
/// std::fs::write(&file, concat!(
///     r#"{"direction":"received","t_ms":1.0,"frame":"{\"type\":\"nope\"}"}"#, "\n",
/// ))?;
/// let options = goldenpath::ValidateOptions { captures: vec![file], ..Default::default() };
/// let report = goldenpath::validate(&options)?;
/// std::fs::remove_dir_all(&dir)?;
/// assert!(!report.conformant());
/// assert_eq!(report.ids_with(goldenpath::Verdict::Fail), ["GP-WIRE-003"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn validate(options: &ValidateOptions) -> Result<Report, ValidateError> {
    if options.captures.is_empty() {
        return Err(ValidateError::NothingToJudge);
    }
    let started = Instant::now();
    let captures = capture::read_all(&options.captures)?;
    let dialect = options.dialect.fresh();
    let scenarios: Vec<ScenarioResult> = captures
        .iter()
        .map(|c| judge_capture(c, &captures, &dialect))
        .collect();
    let names: Vec<String> = options
        .captures
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let target = format!(
        "{} capture file{} in {} (offline)",
        captures.len(),
        if captures.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    let mut report = Report::build(
        target,
        options.strict,
        started.elapsed().as_secs_f64() * 1000.0,
        scenarios,
    );
    report.through_dialect(&dialect);
    // Offline, only what frames alone decide is judged: never a certification.
    Ok(report.with_scope(crate::report::Scope {
        limited_to: Some("offline: the requirements a capture's frames alone decide".to_owned()),
        ..Default::default()
    }))
}

/// One capture, judged frame by frame, as one scenario.
fn judge_capture(capture: &Capture, all: &[Capture], dialect: &crate::Dialect) -> ScenarioResult {
    let label = &capture.header.connection;
    let mut judge = Judge::new(label, &capture.header.user, dialect, None);
    let mut received_any = false;
    let mut run_frame = false;
    for (at, line) in capture.lines.iter().enumerate() {
        if line.direction != Direction::Received {
            // A `resume` takes a run up that began on another connection: its frames here are
            // judged as the continuation of what that connection's capture received, as live.
            if let Some((run_id, last_seq)) = resume_of(&line.text()) {
                let tracker = received_before(capture, all, &run_id, last_seq);
                judge.resume(&run_id, last_seq, tracker.resumed());
            }
            continue;
        }
        match line.kind.unwrap_or(Kind::Text) {
            Kind::Text => {
                received_any = true;
                if let Judged::Object(frame) = judge.text(&line.text(), at) {
                    run_frame |= frame
                        .get("type")
                        .and_then(Value::as_str)
                        .and_then(MessageType::from_wire)
                        .is_some_and(MessageType::is_run_frame);
                }
            }
            Kind::Binary => {
                received_any = true;
                judge.binary(binary_len(&line.text()), at);
            }
            Kind::Close | Kind::Ping | Kind::Pong | Kind::Event => {}
        }
    }
    let requirements: Vec<String> = judged_requirements()
        .into_iter()
        .filter(|id| received_any && (id.starts_with("GP-WIRE-") || run_frame))
        .map(str::to_owned)
        .collect();
    let resume = goldenpath_spec::machine::machine().resume_requirement();
    let findings: Vec<_> = judge
        .findings()
        .iter()
        .filter(|f| f.requirement != resume)
        .cloned()
        .collect();
    let verdict = if !findings.is_empty() {
        Verdict::Fail
    } else if requirements.is_empty() {
        Verdict::Skip
    } else {
        Verdict::Pass
    };
    let transcripts = if verdict == Verdict::Fail {
        vec![Transcript {
            connection: label.clone(),
            user: capture.header.user.clone(),
            frames: capture
                .lines
                .iter()
                .map(|l| Frame {
                    direction: l.direction,
                    t_ms: l.t_ms,
                    frame: l.text(),
                })
                .collect(),
            omitted: 0,
            omitted_after: 0,
        }]
    } else {
        Vec::new()
    };
    let name = match &capture.header.scenario {
        Some(scenario) => format!("{scenario} [{label}]"),
        None => capture.path.display().to_string(),
    };
    ScenarioResult {
        feature: capture
            .header
            .feature
            .clone()
            .unwrap_or_else(|| "capture".to_owned()),
        name,
        requirements,
        tags: Vec::new(),
        verdict,
        skip_reason: (verdict == Verdict::Skip)
            .then(|| "the capture holds no received frame".to_owned()),
        // Every frame of the capture went through the judge.
        ran_through: verdict != Verdict::Skip,
        duration_ms: capture.lines.last().map_or(0.0, |l| l.t_ms),
        steps: Vec::new(),
        findings,
        transcripts,
        leak_matrix: None,
    }
}

/// The length in `<binary N bytes>`, or 0.
fn binary_len(description: &str) -> usize {
    description
        .trim_start_matches("<binary ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The run a client `resume` frame takes up and the last `seq` it names, if `text` is one.
fn resume_of(text: &str) -> Option<(Value, u64)> {
    let frame: Value = serde_json::from_str(text).ok()?;
    if frame.get("type").and_then(Value::as_str) != Some(MessageType::Resume.as_str()) {
        return None;
    }
    let payload = frame.get("payload")?;
    Some((
        payload.get("run_id")?.clone(),
        payload.get("last_seq")?.as_u64()?,
    ))
}

/// The run's state machine after the frames of `run_id` up to `last_seq` that another capture
/// of the same user received (the first that has any): where a resume carries on from.
fn received_before(
    capture: &Capture,
    all: &[Capture],
    run_id: &Value,
    last_seq: u64,
) -> RunTracker {
    let mut tracker = RunTracker::new();
    let frames_of = |c: &Capture| -> Vec<Value> {
        c.lines
            .iter()
            .filter(|l| l.direction == Direction::Received)
            .filter_map(|l| serde_json::from_str::<Value>(&l.text()).ok())
            .filter(|f| f.get("run_id") == Some(run_id))
            .collect()
    };
    let earlier = all
        .iter()
        .filter(|c| c.path != capture.path && c.header.user == capture.header.user)
        .map(frames_of)
        .find(|frames| !frames.is_empty())
        .unwrap_or_default();
    for frame in earlier
        .iter()
        .filter(|f| f["seq"].as_u64().is_some_and(|s| s <= last_seq))
    {
        tracker.observe(frame);
    }
    tracker
}
