//! Route 53 state (hosted zones, record sets, changes) and the rules of a change batch.
//!
//! Invariants:
//! - Zone and change IDs are stored bare (`Z...`, `C...`); the wire adds `/hostedzone/` and
//!   `/change/`.
//! - Record names are stored absolute and lowercase (`api.example.com.`), and a zone's record
//!   sets are kept in the order Route 53 lists them ([`RecordSet::order_key`]).
//! - A change batch is all or nothing: it is applied to a copy of the zone's record sets and
//!   only committed when every change is valid.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Route 53 state of one account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Route53Account {
    /// Hosted zones by bare ID.
    #[serde(default)]
    pub zones: BTreeMap<String, HostedZone>,
    /// Changes by bare ID.
    #[serde(default)]
    pub changes: BTreeMap<String, Change>,
    /// Health checks by ID.
    #[serde(default)]
    pub health_checks: BTreeMap<String, HealthCheck>,
}

/// A health check. Its endpoint's health is set through the control API
/// (`POST /_sim/health-check`); what Route 53 reports is that health, reversed when `inverted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub id: String,
    pub caller_reference: String,
    pub config: HealthCheckConfig,
    /// Starts at 1, and UpdateHealthCheck adds 1.
    pub version: i64,
    /// Whether the endpoint answers (before `inverted`): true until the control API says not.
    pub endpoint_healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckConfig {
    pub check_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    pub request_interval: i64,
    pub failure_threshold: i64,
    pub inverted: bool,
}

impl HealthCheck {
    /// What Route 53 reports: the endpoint's health, reversed when the check is inverted.
    pub fn reports_healthy(&self) -> bool {
        self.endpoint_healthy != self.config.inverted
    }
}

/// The health check types Route 53 accepts (CreateHealthCheck, `HealthCheckConfig.Type`).
pub const HEALTH_CHECK_TYPES: &[&str] = &[
    "HTTP",
    "HTTPS",
    "HTTP_STR_MATCH",
    "HTTPS_STR_MATCH",
    "TCP",
    "CALCULATED",
    "CLOUDWATCH_METRIC",
    "RECOVERY_CONTROL",
];

/// One public or private hosted zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostedZone {
    pub id: String,
    /// Absolute, lowercase: `payments.example.com.`.
    pub name: String,
    pub caller_reference: String,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub private_zone: bool,
    pub created_at: DateTime<Utc>,
    pub name_servers: Vec<String>,
    /// In Route 53 listing order.
    pub records: Vec<RecordSet>,
}

/// One resource record set (plain or alias).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordSet {
    pub name: String,
    pub record_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_location: Option<GeoLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_value_answer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<AliasTarget>,
}

/// The target of an alias record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasTarget {
    pub hosted_zone_id: String,
    /// Absolute, lowercase.
    pub dns_name: String,
    pub evaluate_target_health: bool,
}

/// The location of a geolocation record set (at least one of the codes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeoLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdivision_code: Option<String>,
}

/// A submitted change (of records, or the creation of a zone).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub id: String,
    pub zone_id: String,
    pub status: ChangeStatus,
    pub submitted_at: DateTime<Utc>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// `PENDING` until the change has propagated to every Route 53 name server, then `INSYNC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeStatus {
    Pending,
    Insync,
}

impl ChangeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Pending => "PENDING",
            ChangeStatus::Insync => "INSYNC",
        }
    }
}

/// How long a change takes to propagate (Route 53 documents "generally within 60 seconds").
pub const PROPAGATION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The record types Route 53 accepts.
pub const RECORD_TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "NS", "PTR", "SOA", "SPF", "SRV",
    "SSHFP", "SVCB", "TLSA", "TXT",
];

/// A DNS name as Route 53 stores it: lowercase, absolute, `\052` read as `*`.
pub fn normalize_name(name: &str) -> String {
    let name = name.trim().replace("\\052", "*").to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

/// A DNS name as Route 53 returns it (`*` escaped as `\052`).
pub fn wire_name(name: &str) -> String {
    name.replace('*', "\\052")
}

/// Whether `name` is the zone apex or below it.
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

impl RecordSet {
    /// The key Route 53 lists record sets by: the name with its labels reversed
    /// (`com`, `example`, `api`), then the type, then the set identifier.
    pub fn order_key(&self) -> (Vec<String>, String, String) {
        order_key(
            &self.name,
            &self.record_type,
            self.set_identifier.as_deref().unwrap_or(""),
        )
    }

    /// Whether this set and `other` are the same record set (name, type, set identifier).
    pub fn same_set(&self, other: &RecordSet) -> bool {
        self.name == other.name
            && self.record_type == other.record_type
            && self.set_identifier == other.set_identifier
    }

    /// Whether `other` describes this set exactly, as a DELETE must.
    pub fn same_values(&self, other: &RecordSet) -> bool {
        let mut mine = self.values.clone();
        let mut theirs = other.values.clone();
        mine.sort();
        theirs.sort();
        self.same_set(other)
            && self.ttl == other.ttl
            && mine == theirs
            && self.alias == other.alias
            && self.weight == other.weight
            && self.region == other.region
            && self.failover == other.failover
            && self.geo_location == other.geo_location
            && self.multi_value_answer == other.multi_value_answer
            && self.health_check_id == other.health_check_id
    }

    /// The routing policy of the set (`weighted`, `failover`, `latency`, `geolocation`,
    /// `multivalue`), `None` for a simple set.
    pub fn policy(&self) -> Option<&'static str> {
        if self.weight.is_some() {
            Some("weighted")
        } else if self.failover.is_some() {
            Some("failover")
        } else if self.region.is_some() {
            Some("latency")
        } else if self.geo_location.is_some() {
            Some("geolocation")
        } else if self.multi_value_answer.is_some() {
            Some("multivalue")
        } else {
            None
        }
    }

    /// How many routing-policy fields are set (Route 53 takes exactly one with a SetIdentifier).
    pub fn policy_fields(&self) -> usize {
        [
            self.weight.is_some(),
            self.failover.is_some(),
            self.region.is_some(),
            self.geo_location.is_some(),
            self.multi_value_answer.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count()
    }

    /// `[name='api.example.com.', type='A']` as Route 53 names a set in its messages.
    pub fn describe(&self) -> String {
        match &self.set_identifier {
            Some(id) => format!(
                "[name='{}', type='{}', set-identifier='{}']",
                wire_name(&self.name),
                self.record_type,
                id
            ),
            None => format!(
                "[name='{}', type='{}']",
                wire_name(&self.name),
                self.record_type
            ),
        }
    }
}

/// See [`RecordSet::order_key`].
pub fn order_key(
    name: &str,
    record_type: &str,
    set_identifier: &str,
) -> (Vec<String>, String, String) {
    let labels = name
        .trim_end_matches('.')
        .split('.')
        .rev()
        .map(str::to_string)
        .collect();
    (labels, record_type.to_string(), set_identifier.to_string())
}

/// One change of a batch, as parsed from the request.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordChange {
    pub action: Action,
    pub record: RecordSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Delete,
    Upsert,
}

impl Action {
    pub fn parse(text: &str) -> Option<Action> {
        match text {
            "CREATE" => Some(Action::Create),
            "DELETE" => Some(Action::Delete),
            "UPSERT" => Some(Action::Upsert),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Delete => "DELETE",
            Action::Upsert => "UPSERT",
        }
    }
}

/// What alias records may target outside their own zone: the load balancers of the simulated
/// ELBv2 (every account and region), as `(DNS name, canonical hosted zone ID)`.
#[derive(Debug, Default)]
pub struct AliasTargets {
    pub load_balancers: Vec<(String, String)>,
}

/// Applies a batch to a copy of the zone's record sets. Returns the new record sets, or every
/// reason the batch is invalid, worded as Route 53 words them (it reports all of them at once).
pub fn apply_batch(
    zone: &HostedZone,
    changes: &[RecordChange],
    targets: &AliasTargets,
) -> Result<Vec<RecordSet>, Vec<String>> {
    let mut records = zone.records.clone();
    let mut problems = Vec::new();
    for change in changes {
        if let Err(problem) = apply_one(zone, &mut records, change, targets) {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        records.sort_by_key(RecordSet::order_key);
        Ok(records)
    } else {
        Err(problems)
    }
}

fn apply_one(
    zone: &HostedZone,
    records: &mut Vec<RecordSet>,
    change: &RecordChange,
    targets: &AliasTargets,
) -> Result<(), String> {
    let record = &change.record;
    if !in_zone(&record.name, &zone.name) {
        return Err(format!(
            "RRSet with DNS name {} is not permitted in zone {}",
            wire_name(&record.name),
            wire_name(&zone.name)
        ));
    }
    let existing = records.iter().position(|r| r.same_set(record));
    let apex = record.name == zone.name;
    match change.action {
        Action::Create => {
            if existing.is_some() {
                return Err(format!(
                    "Tried to create resource record set {} but it already exists",
                    record.describe()
                ));
            }
            check_written(zone, records, record, targets)?;
            records.push(record.clone());
        }
        Action::Upsert => {
            if apex && record.record_type == "SOA" && existing.is_none() {
                return Err("A HostedZone must contain exactly one SOA record.".to_string());
            }
            check_written(zone, records, record, targets)?;
            match existing {
                Some(i) => records[i] = record.clone(),
                None => records.push(record.clone()),
            }
        }
        Action::Delete => {
            let Some(i) = existing else {
                return Err(format!(
                    "Tried to delete resource record set {} but it was not found",
                    record.describe()
                ));
            };
            if !records[i].same_values(record) {
                return Err(format!(
                    "Tried to delete resource record set {} but the values provided do not match the current values",
                    record.describe()
                ));
            }
            if apex && record.record_type == "SOA" {
                return Err("A HostedZone must contain exactly one SOA record.".to_string());
            }
            if apex && record.record_type == "NS" {
                return Err(
                    "A HostedZone must contain at least one NS record for the zone itself."
                        .to_string(),
                );
            }
            records.remove(i);
        }
    }
    Ok(())
}

/// The rules a set written by CREATE or UPSERT must keep, beside the other sets of its name.
fn check_written(
    zone: &HostedZone,
    records: &[RecordSet],
    record: &RecordSet,
    targets: &AliasTargets,
) -> Result<(), String> {
    check_cname_conflict(zone, records, record)?;
    check_values(record)?;
    check_routing_group(records, record)?;
    check_alias_target(zone, records, record, targets)
}

/// A values must be IPv4 addresses and AAAA values IPv6 addresses, in Route 53's wording
/// ("Supported DNS record types", Route 53 Developer Guide: "A record type ... IPv4 format",
/// "AAAA record type ... IPv6 format").
fn check_values(record: &RecordSet) -> Result<(), String> {
    let (valid, code, family): (fn(&str) -> bool, &str, &str) = match record.record_type.as_str() {
        "A" => (
            |v| v.parse::<std::net::Ipv4Addr>().is_ok(),
            "ARRDATAIllegalIPv4Address",
            "IPv4",
        ),
        "AAAA" => (
            |v| v.parse::<std::net::Ipv6Addr>().is_ok(),
            "AAAARRDATAIllegalIPv6Address",
            "IPv6",
        ),
        _ => return Ok(()),
    };
    match record.values.iter().find(|v| !valid(v)) {
        Some(value) => Err(format!(
            "Invalid Resource Record: 'FATAL problem: {code} (Value is not a valid {family} address) encountered with '{value}''"
        )),
        None => Ok(()),
    }
}

/// The routing-policy rules of a name and type ("Choosing a routing policy" and "Values specific
/// for ... records", Route 53 Developer Guide): a simple set stands alone; the sets of a policy
/// group all have a SetIdentifier and the same policy; a failover group has one PRIMARY and one
/// SECONDARY. Messages as Route 53 gives them (chef-boneyard/route53#100,
/// kubernetes-sigs/external-dns#3141); the failover wording is ours, Route 53 refuses the same.
fn check_routing_group(records: &[RecordSet], record: &RecordSet) -> Result<(), String> {
    let others: Vec<&RecordSet> = records
        .iter()
        .filter(|r| {
            r.name == record.name && r.record_type == record.record_type && !r.same_set(record)
        })
        .collect();
    let name = wire_name(&record.name);
    let Some(identifier) = &record.set_identifier else {
        if others.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "RRSet with DNS name {name} and type {} cannot be created as other RRSets exist with the same name and type.",
            record.record_type
        ));
    };
    let policy = record.policy();
    if others.iter().any(|o| o.policy() != policy) {
        return Err(format!(
            "RRSet with DNS name {name}, type {}, SetIdentifier {identifier} cannot be created as a non-{} set exists with the same name and type.",
            record.record_type,
            policy.unwrap_or("simple")
        ));
    }
    if let Some(role) = &record.failover
        && let Some(other) = others.iter().find(|o| o.failover.as_ref() == Some(role))
    {
        return Err(format!(
            "RRSet with DNS name {name}, type {}, SetIdentifier {identifier} cannot be created as a {role} failover set ({}) exists with the same name and type: a failover group has one PRIMARY and one SECONDARY.",
            record.record_type,
            other.set_identifier.as_deref().unwrap_or_default()
        ));
    }
    Ok(())
}

/// An alias must target something that exists: a set of its zone (same type), or a load
/// balancer under its canonical hosted zone ("Value/route traffic to", alias records, Route 53
/// Developer Guide). Targets the simulator does not model (CloudFront, S3 websites, API
/// Gateway) are accepted.
fn check_alias_target(
    zone: &HostedZone,
    records: &[RecordSet],
    record: &RecordSet,
    targets: &AliasTargets,
) -> Result<(), String> {
    let Some(alias) = &record.alias else {
        return Ok(());
    };
    let refused = |why: &str| {
        Err(format!(
            "Tried to create an alias that targets {}, type {} in zone {}, but {why}",
            wire_name(&alias.dns_name),
            record.record_type,
            alias.hosted_zone_id
        ))
    };
    if alias.hosted_zone_id == zone.id {
        if !in_zone(&alias.dns_name, &zone.name) {
            return refused("the alias target name does not lie within the target zone");
        }
        if !records
            .iter()
            .any(|r| r.name == alias.dns_name && r.record_type == record.record_type)
        {
            return refused("that target was not found");
        }
        return Ok(());
    }
    let bare = alias.dns_name.trim_end_matches('.');
    if bare.ends_with(".elb.amazonaws.com") {
        let bare = bare.trim_start_matches("dualstack.");
        let found = targets.load_balancers.iter().any(|(dns, canonical)| {
            dns.eq_ignore_ascii_case(bare) && *canonical == alias.hosted_zone_id
        });
        if !found {
            return refused("the alias target name does not lie within the target zone");
        }
    }
    Ok(())
}

/// A CNAME cannot share its name with any other record set.
fn check_cname_conflict(
    zone: &HostedZone,
    records: &[RecordSet],
    record: &RecordSet,
) -> Result<(), String> {
    let others = records
        .iter()
        .filter(|r| r.name == record.name && !r.same_set(record));
    for other in others {
        if record.record_type == "CNAME" && other.record_type != "CNAME" {
            return Err(format!(
                "RRSet of type CNAME with DNS name {} is not permitted as it conflicts with other records with the same DNS name in zone {}",
                wire_name(&record.name),
                wire_name(&zone.name)
            ));
        }
        if record.record_type != "CNAME" && other.record_type == "CNAME" {
            return Err(format!(
                "RRSet of type {} with DNS name {} is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists in zone {}",
                record.record_type,
                wire_name(&record.name),
                wire_name(&zone.name)
            ));
        }
    }
    Ok(())
}

impl HostedZone {
    /// A new zone with the SOA and NS record sets Route 53 creates with every zone.
    pub fn new(
        id: &str,
        name: &str,
        caller_reference: &str,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> HostedZone {
        let name = normalize_name(name);
        let name_servers = name_servers_for(id);
        let soa = RecordSet {
            ttl: Some(900),
            values: vec![format!(
                "{} awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",
                name_servers[0]
            )],
            ..plain(&name, "SOA")
        };
        let ns = RecordSet {
            ttl: Some(172800),
            values: name_servers.clone(),
            ..plain(&name, "NS")
        };
        let mut records = vec![ns, soa];
        records.sort_by_key(RecordSet::order_key);
        HostedZone {
            id: id.to_string(),
            name,
            caller_reference: caller_reference.to_string(),
            comment,
            private_zone: false,
            created_at: now,
            name_servers,
            records,
        }
    }
}

/// An empty record set of a name and type.
pub fn plain(name: &str, record_type: &str) -> RecordSet {
    RecordSet {
        name: name.to_string(),
        record_type: record_type.to_string(),
        set_identifier: None,
        weight: None,
        region: None,
        failover: None,
        geo_location: None,
        multi_value_answer: None,
        health_check_id: None,
        ttl: None,
        values: Vec::new(),
        alias: None,
    }
}

/// Four name servers in the four Route 53 TLDs, derived from the zone ID so that they are
/// stable across restarts and seedings.
fn name_servers_for(zone_id: &str) -> Vec<String> {
    let digest = Sha256::digest(zone_id.as_bytes());
    let n = |i: usize| u16::from_be_bytes([digest[2 * i], digest[2 * i + 1]]);
    vec![
        format!("ns-{}.awsdns-{:02}.com.", n(0) % 512, n(4) % 64),
        format!("ns-{}.awsdns-{:02}.net.", 512 + n(1) % 512, n(5) % 64),
        format!("ns-{}.awsdns-{:02}.org.", 1024 + n(2) % 512, n(6) % 64),
        format!("ns-{}.awsdns-{:02}.co.uk.", 1536 + n(3) % 512, n(7) % 64),
    ]
}

/// A Route 53 style ID: a prefix letter and uppercase letters and digits (21 characters).
pub fn new_id(prefix: char, rng: &mut impl rand::Rng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = String::from(prefix);
    id.push('0');
    for _ in 0..19 {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(zone: &HostedZone, changes: &[RecordChange]) -> Result<Vec<RecordSet>, Vec<String>> {
        apply_batch(zone, changes, &AliasTargets::default())
    }

    fn zone() -> HostedZone {
        HostedZone::new("Z0TEST", "example.com", "ref", None, Utc::now())
    }

    fn a(name: &str, ip: &str) -> RecordSet {
        RecordSet {
            ttl: Some(60),
            values: vec![ip.to_string()],
            ..plain(&normalize_name(name), "A")
        }
    }

    #[test]
    fn new_zones_have_ns_then_soa_at_the_apex() {
        let z = zone();
        let kinds: Vec<_> = z.records.iter().map(|r| r.record_type.as_str()).collect();
        assert_eq!(kinds, ["NS", "SOA"]);
        assert_eq!(z.records[0].values.len(), 4);
        assert_eq!(z.name, "example.com.");
    }

    #[test]
    fn records_are_ordered_by_reversed_labels_then_type() {
        let mut z = zone();
        let batch = vec![
            RecordChange {
                action: Action::Create,
                record: a("b.example.com", "10.0.0.2"),
            },
            RecordChange {
                action: Action::Create,
                record: a("a.b.example.com", "10.0.0.3"),
            },
            RecordChange {
                action: Action::Create,
                record: a("a-b.example.com", "10.0.0.4"),
            },
        ];
        z.records = apply(&z, &batch).unwrap();
        let names: Vec<_> = z
            .records
            .iter()
            .map(|r| (r.name.as_str(), r.record_type.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("example.com.", "NS"),
                ("example.com.", "SOA"),
                ("a-b.example.com.", "A"),
                ("b.example.com.", "A"),
                ("a.b.example.com.", "A"),
            ]
        );
    }

    #[test]
    fn a_batch_with_one_bad_change_changes_nothing_and_reports_every_problem() {
        let mut z = zone();
        z.records = apply(
            &z,
            &[RecordChange {
                action: Action::Create,
                record: a("api.example.com", "10.0.0.1"),
            }],
        )
        .unwrap();
        let problems = apply(
            &z,
            &[
                RecordChange {
                    action: Action::Upsert,
                    record: a("www.example.com", "10.0.0.9"),
                },
                RecordChange {
                    action: Action::Create,
                    record: a("api.example.com", "10.0.0.2"),
                },
                RecordChange {
                    action: Action::Delete,
                    record: a("gone.example.com", "10.0.0.3"),
                },
                RecordChange {
                    action: Action::Delete,
                    record: a("api.example.com", "10.0.0.4"),
                },
                RecordChange {
                    action: Action::Create,
                    record: a("api.other.com", "10.0.0.5"),
                },
            ],
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "Tried to create resource record set [name='api.example.com.', type='A'] but it already exists",
                "Tried to delete resource record set [name='gone.example.com.', type='A'] but it was not found",
                "Tried to delete resource record set [name='api.example.com.', type='A'] but the values provided do not match the current values",
                "RRSet with DNS name api.other.com. is not permitted in zone example.com.",
            ]
        );
    }

    #[test]
    fn delete_then_create_in_one_batch_is_a_replacement() {
        let mut z = zone();
        z.records = apply(
            &z,
            &[RecordChange {
                action: Action::Create,
                record: a("api.example.com", "10.0.0.1"),
            }],
        )
        .unwrap();
        let records = apply(
            &z,
            &[
                RecordChange {
                    action: Action::Delete,
                    record: a("api.example.com", "10.0.0.1"),
                },
                RecordChange {
                    action: Action::Create,
                    record: a("api.example.com", "10.0.0.2"),
                },
            ],
        )
        .unwrap();
        let api = records
            .iter()
            .find(|r| r.name == "api.example.com.")
            .unwrap();
        assert_eq!(api.values, ["10.0.0.2"]);
    }

    #[test]
    fn the_apex_soa_and_ns_cannot_be_deleted() {
        let z = zone();
        let ns = z.records[0].clone();
        let problems = apply(
            &z,
            &[RecordChange {
                action: Action::Delete,
                record: ns,
            }],
        )
        .unwrap_err();
        assert!(
            problems[0].contains("at least one NS record"),
            "{problems:?}"
        );
    }

    fn failover(id: &str, role: &str) -> RecordSet {
        RecordSet {
            set_identifier: Some(id.into()),
            failover: Some(role.into()),
            ..a("www.example.com", "10.0.0.1")
        }
    }

    #[test]
    fn a_failover_group_has_one_primary_and_one_secondary() {
        let mut z = zone();
        let create = |record| RecordChange {
            action: Action::Create,
            record,
        };
        z.records = apply(
            &z,
            &[
                create(failover("one", "PRIMARY")),
                create(failover("two", "SECONDARY")),
            ],
        )
        .unwrap();
        let problems = apply(&z, &[create(failover("three", "PRIMARY"))]).unwrap_err();
        assert_eq!(
            problems,
            [
                "RRSet with DNS name www.example.com., type A, SetIdentifier three cannot be created as a PRIMARY failover set (one) exists with the same name and type: a failover group has one PRIMARY and one SECONDARY."
            ]
        );
        // Replacing the group by a simple record in one batch is allowed.
        let records = apply(
            &z,
            &[
                RecordChange {
                    action: Action::Delete,
                    record: failover("one", "PRIMARY"),
                },
                RecordChange {
                    action: Action::Delete,
                    record: failover("two", "SECONDARY"),
                },
                create(a("www.example.com", "10.0.0.9")),
            ],
        )
        .unwrap();
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn wildcards_are_escaped_on_the_wire() {
        assert_eq!(normalize_name("\\052.Example.com"), "*.example.com.");
        assert_eq!(wire_name("*.example.com."), "\\052.example.com.");
    }
}
