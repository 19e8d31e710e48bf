//! `dns_cutover`: captures the current record sets (persisted before any change, so a rollback
//! restores them byte for byte), UPSERTs the new ones (one atomic batch per hosted zone), and
//! waits until Route 53 reports the change INSYNC.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::compensate::Undone;
use super::launch::LaunchOutput;
use super::{Halt, StepCtx, StepFailure, retry};
use crate::aws::route53::{Alias, RecordChange, RecordSet};
use crate::run::call::{Call, Found, How};
use crate::run::clock::Backoff;
use crate::run::progress::Change;
use crate::runbook::{Account, PointsTo};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DnsOutput {
    pub zones: Vec<ZoneCutover>,
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
    Ok(())
}

/// The records before, and what they become.
async fn capture(ctx: &mut StepCtx<'_>) -> Result<DnsOutput, Halt> {
    let mut zones: BTreeMap<(String, String), ZoneCutover> = BTreeMap::new();
    for record in &ctx.runbook.dns {
        let clients = ctx.clients.side(record.account);
        let name = if record.name.ends_with('.') {
            record.name.clone()
        } else {
            format!("{}.", record.name)
        };
        let clients = clients.clone();
        let before = retry::read(ctx, || {
            clients.record_sets(&record.hosted_zone_id, &name, record.record_type.as_str())
        })
        .await?;
        let after = desired(ctx, record, &name).await?;
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
        entry.after.push(after);
    }
    Ok(DnsOutput {
        zones: zones.into_values().collect(),
    })
}

async fn desired(
    ctx: &StepCtx<'_>,
    record: &crate::runbook::DnsRecord,
    name: &str,
) -> Result<RecordSet, Halt> {
    let wave = match &record.points_to {
        PointsTo::Wave(wave) => wave.clone(),
        PointsTo::LoadBalancer { dns_name, zone } => {
            return Ok(RecordSet {
                name: name.to_string(),
                record_type: record.record_type.as_str().to_string(),
                set_identifier: None,
                ttl: None,
                values: Vec::new(),
                alias: Some(Alias {
                    dns_name: dns_name.clone(),
                    hosted_zone_id: zone.clone(),
                    evaluate_target_health: true,
                }),
            });
        }
    };
    let launch: LaunchOutput = ctx
        .output_of(&super::boot::gate_step(
            ctx.run.operation,
            ctx.runbook,
            &wave,
        ))
        .await?;
    let mut values: Vec<String> = launch
        .launched()
        .flat_map(|(_, s)| s.private_ips.iter().cloned())
        .collect();
    values.sort();
    values.dedup();
    if values.is_empty() {
        return Err(Halt::Failed(StepFailure::new(
            format!("no recovered instance of wave {wave} has an IP address for {name}"),
            "check the launch step's output (drs-runbook show <run>)",
        )));
    }
    Ok(RecordSet {
        name: name.to_string(),
        record_type: record.record_type.as_str().to_string(),
        set_identifier: None,
        ttl: Some(i64::from(record.ttl.unwrap_or(60))),
        values,
        alias: None,
    })
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
// UPSERTed back, records that did not exist before DELETEd; then the same INSYNC wait.

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

pub(crate) async fn compensate(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
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
                    .from_to(sets_text(&zone.before, after), record_text(after)),
            );
        }
    }
    Ok(changes)
}

/// The rollback gate's view: each record written back as it was before the cutover, or deleted
/// where the cutover created it.
pub(crate) fn preview_compensation(undone: &Undone) -> Result<Vec<Change>, Halt> {
    let cutover: DnsOutput = undone.decode()?;
    let mut changes = Vec::new();
    for zone in &cutover.zones {
        for after in &zone.after {
            let before = sets_text(&zone.before, after);
            let action = if before == NO_RECORD {
                "delete"
            } else {
                "restore"
            };
            changes.push(record_change(action, zone, after).from_to(record_text(after), before));
        }
    }
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

/// The sets of `sets` with the name and type of `record`, as text (`(no record)` if none).
fn sets_text(sets: &[RecordSet], record: &RecordSet) -> String {
    let texts: Vec<String> = sets
        .iter()
        .filter(|s| s.name == record.name && s.record_type == record.record_type)
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
        text.push_str(&format!(" [set {id}]"));
    }
    if let Some(ttl) = record.ttl {
        text.push_str(&format!(" (TTL {ttl})"));
    }
    text
}
