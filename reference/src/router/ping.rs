//! `ping` → `pong`, echoing the ping's `id` as `request_id`.

use goldenpath_spec::MessageType;
use serde::Deserialize;
use serde_json::json;

use super::Sender;

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
    sender
        .shared
        .broadcast
        .to_connection(sender.conn, MessageType::Pong, payload);
}
