//! `recovery_job:<wave>`: StartRecovery for the wave's servers, in batches within the DRS quotas.
//!
//! StartRecovery is not idempotent. Every batch's job is tagged with the run, the step and the
//! batch, and its intent is committed before the call; an intent found without an effect (a
//! crash, a timeout) is reconciled with DescribeJobs by those tags, never blindly re-sent.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::{Halt, StepCtx, StepFailure};
use crate::engine::journal::CallState;

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
        // First what the journal knows: a previous attempt may have created the job already,
        // and recorded it (a crash before the output was saved) or not (a crash mid-call).
        let known = match ctx
            .journal
            .call_state(&ctx.step.key, &intent_prefix(ctx, i))
            .await?
        {
            CallState::Done(response) => match job_id_in(&response) {
                Some(job_id) => Some(job_id),
                None => reconcile(ctx, i).await?,
            },
            CallState::Open(_) => reconcile(ctx, i).await?,
            CallState::NotSent { .. } => None,
        };
        if let Some(job_id) = known {
            ctx.say(format!(
                "batch {}/{total}: found job {job_id} from an earlier attempt",
                i + 1
            ));
            out.batches[i].job_id = Some(job_id);
            ctx.save(&out).await?;
            continue;
        }
        let job_id = start_batch(ctx, &out, i).await?;
        out.batches[i].job_id = Some(job_id.clone());
        out.batches[i].started_at = Some(ctx.clock.now().to_rfc3339());
        ctx.journal.save_output(&ctx.step.key, &out).await?;
        ctx.say(format!(
            "batch {}/{total}: StartRecovery{} for {} server(s): job {job_id}",
            i + 1,
            if out.is_drill { " (drill)" } else { "" },
            out.batches[i].servers.len()
        ));
    }
    Ok(())
}

/// Splits the wave's servers into batches and resolves point-in-time snapshots.
async fn plan_batches(ctx: &mut StepCtx<'_>) -> Result<RecoveryJobOutput, Halt> {
    let servers = ctx.wave().servers.clone();
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
        is_drill: ctx.run.operation == crate::engine::plan::Operation::Drill,
        batches,
        optional: Vec::new(),
    })
}

/// Looks for a job of this batch created by an earlier attempt whose job ID did not reach the
/// step's output: an intent left open by a crash before the effect, or an effect recorded just
/// before a crash that came before the output was saved (two commits). Marks the open intents
/// reconciled (found) or failed (not found).
async fn reconcile(ctx: &mut StepCtx<'_>, index: usize) -> Result<Option<String>, Halt> {
    let prefix = intent_prefix(ctx, index);
    // No call of this batch was ever intended: there is nothing to find.
    if ctx
        .journal
        .effects_count_with_prefix(&ctx.step.key, &prefix)
        .await?
        == 0
    {
        return Ok(None);
    }
    let open = ctx.journal.open_intents(&ctx.step.key).await?;
    let open: Vec<_> = open
        .into_iter()
        .filter(|e| e.idempotency_key.starts_with(&prefix))
        .collect();
    let tag = batch_tag(&ctx.run.id, &ctx.step.key, index);
    let since = Some(ctx.run.started_at - chrono::Duration::hours(1));
    let side = ctx.recovery_side().clone();
    let jobs = super::retry::read(ctx, || side.find_jobs_tagged(TAG_BATCH, &tag, since)).await?;
    let found = jobs.first().map(|j| j.id.clone());
    for effect in open {
        match &found {
            Some(job_id) => {
                ctx.journal
                    .reconcile_effect(
                        effect.id,
                        serde_json::json!({ "job_id": job_id, "found_by": "DescribeJobs tags" }),
                    )
                    .await?
            }
            None => {
                ctx.journal
                    .fail_effect(
                        effect.id,
                        "no job with this batch's tag exists: the call had no effect",
                    )
                    .await?
            }
        }
    }
    Ok(found)
}

/// The job ID in a recorded StartRecovery response (the job, or a reconciliation's `job_id`).
fn job_id_in(response: &serde_json::Value) -> Option<String> {
    response["id"]
        .as_str()
        .or_else(|| response["job_id"].as_str())
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

fn intent_prefix(ctx: &StepCtx<'_>, index: usize) -> String {
    format!("{}/{}/batch-{index}/", ctx.run.id, ctx.step.key)
}

/// Intent -> StartRecovery -> effect for one batch. Returns the job ID.
async fn start_batch(
    ctx: &mut StepCtx<'_>,
    out: &RecoveryJobOutput,
    index: usize,
) -> Result<String, Halt> {
    let batch = &out.batches[index];
    let mut tags = BTreeMap::new();
    tags.insert(TAG_RUN.to_string(), ctx.run.id.clone());
    tags.insert(TAG_STEP.to_string(), ctx.step.key.clone());
    tags.insert(
        TAG_BATCH.to_string(),
        batch_tag(&ctx.run.id, &ctx.step.key, index),
    );
    let reservation = ctx.budget.acquire(batch.servers.len() as u32).await;
    let mut quota_waits = 0;
    loop {
        let attempt = ctx
            .journal
            .effects_count_with_prefix(&ctx.step.key, &intent_prefix(ctx, index))
            .await?
            + 1;
        let key = format!("{}attempt-{attempt}", intent_prefix(ctx, index));
        let request = serde_json::json!({
            "sourceServers": batch.servers.iter().map(|(s, pit)| serde_json::json!({"sourceServerID": s, "recoverySnapshotID": pit})).collect::<Vec<_>>(),
            "isDrill": out.is_drill,
            "tags": tags,
        });
        let target = ctx.recovery_side();
        let effect = ctx
            .journal
            .begin_intent(
                &ctx.step.key,
                &key,
                "drs:StartRecovery",
                &target.account_id,
                &target.region,
                request,
            )
            .await?;
        match target
            .start_recovery(&batch.servers, out.is_drill, &tags)
            .await
        {
            Ok(called) => {
                let job_id = called.value.id.clone();
                ctx.journal
                    .complete_effect(
                        effect,
                        serde_json::to_value(&called.value).unwrap_or_default(),
                        called.request_id,
                    )
                    .await?;
                reservation.bind(&job_id);
                return Ok(job_id);
            }
            Err(e) if e.ambiguous => {
                // The call may have created the job: find out before anything else.
                ctx.say(format!(
                    "StartRecovery outcome unknown ({}); reconciling by job tags",
                    e.message
                ));
                ctx.pause(Duration::from_secs(5)).await?;
                if let Some(job_id) = reconcile(ctx, index).await? {
                    reservation.bind(&job_id);
                    return Ok(job_id);
                }
                if attempt >= 3 {
                    return Err(e.into());
                }
            }
            Err(e)
                if e.code.as_deref() == Some("ServiceQuotaExceededException")
                    && quota_waits < 20 =>
            {
                // Rejected, so no effect: other jobs in the account hold the quota. Wait for them.
                ctx.journal.fail_effect(effect, &e.to_string()).await?;
                quota_waits += 1;
                ctx.say("DRS job quota reached by other jobs in the account; waiting 60 s");
                ctx.pause(Duration::from_secs(60)).await?;
            }
            Err(e) => {
                ctx.journal.fail_effect(effect, &e.to_string()).await?;
                return Err(e.into());
            }
        }
    }
}
