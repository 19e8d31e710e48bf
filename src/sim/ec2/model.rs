//! The persisted EC2 state: instances (A1 sources, DRS recovery instances B3/A4), one VPC with
//! one subnet per account and region (plus the VPCs and subnets CreateVpc and CreateSubnet add),
//! and launch templates (one per DRS source server).
//!
//! Instances keep their state and the time it began; state transitions started by the EC2 API
//! (`pending -> running`, `stopping -> stopped`, `shutting-down -> terminated`) carry the time
//! they end and are applied by [`Ec2::advance`]. Status checks are a function of the clock: an
//! instance is `initializing` for its boot time after it reached `running`, then `ok` (or
//! `impaired` under an `impaired_instance` fault).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// EC2 instance states (DRS reports them upper-case in `ec2InstanceState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    #[serde(rename = "SHUTTING-DOWN")]
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    /// The DRS wire value (`SHUTTING-DOWN` has a hyphen).
    pub fn as_drs(self) -> &'static str {
        match self {
            InstanceState::Pending => "PENDING",
            InstanceState::Running => "RUNNING",
            InstanceState::Stopping => "STOPPING",
            InstanceState::Stopped => "STOPPED",
            InstanceState::ShuttingDown => "SHUTTING-DOWN",
            InstanceState::Terminated => "TERMINATED",
        }
    }

    /// The EC2 `instanceState` name and code (EC2 API Reference, InstanceState: the low byte).
    pub fn ec2(self) -> (&'static str, u16) {
        match self {
            InstanceState::Pending => ("pending", 0),
            InstanceState::Running => ("running", 16),
            InstanceState::ShuttingDown => ("shutting-down", 32),
            InstanceState::Terminated => ("terminated", 48),
            InstanceState::Stopping => ("stopping", 64),
            InstanceState::Stopped => ("stopped", 80),
        }
    }

    pub fn from_ec2(name: &str) -> Option<InstanceState> {
        Some(match name {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            _ => return None,
        })
    }
}

/// A state change under way: the state it ends in and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub to: InstanceState,
    pub at: DateTime<Utc>,
}

/// One EC2 instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub instance_id: String,
    pub account: String,
    pub region: String,
    pub private_ip: String,
    pub state: InstanceState,
    pub launched_at: DateTime<Utc>,
    #[serde(default)]
    pub hostname: String,
    /// When `state` began (state files from before EC2 existed: the launch time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_since: Option<DateTime<Utc>>,
    /// When the instance last reached `running` (status checks count from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<Transition>,
    #[serde(default)]
    pub subnet_id: String,
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// The DRS source server this instance was recovered from (recovery instances only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_server_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

fn default_instance_type() -> String {
    "t3.medium".to_string()
}

/// How long status checks stay `initializing` after `running` (Linux: a couple of minutes;
/// AWS: "Linux instances ... within 5 minutes", DRS user guide, "Failback and recovery
/// instance boot"): 60 to 150 seconds, hashed from the instance ID.
pub fn boot_seconds(instance_id: &str) -> i64 {
    60 + (hash_u64(&["boot", instance_id]) % 91) as i64
}

/// The status of one check (`systemStatus` / `instanceStatus`) at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Impaired,
    Initializing,
    NotApplicable,
}

impl CheckStatus {
    /// The summary `status` and the `reachability` detail status.
    pub fn wire(self) -> (&'static str, &'static str) {
        match self {
            CheckStatus::Ok => ("ok", "passed"),
            CheckStatus::Impaired => ("impaired", "failed"),
            CheckStatus::Initializing => ("initializing", "initializing"),
            CheckStatus::NotApplicable => ("not-applicable", "not-applicable"),
        }
    }
}

impl Instance {
    pub fn is_visible(&self, now: DateTime<Utc>) -> bool {
        // "Terminated instances remain visible after termination (for approximately one
        // hour)" (EC2 API Reference, DescribeInstances).
        self.state != InstanceState::Terminated
            || self
                .state_since
                .is_none_or(|since| now - since < Duration::hours(1))
    }

    /// (system status, instance status) at `now`; `impaired` names the failing check.
    pub fn status_checks(
        &self,
        now: DateTime<Utc>,
        impaired: Option<ImpairedCheck>,
    ) -> (CheckStatus, CheckStatus) {
        if self.state != InstanceState::Running {
            return (CheckStatus::NotApplicable, CheckStatus::NotApplicable);
        }
        let since = self
            .running_since
            .or(self.state_since)
            .unwrap_or(self.launched_at);
        if now - since < Duration::seconds(boot_seconds(&self.instance_id)) {
            return (CheckStatus::Initializing, CheckStatus::Initializing);
        }
        match impaired {
            Some(ImpairedCheck::System) => (CheckStatus::Impaired, CheckStatus::Impaired),
            Some(ImpairedCheck::Instance) => (CheckStatus::Ok, CheckStatus::Impaired),
            None => (CheckStatus::Ok, CheckStatus::Ok),
        }
    }

    /// Changes the state now, ending any transition under way.
    pub fn set_state(&mut self, state: InstanceState, at: DateTime<Utc>) {
        if state == InstanceState::Running && self.state != InstanceState::Running {
            self.running_since = Some(at);
        }
        if state != self.state {
            self.state_since = Some(at);
        }
        self.state = state;
        self.transition = None;
    }
}

/// Which status check an `impaired_instance` fault fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ImpairedCheck {
    /// The instance status check (reachability of the OS): the system check passes.
    #[default]
    Instance,
    /// The system status check (the host): both checks fail.
    System,
}

/// A subnet (one per account and region, spanning its VPC).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet_id: String,
    pub vpc_id: String,
    pub account: String,
    pub region: String,
    /// The second octet of `10.N.0.0/16`.
    pub octet: u8,
}

impl Subnet {
    pub fn cidr(&self) -> String {
        format!("10.{}.0.0/16", self.octet)
    }
    pub fn availability_zone(&self) -> String {
        format!("{}a", self.region)
    }
}

/// A VPC made by CreateVpc (the default VPC of an account and region is the one of its
/// [`Ec2::default_subnet`]). The simulator's VPCs are `10.N.0.0/16`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vpc {
    pub vpc_id: String,
    pub account: String,
    pub region: String,
    /// The second octet of `10.N.0.0/16`.
    pub octet: u8,
}

/// The data of one launch template version that DRS reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateVersion {
    pub number: u64,
    #[serde(default)]
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub data: TemplateData,
}

/// An EC2 launch template (DRS creates one per source server: `ec2LaunchTemplateID`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchTemplate {
    pub id: String,
    pub name: String,
    pub account: String,
    pub region: String,
    pub created_at: DateTime<Utc>,
    pub default_version: u64,
    pub versions: Vec<TemplateVersion>,
}

impl LaunchTemplate {
    pub fn latest_version(&self) -> u64 {
        self.versions.last().map(|v| v.number).unwrap_or(1)
    }
    pub fn version(&self, number: u64) -> Option<&TemplateVersion> {
        self.versions.iter().find(|v| v.number == number)
    }
    /// The version DRS launches from: the default one (DRS user guide, "EC2 launch template":
    /// "make sure the new version is set as the default").
    pub fn default_data(&self) -> TemplateData {
        self.version(self.default_version)
            .map(|v| v.data.clone())
            .unwrap_or_default()
    }
}

/// All EC2 state of the simulated cloud (instance IDs are globally unique).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ec2 {
    pub instances: BTreeMap<String, Instance>,
    /// Unused since IPs are hashed within their subnet (kept so old state files load).
    #[serde(default, skip_serializing)]
    pub next_ip: u32,
    /// Subnets by ID.
    #[serde(default)]
    pub subnets: BTreeMap<String, Subnet>,
    /// Launch templates by ID.
    #[serde(default)]
    pub launch_templates: BTreeMap<String, LaunchTemplate>,
    /// How many instances were recovered from each source server
    /// (`"<account>/<region>/<server>"`): the recovered private IP is a function of this count.
    #[serde(default)]
    pub launch_counts: BTreeMap<String, u32>,
    /// VPCs made by CreateVpc, by ID.
    #[serde(default)]
    pub vpcs: BTreeMap<String, Vpc>,
}

fn hash_u64(parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

fn hash_hex(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..len].to_string()
}

impl Ec2 {
    /// The subnet of an account and region (created on first use, deterministic).
    pub fn default_subnet(&mut self, account: &str, region: &str) -> &Subnet {
        let id = format!("subnet-{}", hash_hex(&["subnet", account, region], 17));
        self.subnets.entry(id.clone()).or_insert_with(|| Subnet {
            subnet_id: id,
            vpc_id: format!("vpc-{}", hash_hex(&["vpc", account, region], 17)),
            account: account.to_string(),
            region: region.to_string(),
            octet: 20 + (hash_u64(&["octet", account, region]) % 200) as u8,
        })
    }

    /// The VPC of an account and region.
    pub fn default_vpc(&mut self, account: &str, region: &str) -> String {
        self.default_subnet(account, region).vpc_id.clone()
    }

    /// A new VPC `10.<octet>.0.0/16` (CreateVpc), its ID hashed from how many exist.
    pub fn create_vpc(&mut self, account: &str, region: &str, octet: u8) -> &Vpc {
        let n = self.vpcs.len().to_string();
        let id = format!(
            "vpc-{}",
            hash_hex(&["created-vpc", account, region, &n], 17)
        );
        self.vpcs.entry(id.clone()).or_insert(Vpc {
            vpc_id: id,
            account: account.to_string(),
            region: region.to_string(),
            octet,
        })
    }

    /// A new subnet spanning `vpc` (CreateSubnet), its ID hashed from how many exist.
    pub fn create_subnet(&mut self, vpc: &Vpc) -> &Subnet {
        let n = self.subnets.len().to_string();
        let id = format!(
            "subnet-{}",
            hash_hex(&["created-subnet", &vpc.account, &vpc.region, &n], 17)
        );
        self.subnets.entry(id.clone()).or_insert(Subnet {
            subnet_id: id,
            vpc_id: vpc.vpc_id.clone(),
            account: vpc.account.clone(),
            region: vpc.region.clone(),
            octet: vpc.octet,
        })
    }

    /// Creates an instance in the region's subnet, its IP hashed from its ID.
    pub fn launch(
        &mut self,
        instance_id: String,
        account: &str,
        region: &str,
        state: InstanceState,
        now: DateTime<Utc>,
        hostname: &str,
    ) -> &Instance {
        let subnet = self.default_subnet(account, region).subnet_id.clone();
        let key = instance_id.clone();
        self.launch_in(instance_id, &subnet, &key, state, now, hostname)
    }

    /// Creates an instance in `subnet_id`, its private IP a function of `ip_key` (a free
    /// address found from there on when taken).
    pub fn launch_in(
        &mut self,
        instance_id: String,
        subnet_id: &str,
        ip_key: &str,
        state: InstanceState,
        now: DateTime<Utc>,
        hostname: &str,
    ) -> &Instance {
        let subnet = self
            .subnets
            .get(subnet_id)
            .cloned()
            .expect("a known subnet");
        let ip = self.free_ip(&subnet, ip_key);
        let ipv6 = format!(
            "2600:1f14:{:x}:{:x}::{:x}",
            subnet.octet,
            hash_u64(&[ip_key]) & 0xffff,
            hash_u64(&[ip_key, "v6"]) & 0xffff
        );
        let mut tags = BTreeMap::new();
        if !hostname.is_empty() {
            tags.insert("Name".to_string(), hostname.to_string());
        }
        self.instances.insert(
            instance_id.clone(),
            Instance {
                instance_id: instance_id.clone(),
                account: subnet.account.clone(),
                region: subnet.region.clone(),
                private_ip: ip,
                state,
                launched_at: now,
                hostname: hostname.to_string(),
                state_since: Some(now),
                running_since: (state == InstanceState::Running).then_some(now),
                transition: None,
                subnet_id: subnet.subnet_id.clone(),
                vpc_id: subnet.vpc_id.clone(),
                ipv6: Some(ipv6),
                instance_type: default_instance_type(),
                security_group_ids: Vec::new(),
                source_server_id: None,
                tags,
            },
        );
        self.instances.get(&instance_id).expect("just inserted")
    }

    /// The address of `key` in the subnet: `10.N.x.y` with x.y hashed from the key (never the
    /// five addresses AWS reserves at the ends of a subnet), the next free one if taken by a
    /// live instance.
    fn free_ip(&self, subnet: &Subnet, key: &str) -> String {
        const SPAN: u64 = 65_536 - 5 - 1;
        let mut n = hash_u64(&["ip", key]) % SPAN;
        loop {
            let host = n + 4;
            let ip = format!("10.{}.{}.{}", subnet.octet, host >> 8, host & 0xff);
            let taken = self.instances.values().any(|i| {
                i.private_ip == ip
                    && i.subnet_id == subnet.subnet_id
                    && i.state != InstanceState::Terminated
            });
            if !taken {
                return ip;
            }
            n = (n + 1) % SPAN;
        }
    }

    pub fn get(&self, instance_id: &str) -> Option<&Instance> {
        self.instances.get(instance_id)
    }

    pub fn get_mut(&mut self, instance_id: &str) -> Option<&mut Instance> {
        self.instances.get_mut(instance_id)
    }

    /// Finds a live instance by private IP in an account and region (IP targets).
    pub fn by_ip(&self, account: &str, region: &str, ip: &str) -> Option<&Instance> {
        self.instances.values().find(|i| {
            i.account == account
                && i.region == region
                && i.private_ip == ip
                && i.state != InstanceState::Terminated
        })
    }

    /// Creates the launch template `id` with one default version (idempotent).
    pub fn ensure_launch_template(
        &mut self,
        id: &str,
        name: &str,
        account: &str,
        region: &str,
        subnet_id: &str,
        now: DateTime<Utc>,
    ) -> &LaunchTemplate {
        self.launch_templates
            .entry(id.to_string())
            .or_insert_with(|| LaunchTemplate {
                id: id.to_string(),
                name: name.to_string(),
                account: account.to_string(),
                region: region.to_string(),
                created_at: now,
                default_version: 1,
                versions: vec![TemplateVersion {
                    number: 1,
                    description: "Created by Elastic Disaster Recovery".to_string(),
                    created_at: now,
                    data: TemplateData {
                        instance_type: Some(default_instance_type()),
                        subnet_id: Some(subnet_id.to_string()),
                        security_group_ids: Vec::new(),
                        private_ip: None,
                    },
                }],
            })
    }

    /// Counts one more recovery of `server` and returns the count (1 for the first).
    pub fn count_launch(&mut self, account: &str, region: &str, server: &str) -> u32 {
        let n = self
            .launch_counts
            .entry(format!("{account}/{region}/{server}"))
            .or_default();
        *n += 1;
        *n
    }

    /// Ends the transitions due by `now`.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        for instance in self.instances.values_mut() {
            if let Some(t) = instance.transition
                && t.at <= now
            {
                instance.set_state(t.to, t.at);
            }
        }
    }
}

/// A random EC2 instance ID: `i-` and 17 lowercase hex digits.
pub fn new_instance_id(rng: &mut impl rand::Rng) -> String {
    format!("i-{}", crate::sim::wire::random_hex(rng, 17))
}
