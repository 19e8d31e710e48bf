//! The validated runbook: plain Rust types the engine can trust.
//!
//! A [`Runbook`] only comes out of [`super::parse`] or [`super::load`], after validation: every
//! identifier has its AWS shape, every wave named by `after`, a load balancer or a DNS record
//! exists, the waves form no cycle, and no server belongs to two waves. Its private wave order is
//! why it cannot be built by hand.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One application's DR runbook (DESIGN section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runbook {
    pub name: String,
    pub description: Option<String>,
    pub objectives: Objectives,
    /// Where A1 runs and where failback lands.
    pub source: Side,
    /// The recovery account and region where B1 replicates.
    pub target: Side,
    /// The waves in file order; [`Runbook::waves_in_order`] gives them in dependency order.
    pub waves: Vec<Wave>,
    pub load_balancers: Vec<LoadBalancer>,
    pub dns: Vec<DnsRecord>,
    /// Route 53 ARC routing controls switched at cutover (`[[routing_control]]`).
    pub routing_controls: Vec<RoutingControl>,
    pub approvals: Approvals,
    pub cleanup: Cleanup,
    /// How a failover or drill orders its waves' recovery (the optional `[recovery]` table).
    pub recovery: Recovery,
    /// What `drs-runbook doctor` looks for (the optional `[doctor]` table).
    pub doctor: DoctorSettings,
    /// How a planned failover fences the source (the optional `[failover]` table).
    pub failover: FailoverSettings,
    /// Where a failback launches A3 (the optional `[failback]` table).
    pub failback: FailbackSettings,
    /// Indexes into `waves`, topologically sorted (computed once by validation).
    pub(super) wave_order: Vec<usize>,
}

/// The recovery objectives; both optional (a runbook without them is measured, not judged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objectives {
    /// Run start -> traffic served by recovered servers.
    pub rto: Option<Duration>,
    /// Declared disaster time -> data timestamp of the snapshot used.
    pub rpo: Option<Duration>,
}

/// Which side's account and credentials own a resource.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    Source,
    Target,
}

impl Account {
    pub fn as_str(self) -> &'static str {
        match self {
            Account::Source => "source",
            Account::Target => "target",
        }
    }
}

/// An account and region, and how to get credentials for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub account_id: String,
    pub region: String,
    pub credentials: Credentials,
}

/// How the engine obtains credentials for a side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// The standard AWS chain (environment, default profile, SSO, instance role).
    DefaultChain,
    /// A named profile of the shared AWS config.
    Profile(String),
    /// Assume this role (in the side's account) from the default chain.
    AssumeRole {
        role_arn: String,
        external_id: Option<String>,
    },
}

/// A group of servers recovered together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    pub name: String,
    /// Waves that must complete first.
    pub after: Vec<String>,
    /// DRS source server IDs (B1, in the target account).
    pub servers: Vec<String>,
    /// Servers found by tags at plan time, in addition to `servers`.
    pub select: Option<Select>,
    /// Servers (among `servers`) whose failure does not fail the wave.
    pub optional: Vec<String>,
    /// How long the wave's launched instances may take to run and pass both EC2 status checks
    /// (the health gate); [`DEFAULT_BOOT_TIMEOUT`] unless the runbook says `boot_timeout`.
    pub boot_timeout: std::time::Duration,
    /// How long `snapshot_conversion:W` waits for the wave's jobs' snapshots and conversions
    /// before it fails as stuck ([`DEFAULT_JOB_TIMEOUT`] unless `conversion_timeout`).
    pub conversion_timeout: std::time::Duration,
    /// How long `launch:W` waits for the wave's jobs to end ([`DEFAULT_JOB_TIMEOUT`] unless
    /// `launch_timeout`); the health gate after it has `boot_timeout`.
    pub launch_timeout: std::time::Duration,
    /// The wave's actions (`[[wave.action]]`), in file order; names unique in the wave.
    pub actions: Vec<Action>,
}

/// A runbook action (`[[wave.action]]`): the step `action:<wave>:<name>` of the plans of the
/// operations it names, ordered against its wave's steps by `when`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    pub when: ActionWhen,
    pub run: ActionRun,
    /// A failed optional action is reported and passed over: the run goes on.
    pub optional: bool,
    /// Whether it may run again after a crash left it in doubt (started, no result recorded);
    /// otherwise the run waits for an operator (`retry` or `skip`).
    pub idempotent: bool,
    /// The operations whose runs include it ([`Action::DEFAULT_OPERATIONS`] unless listed).
    pub operations: Vec<crate::store::Operation>,
}

impl Action {
    /// Every operation but rollback: a rollback runs an action only when it names `rollback`.
    pub const DEFAULT_OPERATIONS: [crate::store::Operation; 3] = [
        crate::store::Operation::Failover,
        crate::store::Operation::Drill,
        crate::store::Operation::Failback,
    ];

    /// The step key of the action of `wave` named `name`.
    pub fn step_key(wave: &str, name: &str) -> String {
        format!("{}:{wave}:{name}", StepKind::Action.as_str())
    }

    pub fn runs_in(&self, operation: crate::store::Operation) -> bool {
        self.operations.contains(&operation)
    }
}

/// Where an action runs among its wave's steps (see `engine::plan` for each operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionWhen {
    /// Before the wave's recovery job starts.
    BeforeRecovery,
    /// Once the wave's instances passed the health gate; before its target groups, validation
    /// or DNS, and before the waves that are `after` it boot.
    AfterBoot,
    /// After the health gate and the `after_boot` actions, before the traffic moves.
    BeforeTraffic,
    /// After the traffic moved (the DNS cutover, or the wave's target group switch).
    AfterTraffic,
}

impl ActionWhen {
    pub const ALL: [ActionWhen; 4] = [
        ActionWhen::BeforeRecovery,
        ActionWhen::AfterBoot,
        ActionWhen::BeforeTraffic,
        ActionWhen::AfterTraffic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionWhen::BeforeRecovery => "before_recovery",
            ActionWhen::AfterBoot => "after_boot",
            ActionWhen::BeforeTraffic => "before_traffic",
            ActionWhen::AfterTraffic => "after_traffic",
        }
    }
}

/// What an action runs: one kind each (`run = { <kind> = ..., <its settings> }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRun {
    /// A local process, no shell: `argv[0]` with the other arguments, in the runbook's
    /// directory; its exit status decides.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
    /// GET `url` until it answers `expect_status` (and contains `expect_body`) or `timeout`.
    Http {
        url: String,
        expect_status: u16,
        expect_body: Option<String>,
        timeout: Duration,
    },
    /// An approval gate whose preview is these instructions.
    Manual { instructions: String },
    /// A DRS post-launch action of the wave's source servers: DRS runs the SSM `document`
    /// (`version`: `$DEFAULT`, `$LATEST` or a number) on each recovery instance; installed
    /// before the recovery, removed after the action's step unless `keep`
    /// (`steps::launch_actions`).
    SsmDocument {
        document: String,
        version: String,
        parameters: std::collections::BTreeMap<String, SsmParameter>,
        keep: bool,
        timeout: Duration,
    },
}

/// A parameter of an `ssm_document` action, as DRS takes one: a name, never a literal value
/// (botocore `drs` LaunchActionParameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsmParameter {
    /// A Parameter Store parameter holding the value (`{ ssm_store = "name" }`).
    SsmStore(String),
    /// A value DRS resolves at launch (`{ dynamic = "..." }`).
    Dynamic(String),
}

impl SsmParameter {
    pub fn value(&self) -> &str {
        match self {
            SsmParameter::SsmStore(v) | SsmParameter::Dynamic(v) => v,
        }
    }

    /// The parameter's `type` on the wire.
    pub fn wire_type(&self) -> &'static str {
        match self {
            SsmParameter::SsmStore(_) => "SSM_STORE",
            SsmParameter::Dynamic(_) => "DYNAMIC",
        }
    }
}

impl ActionRun {
    /// The run kinds, as the keys of `run` name them.
    pub const KINDS: [&str; 4] = ["command", "http", "manual", "ssm_document"];

    /// The default `timeout` of a command or an HTTP check.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

    pub fn kind(&self) -> &'static str {
        match self {
            ActionRun::Command { .. } => "command",
            ActionRun::Http { .. } => "http",
            ActionRun::Manual { .. } => "manual",
            ActionRun::SsmDocument { .. } => "ssm_document",
        }
    }
}

/// The health gate's default boot timeout: 20 minutes, the time AWS gives a Windows instance
/// to boot (Linux: 5 minutes), so a default never fails a healthy server that boots slowly.
pub const DEFAULT_BOOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20 * 60);

/// The default deadline of a wave's conversion and of its launch: DRS converts and launches a
/// server in minutes; hours mean a stuck job.
pub const DEFAULT_JOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2 * 60 * 60);

impl Wave {
    pub fn is_optional(&self, server: &str) -> bool {
        self.optional.iter().any(|s| s == server)
    }
}

/// A tag filter selecting source servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    pub tags: BTreeMap<String, String>,
}

impl Select {
    /// Whether a source server with these tags is selected: every selector tag is equal (the
    /// one rule preflight and the production guard both apply).
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
    }
}

/// An ELBv2 target group switched to a wave's recovered instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancer {
    pub wave: String,
    /// In the target account and region (failover).
    pub target_group_arn: String,
    /// In the source account and region (failback).
    pub failback_target_group_arn: Option<String>,
    /// In the target account and region: a drill registers its drill instances here and waits
    /// until they are healthy (validate), then removes them (cleanup). Never the production
    /// group, so a drill moves no traffic.
    pub drill_target_group_arn: Option<String>,
    pub port: Option<u16>,
}

/// A Route 53 record cut over to the recovered servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub hosted_zone_id: String,
    pub account: Account,
    pub name: String,
    pub record_type: RecordType,
    pub ttl: Option<u32>,
    pub points_to: PointsTo,
    /// The set of a policy group (weighted, failover, ...) the cutover writes; its routing
    /// fields are kept as found.
    pub set_identifier: Option<String>,
    /// Weighted groups: the weight of each set (by set identifier) at cutover.
    pub weights: BTreeMap<String, u8>,
}

/// A Route 53 ARC routing control the cutover sets through the cluster's data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingControl {
    pub arn: String,
    /// Whose credentials change it.
    pub account: Account,
    /// `On` or `Off`: its state after the cutover (a failback sets the other one).
    pub state: String,
    /// The cluster's endpoints, tried in turn.
    pub endpoints: Vec<ClusterEndpoint>,
}

/// One regional endpoint of an ARC cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClusterEndpoint {
    pub url: String,
    pub region: String,
}

/// The record types a cutover can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RecordType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
}

impl RecordType {
    pub const ALL: [RecordType; 3] = [RecordType::A, RecordType::Aaaa, RecordType::Cname];

    /// The Route 53 spelling (`"A"`, `"AAAA"`, `"CNAME"`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
        }
    }

    pub fn from_name(name: &str) -> Option<RecordType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// What a record points at after cutover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointsTo {
    /// The recovered instances' private IPs of this wave.
    Wave(String),
    /// An alias to a load balancer: its DNS name and its canonical hosted zone ID.
    LoadBalancer { dns_name: String, zone: String },
}

/// The step kinds of DESIGN section 5; durable names, never renamed once shipped.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Preflight,
    FenceSource,
    RecoveryJob,
    SnapshotConversion,
    Launch,
    /// Starts a wave launched `STOPPED` once its `after` waves passed the health gate, then
    /// holds it at the gate (convert ahead, boot in order).
    Boot,
    LbSwitch,
    DnsCutover,
    Validate,
    ReversedReplication,
    /// A failback stops the traffic to the failover's recovery instances (B3) and waits until
    /// their last writes reached A2.
    Quiesce,
    A2Recovery,
    Cleanup,
    /// A runbook action (`[[wave.action]]`): a command, an HTTP check or a manual step.
    Action,
}

impl StepKind {
    pub const ALL: [StepKind; 14] = [
        StepKind::Preflight,
        StepKind::FenceSource,
        StepKind::RecoveryJob,
        StepKind::SnapshotConversion,
        StepKind::Launch,
        StepKind::Boot,
        StepKind::LbSwitch,
        StepKind::DnsCutover,
        StepKind::Validate,
        StepKind::ReversedReplication,
        StepKind::Quiesce,
        StepKind::A2Recovery,
        StepKind::Cleanup,
        StepKind::Action,
    ];

    /// The durable name, as written in runbooks and stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Preflight => "preflight",
            StepKind::FenceSource => "fence_source",
            StepKind::RecoveryJob => "recovery_job",
            StepKind::SnapshotConversion => "snapshot_conversion",
            StepKind::Launch => "launch",
            StepKind::Boot => "boot",
            StepKind::LbSwitch => "lb_switch",
            StepKind::DnsCutover => "dns_cutover",
            StepKind::Validate => "validate",
            StepKind::ReversedReplication => "reversed_replication",
            StepKind::Quiesce => "quiesce",
            StepKind::A2Recovery => "a2_recovery",
            StepKind::Cleanup => "cleanup",
            StepKind::Action => "action",
        }
    }

    pub fn from_name(name: &str) -> Option<StepKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[recovery]`: how a failover or drill orders its waves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Convert ahead, boot in order (default): every wave's recovery job starts at once, the
    /// waves with `after` dependencies launched `STOPPED` and started as soon as their `after`
    /// waves pass the health gate. `false`: a wave's recovery starts only after its `after`
    /// waves passed the gate (one full job per wave, in sequence).
    pub convert_ahead: bool,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            convert_ahead: true,
        }
    }
}

/// Step kinds that wait for an operator (skipped with `--yes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approvals {
    pub before: Vec<StepKind>,
}

/// What cleanup does after a successful failback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleanup {
    pub terminate_recovery_instances: bool,
    pub stop_source_replication: bool,
    /// What becomes of the original source instances (A1) once the failback is done.
    pub source_instances: SourceInstances,
    /// ReverseReplication on each A3 after the cutback, so that B1 protects A4 instead of A1
    /// (drs-api.md 4.2 step 3). Default on.
    pub reprotect: bool,
}

impl Default for Cleanup {
    fn default() -> Self {
        Cleanup {
            terminate_recovery_instances: false,
            stop_source_replication: false,
            source_instances: SourceInstances::Stop,
            reprotect: true,
        }
    }
}

/// `[cleanup] source_instances`: a failed-back-from A1 whose agent still runs would replicate
/// its stale disk into B1, and the next failover would recover it (real-aws-gaps.md 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceInstances {
    /// StopInstances (the default): the instances can still be inspected or started by hand.
    Stop,
    /// TerminateInstances: AWS's last failback step; cannot be undone.
    Terminate,
    /// Left as they are (refused while `reprotect` is on).
    Keep,
}

impl SourceInstances {
    pub const ALL: [SourceInstances; 3] = [
        SourceInstances::Stop,
        SourceInstances::Terminate,
        SourceInstances::Keep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceInstances::Stop => "stop",
            SourceInstances::Terminate => "terminate",
            SourceInstances::Keep => "keep",
        }
    }
}

/// `[failover]`: a planned failover stops the source instances (A1) and waits until
/// replication has caught up before it recovers (`fence_source`), so nothing written to the
/// source is lost; `fence_timeout` bounds that wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSettings {
    pub fence_source: bool,
    pub fence_timeout: Duration,
}

impl Default for FailoverSettings {
    fn default() -> Self {
        FailoverSettings {
            fence_source: true,
            fence_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// `[failback]`: the launch settings a failback gives every A2 before it launches A3 (A2 is a
/// new source server: without them it launches with the origin's defaults). Unset, the subnet is
/// the old source instance's (A1), and the security groups and instance type stay as in A2's
/// launch template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailbackSettings {
    pub subnet_id: Option<String>,
    pub security_group_ids: Option<Vec<String>>,
    pub instance_type: Option<String>,
}

/// The roles and keys of the cross-account setup that `drs-runbook doctor` checks. Every value
/// has a default: the standard names of the DRS cross-account setup, so a runbook without a
/// `[doctor]` table is checked against the standard setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorSettings {
    /// The KMS key encrypting the source servers' volumes (source account and region): a key
    /// ARN, a key ID, an alias name (`alias/...`) or an alias ARN.
    pub source_kms_key: String,
    /// The KMS key DRS encrypts replicated volumes with (target account and region).
    pub target_kms_key: String,
    /// Role names; `{peer}` stands for the other side's account ID.
    pub staging_role: String,
    pub replication_role: String,
    pub agent_role: String,
    pub agent_authorized_role: String,
    /// Whether the roles of the failback direction (target -> source) are checked too.
    pub failback: bool,
    /// How recently each server's agent must have been seen by DRS.
    pub agent_seen_within: Duration,
}

impl Default for DoctorSettings {
    fn default() -> Self {
        DoctorSettings {
            source_kms_key: DoctorSettings::SOURCE_KEY_ALIAS.to_string(),
            target_kms_key: DoctorSettings::TARGET_KEY_ALIAS.to_string(),
            staging_role: "DRSStagingAccountRole".to_string(),
            replication_role: "DRSCrossAccountReplicationRole".to_string(),
            agent_role: "DRSCrossAccountAgentRole_{peer}".to_string(),
            agent_authorized_role: "DRSCrossAccountAgentAuthorizedRole_{peer}".to_string(),
            failback: true,
            agent_seen_within: Duration::from_secs(10 * 60),
        }
    }
}

impl DoctorSettings {
    pub const SOURCE_KEY_ALIAS: &str = "alias/drs-source-key";
    pub const TARGET_KEY_ALIAS: &str = "alias/drs-target-key";
}

/// A server of the runbook with the wave it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerRef<'a> {
    pub source_server_id: &'a str,
    pub wave: &'a str,
    pub optional: bool,
}

impl Runbook {
    /// The waves in dependency order: every wave after the waves it names in `after`; waves
    /// that do not depend on each other keep their file order.
    pub fn waves_in_order(&self) -> impl Iterator<Item = &Wave> {
        self.wave_order.iter().map(|&index| &self.waves[index])
    }

    /// The wave with this name.
    pub fn wave(&self, name: &str) -> Option<&Wave> {
        self.waves.iter().find(|w| w.name == name)
    }

    /// Every server named in a wave, in dependency order of the waves.
    pub fn servers(&self) -> Vec<ServerRef<'_>> {
        self.waves_in_order()
            .flat_map(|wave| {
                wave.servers.iter().map(move |server| ServerRef {
                    source_server_id: server,
                    wave: &wave.name,
                    optional: wave.is_optional(server),
                })
            })
            .collect()
    }

    /// The side (account, region, credentials) named by `account`.
    pub fn side(&self, account: Account) -> &Side {
        match account {
            Account::Source => &self.source,
            Account::Target => &self.target,
        }
    }

    pub fn rto(&self) -> Option<Duration> {
        self.objectives.rto
    }

    pub fn rpo(&self) -> Option<Duration> {
        self.objectives.rpo
    }

    /// Whether the runbook asks for an operator's approval before steps of this kind.
    pub fn approval_required(&self, kind: StepKind) -> bool {
        self.approvals.before.contains(&kind)
    }

    /// The action of `wave` named `name`.
    pub fn action(&self, wave: &str, name: &str) -> Option<&Action> {
        self.wave(wave)?.actions.iter().find(|a| a.name == name)
    }

    /// The load balancers switched for this wave.
    pub fn load_balancers_of(&self, wave: &str) -> impl Iterator<Item = &LoadBalancer> {
        self.load_balancers.iter().filter(move |lb| lb.wave == wave)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_selection_matches_a_server_carrying_every_selector_tag_with_its_value() {
        let select = Select {
            tags: tags(&[("App", "payments"), ("Tier", "db")]),
        };
        assert!(select.matches(&tags(&[
            ("App", "payments"),
            ("Tier", "db"),
            ("Owner", "x")
        ])));
        assert!(
            !select.matches(&tags(&[("App", "payments")])),
            "a tag missing"
        );
        assert!(
            !select.matches(&tags(&[("App", "payments"), ("Tier", "app")])),
            "a tag with another value"
        );
        assert!(
            !select.matches(&tags(&[("app", "payments"), ("tier", "db")])),
            "tag keys are case-sensitive, as in DRS"
        );
    }
}
