//! `goldenpath load`: flags → load options → run → report → exit code.

use clap::Args;
use goldenpath::LoadOptions;
use goldenpath::load::{Live, Phase, Restart, Slo};

use crate::target_cli::TargetArgs;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Exit codes: 0 every correctness counter is 0, every connection lasted the run, every `--slo`
/// met and (with `--restart-cmd`) every GP-DEPLOY requirement held; 1 otherwise (a target that
/// went away mid-run says "target went away at t=..."); 2 usage or configuration error; 3 target
/// unreachable, not a WebSocket endpoint, or no connection could be opened.
#[derive(Debug, Args)]
#[command(after_long_help = goldenpath::load::counter_help())]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Distinct users.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Connections per user; every run reaches all of its user's connections.
    #[arg(long, default_value_t = 1)]
    connections_per_user: usize,
    /// Messages per second, all users together, on a fixed open-loop schedule (0: connect and
    /// hold the connections idle).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds runs may take to complete after the last send before they count as lost.
    #[arg(long, default_value_t = 5.0)]
    grace: f64,
    /// Runs one connection may have outstanding before its sends wait (the wait still shows
    /// in the latency, which counts from the intended send time).
    #[arg(long, default_value_t = 100)]
    max_in_flight: usize,
    /// The text of every message (a canary is appended); a test directive scripts the runs,
    /// e.g. "load [tools=2]".
    #[arg(long, default_value = "load")]
    content: String,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Bound on each handshake, in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// An objective the run must meet, else exit 1: success=99.5% (runs reaching a valid
    /// terminal sequence), errors=0.5% (runs ending in agent_error or answered with an error
    /// frame), p99=10ms (user_message → agent_started; also p50, p90, p999, max). Repeatable.
    #[arg(long = "slo", value_name = "NAME=VALUE")]
    slos: Vec<String>,
    /// Rolling restart: run this shell command (sh -c) while the load goes on, e.g. a script
    /// that restarts one instance (GOLDENPATH_LOAD_URL, the first URL, and GOLDENPATH_LOAD_URLS,
    /// all of them, are in its environment). Connections the server closes reconnect with a
    /// backoff (50 ms doubling to 1 s); the report counts the closes with 1001, the reconnect
    /// time, the runs lost and refused, and judges the deploy requirements (the GP-DEPLOY
    /// family). See MIGRATING.md, "Rolling restart".
    #[arg(long, value_name = "CMD")]
    restart_cmd: Option<String>,
    /// When to run --restart-cmd, in seconds from the start of the sends (default: a third of
    /// --duration).
    #[arg(long, value_name = "SECS", requires = "restart_cmd")]
    restart_at: Option<f64>,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("goldenpath load: {message}");
    ExitCode::from(2)
}

fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    if value > 0.0 && value.is_finite() {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!("--{name} must be a positive number of seconds"))
    }
}

pub(crate) async fn run(args: LoadArgs) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let durations = (|| {
        Ok::<_, String>((
            seconds("duration", args.duration)?,
            seconds("grace", args.grace)?,
            seconds("timeout", args.timeout)?,
        ))
    })();
    let (duration, grace, timeout) = match durations {
        Ok(d) => d,
        Err(e) => return usage(e),
    };
    let dialect = match args.target.dialect() {
        Ok(d) => d,
        Err(e) => return usage(e),
    };
    let target = match args.target.target() {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let slos: Vec<Slo> = match args.slos.iter().map(|s| s.parse()).collect() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let restart = match (&args.restart_cmd, args.restart_at) {
        (None, _) => None,
        (Some(command), at) => {
            let at = at.unwrap_or(args.duration / 3.0);
            if !(at >= 0.0 && at < args.duration) {
                return usage("--restart-at must be at least 0 and less than --duration");
            }
            Some(Restart {
                command: command.clone(),
                at: Duration::from_secs_f64(at),
            })
        }
    };
    let live = Arc::new(Live::default());
    let options = LoadOptions {
        target,
        users: args.users,
        connections_per_user: args.connections_per_user,
        rate: args.rate,
        duration,
        grace,
        max_in_flight: args.max_in_flight,
        content: args.content.clone(),
        connect_concurrency: args.connect_concurrency,
        connect_timeout: timeout,
        live: Some(live.clone()),
        dialect,
        restart,
    };
    let wanted = (args.users * args.connections_per_user) as u64;
    let progress = progress(live, wanted, args.rate * args.duration);
    let result = goldenpath::load(options).await;
    if let Some((bar, task)) = progress {
        task.abort();
        bar.finish_and_clear();
    }
    let mut report = match result {
        Ok(r) => r,
        Err(e) if e.exit_code() == 3 => {
            eprintln!("goldenpath load: {e}");
            return ExitCode::from(3);
        }
        Err(e) => return usage(e),
    };
    let met = report.judge(&slos);
    print!("{}", report.summary());
    if let Some(path) = &args.json
        && let Err(e) = std::fs::write(path, report.to_json())
    {
        return usage(format!("cannot write {}: {e}", path.display()));
    }
    ExitCode::from(if report.clean() && met { 0 } else { 1 })
}

/// On a terminal: a bar over the connect phase, then over the messages sent.
fn progress(
    live: Arc<Live>,
    connections: u64,
    messages: f64,
) -> Option<(ProgressBar, tokio::task::JoinHandle<()>)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(connections);
    let style = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    let handle = bar.clone();
    let task = tokio::spawn(async move {
        let mut running = false;
        loop {
            match live.phase() {
                Phase::Connecting => {
                    bar.set_position(live.connected.load(Ordering::Relaxed));
                    bar.set_message("connections open");
                }
                Phase::Running => {
                    if !running {
                        running = true;
                        bar.set_length(messages.ceil().max(1.0) as u64);
                    }
                    bar.set_position(live.sent.load(Ordering::Relaxed));
                    bar.set_message(format!(
                        "messages sent; {} events, {} runs completed",
                        live.events.load(Ordering::Relaxed),
                        live.completed.load(Ordering::Relaxed)
                    ));
                }
                Phase::Done => break,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Some((handle, task))
}
