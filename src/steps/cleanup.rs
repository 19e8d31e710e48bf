//! `cleanup` (drill): terminates the drill instances this run launched
//! (TerminateRecoveryInstances), then verifies that none of them remains. Every instance is
//! recorded, so an incomplete cleanup is visible and resumable.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::engine::journal::CallState;
use super::launch::LaunchOutput;
use super::{Halt, StepCtx, StepFailure};
use crate::engine::clock::Backoff;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CleanupOutput {
    /// The recovery instances to terminate (the run's drill instances).
    pub instances: Vec<String>,
    pub terminate_job_id: Option<String>,
    pub terminated: Vec<String>,
    pub remaining: Vec<String>,
    pub verified_at: Option<String>,
}

const GONE_DEADLINE: Duration = Duration::from_secs(20 * 60);

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let mut out: CleanupOutput = ctx.my_output().await?;
    if out.instances.is_empty() {
        for wave in &ctx.runbook.waves {
            let launch: LaunchOutput = ctx.output_of(&format!("launch:{}", wave.name)).await?;
            out.instances.extend(
                launch
                    .servers
                    .values()
                    .filter(|s| s.is_drill)
                    .filter_map(|s| s.recovery_instance_id.clone()),
            );
        }
        out.instances.sort();
        ctx.save(&out).await?;
    }
    if out.instances.is_empty() {
        ctx.say("no drill instance to clean up");
        out.verified_at = Some(ctx.clock.now().to_rfc3339());
        ctx.save(&out).await?;
        return Ok(());
    }
    if out.terminate_job_id.is_none() {
        out.terminate_job_id = Some(terminate(ctx, &out.instances).await?);
        ctx.save(&out).await?;
    }
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let target = ctx.clients.target.clone();
        let found = super::retry::read(ctx, || target.recovery_instances_by_id(&out.instances)).await?;
        out.remaining = found
            .iter()
            .filter(|i| i.ec2_state.as_deref() != Some("TERMINATED"))
            .map(|i| i.id.clone())
            .collect();
        out.terminated = out.instances.iter().filter(|i| !out.remaining.contains(i)).cloned().collect();
        ctx.say(format!("{}/{} drill instance(s) terminated", out.terminated.len(), out.instances.len()));
        if out.remaining.is_empty() {
            out.verified_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&out).await?;
            return Ok(());
        }
        ctx.save(&out).await?;
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        if waited > GONE_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!("drill instances still present after {} minutes: {}", GONE_DEADLINE.as_secs() / 60, out.remaining.join(", ")),
                "check the terminate job in the DRS console (it needs ec2:TerminateInstances and ec2:DeleteVolume in the recovery account); then `retry` this step",
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

/// Intent -> TerminateRecoveryInstances -> effect. Not idempotent: an open intent is reconciled
/// by looking at the instances (already terminating or gone means the call took effect).
pub(crate) async fn terminate(ctx: &mut StepCtx<'_>, instances: &[String]) -> Result<String, Halt> {
    let target = ctx.clients.target.clone();
    let prefix = format!("{}/{}/terminate/", ctx.run.id, ctx.step.key);
    let effect = match ctx.journal.call_state(&ctx.step.key, &prefix).await? {
        // Sent and recorded before a crash: never twice.
        CallState::Done(response) => return Ok(response["id"].as_str().filter(|id| !id.is_empty()).unwrap_or("reconciled").to_string()),
        CallState::Open(e) => {
            let found = super::retry::read(ctx, || target.recovery_instances_by_id(instances)).await?;
            let untouched = found.iter().any(|i| matches!(i.ec2_state.as_deref(), Some("RUNNING" | "PENDING" | "STOPPED")));
            if !untouched {
                ctx.journal.reconcile_effect(e.id, serde_json::json!({ "found_by": "DescribeRecoveryInstances" })).await?;
                return Ok("reconciled".to_string());
            }
            e.id
        }
        CallState::NotSent { next_key } => {
            ctx.journal
                .begin_intent(&ctx.step.key, &next_key, "drs:TerminateRecoveryInstances", &target.account_id, &target.region, serde_json::json!({ "recoveryInstanceIDs": instances }))
                .await?
        }
    };
    match target.terminate_recovery_instances(instances).await {
        Ok(called) => {
            let job_id = called.value.id.clone();
            ctx.journal
                .complete_effect(effect, serde_json::to_value(&called.value).unwrap_or_default(), called.request_id)
                .await?;
            ctx.say(format!("TerminateRecoveryInstances for {} instance(s): job {job_id}", instances.len()));
            Ok(job_id)
        }
        Err(e) => {
            ctx.journal.fail_effect(effect, &e.to_string()).await?;
            Err(e.into())
        }
    }
}
