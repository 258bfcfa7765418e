//! GP-ISO: a run reaches every connection of its owner, exactly once, and nobody else.

use crate::common::*;
use serde_json::{Value, json};
use std::collections::HashMap;

#[tokio::test]
async fn a_run_reaches_every_tab_of_its_owner_and_no_one_else() {
    let server = Server::start().await;
    let mut tabs = vec![
        server.connect("alice").await,
        server.connect("alice").await,
        server.connect("alice").await,
    ];
    let mut bob = server.connect("bob").await;
    tabs[0].say("[tools=2]").await;
    let mut runs = Vec::new();
    for tab in &mut tabs {
        let run = tab.run().await;
        assert_valid_run(&run);
        runs.push(run);
    }
    assert!(
        runs.iter().all(|r| *r == runs[0]),
        "every tab sees the same frames"
    );
    assert!(
        bob.sync().await.is_empty(),
        "bob received a frame of alice's run"
    );
    server.stop().await;
}

#[tokio::test]
async fn posting_into_another_users_thread_is_refused_and_leaks_nothing() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.say("my thread").await;
    let thread = alice.run().await[0]["thread_id"].clone();
    bob.send(json!({"type": "user_message", "id": "m-1", "payload": {"content": "hi", "thread_id": thread}})).await;
    let error = bob.next().await;
    assert_eq!(error["payload"]["code"], "thread_not_found", "{error}");
    assert!(bob.sync().await.is_empty(), "no run for bob");
    assert!(alice.sync().await.is_empty(), "alice received nothing");
    // The same answer for a thread that does not exist: existence does not leak.
    bob.send(json!({"type": "user_message", "payload": {"content": "hi", "thread_id": "t-nope"}}))
        .await;
    assert_eq!(bob.next().await["payload"]["code"], "thread_not_found");
    server.stop().await;
}

#[tokio::test]
async fn the_owner_can_post_into_the_thread_the_server_created() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice.say("first").await;
    let thread = alice.run().await[0]["thread_id"].clone();
    alice
        .send(
            json!({"type": "user_message", "payload": {"content": "second", "thread_id": thread}}),
        )
        .await;
    let run = alice.run().await;
    assert_eq!(run[0]["thread_id"], thread);
    server.stop().await;
}

#[tokio::test]
async fn a_user_id_claimed_in_the_payload_changes_nothing() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice
        .send(json!({"type": "user_message", "payload": {"content": "hi", "user_id": "bob"}}))
        .await;
    let run = alice.run().await;
    assert!(run.iter().all(|f| f["user_id"] == "alice"));
    assert!(bob.sync().await.is_empty(), "bob received alice's run");
    server.stop().await;
}

#[tokio::test]
async fn a_tab_closing_mid_run_does_not_disturb_the_others() {
    let server = Server::start().await;
    let mut staying = server.connect("alice").await;
    let mut leaving = server.connect("alice").await;
    staying.say("[tools=5 delay_ms=5]").await;
    assert_eq!(leaving.next().await["type"], "agent_started");
    drop(leaving);
    let run = staying.run().await;
    assert_valid_run(&run);
    assert_eq!(count(&run, "tool_completed"), 5);
    server.stop().await;
}

/// 50 users × 3 connections, every user sending at once: each connection receives exactly its
/// own user's runs, complete, once, in order; nothing reaches anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_with_three_tabs_each_receive_exactly_their_own_runs() {
    const USERS: usize = 50;
    const TABS: usize = 3;
    const MESSAGES: usize = 2;
    let server = std::sync::Arc::new(Server::start().await);
    let mut tasks = Vec::new();
    for u in 0..USERS {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("user-{u:02}");
            let mut tabs = Vec::new();
            for _ in 0..TABS {
                tabs.push(server.connect(&user).await);
            }
            (user, tabs)
        }));
    }
    let mut users = Vec::new();
    for t in tasks {
        users.push(t.await.unwrap());
    }
    // Everyone sends, from their first tab, before anyone reads.
    for (user, tabs) in &mut users {
        for m in 0..MESSAGES {
            let canary = format!("canary {user} #{m} [tools=2]");
            tabs[0].say(&canary).await;
        }
    }
    let mut readers = Vec::new();
    for (user, tabs) in users {
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for mut tab in tabs {
                let mut frames: Vec<Value> = Vec::new();
                while count(&frames, "agent_completed") < MESSAGES {
                    frames.push(tab.next().await);
                }
                frames.extend(tab.sync().await);
                seen.push(frames);
            }
            (user, seen)
        }));
    }
    for reader in readers {
        let (user, tabs) = reader.await.unwrap();
        for frames in tabs {
            assert!(
                frames.iter().all(|f| f["user_id"] == user.as_str()),
                "a frame for another user reached {user}"
            );
            let mut by_run: HashMap<String, Vec<Value>> = HashMap::new();
            for f in frames {
                by_run.entry(f["run_id"].to_string()).or_default().push(f);
            }
            assert_eq!(by_run.len(), MESSAGES, "{user}: runs lost or extra");
            for run in by_run.values() {
                assert_valid_run(run);
                assert_eq!(count(run, "tool_completed"), 2);
                let canary = run.iter().find(|f| f["type"] == "tool_executing").unwrap();
                let text = canary["payload"]["parameters"]["text"].as_str().unwrap();
                assert!(
                    text.starts_with(&format!("canary {user} ")),
                    "{user} got {text}"
                );
            }
        }
    }
    std::sync::Arc::into_inner(server).unwrap().stop().await;
}
