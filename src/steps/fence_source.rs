//! `fence_source`: a planned failover's fence (DESIGN section 5: "planned expects the source
//! to be reachable, fences it (stops A1), waits for replication to catch up, and recovers with
//! RPO 0"). Runs after preflight and before every wave's recovery, so that nothing is written
//! to the source after the data the recovery starts from (no split brain, nothing lost).
//!
//! ```text
//!   DescribeSourceServers (target): each server's A1 (identificationHints.awsInstanceID)
//!   DescribeInstances (source): running/pending ones are to stop; stopped ones are left alone
//!   ─► StopInstances, 100 IDs a call, each a durable call (reconciled by DescribeInstances)
//!   ─► wait: every A1 `stopped` (EC2), then every server caught up (DRS: no backlog, not
//!      BACKLOG, the agent seen after the stop was asked for) ─► `fenced_at`
//! ```
//!
//! `fenced_at` bounds the source's last write (every A1 was stopped and its last writes had
//! reached the staging area by then): the RPO of a fenced failover is measured from it
//! (`engine::measure`), so a recovery from an on-demand snapshot taken after it loses nothing.
//! The wait has a deadline (`[failover] fence_timeout`, from the step's current attempt).
//!
//! The undo (rollback) starts again the instances this step stopped, and only those: an
//! instance that was already stopped before the fence stays stopped.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::compensate::Undone;
use super::{Halt, StepCtx, StepFailure, retry};
use crate::aws::ec2::{Instance, MAX_IDS_PER_CALL};
use crate::run::call::{Call, Found};
use crate::run::clock::Backoff;
use crate::run::{Resolution, StepKind};

/// What the fence knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FenceOutput {
    /// Each source server and its source instance (A1), in the source account and region.
    pub instances: BTreeMap<String, String>,
    /// Instances that were not running when the fence looked (stopped, stopping, terminated):
    /// not stopped by this step, so not started again by its undo.
    pub already_stopped: Vec<String>,
    /// Instances this step stops (decided before the first StopInstances).
    pub stopped_by_fence: Vec<String>,
    /// When the first StopInstances was about to be sent (engine clock).
    pub stop_requested_at: Option<String>,
    /// When every instance was seen `stopped`.
    pub stopped_at: Option<String>,
    /// When every server's replication was seen caught up after the stop: the source wrote
    /// nothing after this moment that the staging area does not hold.
    pub fenced_at: Option<String>,
    /// The step attempt the deadline counts from, and when it began (engine clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<(i64, String)>,
}

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let mut out: FenceOutput = ctx.my_output().await?;
    if out.fenced_at.is_some() {
        return Ok(());
    }
    if out.instances.is_empty() {
        out = plan(ctx).await?;
        ctx.save(&out).await?;
    }
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
    if !out.stopped_by_fence.is_empty() {
        if out.stop_requested_at.is_none() {
            out.stop_requested_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&out).await?;
        }
        let ids = out.stopped_by_fence.clone();
        for (part, chunk) in ids.chunks(MAX_IDS_PER_CALL).enumerate() {
            change_source_instances(
                ctx,
                InstanceChange::Stop,
                format!("stop/part-{part}"),
                chunk,
            )
            .await?;
        }
    }
    wait_fenced(ctx, &mut out, since).await
}

/// Finds every server's source instance and what EC2 says it is doing.
async fn plan(ctx: &mut StepCtx<'_>) -> Result<FenceOutput, Halt> {
    let servers = run_servers(ctx).await?;
    let target = ctx.clients.target.clone();
    let described = retry::read(ctx, || target.describe_source_servers(&servers)).await?;
    let source = &ctx.runbook.source;
    let mut instances = BTreeMap::new();
    let mut problems = Vec::new();
    for server in &servers {
        let Some(s) = described.iter().find(|s| &s.id == server) else {
            problems.push(format!("{server}: not found in DRS"));
            continue;
        };
        let elsewhere = |reported: &Option<String>, expected: &str| {
            reported.as_deref().is_some_and(|r| r != expected)
        };
        if elsewhere(&s.origin_account, &source.account_id)
            || elsewhere(&s.origin_region, &source.region)
        {
            problems.push(format!(
                "{server}: replicates from {}/{}, not the runbook's source {}/{}",
                s.origin_account.as_deref().unwrap_or("?"),
                s.origin_region.as_deref().unwrap_or("?"),
                source.account_id,
                source.region
            ));
            continue;
        }
        match &s.aws_instance_id {
            Some(id) => {
                instances.insert(server.clone(), id.clone());
            }
            None => problems.push(format!("{server}: DRS names no EC2 source instance")),
        }
    }
    if !problems.is_empty() {
        return Err(Halt::Failed(StepFailure::new(
            format!("cannot fence the source: {}", problems.join("; ")),
            "the fence stops EC2 source instances in the runbook's [source] account and region; for other sources stop the writes yourself and set `[failover] fence_source = false`, or fail over with `--mode unplanned`",
        )));
    }
    let ids: Vec<String> = instances.values().cloned().collect();
    let source = ctx.clients.source.clone();
    let found = retry::read(ctx, || source.describe_instances(&ids)).await?;
    let state = |id: &str| {
        found
            .iter()
            .find(|i| i.instance_id == id)
            .map(|i| i.state.as_str())
    };
    let missing: Vec<&String> = ids.iter().filter(|id| state(id).is_none()).collect();
    if !missing.is_empty() {
        return Err(Halt::Failed(StepFailure::new(
            format!(
                "source instance(s) not found in {}/{}: {}",
                source.account_id,
                source.region,
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "check the [source] credentials and that the instances exist; or fail over with `--mode unplanned`",
        )));
    }
    let (running, already): (Vec<String>, Vec<String>) = ids
        .iter()
        .cloned()
        .partition(|id| matches!(state(id), Some("running" | "pending")));
    ctx.say(format!(
        "fencing the source: {} instance(s) to stop in {}/{}{}",
        running.len(),
        source.account_id,
        source.region,
        if already.is_empty() {
            String::new()
        } else {
            format!(", {} not running already", already.len())
        }
    ));
    Ok(FenceOutput {
        instances,
        already_stopped: already,
        stopped_by_fence: running,
        ..Default::default()
    })
}

/// Every server of the run: each wave's listed servers, and those its `select` resolved to in
/// preflight.
async fn run_servers(ctx: &StepCtx<'_>) -> Result<Vec<String>, Halt> {
    let resolution: Resolution = ctx.output_of(StepKind::Preflight.as_str()).await?;
    let mut servers: Vec<String> = Vec::new();
    for wave in &ctx.runbook.waves {
        let of_wave = match resolution.selected.get(&wave.name) {
            Some(selected) if wave.select.is_some() => selected,
            _ => &wave.servers,
        };
        for server in of_wave {
            if !servers.contains(server) {
                servers.push(server.clone());
            }
        }
    }
    Ok(servers)
}

/// What a fence does to source instances: StopInstances (this step, and a failback's
/// `[cleanup] source_instances = "stop"`) or TerminateInstances (`"terminate"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstanceChange {
    Stop,
    Terminate,
}

impl InstanceChange {
    fn operation(self) -> &'static str {
        match self {
            InstanceChange::Stop => "ec2:StopInstances",
            InstanceChange::Terminate => "ec2:TerminateInstances",
        }
    }

    /// The states in which the change has taken effect.
    pub(crate) fn took_effect(self) -> &'static [&'static str] {
        match self {
            InstanceChange::Stop => &["stopping", "stopped", "shutting-down", "terminated"],
            InstanceChange::Terminate => &["shutting-down", "terminated"],
        }
    }

    /// The states in which it is complete.
    pub(crate) fn done(self) -> &'static [&'static str] {
        match self {
            InstanceChange::Stop => &["stopped", "terminated"],
            InstanceChange::Terminate => &["terminated"],
        }
    }
}

/// StopInstances or TerminateInstances of one chunk (at most [`MAX_IDS_PER_CALL`]) of source
/// instances, a durable call named `name`: an intent left open is reconciled by
/// DescribeInstances (every instance past the change: it took effect, never sent again;
/// otherwise sending it is safe, as EC2 accepts a stop of a stopping or stopped instance and
/// a termination of a terminating one).
pub(crate) async fn change_source_instances(
    ctx: &mut StepCtx<'_>,
    change: InstanceChange,
    name: String,
    chunk: &[String],
) -> Result<(), Halt> {
    let source = ctx.clients.source.clone();
    let call = Call::on(
        &source,
        name,
        change.operation(),
        serde_json::json!({ "instanceIds": chunk }),
    )
    .reconciling_ambiguous();
    let outcome = ctx
        .call(
            &call,
            async |ctx: &mut StepCtx<'_>| {
                let found = retry::read(ctx, || source.describe_instances(chunk)).await?;
                Ok(if all_in(&found, chunk, change.took_effect()) {
                    Found::TookEffect(serde_json::json!({ "found_by": "DescribeInstances" }))
                } else {
                    Found::Resend
                })
            },
            async || {
                let called = match change {
                    InstanceChange::Stop => source.stop_instances(chunk).await?,
                    InstanceChange::Terminate => source.terminate_instances(chunk).await?,
                };
                let key = match change {
                    InstanceChange::Stop => "stopping",
                    InstanceChange::Terminate => "terminating",
                };
                Ok(called.map(|changes| serde_json::json!({ key: changes })))
            },
        )
        .await?;
    if outcome.how == crate::run::call::How::Sent {
        ctx.say(format!(
            "{} sent for {} instance(s)",
            change.operation().trim_start_matches("ec2:"),
            chunk.len()
        ));
    }
    Ok(())
}

/// Whether every one of `ids` is found in one of `states`.
pub(crate) fn all_in(found: &[Instance], ids: &[String], states: &[&str]) -> bool {
    ids.iter().all(|id| {
        found
            .iter()
            .any(|i| &i.instance_id == id && states.contains(&i.state.as_str()))
    })
}

/// Waits until every instance is stopped and every server's replication has caught up, then
/// records `fenced_at`.
async fn wait_fenced(
    ctx: &mut StepCtx<'_>,
    out: &mut FenceOutput,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<(), Halt> {
    let deadline = ctx.runbook.failover.fence_timeout;
    let ids: Vec<String> = out.instances.values().cloned().collect();
    let servers: Vec<String> = out.instances.keys().cloned().collect();
    let requested = out
        .stop_requested_at
        .as_deref()
        .and_then(crate::aws::parse_time);
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    let mut last = String::new();
    loop {
        let waiting = if out.stopped_at.is_none() {
            let source = ctx.clients.source.clone();
            let found = retry::read(ctx, || source.describe_instances(&ids)).await?;
            // Started again by someone after the stop: the fence no longer holds. (A read in
            // the first minute after StopInstances may still say running: EC2's API is
            // eventually consistent.)
            let settled =
                requested.is_some_and(|at| ctx.clock.now() - at > chrono::Duration::seconds(60));
            if let Some(again) = found.iter().find(|i| {
                settled
                    && out.stopped_by_fence.contains(&i.instance_id)
                    && matches!(i.state.as_str(), "running" | "pending")
            }) {
                return Err(Halt::Failed(StepFailure::new(
                    format!(
                        "source instance {} is {} again after the fence stopped it",
                        again.instance_id, again.state
                    ),
                    format!(
                        "someone started it: find out who, stop it, then `drs-runbook retry {} --step {}`",
                        ctx.run.id, ctx.step.key
                    ),
                )));
            }
            if all_in(&found, &ids, &["stopped", "terminated"]) {
                out.stopped_at = Some(ctx.clock.now().to_rfc3339());
                ctx.save(out).await?;
                ctx.say(format!("{} source instance(s) stopped", ids.len()));
                continue;
            }
            let stopped = ids
                .iter()
                .filter(|id| all_in(&found, std::slice::from_ref(id), &["stopped", "terminated"]))
                .count();
            format!("{stopped}/{} source instance(s) stopped", ids.len())
        } else {
            let target = ctx.clients.target.clone();
            let described = retry::read(ctx, || target.describe_source_servers(&servers)).await?;
            let behind: Vec<String> = servers
                .iter()
                .filter_map(|server| {
                    let s = described.iter().find(|s| &s.id == server);
                    let ours = out
                        .instances
                        .get(server)
                        .is_some_and(|i| out.stopped_by_fence.contains(i));
                    match s {
                        Some(s) if caught_up(s, ours.then_some(requested).flatten()) => None,
                        Some(s) => Some(format!(
                            "{server} ({}, lag {}, backlog {} bytes)",
                            s.replication_state.as_deref().unwrap_or("?"),
                            s.lag.as_deref().unwrap_or("?"),
                            s.backlogged_bytes
                        )),
                        None => Some(format!("{server} (not found)")),
                    }
                })
                .collect();
            if behind.is_empty() {
                let now = ctx.clock.now();
                out.fenced_at = Some(now.to_rfc3339());
                ctx.save(out).await?;
                ctx.say(format!(
                    "source fenced at {}: {} instance(s) stopped, replication caught up",
                    now.to_rfc3339(),
                    ids.len()
                ));
                return Ok(());
            }
            format!("waiting for replication to catch up: {}", behind.join(", "))
        };
        if waiting != last {
            ctx.say(&waiting);
            last = waiting.clone();
            backoff.reset(Duration::from_secs(5));
        }
        let waited = (ctx.clock.now() - since).to_std().unwrap_or_default();
        if waited > deadline {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "the source was not fenced within {} minutes: {waiting}",
                    deadline.as_secs() / 60
                ),
                format!(
                    "check the instances in the EC2 console of the source region and the servers' replication in DRS; `drs-runbook retry {} --step {}` waits again, `drs-runbook rollback {}` starts the instances again (a longer wait: `[failover] fence_timeout`)",
                    ctx.run.id, ctx.step.key, ctx.run.id
                ),
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

/// Whether DRS holds everything the server's agent sent before its instance stopped: no
/// replication backlog (`backloggedStorageBytes`, not BACKLOG), in CDP or disconnected once
/// the stopped agent went unseen, and, for an instance this step stopped, the agent seen by
/// the service after the stop was asked for (its final report, not an older one).
fn caught_up(
    server: &crate::aws::drs::SourceServer,
    stop_requested: Option<chrono::DateTime<chrono::Utc>>,
) -> bool {
    let state_ok = matches!(
        server.replication_state.as_deref(),
        Some("CONTINUOUS" | "DISCONNECTED")
    );
    let seen_after = match stop_requested {
        Some(at) => server
            .last_seen
            .as_deref()
            .and_then(crate::aws::parse_time)
            .is_some_and(|seen| seen >= at),
        None => true,
    };
    state_ok && server.backlogged_bytes == 0 && seen_after
}

// ---------------------------------------------------------------------------------------------
// Compensation
//
// `undo:fence_source` of a rollback run (see [`super::compensate`]): StartInstances on the
// instances the fence stopped that are stopped now, then a wait until they run.

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UndoFenceOutput {
    pub planned: bool,
    /// The fence's instances that are stopped now: started again.
    pub start: Vec<String>,
    /// The fence's instances left alone (running again, or terminated), with their state.
    pub left: Vec<(String, String)>,
    pub running_at: Option<String>,
}

const ROLLBACK_HINT: &str =
    "check the instances in the EC2 console of the source region, then resume the rollback";

pub(crate) async fn compensate(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoFenceOutput = ctx.my_output().await?;
    let deadline = ctx.runbook.failover.fence_timeout;
    let started = ctx.clock.now();
    if !out.planned {
        let fence: FenceOutput = undone.decode()?;
        let ids = fence.stopped_by_fence.clone();
        // A stop still under way cannot be undone yet: EC2 refuses to start a stopping instance.
        let found = wait_until(
            ctx,
            &ids,
            &["stopping"],
            false,
            (started, deadline),
            ROLLBACK_HINT,
        )
        .await?;
        for i in found {
            if i.state == "stopped" {
                out.start.push(i.instance_id);
            } else {
                out.left.push((i.instance_id, i.state));
            }
        }
        out.planned = true;
        ctx.save(&out).await?;
        for (id, state) in &out.left {
            ctx.say(format!("{id} is {state}: left as it is"));
        }
    }
    let source = ctx.clients.source.clone();
    let ids = out.start.clone();
    for (part, chunk) in ids.chunks(MAX_IDS_PER_CALL).enumerate() {
        let call = Call::on(
            &source,
            format!("start/part-{part}"),
            "ec2:StartInstances",
            serde_json::json!({ "instanceIds": chunk }),
        )
        .reconciling_ambiguous();
        ctx.call(
            &call,
            async |ctx: &mut StepCtx<'_>| {
                let found = retry::read(ctx, || source.describe_instances(chunk)).await?;
                Ok(if all_in(&found, chunk, &["pending", "running"]) {
                    Found::TookEffect(serde_json::json!({ "found_by": "DescribeInstances" }))
                } else {
                    Found::Resend
                })
            },
            async || {
                let called = source.start_instances(chunk).await?;
                Ok(called.map(|changes| serde_json::json!({ "starting": changes })))
            },
        )
        .await?;
    }
    if out.running_at.is_none() && !ids.is_empty() {
        ctx.say(format!("StartInstances sent for {} instance(s)", ids.len()));
        wait_until(
            ctx,
            &ids,
            &["running"],
            true,
            (started, deadline),
            ROLLBACK_HINT,
        )
        .await?;
        out.running_at = Some(ctx.clock.now().to_rfc3339());
        ctx.save(&out).await?;
        ctx.say(format!("{} source instance(s) running again", ids.len()));
    }
    Ok(())
}

/// Polls DescribeInstances until every source instance is in one of `states` (`all`) or none
/// is (`!all`); fails at the deadline with `hint`.
pub(crate) async fn wait_until(
    ctx: &mut StepCtx<'_>,
    ids: &[String],
    states: &[&str],
    all: bool,
    (since, deadline): (chrono::DateTime<chrono::Utc>, Duration),
    hint: &str,
) -> Result<Vec<Instance>, Halt> {
    let source = ctx.clients.source.clone();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let found = retry::read(ctx, || source.describe_instances(ids)).await?;
        let done = if all {
            all_in(&found, ids, states)
        } else {
            !found.iter().any(|i| states.contains(&i.state.as_str()))
        };
        if done {
            return Ok(found);
        }
        if (ctx.clock.now() - since).to_std().unwrap_or_default() > deadline {
            let states: Vec<String> = found
                .iter()
                .map(|i| format!("{} {}", i.instance_id, i.state))
                .collect();
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "the source instances did not settle within {} minutes: {}",
                    deadline.as_secs() / 60,
                    states.join(", ")
                ),
                hint.to_string(),
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}
