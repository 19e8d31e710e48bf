//! Jobs: StartRecovery (LAUNCH) and TerminateRecoveryInstances (TERMINATE), their quotas, and
//! their life on the simulated clock.
//!
//! ```text
//!  job:     PENDING ──(5–15 s)──► STARTED ──(every server Done)──► COMPLETED (+ endDateTime)
//!  launch:  JOB_START ─► [CLEANUP_START ─(15–45 s)─► CLEANUP_END]          previous instance
//!                    ─► SNAPSHOT_START ─(20–40 s)─► SNAPSHOT_END            on-demand snapshot
//!                       | USING_PREVIOUS_SNAPSHOT                           recoverySnapshotID
//!                    ─► CONVERSION_START ─(2–6 min)─► CONVERSION_END | CONVERSION_FAIL
//!                    ─► LAUNCH_START (EC2 PENDING) ─(boot 2–5 min)─► RUNNING, LAUNCHED
//!                       | LAUNCH_FAILED
//!  terminate: JOB_START ─► EC2 SHUTTING-DOWN ─(1–3 min)─► TERMINATED ... JOB_END, instances
//!             removed from DRS
//! ```
//!
//! [`advance`] is a discrete-event progression: each server's next event and its time follow
//! from its persisted phase, the time that phase began, and jitter hashed from the job and
//! server IDs; events are applied at the times they were due, so the outcome does not depend
//! on how often the simulator is called, and a restarted simulator replays identically.
//! Server faults are read when an event is applied: `stuck_job` holds the server where it is,
//! `conversion_failure` / `launch_failure` turn the conversion / launch into a failure.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::model::{
    DrsRegion, Job, JobKind, JobServer, JobStatus, LastLaunch, LaunchStatus, LogEvent, LogItem,
    Phase, RecoveryInstance, SourceServer,
};
use super::{
    Ctx, Done, DrsError, Scope, check_count, check_id, check_instance_id, hex_id, input, jitter,
    page, parse_time, snapshots, views,
};
use crate::sim::ec2::{Ec2, InstanceState};
use crate::sim::faults::{ServerFaults, server_fault};
use crate::sim::wire::random_hex;
use crate::sim::{Fault, World};

/// Service quotas (reference/drs-api.md section 3).
const MAX_SERVERS_PER_JOB: usize = 100;
const MAX_CONCURRENT_JOBS: usize = 20;
const MAX_SERVERS_IN_ALL_JOBS: usize = 500;
const MAX_TAGS: usize = 50;

/// The real text of the one-job-per-server ConflictException.
pub const BUSY_MESSAGE: &str =
    "One or more of the Source Servers included in API call are currently being processed by a Job";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartRecoveryInput {
    source_servers: Option<Vec<StartServer>>,
    is_drill: Option<bool>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct StartServer {
    #[serde(rename = "sourceServerID")]
    source_server_id: Option<String>,
    #[serde(rename = "recoverySnapshotID")]
    recovery_snapshot_id: Option<String>,
}

/// StartRecovery: one LAUNCH job for all the servers of the call (202).
pub(super) fn start_recovery(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: StartRecoveryInput = input(&body)?;
    let requested = input
        .source_servers
        .ok_or_else(|| DrsError::field("sourceServers", "is required"))?;
    check_count("sourceServers", requested.len(), 1, 200)?;
    // A job holds at most 100 servers, whatever they are: refused before any is looked up.
    check_job_size(requested.len())?;
    let tags = input.tags.unwrap_or_default();
    check_tags(&tags)?;
    let mut wanted: Vec<(String, Option<String>)> = Vec::with_capacity(requested.len());
    let mut seen = HashSet::new();
    for (i, server) in requested.into_iter().enumerate() {
        let field = format!("sourceServers[{i}].sourceServerID");
        let id = server
            .source_server_id
            .ok_or_else(|| DrsError::field(&field, "is required"))?;
        check_id(&field, &id, "s-")?;
        if let Some(pit) = &server.recovery_snapshot_id {
            check_id(
                &format!("sourceServers[{i}].recoverySnapshotID"),
                pit,
                "pit-",
            )?;
        }
        if !seen.insert(id.clone()) {
            return Err(DrsError::field(&field, format!("{id} is listed twice")));
        }
        wanted.push((id, server.recovery_snapshot_id));
    }
    let drs = ctx.world.drs.entry(scope.key.clone()).or_default();
    // Resolve every server and snapshot before anything changes.
    let mut data_timestamps = Vec::with_capacity(wanted.len());
    for (i, (id, pit)) in wanted.iter().enumerate() {
        let server = drs.source_servers.get(id).ok_or_else(|| {
            DrsError::field(
                &format!("sourceServers[{i}].sourceServerID"),
                format!(
                    "source server {id} does not exist in account {} region {}",
                    scope.account, scope.region
                ),
            )
        })?;
        check_launchable(server, ctx.now)?;
        let data_timestamp = match pit {
            None => None,
            Some(pit) => Some(
                snapshots::find(server, pit, ctx.now, ctx.faults)
                    .ok_or_else(|| {
                        DrsError::field(
                            &format!("sourceServers[{i}].recoverySnapshotID"),
                            format!(
                                "recovery snapshot {pit} does not exist for source server {id} \
                                 (list them with DescribeRecoverySnapshots)"
                            ),
                        )
                    })?
                    .taken,
            ),
        };
        data_timestamps.push(data_timestamp);
    }
    let ids: Vec<&str> = wanted.iter().map(|(id, _)| id.as_str()).collect();
    check_quotas_and_conflicts(drs, &ids)?;
    // A recovery plan execution in progress holds its servers as its jobs would.
    let held = super::plans::servers_in_active_executions(drs, ctx.now);
    if let Some(id) = ids.iter().find(|id| held.contains_key(**id)) {
        return Err(DrsError::conflict(
            "SOURCE_SERVER",
            id,
            format!("{BUSY_MESSAGE} (recovery plan execution {})", held[*id]),
        ));
    }

    let job_id = format!("drsjob-{}", random_hex(ctx.rng, 17));
    let drill = input.is_drill.unwrap_or(false);
    let servers: Vec<JobServer> = wanted
        .into_iter()
        .zip(data_timestamps)
        .map(|((id, pit), data_timestamp)| JobServer {
            settings: drs.source_servers.get(&id).map(views::launch_plan),
            source_server_id: id,
            recovery_instance_id: None,
            launch_status: LaunchStatus::Pending,
            phase: Phase::Queued,
            phase_at: ctx.now,
            snapshot_id: pit,
            data_timestamp,
            cleanup_instance_id: None,
            failed_attempts: 0,
            post_launch: None,
        })
        .collect();
    for server in &servers {
        if let Some(s) = drs.source_servers.get_mut(&server.source_server_id) {
            s.last_launch = Some(LastLaunch {
                job_id: job_id.clone(),
                api_call_at: ctx.now,
                drill,
                status: LaunchStatus::Pending,
            });
        }
    }
    let job = Job {
        id: job_id,
        kind: JobKind::Launch,
        drill,
        created_at: ctx.now,
        ended_at: None,
        status: JobStatus::Pending,
        servers,
        log: Vec::new(),
        tags,
    };
    let reply = json!({ "job": views::job_json(scope, &job) });
    drs.jobs.push(job);
    Ok(Done::mutated(202, Some(reply), body))
}

/// A server can be launched from once its data is replicated (or was, before a stop).
fn check_launchable(server: &SourceServer, now: DateTime<Utc>) -> Result<(), DrsError> {
    let state = server.replication.state_at(now);
    if matches!(state, "INITIATING" | "INITIAL_SYNC" | "DISCONNECTED") {
        return Err(DrsError::conflict(
            "SOURCE_SERVER",
            &server.id,
            format!(
                "Source server {} cannot be launched while its data replication state is {state}; \
                 wait until it is CONTINUOUS (DescribeSourceServers shows the state)",
                server.id
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), DrsError> {
    if tags.len() > MAX_TAGS {
        return Err(DrsError::field(
            "tags",
            format!(
                "has {} tags; a resource can have at most {MAX_TAGS}",
                tags.len()
            ),
        ));
    }
    if let Some((k, _)) = tags.iter().find(|(k, v)| k.len() > 256 || v.len() > 256) {
        return Err(DrsError::field(
            "tags",
            format!("the tag {k:?} is longer than 256 characters (key or value)"),
        ));
    }
    Ok(())
}

/// The quota "Max source servers in a single Job" (reference/drs-api.md section 3), for every
/// job type (LAUNCH and TERMINATE alike).
fn check_job_size(servers: usize) -> Result<(), DrsError> {
    if servers > MAX_SERVERS_PER_JOB {
        return Err(DrsError::QuotaExceeded {
            message: format!(
                "Cannot start a job for {servers} source servers: the quota 'Max source servers in a \
                 single Job' is {MAX_SERVERS_PER_JOB}. Split the servers into several calls."
            ),
            quota_code: "L-B827C881",
            resource_type: "SOURCE_SERVER",
        });
    }
    Ok(())
}

/// The job quotas, then the one-active-job-per-server rule.
fn check_quotas_and_conflicts(drs: &DrsRegion, server_ids: &[&str]) -> Result<(), DrsError> {
    check_job_size(server_ids.len())?;
    let active: Vec<&Job> = drs.active_jobs().collect();
    if active.len() >= MAX_CONCURRENT_JOBS {
        return Err(DrsError::QuotaExceeded {
            message: format!(
                "Cannot start another job: {} jobs are in progress and the quota 'Concurrent \
                 jobs in progress' is {MAX_CONCURRENT_JOBS}. Wait for a job to complete.",
                active.len()
            ),
            quota_code: "L-D88FAC3A",
            resource_type: "JOB",
        });
    }
    let busy: HashSet<&str> = active
        .iter()
        .flat_map(|j| j.servers.iter().map(|s| s.source_server_id.as_str()))
        .collect();
    let in_jobs: usize = active.iter().map(|j| j.servers.len()).sum();
    if in_jobs + server_ids.len() > MAX_SERVERS_IN_ALL_JOBS {
        return Err(DrsError::QuotaExceeded {
            message: format!(
                "Cannot add {} source servers to jobs: {in_jobs} are in active jobs and the quota \
                 'Max source servers in all Jobs' is {MAX_SERVERS_IN_ALL_JOBS}. Wait for a job to complete.",
                server_ids.len()
            ),
            quota_code: "L-05AFA8C6",
            resource_type: "SOURCE_SERVER",
        });
    }
    if let Some(id) = server_ids.iter().find(|id| busy.contains(**id)) {
        return Err(DrsError::conflict(
            "SOURCE_SERVER",
            id,
            BUSY_MESSAGE.to_string(),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TerminateInput {
    #[serde(rename = "recoveryInstanceIDs")]
    recovery_instance_ids: Option<Vec<String>>,
}

/// TerminateRecoveryInstances: a TERMINATE job that holds the instances' source servers.
pub(super) fn terminate_recovery_instances(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: TerminateInput = input(&body)?;
    let ids = input
        .recovery_instance_ids
        .ok_or_else(|| DrsError::field("recoveryInstanceIDs", "is required"))?;
    check_count("recoveryInstanceIDs", ids.len(), 1, 200)?;
    // The TERMINATE job holds the instances' servers: at most 100, as every job.
    check_job_size(ids.len())?;
    let mut seen = HashSet::new();
    for id in &ids {
        check_instance_id("recoveryInstanceIDs", id)?;
        if !seen.insert(id.as_str()) {
            return Err(DrsError::field(
                "recoveryInstanceIDs",
                format!("{id} is listed twice"),
            ));
        }
    }
    let mut servers = Vec::with_capacity(ids.len());
    {
        let world: &World = ctx.world;
        let drs = views::region(world, scope);
        for id in &ids {
            let ri = drs
                .and_then(|r| r.recovery_instances.get(id))
                .ok_or_else(|| {
                    DrsError::not_found(
                        "RECOVERY_INSTANCE",
                        id,
                        format!(
                            "Recovery instance {id} does not exist in account {} region {}",
                            scope.account, scope.region
                        ),
                    )
                })?;
            super::failback::check_no_active_reverse_replication(world, ri)?;
            servers.push((ri.source_server_id.clone(), id.clone()));
        }
        if let Some(drs) = drs {
            let server_ids: Vec<&str> = servers.iter().map(|(s, _)| s.as_str()).collect();
            check_quotas_and_conflicts(drs, &server_ids)?;
        }
    }
    let drs = ctx.world.drs.entry(scope.key.clone()).or_default();
    let job = Job {
        id: format!("drsjob-{}", random_hex(ctx.rng, 17)),
        kind: JobKind::Terminate,
        drill: false,
        created_at: ctx.now,
        ended_at: None,
        status: JobStatus::Pending,
        servers: servers
            .into_iter()
            .map(|(source_server_id, instance)| JobServer {
                source_server_id,
                recovery_instance_id: Some(instance),
                launch_status: LaunchStatus::Pending,
                phase: Phase::Queued,
                phase_at: ctx.now,
                snapshot_id: None,
                data_timestamp: None,
                cleanup_instance_id: None,
                failed_attempts: 0,
                settings: None,
                post_launch: None,
            })
            .collect(),
        log: Vec::new(),
        tags: BTreeMap::new(),
    };
    let reply = json!({ "job": views::job_json(scope, &job) });
    drs.jobs.push(job);
    Ok(Done::mutated(200, Some(reply), body))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DescribeJobsInput {
    filters: Option<JobFilters>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct JobFilters {
    #[serde(rename = "jobIDs")]
    job_ids: Option<Vec<String>>,
    from_date: Option<String>,
    to_date: Option<String>,
}

/// DescribeJobs: latest first.
pub(super) fn describe_jobs(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: DescribeJobsInput = input(&body)?;
    let filters = input.filters.unwrap_or_default();
    let ids: BTreeSet<String> = filters.job_ids.unwrap_or_default().into_iter().collect();
    check_count("filters.jobIDs", ids.len(), 0, 1000)?;
    for id in &ids {
        check_id("filters.jobIDs", id, "drsjob-")?;
    }
    let from = filters
        .from_date
        .as_deref()
        .map(|t| parse_time("filters.fromDate", t))
        .transpose()?;
    let to = filters
        .to_date
        .as_deref()
        .map(|t| parse_time("filters.toDate", t))
        .transpose()?;
    let jobs: Vec<&Job> = views::region(ctx.world, scope)
        .map(|r| r.jobs.iter().rev().collect())
        .unwrap_or_default();
    let selected: Vec<&Job> = jobs
        .into_iter()
        .filter(|j| ids.is_empty() || ids.contains(&j.id))
        .filter(|j| from.is_none_or(|f| j.created_at >= f) && to.is_none_or(|t| j.created_at <= t))
        .collect();
    let keys: Vec<String> = selected.iter().map(|j| j.id.clone()).collect();
    let page = page(&keys, input.max_results, input.next_token.as_deref())?;
    let items: Vec<Value> = selected[page.start..page.end]
        .iter()
        .map(|j| views::job_json(scope, j))
        .collect();
    let mut out = json!({ "items": items });
    if let Some(token) = page.next_token {
        out["nextToken"] = json!(token);
    }
    Ok(Done::read(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogItemsInput {
    #[serde(rename = "jobID")]
    job_id: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// DescribeJobLogItems: the job's log in time order.
pub(super) fn describe_job_log_items(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: LogItemsInput = input(&body)?;
    let job_id = input
        .job_id
        .ok_or_else(|| DrsError::field("jobID", "is required"))?;
    check_id("jobID", &job_id, "drsjob-")?;
    let job = views::region(ctx.world, scope)
        .and_then(|r| r.job(&job_id))
        .ok_or_else(|| {
            DrsError::field(
                "jobID",
                format!(
                    "job {job_id} does not exist in account {} region {}",
                    scope.account, scope.region
                ),
            )
        })?;
    let keys: Vec<String> = (0..job.log.len()).map(|i| format!("{i:08}")).collect();
    let page = page(&keys, input.max_results, input.next_token.as_deref())?;
    let items: Vec<Value> = job.log[page.start..page.end]
        .iter()
        .map(|item| views::log_item_json(job, item))
        .collect();
    let mut out = json!({ "items": items });
    if let Some(token) = page.next_token {
        out["nextToken"] = json!(token);
    }
    Ok(Done::read(out))
}

// ---------------------------------------------------------------------------------------------
// Job life on the simulated clock.

/// One event of a server in a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    CleanupStart,
    CleanupEnd,
    SnapshotStart,
    SnapshotEnd,
    UsePreviousSnapshot,
    ConversionStart,
    ConversionEnd,
    LaunchStart,
    Booted,
    ShutdownStart,
    Terminated,
}

/// The next event of server `s` of `job` and when it is due (none when done or queued).
fn next_step(job: &Job, s: &JobServer) -> Option<(DateTime<Utc>, Step)> {
    let span = |salt: &str, lo: i64, hi: i64| {
        Duration::seconds(jitter(&[&job.id, &s.source_server_id, salt], lo, hi))
    };
    let at = s.phase_at;
    let second = Duration::seconds(1);
    let step = match (job.kind, s.phase) {
        (_, Phase::Queued | Phase::Done) => return None,
        (JobKind::Launch, Phase::Started) => {
            let step = if s.cleanup_instance_id.is_some() {
                Step::CleanupStart
            } else if s.snapshot_id.is_some() {
                Step::UsePreviousSnapshot
            } else {
                Step::SnapshotStart
            };
            (at + second, step)
        }
        (JobKind::Launch, Phase::CleaningUp) => (at + span("cleanup", 15, 45), Step::CleanupEnd),
        (JobKind::Launch, Phase::Snapshotting) => {
            (at + span("snapshot", 20, 40), Step::SnapshotEnd)
        }
        (JobKind::Launch, Phase::SnapshotReady) if skips_conversion(s) => {
            (at + second * 2, Step::LaunchStart)
        }
        (JobKind::Launch, Phase::SnapshotReady) => (at + second * 2, Step::ConversionStart),
        (JobKind::Launch, Phase::Converting) => {
            (at + span("conversion", 120, 360), Step::ConversionEnd)
        }
        (JobKind::Launch, Phase::Converted) => (at + second * 2, Step::LaunchStart),
        (JobKind::Launch, Phase::Booting) => (at + span("boot", 120, 300), Step::Booted),
        (JobKind::Terminate, Phase::Started) => (at + second * 2, Step::ShutdownStart),
        (JobKind::Terminate, Phase::ShuttingDown) => {
            (at + span("terminate", 60, 180), Step::Terminated)
        }
        // Phases of the other job kind never occur.
        (JobKind::Launch, Phase::ShuttingDown)
        | (
            JobKind::Terminate,
            Phase::CleaningUp
            | Phase::Snapshotting
            | Phase::SnapshotReady
            | Phase::Converting
            | Phase::Converted
            | Phase::Booting,
        ) => return None,
    };
    Some(step)
}

/// What the events of one region's jobs act on besides the job itself.
struct Effects<'a> {
    scope: &'a Scope,
    source_servers: &'a mut BTreeMap<String, SourceServer>,
    recovery_instances: &'a mut BTreeMap<String, RecoveryInstance>,
    ec2: &'a mut Ec2,
    elbv2: &'a BTreeMap<String, crate::sim::elbv2::model::ElbRegion>,
}

impl Effects<'_> {
    fn set_last_launch_status(&mut self, job_id: &str, server_id: &str, status: LaunchStatus) {
        if let Some(last) = self
            .source_servers
            .get_mut(server_id)
            .and_then(|s| s.last_launch.as_mut())
            .filter(|l| l.job_id == job_id)
        {
            last.status = status;
        }
    }

    fn set_ec2_state(&mut self, instance_id: &str, state: InstanceState, at: DateTime<Utc>) {
        if let Some(instance) = self.ec2.get_mut(instance_id) {
            instance.set_state(state, at);
        }
    }

    /// Removes a recovery instance from DRS (its EC2 instance stays, as in AWS).
    fn forget_instance(&mut self, instance_id: &str) {
        if let Some(ri) = self.recovery_instances.remove(instance_id)
            && let Some(server) = self.source_servers.get_mut(&ri.source_server_id)
            && server.recovery_instance_id.as_deref() == Some(instance_id)
        {
            server.recovery_instance_id = None;
        }
    }
}

/// Brings every active job of every region up to `now`.
pub fn advance(world: &mut World, now: DateTime<Utc>, faults: &[Fault]) {
    let World {
        drs, ec2, elbv2, ..
    } = world;
    for (key, region) in drs.iter_mut() {
        if region.jobs.iter().all(|j| j.status == JobStatus::Completed) {
            continue;
        }
        let (account, region_name) = key.split_once('/').unwrap_or((key.as_str(), ""));
        let scope = Scope::new(account, region_name);
        let DrsRegion {
            jobs,
            source_servers,
            recovery_instances,
            ..
        } = region;
        let mut effects = Effects {
            scope: &scope,
            source_servers,
            recovery_instances,
            ec2,
            elbv2,
        };
        for job in jobs.iter_mut().filter(|j| j.status != JobStatus::Completed) {
            advance_job(job, &mut effects, now, faults);
        }
    }
}

fn advance_job(job: &mut Job, fx: &mut Effects<'_>, now: DateTime<Utc>, faults: &[Fault]) {
    let all_faults = faults;
    let mut changed = false;
    if job.status == JobStatus::Pending {
        let start = job.created_at + Duration::seconds(jitter(&[&job.id, "start"], 5, 15));
        if start > now {
            return;
        }
        start_job(job, fx, start);
        changed = true;
    }
    for i in 0..job.servers.len() {
        let faults = server_fault(faults, &job.servers[i].source_server_id);
        while let Some((at, step)) = next_step(job, &job.servers[i]) {
            if at > now || faults.stuck {
                break;
            }
            if retried_failure(job, i, at, step, faults) {
                changed = true;
                continue;
            }
            let faults = past_retried_failures(&job.servers[i], faults);
            apply(job, i, at, step, faults, fx);
            if step == Step::SnapshotStart {
                clamp_to_replicated(job, i, at, fx, all_faults);
            }
            changed = true;
        }
    }
    if job.servers.iter().all(|s| s.phase == Phase::Done) {
        let end = job
            .servers
            .iter()
            .map(|s| s.phase_at)
            .max()
            .unwrap_or(job.created_at);
        finish_job(job, fx, end);
        changed = true;
    }
    if changed {
        // Servers advance one after another; the log reads in time order (stable: a server's
        // own events keep their order, and JOB_END stays last).
        job.log.sort_by_key(|item| item.at);
    }
}

/// `conversion_failure` / `launch_failure` with `attempts: N`: the first N attempts of the
/// phase fail with CONVERSION_FAIL / LAUNCH_FAILED carrying `attemptCount` and
/// `maxAttemptsCount` ("the maximum number of retries that will be attempted if this operation
/// failed", API model `JobLogEventData`), and DRS tries the phase again; the N+1-th succeeds.
/// Returns whether it handled the step (then `apply` must not).
fn retried_failure(
    job: &mut Job,
    index: usize,
    at: DateTime<Utc>,
    step: Step,
    faults: ServerFaults,
) -> bool {
    let (attempts, event, retry_from) = match step {
        Step::ConversionEnd if faults.conversion_failure => (
            faults.conversion_attempts,
            LogEvent::ConversionFail,
            Phase::SnapshotReady,
        ),
        Step::LaunchStart if faults.launch_failure => (
            faults.launch_attempts,
            LogEvent::LaunchFailed,
            Phase::Converted,
        ),
        _ => return false,
    };
    let server = &mut job.servers[index];
    let Some(attempts) = attempts else {
        return false;
    };
    if server.failed_attempts >= attempts {
        // Every failing attempt is spent: this one goes through as without a fault.
        return false;
    }
    server.failed_attempts += 1;
    server.phase = retry_from;
    server.phase_at = at;
    let attempt = (server.failed_attempts, attempts + 1);
    job.log.push(LogItem {
        at,
        event,
        server: Some(index),
        attempt: Some(attempt),
    });
    true
}

/// A failure fault with `attempts` whose failing attempts are spent no longer fails the phase.
fn past_retried_failures(server: &JobServer, mut faults: ServerFaults) -> ServerFaults {
    if faults
        .conversion_attempts
        .is_some_and(|n| server.failed_attempts >= n)
    {
        faults.conversion_failure = false;
    }
    if faults
        .launch_attempts
        .is_some_and(|n| server.failed_attempts >= n)
    {
        faults.launch_failure = false;
    }
    faults
}

/// An on-demand snapshot holds what the staging area holds when it is taken:
/// - under a `source_outage` of the origin, the data stopped at the outage: its data timestamp
///   is the outage's start;
/// - while a stopped origin's last writes are still on their way ([`super::model::Agent`]),
///   the data stops where the stop was asked for, without the writes made since;
/// - a failback server (A2) behind the writes on its origin B3 holds them up to its lag
///   (`failback::behind_writes`).
fn clamp_to_replicated(
    job: &mut Job,
    index: usize,
    at: DateTime<Utc>,
    fx: &Effects<'_>,
    faults: &[Fault],
) {
    let server = &mut job.servers[index];
    let Some(source) = fx.source_servers.get(&server.source_server_id) else {
        return;
    };
    let origin = &source.origin;
    if let Some(since) = crate::sim::faults::outage_since(faults, &origin.account, &origin.region)
        && server.data_timestamp.is_some_and(|t| t > since)
    {
        server.data_timestamp = Some(since);
    }
    if let super::model::Agent::Flushing { since, .. } = super::model::Agent::of(source, fx.ec2, at)
        && server.data_timestamp.is_some_and(|t| t > since)
    {
        server.data_timestamp = Some(since);
    }
    if let Some(behind) = super::failback::behind_writes(source, fx.elbv2, at)
        && server
            .data_timestamp
            .is_some_and(|t| t > behind.replicated_to)
    {
        server.data_timestamp = Some(behind.replicated_to);
    }
}

fn start_job(job: &mut Job, fx: &mut Effects<'_>, at: DateTime<Utc>) {
    job.status = JobStatus::Started;
    job.log.push(LogItem {
        at,
        event: LogEvent::JobStart,
        server: None,
        attempt: None,
    });
    for s in &mut job.servers {
        s.phase = Phase::Started;
        s.phase_at = at;
        if job.kind == JobKind::Launch {
            s.launch_status = LaunchStatus::InProgress;
            // A new launch cleans up the previous recovery instance of the server.
            s.cleanup_instance_id = fx
                .source_servers
                .get(&s.source_server_id)
                .and_then(|server| server.recovery_instance_id.clone())
                .filter(|id| fx.recovery_instances.contains_key(id));
        }
    }
    if job.kind == JobKind::Launch {
        for s in &job.servers {
            fx.set_last_launch_status(&job.id, &s.source_server_id, LaunchStatus::InProgress);
        }
    }
}

fn apply(
    job: &mut Job,
    index: usize,
    at: DateTime<Utc>,
    step: Step,
    faults: ServerFaults,
    fx: &mut Effects<'_>,
) {
    let job_id = job.id.clone();
    let drill = job.drill;
    let server = &mut job.servers[index];
    let server_id = server.source_server_id.clone();
    let (event, phase) = match step {
        Step::CleanupStart => (Some(LogEvent::CleanupStart), Phase::CleaningUp),
        Step::CleanupEnd => {
            if let Some(old) = server.cleanup_instance_id.take() {
                fx.set_ec2_state(&old, InstanceState::Terminated, at);
                fx.forget_instance(&old);
            }
            (Some(LogEvent::CleanupEnd), Phase::Started)
        }
        Step::SnapshotStart => {
            server.data_timestamp = Some(at);
            (Some(LogEvent::SnapshotStart), Phase::Snapshotting)
        }
        Step::SnapshotEnd => (Some(LogEvent::SnapshotEnd), Phase::SnapshotReady),
        Step::UsePreviousSnapshot => (Some(LogEvent::UsingPreviousSnapshot), Phase::SnapshotReady),
        Step::ConversionStart => (Some(LogEvent::ConversionStart), Phase::Converting),
        Step::ConversionEnd if faults.conversion_failure => {
            server.launch_status = LaunchStatus::Failed;
            fx.set_last_launch_status(&job_id, &server_id, LaunchStatus::Failed);
            (Some(LogEvent::ConversionFail), Phase::Done)
        }
        Step::ConversionEnd => (Some(LogEvent::ConversionEnd), Phase::Converted),
        Step::LaunchStart if faults.launch_failure => {
            server.launch_status = LaunchStatus::Failed;
            fx.set_last_launch_status(&job_id, &server_id, LaunchStatus::Failed);
            (Some(LogEvent::LaunchFailed), Phase::Done)
        }
        Step::LaunchStart => {
            launch_recovery_instance(fx, &job_id, server, at, drill);
            (Some(LogEvent::LaunchStart), Phase::Booting)
        }
        Step::Booted => {
            boot_recovery_instance(fx, server, at);
            server.launch_status = LaunchStatus::Launched;
            fx.set_last_launch_status(&job_id, &server_id, LaunchStatus::Launched);
            (Some(LogEvent::LaunchEnd), Phase::Done)
        }
        Step::ShutdownStart => {
            if let Some(id) = server.recovery_instance_id.clone() {
                fx.set_ec2_state(&id, InstanceState::ShuttingDown, at);
            }
            (None, Phase::ShuttingDown)
        }
        Step::Terminated => {
            if let Some(id) = server.recovery_instance_id.clone() {
                fx.set_ec2_state(&id, InstanceState::Terminated, at);
            }
            server.launch_status = LaunchStatus::Terminated;
            (None, Phase::Done)
        }
    };
    server.phase = phase;
    server.phase_at = at;
    if let Some(event) = event {
        job.log.push(LogItem {
            at,
            event,
            server: Some(index),
            attempt: None,
        });
    }
}

fn finish_job(job: &mut Job, fx: &mut Effects<'_>, at: DateTime<Utc>) {
    if job.kind == JobKind::Terminate {
        for s in &job.servers {
            let Some(id) = &s.recovery_instance_id else {
                continue;
            };
            let launched_by = fx.recovery_instances.get(id).map(|ri| ri.job_id.clone());
            fx.forget_instance(id);
            if let Some(launch_job) = launched_by {
                fx.set_last_launch_status(
                    &launch_job,
                    &s.source_server_id,
                    LaunchStatus::Terminated,
                );
            }
        }
    }
    job.log.push(LogItem {
        at,
        event: LogEvent::JobEnd,
        server: None,
        attempt: None,
    });
    job.status = JobStatus::Completed;
    job.ended_at = Some(at);
}

// ---------------------------------------------------------------------------------------------
// Launch settings and the EC2 instances of a launch (issue 11): kept apart from the phase
// progression above.

/// `recoveryMode: FAST` "skips conversion to reduce recovery time" (DRS API Reference,
/// LaunchConfiguration.recoveryMode): the snapshot goes straight to launch.
fn skips_conversion(s: &JobServer) -> bool {
    s.settings.is_some_and(|p| p.fast)
}

/// LAUNCH_START: the EC2 instance (state `pending`) from the default version of the server's
/// launch template (subnet, instance type, security groups), its private IP a function of the
/// source server and how many times it was recovered; copies the server's tags when
/// `copyTags` is on; and registers the recovery instance in DRS.
fn launch_recovery_instance(
    fx: &mut Effects<'_>,
    job_id: &str,
    server: &mut JobServer,
    at: DateTime<Utc>,
    drill: bool,
) {
    let server_id = server.source_server_id.clone();
    let instance_id = format!(
        "i-{}",
        hex_id(&[job_id, &server_id, "recovery-instance"], 17)
    );
    let (hostname, tags, copy_tags) = fx
        .source_servers
        .get(&server_id)
        .map(|s| {
            (
                s.origin.hostname.clone(),
                s.tags.clone(),
                s.launch_settings.get("copyTags").and_then(Value::as_bool) != Some(false),
            )
        })
        .unwrap_or_default();
    let scope = fx.scope;
    let template_id = views::launch_template_id(scope, &server_id);
    let subnet_default = fx
        .ec2
        .default_subnet(&scope.account, &scope.region)
        .subnet_id
        .clone();
    let data = fx
        .ec2
        .ensure_launch_template(
            &template_id,
            &format!("drs-{server_id}"),
            &scope.account,
            &scope.region,
            &subnet_default,
            at,
        )
        .default_data();
    let subnet = data
        .subnet_id
        .clone()
        .filter(|s| {
            fx.ec2
                .subnets
                .get(s)
                .is_some_and(|s| s.account == scope.account && s.region == scope.region)
        })
        .unwrap_or(subnet_default);
    let count = fx
        .ec2
        .count_launch(&scope.account, &scope.region, &server_id);
    fx.ec2.launch_in(
        instance_id.clone(),
        &subnet,
        &format!("{}/{server_id}/{count}", scope.key),
        InstanceState::Pending,
        at,
        &hostname,
    );
    if let Some(instance) = fx.ec2.get_mut(&instance_id) {
        instance.source_server_id = Some(server_id.clone());
        if let Some(kind) = data.instance_type {
            instance.instance_type = kind;
        }
        instance.security_group_ids = data.security_group_ids;
        if copy_tags {
            for (k, v) in tags {
                instance.tags.entry(k).or_insert(v);
            }
        }
        instance.tags.insert(
            "AWSElasticDisasterRecoverySourceServerID".into(),
            server_id.clone(),
        );
    }
    fx.recovery_instances.insert(
        instance_id.clone(),
        RecoveryInstance {
            id: instance_id.clone(),
            source_server_id: server_id.clone(),
            job_id: job_id.to_string(),
            drill,
            launched_at: at,
            data_timestamp: server.data_timestamp,
            failback: None,
            disconnected: false,
            tags: BTreeMap::new(),
        },
    );
    if let Some(source) = fx.source_servers.get_mut(&server_id) {
        source.recovery_instance_id = Some(instance_id.clone());
    }
    server.recovery_instance_id = Some(instance_id);
}

/// LAUNCH_END: the instance runs, or is stopped when `launchDisposition` is STOPPED (DRS
/// launches it, then stops it: the API model's `launchDisposition` is "the state of the
/// Recovery Instance in EC2 after the recovery operation", enum STOPPED|STARTED, botocore `drs`
/// LaunchConfiguration). The disposition is the one read at StartRecovery
/// ([`super::model::LaunchPlan`]), the stricter reading: a change made while the job runs does
/// not apply to it. An instance stopped or terminated meanwhile through EC2 is left as it is.
fn boot_recovery_instance(fx: &mut Effects<'_>, server: &JobServer, at: DateTime<Utc>) {
    let Some(id) = &server.recovery_instance_id else {
        return;
    };
    let stopped = server.settings.is_some_and(|p| p.stopped);
    if let Some(instance) = fx.ec2.get_mut(id)
        && instance.state == InstanceState::Pending
    {
        if stopped {
            instance.set_state(InstanceState::Stopped, at);
        } else {
            instance.set_state(InstanceState::Running, at);
        }
    }
}
