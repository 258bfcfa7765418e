//! `goldenpath`: the conformance runner and the reference server, in one binary.

mod attest_cli;
mod check;
mod diff_cli;
mod explain_cli;
mod load_cli;
mod target_cli;
mod validate_cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Check a golden-path chat backend against the spec, or serve the reference router.
#[derive(Parser)]
#[command(name = "goldenpath", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a server against the golden-path spec (without --url: the embedded reference).
    Check(Box<check::CheckArgs>),
    /// Serve the reference router (WebSocket at /ws, plus /health, /metrics, /dev/tokens).
    Serve(goldenpath_reference::ServeArgs),
    /// Load a server on an open-loop schedule: latency percentiles, delivered events/s and
    /// correctness counters (without --url: the embedded reference).
    Load(Box<load_cli::LoadArgs>),
    /// Re-judge recorded captures (JSON Lines, from `check --record DIR` or a server's logs)
    /// offline against the schemas and the run's state machine.
    Validate(validate_cli::ValidateArgs),
    /// Make an Ed25519 key pair for `check --attest`: PATH (PKCS#8 PEM) and PATH.pub.
    Keygen(attest_cli::KeygenArgs),
    /// Check a `check --attest` file offline against the signer's public key, and print the
    /// statement it certifies.
    Verify(attest_cli::VerifyArgs),
    /// Compare two JSON reports: every requirement's transition (fail→pass, pass→fail,
    /// pass→skip, skip→pass, new, gone) and the dialect's debt; exit 1 on a regression.
    Diff(diff_cli::DiffArgs),
    /// Everything about one requirement, by its id: its sentence and level, the scenarios that
    /// check it, the schemas it uses, the reference code that implements it, the runner code
    /// that judges it and the faults that break it.
    Explain(explain_cli::ExplainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log(&cli.command))),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("goldenpath: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Check(args) => runtime.block_on(check::run(*args)),
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Load(args) => runtime.block_on(load_cli::run(*args)),
        Command::Validate(args) => validate_cli::run(args),
        Command::Keygen(args) => attest_cli::keygen(args),
        Command::Verify(args) => attest_cli::verify(args),
        Command::Diff(args) => diff_cli::run(args),
        Command::Explain(args) => explain_cli::run(args),
    }
}

async fn serve(args: goldenpath_reference::ServeArgs) -> ExitCode {
    let bound = if args.reuse_port {
        bind_reusing_port(args.listen)
    } else {
        tokio::net::TcpListener::bind(args.listen).await
    };
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            eprintln!("goldenpath serve: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        "serving the golden path at ws://{address}/ws (health: http://{address}/health)"
    );
    if args.dev_tokens {
        tracing::info!(
            "dev tokens: curl -s -XPOST http://{address}/dev/tokens -d '{{\"user\":\"alice\"}}'"
        );
    }
    match goldenpath_reference::serve(listener, args.config(), shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("goldenpath serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A listener on `addr` that other processes may bind too (SO_REUSEPORT).
fn bind_reusing_port(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!(
        "shutting down: no new connections; runs in flight get the drain, then every connection is closed with 1001"
    );
}

/// `serve` logs its own progress; `check` prints a report and keeps logs to warnings.
fn default_log(command: &Command) -> &'static str {
    match command {
        Command::Serve(_) => "info",
        Command::Check(_)
        | Command::Load(_)
        | Command::Validate(_)
        | Command::Keygen(_)
        | Command::Verify(_)
        | Command::Diff(_)
        | Command::Explain(_) => "warn",
    }
}
