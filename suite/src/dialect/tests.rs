//! The dialect format and every rule, on the frames of the netra legacy backend
//! (`suite/dialects/README.md`, "netra-legacy, fact by fact").
//!
//! (Over 500 lines: one test per rule of the dialect format, on the same legacy fixtures.)

use super::*;
use goldenpath_spec::MessageType;
use serde_json::json;

fn legacy() -> Dialect {
    Dialect::builtin("netra-legacy").expect("netra-legacy parses")
}

fn frame(n: &mut Normalizer, value: Value) -> Value {
    match n.normalize(&value.to_string(), value) {
        Normalized::Frame(f) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[test]
fn the_builtins_parse_and_canonical_is_canonical() {
    for name in Dialect::builtin_names() {
        let d = Dialect::builtin(name).unwrap();
        assert_eq!(d.name(), name);
        assert!(!d.description().is_empty());
    }
    let canonical = Dialect::canonical();
    assert!(canonical.is_canonical());
    assert!(!legacy().is_canonical());
    // The canonical subprotocol offer is the reference router's.
    let (plain, bearing) = canonical.subprotocols("T");
    assert_eq!(plain, [goldenpath_spec::wire::SUBPROTOCOL]);
    assert_eq!(
        bearing,
        [format!(
            "{}T",
            goldenpath_spec::wire::BEARER_PROTOCOL_PREFIX
        )]
    );
    assert_eq!(canonical.placement(), Placement::Header);
}

#[test]
fn canonical_leaves_every_frame_as_it_came() {
    let d = Dialect::canonical();
    let mut n = d.normalizer("alice");
    let odd = json!({"type": "error_message", "data": {"x": 1}, "timestamp": 1.5});
    assert_eq!(frame(&mut n, odd.clone()), odd);
    assert!(d.rules_fired().is_empty());
}

#[test]
fn load_takes_a_builtin_name_or_a_path_and_names_the_builtins_otherwise() {
    assert_eq!(Dialect::load("canonical").unwrap().name(), "canonical");
    let err = Dialect::load("nope").unwrap_err().to_string();
    assert!(err.contains("canonical, netra-legacy"), "{err}");
    let err = Dialect::load("/no/such/dialect.toml").unwrap_err();
    assert!(matches!(err, DialectError::Read { .. }), "{err}");
    let dir = std::env::temp_dir().join(format!("gp-dialect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mine.toml");
    std::fs::write(&file, "name = \"mine\"\n").unwrap();
    let mine = Dialect::load(file.to_str().unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(mine.name(), "mine");
    assert!(mine.is_canonical());
}

#[test]
fn bad_files_name_the_key_and_what_is_wrong() {
    let cases: &[(&str, &str)] = &[
        (
            "name = \"x\"\n[inbound]\nenvelope = []\n",
            "unknown field `envelope`",
        ),
        ("name = \"x\"\n[auth]\nplacement = \"cookie\"\n", "cookie"),
        ("name = \"\"\n", "`name`"),
        (
            "name = \"x\"\n[auth]\nplacement = \"query\"\nplacements = [\"header\"]\n",
            "`auth.placement`",
        ),
        (
            "name = \"x\"\n[auth]\nsubprotocols = [\"jwt.{jwt}\"]\n",
            "`auth.subprotocols[0]`: unknown placeholder {jwt}",
        ),
        (
            "name = \"x\"\n[inbound.aliases]\nerror_message = \"oops\"\n",
            "`inbound.aliases.error_message`",
        ),
        (
            "name = \"x\"\n[inbound.events.user_message]\nrename = { a = \"b\" }\n",
            "`inbound.events.user_message`",
        ),
        (
            "name = \"x\"\n[inbound]\nsynthesize = [\"seq\"]\n",
            "cannot pass GP-SEQ-006",
        ),
        (
            "name = \"x\"\n[[lacks]]\ncapability = \"c\"\nreason = \"r\"\nrequirements = [\"GP-NOPE-001\"]\n",
            "`lacks[0].requirements`",
        ),
        (
            "name = \"x\"\n[run]\nmessage = { type = \"m\", payload = { text = \"{text}\" } }\n",
            "unknown placeholder {text}",
        ),
        (
            "name = \"x\"\n[run]\nmessage = { payload = {} }\n",
            "`run.message`",
        ),
        (
            "name = \"x\"\n[inbound]\nsynthesize = [\"tool_call_id\"]\n[[lacks]]\ncapability = \"c\"\nreason = \"r\"\nrequirements = [\"GP-SEQ-003\"]\n",
            "`inbound.pairing`",
        ),
    ];
    for (text, wanted) in cases {
        let err = Dialect::from_toml(text, "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dialect bad.toml: "), "{err}");
        assert!(err.contains(wanted), "{text}: {err} lacks {wanted:?}");
    }
}

#[test]
fn the_legacy_greeting_becomes_connection_established() {
    let d = legacy();
    let user = "0123abcd-gp12-alice";
    let mut n = d.normalizer(user);
    let got = frame(
        &mut n,
        json!({"type": "connection_established",
               "data": {"connection_id": "main_0a1b2c3d", "user_id": "0123abcd...",
                        "mode": "isolated", "golden_path_events": ["agent_started"]},
               "timestamp": 1763892000.25, "server_id": null, "correlation_id": null}),
    );
    assert_eq!(got["payload"]["user_id"], user);
    assert_eq!(got["payload"]["connection_id"], "main_0a1b2c3d");
    assert_eq!(got["payload"]["spec_version"], "1");
    assert_eq!(got["timestamp"], "2025-11-23T10:00:00.25Z");
    assert!(got["event_id"].as_str().unwrap().starts_with("syn-"));
    assert!(got.get("server_id").is_none());
    let kind = goldenpath_spec::MessageType::from_wire("connection_established").unwrap();
    goldenpath_spec::schema::validate(kind, &got).unwrap();
    // Another user's truncated id is left as it came: GP-CONN-002 sees it.
    let mut other = d.normalizer("ffffffff-gp12-bob");
    let got = frame(
        &mut other,
        json!({"type": "connection_established", "data": {"connection_id": "c", "user_id": "0123abcd..."}, "timestamp": 1.0}),
    );
    assert_eq!(got["payload"]["user_id"], "0123abcd...");
    let rules: Vec<String> = d.rules_fired().into_iter().map(|(r, _)| r).collect();
    assert!(
        rules.iter().any(|r| r.starts_with("greeting: user_id cut")),
        "{rules:?}"
    );
}

#[test]
fn a_legacy_run_in_mixed_envelopes_is_a_canonical_valid_run() {
    let d = legacy();
    let mut n = d.normalizer("u1");
    let a = |kind: &str, data: Value| {
        json!({"type": kind, "run_id": "run_1", "user_id": "u1", "thread_id": "thread_1",
               "agent_name": "supervisor", "timestamp": "2026-11-23T10:00:00.123456+00:00",
               "data": data})
    };
    let b = |kind: &str, fields: Value| {
        let mut f = json!({"type": kind, "timestamp": 1763892000.5, "run_id": "run_1",
                           "thread_id": "thread_1", "user_id": null, "agent_name": "supervisor",
                           "critical": true, "metadata": {}});
        f.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        f
    };
    let mut executing = a("tool_executing", json!({"parameters": {"q": "x"}}));
    executing["tool_name"] = "search".into();
    let wire = vec![
        a("agent_started", json!({"status": "started"})),
        b(
            "agent_thinking",
            json!({"reasoning": "hmm", "step_number": 1}),
        ),
        executing,
        b(
            "tool_completed",
            json!({"tool_name": "search", "execution_id": "exec_1", "results": {"n": 1},
                   "duration": 0.01, "success": true}),
        ),
        json!({"type": "agent_completed", "run_id": "run_1", "agent_name": "supervisor",
               "timestamp": "2026-11-23T10:00:01Z",
               "payload": {"status": "completed", "final_response": "done", "result": {"n": 1}}}),
    ];
    let frames: Vec<Value> = wire.into_iter().map(|f| frame(&mut n, f)).collect();
    for (i, f) in frames.iter().enumerate() {
        let kind = goldenpath_spec::MessageType::from_wire(f["type"].as_str().unwrap()).unwrap();
        if let Err(v) = goldenpath_spec::schema::validate(kind, f) {
            panic!("frame {i} {f}: {v:?}");
        }
        assert_eq!(f["seq"], i as u64 + 1);
        assert_eq!(f["user_id"], "u1", "frame {i}");
        assert_eq!(f["thread_id"], "thread_1", "frame {i}");
    }
    assert!(goldenpath_spec::machine::judge_run(&frames).is_empty());
    assert_eq!(frames[0]["timestamp"], "2026-11-23T10:00:00.123456Z");
    assert_eq!(frames[0]["payload"]["agent_name"], "supervisor");
    assert_eq!(frames[1]["payload"]["text"], "hmm");
    assert_eq!(frames[1]["payload"]["step"], 1);
    assert_eq!(frames[2]["payload"]["tool_name"], "search");
    assert_eq!(
        frames[2]["payload"]["tool_call_id"],
        frames[3]["payload"]["tool_call_id"]
    );
    assert_eq!(frames[3]["payload"]["status"], "ok");
    assert_eq!(frames[3]["payload"]["result"], json!({"n": 1}));
    assert_eq!(frames[4]["payload"]["result"]["text"], "done");
    let rules: BTreeMap<String, u64> = d.rules_fired().into_iter().collect();
    for wanted in [
        "envelope: payload from `data`",
        "envelope: payload from the top-level fields (flat)",
        "rename: agent_thinking.reasoning → text",
        "rename: tool_completed.results → result",
        "value: tool_completed.status true → \"ok\"",
        "rename: agent_completed.final_response → result.text",
        "timestamp: seconds since the epoch → RFC 3339",
        "timestamp: RFC 3339 offset → UTC Z",
        "inherit: user_id from the run's earlier frames",
        "inherit: thread_id from the run's earlier frames",
        "synthesize: seq (counted per run on each connection)",
        "synthesize: event_id (from the frame's bytes)",
    ] {
        assert!(rules.contains_key(wanted), "{wanted:?} not in {rules:#?}");
    }
    assert_eq!(
        rules["synthesize: seq (counted per run on each connection)"],
        5
    );
}

#[test]
fn tool_calls_pair_by_run_and_tool_name_and_execution_id() {
    let d = legacy();
    let mut n = d.normalizer("u1");
    let mut ev = |kind: &str, tool: &str, exec: Option<&str>| {
        let mut f = json!({"type": kind, "run_id": "r", "user_id": "u1", "thread_id": "t",
                           "timestamp": 1.0, "tool_name": tool});
        if let Some(e) = exec {
            f["execution_id"] = e.into();
        }
        if kind == "tool_completed" {
            f["success"] = true.into();
            f["results"] = json!(null);
        }
        frame(&mut n, f)["payload"]["tool_call_id"].clone()
    };
    let a = ev("tool_executing", "search", Some("e1"));
    let b = ev("tool_executing", "search", Some("e2"));
    let c = ev("tool_executing", "fetch", None);
    assert_ne!(a, b);
    // By execution_id when both carry one; by tool name when one side has none.
    assert_eq!(ev("tool_completed", "search", Some("e2")), b);
    assert_eq!(ev("tool_completed", "fetch", Some("e9")), c);
    assert_eq!(ev("tool_completed", "search", None), a);
    // A completion of nothing open gets an id no call has: the machine reports it.
    let stray = ev("tool_completed", "search", None);
    assert!(stray.as_str().unwrap().starts_with("syn-unpaired-"));
}

#[test]
fn legacy_errors_become_error_frames_with_canonical_codes() {
    let d = legacy();
    let mut n = d.normalizer("u1");
    for (legacy, code) in [
        ("JSON_PARSE_ERROR", "invalid_json"),
        ("INVALID_MESSAGE_FORMAT", "not_an_object"),
        ("INVALID_MESSAGE", "invalid_message"),
        ("UNSUPPORTED_FRAME", "binary_not_supported"),
        ("THREAD_NOT_FOUND", "thread_not_found"),
        ("AUTH_FAILED", "unauthorized"),
    ] {
        let got = frame(
            &mut n,
            json!({"type": "error_message", "error_code": legacy, "error_message": "m",
                   "details": {}, "timestamp": 1763892000.0}),
        );
        assert_eq!(got["type"], "error");
        assert_eq!(got["payload"]["code"], code);
        assert_eq!(got["payload"]["message"], "m");
        let kind = goldenpath_spec::MessageType::from_wire("error").unwrap();
        goldenpath_spec::schema::validate(kind, &got).unwrap();
    }
    // The server-built form, `data` holding the fields.
    let got = frame(
        &mut n,
        json!({"type": "error_message", "data": {"error_code": "THREAD_NOT_FOUND",
               "error_message": "m", "details": {}}, "timestamp": 1.0,
               "server_id": null, "correlation_id": null}),
    );
    assert_eq!(got["payload"]["code"], "thread_not_found");
    // An unmapped code passes through verbatim (in `wire_code`, its snake_case form in `code`)
    // and is counted; a canonical code is native.
    let got = frame(
        &mut n,
        json!({"type": "error_message", "error_code": "RATE-LIMITED", "error_message": "m", "timestamp": 1.0}),
    );
    assert_eq!(got["payload"]["code"], "rate_limited");
    assert_eq!(got["payload"]["wire_code"], "RATE-LIMITED");
    let kind = goldenpath_spec::MessageType::from_wire("error").unwrap();
    goldenpath_spec::schema::validate(kind, &got).unwrap();
    let got = frame(
        &mut n,
        json!({"type": "error_message", "error_code": "invalid_json", "error_message": "m", "timestamp": 1.0}),
    );
    assert_eq!(got["payload"]["code"], "invalid_json");
    let rules: BTreeMap<String, u64> = d.rules_fired().into_iter().collect();
    assert_eq!(
        rules["error code: RATE-LIMITED unmapped, passed through verbatim"],
        1
    );
    assert!(!rules.keys().any(|r| r.contains("invalid_json unmapped")));
}

#[test]
fn nested_ids_are_lifted_and_an_object_answer_is_picked_by_its_path() {
    let d = legacy();
    let mut n = d.normalizer("u1");
    frame(
        &mut n,
        json!({"type": "agent_started", "run_id": "r", "user_id": "u1", "thread_id": "t",
               "timestamp": 1.0, "data": {}}),
    );
    let got = frame(
        &mut n,
        json!({"type": "agent_completed", "timestamp": 2.0,
               "payload": {"run_id": "r", "thread_id": "t", "status": "completed",
                           "final_response": {"content": "done", "format": "markdown"}}}),
    );
    assert_eq!(
        (&got["run_id"], &got["thread_id"]),
        (&json!("r"), &json!("t"))
    );
    assert!(got["payload"].get("run_id").is_none(), "{got}");
    assert_eq!(got["payload"]["result"]["text"], "done");
    assert_eq!(got["user_id"], "u1");
    goldenpath_spec::schema::validate(MessageType::AgentCompleted, &got).unwrap();
    let debt = d.frame_debt();
    let completed = debt.iter().find(|t| t.kind == "agent_completed").unwrap();
    assert_eq!((completed.frames, completed.native), (1, 0));
    assert!(
        completed
            .rules
            .iter()
            .any(|(r, n)| r == "lift: payload.run_id → run_id" && *n == 1),
        "{completed:?}"
    );
}

#[test]
fn an_ignored_type_that_carries_a_run_id_is_judged_all_the_same() {
    let d = legacy();
    let mut n = d.normalizer("u1");
    let notice = json!({"type": "thread_created", "data": {"thread_id": "t"}, "timestamp": 1.0});
    assert_eq!(
        n.normalize(&notice.to_string(), notice),
        Normalized::Ignored { barrier: false }
    );
    let sneaky = json!({"type": "thread_created", "data": {"run_id": "r"}, "timestamp": 1.0});
    assert!(matches!(
        n.normalize(&sneaky.to_string(), sneaky),
        Normalized::Frame(_)
    ));
}

#[test]
fn the_new_keys_are_checked() {
    let bad = [
        (
            "[inbound.lift]\nagent = [\"payload.agent\"]\n",
            "inbound.lift.agent",
        ),
        (
            "[inbound.lift]\nrun_id = [\"run\"]\n",
            "inbound.lift.run_id",
        ),
        (
            "[inbound.error_codes]\nX = \"Not Snake\"\n",
            "inbound.error_codes.X",
        ),
        (
            "[outbound.pong]\nmessage = { type = \"pong\" }\n",
            "outbound.pong",
        ),
        (
            "[outbound.ping]\nmessage = { type = \"hb\", who = \"{content}\" }\n",
            "outbound.ping.message",
        ),
        ("[capabilities]\nping = \"none\"\n", "capabilities.ping"),
        (
            "[run]\nmessage = { type = \"m\", c = \"{content}\" }\n[outbound.user_message]\nmessage = { type = \"m\", c = \"{content}\" }\n",
            "run.message",
        ),
    ];
    for (text, key) in bad {
        let err = Dialect::from_toml(&format!("name = \"x\"\n{text}"), "t").unwrap_err();
        assert!(
            err.to_string().contains(&format!("`{key}`")),
            "{key}: {err}"
        );
    }
    let ok = "name = \"x\"\n[capabilities]\nping = \"none\"\n[[lacks]]\ncapability = \"ping\"\nrequirements = [\"GP-HB-001\"]\nreason = \"none\"\n";
    let d = Dialect::from_toml(ok, "t").unwrap();
    assert!(!d.sends_ping() && !d.is_canonical());
}

#[test]
fn heartbeats_and_acks_are_ignored_and_the_ping_ack_is_the_barrier() {
    let d = legacy();
    let mut n = d.normalizer("u1");
    let heartbeat =
        json!({"type": "heartbeat", "data": {"connection_id": "c", "stats": {}}, "timestamp": 1.0});
    assert_eq!(
        n.normalize(&heartbeat.to_string(), heartbeat),
        Normalized::Ignored { barrier: false }
    );
    let ack =
        json!({"type": "ack", "received_type": "ping", "status": "acknowledged", "timestamp": 1.0});
    assert_eq!(
        n.normalize(&ack.to_string(), ack),
        Normalized::Ignored { barrier: true }
    );
    let ack = json!({"type": "ack", "received_type": "shout", "status": "acknowledged", "timestamp": 1.0});
    assert_eq!(
        n.normalize(&ack.to_string(), ack),
        Normalized::Ignored { barrier: false }
    );
}

#[test]
fn a_frame_delivered_twice_keeps_its_synthesized_event_id() {
    let d = legacy();
    let mut n = d.normalizer("u1");
    let f = json!({"type": "agent_thinking", "run_id": "r", "user_id": "u1", "thread_id": "t",
                   "timestamp": 1.5, "reasoning": "x"});
    let one = frame(&mut n, f.clone());
    let two = frame(&mut n, f);
    assert_eq!(one["event_id"], two["event_id"]);
    // ...while seq goes on counting, so the duplicate stays visible to the steps.
    assert_eq!(two["seq"], 2);
}

#[test]
fn the_user_message_is_translated_and_malformed_frames_are_not() {
    let d = legacy();
    let sent = json!({"type": "user_message", "id": "m-1",
                      "payload": {"content": "hello", "thread_id": "t-1"}});
    assert_eq!(
        d.translate(&sent),
        Some(json!({"type": "user_message", "payload": {"content": "hello", "thread_id": "t-1"}}))
    );
    let claims = json!({"type": "user_message", "payload": {"content": "hi", "user_id": "bob"}});
    assert_eq!(
        d.translate(&claims),
        Some(json!({"type": "user_message", "payload": {"content": "hi", "user_id": "bob"}}))
    );
    for untouched in [
        json!({"type": "user_message"}),
        json!({"type": "user_message", "payload": {"content": 42}}),
        json!({"type": "ping", "id": "p", "payload": {}}),
    ] {
        assert_eq!(d.translate(&untouched), None);
    }
    assert_eq!(Dialect::canonical().translate(&sent), None);
}

#[test]
fn the_legacy_token_travels_base64url_in_the_subprotocols() {
    let d = legacy();
    let (plain, bearing) = d.subprotocols("a.b-c_d");
    assert_eq!(plain, ["jwt-auth"]);
    assert_eq!(
        bearing,
        [format!("jwt.{}", URL_SAFE_NO_PAD_TEST.encode("a.b-c_d"))]
    );
    assert_eq!(d.placement(), Placement::Subprotocol);
    assert!(d.supports(Placement::Header));
    assert!(!d.supports(Placement::Query));
    assert_eq!(d.claims()["iss"], "netra-auth-service");
    assert_eq!(d.claims()["jti"], "{uuid}");
}

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as URL_SAFE_NO_PAD_TEST;

#[test]
fn lacked_requirements_skip_their_scenarios_with_the_reason() {
    let d = legacy();
    assert!(d.lacked_requirement("GP-SEQ-006").is_some());
    assert!(d.lacked_requirement("GP-SEQ-001").is_none());
    let tags = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let why = d
        .skips_scenario("x", &tags(&["heartbeat", "GP-HB-001"]))
        .unwrap();
    assert!(
        why.starts_with("dialect netra-legacy lacks ping: "),
        "{why}"
    );
    assert!(d.skips_scenario("x", &tags(&["GP-HB-002"])).is_none());
    assert!(
        d.skips_scenario(
            "A user message with an unknown top-level field is answered with invalid_message",
            &tags(&["GP-ROUTE-005"])
        )
        .is_some()
    );
    assert!(d.lacked_error_code("unknown_type").is_some());
    assert!(d.lacked_error_code("invalid_json").is_none());
    assert!(
        Dialect::canonical()
            .skips_scenario("x", &tags(&["GP-HB-001"]))
            .is_none()
    );
}

#[test]
fn a_failed_legacy_tool_gets_the_error_object_the_schema_wants_and_only_then() {
    let d = legacy();
    let mut n = d.normalizer("u1");
    let mut completed = |success: bool, extra: Value| {
        let exec = json!({"type": "tool_executing", "run_id": "r", "user_id": "u1",
                          "thread_id": "t", "timestamp": 1.0, "tool_name": "search"});
        frame(&mut n, exec);
        let mut f = json!({"type": "tool_completed", "run_id": "r", "user_id": "u1",
                           "thread_id": "t", "timestamp": 1.0, "tool_name": "search",
                           "results": null, "success": success});
        f.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        frame(&mut n, f)
    };
    let valid = |f: &Value| goldenpath_spec::schema::validate(MessageType::ToolCompleted, f);

    let failed = completed(false, json!({}));
    assert!(valid(&failed).is_ok(), "{failed}: {:?}", valid(&failed));
    assert_eq!(failed["payload"]["status"], "error");
    assert_eq!(failed["payload"]["error"]["code"], "tool_failed");

    let ok = completed(true, json!({}));
    assert!(valid(&ok).is_ok(), "{ok}");
    assert!(ok["payload"].get("error").is_none(), "{ok}");

    // A reason the backend gives is kept.
    let own = json!({"error": {"code": "timeout", "message": "search timed out"}});
    let reasoned = completed(false, own);
    assert_eq!(reasoned["payload"]["error"]["code"], "timeout");

    let rules: BTreeMap<String, u64> = d.rules_fired().into_iter().collect();
    assert_eq!(
        rules["default: tool_completed.error when status = \"error\""],
        1
    );
}
