//! The `steps` table: a run's planned steps in order, each with its persisted state, attempts,
//! and what it has learned so far (`output`: job IDs, instance IDs, captured DNS records...).
//!
//! Invariants:
//! - `(run_id, seq)` is the plan order; `(run_id, key)` names a step (`"recovery_job:db"`).
//! - `depends_on` only names steps of the same run (checked by [`insert_all`]).
//! - `started_at` is the first time the step ran (retries keep it); `finished_at` is set by a
//!   final status (succeeded, failed, skipped, cancelled) and cleared by going back to
//!   pending, running or waiting_approval.
//! - [`approve`] only records the approval of a waiting step; the driver holding the run's lease
//!   makes the transition, so an operator's `approve` never races the engine's state machine.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::AnyConnection;

use super::{JsonText, RunId, StoreError, TimeText, text_enum, timestamp};

text_enum! {
    /// The persisted state of a step.
    pub enum StepStatus {
        Pending => "pending",
        Running => "running",
        WaitingApproval => "waiting_approval",
        Succeeded => "succeeded",
        Failed => "failed",
        Skipped => "skipped",
        Cancelled => "cancelled",
    }
}

impl StepStatus {
    /// Succeeded or skipped: dependants may go.
    pub fn is_done(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }

    /// Whether the step is done with, one way or another (sets `finished_at`).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }
}

/// A step to insert; it starts `pending` with no attempts and an empty output.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    pub key: String,
    /// A durable step kind name (`"dns_cutover"`): never rename one that has shipped.
    pub kind: String,
    pub wave: Option<String>,
    pub depends_on: Vec<String>,
    pub input: Value,
}

impl NewStep {
    /// A step with an empty (`{}`) input.
    pub fn new(key: &str, kind: &str, wave: Option<&str>, depends_on: &[&str]) -> NewStep {
        NewStep {
            key: key.to_owned(),
            kind: kind.to_owned(),
            wave: wave.map(str::to_owned),
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
            input: Value::Object(serde_json::Map::new()),
        }
    }
}

/// A stored step, every column.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Step {
    pub run_id: RunId,
    pub seq: i64,
    pub key: String,
    pub kind: String,
    pub wave: Option<String>,
    #[sqlx(try_from = "JsonText")]
    pub depends_on: Vec<String>,
    pub status: StepStatus,
    pub attempts: i64,
    #[sqlx(try_from = "TimeText")]
    pub started_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "TimeText")]
    pub finished_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    #[sqlx(try_from = "TimeText")]
    pub approved_at: Option<DateTime<Utc>>,
    pub approval_comment: Option<String>,
    pub skip_reason: Option<String>,
    pub error: Option<String>,
    #[sqlx(try_from = "JsonText")]
    pub input: Value,
    #[sqlx(try_from = "JsonText")]
    pub output: Value,
}

/// A step as every JSON document shows it: a run command's result, `show`, `status` and
/// `report --format json` carry this one object (DESIGN section 7: one shape per noun). The
/// error is the step's sentence with its hint, not the stored JSON.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StepObject {
    pub seq: i64,
    pub key: String,
    pub kind: String,
    pub wave: Option<String>,
    pub depends_on: Vec<String>,
    pub status: String,
    pub attempts: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approval_comment: Option<String>,
    pub skip_reason: Option<String>,
    pub error: Option<String>,
    /// What the step recorded (job IDs, instances, captured records...), as stored.
    pub output: Value,
}

impl From<&Step> for StepObject {
    fn from(step: &Step) -> Self {
        StepObject {
            seq: step.seq,
            key: step.key.clone(),
            kind: step.kind.clone(),
            wave: step.wave.clone(),
            depends_on: step.depends_on.clone(),
            status: step.status.as_str().to_owned(),
            attempts: step.attempts,
            started_at: step.started_at,
            finished_at: step.finished_at,
            duration_seconds: step
                .started_at
                .zip(step.finished_at)
                .map(|(a, b)| (b - a).num_milliseconds() as f64 / 1000.0),
            approved_by: step.approved_by.clone(),
            approved_at: step.approved_at,
            approval_comment: step.approval_comment.clone(),
            skip_reason: step.skip_reason.clone(),
            error: step.error.as_deref().map(error_sentence),
            output: step.output.clone(),
        }
    }
}

/// A step's error as one sentence and its hint (steps store a JSON `StepFailure` with
/// `message` and `hint`); any other text as it is.
pub fn error_sentence(error: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Failure {
        message: String,
        hint: String,
    }
    serde_json::from_str::<Failure>(error)
        .map(|f| format!("{} (hint: {})", f.message, f.hint))
        .unwrap_or_else(|_| error.to_owned())
}

/// Appends `steps` to the run in the given order (`seq` continues after existing steps).
pub async fn insert_all(
    conn: &mut AnyConnection,
    run_id: &RunId,
    steps: &[NewStep],
) -> Result<(), StoreError> {
    let existing: Vec<String> = sqlx::query_scalar(r#"SELECT key FROM steps WHERE run_id = $1"#)
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(|source| StoreError::query(source, format!("read the steps of run {run_id}")))?;
    check_dependencies(run_id, &existing, steps)?;
    let first_seq = existing.len() as i64 + 1;
    for (offset, step) in steps.iter().enumerate() {
        let depends_on =
            serde_json::to_string(&step.depends_on).unwrap_or_else(|_| "[]".to_owned());
        sqlx::query(
            r#"
            INSERT INTO steps (run_id, seq, key, kind, wave, depends_on, status, input)
            VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)
            "#,
        )
        .bind(run_id)
        .bind(first_seq + offset as i64)
        .bind(&step.key)
        .bind(&step.kind)
        .bind(&step.wave)
        .bind(depends_on)
        .bind(step.input.to_string())
        .execute(&mut *conn)
        .await
        .map_err(|source| {
            StoreError::query(source, format!("insert step {} of run {run_id}", step.key))
        })?;
    }
    super::seal::refresh(conn, run_id).await?;
    Ok(())
}

fn check_dependencies(
    run_id: &RunId,
    existing: &[String],
    steps: &[NewStep],
) -> Result<(), StoreError> {
    let known = |key: &str| existing.iter().any(|k| k == key) || steps.iter().any(|s| s.key == key);
    for step in steps {
        if let Some(missing) = step.depends_on.iter().find(|d| !known(d)) {
            return Err(StoreError::UnknownDependency {
                run_id: run_id.clone(),
                key: step.key.clone(),
                depends_on: missing.clone(),
            });
        }
    }
    Ok(())
}

/// The step `key` of the run.
pub async fn get(conn: &mut AnyConnection, run_id: &RunId, key: &str) -> Result<Step, StoreError> {
    sqlx::query_as(r#"SELECT * FROM steps WHERE run_id = $1 AND key = $2"#)
        .bind(run_id)
        .bind(key)
        .fetch_optional(conn)
        .await
        .map_err(|source| StoreError::query(source, format!("read step {key} of run {run_id}")))?
        .ok_or_else(|| not_found(run_id, key))
}

/// Every step of the run, in plan order.
pub async fn list(conn: &mut AnyConnection, run_id: &RunId) -> Result<Vec<Step>, StoreError> {
    sqlx::query_as(r#"SELECT * FROM steps WHERE run_id = $1 ORDER BY seq"#)
        .bind(run_id)
        .fetch_all(conn)
        .await
        .map_err(|source| StoreError::query(source, format!("list the steps of run {run_id}")))
}

/// Moves the step to `status` with `error` (`None` clears it); see the module invariants.
pub async fn set_status(
    conn: &mut AnyConnection,
    run_id: &RunId,
    key: &str,
    status: StepStatus,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let result = sqlx::query(
        r#"
        UPDATE steps
        SET status = $3,
            error = $4,
            started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, $5) ELSE started_at END,
            finished_at = CASE WHEN $6 THEN $5 ELSE NULL END
        WHERE run_id = $1 AND key = $2
        "#,
    )
    .bind(run_id)
    .bind(key)
    .bind(status)
    .bind(error)
    .bind(timestamp(now))
    .bind(status.is_final())
    .execute(&mut *conn)
    .await
    .map_err(|source| {
        StoreError::query(
            source,
            format!("set step {key} of run {run_id} to {status}"),
        )
    })?;
    super::seal::refresh(conn, run_id).await?;
    affected(result.rows_affected(), run_id, key)
}

/// Replaces what the step has learned so far (the engine rewrites it as it progresses).
pub async fn set_output(
    conn: &mut AnyConnection,
    run_id: &RunId,
    key: &str,
    output: &Value,
) -> Result<(), StoreError> {
    let result = sqlx::query(r#"UPDATE steps SET output = $3 WHERE run_id = $1 AND key = $2"#)
        .bind(run_id)
        .bind(key)
        .bind(output.to_string())
        .execute(&mut *conn)
        .await
        .map_err(|source| {
            StoreError::query(
                source,
                format!("record the output of step {key} of run {run_id}"),
            )
        })?;
    super::seal::refresh(conn, run_id).await?;
    affected(result.rows_affected(), run_id, key)
}

/// Counts one more attempt of the step and returns the new count (1 for the first attempt).
pub async fn increment_attempts(
    conn: &mut AnyConnection,
    run_id: &RunId,
    key: &str,
) -> Result<i64, StoreError> {
    let attempts = sqlx::query_scalar(r#"UPDATE steps SET attempts = attempts + 1 WHERE run_id = $1 AND key = $2 RETURNING attempts"#)
        .bind(run_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|source| StoreError::query(source, format!("count an attempt of step {key} of run {run_id}")))?
        .ok_or_else(|| not_found(run_id, key))?;
    super::seal::refresh(conn, run_id).await?;
    Ok(attempts)
}

/// Records that `by` approved the step, which must be waiting for approval.
pub async fn approve(
    conn: &mut AnyConnection,
    run_id: &RunId,
    key: &str,
    by: &str,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let result = sqlx::query(
        r#"
        UPDATE steps SET approved_by = $3, approval_comment = $4, approved_at = $5
        WHERE run_id = $1 AND key = $2 AND status = 'waiting_approval'
        "#,
    )
    .bind(run_id)
    .bind(key)
    .bind(by)
    .bind(comment)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("approve step {key} of run {run_id}")))?;
    if result.rows_affected() == 1 {
        return super::seal::refresh(conn, run_id).await;
    }
    let status = get(conn, run_id, key).await?.status;
    Err(StoreError::NotWaitingApproval {
        run_id: run_id.clone(),
        key: key.to_owned(),
        status,
    })
}

/// Skips the step on an operator's word, with the reason. A running or succeeded step cannot be
/// skipped: the first may have a call in flight, the second has nothing left to skip.
pub async fn skip(
    conn: &mut AnyConnection,
    run_id: &RunId,
    key: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let result = sqlx::query(
        r#"
        UPDATE steps SET status = 'skipped', skip_reason = $3, finished_at = $4
        WHERE run_id = $1 AND key = $2
          AND status IN ('pending', 'waiting_approval', 'failed', 'cancelled')
        "#,
    )
    .bind(run_id)
    .bind(key)
    .bind(reason)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("skip step {key} of run {run_id}")))?;
    if result.rows_affected() == 1 {
        return super::seal::refresh(conn, run_id).await;
    }
    let status = get(conn, run_id, key).await?.status;
    Err(StoreError::NotSkippable {
        run_id: run_id.clone(),
        key: key.to_owned(),
        status,
    })
}

fn affected(rows: u64, run_id: &RunId, key: &str) -> Result<(), StoreError> {
    if rows == 0 {
        Err(not_found(run_id, key))
    } else {
        Ok(())
    }
}

fn not_found(run_id: &RunId, key: &str) -> StoreError {
    StoreError::StepNotFound {
        run_id: run_id.clone(),
        key: key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn insert_all_then_list_and_get_in_plan_order() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let mut launch = NewStep::new(
            "launch:db",
            "launch",
            Some("db"),
            &["recovery_job:db", "preflight"],
        );
        launch.input = json!({"servers": ["s-1234567890abcdef0"]});
        insert_all(&mut conn, &run_id, &[launch.clone()])
            .await
            .unwrap();

        let steps = list(&mut conn, &run_id).await.unwrap();
        let keys: Vec<_> = steps.iter().map(|s| (s.seq, s.key.as_str())).collect();
        assert_eq!(
            keys,
            vec![(1, "preflight"), (2, "recovery_job:db"), (3, "launch:db")]
        );
        let stored = get(&mut conn, &run_id, "launch:db").await.unwrap();
        assert_eq!(stored, steps[2]);
        assert_eq!(
            (stored.kind.as_str(), stored.wave.as_deref()),
            ("launch", Some("db"))
        );
        assert_eq!(stored.depends_on, launch.depends_on);
        assert_eq!(stored.input, launch.input);
        assert_eq!(
            (stored.status, stored.attempts, stored.output.clone()),
            (StepStatus::Pending, 0, json!({}))
        );
    }

    #[tokio::test]
    async fn duplicate_keys_and_unknown_dependencies_are_refused() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let duplicate = NewStep::new("preflight", "preflight", None, &[]);
        assert!(insert_all(&mut conn, &run_id, &[duplicate]).await.is_err());
        let dangling = NewStep::new("dns_cutover", "dns_cutover", None, &["lb_switch:app"]);
        let err = insert_all(&mut conn, &run_id, &[dangling])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::UnknownDependency { ref depends_on, .. } if depends_on == "lb_switch:app"),
            "{err:?}"
        );
        let err = get(&mut conn, &run_id, "nope").await.unwrap_err();
        assert!(matches!(err, StoreError::StepNotFound { .. }), "{err:?}");
        assert_eq!(list(&mut conn, &run_id).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn status_check_rejects_unknown_values_and_accepts_every_known_one() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        for status in StepStatus::ALL {
            set_status(&mut conn, &run_id, "preflight", *status, None, at(1))
                .await
                .unwrap();
            assert_eq!(
                get(&mut conn, &run_id, "preflight").await.unwrap().status,
                *status
            );
        }
        let err = sqlx::query("UPDATE steps SET status = 'exploded' WHERE run_id = $1")
            .bind(&run_id)
            .execute(&mut *conn)
            .await
            .unwrap_err();
        assert_eq!(
            err.as_database_error().map(|e| e.kind()),
            Some(sqlx::error::ErrorKind::CheckViolation)
        );
    }

    #[tokio::test]
    async fn set_status_tracks_start_finish_and_error_across_a_retry() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let key = "recovery_job:db";
        assert_eq!(
            increment_attempts(&mut conn, &run_id, key).await.unwrap(),
            1
        );
        set_status(&mut conn, &run_id, key, StepStatus::Running, None, at(10))
            .await
            .unwrap();
        set_status(
            &mut conn,
            &run_id,
            key,
            StepStatus::Failed,
            Some("ThrottlingException"),
            at(20),
        )
        .await
        .unwrap();
        let failed = get(&mut conn, &run_id, key).await.unwrap();
        assert_eq!(
            (failed.started_at, failed.finished_at),
            (Some(at(10)), Some(at(20)))
        );
        assert_eq!(failed.error.as_deref(), Some("ThrottlingException"));

        assert_eq!(
            increment_attempts(&mut conn, &run_id, key).await.unwrap(),
            2
        );
        set_status(&mut conn, &run_id, key, StepStatus::Running, None, at(30))
            .await
            .unwrap();
        let retried = get(&mut conn, &run_id, key).await.unwrap();
        assert_eq!(
            (retried.started_at, retried.finished_at, retried.error),
            (Some(at(10)), None, None)
        );
        assert_eq!(retried.attempts, 2);

        let output = json!({"job_id": "drsjob-0123456789abcdef0", "servers": {"s-1": "i-1"}});
        set_output(&mut conn, &run_id, key, &output).await.unwrap();
        set_status(&mut conn, &run_id, key, StepStatus::Succeeded, None, at(40))
            .await
            .unwrap();
        let done = get(&mut conn, &run_id, key).await.unwrap();
        assert_eq!(
            (done.status, done.finished_at, done.output),
            (StepStatus::Succeeded, Some(at(40)), output)
        );

        let missing = set_output(&mut conn, &run_id, "nope", &json!({}))
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::StepNotFound { .. }));
        let missing = increment_attempts(&mut conn, &run_id, "nope")
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::StepNotFound { .. }));
        let missing = set_status(&mut conn, &run_id, "nope", StepStatus::Running, None, at(0))
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::StepNotFound { .. }));
    }

    #[tokio::test]
    async fn approve_records_who_and_why_only_for_a_waiting_step() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let err = approve(&mut conn, &run_id, "preflight", "bob", None, at(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NotWaitingApproval {
                    status: StepStatus::Pending,
                    ..
                }
            ),
            "{err:?}"
        );

        set_status(
            &mut conn,
            &run_id,
            "preflight",
            StepStatus::WaitingApproval,
            None,
            at(2),
        )
        .await
        .unwrap();
        approve(
            &mut conn,
            &run_id,
            "preflight",
            "bob",
            Some("go, change CHG-42"),
            at(3),
        )
        .await
        .unwrap();
        let step = get(&mut conn, &run_id, "preflight").await.unwrap();
        assert_eq!(step.approved_by.as_deref(), Some("bob"));
        assert_eq!(step.approval_comment.as_deref(), Some("go, change CHG-42"));
        assert_eq!(step.approved_at, Some(at(3)));
        assert_eq!(
            step.status,
            StepStatus::WaitingApproval,
            "the driver makes the transition"
        );

        let err = approve(&mut conn, &run_id, "nope", "bob", None, at(4))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::StepNotFound { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn skip_records_the_reason_and_refuses_running_or_succeeded_steps() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        set_status(
            &mut conn,
            &run_id,
            "preflight",
            StepStatus::Failed,
            Some("lag"),
            at(1),
        )
        .await
        .unwrap();
        skip(
            &mut conn,
            &run_id,
            "preflight",
            "lag accepted by the incident commander",
            at(2),
        )
        .await
        .unwrap();
        let step = get(&mut conn, &run_id, "preflight").await.unwrap();
        assert_eq!(
            (step.status, step.finished_at),
            (StepStatus::Skipped, Some(at(2)))
        );
        assert_eq!(
            step.skip_reason.as_deref(),
            Some("lag accepted by the incident commander")
        );

        for status in [StepStatus::Running, StepStatus::Succeeded] {
            set_status(&mut conn, &run_id, "recovery_job:db", status, None, at(3))
                .await
                .unwrap();
            let err = skip(&mut conn, &run_id, "recovery_job:db", "no", at(4))
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::NotSkippable { status: s, .. } if s == status),
                "{err:?}"
            );
        }
    }
}
