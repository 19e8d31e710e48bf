//! The engine's part of the journal: the lifecycle of a run and its steps. Every step status
//! change goes through the state machine ([`super::machine`]) here; the runtime's part (outputs,
//! effects) is [`crate::run::journal`]. Every write checks the run's lease fence and appends its
//! audit event in the same transaction (DESIGN section 6).

use chrono::{DateTime, Utc};

use serde_json::{Value, json};

use super::machine::{StepEvent, StepStatus, StepView, step_transition};
use crate::run::{StepFailure, StepKind};
use crate::store::{self, Database, RunId};

pub use crate::run::journal::{
    CRASH_AFTER_EFFECT_ENV, CRASH_AFTER_INTENT_ENV, Journal, JournalError,
};

/// One step as the driver sees it.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub key: String,
    pub kind: StepKind,
    pub wave: Option<String>,
    pub status: StepStatus,
    pub depends_on: Vec<String>,
    pub needs_approval: bool,
    pub approved: bool,
    pub attempts: i64,
}

impl StepRow {
    pub fn view(&self) -> StepView {
        StepView {
            key: self.key.clone(),
            status: self.status,
            depends_on: self.depends_on.clone(),
            needs_approval: self.needs_approval,
            approved: self.approved,
        }
    }
}

/// The run fields the driver reports.
#[derive(Debug, Clone)]
pub struct RunSummaryView {
    pub id: String,
    pub operation: String,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub error: Option<String>,
}

impl Journal {
    /// Every step of the run as stored, in plan order (for reports).
    pub async fn stored_steps(&self) -> Result<Vec<store::Step>, JournalError> {
        let mut conn = self.db().acquire().await?;
        Ok(store::steps::list(&mut conn, self.run_id()).await?)
    }

    /// Every step of the run, in plan order.
    pub async fn steps(&self) -> Result<Vec<StepRow>, JournalError> {
        let mut conn = self.db().acquire().await?;
        let rows = store::steps::list(&mut conn, self.run_id()).await?;
        rows.into_iter()
            .map(|s| {
                let corrupt = || JournalError::Corrupt {
                    run: self.run_id().to_string(),
                    key: s.key.clone(),
                };
                Ok(StepRow {
                    kind: StepKind::from_name(&s.kind).ok_or_else(corrupt)?,
                    status: s.status,
                    wave: s.wave.clone(),
                    depends_on: s.depends_on.clone(),
                    needs_approval: s
                        .input
                        .get("needs_approval")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    approved: s.approved_by.is_some(),
                    attempts: s.attempts,
                    key: s.key,
                })
            })
            .collect()
    }

    /// Applies a step event through the state machine and persists it with its audit event.
    /// Returns the step's attempt number (incremented on `Start`).
    pub async fn transition(
        &self,
        key: &str,
        from: StepStatus,
        event: StepEvent,
        now: DateTime<Utc>,
        failure: Option<&StepFailure>,
    ) -> Result<i64, JournalError> {
        let to = step_transition(from, event).map_err(|_| JournalError::Transition {
            run: self.run_id().to_string(),
            key: key.to_string(),
            from: from.as_str().to_string(),
            event: format!("{event:?}"),
        })?;
        let (_turn, mut tx) = self.write().await?;
        let error = failure.map(|f| serde_json::to_string(f).unwrap_or_else(|_| f.to_string()));
        store::steps::set_status(&mut tx, self.run_id(), key, to, error.as_deref(), now).await?;
        let attempt = if event == StepEvent::Start {
            store::steps::increment_attempts(&mut tx, self.run_id(), key).await?
        } else {
            store::steps::get(&mut tx, self.run_id(), key)
                .await?
                .attempts
        };
        let kind = match (from, to) {
            (StepStatus::Running, StepStatus::Running) => "step_resumed",
            (_, StepStatus::Running) => "step_started",
            (_, StepStatus::WaitingApproval) => "step_waiting_approval",
            (_, StepStatus::Succeeded) => "step_succeeded",
            (_, StepStatus::Failed) => "step_failed",
            (_, StepStatus::Skipped) => "step_skipped",
            (_, StepStatus::Cancelled) => "step_cancelled",
            (_, StepStatus::Pending) => "step_reset",
        };
        self.event(&mut tx, kind, Some(key), json!({ "from": from.as_str(), "to": to.as_str(), "attempt": attempt, "error": failure }), now).await?;
        tx.commit().await?;
        Ok(attempt)
    }

    /// Records an operator's approval of a step.
    pub async fn approve(
        &self,
        key: &str,
        by: &str,
        comment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let (_turn, mut tx) = self.write().await?;
        // The gate is recorded on a waiting step; a prompt answered before the step was parked
        // parks it first, so both paths leave the same trail. Approval returns it to pending.
        let current = store::steps::get(&mut tx, self.run_id(), key).await?.status;
        if current == StepStatus::Pending {
            store::steps::set_status(
                &mut tx,
                self.run_id(),
                key,
                StepStatus::WaitingApproval,
                None,
                now,
            )
            .await?;
        }
        store::steps::approve(&mut tx, self.run_id(), key, by, comment, now).await?;
        let next = step_transition(StepStatus::WaitingApproval, StepEvent::Approve)
            .expect("an approval is a valid transition");
        store::steps::set_status(&mut tx, self.run_id(), key, next, None, now).await?;
        self.event(
            &mut tx,
            "step_approved",
            Some(key),
            json!({ "by": by, "comment": comment }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The run is (re)started by this driver.
    pub async fn run_started(&self, now: DateTime<Utc>) -> Result<(), JournalError> {
        let (_turn, mut tx) = self.write().await?;
        store::runs::set_status(&mut tx, self.run_id(), store::runs::RunStatus::Running, now)
            .await?;
        self.event(
            &mut tx,
            "run_driving",
            None,
            json!({ "host": super::host_name(), "pid": std::process::id() }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends (or pauses) the run.
    pub async fn finish_run(
        &self,
        status: &str,
        rto: Option<f64>,
        rpo: Option<f64>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let (_turn, mut tx) = self.write().await?;
        let run_status: store::runs::RunStatus = status.parse()?;
        // The closing event first: `finish` records the chain's head as the run's final hash.
        self.event(
            &mut tx,
            &format!("run_{status}"),
            None,
            json!({ "rto_seconds": rto, "rpo_seconds": rpo, "error": error }),
            now,
        )
        .await?;
        store::runs::finish(
            &mut tx,
            self.run_id(),
            &store::runs::Finish {
                status: run_status,
                rto_seconds: rto,
                rpo_seconds: rpo,
                error: error.map(str::to_string),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The first failed step's error, as one line.
    pub async fn first_failure(&self) -> Result<Option<String>, JournalError> {
        let mut conn = self.db().acquire().await?;
        let steps = store::steps::list(&mut conn, self.run_id()).await?;
        Ok(steps
            .iter()
            .find(|s| s.status == StepStatus::Failed)
            .map(|s| {
                let detail = s
                    .error
                    .as_deref()
                    .and_then(|e| serde_json::from_str::<StepFailure>(e).ok())
                    .map(|f| f.to_string())
                    .or_else(|| s.error.clone())
                    .unwrap_or_default();
                format!("step {} failed: {detail}", s.key)
            }))
    }

    /// Whether a failed step was refused because another run holds what it needs (exit 4).
    pub async fn refused(&self) -> Result<bool, JournalError> {
        let mut conn = self.db().acquire().await?;
        let steps = store::steps::list(&mut conn, self.run_id()).await?;
        Ok(steps.iter().any(|s| {
            s.status == StepStatus::Failed
                && s.error
                    .as_deref()
                    .and_then(|e| serde_json::from_str::<StepFailure>(e).ok())
                    .is_some_and(|f| f.refused)
        }))
    }

    /// The failed steps when only an operator can decide about each (actions in doubt): the
    /// run then pauses instead of failing. Empty when any failure is an ordinary one.
    pub async fn awaiting_operator(&self) -> Result<Vec<(String, StepFailure)>, JournalError> {
        let mut conn = self.db().pool().acquire().await?;
        let steps = store::steps::list(&mut conn, self.run_id()).await?;
        let mut waiting = Vec::new();
        for step in steps.iter().filter(|s| s.status == StepStatus::Failed) {
            let failure = step
                .error
                .as_deref()
                .and_then(|e| serde_json::from_str::<StepFailure>(e).ok());
            match failure {
                Some(failure) if failure.awaits_operator => {
                    waiting.push((step.key.clone(), failure))
                }
                _ => return Ok(Vec::new()),
            }
        }
        Ok(waiting)
    }

    pub async fn run_summary(&self) -> Result<RunSummaryView, JournalError> {
        let mut conn = self.db().acquire().await?;
        let run = store::runs::get(&mut conn, self.run_id()).await?;
        Ok(RunSummaryView {
            id: run.id.to_string(),
            operation: run.operation.as_str().to_string(),
            rto_seconds: run.rto_seconds,
            rpo_seconds: run.rpo_seconds,
            error: run.error,
        })
    }

    /// Whether an operator asked (`cancel`, from any process) for this run to stop.
    pub async fn cancel_requested(&self) -> Result<bool, JournalError> {
        let mut conn = self.db().acquire().await?;
        Ok(store::events::has_kind(&mut conn, self.run_id(), "cancel_requested").await?)
    }

    /// An operator's retry or skip of a step, through the state machine, recorded with who and
    /// why (the reason of a skip is mandatory at the CLI).
    pub async fn operator_transition(
        &self,
        key: &str,
        event: StepEvent,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let (_turn, mut tx) = self.write().await?;
        let row = store::steps::get(&mut tx, self.run_id(), key).await?;
        let from = row.status;
        let to = step_transition(from, event).map_err(|_| JournalError::Transition {
            run: self.run_id().to_string(),
            key: key.to_string(),
            from: from.as_str().to_string(),
            event: format!("{event:?}"),
        })?;
        match (event, reason) {
            (StepEvent::Skip, Some(reason)) => {
                store::steps::skip(&mut tx, self.run_id(), key, reason, now).await?
            }
            _ => store::steps::set_status(&mut tx, self.run_id(), key, to, None, now).await?,
        }
        let kind = match event {
            StepEvent::Retry => "step_retried",
            StepEvent::Skip => "step_skipped",
            _ => "step_changed_by_operator",
        };
        self.event(
            &mut tx,
            kind,
            Some(key),
            json!({ "from": from.as_str(), "to": to.as_str(), "by": self.actor(), "reason": reason }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cancels every step that has not finished (pending, waiting, running), one event each.
    pub async fn cancel_unfinished(&self, now: DateTime<Utc>) -> Result<Vec<String>, JournalError> {
        let mut cancelled = Vec::new();
        for row in self.steps().await? {
            if matches!(
                row.status,
                StepStatus::Pending | StepStatus::WaitingApproval | StepStatus::Running
            ) {
                self.transition(&row.key, row.status, StepEvent::Cancel, now, None)
                    .await?;
                cancelled.push(row.key);
            }
        }
        Ok(cancelled)
    }

    /// Logs that this driver took over the expired (or abandoned) lease of another one.
    pub async fn lease_taken_over(
        &self,
        previous: &store::leases::LeaseHolder,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let (_turn, mut tx) = self.write().await?;
        self.event(
            &mut tx,
            "lease_taken_over",
            None,
            json!({ "previous_owner": previous.owner, "previous_host": previous.host, "previous_pid": previous.pid, "previous_fence": previous.fence, "last_heartbeat": previous.heartbeat_at, "why": why }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Asks whoever drives `run_id` to stop at its next safe point and cancel the run. Written
/// without the lease (the asker does not hold it): an audit event the driver polls for.
pub async fn request_cancel(
    db: &Database,
    run_id: &RunId,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), JournalError> {
    let mut tx = db.begin().await?;
    store::events::append(
        &mut tx,
        run_id,
        now,
        "cancel_requested",
        actor,
        None,
        &json!({ "by": actor, "host": super::host_name(), "pid": std::process::id() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Marks `original` rolled back by the rollback run `by` (closing event, then the status, so
/// the chain's head stays the run's final hash).
pub async fn mark_rolled_back(
    db: &Database,
    original: &RunId,
    by: &RunId,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), JournalError> {
    let mut tx = db.begin().await?;
    let run = store::runs::get(&mut tx, original).await?;
    store::events::append(
        &mut tx,
        original,
        now,
        "run_rolled_back",
        actor,
        None,
        &json!({ "rollback_run_id": by.to_string() }),
    )
    .await?;
    store::runs::finish(
        &mut tx,
        original,
        &store::runs::Finish {
            status: store::runs::RunStatus::RolledBack,
            rto_seconds: run.rto_seconds,
            rpo_seconds: run.rpo_seconds,
            error: run.error.clone(),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
