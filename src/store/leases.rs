//! The `leases` table: one driver per run (DESIGN section 6, rule 4).
//!
//! ```text
//!   acquire ──► Lease{fence: n} ──► heartbeat every ttl/3 ──► release
//!      │  held and not expired by another owner: LeaseHeld (exit 4, says who)
//!      └─ expired (its driver died): taken over, fence n+1, `took_over_from` says from whom
//!   every engine write: check_fence in the same transaction ──► LostLease if fence moved on
//! ```
//!
//! Invariants:
//! - `fence` grows by one on every acquisition and never goes back: a released lease keeps its
//!   row, so a stale driver's fence can never match again.
//! - Safety comes from the fence, not from the clock: [`check_fence`] inside the engine's
//!   write transaction (`BEGIN IMMEDIATE`) means no take-over can slip in between the check and
//!   the commit. Expiry only decides when another driver may take over; a driver whose lease
//!   expired but was not taken over may carry on.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::AnyConnection;

use super::{RunId, StoreError, TimeText, stored_time, timestamp};

/// A lease row as stored: who drives (or drove) the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LeaseHolder {
    pub run_id: RunId,
    /// A random ID of the driver process.
    pub owner: String,
    pub host: String,
    pub pid: i64,
    #[sqlx(try_from = "TimeText")]
    pub acquired_at: DateTime<Utc>,
    #[sqlx(try_from = "TimeText")]
    pub heartbeat_at: DateTime<Utc>,
    #[sqlx(try_from = "TimeText")]
    pub expires_at: DateTime<Utc>,
    #[sqlx(try_from = "TimeText")]
    pub released_at: Option<DateTime<Utc>>,
    pub fence: i64,
}

/// A lease this process holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub run_id: RunId,
    pub owner: String,
    pub host: String,
    pub pid: i64,
    pub fence: i64,
    pub acquired_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ttl: Duration,
    /// The driver whose expired lease this one took over (log it: DESIGN section 6, rule 4).
    pub took_over_from: Option<LeaseHolder>,
}

/// Takes the run's lease for `owner` until `now + ttl`. Refused with [`StoreError::LeaseHeld`]
/// while another owner's lease is unexpired; an expired one is taken over.
pub async fn acquire(
    conn: &mut AnyConnection,
    run_id: &RunId,
    owner: &str,
    host: &str,
    pid: u32,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Lease, StoreError> {
    let expires_at = expiry(now, ttl);
    let previous = current(conn, run_id).await?;
    let took_over_from = match &previous {
        Some(holder) if is_live(holder, now) && holder.owner != owner => {
            return Err(StoreError::LeaseHeld {
                holder: Box::new(holder.clone()),
            });
        }
        // Expired and never released: its driver died or hung. Released or our own: no story.
        Some(holder) if holder.released_at.is_none() && holder.owner != owner => {
            Some(holder.clone())
        }
        _ => None,
    };
    // Compare-and-set on the fence read above, so two concurrent acquirers cannot both win.
    let fence: Option<i64> = sqlx::query_scalar(
        r#"
        INSERT INTO leases (run_id, owner, host, pid, acquired_at, heartbeat_at, expires_at,
                            released_at, fence)
        VALUES ($1, $2, $3, $4, $5, $5, $6, NULL, 1)
        ON CONFLICT (run_id) DO UPDATE
        SET owner = excluded.owner, host = excluded.host, pid = excluded.pid,
            acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at,
            expires_at = excluded.expires_at, released_at = NULL, fence = leases.fence + 1
        WHERE leases.fence = $7
        RETURNING fence
        "#,
    )
    .bind(run_id)
    .bind(owner)
    .bind(host)
    .bind(i64::from(pid))
    .bind(timestamp(now))
    .bind(timestamp(expires_at))
    .bind(previous.as_ref().map_or(0, |p| p.fence))
    .fetch_optional(&mut *conn)
    .await
    .map_err(|source| StoreError::query(source, format!("acquire the lease on run {run_id}")))?;
    let Some(fence) = fence else {
        // Someone acquired it between our read and our write: they hold it now.
        return match current(conn, run_id).await? {
            Some(holder) => Err(StoreError::LeaseHeld {
                holder: Box::new(holder),
            }),
            None => Err(StoreError::RunNotFound {
                run_id: run_id.clone(),
            }),
        };
    };
    Ok(Lease {
        run_id: run_id.clone(),
        owner: owner.to_owned(),
        host: host.to_owned(),
        pid: i64::from(pid),
        fence,
        acquired_at: stored_time(now),
        heartbeat_at: stored_time(now),
        expires_at: stored_time(expires_at),
        ttl,
        took_over_from,
    })
}

/// Extends the lease to `now + ttl`. Fails with [`StoreError::LostLease`] if another driver has
/// taken it over (or it was released): this driver must stop.
pub async fn heartbeat(
    conn: &mut AnyConnection,
    lease: &mut Lease,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let expires_at = expiry(now, lease.ttl);
    let result = sqlx::query(
        r#"
        UPDATE leases SET heartbeat_at = $4, expires_at = $5
        WHERE run_id = $1 AND owner = $2 AND fence = $3 AND released_at IS NULL
        "#,
    )
    .bind(&lease.run_id)
    .bind(&lease.owner)
    .bind(lease.fence)
    .bind(timestamp(now))
    .bind(timestamp(expires_at))
    .execute(&mut *conn)
    .await
    .map_err(|source| {
        StoreError::query(source, format!("renew the lease on run {}", lease.run_id))
    })?;
    if result.rows_affected() == 0 {
        return Err(lost(conn, lease).await);
    }
    lease.heartbeat_at = stored_time(now);
    lease.expires_at = stored_time(expires_at);
    Ok(())
}

/// Confirms that `lease` is still the run's current lease. Call it in every engine write
/// transaction, before the writes.
pub async fn check_fence(conn: &mut AnyConnection, lease: &Lease) -> Result<(), StoreError> {
    match current(conn, &lease.run_id).await? {
        Some(holder) if holds(&holder, lease) => Ok(()),
        holder => Err(StoreError::LostLease {
            run_id: lease.run_id.clone(),
            fence: lease.fence,
            holder: holder.map(Box::new),
        }),
    }
}

/// Gives the lease up (the row stays, keeping the fence). Fails with
/// [`StoreError::LostLease`] if it was no longer ours.
pub async fn release(
    conn: &mut AnyConnection,
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let result = sqlx::query(
        r#"
        UPDATE leases SET released_at = $4, expires_at = $4
        WHERE run_id = $1 AND owner = $2 AND fence = $3 AND released_at IS NULL
        "#,
    )
    .bind(&lease.run_id)
    .bind(&lease.owner)
    .bind(lease.fence)
    .bind(timestamp(now))
    .execute(&mut *conn)
    .await
    .map_err(|source| {
        StoreError::query(source, format!("release the lease on run {}", lease.run_id))
    })?;
    if result.rows_affected() == 0 {
        return Err(lost(conn, lease).await);
    }
    Ok(())
}

/// The run's lease row, if it ever had one (for `status`: who drives it, until when).
pub async fn current(
    conn: &mut AnyConnection,
    run_id: &RunId,
) -> Result<Option<LeaseHolder>, StoreError> {
    sqlx::query_as(r#"SELECT * FROM leases WHERE run_id = $1"#)
        .bind(run_id)
        .fetch_optional(conn)
        .await
        .map_err(|source| StoreError::query(source, format!("read the lease on run {run_id}")))
}

fn is_live(holder: &LeaseHolder, now: DateTime<Utc>) -> bool {
    holder.released_at.is_none() && holder.expires_at > now
}

fn holds(holder: &LeaseHolder, lease: &Lease) -> bool {
    holder.owner == lease.owner && holder.fence == lease.fence && holder.released_at.is_none()
}

/// `now + ttl`, capped at the last instant of year 9999 so that the stored text keeps its fixed
/// width (and its order): a TTL that large means "never expires" anyway.
fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    let end_of_time = DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999999Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .map_or(end_of_time, |expiry| expiry.min(end_of_time))
}

async fn lost(conn: &mut AnyConnection, lease: &Lease) -> StoreError {
    match current(conn, &lease.run_id).await {
        Ok(holder) => StoreError::LostLease {
            run_id: lease.run_id.clone(),
            fence: lease.fence,
            holder: holder.map(Box::new),
        },
        Err(error) => error,
    }
}

/// Ends a lease whose driver is known to be dead (its process is gone from this host), so
/// that [`acquire`] may take it over at once instead of waiting for the expiry. Compare-and-set
/// on owner and fence: a lease renewed or taken over meanwhile is left alone. Returns whether
/// the lease was ended.
pub async fn expire_abandoned(
    conn: &mut AnyConnection,
    holder: &LeaseHolder,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        r#"
        UPDATE leases SET expires_at = $4
        WHERE run_id = $1 AND owner = $2 AND fence = $3 AND released_at IS NULL
        "#,
    )
    .bind(&holder.run_id)
    .bind(&holder.owner)
    .bind(holder.fence)
    .bind(timestamp(now - TimeDelta::milliseconds(1)))
    .execute(conn)
    .await
    .map_err(|source| {
        StoreError::query(
            source,
            format!("end the abandoned lease on run {}", holder.run_id),
        )
    })?;
    Ok(result.rows_affected() == 1)
}

/// Who holds the lease now, for [`StoreError::LostLease`]'s message.
pub(crate) fn describe_current(holder: &Option<Box<LeaseHolder>>) -> String {
    match holder {
        Some(h) if h.released_at.is_some() => format!("it was released (fence {})", h.fence),
        Some(h) => format!(
            "{} on {} (pid {}) holds it with fence {}",
            h.owner, h.host, h.pid, h.fence
        ),
        None => "the run has no lease".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn acquire_then_a_second_driver_is_refused_and_told_who_holds_it() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let lease = acquire(&mut conn, &run_id, "driver-a", "ops-1", 4242, TTL, at(0))
            .await
            .unwrap();
        assert_eq!((lease.fence, lease.took_over_from.clone()), (1, None));
        assert_eq!(lease.expires_at, at(30));

        let err = acquire(&mut conn, &run_id, "driver-b", "ops-2", 777, TTL, at(10))
            .await
            .unwrap_err();
        let StoreError::LeaseHeld { ref holder } = err else {
            panic!("expected LeaseHeld, got {err:?}")
        };
        assert_eq!(
            (holder.owner.as_str(), holder.host.as_str(), holder.pid),
            ("driver-a", "ops-1", 4242)
        );
        assert_eq!((holder.acquired_at, holder.expires_at), (at(0), at(30)));
        let message = err.to_string();
        assert!(
            message.contains("driven by driver-a on ops-1 (pid 4242)"),
            "{message}"
        );
        check_fence(&mut conn, &lease).await.unwrap();
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_with_a_higher_fence_and_the_stale_driver_is_fenced_out()
    {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let mut stale = acquire(&mut conn, &run_id, "driver-a", "ops-1", 4242, TTL, at(0))
            .await
            .unwrap();
        heartbeat(&mut conn, &mut stale, at(20)).await.unwrap();
        assert_eq!(stale.expires_at, at(50));
        let err = acquire(&mut conn, &run_id, "driver-b", "ops-2", 777, TTL, at(49))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::LeaseHeld { .. }),
            "the heartbeat extended it: {err:?}"
        );

        let fresh = acquire(&mut conn, &run_id, "driver-b", "ops-2", 777, TTL, at(50))
            .await
            .unwrap();
        assert_eq!(fresh.fence, 2);
        let previous = fresh
            .took_over_from
            .clone()
            .expect("a take-over says from whom");
        assert_eq!(
            (
                previous.owner.as_str(),
                previous.fence,
                previous.heartbeat_at
            ),
            ("driver-a", 1, at(20))
        );

        let err = heartbeat(&mut conn, &mut stale, at(51)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::LostLease { fence: 1, holder: Some(ref h), .. } if h.owner == "driver-b" && h.fence == 2),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("driver-b on ops-2 (pid 777) holds it with fence 2"),
            "{err}"
        );
        assert!(matches!(
            check_fence(&mut conn, &stale).await,
            Err(StoreError::LostLease { .. })
        ));
        assert!(matches!(
            release(&mut conn, &stale, at(52)).await,
            Err(StoreError::LostLease { .. })
        ));
        check_fence(&mut conn, &fresh).await.unwrap();
    }

    #[tokio::test]
    async fn release_keeps_the_fence_growing_and_lets_the_next_driver_in_at_once() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let first = acquire(&mut conn, &run_id, "driver-a", "ops-1", 1, TTL, at(0))
            .await
            .unwrap();
        release(&mut conn, &first, at(5)).await.unwrap();
        let err = check_fence(&mut conn, &first).await.unwrap_err();
        assert!(err.to_string().contains("it was released"), "{err}");
        let stored = current(&mut conn, &run_id).await.unwrap().unwrap();
        assert_eq!(stored.released_at, Some(at(5)));

        let second = acquire(&mut conn, &run_id, "driver-b", "ops-1", 2, TTL, at(6))
            .await
            .unwrap();
        assert_eq!(
            (second.fence, second.took_over_from),
            (2, None),
            "a released lease is no take-over"
        );
        assert!(
            matches!(
                check_fence(&mut conn, &first).await,
                Err(StoreError::LostLease { .. })
            ),
            "the old fence never matches again"
        );
    }

    #[tokio::test]
    async fn the_same_owner_may_reacquire_with_a_new_fence() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let first = acquire(&mut conn, &run_id, "driver-a", "ops-1", 1, TTL, at(0))
            .await
            .unwrap();
        let again = acquire(&mut conn, &run_id, "driver-a", "ops-1", 1, TTL, at(1))
            .await
            .unwrap();
        assert_eq!((again.fence, again.took_over_from.clone()), (2, None));
        assert!(check_fence(&mut conn, &first).await.is_err());
        check_fence(&mut conn, &again).await.unwrap();
    }

    #[tokio::test]
    async fn two_processes_racing_for_a_lease_get_exactly_one() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        // A second `Database` on the same store stands for a second drs-runbook process.
        let other = super::super::Database::open_location(db.path().to_str().unwrap())
            .await
            .unwrap();
        let race = |db: super::super::Database, owner: &'static str| {
            let run_id = run_id.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await?;
                let lease = acquire(&mut tx, &run_id, owner, "ops-1", 1, TTL, at(0)).await?;
                tx.commit()
                    .await
                    .map_err(|e| StoreError::query(e, "commit".into()))?;
                Ok::<_, StoreError>(lease)
            })
        };
        let (a, b) = tokio::join!(race(db.clone(), "driver-a"), race(other, "driver-b"));
        let outcomes = [a.unwrap(), b.unwrap()];
        let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        assert_eq!(winners[0].fence, 1);
        let loser = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
        assert!(
            matches!(loser, StoreError::LeaseHeld { holder } if holder.owner == winners[0].owner),
            "{loser:?}"
        );
    }

    #[tokio::test]
    async fn a_lease_on_an_unknown_run_is_refused() {
        let (_dir, db) = temp_db().await;
        let mut conn = db.pool().acquire().await.unwrap();
        let err = acquire(
            &mut conn,
            &RunId::generate(),
            "driver-a",
            "ops-1",
            1,
            TTL,
            at(0),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, StoreError::Query { .. }),
            "foreign key: {err:?}"
        );
        assert_eq!(
            timestamp(expiry(at(0), Duration::MAX)),
            "9999-12-31T23:59:59.999999Z"
        );
    }
}
