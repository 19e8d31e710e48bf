//! `report <RUN_ID> --format md|json|html [-o FILE]`: the auditor's report of one run, gathered
//! from the store (never from AWS) and rendered by the pure `report` module.

use std::path::PathBuf;

use super::{Cli, CliError, exit, session};
use crate::report::{self, Format, ReportError};
use crate::store::RunId;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run to report on (`drs-runbook history` lists them).
    pub run_id: String,
    /// Markdown, JSON, or one self-contained HTML file with an SVG timeline.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    pub format: Format,
    /// Write the report to this file instead of stdout.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Parses a run ID given on the command line.
pub fn parse_run_id(text: &str) -> Result<RunId, CliError> {
    text.parse().map_err(CliError::InvalidRunId)
}

/// Maps a gathering error to the CLI: an unknown run is invalid input (exit 2).
pub fn report_error(cli: &Cli, e: ReportError) -> CliError {
    CliError::report(session::db_path(cli), e)
}

/// Writes a report readable by its owner only (0600): it holds the runbook, the operator, hosts
/// and IPs. An existing regular file is narrowed to 0600 too.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.is_file() {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)
}

pub async fn run(cli: &Cli, args: &Args) -> Result<u8, CliError> {
    let run_id = parse_run_id(&args.run_id)?;
    let db = session::open_db(cli).await?;
    let data = report::gather(&db, &run_id, chrono::Utc::now())
        .await
        .map_err(|e| report_error(cli, e))?;
    let text = args.format.render(&data);
    match &args.out {
        Some(path) => {
            write_private(path, text.as_bytes()).map_err(|cause| CliError::WriteReport {
                path: path.clone(),
                cause,
            })?;
            eprintln!(
                "wrote the {} report of run {run_id} to {}",
                args.format.name(),
                path.display()
            );
        }
        None => {
            if args.format == Format::Json {
                super::json_printed();
            }
            print!("{text}")
        }
    }
    if !data.audit.verified {
        // The report is written (it says where the trail breaks), but its evidence cannot be
        // trusted: a scheduled job must notice.
        return Err(CliError::AuditBroken {
            run_id,
            broken: data.audit.broken.clone(),
        });
    }
    Ok(exit::SUCCEEDED)
}
