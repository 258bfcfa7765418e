//! The server under test: how to reach it (here), and one recorded WebSocket connection to it
//! (`conn.rs`), over TLS when its URL says so (`tls.rs`).
//!
//! Every frame a [`Conn`] receives is checked on arrival by its judge (`judge.rs`), whatever
//! the scenario; what breaks is kept as findings beside the transcript.

use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::dialect::Dialect;
use crate::judge::Owners;
use crate::tokens::redact;

pub use crate::placement::Placement;
pub(crate) use conn::close_text;
pub use conn::{
    Conn, Evidence, Incoming, MAX_BYTES_PER_CONNECTION, MAX_FRAMES_PER_CONNECTION, RecvError,
    TRANSCRIPT_KEEP,
};

mod conn;
mod tls;

/// An open WebSocket to the target, plain or TLS.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why the target could not be reached at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// TCP, TLS or the HTTP exchange failed before any answer.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL (secrets redacted).
        url: String,
        /// What failed.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("no answer from {url} within {}: it accepted the connection and did not upgrade it", crate::human(*timeout))]
    Timeout {
        /// The URL (secrets redacted).
        url: String,
        /// The timeout that fired.
        timeout: Duration,
    },
    /// The URL or a header is unusable.
    #[error("bad target: {0}")]
    Config(String),
    /// The endpoint answered HTTP, but not with a WebSocket upgrade (200, 404, a redirect...).
    #[error("{url} is not a WebSocket endpoint: it answered HTTP {status}{location}")]
    NotWebSocket {
        /// The URL (secrets redacted).
        url: String,
        /// The HTTP status and its reason, e.g. `404 Not Found`.
        status: String,
        /// `, redirecting to <location>` for a redirect, else empty.
        location: String,
    },
}

/// The answer to an upgrade request that did not open a connection.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The HTTP status (401, 403, 429...).
    pub status: u16,
    /// The response body, as text.
    pub body: String,
    /// The status's reason phrase (`Not Found`), when it has one.
    pub reason: String,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
}

impl Refusal {
    /// Whether the answer says the endpoint is no WebSocket endpoint at all (a success, a
    /// redirect, not found, method not allowed...) rather than a refusal of this client.
    pub fn not_websocket(&self) -> bool {
        matches!(self.status, 200..=399 | 404 | 405 | 410 | 501)
    }

    /// The refusal as [`ConnectError::NotWebSocket`] for `url`.
    pub fn into_error(self, url: String) -> ConnectError {
        ConnectError::NotWebSocket {
            url,
            status: format!("{} {}", self.status, self.reason).trim().to_owned(),
            location: self
                .location
                .map(|l| format!(", redirecting to {}", redact(&l)))
                .unwrap_or_default(),
        }
    }
}

/// How to reach the server under test.
#[derive(Clone)]
pub struct Target {
    url: String,
    headers: Vec<(String, String)>,
    subprotocol: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    dialect: Dialect,
    owners: Arc<Owners>,
    evidence: Evidence,
    /// Every instance of the deployment, `url` first: one user's connections are spread over
    /// them round-robin ([`Target::with_instances`]).
    instances: Vec<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

impl Target {
    /// A target at `url` (`ws://` or `wss://`), with extra upgrade headers, an extra offered
    /// subprotocol, and for `wss://` the system's roots plus an optional private CA (PEM).
    pub fn new(
        url: &str,
        headers: Vec<(String, String)>,
        subprotocol: Option<String>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Target, ConnectError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| ConnectError::Config(format!("{url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "ws" | "wss") {
            return Err(ConnectError::Config(format!(
                "{url:?} is not a ws:// or wss:// URL"
            )));
        }
        url.into_client_request()
            .map_err(|e| ConnectError::Config(format!("{url:?}: {e}")))?;
        let tls = if parsed.scheme() == "wss" || ca_cert.is_some() {
            Some(Arc::new(tls::tls_config(ca_cert)?))
        } else {
            None
        };
        Ok(Target {
            url: url.to_owned(),
            headers,
            subprotocol,
            tls,
            dialect: Dialect::canonical(),
            owners: Arc::default(),
            evidence: Evidence::default(),
            instances: vec![url.to_owned()],
        })
    }

    /// The same deployment reached through more instances (each `ws://` or `wss://`, sharing
    /// this target's headers, subprotocol and TLS roots): a user's connection number `n` (from
    /// 0) goes to instance `n mod count`, the first URL first, so one user's tabs are spread
    /// over every instance.
    pub fn with_instances(mut self, urls: &[String]) -> Result<Target, ConnectError> {
        for url in urls {
            let other = Target::new(url, Vec::new(), None, None)?;
            if other.tls.is_some() != self.tls.is_some() {
                return Err(ConnectError::Config(format!(
                    "{url:?}: every instance of one deployment takes the same scheme as {:?}",
                    redact(&self.url)
                )));
            }
            self.instances.push(url.clone());
        }
        Ok(self)
    }

    /// The URLs of every instance, secrets redacted: the first URL alone for one instance.
    pub fn display_deployment(&self) -> String {
        if self.instances.len() <= 1 {
            return self.display_url();
        }
        let urls: Vec<String> = self.instances.iter().map(|u| redact(u)).collect();
        format!("{} ({} instances)", urls.join(", "), urls.len())
    }

    /// How many instances the target spreads connections over.
    pub fn instance_count(&self) -> usize {
        self.instances.len()
    }

    /// The target as reached through the instance of a user's connection number `n` (from 0).
    pub(crate) fn on_instance(&self, n: usize) -> std::borrow::Cow<'_, Target> {
        if self.instances.len() <= 1 {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut target = self.clone();
        target.url = self.instances[n % self.instances.len()].clone();
        std::borrow::Cow::Owned(target)
    }

    /// The same target spoken to through `dialect`: its token placement, subprotocols and
    /// run message on the way out, its normalization on the way in. A URL without a path gets
    /// the dialect's endpoint path.
    pub fn with_dialect(mut self, dialect: Dialect) -> Target {
        if let Some(path) = dialect.endpoint_path() {
            self.url = with_path(&self.url, path);
            for url in &mut self.instances {
                *url = with_path(url, path);
            }
        }
        self.dialect = dialect;
        self
    }

    /// The same target, its transcripts keeping `evidence`.
    pub fn with_evidence(mut self, evidence: Evidence) -> Target {
        self.evidence = evidence;
        self
    }

    /// Who owns what across the check: canaries, messages, runs.
    pub(crate) fn owners(&self) -> &Arc<Owners> {
        &self.owners
    }

    /// The dialect the target is spoken to through.
    pub fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// The URL, secrets redacted.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }

    /// Open a connection labelled `label` for `user`, with `token` (or none) at `placement`.
    /// `Ok(Err(refusal))` is an HTTP answer other than the upgrade.
    pub async fn connect(
        &self,
        label: &str,
        user: &str,
        token: Option<&str>,
        placement: Placement,
        timeout: Duration,
    ) -> Result<Result<Conn, Refusal>, ConnectError> {
        let max = goldenpath_spec::limits::limits()
            .wire
            .max_server_frame_bytes;
        let config = WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let started = Instant::now();
        Ok(self
            .open(token, placement, timeout, config)
            .await?
            .map(|(ws, protocol)| {
                Conn::new(
                    label,
                    user,
                    ws,
                    protocol,
                    started,
                    &self.dialect,
                    self.owners.clone(),
                )
                .keeping(self.evidence)
            }))
    }

    /// Open a bare WebSocket with `config` (the load generator's: no transcript, small
    /// buffers). `Ok(Err(refusal))` is an HTTP answer other than the upgrade.
    pub(crate) async fn open(
        &self,
        token: Option<&str>,
        placement: Placement,
        timeout: Duration,
        config: WebSocketConfig,
    ) -> Result<Result<(WsStream, Option<String>), Refusal>, ConnectError> {
        let dialect = &self.dialect;
        let mut url = self.url.clone();
        if let (Some(token), Placement::Query) = (token, placement) {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(dialect.query_param());
            url.push('=');
            url.push_str(token);
        }
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        let headers = request.headers_mut();
        for (k, v) in &self.headers {
            let name = tungstenite::http::HeaderName::try_from(k.as_str())
                .map_err(|e| ConnectError::Config(format!("header {k:?}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| ConnectError::Config(format!("header {k:?}: {e}")))?;
            headers.insert(name, value);
        }
        let mut protocols: Vec<String> = self.subprotocol.iter().cloned().collect();
        match (token, placement) {
            (Some(token), Placement::Header) => {
                let (name, value) = dialect.auth_header(token);
                let name = tungstenite::http::HeaderName::try_from(name.as_str())
                    .map_err(|e| ConnectError::Config(format!("header {name:?}: {e}")))?;
                let value = HeaderValue::from_str(&value)
                    .map_err(|e| ConnectError::Config(e.to_string()))?;
                headers.insert(name, value);
            }
            (Some(token), Placement::Subprotocol) => {
                // The dialect's entries without the token first, then the extra one, then those
                // carrying the token.
                let (plain, bearing) = dialect.subprotocols(token);
                let extra = std::mem::take(&mut protocols);
                protocols = plain.into_iter().filter(|p| !extra.contains(p)).collect();
                protocols.extend(extra);
                protocols.extend(bearing);
            }
            _ => {}
        }
        if !protocols.is_empty() {
            let value = HeaderValue::from_str(&protocols.join(", "))
                .map_err(|e| ConnectError::Config(e.to_string()))?;
            headers.insert("sec-websocket-protocol", value);
        }
        let connector = self.tls.as_ref().map(|c| Connector::Rustls(c.clone()));
        let attempt = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            false,
            connector,
        );
        let display = self.display_url();
        match tokio::time::timeout(timeout, attempt).await {
            Err(_) => Err(ConnectError::Timeout {
                url: display,
                timeout,
            }),
            Ok(Ok((ws, response))) => {
                let protocol = response
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|p| p.to_str().ok())
                    .map(str::to_owned);
                Ok(Ok((ws, protocol)))
            }
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Ok(Err(Refusal {
                    status: response.status().as_u16(),
                    body: redact(&body),
                    reason: response
                        .status()
                        .canonical_reason()
                        .unwrap_or_default()
                        .to_owned(),
                    location: response
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .map(str::to_owned),
                }))
            }
            // A server that rejects the subprotocol offer by selecting none: the upgrade failed.
            Ok(Err(tungstenite::Error::Protocol(e))) => Ok(Err(Refusal {
                status: 101,
                body: format!("upgrade rejected by the client library: {e}"),
                reason: String::new(),
                location: None,
            })),
            Ok(Err(e)) => Err(ConnectError::Unreachable {
                url: display,
                reason: redact(&unreachable_reason(&e)),
            }),
        }
    }
}

/// Why a connection attempt failed before any HTTP answer, in one line: the TLS check that
/// failed, or the network's error.
fn unreachable_reason(e: &tungstenite::Error) -> String {
    use std::error::Error as _;
    if let tungstenite::Error::Io(io) = e {
        // rustls reports a failed certificate check as an I/O error wrapping its own.
        if let Some(tls) = io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return tls::tls_reason(tls);
        }
        return match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            _ => {
                let text = io.to_string();
                if text.contains("failed to lookup") || text.contains("Name or service not known") {
                    format!("DNS lookup failed ({text})")
                } else {
                    text
                }
            }
        };
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// `url` with `path` when it has none (nothing, or only `/`, after the authority).
fn with_path(url: &str, path: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if matches!(parsed.path(), "" | "/") => {
            parsed.set_path(path);
            parsed.into()
        }
        _ => url.to_owned(),
    }
}
