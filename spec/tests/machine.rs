//! The run's state machine (`features/sequence.toml`) as the judge applies it: every valid
//! shape of run accepted, every broken one rejected with the requirement it breaks and the
//! frame where it breaks it; then random valid runs, and random mutations of them.

use std::collections::BTreeSet;

use goldenpath_spec::machine::{RunTracker, Violation, judge_run, machine};
use proptest::prelude::*;
use proptest::sample::Index;
use rstest::rstest;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Building frames

/// Frames from words, one a frame. Run frames: `start`, `think`, `exec:ID` (opens call ID),
/// `done:ID` (closes it), `fail:ID` (closes it with status `error`), `completed`, `error`.
/// Other frames: `hello` (connection_established), `pong`, `refused` (an `error` frame).
/// Run frames get `seq` 1, 2, ... and the same `run_id`, `thread_id` and `user_id`.
fn run(words: &str) -> Vec<Value> {
    let mut seq = 0;
    words
        .split_whitespace()
        .enumerate()
        .map(|(i, word)| {
            let (kind, call) = word.split_once(':').unwrap_or((word, ""));
            let (kind, payload) = match kind {
                "hello" => {
                    return json!({"type": "connection_established", "event_id": format!("e-{i}"),
                        "timestamp": "2026-11-23T10:00:00.000Z",
                        "payload": {"connection_id": "k-1", "user_id": "alice", "spec_version": "1"}});
                }
                "pong" => {
                    return json!({"type": "pong", "event_id": format!("e-{i}"),
                        "timestamp": "2026-11-23T10:00:00.000Z", "payload": {}});
                }
                "refused" => {
                    return json!({"type": "error", "event_id": format!("e-{i}"),
                        "timestamp": "2026-11-23T10:00:00.000Z",
                        "payload": {"code": "unknown_type", "message": "no"}});
                }
                "start" => ("agent_started", json!({})),
                "think" => ("agent_thinking", json!({"text": "hmm"})),
                "exec" => (
                    "tool_executing",
                    json!({"tool_call_id": call, "tool_name": "word_count", "parameters": {}}),
                ),
                "done" => (
                    "tool_completed",
                    json!({"tool_call_id": call, "status": "ok", "result": 2}),
                ),
                "fail" => (
                    "tool_completed",
                    json!({"tool_call_id": call, "status": "error",
                           "error": {"code": "tool_failed", "message": "no"}}),
                ),
                "completed" => ("agent_completed", json!({"text": "done"})),
                "error" => ("agent_error", json!({"code": "agent_failed", "message": "no"})),
                other => panic!("no frame is called `{other}`"),
            };
            seq += 1;
            json!({"type": kind, "event_id": format!("e-{i}"),
                   "timestamp": "2026-11-23T10:00:00.000Z", "user_id": "alice",
                   "thread_id": "t-1", "run_id": "r-1", "seq": seq, "payload": payload})
        })
        .collect()
}

/// `frames` with the value at `pointer` in frame `index` replaced (or removed, for `null`).
fn with(mut frames: Vec<Value>, index: usize, pointer: &str, value: Value) -> Vec<Value> {
    let (parent, field) = pointer.rsplit_once('/').unwrap();
    let object = frames[index]
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap();
    if value.is_null() {
        object.remove(field);
    } else {
        object.insert(field.to_owned(), value);
    }
    frames
}

/// `frames` with the `seq` of each frame in turn replaced by `seqs` (`null`: removed).
fn with_seqs(frames: Vec<Value>, seqs: Value) -> Vec<Value> {
    let seqs = seqs.as_array().unwrap().clone();
    assert_eq!(seqs.len(), frames.len());
    seqs.into_iter()
        .enumerate()
        .fold(frames, |frames, (i, seq)| with(frames, i, "/seq", seq))
}

/// The requirement and frame of each violation, in order.
fn found(violations: &[Violation]) -> Vec<(&str, Option<usize>)> {
    violations
        .iter()
        .map(|v| (v.requirement.as_str(), v.frame_index))
        .collect()
}

/// Everything a failure needs: the violations in words and the frames.
fn evidence(violations: &[Violation], frames: &[Value]) -> String {
    let mut text = String::new();
    for v in violations {
        text.push_str(&format!("  {v}\n"));
    }
    for (i, f) in frames.iter().enumerate() {
        text.push_str(&format!("  [{i}] {f}\n"));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Valid shapes

#[rstest]
#[case::no_tools("start completed")]
#[case::thinking_only("start think think think completed")]
#[case::one_tool("start think exec:c1 done:c1 completed")]
#[case::many_tools(
    "start exec:c1 done:c1 exec:c2 done:c2 exec:c3 done:c3 exec:c4 done:c4 completed"
)]
#[case::thinking_between_tools(
    "start think exec:c1 done:c1 think exec:c2 think done:c2 think completed"
)]
#[case::overlapping_calls("start exec:c1 exec:c2 done:c1 done:c2 completed")]
#[case::nested_calls("start exec:c1 exec:c2 done:c2 done:c1 completed")]
#[case::agent_error("start exec:c1 done:c1 error")]
#[case::agent_error_at_once("start error")]
#[case::failing_tool("start exec:c1 fail:c1 exec:c2 done:c2 completed")]
#[case::failing_tool_then_agent_error("start exec:c1 fail:c1 error")]
#[case::other_frames_between("hello start pong exec:c1 refused done:c1 pong completed pong")]
fn a_valid_run_is_accepted(#[case] words: &str) {
    let frames = run(words);
    let violations = judge_run(&frames);
    assert!(violations.is_empty(), "{}", evidence(&violations, &frames));
}

#[test]
fn the_tracker_follows_a_run_as_it_arrives() {
    let frames = run("hello start exec:c1 think exec:c2 done:c1 done:c2 completed");
    let open_after = [0, 0, 1, 1, 2, 1, 0, 0];
    let mut tracker = RunTracker::new();
    for (i, frame) in frames.iter().enumerate() {
        assert!(!tracker.is_finished(), "finished before frame {i}");
        assert_eq!(tracker.observe(frame), vec![], "frame {i}");
        assert_eq!(
            tracker.open_calls(),
            open_after[i],
            "open calls after frame {i}"
        );
    }
    assert!(tracker.is_finished());
    assert_eq!(tracker.finish(), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Broken shapes: exactly these violations, at exactly these frames.

#[rstest]
// GP-SEQ-001: agent_started first, and once.
#[case::missing_start(run("think exec:c1 done:c1 completed"), &[("GP-SEQ-001", Some(0))])]
#[case::terminal_first(run("completed"), &[("GP-SEQ-001", Some(0))])]
#[case::second_start(run("start think start completed"), &[("GP-SEQ-001", Some(2))])]
#[case::missing_start_after_other_frames(
    run("hello pong think completed"), &[("GP-SEQ-001", Some(2))]
)]
// GP-SEQ-002: tool_completed closes an open call.
#[case::unpaired_tool_completed(run("start done:c1 completed"), &[("GP-SEQ-002", Some(1))])]
#[case::tool_completed_twice(
    run("start exec:c1 done:c1 done:c1 completed"), &[("GP-SEQ-002", Some(3))]
)]
#[case::tool_completed_for_another_call(
    run("start exec:c1 done:c2 completed"),
    &[("GP-SEQ-002", Some(2)), ("GP-SEQ-004", Some(3))]
)]
#[case::tool_completed_without_id(
    with(run("start exec:c1 done:c1 completed"), 2, "/payload/tool_call_id", Value::Null),
    &[("GP-SEQ-002", Some(2)), ("GP-SEQ-004", Some(3))]
)]
#[case::tool_executing_with_a_numeric_id(
    with(run("start exec:c1 completed"), 1, "/payload/tool_call_id", json!(1)),
    &[("GP-SEQ-002", Some(1))]
)]
// GP-SEQ-003: a call id opens once per run.
#[case::reused_closed_call_id(
    run("start exec:c1 done:c1 exec:c1 done:c1 completed"), &[("GP-SEQ-003", Some(3))]
)]
#[case::reused_open_call_id(
    run("start exec:c1 exec:c1 done:c1 completed"), &[("GP-SEQ-003", Some(2))]
)]
// GP-SEQ-004: the terminal event with no call open.
#[case::completed_with_open_call(run("start exec:c1 completed"), &[("GP-SEQ-004", Some(2))])]
#[case::error_with_open_call(
    run("start exec:c1 exec:c2 done:c1 error"), &[("GP-SEQ-004", Some(4))]
)]
// GP-SEQ-005: one terminal event, nothing after it.
#[case::event_after_terminal(run("start completed think"), &[("GP-SEQ-005", Some(2))])]
#[case::tool_after_terminal(
    run("start completed exec:c1 done:c1"),
    &[("GP-SEQ-005", Some(2)), ("GP-SEQ-005", Some(3))]
)]
#[case::two_terminals(run("start completed error"), &[("GP-SEQ-005", Some(2))])]
#[case::completed_twice(run("start completed completed"), &[("GP-SEQ-005", Some(2))])]
#[case::start_after_terminal(run("start error start"), &[("GP-SEQ-005", Some(2))])]
// GP-SEQ-006: seq from 1, by 1.
#[case::seq_from_0(with_seqs(run("start think completed"), json!([0, 1, 2])), &[("GP-SEQ-006", Some(0))])]
#[case::seq_from_2(with_seqs(run("start think completed"), json!([2, 3, 4])), &[("GP-SEQ-006", Some(0))])]
#[case::seq_gap(
    with_seqs(run("start think think completed"), json!([1, 2, 4, 5])), &[("GP-SEQ-006", Some(2))]
)]
#[case::seq_repeat(
    with_seqs(run("start think think completed"), json!([1, 2, 2, 3])), &[("GP-SEQ-006", Some(2))]
)]
#[case::seq_backwards(
    with_seqs(run("start think think completed"), json!([1, 3, 2, 4])),
    &[("GP-SEQ-006", Some(1)), ("GP-SEQ-006", Some(3))]
)]
#[case::seq_string(with_seqs(run("start think completed"), json!([1, "2", 3])), &[("GP-SEQ-006", Some(1))])]
#[case::seq_float(with_seqs(run("start think completed"), json!([1, 2.5, 3])), &[("GP-SEQ-006", Some(1))])]
#[case::seq_negative(with_seqs(run("start think completed"), json!([1, -2, 3])), &[("GP-SEQ-006", Some(1))])]
#[case::seq_missing(with_seqs(run("start think completed"), json!([1, null, 3])), &[("GP-SEQ-006", Some(1))])]
#[case::seq_huge(
    with_seqs(run("start think completed"), json!([1, u64::MAX, 3])), &[("GP-SEQ-006", Some(1))]
)]
// GP-SEQ-007: one run_id, thread_id and user_id.
#[case::mixed_run_ids(
    with(run("start think completed"), 1, "/run_id", json!("r-2")), &[("GP-SEQ-007", Some(1))]
)]
#[case::mixed_thread_ids(
    with(run("start think completed"), 2, "/thread_id", json!("t-2")), &[("GP-SEQ-007", Some(2))]
)]
#[case::mixed_user_ids(
    with(run("start think completed"), 1, "/user_id", json!("bob")), &[("GP-SEQ-007", Some(1))]
)]
#[case::missing_run_id(
    with(run("start think completed"), 1, "/run_id", Value::Null), &[("GP-SEQ-007", Some(1))]
)]
#[case::missing_run_id_on_the_first_frame(
    with(run("start think completed"), 0, "/run_id", Value::Null), &[("GP-SEQ-007", Some(0))]
)]
#[case::first_frame_differs(
    with(run("start think completed"), 0, "/user_id", json!("bob")),
    &[("GP-SEQ-007", Some(1)), ("GP-SEQ-007", Some(2))]
)]
// GP-SEQ-008: the run ends with its terminal event.
#[case::no_terminal(run("start exec:c1 done:c1"), &[("GP-SEQ-008", None)])]
#[case::no_terminal_with_open_call(run("start exec:c1"), &[("GP-SEQ-008", None)])]
#[case::only_start(run("start"), &[("GP-SEQ-008", None)])]
#[case::no_frames(run(""), &[("GP-SEQ-008", None)])]
#[case::no_run_frames(run("hello pong refused"), &[("GP-SEQ-008", None)])]
// Several at once, in frame order.
#[case::everything(
    with(run("think exec:c1 done:c2 exec:c1"), 3, "/seq", json!(7)),
    &[("GP-SEQ-001", Some(0)), ("GP-SEQ-002", Some(2)), ("GP-SEQ-003", Some(3)),
      ("GP-SEQ-006", Some(3)), ("GP-SEQ-008", None)]
)]
fn a_broken_run_is_rejected(
    #[case] frames: Vec<Value>,
    #[case] expected: &[(&str, Option<usize>)],
) {
    let violations = judge_run(&frames);
    assert_eq!(
        found(&violations),
        expected,
        "\n{}",
        evidence(&violations, &frames)
    );
}

#[test]
fn a_violation_says_what_was_expected_and_what_came() {
    let violations = judge_run(&run("start exec:c1 exec:c2 done:c1 completed"));
    assert_eq!(violations.len(), 1);
    let v = &violations[0];
    assert_eq!(
        v.to_string(),
        "GP-SEQ-004 at frame 4: expected no open tool call at `agent_completed`, \
         got open: `c2` (opened at frame 2)"
    );
    assert_eq!(
        serde_json::to_value(v).unwrap(),
        json!({"requirement": "GP-SEQ-004", "frame_index": 4,
               "expected": "no open tool call at `agent_completed`",
               "got": "open: `c2` (opened at frame 2)"})
    );

    let frames = with_seqs(run("start think think completed"), json!([1, 2, 4, 5]));
    assert_eq!(
        judge_run(&frames)[0].to_string(),
        "GP-SEQ-006 at frame 2: expected `seq` 3, got `seq` 4"
    );
    let frames = with(run("start think completed"), 2, "/run_id", json!("r-2"));
    assert_eq!(
        judge_run(&frames)[0].to_string(),
        "GP-SEQ-007 at frame 2: expected `run_id` \"r-1\", as on frame 0, got `run_id` \"r-2\""
    );
    assert_eq!(
        judge_run(&run("start exec:c1"))[0].to_string(),
        "GP-SEQ-008 at the end of the run: expected a terminal event (`agent_completed` or \
         `agent_error`), got the run ended in state `running` after 2 run frame(s), \
         open: `c1` (opened at frame 1)"
    );
}

#[test]
fn every_requirement_the_machine_names_is_in_the_catalogue_at_its_level() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../features/README.md");
    let catalogue = std::fs::read_to_string(path).unwrap();
    let ids = machine().requirements();
    assert_eq!(
        ids,
        BTreeSet::from([
            "GP-SEQ-001",
            "GP-SEQ-002",
            "GP-SEQ-003",
            "GP-SEQ-004",
            "GP-SEQ-005",
            "GP-SEQ-006",
            "GP-SEQ-007",
            "GP-SEQ-008",
            "GP-SEQ-014"
        ])
    );
    // Taking a run up after a reconnect is a SHOULD: a server without it is still conformant.
    let resume = machine().resume_requirement();
    assert!(
        catalogue.contains(&format!("| {resume} | SHOULD |")),
        "{resume} is no SHOULD row of {path}"
    );
    for id in ids.into_iter().filter(|id| *id != resume) {
        assert!(
            catalogue.contains(&format!("| {id} | MUST |")),
            "{id} is no MUST row of {path}"
        );
    }
}

#[test]
fn the_machine_reads_its_budgets_and_rules_from_the_data() {
    let m = machine();
    let l = m.liveness();
    assert_eq!(
        (l.first_event_ms, l.completion_ms, l.max_gap_ms),
        (2_000, 10_000, 5_000)
    );
    assert_eq!(
        (l.run_timeout_ms, l.idle_ms, l.pong_ms),
        (30_000, 1_000, 1_000)
    );
    assert_eq!(m.pairing_key(), "/payload/tool_call_id");
    assert_eq!(m.identity_fields(), ["run_id", "thread_id", "user_id"]);
    assert_eq!(m.seq_field(), "seq");
    let terminal: Vec<&str> = m.terminal_events().iter().map(|t| t.as_str()).collect();
    assert_eq!(terminal, ["agent_completed", "agent_error"]);
}

// ---------------------------------------------------------------------------------------------
// Generated runs

/// The words of a valid run: `thinking` steps and `tools` calls in an order `choices` picks
/// (any step may come next: a thinking step, opening the next call, closing any open one),
/// the calls `failing` picks closed with status `error`, ended by `agent_error` or not.
fn valid_words(
    thinking: usize,
    tools: usize,
    choices: &[u16],
    failing: &[bool],
    fails: bool,
) -> String {
    let mut words = vec!["start".to_owned()];
    let (mut thoughts, mut opened, mut open) = (0, 0, Vec::<usize>::new());
    let mut choices = choices.iter().copied().cycle();
    loop {
        let mut options = Vec::new();
        if thoughts < thinking {
            options.push("think");
        }
        if opened < tools {
            options.push("exec");
        }
        if !open.is_empty() {
            options.push("done");
        }
        if options.is_empty() {
            break;
        }
        let choice = usize::from(choices.next().unwrap_or(0));
        match options[choice % options.len()] {
            "think" => {
                thoughts += 1;
                words.push("think".to_owned());
            }
            "exec" => {
                words.push(format!("exec:call-{opened}"));
                open.push(opened);
                opened += 1;
            }
            _ => {
                let call = open.remove(choice / options.len() % open.len());
                let verb = if failing[call % failing.len()] {
                    "fail"
                } else {
                    "done"
                };
                words.push(format!("{verb}:call-{call}"));
            }
        }
    }
    words.push(if fails { "error" } else { "completed" }.to_owned());
    words.join(" ")
}

fn valid_run() -> impl Strategy<Value = Vec<Value>> {
    (
        0..6usize,
        0..8usize,
        prop::collection::vec(any::<u16>(), 1..32),
        prop::collection::vec(any::<bool>(), 1..8),
        any::<bool>(),
    )
        .prop_map(|(thinking, tools, choices, failing, fails)| {
            run(&valid_words(thinking, tools, &choices, &failing, fails))
        })
}

/// One change that breaks a valid run.
#[derive(Debug, Clone)]
enum Mutation {
    /// Remove a frame.
    Drop(Index),
    /// Deliver a frame twice in a row.
    Duplicate(Index),
    /// Swap a frame with the next.
    Swap(Index),
    /// Give a frame another `seq`: off by the (non-zero) delta, or not a number.
    Seq(Index, Option<i64>),
    /// Give a frame another run_id, thread_id or user_id.
    Identity(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Drop),
        any::<Index>().prop_map(Mutation::Duplicate),
        any::<Index>().prop_map(Mutation::Swap),
        (
            any::<Index>(),
            prop_oneof![
                (-3i64..=3)
                    .prop_filter("a change", |d| *d != 0)
                    .prop_map(Some),
                Just(None)
            ]
        )
            .prop_map(|(i, d)| Mutation::Seq(i, d)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, f)| Mutation::Identity(i, f)),
    ]
}

fn kind(frame: &Value) -> &str {
    frame["type"].as_str().unwrap()
}

fn is_terminal(frame: &Value) -> bool {
    matches!(kind(frame), "agent_completed" | "agent_error")
}

/// Applies the mutation; returns the broken run and the requirements it must break.
fn apply(mut frames: Vec<Value>, mutation: &Mutation) -> (Vec<Value>, Vec<&'static str>) {
    let last = frames.len() - 1;
    let mut must = Vec::new();
    match *mutation {
        Mutation::Drop(i) => {
            let i = i.index(frames.len());
            let dropped = frames.remove(i);
            must.push(match kind(&dropped) {
                "agent_started" => "GP-SEQ-001",
                "tool_executing" => "GP-SEQ-002", // its tool_completed closes nothing
                "tool_completed" => "GP-SEQ-004", // its call is open at the terminal event
                "agent_completed" | "agent_error" => "GP-SEQ-008",
                _ => "GP-SEQ-006",
            });
            if i < last {
                must.push("GP-SEQ-006");
            }
        }
        Mutation::Duplicate(i) => {
            let i = i.index(frames.len());
            frames.insert(i + 1, frames[i].clone());
            must.push("GP-SEQ-006");
            must.extend(match kind(&frames[i]) {
                "agent_started" => Some("GP-SEQ-001"),
                "tool_executing" => Some("GP-SEQ-003"),
                "tool_completed" => Some("GP-SEQ-002"),
                "agent_completed" | "agent_error" => Some("GP-SEQ-005"),
                _ => None,
            });
        }
        Mutation::Swap(i) => {
            let i = i.index(last);
            frames.swap(i, i + 1);
            must.push("GP-SEQ-006");
            let (now_first, now_second) = (&frames[i], &frames[i + 1]);
            if kind(now_second) == "agent_started" {
                must.push("GP-SEQ-001");
            }
            if is_terminal(now_first) {
                must.push("GP-SEQ-005");
            }
            if kind(now_first) == "tool_completed"
                && kind(now_second) == "tool_executing"
                && now_first["payload"]["tool_call_id"] == now_second["payload"]["tool_call_id"]
            {
                must.push("GP-SEQ-002");
            }
        }
        Mutation::Seq(i, delta) => {
            let i = i.index(frames.len());
            frames[i]["seq"] = match delta {
                Some(d) => json!(frames[i]["seq"].as_i64().unwrap() + d),
                None => json!("seq"),
            };
            must.push("GP-SEQ-006");
        }
        Mutation::Identity(i, field) => {
            let i = i.index(frames.len());
            let field = ["run_id", "thread_id", "user_id"][field.index(3)];
            frames[i][field] = json!("someone-else");
            must.push("GP-SEQ-007");
        }
    }
    (frames, must)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_generated_valid_run_is_accepted(frames in valid_run()) {
        let violations = judge_run(&frames);
        prop_assert!(violations.is_empty(), "\n{}", evidence(&violations, &frames));
    }

    #[test]
    fn every_proper_prefix_of_a_valid_run_is_unfinished(frames in valid_run(), cut in any::<Index>()) {
        let cut = cut.index(frames.len());
        let mut tracker = RunTracker::new();
        for frame in &frames[..cut] {
            prop_assert_eq!(tracker.observe(frame), vec![]);
        }
        prop_assert!(!tracker.is_finished());
        let violations = tracker.finish();
        prop_assert_eq!(found(&violations), vec![("GP-SEQ-008", None)]);
    }

    #[test]
    fn a_mutated_run_is_rejected(frames in valid_run(), mutation in mutation()) {
        let (broken, must) = apply(frames, &mutation);
        let violations = judge_run(&broken);
        let names: BTreeSet<&str> = violations.iter().map(|v| v.requirement.as_str()).collect();
        for requirement in must {
            prop_assert!(
                names.contains(requirement),
                "{mutation:?} should break {requirement}\n{}", evidence(&violations, &broken)
            );
        }
    }

    #[test]
    fn one_wrong_seq_is_one_violation(frames in valid_run(), i in any::<Index>(), seq in any::<i64>()) {
        let i = i.index(frames.len());
        prop_assume!(frames[i]["seq"] != json!(seq));
        let broken = with(frames, i, "/seq", json!(seq));
        let violations = judge_run(&broken);
        prop_assert_eq!(found(&violations), vec![("GP-SEQ-006", Some(i))]);
    }

    #[test]
    fn any_frame_is_judged_without_panicking(
        frames in valid_run(),
        damage in prop::collection::vec((any::<Index>(), 0..7usize, 0..7usize), 1..6),
    ) {
        let pointers = ["/type", "/seq", "/run_id", "/thread_id", "/user_id", "/payload",
                        "/payload/tool_call_id"];
        let values = [Value::Null, json!(-1), json!(1.5), json!("agent_started"), json!([1]),
                      json!({"seq": 1}), json!(u64::MAX)];
        let mut frames = frames;
        for (i, p, v) in damage {
            let i = i.index(frames.len());
            if frames[i].pointer(pointers[p].rsplit_once('/').unwrap().0).is_some_and(Value::is_object) {
                frames = with(frames, i, pointers[p], values[v].clone());
            }
        }
        frames.push(json!(null));
        frames.push(json!(["agent_started"]));
        let _ = judge_run(&frames);
    }
}

// ---------------------------------------------------------------------------------------------
// A run taken up after a reconnect (`resume`)

/// The violations of the frames after the first `seen` of `frames`, judged on a connection that
/// resumed the run after them; the trackers of the old and the new connection.
fn resumed_after(frames: &[Value], seen: usize, sent: &[Value]) -> Vec<Violation> {
    let mut old = RunTracker::new();
    for f in &frames[..seen] {
        assert!(
            old.observe(f).is_empty(),
            "the frames before are a clean run"
        );
    }
    let mut new = old.resumed();
    let mut violations: Vec<Violation> = sent.iter().flat_map(|f| new.observe(f)).collect();
    violations.extend(new.finish());
    violations
}

#[test]
fn a_run_resumed_after_the_frames_seen_is_one_clean_run() {
    let frames = run("start think exec:c1 done:c1 completed");
    for seen in 1..frames.len() {
        assert!(
            resumed_after(&frames, seen, &frames[seen..]).is_empty(),
            "resumed after frame {seen}"
        );
    }
}

#[rstest]
#[case::a_frame_sent_again(&[1, 2, 3, 4], "`seq` 3")]
#[case::a_frame_missed(&[3, 4], "`seq` 3")]
#[case::the_run_from_its_start(&[0, 1, 2, 3, 4], "`seq` 3")]
#[case::the_rest_never_comes(&[2], "a terminal event")]
fn whatever_breaks_a_resumed_run_names_the_resume_requirement(
    #[case] sent: &[usize],
    #[case] expected: &str,
) {
    let frames = run("start think exec:c1 done:c1 completed");
    let sent: Vec<Value> = sent.iter().map(|&i| frames[i].clone()).collect();
    let violations = resumed_after(&frames, 2, &sent);
    assert!(!violations.is_empty(), "{sent:?}");
    let resume = machine().resume_requirement();
    assert!(
        violations.iter().all(|v| v.requirement == resume),
        "{violations:?}"
    );
    assert!(
        violations.iter().any(|v| v.expected.contains(expected)),
        "{violations:?}"
    );
}
