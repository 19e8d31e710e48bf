//! DRS calls the engine makes, returning domain types.

use aws_sdk_drs::config::retry::RetryConfig;
use aws_sdk_drs::types::{
    DescribeJobsRequestFilters, DescribeRecoveryInstancesRequestFilters,
    DescribeSourceServersRequestFilters, StartRecoveryRequestSourceServer,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::drs_launch_actions::LaunchActionsStatus;
use super::error::classify;
use super::{AwsError, SideClients, with_throttle_retry};

/// The most IDs an ID list of a DRS call takes (API model: `RecoveryInstanceIDs`,
/// `RecoveryInstancesForTerminationRequest`, `DescribeSourceServersRequestFiltersIDs`: max 200).
pub const MAX_IDS_PER_CALL: usize = 200;

/// The most source servers one job holds (service quota "Max source servers in a single Job",
/// reference/drs-api.md section 3): a TerminateRecoveryInstances call makes one job.
pub const MAX_SERVERS_PER_JOB: usize = 100;

/// A DRS source server, as the engine needs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceServer {
    pub id: String,
    pub arn: Option<String>,
    /// `CONTINUOUS` when healthy.
    pub replication_state: Option<String>,
    /// ISO-8601 duration, e.g. `P0D`.
    pub lag: Option<String>,
    pub last_seen: Option<String>,
    pub replication_direction: Option<String>,
    pub reversed_direction_arn: Option<String>,
    pub recovery_instance_id: Option<String>,
    pub hostname: Option<String>,
    pub origin_account: Option<String>,
    pub origin_region: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The IPs of the source machine's network interfaces, primary interface first
    /// (`sourceProperties.networkInterfaces`): what `copyPrivateIp` copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_ips: Vec<String>,
    /// The EC2 instance the server replicates (A1: `sourceProperties.identificationHints.awsInstanceID`).
    #[serde(default)]
    pub aws_instance_id: Option<String>,
    /// The replication backlog: `backloggedStorageBytes` summed over the replicated disks.
    #[serde(default)]
    pub backlogged_bytes: i64,
}

/// A server's DRS launch settings (GetLaunchConfiguration). The instance type, subnet and
/// security groups live in the EC2 launch template `ec2_launch_template_id`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaunchConfiguration {
    pub source_server_id: String,
    pub ec2_launch_template_id: Option<String>,
    /// `STARTED` or `STOPPED`.
    pub launch_disposition: Option<String>,
    /// `OPTIMAL` or `FAST`.
    pub recovery_mode: Option<String>,
    /// `targetInstanceTypeRightSizingMethod`: `NONE`, `BASIC` or `IN_AWS`.
    pub right_sizing: Option<String>,
    pub copy_private_ip: Option<bool>,
    pub copy_tags: Option<bool>,
    /// `postLaunchEnabled`: whether the server's post-launch actions run after a launch.
    #[serde(default)]
    pub post_launch_enabled: Option<bool>,
}

/// One server of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobServer {
    pub source_server_id: String,
    pub recovery_instance_id: Option<String>,
    /// `PENDING`, `IN_PROGRESS`, `LAUNCHED`, `FAILED`, `TERMINATED`.
    pub launch_status: Option<String>,
    /// The runs of the server's post-launch actions (`launchActionsStatus`).
    #[serde(default, skip_serializing_if = "LaunchActionsStatus::is_empty")]
    pub launch_actions: LaunchActionsStatus,
}

/// A DRS job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    pub id: String,
    /// `PENDING`, `STARTED`, `COMPLETED` (never FAILED: see each server's launch status).
    pub status: Option<String>,
    pub job_type: Option<String>,
    pub initiated_by: Option<String>,
    pub created: Option<String>,
    pub ended: Option<String>,
    pub servers: Vec<JobServer>,
    pub tags: BTreeMap<String, String>,
}

impl Job {
    pub fn is_completed(&self) -> bool {
        self.status.as_deref() == Some("COMPLETED")
    }
}

/// One job log item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogItem {
    pub at: Option<String>,
    pub event: String,
    pub source_server_id: Option<String>,
    pub raw_error: Option<String>,
    pub data_timestamp: Option<String>,
    pub target_instance_id: Option<String>,
    /// A failed phase DRS retries: this attempt and how many it makes at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts_count: Option<i64>,
}

/// A recovery instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecoveryInstance {
    pub id: String,
    pub arn: Option<String>,
    pub ec2_instance_id: Option<String>,
    pub ec2_state: Option<String>,
    pub source_server_id: Option<String>,
    pub job_id: Option<String>,
    pub is_drill: bool,
    pub private_ips: Vec<String>,
    pub failback_state: Option<String>,
    pub replication_state: Option<String>,
}

/// A mutating call's result and its request ID, for the effect record.
#[derive(Debug, Clone)]
pub struct Called<T> {
    pub value: T,
    pub request_id: Option<String>,
}

impl<T> Called<T> {
    /// The same call's result in another shape (the response a step records).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Called<U> {
        Called {
            value: f(self.value),
            request_id: self.request_id,
        }
    }
}

/// Mutating calls are sent once by the SDK: throttling is retried by
/// [`super::with_throttle_retry`], anything ambiguous is reconciled by the step.
pub(super) fn single_attempt() -> aws_sdk_drs::config::Builder {
    aws_sdk_drs::config::Builder::default().retry_config(RetryConfig::disabled())
}

fn tags(map: Option<&std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn job_from(job: &aws_sdk_drs::types::Job) -> Job {
    Job {
        id: job.job_id().to_string(),
        status: job.status().map(|s| s.as_str().to_string()),
        job_type: job.r#type().map(|s| s.as_str().to_string()),
        initiated_by: job.initiated_by().map(|s| s.as_str().to_string()),
        created: job.creation_date_time().map(str::to_string),
        ended: job.end_date_time().map(str::to_string),
        servers: job
            .participating_servers()
            .iter()
            .map(|s| JobServer {
                source_server_id: s.source_server_id().unwrap_or_default().to_string(),
                recovery_instance_id: s.recovery_instance_id().map(str::to_string),
                launch_status: s.launch_status().map(|l| l.as_str().to_string()),
                launch_actions: LaunchActionsStatus::from_sdk(s.launch_actions_status()),
            })
            .collect(),
        tags: tags(job.tags()),
    }
}

fn server_from(s: &aws_sdk_drs::types::SourceServer) -> SourceServer {
    let info = s.data_replication_info();
    let hints = s.source_properties().and_then(|p| p.identification_hints());
    SourceServer {
        id: s.source_server_id().unwrap_or_default().to_string(),
        arn: s.arn().map(str::to_string),
        replication_state: info
            .and_then(|i| i.data_replication_state())
            .map(|x| x.as_str().to_string()),
        lag: info.and_then(|i| i.lag_duration()).map(str::to_string),
        last_seen: s
            .life_cycle()
            .and_then(|l| l.last_seen_by_service_date_time())
            .map(str::to_string),
        replication_direction: s.replication_direction().map(|d| d.as_str().to_string()),
        reversed_direction_arn: s.reversed_direction_source_server_arn().map(str::to_string),
        recovery_instance_id: s.recovery_instance_id().map(str::to_string),
        hostname: hints.and_then(|h| h.hostname()).map(str::to_string),
        origin_account: s
            .source_cloud_properties()
            .and_then(|c| c.origin_account_id())
            .map(str::to_string),
        origin_region: s
            .source_cloud_properties()
            .and_then(|c| c.origin_region())
            .map(str::to_string),
        tags: tags(s.tags()),
        private_ips: s
            .source_properties()
            .map(|p| {
                let mut nics: Vec<_> = p.network_interfaces().iter().collect();
                nics.sort_by_key(|n| !n.is_primary().unwrap_or(false));
                nics.iter().flat_map(|n| n.ips().iter().cloned()).collect()
            })
            .unwrap_or_default(),
        aws_instance_id: hints.and_then(|h| h.aws_instance_id()).map(str::to_string),
        backlogged_bytes: info
            .map(|i| {
                i.replicated_disks()
                    .iter()
                    .map(|d| d.backlogged_storage_bytes())
                    .sum()
            })
            .unwrap_or_default(),
    }
}

fn instance_from(r: &aws_sdk_drs::types::RecoveryInstance) -> RecoveryInstance {
    RecoveryInstance {
        id: r.recovery_instance_id().unwrap_or_default().to_string(),
        arn: r.arn().map(str::to_string),
        ec2_instance_id: r.ec2_instance_id().map(str::to_string),
        ec2_state: r.ec2_instance_state().map(|s| s.as_str().to_string()),
        source_server_id: r.source_server_id().map(str::to_string),
        job_id: r.job_id().map(str::to_string),
        is_drill: r.is_drill().unwrap_or(false),
        private_ips: r
            .recovery_instance_properties()
            .map(|p| {
                p.network_interfaces()
                    .iter()
                    .flat_map(|n| n.ips().iter().cloned())
                    .collect()
            })
            .unwrap_or_default(),
        failback_state: r
            .failback()
            .and_then(|f| f.state())
            .map(|s| s.as_str().to_string()),
        replication_state: r
            .data_replication_info()
            .and_then(|i| i.data_replication_state())
            .map(|s| s.as_str().to_string()),
    }
}

impl SideClients {
    /// DescribeSourceServers for these IDs (200 at a time, every page).
    pub async fn describe_source_servers(
        &self,
        ids: &[String],
    ) -> Result<Vec<SourceServer>, AwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            let filters = DescribeSourceServersRequestFilters::builder()
                .set_source_server_ids(Some(chunk.to_vec()))
                .build();
            out.extend(self.source_servers(filters, &chunk.join(", ")).await?);
        }
        Ok(out)
    }

    /// Every source server of the account and region (for A2 look-ups by ARN).
    pub async fn list_source_servers(&self) -> Result<Vec<SourceServer>, AwsError> {
        self.source_servers(
            DescribeSourceServersRequestFilters::builder().build(),
            "all source servers",
        )
        .await
    }

    async fn source_servers(
        &self,
        filters: DescribeSourceServersRequestFilters,
        resource: &str,
    ) -> Result<Vec<SourceServer>, AwsError> {
        let site = self.site("drs:DescribeSourceServers", resource);
        let items = self
            .drs
            .describe_source_servers()
            .filters(filters)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await;
        Ok(items
            .map_err(|e| classify(&site, &e))?
            .iter()
            .map(server_from)
            .collect())
    }

    /// StartRecovery for one batch. Not idempotent: the caller has written its intent and
    /// tagged the job so that a crash can be reconciled with [`Self::find_jobs_tagged`].
    pub async fn start_recovery(
        &self,
        servers: &[(String, Option<String>)],
        is_drill: bool,
        job_tags: &BTreeMap<String, String>,
    ) -> Result<Called<Job>, AwsError> {
        let resource = servers
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let site = self.site("drs:StartRecovery", &resource);
        let source_servers: Vec<StartRecoveryRequestSourceServer> = servers
            .iter()
            .map(|(id, pit)| {
                StartRecoveryRequestSourceServer::builder()
                    .source_server_id(id)
                    .set_recovery_snapshot_id(pit.clone())
                    .build()
                    .expect("source server ID is set")
            })
            .collect();
        with_throttle_retry(|| async {
            let output = self
                .drs
                .start_recovery()
                .set_source_servers(Some(source_servers.clone()))
                .is_drill(is_drill)
                .set_tags(Some(
                    job_tags
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ))
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_drs::operation::RequestId;
            let request_id = output.request_id().map(str::to_string);
            let job = output.job().map(job_from).ok_or_else(|| AwsError {
                call: site.call.to_string(),
                account: self.account_id.clone(),
                region: self.region.clone(),
                resource: resource.clone(),
                code: None,
                message: "the response has no job".to_string(),
                request_id: request_id.clone(),
                retryable: false,
                ambiguous: true,
                hint: "reconcile with DescribeJobs before trying again".to_string(),
                retry_after_seconds: None,
            })?;
            Ok(Called {
                value: job,
                request_id,
            })
        })
        .await
    }

    /// DescribeJobs for these job IDs (every page).
    pub async fn describe_jobs(&self, ids: &[String]) -> Result<Vec<Job>, AwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(1000) {
            let filters = DescribeJobsRequestFilters::builder()
                .set_job_ids(Some(chunk.to_vec()))
                .build();
            out.extend(self.jobs(filters, &chunk.join(", ")).await?);
        }
        Ok(out)
    }

    /// Jobs created since `from` whose tags include `key = value` (crash reconciliation).
    pub async fn find_jobs_tagged(
        &self,
        key: &str,
        value: &str,
        from: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<Job>, AwsError> {
        let filters = DescribeJobsRequestFilters::builder()
            .set_from_date(from.map(|f| f.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
            .build();
        let jobs = self
            .jobs(filters, &format!("jobs tagged {key}={value}"))
            .await?;
        Ok(jobs
            .into_iter()
            .filter(|j| j.tags.get(key).map(String::as_str) == Some(value))
            .collect())
    }

    async fn jobs(
        &self,
        filters: DescribeJobsRequestFilters,
        resource: &str,
    ) -> Result<Vec<Job>, AwsError> {
        let site = self.site("drs:DescribeJobs", resource);
        let items = self
            .drs
            .describe_jobs()
            .filters(filters)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await;
        Ok(items
            .map_err(|e| classify(&site, &e))?
            .iter()
            .map(job_from)
            .collect())
    }

    /// Every log item of a job, in order.
    pub async fn job_log(&self, job_id: &str) -> Result<Vec<LogItem>, AwsError> {
        let site = self.site("drs:DescribeJobLogItems", job_id);
        let items = self
            .drs
            .describe_job_log_items()
            .job_id(job_id)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await;
        Ok(items
            .map_err(|e| classify(&site, &e))?
            .iter()
            .map(|item| {
                let data = item.event_data();
                LogItem {
                    at: item.log_date_time().map(str::to_string),
                    event: item
                        .event()
                        .map(|e| e.as_str().to_string())
                        .unwrap_or_default(),
                    source_server_id: data.and_then(|d| d.source_server_id()).map(str::to_string),
                    raw_error: data.and_then(|d| d.raw_error()).map(str::to_string),
                    data_timestamp: data
                        .and_then(|d| d.conversion_properties())
                        .and_then(|c| c.data_timestamp())
                        .map(str::to_string),
                    target_instance_id: data
                        .and_then(|d| d.target_instance_id())
                        .map(str::to_string),
                    // The SDK reads an absent count as 0.
                    attempt_count: data.map(|d| d.attempt_count()).filter(|n| *n > 0),
                    max_attempts_count: data.map(|d| d.max_attempts_count()).filter(|n| *n > 0),
                }
            })
            .collect())
    }

    /// Recovery instances of these source servers (or all, when `source_server_ids` is empty).
    /// The model sets no maximum on `sourceServerIDs`; they are sent [`MAX_IDS_PER_CALL`] at a
    /// time all the same, as every other ID list.
    pub async fn recovery_instances_of(
        &self,
        source_server_ids: &[String],
    ) -> Result<Vec<RecoveryInstance>, AwsError> {
        if source_server_ids.is_empty() {
            return self
                .recovery_instances(
                    DescribeRecoveryInstancesRequestFilters::builder().build(),
                    "all recovery instances",
                )
                .await;
        }
        let mut out = Vec::new();
        for chunk in source_server_ids.chunks(MAX_IDS_PER_CALL) {
            out.extend(
                self.recovery_instances(
                    DescribeRecoveryInstancesRequestFilters::builder()
                        .set_source_server_ids(Some(chunk.to_vec()))
                        .build(),
                    &chunk.join(", "),
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// Recovery instances by their IDs, [`MAX_IDS_PER_CALL`] IDs a call (the model's limit of
    /// `filters.recoveryInstanceIDs`).
    pub async fn recovery_instances_by_id(
        &self,
        ids: &[String],
    ) -> Result<Vec<RecoveryInstance>, AwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            out.extend(
                self.recovery_instances(
                    DescribeRecoveryInstancesRequestFilters::builder()
                        .set_recovery_instance_ids(Some(chunk.to_vec()))
                        .build(),
                    &chunk.join(", "),
                )
                .await?,
            );
        }
        Ok(out)
    }

    async fn recovery_instances(
        &self,
        filters: DescribeRecoveryInstancesRequestFilters,
        resource: &str,
    ) -> Result<Vec<RecoveryInstance>, AwsError> {
        let site = self.site("drs:DescribeRecoveryInstances", resource);
        let items = self
            .drs
            .describe_recovery_instances()
            .filters(filters)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await;
        Ok(items
            .map_err(|e| classify(&site, &e))?
            .iter()
            .map(instance_from)
            .collect())
    }

    /// TerminateRecoveryInstances for at most [`MAX_SERVERS_PER_JOB`] instances (the caller
    /// splits: the call makes one job, and a job holds at most 100 source servers). Not
    /// idempotent: reconcile with the instances' state.
    pub async fn terminate_recovery_instances(
        &self,
        ids: &[String],
    ) -> Result<Called<Job>, AwsError> {
        let resource = ids.join(", ");
        let site = self.site("drs:TerminateRecoveryInstances", &resource);
        with_throttle_retry(|| async {
            let output = self
                .drs
                .terminate_recovery_instances()
                .set_recovery_instance_ids(Some(ids.to_vec()))
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_drs::operation::RequestId;
            let request_id = output.request_id().map(str::to_string);
            let job = output.job().map(job_from).unwrap_or(Job {
                id: String::new(),
                status: None,
                job_type: Some("TERMINATE".into()),
                initiated_by: None,
                created: None,
                ended: None,
                servers: Vec::new(),
                tags: BTreeMap::new(),
            });
            Ok(Called {
                value: job,
                request_id,
            })
        })
        .await
    }
}

impl SideClients {
    /// The latest recovery snapshot of a server taken at or before `at`.
    pub async fn snapshot_at_or_before(
        &self,
        source_server_id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, AwsError> {
        let site = self.site("drs:DescribeRecoverySnapshots", source_server_id);
        let output = self
            .drs
            .describe_recovery_snapshots()
            .source_server_id(source_server_id)
            .filters(
                aws_sdk_drs::types::DescribeRecoverySnapshotsRequestFilters::builder()
                    .to_date_time(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                    .build(),
            )
            .order(aws_sdk_drs::types::RecoverySnapshotsOrder::Desc)
            .max_results(1)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(output.items().first().map(|s| s.snapshot_id().to_string()))
    }
}

/// Failback calls: reverse replication and the replication life of a source server.
impl SideClients {
    /// ReverseReplication on a recovery instance (B2): DRS creates the source server A2 in the
    /// origin account and region and returns its ARN. Not idempotent (a second call is refused
    /// while A2 exists): the caller reconciles an open intent by looking for A2 first.
    pub async fn reverse_replication(
        &self,
        recovery_instance_id: &str,
    ) -> Result<Called<String>, AwsError> {
        let site = self.site("drs:ReverseReplication", recovery_instance_id);
        with_throttle_retry(|| async {
            let output = self
                .drs
                .reverse_replication()
                .recovery_instance_id(recovery_instance_id)
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_drs::operation::RequestId;
            let request_id = output.request_id().map(str::to_string);
            let arn = output.reversed_direction_source_server_arn().map(str::to_string).ok_or_else(|| AwsError {
                call: site.call.to_string(),
                account: self.account_id.clone(),
                region: self.region.clone(),
                resource: recovery_instance_id.to_string(),
                code: None,
                message: "the response names no reversed-direction source server".to_string(),
                request_id: request_id.clone(),
                retryable: false,
                ambiguous: true,
                hint: "look for the new source server in the origin account and region (DescribeSourceServers) before trying again".to_string(),
                retry_after_seconds: None,
            })?;
            Ok(Called { value: arn, request_id })
        })
        .await
    }

    /// UpdateLaunchConfiguration of one member, `launchDisposition` (`STARTED` or `STOPPED`);
    /// every other member is left as it is. Setting a value is idempotent, so a step may send
    /// it again under an open intent.
    pub async fn set_launch_disposition(
        &self,
        source_server_id: &str,
        disposition: &str,
    ) -> Result<Called<Option<String>>, AwsError> {
        let site = self.site("drs:UpdateLaunchConfiguration", source_server_id);
        let value = aws_sdk_drs::types::LaunchDisposition::from(disposition);
        with_throttle_retry(|| async {
            let output = self
                .drs
                .update_launch_configuration()
                .source_server_id(source_server_id)
                .launch_disposition(value.clone())
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_drs::operation::RequestId;
            Ok(Called {
                value: output.launch_disposition().map(|d| d.as_str().to_string()),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// UpdateLaunchConfiguration of one member, `targetInstanceTypeRightSizingMethod` `NONE`: DRS
    /// launches the launch template's instance type instead of one it picks. Idempotent.
    pub async fn turn_off_right_sizing(
        &self,
        source_server_id: &str,
    ) -> Result<Called<Option<String>>, AwsError> {
        let site = self.site("drs:UpdateLaunchConfiguration", source_server_id);
        with_throttle_retry(|| async {
            let output = self
                .drs
                .update_launch_configuration()
                .source_server_id(source_server_id)
                .target_instance_type_right_sizing_method(
                    aws_sdk_drs::types::TargetInstanceTypeRightSizingMethod::None,
                )
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_drs::operation::RequestId;
            Ok(Called {
                value: output
                    .target_instance_type_right_sizing_method()
                    .map(|m| m.as_str().to_string()),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// StopReplication of a source server (its snapshots are deleted, as AWS warns).
    pub async fn stop_replication(
        &self,
        source_server_id: &str,
    ) -> Result<Called<SourceServer>, AwsError> {
        let site = self.site("drs:StopReplication", source_server_id);
        with_throttle_retry(|| async {
            let output = self
                .drs
                .stop_replication()
                .source_server_id(source_server_id)
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_drs::operation::RequestId;
            let request_id = output.request_id().map(str::to_string);
            let server = output
                .source_server()
                .map(server_from)
                .unwrap_or_else(|| SourceServer::bare(source_server_id));
            Ok(Called {
                value: server,
                request_id,
            })
        })
        .await
    }

    /// StartReplication of a stopped source server (e.g. an A2 left stopped by a failback drill).
    pub async fn start_replication(
        &self,
        source_server_id: &str,
    ) -> Result<Called<SourceServer>, AwsError> {
        let site = self.site("drs:StartReplication", source_server_id);
        with_throttle_retry(|| async {
            let output = self
                .drs
                .start_replication()
                .source_server_id(source_server_id)
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_drs::operation::RequestId;
            let request_id = output.request_id().map(str::to_string);
            let server = output
                .source_server()
                .map(server_from)
                .unwrap_or_else(|| SourceServer::bare(source_server_id));
            Ok(Called {
                value: server,
                request_id,
            })
        })
        .await
    }

    /// GetLaunchConfiguration of one server (a read: the SDK's standard retries, throttling
    /// included).
    pub async fn get_launch_configuration(
        &self,
        source_server_id: &str,
    ) -> Result<LaunchConfiguration, AwsError> {
        let site = self.site("drs:GetLaunchConfiguration", source_server_id);
        let out = self
            .drs
            .get_launch_configuration()
            .source_server_id(source_server_id)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(LaunchConfiguration {
            source_server_id: out
                .source_server_id()
                .unwrap_or(source_server_id)
                .to_string(),
            ec2_launch_template_id: out.ec2_launch_template_id().map(str::to_string),
            launch_disposition: out.launch_disposition().map(|d| d.as_str().to_string()),
            recovery_mode: out.recovery_mode().map(|m| m.as_str().to_string()),
            right_sizing: out
                .target_instance_type_right_sizing_method()
                .map(|m| m.as_str().to_string()),
            copy_private_ip: out.copy_private_ip(),
            copy_tags: out.copy_tags(),
            post_launch_enabled: out.post_launch_enabled(),
        })
    }

    /// The source server of the account and region with this ARN, if any.
    pub async fn source_server_by_arn(&self, arn: &str) -> Result<Option<SourceServer>, AwsError> {
        let id = arn.rsplit('/').next().unwrap_or(arn).to_string();
        Ok(self
            .describe_source_servers(&[id])
            .await?
            .into_iter()
            .find(|s| s.arn.as_deref() == Some(arn)))
    }
}

impl SourceServer {
    /// A server known only by its ID (a response without a body).
    fn bare(id: &str) -> SourceServer {
        SourceServer {
            id: id.to_string(),
            arn: None,
            replication_state: None,
            lag: None,
            last_seen: None,
            replication_direction: None,
            reversed_direction_arn: None,
            recovery_instance_id: None,
            hostname: None,
            origin_account: None,
            origin_region: None,
            tags: BTreeMap::new(),
            private_ips: Vec::new(),
            aws_instance_id: None,
            backlogged_bytes: 0,
        }
    }
}
