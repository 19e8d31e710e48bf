//! `quiesce` (failback, not a failback drill): stops the traffic to the failover's recovery
//! instances (B3) before the final copy, so that A3 recovers B3's last write (issue 14, item 2).
//!
//! ```text
//!   (approval) ─► DescribeTargetHealth of each failover target group: the B3s serving there
//!   ─► DeregisterTargets per group, a durable call (reconciled by DescribeTargetHealth)
//!   ─► wait until no B3 is registered or draining ─► `quiesced_at`: B3 takes no write after it
//!   ─► wait until every A2 holds B3's writes (DescribeSourceServers in the origin: CONTINUOUS,
//!      no lag, no backlog, seen after `quiesced_at`) ─► `caught_up_at`
//! ```
//!
//! The `a2_recovery` steps then launch A3 from an on-demand snapshot taken after `caught_up_at`:
//! the failback's RPO is measured from `quiesced_at` (`engine::measure`) and is 0. Traffic that
//! reaches B3 another way (DNS straight to B3, a queue) is the operator's to stop: the step
//! waits for an approval, whatever `[approvals]` says. Its undo (rollback) registers the B3s
//! again in the groups it took them out of.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::compensate::Undone;
use super::reversed_replication::ReversedReplicationOutput;
use super::{Halt, StepCtx, StepFailure, lb_switch, parse_iso_duration, retry};
use crate::aws::elbv2::Target;
use crate::run::clock::Backoff;
use crate::run::progress::Change;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QuiesceOutput {
    /// The groups and B3s were captured (before any change).
    pub planned: bool,
    /// Per failover target group, the B3s that served in it.
    pub groups: Vec<QuiescedGroup>,
    /// The A2s that must hold B3's last writes.
    pub a2s: Vec<String>,
    /// When no B3 was registered or draining any more: B3 took no write after this moment.
    pub quiesced_at: Option<String>,
    /// When every A2 was seen holding the writes up to `quiesced_at`.
    pub caught_up_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QuiescedGroup {
    pub target_group_arn: String,
    pub targets: Vec<Target>,
    pub deregistered_done: bool,
}

/// How long the B3s may take to drain and the A2s to catch up before the step fails.
const DEADLINE: Duration = Duration::from_secs(60 * 60);

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let mut out: QuiesceOutput = ctx.my_output().await?;
    if out.caught_up_at.is_some() {
        return Ok(());
    }
    if !out.planned {
        out = plan(ctx).await?;
        ctx.save(&out).await?;
    }
    let target = ctx.clients.target.clone();
    for i in 0..out.groups.len() {
        if out.groups[i].deregistered_done {
            continue;
        }
        let (arn, targets) = (
            out.groups[i].target_group_arn.clone(),
            out.groups[i].targets.clone(),
        );
        if !targets.is_empty() {
            lb_switch::call_on(
                ctx,
                &target,
                "elbv2:DeregisterTargets",
                "deregister",
                &arn,
                &targets,
            )
            .await?;
            ctx.say(format!(
                "traffic to B3 stopped: {} target(s) deregistered from {arn}",
                targets.len()
            ));
        }
        out.groups[i].deregistered_done = true;
        ctx.save(&out).await?;
    }
    let started = ctx.clock.now();
    if out.quiesced_at.is_none() {
        wait_drained(ctx, &out, started).await?;
        out.quiesced_at = Some(ctx.clock.now().to_rfc3339());
        ctx.save(&out).await?;
    }
    let quiesced_at = out
        .quiesced_at
        .as_deref()
        .and_then(crate::aws::parse_time)
        .expect("recorded above");
    wait_caught_up(ctx, &out.a2s, quiesced_at, started).await?;
    let now = ctx.clock.now();
    out.caught_up_at = Some(now.to_rfc3339());
    ctx.save(&out).await?;
    ctx.say(format!(
        "quiesced at {}: {} A2 server(s) hold every write B3 took",
        quiesced_at.to_rfc3339(),
        out.a2s.len()
    ));
    Ok(())
}

/// The B3s and A2s of every wave (from this run's `reversed_replication` steps) and where the
/// B3s serve now (the failover target groups).
async fn plan(ctx: &mut StepCtx<'_>) -> Result<QuiesceOutput, Halt> {
    let mut b3s = Vec::new();
    let mut a2s = Vec::new();
    for wave in &ctx.runbook.waves {
        let reversed: ReversedReplicationOutput = ctx
            .output_of(&format!("reversed_replication:{}", wave.name))
            .await?;
        for server in reversed.servers.values() {
            b3s.extend(server.ec2_instance_id.clone());
            a2s.extend(server.a2_id.clone());
        }
    }
    let target = ctx.clients.target.clone();
    let mut groups = Vec::new();
    for arn in failover_groups(ctx) {
        let serving = retry::read(ctx, || target.target_health(&arn)).await?;
        let mut targets: Vec<Target> = serving
            .into_iter()
            .filter(|t| t.state != "draining" && b3s.contains(&t.id))
            .map(|t| Target {
                id: t.id,
                port: t.port,
            })
            .collect();
        targets.sort();
        groups.push(QuiescedGroup {
            target_group_arn: arn,
            targets,
            deregistered_done: false,
        });
    }
    a2s.sort();
    Ok(QuiesceOutput {
        planned: true,
        groups,
        a2s,
        ..Default::default()
    })
}

/// The failover's target groups (recovery account and region), each once.
fn failover_groups(ctx: &StepCtx<'_>) -> Vec<String> {
    let mut arns: Vec<String> = ctx
        .runbook
        .load_balancers
        .iter()
        .map(|lb| lb.target_group_arn.clone())
        .collect();
    arns.sort();
    arns.dedup();
    arns
}

fn overdue(ctx: &StepCtx<'_>, what: String) -> Halt {
    Halt::Failed(StepFailure::new(
        format!(
            "the failback could not quiesce within {} minutes: {what}",
            DEADLINE.as_secs() / 60
        ),
        format!(
            "check the failover target groups and the A2 servers' replication in the DRS console of account {} ({}); `drs-runbook retry {} --step {}` waits again, `drs-runbook rollback {}` puts the traffic back on B3",
            ctx.clients.source.account_id,
            ctx.clients.source.region,
            ctx.run.id,
            ctx.step.key,
            ctx.run.id
        ),
    ))
}

/// Waits until no B3 is registered or draining in the groups (a draining target still
/// completes its in-flight requests).
async fn wait_drained(
    ctx: &mut StepCtx<'_>,
    out: &QuiesceOutput,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<(), Halt> {
    let target = ctx.clients.target.clone();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let mut left = Vec::new();
        for group in out.groups.iter().filter(|g| !g.targets.is_empty()) {
            let health = retry::read(ctx, || target.target_health(&group.target_group_arn)).await?;
            left.extend(
                health
                    .into_iter()
                    .filter(|h| h.state != "unused" && group.targets.iter().any(|t| t.id == h.id))
                    .map(|h| format!("{} {}", h.id, h.state)),
            );
        }
        if left.is_empty() {
            return Ok(());
        }
        if (ctx.clock.now() - started).to_std().unwrap_or_default() > DEADLINE {
            return Err(overdue(
                ctx,
                format!("B3 still in a target group: {}", left.join(", ")),
            ));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

/// Waits until every A2 holds B3's writes up to `quiesced_at`: replicating in CDP with no lag
/// and no backlog, as seen by the service after that moment.
async fn wait_caught_up(
    ctx: &mut StepCtx<'_>,
    a2s: &[String],
    quiesced_at: chrono::DateTime<chrono::Utc>,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<(), Halt> {
    if a2s.is_empty() {
        return Ok(());
    }
    let origin = ctx.clients.source.clone();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    let mut last = String::new();
    loop {
        let found = retry::read(ctx, || origin.describe_source_servers(a2s)).await?;
        let behind: Vec<String> = a2s
            .iter()
            .filter_map(|id| match found.iter().find(|s| &s.id == id) {
                Some(s) if caught_up(s, quiesced_at) => None,
                Some(s) => Some(format!(
                    "{id} ({}, lag {}, backlog {} bytes)",
                    s.replication_state.as_deref().unwrap_or("?"),
                    s.lag.as_deref().unwrap_or("?"),
                    s.backlogged_bytes
                )),
                None => Some(format!("{id} (not found)")),
            })
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        let line = format!("waiting for the A2s to catch up: {}", behind.join(", "));
        if line != last {
            ctx.say(&line);
            last = line.clone();
        }
        if (ctx.clock.now() - started).to_std().unwrap_or_default() > DEADLINE {
            return Err(overdue(ctx, line));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

/// Whether A2 holds every write B3 took up to `quiesced_at`.
fn caught_up(
    server: &crate::aws::drs::SourceServer,
    quiesced_at: chrono::DateTime<chrono::Utc>,
) -> bool {
    let no_lag = server
        .lag
        .as_deref()
        .is_none_or(|lag| parse_iso_duration(lag).is_some_and(|lag| lag.is_zero()));
    let seen_after = server
        .last_seen
        .as_deref()
        .and_then(crate::aws::parse_time)
        .is_some_and(|seen| seen >= quiesced_at);
    server.replication_state.as_deref() == Some("CONTINUOUS")
        && no_lag
        && server.backlogged_bytes == 0
        && seen_after
}

/// The approval gate's view: the B3s serving in each failover target group now, deregistered.
pub(crate) async fn preview(ctx: &mut StepCtx<'_>) -> Result<Vec<Change>, Halt> {
    let planned = plan(ctx).await?;
    let mut changes: Vec<Change> = planned
        .groups
        .iter()
        .map(|g| Change {
            after: Some(if g.targets.is_empty() {
                "(no B3 registered)".to_string()
            } else {
                g.targets
                    .iter()
                    .map(|t| t.id.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            ..Change::new("deregister", format!("from {}", g.target_group_arn))
        })
        .collect();
    changes.push(Change::new(
        "wait",
        format!(
            "until {} A2 server(s) hold B3's last writes; stop any other traffic to B3 before approving",
            planned.a2s.len()
        ),
    ));
    Ok(changes)
}

// ---------------------------------------------------------------- compensation
//
// `undo:quiesce` of a rollback run (see [`super::compensate`]): the B3s registered again in the
// failover target groups the step took them out of.

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UndoQuiesceOutput {
    pub planned: bool,
    /// Per target group, the B3s to register again (those not registered now).
    pub register: Vec<(String, Vec<Target>)>,
}

pub(crate) async fn compensate(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoQuiesceOutput = ctx.my_output().await?;
    let target = ctx.clients.target.clone();
    if !out.planned {
        let quiesced: QuiesceOutput = undone.decode()?;
        for group in quiesced.groups {
            let health = retry::read(ctx, || target.target_health(&group.target_group_arn)).await?;
            let present = |id: &str| health.iter().any(|h| h.id == id && h.state != "draining");
            let absent = group
                .targets
                .into_iter()
                .filter(|t| !present(&t.id))
                .collect();
            out.register.push((group.target_group_arn, absent));
        }
        out.planned = true;
        ctx.save(&out).await?;
    }
    for (arn, targets) in out.register.iter().filter(|(_, t)| !t.is_empty()) {
        // A durable call (`register/<arn>`): never sent twice, reconciled after a crash.
        lb_switch::call_on(
            ctx,
            &target,
            "elbv2:RegisterTargets",
            "register",
            arn,
            targets,
        )
        .await?;
        ctx.say(format!(
            "traffic back on B3: {} target(s) registered in {arn} again",
            targets.len()
        ));
    }
    Ok(())
}
