//! The steps of a rollback run: `undo:<key>` undoes the step `<key>` of the original run (the
//! rollback's parent), and carries that step's kind. Like every step they are re-entrant: each
//! persists what it is going to change before changing it, and every mutating call goes
//! intent -> call -> effect, an open intent being reconciled against AWS on resume.
//!
//! | original step | compensation |
//! |---|---|
//! | `dns_cutover` | the captured record sets (`zones[].before`) UPSERTed back, records that did not exist before DELETEd; wait INSYNC |
//! | `lb_switch:W` | the targets it deregistered registered again, the ones it added deregistered |
//! | `validate:W` (drill) | the drill instances it registered in a drill target group deregistered |
//! | `recovery_job:W` | the recovery instances of its jobs (found by the jobs' tags) terminated; planned with an approval gate unless the run was a drill |
//! | `a2_recovery:W` | the same, in the origin: the failback instances (A3) of its jobs terminated |
//! | `reversed_replication:W` | StopReplication of each A2 the step created, reconciled or adopted (origin) |
//!
//! A compensation works on the side its original step used: for a failback, the target groups
//! and the recovery jobs are in the origin (source) account and region; DNS is always changed
//! with the credentials of the account that owns the zone. A rollback of a failback, newest first,
//! terminates a wave's A3s before it stops its A2s, and stops every A2 before anything could
//! terminate the B2s replicating into them (DRS refuses that order the other way round).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

use super::dns_cutover::DnsOutput;
use super::failback_cleanup;
use super::lb_switch::LbSwitchOutput;
use super::recovery_job::{TAG_RUN, TAG_STEP};
use super::reversed_replication::ReversedReplicationOutput;
use super::validate::ValidateOutput;
use super::{Halt, StepCtx, StepFailure, retry};
use crate::aws::SideClients;
use crate::aws::elbv2::Target;
use crate::aws::route53::{RecordChange, RecordSet};
use crate::run::StepKind;
use crate::run::call::{Call, Found, How};
use crate::run::clock::Backoff;
use crate::runbook::Account;
use crate::store::{self, RunId};

/// The key prefix of a compensation step.
pub const UNDO_PREFIX: &str = "undo:";

/// Whether a step of this kind has a compensation (the rollback planner plans only these).
pub fn compensates(kind: StepKind) -> bool {
    match kind {
        StepKind::DnsCutover
        | StepKind::LbSwitch
        | StepKind::RecoveryJob
        | StepKind::A2Recovery
        | StepKind::ReversedReplication => true,
        // A drill's validate registers the drill instances in the runbook's drill target
        // groups; undone before the instances are terminated (it is newer than their job).
        StepKind::Validate => true,
        // Read-only steps change nothing; a drill's cleanup only removed what the run created.
        StepKind::Preflight
        | StepKind::SnapshotConversion
        | StepKind::Launch
        | StepKind::Cleanup => false,
    }
}

/// The original step a compensation undoes.
struct Undone {
    run_id: RunId,
    key: String,
    output: Value,
    created_at: chrono::DateTime<chrono::Utc>,
    /// The original run was a failback: its jobs and target groups are in the origin.
    failback: bool,
}

impl Undone {
    /// The original step's output, typed: one that does not decode fails the compensation
    /// (naming the run and the step), never reads as "nothing to undo".
    fn decode<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, Halt> {
        Ok(crate::run::journal::decode_output(
            &self.run_id,
            &self.key,
            self.output.clone(),
        )?)
    }

    /// The side whose DRS and load balancers the original step used (as
    /// [`StepCtx::recovery_side`] chose it for the original run).
    fn side(&self) -> Account {
        if self.failback {
            Account::Source
        } else {
            Account::Target
        }
    }
}

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let undone = undone(ctx).await?;
    match ctx.step.kind {
        StepKind::DnsCutover => undo_dns(ctx, &undone).await,
        StepKind::LbSwitch => undo_lb(ctx, &undone).await,
        StepKind::RecoveryJob | StepKind::A2Recovery => undo_recovery(ctx, &undone).await,
        StepKind::ReversedReplication => undo_reversed(ctx, &undone).await,
        StepKind::Validate => undo_drill_groups(ctx, &undone).await,
        kind => Err(Halt::Failed(StepFailure::new(
            format!("a {kind} step has no compensation"),
            format!(
                "skip it: `drs-runbook skip {} --step {} --reason ...`",
                ctx.run.id, ctx.step.key
            ),
        ))),
    }
}

/// Reads which run and step this compensation undoes (the step's input) and that step's output.
async fn undone(ctx: &StepCtx<'_>) -> Result<Undone, Halt> {
    let corrupt = |what: &str| {
        Halt::Failed(StepFailure::new(
            format!(
                "step {} of rollback run {} does not name {what}",
                ctx.step.key, ctx.run.id
            ),
            "the database was edited or is from another version; start a new rollback",
        ))
    };
    let mut conn = ctx.journal.db().pool().acquire().await.map_err(|e| {
        StepFailure::new(
            format!("failed to read the run database: {e}"),
            "check the database file",
        )
    })?;
    let me = store::steps::get(&mut conn, ctx.journal.run_id(), &ctx.step.key)
        .await
        .map_err(store_failure)?;
    let run_id: RunId = me.input["original_run"]
        .as_str()
        .ok_or_else(|| corrupt("the original run"))?
        .parse()
        .map_err(|_| corrupt("a valid original run"))?;
    let key = me.input["undo"]
        .as_str()
        .ok_or_else(|| corrupt("the step it undoes"))?
        .to_string();
    let original = store::runs::get(&mut conn, &run_id)
        .await
        .map_err(store_failure)?;
    let step = store::steps::get(&mut conn, &run_id, &key)
        .await
        .map_err(store_failure)?;
    Ok(Undone {
        run_id,
        key,
        output: step.output,
        created_at: original.created_at,
        failback: original.operation == store::Operation::Failback,
    })
}

fn store_failure(e: store::StoreError) -> StepFailure {
    StepFailure::new(
        format!("failed to read the original run: {e}"),
        "check the database file, then resume the rollback",
    )
}

// ---------------------------------------------------------------- DNS

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UndoDnsOutput {
    /// The restore was computed (from the capture and the records as they were then).
    pub planned: bool,
    pub zones: Vec<ZoneRestore>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ZoneRestore {
    pub hosted_zone_id: String,
    pub account: Account,
    /// The records (name, type) the cutover wrote, and their sets before it.
    pub records: Vec<(String, String)>,
    pub before: Vec<RecordSet>,
    pub changes: Vec<RecordChange>,
    pub change_id: Option<String>,
    pub insync_at: Option<String>,
}

impl ZoneRestore {
    fn before_of(&self, name: &str, record_type: &str) -> Vec<RecordSet> {
        self.before
            .iter()
            .filter(|r| r.name == name && r.record_type == record_type)
            .cloned()
            .collect()
    }
}

const INSYNC_DEADLINE: Duration = Duration::from_secs(15 * 60);

async fn undo_dns(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoDnsOutput = ctx.my_output().await?;
    if !out.planned {
        let cutover: DnsOutput = undone.decode()?;
        for zone in &cutover.zones {
            let mut restore = ZoneRestore {
                hosted_zone_id: zone.hosted_zone_id.clone(),
                account: zone.account,
                records: zone
                    .after
                    .iter()
                    .map(|r| (r.name.clone(), r.record_type.clone()))
                    .collect(),
                before: zone.before.clone(),
                changes: Vec::new(),
                change_id: None,
                insync_at: None,
            };
            for (name, record_type) in restore.records.clone() {
                let current =
                    read_records(ctx, zone.account, &zone.hosted_zone_id, &name, &record_type)
                        .await?;
                let before = restore.before_of(&name, &record_type);
                if current == before {
                    continue;
                }
                if before.is_empty() {
                    // The cutover created it: DELETE needs the record exactly as it is now.
                    restore
                        .changes
                        .extend(current.into_iter().map(|record| RecordChange {
                            action: "DELETE".into(),
                            record,
                        }));
                } else {
                    restore
                        .changes
                        .extend(before.into_iter().map(|record| RecordChange {
                            action: "UPSERT".into(),
                            record,
                        }));
                }
            }
            out.zones.push(restore);
        }
        out.planned = true;
        ctx.save(&out).await?;
    }
    for i in 0..out.zones.len() {
        if out.zones[i].changes.is_empty() {
            continue;
        }
        if out.zones[i].change_id.is_none() {
            out.zones[i].change_id = Some(restore_zone(ctx, &out.zones[i]).await?);
            ctx.save(&out).await?;
        }
        if out.zones[i].insync_at.is_none() {
            wait_insync(ctx, &out.zones[i]).await?;
            out.zones[i].insync_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&out).await?;
        }
    }
    let restored: usize = out.zones.iter().map(|z| z.changes.len()).sum();
    ctx.say(format!(
        "{restored} record change(s) restored the records captured before the cutover"
    ));
    Ok(())
}

async fn read_records(
    ctx: &mut StepCtx<'_>,
    account: Account,
    zone: &str,
    name: &str,
    record_type: &str,
) -> Result<Vec<RecordSet>, Halt> {
    let clients = ctx.clients.side(account).clone();
    retry::read(ctx, || clients.record_sets(zone, name, record_type)).await
}

/// Whether the zone's records read as they were before the cutover.
async fn zone_restored(ctx: &mut StepCtx<'_>, zone: &ZoneRestore) -> Result<bool, Halt> {
    for (name, record_type) in &zone.records {
        if read_records(ctx, zone.account, &zone.hosted_zone_id, name, record_type).await?
            != zone.before_of(name, record_type)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Intent -> ChangeResourceRecordSets -> effect. An open intent whose records already read as
/// before is reconciled, not sent again.
async fn restore_zone(ctx: &mut StepCtx<'_>, zone: &ZoneRestore) -> Result<String, Halt> {
    let clients = ctx.clients.side(zone.account).clone();
    let call = Call::new(
        format!("restore/{}", zone.hosted_zone_id),
        "route53:ChangeResourceRecordSets",
        &clients.account_id,
        "global",
        serde_json::json!({ "hostedZoneId": zone.hosted_zone_id, "changes": zone.changes }),
    );
    let comment = format!("drs-runbook rollback {}", ctx.run.id);
    let outcome = ctx
        .call(
            &call,
            async |ctx: &mut StepCtx<'_>| {
                Ok(if zone_restored(ctx, zone).await? {
                    Found::TookEffect(serde_json::json!({ "change_id": "reconciled", "found_by": "ListResourceRecordSets" }))
                } else {
                    Found::Resend
                })
            },
            async || {
                let called = clients
                    .change_record_sets(&zone.hosted_zone_id, &zone.changes, &comment)
                    .await?;
                Ok(called.map(|id| serde_json::json!({ "change_id": id })))
            },
        )
        .await?;
    let change_id = outcome.response["change_id"]
        .as_str()
        .unwrap_or("reconciled")
        .to_string();
    if outcome.how == How::Sent {
        ctx.say(format!(
            "restored {} record(s) in {}: change {change_id}",
            zone.changes.len(),
            zone.hosted_zone_id,
        ));
    }
    Ok(change_id)
}

async fn wait_insync(ctx: &mut StepCtx<'_>, zone: &ZoneRestore) -> Result<(), Halt> {
    let Some(change_id) = zone.change_id.clone().filter(|c| c != "reconciled") else {
        return Ok(());
    };
    let clients = ctx.clients.side(zone.account).clone();
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let status = retry::read(ctx, || clients.change_status(&change_id)).await?;
        if status == "INSYNC" {
            ctx.say(format!("change {change_id} INSYNC"));
            return Ok(());
        }
        if (ctx.clock.now() - started).to_std().unwrap_or_default() > INSYNC_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "Route 53 change {change_id} in zone {} is still {status} after {} minutes",
                    zone.hosted_zone_id,
                    INSYNC_DEADLINE.as_secs() / 60
                ),
                "the records were restored; `retry` this step to keep waiting for INSYNC",
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

// ---------------------------------------------------------------- load balancers

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

async fn undo_lb(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoLbOutput = ctx.my_output().await?;
    if !out.planned {
        let switch: LbSwitchOutput = undone.decode()?;
        let side = ctx.clients.side(undone.side()).clone();
        for group in &switch.groups {
            let health = retry::read(ctx, || side.target_health(&group.target_group_arn)).await?;
            let present = |id: &str| health.iter().any(|h| h.id == id && h.state != "draining");
            let was_there = |id: &str| group.before.iter().any(|b| b.id == id);
            out.groups.push(GroupRestore {
                target_group_arn: group.target_group_arn.clone(),
                reregister: group
                    .before
                    .iter()
                    .filter(|t| !present(&t.id))
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

/// Removes the drill instances a drill's `validate` registered in its drill target groups (those
/// still registered when the rollback looks; planned once and persisted like [`undo_lb`]).
async fn undo_drill_groups(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
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
    restore_groups(ctx, &target, &mut out).await
}

/// Applies planned target-group restores on `side`: old targets back first, then the added
/// ones out.
async fn restore_groups(
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
                super::lb_switch::call_on(
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
                super::lb_switch::call_on(
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

// ---------------------------------------------------------------- recovery instances

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

async fn undo_recovery(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoRecoveryOutput = ctx.my_output().await?;
    let target = ctx.clients.side(undone.side()).clone();
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

// ---------------------------------------------------------------- reversed replication

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UndoReversedOutput {
    /// The A2s were listed (before any change).
    pub planned: bool,
    /// The A2 source servers (origin) to stop, by ID.
    pub a2s: Vec<String>,
    pub stopped: Vec<String>,
    pub verified_at: Option<String>,
}

/// StopReplication of every A2 the failback's `reversed_replication` step made replicate: those
/// in its output, and those an interrupted ReverseReplication of the run created before its
/// result was recorded (found in the origin by `reversedDirectionSourceServerArn` = B1).
async fn undo_reversed(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoReversedOutput = ctx.my_output().await?;
    let origin = ctx.clients.source.clone();
    if !out.planned {
        out.a2s = reversed_a2s(ctx, undone, &origin).await?;
        out.planned = true;
        ctx.save(&out).await?;
    }
    for a2 in out.a2s.clone() {
        if ctx.stopping() {
            return Err(Halt::Stopped);
        }
        if !out.stopped.contains(&a2) {
            failback_cleanup::stop_replication(ctx, &origin, &a2, "A2").await?;
            out.stopped.push(a2);
            ctx.save(&out).await?;
        }
    }
    if !out.a2s.is_empty() {
        let found = retry::read(ctx, || origin.describe_source_servers(&out.a2s)).await?;
        let still: Vec<String> = found
            .iter()
            .filter(|s| {
                !matches!(
                    s.replication_state.as_deref(),
                    Some("STOPPED" | "DISCONNECTED")
                )
            })
            .map(|s| {
                format!(
                    "{} ({})",
                    s.id,
                    s.replication_state.as_deref().unwrap_or("?")
                )
            })
            .collect();
        if !still.is_empty() {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "A2 server(s) still replicate after StopReplication in account {} ({}): {}",
                    origin.account_id,
                    origin.region,
                    still.join(", ")
                ),
                "check them in the DRS console of the origin, then `retry` this step",
            )));
        }
    }
    ctx.say(format!(
        "reversed replication stopped for {} A2 server(s)",
        out.a2s.len()
    ));
    out.verified_at = Some(ctx.clock.now().to_rfc3339());
    ctx.save(&out).await?;
    Ok(())
}

/// The A2s of the original step, sorted: recorded in its output, or (an intent without a
/// recorded result) found linked to their B1 in the origin.
async fn reversed_a2s(
    ctx: &mut StepCtx<'_>,
    undone: &Undone,
    origin: &SideClients,
) -> Result<Vec<String>, Halt> {
    let reversed: ReversedReplicationOutput = undone.decode()?;
    let mut a2s: Vec<String> = reversed
        .servers
        .values()
        .filter_map(|s| s.a2_id.clone())
        .collect();
    let unrecorded: Vec<&str> = reversed
        .servers
        .values()
        .filter(|s| s.a2_id.is_none())
        .filter_map(|s| s.b1_arn.as_deref())
        .collect();
    if !unrecorded.is_empty() && called_reverse_replication(ctx, undone).await? {
        let servers = retry::read(ctx, || origin.list_source_servers()).await?;
        a2s.extend(
            servers
                .into_iter()
                .filter(|s| {
                    s.reversed_direction_arn
                        .as_deref()
                        .is_some_and(|arn| unrecorded.contains(&arn))
                })
                .map(|s| s.id),
        );
    }
    a2s.sort();
    a2s.dedup();
    Ok(a2s)
}

/// Whether the original step has any ReverseReplication intent (so it may have created an A2
/// whose ID it never recorded).
async fn called_reverse_replication(ctx: &StepCtx<'_>, undone: &Undone) -> Result<bool, Halt> {
    let mut conn = ctx.journal.db().pool().acquire().await.map_err(|e| {
        StepFailure::new(
            format!("failed to read the run database: {e}"),
            "check the database file",
        )
    })?;
    let effects = store::effects::for_step(&mut conn, &undone.run_id, &undone.key)
        .await
        .map_err(store_failure)?;
    Ok(effects
        .iter()
        .any(|e| e.operation == "drs:ReverseReplication"))
}

#[cfg(test)]
mod tests {
    use crate::engine::machine::StepStatus;
    use crate::engine::plan::{Operation, StepKind};
    use crate::engine::rollback::{OriginalStep, plan_rollback};

    fn step(key: &str, kind: StepKind) -> OriginalStep {
        OriginalStep {
            key: key.into(),
            kind,
            wave: key.split_once(':').map(|(_, w)| w.to_string()),
            status: StepStatus::Succeeded,
            attempts: 1,
        }
    }

    #[test]
    fn a_failback_is_undone_a3_before_a2_wave_by_wave_newest_first() {
        let failback = [
            step("preflight", StepKind::Preflight),
            step("reversed_replication:db", StepKind::ReversedReplication),
            step("a2_recovery:db", StepKind::A2Recovery),
            step("launch:db", StepKind::Launch),
            step("reversed_replication:app", StepKind::ReversedReplication),
            step("a2_recovery:app", StepKind::A2Recovery),
            step("launch:app", StepKind::Launch),
            step("lb_switch:app", StepKind::LbSwitch),
            step("dns_cutover", StepKind::DnsCutover),
            step("cleanup", StepKind::Cleanup),
        ];
        let plan = plan_rollback(Operation::Failback, &failback);
        let keys: Vec<&str> = plan.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "undo:dns_cutover",
                "undo:lb_switch:app",
                "undo:a2_recovery:app",
                "undo:reversed_replication:app",
                "undo:a2_recovery:db",
                "undo:reversed_replication:db"
            ]
        );
        // Terminating A3s that may serve production waits for an operator (or --yes).
        let gated: Vec<&str> = plan
            .iter()
            .filter(|p| p.needs_approval)
            .map(|p| p.key.as_str())
            .collect();
        assert_eq!(gated, ["undo:a2_recovery:app", "undo:a2_recovery:db"]);
    }
}
