//! `goldenpath diff OLD.json NEW.json`: how every requirement and the migration debt moved
//! between two JSON reports (`check --json`, `validate --json`).

use clap::Args;
use goldenpath::writer::{self, Baseline};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes: 0 no regression, 1 a regression (a new failure, a check lost to `skip`, a SHOULD
/// newly missed), 2 a report cannot be read.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The older JSON report.
    #[arg(value_name = "OLD.json")]
    old: PathBuf,
    /// The newer JSON report.
    #[arg(value_name = "NEW.json")]
    new: PathBuf,
    /// Print Markdown, for a pull request comment, instead of the terminal text.
    #[arg(long)]
    markdown: bool,
}

pub(crate) fn run(args: DiffArgs) -> ExitCode {
    let read = |path: &PathBuf| Baseline::read(path).map(|b| b.report().clone());
    let (old, new) = match (read(&args.old), read(&args.new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("goldenpath diff: {e}");
            return ExitCode::from(2);
        }
    };
    let diff = writer::diff(&old, &new);
    if args.markdown {
        print!("{}", diff.to_markdown());
    } else {
        print!("{}", diff.to_text());
    }
    ExitCode::from(if diff.regressed() { 1 } else { 0 })
}
