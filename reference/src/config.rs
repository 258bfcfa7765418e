//! Server configuration, and the command-line flags that build it.

use std::time::Duration;

/// Everything [`serve`](crate::serve) needs to know. Build it with [`Config::new`] and the
/// `with_*` methods, or from the command line with [`ServeArgs`].
#[derive(Clone)]
pub struct Config {
    /// The HS256 secret tokens are signed with.
    pub jwt_secret: String,
    /// When set, tokens must carry this `iss`.
    pub jwt_issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub jwt_audience: Option<String>,
    /// How many connections one user may hold open at once; the next is refused with HTTP 429.
    pub max_connections_per_user: usize,
    /// The largest text frame the router accepts, in bytes. A larger frame up to
    /// [`Config::transport_frame_limit`] is answered with an `error` frame (`frame_too_large`)
    /// and the connection stays open; a larger one still is closed with 1009.
    pub max_frame_bytes: usize,
    /// How many frames may wait for one connection before it counts as a slow consumer and is
    /// closed with 1013. Each waiting frame is a cheap reference to a frame shared by all of the
    /// owner's connections.
    pub queue_frames: usize,
    /// A connection silent for this long gets a WebSocket ping; one silent for three times this
    /// long is closed as dead.
    pub idle_ping: Duration,
    /// Serve `POST /dev/tokens`, which mints a token for any user. For development only.
    pub dev_tokens: bool,
    /// Lifetime of the tokens `POST /dev/tokens` mints.
    pub dev_token_ttl: Duration,
    /// A deliberately broken behaviour to switch on; `None` serves the spec.
    #[cfg(feature = "faults")]
    pub fault: Option<crate::Fault>,
}

impl Config {
    /// A configuration with the given secret and the defaults documented on [`ServeArgs`].
    pub fn new(jwt_secret: impl Into<String>) -> Self {
        Config {
            jwt_secret: jwt_secret.into(),
            jwt_issuer: None,
            jwt_audience: None,
            max_connections_per_user: 16,
            max_frame_bytes: 64 * 1024,
            queue_frames: 1024,
            idle_ping: Duration::from_secs(30),
            dev_tokens: false,
            dev_token_ttl: Duration::from_secs(3600),
            #[cfg(feature = "faults")]
            fault: None,
        }
    }

    /// Require this issuer (`iss`) on every token.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.jwt_issuer = Some(issuer.into());
        self
    }

    /// Require this audience (`aud`) on every token.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.jwt_audience = Some(audience.into());
        self
    }

    /// Serve `POST /dev/tokens`.
    pub fn with_dev_tokens(mut self, on: bool) -> Self {
        self.dev_tokens = on;
        self
    }

    /// Switch on a deliberately broken behaviour (see [`Fault`](crate::Fault)).
    #[cfg(feature = "faults")]
    pub fn with_fault(mut self, fault: crate::Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// The size at which the transport itself stops reading a frame and closes with 1009:
    /// four times [`Config::max_frame_bytes`], and at least 64 KiB more than it.
    pub fn transport_frame_limit(&self) -> usize {
        (self.max_frame_bytes.saturating_mul(4)).max(self.max_frame_bytes + 64 * 1024)
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Config");
        d.field("jwt_secret", &"<redacted>")
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("queue_frames", &self.queue_frames)
            .field("idle_ping", &self.idle_ping)
            .field("dev_tokens", &self.dev_tokens);
        #[cfg(feature = "faults")]
        d.field("fault", &self.fault);
        d.finish()
    }
}

/// The flags of `goldenpath serve` (and of the `goldenpath-reference` binary).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// HS256 secret that tokens are signed with.
    #[arg(long, env = "GOLDENPATH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// Require this issuer (`iss`) on tokens.
    #[arg(long)]
    pub jwt_issuer: Option<String>,
    /// Require this audience (`aud`) on tokens.
    #[arg(long)]
    pub jwt_audience: Option<String>,
    /// Connections one user may hold open at once.
    #[arg(long, default_value_t = 16)]
    pub max_connections_per_user: usize,
    /// Largest accepted text frame, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Frames queued for one connection before it is closed as a slow consumer (1013).
    #[arg(long, default_value_t = 1024)]
    pub queue_frames: usize,
    /// Serve `POST /dev/tokens {"user": "alice"}`, which mints a token for any user.
    #[arg(long)]
    pub dev_tokens: bool,
    /// Switch on one deliberately broken behaviour, to see a conformance suite fail it (the
    /// faults and the requirements each breaks: KILL_MATRIX.md).
    #[cfg(feature = "faults")]
    #[arg(long, value_enum, value_name = "NAME")]
    pub fault: Option<crate::Fault>,
}

impl ServeArgs {
    /// The [`Config`] these flags describe.
    pub fn config(&self) -> Config {
        let mut config = Config::new(self.jwt_secret.clone()).with_dev_tokens(self.dev_tokens);
        config.jwt_issuer = self.jwt_issuer.clone();
        config.jwt_audience = self.jwt_audience.clone();
        config.max_connections_per_user = self.max_connections_per_user.max(1);
        config.max_frame_bytes = self.max_frame_bytes.max(1024);
        config.queue_frames = self.queue_frames.max(1);
        #[cfg(feature = "faults")]
        {
            config.fault = self.fault;
        }
        config
    }
}
