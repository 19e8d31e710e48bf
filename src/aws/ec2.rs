//! EC2 for the health gate and the steps that start or stop instances: reads (DescribeInstances,
//! DescribeInstanceStatus; for the launch settings DescribeLaunchTemplateVersions and
//! DescribeSubnets) and the two state changes (StartInstances, StopInstances). The state
//! changes are sent only through the durable call ([`StepCtx::call`](crate::run::StepCtx::call)),
//! once per chunk, with the SDK's retries off (a throttled call is retried here).

use serde::{Deserialize, Serialize};

use super::drs::Called;
use super::error::classify;
use super::{AwsError, SideClients, with_throttle_retry};

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

/// The launch template version DRS launches from, as far as the launch settings checks need.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaunchTemplateVersion {
    pub launch_template_id: String,
    pub version: i64,
    pub instance_type: Option<String>,
    /// The subnet of the primary network interface (device index 0), else none.
    pub subnet_id: Option<String>,
}

/// A subnet: its VPC and IPv4 CIDR block.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Subnet {
    pub subnet_id: String,
    pub vpc_id: String,
    pub cidr_block: Option<String>,
}

impl SideClients {
    /// DescribeLaunchTemplateVersions `$Default` without a template: the default version of
    /// every launch template of the account and region, 200 a page (EC2 API Reference: omit
    /// the template to describe all default versions), the one DRS launches from (DRS user
    /// guide, "EC2 launch template": a new version is used once it is the default). One call
    /// per 200 templates instead of one per server.
    pub async fn default_launch_template_versions(
        &self,
    ) -> Result<Vec<LaunchTemplateVersion>, AwsError> {
        let site = self.site(
            "ec2:DescribeLaunchTemplateVersions",
            "the default version of every launch template",
        );
        let pages = self
            .ec2
            .describe_launch_template_versions()
            .versions("$Default")
            .max_results(200)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.launch_template_versions())
            .map(|v| {
                let data = v.launch_template_data();
                let primary = data.and_then(|d| {
                    d.network_interfaces()
                        .iter()
                        .find(|n| n.device_index().unwrap_or(0) == 0)
                });
                LaunchTemplateVersion {
                    launch_template_id: v.launch_template_id().unwrap_or_default().to_string(),
                    version: v.version_number().unwrap_or_default(),
                    instance_type: data
                        .and_then(|d| d.instance_type())
                        .map(|t| t.as_str().to_string()),
                    subnet_id: primary.and_then(|n| n.subnet_id()).map(str::to_string),
                }
            })
            .collect())
    }

    /// The latest version of one launch template (DescribeLaunchTemplateVersions `$Latest`): its
    /// number and description.
    pub async fn latest_launch_template_version(
        &self,
        template_id: &str,
    ) -> Result<(i64, String), AwsError> {
        let site = self.site("ec2:DescribeLaunchTemplateVersions", template_id);
        let output = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(template_id)
            .versions("$Latest")
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        let latest = output.launch_template_versions().first();
        Ok((
            latest.and_then(|v| v.version_number()).unwrap_or_default(),
            latest
                .and_then(|v| v.version_description())
                .unwrap_or_default()
                .to_string(),
        ))
    }

    /// CreateLaunchTemplateVersion from the template's default version, with the primary
    /// network interface in `subnet_id` (and `security_group_ids` when given) and
    /// `instance_type` when given; answers the new version's number.
    pub async fn create_launch_template_version(
        &self,
        template_id: &str,
        description: &str,
        subnet_id: &str,
        security_group_ids: Option<&[String]>,
        instance_type: Option<&str>,
    ) -> Result<Called<i64>, AwsError> {
        use aws_sdk_ec2::types::{
            InstanceType, LaunchTemplateInstanceNetworkInterfaceSpecificationRequest,
            RequestLaunchTemplateData,
        };
        let site = self.site("ec2:CreateLaunchTemplateVersion", template_id);
        let nic = LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
            .device_index(0)
            .subnet_id(subnet_id)
            .set_groups(security_group_ids.map(<[String]>::to_vec))
            .build();
        let data = RequestLaunchTemplateData::builder()
            .network_interfaces(nic)
            .set_instance_type(instance_type.map(InstanceType::from))
            .build();
        with_throttle_retry(|| async {
            let output = self
                .ec2
                .create_launch_template_version()
                .launch_template_id(template_id)
                .source_version("$Default")
                .version_description(description)
                .launch_template_data(data.clone())
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_ec2::operation::RequestId;
            Ok(Called {
                value: output
                    .launch_template_version()
                    .and_then(|v| v.version_number())
                    .unwrap_or_default(),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// ModifyLaunchTemplate: `version` becomes the default (the one DRS launches from).
    pub async fn set_default_launch_template_version(
        &self,
        template_id: &str,
        version: i64,
    ) -> Result<Called<()>, AwsError> {
        let site = self.site("ec2:ModifyLaunchTemplate", template_id);
        with_throttle_retry(|| async {
            let output = self
                .ec2
                .modify_launch_template()
                .launch_template_id(template_id)
                .default_version(version.to_string())
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_ec2::operation::RequestId;
            Ok(Called {
                value: (),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// DescribeSubnets of the given IDs through the `subnet-id` filter (a missing subnet is
    /// left out instead of failing the call, as `SubnetId.N` would), in chunks of
    /// [`MAX_IDS_PER_CALL`], every page read.
    pub async fn describe_subnets(&self, ids: &[String]) -> Result<Vec<Subnet>, AwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            let site = self.site("ec2:DescribeSubnets", chunk.first().map_or("", |s| s));
            let pages = self
                .ec2
                .describe_subnets()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("subnet-id")
                        .set_values(Some(chunk.to_vec()))
                        .build(),
                )
                .into_paginator()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| classify(&site, &e))?;
            for page in pages {
                out.extend(page.subnets().iter().map(|s| Subnet {
                    subnet_id: s.subnet_id().unwrap_or_default().to_string(),
                    vpc_id: s.vpc_id().unwrap_or_default().to_string(),
                    cidr_block: s.cidr_block().map(str::to_string),
                }));
            }
        }
        Ok(out)
    }

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

    /// StartInstances of at most [`MAX_IDS_PER_CALL`] IDs (the caller chunks, one durable call
    /// per chunk). Answers each instance's state after the call (`pending`, or `running` when it
    /// already ran: EC2 accepts a start of a running instance).
    pub async fn start_instances(
        &self,
        ids: &[String],
    ) -> Result<Called<Vec<StateChange>>, AwsError> {
        assert!(
            ids.len() <= MAX_IDS_PER_CALL,
            "StartInstances takes at most 100 IDs"
        );
        let site = self.site("ec2:StartInstances", ids.first().map_or("", |s| s));
        with_throttle_retry(|| async {
            let output = self
                .ec2
                .start_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_ec2::operation::RequestId;
            Ok(Called {
                value: output
                    .starting_instances()
                    .iter()
                    .map(state_change)
                    .collect(),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// StopInstances of at most [`MAX_IDS_PER_CALL`] IDs (the caller chunks). Answers each
    /// instance's state after the call (`stopping`, or `stopped` when it already was).
    pub async fn stop_instances(
        &self,
        ids: &[String],
    ) -> Result<Called<Vec<StateChange>>, AwsError> {
        assert!(
            ids.len() <= MAX_IDS_PER_CALL,
            "StopInstances takes at most 100 IDs"
        );
        let site = self.site("ec2:StopInstances", ids.first().map_or("", |s| s));
        with_throttle_retry(|| async {
            let output = self
                .ec2
                .stop_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_ec2::operation::RequestId;
            Ok(Called {
                value: output
                    .stopping_instances()
                    .iter()
                    .map(state_change)
                    .collect(),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }
    /// TerminateInstances of at most [`MAX_IDS_PER_CALL`] IDs (the caller chunks). Answers each
    /// instance's state after the call (`shutting-down`, or `terminated` when it already was).
    pub async fn terminate_instances(
        &self,
        ids: &[String],
    ) -> Result<Called<Vec<StateChange>>, AwsError> {
        assert!(
            ids.len() <= MAX_IDS_PER_CALL,
            "TerminateInstances takes at most 100 IDs"
        );
        let site = self.site("ec2:TerminateInstances", ids.first().map_or("", |s| s));
        with_throttle_retry(|| async {
            let output = self
                .ec2
                .terminate_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_ec2::operation::RequestId;
            Ok(Called {
                value: output
                    .terminating_instances()
                    .iter()
                    .map(state_change)
                    .collect(),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }
}

/// One instance's state change as Start/StopInstances answer it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateChange {
    pub instance_id: String,
    pub previous: String,
    pub current: String,
}

fn state_change(c: &aws_sdk_ec2::types::InstanceStateChange) -> StateChange {
    let name = |s: Option<&aws_sdk_ec2::types::InstanceState>| {
        s.and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default()
    };
    StateChange {
        instance_id: c.instance_id().unwrap_or_default().to_string(),
        previous: name(c.previous_state()),
        current: name(c.current_state()),
    }
}

/// Mutations are sent once by the SDK (see [`super::drs`]): a throttled call is retried by
/// [`with_throttle_retry`], anything ambiguous is reconciled by the step.
fn single_attempt() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default()
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
}
