//! `db migrate-to`: copies every run of one store into another (SQLite to PostgreSQL, or any
//! pair), in one transaction of the target, then verifies each copied run's audit chain and
//! seal there.
//!
//! ```text
//!   source runs ──► refuse if a run ID is in the target (into a SQLite file, an effect ID
//!        │          too: there effect IDs are rowids; in PostgreSQL they are unique per run)
//!        │
//!        ▼  target.begin()   runs ► steps ► effects ► events ► leases ► claims ► seals
//!   rows copied column by column as stored (text stays text, numbers numbers)
//!        │  commit
//!        ▼
//!   events::verify on the target, per copied run (chain + seal)
//! ```
//!
//! Invariants:
//! - Nothing is copied unless everything can be: a run ID present on both sides refuses the
//!   whole copy before the first write.
//! - Rows are copied as stored, so hashes and seals computed over them still hold; only
//!   `events.seq` (a global insertion order, in no hash) is renumbered by the target.

use std::collections::HashSet;

use serde::Serialize;
use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::{AnyConnection, Column, Row};

use super::{Database, Engine, RunId, StoreError, engine, events};

/// The tables in foreign-key order, each with the order its rows are copied in and the
/// columns the target assigns itself.
const TABLES: &[(&str, &str, &[&str])] = &[
    ("runs", "created_at, id", &[]),
    ("steps", "run_id, seq", &[]),
    ("effects", "id", &[]),
    ("events", "seq", &["seq"]),
    ("leases", "run_id", &[]),
    ("claims", "resource", &[]),
    ("seals", "run_id", &[]),
];

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// Rows copied per table, in [`TABLES`] order.
    pub tables: Vec<(String, u64)>,
    /// The copied runs, each verified in the target.
    pub runs: Vec<RunId>,
}

/// Copies every run of `source` into `target` and verifies the copied chains there.
pub async fn copy_all(source: &Database, target: &Database) -> Result<CopyReport, StoreError> {
    let mut from = source
        .pool()
        .acquire()
        .await
        .map_err(|e| StoreError::query(e, format!("read {}", source.path().display())))?;
    let source_runs = ids(&mut from, "SELECT id FROM runs ORDER BY created_at, id").await?;
    let mut to = target
        .pool()
        .acquire()
        .await
        .map_err(|e| StoreError::query(e, format!("read {}", target.path().display())))?;
    let present: HashSet<String> = ids(&mut to, "SELECT id FROM runs")
        .await?
        .into_iter()
        .collect();
    let both: Vec<String> = source_runs
        .iter()
        .filter(|id| present.contains(*id))
        .cloned()
        .collect();
    if !both.is_empty() {
        return Err(StoreError::CopyConflict {
            what: "run",
            ids: both,
            target: target.path().to_path_buf(),
        });
    }
    // A SQLite file's effect IDs are its rowids, unique in the file; PostgreSQL's are unique
    // per run (migration 0019), so runs from several files with the same effect IDs fit.
    if target.engine() == Engine::Sqlite {
        let present_effects: HashSet<String> = ids(&mut to, "SELECT CAST(id AS TEXT) FROM effects")
            .await?
            .into_iter()
            .collect();
        let effects = ids(&mut from, "SELECT CAST(id AS TEXT) FROM effects").await?;
        let both: Vec<String> = effects
            .into_iter()
            .filter(|id| present_effects.contains(id))
            .collect();
        if !both.is_empty() {
            return Err(StoreError::CopyConflict {
                what: "effect",
                ids: both,
                target: target.path().to_path_buf(),
            });
        }
    }
    drop(to);

    let mut tx = target.begin().await?;
    let mut tables = Vec::new();
    for (table, order, assigned) in TABLES {
        let rows: Vec<AnyRow> = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .fetch_all(&mut *from)
            .await
            .map_err(|e| StoreError::query(e, format!("read table {table}")))?;
        for row in &rows {
            insert(&mut tx, table, assigned, row).await?;
        }
        tables.push((table.to_string(), rows.len() as u64));
    }
    if engine(&tx) == Engine::Postgres {
        // Explicit IDs do not move the identity sequence: the next effect must not reuse one.
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('effects', 'id'), \
             GREATEST((SELECT MAX(id) FROM effects), 1))",
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::query(e, "move the effect ID sequence".to_owned()))?;
    }
    tx.commit().await.map_err(|e| {
        StoreError::query(
            e,
            format!("commit the copy into {}", target.path().display()),
        )
    })?;

    let mut to = target
        .pool()
        .acquire()
        .await
        .map_err(|e| StoreError::query(e, format!("read {}", target.path().display())))?;
    let mut runs = Vec::new();
    for id in source_runs {
        let run_id: RunId = id.parse()?;
        if let Err(broken) = events::verify(&mut to, &run_id).await? {
            return Err(StoreError::CopyBroken {
                run_id,
                reason: broken.to_string(),
            });
        }
        runs.push(run_id);
    }
    Ok(CopyReport { tables, runs })
}

async fn ids(conn: &mut AnyConnection, sql: &str) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(sql)
        .fetch_all(conn)
        .await
        .map_err(|e| StoreError::query(e, format!("list ({sql})")))
}

/// Inserts `row` into `table`, every column but the `assigned` ones, with the value as stored.
async fn insert(
    conn: &mut AnyConnection,
    table: &str,
    assigned: &[&str],
    row: &AnyRow,
) -> Result<(), StoreError> {
    let columns: Vec<(usize, &str)> = row
        .columns()
        .iter()
        .map(|c| (c.ordinal(), c.name()))
        .filter(|(_, name)| !assigned.contains(name))
        .collect();
    let names: Vec<&str> = columns.iter().map(|(_, name)| *name).collect();
    // NULLs are literals, not parameters: sqlx 0.8.6's `Any` driver declares a NULL f64 as
    // float4 on PostgreSQL, which breaks the cached statement for the float8 values after it.
    let mut values = Vec::new();
    for (index, _) in &columns {
        let raw = row
            .try_get_raw(*index)
            .map_err(|e| StoreError::query(e, format!("read a row of table {table}")))?;
        if sqlx::ValueRef::is_null(&raw) {
            values.push(None);
        } else {
            values.push(Some(*index));
        }
    }
    let mut n = 0;
    let placeholders: Vec<String> = values
        .iter()
        .map(|value| match value {
            Some(_) => {
                n += 1;
                format!("${n}")
            }
            None => "NULL".to_owned(),
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    let decode = |e| StoreError::query(e, format!("read a row of table {table}"));
    for index in values.into_iter().flatten() {
        query = match row.column(index).type_info().kind() {
            AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
                query.bind(row.try_get::<i64, _>(index).map_err(decode)?)
            }
            AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => {
                query.bind(row.try_get::<f64, _>(index).map_err(decode)?)
            }
            _ => query.bind(row.try_get::<String, _>(index).map_err(decode)?),
        };
    }
    query
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::query(e, format!("copy a row into table {table}")))?;
    Ok(())
}
