//! ELBv2 state (load balancers, target groups, registered targets) and target health.
//!
//! Health is not stored: it is a function of the simulated clock, the registration times, the
//! EC2 instance behind the target and the active faults ([`health_of`]), so that a restarted
//! simulator answers exactly as the old one would have.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::sim::ec2::{Ec2, InstanceState};
use crate::sim::{Fault, faults};

/// How long a new target stays `initial` (a few health-check intervals).
pub const REGISTRATION: TimeDelta = TimeDelta::seconds(30);
/// How long a deregistered target stays `draining` before it is gone.
pub const DRAINING: TimeDelta = TimeDelta::seconds(30);

/// ELBv2 state of one account and region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ElbRegion {
    /// Load balancers by ARN.
    #[serde(default)]
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    /// Target groups by ARN.
    #[serde(default)]
    pub target_groups: BTreeMap<String, TargetGroup>,
    /// When the last drained target of this region's groups was removed: see [`traffic_until`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drained_at: Option<DateTime<Utc>>,
}

/// An application load balancer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub dns_name: String,
    pub canonical_hosted_zone_id: String,
    pub created_at: DateTime<Utc>,
    pub vpc_id: String,
    pub region: String,
}

/// A target group and its registered targets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    pub protocol: String,
    pub port: u16,
    pub vpc_id: String,
    pub target_type: TargetType,
    pub health_check_path: String,
    #[serde(default)]
    pub load_balancer_arns: Vec<String>,
    #[serde(default)]
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    Instance,
    Ip,
}

impl TargetType {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Instance => "instance",
            TargetType::Ip => "ip",
        }
    }
}

/// One registration of a target (an instance ID or an IP) on a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    pub port: u16,
    pub registered_at: DateTime<Utc>,
    /// Set by DeregisterTargets: the target drains, then disappears.
    #[serde(default)]
    pub deregistered_at: Option<DateTime<Utc>>,
}

/// A target's health as DescribeTargetHealth reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: &'static str,
    pub reason: Option<&'static str>,
    pub description: Option<&'static str>,
}

impl Health {
    fn of(state: &'static str, reason: &'static str, description: &'static str) -> Health {
        Health {
            state,
            reason: Some(reason),
            description: Some(description),
        }
    }
    pub fn healthy() -> Health {
        Health {
            state: "healthy",
            reason: None,
            description: None,
        }
    }
    pub fn not_registered() -> Health {
        Health::of(
            "unused",
            "Target.NotRegistered",
            "Target is not registered to the target group",
        )
    }
}

/// The health of a registered target at `now`: `draining` after deregistration, `initial`
/// right after registration, then `healthy` when the instance behind it runs and no fault says
/// otherwise.
pub fn health_of(
    group: &TargetGroup,
    account: &str,
    region: &str,
    target: &Target,
    ec2: &Ec2,
    faults: &[Fault],
    now: DateTime<Utc>,
) -> Health {
    if target.deregistered_at.is_some() {
        return Health::of(
            "draining",
            "Target.DeregistrationInProgress",
            "Target deregistration is in progress",
        );
    }
    if now - target.registered_at < REGISTRATION {
        return Health::of(
            "initial",
            "Elb.RegistrationInProgress",
            "Target registration is in progress",
        );
    }
    if faults::target_unhealthy(faults, &group.arn, &target.id) {
        return Health::of(
            "unhealthy",
            "Target.FailedHealthChecks",
            "Health checks failed",
        );
    }
    let instance = match group.target_type {
        TargetType::Instance => ec2.get(&target.id),
        TargetType::Ip => ec2.by_ip(account, region, &target.id),
    };
    match instance {
        Some(i) if i.state == InstanceState::Running => Health::healthy(),
        Some(_) => Health::of(
            "unhealthy",
            "Target.FailedHealthChecks",
            "Health checks failed",
        ),
        // An IP nothing answers on: health checks time out.
        None => Health::of("unhealthy", "Target.Timeout", "Request timed out"),
    }
}

/// Removes the targets whose draining is over; returns when the last of them finished draining.
pub fn finish_draining(group: &mut TargetGroup, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let drained = group
        .targets
        .iter()
        .filter_map(|t| t.deregistered_at)
        .map(|at| at + DRAINING)
        .filter(|end| *end <= now)
        .max();
    group
        .targets
        .retain(|t| t.deregistered_at.is_none_or(|at| now - at < DRAINING));
    drained
}

/// Until when the application behind this region's load balancers receives traffic (and so
/// writes): `now` while a target of one of its groups is registered or draining (deregistration
/// lets in-flight requests complete), otherwise the end of the last draining; `None` when no
/// target ever served. This is the simulator's model of the writes that a failback's quiesce
/// stops (see `sim::drs::failback::behind_writes`).
pub fn traffic_until(region: &ElbRegion, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut ended = region.last_drained_at;
    for target in region.target_groups.values().flat_map(|g| &g.targets) {
        match target.deregistered_at {
            Some(at) if now - at >= DRAINING => ended = ended.max(Some(at + DRAINING)),
            _ => return Some(now),
        }
    }
    ended
}

/// The parts of an ELBv2 ARN: `arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnParts {
    pub region: String,
    pub account: String,
    pub resource: String,
    pub name: String,
}

/// Parses an ELBv2 ARN whose resource starts with `kind` (`targetgroup` or `loadbalancer`).
pub fn parse_arn(arn: &str, kind: &str) -> Option<ArnParts> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_arn, partition, service, region, account, resource] = parts.as_slice() else {
        return None;
    };
    if !partition.starts_with("aws")
        || *service != "elasticloadbalancing"
        || region.is_empty()
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let segments: Vec<&str> = resource.split('/').collect();
    let name = match (kind, segments.as_slice()) {
        ("targetgroup", ["targetgroup", name, id]) if !name.is_empty() && !id.is_empty() => name,
        ("loadbalancer", ["loadbalancer", _kind, name, id])
            if !name.is_empty() && !id.is_empty() =>
        {
            name
        }
        _ => return None,
    };
    Some(ArnParts {
        region: region.to_string(),
        account: account.to_string(),
        resource: resource.to_string(),
        name: name.to_string(),
    })
}

/// The hosted zone ID of application load balancers in a region (for Route 53 alias records).
pub fn canonical_hosted_zone_id(region: &str) -> &'static str {
    match region {
        "us-east-1" => "Z35SXDOTRQ7X7K",
        "us-east-2" => "Z3AADJGX6KTTL2",
        "us-west-1" => "Z368ELLRRE2KJ0",
        "us-west-2" => "Z1H1FL5HABSF5",
        "ca-central-1" => "ZQSVJUPU6J1EY",
        "eu-west-1" => "Z32O12XQLNTSW2",
        "eu-west-2" => "ZHURV8PSTC4K8",
        "eu-west-3" => "Z3Q77PNBQS71R4",
        "eu-central-1" => "Z215JYRZR1TBD5",
        "eu-north-1" => "Z23TAZ7KJ3ZLJG",
        "ap-northeast-1" => "Z14GRHDCWA56QT",
        "ap-southeast-1" => "Z1LMS91P8CMLE5",
        "ap-southeast-2" => "Z1GM3OXH4ZPM65",
        "ap-south-1" => "ZP97RAFLXTNZK",
        "sa-east-1" => "Z2P70J7HTTTPLU",
        _ => "Z35SXDOTRQ7X7K",
    }
}

/// Whether `text` is a dotted-quad IPv4 address.
pub fn is_ipv4(text: &str) -> bool {
    text.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(target_type: TargetType) -> TargetGroup {
        TargetGroup {
            arn: "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/web/0123456789abcdef".into(),
            name: "web".into(),
            protocol: "HTTP".into(),
            port: 80,
            vpc_id: "vpc-1".into(),
            target_type,
            health_check_path: "/".into(),
            load_balancer_arns: vec![],
            targets: vec![],
        }
    }

    #[test]
    fn health_moves_from_initial_to_healthy_and_drains() {
        let now = Utc::now();
        let mut ec2 = Ec2::default();
        let ip = ec2
            .launch(
                "i-0123456789abcdef0".into(),
                "111111111111",
                "us-east-1",
                InstanceState::Running,
                now,
                "web",
            )
            .private_ip
            .clone();
        let g = group(TargetType::Instance);
        let mut t = Target {
            id: "i-0123456789abcdef0".into(),
            port: 80,
            registered_at: now,
            deregistered_at: None,
        };
        let h = |t: &Target, g: &TargetGroup, at| {
            health_of(g, "111111111111", "us-east-1", t, &ec2, &[], at)
        };
        assert_eq!(h(&t, &g, now).state, "initial");
        assert_eq!(h(&t, &g, now + TimeDelta::seconds(31)).state, "healthy");
        let ip_group = group(TargetType::Ip);
        let by_ip = Target {
            id: ip,
            ..t.clone()
        };
        assert_eq!(
            h(&by_ip, &ip_group, now + TimeDelta::seconds(31)).state,
            "healthy"
        );
        let nobody = Target {
            id: "10.99.0.1".into(),
            ..t.clone()
        };
        assert_eq!(
            h(&nobody, &ip_group, now + TimeDelta::seconds(31)).reason,
            Some("Target.Timeout")
        );
        t.deregistered_at = Some(now + TimeDelta::seconds(40));
        assert_eq!(h(&t, &g, now + TimeDelta::seconds(41)).state, "draining");
        let mut g = g;
        g.targets.push(t);
        finish_draining(&mut g, now + TimeDelta::seconds(60));
        assert_eq!(g.targets.len(), 1);
        finish_draining(&mut g, now + TimeDelta::seconds(70));
        assert!(g.targets.is_empty());
    }

    #[test]
    fn faults_and_stopped_instances_make_targets_unhealthy() {
        let now = Utc::now();
        let mut ec2 = Ec2::default();
        ec2.launch(
            "i-1".into(),
            "111111111111",
            "us-east-1",
            InstanceState::Stopped,
            now,
            "a",
        );
        ec2.launch(
            "i-2".into(),
            "111111111111",
            "us-east-1",
            InstanceState::Running,
            now,
            "b",
        );
        let g = group(TargetType::Instance);
        let later = now + TimeDelta::minutes(5);
        let target = |id: &str| Target {
            id: id.into(),
            port: 80,
            registered_at: now,
            deregistered_at: None,
        };
        assert_eq!(
            health_of(
                &g,
                "111111111111",
                "us-east-1",
                &target("i-1"),
                &ec2,
                &[],
                later
            )
            .state,
            "unhealthy"
        );
        let fault = Fault::UnhealthyTarget {
            target_id: Some("i-2".into()),
            target_group_arn: None,
        };
        assert_eq!(
            health_of(
                &g,
                "111111111111",
                "us-east-1",
                &target("i-2"),
                &ec2,
                &[fault],
                later
            )
            .state,
            "unhealthy"
        );
    }

    #[test]
    fn arns_parse_into_region_account_and_name() {
        let p = parse_arn("arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123456789abcdef", "targetgroup").unwrap();
        assert_eq!(
            (p.region.as_str(), p.account.as_str(), p.name.as_str()),
            ("us-west-2", "222222222222", "payments")
        );
        assert!(
            parse_arn(
                "arn:aws:elasticloadbalancing:us-west-2:222222222222:loadbalancer/app/web/0123",
                "loadbalancer"
            )
            .is_some()
        );
        assert!(
            parse_arn(
                "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments",
                "targetgroup"
            )
            .is_none()
        );
        assert!(parse_arn("not-an-arn", "targetgroup").is_none());
    }
}
