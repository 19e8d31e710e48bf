//! `snapshot_conversion:<wave>`: follows the wave's jobs' log items (SNAPSHOT_*,
//! USING_PREVIOUS_SNAPSHOT, CONVERSION_*; LAUNCH_* for a server in `recoveryMode = FAST`, which is
//! not converted) until every server's data is converted, and records
//! each server's data timestamp (for the RPO). Read-only: polls once per job, not per server.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::recovery_job::RecoveryJobOutput;
use super::{Halt, StepCtx, StepFailure};
use crate::run::clock::Backoff;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConversionOutput {
    pub servers: BTreeMap<String, ServerConversion>,
}

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
        self.data_timestamp.is_some() || self.failed.is_some()
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
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(10));
    loop {
        let mut changed = false;
        for job_id in jobs.job_ids() {
            let side = ctx.recovery_side().clone();
            let log = super::retry::read(ctx, || side.job_log(&job_id)).await?;
            let job_ended = log.iter().any(|item| item.event == "JOB_END");
            for item in &log {
                let Some(server) = item.source_server_id.as_ref() else {
                    continue;
                };
                let Some(state) = out.servers.get_mut(server) else {
                    continue;
                };
                let before = state.clone();
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
                    _ => {}
                }
                changed |= *state != before;
            }
            if job_ended {
                // The job is over: a server with no conversion by now never will have one.
                for state in out
                    .servers
                    .values_mut()
                    .filter(|s| s.job_id == job_id && !s.settled())
                {
                    state.failed = Some(ServerError {
                        event: "JOB_END".into(),
                        raw_error: Some("the job ended without converting this server".into()),
                        at: None,
                    });
                    changed = true;
                }
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
            backoff.reset(Duration::from_secs(5));
        }
        if settled == total {
            break;
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
    check_failures(ctx, &out, &jobs)
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
