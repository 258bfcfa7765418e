//! The connect phase: every connection opened on its instance, authenticated and greeted
//! before the clock starts; the probe of every instance; and the reopening of a connection the
//! server closed (restart mode).

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::schedule::Schedule;
use super::{Live, LoadError, human};
use crate::target::{ConnectError, Target, WsStream};
use crate::tokens::{TokenKind, TokenSource};

/// How a connection the server closed reconnects (restart mode).
pub(crate) struct Reconnect {
    /// The target, every instance of it.
    pub(crate) target: Target,
    /// The run's tokens.
    pub(crate) tokens: Arc<TokenSource>,
    /// Bound on each handshake.
    pub(crate) timeout: Duration,
}

impl Reconnect {
    /// Open and greet a new connection for `user` on its own `instance`, retrying with a
    /// backoff from 50 ms doubling up to 1 s, until `until`; `None` when every attempt failed.
    pub(crate) async fn reopen(
        &self,
        user: &str,
        instance: usize,
        until: Instant,
    ) -> Option<(WsStream, String)> {
        let target = self.target.on_instance(instance);
        let mut backoff = Duration::from_millis(50);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let bound = self.timeout.min(left);
            if let Ok(opened) = open_one(&target, &self.tokens, user, bound).await {
                return Some(opened);
            }
            let wait = backoff.min(until.saturating_duration_since(Instant::now()));
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// The load generator's WebSocket settings: small buffers, so that thousands of idle
/// connections stay cheap (tungstenite's default 128 KiB read buffer costs ~138 KB each).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// An open connection: (user, connection), the instance it went to, the socket and its
/// greeting.
type Opened = Vec<((u64, u64), usize, (WsStream, String))>;

/// The instance connection `conn` of user `user` goes to: consecutive users start on
/// consecutive instances and a user's connections go round the instances from there, so both
/// users and each user's tabs are spread over them.
pub(crate) fn instance_of(user: u64, conn: u64, instances: usize) -> usize {
    ((user + conn) % instances.max(1) as u64) as usize
}

/// With several instances, one connection to each before the connect phase: an instance that
/// is unreachable or not a WebSocket endpoint is named, not hidden among the other failures.
pub(crate) async fn probe(
    target: &Target,
    tokens: &TokenSource,
    user: &str,
    timeout: Duration,
) -> Result<(), LoadError> {
    for i in 0..target.instance_count() {
        let instance = target.on_instance(i);
        match open_one(&instance, tokens, user, timeout).await {
            Ok((mut ws, _)) => {
                let _ = tokio::time::timeout(timeout, ws.close(None)).await;
            }
            Err(OpenError::Fatal(e)) => return Err(e),
            Err(OpenError::Unreachable(e)) => return Err(LoadError::Unreachable(e)),
            Err(OpenError::Failed(why)) => {
                return Err(LoadError::Connect {
                    url: instance.display_url(),
                    wanted: 1,
                    failed: 1,
                    first: format!("the probe of instance {} failed: {why}", i + 1),
                });
            }
        }
    }
    Ok(())
}

/// Open and greet every connection, `concurrency` at a time, each on its instance
/// ([`instance_of`]).
pub(crate) async fn connect_all(
    target: &Target,
    tokens: &TokenSource,
    schedule: &Schedule,
    concurrency: usize,
    timeout: Duration,
    live: &Live,
) -> Result<Opened, LoadError> {
    let count = target.instance_count();
    let mut plan = (0..schedule.users).flat_map(|u| (0..schedule.conns).map(move |c| (u, c)));
    let mut pending = FuturesUnordered::new();
    let mut opened = Vec::new();
    let mut failed = 0;
    let mut first_failure: Option<(String, String)> = None;
    let mut unreachable = None;
    let wanted = (schedule.users * schedule.conns) as usize;
    loop {
        while pending.len() < concurrency {
            let Some((user, conn)) = plan.next() else {
                break;
            };
            let instance = instance_of(user, conn, count);
            pending.push(async move {
                let name = schedule.user_name(user);
                let on = target.on_instance(instance);
                let result = open_one(&on, tokens, &name, timeout).await;
                ((user, conn), instance, result, on.display_url())
            });
        }
        let Some((key, instance, result, url)) = pending.next().await else {
            break;
        };
        match result {
            Ok(ws) => {
                live.connected.fetch_add(1, Ordering::Relaxed);
                opened.push((key, instance, ws));
            }
            Err(OpenError::Fatal(e)) => return Err(e),
            Err(OpenError::Failed(why)) => {
                failed += 1;
                first_failure.get_or_insert((url, why));
            }
            Err(OpenError::Unreachable(e)) => {
                failed += 1;
                first_failure.get_or_insert((url, e.to_string()));
                unreachable.get_or_insert(e);
            }
        }
    }
    if let (true, Some(e)) = (opened.is_empty(), unreachable) {
        return Err(LoadError::Unreachable(e));
    }
    if failed > 0 {
        let (url, first) = first_failure.unwrap_or_else(|| (target.display_url(), String::new()));
        return Err(LoadError::Connect {
            url,
            wanted,
            failed,
            first,
        });
    }
    Ok(opened)
}

enum OpenError {
    /// The run cannot go on (a token or configuration problem).
    Fatal(LoadError),
    /// No answer from the server at all.
    Unreachable(ConnectError),
    /// This connection failed.
    Failed(String),
}

/// One connection: handshake with a valid token, then its `connection_established`.
async fn open_one(
    target: &Target,
    tokens: &TokenSource,
    user: &str,
    timeout: Duration,
) -> Result<(WsStream, String), OpenError> {
    let token = tokens
        .token(user, TokenKind::Valid)
        .await
        .map_err(|e| OpenError::Fatal(e.into()))?;
    let opened = target
        .open(
            Some(&token),
            target.dialect().placement(),
            timeout,
            ws_config(),
        )
        .await;
    let mut ws = match opened {
        Ok(Ok((ws, _))) => ws,
        // Not a refusal of the token or a capacity limit: not a WebSocket endpoint at all.
        Ok(Err(refusal))
            if refusal.status != 101
                && (!matches!(refusal.status, 400..=499 | 503) || refusal.status == 404) =>
        {
            return Err(OpenError::Fatal(LoadError::NotWebSocket {
                url: target.display_url(),
                status: refusal.status,
            }));
        }
        Ok(Err(refusal)) => {
            return Err(OpenError::Failed(format!(
                "{user}: HTTP {} {}",
                refusal.status,
                refusal.body.trim()
            )));
        }
        Err(e @ ConnectError::Config(_)) => return Err(OpenError::Fatal(e.into())),
        Err(e) => return Err(OpenError::Unreachable(e)),
    };
    let greeting = tokio::time::timeout(timeout, ws.next()).await;
    match greeting {
        Ok(Some(Ok(Message::Text(text))))
            if serde_json::from_str::<Value>(text.as_str())
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
                .as_deref()
                == Some("connection_established") =>
        {
            Ok((ws, text.as_str().to_owned()))
        }
        Ok(Some(Ok(other))) => Err(OpenError::Failed(format!(
            "{user}: the first frame is not connection_established: {other}"
        ))),
        Ok(_) => Err(OpenError::Failed(format!(
            "{user}: the connection closed before connection_established"
        ))),
        Err(_) => Err(OpenError::Failed(format!(
            "{user}: no connection_established within {}",
            human(timeout)
        ))),
    }
}
