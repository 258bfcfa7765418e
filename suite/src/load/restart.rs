//! Rolling restart: a user's command run while the load goes on, and the deploy judged.
//!
//! At `--restart-at` the command (`--restart-cmd`, run with `sh -c`; `GOLDENPATH_LOAD_URL` in
//! its environment, and every instance's in `GOLDENPATH_LOAD_URLS`) restarts the target, e.g. one instance behind a load balancer. Meanwhile
//! every connection the server closes reconnects to its own instance's URL with a bounded backoff, and the
//! run goes on. The report counts the closes with 1001, the reconnections and their time, the
//! runs in flight when a connection closed, the runs lost (sent and never terminated, and not
//! refused with an explicit `error`), and judges the `GP-DEPLOY` requirements, which only this
//! mode can judge (`features/README.md` says so; `goldenpath check` lists none of them).

use crate::checks::check;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::Instant;

use super::{Percentiles, Restart, human};

/// What the restart command did.
pub(crate) struct Outcome {
    pub(crate) command: String,
    pub(crate) at: Duration,
    /// Its exit code; `None` when it was killed at the run's end or could not start.
    pub(crate) exit: Option<i32>,
    /// How long it ran, when it ended by itself.
    pub(crate) took: Option<Duration>,
}

/// Run `restart.command` at `t0 + restart.at`; kill it if it still runs at `deadline`.
/// `urls` are the target's instances: the first is `GOLDENPATH_LOAD_URL` in the command's
/// environment, all of them (space-separated) `GOLDENPATH_LOAD_URLS`.
pub(crate) async fn run(
    restart: Restart,
    t0: Instant,
    deadline: Instant,
    urls: Vec<String>,
) -> Outcome {
    tokio::time::sleep_until(t0 + restart.at).await;
    let started = Instant::now();
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&restart.command)
        .env(
            "GOLDENPATH_LOAD_URL",
            urls.first().cloned().unwrap_or_default(),
        )
        .env("GOLDENPATH_LOAD_URLS", urls.join(" "))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let (exit, took) = match child {
        Err(e) => {
            eprintln!("goldenpath load: the restart command could not start: {e}");
            (None, None)
        }
        Ok(mut child) => match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(Ok(status)) => (status.code(), Some(started.elapsed())),
            Ok(Err(_)) | Err(_) => {
                let _ = child.start_kill();
                (None, None)
            }
        },
    };
    Outcome {
        command: restart.command,
        at: restart.at,
        exit,
        took,
    }
}

/// `command` as reports show it: the `known` secret, and the value of every `--jwt-secret`
/// flag, replaced by `[redacted]`.
pub(crate) fn redact(command: &str, known: Option<&str>) -> String {
    let mut out = match known.filter(|k| k.len() >= 4) {
        Some(k) => command.replace(k, "[redacted]"),
        None => command.to_owned(),
    };
    for flag in ["--jwt-secret=", "--jwt-secret "] {
        let mut from = 0;
        while let Some(at) = out[from..].find(flag) {
            let start = from + at + flag.len();
            let end = out[start..]
                .find(char::is_whitespace)
                .map_or(out.len(), |e| start + e);
            out.replace_range(start..end, "[redacted]");
            from = start + "[redacted]".len();
        }
    }
    out
}

/// A `GP-DEPLOY` requirement as the restart judged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployVerdict {
    /// The requirement id.
    pub id: String,
    /// `pass`, `fail`, or `unjudged` (the restart did not exercise it).
    pub verdict: &'static str,
    /// What was measured.
    pub evidence: String,
}

/// The rolling restart, measured.
#[derive(Debug, Clone, Serialize)]
pub struct RestartReport {
    /// The command run.
    pub command: String,
    /// When it ran, seconds from the start of the schedule.
    pub at_s: f64,
    /// Its exit code (absent: killed at the run's end, or it could not start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// How long it ran, in seconds (absent when it did not end by itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_s: Option<f64>,
    /// Connections the server closed with 1001 (going away).
    pub closes_going_away: u64,
    /// Connections the server ended any other way (another code, no close frame, a reset).
    pub closes_abrupt: u64,
    /// Reconnections made.
    pub reconnects: u64,
    /// Messages sent again after a close with 1001 because nothing at all had answered them
    /// (the server took none of them); each still has to complete or be refused.
    pub resent: u64,
    /// From a connection's end to its successor's `connection_established`.
    pub reconnect_ms: Percentiles,
    /// Runs in flight (sent, not terminated) on connections when they ended.
    pub runs_in_flight_at_close: u64,
    /// Runs lost: sent and never terminated (nor refused explicitly), or arrived with a frame
    /// missing (the report's `lost`).
    pub runs_lost: u64,
    /// Messages refused explicitly with an `error` frame.
    pub runs_refused: u64,
    /// Connections that could not reconnect before the end of the sends.
    pub connections_not_back: u64,
    /// The `GP-DEPLOY` requirements, judged.
    pub requirements: Vec<DeployVerdict>,
}

impl RestartReport {
    /// Whether the restart command exited 0 and every `GP-DEPLOY` requirement passed (one
    /// left unjudged, because the restart never reached the load's connections, is no pass).
    pub fn passed(&self) -> bool {
        self.exit == Some(0) && self.requirements.iter().all(|r| r.verdict == "pass")
    }

    /// Why the restart did not pass, in one line (`None` when it passed).
    pub fn failure(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        let mut why: Vec<String> = self
            .requirements
            .iter()
            .filter(|r| r.verdict != "pass")
            .map(|r| format!("{} {}", r.id, r.verdict))
            .collect();
        match self.exit {
            Some(0) => {}
            Some(code) => why.push(format!("the restart command exited {code}")),
            None => why.push("the restart command did not finish".to_owned()),
        }
        Some(format!("rolling restart: {}", why.join(", ")))
    }

    pub(crate) fn summary(&self) -> String {
        let mut out = String::new();
        let status = match (self.exit, self.took_s) {
            (Some(code), Some(t)) => {
                format!("exited {code} after {}", human(Duration::from_secs_f64(t)))
            }
            (Some(code), None) => format!("exited {code}"),
            (None, _) => "did not finish (killed at the end of the run, or could not start)".into(),
        };
        let _ = writeln!(
            out,
            "  rolling restart at t={}: `{}` {status}",
            human(Duration::from_secs_f64(self.at_s)),
            self.command
        );
        let _ = writeln!(
            out,
            "    closes: {} with 1001, {} abrupt; {} reconnect(s) (p50 {:.0} ms, max {:.0} ms), {} connection(s) not back",
            self.closes_going_away,
            self.closes_abrupt,
            self.reconnects,
            self.reconnect_ms.p50,
            self.reconnect_ms.max,
            self.connections_not_back
        );
        let _ = writeln!(
            out,
            "    runs: {} lost, {} refused explicitly, {} in flight at a close, {} message(s) sent again after a 1001",
            self.runs_lost, self.runs_refused, self.runs_in_flight_at_close, self.resent
        );
        for r in &self.requirements {
            let _ = writeln!(out, "    {} {}: {}", r.id, r.verdict, r.evidence);
        }
        out
    }
}

/// Judge the requirements only a deploy shows (`catalogue::load_requirements`, the single
/// source of their ids) on what the restart measured.
pub(crate) fn judge(r: &RestartReport) -> Vec<DeployVerdict> {
    let closes = r.closes_going_away + r.closes_abrupt;
    let not_reached =
        || "no connection was closed during the run: the restart did not reach this target";
    goldenpath_spec::catalogue::load_requirements()
        .iter()
        .map(|req| {
            let is = |id: &str| req.id == id;
            let (ok, evidence) = match () {
                _ if is(check("deploy.closes-going-away")) && closes == 0 => {
                    (None, not_reached().to_owned())
                }
                _ if is(check("deploy.closes-going-away")) => (
                    Some(r.closes_abrupt == 0),
                    format!(
                        "{} of {closes} connection(s) closed by the server with 1001",
                        r.closes_going_away
                    ),
                ),
                _ if is(check("deploy.no-run-lost")) => (
                    Some(r.runs_lost == 0),
                    format!(
                        "{} run(s) lost, {} refused explicitly",
                        r.runs_lost, r.runs_refused
                    ),
                ),
                _ if is(check("deploy.clients-back")) && closes == 0 => {
                    (None, not_reached().to_owned())
                }
                _ if is(check("deploy.clients-back")) => (
                    Some(r.connections_not_back == 0),
                    format!(
                        "{} reconnect(s), {} connection(s) not back before the end of the sends",
                        r.reconnects, r.connections_not_back
                    ),
                ),
                _ => (None, "this runner does not judge it".to_owned()),
            };
            DeployVerdict {
                id: req.id.to_owned(),
                verdict: match ok {
                    Some(true) => "pass",
                    Some(false) => "fail",
                    None => "unjudged",
                },
                evidence,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn secrets_never_reach_the_report() {
        assert_eq!(
            redact("restart.sh --jwt-secret hunter22 --x", None),
            "restart.sh --jwt-secret [redacted] --x"
        );
        assert_eq!(
            redact("A=hunter22 x --jwt-secret=hunter22", Some("hunter22")),
            "A=[redacted] x --jwt-secret=[redacted]"
        );
        assert_eq!(redact("plain", Some("s")), "plain");
    }
}
