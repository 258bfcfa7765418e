//! The constructed report: hand-made scenario results with every kind of outcome and all the
//! evidence a failure can carry, built with [`Report::build`].

use goldenpath::Verdict;
use goldenpath::report::{
    Direction, Finding, Frame, LeakMatrix, Report, ScenarioResult, StepResult, Transcript,
};
use serde_json::{Value, json};

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
pub(crate) fn constructed() -> Report {
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

    // Passes, two of them rows of one outline, each named by its row's values.
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
        let name =
            format!("JSON that is not an object is answered with not_an_object [frame={value}]");
        let mut s = scenario("routing", &name, &["GP-ROUTE-003"], Verdict::Pass);
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
