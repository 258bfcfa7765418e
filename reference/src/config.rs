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
    /// How many connections one user may hold open at once; the next is refused with HTTP 429
    /// and the reason `connection_limit`.
    pub max_connections_per_user: usize,
    /// How many TCP connections the server holds at once, upgraded or not: the next is answered
    /// with HTTP 503 and the reason `server_full`, then closed. Each connection costs a file
    /// descriptor: keep this under the process's descriptor limit (`ulimit -n`).
    pub max_connections: usize,
    /// How long a TCP connection may take, from accept, to complete the authenticated
    /// WebSocket upgrade (or, on a plain HTTP connection, to send each request). A connection
    /// still short of it is dropped: it cannot hold a slot forever.
    pub handshake_timeout: Duration,
    /// The largest text frame the router accepts, in bytes. A larger frame up to
    /// [`Config::transport_frame_limit`] is answered with an `error` frame (`frame_too_large`)
    /// and the connection stays open; a larger one still is closed with 1009.
    pub max_frame_bytes: usize,
    /// How many frames may wait for one connection before it counts as a slow consumer and is
    /// closed with 1013. Each waiting frame is a cheap reference to a frame shared by all of the
    /// owner's connections.
    pub queue_frames: usize,
    /// How many bytes of frames may wait for one connection before it counts as a slow
    /// consumer and is closed with 1013. Frames are shared between the owner's connections, so
    /// this bounds what one stuck connection can pin in memory.
    pub queue_bytes: usize,
    /// How long one write to a connection may stall (its client not reading, its TCP window
    /// shut) before the connection counts as a stuck reader and is closed with 1013. The
    /// router never waits on a socket for anything else.
    pub send_timeout: Duration,
    /// On shutdown, how long runs in flight may take to finish before every connection is
    /// closed with 1001. [`serve`](crate::serve) returns within this plus one second whatever
    /// the clients do.
    pub drain: Duration,
    /// A connection silent for this long gets a WebSocket ping; one silent for three times this
    /// long is closed as dead.
    pub idle_ping: Duration,
    /// Serve `POST /dev/tokens`, which mints a token for any user. For development only.
    pub dev_tokens: bool,
    /// Lifetime of the tokens `POST /dev/tokens` mints.
    pub dev_token_ttl: Duration,
    /// Honour test directives and list the `directives` capability in `connection_established`.
    /// Off, every message gets the default run (one thinking step, one tool call) whatever its
    /// content, as from a backend with a real model behind it.
    pub directives: bool,
    /// Redis to run on (`redis://HOST:PORT`), so that several instances serve one deployment:
    /// run frames go over the owner's Redis channel and thread ownership lives in Redis. `None`
    /// keeps everything in this process.
    pub redis_url: Option<String>,
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
            max_connections: 100_000,
            handshake_timeout: Duration::from_secs(10),
            max_frame_bytes: 64 * 1024,
            queue_frames: 1024,
            queue_bytes: 8 * 1024 * 1024,
            send_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
            idle_ping: Duration::from_secs(30),
            dev_tokens: false,
            dev_token_ttl: Duration::from_secs(3600),
            directives: true,
            redis_url: None,
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

    /// Honour test directives and advertise the `directives` capability (the default), or not.
    pub fn with_directives(mut self, on: bool) -> Self {
        self.directives = on;
        self
    }

    /// Run on Redis at `url` (`redis://HOST:PORT`), beside other instances on the same Redis.
    pub fn with_redis(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
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
            .field("max_connections", &self.max_connections)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("queue_frames", &self.queue_frames)
            .field("queue_bytes", &self.queue_bytes)
            .field("send_timeout", &self.send_timeout)
            .field("drain", &self.drain)
            .field("idle_ping", &self.idle_ping)
            .field("dev_tokens", &self.dev_tokens)
            .field("directives", &self.directives)
            .field("redis_url", &self.redis_url);
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
    /// TCP connections held at once, upgraded or not; the next gets HTTP 503 (`server_full`).
    #[arg(long, default_value_t = 100_000)]
    pub max_connections: usize,
    /// Time from accept to a completed, authenticated upgrade before the socket is dropped
    /// (`10s`, `500ms`, or seconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub handshake_timeout: Duration,
    /// Largest accepted text frame, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Frames queued for one connection before it is closed as a slow consumer (1013).
    #[arg(long, default_value_t = 1024)]
    pub queue_frames: usize,
    /// Bytes queued for one connection before it is closed as a slow consumer (1013).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub queue_bytes: usize,
    /// How long one write may stall before the connection is closed as a stuck reader (1013).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub send_timeout: Duration,
    /// On SIGTERM or Ctrl-C, how long runs in flight may take to finish before every connection
    /// is closed with 1001; the process exits within this plus one second.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub drain: Duration,
    /// Serve `POST /dev/tokens {"user": "alice"}`, which mints a token for any user.
    #[arg(long)]
    pub dev_tokens: bool,
    /// Honour no test directive and advertise no `directives` capability: every message gets
    /// the default run, as from a backend with a real model (what `check` costs on one).
    #[arg(long)]
    pub no_directives: bool,
    /// Run on Redis (`redis://HOST:PORT`), beside other instances on the same Redis: a user's
    /// runs reach its connections on every instance, and threads are owned across them.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Bind with SO_REUSEPORT, so that several instances share one address and the kernel
    /// spreads connections over those listening: a rolling restart stops one while the others
    /// serve (unix only).
    #[arg(long)]
    pub reuse_port: bool,
    /// Switch on one deliberately broken behaviour, to see a conformance suite fail it (the
    /// faults and the requirements each breaks: KILL_MATRIX.md).
    #[cfg(feature = "faults")]
    #[arg(long, value_enum, value_name = "NAME")]
    pub fault: Option<crate::Fault>,
}

impl ServeArgs {
    /// The [`Config`] these flags describe.
    pub fn config(&self) -> Config {
        let mut config = Config::new(self.jwt_secret.clone())
            .with_dev_tokens(self.dev_tokens)
            .with_directives(!self.no_directives);
        config.jwt_issuer = self.jwt_issuer.clone();
        config.jwt_audience = self.jwt_audience.clone();
        config.max_connections_per_user = self.max_connections_per_user.max(1);
        config.max_frame_bytes = self.max_frame_bytes.max(1024);
        config.queue_frames = self.queue_frames.max(1);
        config.max_connections = self.max_connections.max(1);
        config.handshake_timeout = self.handshake_timeout;
        config.queue_bytes = self.queue_bytes.max(config.max_frame_bytes);
        config.send_timeout = self.send_timeout;
        config.drain = self.drain;
        config.redis_url = self.redis.clone();
        #[cfg(feature = "faults")]
        {
            config.fault = self.fault;
        }
        config
    }
}

/// A duration on the command line: `10s`, `500ms`, `2m`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_or_without_a_unit() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
