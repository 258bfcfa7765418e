//! Runs on the legacy-shaped server: five events in mixed envelopes on every tab of their owner
//! only, every shape that starts one, and `THREAD_NOT_FOUND` for a thread that is not the user's.

use crate::client::{SECRET, connect, error_code, is_iso, keys, next_json, run_frames, send};
use crate::legacy::{Config, LegacyServer};
use serde_json::json;

#[tokio::test]
async fn a_run_is_five_events_in_mixed_envelopes_on_every_tab_of_its_owner_only() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let (mut tab1, _) = connect(&server, "alice").await;
    let (mut tab2, _) = connect(&server, "alice").await;
    let (mut bob, _) = connect(&server, "bob").await;
    send(
        &mut tab1,
        json!({"type": "user_message", "payload": {"content": "find two words", "user_id": "bob"}, "user_id": "bob"}),
    )
    .await;
    // A notice of the thread it created, to the sender's tab: no run data.
    let notice = next_json(&mut tab1).await;
    assert_eq!(notice["type"], "thread_created", "{notice}");
    assert!(notice.get("run_id").is_none() && notice["data"].get("run_id").is_none());
    let run = run_frames(&mut tab1).await;
    assert_eq!(
        run,
        run_frames(&mut tab2).await,
        "both tabs get the same run"
    );
    let types: Vec<&str> = run.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
    let run_id = run[0]["run_id"].as_str().unwrap();
    let thread_id = run[0]["thread_id"].as_str().unwrap();
    assert!(thread_id.starts_with("thread_"), "{thread_id}");
    assert_eq!(notice["data"]["thread_id"], thread_id);
    // A: nested data, ISO timestamp.
    let started = &run[0];
    assert!(is_iso(&started["timestamp"]), "{started}");
    assert_eq!(
        started["user_id"], "alice",
        "the claimed user_id is ignored"
    );
    assert!(started["agent_name"].is_string() && started["data"].is_object());
    // B: flat, float timestamp.
    let thinking = &run[1];
    assert!(thinking["timestamp"].is_f64(), "{thinking}");
    assert_eq!(
        (&thinking["critical"], &thinking["metadata"]),
        (&json!(true), &json!({}))
    );
    assert!(thinking["reasoning"].is_string() && thinking["step_number"] == 1);
    assert_eq!(
        (
            &thinking["run_id"],
            &thinking["thread_id"],
            &thinking["user_id"]
        ),
        (&json!(run_id), &json!(thread_id), &json!("alice"))
    );
    // A with a top-level tool_name and data.parameters.
    let executing = &run[2];
    assert!(is_iso(&executing["timestamp"]), "{executing}");
    assert!(executing["tool_name"].is_string() && executing["data"]["parameters"].is_object());
    assert_eq!(executing["thread_id"], thread_id);
    // B with the tool's results.
    let completed = &run[3];
    assert!(completed["timestamp"].is_f64(), "{completed}");
    assert_eq!(completed["tool_name"], executing["tool_name"]);
    assert!(completed["execution_id"].is_string() && completed["results"].is_object());
    assert!(completed["duration"].is_f64() && completed["success"] == true);
    assert_eq!(completed["user_id"], "alice");
    // D: payload, ISO timestamp, the run's ids nested in the payload, no user_id, the final
    // response an object.
    let done = &run[4];
    assert!(is_iso(&done["timestamp"]), "{done}");
    assert_eq!(done["payload"]["status"], "completed");
    assert!(
        done["payload"]["final_response"]["content"].is_string(),
        "{done}"
    );
    assert!(done["payload"]["result"].is_object() && done["payload"]["execution_time_ms"].is_u64());
    assert_eq!(
        (&done["payload"]["run_id"], &done["payload"]["thread_id"]),
        (&json!(run_id), &json!(thread_id))
    );
    assert!(done.get("user_id").is_none() && done.get("run_id").is_none());
    assert!(run[..4].iter().all(|f| f["run_id"] == run_id), "{run:?}");
    let mut all = Vec::new();
    run.iter().for_each(|f| keys(f, &mut all));
    for absent in ["seq", "event_id", "tool_call_id"] {
        assert!(!all.iter().any(|k| k == absent), "{absent} in {run:?}");
    }
    // Bob got nothing: the first frame after his own message is its answer.
    send(&mut bob, json!({"type": "ping"})).await;
    let ack = next_json(&mut bob).await;
    assert_eq!(
        ack,
        json!({"type": "ack", "received_type": "ping", "status": "acknowledged", "timestamp": ack["timestamp"]})
    );
    assert!(ack["timestamp"].is_f64());
    drop((tab1, tab2, bob));
    server.stop().await;
}

#[tokio::test]
async fn every_run_starting_shape_starts_one_run_in_the_right_thread() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let (mut alice, _) = connect(&server, "alice").await;
    send(
        &mut alice,
        json!({"type": "start_agent", "payload": {"user_request": "hi"}}),
    )
    .await;
    let first = run_frames(&mut alice).await;
    let thread = first[0]["thread_id"].clone();
    let shapes = [
        json!({"type": "user_message", "payload": {"text": "hi", "thread_id": thread}}),
        json!({"type": "user", "payload": {"content": "hi", "thread_id": thread}}),
        json!({"type": "user_input", "payload": {"content": "hi", "thread_id": thread}}),
        json!({"type": "chat_message", "payload": {"content": "hi", "thread_id": thread}}),
        json!({"type": "message", "payload": {"content": "hi", "thread_id": thread}}),
        json!({"type": "start_agent", "payload": {"user_request": "hi", "thread_id": thread}}),
        json!({"type": "execute_agent", "content": "hi", "user_id": "bob", "thread_id": thread}),
    ];
    for shape in shapes {
        send(&mut alice, shape.clone()).await;
        let run = run_frames(&mut alice).await;
        assert_eq!(run[0]["type"], "agent_started", "{shape}: {run:?}");
        assert_eq!(run[4]["type"], "agent_completed", "{shape}: {run:?}");
        assert_eq!(run[0]["thread_id"], thread, "{shape}");
        assert_eq!(run[0]["user_id"], "alice", "{shape}");
        assert_ne!(run[0]["run_id"], first[0]["run_id"], "{shape}");
    }
    drop(alice);
    server.stop().await;
}

#[tokio::test]
async fn a_thread_of_another_user_or_none_is_thread_not_found_and_starts_no_run() {
    let server = LegacyServer::start(Config::new(SECRET)).await.unwrap();
    let (mut alice, _) = connect(&server, "alice").await;
    let (mut bob, _) = connect(&server, "bob").await;
    send(
        &mut alice,
        json!({"type": "user_message", "payload": {"content": "hi"}}),
    )
    .await;
    let thread = run_frames(&mut alice).await[0]["thread_id"].clone();
    for thread_id in [thread, json!("thread_doesnotexist")] {
        send(
            &mut bob,
            json!({"type": "user_message", "payload": {"content": "hi", "thread_id": thread_id}}),
        )
        .await;
        assert_eq!(error_code(&next_json(&mut bob).await), "THREAD_NOT_FOUND");
    }
    // No run reached either of them: the next frame each gets is the answer to its own ack.
    for ws in [&mut alice, &mut bob] {
        send(ws, json!({"type": "hello"})).await;
        assert_eq!(next_json(ws).await["type"], "ack");
    }
    drop((alice, bob));
    server.stop().await;
}
