//! `drs-runbook validate <RUNBOOK>...`: checks files, reports every problem, touches nothing.

use std::path::PathBuf;

use super::{Cli, CliError, Output, exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runbook files to check.
    #[arg(required = true)]
    pub runbooks: Vec<PathBuf>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8, CliError> {
    let mut results = Vec::new();
    let mut failed = 0;
    for path in &args.runbooks {
        match crate::runbook::load(path) {
            Ok((runbook, _)) => results.push(serde_json::json!({
                "file": path.display().to_string(), "valid": true, "name": runbook.name, "problems": []
            })),
            Err(e) => {
                failed += 1;
                results.push(serde_json::json!({
                    "file": path.display().to_string(), "valid": false, "problems": [e.to_string()]
                }));
                if cli.output == Output::Text {
                    eprintln!("{e}");
                }
            }
        }
    }
    match cli.output {
        Output::Json => println!("{}", serde_json::json!({ "runbooks": results })),
        Output::Text => {
            for r in &results {
                if r["valid"] == true {
                    println!("{}: ok ({})", r["file"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or(""));
                }
            }
        }
    }
    if failed > 0 {
        Err(CliError {
            code: exit::INVALID_INPUT,
            message: format!("{failed} of {} runbook(s) are not valid (hint: fix the lines named above)", args.runbooks.len()),
        })
    } else {
        Ok(exit::SUCCEEDED)
    }
}
