//! The run's journal as the steps see it: one run in the store, bound to the lease the driver
//! holds. Every write checks the lease fence and appends its audit event in the same
//! transaction (DESIGN section 6).
//!
//! Two parts live here: step outputs, decoded as the typed contract between steps (a decode
//! failure is an error naming the run and the step, never a default), and the effects log,
//! which only the durable-call primitive ([`super::call`]) writes: its functions are private
//! to `crate::run`. The lifecycle of the run and its steps (transitions through the state
//! machine, approvals, operator actions) is the engine's, in `engine::journal`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::clock::EngineClock;
use crate::store::{self, Database, EffectId, RunId, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("failed to use the run database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Unknown(#[from] store::UnknownValue),
    #[error("step {key} of run {run} cannot go from {from} on {event}")]
    Transition {
        run: String,
        key: String,
        from: String,
        event: String,
    },
    #[error("step {key} of run {run} has an unknown kind or status in the database")]
    Corrupt { run: String, key: String },
    #[error("the output of step {key} could not be encoded: {source}")]
    Encode {
        key: String,
        source: serde_json::Error,
    },
    #[error(
        "the output of step {key} of run {run} could not be read as a {what}: {source} (hint: the database was edited or written by another version; `drs-runbook show {run}` shows the stored output)"
    )]
    Decode {
        run: String,
        key: String,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error(
        "call {call_key} of step {key} was made before with a different request (hint: a durable call key names one request; this is a bug in the step, or the database was edited)"
    )]
    RequestMismatch {
        key: String,
        call_key: String,
        recorded: Value,
        requested: Value,
    },
}

/// One run's journal, bound to the lease the driver holds.
pub struct Journal {
    db: Database,
    run_id: RunId,
    lease: Option<store::leases::Lease>,
    actor: String,
    /// Effects are timestamped on the engine's clock, like steps and events.
    clock: EngineClock,
    /// The run's writers take turns here, first come first served, before they ask SQLite for
    /// its write lock: with every wave's steps running at once, writers of this process queue
    /// on this turn instead of in SQLite's busy handler, whose timeout is for other processes.
    turn: tokio::sync::Mutex<()>,
}

/// The attempts of one durable call, as the primitive reads them.
#[derive(Debug, Clone)]
pub(in crate::run) struct Attempt {
    pub id: EffectId,
    pub state: store::effects::EffectState,
    pub request: Value,
    pub response: Option<Value>,
}

impl Journal {
    pub fn new(
        db: Database,
        run_id: RunId,
        lease: Option<store::leases::Lease>,
        actor: String,
        clock: EngineClock,
    ) -> Self {
        Journal {
            db,
            run_id,
            lease,
            actor,
            clock,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Opens a transaction whose writes are valid only while this driver holds the lease, on
    /// the run's write turn: keep the turn (`let (_turn, mut tx) = ...`) until the transaction
    /// is committed or dropped. Never take a second turn while holding one.
    pub(crate) async fn write(
        &self,
    ) -> Result<
        (
            tokio::sync::MutexGuard<'_, ()>,
            sqlx::Transaction<'static, sqlx::Any>,
        ),
        JournalError,
    > {
        let turn = self.turn.lock().await;
        let mut tx = self.db.begin().await?;
        if let Some(lease) = &self.lease {
            store::leases::check_fence(&mut tx, lease).await?;
        }
        Ok((turn, tx))
    }

    pub(crate) async fn event(
        &self,
        tx: &mut sqlx::AnyConnection,
        kind: &str,
        step: Option<&str>,
        data: Value,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        store::events::append(tx, &self.run_id, now, kind, &self.actor, step, &data).await?;
        Ok(())
    }

    /// Claims `resources` for the run, all or none (`StoreError::ClaimConflict` names the
    /// run holding one); claiming again what the run holds is a no-op.
    pub async fn claim(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let (_turn, mut tx) = self.write().await?;
        store::claims::claim_all(&mut tx, &self.run_id, resources, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A step's output as JSON (`{}` when none yet).
    pub async fn output_value(&self, key: &str) -> Result<Value, JournalError> {
        let mut conn = self.db.acquire().await?;
        Ok(store::steps::get(&mut conn, &self.run_id, key)
            .await?
            .output)
    }

    /// A step's output decoded; the default when it has none yet. An output that does not
    /// decode is an error naming the run and the step: a rollback must never mistake it for
    /// "nothing to undo".
    pub async fn output<T: DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, JournalError> {
        let value = self.output_value(key).await?;
        decode_output(&self.run_id, key, value)
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
        let (_turn, mut tx) = self.write().await?;
        store::steps::set_output(&mut tx, &self.run_id, key, &value).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The attempts of one durable call (its key's range of the unique index), oldest first.
    pub(in crate::run) async fn attempts(
        &self,
        call_key: &str,
    ) -> Result<Vec<Attempt>, JournalError> {
        let mut conn = self.db.acquire().await?;
        Ok(store::effects::for_call(&mut conn, call_key)
            .await?
            .into_iter()
            .map(|e| Attempt {
                id: e.id,
                state: e.state,
                request: e.request,
                response: e.response,
            })
            .collect())
    }

    /// Writes and commits the intent of a mutating call, before the call.
    pub(in crate::run) async fn begin_intent(
        &self,
        step: &str,
        idempotency_key: &str,
        operation: &str,
        account: &str,
        region: &str,
        request: Value,
    ) -> Result<EffectId, JournalError> {
        let now = self.clock.now();
        let (_turn, mut tx) = self.write().await?;
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
    pub(in crate::run) async fn complete_effect(
        &self,
        id: EffectId,
        response: Value,
        request_id: Option<String>,
    ) -> Result<(), JournalError> {
        let now = self.clock.now();
        let (_turn, mut tx) = self.write().await?;
        store::effects::complete(
            &mut tx,
            &self.run_id,
            id,
            &response,
            request_id.as_deref(),
            now,
        )
        .await?;
        let (step, operation) = effect_names(&mut tx, &self.run_id, id).await?;
        self.event(&mut tx, "effect_done", Some(&step), json!({ "effect": id.0, "operation": operation, "aws_request_id": request_id, "response": response }), now).await?;
        tx.commit().await?;
        crash_after_effect_hook();
        Ok(())
    }

    /// The call was rejected or had no effect.
    pub(in crate::run) async fn fail_effect(
        &self,
        id: EffectId,
        error: &str,
    ) -> Result<(), JournalError> {
        let now = self.clock.now();
        let (_turn, mut tx) = self.write().await?;
        store::effects::fail(&mut tx, &self.run_id, id, error, None, now).await?;
        let (step, operation) = effect_names(&mut tx, &self.run_id, id).await?;
        self.event(
            &mut tx,
            "effect_failed",
            Some(&step),
            json!({ "effect": id.0, "operation": operation, "error": error }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The outcome of an interrupted call, found out from AWS.
    pub(in crate::run) async fn reconcile_effect(
        &self,
        id: EffectId,
        response: Value,
    ) -> Result<(), JournalError> {
        let now = self.clock.now();
        let (_turn, mut tx) = self.write().await?;
        store::effects::reconciled(&mut tx, &self.run_id, id, &response, now).await?;
        let (step, operation) = effect_names(&mut tx, &self.run_id, id).await?;
        self.event(
            &mut tx,
            "effect_reconciled",
            Some(&step),
            json!({ "effect": id.0, "operation": operation, "response": response }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the step of another run (`run`) ever intended a call of `operation` (a rollback
    /// asks this of the step it undoes).
    pub async fn step_called(
        &self,
        run: &RunId,
        step: &str,
        operation: &str,
    ) -> Result<bool, JournalError> {
        let mut conn = self.db.acquire().await?;
        Ok(store::effects::for_step(&mut conn, run, step)
            .await?
            .iter()
            .any(|e| e.operation == operation))
    }
}

/// Decodes a step's output (`{}` or null: none yet, the default).
pub fn decode_output<T: DeserializeOwned + Default>(
    run: &RunId,
    key: &str,
    value: Value,
) -> Result<T, JournalError> {
    decode_value(value).map_err(|source| JournalError::Decode {
        run: run.to_string(),
        key: key.to_string(),
        what: output_type_name::<T>(),
        source,
    })
}

/// Decodes a step's output as its step's type: `{}` or null (nothing recorded yet) is the
/// type's default, anything else must decode. The callers name the run and the step.
pub fn decode_value<T: DeserializeOwned + Default>(value: Value) -> Result<T, serde_json::Error> {
    if value.is_null() || value.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(T::default());
    }
    serde_json::from_value(value)
}

/// The short name of an output type (`DnsOutput`), for error messages.
pub fn output_type_name<T>() -> &'static str {
    std::any::type_name::<T>()
        .rsplit("::")
        .next()
        .unwrap_or("output")
}

/// The step key and operation of an effect, for its audit event (by primary key).
async fn effect_names(
    conn: &mut sqlx::AnyConnection,
    run_id: &RunId,
    id: EffectId,
) -> Result<(String, String), JournalError> {
    let effect = store::effects::get(conn, run_id, id).await?;
    Ok((effect.step_key, effect.operation))
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
