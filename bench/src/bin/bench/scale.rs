//! The scale-out bench (`gp-bench --scale`): the reference as 1, 2 and 4 `serve --redis`
//! instances on one `redis-server`, beside the single process without Redis, each loaded by
//! `goldenpath::load` spread over its instances (users and each user's tabs round-robin).
//!
//! Every server process (Redis and the instances) is pinned to the server core, the generator
//! to the other (`bench/run.sh`): more instances share the same one core, so the table shows
//! what the Redis path and the spreading cost, not what more hardware buys.

use anyhow::{Context, Result, bail};
use goldenpath::{LoadOptions, LoadReport, Target, TokenSource};
use serde::Serialize;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::tables::fmt;
use super::{Args, EVENTS_PER_RUN, SECRET, cpu_ticks};

/// One deployment's figures in one round.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct ScaleFigures {
    /// "single process" or "N instances + Redis".
    pub(crate) deployment: String,
    /// Connections opened on each instance.
    pub(crate) per_instance: Vec<usize>,
    /// Offered events/s of the latency run (rate × tabs × events per run).
    pub(crate) offered_ev: f64,
    /// Routing latency of the latency run, from the intended send, ms.
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    /// The same from the actual send, ms.
    pub(crate) sent_p50: f64,
    pub(crate) sent_p99: f64,
    /// The generator's schedule lag in the latency run, µs.
    pub(crate) lag_p50_us: f64,
    pub(crate) lag_p99_us: f64,
    /// Delivered events/s at saturation.
    pub(crate) saturation_ev: f64,
    /// CPU of every server process (instances and Redis) at saturation, % of one core.
    pub(crate) saturation_cpu: f64,
    /// Sum of every correctness counter over the round's runs of this deployment.
    pub(crate) counters: goldenpath::load::Counters,
    /// Load runs.
    pub(crate) runs: usize,
}

/// The deployments of one round: `0` is the single process without Redis.
const DEPLOYMENTS: [usize; 4] = [0, 1, 2, 4];

/// Run the scale-out rounds; write `scale-round-N.json` and `scale.md` under `--out`.
pub(crate) async fn run(args: &Args) -> Result<()> {
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let mut row = Vec::new();
        for n in DEPLOYMENTS {
            eprintln!("== scale round {round}: {}", deployment(n));
            let f = bench_deployment(args, n)
                .await
                .with_context(|| format!("scale round {round}, {}", deployment(n)))?;
            eprintln!("   {f:?}");
            row.push(f);
        }
        std::fs::write(
            args.out.join(format!("scale-round-{round}.json")),
            serde_json::to_string_pretty(&row)?,
        )?;
        rounds.push(row);
    }
    let table = table(args, &rounds);
    std::fs::write(args.out.join("scale.md"), &table)?;
    println!("{table}");
    Ok(())
}

fn deployment(n: usize) -> String {
    match n {
        0 => "single process (no Redis)".into(),
        1 => "1 instance + Redis".into(),
        n => format!("{n} instances + Redis"),
    }
}

/// A server process pinned to the server core, killed on drop.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> Result<u32> {
        self.child.id().context("a server process has exited")
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Spawn `program args` pinned to the server core; wait (bounded) until `port` accepts.
async fn spawn_pinned(
    args: &Args,
    program: &std::path::Path,
    rest: &[String],
    port: u16,
) -> Result<Proc> {
    let child = Command::new("taskset")
        .arg("-c")
        .arg(&args.server_core)
        .arg(program)
        .args(rest)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} (taskset installed?)", program.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on port {port} within 30 s",
                program.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Proc { child })
}

/// Whether the Redis on `port` answers PING (bounded).
async fn redis_ready(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(true))
    )
}

/// Start the deployment of `n` instances (0: the single process), load it, stop it.
async fn bench_deployment(args: &Args, n: usize) -> Result<ScaleFigures> {
    let mut procs = Vec::new();
    let mut redis_flag = Vec::new();
    if n > 0 {
        let port = free_port()?;
        let redis = spawn_pinned(
            args,
            std::path::Path::new("redis-server"),
            &[
                "--port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
            ],
            port,
        )
        .await
        .context("redis-server (apt-get install redis-server)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis_ready(port).await {
            if Instant::now() > deadline {
                bail!("redis-server on port {port} did not answer PING within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        procs.push(redis);
        redis_flag = vec!["--redis".to_owned(), format!("redis://127.0.0.1:{port}")];
    }
    let mut urls = Vec::new();
    for _ in 0..n.max(1) {
        let port = free_port()?;
        let mut rest = vec![
            "serve".to_owned(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--jwt-secret".into(),
            SECRET.into(),
        ];
        rest.extend(redis_flag.iter().cloned());
        procs.push(spawn_pinned(args, &args.goldenpath, &rest, port).await?);
        urls.push(format!("ws://127.0.0.1:{port}/ws"));
    }
    let pids: Vec<u32> = procs.iter().map(Proc::pid).collect::<Result<_>>()?;
    let mut f = ScaleFigures {
        deployment: deployment(n),
        ..Default::default()
    };
    let conns = args.scale_connections_per_user;

    // Warm-up, then the latency run at the bench's 1k ev/s message rate.
    load(&urls, 10, conns, 100.0, 1.0, 100, &mut f).await?;
    let rate = 1000.0 / EVENTS_PER_RUN;
    let r = load(
        &urls,
        args.users,
        conns,
        rate,
        args.latency_secs,
        100,
        &mut f,
    )
    .await?;
    f.per_instance = r.instances.iter().map(|i| i.connections).collect();
    f.offered_ev = rate * conns as f64 * EVENTS_PER_RUN;
    (f.p50, f.p99) = (r.first_event_ms.p50, r.first_event_ms.p99);
    (f.sent_p50, f.sent_p99) = (
        r.first_event_from_send_ms.p50,
        r.first_event_from_send_ms.p99,
    );
    (f.lag_p50_us, f.lag_p99_us) = (r.schedule_lag_us.p50, r.schedule_lag_us.p99);

    // Saturation: far more offered than delivered, 16 runs in flight per connection.
    let before: u64 = pids.iter().map(|&p| cpu_ticks(p).unwrap_or(0)).sum();
    let started = Instant::now();
    let r = load(
        &urls,
        args.users,
        conns,
        500_000.0 / EVENTS_PER_RUN,
        args.step_secs,
        16,
        &mut f,
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let after: u64 = pids.iter().map(|&p| cpu_ticks(p).unwrap_or(0)).sum();
    f.saturation_ev = r.delivered_events_per_s;
    f.saturation_cpu = 100.0 * (after.saturating_sub(before)) as f64 / 100.0 / elapsed;
    drop(procs);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(f)
}

/// One load run over `urls`, its counters added to `f`.
async fn load(
    urls: &[String],
    users: usize,
    conns: usize,
    rate: f64,
    secs: f64,
    max_in_flight: usize,
    f: &mut ScaleFigures,
) -> Result<LoadReport> {
    let target = Target::new(&urls[0], Vec::new(), None, None)?.with_instances(&urls[1..])?;
    let options = LoadOptions {
        target: Some((
            target,
            TokenSource::Secret {
                secret: SECRET.into(),
                claims: Default::default(),
            },
        )),
        users,
        connections_per_user: conns,
        rate,
        duration: Duration::from_secs_f64(secs),
        grace: Duration::from_secs(10),
        max_in_flight,
        connect_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let report = goldenpath::load(options).await?;
    f.runs += 1;
    let c = &report.counters;
    f.counters.lost += c.lost;
    f.counters.duplicated += c.duplicated;
    f.counters.misrouted += c.misrouted;
    f.counters.out_of_order += c.out_of_order;
    f.counters.schema_invalid += c.schema_invalid;
    if !report.clean() {
        eprintln!("   NOT CLEAN at {rate} msg/s:\n{}", report.summary());
    }
    Ok(report)
}

/// The scale-out table of BENCHMARKS.md: one row per deployment and round.
fn table(args: &Args, rounds: &[Vec<ScaleFigures>]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} users × {} connections, spread round-robin over the instances; latency run {:.0} msg/s for {} s, saturation {} s at 100 000 msg/s offered (16 in flight per connection).\n",
        args.users,
        args.scale_connections_per_user,
        1000.0 / EVENTS_PER_RUN,
        args.latency_secs,
        args.step_secs
    );
    let _ = writeln!(
        out,
        "| deployment | round | connections per instance | routing p50 (ms) | routing p99 (ms) | from send p50 / p99 (ms) | schedule lag p50 / p99 (µs) | delivered at saturation (ev/s) | server CPU (%) | counters |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    for (i, n) in DEPLOYMENTS.iter().enumerate() {
        for (r, round) in rounds.iter().enumerate() {
            let f = &round[i];
            let c = f.counters;
            let spread: Vec<String> = f.per_instance.iter().map(usize::to_string).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} / {} | {:.0} / {:.0} | {:.0} | {:.0} | {} runs: lost {} dup {} misrouted {} order {} schema {} |",
                deployment(*n),
                r + 1,
                spread.join(" / "),
                fmt(f.p50),
                fmt(f.p99),
                fmt(f.sent_p50),
                fmt(f.sent_p99),
                f.lag_p50_us,
                f.lag_p99_us,
                f.saturation_ev,
                f.saturation_cpu,
                f.runs,
                c.lost,
                c.duplicated,
                c.misrouted,
                c.out_of_order,
                c.schema_invalid
            );
        }
    }
    out
}
