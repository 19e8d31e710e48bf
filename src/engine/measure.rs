//! RTO and RPO, measured from the typed outputs of a run's succeeded steps: one pure function
//! ([`measure`]) over [`Evidence`], with no JSON key read anywhere. A step output that does not
//! decode is an error naming the run and the step, never a silently missing figure.
//!
//! - RTO: run start -> the latest moment traffic reached recovered servers (a failover's or
//!   failback's launch, a drill's validation, target groups healthy, DNS INSYNC).
//! - RPO: the source's last write - the oldest data timestamp of a recovered server; data newer
//!   than that lost nothing: RPO 0. The last write is the run start (the declaration), or, when
//!   the run fenced the source (`fence_source`), the moment every source instance was stopped
//!   and its replication caught up (`fenced_at`): a source that kept running after the start
//!   until the fence wrote data that only a snapshot after the fence holds. A failback's last
//!   write is its quiesce (`quiesced_at`): B3 took traffic until then.
//! - Consistency ([`snapshot_spread`]): the newest minus the oldest data timestamp of the run's
//!   servers, all waves together; converting ahead takes every wave's snapshots within seconds
//!   of each other.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::run::journal::{JournalError, decode_output};
use crate::run::{Operation, StepKind};
use crate::steps::dns_cutover::{DnsOutput, UndoDnsOutput};
use crate::steps::fence_source::FenceOutput;
use crate::steps::launch::LaunchOutput;
use crate::steps::lb_switch::LbSwitchOutput;
use crate::steps::quiesce::QuiesceOutput;
use crate::steps::snapshot_conversion::ConversionOutput;
use crate::steps::validate::ValidateOutput;
use crate::store::RunId;

/// The output of a succeeded step that RTO or RPO is measured from.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    Conversion(ConversionOutput),
    Launch(LaunchOutput),
    /// A held wave's boot: its instances serve once they passed the health gate.
    Boot(LaunchOutput),
    Validate(ValidateOutput),
    LbSwitch(LbSwitchOutput),
    DnsCutover(DnsOutput),
    /// The fence of a planned failover: when the source stopped writing.
    Fence(FenceOutput),
    /// The quiesce of a failback: when B3 stopped taking writes.
    Quiesce(QuiesceOutput),
    /// A rollback's `undo:dns_cutover`: traffic is back when its restore is INSYNC.
    DnsRestore(UndoDnsOutput),
}

impl Evidence {
    /// Decodes the output of a step of `kind` in a run of `operation`; `None` for the steps
    /// that measure nothing. A rollback's steps carry the kind of the step they undo, and
    /// their outputs are compensations: only the DNS restore measures anything.
    pub fn decode(
        run: &RunId,
        operation: Operation,
        kind: StepKind,
        key: &str,
        output: Value,
    ) -> Result<Option<Evidence>, JournalError> {
        if operation == Operation::Rollback {
            return Ok(match kind {
                StepKind::DnsCutover => {
                    Some(Evidence::DnsRestore(decode_output(run, key, output)?))
                }
                _ => None,
            });
        }
        Ok(Some(match kind {
            StepKind::SnapshotConversion => Evidence::Conversion(decode_output(run, key, output)?),
            StepKind::Launch => Evidence::Launch(decode_output(run, key, output)?),
            StepKind::Boot => Evidence::Boot(decode_output(run, key, output)?),
            StepKind::Validate => Evidence::Validate(decode_output(run, key, output)?),
            StepKind::LbSwitch => Evidence::LbSwitch(decode_output(run, key, output)?),
            StepKind::DnsCutover => Evidence::DnsCutover(decode_output(run, key, output)?),
            StepKind::FenceSource => Evidence::Fence(decode_output(run, key, output)?),
            StepKind::Quiesce => Evidence::Quiesce(decode_output(run, key, output)?),
            StepKind::Preflight
            | StepKind::RecoveryJob
            | StepKind::Cleanup
            | StepKind::ReversedReplication
            | StepKind::A2Recovery
            | StepKind::Action => return Ok(None),
        }))
    }
}

/// The measured objectives, in seconds of the engine's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measurement {
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
}

/// RTO and RPO of a run of `operation` started at `start`, from its succeeded steps' outputs.
pub fn measure(operation: Operation, start: DateTime<Utc>, evidence: &[Evidence]) -> Measurement {
    let mut served: Option<DateTime<Utc>> = None;
    let mut oldest_data: Option<DateTime<Utc>> = None;
    let last_write = evidence
        .iter()
        .find_map(|item| match item {
            Evidence::Fence(fence) => fence.fenced_at.as_deref().and_then(crate::aws::parse_time),
            Evidence::Quiesce(quiesce) => quiesce
                .quiesced_at
                .as_deref()
                .and_then(crate::aws::parse_time),
            _ => None,
        })
        .unwrap_or(start);
    let mut serve = |at: Option<&String>| {
        if let Some(at) = at.and_then(|a| crate::aws::parse_time(a)) {
            served = Some(served.map_or(at, |s| s.max(at)));
        }
    };
    for item in evidence {
        match item {
            Evidence::Conversion(out) => {
                for ts in out
                    .servers
                    .values()
                    .filter_map(|s| s.data_timestamp.as_deref())
                    .filter_map(crate::aws::parse_time)
                {
                    oldest_data = Some(oldest_data.map_or(ts, |o| o.min(ts)));
                }
            }
            // A drill's traffic is its validation; its launch serves nobody.
            Evidence::Launch(out) if operation != Operation::Drill => {
                serve(out.completed_at.as_ref())
            }
            Evidence::Launch(_) => {}
            Evidence::Boot(out) if operation != Operation::Drill => {
                serve(out.healthy_at.as_ref().or(out.completed_at.as_ref()))
            }
            Evidence::Boot(_) => {}
            Evidence::Validate(out) => serve(out.validated_at.as_ref()),
            Evidence::LbSwitch(out) => {
                for group in &out.groups {
                    serve(group.healthy_at.as_ref());
                }
            }
            Evidence::DnsCutover(out) => {
                for zone in &out.zones {
                    serve(zone.insync_at.as_ref());
                }
            }
            Evidence::DnsRestore(out) => {
                for zone in &out.zones {
                    serve(zone.insync_at.as_ref());
                }
            }
            Evidence::Fence(_) | Evidence::Quiesce(_) => {}
        }
    }
    Measurement {
        rto_seconds: served.map(|s| seconds(start, s)),
        rpo_seconds: oldest_data.map(|data| seconds(data, last_write).max(0.0)),
    }
}

/// The run's consistency figure: the newest minus the oldest data timestamp of its recovered
/// servers, in seconds (`None` before any was recorded).
pub fn snapshot_spread(evidence: &[Evidence]) -> Option<f64> {
    let stamps: Vec<DateTime<Utc>> = evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Conversion(out) => Some(out),
            _ => None,
        })
        .flat_map(|out| out.servers.values())
        .filter_map(|s| s.data_timestamp.as_deref())
        .filter_map(crate::aws::parse_time)
        .collect();
    let oldest = stamps.iter().min()?;
    let newest = stamps.iter().max()?;
    Some(seconds(*oldest, *newest))
}

/// `to - from` in seconds, to the millisecond.
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::dns_cutover::ZoneCutover;
    use crate::steps::snapshot_conversion::ServerConversion;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::TimeDelta::seconds(seconds)
    }

    fn conversion(data_at: &[i64]) -> Evidence {
        let mut out = ConversionOutput::default();
        for (i, at) in data_at.iter().enumerate() {
            out.servers.insert(
                format!("s-{i}"),
                ServerConversion {
                    data_timestamp: Some(t(*at).to_rfc3339()),
                    ..Default::default()
                },
            );
        }
        Evidence::Conversion(out)
    }

    fn launch(at: i64) -> Evidence {
        Evidence::Launch(LaunchOutput {
            completed_at: Some(t(at).to_rfc3339()),
            ..Default::default()
        })
    }

    fn dns(at: i64) -> Evidence {
        Evidence::DnsCutover(DnsOutput {
            zones: vec![ZoneCutover {
                hosted_zone_id: "Z1".into(),
                account: crate::runbook::Account::Target,
                before: vec![],
                after: vec![],
                change_id: Some("C1".into()),
                insync_at: Some(t(at).to_rfc3339()),
            }],
            health_checks: vec![],
            routing_controls: vec![],
        })
    }

    #[test]
    fn rto_is_the_latest_traffic_and_rpo_the_oldest_data() {
        let m = measure(
            Operation::Failover,
            t(0),
            &[conversion(&[-300, -60]), launch(600), dns(900)],
        );
        assert_eq!(m.rto_seconds, Some(900.0));
        assert_eq!(m.rpo_seconds, Some(300.0));
    }

    #[test]
    fn the_snapshot_spread_spans_every_wave_and_a_held_wave_serves_once_healthy() {
        let evidence = [conversion(&[-300, -60]), conversion(&[12]), launch(600)];
        assert_eq!(snapshot_spread(&evidence), Some(312.0));
        assert_eq!(snapshot_spread(&[launch(600)]), None);
        let booted = Evidence::Boot(LaunchOutput {
            completed_at: Some(t(600).to_rfc3339()),
            healthy_at: Some(t(840).to_rfc3339()),
            ..Default::default()
        });
        let m = measure(Operation::Failover, t(0), &[launch(300), booted]);
        assert_eq!(m.rto_seconds, Some(840.0));
    }

    #[test]
    fn a_drill_launch_serves_nobody_and_fresh_data_loses_nothing() {
        let m = measure(Operation::Drill, t(0), &[conversion(&[30]), launch(600)]);
        assert_eq!(m.rto_seconds, None);
        assert_eq!(m.rpo_seconds, Some(0.0));
        assert_eq!(measure(Operation::Drill, t(0), &[]), Measurement::default());
    }

    fn fence(at: i64) -> Evidence {
        Evidence::Fence(FenceOutput {
            fenced_at: Some(t(at).to_rfc3339()),
            ..Default::default()
        })
    }

    #[test]
    fn a_fenced_failover_measures_its_rpo_from_the_fence() {
        // Data from after the fence: nothing the source wrote is missing.
        let m = measure(
            Operation::Failover,
            t(0),
            &[fence(120), conversion(&[150, 200]), launch(600)],
        );
        assert_eq!(m.rpo_seconds, Some(0.0));
        // Data from after the start but before the fence: the writes in between are lost,
        // although the start alone would have called it RPO 0.
        let m = measure(
            Operation::Failover,
            t(0),
            &[fence(120), conversion(&[90, 200]), launch(600)],
        );
        assert_eq!(m.rpo_seconds, Some(30.0));
        assert_eq!(
            measure(Operation::Failover, t(0), &[conversion(&[90])]).rpo_seconds,
            Some(0.0)
        );
    }

    #[test]
    fn a_failback_measures_its_rpo_from_the_quiesce() {
        let quiesce = |at: i64| {
            Evidence::Quiesce(QuiesceOutput {
                quiesced_at: Some(t(at).to_rfc3339()),
                ..Default::default()
            })
        };
        let failback = |data: &[i64]| {
            measure(
                Operation::Failback,
                t(0),
                &[quiesce(900), conversion(data), launch(1500)],
            )
            .rpo_seconds
        };
        assert_eq!(failback(&[960, 990]), Some(0.0), "A3 after the quiesce");
        // A snapshot of writes before the quiesce: what B3 took after it is lost.
        assert_eq!(failback(&[840, 990]), Some(60.0));
    }

    #[test]
    fn an_output_that_does_not_decode_is_an_error_naming_run_and_step() {
        let run = RunId::generate();
        let err = Evidence::decode(
            &run,
            Operation::Failover,
            StepKind::DnsCutover,
            "dns_cutover",
            serde_json::json!({ "zones": 3 }),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&run.to_string()) && text.contains("dns_cutover"),
            "{text}"
        );
        assert_eq!(
            Evidence::decode(
                &run,
                Operation::Failover,
                StepKind::Preflight,
                "preflight",
                serde_json::json!({"x": 1})
            )
            .unwrap(),
            None
        );
        // A rollback's undo:dns_cutover carries the cutover's kind and a restore's output.
        let restore = serde_json::json!({ "planned": true, "zones": [] });
        assert_eq!(
            Evidence::decode(
                &run,
                Operation::Rollback,
                StepKind::DnsCutover,
                "undo:dns_cutover",
                restore
            )
            .unwrap(),
            Some(Evidence::DnsRestore(UndoDnsOutput {
                planned: true,
                zones: vec![],
                health_checks: vec![],
                routing_controls: vec![],
            }))
        );
    }
}
