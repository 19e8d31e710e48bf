//! `cleanup` of a failback, as `[cleanup]` says and in the order AWS documents (drs-api.md 4.2
//! steps 3-4, 4.4):
//!
//! ```text
//! failback:        re-protect: ReverseReplication(A3), B1 CONTINUOUS from A4   when reprotect (default)
//!                  ─► fence A1: Stop/TerminateInstances (source), 100 a call   source_instances = stop (default) | terminate
//!                  ─► StopReplication(A2) ─► TerminateRecoveryInstances(B2) (target)  when terminate_recovery_instances
//!                  StopReplication(B1)  (target)                              when stop_source_replication (not with reprotect)
//! failback drill:  StopReplication(A2)  ─► TerminateRecoveryInstances(A3) (origin)   always; B2 keeps serving
//! ```
//!
//! DRS refuses to terminate B2 while it replicates into A2, hence A2 first. A1 is the instance
//! each B1 protected before the re-protect (read when the cleanup is planned): an A1 left
//! running would replicate its stale disk into B1 again, and the next failover would recover it
//! (real-aws-gaps.md 4). Every resource is recorded before it is touched, so an incomplete
//! cleanup is visible and resumes where it was; nothing here can be undone, so the step always
//! waits for an approval when it terminates anything (`engine::plan`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::fence_source::{self, InstanceChange};
use super::launch::LaunchOutput;
use super::reprotect::{self, Reprotect};
use super::reversed_replication::ReversedReplicationOutput;
use super::{Halt, StepCtx, StepFailure, retry};
use crate::aws::SideClients;
use crate::aws::ec2::MAX_IDS_PER_CALL;
use crate::run::call::{Call, Found};
use crate::run::clock::Backoff;
use crate::run::progress::Change;
use crate::runbook::{Account, SourceInstances};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FailbackCleanupOutput {
    pub drill: bool,
    /// The plan below is recorded (before any change).
    pub planned: bool,
    /// A2 servers (origin) whose replication is stopped.
    pub stop_a2: Vec<String>,
    pub a2_stopped: Vec<String>,
    /// Recovery instances terminated: A3 (origin) in a drill, B2 (target) after a failback.
    pub terminate: Option<Termination>,
    /// B1 servers (target) whose replication is stopped (`stop_source_replication`).
    pub stop_b1: Vec<String>,
    pub b1_stopped: Vec<String>,
    /// Re-protect, by B1 (`[cleanup] reprotect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reprotect: Vec<Reprotect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprotected_at: Option<String>,
    /// The old source instances (A1) stopped or terminated (`[cleanup] source_instances`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_fence: Option<SourceFence>,
    /// What was left alone and why.
    pub kept: Vec<String>,
    pub verified_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Termination {
    pub side: Account,
    /// `A3` or `B2`.
    pub role: String,
    pub instances: Vec<String>,
    pub job_id: Option<String>,
    pub terminated: Vec<String>,
    pub remaining: Vec<String>,
}

/// The fence of the old source: A1 by B1, and what EC2 said of each when the cleanup was planned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceFence {
    pub action: SourceInstances,
    /// Each B1 and the instance it protected before the failback (A1).
    pub instances: BTreeMap<String, String>,
    /// The instances to stop or terminate (the others were already).
    pub change: Vec<String>,
    /// Instances left as they were, with their state.
    pub left: Vec<(String, String)>,
    /// When every A1 was seen stopped (or terminated).
    pub fenced_at: Option<String>,
}

/// How long the A1s may take to stop or terminate.
const FENCE_DEADLINE: Duration = Duration::from_secs(30 * 60);

const GONE_DEADLINE: Duration = Duration::from_secs(20 * 60);

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let mut out: FailbackCleanupOutput = ctx.my_output().await?;
    if !out.planned {
        out = plan(ctx).await?;
        ctx.save(&out).await?;
    }
    for note in &out.kept {
        ctx.say(note);
    }
    if !out.reprotect.is_empty() && out.reprotected_at.is_none() {
        reprotect::reverse(ctx, &mut out).await?;
        reprotect::wait_continuous(ctx, &mut out).await?;
    }
    if out.source_fence.is_some() {
        fence_old_source(ctx, &mut out).await?;
    }
    let source = ctx.clients.source.clone();
    let target = ctx.clients.target.clone();
    for a2 in out.stop_a2.clone() {
        if !out.a2_stopped.contains(&a2) {
            stop_replication(ctx, &source, &a2, "A2").await?;
            out.a2_stopped.push(a2);
            ctx.save(&out).await?;
        }
    }
    if let Some(mut termination) = out.terminate.clone() {
        let side = ctx.clients.side(termination.side).clone();
        if termination.job_id.is_none() {
            termination.job_id = Some(
                super::cleanup::terminate(ctx, &side, &termination.role, &termination.instances)
                    .await?,
            );
            out.terminate = Some(termination.clone());
            ctx.save(&out).await?;
        }
        wait_gone(ctx, &side, &mut out).await?;
    }
    for b1 in out.stop_b1.clone() {
        if !out.b1_stopped.contains(&b1) {
            stop_replication(ctx, &target, &b1, "B1").await?;
            out.b1_stopped.push(b1);
            ctx.save(&out).await?;
        }
    }
    out.verified_at = Some(ctx.clock.now().to_rfc3339());
    ctx.save(&out).await?;
    Ok(())
}

/// What to clean up, from this run's outputs and the runbook's `[cleanup]`.
async fn plan(ctx: &mut StepCtx<'_>) -> Result<FailbackCleanupOutput, Halt> {
    let drill = ctx.run.options.drill;
    let mut a2s = Vec::new();
    let mut b2s = Vec::new();
    let mut b1s = Vec::new();
    let mut a3s = Vec::new();
    // B1 -> (A3, A4), for the re-protect.
    let mut failed_back: BTreeMap<String, (String, String)> = BTreeMap::new();
    for wave in ctx.runbook.waves_in_order() {
        let reversed: ReversedReplicationOutput = ctx
            .output_of(&format!("reversed_replication:{}", wave.name))
            .await?;
        for (b1, s) in &reversed.servers {
            b1s.push(b1.clone());
            b2s.push(s.recovery_instance_id.clone());
            a2s.extend(s.a2_id.clone());
        }
        let launch: LaunchOutput = ctx.output_of(&format!("launch:{}", wave.name)).await?;
        for (b1, s) in &reversed.servers {
            let launched = s.a2_id.as_ref().and_then(|a2| launch.servers.get(a2));
            if let Some(l) = launched
                && let (Some(a3), Some(a4)) = (&l.recovery_instance_id, &l.ec2_instance_id)
            {
                failed_back.insert(b1.clone(), (a3.clone(), a4.clone()));
            }
        }
        a3s.extend(
            launch
                .servers
                .values()
                .filter_map(|s| s.recovery_instance_id.clone()),
        );
    }
    let mut out = FailbackCleanupOutput {
        drill,
        planned: true,
        ..Default::default()
    };
    if drill {
        out.stop_a2 = a2s;
        out.terminate = (!a3s.is_empty()).then(|| termination(Account::Source, "A3", a3s));
        out.kept.push("failback drill: the failover's recovery instances (B2) keep serving; B1 keeps replicating".to_string());
        return Ok(out);
    }
    let cleanup = &ctx.runbook.cleanup;
    if cleanup.reprotect {
        out.reprotect = failed_back
            .iter()
            .map(|(b1, (a3, a4))| Reprotect {
                b1: b1.clone(),
                a3: a3.clone(),
                a4: a4.clone(),
                ..Default::default()
            })
            .collect();
    } else {
        out.kept.push("[cleanup] reprotect = false: B1 keeps protecting the old source instances, not the failed-back ones".to_string());
    }
    match cleanup.source_instances {
        SourceInstances::Keep => out.kept.push(
            "[cleanup] source_instances = \"keep\": the old source instances (A1) are left as they are".to_string(),
        ),
        action => {
            let a4s: Vec<&String> = failed_back.values().map(|(_, a4)| a4).collect();
            out.source_fence = plan_source_fence(ctx, action, &b1s, &a4s).await?;
        }
    }
    if ctx.runbook.cleanup.terminate_recovery_instances {
        out.stop_a2 = a2s;
        out.terminate = Some(termination(Account::Target, "B2", b2s));
    } else {
        out.kept.push("[cleanup] terminate_recovery_instances = false: the recovery instances (B2) and A2's replication are kept".to_string());
    }
    if ctx.runbook.cleanup.stop_source_replication && !cleanup.reprotect {
        out.stop_b1 = b1s;
    } else {
        out.kept
            .push("[cleanup] stop_source_replication = false: B1 keeps replicating".to_string());
    }
    Ok(out)
}

/// Each B1's source instance (A1, from DRS, before the re-protect changes it) and what EC2 says
/// of it. Never an instance serving production now: an A1 that is one of the failed-back A4s
/// (B1 re-protected already) is not fenced.
async fn plan_source_fence(
    ctx: &mut StepCtx<'_>,
    action: SourceInstances,
    b1s: &[String],
    a4s: &[&String],
) -> Result<Option<SourceFence>, Halt> {
    let target = ctx.clients.target.clone();
    let described = retry::read(ctx, || target.describe_source_servers(b1s)).await?;
    let mut instances = BTreeMap::new();
    for b1 in b1s {
        let a1 = described
            .iter()
            .find(|s| &s.id == b1)
            .and_then(|s| s.aws_instance_id.clone());
        match a1 {
            Some(a1) if !a4s.contains(&&a1) => {
                instances.insert(b1.clone(), a1);
            }
            Some(a4) => ctx.say(format!(
                "B1 {b1} protects the failed-back instance {a4} already: no old source to fence"
            )),
            None => ctx.say(format!(
                "B1 {b1}: DRS names no EC2 source instance; nothing to fence"
            )),
        }
    }
    if instances.is_empty() {
        return Ok(None);
    }
    let ids: Vec<String> = instances.values().cloned().collect();
    let source = ctx.clients.source.clone();
    let found = retry::read(ctx, || source.describe_instances(&ids)).await?;
    let change = match action {
        SourceInstances::Terminate => InstanceChange::Terminate,
        _ => InstanceChange::Stop,
    };
    let mut fence = SourceFence {
        action,
        instances,
        change: Vec::new(),
        left: Vec::new(),
        fenced_at: None,
    };
    for id in ids {
        match found.iter().find(|i| i.instance_id == id) {
            Some(i) if !change.took_effect().contains(&i.state.as_str()) => fence.change.push(id),
            Some(i) => fence.left.push((id, i.state.clone())),
            None => fence.left.push((id, "not found".to_string())),
        }
    }
    Ok(Some(fence))
}

/// Stops or terminates the old source instances the plan chose, 100 a call, then waits until
/// EC2 says every one is done.
async fn fence_old_source(
    ctx: &mut StepCtx<'_>,
    out: &mut FailbackCleanupOutput,
) -> Result<(), Halt> {
    let fence = out.source_fence.clone().expect("called with a fence");
    if fence.fenced_at.is_some() {
        return Ok(());
    }
    let (change, verb) = match fence.action {
        SourceInstances::Terminate => (InstanceChange::Terminate, "terminate"),
        _ => (InstanceChange::Stop, "stop"),
    };
    for (part, chunk) in fence.change.chunks(MAX_IDS_PER_CALL).enumerate() {
        fence_source::change_source_instances(ctx, change, format!("{verb}/A1/part-{part}"), chunk)
            .await?;
    }
    let hint = format!(
        "check the old source instances in the EC2 console of the source region ({}), then `drs-runbook retry {} --step {}`",
        ctx.clients.source.region, ctx.run.id, ctx.step.key
    );
    fence_source::wait_until(
        ctx,
        &fence.change,
        change.done(),
        true,
        (ctx.clock.now(), FENCE_DEADLINE),
        &hint,
    )
    .await?;
    for (id, state) in &fence.left {
        ctx.say(format!(
            "old source instance {id} is {state}: left as it is"
        ));
    }
    ctx.say(format!(
        "old source fenced: {} instance(s) {}",
        fence.change.len(),
        change.done()[0]
    ));
    if let Some(f) = out.source_fence.as_mut() {
        f.fenced_at = Some(ctx.clock.now().to_rfc3339());
    }
    ctx.save(&*out).await
}

pub(crate) fn termination(side: Account, role: &str, mut instances: Vec<String>) -> Termination {
    instances.sort();
    Termination {
        side,
        role: role.to_string(),
        instances,
        job_id: None,
        terminated: Vec::new(),
        remaining: Vec::new(),
    }
}

/// Intent -> StopReplication -> effect. An open intent (or a server found stopped already) is
/// reconciled by the server's state instead of being sent again (DRS refuses a second stop).
pub(crate) async fn stop_replication(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    server: &str,
    role: &str,
) -> Result<(), Halt> {
    let call = Call::on(
        side,
        format!("stop-replication/{server}"),
        "drs:StopReplication",
        serde_json::json!({ "sourceServerID": server }),
    );
    let state_of = async || -> Result<Option<String>, Halt> {
        Ok(side
            .describe_source_servers(&[server.to_string()])
            .await?
            .into_iter()
            .next()
            .and_then(|s| s.replication_state))
    };
    let is_stopped =
        |state: &Option<String>| matches!(state.as_deref(), Some("STOPPED" | "DISCONNECTED"));
    // Stopped and recorded before a crash, or an open intent on a server found stopped: never twice.
    let settled = ctx
        .settle(&call, async |_: &mut StepCtx<'_>| {
            let state = state_of().await?;
            Ok(if is_stopped(&state) {
                Found::TookEffect(
                    serde_json::json!({ "found_by": "DescribeSourceServers", "state": state }),
                )
            } else {
                Found::Resend
            })
        })
        .await?;
    if settled.is_some() {
        return Ok(());
    }
    let state = state_of().await?;
    if is_stopped(&state) {
        ctx.say(format!(
            "{role} {server} does not replicate ({}); nothing to stop",
            state.unwrap_or_default()
        ));
        return Ok(());
    }
    ctx.call(
        &call,
        async |_: &mut StepCtx<'_>| Ok(Found::Resend),
        async || {
            let called = side.stop_replication(server).await?;
            Ok(called.map(
                |s| serde_json::json!({ "sourceServerID": server, "state": s.replication_state }),
            ))
        },
    )
    .await?;
    ctx.say(format!(
        "StopReplication of {role} {server} in account {} ({})",
        side.account_id, side.region
    ));
    Ok(())
}

/// Polls until none of the instances remains (DRS forgets them once terminated).
async fn wait_gone(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    out: &mut FailbackCleanupOutput,
) -> Result<(), Halt> {
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let termination = out.terminate.as_mut().expect("called with a termination");
        let found = side
            .recovery_instances_by_id(&termination.instances)
            .await?;
        termination.remaining = found
            .iter()
            .filter(|i| i.ec2_state.as_deref() != Some("TERMINATED"))
            .map(|i| i.id.clone())
            .collect();
        termination.terminated = termination
            .instances
            .iter()
            .filter(|i| !termination.remaining.contains(i))
            .cloned()
            .collect();
        let line = format!(
            "{}/{} {} instance(s) terminated",
            termination.terminated.len(),
            termination.instances.len(),
            termination.role
        );
        let remaining = termination.remaining.clone();
        ctx.save(&*out).await?;
        ctx.say(line);
        if remaining.is_empty() {
            return Ok(());
        }
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        if waited > GONE_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "recovery instances still present after {} minutes: {}",
                    GONE_DEADLINE.as_secs() / 60,
                    remaining.join(", ")
                ),
                format!(
                    "check the terminate job in the DRS console of account {} ({}): it needs ec2:TerminateInstances and ec2:DeleteVolume; then `retry` this step",
                    side.account_id, side.region
                ),
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

/// The approval gate's view: replication stopped on the A2s (and B1s), the recovery
/// instances it terminates, and what it leaves alone.
pub(crate) async fn preview(ctx: &mut StepCtx<'_>) -> Result<Vec<Change>, Halt> {
    let recorded: FailbackCleanupOutput = ctx.my_output().await?;
    let planned = if recorded.planned {
        recorded
    } else {
        plan(ctx).await?
    };
    let mut changes: Vec<Change> = planned
        .reprotect
        .iter()
        .map(|r| {
            Change::new(
                "reverse_replication",
                format!(
                    "A3 {} (origin): B1 {} protects A4 {} instead of the old source",
                    r.a3, r.b1, r.a4
                ),
            )
        })
        .collect();
    if let Some(fence) = &planned.source_fence {
        changes.extend(fence.change.iter().map(|id| {
            Change::new(
                fence.action.as_str(),
                format!("old source instance (A1) {id} (origin)"),
            )
        }));
    }
    changes.extend(planned.stop_a2.iter().map(|id| {
        Change::new(
            "stop_replication",
            format!("A2 source server {id} (origin)"),
        )
    }));
    if let Some(termination) = &planned.terminate {
        changes.extend(termination.instances.iter().map(|id| {
            Change::new(
                "terminate",
                format!("{} recovery instance {id}", termination.role),
            )
        }));
    }
    changes.extend(planned.stop_b1.iter().map(|id| {
        Change::new(
            "stop_replication",
            format!("B1 source server {id} (target)"),
        )
    }));
    changes.extend(
        planned
            .kept
            .iter()
            .map(|why| Change::new("keep", why.clone())),
    );
    Ok(changes)
}
