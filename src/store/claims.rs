//! The `claims` table: at most one active run per resource, so a second failover of the same
//! runbook or servers is refused (exit 4) and told who holds them (DESIGN section 6, rule 4).
//!
//! Resource names are the engine's to choose; stable, self-describing strings work best, e.g.
//! `"runbook:payments"` and `"drs:222222222222/us-west-2/s-1234567890abcdef0"`.
//!
//! Invariants:
//! - [`claim_all`] is all-or-nothing: it checks every resource before inserting any, inside the
//!   caller's transaction, so a refused claim leaves nothing behind.
//! - Claiming again what the same run already holds is a no-op (a resumed run re-claims).
//! - Claims outlive a crash: an interrupted run still holds its servers until it is resumed to
//!   its end, or cancelled, and [`release_run`] is called.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyConnection;

use super::{Engine, Operation, RunId, RunStatus, StoreError, TimeText, engine, timestamp};

/// A stored claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Claim {
    pub resource: String,
    pub run_id: RunId,
    #[sqlx(try_from = "TimeText")]
    pub claimed_at: DateTime<Utc>,
}

/// The run holding a resource another run wants, as the refusal tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ClaimHolder {
    pub run_id: RunId,
    #[sqlx(try_from = "TimeText")]
    pub claimed_at: DateTime<Utc>,
    pub host: String,
    pub operator: String,
    pub runbook_name: String,
    pub operation: Operation,
    pub status: RunStatus,
}

#[derive(sqlx::FromRow)]
struct Held {
    resource: String,
    #[sqlx(flatten)]
    holder: ClaimHolder,
}

/// Claims every resource for the run, or none: [`StoreError::ClaimConflict`] names the first
/// resource (in sorted order) that another run holds.
pub async fn claim_all<S: AsRef<str>>(
    conn: &mut AnyConnection,
    run_id: &RunId,
    resources: &[S],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // One JSON array parameter instead of one statement per resource: a 300-server runbook
    // claims in two statements.
    let names: Vec<&str> = resources.iter().map(AsRef::as_ref).collect();
    let names = serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned());
    let elements = json_array_rows(conn);
    let conflict: Option<Held> = sqlx::query_as(&format!(
        r#"
        SELECT c.resource, c.run_id, c.claimed_at, r.host, r.operator, r.runbook_name,
               r.operation, r.status
        FROM claims c JOIN runs r ON r.id = c.run_id
        WHERE c.resource IN (SELECT value FROM {elements}) AND c.run_id <> $2
        ORDER BY c.resource
        LIMIT 1
        "#,
    ))
    .bind(&names)
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("check the claims of run {run_id}")))?;
    if let Some(held) = conflict {
        return Err(StoreError::ClaimConflict {
            resource: held.resource,
            holder: Box::new(held.holder),
        });
    }
    sqlx::query(&format!(
        r#"
        INSERT INTO claims (resource, run_id, claimed_at)
        SELECT DISTINCT value, $2, $3 FROM {elements} WHERE true
        ON CONFLICT (resource) DO NOTHING
        "#,
    ))
    .bind(&names)
    .bind(run_id)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("record the claims of run {run_id}")))?;
    Ok(())
}

/// The elements of the JSON array of strings `$1`, as a table with one TEXT column `value`.
fn json_array_rows(conn: &AnyConnection) -> &'static str {
    match engine(conn) {
        Engine::Sqlite => "json_each($1)",
        Engine::Postgres => "json_array_elements_text(CAST($1 AS json))",
    }
}

/// Releases every claim of the run (when it ends); returns how many there were.
pub async fn release_run(conn: &mut AnyConnection, run_id: &RunId) -> Result<u64, StoreError> {
    let result = sqlx::query(r#"DELETE FROM claims WHERE run_id = $1"#)
        .bind(run_id)
        .execute(conn)
        .await
        .map_err(|source| {
            StoreError::query(source, format!("release the claims of run {run_id}"))
        })?;
    Ok(result.rows_affected())
}

/// The run's claims, by resource.
pub async fn for_run(conn: &mut AnyConnection, run_id: &RunId) -> Result<Vec<Claim>, StoreError> {
    sqlx::query_as(r#"SELECT * FROM claims WHERE run_id = $1 ORDER BY resource"#)
        .bind(run_id)
        .fetch_all(conn)
        .await
        .map_err(|source| StoreError::query(source, format!("list the claims of run {run_id}")))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Operation, runs};
    use super::*;

    const S1: &str = "drs:222222222222/us-west-2/s-1234567890abcdef0";
    const S2: &str = "drs:222222222222/us-west-2/s-234567890abcdef01";
    const S3: &str = "drs:222222222222/us-west-2/s-34567890abcdef012";

    fn resources(claims: Vec<Claim>) -> Vec<String> {
        claims.into_iter().map(|c| c.resource).collect()
    }

    #[tokio::test]
    async fn a_conflicting_claim_is_refused_whole_and_names_the_holder() {
        let (_dir, db) = temp_db().await;
        let first = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let second = runs::insert(&mut conn, &new_run("payments-app", Operation::Drill), at(0))
            .await
            .unwrap()
            .id;

        claim_all(&mut conn, &first, &["runbook:payments", S1, S2], at(10))
            .await
            .unwrap();
        let err = claim_all(
            &mut conn,
            &second,
            &["runbook:payments-app", S3, S2],
            at(20),
        )
        .await
        .unwrap_err();
        let StoreError::ClaimConflict {
            ref resource,
            ref holder,
        } = err
        else {
            panic!("expected ClaimConflict, got {err:?}");
        };
        assert_eq!(
            (resource.as_str(), &holder.run_id, holder.claimed_at),
            (S2, &first, at(10))
        );
        assert_eq!(
            (holder.host.as_str(), holder.status),
            ("ops-1", RunStatus::Pending)
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!(
                "is claimed by run {first} (failover of payments, pending, by alice on ops-1"
            )),
            "{message}"
        );

        assert!(
            for_run(&mut conn, &second).await.unwrap().is_empty(),
            "all or nothing: S3 was not claimed"
        );
        assert_eq!(
            resources(for_run(&mut conn, &first).await.unwrap()),
            vec![S1.to_owned(), S2.to_owned(), "runbook:payments".to_owned()]
        );
    }

    #[tokio::test]
    async fn reclaiming_is_a_no_op_and_release_frees_the_resources() {
        let (_dir, db) = temp_db().await;
        let first = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        claim_all(&mut conn, &first, &[S1, S2, S1], at(10))
            .await
            .unwrap();
        claim_all(&mut conn, &first, &[S1, S2], at(30))
            .await
            .unwrap();
        let claims = for_run(&mut conn, &first).await.unwrap();
        assert_eq!(claims.len(), 2);
        assert!(
            claims.iter().all(|c| c.claimed_at == at(10)),
            "a re-claim keeps the original time"
        );

        assert_eq!(release_run(&mut conn, &first).await.unwrap(), 2);
        let second = runs::insert(&mut conn, &new_run("payments", Operation::Failback), at(40))
            .await
            .unwrap()
            .id;
        claim_all(&mut conn, &second, &[S1], at(50)).await.unwrap();
        assert_eq!(
            resources(for_run(&mut conn, &second).await.unwrap()),
            vec![S1.to_owned()]
        );
        assert_eq!(release_run(&mut conn, &first).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_refused_claim_inside_a_transaction_leaves_the_transaction_usable() {
        let (_dir, db) = temp_db().await;
        let first = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        claim_all(&mut conn, &first, &[S1], at(10)).await.unwrap();
        drop(conn);

        let mut tx = db.begin().await.unwrap();
        let second = runs::insert(&mut tx, &new_run("payments", Operation::Failover), at(20))
            .await
            .unwrap()
            .id;
        let refused = claim_all(&mut tx, &second, &[S2, S1], at(20)).await;
        assert!(matches!(refused, Err(StoreError::ClaimConflict { .. })));
        claim_all(&mut tx, &second, &[S2], at(20)).await.unwrap();
        tx.commit().await.unwrap();
        let mut conn = db.pool().acquire().await.unwrap();
        assert_eq!(
            resources(for_run(&mut conn, &second).await.unwrap()),
            vec![S2.to_owned()]
        );
    }
}
