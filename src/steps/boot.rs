//! `boot:<wave>`: convert ahead, boot in order. Dependencies between waves are about **boot
//! order**, not conversion (offline disk work), so every wave's recovery job starts at once and
//! the waves with `after` dependencies are launched `STOPPED`; each is started as soon as its
//! `after` waves passed the health gate, then goes through the gate itself.
//!
//! ```text
//!  recovery_job:W   hold: launchDisposition STOPPED on W's servers (original recorded first),
//!                   then StartRecovery                                        (`hold/<server>`)
//!  launch:W         the jobs ended: the original dispositions back, no gate   (`release/<server>`)
//!  boot:W           once W's `after` waves passed the gate: StartInstances of the stopped
//!                   instances, once per chunk of 100 (`start/<n>`), then the health gate
//!  undo:recovery_job:W   (rollback) the original dispositions back again      (`release/<server>`)
//! ```
//!
//! Every change is a durable call ([`StepCtx::call`]). An UpdateLaunchConfiguration left open is
//! reconciled with GetLaunchConfiguration (the value already there: recorded; else sent again,
//! setting a value being idempotent); StartInstances is reconciled by DescribeInstances (an
//! instance no longer `stopped` was started: the call is recorded, never sent twice). The
//! launch configurations end the run as they began: restored once the jobs no longer need
//! them, and by the rollback whatever the run reached. The output is the wave's
//! [`LaunchOutput`] taken over from `launch:W` and completed by the gate (IPs from EC2, passed-over
//! optional servers): the steps after the wave read it from [`gate_step`].
//!
//! A runbook turns this off with `[recovery] convert_ahead = false` (each wave's recovery then
//! starts after its `after` waves passed the gate, as one job after the other).

use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

use super::launch::LaunchOutput;
use super::recovery_job::RecoveryJobOutput;
use super::{Halt, StepCtx, retry};
use crate::aws::SideClients;
use crate::aws::ec2::MAX_IDS_PER_CALL;
use crate::run::call::{Call, Found, How};
use crate::run::{Operation, StepKind};
use crate::runbook::Runbook;

/// The launch disposition a held wave's servers get until their jobs have launched.
pub const STOPPED: &str = "STOPPED";

/// Whether the wave of a run of `operation` is launched `STOPPED` and started by `boot:W`:
/// failovers and drills that convert ahead, for waves with `after` dependencies.
pub fn is_held(operation: Operation, runbook: &Runbook, wave: &str) -> bool {
    matches!(operation, Operation::Failover | Operation::Drill)
        && runbook.recovery.convert_ahead
        && runbook.wave(wave).is_some_and(|w| !w.after.is_empty())
}

/// The step whose output is the wave's recovered instances after the health gate (IPs from
/// EC2, passed-over servers): `boot:W` for a held wave, else `launch:W`.
pub fn gate_step(operation: Operation, runbook: &Runbook, wave: &str) -> String {
    let kind = if is_held(operation, runbook, wave) {
        StepKind::Boot
    } else {
        StepKind::Launch
    };
    format!("{}:{wave}", kind.as_str())
}

/// The instances `boot:W` started (persisted before the first StartInstances, so that every
/// attempt sends the same requests).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Started {
    /// The EC2 instances found `stopped`, sorted; sent in chunks of 100.
    pub instances: Vec<String>,
    /// When every chunk's StartInstances was recorded (engine clock).
    pub at: Option<String>,
}

/// Holds the servers' launches: records each one's launch disposition (GetLaunchConfiguration,
/// once) in the recovery step's output, then sets `STOPPED` where it was not.
pub async fn hold(
    ctx: &mut StepCtx<'_>,
    out: &mut RecoveryJobOutput,
    servers: &[String],
) -> Result<(), Halt> {
    let side = ctx.recovery_side();
    let unread: Vec<&String> = servers
        .iter()
        .filter(|s| !out.held.contains_key(*s))
        .collect();
    if !unread.is_empty() {
        for server in unread {
            let config = retry::read(ctx, || side.get_launch_configuration(server)).await?;
            let disposition = config
                .launch_disposition
                .unwrap_or_else(|| "STARTED".to_string());
            out.held.insert(server.clone(), disposition);
        }
        ctx.save(&*out).await?;
    }
    let mut changed = 0;
    for server in servers {
        if out.held[server] == STOPPED {
            continue;
        }
        if set_disposition(ctx, side, "hold", server, STOPPED).await? == How::Sent {
            changed += 1;
        }
    }
    if changed > 0 {
        ctx.say(format!(
            "launchDisposition STOPPED on {changed} server(s): they boot once the wave's `after` waves pass the health gate"
        ));
    }
    Ok(())
}

/// Gives the held servers their original launch disposition back (those that were not
/// `STOPPED` already). Re-entrant: each server's call is recorded once per step.
pub async fn release(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    held: &BTreeMap<String, String>,
) -> Result<(), Halt> {
    let mut restored = 0;
    for (server, original) in held {
        if original == STOPPED {
            continue;
        }
        if set_disposition(ctx, side, "release", server, original).await? == How::Sent {
            restored += 1;
        }
    }
    if restored > 0 {
        ctx.say(format!(
            "launch configuration of {restored} server(s) restored (launchDisposition as before the run)"
        ));
    }
    Ok(())
}

/// UpdateLaunchConfiguration `launchDisposition`, a durable call named `<what>/<server>`.
async fn set_disposition(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    what: &str,
    server: &str,
    disposition: &str,
) -> Result<How, Halt> {
    let call = Call::on(
        side,
        format!("{what}/{server}"),
        "drs:UpdateLaunchConfiguration",
        json!({ "sourceServerID": server, "launchDisposition": disposition }),
    );
    let outcome = ctx
        .call(
            &call,
            // An attempt left open: DRS says whether it took effect; if not, the same value is
            // sent again (setting it is idempotent), never a second change after a first.
            async |ctx: &mut StepCtx<'_>| {
                let config = retry::read(ctx, || side.get_launch_configuration(server)).await?;
                Ok(
                    if config.launch_disposition.as_deref() == Some(disposition) {
                        Found::TookEffect(
                            json!({ "launchDisposition": disposition, "found_by": "GetLaunchConfiguration" }),
                        )
                    } else {
                        Found::Resend
                    },
                )
            },
            async || {
                let called = side.set_launch_disposition(server, disposition).await?;
                Ok(called.map(|d| json!({ "launchDisposition": d })))
            },
        )
        .await?;
    Ok(outcome.how)
}

/// How often `boot` looks again while DRS is still stopping an instance it launched.
const STOPPING_POLL: Duration = Duration::from_secs(10);

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let wave = ctx.step.wave.clone().unwrap_or_default();
    let jobs: RecoveryJobOutput = ctx.output_of(&ctx.job_step_key()).await?;
    let mut out: LaunchOutput = ctx.my_output().await?;
    if out.completed_at.is_none() {
        // The wave's launch, taken over once: the gate completes it here.
        out = ctx
            .output_of(&format!("{}:{wave}", StepKind::Launch.as_str()))
            .await?;
        ctx.save(&out).await?;
    }
    if out.healthy_at.is_some() {
        return Ok(());
    }
    let side = ctx.recovery_side();
    let started = match out.started.clone() {
        Some(started) => started,
        None => {
            let started = Started {
                instances: stopped_instances(ctx, side, &out).await?,
                at: None,
            };
            out.started = Some(started.clone());
            ctx.save(&out).await?;
            started
        }
    };
    if started.at.is_none() {
        for (index, chunk) in started.instances.chunks(MAX_IDS_PER_CALL).enumerate() {
            let how = start(ctx, side, index, chunk).await?;
            ctx.say(match how {
                How::Sent => format!("StartInstances for {} instance(s)", chunk.len()),
                How::Recorded | How::Reconciled => format!(
                    "StartInstances of {} instance(s) found done by an earlier attempt",
                    chunk.len()
                ),
            });
        }
        if let Some(s) = out.started.as_mut() {
            s.at = Some(ctx.clock.now().to_rfc3339());
        }
        ctx.save(&out).await?;
    }
    super::launch::health_gate(ctx, &jobs, &mut out).await
}

/// The wave's gated instances that are `stopped` (sorted), once none is still `stopping` (DRS
/// launches a held instance, then stops it; EC2 refuses to start a stopping one).
async fn stopped_instances(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    out: &LaunchOutput,
) -> Result<Vec<String>, Halt> {
    let ids: Vec<String> = out.gate_instances().into_iter().map(|(_, id)| id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    loop {
        let found = retry::read(ctx, || side.describe_instances(&ids)).await?;
        let stopping = found.iter().filter(|i| i.state == "stopping").count();
        if stopping == 0 {
            let mut stopped: Vec<String> = found
                .into_iter()
                .filter(|i| i.state == "stopped")
                .map(|i| i.instance_id)
                .collect();
            stopped.sort();
            return Ok(stopped);
        }
        ctx.say(format!(
            "{stopping} instance(s) still stopping after their launch; waiting"
        ));
        ctx.pause(STOPPING_POLL).await?;
    }
}

/// StartInstances of one chunk, a durable call named `start/<index>`. An attempt whose outcome
/// was not recorded is reconciled with DescribeInstances: an instance no longer `stopped` was
/// started by it (StartInstances changes all its instances or none), so it is not sent again.
async fn start(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    index: usize,
    chunk: &[String],
) -> Result<How, Halt> {
    let call = Call::on(
        side,
        format!("start/{index}"),
        "ec2:StartInstances",
        json!({ "instanceIds": chunk }),
    )
    .reconciling_ambiguous();
    let outcome = ctx
        .call(
            &call,
            async |ctx: &mut StepCtx<'_>| {
                let found = retry::read(ctx, || side.describe_instances(chunk)).await?;
                let states: BTreeMap<String, String> = found
                    .into_iter()
                    .map(|i| (i.instance_id, i.state))
                    .collect();
                Ok(if states.values().any(|s| s != "stopped") {
                    Found::TookEffect(json!({ "found_by": "DescribeInstances", "states": states }))
                } else {
                    Found::NoEffect(
                        "every instance of the chunk is still stopped: the call had no effect"
                            .to_string(),
                    )
                })
            },
            async || {
                let called = side.start_instances(chunk).await?;
                Ok(called.map(|changes| json!({ "starting": changes })))
            },
        )
        .await?;
    Ok(outcome.how)
}
