//! `validate:<wave>` (drill): every launched drill instance of the wave is running in EC2, is
//! marked as a drill by DRS and passes the health gate ([`super::health`], the gate `launch`
//! holds every wave at: both EC2 status checks within the wave's `boot_timeout`); then, when the wave's `[[load_balancer]]` names a
//! `drill_target_group_arn`, the drill instances are registered in that group and the step
//! waits until they are healthy (the production target group is never touched by a drill).
//!
//! Re-entrant: the instances found running and each drill group's registration are persisted
//! as they happen, and RegisterTargets goes intent -> call -> effect through
//! [`super::lb_switch::call`], which reconciles an open intent by reading the group's target
//! health before sending anything again. `cleanup` deregisters what is recorded here.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::compensate::Undone;
use super::launch::LaunchOutput;
use super::lb_switch::{GroupRestore, UndoLbOutput};
use super::{Halt, StepCtx, StepFailure, retry};
use crate::aws::elbv2::Target;
use crate::run::clock::Backoff;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ValidateOutput {
    pub instances: Vec<ValidatedInstance>,
    /// When every drill instance was found running (the drill groups come after).
    #[serde(default)]
    pub running_at: Option<String>,
    /// The drill target groups of the wave and the drill instances registered in them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drill_groups: Vec<DrillGroup>,
    /// When the whole validation passed: instances running and healthy in every drill group.
    pub validated_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ValidatedInstance {
    pub source_server_id: String,
    pub recovery_instance_id: String,
    pub ec2_instance_id: Option<String>,
    pub ec2_state: Option<String>,
    pub is_drill: bool,
}

/// A drill target group and the drill instances this step put in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DrillGroup {
    pub target_group_arn: String,
    /// The drill instances' EC2 IDs with the runbook's port (decided before any call).
    pub registered: Vec<Target>,
    pub registered_done: bool,
    pub healthy_at: Option<String>,
}

/// How long a launched instance may take to report RUNNING.
const RUNNING_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// How long drill targets may stay unhealthy before the step fails.
const HEALTH_DEADLINE: Duration = Duration::from_secs(15 * 60);

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let wave = ctx.step.wave.clone().unwrap_or_default();
    let mut out: ValidateOutput = ctx.my_output().await?;
    if out.running_at.is_none() {
        let launch: LaunchOutput = ctx
            .output_of(&super::boot::gate_step(
                ctx.run.operation,
                ctx.runbook,
                &wave,
            ))
            .await?;
        out.instances = wait_running(ctx, &launch).await?;
        let gated: Vec<super::health::Gated> = out
            .instances
            .iter()
            .filter_map(|i| {
                Some(super::health::Gated {
                    source_server_id: i.source_server_id.clone(),
                    instance_id: i.ec2_instance_id.clone()?,
                    optional: ctx.is_optional(&i.source_server_id),
                })
            })
            .collect();
        let side = ctx.clients.target.clone();
        let timeout = ctx.wave().boot_timeout;
        let passed = super::health::wait(ctx, &side, &gated, timeout, None).await?;
        out.instances.retain(|i| {
            !passed
                .passed_over
                .iter()
                .any(|(s, _)| s == &i.source_server_id)
        });
        out.running_at = Some(ctx.clock.now().to_rfc3339());
        ctx.save(&out).await?;
    }
    for (arn, port) in drill_groups(ctx, &wave) {
        let index = match out
            .drill_groups
            .iter()
            .position(|g| g.target_group_arn == arn)
        {
            Some(i) => i,
            None => {
                let mut registered: Vec<Target> = out
                    .instances
                    .iter()
                    .filter_map(|i| i.ec2_instance_id.clone())
                    .map(|id| Target {
                        id,
                        port: port.map(i32::from),
                    })
                    .collect();
                registered.sort();
                out.drill_groups.push(DrillGroup {
                    target_group_arn: arn.clone(),
                    registered,
                    ..Default::default()
                });
                ctx.save(&out).await?;
                out.drill_groups.len() - 1
            }
        };
        if !out.drill_groups[index].registered_done {
            let targets = out.drill_groups[index].registered.clone();
            super::lb_switch::call(ctx, "elbv2:RegisterTargets", "register", &arn, &targets)
                .await?;
            out.drill_groups[index].registered_done = true;
            ctx.save(&out).await?;
            ctx.say(format!(
                "registered {} drill instance(s) in the drill target group {}",
                targets.len(),
                short(&arn)
            ));
        }
        if out.drill_groups[index].healthy_at.is_none() {
            let targets = out.drill_groups[index].registered.clone();
            wait_healthy(ctx, &arn, &targets).await?;
            out.drill_groups[index].healthy_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&out).await?;
        }
    }
    out.validated_at = Some(ctx.clock.now().to_rfc3339());
    ctx.save(&out).await?;
    Ok(())
}

/// The drill target groups of the wave's load balancers, with their ports.
pub(crate) fn drill_groups(ctx: &StepCtx<'_>, wave: &str) -> Vec<(String, Option<u16>)> {
    ctx.runbook
        .load_balancers_of(wave)
        .filter_map(|lb| Some((lb.drill_target_group_arn.clone()?, lb.port)))
        .collect()
}

/// Polls DescribeRecoveryInstances until every launched drill instance runs and is a drill.
async fn wait_running(
    ctx: &mut StepCtx<'_>,
    launch: &LaunchOutput,
) -> Result<Vec<ValidatedInstance>, Halt> {
    let expected: Vec<(String, String)> = launch
        .launched()
        .filter_map(|(server, s)| {
            s.recovery_instance_id
                .clone()
                .map(|ri| (server.clone(), ri))
        })
        .collect();
    let ids: Vec<String> = expected.iter().map(|(_, ri)| ri.clone()).collect();
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let target = ctx.clients.target.clone();
        let found = retry::read(ctx, || target.recovery_instances_by_id(&ids)).await?;
        let instances: Vec<ValidatedInstance> = expected
            .iter()
            .map(|(server, ri)| {
                let f = found.iter().find(|i| &i.id == ri);
                ValidatedInstance {
                    source_server_id: server.clone(),
                    recovery_instance_id: ri.clone(),
                    ec2_instance_id: f.and_then(|i| i.ec2_instance_id.clone()),
                    ec2_state: f.and_then(|i| i.ec2_state.clone()),
                    is_drill: f.is_some_and(|i| i.is_drill),
                }
            })
            .collect();
        let bad: Vec<String> = instances
            .iter()
            .filter(|i| i.ec2_state.as_deref() != Some("RUNNING") || !i.is_drill)
            .map(|i| {
                format!(
                    "{} ({}): {}{}",
                    i.recovery_instance_id,
                    i.source_server_id,
                    i.ec2_state.as_deref().unwrap_or("not found"),
                    if i.is_drill {
                        ""
                    } else {
                        ", not a drill instance"
                    }
                )
            })
            .collect();
        if bad.is_empty() {
            ctx.say(format!("{} drill instance(s) running", instances.len()));
            return Ok(instances);
        }
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        if waited > RUNNING_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!("drill instances are not running: {}", bad.join("; ")),
                "look at the instances in the EC2 console of the recovery region (status checks, console output); the drill cleanup still runs with `rollback`",
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

/// Polls DescribeTargetHealth (tolerant reads) until every drill target is healthy, or fails
/// naming the targets that are not, with their state and reason.
async fn wait_healthy(ctx: &mut StepCtx<'_>, arn: &str, targets: &[Target]) -> Result<(), Halt> {
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    let mut last = String::new();
    loop {
        let side = ctx.clients.target.clone();
        let health = retry::read(ctx, || side.target_health(arn)).await?;
        let not_healthy: Vec<String> = targets
            .iter()
            .filter_map(|t| match health.iter().find(|h| h.id == t.id) {
                Some(h) if h.state == "healthy" => None,
                Some(h) => Some(format!(
                    "{} is {}{}",
                    t.id,
                    h.state,
                    h.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )),
                None => Some(format!("{} is not registered", t.id)),
            })
            .collect();
        let line = format!(
            "{}/{} drill target(s) healthy in {}",
            targets.len() - not_healthy.len(),
            targets.len(),
            short(arn)
        );
        if line != last {
            ctx.say(&line);
            last = line;
        }
        if not_healthy.is_empty() {
            return Ok(());
        }
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        if waited > HEALTH_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "drill targets did not become healthy in the drill target group {arn} within {} minutes: {}",
                    HEALTH_DEADLINE.as_secs() / 60,
                    not_healthy.join(", ")
                ),
                format!(
                    "check the drill target group's health check (path, port) and the drill instances' security groups and application; then `drs-runbook retry {} --step {}`, or `drs-runbook rollback {}` to remove the drill instances",
                    ctx.run.id, ctx.step.key, ctx.run.id
                ),
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

fn short(arn: &str) -> &str {
    arn.split(':').next_back().unwrap_or(arn)
}

// ---------------------------------------------------------------- compensation
//
// `undo:<key>` of a rollback run (see [`super::compensate`]): the drill instances it
// registered in the runbook's drill target groups deregistered.

/// Removes the drill instances a drill's `validate` registered in its drill target groups (those
/// still registered when the rollback looks; planned once and persisted like [`super::lb_switch::compensate`]).
pub(crate) async fn compensate(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoLbOutput = ctx.my_output().await?;
    // Drills run in the recovery (target) account and region only.
    let target = ctx.clients.target.clone();
    if !out.planned {
        let validated: ValidateOutput = undone.decode()?;
        for group in &validated.drill_groups {
            let health = retry::read(ctx, || target.target_health(&group.target_group_arn)).await?;
            let present = |id: &str| health.iter().any(|h| h.id == id && h.state != "draining");
            out.groups.push(GroupRestore {
                target_group_arn: group.target_group_arn.clone(),
                deregister: group
                    .registered
                    .iter()
                    .filter(|t| present(&t.id))
                    .cloned()
                    .collect(),
                ..Default::default()
            });
        }
        out.planned = true;
        ctx.save(&out).await?;
    }
    if out.groups.is_empty() {
        ctx.say("no drill target group to clean");
    }
    super::lb_switch::restore_groups(ctx, &target, &mut out).await
}
