//! `ssm_document` actions: a runbook action run by DRS itself, as a **post-launch action** of the
//! wave's source servers (an SSM document DRS runs on each recovery instance once its SSM agent
//! is found), its result read from the recovery jobs' `launchActionsStatus`.
//!
//! ```text
//!  recovery_job:W  install, before each batch's StartRecovery:
//!                    each server's postLaunchEnabled recorded (GetLaunchConfiguration, once)
//!                    postLaunchEnabled true where it was off            (`post-launch/<batch>`)
//!                    PutLaunchAction of the wave's ssm actions on each server
//!                                                                     (`launch-actions/<batch>`)
//!  action:W:N      the runs of N on every launched server, read from the wave's jobs
//!                  (DescribeJobs, shared) until each ended or N's timeout; then, unless N
//!                  `keep`s it, N's launch actions deleted                       (`remove`)
//!                  and postLaunchEnabled given back where none of the run's actions remain
//!                                                                              (`restore`)
//!                  a FAILED run fails the step (critical) or is reported (optional)
//!  undo:recovery_job:W  (rollback) every action the run installed and does not keep deleted,
//!                  postLaunchEnabled given back                (`remove`, `restore`)
//! ```
//!
//! An instance launched `STOPPED` (a held wave, [`super::boot`]) runs its actions once `boot:W`
//! starts it; `action:W:N` comes after `boot:W` in the plan (`after_boot` or later), so it reads
//! them then. Every change is a durable call ([`StepCtx::call`]), one for the lot of a batch (DRS
//! has no batch form): PutLaunchAction is a put keyed by the action's ID, so an open intent is
//! reconciled with ListLaunchActions (every action there as sent: recorded) or sent again; a
//! delete left open is reconciled the same way (none left: recorded), and a repeated
//! DeleteLaunchAction of a deleted action is harmless. The action ID is derived from the
//! runbook, the wave and the action's name, so every run puts the same action.
//!
//! DRS takes a parameter's value only as a name (`[A-Za-z0-9.-]+`, botocore `drs`
//! LaunchActionParameterValue): an `SSM_STORE` Parameter Store parameter or a `DYNAMIC` value;
//! the runbook says which (`parameters = { commands = { ssm_store = "dr-app-check" } }`).

use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

use super::action::ActionOutput;
use super::recovery_job::RecoveryJobOutput;
use super::{Halt, StepCtx, retry};
use crate::aws::SideClients;
use crate::aws::drs_launch_actions::{LaunchAction, LaunchActionParam, LaunchActionRun};
use crate::run::call::{Call, Found};
use crate::run::clock::Backoff;
use crate::runbook::model::{Action, ActionRun, Runbook};

/// How many DRS calls of one kind are in flight at once.
const AT_ONCE: usize = 10;

/// The first `order` the runbook's actions take: 1..1000 are for DRS's predefined actions
/// (AWS user guide, "custom actions": 1,001–10,000 for custom actions).
const FIRST_ORDER: i32 = 1001;

/// What `recovery_job:W` installed for the wave's `ssm_document` actions (part of its output),
/// recorded before it changed anything, so that the action steps and the rollback undo it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Installed {
    /// Each server's `postLaunchEnabled` before the run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub post_launch_enabled: BTreeMap<String, bool>,
    /// The launch actions put, by server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<InstalledAction>,
}

impl Installed {
    pub fn is_empty(&self) -> bool {
        self.post_launch_enabled.is_empty() && self.actions.is_empty()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InstalledAction {
    pub server: String,
    /// The runbook action's name.
    pub action: String,
    pub action_id: String,
    /// `keep = true`: left on the server after the run (and by the rollback).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep: bool,
}

/// The `ssm_document` actions of `wave` that run in this run's operation, in file order.
fn ssm_actions<'r>(ctx: &StepCtx<'r>, wave: &str) -> Vec<&'r Action> {
    let runbook: &'r Runbook = ctx.runbook;
    let operation = ctx.run.operation;
    runbook
        .wave(wave)
        .map(|w| {
            w.actions
                .iter()
                .filter(|a| matches!(a.run, ActionRun::SsmDocument { .. }) && a.runs_in(operation))
                .collect()
        })
        .unwrap_or_default()
}

/// A name or description as DRS's patterns allow it: any other character becomes `-`.
fn fit(text: &str, allowed: impl Fn(char) -> bool, max: usize) -> String {
    text.chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(max)
        .collect()
}

/// The launch action of runbook action `action` of `wave`: its ID derived from the runbook,
/// the wave and the action's name; its `order` the action's place among the wave's
/// `ssm_document` actions.
pub fn launch_action(runbook: &Runbook, wave: &str, action: &Action) -> Option<LaunchAction> {
    let ActionRun::SsmDocument {
        document,
        version,
        parameters,
        ..
    } = &action.run
    else {
        return None;
    };
    let index = runbook
        .wave(wave)?
        .actions
        .iter()
        .filter(|a| matches!(a.run, ActionRun::SsmDocument { .. }))
        .position(|a| a.name == action.name)?;
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(
        format!("drs-runbook/{}/{wave}/{}", runbook.name, action.name).as_bytes(),
    ));
    let action_id = format!(
        "{}-{}-{}-{}-{}",
        &digest[0..8],
        &digest[8..12],
        &digest[12..16],
        &digest[16..20],
        &digest[20..32]
    );
    let name = fit(
        &format!("drs-runbook {wave} {}", action.name),
        |c| c.is_ascii_alphanumeric() || " /_-".contains(c),
        256,
    );
    // LaunchActionDescription: `[0-9a-zA-Z ():/.,'-_#*; ]*`, at most 1024.
    let description = fit(
        &format!(
            "Runbook {} wave {wave} action {} (installed by drs-runbook)",
            runbook.name, action.name
        ),
        |c| c.is_ascii_alphanumeric() || " ():/.,#*;".contains(c) || ('\''..='_').contains(&c),
        1024,
    );
    Some(LaunchAction {
        action_id,
        action_code: document.clone(),
        kind: None,
        name,
        active: true,
        order: FIRST_ORDER + index as i32,
        action_version: version.clone(),
        optional: action.optional,
        parameters: parameters
            .iter()
            .map(|(k, p)| {
                (
                    k.clone(),
                    LaunchActionParam {
                        value: p.value().to_string(),
                        kind: p.wire_type().to_string(),
                    },
                )
            })
            .collect(),
        description,
        category: "OTHER".to_string(),
    })
}

/// `recovery_job:W`, before a batch's StartRecovery: the wave's `ssm_document` actions put on
/// the batch's servers, with post-launch actions enabled on them. Nothing when the wave has
/// none.
pub async fn install(
    ctx: &mut StepCtx<'_>,
    out: &mut RecoveryJobOutput,
    batch: usize,
    servers: &[String],
) -> Result<(), Halt> {
    let wave = ctx.wave().name.clone();
    let actions = ssm_actions(ctx, &wave);
    if actions.is_empty() {
        return Ok(());
    }
    let side = ctx.recovery_side();
    let unread: Vec<&String> = servers
        .iter()
        .filter(|s| !out.launch_actions.post_launch_enabled.contains_key(*s))
        .collect();
    if !unread.is_empty() {
        for chunk in unread.chunks(AT_ONCE) {
            let configs = retry::read(ctx, || {
                try_join_all(chunk.iter().map(|s| side.get_launch_configuration(s)))
            })
            .await?;
            for (server, config) in chunk.iter().zip(configs) {
                out.launch_actions.post_launch_enabled.insert(
                    (*server).clone(),
                    config.post_launch_enabled.unwrap_or(false),
                );
            }
        }
        for server in servers {
            for action in &actions {
                let put = launch_action(ctx.runbook, &wave, action).expect("an ssm action");
                out.launch_actions.actions.push(InstalledAction {
                    server: server.clone(),
                    action: action.name.clone(),
                    action_id: put.action_id,
                    keep: keeps(action),
                });
            }
        }
        ctx.save(&*out).await?;
    }
    let enable: Vec<(String, bool)> = servers
        .iter()
        .filter(|s| !out.launch_actions.post_launch_enabled[*s])
        .map(|s| (s.clone(), true))
        .collect();
    set_post_launch(ctx, side, &format!("post-launch/{batch}"), &enable).await?;
    let puts: Vec<(String, LaunchAction)> = servers
        .iter()
        .flat_map(|s| {
            actions.iter().map(|a| {
                let put = launch_action(ctx.runbook, &wave, a).expect("an ssm action");
                (s.clone(), put)
            })
        })
        .collect();
    put_actions(ctx, side, &format!("launch-actions/{batch}"), &puts).await?;
    ctx.say(format!(
        "post-launch action(s) {} put on {} server(s)",
        actions
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        servers.len()
    ));
    Ok(())
}

fn keeps(action: &Action) -> bool {
    matches!(action.run, ActionRun::SsmDocument { keep: true, .. })
}

/// PutLaunchAction of each (server, action), one durable call named `name`.
async fn put_actions(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    name: &str,
    puts: &[(String, LaunchAction)],
) -> Result<(), Halt> {
    if puts.is_empty() {
        return Ok(());
    }
    let call = Call::on(
        side,
        name,
        "drs:PutLaunchAction",
        json!({ "actions": puts.iter().map(|(s, a)| json!({ "resourceId": s, "action": a })).collect::<Vec<_>>() }),
    );
    ctx.call(
        &call,
        async |ctx: &mut StepCtx<'_>| {
            let found = listed(ctx, side, puts.iter().map(|(s, a)| (s, &a.action_id))).await?;
            let all_there = puts.iter().all(|(s, a)| {
                found
                    .get(&(s.clone(), a.action_id.clone()))
                    .is_some_and(|f| {
                        &LaunchAction {
                            kind: None,
                            ..f.clone()
                        } == a
                    })
            });
            Ok(if all_there {
                Found::TookEffect(json!({ "found_by": "ListLaunchActions", "actions": puts.len() }))
            } else {
                // A put of the same action ID sets the same action: safe to send again.
                Found::Resend
            })
        },
        async || {
            let mut request_ids = Vec::new();
            for chunk in puts.chunks(AT_ONCE) {
                let called =
                    try_join_all(chunk.iter().map(|(s, a)| side.put_launch_action(s, a))).await?;
                request_ids.extend(called.into_iter().filter_map(|c| c.request_id));
            }
            Ok(crate::aws::drs::Called {
                value: json!({ "actions": puts.len(), "request_ids": request_ids }),
                request_id: None,
            })
        },
    )
    .await?;
    Ok(())
}

/// The launch actions of these (server, action ID) pairs that DRS lists, by pair.
async fn listed<'s>(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    pairs: impl Iterator<Item = (&'s String, &'s String)>,
) -> Result<BTreeMap<(String, String), LaunchAction>, Halt> {
    let mut by_server: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (server, id) in pairs {
        by_server
            .entry(server.clone())
            .or_default()
            .push(id.clone());
    }
    let mut found = BTreeMap::new();
    let servers: Vec<(String, Vec<String>)> = by_server.into_iter().collect();
    for chunk in servers.chunks(AT_ONCE) {
        let lists = retry::read(ctx, || {
            try_join_all(
                chunk
                    .iter()
                    .map(|(s, ids)| side.list_launch_actions(s, ids)),
            )
        })
        .await?;
        for ((server, _), actions) in chunk.iter().zip(lists) {
            for a in actions {
                found.insert((server.clone(), a.action_id.clone()), a);
            }
        }
    }
    Ok(found)
}

/// UpdateLaunchConfiguration `postLaunchEnabled` of each (server, value), one durable call
/// named `name`; an open intent is reconciled with GetLaunchConfiguration (every value there:
/// recorded; else sent again, setting a value being idempotent).
async fn set_post_launch(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    name: &str,
    changes: &[(String, bool)],
) -> Result<(), Halt> {
    if changes.is_empty() {
        return Ok(());
    }
    let call = Call::on(
        side,
        name,
        "drs:UpdateLaunchConfiguration",
        json!({ "postLaunchEnabled": changes.iter().map(|(s, v)| json!({ "sourceServerID": s, "postLaunchEnabled": v })).collect::<Vec<_>>() }),
    );
    ctx.call(
        &call,
        async |ctx: &mut StepCtx<'_>| {
            let mut set = 0;
            for chunk in changes.chunks(AT_ONCE) {
                let configs = retry::read(ctx, || {
                    try_join_all(chunk.iter().map(|(s, _)| side.get_launch_configuration(s)))
                })
                .await?;
                set += chunk
                    .iter()
                    .zip(configs)
                    .filter(|((_, v), c)| c.post_launch_enabled == Some(*v))
                    .count();
            }
            Ok(if set == changes.len() {
                Found::TookEffect(json!({ "found_by": "GetLaunchConfiguration", "servers": set }))
            } else {
                Found::Resend
            })
        },
        async || {
            let mut request_ids = Vec::new();
            for chunk in changes.chunks(AT_ONCE) {
                let called = try_join_all(
                    chunk
                        .iter()
                        .map(|(s, v)| side.set_post_launch_enabled(s, *v)),
                )
                .await?;
                request_ids.extend(called.into_iter().filter_map(|c| c.request_id));
            }
            Ok(crate::aws::drs::Called {
                value: json!({ "servers": changes.len(), "request_ids": request_ids }),
                request_id: None,
            })
        },
    )
    .await?;
    Ok(())
}

/// DeleteLaunchAction of each installed action, one durable call named `name`; an open intent
/// is reconciled with ListLaunchActions (none left: recorded), a repeated delete finding
/// nothing to delete.
async fn delete_actions(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    name: &str,
    actions: &[&InstalledAction],
) -> Result<(), Halt> {
    if actions.is_empty() {
        return Ok(());
    }
    let call = Call::on(
        side,
        name,
        "drs:DeleteLaunchAction",
        json!({ "actions": actions.iter().map(|a| json!({ "resourceId": a.server, "actionId": a.action_id })).collect::<Vec<_>>() }),
    );
    ctx.call(
        &call,
        async |ctx: &mut StepCtx<'_>| {
            let left = listed(ctx, side, actions.iter().map(|a| (&a.server, &a.action_id))).await?;
            Ok(if left.is_empty() {
                Found::TookEffect(
                    json!({ "found_by": "ListLaunchActions", "deleted": actions.len() }),
                )
            } else {
                Found::Resend
            })
        },
        async || {
            let mut deleted = 0;
            let mut request_ids = Vec::new();
            for chunk in actions.chunks(AT_ONCE) {
                let called = try_join_all(
                    chunk
                        .iter()
                        .map(|a| side.delete_launch_action(&a.server, &a.action_id)),
                )
                .await?;
                for c in called {
                    deleted += usize::from(c.value);
                    request_ids.extend(c.request_id);
                }
            }
            Ok(crate::aws::drs::Called {
                value: json!({ "deleted": deleted, "request_ids": request_ids }),
                request_id: None,
            })
        },
    )
    .await?;
    Ok(())
}

/// Deletes `remove` (the installed actions to go), then gives `postLaunchEnabled` back on the
/// servers where it was off before the run and none of the run's installed actions remain.
async fn uninstall(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    installed: &Installed,
    remove: &[&InstalledAction],
) -> Result<(), Halt> {
    delete_actions(ctx, side, "remove", remove).await?;
    let off: Vec<&String> = installed
        .post_launch_enabled
        .iter()
        .filter(|(_, was)| !**was)
        .map(|(s, _)| s)
        .collect();
    if off.is_empty() {
        return Ok(());
    }
    let left = listed(
        ctx,
        side,
        installed
            .actions
            .iter()
            .filter(|a| off.contains(&&a.server))
            .map(|a| (&a.server, &a.action_id)),
    )
    .await?;
    let restore: Vec<(String, bool)> = off
        .into_iter()
        .filter(|s| !left.keys().any(|(server, _)| server == *s))
        .map(|s| (s.clone(), false))
        .collect();
    set_post_launch(ctx, side, "restore", &restore).await
}

/// One server's run of the action, as the step records it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerRun {
    pub server: String,
    pub instance: Option<String>,
    pub run_id: Option<String>,
    /// `SUCCEEDED`, `FAILED`, or `IN_PROGRESS` / none at the timeout.
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// `action:W:N` of an `ssm_document` action: waits until N's runs ended on every server of
/// the wave that launched (reading the wave's jobs), records them, removes N's launch
/// actions unless it keeps them, and reports a FAILED run (or none by the timeout) as the
/// action's error.
pub async fn run(ctx: &mut StepCtx<'_>, action: &Action) -> Result<ActionOutput, Halt> {
    let ActionRun::SsmDocument { timeout, .. } = &action.run else {
        unreachable!("called for ssm_document actions only");
    };
    let wave = ctx.wave().name.clone();
    let jobs: RecoveryJobOutput = ctx.output_of(&ctx.job_step_key()).await?;
    let gate: super::launch::LaunchOutput = ctx
        .output_of(&super::boot::gate_step(
            ctx.run.operation,
            ctx.runbook,
            &wave,
        ))
        .await?;
    let mine: Vec<&InstalledAction> = jobs
        .launch_actions
        .actions
        .iter()
        .filter(|a| a.action == action.name)
        .collect();
    let action_id = mine
        .first()
        .map(|a| a.action_id.clone())
        .unwrap_or_default();
    let launched: BTreeMap<String, Option<String>> = gate
        .launched()
        .filter(|(server, _)| mine.iter().any(|a| &&a.server == server))
        .map(|(server, s)| {
            (
                server.clone(),
                s.ec2_instance_id.clone().or(s.recovery_instance_id.clone()),
            )
        })
        .collect();
    let started = ctx.clock.now();
    let mut out = ActionOutput {
        started_at: Some(started.to_rfc3339()),
        ..Default::default()
    };
    let job_ids = jobs.job_ids();
    let side = ctx.recovery_side();
    let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(30));
    let runs: BTreeMap<String, Option<LaunchActionRun>> = loop {
        let (watch, clock) = (ctx.jobs, ctx.clock);
        let described = retry::read(ctx, || watch.describe(side, clock.now(), &job_ids)).await?;
        let runs: BTreeMap<String, Option<LaunchActionRun>> = launched
            .keys()
            .map(|server| {
                let run = described
                    .iter()
                    .flat_map(|j| j.servers.iter())
                    .find(|s| &s.source_server_id == server)
                    .and_then(|s| {
                        s.launch_actions
                            .runs
                            .iter()
                            .find(|r| r.action_id == action_id)
                            .cloned()
                    });
                (server.clone(), run)
            })
            .collect();
        let ended =
            |r: &Option<LaunchActionRun>| r.as_ref().is_some_and(|r| r.status != "IN_PROGRESS");
        if runs.values().all(ended) {
            break runs;
        }
        if (ctx.clock.now() - started).to_std().unwrap_or_default() > *timeout {
            break runs;
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    };
    let recorded: Vec<ServerRun> = runs
        .iter()
        .map(|(server, run)| ServerRun {
            server: server.clone(),
            instance: launched[server].clone(),
            run_id: run.as_ref().map(|r| r.run_id.clone()),
            status: run.as_ref().map(|r| r.status.clone()),
            failure_reason: run.as_ref().and_then(|r| r.failure_reason.clone()),
        })
        .collect();
    out.stdout = recorded
        .iter()
        .map(|r| {
            format!(
                "{} ({}): {}{}",
                r.server,
                r.instance.as_deref().unwrap_or("no instance"),
                r.status.as_deref().unwrap_or("no run reported"),
                r.failure_reason
                    .as_ref()
                    .map(|f| format!(": {f}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let failed: Vec<String> = recorded
        .iter()
        .filter(|r| r.status.as_deref() == Some("FAILED"))
        .map(|r| {
            format!(
                "{} FAILED{}",
                r.server,
                r.failure_reason
                    .as_ref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let unfinished: Vec<&str> = recorded
        .iter()
        .filter(|r| r.status.as_deref().is_none_or(|s| s == "IN_PROGRESS"))
        .map(|r| r.server.as_str())
        .collect();
    out.timed_out = !unfinished.is_empty();
    out.error = if !failed.is_empty() {
        Some(format!(
            "the post-launch action failed on {}",
            failed.join(", ")
        ))
    } else if !unfinished.is_empty() {
        Some(format!(
            "no result within {} on {} (DRS runs the action once it finds the instance's SSM agent: check the instance profile and the agent)",
            crate::runbook::format_duration(*timeout),
            unfinished.join(", ")
        ))
    } else if launched.is_empty() {
        Some("no server of the wave launched with the action installed".to_string())
    } else {
        None
    };
    out.launch_action_runs = recorded;
    out.finished_at = Some(ctx.clock.now().to_rfc3339());
    ctx.save(&out).await?;
    if !keeps(action) {
        uninstall(ctx, side, &jobs.launch_actions, &mine).await?;
    }
    Ok(out)
}

/// `undo:recovery_job:W`: every launch action the run installed and does not keep deleted,
/// and `postLaunchEnabled` given back (see the module).
pub async fn compensate(
    ctx: &mut StepCtx<'_>,
    side: &SideClients,
    installed: &Installed,
) -> Result<(), Halt> {
    let remove: Vec<&InstalledAction> = installed.actions.iter().filter(|a| !a.keep).collect();
    uninstall(ctx, side, installed, &remove).await
}
