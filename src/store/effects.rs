//! The `effects` table: the write-ahead log of mutating AWS calls (DESIGN section 6, rule 2).
//!
//! ```text
//!   begin (intent) ── commit ──► AWS call ──► complete (done) | fail (failed)
//!         │                                    └─ in the same transaction as the step's next state
//!         └── crash before the outcome: open intent ──► reconcile against AWS ──► reconciled
//! ```
//!
//! Invariants:
//! - [`begin`] must be committed before the call is sent; an intent without an outcome on
//!   resume is reconciled (`DescribeJobs` by tag, `GetChange`, ...), never blindly re-sent.
//! - `idempotency_key` is unique in the schema: the same deterministic call key
//!   ([`idempotency_key`]) can never be logged, hence sent, twice.
//! - An outcome is recorded once: `complete`, `fail` and `reconciled` only act on an intent.
//! - `request` and `response` hold parameters and identifiers, never credentials.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::AnyConnection;

use super::{
    EffectId, Engine, JsonText, RunId, StoreError, TimeText, engine, text_enum, timestamp,
};

text_enum! {
    /// Where a mutating call stands.
    pub enum EffectState {
        /// Written and committed before the call; the outcome is not known yet.
        Intent => "intent",
        Done => "done",
        Failed => "failed",
        /// The outcome of an interrupted call, found out afterwards from AWS.
        Reconciled => "reconciled",
    }
}

/// A mutating call about to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEffect {
    pub step_key: String,
    /// Deterministic, see [`idempotency_key`].
    pub idempotency_key: String,
    /// `service:Operation`, as the simulator counts calls (`"drs:StartRecovery"`).
    pub operation: String,
    pub account: String,
    /// The signing region (global services such as Route 53 sign in `us-east-1`).
    pub region: String,
    pub request: Value,
}

/// A stored effect, every column.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Effect {
    pub id: EffectId,
    pub run_id: RunId,
    pub step_key: String,
    pub idempotency_key: String,
    pub operation: String,
    pub account: String,
    pub region: String,
    pub state: EffectState,
    pub aws_request_id: Option<String>,
    #[sqlx(try_from = "TimeText")]
    pub created_at: DateTime<Utc>,
    #[sqlx(try_from = "TimeText")]
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    #[sqlx(try_from = "JsonText")]
    pub request: Value,
    #[sqlx(try_from = "JsonText")]
    pub response: Option<Value>,
}

/// The deterministic call key `<run>/<step>/<attempt>/<n>`: the n-th mutating call of an
/// attempt of a step. Recomputed identically on resume, so a resumed step finds its intent.
pub fn idempotency_key(run_id: &RunId, step_key: &str, attempt: i64, n: u32) -> String {
    format!("{run_id}/{step_key}/{attempt}/{n}")
}

/// Records the intent to make a call. Commit it before sending the call.
pub async fn begin(
    conn: &mut AnyConnection,
    run_id: &RunId,
    effect: &NewEffect,
    now: DateTime<Utc>,
) -> Result<EffectId, StoreError> {
    let id = sqlx::query_scalar(
        r#"
        INSERT INTO effects (run_id, step_key, idempotency_key, operation, account, region,
                             state, created_at, request)
        VALUES ($1, $2, $3, $4, $5, $6, 'intent', $7, $8)
        RETURNING id
        "#,
    )
    .bind(run_id)
    .bind(&effect.step_key)
    .bind(&effect.idempotency_key)
    .bind(&effect.operation)
    .bind(&effect.account)
    .bind(&effect.region)
    .bind(timestamp(now))
    .bind(effect.request.to_string())
    .fetch_one(&mut *conn)
    .await
    .map_err(|source| {
        let duplicate = source
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation());
        if duplicate {
            StoreError::DuplicateEffect {
                idempotency_key: effect.idempotency_key.clone(),
            }
        } else {
            StoreError::query(
                source,
                format!(
                    "record the intent {} of step {} of run {run_id}",
                    effect.operation, effect.step_key
                ),
            )
        }
    })?;
    super::seal::refresh(conn, run_id).await?;
    Ok(id)
}

/// Records the call's success: its response (job ID, change ID, ARNs) and AWS request ID.
pub async fn complete(
    conn: &mut AnyConnection,
    run_id: &RunId,
    id: EffectId,
    response: &Value,
    aws_request_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let outcome = Outcome {
        state: EffectState::Done,
        response: Some(response),
        error: None,
        aws_request_id,
    };
    close(conn, run_id, id, outcome, now).await
}

/// Records the call's failure (an error AWS returned, so the call is known not to have acted).
pub async fn fail(
    conn: &mut AnyConnection,
    run_id: &RunId,
    id: EffectId,
    error: &str,
    aws_request_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let outcome = Outcome {
        state: EffectState::Failed,
        response: None,
        error: Some(error),
        aws_request_id,
    };
    close(conn, run_id, id, outcome, now).await
}

/// Records what reconciliation found out about an interrupted call (e.g. the job found by its
/// tags, or `{"found": false}`, after which the engine may begin a new intent with a new key).
pub async fn reconciled(
    conn: &mut AnyConnection,
    run_id: &RunId,
    id: EffectId,
    response: &Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let outcome = Outcome {
        state: EffectState::Reconciled,
        response: Some(response),
        error: None,
        aws_request_id: None,
    };
    close(conn, run_id, id, outcome, now).await
}

/// How an intent closes: its new state and what is recorded with it.
struct Outcome<'a> {
    state: EffectState,
    response: Option<&'a Value>,
    error: Option<&'a str>,
    aws_request_id: Option<&'a str>,
}

async fn close(
    conn: &mut AnyConnection,
    run_id: &RunId,
    id: EffectId,
    outcome: Outcome<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Outcome {
        state,
        response,
        error,
        aws_request_id,
    } = outcome;
    let closed: Option<RunId> = sqlx::query_scalar(
        r#"
        UPDATE effects
        SET state = $3, response = $4, error = $5, aws_request_id = $6, completed_at = $7
        WHERE run_id = $1 AND id = $2 AND state = 'intent'
        RETURNING run_id
        "#,
    )
    .bind(run_id)
    .bind(id)
    .bind(state)
    .bind(response.map(Value::to_string))
    .bind(error)
    .bind(aws_request_id)
    .bind(timestamp(now))
    .fetch_optional(&mut *conn)
    .await
    .map_err(|source| {
        StoreError::query(
            source,
            format!("record the outcome ({state}) of effect {id}"),
        )
    })?;
    if closed.is_some() {
        return super::seal::refresh(conn, run_id).await;
    }
    let current: Option<EffectState> =
        sqlx::query_scalar(r#"SELECT state FROM effects WHERE run_id = $1 AND id = $2"#)
            .bind(run_id)
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(|source| StoreError::query(source, format!("read effect {id}")))?;
    Err(match current {
        Some(state) => StoreError::EffectNotOpen { id, state },
        None => StoreError::EffectNotFound { id },
    })
}

/// The run's intents without an outcome: the calls a crash may have left in flight.
pub async fn open_intents(
    conn: &mut AnyConnection,
    run_id: &RunId,
) -> Result<Vec<Effect>, StoreError> {
    sqlx::query_as(r#"SELECT * FROM effects WHERE run_id = $1 AND state = 'intent' ORDER BY id"#)
        .bind(run_id)
        .fetch_all(conn)
        .await
        .map_err(|source| {
            StoreError::query(source, format!("list the open intents of run {run_id}"))
        })
}

/// The step's effects, oldest first.
pub async fn for_step(
    conn: &mut AnyConnection,
    run_id: &RunId,
    step_key: &str,
) -> Result<Vec<Effect>, StoreError> {
    sqlx::query_as(r#"SELECT * FROM effects WHERE run_id = $1 AND step_key = $2 ORDER BY id"#)
        .bind(run_id)
        .bind(step_key)
        .fetch_all(conn)
        .await
        .map_err(|source| {
            StoreError::query(
                source,
                format!("list the effects of step {step_key} of run {run_id}"),
            )
        })
}

/// One effect of the run by its ID (the primary key, with the run's).
pub async fn get(
    conn: &mut AnyConnection,
    run_id: &RunId,
    id: EffectId,
) -> Result<Effect, StoreError> {
    sqlx::query_as(r#"SELECT * FROM effects WHERE run_id = $1 AND id = $2"#)
        .bind(run_id)
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(|source| StoreError::query(source, format!("read effect {id}")))?
        .ok_or(StoreError::EffectNotFound { id })
}

/// The attempts of one durable call, oldest first: the effects whose idempotency key starts
/// with `call_key` (`<run>/<step>/<call>/`, its attempts being `<call_key>attempt-<n>`).
/// A range over the unique index of `idempotency_key`, never a scan of the run or the step.
pub async fn for_call(conn: &mut AnyConnection, call_key: &str) -> Result<Vec<Effect>, StoreError> {
    // Every key with this prefix sorts in [prefix, prefix + U+10FFFF) under BINARY collation.
    let upper = format!("{call_key}\u{10FFFF}");
    sqlx::query_as(
        r#"SELECT * FROM effects WHERE idempotency_key >= $1 AND idempotency_key < $2 ORDER BY id"#,
    )
    .bind(call_key)
    .bind(upper)
    .fetch_all(conn)
    .await
    .map_err(|source| StoreError::query(source, format!("list the attempts of call {call_key}")))
}

/// The run's effects, oldest first.
pub async fn for_run(conn: &mut AnyConnection, run_id: &RunId) -> Result<Vec<Effect>, StoreError> {
    sqlx::query_as(r#"SELECT * FROM effects WHERE run_id = $1 ORDER BY id"#)
        .bind(run_id)
        .fetch_all(conn)
        .await
        .map_err(|source| StoreError::query(source, format!("list the effects of run {run_id}")))
}

/// The completed effects of `operation` whose response mentions `needle` (a job ID, an instance
/// ID), oldest first: which run made a resource, for messages such as the production guard's.
/// A scan of the table, on purpose: it runs once per refused run, never in a loop.
pub async fn mentioning(
    conn: &mut AnyConnection,
    operation: &str,
    needle: &str,
) -> Result<Vec<Effect>, StoreError> {
    // The same substring test, spelt per dialect.
    let contains = match engine(conn) {
        Engine::Sqlite => "instr(response, $2) > 0",
        Engine::Postgres => "strpos(response, $2) > 0",
    };
    sqlx::query_as(&format!(
        r#"SELECT * FROM effects WHERE operation = $1 AND state IN ('done', 'reconciled')
           AND response IS NOT NULL AND {contains} ORDER BY id"#,
    ))
    .bind(operation)
    .bind(needle)
    .fetch_all(conn)
    .await
    .map_err(|source| {
        StoreError::query(
            source,
            format!("find the {operation} effects naming {needle}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use serde_json::json;

    fn start_recovery(run_id: &RunId, n: u32) -> NewEffect {
        NewEffect {
            step_key: "recovery_job:db".to_owned(),
            idempotency_key: idempotency_key(run_id, "recovery_job:db", 1, n),
            operation: "drs:StartRecovery".to_owned(),
            account: "222222222222".to_owned(),
            region: "us-west-2".to_owned(),
            request: json!({"sourceServers": [{"sourceServerID": "s-1234567890abcdef0"}], "isDrill": false}),
        }
    }

    #[tokio::test]
    async fn intent_then_complete_records_the_response_and_closes_the_intent() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut tx = db.begin().await.unwrap();
        let id = begin(&mut tx, &run_id, &start_recovery(&run_id, 1), at(1))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut conn = db.pool().acquire().await.unwrap();
        let open = open_intents(&mut conn, &run_id).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!((open[0].id, open[0].state), (id, EffectState::Intent));
        assert_eq!(
            open[0].idempotency_key,
            format!("{run_id}/recovery_job:db/1/1")
        );
        assert_eq!(
            (open[0].response.clone(), open[0].completed_at),
            (None, None)
        );

        let response = json!({"job": {"jobID": "drsjob-0123456789abcdef0"}});
        complete(&mut conn, &run_id, id, &response, Some("req-1"), at(2))
            .await
            .unwrap();
        assert!(open_intents(&mut conn, &run_id).await.unwrap().is_empty());
        let effects = for_run(&mut conn, &run_id).await.unwrap();
        assert_eq!(effects.len(), 1);
        let done = &effects[0];
        assert_eq!(
            (done.state, done.response.clone()),
            (EffectState::Done, Some(response))
        );
        assert_eq!(
            (done.aws_request_id.as_deref(), done.completed_at),
            (Some("req-1"), Some(at(2)))
        );
        assert_eq!(done.request, start_recovery(&run_id, 1).request);
        assert_eq!(
            (
                done.operation.as_str(),
                done.account.as_str(),
                done.region.as_str()
            ),
            ("drs:StartRecovery", "222222222222", "us-west-2")
        );
    }

    #[tokio::test]
    async fn an_outcome_is_recorded_once() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let id = begin(&mut conn, &run_id, &start_recovery(&run_id, 1), at(1))
            .await
            .unwrap();
        complete(&mut conn, &run_id, id, &json!({}), None, at(2))
            .await
            .unwrap();
        let err = fail(&mut conn, &run_id, id, "late", None, at(3))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::EffectNotOpen {
                    state: EffectState::Done,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = reconciled(&mut conn, &run_id, EffectId(9999), &json!({}), at(3))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::EffectNotFound { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn fail_and_reconciled_close_intents_with_their_own_states() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let failed = begin(&mut conn, &run_id, &start_recovery(&run_id, 1), at(1))
            .await
            .unwrap();
        let interrupted = begin(&mut conn, &run_id, &start_recovery(&run_id, 2), at(1))
            .await
            .unwrap();
        let still_open = begin(&mut conn, &run_id, &start_recovery(&run_id, 3), at(1))
            .await
            .unwrap();
        fail(
            &mut conn,
            &run_id,
            failed,
            "ConflictException: server already in a job",
            Some("req-9"),
            at(2),
        )
        .await
        .unwrap();
        reconciled(
            &mut conn,
            &run_id,
            interrupted,
            &json!({"found": true, "jobID": "drsjob-1"}),
            at(3),
        )
        .await
        .unwrap();

        let open: Vec<_> = open_intents(&mut conn, &run_id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(open, vec![still_open]);
        let states: Vec<_> = for_step(&mut conn, &run_id, "recovery_job:db")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.id, e.state))
            .collect();
        assert_eq!(
            states,
            vec![
                (failed, EffectState::Failed),
                (interrupted, EffectState::Reconciled),
                (still_open, EffectState::Intent)
            ]
        );
        let failed = &for_run(&mut conn, &run_id).await.unwrap()[0];
        assert_eq!(
            failed.error.as_deref(),
            Some("ConflictException: server already in a job")
        );
        assert_eq!(failed.aws_request_id.as_deref(), Some("req-9"));
        assert!(
            for_step(&mut conn, &run_id, "preflight")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_same_idempotency_key_cannot_be_logged_twice() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        begin(&mut conn, &run_id, &start_recovery(&run_id, 1), at(1))
            .await
            .unwrap();
        let err = begin(&mut conn, &run_id, &start_recovery(&run_id, 1), at(2))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::DuplicateEffect { ref idempotency_key } if idempotency_key.ends_with("/recovery_job:db/1/1")),
            "{err:?}"
        );
        assert_eq!(for_run(&mut conn, &run_id).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_effect_must_belong_to_a_step_of_its_run() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let mut stray = start_recovery(&run_id, 1);
        stray.step_key = "no_such_step".to_owned();
        let err = begin(&mut conn, &run_id, &stray, at(1)).await.unwrap_err();
        assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
        let states: Vec<_> = EffectState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            states,
            ["intent", "done", "failed", "reconciled"],
            "the same list as the schema's CHECK"
        );
        let id = begin(&mut conn, &run_id, &start_recovery(&run_id, 2), at(1))
            .await
            .unwrap();
        let err = sqlx::query("UPDATE effects SET state = 'maybe' WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await
            .unwrap_err();
        assert_eq!(
            err.as_database_error().map(|e| e.kind()),
            Some(sqlx::error::ErrorKind::CheckViolation)
        );
    }
    #[tokio::test]
    async fn mentioning_finds_the_run_whose_response_names_a_job() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let id = begin(&mut conn, &run_id, &start_recovery(&run_id, 1), at(1))
            .await
            .unwrap();
        let open = begin(&mut conn, &run_id, &start_recovery(&run_id, 2), at(1))
            .await
            .unwrap();
        complete(
            &mut conn,
            &run_id,
            id,
            &json!({"id": "drsjob-0123456789abcdef0"}),
            None,
            at(2),
        )
        .await
        .unwrap();
        let found = mentioning(&mut conn, "drs:StartRecovery", "drsjob-0123456789abcdef0")
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].id, &found[0].run_id), (id, &run_id));
        assert_ne!(found[0].id, open);
        assert!(
            mentioning(&mut conn, "drs:StartRecovery", "drsjob-ffffffffffffffff0")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            mentioning(
                &mut conn,
                "drs:TerminateRecoveryInstances",
                "drsjob-0123456789abcdef0"
            )
            .await
            .unwrap()
            .is_empty()
        );
    }
}
