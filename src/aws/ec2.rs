//! EC2 reads for the health gate: instances (state, IPs) and status checks (DescribeInstances,
//! DescribeInstanceStatus). Start/StopInstances come with the step that sends them (booting
//! waves in order, fencing the source), through the durable call like every mutation.

use serde::{Deserialize, Serialize};

use super::error::classify;
use super::{AwsError, SideClients};

/// At most 100 explicit IDs per DescribeInstanceStatus (EC2 API Reference,
/// DescribeInstanceStatus `InstanceId.N`: "Maximum 100 explicitly specified instance IDs");
/// DescribeInstances and Start/StopInstances take the same chunks.
pub const MAX_IDS_PER_CALL: usize = 100;

/// What the engine needs of one EC2 instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Instance {
    pub instance_id: String,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    /// The primary private IPv4 address.
    pub private_ip: Option<String>,
    /// The IPv6 addresses (all interfaces).
    pub ipv6: Vec<String>,
    pub subnet_id: Option<String>,
    pub vpc_id: Option<String>,
}

/// The two status checks of a running instance (DescribeInstanceStatus).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceStatus {
    pub instance_id: String,
    pub state: String,
    /// `ok`, `impaired`, `initializing`, `insufficient-data`, `not-applicable`.
    pub system: String,
    pub instance: String,
}

impl SideClients {
    /// DescribeInstances of the given IDs (chunked), every page read.
    pub async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Instance>, AwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            let site = self.site("ec2:DescribeInstances", chunk.first().map_or("", |s| s));
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .ec2
                    .describe_instances()
                    .set_instance_ids(Some(chunk.to_vec()))
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify(&site, &e))?;
                for reservation in page.reservations() {
                    for i in reservation.instances() {
                        out.push(Instance {
                            instance_id: i.instance_id().unwrap_or_default().to_string(),
                            state: i
                                .state()
                                .and_then(|s| s.name())
                                .map(|n| n.as_str().to_string())
                                .unwrap_or_default(),
                            private_ip: i.private_ip_address().map(str::to_string),
                            ipv6: i
                                .network_interfaces()
                                .iter()
                                .flat_map(|n| n.ipv6_addresses())
                                .filter_map(|a| a.ipv6_address().map(str::to_string))
                                .collect(),
                            subnet_id: i.subnet_id().map(str::to_string),
                            vpc_id: i.vpc_id().map(str::to_string),
                        });
                    }
                }
                token = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// DescribeInstanceStatus of the given IDs in chunks of 100, with `IncludeAllInstances`
    /// (a stopped or pending instance is answered too, its checks `not-applicable`).
    pub async fn instance_status(&self, ids: &[String]) -> Result<Vec<InstanceStatus>, AwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            let site = self.site(
                "ec2:DescribeInstanceStatus",
                chunk.first().map_or("", |s| s),
            );
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .ec2
                    .describe_instance_status()
                    .set_instance_ids(Some(chunk.to_vec()))
                    .include_all_instances(true)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify(&site, &e))?;
                for s in page.instance_statuses() {
                    out.push(InstanceStatus {
                        instance_id: s.instance_id().unwrap_or_default().to_string(),
                        state: s
                            .instance_state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_string())
                            .unwrap_or_default(),
                        system: s
                            .system_status()
                            .and_then(|c| c.status())
                            .map(|c| c.as_str().to_string())
                            .unwrap_or_default(),
                        instance: s
                            .instance_status()
                            .and_then(|c| c.status())
                            .map(|c| c.as_str().to_string())
                            .unwrap_or_default(),
                    });
                }
                token = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }
}
