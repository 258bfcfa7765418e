//! `goldenpath validate`: captures → offline judging → writers → exit code.

use clap::Args;
use goldenpath::{ValidateError, ValidateOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes: 0 every judged requirement holds, 1 one does not, 2 a capture cannot be read.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Capture files (JSON Lines, as `goldenpath check --record DIR` writes them), or
    /// directories holding them.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
    /// Count SHOULD requirements as failures.
    #[arg(long)]
    strict: bool,
    /// Read the captured frames through this dialect: a built-in name (canonical,
    /// netra-legacy) or a dialect TOML file.
    #[arg(long, value_name = "NAME|FILE", default_value = "canonical")]
    dialect: String,
    #[command(flatten)]
    reports: crate::check::ReportArgs,
}

pub(crate) fn run(args: ValidateArgs) -> ExitCode {
    let usage = |message: &dyn std::fmt::Display| {
        eprintln!("goldenpath validate: {message}");
        ExitCode::from(2)
    };
    let baseline = match args.reports.read_baseline() {
        Ok(b) => b,
        Err(e) => return usage(&e),
    };
    let dialect = match crate::check::load_dialect(&args.dialect) {
        Ok(d) => d,
        Err(e) => return usage(&e),
    };
    let options = ValidateOptions {
        captures: args.captures,
        strict: args.strict,
        dialect,
    };
    let report = match goldenpath::validate(&options) {
        Ok(r) => r,
        Err(e @ (ValidateError::Capture(_) | ValidateError::NothingToJudge)) => return usage(&e),
    };
    crate::check::write_reports("validate", &report, &args.reports, baseline.as_ref())
}
