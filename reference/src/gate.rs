//! The front gate: every TCP connection takes a slot of the global cap before anything reads
//! from it, and must complete its authenticated upgrade within the handshake deadline.
//!
//! [`Gate`] is the listener `axum::serve` accepts from. At the cap, a new socket is answered
//! with HTTP 503 (`server_full`) and closed without reaching the HTTP stack. An admitted socket
//! is a [`GatedIo`]: it holds its slot until it is dropped (the upgraded WebSocket keeps the
//! same socket, so the slot lasts as long as the connection), and until the upgrade handler
//! marks its [`Handshake`] done, reading or writing it past the deadline fails, which makes the
//! HTTP stack drop it. A plain HTTP connection gets a fresh deadline with each request.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::metrics::{Metrics, inc};

/// How many refused sockets may be in the middle of getting their 503 at once; past this a
/// refused socket is closed without one.
const REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refused socket gets to take its 503 before it is closed anyway.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The body of the 503 a socket over the global cap gets.
const SERVER_FULL: &str = r#"{"error":"server_full","reason":"server_full","message":"the server holds as many connections as it may; retry later"}"#;

/// The listener: the global connection cap and the handshake deadline around a `TcpListener`.
pub(crate) struct Gate {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    deadline: Duration,
    metrics: Arc<Metrics>,
}

impl Gate {
    pub(crate) fn new(
        listener: TcpListener,
        max_connections: usize,
        deadline: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Gate {
            listener,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            refusals: Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT)),
            deadline,
            metrics,
        }
    }

    /// Answer a socket over the cap with a 503, without waiting on it.
    fn refuse(&self, mut socket: TcpStream) {
        inc(&self.metrics.server_full_refusals);
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else {
            return; // Dropped: closed without a word.
        };
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
                let response = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: {}\r\n\r\n{SERVER_FULL}",
                    SERVER_FULL.len()
                );
                socket.write_all(response.as_bytes()).await?;
                socket.shutdown().await?;
                // Read what the client sent, so that closing does not reset the connection
                // before it has read the 503.
                let mut sink = [0u8; 1024];
                loop {
                    match tokio::io::AsyncReadExt::read(&mut socket, &mut sink).await? {
                        0 => return Ok::<_, io::Error>(()),
                        _ => continue,
                    }
                }
            })
            .await;
        });
    }
}

impl axum::serve::Listener for Gate {
    type Io = GatedIo;
    type Addr = Handshake;

    async fn accept(&mut self) -> (GatedIo, Handshake) {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset while queued: wait a moment
                    // rather than spin (as axum's own listener does).
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "connection refused: server full");
                self.refuse(socket);
                continue;
            };
            let _ = socket.set_nodelay(true);
            let handshake = Handshake {
                peer,
                state: Arc::new(State::default()),
            };
            let io = GatedIo {
                socket,
                _slot: slot,
                deadline: Some(Box::pin(tokio::time::sleep(self.deadline))),
                period: self.deadline,
                seen_renewals: 0,
                state: handshake.state.clone(),
                metrics: self.metrics.clone(),
            };
            return (io, handshake);
        }
    }

    fn local_addr(&self) -> io::Result<Handshake> {
        Ok(Handshake {
            peer: self.listener.local_addr()?,
            state: Arc::default(),
        })
    }
}

#[derive(Default)]
struct State {
    /// Set once the connection is authenticated and upgraded: no deadline from then on.
    done: AtomicBool,
    /// Bumped by each plain HTTP request: the deadline starts again.
    renewals: AtomicU64,
}

/// One accepted socket's handshake, as the request handlers see it (axum's connect info).
#[derive(Clone)]
pub(crate) struct Handshake {
    peer: SocketAddr,
    state: Arc<State>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.peer.fmt(f)
    }
}

impl Handshake {
    /// The upgrade is authenticated and under way: lift the deadline.
    pub(crate) fn complete(&self) {
        self.state.done.store(true, Ordering::Relaxed);
    }

    /// A plain HTTP request arrived: the deadline starts again for the next one.
    pub(crate) fn renew(&self) {
        self.state.renewals.fetch_add(1, Ordering::Relaxed);
    }

    /// The client's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Gate>> for Handshake {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Gate>) -> Self {
        stream.remote_addr().clone()
    }
}

/// An admitted socket: its slot of the global cap and, until the upgrade, its deadline.
pub(crate) struct GatedIo {
    socket: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// `None` once the handshake is done: an idle connection holds no timer.
    deadline: Option<Pin<Box<Sleep>>>,
    period: Duration,
    seen_renewals: u64,
    state: Arc<State>,
    metrics: Arc<Metrics>,
}

impl GatedIo {
    /// `Err` once the deadline has passed on a handshake not yet done.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(deadline) = self.deadline.as_mut() else {
            return Ok(());
        };
        if self.state.done.load(Ordering::Relaxed) {
            self.deadline = None;
            return Ok(());
        }
        let renewals = self.state.renewals.load(Ordering::Relaxed);
        if renewals != self.seen_renewals {
            self.seen_renewals = renewals;
            deadline.as_mut().reset(Instant::now() + self.period);
        }
        match deadline.as_mut().poll(cx) {
            Poll::Pending => Ok(()),
            Poll::Ready(()) => {
                inc(&self.metrics.handshake_timeouts);
                self.deadline = None;
                self.state.done.store(true, Ordering::Relaxed);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "handshake not completed within the deadline",
                ))
            }
        }
    }
}

impl AsyncRead for GatedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for GatedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.socket).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }
}
