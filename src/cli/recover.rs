//! `resume`, `rollback`, `retry`, `skip` and `cancel`: taking a stored run further after a
//! crash, a failure or an operator's decision (DESIGN section 6).

use super::error::ROLLBACK_WARNING;
use super::progress::{ask_yes_no, terminal_is_interactive};
use super::session::{self, Session};
use super::{Cli, CliError, exit, operate};
use crate::engine::progress::{NoApprover, Progress};
use crate::engine::{self, Context, OperatorAction};
use crate::runbook::Runbook;
use crate::store::{self, RunId};

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    pub run_id: String,
    /// Approve every remaining gate up front.
    #[arg(long)]
    pub yes: bool,
    /// POST a JSON summary to this URL when the run ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    pub run_id: String,
    /// Confirm up front: after a DNS cutover, and to terminate a failover's recovery instances.
    #[arg(long)]
    pub yes: bool,
    /// POST a JSON summary to this URL when the rollback ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    pub run_id: String,
    /// The failed step to run again.
    #[arg(long)]
    pub step: String,
    /// Approve every remaining gate up front.
    #[arg(long)]
    pub yes: bool,
    /// POST a JSON summary to this URL when the run ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SkipArgs {
    pub run_id: String,
    /// The step to skip (pending, waiting for approval, or failed).
    #[arg(long)]
    pub step: String,
    /// Why: recorded in the audit trail with your name.
    #[arg(long)]
    pub reason: String,
    /// Approve every remaining gate up front.
    #[arg(long)]
    pub yes: bool,
    /// POST a JSON summary to this URL when the run ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    pub run_id: String,
}

/// The stored run, or exit 2 saying how to find one.
pub async fn load(db: &store::Database, run_id: &str) -> Result<store::runs::Run, CliError> {
    let id: RunId = run_id.parse().map_err(CliError::InvalidRunId)?;
    let mut conn = db
        .pool()
        .acquire()
        .await
        .map_err(|e| CliError::Database(e.into()))?;
    match store::runs::get(&mut conn, &id).await {
        Ok(run) => Ok(run),
        Err(store::StoreError::RunNotFound { .. }) => Err(CliError::RunNotFound {
            run_id: run_id.to_string(),
            db: db.path().to_path_buf(),
        }),
        Err(e) => Err(CliError::Database(e.into())),
    }
}

/// Refuses (exit 1) to act on a run whose audit trail, seal or stored runbook does not verify:
/// driving it would execute what someone edited in the database.
pub async fn verify_trail(db: &store::Database, run_id: &RunId) -> Result<(), CliError> {
    let mut conn = db
        .pool()
        .acquire()
        .await
        .map_err(|e| CliError::Database(e.into()))?;
    match store::events::verify(&mut conn, run_id)
        .await
        .map_err(|e| CliError::Database(e.into()))?
    {
        Ok(_) => Ok(()),
        Err(broken) => Err(CliError::TrailRefused {
            run_id: run_id.clone(),
            broken: broken.to_string(),
        }),
    }
}

/// The runbook stored with a run, as it was when the run started.
pub fn stored_runbook(run: &store::runs::Run) -> Result<Runbook, CliError> {
    crate::runbook::parse(&run.runbook_text, &run.runbook_path).map_err(|cause| {
        CliError::StoredRunbook {
            run_id: run.id.clone(),
            cause,
        }
    })
}

/// Whether a run has ended for good (nothing left to drive or cancel).
fn finished(run: &store::runs::Run) -> bool {
    matches!(
        run.status.as_str(),
        "succeeded" | "cancelled" | "rolled_back"
    )
}

/// Drives a stored run again, after an optional operator action, and reports like a new run.
async fn continue_with(
    cli: &Cli,
    run_id: &str,
    yes: bool,
    action: Option<OperatorAction>,
    notify: Option<&str>,
) -> Result<u8, CliError> {
    let db = session::open_db(cli).await?;
    let run = load(&db, run_id).await?;
    verify_trail(&db, &run.id).await?;
    if finished(&run) {
        return Err(CliError::NothingToDrive {
            run_id: run.id,
            status: run.status.as_str(),
        });
    }
    let runbook = stored_runbook(&run)?;
    let session = Session::connect(cli, db, &runbook, &run.runbook_text).await?;
    eprintln!("run {}", run.id);
    let result = engine::continue_run_after(&session.context(), &run.id, yes, action).await;
    session.close();
    let (report, _) = result?;
    operate::finish(cli, &report, notify).await
}

/// `resume`: take the lease (an expired one, or one whose process is gone, is taken over and
/// logged), restart the steps a crash left running (each reconciles its open intents against
/// AWS before it sends anything), then continue.
pub async fn resume(cli: &Cli, args: &ResumeArgs) -> Result<u8, CliError> {
    continue_with(cli, &args.run_id, args.yes, None, args.notify.as_deref()).await
}

pub async fn retry(cli: &Cli, args: &RetryArgs) -> Result<u8, CliError> {
    let action = OperatorAction::Retry {
        step: args.step.clone(),
    };
    continue_with(
        cli,
        &args.run_id,
        args.yes,
        Some(action),
        args.notify.as_deref(),
    )
    .await
}

pub async fn skip(cli: &Cli, args: &SkipArgs) -> Result<u8, CliError> {
    if args.reason.trim().is_empty() {
        return Err(CliError::EmptySkipReason);
    }
    let action = OperatorAction::Skip {
        step: args.step.clone(),
        reason: args.reason.clone(),
    };
    continue_with(
        cli,
        &args.run_id,
        args.yes,
        Some(action),
        args.notify.as_deref(),
    )
    .await
}

/// `cancel`: if no process drives the run, cancel it here; otherwise ask its driver (through
/// the database) to stop at its next safe point, and wait for it to do so.
pub async fn cancel(cli: &Cli, args: &CancelArgs) -> Result<u8, CliError> {
    let db = session::open_db(cli).await?;
    let run = load(&db, &args.run_id).await?;
    if finished(&run) {
        return Err(CliError::NothingToCancel {
            run_id: run.id,
            status: run.status.as_str(),
        });
    }
    let now = chrono::Utc::now();
    let driven_elsewhere = {
        let mut conn = db.pool().acquire().await?;
        store::leases::current(&mut conn, &run.id)
            .await?
            .filter(|h| {
                h.released_at.is_none()
                    && h.expires_at > now
                    && (h.host != engine::host_name() || engine::process_alive(h.pid))
            })
    };
    eprintln!("run {}", run.id);
    let Some(holder) = driven_elsewhere else {
        // No driver: take the lease and cancel here. Cancelling makes no AWS call, so the
        // context's clients point at a closed loopback port rather than at any cloud.
        let progress = Progress::silent();
        let clock = crate::engine::clock::EngineClock::Real;
        let runbook = stored_runbook(&run)?;
        let clients = crate::aws::connect(
            &runbook,
            &crate::aws::Connection::Simulated {
                endpoint_url: "http://127.0.0.1:9".into(),
            },
        )
        .await;
        let ctx = Context {
            db: &db,
            clients: &clients,
            clock: &clock,
            progress: &progress,
            approver: &NoApprover,
        };
        let (report, _) =
            engine::continue_run_after(&ctx, &run.id, false, Some(OperatorAction::Cancel)).await?;
        operate::render(cli, &report);
        // The cancel did what was asked: success, unlike the exit code of a cancelled run.
        return Ok(exit::SUCCEEDED);
    };
    crate::engine::journal::request_cancel(&db, &run.id, &crate::engine::driver::operator(), now)
        .await?;
    eprintln!(
        "asked the driver of run {} (pid {} on {}) to stop at its next safe point",
        run.id, holder.pid, holder.host
    );
    // The driver polls twice a second; a step stops at its next pause.
    for _ in 0..240 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let status = load(&db, &args.run_id).await?.status;
        if status.as_str() != "running" {
            eprintln!("run {} is {}", run.id, status.as_str());
            return Ok(if status.as_str() == "cancelled" {
                exit::SUCCEEDED
            } else {
                exit::RUN_FAILED
            });
        }
    }
    eprintln!(
        "the driver has not stopped yet; it will cancel the run at its next safe point (`drs-runbook status {}`)",
        run.id
    );
    Ok(exit::SUCCEEDED)
}

/// `rollback`: a new run (operation `rollback`, linked to the original) of the compensations of
/// the original's steps, newest first.
pub async fn rollback(cli: &Cli, args: &RollbackArgs) -> Result<u8, CliError> {
    let db = session::open_db(cli).await?;
    let run = load(&db, &args.run_id).await?;
    verify_trail(&db, &run.id).await?;
    let original = engine::rollback::load_original(&db, &run.id).await?;
    if engine::rollback::needs_confirmation(original.operation, &original.steps) && !args.yes {
        if !terminal_is_interactive() {
            return Err(CliError::RollbackNotConfirmed { run_id: run.id });
        }
        let warning = format!(
            "run {} cut DNS over to the recovered servers. {ROLLBACK_WARNING}",
            run.id
        );
        if !ask_yes_no(format!("{warning}\nRoll back?")).await {
            eprintln!("rollback not confirmed: nothing changed");
            return Ok(exit::INVALID_INPUT);
        }
    }
    let runbook = stored_runbook(&run)?;
    let session = Session::connect(cli, db, &runbook, &run.runbook_text).await?;
    let rollback_id = RunId::generate();
    eprintln!("run {rollback_id}");
    eprintln!(
        "rolling back run {} ({})",
        run.id,
        original.operation.as_str()
    );
    let result =
        engine::rollback::start_rollback(&session.context(), &original, rollback_id, args.yes)
            .await;
    session.close();
    operate::finish(cli, &result?, args.notify.as_deref()).await
}
