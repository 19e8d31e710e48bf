//! The journal: the engine's view of one run in the store. Every write checks the run's lease
//! fence and appends its audit event in the same transaction (DESIGN section 6).

use chrono::{DateTime, Utc};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::machine::{StepEvent, StepStatus, StepView, step_transition};
use super::plan::StepKind;
use crate::steps::StepFailure;
use crate::store::{self, Database, EffectId, RunId, StoreError};

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

/// An intent whose outcome is not recorded yet.
#[derive(Debug, Clone)]
pub struct OpenIntent {
    pub id: EffectId,
    pub idempotency_key: String,
    pub response: Option<Value>,
}

/// Where one logical mutating call stands. The effects table, not a step's output, is the
/// record of what was sent: an effect recorded `done` just before a crash (and before the
/// step saved its output) must never be sent again.
#[derive(Debug, Clone)]
pub enum CallState {
    /// An attempt took effect (sent, or found by reconciliation): its response.
    Done(Value),
    /// An attempt's intent is committed but its outcome unknown: reconcile before anything.
    Open(OpenIntent),
    /// Never sent, or every attempt failed without effect: send, with this idempotency key.
    NotSent { next_key: String },
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

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("failed to use the run database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Unknown(#[from] store::UnknownValue),
    #[error("step {key} of run {run} cannot go from {from} on {event:?}")]
    Transition {
        run: String,
        key: String,
        from: String,
        event: StepEvent,
    },
    #[error("step {key} of run {run} has an unknown kind or status in the database")]
    Corrupt { run: String, key: String },
    #[error("the output of step {key} could not be encoded: {source}")]
    Encode {
        key: String,
        source: serde_json::Error,
    },
}

/// One run's journal, bound to the lease the driver holds.
pub struct Journal {
    db: Database,
    run_id: RunId,
    lease: Option<store::leases::Lease>,
    actor: String,
    /// Effects are timestamped on the engine's clock, like steps and events.
    clock: super::clock::EngineClock,
}

impl Journal {
    pub fn new(
        db: Database,
        run_id: RunId,
        lease: Option<store::leases::Lease>,
        actor: String,
        clock: super::clock::EngineClock,
    ) -> Self {
        Journal {
            db,
            run_id,
            lease,
            actor,
            clock,
        }
    }

    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Opens a transaction whose writes are valid only while this driver holds the lease.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, JournalError> {
        let mut tx = self.db.begin().await?;
        if let Some(lease) = &self.lease {
            store::leases::check_fence(&mut tx, lease).await?;
        }
        Ok(tx)
    }

    async fn event(
        &self,
        tx: &mut sqlx::SqliteConnection,
        kind: &str,
        step: Option<&str>,
        data: Value,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        store::events::append(tx, &self.run_id, now, kind, &self.actor, step, &data).await?;
        Ok(())
    }

    /// Every step of the run, in plan order.
    pub async fn steps(&self) -> Result<Vec<StepRow>, JournalError> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = store::steps::list(&mut conn, &self.run_id).await?;
        rows.into_iter()
            .map(|s| {
                let corrupt = || JournalError::Corrupt {
                    run: self.run_id.to_string(),
                    key: s.key.clone(),
                };
                Ok(StepRow {
                    kind: StepKind::from_name(&s.kind).ok_or_else(corrupt)?,
                    status: StepStatus::parse(s.status.as_str()).ok_or_else(corrupt)?,
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
            run: self.run_id.to_string(),
            key: key.to_string(),
            from: from.as_str().to_string(),
            event,
        })?;
        let mut tx = self.write().await?;
        let error = failure.map(|f| serde_json::to_string(f).unwrap_or_else(|_| f.to_string()));
        let status: store::steps::StepStatus = to.as_str().parse()?;
        store::steps::set_status(&mut tx, &self.run_id, key, status, error.as_deref(), now).await?;
        let attempt = if event == StepEvent::Start {
            store::steps::increment_attempts(&mut tx, &self.run_id, key).await?
        } else {
            store::steps::get(&mut tx, &self.run_id, key)
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
        let mut tx = self.write().await?;
        // The gate is recorded on a waiting step; a prompt answered before the step was parked
        // parks it first, so both paths leave the same trail. Approval returns it to pending.
        let current = store::steps::get(&mut tx, &self.run_id, key).await?.status;
        if current.as_str() == StepStatus::Pending.as_str() {
            store::steps::set_status(
                &mut tx,
                &self.run_id,
                key,
                StepStatus::WaitingApproval.as_str().parse()?,
                None,
                now,
            )
            .await?;
        }
        store::steps::approve(&mut tx, &self.run_id, key, by, comment, now).await?;
        let next = step_transition(StepStatus::WaitingApproval, StepEvent::Approve)
            .expect("an approval is a valid transition");
        store::steps::set_status(
            &mut tx,
            &self.run_id,
            key,
            next.as_str().parse()?,
            None,
            now,
        )
        .await?;
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
        let mut tx = self.write().await?;
        store::runs::set_status(&mut tx, &self.run_id, store::runs::RunStatus::Running, now)
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
        let mut tx = self.write().await?;
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
            &self.run_id,
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
        let mut conn = self.db.pool().acquire().await?;
        let steps = store::steps::list(&mut conn, &self.run_id).await?;
        Ok(steps
            .iter()
            .find(|s| s.status.as_str() == "failed")
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

    pub async fn run_summary(&self) -> Result<RunSummaryView, JournalError> {
        let mut conn = self.db.pool().acquire().await?;
        let run = store::runs::get(&mut conn, &self.run_id).await?;
        Ok(RunSummaryView {
            id: run.id.to_string(),
            operation: run.operation.as_str().to_string(),
            rto_seconds: run.rto_seconds,
            rpo_seconds: run.rpo_seconds,
            error: run.error,
        })
    }

    /// A step's output as JSON (`{}` when none yet).
    pub async fn output_value(&self, key: &str) -> Result<Value, JournalError> {
        let mut conn = self.db.pool().acquire().await?;
        Ok(store::steps::get(&mut conn, &self.run_id, key)
            .await?
            .output)
    }

    /// A step's output decoded, or the default when it has none (or an older shape).
    pub async fn output<T: DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, JournalError> {
        let value = self.output_value(key).await?;
        if value.is_null() || value.as_object().is_some_and(|o| o.is_empty()) {
            return Ok(T::default());
        }
        Ok(serde_json::from_value(value).unwrap_or_default())
    }

    pub async fn save_output<T: Serialize>(
        &self,
        key: &str,
        output: &T,
    ) -> Result<(), JournalError> {
        let value = serde_json::to_value(output).map_err(|source| JournalError::Encode {
            key: key.to_string(),
            source,
        })?;
        let mut tx = self.write().await?;
        store::steps::set_output(&mut tx, &self.run_id, key, &value).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes and commits the intent of a mutating call, before the call.
    pub async fn begin_intent(
        &self,
        step: &str,
        idempotency_key: &str,
        operation: &str,
        account: &str,
        region: &str,
        request: Value,
    ) -> Result<EffectId, JournalError> {
        let now = self.clock.now();
        let mut tx = self.write().await?;
        let id = store::effects::begin(
            &mut tx,
            &self.run_id,
            &store::effects::NewEffect {
                step_key: step.to_string(),
                idempotency_key: idempotency_key.to_string(),
                operation: operation.to_string(),
                account: account.to_string(),
                region: region.to_string(),
                request: request.clone(),
            },
            now,
        )
        .await?;
        self.event(&mut tx, "effect_intent", Some(step), json!({ "effect": id.0, "operation": operation, "idempotency_key": idempotency_key, "account": account, "region": region, "request": request }), now)
            .await?;
        tx.commit().await?;
        crash_after_intent_hook();
        Ok(id)
    }

    /// Records the call's effect (response, AWS request ID).
    pub async fn complete_effect(
        &self,
        id: EffectId,
        response: Value,
        request_id: Option<String>,
    ) -> Result<(), JournalError> {
        let now = self.clock.now();
        let mut tx = self.write().await?;
        store::effects::complete(&mut tx, id, &response, request_id.as_deref(), now).await?;
        let (step, operation) = self.effect_names(&mut tx, id).await?;
        self.event(&mut tx, "effect_done", step.as_deref(), json!({ "effect": id.0, "operation": operation, "aws_request_id": request_id, "response": response }), now).await?;
        tx.commit().await?;
        crash_after_effect_hook();
        Ok(())
    }

    /// The call was rejected or had no effect.
    pub async fn fail_effect(&self, id: EffectId, error: &str) -> Result<(), JournalError> {
        let now = self.clock.now();
        let mut tx = self.write().await?;
        store::effects::fail(&mut tx, id, error, None, now).await?;
        let (step, operation) = self.effect_names(&mut tx, id).await?;
        self.event(
            &mut tx,
            "effect_failed",
            step.as_deref(),
            json!({ "effect": id.0, "operation": operation, "error": error }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The outcome of an interrupted call, found out from AWS.
    pub async fn reconcile_effect(
        &self,
        id: EffectId,
        response: Value,
    ) -> Result<(), JournalError> {
        let now = self.clock.now();
        let mut tx = self.write().await?;
        store::effects::reconciled(&mut tx, id, &response, now).await?;
        let (step, operation) = self.effect_names(&mut tx, id).await?;
        self.event(
            &mut tx,
            "effect_reconciled",
            step.as_deref(),
            json!({ "effect": id.0, "operation": operation, "response": response }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The step key and operation of an effect, for its audit event.
    async fn effect_names(
        &self,
        conn: &mut sqlx::SqliteConnection,
        id: EffectId,
    ) -> Result<(Option<String>, Option<String>), JournalError> {
        let effects = store::effects::for_run(conn, &self.run_id).await?;
        Ok(effects
            .into_iter()
            .find(|e| e.id == id)
            .map(|e| (Some(e.step_key), Some(e.operation)))
            .unwrap_or((None, None)))
    }

    /// The step's intents without a recorded outcome.
    pub async fn open_intents(&self, step: &str) -> Result<Vec<OpenIntent>, JournalError> {
        let mut conn = self.db.pool().acquire().await?;
        let effects = store::effects::open_intents(&mut conn, &self.run_id).await?;
        Ok(effects
            .into_iter()
            .filter(|e| e.step_key == step)
            .map(|e| OpenIntent {
                id: e.id,
                idempotency_key: e.idempotency_key,
                response: e.response,
            })
            .collect())
    }

    /// What the journal knows of one logical call of a step, whose attempts have idempotency
    /// keys `<prefix>attempt-<n>`: its recorded outcome, an intent left open, or nothing.
    pub async fn call_state(&self, step: &str, prefix: &str) -> Result<CallState, JournalError> {
        let mut conn = self.db.pool().acquire().await?;
        let effects = store::effects::for_step(&mut conn, &self.run_id, step).await?;
        let attempts: Vec<_> = effects
            .into_iter()
            .filter(|e| e.idempotency_key.starts_with(prefix))
            .collect();
        if let Some(done) = attempts
            .iter()
            .find(|e| matches!(e.state.as_str(), "done" | "reconciled"))
        {
            return Ok(CallState::Done(
                done.response.clone().unwrap_or(Value::Null),
            ));
        }
        if let Some(open) = attempts.iter().find(|e| e.state.as_str() == "intent") {
            return Ok(CallState::Open(OpenIntent {
                id: open.id,
                idempotency_key: open.idempotency_key.clone(),
                response: open.response.clone(),
            }));
        }
        Ok(CallState::NotSent {
            next_key: format!("{prefix}attempt-{}", attempts.len() + 1),
        })
    }

    /// How many effects of the step have an idempotency key starting with `prefix`.
    pub async fn effects_count_with_prefix(
        &self,
        step: &str,
        prefix: &str,
    ) -> Result<i64, JournalError> {
        let mut conn = self.db.pool().acquire().await?;
        let effects = store::effects::for_step(&mut conn, &self.run_id, step).await?;
        Ok(effects
            .iter()
            .filter(|e| e.idempotency_key.starts_with(prefix))
            .count() as i64)
    }

    /// Whether an operator asked (`cancel`, from any process) for this run to stop.
    pub async fn cancel_requested(&self) -> Result<bool, JournalError> {
        let mut conn = self.db.pool().acquire().await?;
        let found: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE run_id = ?1 AND kind = 'cancel_requested')",
        )
        .bind(&self.run_id)
        .fetch_one(&mut *conn)
        .await?;
        Ok(found == 1)
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
        let mut tx = self.write().await?;
        let row = store::steps::get(&mut tx, &self.run_id, key).await?;
        let from = StepStatus::parse(row.status.as_str()).ok_or_else(|| JournalError::Corrupt {
            run: self.run_id.to_string(),
            key: key.to_string(),
        })?;
        let to = step_transition(from, event).map_err(|_| JournalError::Transition {
            run: self.run_id.to_string(),
            key: key.to_string(),
            from: from.as_str().to_string(),
            event,
        })?;
        match (event, reason) {
            (StepEvent::Skip, Some(reason)) => {
                store::steps::skip(&mut tx, &self.run_id, key, reason, now).await?
            }
            _ => {
                store::steps::set_status(
                    &mut tx,
                    &self.run_id,
                    key,
                    to.as_str().parse()?,
                    None,
                    now,
                )
                .await?
            }
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
            json!({ "from": from.as_str(), "to": to.as_str(), "by": self.actor, "reason": reason }),
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
        let mut tx = self.write().await?;
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

/// The environment variable of the second crash test hook, see [`crash_after_effect_hook`].
pub const CRASH_AFTER_EFFECT_ENV: &str = "DRS_RUNBOOK_CRASH_AFTER_EFFECT";

/// TEST HOOK (crash harness): with `DRS_RUNBOOK_CRASH_AFTER_EFFECT=N` the process aborts right
/// after committing the outcome of its N-th completed call, before the step saves the output
/// that uses it (the job ID, the change ID): a resume must find the outcome in the effects and
/// never send that call again.
fn crash_after_effect_hook() {
    use std::sync::atomic::AtomicU64;
    static COMPLETED: AtomicU64 = AtomicU64::new(0);
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    crash_hook(
        CRASH_AFTER_EFFECT_ENV,
        &LIMIT,
        &COMPLETED,
        "the effect commit",
    );
}

/// The environment variable of the crash test hook, see [`crash_after_intent_hook`].
pub const CRASH_AFTER_INTENT_ENV: &str = "DRS_RUNBOOK_CRASH_AFTER_INTENT";

/// TEST HOOK (crash harness, tests/integration/crash.rs): with `DRS_RUNBOOK_CRASH_AFTER_INTENT=N`
/// the process aborts right after committing its N-th intent of a mutating call, before the
/// call is sent: the worst moment for durability, and one the harness cannot hit reliably with
/// a timed SIGKILL. Unset (always, outside tests), this is one relaxed atomic increment.
fn crash_after_intent_hook() {
    use std::sync::atomic::AtomicU64;
    static COMMITTED: AtomicU64 = AtomicU64::new(0);
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    crash_hook(
        CRASH_AFTER_INTENT_ENV,
        &LIMIT,
        &COMMITTED,
        "the intent commit",
    );
}

/// Counts one more event for a crash hook and aborts the process when the count reaches the
/// limit set in `env` (read once). Unset, this is one relaxed atomic increment.
fn crash_hook(
    env: &str,
    limit: &std::sync::OnceLock<Option<u64>>,
    count: &std::sync::atomic::AtomicU64,
    what: &str,
) {
    let limit = *limit.get_or_init(|| std::env::var(env).ok().and_then(|v| v.parse().ok()));
    let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if limit == Some(n) {
        eprintln!("test hook {env}={n}: aborting after {what}");
        std::process::abort();
    }
}
