//! The server under test: how to reach it, and one recorded WebSocket connection to it.
//!
//! Every frame a [`Conn`] receives is checked on arrival by its [`Judge`], whatever the
//! scenario; what breaks is kept as [`Finding`]s beside the transcript.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::dialect::Dialect;
use crate::judge::{Judge, Judged, Owners};
use crate::report::{Direction, Finding, Frame, Transcript};
use crate::tokens::redact;

/// An open WebSocket to the target, plain or TLS.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the token goes in the upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// `Authorization: Bearer <jwt>`.
    Header,
    /// `Sec-WebSocket-Protocol: goldenpath.v1, bearer.<jwt>`.
    Subprotocol,
    /// `?token=<jwt>`.
    Query,
}

impl Placement {
    /// How the step vocabulary names it: `Authorization header`, `subprotocol offer`,
    /// `token query parameter`.
    pub fn describe(self) -> &'static str {
        match self {
            Placement::Header => "Authorization header",
            Placement::Subprotocol => "subprotocol offer",
            Placement::Query => "token query parameter",
        }
    }
}

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
    #[error("no answer from {url} within {timeout:?}")]
    Timeout {
        /// The URL (secrets redacted).
        url: String,
        /// The timeout that fired.
        timeout: Duration,
    },
    /// The URL or a header is unusable.
    #[error("bad target: {0}")]
    Config(String),
}

/// The answer to an upgrade request that did not open a connection.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The HTTP status (401, 403, 429...).
    pub status: u16,
    /// The response body, as text.
    pub body: String,
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
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("ws://") || lower.starts_with("wss://")) {
            return Err(ConnectError::Config(format!(
                "{url:?} is not a ws:// or wss:// URL"
            )));
        }
        url.into_client_request()
            .map_err(|e| ConnectError::Config(format!("{url:?}: {e}")))?;
        let tls = if lower.starts_with("wss://") || ca_cert.is_some() {
            Some(Arc::new(tls_config(ca_cert)?))
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
        let config = WebSocketConfig::default()
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
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
                }))
            }
            // A server that rejects the subprotocol offer by selecting none: the upgrade failed.
            Ok(Err(tungstenite::Error::Protocol(e))) => Ok(Err(Refusal {
                status: 101,
                body: format!("upgrade rejected by the client library: {e}"),
            })),
            Ok(Err(e)) => Err(ConnectError::Unreachable {
                url: display,
                reason: redact(&e.to_string()),
            }),
        }
    }
}

/// `url` with `path` when it has none (nothing, or only `/`, after the authority).
fn with_path(url: &str, path: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let tail = tail.strip_prefix('/').unwrap_or(tail);
    if !tail.is_empty() && !tail.starts_with(['?', '#']) {
        return url.to_owned();
    }
    format!("{}{authority}{path}{tail}", &url[..scheme_end + 3])
}

fn tls_config(ca_cert: Option<&std::path::Path>) -> Result<rustls::ClientConfig, ConnectError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_cert {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ConnectError::Config(format!("--ca-cert {}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| ConnectError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ConnectError::Config(format!(
                "--ca-cert {}: no certificate in the file",
                path.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ConnectError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// What arrived on a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A text frame holding a JSON object.
    Json(Value),
    /// A text frame that is not a JSON object.
    Text(String),
    /// A text frame the dialect ignores (kept in the transcript, not in `received`);
    /// `barrier` when it answers the suite's settle ping.
    Ignored {
        /// It answers the settle ping.
        barrier: bool,
    },
    /// A binary frame.
    Binary(usize),
    /// A pong control frame, with its data.
    Pong(Vec<u8>),
    /// A close frame, with its code, or the stream ended without one (`None`).
    Closed(Option<u16>),
}

/// Waiting for a frame failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecvError {
    /// Nothing arrived in time.
    #[error("nothing arrived on {connection} within {waited:?}")]
    Timeout {
        /// The connection.
        connection: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The connection is closed.
    #[error("{connection} is closed (close code {code:?})")]
    Closed {
        /// The connection.
        connection: String,
        /// The close code, if a close frame came.
        code: Option<u16>,
    },
}

/// One open WebSocket to the target, recording everything.
pub struct Conn {
    /// The label, e.g. `alice#1`.
    pub label: String,
    /// The user it authenticated as.
    pub user: String,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    opened: Instant,
    transcript: Vec<Frame>,
    /// Every JSON frame received, in order (also those read by earlier steps).
    pub received: Vec<Value>,
    /// When each frame of `received` arrived.
    pub received_at: Vec<Instant>,
    /// Index into `received` of the first frame no step has consumed yet.
    pub cursor: usize,
    /// Whether a `ping` sent as a barrier went unanswered within the timeout: later barriers
    /// on this connection wait only the short settle window.
    pub pings_unanswered: bool,
    judge: Judge,
    dialect: Dialect,
    closed: Option<Option<u16>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("label", &self.label)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Conn {
    fn new(
        label: &str,
        user: &str,
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        protocol: Option<String>,
        opened: Instant,
        dialect: &Dialect,
        owners: Arc<Owners>,
    ) -> Conn {
        Conn {
            label: label.to_owned(),
            user: user.to_owned(),
            protocol,
            ws,
            opened,
            transcript: Vec::new(),
            received: Vec::new(),
            received_at: Vec::new(),
            cursor: 0,
            // A dialect whose server answers no ping settles by the quiet window from the start.
            pings_unanswered: !dialect.sends_ping(),
            judge: Judge::new(label, user, dialect, Some(owners)),
            dialect: dialect.clone(),
            closed: None,
        }
    }

    /// Keep a frame in the transcript; returns its index there.
    fn log(&mut self, direction: Direction, frame: String) -> usize {
        let t_ms = self.opened.elapsed().as_secs_f64() * 1000.0;
        self.transcript.push(Frame {
            direction,
            t_ms,
            frame: redact(&frame),
        });
        self.transcript.len() - 1
    }

    /// Send a text frame.
    pub async fn send_text(&mut self, text: String) -> Result<(), RecvError> {
        self.log(Direction::Sent, text.clone());
        self.send(Message::text(text)).await
    }

    /// Send a JSON frame; a canonical `user_message` goes out as the dialect's run message.
    pub async fn send_json(&mut self, value: &Value) -> Result<(), RecvError> {
        let text = match self.dialect.translate(value) {
            Some(translated) => translated.to_string(),
            None => value.to_string(),
        };
        self.send_text(text).await
    }

    /// Whether the suite may send this connection an application `ping` (the dialect's
    /// `capabilities.ping` is not `none`).
    pub(crate) fn sends_ping(&self) -> bool {
        self.dialect.sends_ping()
    }

    /// Send a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), RecvError> {
        self.log(Direction::Sent, format!("<binary {} bytes>", bytes.len()));
        self.send(Message::binary(bytes)).await
    }

    /// Send a WebSocket ping control frame.
    pub async fn send_ping(&mut self, data: Vec<u8>) -> Result<(), RecvError> {
        self.log(
            Direction::Sent,
            format!("<ping {:?}>", String::from_utf8_lossy(&data)),
        );
        self.send(Message::Ping(data.into())).await
    }

    /// Start the closing handshake.
    pub async fn send_close(&mut self) -> Result<(), RecvError> {
        self.log(Direction::Sent, "<close 1000>".into());
        self.send(Message::Close(Some(tungstenite::protocol::CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
    }

    /// Write `bytes` straight onto the socket, past the WebSocket layer: for frames a
    /// well-behaved client never sends (not UTF-8, unmasked, reserved bits). `note` stands for
    /// them in the transcript.
    pub async fn send_raw(&mut self, bytes: &[u8], note: &str) -> Result<(), RecvError> {
        use tokio::io::AsyncWriteExt;
        self.log(
            Direction::Sent,
            format!("<raw {} bytes: {note}>", bytes.len()),
        );
        let closed = |conn: &Conn| RecvError::Closed {
            connection: conn.label.clone(),
            code: conn.closed.flatten(),
        };
        // Whatever the WebSocket layer still holds goes first.
        if self.ws.flush().await.is_err() {
            return Err(closed(self));
        }
        let socket = self.ws.get_mut();
        let written = async {
            socket.write_all(bytes).await?;
            socket.flush().await
        };
        match written.await {
            Ok(()) => Ok(()),
            Err(_) => Err(closed(self)),
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), RecvError> {
        self.ws.send(message).await.map_err(|_| RecvError::Closed {
            connection: self.label.clone(),
            code: self.closed.flatten(),
        })
    }

    /// The next frame, waiting at most until `deadline`. Pings are answered by the library
    /// and not returned.
    pub async fn recv(&mut self, deadline: Instant) -> Result<Incoming, RecvError> {
        if let Some(code) = self.closed {
            return Ok(Incoming::Closed(code));
        }
        loop {
            let started = Instant::now();
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Err(RecvError::Timeout {
                        connection: self.label.clone(),
                        waited: deadline.saturating_duration_since(started),
                    });
                }
            };
            let incoming = match next {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str().to_owned();
                    let at = self.log(Direction::Received, text.clone());
                    match self.judge.text(&text, at) {
                        Judged::Object(value) => {
                            self.received.push(value.clone());
                            self.received_at.push(Instant::now());
                            Incoming::Json(value)
                        }
                        Judged::Ignored { barrier } => Incoming::Ignored { barrier },
                        Judged::NotObject => Incoming::Text(text),
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let at = self.log(
                        Direction::Received,
                        format!("<binary {} bytes>", bytes.len()),
                    );
                    self.judge.binary(bytes.len(), at);
                    Incoming::Binary(bytes.len())
                }
                Some(Ok(Message::Pong(data))) => {
                    self.log(
                        Direction::Received,
                        format!("<pong {:?}>", String::from_utf8_lossy(&data)),
                    );
                    Incoming::Pong(data.to_vec())
                }
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    self.log(
                        Direction::Received,
                        format!(
                            "<close {}>",
                            code.map_or("without code".into(), |c| c.to_string())
                        ),
                    );
                    self.closed = Some(code);
                    Incoming::Closed(code)
                }
                Some(Err(e)) => {
                    self.log(Direction::Received, format!("<connection error: {e}>"));
                    self.closed = Some(None);
                    Incoming::Closed(None)
                }
                None => {
                    self.log(Direction::Received, "<connection ended>".into());
                    self.closed = Some(None);
                    Incoming::Closed(None)
                }
            };
            return Ok(incoming);
        }
    }

    /// The next JSON frame no step has consumed, reading from the network when needed.
    pub async fn next_json(&mut self, deadline: Instant) -> Result<Value, RecvError> {
        loop {
            if self.cursor < self.received.len() {
                self.cursor += 1;
                return Ok(self.received[self.cursor - 1].clone());
            }
            match self.recv(deadline).await? {
                Incoming::Json(_) => continue,
                Incoming::Closed(code) => {
                    return Err(RecvError::Closed {
                        connection: self.label.clone(),
                        code,
                    });
                }
                _ => continue,
            }
        }
    }

    /// Whether the connection has seen a close.
    pub fn close_code(&self) -> Option<Option<u16>> {
        self.closed
    }

    /// Whether the run `run_id` reached its terminal event on this connection.
    pub fn run_over(&self, run_id: &Value) -> bool {
        self.judge.run_over(run_id)
    }

    /// The runs seen on this connection that have not reached their terminal event.
    pub fn open_runs(&self) -> usize {
        self.judge.open_runs()
    }

    /// What the on-arrival checks found so far.
    pub fn findings(&self) -> &[Finding] {
        self.judge.findings()
    }

    /// The findings and transcript of this connection.
    pub fn evidence(&self) -> (Vec<Finding>, Transcript) {
        let transcript = Transcript {
            connection: self.label.clone(),
            user: self.user.clone(),
            frames: self.transcript.clone(),
        };
        (self.judge.findings().to_vec(), transcript)
    }
}
