//! Rollback: a run of its own (operation `rollback`, parent = the original run) whose steps are
//! the compensations of the original's steps, newest first, chained one after the other:
//!
//! ```text
//! original:  preflight ─► recovery_job:db ─► ... ─► lb_switch:web ─► dns_cutover
//! rollback:  undo:dns_cutover ─► undo:lb_switch:web ─► ... ─► undo:recovery_job:db
//! ```
//!
//! Only steps that started (attempts > 0) and whose kind changes AWS are undone
//! ([`crate::steps::compensate::compensates`]). Terminating a failover's recovery instances
//! waits for an operator (an approval gate; `--yes` gives it); a drill's are terminated freely.
//! When the rollback succeeds, the driver marks the original run `rolled_back`.
//!
//! Beside rollback's checks live failback's ([`failover_to_reverse`]): both decide whether a
//! stored run can be reversed, and say why not with [`NotReversible`].

use serde_json::json;

use super::machine::StepStatus;
use super::plan::{Operation, PlannedStep, StepKind};
use super::{Context, EngineError, NewRunRequest, RunReport};
use crate::steps::compensate::{UNDO_PREFIX, compensates};
use crate::store::{self, RunId, RunStatus};

/// Why a stored run cannot be rolled back, or failed back from. A run being driven elsewhere
/// is a refusal (exit 4); the others are invalid requests (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum NotReversible {
    #[error(
        "run {run_id} is itself a rollback; resume it (`drs-runbook resume {run_id}`) instead of rolling it back"
    )]
    RollbackOfRollback { run_id: RunId },
    #[error("run {run_id} is already rolled back (hint: `drs-runbook show {run_id}`)")]
    AlreadyRolledBack { run_id: RunId },
    #[error(
        "run {run_id} was failed back by run {child} ({child_status}); rolling the failover back now would undo traffic the failback moved (hint: roll back the failback first: `drs-runbook rollback {child}`)"
    )]
    FailedBack {
        run_id: RunId,
        child: RunId,
        child_status: &'static str,
    },
    #[error(
        "refused: run {run_id} is being driven by pid {pid} on {host} since {since} (hint: `drs-runbook cancel {run_id}` stops it at a safe point; then roll it back)"
    )]
    RunBeingDriven {
        run_id: RunId,
        pid: i64,
        host: String,
        since: chrono::DateTime<chrono::Utc>,
    },
    #[error(
        "run {run_id} is a failback whose cleanup has already terminated the recovery instances it moved traffic from, so there is nothing to roll back to (hint: to move to the recovery region again, run a new failover: `drs-runbook failover {runbook_path}`)"
    )]
    FailbackCleanedUp { run_id: RunId, runbook_path: String },
    #[error(
        "no failover of runbook {runbook} has succeeded in this run database, so there is nothing to fail back from (hint: fail over first with `drs-runbook failover <runbook>`, or name a failover run with --from-run; `drs-runbook status` lists the runs)"
    )]
    NoFailoverToReverse { runbook: String },
    #[error(
        "cannot fail back from run {run_id}: it is a {operation} run, not a failover (hint: name the failover run to reverse)"
    )]
    NotAFailover {
        run_id: RunId,
        operation: &'static str,
    },
    #[error(
        "cannot fail back from run {run_id}: it failed over runbook {failed_over}, not {runbook} (hint: pass that runbook's file)"
    )]
    OtherRunbook {
        run_id: RunId,
        failed_over: String,
        runbook: String,
    },
    #[error(
        "cannot fail back from run {run_id}: the failover is {status}, not succeeded (hint: finish it first with `drs-runbook resume {run_id}`, or roll it back)"
    )]
    FailoverNotSucceeded { run_id: RunId, status: &'static str },
}

/// The failover run a failback of `runbook` reverses: `from_run`, or else the latest
/// succeeded failover of the runbook. Refuses a run that is not a succeeded failover of it.
pub async fn failover_to_reverse(
    db: &store::Database,
    runbook: &str,
    from_run: Option<&RunId>,
) -> Result<RunId, EngineError> {
    let mut conn = db.pool().acquire().await?;
    let Some(id) = from_run else {
        return match store::runs::latest_succeeded(&mut conn, runbook, store::Operation::Failover)
            .await?
        {
            Some(run) => Ok(run.id),
            None => Err(NotReversible::NoFailoverToReverse {
                runbook: runbook.to_string(),
            }
            .into()),
        };
    };
    let run = store::runs::get(&mut conn, id).await?;
    let run_id = id.clone();
    if run.operation != store::Operation::Failover {
        return Err(NotReversible::NotAFailover {
            run_id,
            operation: run.operation.as_str(),
        }
        .into());
    }
    if run.runbook_name != runbook {
        return Err(NotReversible::OtherRunbook {
            run_id,
            failed_over: run.runbook_name,
            runbook: runbook.to_string(),
        }
        .into());
    }
    if run.status != RunStatus::Succeeded {
        return Err(NotReversible::FailoverNotSucceeded {
            run_id,
            status: run.status.as_str(),
        }
        .into());
    }
    Ok(run_id)
}

/// One step of the original run, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalStep {
    pub key: String,
    pub kind: StepKind,
    pub wave: Option<String>,
    pub status: StepStatus,
    pub attempts: i64,
}

/// The compensation steps of `original` (in plan order), newest first, but for a failback's
/// quiesce: its B3s serve again before any A3 is terminated, as soon as the traffic undos
/// pointed back at them. Pure.
pub fn plan_rollback(operation: Operation, original: &[OriginalStep]) -> Vec<PlannedStep> {
    let mut order: Vec<&OriginalStep> = original.iter().rev().collect();
    if let Some(quiesce) = order.iter().position(|s| s.kind == StepKind::Quiesce)
        && let Some(first_a3) = order.iter().position(|s| s.kind == StepKind::A2Recovery)
        && first_a3 < quiesce
    {
        let step = order.remove(quiesce);
        order.insert(first_a3, step);
    }
    let mut planned: Vec<PlannedStep> = Vec::new();
    for step in order {
        if step.attempts == 0 || !compensates(step.kind) {
            continue;
        }
        planned.push(PlannedStep {
            key: format!("{UNDO_PREFIX}{}", step.key),
            kind: step.kind,
            wave: step.wave.clone(),
            depends_on: planned
                .last()
                .map(|p| vec![p.key.clone()])
                .unwrap_or_default(),
            // A drill's instances are throwaway; a failover's (or a failback's A3s) may
            // already serve production.
            needs_approval: matches!(step.kind, StepKind::RecoveryJob | StepKind::A2Recovery)
                && operation != Operation::Drill,
        });
    }
    planned
}

/// Whether rolling back must be confirmed first: the failover cut DNS over, so production
/// traffic may already be on the recovered servers (then failback is the way back).
pub fn needs_confirmation(operation: Operation, original: &[OriginalStep]) -> bool {
    operation == Operation::Failover
        && original
            .iter()
            .any(|s| s.kind == StepKind::DnsCutover && s.attempts > 0)
}

/// The original run as the rollback command needs it.
pub struct Original {
    pub run: store::runs::Run,
    pub operation: Operation,
    pub steps: Vec<OriginalStep>,
}

/// Loads the run to roll back, refusing what cannot be rolled back.
pub async fn load_original(db: &store::Database, run_id: &RunId) -> Result<Original, EngineError> {
    let mut conn = db.pool().acquire().await?;
    let run = store::runs::get(&mut conn, run_id).await?;
    let operation = match run.operation {
        op @ (Operation::Failover | Operation::Drill | Operation::Failback) => op,
        Operation::Rollback => {
            return Err(NotReversible::RollbackOfRollback {
                run_id: run_id.clone(),
            }
            .into());
        }
    };
    if run.status == RunStatus::RolledBack {
        return Err(NotReversible::AlreadyRolledBack {
            run_id: run_id.clone(),
        }
        .into());
    }
    // A failover that was failed back is undone by rolling back the failback first: undoing
    // the failover itself would point traffic at the original sources the failback replaced.
    let later = store::runs::list(
        &mut conn,
        &store::runs::RunFilter {
            runbook: Some(run.runbook_name.clone()),
            ..Default::default()
        },
    )
    .await?;
    if let Some(child) = later.iter().find(|r| {
        r.parent_run_id.as_ref() == Some(run_id)
            && r.operation == Operation::Failback
            && !matches!(r.status, RunStatus::RolledBack | RunStatus::Cancelled)
    }) {
        return Err(NotReversible::FailedBack {
            run_id: run_id.clone(),
            child: child.id.clone(),
            child_status: child.status.as_str(),
        }
        .into());
    }
    if let Some(holder) = store::leases::current(&mut conn, run_id).await?
        && holder.released_at.is_none()
        && holder.expires_at > chrono::Utc::now()
        && (holder.host != super::host_name() || super::process_alive(holder.pid))
    {
        return Err(NotReversible::RunBeingDriven {
            run_id: run_id.clone(),
            pid: holder.pid,
            host: holder.host,
            since: holder.acquired_at,
        }
        .into());
    }
    let steps: Vec<OriginalStep> = store::steps::list(&mut conn, run_id)
        .await?
        .into_iter()
        .filter_map(|s| {
            Some(OriginalStep {
                kind: StepKind::from_name(&s.kind)?,
                status: s.status,
                wave: s.wave,
                attempts: s.attempts,
                key: s.key,
            })
        })
        .collect();
    // A failback whose cleanup terminated the recovery instances (B2) cannot be undone: the
    // traffic would be sent back to instances that no longer exist.
    let terminates = crate::runbook::parse(&run.runbook_text, &run.runbook_path)
        .is_ok_and(|r| r.cleanup.terminate_recovery_instances);
    if operation == Operation::Failback
        && terminates
        && steps
            .iter()
            .any(|s| s.kind == StepKind::Cleanup && s.status == StepStatus::Succeeded)
    {
        return Err(NotReversible::FailbackCleanedUp {
            run_id: run_id.clone(),
            runbook_path: run.runbook_path.clone(),
        }
        .into());
    }
    Ok(Original {
        run,
        operation,
        steps,
    })
}

/// Plans, stores and drives the rollback of `original`; it takes over the original's claims.
pub async fn start_rollback(
    ctx: &Context<'_>,
    original: &Original,
    rollback_id: RunId,
    yes: bool,
) -> Result<RunReport, EngineError> {
    let run = &original.run;
    let runbook = crate::runbook::parse(&run.runbook_text, &run.runbook_path).map_err(|cause| {
        EngineError::StoredRunbook {
            run_id: run.id.clone(),
            cause,
        }
    })?;
    let mut options = super::stored_options(run)?;
    options.yes = yes;
    let mut steps: Vec<(PlannedStep, serde_json::Value)> =
        plan_rollback(original.operation, &original.steps)
            .into_iter()
            .map(|s| {
                let undo = s.key.trim_start_matches(UNDO_PREFIX).to_string();
                (
                    s,
                    json!({ "undo": undo, "original_run": run.id.to_string() }),
                )
            })
            .collect();
    // Then the runbook's actions that name `rollback` (none unless one does).
    let last_undo = steps.last().map(|(s, _)| s.key.clone());
    steps.extend(
        super::plan::rollback_actions(&runbook, last_undo.as_deref())
            .into_iter()
            .map(|s| (s, json!({ "original_run": run.id.to_string() }))),
    );
    let request = NewRunRequest {
        run_id: rollback_id,
        runbook: &runbook,
        runbook_path: &run.runbook_path,
        runbook_text: &run.runbook_text,
        operation: Operation::Rollback,
        options,
        parent: Some(run.id.clone()),
    };
    super::start_planned_run(ctx, request, steps, Some(&run.id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(key: &str, kind: StepKind, status: StepStatus, attempts: i64) -> OriginalStep {
        let wave = key.split_once(':').map(|(_, w)| w.to_string());
        OriginalStep {
            key: key.into(),
            kind,
            wave,
            status,
            attempts,
        }
    }

    fn failover_steps(dns_attempts: i64) -> Vec<OriginalStep> {
        vec![
            step("preflight", StepKind::Preflight, StepStatus::Succeeded, 1),
            step(
                "recovery_job:db",
                StepKind::RecoveryJob,
                StepStatus::Succeeded,
                1,
            ),
            step("launch:db", StepKind::Launch, StepStatus::Succeeded, 1),
            step(
                "recovery_job:web",
                StepKind::RecoveryJob,
                StepStatus::Succeeded,
                2,
            ),
            step("launch:web", StepKind::Launch, StepStatus::Succeeded, 1),
            step("lb_switch:web", StepKind::LbSwitch, StepStatus::Failed, 1),
            step(
                "dns_cutover",
                StepKind::DnsCutover,
                if dns_attempts > 0 {
                    StepStatus::Running
                } else {
                    StepStatus::Pending
                },
                dns_attempts,
            ),
        ]
    }

    #[test]
    fn compensations_run_newest_first_chained_and_skip_read_only_and_unstarted_steps() {
        let plan = plan_rollback(Operation::Failover, &failover_steps(0));
        let keys: Vec<&str> = plan.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "undo:lb_switch:web",
                "undo:recovery_job:web",
                "undo:recovery_job:db"
            ]
        );
        assert!(plan[0].depends_on.is_empty());
        assert_eq!(plan[1].depends_on, ["undo:lb_switch:web"]);
        assert_eq!(plan[2].depends_on, ["undo:recovery_job:web"]);
        assert_eq!(plan[0].kind, StepKind::LbSwitch);
        assert_eq!(plan[2].wave.as_deref(), Some("db"));
    }

    #[test]
    fn failover_instances_wait_for_an_operator_drill_instances_do_not() {
        let plan = plan_rollback(Operation::Failover, &failover_steps(1));
        assert_eq!(plan[0].key, "undo:dns_cutover");
        assert!(!plan[0].needs_approval && !plan[1].needs_approval);
        assert!(
            plan.iter()
                .filter(|p| p.kind == StepKind::RecoveryJob)
                .all(|p| p.needs_approval)
        );
        let plan = plan_rollback(Operation::Drill, &failover_steps(1));
        assert!(plan.iter().all(|p| !p.needs_approval));
    }

    #[test]
    fn a_drill_removes_its_drill_targets_before_terminating_each_wave() {
        let steps = vec![
            step("preflight", StepKind::Preflight, StepStatus::Succeeded, 1),
            step(
                "recovery_job:db",
                StepKind::RecoveryJob,
                StepStatus::Succeeded,
                1,
            ),
            step("launch:db", StepKind::Launch, StepStatus::Succeeded, 1),
            step("validate:db", StepKind::Validate, StepStatus::Succeeded, 1),
            step(
                "recovery_job:app",
                StepKind::RecoveryJob,
                StepStatus::Succeeded,
                1,
            ),
            step("launch:app", StepKind::Launch, StepStatus::Succeeded, 1),
            step("validate:app", StepKind::Validate, StepStatus::Failed, 1),
            step("cleanup", StepKind::Cleanup, StepStatus::Pending, 0),
        ];
        let plan = plan_rollback(Operation::Drill, &steps);
        let keys: Vec<&str> = plan.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "undo:validate:app",
                "undo:recovery_job:app",
                "undo:validate:db",
                "undo:recovery_job:db"
            ]
        );
        assert!(plan.iter().all(|p| !p.needs_approval));
    }

    #[test]
    fn confirmation_is_needed_once_a_failover_touched_dns() {
        assert!(needs_confirmation(Operation::Failover, &failover_steps(1)));
        assert!(!needs_confirmation(Operation::Failover, &failover_steps(0)));
        assert!(!needs_confirmation(Operation::Drill, &failover_steps(1)));
    }

    /// Moved from `steps::compensate` (a planner test; steps do not import the engine).
    mod failback_order {
        use crate::engine::machine::StepStatus;
        use crate::engine::plan::{Operation, StepKind};
        use crate::engine::rollback::{OriginalStep, plan_rollback};

        fn step(key: &str, kind: StepKind) -> OriginalStep {
            OriginalStep {
                key: key.into(),
                kind,
                wave: key.split_once(':').map(|(_, w)| w.to_string()),
                status: StepStatus::Succeeded,
                attempts: 1,
            }
        }

        #[test]
        fn a_failback_is_undone_b3_back_first_then_a3_before_a2_newest_first() {
            let failback = [
                step("preflight", StepKind::Preflight),
                step("reversed_replication:db", StepKind::ReversedReplication),
                step("reversed_replication:app", StepKind::ReversedReplication),
                step("quiesce", StepKind::Quiesce),
                step("a2_recovery:db", StepKind::A2Recovery),
                step("launch:db", StepKind::Launch),
                step("a2_recovery:app", StepKind::A2Recovery),
                step("launch:app", StepKind::Launch),
                step("lb_switch:app", StepKind::LbSwitch),
                step("dns_cutover", StepKind::DnsCutover),
                step("cleanup", StepKind::Cleanup),
            ];
            let plan = plan_rollback(Operation::Failback, &failback);
            let keys: Vec<&str> = plan.iter().map(|p| p.key.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "undo:dns_cutover",
                    "undo:lb_switch:app",
                    "undo:quiesce",
                    "undo:a2_recovery:app",
                    "undo:a2_recovery:db",
                    "undo:reversed_replication:app",
                    "undo:reversed_replication:db"
                ]
            );
            assert_eq!(
                plan[2].depends_on,
                ["undo:lb_switch:app"],
                "B3 serves again as soon as traffic points back at it"
            );
            // Terminating A3s that may serve production waits for an operator (or --yes).
            let gated: Vec<&str> = plan
                .iter()
                .filter(|p| p.needs_approval)
                .map(|p| p.key.as_str())
                .collect();
            assert_eq!(gated, ["undo:a2_recovery:app", "undo:a2_recovery:db"]);
        }
    }
}
