//! `failover` and `drill`: plan a new run of a runbook and drive it.

use std::path::PathBuf;

use super::session::{self, Session};
use super::{Cli, CliError, Output};
use crate::engine::driver::{RunReport, human};
use crate::engine::plan::{Mode, Operation};
use crate::engine::{self, NewRunRequest};
use crate::steps::RunOptions;
use crate::store::RunId;
use crate::terminal::{safe, safe_lines};

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    pub runbook: PathBuf,
    /// Recover from the latest snapshot at or before this time (RFC 3339), or `latest`.
    #[arg(long, default_value = "latest")]
    pub point_in_time: String,
    /// Planned (source reachable, stop on the first error) or unplanned (source down).
    #[arg(long, value_enum, default_value_t = Mode::Planned)]
    pub mode: Mode,
    /// Approve every gate up front (unattended runs).
    #[arg(long)]
    pub yes: bool,
    /// Start even though DRS shows live non-drill recovery instances (production) that this
    /// run's launch would terminate. Logged, and recorded in the run's audit trail.
    #[arg(long)]
    pub override_production_guard: bool,
    /// POST a JSON summary to this URL when the run ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    pub runbook: PathBuf,
    /// Keep the drill instances (no cleanup).
    #[arg(long)]
    pub keep: bool,
    /// Approve every gate up front (scheduled drills).
    #[arg(long)]
    pub yes: bool,
    /// Start even though DRS shows live non-drill recovery instances (production) that this
    /// run's launch would terminate. Logged, and recorded in the run's audit trail.
    #[arg(long)]
    pub override_production_guard: bool,
    /// POST a JSON summary to this URL when the run ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

pub async fn failover(cli: &Cli, args: &FailoverArgs) -> Result<u8, CliError> {
    let point_in_time = match args.point_in_time.as_str() {
        "latest" => None,
        text => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|cause| CliError::InvalidPointInTime {
                    value: text.to_string(),
                    cause,
                })?
                .with_timezone(&chrono::Utc),
        ),
    };
    let options = RunOptions {
        mode: args.mode,
        point_in_time,
        keep: false,
        yes: args.yes,
        max_servers_per_job: 100,
        drill: false,
        override_production_guard: args.override_production_guard,
    };
    start(
        cli,
        &args.runbook,
        Operation::Failover,
        options,
        args.notify.as_deref(),
    )
    .await
}

pub async fn drill(cli: &Cli, args: &DrillArgs) -> Result<u8, CliError> {
    let options = RunOptions {
        mode: Mode::Planned,
        point_in_time: None,
        keep: args.keep,
        yes: args.yes,
        max_servers_per_job: 100,
        drill: false,
        override_production_guard: args.override_production_guard,
    };
    start(
        cli,
        &args.runbook,
        Operation::Drill,
        options,
        args.notify.as_deref(),
    )
    .await
}

async fn start(
    cli: &Cli,
    path: &std::path::Path,
    operation: Operation,
    options: RunOptions,
    notify: Option<&str>,
) -> Result<u8, CliError> {
    // The runbook is checked before anything else: a bad file touches no database.
    let loaded = crate::runbook::load(path)?;
    let (runbook, text) = (loaded.runbook, loaded.text);
    let db = session::open_db(cli).await?;
    let session = Session::connect(cli, db, &runbook, &text).await?;
    let run_id = RunId::generate();
    eprintln!("run {run_id}");
    let request = NewRunRequest {
        run_id: run_id.clone(),
        runbook: &runbook,
        runbook_path: &path.display().to_string(),
        runbook_text: &text,
        operation,
        options,
        parent: None,
    };
    let result = engine::start_run(&session.context(), request).await;
    session.close();
    let report = match result {
        Ok(report) => report,
        // A run that failed before it was stored (a read-only database, a full disk) is not
        // resumable: say so rather than give the resume hint.
        // Not when the database is unreachable: the run may well be stored; resume tells.
        Err(e)
            if !e.is_refusal()
                && !e.is_invalid()
                && !crate::store::is_unreachable(&e)
                && !run_is_stored(&session.db, &run_id).await =>
        {
            return Err(CliError::NotStored {
                run_id,
                cause: super::sim_serve::error_chain(&e),
            });
        }
        Err(e) => return Err(e.into()),
    };
    finish(cli, &report, notify).await
}

/// Whether the run's row is in the database (false when it cannot even be read).
async fn run_is_stored(db: &crate::store::Database, run_id: &RunId) -> bool {
    let Ok(mut conn) = db.pool().acquire().await else {
        return false;
    };
    crate::store::runs::get(&mut conn, run_id).await.is_ok()
}

/// Prints the report and sends the notification; returns the exit code.
pub async fn finish(cli: &Cli, report: &RunReport, notify: Option<&str>) -> Result<u8, CliError> {
    render(cli, report);
    if let Some(url) = notify {
        super::notify::post(url, report).await;
    }
    Ok(report.exit_code())
}

pub fn render(cli: &Cli, report: &RunReport) {
    match cli.output {
        Output::Json => super::print_json(report),
        Output::Text => {
            println!(
                "run {} ({}): {}",
                report.run_id, report.operation, report.status
            );
            for step in &report.steps {
                println!("  {:<28} {}", safe(&step.key), step.status);
            }
            if let Some(rto) = report.rto_seconds {
                let goal = report
                    .objectives
                    .as_ref()
                    .and_then(|o| o.rto_seconds)
                    .map(|g| {
                        format!(
                            " (objective {}{})",
                            human(g),
                            if report.objectives.as_ref().and_then(|o| o.rto_met) == Some(false) {
                                ", MISSED"
                            } else {
                                ", met"
                            }
                        )
                    })
                    .unwrap_or_default();
                println!("  RTO {}{goal}", human(rto));
            }
            if let Some(rpo) = report.rpo_seconds {
                let goal = report
                    .objectives
                    .as_ref()
                    .and_then(|o| o.rpo_seconds)
                    .map(|g| {
                        format!(
                            " (objective {}{})",
                            human(g),
                            if report.objectives.as_ref().and_then(|o| o.rpo_met) == Some(false) {
                                ", MISSED"
                            } else {
                                ", met"
                            }
                        )
                    })
                    .unwrap_or_default();
                println!("  RPO {}{goal}", human(rpo));
            }
            if let Some(error) = &report.error {
                println!("  error: {}", safe_lines(error));
            }
            let in_doubt = report.approvals.iter().any(|a| {
                a.changes
                    .iter()
                    .any(|c| c.action == crate::run::progress::Change::DECIDE)
            });
            match report.status.as_str() {
                "paused" if in_doubt => println!(
                    "  next: drs-runbook retry {0} --step {1} (run it again), or drs-runbook skip {0} --step {1} --reason ...",
                    report.run_id,
                    report.waiting_for.as_deref().unwrap_or("<step>")
                ),
                "paused" => println!(
                    "  next: drs-runbook approve {} --step {}",
                    report.run_id,
                    report.waiting_for.as_deref().unwrap_or("<step>")
                ),
                "failed" => println!(
                    "  next: fix the cause, then `drs-runbook retry {0} --step <step>` or `drs-runbook rollback {0}`",
                    report.run_id
                ),
                "interrupted" => println!("  next: drs-runbook resume {}", report.run_id),
                _ => {}
            }
        }
    }
}
