//! The faulty-server matrix: proof that the suite tells right from wrong.
//!
//! The runner checks the reference router once clean, which must pass every requirement, and
//! once with each fault of its `faults` feature switched on (`goldenpath_reference::Fault`),
//! which must fail exactly the requirements the fault declares (`Fault::breaks`): none missing,
//! and no collateral failure beyond them. Every run is the whole suite, strict (a missed SHOULD
//! fails), against a real server on 127.0.0.1:0 over real WebSocket connections.
//!
//! `KILL_MATRIX.md` is generated from the declarations this test pins:
//!
//! ```sh
//! cargo test -p goldenpath --test faults                                   # check
//! GOLDENPATH_BLESS=1 cargo test -p goldenpath --test faults kill_matrix    # regenerate
//! ```
//!
//! `kill_matrix` fails when the committed file is stale or when a MUST requirement has no
//! fault that kills it. `GOLDENPATH_FAULTS=a,b` runs only those faults (and `clean`);
//! `GOLDENPATH_FAULT_WORKERS=n` sets how many suite runs go at once.

use goldenpath::report::ScenarioResult;
use goldenpath::{Options, Report, Target, TokenSource, Verdict, tokens};
use goldenpath_reference::{Config, Fault};
use goldenpath_spec::catalogue::{self, Level};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const ISSUER: &str = "goldenpath-faults";
const AUDIENCE: &str = "goldenpath";

/// A message that makes the reference's scripted agent call a tool without a directive: its
/// default script is one thinking step and one tool call.
const TOOL_PROMPT: &str = "please count the words of this message";

/// The bound on every wait on the network: the `check` default.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One suite run against the reference, clean (`fault: None`) or with one fault on.
struct Outcome {
    fault: Option<Fault>,
    /// Requirements with verdict `fail` (strict: SHOULDs included).
    failed: BTreeSet<String>,
    /// Requirements with verdict `error`: the suite or the network broke.
    errors: BTreeSet<String>,
    /// Requirements with verdict `pass`.
    passed: BTreeSet<String>,
    took: Duration,
    /// The failing and erroring scenarios, their steps and findings, for a mismatch.
    evidence: String,
}

impl Outcome {
    fn name(&self) -> String {
        self.fault.map_or_else(|| "clean".to_owned(), Fault::name)
    }
}

/// Check the reference router, with `fault` on, over the network.
async fn check(fault: Option<Fault>) -> Report {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("a bound address");
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let mut config = Config::new(secret.clone())
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE);
    if let Some(fault) = fault {
        config = config.with_fault(fault);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(goldenpath_reference::serve(listener, config, async {
        let _ = stopped.await;
    }));
    let target = Target::new(&format!("ws://{addr}/ws"), Vec::new(), None, None)
        .expect("a ws:// URL is a target");
    let claims = tokens::parse_claims(&[format!("iss={ISSUER}"), format!("aud={AUDIENCE}")])
        .expect("claims parse");
    // The late first event comes 2.2 s into every run: give paced runs room after it.
    let timeout = match fault {
        Some(Fault::LateFirstEvent) => TIMEOUT + Duration::from_secs(3),
        _ => TIMEOUT,
    };
    let options = Options {
        target: Some((target, TokenSource::Secret { secret, claims })),
        strict: true,
        timeout,
        // The scripted reference promises a run timeout far tighter than the spec's 30 s, so
        // that a run that never ends costs seconds, not half a minute.
        run_timeout: Some(timeout),
        // A plain prompt, not a directive: a backend without test directives is triggered this
        // way, and a fault that drops tool events on such runs must be caught.
        tool_prompt: Some(TOOL_PROMPT.to_owned()),
        ..Options::default()
    };
    let report = goldenpath::check(options, None)
        .await
        .unwrap_or_else(|e| panic!("checking the reference with {fault:?}: {e}"));
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    report
}

fn ids(report: &Report, verdict: Verdict) -> BTreeSet<String> {
    report
        .ids_with(verdict)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// What went wrong in a run, scenario by scenario: enough to act on without a rerun.
fn evidence(report: &Report) -> String {
    let mut out = String::new();
    let bad = |s: &&ScenarioResult| matches!(s.verdict, Verdict::Fail | Verdict::Error);
    for s in report.scenarios.iter().filter(bad) {
        let found: BTreeSet<&str> = s.findings.iter().map(|f| f.requirement.as_str()).collect();
        let _ = writeln!(
            out,
            "    {}: {} [{}] {found:?}",
            s.feature, s.name, s.verdict
        );
        for step in s.steps.iter().filter(|st| st.verdict != Verdict::Pass) {
            let message: String = step
                .message
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(400)
                .collect();
            let _ = writeln!(
                out,
                "      {} {} -> {message}",
                step.keyword.trim(),
                step.text
            );
        }
        for f in s.findings.iter().filter(|f| f.connection.is_some()).take(3) {
            let got: String = f.got.chars().take(200).collect();
            let on = f.connection.as_deref().unwrap_or("");
            let _ = writeln!(out, "      finding {} on {on}: {got}", f.requirement);
        }
    }
    out
}

/// Run the suite once clean and once per fault, several runs at once: each on a thread of its
/// own with a current-thread runtime, as `goldenpath::check` is not `Send`.
fn run_matrix() -> Vec<Outcome> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let only = std::env::var("GOLDENPATH_FAULTS").ok();
    let selected = |name: &str| {
        only.as_deref()
            .is_none_or(|names| name == "clean" || names.split(',').any(|n| n.trim() == name))
    };
    // The faults of the Redis path break nothing in one process: tests/scale.rs checks them
    // against three instances on a real Redis.
    let queue: Vec<Option<Fault>> = Fault::all()
        .iter()
        .copied()
        .filter(|f| !f.needs_redis())
        .filter(|f| selected(&f.name()))
        .map(Some)
        .chain([None])
        .collect();
    let workers = std::env::var("GOLDENPATH_FAULT_WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
        .unwrap_or(4)
        .max(1);
    let queue = Mutex::new(queue);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                loop {
                    let Some(fault) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                        break;
                    };
                    let started = Instant::now();
                    let report = runtime.block_on(check(fault));
                    let outcome = Outcome {
                        fault,
                        failed: ids(&report, Verdict::Fail),
                        errors: ids(&report, Verdict::Error),
                        passed: ids(&report, Verdict::Pass),
                        took: started.elapsed(),
                        evidence: evidence(&report),
                    };
                    outcomes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(outcome);
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    outcomes.sort_by_key(|o| o.fault);
    outcomes
}

/// The matrix, run once for all the tests of this file.
fn matrix() -> &'static [Outcome] {
    static MATRIX: OnceLock<Vec<Outcome>> = OnceLock::new();
    MATRIX.get_or_init(|| {
        let started = Instant::now();
        let outcomes = run_matrix();
        eprintln!(
            "faulty-server matrix: {} suite runs in {:.1} s",
            outcomes.len(),
            started.elapsed().as_secs_f64()
        );
        outcomes
    })
}

#[test]
fn the_clean_reference_passes_every_requirement() {
    let clean = matrix()
        .iter()
        .find(|o| o.fault.is_none())
        .expect("the matrix runs the clean reference");
    let all: BTreeSet<String> = catalogue::requirements()
        .iter()
        .map(|r| r.id.to_owned())
        .collect();
    assert!(
        clean.passed == all,
        "the clean reference must pass all {} requirements; not passed: {:?}\n{}",
        all.len(),
        all.difference(&clean.passed).collect::<Vec<_>>(),
        clean.evidence
    );
}

#[test]
fn each_fault_fails_exactly_the_requirements_it_declares() {
    let mut mismatches = Vec::new();
    let mut times = Vec::new();
    for outcome in matrix().iter().filter(|o| o.fault.is_some()) {
        let fault = outcome.fault.expect("filtered");
        // `check` judges the requirements of the catalogue's main table; those only a deploy
        // shows (`catalogue::load_requirements`, GP-DEPLOY-*) are proved by tests/deploy.rs.
        let declared: BTreeSet<String> = fault
            .breaks()
            .iter()
            .filter(|id| catalogue::requirement(id).is_some())
            .map(|s| (*s).to_owned())
            .collect();
        times.push(format!(
            "{} {:.1}s",
            outcome.name(),
            outcome.took.as_secs_f64()
        ));
        if outcome.failed == declared && outcome.errors.is_empty() {
            continue;
        }
        mismatches.push(format!(
            "{}: declared {declared:?}\n  failed   {:?}\n  missing  {:?}\n  extra    {:?}\n  errors   {:?}\n{}",
            outcome.name(),
            outcome.failed,
            declared.difference(&outcome.failed).collect::<Vec<_>>(),
            outcome.failed.difference(&declared).collect::<Vec<_>>(),
            outcome.errors,
            outcome.evidence
        ));
    }
    eprintln!("suite runs: {}", times.join(", "));
    // Printed as well as asserted: the runner's step panics replace the panic hook, which can
    // swallow the assertion's own message.
    for m in &mismatches {
        eprintln!("{m}");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} faults broke other requirements than they declare:\n\n{}",
        mismatches.len(),
        matrix().len() - 1,
        mismatches.join("\n")
    );
}

/// The kill matrix of `Fault::breaks`, as Markdown.
fn render_kill_matrix() -> String {
    let mut killers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for fault in Fault::all() {
        for id in fault.breaks() {
            killers.entry(id).or_default().push(fault.name());
        }
    }
    let requirements = catalogue::requirements();
    let count = |level: Level| {
        let of_level: Vec<_> = requirements.iter().filter(|r| r.level == level).collect();
        let killed = of_level
            .iter()
            .filter(|r| killers.contains_key(r.id))
            .count();
        (killed, of_level.len())
    };
    let (must_killed, musts) = count(Level::Must);
    let (should_killed, shoulds) = count(Level::Should);
    let mut out = String::new();
    let _ = writeln!(out, "# Kill matrix");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "<!-- Generated: GOLDENPATH_BLESS=1 cargo test -p goldenpath --test faults kill_matrix. Do not edit. -->"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Which deliberately broken server fails which requirement. Each fault is the reference router \
         with one realistic bug switched on (`goldenpath serve --fault NAME`, `reference/src/faults/`), \
         and declares the exact set of requirements it breaks; the faulty-server matrix \
         (`tests/faults.rs`) runs the whole suite, strict, against each and checks that it fails \
         exactly that set, and that the clean reference passes everything. The faults of the Redis \
         path (`serve --redis`) are checked the same way against three instances on one real Redis \
         (`tests/scale.rs`). This file is generated from those declarations."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "- MUST requirements killed: **{must_killed} / {musts}** ({} %)",
        must_killed * 100 / musts.max(1)
    );
    let _ = writeln!(
        out,
        "- SHOULD requirements killed: **{should_killed} / {shoulds}**"
    );
    let _ = writeln!(out, "- Faults: **{}**", Fault::all().len());
    let _ = writeln!(out);
    let _ = writeln!(out, "## Requirements × faults");
    let _ = writeln!(out);
    let _ = writeln!(out, "| requirement | level | killed by |");
    let _ = writeln!(out, "|---|---|---|");
    for r in requirements {
        let by = killers.get(r.id).map_or_else(
            || "**none**".to_owned(),
            |names| {
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        let _ = writeln!(out, "| {} | {} | {by} |", r.id, r.level);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "## Requirements judged by a deploy (`goldenpath load --restart-cmd`)"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Not `check`'s: a fault that breaks only these fails no requirement of the matrix above \
         (`check` never restarts the target); `tests/deploy.rs` proves them with a rolling restart."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "| requirement | level | killed by |");
    let _ = writeln!(out, "|---|---|---|");
    for r in catalogue::load_requirements() {
        let by = killers.get(r.id).map_or_else(
            || "**none**".to_owned(),
            |names| {
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        let _ = writeln!(out, "| {} | {} | {by} |", r.id, r.level);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## Requirements no fault kills");
    let _ = writeln!(out);
    let unkilled: Vec<_> = requirements
        .iter()
        .filter(|r| !killers.contains_key(r.id))
        .collect();
    if unkilled.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for r in unkilled {
        let _ = writeln!(out, "- {} ({}): {}", r.id, r.level, r.text);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## Faults");
    let _ = writeln!(out);
    let _ = writeln!(out, "| fault | the legacy bug | breaks |");
    let _ = writeln!(out, "|---|---|---|");
    for fault in Fault::all() {
        let bug = fault.bug().replace('\n', " ").replace('|', "\\|");
        let _ = writeln!(
            out,
            "| `{}` | {bug} | {} |",
            fault.name(),
            fault.breaks().join(", ")
        );
    }
    out
}

#[test]
fn kill_matrix() {
    let rendered = render_kill_matrix();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../KILL_MATRIX.md");
    if std::env::var_os("GOLDENPATH_BLESS").is_some() {
        std::fs::write(&path, &rendered).expect("write KILL_MATRIX.md");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "KILL_MATRIX.md is stale: regenerate it with `GOLDENPATH_BLESS=1 cargo test -p goldenpath --test faults kill_matrix`"
    );
    let unkilled: Vec<&str> = catalogue::requirements()
        .iter()
        .chain(catalogue::load_requirements())
        .filter(|r| r.level == Level::Must)
        .filter(|r| !Fault::all().iter().any(|f| f.breaks().contains(&r.id)))
        .map(|r| r.id)
        .collect();
    assert!(
        unkilled.is_empty(),
        "no fault kills these MUST requirements: {unkilled:?}"
    );
}
