//! The few EC2 facts the other services need: instances with their private IPs and states.
//! There is no EC2 API; instances appear when DRS launches them or a runbook is seeded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// EC2 instance states, as DRS reports them in `ec2InstanceState`.
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
}

/// All instances of the simulated cloud, by instance ID (IDs are globally unique).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ec2 {
    pub instances: BTreeMap<String, Instance>,
    /// The next private IP to hand out, as a counter over 10.0.0.0/8.
    #[serde(default)]
    pub next_ip: u32,
}

impl Ec2 {
    /// Creates an instance with a fresh private IP.
    pub fn launch(
        &mut self,
        instance_id: String,
        account: &str,
        region: &str,
        state: InstanceState,
        now: DateTime<Utc>,
        hostname: &str,
    ) -> &Instance {
        let ip = self.allocate_ip();
        self.instances.insert(
            instance_id.clone(),
            Instance {
                instance_id: instance_id.clone(),
                account: account.to_string(),
                region: region.to_string(),
                private_ip: ip,
                state,
                launched_at: now,
                hostname: hostname.to_string(),
            },
        );
        &self.instances[&instance_id]
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

    fn allocate_ip(&mut self) -> String {
        // Start at 10.0.1.10 so that no address ends in .0 or .255 early on.
        let n = self.next_ip + 266;
        self.next_ip += 1;
        format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
    }
}

/// A random EC2 instance ID: `i-` and 17 lowercase hex digits.
pub fn new_instance_id(rng: &mut impl rand::Rng) -> String {
    format!("i-{}", super::wire::random_hex(rng, 17))
}
