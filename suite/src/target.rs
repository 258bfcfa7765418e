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

pub use crate::placement::Placement;

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

/// How much of each connection a transcript keeps (`--evidence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Evidence {
    /// The first and the last [`TRANSCRIPT_KEEP`] frames, with a count of those left out.
    #[default]
    Bounded,
    /// Every frame.
    Full,
}

/// Frames a bounded transcript keeps at each end of a connection.
pub const TRANSCRIPT_KEEP: usize = 100;

/// Frames one connection may deliver before the runner stops reading it as a flood: far more
/// than any scenario's runs hold.
pub const MAX_FRAMES_PER_CONNECTION: usize = 5_000;

/// Frames in a row a wait past its deadline may still take when they are already there.
const LATE_READS: usize = 1024;

/// Bytes one connection may deliver before the runner stops reading it as a flood.
pub const MAX_BYTES_PER_CONNECTION: usize = 8 << 20;

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
            return tls_reason(tls);
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

/// A failed TLS check for people: which check failed.
fn tls_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "TLS: the certificate's issuer is not trusted (unknown issuer; --ca-cert names a CA or the server's own certificate)".to_owned(),
            C::Expired | C::ExpiredContext { .. } => "TLS: the certificate has expired".to_owned(),
            C::NotValidYet | C::NotValidYetContext { .. } => "TLS: the certificate is not valid yet".to_owned(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "TLS: the certificate does not name this host (name mismatch)".to_owned()
            }
            C::BadSignature => "TLS: the certificate's signature does not verify".to_owned(),
            C::Revoked => "TLS: the certificate is revoked".to_owned(),
            other => format!("TLS: invalid certificate ({other})"),
        },
        other => format!("TLS: {other}"),
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
    let mut pinned = Vec::new();
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
        for cert in &certs {
            roots
                .add(cert.clone())
                .map_err(|e| ConnectError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        }
        pinned = certs;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Config(e.to_string()))?;
    if pinned.is_empty() {
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    }
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| ConnectError::Config(format!("--ca-cert: {e}")))?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            inner,
            pinned,
            provider,
        }))
        .with_no_client_auth())
}

/// The verifier with `--ca-cert`: the usual chain check against the system's roots and the
/// given certificates; and a server certificate that is exactly one of the given ones (a
/// self-signed development certificate, its own issuer, that the chain check rejects when it
/// is no CA certificate) is trusted as pinned, once it names the host.
#[derive(Debug)]
struct Pinned {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<rustls_pki_types::CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
                | rustls::CertificateError::Other(_)
                | rustls::CertificateError::BadEncoding,
            )) if self
                .pinned
                .iter()
                .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
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
    /// What was waited for did not arrive before the wait's deadline (whatever else kept
    /// arriving).
    #[error("nothing awaited arrived on {connection} in time")]
    Timeout {
        /// The connection.
        connection: String,
    },
    /// The connection is closed.
    #[error("{connection} is closed ({})", close_text(*code))]
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
    /// The transcript's first frames (all of them with [`Evidence::Full`]).
    transcript: Vec<Frame>,
    /// The last frames of a bounded transcript, after the first ones.
    tail: std::collections::VecDeque<Frame>,
    /// Frames left out between `transcript` and `tail`.
    omitted: usize,
    /// Frames logged in all: the index of the next one.
    logged: usize,
    evidence: Evidence,
    /// Frames and bytes received: a connection past the bounds is a flood, no longer read.
    frames_in: usize,
    bytes_in: usize,
    /// Frames read in a row by waits already past their deadline.
    late_reads: usize,
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
    owners: Arc<Owners>,
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
            tail: Default::default(),
            omitted: 0,
            logged: 0,
            evidence: Evidence::default(),
            frames_in: 0,
            bytes_in: 0,
            late_reads: 0,
            received: Vec::new(),
            received_at: Vec::new(),
            cursor: 0,
            // A dialect whose server answers no ping settles by the quiet window from the start.
            pings_unanswered: !dialect.sends_ping(),
            judge: Judge::new(label, user, dialect, Some(owners.clone())),
            owners,
            dialect: dialect.clone(),
            closed: None,
        }
    }

    /// The same connection, its transcript keeping `evidence`.
    fn keeping(mut self, evidence: Evidence) -> Conn {
        self.evidence = evidence;
        self
    }

    /// Keep a frame in the transcript; returns its index there.
    fn log(&mut self, direction: Direction, frame: String) -> usize {
        let t_ms = self.opened.elapsed().as_secs_f64() * 1000.0;
        let frame = Frame {
            direction,
            t_ms,
            frame: redact(&frame),
        };
        let at = self.logged;
        self.logged += 1;
        if self.evidence == Evidence::Full || self.transcript.len() < TRANSCRIPT_KEEP {
            self.transcript.push(frame);
        } else {
            self.tail.push_back(frame);
            if self.tail.len() > TRANSCRIPT_KEEP {
                self.tail.pop_front();
                self.omitted += 1;
            }
        }
        at
    }

    /// Count a received frame of `len` bytes; past the flood bounds, stop reading the
    /// connection (it counts as ended, and the transcript says why).
    fn overrun(&mut self, len: usize) -> bool {
        self.frames_in += 1;
        self.bytes_in += len;
        if self.frames_in <= MAX_FRAMES_PER_CONNECTION && self.bytes_in <= MAX_BYTES_PER_CONNECTION
        {
            return false;
        }
        self.log(
            Direction::Received,
            format!(
                "<flood: the runner stopped reading after {} frames ({} bytes) on this connection; its bounds are {MAX_FRAMES_PER_CONNECTION} frames and {MAX_BYTES_PER_CONNECTION} bytes>",
                self.frames_in, self.bytes_in
            ),
        );
        self.closed = Some(None);
        self.owners.note(format!(
            "the target flooded a connection: reading stopped after {} frames ({} bytes)",
            self.frames_in, self.bytes_in
        ));
        true
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
            // A server that never stops sending keeps the next frame always ready, and a timer
            // polled after a ready frame never fires: past its deadline a wait still takes the
            // frames already there (a drain after a wait), but at most LATE_READS of them.
            let late = Instant::now() >= deadline;
            if late {
                self.late_reads += 1;
            } else {
                self.late_reads = 0;
            }
            let timeout = || RecvError::Timeout {
                connection: self.label.clone(),
            };
            if self.late_reads > LATE_READS {
                return Err(timeout());
            }
            // Frames already buffered come back without touching the socket: spend the task's
            // budget anyway, so that a flood still lets the run's own deadline fire.
            tokio::task::consume_budget().await;
            let next = if late {
                match futures_util::FutureExt::now_or_never(self.ws.next()) {
                    Some(next) => next,
                    None => return Err(timeout()),
                }
            } else {
                match tokio::time::timeout_at(deadline, self.ws.next()).await {
                    Ok(next) => next,
                    Err(_) => return Err(timeout()),
                }
            };
            let len = match &next {
                Some(Ok(m)) => m.len(),
                _ => 0,
            };
            if matches!(next, Some(Ok(_))) && self.overrun(len) {
                return Ok(Incoming::Closed(None));
            }
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
                Some(Err(tungstenite::Error::Capacity(
                    tungstenite::error::CapacityError::MessageTooLong { size, max_size },
                ))) => {
                    let what = format!(
                        "a frame of {size} bytes, over the {max_size} bytes a server frame may hold (features/limits.toml): the runner dropped the connection unread"
                    );
                    self.log(Direction::Received, format!("<{what}>"));
                    self.owners.note(format!("the target sent {what}"));
                    self.closed = Some(None);
                    Incoming::Closed(None)
                }
                Some(Err(e)) => {
                    self.log(Direction::Received, format!("<connection error: {e}>"));
                    self.owners.note(format!(
                        "the target broke a connection: {}",
                        redact(&e.to_string())
                    ));
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
        let mut frames = self.transcript.clone();
        frames.extend(self.tail.iter().cloned());
        let transcript = Transcript {
            connection: self.label.clone(),
            user: self.user.clone(),
            frames,
            omitted: self.omitted,
            omitted_after: if self.omitted > 0 {
                self.transcript.len()
            } else {
                0
            },
        };
        (self.judge.findings().to_vec(), transcript)
    }
}

/// A close code for people: `code 1011 (internal error)`, or `no close code`.
pub(crate) fn close_text(code: Option<u16>) -> String {
    let Some(code) = code else {
        return "no close code".to_owned();
    };
    let name = match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status",
        1006 => "abnormal closure",
        1007 => "invalid payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake",
        _ => return format!("code {code}"),
    };
    format!("code {code} ({name})")
}
