//! The engine: the pure state machine ([`machine`]), the planner ([`plan`]), and the driver
//! ([`driver`]) that executes steps, persists every transition through the [`journal`] and polls.
//!
//! This module's functions are what the CLI calls: [`start_run`] plans and drives a new run,
//! [`continue_run`] drives an existing one (approve, resume).

pub mod driver;
pub mod guard;
pub mod journal;
pub mod machine;
pub mod measure;
pub mod plan;
pub mod rollback;

/// The runtime modules the engine drives the steps with, re-exported where the CLI finds them.
pub use crate::run::{budget, clock, progress};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::aws::Clients;
use crate::runbook::Runbook;
use crate::steps::{RunInfo, RunOptions};
use crate::store::{self, Database, RunId, StoreError};
use clock::EngineClock;
use driver::{Driver, RunReport};
use journal::Journal;
use plan::{Operation, PlanOptions};
use progress::Progress;

/// How long a driver's lease lasts without a heartbeat.
pub const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Errors of starting or continuing a run. [`EngineError::is_refusal`] (exit 4) and
/// [`EngineError::is_invalid`] (exit 2) classify them for the CLI; the rest failed (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Another run holds these servers (`ClaimConflict`), or another driver this run
    /// (`LeaseHeld`).
    #[error("refused: {0}")]
    Refused(#[source] StoreError),
    /// The production guard: the run would replace live non-drill recovery instances.
    #[error("refused: {0}")]
    ProductionGuard(guard::Refusal),
    /// A failover that would recover an unfenced old source's stale data after a failback.
    #[error("refused: {0}")]
    StaleSource(guard::StaleRefusal),
    /// The production guard could not read what DRS has live: nothing was started.
    #[error("failed to check for live production recovery instances: {}", .0.summary())]
    GuardUnchecked(#[source] Box<crate::aws::AwsError>),
    #[error("the stored runbook of run {run_id} no longer parses: {cause}")]
    StoredRunbook {
        run_id: RunId,
        cause: crate::runbook::RunbookError,
    },
    /// The run's options as stored (mode, point in time, ...) do not decode: never defaulted,
    /// a resume or rollback with another mode would act differently than the run started.
    #[error(
        "the stored options of run {run_id} cannot be read: {source} (hint: the database was edited or written by another version; `drs-runbook show {run_id}` shows the run)"
    )]
    StoredOptions {
        run_id: RunId,
        #[source]
        source: serde_json::Error,
    },
    /// An operator action on a step in a status that does not allow it.
    #[error("step {step} of run {run_id} is {}: only {allowed} (hint: `drs-runbook show {run_id}` lists the steps and their status)", status.as_str())]
    StepNotActionable {
        run_id: RunId,
        step: String,
        status: machine::StepStatus,
        allowed: &'static str,
    },
    #[error("run {run_id} has no step {step} (its steps: {})", known.join(", "))]
    NoSuchStep {
        run_id: RunId,
        step: String,
        known: Vec<String>,
    },
    /// A refused rollback or failback: the run cannot be reversed (see [`rollback`]).
    #[error(transparent)]
    NotReversible(#[from] rollback::NotReversible),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("failed to use the run database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Unknown(#[from] store::UnknownValue),
    #[error(transparent)]
    Driver(#[from] driver::DriverError),
}

impl EngineError {
    /// Another run or driver holds what this one needs (exit 4).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            EngineError::Refused(_)
                | EngineError::ProductionGuard(_)
                | EngineError::StaleSource(_)
                | EngineError::NotReversible(rollback::NotReversible::RunBeingDriven { .. })
        )
    }

    /// The request does not make sense for this run (exit 2).
    pub fn is_invalid(&self) -> bool {
        match self {
            EngineError::StoredRunbook { .. }
            | EngineError::StoredOptions { .. }
            | EngineError::StepNotActionable { .. }
            | EngineError::NoSuchStep { .. } => true,
            EngineError::NotReversible(e) => {
                !matches!(e, rollback::NotReversible::RunBeingDriven { .. })
            }
            _ => false,
        }
    }
}

/// Everything needed to run: the database, the clients and the clock.
pub struct Context<'a> {
    pub db: &'a Database,
    pub clients: &'a Clients,
    pub clock: &'a EngineClock,
    pub progress: &'a Progress,
    /// Asked at approval gates (unless `--yes`).
    pub approver: &'a dyn progress::Approver,
}

/// What to start.
pub struct NewRunRequest<'a> {
    pub run_id: RunId,
    pub runbook: &'a Runbook,
    pub runbook_path: &'a str,
    pub runbook_text: &'a str,
    pub operation: Operation,
    pub options: RunOptions,
    pub parent: Option<RunId>,
}

/// This machine's host name, for leases and the audit trail. `DRS_RUNBOOK_HOST` overrides it:
/// for hosts whose kernel name is not unique across a team (containers), and for the tests
/// that play two hosts on one machine.
pub fn host_name() -> String {
    if let Some(host) = std::env::var("DRS_RUNBOOK_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        return host.trim().to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// The resources a run claims at its start: its listed source servers (one active run per
/// server). The servers a wave `select`s are claimed by preflight once it resolves them.
fn claims_of(runbook: &Runbook) -> Vec<String> {
    runbook
        .waves
        .iter()
        .flat_map(|w| w.servers.iter())
        .map(|s| crate::run::server_claim(&runbook.target.account_id, &runbook.target.region, s))
        .collect()
}

/// Plans the run, stores it with its steps and claims (one transaction), then drives it.
pub async fn start_run(
    ctx: &Context<'_>,
    request: NewRunRequest<'_>,
) -> Result<RunReport, EngineError> {
    let plan_options = PlanOptions {
        mode: request.options.mode,
        keep: request.options.keep,
        drill: request.options.drill,
    };
    let steps = plan::plan(request.operation, request.runbook, &plan_options);
    let steps = steps.into_iter().map(|s| (s, json!({}))).collect();
    start_planned_run(ctx, request, steps, None).await
}

/// Stores a run with the given steps (each with extra input fields) and its claims, in one
/// transaction, then drives it. `take_claims_from`: a run whose claims this one takes over in
/// the same transaction (a rollback takes over its original run's servers).
pub async fn start_planned_run(
    ctx: &Context<'_>,
    request: NewRunRequest<'_>,
    steps: Vec<(plan::PlannedStep, serde_json::Value)>,
    take_claims_from: Option<&RunId>,
) -> Result<RunReport, EngineError> {
    // The disaster is declared when the command is given, before the guard's reads.
    let now = ctx.clock.now();
    // The production guard runs first and wins: before anything is stored or checked.
    let overridden = if guard::applies(request.operation, &request.options) {
        let live = guard::live_production(ctx.db, ctx.clients, request.runbook, request.operation)
            .await
            .map_err(|e| EngineError::GuardUnchecked(Box::new(e)))?;
        if !live.is_empty() && !request.options.override_production_guard {
            return Err(EngineError::ProductionGuard(guard::Refusal {
                operation: request.operation,
                instances: live,
            }));
        }
        live
    } else {
        Vec::new()
    };
    if request.operation == Operation::Failover {
        let stale = guard::stale_sources(ctx.clients, request.runbook)
            .await
            .map_err(|e| EngineError::GuardUnchecked(Box::new(e)))?;
        if !stale.is_empty() {
            return Err(EngineError::StaleSource(guard::StaleRefusal {
                servers: stale,
            }));
        }
    }
    let (steps, inputs): (Vec<plan::PlannedStep>, Vec<serde_json::Value>) =
        steps.into_iter().unzip();
    let mut tx = ctx.db.begin().await?;
    let new_run = store::runs::NewRun {
        id: request.run_id.clone(),
        runbook_name: request.runbook.name.clone(),
        runbook_path: request.runbook_path.to_string(),
        runbook_text: request.runbook_text.to_string(),
        operation: request.operation,
        mode: request.options.mode,
        options: serde_json::to_value(&request.options).unwrap_or_default(),
        operator: driver::operator(),
        host: host_name(),
        parent_run_id: request.parent.clone(),
        clock: if ctx.clock.is_simulated() {
            store::runs::ClockKind::Simulated
        } else {
            store::runs::ClockKind::Real
        },
        declared_at: Some(now),
    };
    store::runs::insert(&mut tx, &new_run, now).await?;
    let new_steps: Vec<store::steps::NewStep> = steps
        .iter()
        .zip(&inputs)
        .map(|(s, extra)| {
            let deps: Vec<&str> = s.depends_on.iter().map(String::as_str).collect();
            let mut step =
                store::steps::NewStep::new(&s.key, s.kind.as_str(), s.wave.as_deref(), &deps);
            let mut input = json!({ "needs_approval": s.needs_approval });
            if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
                input.extend(extra.clone());
            }
            step.input = input;
            step
        })
        .collect();
    store::steps::insert_all(&mut tx, &request.run_id, &new_steps).await?;
    if let Some(from) = take_claims_from {
        store::claims::release_run(&mut tx, from).await?;
    }
    if let Err(conflict) =
        store::claims::claim_all(&mut tx, &request.run_id, &claims_of(request.runbook), now).await
    {
        return Err(match conflict {
            e @ StoreError::ClaimConflict { .. } => EngineError::Refused(e),
            other => EngineError::Store(other),
        });
    }
    store::events::append(
        &mut tx,
        &request.run_id,
        now,
        "run_created",
        &driver::operator(),
        None,
        &json!({
            "operation": request.operation.as_str(),
            "runbook": request.runbook.name,
            "runbook_sha256": store::sha256_hex(request.runbook_text),
            "seal_version": store::seal::VERSION,
            "options": request.options,
            "steps": steps.iter().map(|s| &s.key).collect::<Vec<_>>(),
            "parent_run_id": request.parent.as_ref().map(|p| p.to_string()),
        }),
    )
    .await?;
    if !overridden.is_empty() {
        store::events::append(
            &mut tx,
            &request.run_id,
            now,
            "production_guard_overridden",
            &driver::operator(),
            None,
            &json!({
                "flag": "--override-production-guard",
                "instances": overridden,
            }),
        )
        .await?;
    }
    tx.commit().await?;
    if !overridden.is_empty() {
        ctx.progress.run_line(
            now,
            &format!(
                "WARNING: --override-production-guard: this run may terminate {} live production recovery instance(s): {}",
                overridden.len(),
                overridden
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        );
    }
    let info = RunInfo {
        id: request.run_id.to_string(),
        operation: request.operation,
        options: request.options.clone(),
        started_at: now,
        runbook_path: request.runbook_path.to_string(),
    };
    drive(ctx, request.runbook, info, None).await
}

/// The options a run was started with, as stored; a value that does not decode is an error
/// naming the run, never a default.
pub(crate) fn stored_options(run: &store::runs::Run) -> Result<RunOptions, EngineError> {
    serde_json::from_value(run.options.clone()).map_err(|source| EngineError::StoredOptions {
        run_id: run.id.clone(),
        source,
    })
}

/// Drives an existing run (after `approve`, or `resume`).
pub async fn continue_run(
    ctx: &Context<'_>,
    run_id: &RunId,
    yes: bool,
) -> Result<(RunReport, Runbook), EngineError> {
    continue_run_after(ctx, run_id, yes, None).await
}

/// What an operator does to a stored run before it is driven again (under the run's lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorAction {
    /// `retry --step`: a failed step back to pending.
    Retry { step: String },
    /// `skip --step --reason`: a pending, waiting or failed step is skipped, with the reason.
    Skip { step: String, reason: String },
    /// `cancel`: every unfinished step is cancelled and the run ends `cancelled`; not driven.
    Cancel,
}

/// Takes the run's lease, applies `action` (if any) through the journal, then drives the run.
pub async fn continue_run_after(
    ctx: &Context<'_>,
    run_id: &RunId,
    yes: bool,
    action: Option<OperatorAction>,
) -> Result<(RunReport, Runbook), EngineError> {
    let mut conn = ctx.db.pool().acquire().await?;
    let run = store::runs::get(&mut conn, run_id).await?;
    drop(conn);
    // Resume uses the runbook as it was when the run started.
    let runbook = crate::runbook::parse(&run.runbook_text, &run.runbook_path).map_err(|cause| {
        EngineError::StoredRunbook {
            run_id: run_id.clone(),
            cause,
        }
    })?;
    let mut options = stored_options(&run)?;
    options.yes = options.yes || yes;
    let operation = run.operation;
    let started_at: DateTime<Utc> = run.declared_at.or(run.started_at).unwrap_or(run.created_at);
    let info = RunInfo {
        id: run_id.to_string(),
        operation,
        options,
        started_at,
        runbook_path: run.runbook_path.clone(),
    };
    let report = drive(ctx, &runbook, info, action).await?;
    Ok((report, runbook))
}

/// Takes the run's lease. A lease held by a process of this host that no longer exists (it
/// crashed or was killed) is ended at once rather than after its expiry; any take-over is
/// returned with the reason, to be logged.
async fn take_lease(
    ctx: &Context<'_>,
    run_id: &RunId,
    owner: &str,
) -> Result<(store::leases::Lease, Option<&'static str>), EngineError> {
    let mut conn = ctx.db.pool().acquire().await?;
    let host = host_name();
    match store::leases::acquire(
        &mut conn,
        run_id,
        owner,
        &host,
        std::process::id(),
        LEASE_TTL,
        Utc::now(),
    )
    .await
    {
        Ok(lease) => {
            let why = lease
                .took_over_from
                .as_ref()
                .map(|_| "its lease had expired without a heartbeat");
            Ok((lease, why))
        }
        Err(StoreError::LeaseHeld { holder })
            if holder.host == host && !process_alive(holder.pid) =>
        {
            store::leases::expire_abandoned(&mut conn, &holder, Utc::now()).await?;
            match store::leases::acquire(
                &mut conn,
                run_id,
                owner,
                &host,
                std::process::id(),
                LEASE_TTL,
                Utc::now(),
            )
            .await
            {
                Ok(lease) => Ok((lease, Some("its process no longer exists on this host"))),
                Err(e @ StoreError::LeaseHeld { .. }) => Err(EngineError::Refused(e)),
                Err(e) => Err(e.into()),
            }
        }
        Err(e @ StoreError::LeaseHeld { .. }) => Err(EngineError::Refused(e)),
        Err(e) => Err(e.into()),
    }
}

/// Whether a process of this host is alive (a zombie is not). Without `/proc`, assume it is:
/// then only the lease's expiry lets another driver take over.
pub fn process_alive(pid: i64) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: `123 (drs-runbook) Z ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Takes the lease, runs the driver with a heartbeat, and lets go of the lease and claims.
async fn drive(
    ctx: &Context<'_>,
    runbook: &Runbook,
    info: RunInfo,
    action: Option<OperatorAction>,
) -> Result<RunReport, EngineError> {
    let run_id: RunId = info.id.parse()?;
    let owner = uuid::Uuid::new_v4().to_string();
    let now = ctx.clock.now();
    let (lease, took_over_because) = take_lease(ctx, &run_id, &owner).await?;
    let journal = Journal::new(
        ctx.db.clone(),
        run_id.clone(),
        Some(lease.clone()),
        driver::operator(),
        ctx.clock.clone(),
    );
    if let (Some(previous), Some(why)) = (&lease.took_over_from, took_over_because) {
        ctx.progress.run_line(
            now,
            &format!(
                "took over the lease of process {} on {} (last heartbeat {}): {why}",
                previous.pid, previous.host, previous.heartbeat_at
            ),
        );
        journal.lease_taken_over(previous, why, now).await?;
    }
    if let Some(action) = &action
        && let Some(report) = apply_action(ctx, runbook, &journal, &lease, action).await?
    {
        return Ok(report);
    }
    let yes = info.options.yes;
    let driver = Driver {
        journal: &journal,
        runbook,
        clients: ctx.clients,
        clock: ctx.clock,
        progress: ctx.progress,
        run: info,
        yes,
        approver: ctx.approver,
        interactive: ctx.approver.can_ask() && !yes,
        budget: budget::JobBudget::new(20, 500),
        jobs: Default::default(),
    };
    let heartbeat = {
        let db = ctx.db.clone();
        let mut lease = lease.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_TTL / 3).await;
                let Ok(mut conn) = db.pool().acquire().await else {
                    continue;
                };
                if let Err(e) = store::leases::heartbeat(&mut conn, &mut lease, Utc::now()).await {
                    tracing::error!(error = %e, "lost the run's lease");
                    return;
                }
            }
        })
    };
    let result = driver.drive().await;
    heartbeat.abort();
    let result = match result {
        // The store is gone: nothing more can be written, not even the lease's release (which
        // would only wait out the pool's acquire timeout again); the lease expires by itself.
        Err(e) if store::is_unreachable(&e) => return Err(e.into()),
        other => other,
    };
    if let (Ok(report), Some(parent)) = (&result, rollback_parent(ctx, &run_id).await?)
        && report.status == "succeeded"
    {
        journal::mark_rolled_back(
            ctx.db,
            &parent,
            &run_id,
            &driver::operator(),
            ctx.clock.now(),
        )
        .await?;
        ctx.progress
            .run_line(ctx.clock.now(), &format!("run {parent} is rolled back"));
    }
    let mut conn = ctx.db.pool().acquire().await?;
    let released = store::leases::release(&mut conn, &lease, Utc::now()).await;
    // The driver's own error says more than a failed release (which only delays a resume
    // until the lease expires).
    let report = result?;
    released?;
    // A finished run lets go of its servers. So does a run that failed before any mutating
    // call was even attempted (a preflight failure): it has nothing to resume or roll back, and
    // holding the servers would only refuse the corrected run at 3 a.m.
    let untouched = report.status == "failed"
        && store::effects::for_run(&mut conn, &run_id)
            .await?
            .is_empty();
    if matches!(
        report.status.as_str(),
        "succeeded" | "cancelled" | "rolled_back"
    ) || untouched
    {
        store::claims::release_run(&mut conn, &run_id).await?;
    }
    Ok(report)
}

/// The run a rollback run undoes (none for other operations).
async fn rollback_parent(ctx: &Context<'_>, run_id: &RunId) -> Result<Option<RunId>, EngineError> {
    let mut conn = ctx.db.pool().acquire().await?;
    let run = store::runs::get(&mut conn, run_id).await?;
    Ok(if run.operation == Operation::Rollback {
        run.parent_run_id
    } else {
        None
    })
}

/// Applies an operator's action under the lease. Returns a report when the run is not to be
/// driven afterwards (cancel).
async fn apply_action(
    ctx: &Context<'_>,
    runbook: &Runbook,
    journal: &Journal,
    lease: &store::leases::Lease,
    action: &OperatorAction,
) -> Result<Option<RunReport>, EngineError> {
    let now = ctx.clock.now();
    let refuse = |key: &str, status: machine::StepStatus, allowed: &'static str| {
        EngineError::StepNotActionable {
            run_id: journal.run_id().clone(),
            step: key.to_string(),
            status,
            allowed,
        }
    };
    match action {
        OperatorAction::Retry { step } => {
            let row = match step_of(journal, step).await {
                Ok(row) => row,
                Err(e) => {
                    release_quietly(ctx, lease).await;
                    return Err(e);
                }
            };
            if row.status != machine::StepStatus::Failed {
                release_quietly(ctx, lease).await;
                return Err(refuse(step, row.status, "a failed step can be retried"));
            }
            journal
                .operator_transition(step, machine::StepEvent::Retry, None, now)
                .await?;
            ctx.progress.line(now, step, "reset to pending for a retry");
        }
        OperatorAction::Skip { step, reason } => {
            let row = match step_of(journal, step).await {
                Ok(row) => row,
                Err(e) => {
                    release_quietly(ctx, lease).await;
                    return Err(e);
                }
            };
            if machine::step_transition(row.status, machine::StepEvent::Skip).is_err() {
                release_quietly(ctx, lease).await;
                return Err(refuse(
                    step,
                    row.status,
                    "a pending, waiting or failed step can be skipped",
                ));
            }
            journal
                .operator_transition(step, machine::StepEvent::Skip, Some(reason), now)
                .await?;
            ctx.progress.line(now, step, &format!("skipped: {reason}"));
        }
        OperatorAction::Cancel => {
            let cancelled = journal.cancel_unfinished(now).await?;
            journal
                .finish_run("cancelled", None, None, None, now)
                .await?;
            ctx.progress.run_line(now, &format!("cancelled ({} unfinished step(s)); `drs-runbook rollback {}` undoes what it did", cancelled.len(), journal.run_id()));
            let mut conn = ctx.db.pool().acquire().await?;
            store::leases::release(&mut conn, lease, Utc::now()).await?;
            store::claims::release_run(&mut conn, journal.run_id()).await?;
            return Ok(Some(
                driver::report(journal, runbook, "cancelled", None).await?,
            ));
        }
    }
    Ok(None)
}

/// The step `key` of the journal's run, or an error listing its steps.
async fn step_of(journal: &Journal, key: &str) -> Result<journal::StepRow, EngineError> {
    let rows = journal.steps().await?;
    let known = rows.iter().map(|r| r.key.clone()).collect();
    match rows.into_iter().find(|r| r.key == key) {
        Some(row) => Ok(row),
        None => Err(EngineError::NoSuchStep {
            run_id: journal.run_id().clone(),
            step: key.to_string(),
            known,
        }),
    }
}

/// Lets go of a lease taken for an action that was refused.
async fn release_quietly(ctx: &Context<'_>, lease: &store::leases::Lease) {
    if let Ok(mut conn) = ctx.db.pool().acquire().await {
        let _ = store::leases::release(&mut conn, lease, Utc::now()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::process_alive;

    #[test]
    fn a_running_process_is_alive_and_a_finished_one_is_not() {
        assert!(process_alive(i64::from(std::process::id())));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("true runs");
        let pid = i64::from(child.id());
        child.wait().expect("true ends");
        assert!(!process_alive(pid), "a reaped child is gone");
    }

    #[test]
    fn stored_options_with_an_unknown_mode_are_an_error_naming_the_run() {
        use super::{EngineError, Operation, stored_options};
        use crate::run::Mode;
        let mut run = crate::report::model::fixture::run(Operation::Failover);
        run.options = serde_json::json!({ "mode": "unplanned" });
        assert_eq!(stored_options(&run).expect("decodes").mode, Mode::Unplanned);
        run.options = serde_json::json!({ "mode": "sideways" });
        let err = stored_options(&run).expect_err("an unknown mode is not defaulted");
        assert!(matches!(&err, EngineError::StoredOptions { run_id, .. } if *run_id == run.id));
        let text = err.to_string();
        assert!(text.contains(&run.id.to_string()), "{text}");
        assert!(text.contains("sideways"), "{text}");
        assert!(err.is_invalid());
    }
}
