//! `cleanup` (drill): removes the drill instances from the drill target groups `validate`
//! registered them in (DeregisterTargets, first, so no health check or test traffic goes to an
//! instance being terminated), terminates the drill instances this run launched
//! (TerminateRecoveryInstances), then verifies that none of them remains, in DRS or in a drill
//! target group. Every instance and target is recorded, so an incomplete cleanup is visible and
//! resumable.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::launch::LaunchOutput;
use super::validate::ValidateOutput;
use super::{Halt, StepCtx, StepFailure};
use crate::aws::SideClients;
use crate::aws::elbv2::Target;
use crate::run::call::{Call, CallError, Found, How};
use crate::run::clock::Backoff;
use crate::run::progress::Change;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CleanupOutput {
    /// The recovery instances to terminate (the run's drill instances).
    pub instances: Vec<String>,
    pub terminate_job_id: Option<String>,
    pub terminated: Vec<String>,
    pub remaining: Vec<String>,
    /// The drill target groups were read and the targets to remove decided.
    #[serde(default)]
    pub drill_groups_planned: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drill_groups: Vec<DrillDeregistration>,
    pub verified_at: Option<String>,
}

/// The drill instances removed from one drill target group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DrillDeregistration {
    pub target_group_arn: String,
    /// The drill targets `validate` registered that were still in the group.
    pub targets: Vec<Target>,
    pub deregistered_done: bool,
    /// Drill targets still in the group (draining included) at the last look.
    #[serde(default)]
    pub remaining: Vec<String>,
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
    remove_from_drill_groups(ctx, &mut out).await?;
    if out.instances.is_empty() {
        ctx.say("no drill instance to clean up");
        out.verified_at = Some(ctx.clock.now().to_rfc3339());
        ctx.save(&out).await?;
        return Ok(());
    }
    if out.terminate_job_id.is_none() {
        let target = ctx.clients.target.clone();
        out.terminate_job_id = Some(terminate(ctx, &target, "drill", &out.instances).await?);
        ctx.save(&out).await?;
    }
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let target = ctx.clients.target.clone();
        let found =
            super::retry::read(ctx, || target.recovery_instances_by_id(&out.instances)).await?;
        out.remaining = found
            .iter()
            .filter(|i| i.ec2_state.as_deref() != Some("TERMINATED"))
            .map(|i| i.id.clone())
            .collect();
        out.terminated = out
            .instances
            .iter()
            .filter(|i| !out.remaining.contains(i))
            .cloned()
            .collect();
        ctx.say(format!(
            "{}/{} drill instance(s) terminated",
            out.terminated.len(),
            out.instances.len()
        ));
        let targets_left = drill_targets_left(ctx, &mut out).await?;
        if out.remaining.is_empty() && targets_left.is_empty() {
            out.verified_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&out).await?;
            return Ok(());
        }
        ctx.save(&out).await?;
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        if waited > GONE_DEADLINE && !targets_left.is_empty() {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "drill targets still in their drill target group after {} minutes: {}",
                    GONE_DEADLINE.as_secs() / 60,
                    targets_left.join(", ")
                ),
                "check the drill target group's deregistration delay in the EC2 console; then `retry` this step",
            )));
        }
        if waited > GONE_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "drill instances still present after {} minutes: {}",
                    GONE_DEADLINE.as_secs() / 60,
                    out.remaining.join(", ")
                ),
                "check the terminate job in the DRS console (it needs ec2:TerminateInstances and ec2:DeleteVolume in the recovery account); then `retry` this step",
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

/// Deregisters the drill targets `validate` registered (read from each wave's validate output)
/// that are still in their drill target group. What to remove is decided once, from a read of
/// the groups, and persisted; each DeregisterTargets goes intent -> call -> effect through
/// [`super::lb_switch::call`], which reconciles an open intent by reading target health first.
async fn remove_from_drill_groups(
    ctx: &mut StepCtx<'_>,
    out: &mut CleanupOutput,
) -> Result<(), Halt> {
    if !out.drill_groups_planned {
        // Only waves with a drill target group have one recorded by their validate step.
        let waves: Vec<String> = ctx
            .runbook
            .waves
            .iter()
            .filter(|w| {
                ctx.runbook
                    .load_balancers_of(&w.name)
                    .any(|lb| lb.drill_target_group_arn.is_some())
            })
            .map(|w| w.name.clone())
            .collect();
        for wave in waves {
            let validate: ValidateOutput = ctx.output_of(&format!("validate:{wave}")).await?;
            for group in validate.drill_groups {
                let side = ctx.clients.target.clone();
                let arn = group.target_group_arn.clone();
                let health = super::retry::read(ctx, || side.target_health(&arn)).await?;
                let present = |id: &str| health.iter().any(|h| h.id == id && h.state != "draining");
                let targets: Vec<Target> = group
                    .registered
                    .into_iter()
                    .filter(|t| present(&t.id))
                    .collect();
                out.drill_groups.push(DrillDeregistration {
                    target_group_arn: arn,
                    targets,
                    ..Default::default()
                });
            }
        }
        out.drill_groups_planned = true;
        ctx.save(out).await?;
    }
    for i in 0..out.drill_groups.len() {
        if out.drill_groups[i].deregistered_done {
            continue;
        }
        let arn = out.drill_groups[i].target_group_arn.clone();
        let targets = out.drill_groups[i].targets.clone();
        if !targets.is_empty() {
            super::lb_switch::call(ctx, "elbv2:DeregisterTargets", "deregister", &arn, &targets)
                .await?;
            ctx.say(format!(
                "deregistered {} drill instance(s) from the drill target group {}",
                targets.len(),
                arn.rsplit(':').next().unwrap_or(&arn)
            ));
        }
        out.drill_groups[i].deregistered_done = true;
        ctx.save(out).await?;
    }
    Ok(())
}

/// The drill targets still in a drill target group (draining ones included: the group is
/// clean only once they are gone), recorded per group.
async fn drill_targets_left(
    ctx: &mut StepCtx<'_>,
    out: &mut CleanupOutput,
) -> Result<Vec<String>, Halt> {
    let mut left = Vec::new();
    for i in 0..out.drill_groups.len() {
        if out.drill_groups[i].targets.is_empty() {
            continue;
        }
        let side = ctx.clients.target.clone();
        let arn = out.drill_groups[i].target_group_arn.clone();
        let health = super::retry::read(ctx, || side.target_health(&arn)).await?;
        let group = &mut out.drill_groups[i];
        group.remaining = group
            .targets
            .iter()
            .filter(|t| health.iter().any(|h| h.id == t.id))
            .map(|t| t.id.clone())
            .collect();
        left.extend(group.remaining.iter().map(|id| format!("{id} in {arn}")));
    }
    Ok(left)
}

/// Intent -> TerminateRecoveryInstances -> effect on one side (`what` names the instances in
/// messages and keys: `drill`, `B2`, `A3`), in calls of at most
/// [`MAX_SERVERS_PER_JOB`](crate::aws::drs::MAX_SERVERS_PER_JOB) instances: each call makes one
/// job, a job holds at most 100 source servers, and the ID list takes at most 200 (API model).
/// The first call keeps the key `terminate/<what>` (a run started before the split resumes as
/// it was), the next ones `terminate/<what>/part-<n>`. Returns the jobs' IDs, comma-separated.
///
/// Not idempotent: a call recorded as done is never sent again, and an open intent is
/// reconciled by looking at its instances (terminating or gone means the call took effect).
/// A call refused by the account's job quota (500 servers in active jobs, 20 jobs) had no
/// effect: it waits for other jobs to end and is tried again.
pub(crate) async fn terminate(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    what: &str,
    instances: &[String],
) -> Result<String, Halt> {
    let mut jobs = Vec::new();
    for (part, chunk) in instances
        .chunks(crate::aws::drs::MAX_SERVERS_PER_JOB)
        .enumerate()
    {
        let name = if part == 0 {
            format!("terminate/{what}")
        } else {
            format!("terminate/{what}/part-{part}")
        };
        jobs.push(terminate_one(ctx, side, what, &name, chunk).await?);
    }
    Ok(jobs.join(", "))
}

async fn terminate_one(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    what: &str,
    name: &str,
    instances: &[String],
) -> Result<String, Halt> {
    let call = Call::on(
        side,
        name,
        "drs:TerminateRecoveryInstances",
        serde_json::json!({ "recoveryInstanceIDs": instances }),
    );
    let mut quota_waits = 0;
    let outcome = loop {
        let result = ctx
            .call(
                &call,
                async |ctx: &mut StepCtx<'_>| {
                    let found =
                        super::retry::read(ctx, || side.recovery_instances_by_id(instances))
                            .await?;
                    let untouched = found.iter().any(|i| {
                        matches!(
                            i.ec2_state.as_deref(),
                            Some("RUNNING" | "PENDING" | "STOPPED")
                        )
                    });
                    Ok(if untouched {
                        Found::Resend
                    } else {
                        Found::TookEffect(
                            serde_json::json!({ "found_by": "DescribeRecoveryInstances" }),
                        )
                    })
                },
                async || {
                    let called = side.terminate_recovery_instances(instances).await?;
                    Ok(called.map(|job| serde_json::to_value(&job).unwrap_or_default()))
                },
            )
            .await;
        match result {
            Ok(outcome) => break outcome,
            Err(CallError::Aws { error, .. })
                if error.code.as_deref() == Some("ServiceQuotaExceededException")
                    && quota_waits < 30 =>
            {
                quota_waits += 1;
                ctx.say("DRS job quota reached by other jobs in the account; waiting 60 s before terminating the next instances");
                ctx.pause(Duration::from_secs(60)).await?;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let job_id = outcome.response["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .unwrap_or("reconciled")
        .to_string();
    if outcome.how == How::Sent {
        ctx.say(format!(
            "TerminateRecoveryInstances for {} {what} instance(s) in account {} ({}): job {job_id}",
            instances.len(),
            side.account_id,
            side.region
        ));
    }
    Ok(job_id)
}

/// The approval gate's view: the drill's recovery instances terminated.
pub(crate) async fn preview(ctx: &mut StepCtx<'_>) -> Result<Vec<Change>, Halt> {
    let recorded: CleanupOutput = ctx.my_output().await?;
    let mut instances = recorded.instances;
    if instances.is_empty() {
        for wave in &ctx.runbook.waves {
            let launch: LaunchOutput = ctx.output_of(&format!("launch:{}", wave.name)).await?;
            instances.extend(
                launch
                    .servers
                    .values()
                    .filter(|s| s.is_drill)
                    .filter_map(|s| s.recovery_instance_id.clone()),
            );
        }
        instances.sort();
    }
    Ok(instances
        .into_iter()
        .map(|id| Change::new("terminate", format!("drill recovery instance {id}")))
        .collect())
}
