//! Taking a run up after a reconnect: the `resume` message (schemas/README.md). The client
//! names the run and the `seq` of the last frame it received; the new connection's frames of
//! the run are judged on arrival as the continuation of those (`[resume]` of
//! `features/sequence.toml`, [`RunTracker::resumed`]), and the step below waits for them.
//!
//! These steps name no requirement: a failure fails the scenario's own (its tags), and the
//! machine's findings name the one `sequence.toml` gives.

use cucumber::{then, when};
use goldenpath_spec::limits::limits;
use goldenpath_spec::machine::RunTracker;
use serde_json::{Value, json};

use crate::target::Incoming;
use crate::world::{GoldenWorld, suite_error};

fn is_terminal(f: &Value) -> bool {
    matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"))
}

/// Where the resume takes the run up: the `last_seq` it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// The last frame of the run the user's latest closed connection received.
    LastReceived,
    /// The run's first frame (1): on a run longer than the replay window, frames after it are
    /// gone.
    First,
    /// None of it (0).
    Start,
}

impl Point {
    fn parse(text: &str) -> Point {
        match text {
            "after the last frame it received" => Point::LastReceived,
            "after its first frame" => Point::First,
            "from its start" => Point::Start,
            other => suite_error!("{other:?} is no <resume point> of the step vocabulary"),
        }
    }
}

#[when(
    regex = r"^(alice|bob|carol) reconnects and resumes the run (after the last frame it received|after its first frame|from its start)$"
)]
async fn reconnects_and_resumes(w: &mut GoldenWorld, user: String, point: String) {
    if w.when() {
        return;
    }
    let point = Point::parse(&point);
    let run_id = the_run_id(w, &user).await;
    // The frames of the run the client has: what its latest closed connection received, or,
    // when it had none, what the run's owner received.
    let seen: Vec<Value> = match latest_closed(w, &user) {
        Some(frames) => frames,
        None => {
            let owner = w.run_owner();
            w.conn(&owner, 0).received.clone()
        }
    }
    .into_iter()
    .filter(|f| f["run_id"] == run_id)
    .collect();
    let last_seq = match point {
        Point::LastReceived => match seen.iter().filter_map(|f| f["seq"].as_u64()).max() {
            Some(seq) => seq,
            None => suite_error!(
                "{user} has no closed connection that received a frame of run {run_id}: the scenario must close one mid-run first"
            ),
        },
        Point::First => {
            let frames = run_length(w, &seen);
            let window = limits().resume.window_frames;
            if frames <= window {
                suite_error!(
                    "the run has {frames} frames, not more than the replay window ({window}, window_frames of features/limits.toml): ask the directive for more"
                );
            }
            1
        }
        Point::Start => 0,
    };
    if point == Point::LastReceived && seen.iter().any(is_terminal) {
        // The closing handshake took so long that the whole run arrived first (how fast a close
        // goes is the connection family's business): nothing is left to take up.
        return w.skip(format!(
            "run {run_id} ended on {user}'s closed connection before it closed: nothing to resume"
        ));
    }
    let mut tracker = RunTracker::new();
    for f in seen
        .iter()
        .filter(|f| f["seq"].as_u64().is_some_and(|s| s <= last_seq))
    {
        tracker.observe(f);
    }
    w.connect(&user).await;
    let id = w.next_id("resume");
    let frame =
        json!({"type": "resume", "id": id, "payload": {"run_id": run_id, "last_seq": last_seq}});
    let i = w.count(&user) - 1;
    let conn = w.conn(&user, i);
    conn.resume_judging(&run_id, last_seq, tracker.resumed());
    conn.cursor = conn.received.len();
    if let Err(e) = conn.send_json(&frame).await {
        let label = conn.label.clone();
        w.fail_tagged(format!("could not send the resume on {label}: {e}"));
    }
}

/// The frames of `user`'s most recently closed connection.
fn latest_closed(w: &GoldenWorld, user: &str) -> Option<Vec<Value>> {
    let prefix = format!("{user}#");
    w.closed
        .iter()
        .rev()
        .find(|c| c.label.starts_with(&prefix))
        .map(|c| c.received.clone())
}

/// How many frames the run has: as a step read it whole, else as `seen` holds it.
fn run_length(w: &GoldenWorld, seen: &[Value]) -> usize {
    w.run
        .values()
        .filter(|r| r.complete)
        .map(|r| r.frames.len())
        .max()
        .unwrap_or(seen.len())
}

/// The run's id: as a step read it, else from the user's latest closed connection, else from
/// the `agent_started` of the latest message on its sender's first connection (waited for).
async fn the_run_id(w: &mut GoldenWorld, user: &str) -> Value {
    if let Some(id) = w.run_id.clone() {
        return id;
    }
    let started = |frames: &[Value]| {
        frames
            .iter()
            .rev()
            .find(|f| f["type"] == "agent_started")
            .map(|f| f["run_id"].clone())
    };
    if let Some(id) = latest_closed(w, user).and_then(|frames| started(&frames)) {
        return id;
    }
    let owner = w.run_owner();
    let message = w.last_message_id.clone();
    // The run's first frame to arrive: its agent_started (whose request_id, when it echoes one,
    // is the message's), or whatever run frame comes first when it sends none (the run's shape
    // is the sequence requirements' business, not the resume's).
    let is_start = move |f: &Value| {
        f.get("run_id").is_some()
            && f.get("seq").is_some()
            && match (f["payload"]["request_id"].as_str(), message.as_deref()) {
                (Some(echoed), Some(id)) if f["type"] == "agent_started" => echoed == id,
                _ => true,
            }
    };
    let mark = w
        .conns
        .get(&owner)
        .and_then(|list| list.first())
        .and_then(|c| w.marks.get(&c.label).copied())
        .unwrap_or(0);
    let deadline = w.run_deadline();
    let conn = w.conn(&owner, 0);
    if let Some(f) = conn.received.iter().skip(mark).find(|f| is_start(f)) {
        return f["run_id"].clone();
    }
    let label = conn.label.clone();
    loop {
        match conn.recv(deadline).await {
            Ok(Incoming::Json(f)) if is_start(&f) => return f["run_id"].clone(),
            Ok(Incoming::Closed(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    w.fail_tagged(format!(
        "no run to resume: no frame of the run reached {label}"
    ))
}

#[then(regex = r"^(alice|bob|carol) receives the rest of the run, each frame once, in order$")]
async fn receives_the_rest(w: &mut GoldenWorld, user: String) {
    if w.then() {
        return;
    }
    let deadline = tokio::time::Instant::now() + w.ctx().run_timeout;
    let conn = w.conn(&user, 0);
    let label = conn.label.clone();
    let Some((run_id, last_seq)) = conn.resumed().cloned() else {
        suite_error!("{label} resumed no run: the scenario must reconnect and resume one first")
    };
    let mut frames: Vec<Value> = Vec::new();
    let problem = loop {
        let frame = match conn.next_json(deadline).await {
            Ok(f) => f,
            Err(e) => break Some(format!("the run did not reach its terminal event: {e}")),
        };
        if frame["type"] == "error" {
            break Some(format!("the server answered the resume with {frame}"));
        }
        if frame["run_id"] != run_id {
            continue;
        }
        let terminal = is_terminal(&frame);
        frames.push(frame);
        if terminal {
            break None;
        }
    };
    let seqs: Vec<Option<u64>> = frames.iter().map(|f| f["seq"].as_u64()).collect();
    let expected: Vec<Option<u64>> = (1..=seqs.len() as u64)
        .map(|k| Some(last_seq + k))
        .collect();
    let problem = problem.or_else(|| {
        (seqs != expected).then(|| {
            format!(
                "the frames after seq {last_seq}, each once and in order ({:?}...)",
                expected.iter().flatten().take(8).collect::<Vec<_>>()
            )
        })
    });
    if let Some(problem) = problem {
        let got: Vec<String> = seqs
            .iter()
            .map(|s| s.map_or("no seq".to_owned(), |s| s.to_string()))
            .collect();
        w.fail_tagged(format!(
            "{label} resumed run {run_id} after seq {last_seq}: {problem}; the seqs that arrived: [{}]",
            got.join(", ")
        ));
    }
}
