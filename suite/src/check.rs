//! `goldenpath check`: flags → options → run → writers → exit code.

use clap::Args;
use goldenpath::attest;
use goldenpath::report::{Report, ScenarioResult};
use goldenpath::writer;
use goldenpath::{CheckError, Dialect, Options, Selection};

use crate::target_cli::TargetArgs;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit codes: 0 conformant (every MUST ran and passed), 1 not conformant, 2 usage or
/// configuration error or an inconclusive run (the suite or the network broke), 3 target
/// unreachable or not a WebSocket endpoint (refused, DNS, TLS, an HTTP answer such as 200, 404
/// or a redirect, no upgrade), 4 incomplete (a MUST did not run: the summary says which and how
/// to enable it; also a run ended by --deadline), 5 partial (--only or --tags narrowed the run).
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Run only scenarios matching this tag expression, e.g. "@isolation and not @directives".
    #[arg(long)]
    tags: Option<String>,
    /// Run only scenarios checking requirements with this id prefix, e.g. GP-SEQ. Repeatable.
    #[arg(long)]
    only: Vec<String>,
    /// Print the scenarios and requirements that would run, and run nothing.
    #[arg(long)]
    list: bool,
    /// Count SHOULD requirements as failures.
    #[arg(long)]
    strict: bool,
    /// Users in the scenarios that connect many users (default: each scenario's own, 8).
    #[arg(long)]
    users: Option<usize>,
    /// Bound on each wait for an answer the spec sets no budget for (a handshake, an error
    /// frame, a close), in seconds. Waits the spec budgets (a run until its terminal event:
    /// the run timeout) last their budget, whatever this says.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// The run timeout the target promises, in seconds, when it is tighter than the spec's
    /// (30 s): a run not ended this long after its message is unfinished sooner. Longer than
    /// the spec's is refused. It overrides `run_timeout_ms` of the dialect file's
    /// `[budgets]`, where a target sets its first-event, gap and completion budgets too, within
    /// the ranges of features/limits.toml; the report says which budgets were used.
    #[arg(long, value_name = "SECS")]
    run_timeout: Option<f64>,
    /// A message that makes the backend call a tool (e.g. "What time is it in Tokyo? Use the
    /// clock tool."): the tool-trigger scenarios send it to check that a run delivers all five
    /// events with paired tool calls. Without it, a server that lists the `directives`
    /// capability is sent a directive; any other gets those MUSTs unchecked (INCOMPLETE).
    #[arg(long, value_name = "TEXT")]
    tool_prompt: Option<String>,
    /// Scenarios run at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The whole run's deadline, in seconds: the scenarios not finished by then are ended and
    /// reported as skipped ("run deadline reached"), and the run is never CONFORMANT (exit 4
    /// at best). Default: 60 s + ceil(scenarios / concurrency) × (2 × run timeout + 4 ×
    /// --timeout).
    #[arg(long, value_name = "SECS")]
    deadline: Option<f64>,
    /// How much of each connection the transcripts keep: `bounded` (the first and the last 100
    /// frames, with a count of those left out) or `full` (every frame; use it with --record to
    /// capture everything).
    #[arg(long, value_enum, default_value = "bounded")]
    evidence: EvidenceArg,
    #[command(flatten)]
    reports: ReportArgs,
    /// Write a signed attestation of the run here: an in-toto Statement in a DSSE envelope
    /// (`goldenpath verify` checks it). Needs --signing-key.
    #[arg(long, value_name = "FILE", requires = "signing_key")]
    attest: Option<PathBuf>,
    /// The Ed25519 key that signs --attest: a PKCS#8 PEM file (`goldenpath keygen` makes one).
    #[arg(long, value_name = "FILE", requires = "attest")]
    signing_key: Option<PathBuf>,
    /// Record every connection's transcript under this directory, as JSON Lines capture files
    /// that `goldenpath validate` re-judges offline.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
}

/// `--evidence`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum EvidenceArg {
    /// The first and the last 100 frames of each connection.
    Bounded,
    /// Every frame.
    Full,
}

/// Where the reports go: the flags `check` and `validate` share.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Print only the verdict line and the failures.
    #[arg(long, short)]
    quiet: bool,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Compare with a previous JSON report, as `goldenpath diff PREV.json NOW.json`; exit 1
    /// on a regression (a new failure, a pass lost to skip, a SHOULD newly missed).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Write a self-contained HTML report here (no script, no network).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write a Markdown summary of the verdict and the failing requirements here (e.g.
    /// "$GITHUB_STEP_SUMMARY").
    #[arg(long, value_name = "FILE")]
    summary_md: Option<PathBuf>,
}

impl ReportArgs {
    /// The baseline to compare with, read before anything runs.
    pub(crate) fn read_baseline(&self) -> Result<Option<writer::Baseline>, String> {
        self.baseline
            .as_deref()
            .map(writer::Baseline::read)
            .transpose()
            .map_err(|e| e.to_string())
    }
}

/// The dialect `--dialect` names: a built-in or a file.
pub(crate) fn load_dialect(name_or_path: &str) -> Result<Dialect, String> {
    Dialect::load(name_or_path).map_err(|e| format!("--dialect: {e}"))
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("goldenpath check: {message}");
    ExitCode::from(2)
}

pub(crate) async fn run(args: CheckArgs) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let selection = match selection(&args) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    if args.list {
        return list(&selection);
    }
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return usage("--timeout must be a positive number of seconds");
    }
    if let Some(d) = args.deadline
        && !(d > 0.0 && d.is_finite())
    {
        return usage("--deadline must be a positive number of seconds");
    }
    let baseline = match args.reports.read_baseline() {
        Ok(b) => b,
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
    let signing_key = match args.signing_key.as_deref().map(attest::read_signing_key) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(e)) => return usage(format!("--signing-key {e}")),
    };
    let facts = |started, finished| attest::RunFacts {
        report_name: args
            .reports
            .json
            .as_deref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| attest::REPORT_SUBJECT.to_owned()),
        dialect: attest::DialectRef {
            name: dialect.name().to_owned(),
            origin: dialect.origin().to_owned(),
            sha256: dialect.sha256().to_owned(),
        },
        selection: attest::SelectionRef {
            tags: args.tags.clone(),
            only: args.only.clone(),
            strict: args.strict,
        },
        started,
        finished,
    };
    let options = Options {
        dialect: dialect.clone(),
        target,
        selection,
        users: args.users,
        timeout: Duration::from_secs_f64(args.timeout),
        run_timeout: args.run_timeout.map(Duration::from_secs_f64),
        tool_prompt: args.tool_prompt.clone(),
        strict: args.strict,
        concurrency: args.concurrency,
        record: args.record.clone(),
        evidence: match args.evidence {
            EvidenceArg::Bounded => goldenpath::Evidence::Bounded,
            EvidenceArg::Full => goldenpath::Evidence::Full,
        },
        deadline: args.deadline.map(Duration::from_secs_f64),
    };
    let total = goldenpath::list(&options.selection).len() as u64;
    let bar = progress_bar(total);
    let progress = bar.clone().map(|bar| {
        Arc::new(move |s: &ScenarioResult| {
            bar.set_message(s.name.clone());
            bar.inc(1);
        }) as goldenpath::Progress
    });
    let started = time::OffsetDateTime::now_utc();
    let result = goldenpath::check(options, progress).await;
    let finished = time::OffsetDateTime::now_utc();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e @ CheckError::Unreachable(_)) => {
            eprintln!("goldenpath check: {e}");
            return ExitCode::from(e.exit_code());
        }
        Err(e) => return usage(e),
    };
    if let Some(dir) = &args.record {
        eprintln!("recorded: {}", dir.display());
    }
    if let (Some(path), Some(key)) = (&args.attest, &signing_key) {
        let statement = attest::statement(
            &report,
            &writer::to_json(&report),
            &facts(started, finished),
        );
        let written = attest::sign(&statement, key)
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(path, text).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("goldenpath check: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    write_reports("check", &report, &args.reports, baseline.as_ref())
}

/// Print the summary, write the JSON and JUnit reports asked for, and compare with the
/// baseline: the exit code of `check` and `validate` alike.
pub(crate) fn write_reports(
    command: &str,
    report: &Report,
    args: &ReportArgs,
    baseline: Option<&writer::Baseline>,
) -> ExitCode {
    if args.quiet {
        print!("{}", quiet_summary(&writer::summary(report)));
    } else {
        print!("{}", writer::summary(report));
    }
    if let Some(path) = &args.json
        && let Err(e) = std::fs::write(path, writer::to_json(report))
    {
        eprintln!("goldenpath {command}: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, writer::to_junit(report))
    {
        eprintln!("goldenpath {command}: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if let Some(path) = &args.html
        && let Err(e) = std::fs::write(path, writer::to_html(report, baseline))
    {
        eprintln!("goldenpath {command}: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if let Some(path) = &args.summary_md
        && let Err(e) = append(path, &writer::to_markdown(report, baseline))
    {
        eprintln!("goldenpath {command}: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if let Some(baseline) = baseline {
        return compare(report, baseline);
    }
    // Offline re-judging never certifies (its report says PARTIAL); its exit says whether what
    // it could judge held.
    if command == "validate" && report.state == goldenpath::RunState::Partial {
        return ExitCode::from(0);
    }
    ExitCode::from(report.state.exit_code())
}

/// `--quiet`: of the summary, only the requirements that failed or errored, the notes, and the
/// verdict line (its last).
fn quiet_summary(summary: &str) -> String {
    let lines: Vec<&str> = summary.lines().collect();
    let mut out = String::new();
    for line in lines.iter().rev().skip(1).rev() {
        if line.starts_with("fail ") || line.starts_with("error ") || line.starts_with("note: ") {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(last) = lines.last() {
        out.push_str(last);
        out.push('\n');
    }
    out
}

/// Append to a file, creating it: a job summary file collects every step's summary.
fn append(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

fn selection(args: &CheckArgs) -> Result<Selection, String> {
    let tags = match &args.tags {
        Some(expr) => Some(
            expr.parse()
                .map_err(|e| format!("--tags {expr:?} is not a tag expression: {e}"))?,
        ),
        None => None,
    };
    for prefix in &args.only {
        if !goldenpath_spec::catalogue::requirements()
            .iter()
            .any(|r| r.id.starts_with(prefix.as_str()))
        {
            return Err(format!(
                "--only {prefix:?} names no requirement (ids look like {})",
                goldenpath_spec::catalogue::requirements()
                    .first()
                    .map_or("GP-<FAMILY>-NNN", |r| r.id)
            ));
        }
    }
    Ok(Selection {
        tags,
        tags_text: args.tags.clone(),
        only: args.only.clone(),
    })
}

fn list(selection: &Selection) -> ExitCode {
    let scenarios = goldenpath::list(selection);
    if scenarios.is_empty() {
        return usage("no scenario matches the selection");
    }
    let mut ids: Vec<String> = Vec::new();
    for (family, name, tags) in &scenarios {
        let reqs: Vec<&String> = tags.iter().filter(|t| t.starts_with("GP-")).collect();
        println!(
            "{family:<11} {name}  [{}]",
            reqs.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        for r in reqs {
            if !ids.contains(r) {
                ids.push(r.clone());
            }
        }
    }
    ids.sort();
    println!();
    for id in &ids {
        if let Some(r) = goldenpath_spec::catalogue::requirement(id) {
            println!("{id:<13} {:<6} {}", r.level.to_string(), r.text);
        }
    }
    println!(
        "\n{} scenarios, {} requirements",
        scenarios.len(),
        ids.len()
    );
    ExitCode::SUCCESS
}

fn progress_bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} scenarios  {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// The comparison with the baseline, as `goldenpath diff BASELINE NOW` prints it; exit 1 on a
/// regression (a new failure, a lost check, a SHOULD newly missed).
fn compare(report: &Report, baseline: &writer::Baseline) -> ExitCode {
    let diff = writer::diff(baseline.report(), report);
    println!();
    println!("against the baseline:");
    print!("{}", diff.to_text());
    ExitCode::from(if diff.regressed() { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn quiet_keeps_the_failures_the_notes_and_the_verdict() {
        let summary = "goldenpath: spec v1 against x\n\nfamily pass\nfail           MUST   GP-SEQ-001 a\nskip           MUST   GP-SEQ-002 b\n\nFAIL sequence: s [GP-SEQ-001]\nnote: the target flooded a connection\nNOT CONFORMANT: 0 requirements passed\n";
        assert_eq!(
            super::quiet_summary(summary),
            "fail           MUST   GP-SEQ-001 a\nnote: the target flooded a connection\nNOT CONFORMANT: 0 requirements passed\n"
        );
    }
}
