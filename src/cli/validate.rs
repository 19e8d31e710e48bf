//! `drs-runbook validate <RUNBOOK>...`: checks every file and reports every problem of each.
//!
//! It reads the files and nothing else: no database is opened (not even created) and no AWS
//! call is made, so it is safe in CI and in editors. Problems go to stderr, one per line with
//! file:line:column and key path; `ok` lines for valid files go to stdout; `--output json`
//! prints one object on stdout instead. Exit 2 when any file is invalid.

use serde::Serialize;
use std::path::PathBuf;

use super::{Cli, CliError, Output, exit};
use crate::runbook::{LoadedRunbook, RunbookError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runbook files to check.
    #[arg(required = true)]
    pub runbooks: Vec<PathBuf>,
}

/// The JSON report: `{"runbooks": [...]}`.
#[derive(Debug, Serialize)]
struct Report {
    runbooks: Vec<FileReport>,
}

#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    /// The runbook's name, when the file is valid.
    name: Option<String>,
    problems: Vec<ProblemReport>,
}

#[derive(Debug, Serialize)]
struct ProblemReport {
    /// Absent (null) for a file that could not be read.
    line: Option<usize>,
    column: Option<usize>,
    key: String,
    message: String,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8, CliError> {
    let outcomes: Vec<(String, Result<LoadedRunbook, RunbookError>)> = args
        .runbooks
        .iter()
        .map(|path| (path.display().to_string(), crate::runbook::load(path)))
        .collect();
    match cli.output {
        Output::Text => print_text(&outcomes),
        Output::Json => print_report(&outcomes)?,
    }
    let invalid = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.is_err())
        .count();
    if invalid > 0 {
        let total = outcomes.len();
        return Err(CliError::RunbooksInvalid { invalid, total });
    }
    Ok(exit::SUCCEEDED)
}

fn print_text(outcomes: &[(String, Result<LoadedRunbook, RunbookError>)]) {
    for (file, outcome) in outcomes {
        match outcome {
            Ok(loaded) => {
                let runbook = &loaded.runbook;
                println!(
                    "{}: ok ({}: {} wave{}, {} server{})",
                    crate::terminal::safe(file),
                    crate::terminal::safe(&runbook.name),
                    runbook.waves.len(),
                    plural(runbook.waves.len()),
                    runbook.servers().len(),
                    plural(runbook.servers().len()),
                );
            }
            Err(error) => eprintln!("{}", crate::terminal::safe_lines(&error.to_string())),
        }
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn print_report(
    outcomes: &[(String, Result<LoadedRunbook, RunbookError>)],
) -> Result<(), CliError> {
    let runbooks = outcomes
        .iter()
        .map(|(file, outcome)| file_report(file, outcome))
        .collect();
    super::print_json(&Report { runbooks });
    Ok(())
}

fn file_report(file: &str, outcome: &Result<LoadedRunbook, RunbookError>) -> FileReport {
    match outcome {
        Ok(loaded) => FileReport {
            file: file.to_string(),
            valid: true,
            name: Some(loaded.runbook.name.clone()),
            problems: Vec::new(),
        },
        Err(error) => {
            let problems = match error {
                RunbookError::Read { .. } | RunbookError::Refused { .. } => vec![ProblemReport {
                    line: None,
                    column: None,
                    key: String::new(),
                    message: super::sim_serve::error_chain(error),
                }],
                RunbookError::Invalid { problems, .. } => problems
                    .iter()
                    .map(|p| ProblemReport {
                        line: Some(p.line),
                        column: Some(p.column),
                        key: p.key.clone(),
                        message: p.message.clone(),
                    })
                    .collect(),
            };
            FileReport {
                file: file.to_string(),
                valid: false,
                name: None,
                problems,
            }
        }
    }
}
