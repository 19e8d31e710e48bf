//! The runbook as written: serde types mirroring the TOML, with the span of every value that
//! validation checks, so that each problem names its line and column.
//!
//! Identifiers and enum-like values (`account`, `type`, step kinds) stay strings here: validation
//! turns them into typed values and reports every bad one, where a serde enum would stop at the
//! first. Sections are deserialized one by one (see `document`), so the top level is not a serde
//! type.

use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;

pub type Text = Spanned<String>;

/// An element of an array of tables (`[[wave]]`), with its position in the file's array.
#[derive(Debug)]
pub struct Element<T> {
    pub index: usize,
    pub value: T,
}

/// The sections found in the file; `None` or missing elements where the file lacked them or
/// they could not be read (already reported as problems).
#[derive(Debug, Default)]
pub struct RawRunbook {
    pub name: Option<Text>,
    pub description: Option<Text>,
    pub objectives: Option<RawObjectives>,
    pub source: Option<RawSide>,
    pub target: Option<RawSide>,
    pub waves: Vec<Element<RawWave>>,
    pub load_balancers: Vec<Element<RawLoadBalancer>>,
    pub dns: Vec<Element<RawDnsRecord>>,
    pub routing_controls: Vec<Element<RawRoutingControl>>,
    pub approvals: Option<RawApprovals>,
    pub cleanup: Option<RawCleanup>,
    pub recovery: Option<RawRecovery>,
    pub doctor: Option<RawDoctor>,
    pub failover: Option<RawFailover>,
    pub failback: Option<RawFailback>,
    pub status: ReadStatus,
}

/// How complete the reading was.
#[derive(Debug, Default)]
pub struct ReadStatus {
    /// Sections (`wave`, `source`, ...) of which some part could not be read at all: the checks
    /// that refer to them are skipped, as they would report consequences instead of causes.
    pub incomplete: std::collections::BTreeSet<String>,
    /// Key paths dropped from otherwise readable sections because their value was malformed.
    pub dropped_keys: Vec<String>,
}

impl ReadStatus {
    /// Marks the section that `key` (e.g. `wave[2].servers`) belongs to as incomplete.
    pub fn mark_incomplete(&mut self, key: &str) {
        let section = key.split(['[', '.']).next().unwrap_or(key);
        self.incomplete.insert(section.to_string());
    }

    pub fn is_complete(&self, section: &str) -> bool {
        !self.incomplete.contains(section)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectives {
    #[serde(default)]
    pub rto: Option<Text>,
    #[serde(default)]
    pub rpo: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSide {
    pub account_id: Text,
    pub region: Text,
    #[serde(default)]
    pub profile: Option<Text>,
    #[serde(default)]
    pub role_arn: Option<Text>,
    #[serde(default)]
    pub external_id: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWave {
    pub name: Text,
    #[serde(default)]
    pub after: Vec<Text>,
    #[serde(default)]
    pub servers: Vec<Text>,
    #[serde(default)]
    pub select: Option<Spanned<RawSelect>>,
    #[serde(default)]
    pub optional: Vec<Text>,
    #[serde(default)]
    pub boot_timeout: Option<Text>,
    #[serde(default)]
    pub conversion_timeout: Option<Text>,
    #[serde(default)]
    pub launch_timeout: Option<Text>,
    /// `[[wave.action]]`: the wave's actions.
    #[serde(default)]
    pub action: Vec<RawAction>,
}

/// `[[wave.action]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub name: Text,
    pub when: Text,
    pub run: Spanned<RawActionRun>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub idempotent: bool,
    #[serde(default)]
    pub operations: Option<Spanned<Vec<Text>>>,
}

/// An action's `run`: exactly one kind key (`command`, `http`, `manual`, `ssm_document`), and that kind's
/// settings. A struct rather than an enum so that validation can name every wrong key at once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActionRun {
    #[serde(default)]
    pub command: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub http: Option<Text>,
    #[serde(default)]
    pub manual: Option<Text>,
    #[serde(default)]
    pub ssm_document: Option<Text>,
    #[serde(default)]
    pub timeout: Option<Text>,
    #[serde(default)]
    pub expect_status: Option<Spanned<u16>>,
    #[serde(default)]
    pub expect_body: Option<Text>,
    /// `ssm_document`: `{ <name> = { ssm_store = "..." } | { dynamic = "..." } }`, read loosely
    /// so that validation can say why a literal value is refused.
    #[serde(default)]
    pub parameters: Option<Spanned<std::collections::BTreeMap<String, Spanned<toml::Value>>>>,
    #[serde(default)]
    pub version: Option<Text>,
    #[serde(default)]
    pub keep: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelect {
    pub tags: Spanned<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoadBalancer {
    pub wave: Text,
    pub target_group_arn: Text,
    #[serde(default)]
    pub failback_target_group_arn: Option<Text>,
    #[serde(default)]
    pub drill_target_group_arn: Option<Text>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsRecord {
    pub hosted_zone_id: Text,
    pub account: Text,
    pub name: Text,
    #[serde(rename = "type")]
    pub record_type: Text,
    #[serde(default)]
    pub ttl: Option<u32>,
    pub points_to: Spanned<RawPointsTo>,
    #[serde(default)]
    pub set_identifier: Option<Text>,
    #[serde(default)]
    pub weights: Option<Spanned<BTreeMap<String, i64>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutingControl {
    pub arn: Text,
    pub account: Text,
    pub state: Text,
    pub endpoints: Spanned<Vec<RawClusterEndpoint>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterEndpoint {
    pub url: Text,
    pub region: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPointsTo {
    #[serde(default)]
    pub wave: Option<Text>,
    #[serde(default)]
    pub load_balancer: Option<Text>,
    #[serde(default)]
    pub zone: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    #[serde(default)]
    pub before: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCleanup {
    #[serde(default)]
    pub terminate_recovery_instances: bool,
    #[serde(default)]
    pub stop_source_replication: bool,
    /// `stop` | `terminate` | `keep`: what a failback does to the original source instances (A1).
    #[serde(default)]
    pub source_instances: Option<Text>,
    /// Whether a failback re-protects the failed-back servers (ReverseReplication on A3).
    #[serde(default)]
    pub reprotect: Option<bool>,
}

/// `[failover]`: how a planned failover fences the source; every key optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    #[serde(default)]
    pub fence_source: Option<bool>,
    #[serde(default)]
    pub fence_timeout: Option<Text>,
}

/// `[failback]`: the launch settings of the failback servers (A2); every key optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailback {
    #[serde(default)]
    pub subnet_id: Option<Text>,
    #[serde(default)]
    pub security_group_ids: Option<Vec<Text>>,
    #[serde(default)]
    pub instance_type: Option<Text>,
}

/// `[recovery]`: how a failover or drill orders its waves' recovery.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecovery {
    #[serde(default)]
    pub convert_ahead: Option<bool>,
}

/// `[doctor]`: which roles and keys `drs-runbook doctor` checks; every key optional (the
/// standard DRS names of the cross-account setup apply), so runbooks without it stay valid.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDoctor {
    #[serde(default)]
    pub source_kms_key: Option<Text>,
    #[serde(default)]
    pub target_kms_key: Option<Text>,
    #[serde(default)]
    pub staging_role: Option<Text>,
    #[serde(default)]
    pub replication_role: Option<Text>,
    #[serde(default)]
    pub agent_role: Option<Text>,
    #[serde(default)]
    pub agent_authorized_role: Option<Text>,
    #[serde(default)]
    pub failback: Option<bool>,
    #[serde(default)]
    pub agent_seen_within: Option<Text>,
}
