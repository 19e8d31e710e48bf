//! `failback`: find the failover run to reverse (the latest succeeded failover of the runbook,
//! or `--from-run`), link a new failback run to it, and drive it.

use std::path::PathBuf;

use super::operate::finish;
use super::session::{self, Session};
use super::{Cli, CliError};
use crate::engine::plan::{Mode, Operation};
use crate::engine::{self, EngineError, NewRunRequest};
use crate::steps::RunOptions;
use crate::store::{RunId, StoreError};

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
    /// Start even though DRS shows live non-drill recovery instances (production) that this
    /// run's launch would terminate. Logged, and recorded in the run's audit trail.
    #[arg(long)]
    pub override_production_guard: bool,
    /// POST a JSON summary to this URL when the run ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

pub async fn run(cli: &Cli, args: &FailbackArgs) -> Result<u8, CliError> {
    let loaded = crate::runbook::load(&args.runbook)?;
    let (runbook, text) = (loaded.runbook, loaded.text);
    let db = session::open_db(cli).await?;
    let from_run = args
        .from_run
        .as_deref()
        .map(|value| {
            value
                .parse::<RunId>()
                .map_err(|cause| CliError::InvalidFromRun {
                    value: value.to_string(),
                    cause,
                })
        })
        .transpose()?;
    let failover = engine::rollback::failover_to_reverse(&db, &runbook.name, from_run.as_ref())
        .await
        .map_err(|e| match e {
            EngineError::Store(StoreError::RunNotFound { run_id }) => CliError::RunNotFound {
                run_id: run_id.to_string(),
                db: db.path().to_path_buf(),
            },
            EngineError::Store(e) => CliError::Database(e.into()),
            EngineError::Sql(e) => CliError::Database(e.into()),
            other => other.into(),
        })?;
    let session = Session::connect(cli, db, &runbook, &text).await?;
    let run_id = RunId::generate();
    eprintln!("run {run_id}");
    eprintln!("failing back from failover run {failover}");
    let options = RunOptions {
        mode: Mode::Planned,
        point_in_time: None,
        keep: false,
        yes: args.yes,
        max_servers_per_job: 100,
        drill: args.drill,
        override_production_guard: args.override_production_guard,
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
    let result = engine::start_run(&session.context(), request).await;
    session.close();
    finish(cli, &result?, args.notify.as_deref()).await
}
