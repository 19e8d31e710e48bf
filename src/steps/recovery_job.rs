//! `recovery_job:<wave>`: StartRecovery for the wave's servers, in batches within the DRS quotas.
//!
//! StartRecovery is not idempotent. Every batch's job is tagged with the run, the step and the
//! batch, and its intent is committed before the call; an intent found without an effect (a
//! crash, a timeout) is reconciled with DescribeJobs by those tags, never blindly re-sent.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::compensate::Undone;
use super::{Halt, StepCtx, StepFailure, retry};
use crate::aws::SideClients;
use crate::run::call::{Call, CallError, Found, How};
use crate::run::clock::Backoff;
use crate::run::progress::Change;
use crate::runbook::Account;

pub const TAG_RUN: &str = "drs-runbook:run";
pub const TAG_STEP: &str = "drs-runbook:step";
pub const TAG_BATCH: &str = "drs-runbook:batch";

/// What the step knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RecoveryJobOutput {
    pub is_drill: bool,
    pub batches: Vec<Batch>,
    /// Failback: the A2 servers that may fail without failing the wave (their B1 is optional).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional: Vec<String>,
    /// A wave launched `STOPPED` (convert ahead, boot in order: [`super::boot`]): each server's
    /// launch disposition before the run, recorded before it was changed, so that `launch` and
    /// the rollback give it back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, String>,
    /// The DRS post-launch actions put for the wave's `ssm_document` actions, and each server's
    /// `postLaunchEnabled` before ([`super::launch_actions`]).
    #[serde(
        default,
        skip_serializing_if = "super::launch_actions::Installed::is_empty"
    )]
    pub launch_actions: super::launch_actions::Installed,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Batch {
    pub index: usize,
    /// Servers and the point-in-time snapshot each recovers from (none: a fresh snapshot).
    pub servers: Vec<(String, Option<String>)>,
    pub job_id: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
}

impl RecoveryJobOutput {
    /// Whether the server may fail without failing its wave.
    pub fn is_optional(&self, ctx: &StepCtx<'_>, server: &str) -> bool {
        ctx.is_optional(server) || self.optional.iter().any(|o| o == server)
    }

    pub fn job_ids(&self) -> Vec<String> {
        self.batches
            .iter()
            .filter_map(|b| b.job_id.clone())
            .collect()
    }
}

/// The tag value that names one batch of one step of one run.
pub fn batch_tag(run_id: &str, step_key: &str, index: usize) -> String {
    format!("{run_id}/{step_key}/{index}")
}

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let mut out: RecoveryJobOutput = ctx.my_output().await?;
    if out.batches.is_empty() {
        out = plan_batches(ctx).await?;
        ctx.save(&out).await?;
    }
    let total = out.batches.len();
    for i in 0..total {
        if out.batches[i].job_id.is_some() {
            continue;
        }
        if ctx.stopping() {
            return Err(Halt::Stopped);
        }
        if super::boot::is_held(ctx.run.operation, ctx.runbook, &ctx.wave().name) {
            let servers: Vec<String> = out.batches[i]
                .servers
                .iter()
                .map(|(s, _)| s.clone())
                .collect();
            super::boot::hold(ctx, &mut out, i, &servers).await?;
        }
        let servers: Vec<String> = out.batches[i]
            .servers
            .iter()
            .map(|(s, _)| s.clone())
            .collect();
        super::launch_actions::install(ctx, &mut out, i, &servers).await?;
        // A previous attempt may have created the job already, and recorded it (a crash
        // before the output was saved) or not (a crash mid-call): the call finds out first.
        let (job_id, how) = start_batch(ctx, &out, i).await?;
        out.batches[i].job_id = Some(job_id.clone());
        if how == How::Sent {
            out.batches[i].started_at = Some(ctx.clock.now().to_rfc3339());
        }
        ctx.save(&out).await?;
        if how == How::Sent {
            ctx.say(format!(
                "batch {}/{total}: StartRecovery{} for {} server(s): job {job_id}",
                i + 1,
                if out.is_drill { " (drill)" } else { "" },
                out.batches[i].servers.len()
            ));
        } else {
            ctx.say(format!(
                "batch {}/{total}: found job {job_id} from an earlier attempt",
                i + 1
            ));
        }
    }
    Ok(())
}

/// Splits the wave's servers into batches and resolves point-in-time snapshots.
async fn plan_batches(ctx: &mut StepCtx<'_>) -> Result<RecoveryJobOutput, Halt> {
    let servers = ctx.wave_servers().await?;
    let mut snapshots: BTreeMap<String, Option<String>> = BTreeMap::new();
    if let Some(pit) = ctx.run.options.point_in_time {
        for server in &servers {
            let snapshot = ctx
                .clients
                .target
                .snapshot_at_or_before(server, pit)
                .await?;
            let Some(snapshot) = snapshot else {
                return Err(Halt::Failed(StepFailure::new(
                    format!("no recovery snapshot of {server} at or before {pit}"),
                    "choose a later --point-in-time, or omit it to recover from the latest data",
                )));
            };
            snapshots.insert(server.clone(), Some(snapshot));
        }
    }
    let size = ctx.run.options.max_servers_per_job.clamp(1, 100);
    let batches = servers
        .chunks(size)
        .enumerate()
        .map(|(index, chunk)| Batch {
            index,
            servers: chunk
                .iter()
                .map(|s| (s.clone(), snapshots.get(s).cloned().flatten()))
                .collect(),
            job_id: None,
            started_at: None,
        })
        .collect();
    Ok(RecoveryJobOutput {
        is_drill: ctx.run.operation == crate::run::Operation::Drill,
        batches,
        optional: Vec::new(),
        held: BTreeMap::new(),
        launch_actions: Default::default(),
    })
}

/// Looks for a job of this batch created by an attempt whose outcome was not recorded (a
/// crash before the effect, an ambiguous error), by the batch's tag.
async fn find_batch_job(ctx: &mut StepCtx<'_>, index: usize) -> Result<Option<String>, Halt> {
    let tag = batch_tag(&ctx.run.id, &ctx.step.key, index);
    let since = Some(ctx.run.started_at - chrono::Duration::hours(1));
    let side = ctx.recovery_side().clone();
    let jobs = retry::read(ctx, || side.find_jobs_tagged(TAG_BATCH, &tag, since)).await?;
    Ok(jobs.first().map(|j| j.id.clone()))
}

async fn reconcile(ctx: &mut StepCtx<'_>, index: usize) -> Result<Found, Halt> {
    Ok(match find_batch_job(ctx, index).await? {
        Some(job_id) => Found::TookEffect(
            serde_json::json!({ "job_id": job_id, "found_by": "DescribeJobs tags" }),
        ),
        None => Found::NoEffect(
            "no job with this batch's tag exists: the call had no effect".to_string(),
        ),
    })
}

/// The job ID in a recorded StartRecovery response (the job, or a reconciliation's `job_id`).
fn job_id_in(response: &serde_json::Value) -> Option<String> {
    response["id"]
        .as_str()
        .or_else(|| response["job_id"].as_str())
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

/// StartRecovery for one batch, a durable call (tagged, so that an attempt whose outcome was
/// not recorded is found by DescribeJobs). Returns the job ID and how it was obtained.
async fn start_batch(
    ctx: &mut StepCtx<'_>,
    out: &RecoveryJobOutput,
    index: usize,
) -> Result<(String, How), Halt> {
    let batch = &out.batches[index];
    let mut tags = BTreeMap::new();
    tags.insert(TAG_RUN.to_string(), ctx.run.id.clone());
    tags.insert(TAG_STEP.to_string(), ctx.step.key.clone());
    tags.insert(
        TAG_BATCH.to_string(),
        batch_tag(&ctx.run.id, &ctx.step.key, index),
    );
    let side = ctx.recovery_side();
    let call = Call::on(
        side,
        format!("batch-{index}"),
        "drs:StartRecovery",
        serde_json::json!({
            "sourceServers": batch.servers.iter().map(|(s, pit)| serde_json::json!({"sourceServerID": s, "recoverySnapshotID": pit})).collect::<Vec<_>>(),
            "isDrill": out.is_drill,
            "tags": tags,
        }),
    )
    .reconciling_ambiguous();
    // The share of the DRS job quotas is taken before the call: at once when it is free (no
    // extra AWS call, no pause), else after a fair wait (see [`wait_for_budget`]).
    let mut reservation = Some(wait_for_budget(ctx, batch.servers.len() as u32).await?);
    let mut quota_waits = 0;
    loop {
        let result = ctx
            .call(
                &call,
                async |ctx: &mut StepCtx<'_>| reconcile(ctx, index).await,
                async || {
                    let called = side
                        .start_recovery(&batch.servers, out.is_drill, &tags)
                        .await?;
                    Ok(called.map(|job| serde_json::to_value(&job).unwrap_or_default()))
                },
            )
            .await;
        match result {
            Ok(outcome) => {
                let job_id = match job_id_in(&outcome.response) {
                    Some(job_id) => job_id,
                    // A recorded response without a job ID: look the job up by its tag.
                    None => find_batch_job(ctx, index).await?.ok_or_else(|| {
                        Halt::Failed(StepFailure::new(
                            format!("the recorded StartRecovery of batch {index} has no job ID, and no job has its tag"),
                            "check the jobs in the DRS console, then `retry` this step",
                        ))
                    })?,
                };
                if let Some(reservation) = reservation.take() {
                    reservation.bind(&job_id);
                }
                return Ok((job_id, outcome.how));
            }
            // The outcome stayed unknown and no job has the batch's tag: try again.
            Err(CallError::Aws { error, attempt }) if error.ambiguous => {
                if attempt >= 3 {
                    return Err(error.into());
                }
            }
            Err(CallError::Aws { error, .. })
                if error.code.as_deref() == Some("ServiceQuotaExceededException")
                    && quota_waits < 20 =>
            {
                // Rejected, so no effect: other jobs in the account hold the quota. Wait for them.
                quota_waits += 1;
                ctx.say("DRS job quota reached by other jobs in the account; waiting 60 s");
                ctx.pause(Duration::from_secs(60)).await?;
            }
            // A re-sent StartRecovery (an earlier attempt's outcome was unknown and its job not
            // listed yet) refused because the servers are "being processed by a Job": most
            // likely that earlier attempt's own job. Its tag says; adopt it rather than fail.
            Err(CallError::Aws { error, attempt })
                if attempt > 1 && error.code.as_deref() == Some("ConflictException") =>
            {
                for _ in 0..6 {
                    ctx.pause(Duration::from_secs(10)).await?;
                    if let Some(job_id) = find_batch_job(ctx, index).await? {
                        ctx.say(format!(
                            "StartRecovery of batch {index} was refused as a conflict, but the job {job_id} of its earlier attempt exists: adopted"
                        ));
                        if let Some(reservation) = reservation.take() {
                            reservation.bind(&job_id);
                        }
                        return Ok((job_id, How::Reconciled));
                    }
                }
                return Err(error.into());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How long a batch waits for the DRS job quotas without any job of the run ending before its
/// step fails (simulated time against the simulator).
pub const BUDGET_DEADLINE: Duration = Duration::from_secs(3 * 60 * 60);

/// A share of the DRS job quotas for a job of `servers` servers.
///
/// When the share is free and no batch waits ahead, it is taken at once: no AWS call, no
/// pause. Otherwise the batch waits in the run's first-come, first-served queue; the batch
/// first in the queue polls DescribeJobs (one call for every job holding a share) and gives
/// back the shares of the jobs that ended, so no other step has to run for the wait to end.
/// Without any progress (no share taken or returned) for [`BUDGET_DEADLINE`] the step fails,
/// naming the quota and the jobs holding it; `retry` waits again.
async fn wait_for_budget<'a>(
    ctx: &mut StepCtx<'a>,
    servers: u32,
) -> Result<crate::run::budget::Reservation<'a>, Halt> {
    let budget: &'a crate::run::budget::JobBudget = ctx.budget;
    let ticket = budget.enqueue(servers);
    if let Some(reservation) = ticket.try_take() {
        return Ok(reservation);
    }
    let (jobs, held) = budget.in_use();
    ctx.say(format!(
        "waiting for the DRS job quota ({} jobs in progress, {} servers in active jobs per account and region): this run's jobs use {jobs} job(s) and {held} server(s); {} batch(es) wait ahead",
        budget.max_jobs,
        budget.max_servers,
        ticket.ahead()
    ));
    let side = ctx.recovery_side();
    let mut progress = budget.progress();
    let mut since = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(30));
    loop {
        if ticket.is_first() {
            let holders = budget.holders();
            if !holders.is_empty() {
                let ids: Vec<String> = holders.iter().map(|(j, _)| j.clone()).collect();
                let (watch, clock) = (ctx.jobs, ctx.clock);
                let described =
                    retry::read(ctx, || watch.describe(side, clock.now(), &ids)).await?;
                let mut ended = Vec::new();
                for id in &ids {
                    // A job DescribeJobs no longer returns has ended (DRS deletes only ended jobs).
                    let done = described
                        .iter()
                        .find(|j| &j.id == id)
                        .is_none_or(|j| j.is_completed());
                    if done && budget.release(id) {
                        ended.push(id.clone());
                    }
                }
                if !ended.is_empty() {
                    ctx.say(format!(
                        "job(s) {} ended: their share of the DRS job quota is free",
                        ended.join(", ")
                    ));
                }
            }
        }
        if let Some(reservation) = ticket.try_take() {
            return Ok(reservation);
        }
        if budget.progress() != progress {
            progress = budget.progress();
            since = ctx.clock.now();
            backoff.reset(Duration::from_secs(10));
        } else if (ctx.clock.now() - since).to_std().unwrap_or_default() >= BUDGET_DEADLINE {
            let holders = budget.holders();
            let (jobs, held) = budget.in_use();
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "no progress for {} h waiting for the DRS job quota (at most {} jobs in progress and {} servers in active jobs per account and region): a batch of {} server(s) does not fit; this run's jobs hold {jobs} job(s) and {held} server(s): {}",
                    BUDGET_DEADLINE.as_secs() / 3600,
                    budget.max_jobs,
                    budget.max_servers,
                    ticket.servers(),
                    if holders.is_empty() {
                        "none (other jobs in the account hold the quota)".to_string()
                    } else {
                        holders
                            .iter()
                            .map(|(j, s)| format!("{j} ({s} servers)"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                format!(
                    "check these jobs in the DRS console (a job that never ends holds its share); once they have ended, `drs-runbook retry {} --step {}` continues",
                    ctx.run.id, ctx.step.key
                ),
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

// ---------------------------------------------------------------- compensation
//
// `undo:<key>` of a rollback run (see [`super::compensate`]): the launch dispositions it held
// given back ([`super::boot::release`]), and the recovery instances of its jobs (found by the
// jobs' tags) terminated, on the side the step used.

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UndoRecoveryOutput {
    /// The original step's jobs, found by their tags (whether or not their effect was recorded).
    pub jobs: Vec<String>,
    /// The jobs had ended and their instances were listed.
    pub listed: bool,
    pub instances: Vec<String>,
    pub terminate_job_id: Option<String>,
    pub remaining: Vec<String>,
    pub verified_at: Option<String>,
}

const JOBS_DEADLINE: Duration = Duration::from_secs(60 * 60);
const GONE_DEADLINE: Duration = Duration::from_secs(20 * 60);

pub(crate) async fn compensate(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoRecoveryOutput = ctx.my_output().await?;
    let target = ctx.clients.side(undone.side()).clone();
    let original: RecoveryJobOutput = undone.decode()?;
    super::boot::release(ctx, &target, &original.held).await?;
    super::launch_actions::compensate(ctx, &target, &original.launch_actions).await?;
    if !out.listed {
        let since = Some(undone.created_at - chrono::Duration::hours(1));
        let run_tag = undone.run_id.to_string();
        let tagged = retry::read(ctx, || target.find_jobs_tagged(TAG_RUN, &run_tag, since)).await?;
        out.jobs = tagged
            .into_iter()
            .filter(|j| j.tags.get(TAG_STEP) == Some(&undone.key))
            .map(|j| j.id)
            .collect();
        out.jobs.sort();
        ctx.save(&out).await?;
        // A job still launching would add instances after we listed them: wait for its end.
        let started = ctx.clock.now();
        let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
        let jobs = loop {
            let described = retry::read(ctx, || target.describe_jobs(&out.jobs)).await?;
            if described.iter().all(|j| j.is_completed()) {
                break described;
            }
            if (ctx.clock.now() - started).to_std().unwrap_or_default() > JOBS_DEADLINE {
                return Err(Halt::Failed(StepFailure::new(
                    format!(
                        "the recovery job(s) {} have not ended after {} minutes",
                        out.jobs.join(", "),
                        JOBS_DEADLINE.as_secs() / 60
                    ),
                    "check the jobs in the DRS console; `retry` this step once they have ended",
                )));
            }
            ctx.say(format!(
                "waiting for {} recovery job(s) to end before terminating their instances",
                described.iter().filter(|j| !j.is_completed()).count()
            ));
            let interval = backoff.next_interval();
            ctx.pause(interval).await?;
        };
        let ids: Vec<String> = jobs
            .iter()
            .flat_map(|j| j.servers.iter())
            .filter_map(|s| s.recovery_instance_id.clone())
            .collect();
        let found = if ids.is_empty() {
            Vec::new()
        } else {
            retry::read(ctx, || target.recovery_instances_by_id(&ids)).await?
        };
        out.instances = found
            .into_iter()
            .filter(|i| i.ec2_state.as_deref() != Some("TERMINATED"))
            .map(|i| i.id)
            .collect();
        out.instances.sort();
        out.listed = true;
        ctx.save(&out).await?;
    }
    if out.instances.is_empty() {
        ctx.say("no recovery instance of this step remains");
        out.verified_at = Some(ctx.clock.now().to_rfc3339());
        ctx.save(&out).await?;
        return Ok(());
    }
    if out.terminate_job_id.is_none() {
        out.terminate_job_id = Some(terminate(ctx, undone, &target, &out.instances).await?);
        ctx.save(&out).await?;
    }
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let found = retry::read(ctx, || target.recovery_instances_by_id(&out.instances)).await?;
        out.remaining = found
            .iter()
            .filter(|i| i.ec2_state.as_deref() != Some("TERMINATED"))
            .map(|i| i.id.clone())
            .collect();
        if out.remaining.is_empty() {
            ctx.say(format!(
                "{} recovery instance(s) terminated",
                out.instances.len()
            ));
            out.verified_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&out).await?;
            return Ok(());
        }
        ctx.save(&out).await?;
        if (ctx.clock.now() - started).to_std().unwrap_or_default() > GONE_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "recovery instances still present after {} minutes: {}",
                    GONE_DEADLINE.as_secs() / 60,
                    out.remaining.join(", ")
                ),
                "check the terminate job in the DRS console; then `retry` this step",
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

/// Intent -> TerminateRecoveryInstances -> effect on the original step's side: the failover's
/// recovery instances in the target, a failback's A3s in the origin.
async fn terminate(
    ctx: &mut StepCtx<'_>,
    undone: &Undone,
    side: &SideClients,
    instances: &[String],
) -> Result<String, Halt> {
    let what = match undone.side() {
        Account::Target => "recovery",
        Account::Source => "A3",
    };
    super::cleanup::terminate(ctx, side, what, instances).await
}

/// The approval gate's view: the wave's source servers recovered, each from a fresh snapshot or
/// the point in time asked for.
pub(crate) async fn preview(ctx: &mut StepCtx<'_>) -> Result<Vec<Change>, Halt> {
    let drill = ctx.run.operation == crate::run::Operation::Drill;
    let what = if drill { "drill" } else { "recovery" };
    let snapshot = match ctx.run.options.point_in_time {
        Some(pit) => format!("the snapshot at or before {}", pit.to_rfc3339()),
        None => "a new snapshot".to_string(),
    };
    Ok(ctx
        .wave_servers()
        .await?
        .into_iter()
        .map(|id| {
            Change::new(
                "start_recovery",
                format!("source server {id} ({what}, from {snapshot})"),
            )
        })
        .collect())
}

/// The rollback gate's view: the live recovery instances of the original step's jobs (found
/// by the jobs' tags), terminated.
pub(crate) async fn preview_compensation(
    ctx: &mut StepCtx<'_>,
    undone: &Undone,
) -> Result<Vec<Change>, Halt> {
    let recorded: UndoRecoveryOutput = ctx.my_output().await?;
    let instances = if recorded.listed {
        recorded.instances
    } else {
        let target = ctx.clients.side(undone.side()).clone();
        let since = Some(undone.created_at - chrono::Duration::hours(1));
        let run_tag = undone.run_id.to_string();
        let jobs: Vec<String> =
            retry::read(ctx, || target.find_jobs_tagged(TAG_RUN, &run_tag, since))
                .await?
                .into_iter()
                .filter(|j| j.tags.get(TAG_STEP) == Some(&undone.key))
                .map(|j| j.id)
                .collect();
        let described = retry::read(ctx, || target.describe_jobs(&jobs)).await?;
        let ids: Vec<String> = described
            .iter()
            .flat_map(|j| j.servers.iter())
            .filter_map(|s| s.recovery_instance_id.clone())
            .collect();
        let mut live: Vec<String> = if ids.is_empty() {
            Vec::new()
        } else {
            retry::read(ctx, || target.recovery_instances_by_id(&ids))
                .await?
                .into_iter()
                .filter(|i| i.ec2_state.as_deref() != Some("TERMINATED"))
                .map(|i| i.id)
                .collect()
        };
        live.sort();
        live
    };
    Ok(instances
        .into_iter()
        .map(|id| Change::new("terminate", format!("recovery instance {id}")))
        .collect())
}
