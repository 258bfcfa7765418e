//! The goldenpath conformance runner: points at any WebSocket chat backend, runs the spec's
//! features against it, validates every frame, and reports per requirement with evidence.
//!
//! The front door is [`check`] with [`Options`]; it returns a [`Report`] that the writers in
//! [`writer`] turn into a terminal summary, JSON or JUnit. A backend that speaks a legacy cousin
//! of the contract is checked through a [`Dialect`] (`Options::dialect`, `--dialect`): its
//! verdicts are marked, and the mapping rules it needed are reported as migration debt.
//!
//! ```no_run
//! # async fn demo() -> Result<(), goldenpath::CheckError> {
//! let report = goldenpath::check(goldenpath::Options::default(), None).await?;
//! println!("{}", goldenpath::writer::summary(&report));
//! std::process::exit(if report.conformant() { 0 } else { 1 });
//! # }
//! ```

pub mod attest;
pub mod capture;
mod checks;
pub mod dialect;
mod executor;
pub mod explain;
mod judge;
pub mod load;
mod placement;
pub mod report;
mod steps;
pub mod target;
pub mod tokens;
mod validate;
mod world;
pub mod writer;

use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use dialect::{Dialect, DialectError, FrameDebt, Lacked};
pub use executor::{Progress, Selection};
pub use load::{LoadError, LoadOptions, LoadReport, load};
pub use report::{Report, RunState, Scope, Verdict};
pub use target::{ConnectError, Evidence, Target};
pub use tokens::{TokenError, TokenKind, TokenSource};
pub use validate::{ValidateError, ValidateOptions, judged_requirements, validate};

use world::Context;

/// What to check, and how.
pub struct Options {
    /// The server under test; `None` starts the reference router in-process.
    pub target: Option<(Target, TokenSource)>,
    /// Which scenarios run.
    pub selection: Selection,
    /// Users in the scenarios that connect many users; `None` keeps each scenario's number.
    pub users: Option<usize>,
    /// Bound on each wait for an answer the spec sets no budget for (a handshake, an `error`
    /// frame, a close). Waits the spec budgets last their budget.
    pub timeout: Duration,
    /// The run timeout the target promises, when it is tighter than the spec's
    /// (`run_timeout_ms` of `features/sequence.toml`); `None` takes the spec's. A run that has
    /// not ended this long after its message breaks the machine's unfinished requirement.
    pub run_timeout: Option<Duration>,
    /// A message that makes the target call a tool (`--tool-prompt`): the tool-trigger
    /// scenarios send it. `None` uses the `directives` capability when the server lists it;
    /// otherwise those scenarios are skipped and the run is INCOMPLETE.
    pub tool_prompt: Option<String>,
    /// SHOULD requirements count as failures.
    pub strict: bool,
    /// Scenarios run at once.
    pub concurrency: usize,
    /// Write every connection's transcript under this directory, as capture files that
    /// [`validate`] re-judges (`<feature>/<line>-<scenario>/<connection>.jsonl`).
    pub record: Option<std::path::PathBuf>,
    /// The dialect the target speaks ([`Dialect::canonical`] by default): its auth, run message
    /// and frame mapping are used throughout, and the report marks every verdict reached
    /// through a non-canonical one and counts its migration debt.
    pub dialect: Dialect,
    /// How much of each connection the transcripts keep.
    pub evidence: Evidence,
    /// The whole run's deadline: scenarios not finished by then are ended and reported as
    /// skipped ("run deadline reached"), and the run is never CONFORMANT. `None`:
    /// [`default_deadline`].
    pub deadline: Option<Duration>,
}

/// The run deadline when none is given: 60 s, plus, for every round of `concurrency`
/// scenarios, twice the run timeout and four `timeout`s (connect, greeting, settle, close):
/// `60 s + ceil(scenarios / concurrency) × (2 × run_timeout + 4 × timeout)`.
pub fn default_deadline(
    scenarios: usize,
    concurrency: usize,
    run_timeout: Duration,
    timeout: Duration,
) -> Duration {
    let rounds = scenarios.div_ceil(concurrency.max(1)) as u32;
    Duration::from_secs(60) + (run_timeout * 2 + timeout * 4) * rounds
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: None,
            selection: Selection::default(),
            users: None,
            timeout: Duration::from_secs(5),
            run_timeout: None,
            tool_prompt: None,
            strict: false,
            concurrency: 16,
            record: None,
            dialect: Dialect::canonical(),
            evidence: Evidence::Bounded,
            deadline: None,
        }
    }
}

/// Why a check could not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The target could not be reached (exit 3).
    #[error("target unreachable: {0}")]
    Unreachable(#[from] ConnectError),
    /// The options cannot work: say what to change (exit 2).
    #[error("{0}")]
    Config(String),
    /// The selection matches no scenario (exit 2).
    #[error("no scenario matches the selection: nothing was checked")]
    NothingSelected,
    /// A runner setting is looser than the spec allows (exit 2).
    #[error("{0}")]
    Budget(String),
}

impl CheckError {
    /// The process exit code for this error: 3 unreachable, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CheckError::Unreachable(_) => 3,
            _ => 2,
        }
    }
}

/// A requirement id of the catalogue, as an example of the id format in a message for people
/// (the catalogue's first).
pub(crate) fn example_id() -> &'static str {
    goldenpath_spec::catalogue::requirements()
        .first()
        .map_or("GP-<FAMILY>-NNN", |r| r.id)
}

/// A duration for people: `850 ms`, `2.5 s`, `30 s`, `2 min 5 s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        if ms.is_multiple_of(1000) {
            format!("{} s", ms / 1000)
        } else {
            format!("{s:.1} s")
        }
    } else {
        let secs = d.as_secs();
        match secs % 60 {
            0 => format!("{} min", secs / 60),
            r => format!("{} min {r} s", secs / 60),
        }
    }
}

/// One scenario the selection would run: (family, scenario name, tags).
pub type Listed = (String, String, Vec<String>);

/// The scenarios `selection` would run, without running anything.
pub fn list(selection: &Selection) -> Vec<Listed> {
    let mut out = Vec::new();
    for feature in executor::features() {
        for scenario in feature
            .scenarios
            .iter()
            .chain(feature.rules.iter().flat_map(|r| r.scenarios.iter()))
        {
            if selection.matches(&feature, scenario) {
                let tags = feature.tags.iter().chain(&scenario.tags).cloned().collect();
                out.push((
                    executor::family(&feature),
                    executor::scenario_name(scenario),
                    tags,
                ));
            }
        }
    }
    out
}

/// Check a target (or the embedded reference router) and report.
///
/// Before any scenario, one connection is opened as a probe: a target that cannot be reached
/// is [`CheckError::Unreachable`]; one that refuses a valid token is a configuration error.
/// The returned future is not `Send` (cucumber runs scenarios as local futures): drive it with
/// `block_on` or `#[tokio::test]`.
pub async fn check(options: Options, progress: Option<Progress>) -> Result<Report, CheckError> {
    if list(&options.selection).is_empty() {
        return Err(CheckError::NothingSelected);
    }
    let spec_run_timeout = Duration::from_millis(
        goldenpath_spec::machine::machine()
            .liveness()
            .run_timeout_ms,
    );
    let budgets = options.dialect.budgets();
    let [least, _] = goldenpath_spec::limits::limits().budgets.run_timeout_ms;
    let run_timeout = match options.run_timeout {
        None => Duration::from_millis(budgets.run_timeout_ms),
        Some(t) if t <= spec_run_timeout && t >= Duration::from_millis(least) => t,
        Some(t) if t < Duration::from_millis(least) => {
            return Err(CheckError::Budget(format!(
                "the run timeout {} is shorter than the spec allows a target to set ({}, features/limits.toml [budgets])",
                human(t),
                human(Duration::from_millis(least))
            )));
        }
        Some(t) => {
            return Err(CheckError::Budget(format!(
                "the run timeout {} is longer than the spec allows ({}): a target may promise a tighter one, not a looser one",
                human(t),
                human(spec_run_timeout)
            )));
        }
    };
    let used = report::Budgets {
        first_event_ms: budgets.first_event_ms,
        completion_ms: budgets.completion_ms,
        max_gap_ms: budgets.max_gap_ms,
        run_timeout_ms: run_timeout.as_millis() as u64,
        source: match (
            options.dialect.sets_budgets(),
            options.run_timeout.is_some(),
        ) {
            (false, false) => "spec".to_owned(),
            (true, false) => format!("spec and dialect {}", options.dialect.name()),
            (false, true) => "spec and --run-timeout".to_owned(),
            (true, true) => format!("spec, dialect {} and --run-timeout", options.dialect.name()),
        },
    };
    if let Some(dir) = &options.record {
        std::fs::create_dir_all(dir).map_err(|e| {
            CheckError::Config(format!("--record {}: cannot create it: {e}", dir.display()))
        })?;
    }
    let started = Instant::now();
    let limit = options.deadline.unwrap_or_else(|| {
        default_deadline(
            list(&options.selection).len(),
            options.concurrency,
            run_timeout,
            options.timeout,
        )
    });
    let deadline = tokio::time::Instant::now() + limit;
    let mut embedded = None;
    let dialect = options.dialect.fresh();
    let (target, mut tokens) = match options.target {
        Some((target, tokens)) => (
            target
                .with_dialect(dialect.clone())
                .with_evidence(options.evidence),
            tokens,
        ),
        None => {
            let server = Embedded::start().await.map_err(|e| {
                CheckError::Config(format!("cannot start the embedded reference router: {e}"))
            })?;
            let (target, tokens) = server.target_and_tokens()?;
            embedded = Some(server);
            (target.with_evidence(options.evidence), tokens)
        }
    };
    let display = if embedded.is_some() {
        "the embedded reference router".to_owned()
    } else {
        target.display_deployment()
    };
    if let TokenSource::Secret { claims, .. } = &mut tokens {
        // The dialect's claims, under those given as flags.
        for (k, v) in dialect.claims() {
            claims.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let run_tag = format!("gp{}-", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let probed =
        tokio::time::timeout_at(deadline, probe(&target, &tokens, &run_tag, options.timeout))
            .await
            .map_err(|_| {
                CheckError::Unreachable(ConnectError::Timeout {
                    url: target.display_url(),
                    timeout: limit,
                })
            })?;
    let mut capabilities = probed?;
    capabilities.extend(dialect.grants().iter().cloned());
    let ctx = Arc::new(Context {
        target,
        tokens,
        timeout: options.timeout,
        users: options.users.map(|n| n.max(2)),
        concurrency: options.concurrency.max(1),
        capabilities,
        run_tag,
        scenarios: Default::default(),
        record: options.record,
        dialect: dialect.clone(),
        run_timeout,
        budgets,
        tool_prompt: options.tool_prompt.clone(),
        agent_runs: Default::default(),
    });
    let scope = report::Scope {
        tags: options.selection.tags_text.clone(),
        only: options.selection.only.clone(),
        limited_to: None,
    };
    let (scenarios, cut) = executor::execute(
        ctx.clone(),
        options.selection,
        progress,
        Some((deadline, limit)),
    )
    .await;
    if let Some(server) = embedded {
        server.stop().await;
    }
    if scenarios.is_empty() {
        return Err(CheckError::NothingSelected);
    }
    let mut report = Report::build(
        display,
        options.strict,
        started.elapsed().as_secs_f64() * 1000.0,
        scenarios,
    );
    report.through_dialect(&dialect);
    let mut report = report.with_scope(scope);
    report.agent_runs = ctx.agent_runs.load(std::sync::atomic::Ordering::Relaxed);
    report.notes = ctx.target.owners().notes();
    report.budgets = Some(used);
    if cut {
        report.notes.push(format!(
            "run deadline reached (--deadline {}): the scenarios still running were ended and are reported as skipped",
            human(limit)
        ));
        report.cut_short();
    }
    Ok(report)
}

/// Open one connection and read the capabilities its greeting advertises.
async fn probe(
    target: &Target,
    tokens: &TokenSource,
    run_tag: &str,
    timeout: Duration,
) -> Result<Vec<String>, CheckError> {
    let user = format!("{run_tag}probe");
    let token = tokens
        .token(&user, TokenKind::Valid)
        .await
        .map_err(|e| CheckError::Config(e.to_string()))?;
    let mut conn = match target
        .connect(
            "probe",
            &user,
            Some(&token),
            target.dialect().placement(),
            timeout,
        )
        .await?
    {
        Ok(conn) => conn,
        Err(refusal) if refusal.not_websocket() => {
            return Err(CheckError::Unreachable(
                refusal.into_error(target.display_url()),
            ));
        }
        Err(refusal) => {
            return Err(CheckError::Config(format!(
                "{} refused a valid token (HTTP {}: {}): check the token source (--jwt-secret and --jwt-claim, --token-file or --token-url)",
                target.display_url(),
                refusal.status,
                refusal.body.trim()
            )));
        }
    };
    let greeting = match conn.next_json(tokio::time::Instant::now() + timeout).await {
        Ok(greeting) => greeting,
        Err(e) => {
            target.owners().note(format!(
                "the target sent no greeting on the probe connection within {} ({e})",
                human(timeout)
            ));
            Value::default()
        }
    };
    let _ = conn.send_close().await;
    let payload = &greeting["payload"];
    let capabilities = payload["capabilities"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(capabilities)
}

/// The reference router, started in-process for the embedded default (of `check` and `load`).
pub(crate) struct Embedded {
    addr: std::net::SocketAddr,
    secret: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

const EMBEDDED_ISSUER: &str = "goldenpath-embedded";
const EMBEDDED_AUDIENCE: &str = "goldenpath";

impl Embedded {
    pub(crate) async fn start() -> std::io::Result<Embedded> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let config = goldenpath_reference::Config::new(secret.clone())
            .with_issuer(EMBEDDED_ISSUER)
            .with_audience(EMBEDDED_AUDIENCE);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = goldenpath_reference::serve(listener, config, shutdown).await {
                tracing::error!("embedded reference router: {e}");
            }
        });
        Ok(Embedded {
            addr,
            secret,
            stop,
            task,
        })
    }

    pub(crate) fn target_and_tokens(&self) -> Result<(Target, TokenSource), CheckError> {
        let target = Target::new(&format!("ws://{}/ws", self.addr), Vec::new(), None, None)?;
        let claims = tokens::parse_claims(&[
            format!("iss={EMBEDDED_ISSUER}"),
            format!("aud={EMBEDDED_AUDIENCE}"),
        ])
        .map_err(|e| CheckError::Config(e.to_string()))?;
        Ok((
            target,
            TokenSource::Secret {
                secret: self.secret.clone(),
                claims,
            },
        ))
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_deadline_follows_the_formula_of_the_help() {
        let d = default_deadline(130, 16, Duration::from_secs(30), Duration::from_secs(5));
        // 60 s + ceil(130 / 16) = 9 rounds × (60 s + 20 s).
        assert_eq!(d, Duration::from_secs(60 + 9 * 80));
        assert_eq!(human(Duration::from_micros(350_400)), "350 ms");
    }
}
