//! `snapshot_conversion:<wave>`: follows the wave's jobs' log items (SNAPSHOT_*,
//! USING_PREVIOUS_SNAPSHOT, CONVERSION_*; LAUNCH_* for a server in `recoveryMode = FAST`, which is
//! not converted) until every server's data is converted, and records
//! each server's data timestamp (for the RPO). Read-only, and polling per run, not per job: it
//! asks the run's shared DescribeJobs ([`crate::run::jobs`]) at the intervals of the conversion
//! phase of the last of its servers ([`crate::run::poll::CONVERSION`],
//! [`crate::run::poll::Phase::last_of`]), and reads a job's log only when DescribeJobs can no
//! longer tell more: once every server of the job is past its conversion (`participatingServers`
//! name its recovery instance, or its `launchStatus` is final), or the job ended, or the
//! deadline passed. So a job's log is read once, not once per poll.
//!
//! DRS's semantics, not a stricter reading of the log:
//! - a failed phase that DRS retries (`attemptCount` < `maxAttemptsCount`) is recorded, not
//!   final; a later CONVERSION_END clears a failure;
//! - `recoveryMode: FAST` skips conversion: a LAUNCH_START with no conversion settles the
//!   server with its snapshot's time;
//! - once the job ends, each server's `launchStatus` (DescribeJobs) is the authority: LAUNCHED
//!   passes whatever the log said, FAILED fails;
//! - events the engine does not know are kept in the output, never fatal;
//! - the step has a deadline (the wave's `conversion_timeout`, from its current attempt): a
//!   stuck job fails it naming the job, and `retry` continues from what was recorded.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::recovery_job::RecoveryJobOutput;
use super::{Halt, StepCtx, StepFailure};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConversionOutput {
    pub servers: BTreeMap<String, ServerConversion>,
    /// The step attempt the deadline counts from, and when it began (engine clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<(i64, String)>,
}

/// The log events this step interprets (the rest are kept as `other_events`).
const KNOWN_EVENTS: [&str; 14] = [
    "JOB_START",
    "JOB_END",
    "CLEANUP_START",
    "CLEANUP_END",
    "SNAPSHOT_START",
    "SNAPSHOT_END",
    "USING_PREVIOUS_SNAPSHOT",
    "CONVERSION_START",
    "CONVERSION_END",
    "LAUNCH_START",
    "SNAPSHOT_FAIL",
    "USING_PREVIOUS_SNAPSHOT_FAILED",
    "CONVERSION_FAIL",
    "LAUNCH_FAILED",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerConversion {
    pub job_id: String,
    /// `on_demand` (SNAPSHOT_END) or `previous` (USING_PREVIOUS_SNAPSHOT).
    pub snapshot: Option<String>,
    pub snapshot_at: Option<String>,
    pub conversion_started_at: Option<String>,
    pub converted_at: Option<String>,
    /// The point in time the recovered data is from (conversionProperties.dataTimestamp).
    pub data_timestamp: Option<String>,
    pub failed: Option<ServerError>,
    /// Failed attempts DRS retried (event and attempt), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retried: Vec<String>,
    /// Log events the engine does not interpret, kept as DRS sent them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_events: Vec<String>,
    /// The job's `launchStatus` for the server once the job ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_status: Option<String>,
}

/// A server that failed, with the job log event that said so.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerError {
    pub event: String,
    pub raw_error: Option<String>,
    pub at: Option<String>,
}

impl ServerConversion {
    fn settled(&self) -> bool {
        self.data_timestamp.is_some()
            || self.failed.is_some()
            || self.launch_status.as_deref() == Some("LAUNCHED")
    }
}

const FAILURE_EVENTS: [&str; 5] = [
    "SNAPSHOT_FAIL",
    "USING_PREVIOUS_SNAPSHOT_FAILED",
    "CONVERSION_FAIL",
    "SERVER_SKIPPED",
    "LAUNCH_FAILED",
];

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let jobs: RecoveryJobOutput = ctx.output_of(&ctx.job_step_key()).await?;
    let mut out: ConversionOutput = ctx.my_output().await?;
    for batch in &jobs.batches {
        let job_id = batch.job_id.clone().unwrap_or_default();
        for (server, _) in &batch.servers {
            out.servers
                .entry(server.clone())
                .or_insert_with(|| ServerConversion {
                    job_id: job_id.clone(),
                    ..Default::default()
                });
        }
    }
    let total = out.servers.len();
    // The deadline counts from this attempt's start: a `retry` gets a fresh one.
    let since = match &out.waiting_since {
        Some((attempt, at)) if *attempt == ctx.step.attempt => {
            crate::aws::parse_time(at).unwrap_or_else(|| ctx.clock.now())
        }
        _ => {
            let now = ctx.clock.now();
            out.waiting_since = Some((ctx.step.attempt, now.to_rfc3339()));
            ctx.save(&out).await?;
            now
        }
    };
    let deadline = ctx.wave().conversion_timeout;
    let job_ids = jobs.job_ids();
    // What DescribeJobs said of each job when its log was last read: read again only once it
    // says more.
    let mut log_read_at: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    loop {
        let overdue = (ctx.clock.now() - since).to_std().unwrap_or_default() > deadline;
        let side = ctx.recovery_side();
        let (watch, clock) = (ctx.jobs, ctx.clock);
        let described =
            super::retry::read(ctx, || watch.describe(side, clock.now(), &job_ids)).await?;
        let mut changed = false;
        for job in &described {
            let past = job.servers.iter().filter(|s| past_conversion(s)).count();
            let progress = (past, job.is_completed());
            let unsettled = out
                .servers
                .values()
                .any(|s| s.job_id == job.id && !s.settled());
            // participatingServers say when every server is past its conversion (launched,
            // launching or failed), not the data timestamps, retries and errors: the log does.
            let told = past == job.servers.len() || job.is_completed() || overdue;
            if unsettled && told && log_read_at.get(&job.id) != Some(&progress) {
                log_read_at.insert(job.id.clone(), progress);
                let log = super::retry::read(ctx, || side.job_log(&job.id)).await?;
                changed |= follow_log(&mut out, &log);
            }
            let undecided = out
                .servers
                .values()
                .any(|s| s.job_id == job.id && s.launch_status.is_none());
            if job.is_completed() && undecided {
                // The job is over: each server's launchStatus is the authority.
                settle_by_launch_status(&mut out, job);
                changed = true;
            }
        }
        let settled = out.servers.values().filter(|s| s.settled()).count();
        if changed {
            ctx.save(&out).await?;
            let converted = out
                .servers
                .values()
                .filter(|s| s.data_timestamp.is_some())
                .count();
            ctx.say(format!(
                "{converted}/{total} converted, {} failed",
                settled - converted
            ));
        }
        if settled == total {
            break;
        }
        if overdue {
            let stuck: Vec<String> = out
                .servers
                .iter()
                .filter(|(_, s)| !s.settled())
                .map(|(server, s)| format!("{server} (job {})", s.job_id))
                .collect();
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "the conversion did not finish within {} (the wave's conversion_timeout): {}",
                    humantime(deadline),
                    stuck.join(", ")
                ),
                format!(
                    "the job looks stuck: check it in the DRS console (DescribeJobLogItems); once it moves again, `drs-runbook retry {} --step {}` continues from what was recorded",
                    ctx.run.id, ctx.step.key
                ),
            )));
        }
        let began = crate::run::jobs::latest_created(&described).unwrap_or(since);
        let pause = crate::run::poll::CONVERSION
            .last_of(total)
            .pause(began, ctx.clock.now());
        ctx.pause(pause).await?;
    }
    check_failures(ctx, &out, &jobs)
}

/// Whether DescribeJobs tells that a server is past its conversion: its instance is launching
/// or launched (DRS names it as the launch starts), or it ended one way or the other.
fn past_conversion(server: &crate::aws::drs::JobServer) -> bool {
    server.recovery_instance_id.is_some()
        || matches!(
            server.launch_status.as_deref(),
            Some("LAUNCHED" | "FAILED" | "TERMINATED")
        )
}

/// Follows a job's log: snapshots, conversions, data timestamps, failures (final or retried)
/// and the events the engine does not know, per server. Returns whether anything changed.
fn follow_log(out: &mut ConversionOutput, log: &[crate::aws::drs::LogItem]) -> bool {
    let mut changed = false;
    for item in log {
        let Some(server) = item.source_server_id.as_ref() else {
            continue;
        };
        let Some(state) = out.servers.get_mut(server) else {
            continue;
        };
        let before = state.clone();
        let retried = item
            .attempt_count
            .zip(item.max_attempts_count)
            .is_some_and(|(n, max)| n < max);
        match item.event.as_str() {
            "SNAPSHOT_END" => {
                state.snapshot = Some("on_demand".into());
                state.snapshot_at = item.at.clone();
            }
            "USING_PREVIOUS_SNAPSHOT" => {
                state.snapshot = Some("previous".into());
                state.snapshot_at = item.at.clone();
            }
            "CONVERSION_START" => state.conversion_started_at = item.at.clone(),
            "CONVERSION_END" => {
                state.converted_at = item.at.clone();
                state.data_timestamp = item
                    .data_timestamp
                    .clone()
                    .or_else(|| state.snapshot_at.clone());
                // A retried conversion that succeeded: the earlier failure was not final.
                state.failed = None;
            }
            // FAST recovery mode skips conversion: launched from the snapshot as is.
            "LAUNCH_START"
                if state.data_timestamp.is_none()
                    && state.failed.is_none()
                    && state.conversion_started_at.is_none() =>
            {
                state.data_timestamp = state.snapshot_at.clone().or(item.at.clone());
            }
            event if FAILURE_EVENTS.contains(&event) && retried => {
                let seen = format!(
                    "{event} attempt {}/{} at {}",
                    item.attempt_count.unwrap_or_default(),
                    item.max_attempts_count.unwrap_or_default(),
                    item.at.as_deref().unwrap_or("?")
                );
                if !state.retried.contains(&seen) {
                    state.retried.push(seen);
                }
            }
            // `recoveryMode = FAST` skips conversion: the launch follows the snapshot,
            // and the recovered data is the snapshot's.
            "LAUNCH_START" | "LAUNCH_END"
                if state.conversion_started_at.is_none()
                    && state.data_timestamp.is_none()
                    && state.snapshot_at.is_some() =>
            {
                state.data_timestamp = state.snapshot_at.clone();
            }
            event if FAILURE_EVENTS.contains(&event) && state.data_timestamp.is_none() => {
                state.failed = Some(ServerError {
                    event: event.to_string(),
                    raw_error: item.raw_error.clone(),
                    at: item.at.clone(),
                });
            }
            event
                if !KNOWN_EVENTS.contains(&event)
                    && !state.other_events.iter().any(|e| e == event) =>
            {
                state.other_events.push(event.to_string());
            }
            _ => {}
        }
        changed |= *state != before;
    }
    changed
}

/// Settles the servers of an ended job by their `launchStatus` (DescribeJobs).
fn settle_by_launch_status(out: &mut ConversionOutput, job: &crate::aws::drs::Job) {
    let job_id = &job.id;
    let statuses: BTreeMap<String, String> = job
        .servers
        .iter()
        .map(|s| {
            (
                s.source_server_id.clone(),
                s.launch_status.clone().unwrap_or_default(),
            )
        })
        .collect();
    for (server, state) in out.servers.iter_mut().filter(|(_, s)| &s.job_id == job_id) {
        let status = statuses.get(server).cloned().unwrap_or_default();
        match status.as_str() {
            "LAUNCHED" => {
                state.failed = None;
                if state.data_timestamp.is_none() {
                    state.data_timestamp = state.snapshot_at.clone();
                }
            }
            // A server converted and then not launched is the launch step's to
            // report (LAUNCH_FAILED there); one never converted fails here.
            _ if !state.settled() => {
                state.failed = Some(ServerError {
                    event: "JOB_END".into(),
                    raw_error: Some(format!(
                        "the job ended with launchStatus {} for this server",
                        if status.is_empty() {
                            "unknown"
                        } else {
                            &status
                        }
                    )),
                    at: None,
                });
            }
            _ => {}
        }
        state.launch_status = Some(if status.is_empty() {
            "UNKNOWN".into()
        } else {
            status
        });
    }
}

/// A deadline as the runbook writes it (`2h`, `10m`, `90s`).
pub(crate) fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn check_failures(
    ctx: &StepCtx<'_>,
    out: &ConversionOutput,
    jobs: &RecoveryJobOutput,
) -> Result<(), Halt> {
    let critical: Vec<String> = out
        .servers
        .iter()
        .filter(|(server, s)| s.failed.is_some() && !jobs.is_optional(ctx, server))
        .map(|(server, s)| {
            let f = s.failed.as_ref().expect("filtered on failed");
            format!(
                "{server} ({} in job {}{})",
                f.event,
                s.job_id,
                f.raw_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    for (server, s) in &out.servers {
        if let (Some(f), true) = (&s.failed, jobs.is_optional(ctx, server)) {
            ctx.say(format!(
                "optional server {server} failed ({}); the wave goes on without it",
                f.event
            ));
        }
    }
    if critical.is_empty() {
        Ok(())
    } else {
        Err(Halt::Failed(StepFailure::new(
            format!("snapshot or conversion failed for {}", critical.join("; ")),
            "read the raw error in the DRS job log (drs-runbook show <run>); check the replication health of the server and the DRS launch settings, then `retry` this step or `rollback` the run",
        )))
    }
}
