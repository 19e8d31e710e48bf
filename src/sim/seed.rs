//! Seeding a world from a runbook (`POST /_sim/seed`, `sim serve --seed`, `--sim` on first use):
//! the servers it names (B1 in the target account/region, healthy and replicating, with
//! point-in-time snapshots), their source instances (A1) with IPs in the source account/region,
//! its hosted zones and records pointing at the A1 IPs, its failback target groups (source
//! region) with A1 registered and healthy, and its failover and drill target groups (target
//! region) empty, as in a pilot-light setup. Seeding is idempotent: what exists is left as it is.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::ec2::InstanceState;
use super::{World, drs, elbv2, route53};
use crate::runbook::{PointsTo, RecordType, Runbook};

/// What a seeding created (zero everywhere when the world already had it all).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SeedSummary {
    pub source_servers: usize,
    pub source_instances: usize,
    pub hosted_zones: usize,
    pub records: usize,
    pub routing_controls: usize,
    pub target_groups: usize,
}

/// The A1 instance ID of a seeded source server: derived from the server ID so that seeding
/// twice finds the same instance.
pub fn source_instance_id(source_server_id: &str) -> String {
    let digest = Sha256::digest(format!("a1/{source_server_id}").as_bytes());
    format!("i-{}", &hex::encode(digest)[..17])
}

pub fn seed(world: &mut World, runbook: &Runbook, now: DateTime<Utc>) -> SeedSummary {
    let mut summary = SeedSummary::default();
    let source = &runbook.source;
    let target = &runbook.target;
    // Failover needs DRS in the target, failback in the source: initialize both.
    drs::initialize(world, &target.account_id, &target.region, now);
    drs::initialize(world, &source.account_id, &source.region, now);

    // A1 instances and B1 source servers.
    let mut a1_by_server: BTreeMap<String, String> = BTreeMap::new();
    for wave in &runbook.waves {
        for server in &wave.servers {
            let instance_id = source_instance_id(server);
            if world.ec2.get(&instance_id).is_none() {
                let hostname = format!(
                    "{}-{}",
                    wave.name,
                    &server[server.len().saturating_sub(6)..]
                );
                // Seeded sources have been running for a while already.
                let since = now - chrono::Duration::days(30);
                world.ec2.launch(
                    instance_id.clone(),
                    &source.account_id,
                    &source.region,
                    InstanceState::Running,
                    since,
                    &hostname,
                );
                summary.source_instances += 1;
            }
            let origin = world.ec2.get(&instance_id).cloned().expect("just created");
            if drs::seed_source_server(
                world,
                now,
                &target.account_id,
                &target.region,
                server,
                &origin,
            ) {
                summary.source_servers += 1;
            }
            a1_by_server.insert(server.clone(), instance_id);
        }
    }
    let wave_ips = |world: &World, wave: &str| -> Vec<String> {
        runbook
            .waves
            .iter()
            .filter(|w| w.name == wave)
            .flat_map(|w| w.servers.iter())
            .filter_map(|s| a1_by_server.get(s))
            .filter_map(|i| world.ec2.get(i).map(|i| i.private_ip.clone()))
            .collect()
    };
    let wave_instances = |wave: &str| -> Vec<String> {
        runbook
            .waves
            .iter()
            .filter(|w| w.name == wave)
            .flat_map(|w| w.servers.iter())
            .filter_map(|s| a1_by_server.get(s).cloned())
            .collect()
    };

    // Target groups: the failback group (source region) carries A1, the failover and drill
    // groups are empty.
    for lb in &runbook.load_balancers {
        let port = lb.port.unwrap_or(80);
        if elbv2::seed_target_group(world, &lb.target_group_arn, port, &[], now) {
            summary.target_groups += 1;
        }
        if let Some(drill) = &lb.drill_target_group_arn
            && elbv2::seed_target_group(world, drill, port, &[], now)
        {
            summary.target_groups += 1;
        }
        if let Some(failback) = &lb.failback_target_group_arn
            && elbv2::seed_target_group(world, failback, port, &wave_instances(&lb.wave), now)
        {
            summary.target_groups += 1;
        }
    }

    // Hosted zones and the records as they are before any failover.
    let mut zones: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for record in &runbook.dns {
        let account = runbook.side(record.account).account_id.clone();
        zones
            .entry((account, record.hosted_zone_id.clone()))
            .or_default()
            .push(record.name.as_str());
    }
    for ((account, zone_id), names) in &zones {
        if route53::seed_zone(world, account, zone_id, &zone_name(names), now) {
            summary.hosted_zones += 1;
        }
    }
    // Routing controls in their state before a failover: the other one than the runbook's.
    for control in &runbook.routing_controls {
        let before = if control.state == "On" { "Off" } else { "On" };
        if super::arc::seed_control(world, &control.arn, before) {
            summary.routing_controls += 1;
        }
    }
    // A record of a policy group (`set_identifier`) is not seeded: its group's sets, routing
    // fields and health checks are the caller's to create (ChangeResourceRecordSets).
    for record in runbook.dns.iter().filter(|r| r.set_identifier.is_none()) {
        let account = runbook.side(record.account).account_id.clone();
        let name = absolute(&record.name);
        let record_type = record.record_type.as_str();
        let created = match &record.points_to {
            PointsTo::LoadBalancer { dns_name, zone } => route53::seed_alias_record(
                world,
                &account,
                &record.hosted_zone_id,
                &name,
                record_type,
                dns_name,
                zone,
            ),
            PointsTo::Wave(wave) => {
                // Only addresses of the record's family (no AAAA from IPv4 instances).
                let values: Vec<String> = wave_ips(world, wave)
                    .into_iter()
                    .filter(|ip| match record.record_type {
                        RecordType::Aaaa => ip.parse::<std::net::Ipv6Addr>().is_ok(),
                        _ => true,
                    })
                    .collect();
                route53::seed_record(
                    world,
                    &account,
                    &record.hosted_zone_id,
                    &name,
                    record_type,
                    record.ttl.unwrap_or(60),
                    &values,
                )
            }
        };
        if created {
            summary.records += 1;
        }
    }
    summary
}

/// A DNS name with its trailing dot.
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// The zone name for a set of record names: their longest common label suffix, and at least
/// the parent of a single record (`api.payments.example.com.` -> `payments.example.com.`).
fn zone_name(names: &[&str]) -> String {
    let split: Vec<Vec<&str>> = names
        .iter()
        .map(|n| n.trim_end_matches('.').split('.').rev().collect())
        .collect();
    let mut common: Vec<&str> = Vec::new();
    if let Some(first) = split.first() {
        for (i, label) in first.iter().enumerate() {
            if split.iter().all(|s| s.get(i) == Some(label)) {
                common.push(label);
            } else {
                break;
            }
        }
        if common.len() == first.len() && common.len() > 2 {
            common.pop();
        }
    }
    common.reverse();
    format!("{}.", common.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_are_the_common_parent() {
        assert_eq!(
            zone_name(&["api.payments.example.com."]),
            "payments.example.com."
        );
        assert_eq!(
            zone_name(&["api.payments.example.com.", "www.payments.example.com"]),
            "payments.example.com."
        );
        assert_eq!(zone_name(&["example.com."]), "example.com.");
    }

    #[test]
    fn source_instance_ids_are_stable_and_well_formed() {
        let a = source_instance_id("s-1234567890abcdef0");
        assert_eq!(a, source_instance_id("s-1234567890abcdef0"));
        assert_ne!(a, source_instance_id("s-234567890abcdef01"));
        assert_eq!(a.len(), 19);
        assert!(a.starts_with("i-"));
    }
}
