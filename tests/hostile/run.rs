//! Running `goldenpath check` as a child process: bounded wait, exit code, output, and the
//! high-water mark of its resident memory.
#![allow(unreachable_pub)]

use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The secret the checks mint tokens with: it must appear in no output.
pub const SECRET: &str = "hostile-harness-secret-0123456789";

/// The memory bound `check` stays under whatever the server does (RELIABILITY.md).
pub const RSS_BOUND_KIB: u64 = 256 * 1024;

/// What a run of `check` left.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The child's peak resident set (VmHWM), in KiB, as last read while it ran.
    pub max_rss_kib: u64,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        write!(
            f,
            "exit {}\n--- stdout (tail)\n{}\n--- stderr\n{}",
            self.code,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

impl Outcome {
    /// No token and no secret in anything the run printed.
    pub fn assert_no_secrets(&self) {
        for text in [&self.stdout, &self.stderr] {
            assert!(!text.contains(SECRET), "the secret was printed: {self}");
            assert!(!text.contains("eyJ"), "a token was printed: {self}");
        }
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `goldenpath check --url URL` with a short `--timeout` and `deadline`; panics (a hang) when it
/// has not ended within the deadline plus 5 s.
pub async fn check(url: &str, deadline: f64) -> Outcome {
    check_with(url, deadline, &[]).await
}

/// [`check`] with more arguments.
pub async fn check_with(url: &str, deadline: f64, extra: &[&str]) -> Outcome {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_goldenpath"))
        .args([
            "check",
            "--url",
            url,
            "--timeout",
            "2",
            "--deadline",
            &deadline.to_string(),
        ])
        .args(extra)
        .env("GOLDENPATH_JWT_SECRET", SECRET)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary runs");
    let pid = child.id().expect("a pid");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let read_out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    });
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let limit = Duration::from_secs_f64(deadline + 5.0);
    let watch = async {
        let mut peak = 0;
        loop {
            if let Some(kib) = vm_hwm_kib(pid) {
                peak = peak.max(kib);
            }
            tokio::select! {
                status = child.wait() => return (status, peak),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    };
    let (status, max_rss_kib) = tokio::time::timeout(limit, watch)
        .await
        .unwrap_or_else(|_| panic!("check {url} ran over its deadline plus 5 s ({limit:?})"));
    let code = status.expect("waited").code().unwrap_or(-1);
    Outcome {
        code,
        stdout: read_out.await.unwrap_or_default(),
        stderr: read_err.await.unwrap_or_default(),
        max_rss_kib,
    }
}
