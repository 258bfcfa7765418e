//! `ping` → `pong`, echoing the ping's `id` as `request_id`.

use goldenpath_spec::MessageType;
use serde::Deserialize;
use serde_json::json;

use super::Sender;
use crate::faults::fault_on;

/// A `ping` frame (its payload carries nothing the server reads).
#[derive(Debug, Deserialize)]
pub(crate) struct Ping {
    id: Option<String>,
}

pub(super) fn handle(ping: Ping, sender: &Sender<'_>) {
    let payload = match ping.id {
        Some(id) => json!({"request_id": id}),
        None => json!({}),
    };
    let shared = sender.shared;
    if fault_on!(shared.faults, IgnorePing) {
        return;
    }
    if fault_on!(shared.faults, SlowPong) {
        let (broadcast, conn) = (shared.broadcast.clone(), sender.conn.clone());
        shared.tasks.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            broadcast.to_connection(&conn, MessageType::Pong, payload);
        });
        return;
    }
    shared
        .broadcast
        .to_connection(sender.conn, MessageType::Pong, payload);
}
