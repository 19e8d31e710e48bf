//! The `events` table: the append-only audit trail, one hash chain per run (DESIGN section 6,
//! rule 6).
//!
//! ```text
//!   run_seq:      1               2               3
//!   prev_hash:  000…000  ┌──►  h1       ┌──►  h2
//!   hash:          h1 ───┘      h2 ──────┘      h3 ──► runs.last_event_hash (= final_hash at finish)
//!   h_n = sha256_hex(prev_hash_n || canonical_json(event_n))
//! ```
//!
//! The canonical JSON of an event is serde_json of the private `Canonical`: fields in a fixed
//! order (run_id, run_seq, at as RFC 3339 UTC with microseconds, kind, actor, step_key, data),
//! with the keys of every object in `data` sorted. It does not depend on how SQLite stores the row.
//!
//! What [`verify`] detects: an edited event (its hash no longer matches), a removed event (a gap
//! in `run_seq`, or fewer events than the run's head records), reordered events (`run_seq` is
//! hashed, so a moved event no longer matches), and a rewritten tail (the head kept in `runs`
//! differs). Someone who can write the file can recompute everything, head included; export
//! `final_hash` (the report prints it) to detect that too.
//!
//! What the events do not hold (the run row, steps, effects, the stored runbook) is covered by
//! the run's seal (`seal.rs`), which [`verify`] checks once the chain verifies.
//!
//! Credentials never go into `data`: identifiers, parameters and outcomes only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::AnyConnection;

use super::{JsonText, RunId, StoreError, TimeText, sha256_hex, stored_time, timestamp};

/// The `prev_hash` of a run's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Event {
    /// Global insertion order (all runs).
    pub seq: i64,
    pub run_id: RunId,
    /// Position in the run's chain, from 1.
    pub run_seq: i64,
    #[sqlx(try_from = "TimeText")]
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub step_key: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    #[sqlx(try_from = "JsonText")]
    pub data: Value,
}

/// A chain that verified: how many events, and the last hash (the genesis hash when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedChain {
    pub count: i64,
    pub final_hash: String,
}

/// Where and why a chain does not verify. `run_seq` is the first position that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("the audit trail of run {run_id} is broken at event {run_seq}: {reason}")]
pub struct ChainBreak {
    pub run_id: RunId,
    pub run_seq: i64,
    pub reason: BreakReason,
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakReason {
    #[error("it is missing (the next stored event is {next})")]
    Missing { next: i64 },
    #[error("its content does not match its hash: it was altered or moved")]
    Altered,
    #[error(
        "its prev_hash is not the previous event's hash: an event before it was altered, removed or moved"
    )]
    Unlinked,
    #[error(
        "the run records {recorded} events but {stored} are stored: events at the end were removed"
    )]
    Truncated { recorded: i64, stored: i64 },
    #[error(
        "the last event's hash differs from the one the run recorded: the end of the trail was rewritten"
    )]
    HeadMismatch,
    #[error("the final hash recorded when the run ended matches no event: the trail was rewritten")]
    FinalHashUnknown,
    /// The events verify, but what the report shows does not match the run's seal.
    #[error("{problem}")]
    Seal { problem: super::seal::SealBreak },
}

/// The hashed form of an event (see the module documentation); field order is the contract.
#[derive(Serialize)]
struct Canonical<'a> {
    run_id: &'a str,
    run_seq: i64,
    at: &'a str,
    kind: &'a str,
    actor: &'a str,
    step_key: Option<&'a str>,
    data: &'a Value,
}

/// `value` with the keys of every object in sorted order, whatever map type serde_json uses
/// (with its `preserve_order` feature, enabled by any crate in the build, maps keep insertion
/// order; inserting in sorted order makes both cases agree).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn chain_hash(prev_hash: &str, event: &Canonical<'_>) -> String {
    // Serialising a struct of strings, integers and a `Value` cannot fail.
    let json = serde_json::to_string(event).unwrap_or_default();
    sha256_hex(format!("{prev_hash}{json}"))
}

/// Appends an event to the run's chain, inside the caller's transaction (so a step transition
/// and its event commit together), and moves the run's head to it.
pub async fn append(
    conn: &mut AnyConnection,
    run_id: &RunId,
    at: DateTime<Utc>,
    kind: &str,
    actor: &str,
    step_key: Option<&str>,
    data: &Value,
) -> Result<Event, StoreError> {
    // The head in `runs`, not the last stored event: if the tail was removed, the next event
    // leaves a gap that `verify` reports instead of silently re-linking over it.
    let head: Option<(i64, Option<String>)> =
        sqlx::query_as(r#"SELECT event_count, last_event_hash FROM runs WHERE id = $1"#)
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|source| {
                StoreError::query(source, format!("read the audit head of run {run_id}"))
            })?;
    let (count, last_hash) = head.ok_or_else(|| StoreError::RunNotFound {
        run_id: run_id.clone(),
    })?;
    let run_seq = count + 1;
    let prev_hash = last_hash.unwrap_or_else(|| GENESIS_HASH.to_owned());
    let at_text = timestamp(at);
    let data = sorted(data);
    let hash = chain_hash(
        &prev_hash,
        &Canonical {
            run_id: run_id.as_str(),
            run_seq,
            at: &at_text,
            kind,
            actor,
            step_key,
            data: &data,
        },
    );

    let seq: i64 = sqlx::query_scalar(
        r#"
        INSERT INTO events (run_id, run_seq, at, kind, actor, step_key, prev_hash, hash, data)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        RETURNING seq
        "#,
    )
    .bind(run_id)
    .bind(run_seq)
    .bind(&at_text)
    .bind(kind)
    .bind(actor)
    .bind(step_key)
    .bind(&prev_hash)
    .bind(&hash)
    .bind(data.to_string())
    .fetch_one(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("append event {kind} to run {run_id}")))?;

    sqlx::query(r#"UPDATE runs SET event_count = $2, last_event_hash = $3 WHERE id = $1"#)
        .bind(run_id)
        .bind(run_seq)
        .bind(&hash)
        .execute(&mut *conn)
        .await
        .map_err(|source| {
            StoreError::query(source, format!("move the audit head of run {run_id}"))
        })?;
    super::seal::refresh(conn, run_id).await?;

    Ok(Event {
        seq,
        run_id: run_id.clone(),
        run_seq,
        at: stored_time(at),
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        step_key: step_key.map(str::to_owned),
        prev_hash,
        hash,
        data,
    })
}

/// The run's events in chain order.
pub async fn for_run(conn: &mut AnyConnection, run_id: &RunId) -> Result<Vec<Event>, StoreError> {
    sqlx::query_as(r#"SELECT * FROM events WHERE run_id = $1 ORDER BY run_seq"#)
        .bind(run_id)
        .fetch_all(conn)
        .await
        .map_err(|source| StoreError::query(source, format!("read the events of run {run_id}")))
}

/// Whether the run has an event of `kind` (e.g. `cancel_requested`, appended by another
/// process).
pub async fn has_kind(
    conn: &mut AnyConnection,
    run_id: &RunId,
    kind: &str,
) -> Result<bool, StoreError> {
    let found: i64 = sqlx::query_scalar(
        r#"SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE run_id = $1 AND kind = $2 LIMIT 1) e"#,
    )
    .bind(run_id)
    .bind(kind)
    .fetch_one(conn)
    .await
    .map_err(|source| StoreError::query(source, format!("read the events of run {run_id}")))?;
    Ok(found > 0)
}

/// The stored row as text, so verification hashes exactly what is stored (not a re-encoding
/// of a decoded timestamp).
#[derive(sqlx::FromRow)]
struct StoredEvent {
    run_seq: i64,
    at: String,
    kind: String,
    actor: String,
    step_key: Option<String>,
    prev_hash: String,
    hash: String,
    data: String,
}

/// Recomputes the run's chain. The outer `Result` is a database failure; the inner one is the
/// verdict: the verified chain, or the first event where it breaks.
pub async fn verify(
    conn: &mut AnyConnection,
    run_id: &RunId,
) -> Result<Result<VerifiedChain, ChainBreak>, StoreError> {
    let head: Option<(i64, Option<String>, Option<String>)> = sqlx::query_as(
        r#"SELECT event_count, last_event_hash, final_hash FROM runs WHERE id = $1"#,
    )
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("read the audit head of run {run_id}")))?;
    let (recorded, last_event_hash, final_hash) = head.ok_or_else(|| StoreError::RunNotFound {
        run_id: run_id.clone(),
    })?;
    let rows: Vec<StoredEvent> = sqlx::query_as(
        r#"SELECT run_seq, at, kind, actor, step_key, prev_hash, hash, data
           FROM events WHERE run_id = $1 ORDER BY run_seq"#,
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("read the events of run {run_id}")))?;
    let chain = check_chain(
        run_id,
        &rows,
        recorded,
        last_event_hash.as_deref(),
        final_hash.as_deref(),
    );
    // The chain first (its breaks name an event), then the rows it does not hold.
    let Ok(verified) = chain else {
        return Ok(chain);
    };
    Ok(match super::seal::check(conn, run_id).await? {
        Ok(()) => Ok(verified),
        Err(problem) => Err(ChainBreak {
            run_id: run_id.clone(),
            run_seq: verified.count,
            reason: BreakReason::Seal { problem },
        }),
    })
}

fn check_chain(
    run_id: &RunId,
    rows: &[StoredEvent],
    recorded: i64,
    last_event_hash: Option<&str>,
    final_hash: Option<&str>,
) -> Result<VerifiedChain, ChainBreak> {
    let broken = |run_seq: i64, reason: BreakReason| ChainBreak {
        run_id: run_id.clone(),
        run_seq,
        reason,
    };
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut final_hash_seen = final_hash.is_none();
    for (index, row) in rows.iter().enumerate() {
        let expected = index as i64 + 1;
        if row.run_seq != expected {
            return Err(broken(expected, BreakReason::Missing { next: row.run_seq }));
        }
        // Unparseable data cannot have been written by `append`: treat it as altered.
        let data = serde_json::from_str::<Value>(&row.data)
            .map_err(|_| broken(expected, BreakReason::Altered))?;
        let canonical = Canonical {
            run_id: run_id.as_str(),
            run_seq: row.run_seq,
            at: &row.at,
            kind: &row.kind,
            actor: &row.actor,
            step_key: row.step_key.as_deref(),
            data: &sorted(&data),
        };
        if chain_hash(&row.prev_hash, &canonical) != row.hash {
            return Err(broken(expected, BreakReason::Altered));
        }
        if row.prev_hash != prev_hash {
            return Err(broken(expected, BreakReason::Unlinked));
        }
        final_hash_seen |= final_hash == Some(row.hash.as_str());
        prev_hash = row.hash.clone();
    }
    let stored = rows.len() as i64;
    if stored != recorded {
        return Err(broken(
            stored + 1,
            BreakReason::Truncated { recorded, stored },
        ));
    }
    if stored > 0 && last_event_hash != Some(prev_hash.as_str()) {
        return Err(broken(stored, BreakReason::HeadMismatch));
    }
    if !final_hash_seen {
        return Err(broken(stored, BreakReason::FinalHashUnknown));
    }
    Ok(VerifiedChain {
        count: stored,
        final_hash: prev_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Database, Finish, RunStatus, runs};
    use super::*;
    use serde_json::json;

    /// A run with five events, committed.
    async fn run_with_events(db: &Database) -> (RunId, Vec<Event>) {
        let run_id = run_with_steps(db).await;
        let mut tx = db.begin().await.unwrap();
        let mut events = Vec::new();
        let script: [(&str, Option<&str>, Value); 5] = [
            (
                "run_started",
                None,
                json!({"operation": "failover", "yes": true}),
            ),
            ("step_status", Some("preflight"), json!({"to": "running"})),
            (
                "step_status",
                Some("preflight"),
                json!({"to": "succeeded", "checks": {"zeta": 1, "alpha": [{"b": 2, "a": 1}]}}),
            ),
            (
                "effect",
                Some("recovery_job:db"),
                json!({"operation": "drs:StartRecovery", "aws_request_id": "req-1"}),
            ),
            ("run_finished", None, json!({"status": "succeeded"})),
        ];
        for (i, (kind, step, data)) in script.into_iter().enumerate() {
            let actor = "driver:4f2a";
            events.push(
                append(&mut tx, &run_id, at(i as i64), kind, actor, step, &data)
                    .await
                    .unwrap(),
            );
        }
        tx.commit().await.unwrap();
        (run_id, events)
    }

    /// Plays the tamperer: someone with write access to the file, who drops the append-only
    /// triggers first.
    async fn tamper(db: &Database, statements: &[&str]) {
        let mut conn = db.pool().acquire().await.unwrap();
        let on_table = match db.engine() {
            super::super::Engine::Sqlite => "",
            super::super::Engine::Postgres => " ON events",
        };
        for trigger in ["events_no_update", "events_no_delete"] {
            sqlx::query(&format!("DROP TRIGGER IF EXISTS {trigger}{on_table}"))
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        for statement in statements {
            sqlx::query(statement).execute(&mut *conn).await.unwrap();
        }
    }

    async fn verdict(db: &Database, run_id: &RunId) -> Result<VerifiedChain, ChainBreak> {
        let mut conn = db.pool().acquire().await.unwrap();
        verify(&mut conn, run_id).await.unwrap()
    }

    #[tokio::test]
    async fn append_links_each_event_to_the_previous_one() {
        let (_dir, db) = temp_db().await;
        let (run_id, events) = run_with_events(&db).await;
        assert_eq!(events[0].prev_hash, GENESIS_HASH);
        for pair in events.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
            assert_eq!(pair[1].run_seq, pair[0].run_seq + 1);
        }
        let mut conn = db.pool().acquire().await.unwrap();
        assert_eq!(
            for_run(&mut conn, &run_id).await.unwrap(),
            events,
            "what append returns is what is stored"
        );
        let run = runs::get(&mut conn, &run_id).await.unwrap();
        assert_eq!(
            (run.event_count, run.last_event_hash.as_deref()),
            (5, Some(events[4].hash.as_str()))
        );
    }

    #[tokio::test]
    async fn the_hash_is_sha256_of_prev_hash_and_the_canonical_json() {
        let (_dir, db) = temp_db().await;
        let (run_id, events) = run_with_events(&db).await;
        let third = &events[2];
        // Written out by hand: field order fixed, object keys sorted at every depth.
        let canonical = format!(
            r#"{{"run_id":"{run_id}","run_seq":3,"at":"2025-03-01T12:00:02.123456Z","kind":"step_status","actor":"driver:4f2a","step_key":"preflight","data":{{"checks":{{"alpha":[{{"a":1,"b":2}}],"zeta":1}},"to":"succeeded"}}}}"#
        );
        assert_eq!(
            third.hash,
            sha256_hex(format!("{}{canonical}", events[1].hash))
        );
    }

    #[tokio::test]
    async fn an_intact_chain_verifies_and_reports_its_final_hash() {
        let (_dir, db) = temp_db().await;
        let (run_id, events) = run_with_events(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let outcome = Finish {
            status: RunStatus::Succeeded,
            rto_seconds: Some(60.0),
            rpo_seconds: None,
            error: None,
        };
        runs::finish(&mut conn, &run_id, &outcome, at(10))
            .await
            .unwrap();
        let verified = verify(&mut conn, &run_id).await.unwrap().unwrap();
        assert_eq!(
            verified,
            VerifiedChain {
                count: 5,
                final_hash: events[4].hash.clone()
            }
        );
        assert_eq!(
            runs::get(&mut conn, &run_id).await.unwrap().final_hash,
            Some(events[4].hash.clone())
        );
        // A run without events verifies as an empty chain.
        let empty = runs::insert(
            &mut conn,
            &new_run("empty", super::super::Operation::Drill),
            at(0),
        )
        .await
        .unwrap();
        let verified = verify(&mut conn, &empty.id).await.unwrap().unwrap();
        assert_eq!(
            verified,
            VerifiedChain {
                count: 0,
                final_hash: GENESIS_HASH.to_owned()
            }
        );
    }

    #[tokio::test]
    async fn the_triggers_refuse_updates_and_deletes() {
        let (_dir, db) = temp_db().await;
        let (run_id, _) = run_with_events(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let update = sqlx::query("UPDATE events SET actor = 'mallory'")
            .execute(&mut *conn)
            .await
            .unwrap_err();
        assert!(update.to_string().contains("append-only"), "{update}");
        let delete = sqlx::query("DELETE FROM events")
            .execute(&mut *conn)
            .await
            .unwrap_err();
        assert!(delete.to_string().contains("append-only"), "{delete}");
        assert!(verify(&mut conn, &run_id).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn an_edited_event_breaks_the_chain_at_that_event() {
        let (_dir, db) = temp_db().await;
        let (run_id, _) = run_with_events(&db).await;
        tamper(&db, &[r#"UPDATE events SET data = '{"operation":"drs:StartRecovery","aws_request_id":"req-FORGED"}' WHERE run_seq = 4"#]).await;
        let broken = verdict(&db, &run_id).await.unwrap_err();
        assert_eq!(
            (broken.run_seq, broken.reason.clone()),
            (4, BreakReason::Altered),
            "{broken}"
        );
        assert!(broken.to_string().contains("broken at event 4"), "{broken}");
    }

    #[tokio::test]
    async fn an_edited_timestamp_or_actor_breaks_the_chain_too() {
        let (_dir, db) = temp_db().await;
        let (run_id, _) = run_with_events(&db).await;
        tamper(
            &db,
            &["UPDATE events SET at = '2025-03-01T11:00:00.000000Z' WHERE run_seq = 2"],
        )
        .await;
        assert_eq!(verdict(&db, &run_id).await.unwrap_err().run_seq, 2);
        let (_dir, db) = temp_db().await;
        let (run_id, _) = run_with_events(&db).await;
        tamper(
            &db,
            &["UPDATE events SET actor = 'operator:mallory' WHERE run_seq = 5"],
        )
        .await;
        assert_eq!(verdict(&db, &run_id).await.unwrap_err().run_seq, 5);
    }

    #[tokio::test]
    async fn a_removed_event_is_a_gap() {
        let (_dir, db) = temp_db().await;
        let (run_id, _) = run_with_events(&db).await;
        tamper(&db, &["DELETE FROM events WHERE run_seq = 3"]).await;
        let broken = verdict(&db, &run_id).await.unwrap_err();
        assert_eq!(
            (broken.run_seq, broken.reason),
            (3, BreakReason::Missing { next: 4 })
        );
    }

    #[tokio::test]
    async fn a_removed_event_with_the_gap_closed_is_caught() {
        let (_dir, db) = temp_db().await;
        let (run_id, _) = run_with_events(&db).await;
        // Delete event 3 and renumber 4 and 5 to close the gap.
        tamper(
            &db,
            &[
                "DELETE FROM events WHERE run_seq = 3",
                "UPDATE events SET run_seq = run_seq - 1 WHERE run_seq > 3",
            ],
        )
        .await;
        let broken = verdict(&db, &run_id).await.unwrap_err();
        assert_eq!(
            (broken.run_seq, broken.reason),
            (3, BreakReason::Altered),
            "run_seq is hashed"
        );
    }

    #[tokio::test]
    async fn removing_the_last_events_is_detected_by_the_head() {
        let (_dir, db) = temp_db().await;
        let (run_id, _) = run_with_events(&db).await;
        tamper(&db, &["DELETE FROM events WHERE run_seq >= 4"]).await;
        let broken = verdict(&db, &run_id).await.unwrap_err();
        assert_eq!(
            (broken.run_seq, broken.reason),
            (
                4,
                BreakReason::Truncated {
                    recorded: 5,
                    stored: 3
                }
            )
        );
    }

    #[tokio::test]
    async fn swapped_events_break_the_chain_at_the_first_of_them() {
        let (_dir, db) = temp_db().await;
        let (run_id, _) = run_with_events(&db).await;
        // Swap the positions of events 2 and 3 (through a free number: run_seq is unique).
        tamper(
            &db,
            &[
                "UPDATE events SET run_seq = 100 WHERE run_seq = 2",
                "UPDATE events SET run_seq = 2 WHERE run_seq = 3",
                "UPDATE events SET run_seq = 3 WHERE run_seq = 100",
            ],
        )
        .await;
        let broken = verdict(&db, &run_id).await.unwrap_err();
        assert_eq!((broken.run_seq, broken.reason), (2, BreakReason::Altered));
    }

    /// The hash `event` would have at position `run_seq` after `prev_hash`.
    fn hash_at(run_id: &RunId, run_seq: i64, event: &Event, prev_hash: &str) -> String {
        let at = timestamp(event.at);
        let canonical = Canonical {
            run_id: run_id.as_str(),
            run_seq,
            at: &at,
            kind: &event.kind,
            actor: &event.actor,
            step_key: event.step_key.as_deref(),
            data: &event.data,
        };
        chain_hash(prev_hash, &canonical)
    }

    #[tokio::test]
    async fn a_reorder_with_recomputed_hashes_is_unlinked_at_the_next_event() {
        let (_dir, db) = temp_db().await;
        let (run_id, events) = run_with_events(&db).await;
        // A tamperer who knows the algorithm swaps events 2 and 3 and rehashes both for their
        // new places; event 4 still names the old hash of position 3.
        let h2 = hash_at(&run_id, 2, &events[2], &events[0].hash);
        let h3 = hash_at(&run_id, 3, &events[1], &h2);
        let statements = [
            "UPDATE events SET run_seq = 100 WHERE run_seq = 2".to_owned(),
            format!(
                "UPDATE events SET run_seq = 2, prev_hash = '{}', hash = '{h2}' WHERE run_seq = 3",
                events[0].hash
            ),
            format!(
                "UPDATE events SET run_seq = 3, prev_hash = '{h2}', hash = '{h3}' WHERE run_seq = 100"
            ),
        ];
        tamper(
            &db,
            &statements.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;
        let broken = verdict(&db, &run_id).await.unwrap_err();
        assert_eq!((broken.run_seq, broken.reason), (4, BreakReason::Unlinked));
    }

    #[tokio::test]
    async fn a_recomputed_tail_is_caught_by_the_head_in_runs() {
        let (_dir, db) = temp_db().await;
        let (run_id, events) = run_with_events(&db).await;
        // The tamperer rewrites event 5 and recomputes its hash correctly, but leaves the head.
        let forged_data = json!({"status": "failed"});
        let forged = Event {
            data: forged_data.clone(),
            ..events[4].clone()
        };
        let forged_hash = hash_at(&run_id, 5, &forged, &events[3].hash);
        let update = format!(
            r#"UPDATE events SET data = '{forged_data}', hash = '{forged_hash}' WHERE run_seq = 5"#
        );
        tamper(&db, &[&update]).await;
        let broken = verdict(&db, &run_id).await.unwrap_err();
        assert_eq!(
            (broken.run_seq, broken.reason),
            (5, BreakReason::HeadMismatch)
        );
    }

    #[tokio::test]
    async fn appending_after_a_removed_tail_leaves_the_gap_visible() {
        let (_dir, db) = temp_db().await;
        let (run_id, _) = run_with_events(&db).await;
        tamper(&db, &["DELETE FROM events WHERE run_seq = 5"]).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let next = append(
            &mut conn,
            &run_id,
            at(20),
            "note",
            "operator:bob",
            None,
            &json!({}),
        )
        .await
        .unwrap();
        assert_eq!(next.run_seq, 6);
        let broken = verify(&mut conn, &run_id).await.unwrap().unwrap_err();
        assert_eq!(
            (broken.run_seq, broken.reason),
            (5, BreakReason::Missing { next: 6 })
        );
    }

    #[tokio::test]
    async fn append_and_verify_of_an_unknown_run_say_so() {
        let (_dir, db) = temp_db().await;
        let mut conn = db.pool().acquire().await.unwrap();
        let unknown = RunId::generate();
        let err = append(&mut conn, &unknown, at(0), "note", "x", None, &json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::RunNotFound { .. }), "{err:?}");
        let err = verify(&mut conn, &unknown).await.unwrap_err();
        assert!(matches!(err, StoreError::RunNotFound { .. }), "{err:?}");
    }
}
