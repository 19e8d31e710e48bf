//! The persisted DRS state of one account and region. Kept compact on purpose: the world is
//! cloned and serialised after every mutating call, so anything that can be derived from the
//! simulated clock (replication phase, point-in-time snapshots, "last seen" times, log event
//! details) is derived when read, not stored.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// DRS in one account and region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrsRegion {
    /// Whether `InitializeService` ran here (every other call but the tag ops needs it).
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub source_servers: BTreeMap<String, SourceServer>,
    /// In creation order (DescribeJobs answers latest first).
    #[serde(default)]
    pub jobs: Vec<Job>,
    #[serde(default)]
    pub recovery_instances: BTreeMap<String, RecoveryInstance>,
    /// Native recovery plans, in creation order (`plans.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_plans: Vec<RecoveryPlan>,
    /// Their executions, in start order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan_executions: Vec<PlanExecution>,
    /// Post-launch actions by resource (a source server's ID), in `order` (`launch_actions.rs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub launch_actions: BTreeMap<String, Vec<super::launch_actions::LaunchAction>>,
    /// The `clientToken`s of the recovery-plan calls, by token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_tokens: BTreeMap<String, ClientToken>,
    /// The default launch settings of new source servers, in creation order (`templates.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_configuration_templates: Vec<LaunchConfigurationTemplate>,
}

/// A launch configuration template: its ID and the members it was created with (wire names).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchConfigurationTemplate {
    pub id: String,
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl DrsRegion {
    pub fn job(&self, job_id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == job_id)
    }

    pub fn job_mut(&mut self, job_id: &str) -> Option<&mut Job> {
        self.jobs.iter_mut().find(|j| j.id == job_id)
    }

    /// Jobs that are not COMPLETED yet (they count against the quotas and hold their servers).
    pub fn active_jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs
            .iter()
            .filter(|j| j.status != JobStatus::Completed)
    }

    /// The active job that holds `source_server_id`, if any.
    pub fn active_job_of(&self, source_server_id: &str) -> Option<&Job> {
        self.active_jobs().find(|j| {
            j.servers
                .iter()
                .any(|s| s.source_server_id == source_server_id)
        })
    }
}

/// Where a source server's data comes from: an EC2 instance in some account and region
/// (A1 for a failover server B1, the recovery instance's EC2 instance B3 for a failback server A2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Origin {
    pub account: String,
    pub region: String,
    pub availability_zone: String,
    pub instance_id: String,
    pub private_ip: String,
    pub hostname: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    Failover,
    Failback,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Failover => "FAILOVER",
            Direction::Failback => "FAILBACK",
        }
    }
}

/// The replication of a source server. While active, its phase is a function of time:
/// INITIATING for `initiating_secs`, INITIAL_SYNC for `sync_secs`, then CONTINUOUS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Replication {
    Active {
        since: DateTime<Utc>,
        initiating_secs: i64,
        sync_secs: i64,
    },
    Stopped {
        at: DateTime<Utc>,
    },
    Disconnected {
        at: DateTime<Utc>,
    },
}

impl Replication {
    /// The `dataReplicationState` at `now`.
    pub fn state_at(&self, now: DateTime<Utc>) -> &'static str {
        match self {
            Replication::Active {
                since,
                initiating_secs,
                sync_secs,
            } => {
                let elapsed = (now - *since).num_seconds();
                if elapsed < *initiating_secs {
                    "INITIATING"
                } else if elapsed < initiating_secs + sync_secs {
                    "INITIAL_SYNC"
                } else {
                    "CONTINUOUS"
                }
            }
            Replication::Stopped { .. } => "STOPPED",
            Replication::Disconnected { .. } => "DISCONNECTED",
        }
    }

    /// When the replication is (or will be) CONTINUOUS, if it is active.
    pub fn continuous_from(&self) -> Option<DateTime<Utc>> {
        match self {
            Replication::Active {
                since,
                initiating_secs,
                sync_secs,
            } => Some(*since + Duration::seconds(initiating_secs + sync_secs)),
            _ => None,
        }
    }
}

/// The most recent launch of a source server (`lifeCycle.lastLaunch`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastLaunch {
    pub job_id: String,
    pub api_call_at: DateTime<Utc>,
    pub drill: bool,
    pub status: LaunchStatus,
}

/// One source server (B1, A2 ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceServer {
    pub id: String,
    pub added_at: DateTime<Utc>,
    pub origin: Origin,
    pub direction: Direction,
    pub replication: Replication,
    /// Point-in-time snapshots exist every 10 minutes from here on (within the 1-day
    /// retention); `None` once StopReplication or DisconnectSourceServer deleted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pits_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_launch: Option<LastLaunch>,
    /// The ARN of the server on the opposite replication direction (B1 <-> A2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversed_arn: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// `ebsEncryption` of the replication configuration (`None`: DEFAULT), set by
    /// UpdateReplicationConfiguration, with its key for CUSTOM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_encryption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_encryption_key_arn: Option<String>,
    /// The members UpdateLaunchConfiguration set, over the defaults of
    /// [`super::views::launch_configuration_json`] (wire names, wire values).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub launch_settings: serde_json::Map<String, serde_json::Value>,
    /// The members UpdateReplicationConfiguration set, over the defaults (wire names).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub replication_settings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobKind {
    Launch,
    Terminate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Pending,
    Started,
    Completed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Started => "STARTED",
            JobStatus::Completed => "COMPLETED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LaunchStatus {
    Pending,
    InProgress,
    Launched,
    Failed,
    Terminated,
}

impl LaunchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchStatus::Pending => "PENDING",
            LaunchStatus::InProgress => "IN_PROGRESS",
            LaunchStatus::Launched => "LAUNCHED",
            LaunchStatus::Failed => "FAILED",
            LaunchStatus::Terminated => "TERMINATED",
        }
    }
}

/// Where one server is in its job; the next event and its time follow from this and
/// `phase_at` (see `jobs.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The job has not started.
    Queued,
    /// JOB_START happened (or cleanup ended): next is cleanup, snapshot or termination.
    Started,
    CleaningUp,
    Snapshotting,
    SnapshotReady,
    Converting,
    Converted,
    Booting,
    ShuttingDown,
    Done,
}

/// One server of a job (`participatingServers[]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobServer {
    pub source_server_id: String,
    /// Launch jobs: the instance once launched; terminate jobs: the instance to terminate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_instance_id: Option<String>,
    pub launch_status: LaunchStatus,
    pub phase: Phase,
    pub phase_at: DateTime<Utc>,
    /// The point-in-time snapshot asked for (USING_PREVIOUS_SNAPSHOT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// The time of the data being recovered (the snapshot's timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_timestamp: Option<DateTime<Utc>>,
    /// A previous recovery instance of this source server, cleaned up before the launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_instance_id: Option<String>,
    /// Failed attempts of the current phase (conversion or launch) that DRS retried.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_attempts: u32,
    /// The launch settings read when the job was created (`recoveryMode`, `launchDisposition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<LaunchPlan>,
    /// The runs of the server's post-launch actions, once the SSM agent was discovered on its
    /// recovery instance (`launch_actions.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_launch: Option<super::launch_actions::PostLaunch>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a launch job does for one server, from its launch configuration at StartRecovery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPlan {
    /// `recoveryMode: FAST`: no conversion (no CONVERSION_* events).
    #[serde(default)]
    pub fast: bool,
    /// `launchDisposition: STOPPED`: the instance is launched, then left stopped.
    #[serde(default)]
    pub stopped: bool,
    /// `postLaunchEnabled`: the server's active launch actions run once its instance runs.
    #[serde(default)]
    pub post_launch: bool,
}

/// One job log item; its `eventData` is derived from the job when read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogItem {
    pub at: DateTime<Utc>,
    pub event: LogEvent,
    /// The index of the server in `Job::servers` (none for JOB_START/JOB_END).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<usize>,
    /// A retried failure: (`attemptCount`, `maxAttemptsCount`) of its `eventData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogEvent {
    JobStart,
    CleanupStart,
    CleanupEnd,
    SnapshotStart,
    SnapshotEnd,
    UsingPreviousSnapshot,
    ConversionStart,
    ConversionEnd,
    ConversionFail,
    LaunchStart,
    /// Real DRS logs it with `targetInstanceID` (its published sample job logs), though
    /// botocore's `JobLogEvent` enum lacks it.
    LaunchEnd,
    LaunchFailed,
    JobEnd,
}

impl LogEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            LogEvent::JobStart => "JOB_START",
            LogEvent::CleanupStart => "CLEANUP_START",
            LogEvent::CleanupEnd => "CLEANUP_END",
            LogEvent::SnapshotStart => "SNAPSHOT_START",
            LogEvent::SnapshotEnd => "SNAPSHOT_END",
            LogEvent::UsingPreviousSnapshot => "USING_PREVIOUS_SNAPSHOT",
            LogEvent::ConversionStart => "CONVERSION_START",
            LogEvent::ConversionEnd => "CONVERSION_END",
            LogEvent::ConversionFail => "CONVERSION_FAIL",
            LogEvent::LaunchStart => "LAUNCH_START",
            LogEvent::LaunchEnd => "LAUNCH_END",
            LogEvent::LaunchFailed => "LAUNCH_FAILED",
            LogEvent::JobEnd => "JOB_END",
        }
    }
}

/// One job (LAUNCH from StartRecovery, TERMINATE from TerminateRecoveryInstances).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    #[serde(default)]
    pub drill: bool,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    pub status: JobStatus,
    pub servers: Vec<JobServer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<LogItem>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl Job {
    pub fn initiated_by(&self) -> &'static str {
        match (self.kind, self.drill) {
            (JobKind::Terminate, _) => "TERMINATE_RECOVERY_INSTANCES",
            (JobKind::Launch, true) => "START_DRILL",
            (JobKind::Launch, false) => "START_RECOVERY",
        }
    }
}

/// The reverse replication started from a recovery instance (B2 -> A2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailbackLink {
    /// The ARN of the reversed-direction source server (A2).
    pub source_server_arn: String,
    pub started_at: DateTime<Utc>,
}

/// One recovery instance (B2, A3 ...); its ID is its EC2 instance's ID.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryInstance {
    pub id: String,
    pub source_server_id: String,
    pub job_id: String,
    pub drill: bool,
    pub launched_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_timestamp: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<FailbackLink>,
    #[serde(default)]
    pub disconnected: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A native DRS recovery plan (CreateRecoveryPlan): named steps run in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryPlan {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// In step order (`stepOrder` is the position + 1).
    #[serde(default)]
    pub steps: Vec<PlanStep>,
}

/// One step of a recovery plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanStep {
    pub id: String,
    pub name: String,
    pub kind: PlanStepKind,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStepKind {
    /// Servers recovered in parallel: (source server ARN, impact level `CRITICAL`|`OPTIONAL`).
    Server {
        servers: Vec<(String, String)>,
    },
    Wait {
        minutes: i64,
    },
}

/// A run of a recovery plan (StartRecoveryPlanExecution). Its status is a function of the
/// simulated clock (see `plans.rs`); the steps are the plan's as they were when it started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanExecution {
    pub id: String,
    pub plan_id: String,
    /// `DRILL` or `RECOVERY`.
    pub mode: String,
    pub started_at: DateTime<Utc>,
    pub steps: Vec<PlanStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A `clientToken` already used in this account and region: the operation, a digest of its
/// parameters, and the ARN of what it created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientToken {
    pub operation: String,
    pub params: String,
    pub arn: String,
}

/// The replication agent on a source server's origin instance (A1), as that instance's EC2
/// state makes it. Stopping the instance (the fence of a planned failover) stops the writes:
/// the source's data stops changing when the stop is asked for, and the agent's last blocks
/// reach the staging area a short while after the instance stopped. AWS does not document how
/// DRS reports a stopped source; this reads it with the API model's own terms: the catch-up is
/// `dataReplicationState` BACKLOG with `backloggedStorageBytes` ("the size of the replication
/// backlog in bytes"), and afterwards the agent is not seen again, so after 5 minutes the server
/// is DISCONNECTED with AGENT_NOT_SEEN and its lag grows ("the time since the server was last in
/// CDP mode", DRS FAQ), as under a `source_outage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// The instance runs (or is unknown here): continuous replication, lag 0.
    Replicating,
    /// The instance is stopping, or stopped less than the flush delay ago: the writes made
    /// since `since` (the stop was asked for) reach the staging area by `until`.
    Flushing {
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// Stopped: every write reached the staging area; the agent's final report was at
    /// `last_report`, and it is not seen after it.
    Stopped { last_report: DateTime<Utc> },
}

impl Agent {
    /// The agent of `server` at `now`, from its origin instance in `ec2`.
    pub fn of(server: &SourceServer, ec2: &crate::sim::ec2::Ec2, now: DateTime<Utc>) -> Agent {
        use crate::sim::ec2::InstanceState as S;
        let Some(instance) = ec2
            .instances
            .get(&server.origin.instance_id)
            .filter(|i| i.account == server.origin.account && i.region == server.origin.region)
        else {
            return Agent::Replicating;
        };
        let flush = Duration::seconds(super::jitter(&[&server.id, "flush"], 15, 45));
        let stop = Duration::seconds(crate::sim::ec2::STOP_SECS);
        let since = instance.state_since.unwrap_or(instance.launched_at);
        let (asked, stopped) = match instance.state {
            S::Running | S::Pending => return Agent::Replicating,
            S::Stopping | S::ShuttingDown => {
                (since, instance.transition.map_or(since + stop, |t| t.at))
            }
            S::Stopped | S::Terminated => (since - stop, since),
        };
        if now < stopped + flush {
            Agent::Flushing {
                since: asked,
                until: stopped + flush,
            }
        } else {
            Agent::Stopped {
                last_report: stopped + flush,
            }
        }
    }
}
