//! `lb_switch:<wave>`: registers the wave's recovered instances in its target group(s), waits
//! until they are healthy, then deregisters the targets that were there before (captured first,
//! so that a rollback can put them back).

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::compensate::Undone;
use super::launch::LaunchOutput;
use super::{Halt, StepCtx, StepFailure, retry};
use crate::aws::SideClients;
use crate::aws::elbv2::Target;
use crate::run::call::{Call, Found};
use crate::run::clock::Backoff;
use crate::run::progress::Change;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LbSwitchOutput {
    pub groups: Vec<GroupSwitch>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupSwitch {
    pub target_group_arn: String,
    /// The targets before the switch (captured before any change).
    pub before: Vec<Target>,
    pub registered: Vec<Target>,
    pub registered_done: bool,
    pub healthy_at: Option<String>,
    pub deregistered: Vec<Target>,
    pub deregistered_done: bool,
}

/// How long new targets may stay unhealthy before the step fails (simulated or real time).
const HEALTH_DEADLINE: Duration = Duration::from_secs(15 * 60);

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let wave = ctx.step.wave.clone().unwrap_or_default();
    let launch: LaunchOutput = ctx
        .output_of(&super::boot::gate_step(
            ctx.run.operation,
            ctx.runbook,
            &wave,
        ))
        .await?;
    let mut out: LbSwitchOutput = ctx.my_output().await?;
    let groups = switched_groups(ctx, &wave);
    let target = ctx.recovery_side().clone();
    for (group_arn, port) in &groups {
        let port = port.map(i32::from);
        let index = match out
            .groups
            .iter()
            .position(|g| &g.target_group_arn == group_arn)
        {
            Some(i) => i,
            None => {
                let before: Vec<Target> = retry::read(ctx, || target.target_health(group_arn))
                    .await?
                    .into_iter()
                    .filter(|t| t.state != "draining")
                    .map(|t| Target {
                        id: t.id,
                        port: t.port,
                    })
                    .collect();
                let mut registered: Vec<Target> = launch
                    .launched()
                    .filter_map(|(_, s)| s.ec2_instance_id.clone())
                    .map(|id| Target { id, port })
                    .collect();
                registered.sort();
                out.groups.push(GroupSwitch {
                    target_group_arn: group_arn.clone(),
                    before,
                    registered,
                    ..Default::default()
                });
                ctx.save(&out).await?;
                out.groups.len() - 1
            }
        };
        let arn = group_arn.clone();
        if !out.groups[index].registered_done {
            let targets = out.groups[index].registered.clone();
            call(ctx, "elbv2:RegisterTargets", "register", &arn, &targets).await?;
            out.groups[index].registered_done = true;
            ctx.save(&out).await?;
            ctx.say(format!(
                "registered {} target(s) in {}",
                targets.len(),
                short(&arn)
            ));
        }
        if out.groups[index].healthy_at.is_none() {
            wait_healthy(ctx, &arn, &out.groups[index].registered).await?;
            out.groups[index].healthy_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&out).await?;
        }
        if !out.groups[index].deregistered_done {
            let new = &out.groups[index].registered;
            let old: Vec<Target> = out.groups[index]
                .before
                .iter()
                .filter(|t| !new.iter().any(|n| n.id == t.id))
                .cloned()
                .collect();
            if !old.is_empty() {
                call(ctx, "elbv2:DeregisterTargets", "deregister", &arn, &old).await?;
                ctx.say(format!(
                    "deregistered {} old target(s) from {}",
                    old.len(),
                    short(&arn)
                ));
            }
            out.groups[index].deregistered = old;
            out.groups[index].deregistered_done = true;
            ctx.save(&out).await?;
        }
    }
    Ok(())
}

/// The wave's target groups and ports on the side that now serves: the failover target
/// groups, or in a failback the `failback_target_group_arn`s in the origin account and region.
fn switched_groups(ctx: &StepCtx<'_>, wave: &str) -> Vec<(String, Option<u16>)> {
    let failback = ctx.run.operation == crate::run::Operation::Failback;
    ctx.runbook
        .load_balancers_of(wave)
        .filter_map(|lb| {
            let arn = if failback {
                lb.failback_target_group_arn.clone()?
            } else {
                lb.target_group_arn.clone()
            };
            Some((arn, lb.port))
        })
        .collect()
}

/// Intent -> Register/DeregisterTargets -> effect. A call recorded as done is never sent again;
/// an intent left open by a crash is reconciled by reading the group's targets first.
pub(crate) async fn call(
    ctx: &mut StepCtx<'_>,
    operation: &str,
    verb: &str,
    arn: &str,
    targets: &[Target],
) -> Result<(), Halt> {
    let side = ctx.recovery_side().clone();
    call_on(ctx, &side, operation, verb, arn, targets).await
}

/// [`call`] on a named side: a rollback undoes a failback's switch in the origin account.
pub(crate) async fn call_on(
    ctx: &mut StepCtx<'_>,
    target: &crate::aws::SideClients,
    operation: &str,
    verb: &str,
    arn: &str,
    targets: &[Target],
) -> Result<(), Halt> {
    let call = Call::on(
        target,
        format!("{verb}/{arn}"),
        operation,
        serde_json::json!({ "targetGroupArn": arn, "targets": targets }),
    );
    ctx.call(
        &call,
        // A crash left this intent open: look before sending again.
        async |ctx: &mut StepCtx<'_>| {
            let health = retry::read(ctx, || target.target_health(arn)).await?;
            let present = |id: &str| health.iter().any(|h| h.id == id && h.state != "draining");
            let done = if verb == "register" {
                targets.iter().all(|t| present(&t.id))
            } else {
                targets.iter().all(|t| !present(&t.id))
            };
            Ok(if done {
                Found::TookEffect(serde_json::json!({ "found_by": "DescribeTargetHealth" }))
            } else {
                Found::Resend
            })
        },
        async || {
            let called = if verb == "register" {
                target.register_targets(arn, targets).await?
            } else {
                target.deregister_targets(arn, targets).await?
            };
            Ok(called.map(|_| serde_json::json!({})))
        },
    )
    .await?;
    Ok(())
}

async fn wait_healthy(ctx: &mut StepCtx<'_>, arn: &str, targets: &[Target]) -> Result<(), Halt> {
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    let mut last = String::new();
    loop {
        let side = ctx.recovery_side().clone();
        let health = retry::read(ctx, || side.target_health(arn)).await?;
        let states: Vec<(String, String)> = targets
            .iter()
            .map(|t| {
                let state = health
                    .iter()
                    .find(|h| h.id == t.id)
                    .map(|h| h.state.clone())
                    .unwrap_or_else(|| "missing".into());
                (t.id.clone(), state)
            })
            .collect();
        let healthy = states.iter().filter(|(_, s)| s == "healthy").count();
        let line = format!(
            "{healthy}/{} target(s) healthy in {}",
            targets.len(),
            short(arn)
        );
        if line != last {
            ctx.say(&line);
            last = line;
        }
        if healthy == targets.len() {
            return Ok(());
        }
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        if waited > HEALTH_DEADLINE {
            let bad: Vec<String> = states
                .iter()
                .filter(|(_, s)| s != "healthy")
                .map(|(id, s)| format!("{id} is {s}"))
                .collect();
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "targets did not become healthy in {} within {} minutes: {}",
                    arn,
                    HEALTH_DEADLINE.as_secs() / 60,
                    bad.join(", ")
                ),
                "check the target group's health check (path, port), the instances' security groups and that the application started; then `retry` this step",
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
// `undo:<key>` of a rollback run (see [`super::compensate`]): the targets the switch
// deregistered registered again, the ones it added deregistered.

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UndoLbOutput {
    pub planned: bool,
    pub groups: Vec<GroupRestore>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupRestore {
    pub target_group_arn: String,
    /// Targets from before the switch that are not registered now.
    pub reregister: Vec<Target>,
    pub reregistered_done: bool,
    /// Targets the switch added that are registered now.
    pub deregister: Vec<Target>,
    pub deregistered_done: bool,
}

pub(crate) async fn compensate(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoLbOutput = ctx.my_output().await?;
    if !out.planned {
        let switch: LbSwitchOutput = undone.decode()?;
        let side = ctx.clients.side(undone.side()).clone();
        for group in &switch.groups {
            let health = retry::read(ctx, || side.target_health(&group.target_group_arn)).await?;
            let present = |id: &str| health.iter().any(|h| h.id == id && h.state != "draining");
            let was_there = |id: &str| group.before.iter().any(|b| b.id == id);
            // ELBv2 registers only running instances ("not in a running state and cannot be
            // registered"): an old target stopped since (a source instance the failover
            // fenced) serves nothing and stays out, said so.
            let instances: Vec<String> = group
                .before
                .iter()
                .filter(|t| !present(&t.id) && t.id.starts_with("i-"))
                .map(|t| t.id.clone())
                .collect();
            let stopped: Vec<String> = retry::read(ctx, || side.describe_instances(&instances))
                .await?
                .into_iter()
                .filter(|i| i.state != "running")
                .map(|i| {
                    ctx.say(format!(
                        "{} is {}: not registered in {} again",
                        i.instance_id, i.state, group.target_group_arn
                    ));
                    i.instance_id
                })
                .collect();
            out.groups.push(GroupRestore {
                target_group_arn: group.target_group_arn.clone(),
                reregister: group
                    .before
                    .iter()
                    .filter(|t| !present(&t.id) && !stopped.contains(&t.id))
                    .cloned()
                    .collect(),
                deregister: group
                    .registered
                    .iter()
                    .filter(|t| !was_there(&t.id) && present(&t.id))
                    .cloned()
                    .collect(),
                ..Default::default()
            });
        }
        out.planned = true;
        ctx.save(&out).await?;
    }
    let side = ctx.clients.side(undone.side()).clone();
    restore_groups(ctx, &side, &mut out).await
}

/// Applies planned target-group restores on `side`: old targets back first, then the added
/// ones out.
pub(crate) async fn restore_groups(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    out: &mut UndoLbOutput,
) -> Result<(), Halt> {
    for i in 0..out.groups.len() {
        let arn = out.groups[i].target_group_arn.clone();
        // The old targets go back first, so the group is never left empty.
        if !out.groups[i].reregistered_done {
            let targets = out.groups[i].reregister.clone();
            if !targets.is_empty() {
                call_on(
                    ctx,
                    side,
                    "elbv2:RegisterTargets",
                    "register",
                    &arn,
                    &targets,
                )
                .await?;
                ctx.say(format!(
                    "registered {} target(s) from before the switch again",
                    targets.len()
                ));
            }
            out.groups[i].reregistered_done = true;
            ctx.save(out).await?;
        }
        if !out.groups[i].deregistered_done {
            let targets = out.groups[i].deregister.clone();
            if !targets.is_empty() {
                call_on(
                    ctx,
                    side,
                    "elbv2:DeregisterTargets",
                    "deregister",
                    &arn,
                    &targets,
                )
                .await?;
                ctx.say(format!(
                    "deregistered the {} recovered target(s)",
                    targets.len()
                ));
            }
            out.groups[i].deregistered_done = true;
            ctx.save(out).await?;
        }
    }
    Ok(())
}

/// The approval gate's view: per target group, the wave's instances registered and the targets
/// serving now deregistered once the new ones are healthy.
pub(crate) async fn preview(ctx: &mut StepCtx<'_>) -> Result<Vec<Change>, Halt> {
    let wave = ctx.step.wave.clone().unwrap_or_default();
    let launch: LaunchOutput = ctx.output_of(&format!("launch:{wave}")).await?;
    let target = ctx.recovery_side().clone();
    let mut registered: Vec<String> = launch
        .launched()
        .filter_map(|(_, s)| s.ec2_instance_id.clone())
        .collect();
    registered.sort();
    let mut changes = Vec::new();
    for (group_arn, _) in switched_groups(ctx, &wave) {
        let serving: Vec<String> = retry::read(ctx, || target.target_health(&group_arn))
            .await?
            .into_iter()
            .filter(|t| t.state != "draining")
            .map(|t| t.id)
            .collect();
        let old: Vec<String> = serving
            .iter()
            .filter(|id| !registered.contains(id))
            .cloned()
            .collect();
        changes.push(
            Change::new("register", format!("in {}", short(&group_arn)))
                .from_to(ids_text(&serving), ids_text(&registered)),
        );
        if !old.is_empty() {
            changes.push(Change {
                after: Some(old.join(", ")),
                ..Change::new(
                    "deregister",
                    format!(
                        "from {} once the new targets are healthy",
                        short(&group_arn)
                    ),
                )
            });
        }
    }
    Ok(changes)
}

/// The rollback gate's view: the targets the switch removed registered again, the ones it
/// added deregistered.
pub(crate) fn preview_compensation(undone: &Undone) -> Result<Vec<Change>, Halt> {
    let switch: LbSwitchOutput = undone.decode()?;
    let mut changes = Vec::new();
    for group in &switch.groups {
        let ids = |targets: &[Target]| targets.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        if !group.deregistered.is_empty() {
            changes.push(Change {
                after: Some(ids(&group.deregistered).join(", ")),
                ..Change::new("register", format!("in {}", short(&group.target_group_arn)))
            });
        }
        changes.push(Change {
            after: Some(ids(&group.registered).join(", ")),
            ..Change::new(
                "deregister",
                format!("from {}", short(&group.target_group_arn)),
            )
        });
    }
    Ok(changes)
}

fn ids_text(ids: &[String]) -> String {
    if ids.is_empty() {
        "(no target)".to_string()
    } else {
        ids.join(", ")
    }
}
