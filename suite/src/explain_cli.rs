//! `goldenpath explain GP-XXX-NNN`: a requirement's sentence, scenarios, schemas, code and faults.

use clap::Args;
use goldenpath::explain;
use std::process::ExitCode;

/// Exit codes: 0 explained, 2 no such requirement.
#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// The requirement's id, GP-<FAMILY>-NNN as `check --list` prints it (any case).
    #[arg(value_name = "ID", required_unless_present = "table")]
    id: Option<String>,
    /// Print it as JSON.
    #[arg(long)]
    json: bool,
    /// Print the map of every requirement as a Markdown table (as in ARCHITECTURE.md).
    #[arg(long, conflicts_with_all = ["id", "json"])]
    table: bool,
}

pub(crate) fn run(args: ExplainArgs) -> ExitCode {
    if args.table {
        print!("{}", explain::table());
        return ExitCode::SUCCESS;
    }
    let id = args.id.unwrap_or_default();
    match explain::explain(&id) {
        Ok(e) if args.json => match serde_json::to_string_pretty(&e) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("goldenpath explain: {err}");
                ExitCode::from(2)
            }
        },
        Ok(e) => {
            print!("{e}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("goldenpath explain: {e}");
            ExitCode::from(2)
        }
    }
}
