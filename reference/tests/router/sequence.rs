//! GP-SEQ: every run the agent plays keeps the state machine, whatever its script.

use crate::common::*;
use rstest::rstest;

#[rstest]
#[case::default("hello", 1, 1, "agent_completed")]
#[case::no_tools("[tools=0 think=0]", 0, 0, "agent_completed")]
#[case::many_tools("[tools=12 think=3]", 12, 3, "agent_completed")]
#[case::failing_tool("[tools=3 fail_tool=2]", 3, 1, "agent_completed")]
#[case::failing_run("[tools=2 fail_run]", 2, 1, "agent_error")]
#[case::delayed("[tools=2 delay_ms=2]", 2, 1, "agent_completed")]
#[tokio::test]
async fn a_scripted_run_has_its_shape_and_keeps_the_machine(
    #[case] content: &str,
    #[case] tools: usize,
    #[case] thinking: usize,
    #[case] terminal: &str,
) {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice.say(content).await;
    let run = alice.run().await;
    assert_valid_run(&run);
    assert_eq!(count(&run, "tool_executing"), tools);
    assert_eq!(count(&run, "tool_completed"), tools);
    assert_eq!(count(&run, "agent_thinking"), thinking);
    assert_eq!(run.last().unwrap()["type"], terminal);
    server.stop().await;
}

#[tokio::test]
async fn a_failing_tool_completes_with_an_error_status_and_the_run_goes_on() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice.say("[tools=2 fail_tool=1]").await;
    let run = alice.run().await;
    let completed: Vec<_> = run
        .iter()
        .filter(|f| f["type"] == "tool_completed")
        .collect();
    assert_eq!(completed[0]["payload"]["status"], "error");
    assert_eq!(completed[0]["payload"]["error"]["code"], "tool_failed");
    assert_eq!(completed[1]["payload"]["status"], "ok");
    assert_eq!(run.last().unwrap()["type"], "agent_completed");
    server.stop().await;
}

#[tokio::test]
async fn runs_of_one_user_proceed_concurrently_each_in_order() {
    let server = Server::start().await;
    let mut alice = server.connect("alice").await;
    alice.say("[tools=3 delay_ms=3]").await;
    alice.say("[tools=3 delay_ms=3]").await;
    let mut frames = Vec::new();
    while count(&frames, "agent_completed") < 2 {
        frames.push(alice.next().await);
    }
    let run_ids: std::collections::BTreeSet<String> = frames
        .iter()
        .map(|f| f["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(run_ids.len(), 2);
    for run_id in run_ids {
        let run: Vec<_> = frames
            .iter()
            .filter(|f| f["run_id"] == run_id.as_str())
            .cloned()
            .collect();
        assert_valid_run(&run);
    }
    server.stop().await;
}
