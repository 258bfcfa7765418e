//! The side-by-side bench: the reference router, the legacy-stack peer (FastAPI / uvicorn /
//! websockets) and the floor (bare tokio-tungstenite), each pinned to core 0, loaded by
//! `goldenpath::load` in this process (pinned to core 1 by `bench/run.sh`), in interleaved
//! rounds. Run it through `bench/run.sh`, which builds, installs the peer and pins; the method
//! and the results are in BENCHMARKS.md. With `--scale` it runs the scale-out bench instead
//! (the reference as 1, 2 and 4 instances on one Redis: [`scale`]).

#[path = "bench/scale.rs"]
mod scale;
#[path = "bench/tables.rs"]
mod tables;

use anyhow::{Context, Result, bail};
use clap::Parser;
use goldenpath::load::Live;
use goldenpath::{LoadOptions, LoadReport, Target, TokenSource};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Bench the reference router against a legacy-stack peer and a bare-library floor.
#[derive(Parser)]
struct Args {
    /// The release `goldenpath` binary (serves the reference and runs the suite).
    #[arg(long)]
    goldenpath: PathBuf,
    /// The release `gp-floor` binary.
    #[arg(long)]
    floor: PathBuf,
    /// The Python of the bench's virtual environment (FastAPI, uvicorn, websockets).
    #[arg(long)]
    python: PathBuf,
    /// The folder holding `peer_fastapi.py`.
    #[arg(long)]
    peer_dir: PathBuf,
    /// Rounds; each runs reference, peer, floor in turn.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of each fixed-rate latency run.
    #[arg(long, default_value_t = 10.0)]
    latency_secs: f64,
    /// Seconds of each step of the max-rate search and of the saturation run.
    #[arg(long, default_value_t = 3.0)]
    step_secs: f64,
    /// Idle authenticated connections for the memory and handshake figures.
    #[arg(long, default_value_t = 10_000)]
    idle_connections: usize,
    /// Users in the latency, max-rate and saturation runs (one connection each).
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// The core the servers are pinned to.
    #[arg(long, default_value = "0")]
    server_core: String,
    /// Only the idle phase (RSS per idle connection and handshake rate) of the reference and the
    /// floor, and of the peer when `--python` exists; prints the figures and writes nothing.
    #[arg(long)]
    idle_only: bool,
    /// The scale-out bench instead: the reference as 1, 2 and 4 `serve --redis` instances on
    /// one redis-server (needs `redis-server`), beside the single process; writes
    /// scale-round-N.json and scale.md.
    #[arg(long)]
    scale: bool,
    /// Connections per user in the scale-out bench, spread round-robin over the instances.
    #[arg(long, default_value_t = 2)]
    scale_connections_per_user: usize,
    /// Where the per-round JSON and the tables go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

const SECRET: &str = "goldenpath-bench-secret";
/// Frames per run of the default script (started, thinking, tool pair, completed).
const EVENTS_PER_RUN: f64 = 5.0;
/// The p99 routing latency the max-rate search keeps under, in ms.
const P99_BUDGET_MS: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
enum Server {
    Reference,
    Peer,
    Floor,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Reference => "reference",
            Server::Peer => "peer (FastAPI)",
            Server::Floor => "floor (tungstenite)",
        }
    }
}

/// One server's figures in one round.
#[derive(Debug, Default, Clone, Serialize)]
struct Figures {
    /// Routing latency (intended send → agent_started), ms.
    p50_1k: f64,
    p99_1k: f64,
    p50_5k: f64,
    p99_5k: f64,
    /// Completion latency at 5k ev/s, ms.
    completion_p99_5k: f64,
    /// Routing latency from the actual send (the server's share, no timer slack), ms.
    sent_p50_1k: f64,
    sent_p99_1k: f64,
    sent_p50_5k: f64,
    sent_p99_5k: f64,
    /// Highest offered events/s of the search whose routing p99 stayed under 5 ms.
    max_rate_ev: f64,
    /// Delivered events/s at saturation.
    saturation_ev: f64,
    /// Server CPU use during the saturation run, % of one core.
    saturation_cpu: f64,
    /// Events delivered per second of server CPU during the saturation run.
    events_per_cpu_s: f64,
    /// RSS growth per idle authenticated connection, bytes.
    rss_per_conn: f64,
    /// Handshake + auth + greeting per second while opening the idle connections.
    handshakes_per_s: f64,
    /// `goldenpath check` wall time, s (reference only).
    check_s: Option<f64>,
    /// Sum of every correctness counter over every load run of the round.
    counters: goldenpath::load::Counters,
    /// Load runs this round.
    runs: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    if args.scale {
        return scale::run(&args).await;
    }
    let mut all: Vec<BTreeMap<Server, Figures>> = Vec::new();
    for round in 1..=args.rounds {
        let mut figures = BTreeMap::new();
        for server in [Server::Reference, Server::Peer, Server::Floor] {
            if args.idle_only && server == Server::Peer && !args.python.exists() {
                continue;
            }
            eprintln!("== round {round}: {}", server.name());
            let f = bench_one(&args, server)
                .await
                .with_context(|| format!("round {round}, {}", server.name()))?;
            if args.idle_only {
                println!(
                    "round {round}: {}: {:.0} bytes RSS per idle connection ({} connections), {:.0} handshakes/s",
                    server.name(),
                    f.rss_per_conn,
                    args.idle_connections,
                    f.handshakes_per_s
                );
                continue;
            }
            eprintln!("   {f:?}");
            figures.insert(server, f);
        }
        if args.idle_only {
            continue;
        }
        std::fs::write(
            args.out.join(format!("round-{round}.json")),
            serde_json::to_string_pretty(&figures)?,
        )?;
        all.push(figures);
    }
    if args.idle_only {
        return Ok(());
    }
    let tables = tables::tables(&all);
    std::fs::write(args.out.join("tables.md"), &tables)?;
    println!("{tables}");
    Ok(())
}

/// A server under test, pinned to its core, killed on drop.
struct Running {
    child: Child,
    url: String,
}

impl Running {
    fn pid(&self) -> Result<u32> {
        self.child.id().context("the server has exited")
    }
}

async fn start(args: &Args, server: Server) -> Result<Running> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(&args.server_core);
    match server {
        Server::Reference => {
            cmd.arg(&args.goldenpath)
                .args(["serve", "--listen", &listen, "--jwt-secret", SECRET])
                .env("RUST_LOG", "warn");
        }
        Server::Floor => {
            cmd.arg(&args.floor)
                .args(["--listen", &listen, "--jwt-secret", SECRET]);
        }
        Server::Peer => {
            cmd.arg(&args.python)
                .args(["-m", "uvicorn", "--app-dir"])
                .arg(&args.peer_dir)
                .args([
                    "peer_fastapi:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--ws",
                    "websockets",
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--backlog",
                    "4096",
                ])
                .env("GOLDENPATH_JWT_SECRET", SECRET);
        }
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the server (is taskset installed?)")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        if Instant::now() > deadline {
            bail!("{} did not listen on {listen} within 30 s", server.name());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Running {
        child,
        url: format!("ws://{listen}/ws"),
    })
}

fn target(url: &str) -> Result<(Target, TokenSource)> {
    Ok((
        Target::new(url, Vec::new(), None, None)?,
        TokenSource::Secret {
            secret: SECRET.into(),
            claims: Default::default(),
        },
    ))
}

async fn run_load(
    url: &str,
    users: usize,
    rate: f64,
    secs: f64,
    max_in_flight: usize,
    live: Option<Arc<Live>>,
    figures: &mut Figures,
) -> Result<LoadReport> {
    let options = LoadOptions {
        target: Some(target(url)?),
        users,
        connections_per_user: 1,
        rate,
        duration: Duration::from_secs_f64(secs),
        grace: Duration::from_secs(10),
        max_in_flight,
        connect_timeout: Duration::from_secs(30),
        live,
        ..Default::default()
    };
    let report = goldenpath::load(options).await?;
    figures.runs += 1;
    let c = &report.counters;
    figures.counters.lost += c.lost;
    figures.counters.duplicated += c.duplicated;
    figures.counters.misrouted += c.misrouted;
    figures.counters.out_of_order += c.out_of_order;
    figures.counters.schema_invalid += c.schema_invalid;
    if !report.clean() {
        eprintln!("   NOT CLEAN at {rate} msg/s:\n{}", report.summary());
    }
    Ok(report)
}

async fn bench_one(args: &Args, server: Server) -> Result<Figures> {
    let mut f = Figures::default();
    let running = start(args, server).await?;
    let url = running.url.clone();
    let pid = running.pid()?;

    // Warm up (schemas compiled, allocator primed), then memory per idle connection.
    run_load(&url, 10, 100.0, 1.0, 100, None, &mut f).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(pid)?;
    let live = Arc::new(Live::default());
    let hold = {
        let url = url.clone();
        let live = live.clone();
        let n = args.idle_connections;
        tokio::spawn(async move {
            let mut scratch = Figures::default();
            let r = run_load(&url, n, 0.0, 4.0, 1, Some(live), &mut scratch).await;
            (r, scratch)
        })
    };
    let wanted = args.idle_connections as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while live.connected.load(Ordering::Relaxed) < wanted || live.phase.load(Ordering::Acquire) == 0
    {
        if hold.is_finished() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = rss_bytes(pid)?;
    let (idle, scratch) = hold.await?;
    let idle = idle.context("the idle-connection run failed")?;
    f.runs += scratch.runs;
    f.counters.lost += scratch.counters.lost;
    f.rss_per_conn = after.saturating_sub(before) as f64 / idle.connections.max(1) as f64;
    f.handshakes_per_s = idle.handshakes_per_s;
    if args.idle_only {
        return Ok(f);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Routing latency at 1k and 5k events/s offered.
    let r = run_load(
        &url,
        args.users,
        1000.0 / EVENTS_PER_RUN,
        args.latency_secs,
        100,
        None,
        &mut f,
    )
    .await?;
    (f.p50_1k, f.p99_1k) = (r.first_event_ms.p50, r.first_event_ms.p99);
    (f.sent_p50_1k, f.sent_p99_1k) = (
        r.first_event_from_send_ms.p50,
        r.first_event_from_send_ms.p99,
    );
    let r = run_load(
        &url,
        args.users,
        5000.0 / EVENTS_PER_RUN,
        args.latency_secs,
        100,
        None,
        &mut f,
    )
    .await?;
    (f.p50_5k, f.p99_5k) = (r.first_event_ms.p50, r.first_event_ms.p99);
    (f.sent_p50_5k, f.sent_p99_5k) = (
        r.first_event_from_send_ms.p50,
        r.first_event_from_send_ms.p99,
    );
    f.completion_p99_5k = r.completion_ms.p99;

    // The highest offered rate whose routing p99 stays under budget.
    let mut ev = 500.0;
    while ev <= 400_000.0 {
        let r = run_load(
            &url,
            args.users,
            ev / EVENTS_PER_RUN,
            args.step_secs,
            100,
            None,
            &mut f,
        )
        .await?;
        let kept_up = r.completed_runs == r.expected_runs;
        if r.first_event_ms.p99 >= P99_BUDGET_MS || !kept_up {
            break;
        }
        f.max_rate_ev = ev;
        ev *= 1.5;
    }

    // Saturation: far more offered than any server delivers, 16 runs in flight per connection.
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    let r = run_load(
        &url,
        args.users,
        500_000.0 / EVENTS_PER_RUN,
        args.step_secs,
        16,
        None,
        &mut f,
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid)? - cpu_before) as f64 / 100.0;
    f.saturation_ev = r.delivered_events_per_s;
    f.saturation_cpu = 100.0 * cpu / elapsed;
    f.events_per_cpu_s = r.events as f64 / cpu.max(0.01);

    // The suite's wall time against the reference.
    if server == Server::Reference {
        let started = Instant::now();
        let out = Command::new("taskset")
            .args(["-c", "1"])
            .arg(&args.goldenpath)
            .args(["check", "--url", &url, "--jwt-secret", SECRET])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await?;
        f.check_s = Some(started.elapsed().as_secs_f64());
        if !out.success() {
            eprintln!("   goldenpath check exited {out}");
        }
    }
    drop(running);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(f)
}

fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kb * 1024)
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); after the name, state is field 3 → index 0.
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}
