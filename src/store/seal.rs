//! The `seals` table: what the event chain does not hold, sealed (issue 18, DESIGN section 6
//! rule 6). A run's seal is a SHA-256 per row of what a report shows, and a digest over them:
//!
//! ```text
//!   rows = { "runs":            sha256(json_array(name, operation, mode, status, operator, host,
//!                                      times, rto, rpo, runbook path + sha256, event head, ...)),
//!            "steps:<key>":     sha256(json_array(seq, kind, status, attempts, approval, skip,
//!                                      error, input, output, ...)),
//!            "effects:<id>":    sha256(json_array(key, operation, state, request, response,
//!                                      request ID, ...)) }
//!   digest = sha256(VERSION || rows as JSON)      the run row holds the chain's head, so the
//!                                                 digest seals the chain at every transition
//! ```
//!
//! Invariants:
//! - Every store function that writes a covered row calls [`refresh`] last, inside the caller's
//!   transaction, so the seal always matches the committed rows (whatever order the writes of
//!   one transaction come in).

//! - The runbook text is not re-hashed at every write: the run row seals its `runbook_sha256`,
//!   and [`check`] compares the stored text with it.
//! - Runs created before migration 0018 have no seal and verify by their chain alone; a sealed
//!   run says `seal_version` in its `run_created` event, so a removed seal is itself detected.
//!
//! Like the chain, the seal detects edits by anyone who does not recompute it; someone who can
//! write the file and knows the algorithm can recompute everything (export the final hash).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::any::{AnyRow, AnyTypeInfoKind};

use super::{Engine, RunId, StoreError, engine, sha256_hex};

/// The version of the row encoding; a new encoding is a new version, old seals keep theirs.
pub const VERSION: i64 = 1;

/// Why what a report shows does not match the seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SealBreak {
    #[error(
        "the stored runbook text does not match its SHA-256 {recorded}: the runbook was edited in the database"
    )]
    RunbookAltered { recorded: String },
    #[error("table {table}, row {row} was altered after it was written")]
    RowAltered { table: String, row: String },
    #[error("table {table}, row {row} was removed")]
    RowRemoved { table: String, row: String },
    #[error("table {table}, row {row} was added outside drs-runbook")]
    RowAdded { table: String, row: String },
    #[error("the seal of the run (table seals) was altered")]
    SealAltered,
    #[error(
        "the seal of the run (table seals) was removed, though its run_created event records one"
    )]
    SealRemoved,
    #[error("the seal of the run has version {version}, which this drs-runbook does not know")]
    UnknownVersion { version: i64 },
}

// The columns of each covered row, in the order of its JSON array. Never reorder: a seal of
// version 1 hashes exactly this encoding.
const RUN_COLUMNS: &str = "id, runbook_name, operation, mode, status, clock, operator, host, \
    parent_run_id, created_at, started_at, finished_at, declared_at, rto_seconds, rpo_seconds, \
    runbook_path, runbook_sha256, event_count, last_event_hash, final_hash, error, options";
const STEP_COLUMNS: &str = "seq, key, kind, wave, depends_on, status, attempts, started_at, \
    finished_at, approved_by, approved_at, approval_comment, skip_reason, error, input, output";
const EFFECT_COLUMNS: &str = "id, step_key, idempotency_key, operation, account, region, \
    state, aws_request_id, created_at, completed_at, error, request, response";

/// The row hashes of the run as stored now; `None` when the run does not exist.
async fn rows(
    conn: &mut AnyConnection,
    run_id: &RunId,
) -> Result<Option<BTreeMap<String, String>>, StoreError> {
    let engine = engine(conn);
    let read = |source| StoreError::query(source, format!("read the rows of run {run_id} to seal"));
    let run = row_arrays(
        conn,
        engine,
        "id",
        RUN_COLUMNS,
        "FROM runs WHERE id = $1",
        run_id,
    )
    .await
    .map_err(read)?;
    let Some((_, run)) = run.into_iter().next() else {
        return Ok(None);
    };
    let mut rows = BTreeMap::new();
    rows.insert("runs".to_owned(), sha256_hex(run));
    let steps = row_arrays(
        conn,
        engine,
        "key",
        STEP_COLUMNS,
        "FROM steps WHERE run_id = $1 ORDER BY seq",
        run_id,
    )
    .await
    .map_err(read)?;
    for (key, json) in steps {
        rows.insert(format!("steps:{key}"), sha256_hex(json));
    }
    let effects = row_arrays(
        conn,
        engine,
        "CAST(id AS TEXT)",
        EFFECT_COLUMNS,
        "FROM effects WHERE run_id = $1 ORDER BY id",
        run_id,
    )
    .await
    .map_err(read)?;
    for (id, json) in effects {
        rows.insert(format!("effects:{id}"), sha256_hex(json));
    }
    Ok(Some(rows))
}

/// `(label, json_array(columns))` of each row `from` selects. SQLite builds the array itself;
/// on PostgreSQL the values are read as they are stored and the array is built by the
/// process's in-memory SQLite ([`ENCODER`]) from them, so that a row encodes to the same text
/// on both engines (number and string formatting included) and a run's seal survives
/// `db migrate-to`.
async fn row_arrays(
    conn: &mut AnyConnection,
    engine: Engine,
    label: &str,
    columns: &str,
    from: &str,
    run_id: &RunId,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    if engine == Engine::Sqlite {
        return sqlx::query_as(&format!(
            "SELECT {label} AS label, json_array({columns}) {from}"
        ))
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await;
    }
    let stored: Vec<AnyRow> = sqlx::query(&format!("SELECT {label} AS label, {columns} {from}"))
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await?;
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    let mut encoder = ENCODER.lock().await;
    let encoded = encode(&mut encoder, &stored).await;
    if encoded.is_err() {
        // A connection that failed once is not trusted again: the next seal opens a new one.
        *encoder = None;
    }
    encoded
}

/// The in-memory SQLite that encodes PostgreSQL rows as SQLite's `json_array` does, one per
/// process and opened on first use: a connection per seal would start a SQLite worker thread
/// for every write (the PostgreSQL benchmark spent most of its time there). Encoding is pure
/// (no table is read or written), so one connection serves every store of the process.
static ENCODER: tokio::sync::Mutex<Option<sqlx::SqliteConnection>> =
    tokio::sync::Mutex::const_new(None);

/// `(label, json_array(values))` of each of `rows` (label first, then the values), on the
/// encoder connection (opened here if there is none).
async fn encode(
    encoder: &mut Option<sqlx::SqliteConnection>,
    rows: &[AnyRow],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    use sqlx::{Column, Connection, Row};
    let connection = match encoder {
        Some(connection) => connection,
        None => encoder.insert(sqlx::SqliteConnection::connect("sqlite::memory:").await?),
    };
    let mut arrays = Vec::with_capacity(rows.len());
    for row in rows {
        let placeholders: Vec<String> = (1..row.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT json_array({})", placeholders.join(", "));
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for index in 1..row.len() {
            query = match row.column(index).type_info().kind() {
                AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
                    query.bind(row.try_get::<Option<i64>, _>(index)?)
                }
                AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => {
                    query.bind(row.try_get::<Option<f64>, _>(index)?)
                }
                _ => query.bind(row.try_get::<Option<String>, _>(index)?),
            };
        }
        let array = query.fetch_one(&mut *connection).await?;
        arrays.push((row.try_get::<String, _>(0)?, array));
    }
    Ok(arrays)
}

fn digest(version: i64, rows_json: &str) -> String {
    sha256_hex(format!("{version}{rows_json}"))
}

/// Rewrites the run's seal from its stored rows, inside the caller's transaction. A run is
/// sealed from its insertion (no event yet); a run that has events but no seal is either from
/// before migration 0018 (it stays unsealed, as its chain says) or had its seal removed (not
/// re-created here: `check` reports it). Two primary-key lookups decide, whatever the run's size.
pub async fn refresh(conn: &mut AnyConnection, run_id: &RunId) -> Result<(), StoreError> {
    let state: Option<(i64, i64)> = sqlx::query_as(
        r#"SELECT event_count, CASE WHEN EXISTS (SELECT 1 FROM seals WHERE run_id = $1)
                                    THEN 1 ELSE 0 END
           FROM runs WHERE id = $1"#,
    )
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("read the seal of run {run_id}")))?;
    match state {
        None => return Ok(()),
        Some((events, 0)) if events > 0 => return Ok(()),
        Some(_) => {}
    }
    let Some(rows) = rows(conn, run_id).await? else {
        return Ok(());
    };
    let rows_json = serde_json::to_string(&rows).unwrap_or_default();
    sqlx::query(
        r#"INSERT INTO seals (run_id, version, rows, digest) VALUES ($1, $2, $3, $4)
           ON CONFLICT (run_id) DO UPDATE SET version = $2, rows = $3, digest = $4"#,
    )
    .bind(run_id)
    .bind(VERSION)
    .bind(&rows_json)
    .bind(digest(VERSION, &rows_json))
    .execute(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("seal run {run_id}")))?;
    Ok(())
}

/// The table and row of a label (`steps:<key>`; the run row is named by the run's ID).
fn split(label: &str, run_id: &RunId) -> (String, String) {
    match label.split_once(':') {
        Some((table, row)) => (table.to_owned(), row.to_owned()),
        None => (label.to_owned(), run_id.to_string()),
    }
}

/// Compares what is stored with the run's seal and its runbook text with its SHA-256. The outer
/// `Result` is a database failure; the inner one is the verdict.
pub async fn check(
    conn: &mut AnyConnection,
    run_id: &RunId,
) -> Result<Result<(), SealBreak>, StoreError> {
    let read = |source| StoreError::query(source, format!("read the seal of run {run_id}"));
    let runbook: Option<(String, String)> =
        sqlx::query_as(r#"SELECT runbook_sha256, runbook_text FROM runs WHERE id = $1"#)
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(read)?;
    let (recorded, text) = runbook.ok_or_else(|| StoreError::RunNotFound {
        run_id: run_id.clone(),
    })?;
    if sha256_hex(&text) != recorded {
        return Ok(Err(SealBreak::RunbookAltered { recorded }));
    }
    let seal: Option<(i64, String, String)> =
        sqlx::query_as(r#"SELECT version, rows, digest FROM seals WHERE run_id = $1"#)
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(read)?;
    let Some((version, stored_json, stored_digest)) = seal else {
        let seal_version = match engine(conn) {
            Engine::Sqlite => "json_extract(data, '$.seal_version')",
            Engine::Postgres => "(CAST(data AS json) ->> 'seal_version')",
        };
        let promised: i64 = sqlx::query_scalar(&format!(
            r#"SELECT CASE WHEN EXISTS (SELECT 1 FROM events WHERE run_id = $1
                                        AND {seal_version} IS NOT NULL) THEN 1 ELSE 0 END"#,
        ))
        .bind(run_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(read)?;
        return Ok(if promised == 1 {
            Err(SealBreak::SealRemoved)
        } else {
            Ok(())
        });
    };
    if version != VERSION {
        return Ok(Err(SealBreak::UnknownVersion { version }));
    }
    let Ok(stored) = serde_json::from_str::<BTreeMap<String, String>>(&stored_json) else {
        return Ok(Err(SealBreak::SealAltered));
    };
    let current = rows(conn, run_id).await?.unwrap_or_default();
    for (label, hash) in &current {
        match stored.get(label) {
            None => {
                let (table, row) = split(label, run_id);
                return Ok(Err(SealBreak::RowAdded { table, row }));
            }
            Some(sealed) if sealed != hash => {
                let (table, row) = split(label, run_id);
                return Ok(Err(SealBreak::RowAltered { table, row }));
            }
            Some(_) => {}
        }
    }
    if let Some(label) = stored.keys().find(|l| !current.contains_key(*l)) {
        let (table, row) = split(label, run_id);
        return Ok(Err(SealBreak::RowRemoved { table, row }));
    }
    if digest(version, &stored_json) != stored_digest {
        return Ok(Err(SealBreak::SealAltered));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Database, NewEffect, effects, events, steps};
    use super::*;
    use serde_json::json;

    /// A sealed run: created with a `seal_version` event, one step succeeded, one effect done.
    async fn sealed_run(db: &Database) -> RunId {
        let run_id = run_with_steps(db).await;
        let mut tx = db.begin().await.unwrap();
        let data = json!({"seal_version": VERSION});
        events::append(&mut tx, &run_id, at(1), "run_created", "a", None, &data)
            .await
            .unwrap();
        let effect = NewEffect {
            step_key: "recovery_job:db".to_owned(),
            idempotency_key: format!("{run_id}/recovery_job:db/1/1"),
            operation: "drs:StartRecovery".to_owned(),
            account: "222222222222".to_owned(),
            region: "us-west-2".to_owned(),
            request: json!({"sourceServers": ["s-1"]}),
        };
        let id = effects::begin(&mut tx, &run_id, &effect, at(2))
            .await
            .unwrap();
        effects::complete(
            &mut tx,
            &run_id,
            id,
            &json!({"jobID": "drsjob-1"}),
            Some("req-1"),
            at(3),
        )
        .await
        .unwrap();
        let status = super::super::StepStatus::Succeeded;
        steps::set_status(&mut tx, &run_id, "preflight", status, None, at(4))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        run_id
    }

    async fn verdict(db: &Database, run_id: &RunId) -> Result<(), SealBreak> {
        let mut conn = db.pool().acquire().await.unwrap();
        check(&mut conn, run_id).await.unwrap()
    }

    async fn tamper(db: &Database, statement: &str) {
        let mut conn = db.pool().acquire().await.unwrap();
        sqlx::query(statement).execute(&mut *conn).await.unwrap();
    }

    #[tokio::test]
    async fn a_sealed_run_verifies_and_every_edit_names_its_table_and_row() {
        let cases = [
            ("UPDATE runs SET rto_seconds = 60", "runs", ""),
            ("UPDATE runs SET operator = 'mallory'", "runs", ""),
            ("UPDATE runs SET host = 'elsewhere'", "runs", ""),
            ("UPDATE runs SET mode = 'unplanned'", "runs", ""),
            (
                "UPDATE steps SET status = 'failed' WHERE key = 'preflight'",
                "steps",
                "preflight",
            ),
            (
                "UPDATE steps SET attempts = 7 WHERE key = 'preflight'",
                "steps",
                "preflight",
            ),
            (
                r#"UPDATE steps SET output = '{"x":1}' WHERE key = 'recovery_job:db'"#,
                "steps",
                "recovery_job:db",
            ),
            (
                "UPDATE effects SET aws_request_id = 'req-FORGED'",
                "effects",
                "1",
            ),
            (
                r#"UPDATE effects SET request = '{"sourceServers":[]}'"#,
                "effects",
                "1",
            ),
            (
                r#"UPDATE effects SET response = '{"jobID":"drsjob-2"}'"#,
                "effects",
                "1",
            ),
        ];
        for (statement, table, row) in cases {
            let (_dir, db) = temp_db().await;
            let run_id = sealed_run(&db).await;
            assert_eq!(verdict(&db, &run_id).await, Ok(()));
            tamper(&db, statement).await;
            let row = if row.is_empty() {
                run_id.to_string()
            } else {
                row.to_owned()
            };
            let expected = SealBreak::RowAltered {
                table: table.to_owned(),
                row,
            };
            assert_eq!(verdict(&db, &run_id).await, Err(expected), "{statement}");
        }
    }

    #[tokio::test]
    async fn an_edited_runbook_a_removed_row_and_a_removed_seal_are_detected() {
        let (_dir, db) = temp_db().await;
        let run_id = sealed_run(&db).await;
        tamper(&db, "UPDATE runs SET runbook_text = 'name = \"evil\"'").await;
        assert!(matches!(
            verdict(&db, &run_id).await,
            Err(SealBreak::RunbookAltered { .. })
        ));

        let (_dir, db) = temp_db().await;
        let run_id = sealed_run(&db).await;
        tamper(&db, "DELETE FROM effects").await;
        let removed = SealBreak::RowRemoved {
            table: "effects".to_owned(),
            row: "1".to_owned(),
        };
        assert_eq!(verdict(&db, &run_id).await, Err(removed));

        let (_dir, db) = temp_db().await;
        let run_id = sealed_run(&db).await;
        tamper(&db, "DELETE FROM seals").await;
        assert_eq!(verdict(&db, &run_id).await, Err(SealBreak::SealRemoved));

        let (_dir, db) = temp_db().await;
        let run_id = sealed_run(&db).await;
        tamper(
            &db,
            "UPDATE seals SET digest = replace(digest, substr(digest, 1, 1), 'x')",
        )
        .await;
        assert_eq!(verdict(&db, &run_id).await, Err(SealBreak::SealAltered));
    }

    #[tokio::test]
    async fn a_run_from_before_the_seal_verifies_by_its_chain_and_stays_unsealed() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        // As migration 0018 finds an old run: no seal row, events without `seal_version`.
        tamper(&db, "DELETE FROM seals").await;
        let mut tx = db.begin().await.unwrap();
        events::append(
            &mut tx,
            &run_id,
            at(1),
            "run_created",
            "a",
            None,
            &json!({}),
        )
        .await
        .unwrap();
        let status = super::super::StepStatus::Running;
        steps::set_status(&mut tx, &run_id, "preflight", status, None, at(2))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(verdict(&db, &run_id).await, Ok(()));
        let mut conn = db.pool().acquire().await.unwrap();
        let seals: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM seals")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(seals, 0, "a legacy run is not sealed halfway");
        assert!(events::verify(&mut conn, &run_id).await.unwrap().is_ok());
    }
}
