//! `failback`: find the failover run to reverse (the latest succeeded failover of the runbook,
//! or `--from-run`), link a new failback run to it, and drive it.

use std::path::PathBuf;

use super::operate::{engine_error, finish};
use super::{Cli, CliError, exit, session};
use crate::engine::driver::terminal_is_interactive;
use crate::engine::plan::{Mode, Operation};
use crate::engine::progress::Progress;
use crate::engine::{self, Context, NewRunRequest};
use crate::runbook::Runbook;
use crate::steps::RunOptions;
use crate::store::{self, Database, RunId, RunStatus};

#[derive(Debug, clap::Args)]
pub struct FailbackArgs {
    pub runbook: PathBuf,
    /// The failover run to reverse (default: the latest succeeded failover of the runbook).
    #[arg(long)]
    pub from_run: Option<String>,
    /// A failback drill: reversed replication and A2 launched as a drill, no traffic moved,
    /// then the drill instances (A3) terminated and A2's replication stopped.
    #[arg(long)]
    pub drill: bool,
    /// Approve every gate up front (unattended runs).
    #[arg(long)]
    pub yes: bool,
    /// POST a JSON summary to this URL when the run ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

pub async fn run(cli: &Cli, args: &FailbackArgs) -> Result<u8, CliError> {
    let loaded =
        crate::runbook::load(&args.runbook).map_err(|e| CliError::invalid_input(e.to_string()))?;
    let (runbook, text) = (loaded.runbook, loaded.text);
    let db = session::open_db(cli).await?;
    let failover = failover_to_reverse(&db, &runbook, args.from_run.as_deref()).await?;
    let cloud = session::connect(cli, &runbook, &text).await?;
    let run_id = RunId::generate();
    eprintln!("run {run_id}");
    eprintln!("failing back from failover run {failover}");
    let progress = Progress::new(false);
    let ctx = Context {
        db: &db,
        clients: &cloud.clients,
        clock: &cloud.clock,
        progress: &progress,
        interactive: terminal_is_interactive(),
    };
    let options = RunOptions {
        mode: Mode::Planned,
        point_in_time: None,
        keep: false,
        yes: args.yes,
        max_servers_per_job: 100,
        drill: args.drill,
    };
    let request = NewRunRequest {
        run_id,
        runbook: &runbook,
        runbook_path: &args.runbook.display().to_string(),
        runbook_text: &text,
        operation: Operation::Failback,
        options,
        parent: Some(failover),
    };
    let result = engine::start_run(&ctx, request).await;
    cloud.close();
    let report = result.map_err(engine_error)?;
    finish(cli, &report, args.notify.as_deref()).await
}

/// The failover run this failback reverses, or exit 2 saying why there is none.
async fn failover_to_reverse(
    db: &Database,
    runbook: &Runbook,
    from_run: Option<&str>,
) -> Result<RunId, CliError> {
    let database_error = |e: &dyn std::fmt::Display| CliError {
        code: exit::RUN_FAILED,
        message: format!("failed to read the run database: {e}"),
    };
    let mut conn = db.pool().acquire().await.map_err(|e| database_error(&e))?;
    let Some(text) = from_run else {
        return match store::runs::latest_succeeded(
            &mut conn,
            &runbook.name,
            store::Operation::Failover,
        )
        .await
        .map_err(|e| database_error(&e))?
        {
            Some(run) => Ok(run.id),
            None => Err(CliError::invalid_input(format!(
                "no failover of runbook {} has succeeded in this run database, so there is nothing to fail back from (hint: fail over first with `drs-runbook failover <runbook>`, or name a failover run with --from-run; `drs-runbook status` lists the runs)",
                runbook.name
            ))),
        };
    };
    let id: RunId = text.parse().map_err(|e| {
        CliError::invalid_input(format!(
            "invalid --from-run {text:?}: {e} (hint: copy the run ID from `drs-runbook status`)"
        ))
    })?;
    let run = store::runs::get(&mut conn, &id).await.map_err(|e| match e {
        store::StoreError::RunNotFound { .. } => CliError::invalid_input(format!("run {id} does not exist in this run database (hint: check --db, and the run ID with `drs-runbook status`)")),
        other => database_error(&other),
    })?;
    let refuse = |why: String| {
        Err(CliError::invalid_input(format!(
            "cannot fail back from run {id}: {why}"
        )))
    };
    if run.operation != store::Operation::Failover {
        return refuse(format!(
            "it is a {} run, not a failover (hint: name the failover run to reverse)",
            run.operation.as_str()
        ));
    }
    if run.runbook_name != runbook.name {
        return refuse(format!(
            "it failed over runbook {}, not {} (hint: pass that runbook's file)",
            run.runbook_name, runbook.name
        ));
    }
    if run.status != RunStatus::Succeeded {
        return refuse(format!(
            "the failover is {}, not succeeded (hint: finish it first with `drs-runbook resume {id}`, or roll it back)",
            run.status.as_str()
        ));
    }
    Ok(id)
}
