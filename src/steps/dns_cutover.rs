//! `dns_cutover`: captures the current record sets (persisted before any change, so a rollback
//! restores them byte for byte, routing fields included), UPSERTs the new ones (one atomic batch
//! per hosted zone), and waits until Route 53 reports the change INSYNC.
//!
//! The set written is the one the runbook means: a simple record, or with `set_identifier` one
//! set of a policy group, its routing fields kept as found (`weights` sets the weights of a
//! weighted group). When it is the SECONDARY of a failover pair and the failover is planned,
//! the PRIMARY's health check is inverted once the records are INSYNC, so Route 53 fails over
//! (journaled, and put back by the compensation).
//!
//! `[[routing_control]]` entries are then set through their ARC cluster's data plane: one
//! UpdateRoutingControlStates per side and cluster, trying each cluster endpoint in turn; the
//! compensation sets the states found before.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::compensate::Undone;
use super::launch::LaunchOutput;
use super::{Halt, StepCtx, StepFailure, retry};
use crate::aws::route53::{Alias, RecordChange, RecordSet};
use crate::run::Mode;
use crate::run::Operation;
use crate::run::call::{Call, Found, How};
use crate::run::clock::Backoff;
use crate::run::progress::Change;
use crate::runbook::{Account, ClusterEndpoint, DnsRecord, PointsTo, RecordType};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DnsOutput {
    pub zones: Vec<ZoneCutover>,
    /// Health checks inverted to make a failover pair's PRIMARY fail over (planned mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheckFlip>,
    /// ARC routing controls, per side and cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing_controls: Vec<ControlSwitch>,
}

/// The routing controls of one side and cluster, set together (UpdateRoutingControlStates).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControlSwitch {
    pub account: Account,
    pub endpoints: Vec<ClusterEndpoint>,
    pub controls: Vec<ControlState>,
    pub done: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControlState {
    pub arn: String,
    /// `On` or `Off`, as read before the cutover.
    pub before: String,
    pub after: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ZoneCutover {
    pub hosted_zone_id: String,
    pub account: Account,
    /// The record sets as they were, per record (name and type).
    pub before: Vec<RecordSet>,
    pub after: Vec<RecordSet>,
    pub change_id: Option<String>,
    pub insync_at: Option<String>,
}

/// A PRIMARY's health check, inverted so that Route 53 answers with the SECONDARY.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealthCheckFlip {
    pub account: Account,
    pub health_check_id: String,
    /// The set whose health check it is (`name type [set id]`).
    pub set: String,
    pub inverted_before: bool,
    pub done: bool,
}

/// How long a change may stay PENDING before the step fails.
const INSYNC_DEADLINE: Duration = Duration::from_secs(15 * 60);

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let mut out: DnsOutput = ctx.my_output().await?;
    if out.zones.is_empty() {
        out = capture(ctx).await?;
        ctx.save(&out).await?;
    }
    for i in 0..out.zones.len() {
        if out.zones[i].change_id.is_none() {
            let change_id = upsert(ctx, &out.zones[i]).await?;
            out.zones[i].change_id = Some(change_id);
            ctx.save(&out).await?;
        }
        if out.zones[i].insync_at.is_none() {
            let zone = &out.zones[i];
            wait_insync(
                ctx,
                zone.account,
                &zone.hosted_zone_id,
                zone.change_id.as_deref(),
                "check the Route 53 service health; the records were changed, so `retry` this step to keep waiting, or `rollback` the run to restore the previous records",
            )
            .await?;
            out.zones[i].insync_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&out).await?;
        }
    }
    for i in 0..out.health_checks.len() {
        if !out.health_checks[i].done {
            let flip = &out.health_checks[i];
            set_inverted(ctx, flip, !flip.inverted_before, "invert").await?;
            out.health_checks[i].done = true;
            ctx.save(&out).await?;
        }
    }
    for i in 0..out.routing_controls.len() {
        if !out.routing_controls[i].done {
            let switch = &out.routing_controls[i];
            let states = switch
                .controls
                .iter()
                .map(|c| (c.arn.clone(), c.after.clone()))
                .collect();
            set_controls(ctx, switch, states, &format!("routing-controls/{i}")).await?;
            out.routing_controls[i].done = true;
            ctx.save(&out).await?;
        }
    }
    Ok(())
}

/// The routing controls as they are, and the states they get: the runbook's `state`, or the
/// other one in a failback.
async fn capture_controls(ctx: &mut StepCtx<'_>) -> Result<Vec<ControlSwitch>, Halt> {
    let failback = ctx.run.operation == Operation::Failback;
    let mut switches: Vec<ControlSwitch> = Vec::new();
    for control in &ctx.runbook.routing_controls {
        let clients = ctx.clients.side(control.account).clone();
        let before = retry::read(ctx, || {
            clients.routing_control_state(&control.endpoints, &control.arn)
        })
        .await?;
        let after = match (failback, control.state.as_str()) {
            (false, state) => state.to_string(),
            (true, "On") => "Off".to_string(),
            (true, _) => "On".to_string(),
        };
        let state = ControlState {
            arn: control.arn.clone(),
            before,
            after,
        };
        match switches
            .iter_mut()
            .find(|s| s.account == control.account && s.endpoints == control.endpoints)
        {
            Some(switch) => switch.controls.push(state),
            None => switches.push(ControlSwitch {
                account: control.account,
                endpoints: control.endpoints.clone(),
                controls: vec![state],
                done: false,
            }),
        }
    }
    Ok(switches)
}

/// UpdateRoutingControlStates, one durable call: an open intent whose controls already read as
/// wanted is reconciled instead of being sent again.
async fn set_controls(
    ctx: &mut StepCtx<'_>,
    switch: &ControlSwitch,
    states: Vec<(String, String)>,
    key: &str,
) -> Result<(), Halt> {
    let clients = ctx.clients.side(switch.account).clone();
    let call = Call::new(
        key.to_string(),
        "route53-recovery-cluster:UpdateRoutingControlStates",
        &clients.account_id,
        "global",
        serde_json::json!({ "states": states, "endpoints": switch.endpoints }),
    );
    let outcome = ctx
        .call(
            &call,
            async |ctx: &mut StepCtx<'_>| {
                for (arn, state) in &states {
                    let now = retry::read(ctx, || {
                        clients.routing_control_state(&switch.endpoints, arn)
                    })
                    .await?;
                    if now != *state {
                        return Ok(Found::Resend);
                    }
                }
                Ok(Found::TookEffect(
                    serde_json::json!({ "found_by": "GetRoutingControlState" }),
                ))
            },
            async || {
                let called = clients
                    .set_routing_control_states(&switch.endpoints, &states)
                    .await?;
                Ok(called.map(|endpoint| serde_json::json!({ "endpoint": endpoint })))
            },
        )
        .await?;
    if outcome.how == How::Sent {
        ctx.say(format!(
            "routing controls {} through {}",
            states
                .iter()
                .map(|(arn, state)| format!("{} {state}", arn.rsplit('/').next().unwrap_or(arn)))
                .collect::<Vec<_>>()
                .join(", "),
            outcome.response["endpoint"]
                .as_str()
                .unwrap_or("a cluster endpoint"),
        ));
    }
    Ok(())
}

/// The sets a [[dns]] entry writes, from the sets found under its name and type: the first
/// gets the recovered targets, the others only their new weight; and, for the SECONDARY of a
/// failover pair in planned mode, the PRIMARY whose health check must fail. One definition for
/// the cutover and preflight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordPlan {
    pub writes: Vec<RecordSet>,
    pub fail_over: Option<RecordSet>,
}

/// Why a [[dns]] entry cannot be cut over as written: the problem and its fix.
pub(crate) type PlanProblem = (String, String);

pub(crate) fn plan_record(
    record: &DnsRecord,
    found: &[RecordSet],
    mode: Mode,
) -> Result<RecordPlan, PlanProblem> {
    let name = absolute(&record.name);
    if let Some(set) = found.iter().find(|s| s.unrestorable.is_some()) {
        return Err((
            format!(
                "{} uses {}, which drs-runbook cannot write back on rollback",
                set_text(set),
                set.unrestorable.as_deref().unwrap_or_default()
            ),
            "cut this name over another way (e.g. an ARC routing control), or remove the [[dns]] entry".into(),
        ));
    }
    let Some(identifier) = &record.set_identifier else {
        if found.iter().any(|s| s.set_identifier.is_some()) {
            return Err((
                format!(
                    "{name} {} has policy records ({}): Route 53 refuses a simple record beside them",
                    record.record_type.as_str(),
                    sets_found(found)
                ),
                format!(
                    "set `set_identifier` in the [[dns]] entry to the set the cutover writes (one of {})",
                    identifiers(found)
                ),
            ));
        }
        return Ok(RecordPlan {
            writes: vec![RecordSet {
                name,
                record_type: record.record_type.as_str().to_string(),
                ..RecordSet::default()
            }],
            fail_over: None,
        });
    };
    let find = |id: &str| -> Result<RecordSet, PlanProblem> {
        found
            .iter()
            .find(|s| s.set_identifier.as_deref() == Some(id))
            .cloned()
            .ok_or_else(|| {
                (
                    format!(
                        "{name} {} has no set {id:?} (sets found: {})",
                        record.record_type.as_str(),
                        if found.is_empty() {
                            "none".to_string()
                        } else {
                            sets_found(found)
                        }
                    ),
                    "create the policy group's sets first, or name one of them".into(),
                )
            })
    };
    let mut written = find(identifier)?;
    let mut writes = Vec::new();
    for (id, weight) in &record.weights {
        let mut set = if id == identifier {
            written.clone()
        } else {
            find(id)?
        };
        if set.weight.is_none() {
            return Err((
                format!(
                    "{} is a {} set, not a weighted one",
                    set_text(&set),
                    set.policy()
                ),
                "remove `weights` from the [[dns]] entry (it applies to weighted groups)".into(),
            ));
        }
        set.weight = Some(i64::from(*weight));
        if id == identifier {
            written = set;
        } else {
            writes.push(set);
        }
    }
    writes.insert(0, written.clone());
    let fail_over = if written.failover.as_deref() == Some("SECONDARY") && mode == Mode::Planned {
        let primary = found
            .iter()
            .find(|s| s.failover.as_deref() == Some("PRIMARY"))
            .cloned();
        match primary {
            Some(primary) if primary.health_check_id.is_some() => Some(primary),
            Some(primary) => {
                return Err((
                    format!(
                        "{} has no health check, so Route 53 keeps answering with it: a planned failover cannot make it fail over",
                        set_text(&primary)
                    ),
                    "associate a health check with the PRIMARY set (Route 53 console or ChangeResourceRecordSets HealthCheckId)".into(),
                ));
            }
            None => None,
        }
    } else {
        None
    };
    Ok(RecordPlan { writes, fail_over })
}

/// The recovered targets of a [[dns]] entry put into the set it writes: the instances' IPv4
/// addresses for A, IPv6 for AAAA; or the load balancer alias.
async fn point(ctx: &StepCtx<'_>, record: &DnsRecord, set: &mut RecordSet) -> Result<(), Halt> {
    let wave = match &record.points_to {
        PointsTo::Wave(wave) => wave.clone(),
        PointsTo::LoadBalancer { dns_name, zone } => {
            let evaluate_target_health =
                set.alias.as_ref().is_none_or(|a| a.evaluate_target_health);
            set.alias = Some(Alias {
                dns_name: dns_name.clone(),
                hosted_zone_id: zone.clone(),
                evaluate_target_health,
            });
            set.ttl = None;
            set.values = Vec::new();
            return Ok(());
        }
    };
    let launch: LaunchOutput = ctx
        .output_of(&super::boot::gate_step(
            ctx.run.operation,
            ctx.runbook,
            &wave,
        ))
        .await?;
    let of_type = |ip: &String| match record.record_type {
        RecordType::Aaaa => ip.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => ip.parse::<std::net::Ipv4Addr>().is_ok(),
    };
    let mut values: Vec<String> = launch
        .launched()
        .flat_map(|(_, s)| s.private_ips.iter().filter(|ip| of_type(ip)).cloned())
        .collect();
    values.sort();
    values.dedup();
    if values.is_empty() {
        let family = match record.record_type {
            RecordType::Aaaa => "IPv6",
            _ => "IPv4",
        };
        return Err(Halt::Failed(StepFailure::new(
            format!(
                "no recovered instance of wave {wave} has an {family} address for {} {}",
                set.name, set.record_type
            ),
            "check the launch step's output (drs-runbook show <run>) and the record type of the [[dns]] entry",
        )));
    }
    set.values = values;
    set.alias = None;
    set.ttl = Some(record.ttl.map(i64::from).or(set.ttl).unwrap_or(60));
    Ok(())
}

/// The records before, and what they become.
async fn capture(ctx: &mut StepCtx<'_>) -> Result<DnsOutput, Halt> {
    let mut zones: BTreeMap<(String, String), ZoneCutover> = BTreeMap::new();
    let mut health_checks = Vec::new();
    for record in &ctx.runbook.dns {
        let clients = ctx.clients.side(record.account).clone();
        let name = absolute(&record.name);
        let before = retry::read(ctx, || {
            clients.record_sets(&record.hosted_zone_id, &name, record.record_type.as_str())
        })
        .await?;
        let plan = plan_record(record, &before, ctx.run.options.mode)
            .map_err(|(problem, fix)| Halt::Failed(StepFailure::new(problem, fix)))?;
        let mut after = plan.writes;
        point(ctx, record, &mut after[0]).await?;
        if let Some(primary) = plan.fail_over {
            let id = primary.health_check_id.clone().unwrap_or_default();
            let healthy = retry::read(ctx, || clients.health_check_reports_healthy(&id)).await?;
            if healthy {
                let inverted_before =
                    retry::read(ctx, || clients.health_check_inverted(&id)).await?;
                health_checks.push(HealthCheckFlip {
                    account: record.account,
                    health_check_id: id,
                    set: set_text(&primary),
                    inverted_before,
                    done: false,
                });
            } else {
                ctx.say(format!(
                    "{}: its health check {id} already fails, Route 53 answers with the SECONDARY",
                    set_text(&primary)
                ));
            }
        }
        let entry = zones
            .entry((
                format!("{:?}", record.account),
                record.hosted_zone_id.clone(),
            ))
            .or_insert_with(|| ZoneCutover {
                hosted_zone_id: record.hosted_zone_id.clone(),
                account: record.account,
                before: Vec::new(),
                after: Vec::new(),
                change_id: None,
                insync_at: None,
            });
        entry.before.extend(before);
        entry.after.extend(after);
    }
    let routing_controls = capture_controls(ctx).await?;
    Ok(DnsOutput {
        zones: zones.into_values().collect(),
        health_checks,
        routing_controls,
    })
}

/// A DNS name with its trailing dot.
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// `"dr" (weighted 0), "primary" (weighted 100)`.
fn sets_found(sets: &[RecordSet]) -> String {
    sets.iter()
        .map(|s| match &s.set_identifier {
            Some(id) => format!("{id:?} ({})", routing_text(s)),
            None => "a simple record".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn identifiers(sets: &[RecordSet]) -> String {
    sets.iter()
        .filter_map(|s| s.set_identifier.as_ref().map(|id| format!("{id:?}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `api.example.com. A [set "dr"]`.
fn set_text(set: &RecordSet) -> String {
    match &set.set_identifier {
        Some(id) => format!("{} {} [set {id:?}]", set.name, set.record_type),
        None => format!("{} {}", set.name, set.record_type),
    }
}

/// The routing fields of a set as a person reads them (`weighted 100`, `failover PRIMARY`).
fn routing_text(set: &RecordSet) -> String {
    match set.policy() {
        "weighted" => format!("weighted {}", set.weight.unwrap_or_default()),
        "failover" => format!("failover {}", set.failover.as_deref().unwrap_or_default()),
        "latency" => format!("latency {}", set.region.as_deref().unwrap_or_default()),
        policy => policy.to_string(),
    }
}

/// UpdateHealthCheck `Inverted`, one durable call: an open intent whose check already reads as
/// wanted is reconciled instead of being sent again.
async fn set_inverted(
    ctx: &mut StepCtx<'_>,
    flip: &HealthCheckFlip,
    inverted: bool,
    verb: &str,
) -> Result<(), Halt> {
    let clients = ctx.clients.side(flip.account).clone();
    let id = flip.health_check_id.clone();
    let call = Call::new(
        format!("{verb}/{id}"),
        "route53:UpdateHealthCheck",
        &clients.account_id,
        "global",
        serde_json::json!({ "healthCheckId": id, "inverted": inverted }),
    );
    let outcome = ctx
        .call(
            &call,
            async |ctx: &mut StepCtx<'_>| {
                let now = retry::read(ctx, || clients.health_check_inverted(&id)).await?;
                Ok(if now == inverted {
                    Found::TookEffect(serde_json::json!({ "found_by": "GetHealthCheck" }))
                } else {
                    Found::Resend
                })
            },
            async || {
                let called = clients.set_health_check_inverted(&id, inverted).await?;
                Ok(called.map(|()| serde_json::json!({ "inverted": inverted })))
            },
        )
        .await?;
    if outcome.how == How::Sent {
        ctx.say(format!(
            "health check {id} of {}: Inverted = {inverted}",
            flip.set
        ));
    }
    Ok(())
}

/// ChangeResourceRecordSets (UPSERT), one durable call per zone. After a crash, an open intent
/// whose records already read as wanted is reconciled instead of being sent again.
async fn upsert(ctx: &mut StepCtx<'_>, zone: &ZoneCutover) -> Result<String, Halt> {
    let clients = ctx.clients.side(zone.account).clone();
    let changes: Vec<RecordChange> = zone
        .after
        .iter()
        .map(|r| RecordChange {
            action: "UPSERT".into(),
            record: r.clone(),
        })
        .collect();
    let call = Call::new(
        format!("upsert/{}", zone.hosted_zone_id),
        "route53:ChangeResourceRecordSets",
        &clients.account_id,
        "global",
        serde_json::json!({ "hostedZoneId": zone.hosted_zone_id, "changes": changes }),
    );
    let comment = format!("drs-runbook run {}", ctx.run.id);
    let outcome = ctx
        .call(
            &call,
            async |ctx: &mut StepCtx<'_>| {
                let mut current = Vec::new();
                for r in &zone.after {
                    current.extend(
                        retry::read(ctx, || {
                            clients.record_sets(&zone.hosted_zone_id, &r.name, &r.record_type)
                        })
                        .await?,
                    );
                }
                Ok(
                    if zone.after.iter().all(|want| current.iter().any(|c| c == want)) {
                        Found::TookEffect(serde_json::json!({ "change_id": "reconciled", "found_by": "ListResourceRecordSets" }))
                    } else {
                        Found::Resend
                    },
                )
            },
            async || {
                let called = clients
                    .change_record_sets(&zone.hosted_zone_id, &changes, &comment)
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
            "UPSERT {} in {}: change {change_id}",
            zone.after
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            zone.hosted_zone_id,
        ));
    }
    Ok(change_id)
}

/// Waits until Route 53 reports the change INSYNC (the cutover's and its compensation's):
/// `hint` says what to do when it stays PENDING past the deadline.
async fn wait_insync(
    ctx: &mut StepCtx<'_>,
    account: Account,
    hosted_zone_id: &str,
    change_id: Option<&str>,
    hint: &str,
) -> Result<(), Halt> {
    let Some(change_id) = change_id.filter(|c| *c != "reconciled").map(str::to_string) else {
        return Ok(());
    };
    let clients = ctx.clients.side(account).clone();
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let status = retry::read(ctx, || clients.change_status(&change_id)).await?;
        if status == "INSYNC" {
            ctx.say(format!("change {change_id} INSYNC"));
            return Ok(());
        }
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        if waited > INSYNC_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "Route 53 change {change_id} in zone {hosted_zone_id} is still {status} after {} minutes",
                    INSYNC_DEADLINE.as_secs() / 60
                ),
                hint,
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

// ---------------------------------------------------------------- compensation
//
// `undo:<key>` of a rollback run (see [`super::compensate`]): the captured record sets
// UPSERTed back (routing fields, set identifiers and health checks as captured), records that
// did not exist before DELETEd; then the same INSYNC wait; then inverted health checks put back.

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UndoDnsOutput {
    /// The restore was computed (from the capture and the records as they were then).
    pub planned: bool,
    pub zones: Vec<ZoneRestore>,
    /// Health checks the cutover inverted (or may have: its intent was open), put back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheckFlip>,
    /// Routing controls set back to their states before the cutover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing_controls: Vec<ControlSwitch>,
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

pub(crate) async fn compensate(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
    let mut out: UndoDnsOutput = ctx.my_output().await?;
    if !out.planned {
        let cutover: DnsOutput = undone.decode()?;
        for zone in &cutover.zones {
            let mut restore = ZoneRestore {
                hosted_zone_id: zone.hosted_zone_id.clone(),
                account: zone.account,
                records: zone.after.iter().fold(Vec::new(), |mut records, r| {
                    let record = (r.name.clone(), r.record_type.clone());
                    if !records.contains(&record) {
                        records.push(record);
                    }
                    records
                }),
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
        // Every planned inversion is checked, done or not: a crash may have left its call's
        // outcome unrecorded in the cutover's output.
        out.health_checks = cutover
            .health_checks
            .iter()
            .map(|flip| HealthCheckFlip {
                done: false,
                ..flip.clone()
            })
            .collect();
        out.routing_controls = cutover
            .routing_controls
            .iter()
            .map(|switch| ControlSwitch {
                done: false,
                ..switch.clone()
            })
            .collect();
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
            let zone = &out.zones[i];
            wait_insync(
                ctx,
                zone.account,
                &zone.hosted_zone_id,
                zone.change_id.as_deref(),
                "the records were restored; `retry` this step to keep waiting for INSYNC",
            )
            .await?;
            out.zones[i].insync_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&out).await?;
        }
    }
    for i in 0..out.health_checks.len() {
        if out.health_checks[i].done {
            continue;
        }
        let flip = out.health_checks[i].clone();
        let clients = ctx.clients.side(flip.account).clone();
        let now = retry::read(ctx, || clients.health_check_inverted(&flip.health_check_id)).await?;
        if now != flip.inverted_before {
            set_inverted(ctx, &flip, flip.inverted_before, "restore-health-check").await?;
        }
        out.health_checks[i].done = true;
        ctx.save(&out).await?;
    }
    for i in 0..out.routing_controls.len() {
        if out.routing_controls[i].done {
            continue;
        }
        let switch = &out.routing_controls[i];
        let states = switch
            .controls
            .iter()
            .map(|c| (c.arn.clone(), c.before.clone()))
            .collect();
        set_controls(
            ctx,
            switch,
            states,
            &format!("restore-routing-controls/{i}"),
        )
        .await?;
        out.routing_controls[i].done = true;
        ctx.save(&out).await?;
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

/// The approval gate's view: each record it UPSERTs, with its values now and after.
pub(crate) async fn preview(ctx: &mut StepCtx<'_>) -> Result<Vec<Change>, Halt> {
    let recorded: DnsOutput = ctx.my_output().await?;
    let cutover = if recorded.zones.is_empty() {
        capture(ctx).await?
    } else {
        recorded
    };
    let mut changes = Vec::new();
    for zone in &cutover.zones {
        for after in &zone.after {
            changes.push(
                record_change("upsert", zone, after)
                    .from_to(set_before_text(&zone.before, after), record_text(after)),
            );
        }
    }
    changes.extend(cutover.health_checks.iter().map(|flip| {
        health_check_change("invert", flip).from_to(
            inverted_text(flip.inverted_before),
            inverted_text(!flip.inverted_before),
        )
    }));
    changes.extend(control_changes(&cutover.routing_controls, "set", |c| {
        (c.before.clone(), c.after.clone())
    }));
    Ok(changes)
}

fn health_check_change(action: &str, flip: &HealthCheckFlip) -> Change {
    Change::new(
        action,
        format!("health check {} of {}", flip.health_check_id, flip.set),
    )
}

fn control_changes(
    switches: &[ControlSwitch],
    action: &str,
    from_to: impl Fn(&ControlState) -> (String, String),
) -> Vec<Change> {
    switches
        .iter()
        .flat_map(|s| s.controls.iter())
        .map(|c| {
            let (from, to) = from_to(c);
            Change::new(action, format!("routing control {}", c.arn)).from_to(from, to)
        })
        .collect()
}

fn inverted_text(inverted: bool) -> String {
    format!("Inverted = {inverted}")
}

/// The rollback gate's view: each record written back as it was before the cutover, or deleted
/// where the cutover created it.
pub(crate) fn preview_compensation(undone: &Undone) -> Result<Vec<Change>, Halt> {
    let cutover: DnsOutput = undone.decode()?;
    let mut changes = Vec::new();
    for zone in &cutover.zones {
        for after in &zone.after {
            let before = set_before_text(&zone.before, after);
            let action = if before == NO_RECORD {
                "delete"
            } else {
                "restore"
            };
            changes.push(record_change(action, zone, after).from_to(record_text(after), before));
        }
    }
    changes.extend(cutover.health_checks.iter().map(|flip| {
        health_check_change("restore", flip).from_to(
            inverted_text(!flip.inverted_before),
            inverted_text(flip.inverted_before),
        )
    }));
    changes.extend(control_changes(&cutover.routing_controls, "restore", |c| {
        (c.after.clone(), c.before.clone())
    }));
    Ok(changes)
}

const NO_RECORD: &str = "(no record)";

fn record_change(action: &str, zone: &ZoneCutover, record: &RecordSet) -> Change {
    Change::new(
        action,
        format!(
            "{} {} in zone {}",
            record.name, record.record_type, zone.hosted_zone_id
        ),
    )
}

/// The set of `sets` that `record` replaces, as text: the same set identifier, or every set of
/// the name and type when it has none (`(no record)` if none).
fn set_before_text(sets: &[RecordSet], record: &RecordSet) -> String {
    let texts: Vec<String> = sets
        .iter()
        .filter(|s| s.name == record.name && s.record_type == record.record_type)
        .filter(|s| record.set_identifier.is_none() || s.set_identifier == record.set_identifier)
        .map(record_text)
        .collect();
    if texts.is_empty() {
        NO_RECORD.to_string()
    } else {
        texts.join("; ")
    }
}

/// A record set's values as a person reads them (`10.1.0.7, 10.1.0.8 (TTL 60)`, `alias to ...`).
fn record_text(record: &RecordSet) -> String {
    let mut text = match &record.alias {
        Some(alias) => format!("alias to {}", alias.dns_name),
        None => record.values.join(", "),
    };
    if let Some(id) = &record.set_identifier {
        text.push_str(&format!(" [set {id}, {}]", routing_text(record)));
    }
    if let Some(ttl) = record.ttl {
        text.push_str(&format!(" (TTL {ttl})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(set_identifier: Option<&str>, weights: &[(&str, u8)]) -> DnsRecord {
        DnsRecord {
            hosted_zone_id: "Z1".into(),
            account: Account::Target,
            name: "www.example.com".into(),
            record_type: RecordType::A,
            ttl: None,
            points_to: PointsTo::Wave("web".into()),
            set_identifier: set_identifier.map(str::to_string),
            weights: weights.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn set(id: &str, ip: &str) -> RecordSet {
        RecordSet {
            name: "www.example.com.".into(),
            record_type: "A".into(),
            set_identifier: Some(id.into()),
            ttl: Some(60),
            values: vec![ip.into()],
            ..RecordSet::default()
        }
    }

    fn weighted(id: &str, weight: i64) -> RecordSet {
        RecordSet {
            weight: Some(weight),
            health_check_id: Some(format!("hc-{id}")),
            ..set(id, "10.0.0.1")
        }
    }

    fn failover(id: &str, role: &str, check: Option<&str>) -> RecordSet {
        RecordSet {
            failover: Some(role.into()),
            health_check_id: check.map(str::to_string),
            ..set(id, "10.0.0.2")
        }
    }

    #[test]
    fn a_simple_record_over_policy_sets_is_refused_naming_them() {
        let found = [weighted("primary", 100), weighted("dr", 0)];
        let (problem, fix) = plan_record(&record(None, &[]), &found, Mode::Planned).unwrap_err();
        assert_eq!(
            problem,
            "www.example.com. A has policy records (\"primary\" (weighted 100), \"dr\" (weighted 0)): Route 53 refuses a simple record beside them"
        );
        assert!(fix.contains("one of \"primary\", \"dr\""), "{fix}");
        let plan = plan_record(&record(None, &[]), &[], Mode::Planned).unwrap();
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(plan.writes[0].set_identifier, None);
    }

    #[test]
    fn weights_are_set_and_every_other_routing_field_is_kept() {
        let found = [weighted("primary", 100), weighted("dr", 0)];
        let plan = plan_record(
            &record(Some("dr"), &[("dr", 100), ("primary", 0)]),
            &found,
            Mode::Planned,
        )
        .unwrap();
        assert_eq!(
            plan.writes,
            [
                RecordSet {
                    weight: Some(100),
                    ..found[1].clone()
                },
                RecordSet {
                    weight: Some(0),
                    ..found[0].clone()
                },
            ]
        );
        assert_eq!(plan.fail_over, None);
        let (problem, _) =
            plan_record(&record(Some("blue"), &[]), &found, Mode::Planned).unwrap_err();
        assert!(
            problem.contains(
                "has no set \"blue\" (sets found: \"primary\" (weighted 100), \"dr\" (weighted 0))"
            ),
            "{problem}"
        );
    }

    #[test]
    fn a_planned_secondary_fails_the_primary_over_through_its_health_check() {
        let found = [
            failover("primary", "PRIMARY", Some("hc-1")),
            failover("secondary", "SECONDARY", None),
        ];
        let planned = plan_record(&record(Some("secondary"), &[]), &found, Mode::Planned).unwrap();
        assert_eq!(planned.writes, [found[1].clone()]);
        assert_eq!(planned.fail_over, Some(found[0].clone()));
        let unplanned =
            plan_record(&record(Some("secondary"), &[]), &found, Mode::Unplanned).unwrap();
        assert_eq!(
            unplanned.fail_over, None,
            "unplanned leaves the PRIMARY alone"
        );

        let unchecked = [
            failover("primary", "PRIMARY", None),
            failover("secondary", "SECONDARY", None),
        ];
        let (problem, fix) =
            plan_record(&record(Some("secondary"), &[]), &unchecked, Mode::Planned).unwrap_err();
        assert!(
            problem.contains("[set \"primary\"] has no health check"),
            "{problem}"
        );
        assert!(fix.contains("health check"), "{fix}");
        let (problem, _) = plan_record(
            &record(Some("secondary"), &[("secondary", 1)]),
            &found,
            Mode::Planned,
        )
        .unwrap_err();
        assert!(
            problem.contains("is a failover set, not a weighted one"),
            "{problem}"
        );
    }

    #[test]
    fn sets_it_cannot_write_back_are_refused_before_any_change() {
        let found = [RecordSet {
            unrestorable: Some("CIDR routing".into()),
            ..set("office", "10.0.0.3")
        }];
        let (problem, _) =
            plan_record(&record(Some("office"), &[]), &found, Mode::Planned).unwrap_err();
        assert_eq!(
            problem,
            "www.example.com. A [set \"office\"] uses CIDR routing, which drs-runbook cannot write back on rollback"
        );
    }
}
