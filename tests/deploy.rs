//! The rolling restart (`goldenpath load --restart-cmd`) against two reference instances.
//!
//! Two `goldenpath serve --reuse-port` processes share one address on 127.0.0.1 (the first
//! binds port 0; the second binds the port the first reports), so the kernel spreads the load's
//! connections over both. While the load runs, `scripts/rolling-restart.sh` stops the first
//! with SIGTERM and starts it again. A reference that drains (runs in flight finish, new
//! messages are refused with `shutting_down`, then every connection is closed with 1001) loses
//! no run, and its connections come back on the other instance: GP-DEPLOY-001..003 pass. The
//! fault `exit-without-drain` exits at once: its connections end without 1001 and the runs in
//! flight are lost, so GP-DEPLOY-001 and GP-DEPLOY-002 fail, and the load exits 1.
//!
//! ```sh
//! cargo test -p goldenpath --test deploy
//! ```

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_goldenpath");
const SECRET: &str = "deploy-secret";
/// Bound on every wait of these tests on a process: a hang fails instead of holding the run.
const LIMIT: Duration = Duration::from_secs(60);

fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/rolling-restart.sh")
        .display()
        .to_string()
}

/// `goldenpath serve --reuse-port` on `listen` (with `fault` on); the process and its address.
async fn instance(listen: &str, fault: Option<&str>) -> (Child, String) {
    let mut args = vec![
        "serve",
        "--listen",
        listen,
        "--reuse-port",
        "--jwt-secret",
        SECRET,
        "--drain",
        "5s",
    ];
    if let Some(fault) = fault {
        args.extend(["--fault", fault]);
    }
    let mut child = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "info")
        .env_remove("GOLDENPATH_JWT_SECRET")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let addr = tokio::time::timeout(LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("ws://").nth(1) {
                return rest.split('/').next().unwrap_or_default().to_owned();
            }
        }
        panic!("the server never said where it listens");
    })
    .await
    .expect("the server starts within the limit");
    // Keep reading its log so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Kill the process whose pid `pidfile` holds (the instance the restart started).
fn kill_restarted(pidfile: &PathBuf) {
    if let Ok(pid) = std::fs::read_to_string(pidfile) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
}

/// Two instances on one address, the first with `fault`; a load with a rolling restart of the
/// first at t=1.5 s. The load's exit code and its JSON report.
async fn rolling_restart(name: &str, fault: Option<&str>) -> (i32, String, Value) {
    let (first, addr) = instance("127.0.0.1:0", fault).await;
    let (_second, _) = instance(&addr, None).await;
    let dir = std::env::temp_dir().join(format!("goldenpath-deploy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let pidfile = dir.join("first.pid");
    let pid = first.id().expect("running");
    std::fs::write(&pidfile, pid.to_string()).expect("the pid file");
    // Reap the first instance as soon as it exits, as its supervisor would.
    let mut first = first;
    tokio::spawn(async move {
        let _ = first.wait().await;
    });
    let restart = format!(
        "{} {} {BIN} serve --listen {addr} --reuse-port --jwt-secret {SECRET}",
        script(),
        pidfile.display()
    );
    let json = dir.join("load.json");
    let output = tokio::time::timeout(
        LIMIT,
        Command::new(BIN)
            .args([
                "load",
                "--url",
                &format!("ws://{addr}/ws"),
                "--jwt-secret",
                SECRET,
                "--users",
                "20",
                "--rate",
                "40",
                "--duration",
                "4",
                "--grace",
                "3",
                "--timeout",
                "5",
                // Runs of ~0.5 s: some are always in flight when the restart comes.
                "--content",
                "load [think=2 delay_ms=100]",
                "--restart-cmd",
                &restart,
                "--restart-at",
                "1.5",
                "--json",
                &json.display().to_string(),
            ])
            .env_remove("GOLDENPATH_JWT_SECRET")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the load ends within the limit")
    .expect("the binary runs");
    kill_restarted(&pidfile);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let report: Value = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("no JSON report:\n{stdout}"));
    let _ = std::fs::remove_dir_all(&dir);
    (output.status.code().unwrap_or(-1), stdout, report)
}

fn verdict<'a>(report: &'a Value, id: &str) -> &'a str {
    report["restart"]["requirements"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["id"] == id))
        .and_then(|r| r["verdict"].as_str())
        .unwrap_or("absent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_that_drains_loses_no_run_in_a_rolling_restart() {
    let (code, out, report) = rolling_restart("drain", None).await;
    eprintln!("{out}");
    let restart = &report["restart"];
    assert_eq!(restart["exit"], 0, "the restart script succeeded:\n{out}");
    assert_eq!(restart["runs_lost"], 0, "{out}");
    assert_eq!(report["counters"]["lost"], 0, "{out}");
    assert!(
        restart["closes_going_away"].as_u64() > Some(0),
        "the restart reached the load's connections:\n{out}"
    );
    assert_eq!(restart["closes_abrupt"], 0, "{out}");
    assert_eq!(restart["connections_not_back"], 0, "{out}");
    assert!(
        restart["reconnects"].as_u64() >= restart["closes_going_away"].as_u64(),
        "{out}"
    );
    assert!(!out.contains(SECRET), "the secret is redacted:\n{out}");
    assert!(
        !report.to_string().contains(SECRET),
        "the secret is redacted from the JSON report"
    );
    for id in ["GP-DEPLOY-001", "GP-DEPLOY-002", "GP-DEPLOY-003"] {
        assert_eq!(verdict(&report, id), "pass", "{id}:\n{out}");
    }
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_exits_without_draining_loses_runs() {
    let (code, out, report) = rolling_restart("no-drain", Some("exit-without-drain")).await;
    eprintln!("{out}");
    let restart = &report["restart"];
    assert!(restart["runs_lost"].as_u64() > Some(0), "{out}");
    assert!(restart["closes_abrupt"].as_u64() > Some(0), "{out}");
    assert_eq!(verdict(&report, "GP-DEPLOY-001"), "fail", "{out}");
    assert_eq!(verdict(&report, "GP-DEPLOY-002"), "fail", "{out}");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("GP-DEPLOY-002 fail"), "{out}");
}
