//! `boot:<wave>`: convert ahead, boot in order. Dependencies between waves are about **boot
//! order**, not conversion (offline disk work), so every wave's recovery job starts at once and
//! the waves with `after` dependencies are launched `STOPPED`; each is started as soon as its
//! `after` waves passed the health gate, then goes through the gate itself.
//!
//! ```text
//!  recovery_job:W   hold: launchDisposition STOPPED on W's servers (original recorded first),
//!                   then StartRecovery                                         (`hold/<batch>`)
//!  launch:W         the jobs ended: the original dispositions back, no gate    (`release`)
//!  boot:W           once W's `after` waves passed the gate: StartInstances of the stopped
//!                   instances, once per chunk of 100 (`start/<n>`), then the health gate
//!  undo:recovery_job:W   (rollback) the original dispositions back again      (`release`)
//! ```
//!
//! Every change is a durable call ([`StepCtx::call`]). The UpdateLaunchConfiguration of a
//! batch's (or a wave's) servers is one call: one intent and one effect for the lot (DRS has no
//! batch form, and a journal write per server would cost the run more than the calls). One left
//! open is reconciled with GetLaunchConfiguration (every value already there: recorded; else
//! sent again to the servers without it, so no server is changed twice). StartInstances is
//! reconciled by DescribeInstances (an instance no longer `stopped` was started: the call is
//! recorded, never sent twice). The launch configurations end the run as they began: restored
//! once the jobs no longer need them, and by the rollback whatever the run reached. The output
//! is the wave's [`LaunchOutput`] taken over from `launch:W` and completed by the gate (IPs from
//! EC2, passed-over optional servers): the steps after the wave read it from [`gate_step`].
//!
//! A runbook turns this off with `[recovery] convert_ahead = false` (each wave's recovery then
//! starts after its `after` waves passed the gate, as one job after the other).

use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

use super::launch::LaunchOutput;
use super::preflight::PreflightOutput;
use super::recovery_job::RecoveryJobOutput;
use super::{Halt, StepCtx, retry};
use crate::aws::SideClients;
use crate::aws::ec2::MAX_IDS_PER_CALL;
use crate::run::call::{Call, Found, How};
use crate::run::{Operation, StepKind};
use crate::runbook::Runbook;

/// How many launch-configuration calls (reads, or updates of distinct servers) are in flight at
/// once: a held wave's StartRecovery waits for them, and so does the snapshot spread.
const AT_ONCE: usize = 10;

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

/// How old preflight's reading of the launch settings may be for the hold to take the launch
/// dispositions from it: longer (a run that waited at an approval gate), they are read again.
pub const PREFLIGHT_READING_FRESH: Duration = Duration::from_secs(10 * 60);

/// Holds the servers' launches: records each one's launch disposition in the recovery step's
/// output, then sets `STOPPED` where it was not, as one durable call named `hold/<batch>`. The
/// dispositions are the ones preflight read (no call: DRS has no batch read of launch
/// configurations, so a read is one call per server), unless that reading is older than
/// [`PREFLIGHT_READING_FRESH`] or lacks the server: then GetLaunchConfiguration, once.
pub async fn hold(
    ctx: &mut StepCtx<'_>,
    out: &mut RecoveryJobOutput,
    batch: usize,
    servers: &[String],
) -> Result<(), Halt> {
    let side = ctx.recovery_side();
    let unrecorded: Vec<&String> = servers
        .iter()
        .filter(|s| !out.held.contains_key(*s))
        .collect();
    if !unrecorded.is_empty() {
        let read = preflight_dispositions(ctx).await?;
        let mut unread = Vec::new();
        for server in unrecorded {
            match read.get(server) {
                Some(disposition) => {
                    out.held.insert(server.clone(), disposition.clone());
                }
                None => unread.push(server),
            }
        }
        for chunk in unread.chunks(AT_ONCE) {
            let configs = retry::read(ctx, || {
                try_join_all(chunk.iter().map(|s| side.get_launch_configuration(s)))
            })
            .await?;
            for (server, config) in chunk.iter().zip(configs) {
                let disposition = config
                    .launch_disposition
                    .unwrap_or_else(|| "STARTED".to_string());
                out.held.insert((*server).clone(), disposition);
            }
        }
        ctx.save(&*out).await?;
    }
    let changes: Vec<(String, String)> = servers
        .iter()
        .filter(|s| out.held[*s] != STOPPED)
        .map(|s| (s.clone(), STOPPED.to_string()))
        .collect();
    if set_dispositions(ctx, side, &format!("hold/{batch}"), &changes).await? == How::Sent {
        ctx.say(format!(
            "launchDisposition STOPPED on {} server(s): they boot once the wave's `after` waves pass the health gate",
            changes.len()
        ));
    }
    Ok(())
}

/// The launch dispositions preflight read, when it read them less than
/// [`PREFLIGHT_READING_FRESH`] ago (engine clock); else none.
async fn preflight_dispositions(ctx: &StepCtx<'_>) -> Result<BTreeMap<String, String>, Halt> {
    let preflight: PreflightOutput = ctx.output_of(StepKind::Preflight.as_str()).await?;
    let recent = preflight
        .launch_settings_read_at
        .as_deref()
        .and_then(crate::aws::parse_time)
        .is_some_and(|at| {
            (ctx.clock.now() - at).to_std().unwrap_or_default() < PREFLIGHT_READING_FRESH
        });
    let servers = match preflight.launch_settings {
        Some(settings) if recent => settings.servers,
        _ => return Ok(BTreeMap::new()),
    };
    Ok(servers
        .into_iter()
        .filter(|s| s.unread.is_none())
        .map(|s| {
            let disposition = s
                .launch_disposition
                .unwrap_or_else(|| "STARTED".to_string());
            (s.source_server_id, disposition)
        })
        .collect())
}

/// Gives the held servers their original launch disposition back (those that were not
/// `STOPPED` already), as one durable call named `release`: recorded once per step.
pub async fn release(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    held: &BTreeMap<String, String>,
) -> Result<(), Halt> {
    let changes: Vec<(String, String)> = held
        .iter()
        .filter(|(_, original)| original.as_str() != STOPPED)
        .map(|(server, original)| (server.clone(), original.clone()))
        .collect();
    if set_dispositions(ctx, side, "release", &changes).await? == How::Sent {
        ctx.say(format!(
            "launch configuration of {} server(s) restored (launchDisposition as before the run)",
            changes.len()
        ));
    }
    Ok(())
}

/// UpdateLaunchConfiguration `launchDisposition` of each (server, disposition), one durable
/// call named `name` (one intent and one effect for the lot, not one per server: DRS has no
/// batch form of the call). An attempt left open is reconciled with GetLaunchConfiguration:
/// when every server has its value the call is recorded; otherwise it is sent again to the
/// servers that do not (setting a value is idempotent), so no server is changed twice.
async fn set_dispositions(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    name: &str,
    changes: &[(String, String)],
) -> Result<How, Halt> {
    if changes.is_empty() {
        return Ok(How::Recorded);
    }
    let call = Call::on(
        side,
        name,
        "drs:UpdateLaunchConfiguration",
        json!({ "launchDisposition": changes.iter().map(|(s, d)| json!({ "sourceServerID": s, "launchDisposition": d })).collect::<Vec<_>>() }),
    );
    // The servers a reconciliation found already set: the resend skips them.
    let already = std::sync::Mutex::new(std::collections::BTreeSet::<String>::new());
    let outcome = ctx
        .call(
            &call,
            async |ctx: &mut StepCtx<'_>| {
                let mut set = std::collections::BTreeSet::new();
                for chunk in changes.chunks(AT_ONCE) {
                    let configs = retry::read(ctx, || {
                        try_join_all(chunk.iter().map(|(s, _)| side.get_launch_configuration(s)))
                    })
                    .await?;
                    for ((server, disposition), config) in chunk.iter().zip(configs) {
                        if config.launch_disposition.as_deref() == Some(disposition.as_str()) {
                            set.insert(server.clone());
                        }
                    }
                }
                Ok(if set.len() == changes.len() {
                    Found::TookEffect(
                        json!({ "found_by": "GetLaunchConfiguration", "servers": set }),
                    )
                } else {
                    *already.lock().expect("not poisoned") = set;
                    Found::Resend
                })
            },
            async || {
                let skip = already.lock().expect("not poisoned").clone();
                let mut request_id = None;
                let mut set = BTreeMap::new();
                let todo: Vec<&(String, String)> =
                    changes.iter().filter(|(s, _)| !skip.contains(s)).collect();
                for chunk in todo.chunks(AT_ONCE) {
                    let called =
                        try_join_all(chunk.iter().map(|(s, d)| side.set_launch_disposition(s, d)))
                            .await?;
                    for ((server, _), called) in chunk.iter().zip(called) {
                        request_id = called.request_id;
                        set.insert(server.clone(), called.value);
                    }
                }
                Ok(crate::aws::drs::Called {
                    value: json!({ "launchDisposition": set, "already_set": skip }),
                    request_id,
                })
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
            let found = settled_instances(ctx, side, &out).await?;
            out.record_addresses(&found, ctx.clock.now().to_rfc3339());
            let mut stopped: Vec<String> = found
                .into_iter()
                .filter(|i| i.state == "stopped")
                .map(|i| i.instance_id)
                .collect();
            stopped.sort();
            let started = Started {
                instances: stopped,
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
    // Their boot began with StartInstances (nothing started: unknown, the gate looks at once).
    let booted = out
        .started
        .as_ref()
        .filter(|s| !s.instances.is_empty())
        .and_then(|s| s.at.as_deref())
        .and_then(crate::aws::parse_time);
    super::launch::health_gate(ctx, &jobs, &mut out, booted).await
}

/// The wave's gated instances as EC2 describes them once none is still `stopping` (DRS launches
/// a held instance, then stops it; EC2 refuses to start a stopping one).
async fn settled_instances(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    out: &LaunchOutput,
) -> Result<Vec<crate::aws::ec2::Instance>, Halt> {
    let ids: Vec<String> = out.gate_instances().into_iter().map(|(_, id)| id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    loop {
        let found = retry::read(ctx, || side.describe_instances(&ids)).await?;
        let stopping = found.iter().filter(|i| i.state == "stopping").count();
        if stopping == 0 {
            return Ok(found);
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
