//! Point-in-time snapshots: one every 10 minutes (on the UTC 10-minute grid) while a server
//! replicates, kept for one day. They are derived from `pits_from` and the clock, never
//! stored: IDs are `pit-` + 17 hex digits of a hash of the server ID and the time, so the same
//! snapshot has the same ID on every read and after a restart.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::SourceServer;
use super::{Ctx, Done, DrsError, Scope, check_id, hex_id, input, page, parse_time};
use crate::sim::wire::drs_timestamp;

/// How often a snapshot is taken, and how long snapshots are kept.
const INTERVAL_SECS: i64 = 600;
const RETENTION: Duration = Duration::days(1);

/// One point-in-time snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub expected: DateTime<Utc>,
    pub taken: DateTime<Utc>,
}

impl Snapshot {
    fn at(server_id: &str, expected: DateTime<Utc>) -> Snapshot {
        let stamp = expected.timestamp().to_string();
        // A snapshot completes a few seconds after its scheduled time.
        let delay = super::jitter(&[server_id, &stamp, "pit-delay"], 1, 9);
        Snapshot {
            id: format!("pit-{}", hex_id(&[server_id, &stamp, "pit"], 17)),
            expected,
            taken: expected + Duration::seconds(delay),
        }
    }

    pub fn json(&self, server_id: &str) -> Value {
        let stamp = self.expected.timestamp().to_string();
        json!({
            "snapshotID": self.id,
            "sourceServerID": server_id,
            "expectedTimestamp": drs_timestamp(self.expected),
            "timestamp": drs_timestamp(self.taken),
            "ebsSnapshots": [format!("snap-{}", hex_id(&[server_id, &stamp, "ebs"], 17))],
        })
    }
}

/// The snapshots of a server that exist at `now`, oldest first.
pub fn of_server(server: &SourceServer, now: DateTime<Utc>) -> Vec<Snapshot> {
    let Some(from) = server.pits_from else {
        return Vec::new();
    };
    let from = from.max(now - RETENTION);
    let first = from.timestamp().div_euclid(INTERVAL_SECS) + 1;
    let last = now.timestamp().div_euclid(INTERVAL_SECS);
    (first..=last)
        .filter_map(|k| Utc.timestamp_opt(k * INTERVAL_SECS, 0).single())
        .map(|expected| Snapshot::at(&server.id, expected))
        .filter(|s| s.taken <= now)
        .collect()
}

/// The snapshots of a server at `now` given the faults: a `source_outage` of its origin stops
/// its replication, so no snapshot is taken after the outage began.
pub fn of_server_under(
    server: &SourceServer,
    now: DateTime<Utc>,
    faults: &[crate::sim::Fault],
) -> Vec<Snapshot> {
    let outage =
        crate::sim::faults::outage_since(faults, &server.origin.account, &server.origin.region);
    let mut snapshots = of_server(server, now);
    if let Some(since) = outage {
        snapshots.retain(|s| s.taken <= since);
    }
    snapshots
}

/// The snapshot `snapshot_id` of a server, if it exists at `now`.
pub fn find(
    server: &SourceServer,
    snapshot_id: &str,
    now: DateTime<Utc>,
    faults: &[crate::sim::Fault],
) -> Option<Snapshot> {
    of_server_under(server, now, faults)
        .into_iter()
        .find(|s| s.id == snapshot_id)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInput {
    #[serde(rename = "sourceServerID")]
    source_server_id: Option<String>,
    #[serde(default)]
    filters: Option<Filters>,
    order: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filters {
    from_date_time: Option<String>,
    to_date_time: Option<String>,
}

/// DescribeRecoverySnapshots: filters on the snapshot time, ASC (the default) or DESC.
pub(super) fn describe(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: DescribeInput = input(&body)?;
    let server_id = input
        .source_server_id
        .ok_or_else(|| DrsError::field("sourceServerID", "is required"))?;
    check_id("sourceServerID", &server_id, "s-")?;
    let descending = match input.order.as_deref() {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(other) => {
            return Err(DrsError::field(
                "order",
                format!("{other:?} is not one of ASC, DESC"),
            ));
        }
    };
    let filters = input.filters.unwrap_or(Filters {
        from_date_time: None,
        to_date_time: None,
    });
    let from = filters
        .from_date_time
        .as_deref()
        .map(|t| parse_time("filters.fromDateTime", t))
        .transpose()?;
    let to = filters
        .to_date_time
        .as_deref()
        .map(|t| parse_time("filters.toDateTime", t))
        .transpose()?;
    let server = ctx
        .world
        .drs
        .get(&scope.key)
        .and_then(|r| r.source_servers.get(&server_id))
        .ok_or_else(|| {
            DrsError::field(
                "sourceServerID",
                format!(
                    "source server {server_id} does not exist in account {} region {}",
                    scope.account, scope.region
                ),
            )
        })?;
    let mut snapshots: Vec<Snapshot> = of_server_under(server, ctx.now, ctx.faults)
        .into_iter()
        .filter(|s| from.is_none_or(|f| s.taken >= f) && to.is_none_or(|t| s.taken <= t))
        .collect();
    if descending {
        snapshots.reverse();
    }
    let keys: Vec<String> = snapshots.iter().map(|s| s.id.clone()).collect();
    let page = page(&keys, input.max_results, input.next_token.as_deref())?;
    let items: Vec<Value> = snapshots[page.start..page.end]
        .iter()
        .map(|s| s.json(&server_id))
        .collect();
    let mut out = json!({ "items": items });
    if let Some(token) = page.next_token {
        out["nextToken"] = json!(token);
    }
    Ok(Done::read(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::drs::model::{Direction, Origin, Replication};

    fn server(pits_from: Option<DateTime<Utc>>) -> SourceServer {
        SourceServer {
            id: "s-1234567890abcdef0".into(),
            added_at: Utc::now(),
            origin: Origin {
                account: "1".into(),
                region: "r".into(),
                availability_zone: "ra".into(),
                instance_id: "i-1".into(),
                private_ip: "10.0.0.1".into(),
                hostname: "h".into(),
            },
            direction: Direction::Failover,
            replication: Replication::Stopped { at: Utc::now() },
            pits_from,
            recovery_instance_id: None,
            last_launch: None,
            reversed_arn: None,
            tags: Default::default(),
            ebs_encryption: None,
            ebs_encryption_key_arn: None,
            launch_settings: Default::default(),
            replication_settings: Default::default(),
        }
    }

    #[test]
    fn a_day_of_snapshots_every_ten_minutes_with_stable_ids() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 5, 0).unwrap();
        let s = server(Some(now - Duration::days(3)));
        let snaps = of_server(&s, now);
        assert!((143..=144).contains(&snaps.len()), "{}", snaps.len());
        assert!(
            snaps
                .windows(2)
                .all(|w| w[1].expected - w[0].expected == Duration::minutes(10))
        );
        assert!(
            snaps
                .iter()
                .all(|p| p.id.len() == 21 && p.id.starts_with("pit-"))
        );
        assert_eq!(snaps, of_server(&s, now));
        assert_eq!(find(&s, &snaps[3].id, now, &[]), Some(snaps[3].clone()));
        assert!(of_server(&server(None), now).is_empty());
    }
}
