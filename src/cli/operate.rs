//! `failover` and `drill`: plan a new run of a runbook and drive it.

use std::path::PathBuf;

use super::{Cli, CliError, Output, exit, session};
use crate::engine::driver::{RunReport, human, terminal_is_interactive};
use crate::engine::plan::{Mode, Operation};
use crate::engine::progress::Progress;
use crate::engine::{self, Context, EngineError, NewRunRequest};
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
    /// POST a JSON summary to this URL when the run ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

pub async fn failover(cli: &Cli, args: &FailoverArgs) -> Result<u8, CliError> {
    let point_in_time = match args.point_in_time.as_str() {
        "latest" => None,
        text => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| CliError::invalid_input(format!("invalid --point-in-time {text:?}: {e} (hint: use an RFC 3339 time such as 2026-11-27T03:00:00Z, or `latest`)")))?
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
    let loaded = crate::runbook::load(path).map_err(|e| CliError::invalid_input(e.to_string()))?;
    let (runbook, text) = (loaded.runbook, loaded.text);
    let db = session::open_db(cli).await?;
    let cloud = session::connect(cli, &runbook, &text).await?;
    let run_id = RunId::generate();
    eprintln!("run {run_id}");
    let progress = Progress::new(false);
    let ctx = Context {
        db: &db,
        clients: &cloud.clients,
        clock: &cloud.clock,
        progress: &progress,
        interactive: terminal_is_interactive(),
    };
    let request = NewRunRequest {
        run_id: run_id.clone(),
        runbook: &runbook,
        runbook_path: &path.display().to_string(),
        runbook_text: &text,
        operation,
        options,
        parent: None,
    };
    let result = engine::start_run(&ctx, request).await;
    cloud.close();
    let report = match result {
        Ok(report) => report,
        Err(e @ (EngineError::Refused(_) | EngineError::Invalid(_))) => return Err(engine_error(e)),
        // A run that failed before it was stored (a read-only database, a full disk) is not
        // resumable: say so rather than give the resume hint.
        Err(e) if !run_is_stored(&db, &run_id).await => {
            return Err(CliError {
                code: exit::RUN_FAILED,
                message: format!(
                    "{} (hint: run {run_id} was not stored and nothing was started; fix the cause, then start the run again)",
                    super::sim_serve::error_chain(&e)
                ),
            });
        }
        Err(e) => return Err(engine_error(e)),
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
        notify_webhook(url, report).await;
    }
    Ok(report.exit_code())
}

pub fn render(cli: &Cli, report: &RunReport) {
    match cli.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string(report).expect("reports serialise")
        ),
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
            match report.status.as_str() {
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

async fn notify_webhook(url: &str, report: &RunReport) {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client builds");
    match client.post(url).json(report).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => eprintln!(
            "warning: the notification to {url} was answered {} (the run itself is unaffected)",
            r.status()
        ),
        Err(e) => eprintln!(
            "warning: the notification to {url} failed: {e} (the run itself is unaffected)"
        ),
    }
}

/// Maps engine errors to CLI errors with their exit codes.
pub fn engine_error(e: EngineError) -> CliError {
    match e {
        EngineError::Refused(message) => CliError {
            code: exit::REFUSED,
            message,
        },
        EngineError::Invalid(message) => CliError {
            code: exit::INVALID_INPUT,
            message,
        },
        other => CliError {
            code: exit::RUN_FAILED,
            message: format!(
                "{} (hint: the run is resumable once the cause is fixed)",
                super::sim_serve::error_chain(&other)
            ),
        },
    }
}
