//! Injected faults (`POST /_sim/faults`), exactly the kinds of the control API contract.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// A modeled error answered instead of the call, with a probability or for the next
    /// `count` calls (both absent: every call).
    ApiError {
        service: String,
        operation: String,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        probability: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// The server's launch fails (LAUNCH_FAILED, launchStatus FAILED); with `attempts: N`
    /// only its first N attempts fail, then DRS's own retry launches it.
    LaunchFailure {
        source_server_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempts: Option<u32>,
    },
    /// The server's conversion fails (CONVERSION_FAIL, launchStatus FAILED); with
    /// `attempts: N` only its first N attempts fail, then DRS's own retry converts it.
    ConversionFailure {
        source_server_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempts: Option<u32>,
    },
    /// The server never leaves its current phase, so its job never completes.
    StuckJob { source_server_id: String },
    /// Changes to this hosted zone stay PENDING.
    DnsNeverInsync { hosted_zone_id: String },
    /// The server's replication lags `lag_seconds` behind (still CONTINUOUS, `lagDuration` set).
    ReplicationLag {
        source_server_id: String,
        lag_seconds: u64,
    },
    /// The server's agent was last seen by DRS `seconds_ago` seconds before now.
    AgentNotSeen {
        source_server_id: String,
        seconds_ago: u64,
    },
    /// The source region is down, from `since` (set to the simulated time the fault is posted
    /// when absent): its agents stop (`lastSeenByServiceDateTime` frozen, lag growing,
    /// DISCONNECTED with AGENT_NOT_SEEN once unseen for 5 minutes), no data newer than `since`
    /// reaches the staging area, and every DRS, ELBv2 and EC2 call in that account and region
    /// answers 503 ServiceUnavailable.
    SourceOutage {
        account_id: String,
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The target (or every target of the group) turns unhealthy.
    UnhealthyTarget {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_group_arn: Option<String>,
    },
    /// The post-launch action running `action_code` (its SSM document) on the server's recovery
    /// instance ends FAILED with a `failureReason` (`launchActionsStatus.runs[]` of the job).
    LaunchActionFailure {
        source_server_id: String,
        action_code: String,
    },
    /// The instance (or the instance recovered from the source server) fails its status check
    /// once booted: `impaired` in DescribeInstanceStatus (`check`: `instance`, the default, or
    /// `system`).
    ImpairedInstance {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_server_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<crate::sim::ec2::ImpairedCheck>,
    },
}

/// The body of `POST /_sim/faults`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsBody {
    pub faults: Vec<Fault>,
}

/// Decides whether this call fails with an injected `api_error`, consuming a `count`.
/// Returns the error name to answer with.
pub fn take_api_error(
    faults: &mut Vec<Fault>,
    service: &str,
    operation: &str,
    rng: &mut impl Rng,
) -> Option<String> {
    let mut hit: Option<(usize, String)> = None;
    for (i, fault) in faults.iter_mut().enumerate() {
        let Fault::ApiError {
            service: s,
            operation: o,
            error,
            probability,
            count,
        } = fault
        else {
            continue;
        };
        if s != service || (o != operation && o != "*") {
            continue;
        }
        if let Some(remaining) = count {
            if *remaining == 0 {
                continue;
            }
            *remaining -= 1;
            hit = Some((i, error.clone()));
            break;
        }
        let p = probability.unwrap_or(1.0);
        if rng.random_bool(p.clamp(0.0, 1.0)) {
            hit = Some((i, error.clone()));
            break;
        }
    }
    let (index, error) = hit?;
    if matches!(&faults[index], Fault::ApiError { count: Some(0), .. }) {
        faults.remove(index);
    }
    Some(error)
}

/// Whether a DRS server-level fault of the given kind is active for `source_server_id`.
pub fn server_fault(faults: &[Fault], source_server_id: &str) -> ServerFaults {
    let mut out = ServerFaults::default();
    for fault in faults {
        match fault {
            Fault::LaunchFailure {
                source_server_id: s,
                attempts,
            } if s == source_server_id => {
                out.launch_failure = true;
                out.launch_attempts = *attempts;
            }
            Fault::ConversionFailure {
                source_server_id: s,
                attempts,
            } if s == source_server_id => {
                out.conversion_failure = true;
                out.conversion_attempts = *attempts;
            }
            Fault::StuckJob {
                source_server_id: s,
            } if s == source_server_id => out.stuck = true,
            _ => {}
        }
    }
    out
}

/// Whether a `launch_action_failure` fails the run of `action_code` on the server.
pub fn launch_action_fails(faults: &[Fault], source_server_id: &str, action_code: &str) -> bool {
    faults.iter().any(|f| {
        matches!(f, Fault::LaunchActionFailure { source_server_id: s, action_code: c }
            if s == source_server_id && c == action_code)
    })
}

/// The replication lag and the agent's silence injected for one source server, in seconds.
pub fn server_health_faults(
    faults: &[Fault],
    source_server_id: &str,
) -> (Option<u64>, Option<u64>) {
    let mut lag = None;
    let mut silent = None;
    for fault in faults {
        match fault {
            Fault::ReplicationLag {
                source_server_id: s,
                lag_seconds,
            } if s == source_server_id => lag = Some(*lag_seconds),
            Fault::AgentNotSeen {
                source_server_id: s,
                seconds_ago,
            } if s == source_server_id => silent = Some(*seconds_ago),
            _ => {}
        }
    }
    (lag, silent)
}

/// When the outage of this account and region began, if one is injected.
pub fn outage_since(
    faults: &[Fault],
    account: &str,
    region: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    faults.iter().find_map(|f| match f {
        Fault::SourceOutage {
            account_id,
            region: r,
            since,
        } if account_id == account && r == region => Some(since.unwrap_or_default()),
        _ => None,
    })
}

/// Starts the clock of the faults just posted: an outage without `since` begins now.
pub fn stamp(faults: &mut [Fault], now: chrono::DateTime<chrono::Utc>) {
    for fault in faults {
        if let Fault::SourceOutage { since, .. } = fault
            && since.is_none()
        {
            *since = Some(now);
        }
    }
}

/// The server-level faults active for one source server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerFaults {
    pub launch_failure: bool,
    pub conversion_failure: bool,
    pub stuck: bool,
    /// How many attempts fail before DRS's retry succeeds (`None`: the failure is final).
    pub launch_attempts: Option<u32>,
    pub conversion_attempts: Option<u32>,
}

/// Whether changes to the hosted zone never reach INSYNC.
pub fn dns_never_insync(faults: &[Fault], hosted_zone_id: &str) -> bool {
    let bare = hosted_zone_id.trim_start_matches("/hostedzone/");
    faults.iter().any(|f| matches!(f, Fault::DnsNeverInsync { hosted_zone_id: z } if z.trim_start_matches("/hostedzone/") == bare))
}

/// Whether the target in the group is forced unhealthy.
pub fn target_unhealthy(faults: &[Fault], target_group_arn: &str, target_id: &str) -> bool {
    faults.iter().any(|f| match f {
        Fault::UnhealthyTarget {
            target_id: t,
            target_group_arn: g,
        } => {
            let id_matches = t.as_deref().is_none_or(|t| t == target_id);
            let group_matches = g.as_deref().is_none_or(|g| g == target_group_arn);
            (t.is_some() || g.is_some()) && id_matches && group_matches
        }
        _ => false,
    })
}

/// The status check an `impaired_instance` fault fails for this instance, if any.
pub fn impaired_check(
    faults: &[Fault],
    instance: &crate::sim::ec2::Instance,
) -> Option<crate::sim::ec2::ImpairedCheck> {
    faults.iter().find_map(|f| match f {
        Fault::ImpairedInstance {
            instance_id,
            source_server_id,
            check,
        } => {
            let by_id = instance_id.as_deref() == Some(instance.instance_id.as_str());
            let by_server = source_server_id.is_some()
                && source_server_id.as_deref() == instance.source_server_id.as_deref();
            (by_id || by_server).then(|| check.unwrap_or_default())
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn count_faults_fire_exactly_count_times_then_vanish() {
        let mut faults = vec![Fault::ApiError {
            service: "drs".into(),
            operation: "DescribeJobs".into(),
            error: "ThrottlingException".into(),
            probability: None,
            count: Some(2),
        }];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert!(take_api_error(&mut faults, "drs", "StartRecovery", &mut rng).is_none());
        assert_eq!(
            take_api_error(&mut faults, "drs", "DescribeJobs", &mut rng).as_deref(),
            Some("ThrottlingException")
        );
        assert!(take_api_error(&mut faults, "drs", "DescribeJobs", &mut rng).is_some());
        assert!(faults.is_empty());
        assert!(take_api_error(&mut faults, "drs", "DescribeJobs", &mut rng).is_none());
    }

    #[test]
    fn faults_parse_from_the_contract_json() {
        let body: FaultsBody = serde_json::from_str(
            r#"{"faults": [
              {"kind": "api_error", "service": "drs", "operation": "DescribeJobs", "error": "ThrottlingException", "probability": 0.3},
              {"kind": "launch_failure", "source_server_id": "s-1234567890abcdef0"},
              {"kind": "conversion_failure", "source_server_id": "s-1234567890abcdef0"},
              {"kind": "stuck_job", "source_server_id": "s-1234567890abcdef0"},
              {"kind": "dns_never_insync", "hosted_zone_id": "Z0123456789ABCDEFGHIJ"},
              {"kind": "unhealthy_target", "target_id": "i-0123456789abcdef0"},
              {"kind": "unhealthy_target", "target_group_arn": "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/p/0123456789abcdef"},
              {"kind": "impaired_instance", "instance_id": "i-0123456789abcdef0"},
              {"kind": "impaired_instance", "source_server_id": "s-1234567890abcdef0", "check": "system"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(body.faults.len(), 9);
        assert!(server_fault(&body.faults, "s-1234567890abcdef0").stuck);
        assert!(dns_never_insync(
            &body.faults,
            "/hostedzone/Z0123456789ABCDEFGHIJ"
        ));
        assert!(target_unhealthy(
            &body.faults,
            "arn:x",
            "i-0123456789abcdef0"
        ));
        assert!(!target_unhealthy(&body.faults, "arn:x", "i-other"));
    }
}
