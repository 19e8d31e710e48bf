//! `reversed_replication:<wave>` (failback): ReverseReplication on every recovery instance (B2)
//! the failover launched for the wave, so that DRS creates A2 in the origin account and region
//! and replicates B3's data into it; then sets each A2's launch settings ([`set_launch`]: A2 is
//! a new source server, with the origin's defaults); then waits until every A2 replicates
//! CONTINUOUS with its lag within the RPO objective.
//!
//! ReverseReplication is not idempotent (a second call on the same B2 is refused while A2
//! exists). Before any call the step looks for an A2 already linked to B1 (DescribeSourceServers
//! in the origin, `reversedDirectionSourceServerArn` = B1's ARN): an open intent is reconciled
//! that way, an A2 left by an earlier run is adopted, and one that a failback drill stopped is
//! started again (StartReplication) instead of being created twice.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::compensate::Undone;
use super::{Halt, StepCtx, StepFailure, failback, parse_iso_duration, retry};
use crate::aws::SideClients;
use crate::aws::drs::SourceServer;
use crate::run::call::{Call, Found, How};
use crate::run::clock::Backoff;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReversedReplicationOutput {
    /// The failover run whose recovery instances are reversed.
    pub failover_run_id: Option<String>,
    /// By B1 (the runbook's source server ID).
    pub servers: BTreeMap<String, ReversedServer>,
    /// When every A2 was ready (engine clock).
    pub ready_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReversedServer {
    pub b1_arn: Option<String>,
    /// B2, the failover's recovery instance, and its EC2 instance B3.
    pub recovery_instance_id: String,
    pub ec2_instance_id: Option<String>,
    /// A2, the source server in the origin account and region.
    pub a2_id: Option<String>,
    pub a2_arn: Option<String>,
    /// `reverse_replication` (this run called it), `reconciled` (an interrupted call of this
    /// run had created it), `adopted` (an earlier run had), `restarted` (StartReplication).
    pub how: Option<String>,
    pub replication_state: Option<String>,
    pub lag: Option<String>,
    pub ready_at: Option<String>,
    /// The instance B1 protected before the failover (A1), as DRS named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a1_instance_id: Option<String>,
    /// A2's launch settings, once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<A2Launch>,
}

/// The launch settings a failback gave A2: its launch template's new default version.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct A2Launch {
    pub launch_template_id: String,
    pub version: i64,
    /// From `[failback] subnet_id`, else A1's subnet.
    pub subnet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
}

/// How long A2s may take to become ready before the step fails (reverse replication copies
/// every disk across regions: hours for large volumes).
const READY_DEADLINE: Duration = Duration::from_secs(24 * 3600);

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let mut out: ReversedReplicationOutput = ctx.my_output().await?;
    if out.servers.is_empty() {
        out = inventory(ctx).await?;
        ctx.save(&out).await?;
    }
    let pending: Vec<String> = out
        .servers
        .iter()
        .filter(|(_, s)| s.a2_arn.is_none())
        .map(|(b1, _)| b1.clone())
        .collect();
    if !pending.is_empty() {
        // One look at the origin for every server of the wave: A2s that exist already.
        let origin_servers = ctx.clients.source.list_source_servers().await?;
        for b1 in pending {
            if ctx.stopping() {
                return Err(Halt::Stopped);
            }
            let entry = out.servers.get(&b1).cloned().expect("listed above");
            let (a2, how) = ensure_a2(ctx, &b1, &entry, &origin_servers).await?;
            let slot = out.servers.get_mut(&b1).expect("listed above");
            slot.a2_id = Some(a2_id_of(&a2));
            slot.a2_arn = Some(a2);
            slot.how = Some(how.to_string());
            ctx.save(&out).await?;
        }
    }
    if out.servers.values().any(|s| s.launch.is_none()) {
        set_launch(ctx, &mut out).await?;
    }
    if out.ready_at.is_none() {
        wait_ready(ctx, &mut out).await?;
        out.ready_at = Some(ctx.clock.now().to_rfc3339());
        ctx.save(&out).await?;
    }
    Ok(())
}

/// The wave's B2s from the failover run, and B1's ARNs.
async fn inventory(ctx: &mut StepCtx<'_>) -> Result<ReversedReplicationOutput, Halt> {
    let wave = ctx.step.wave.clone().unwrap_or_default();
    let failover = failback::failover_run_id(ctx).await?;
    let recovered = failback::failed_over(ctx, &failover, &wave).await?;
    if recovered.is_empty() {
        return Err(Halt::Failed(StepFailure::new(
            format!("failover run {failover} launched no recovery instance for wave {wave}"),
            "check the failover run (drs-runbook show <run>); fail back from a failover that recovered this wave",
        )));
    }
    let ids: Vec<String> = recovered
        .iter()
        .map(|r| r.source_server_id.clone())
        .collect();
    let b1s = ctx.clients.target.describe_source_servers(&ids).await?;
    let servers = recovered
        .into_iter()
        .map(|r| {
            let b1_arn = b1s
                .iter()
                .find(|s| s.id == r.source_server_id)
                .and_then(|s| s.arn.clone());
            let a1_instance_id = b1s
                .iter()
                .find(|s| s.id == r.source_server_id)
                .and_then(|s| s.aws_instance_id.clone());
            let server = ReversedServer {
                b1_arn,
                a1_instance_id,
                recovery_instance_id: r.recovery_instance_id,
                ec2_instance_id: r.ec2_instance_id,
                ..Default::default()
            };
            (r.source_server_id, server)
        })
        .collect();
    Ok(ReversedReplicationOutput {
        failover_run_id: Some(failover.to_string()),
        servers,
        ready_at: None,
    })
}

fn a2_id_of(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

/// The A2 in the origin that is linked to this B1, if any.
fn linked_a2<'s>(
    origin_servers: &'s [SourceServer],
    b1_arn: Option<&str>,
) -> Option<&'s SourceServer> {
    let b1_arn = b1_arn?;
    origin_servers
        .iter()
        .find(|s| s.reversed_direction_arn.as_deref() == Some(b1_arn))
}

/// Makes sure B1's data replicates into an A2; returns A2's ARN and how.
async fn ensure_a2(
    ctx: &mut StepCtx<'_>,
    b1: &str,
    entry: &ReversedServer,
    origin_servers: &[SourceServer],
) -> Result<(String, &'static str), Halt> {
    let b2 = entry.recovery_instance_id.clone();
    let existing = linked_a2(origin_servers, entry.b1_arn.as_deref()).cloned();
    let target = ctx.clients.target.clone();
    let call = Call::on(
        &target,
        format!("reverse/{b2}"),
        "drs:ReverseReplication",
        serde_json::json!({ "recoveryInstanceID": b2 }),
    )
    .reconciling_ambiguous();
    // An attempt whose outcome was not recorded: the A2 linked to B1, if any, is its effect.
    let b1_arn = entry.b1_arn.clone();
    let find_a2 = async |_: &mut StepCtx<'_>| -> Result<Found, Halt> {
        let servers = ctx_free_list(&existing, origin_servers, b1_arn.as_deref());
        Ok(match servers {
            Some(arn) => Found::TookEffect(
                serde_json::json!({ "reversedDirectionSourceServerArn": arn, "found_by": "DescribeSourceServers reversedDirectionSourceServerArn" }),
            ),
            None => Found::NoEffect(
                "no source server in the origin is linked to B1: the call had no effect"
                    .to_string(),
            ),
        })
    };
    if let Some(outcome) = ctx.settle(&call, find_a2).await?
        && let Some(arn) = outcome.response["reversedDirectionSourceServerArn"].as_str()
    {
        ctx.say(match outcome.how {
            How::Recorded => format!(
                "{b1}: A2 {} was created by this run's ReverseReplication",
                a2_id_of(arn)
            ),
            _ => format!(
                "{b1}: found A2 {} from an interrupted ReverseReplication",
                a2_id_of(arn)
            ),
        });
        return Ok((arn.to_string(), "reconciled"));
    }
    if let Some(a2) = existing {
        let arn = a2.arn.clone().unwrap_or_default();
        return match a2.replication_state.as_deref() {
            Some("STOPPED") => {
                restart(ctx, &a2).await?;
                Ok((arn, "restarted"))
            }
            Some("DISCONNECTED") => Err(Halt::Failed(StepFailure::new(
                format!(
                    "{b1}: the source server {} in account {} ({}) that B1 reverses into is disconnected",
                    a2.id, ctx.clients.source.account_id, ctx.clients.source.region
                ),
                format!(
                    "delete it there (aws drs delete-source-server --source-server-id {}), then `retry` this step",
                    a2.id
                ),
            ))),
            _ if reconcile_restart(ctx, &a2).await? => {
                ctx.say(format!(
                    "{b1}: A2 {} replicates again after an interrupted StartReplication",
                    a2.id
                ));
                Ok((arn, "restarted"))
            }
            _ => {
                ctx.say(format!(
                    "{b1}: A2 {} already replicates ({}); adopting it",
                    a2.id,
                    a2.replication_state.as_deref().unwrap_or("unknown")
                ));
                Ok((arn, "adopted"))
            }
        };
    }
    let b1_arn = entry.b1_arn.clone().ok_or_else(|| {
        Halt::Failed(StepFailure::new(
            format!("source server {b1} has no ARN in DescribeSourceServers"),
            "check that the server exists in the target account and region, then `retry` this step",
        ))
    })?;
    let source = ctx.clients.source.clone();
    let outcome = ctx
        .call(
            &call,
            // After an ambiguous error: look for A2 in the origin now.
            async |_: &mut StepCtx<'_>| -> Result<Found, Halt> {
                let servers = source.list_source_servers().await?;
                Ok(match linked_a2(&servers, Some(&b1_arn)) {
                    Some(a2) => Found::TookEffect(serde_json::json!({ "reversedDirectionSourceServerArn": a2.arn.clone().unwrap_or_default() })),
                    None => Found::NoEffect("no source server in the origin is linked to B1".to_string()),
                })
            },
            async || {
                let called = target.reverse_replication(&b2).await?;
                Ok(called.map(|arn| serde_json::json!({ "reversedDirectionSourceServerArn": arn })))
            },
        )
        .await?;
    let arn = outcome.response["reversedDirectionSourceServerArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ctx.say(format!(
        "{b1}: ReverseReplication on {b2}: A2 {}",
        a2_id_of(&arn)
    ));
    Ok((arn, "reverse_replication"))
}

/// The ARN of the A2 linked to B1 among the origin's servers listed before the call.
fn ctx_free_list(
    existing: &Option<SourceServer>,
    origin_servers: &[SourceServer],
    b1_arn: Option<&str>,
) -> Option<String> {
    existing
        .as_ref()
        .or_else(|| linked_a2(origin_servers, b1_arn))
        .map(|a2| a2.arn.clone().unwrap_or_default())
}

/// Intent -> StartReplication(A2) -> effect, for an A2 a failback drill left stopped. An open
/// intent is reconciled by A2's state: replicating means the call took effect.
async fn restart(ctx: &mut StepCtx<'_>, a2: &SourceServer) -> Result<(), Halt> {
    let source = ctx.clients.source.clone();
    // The caller saw A2 STOPPED just now, so an open intent's call had no effect: send it
    // under that intent. (Had it taken effect, A2 would replicate, see [`reconcile_restart`].)
    ctx.call(
        &start_call(&source, &a2.id),
        async |_: &mut StepCtx<'_>| Ok(Found::Resend),
        async || {
            let called = source.start_replication(&a2.id).await?;
            Ok(called.map(|_| serde_json::json!({ "sourceServerID": a2.id })))
        },
    )
    .await?;
    ctx.say(format!(
        "A2 {} was stopped (a failback drill); StartReplication",
        a2.id
    ));
    Ok(())
}

fn start_call(source: &crate::aws::SideClients, a2: &str) -> Call {
    Call::on(
        source,
        format!("start-replication/{a2}"),
        "drs:StartReplication",
        serde_json::json!({ "sourceServerID": a2 }),
    )
}

/// A StartReplication of this step left open by a crash, on an A2 that replicates now: the call
/// took effect. Returns whether there was one.
async fn reconcile_restart(ctx: &mut StepCtx<'_>, a2: &SourceServer) -> Result<bool, Halt> {
    let source = ctx.clients.source.clone();
    let response = serde_json::json!({ "sourceServerID": a2.id, "found_by": "DescribeSourceServers", "state": a2.replication_state });
    let outcome = ctx
        .settle(&start_call(&source, &a2.id), async |_: &mut StepCtx<'_>| {
            Ok(Found::TookEffect(response.clone()))
        })
        .await?;
    Ok(outcome.is_some_and(|o| o.how == How::Reconciled))
}

/// Sets each A2's launch settings before anything launches from it (real-aws-gaps.md 4: a new
/// A2 gets the origin's default launch settings, and A4 can land outside the failback target
/// group's VPC): a new version of A2's EC2 launch template from its default one, with the
/// subnet of `[failback] subnet_id` (else A1's), and the security groups and instance type of
/// `[failback]` when set; that version made the default (DRS launches the default version);
/// with an instance type, right-sizing turned off in A2's DRS launch configuration so that the
/// type applies. Each call is durable: after a crash the new version is found again by its
/// description, the default version by DescribeLaunchTemplateVersions, and the right-sizing
/// by GetLaunchConfiguration.
async fn set_launch(
    ctx: &mut StepCtx<'_>,
    out: &mut ReversedReplicationOutput,
) -> Result<(), Halt> {
    let settings = ctx.runbook.failback.clone();
    let origin = ctx.clients.source.clone();
    let a1_subnets: BTreeMap<String, String> = if settings.subnet_id.is_some() {
        BTreeMap::new()
    } else {
        let a1s: Vec<String> = out
            .servers
            .values()
            .filter_map(|s| s.a1_instance_id.clone())
            .collect();
        retry::read(ctx, || origin.describe_instances(&a1s))
            .await?
            .into_iter()
            .filter_map(|i| Some((i.instance_id, i.subnet_id?)))
            .collect()
    };
    for b1 in out.servers.keys().cloned().collect::<Vec<_>>() {
        let server = &out.servers[&b1];
        if server.launch.is_some() {
            continue;
        }
        let a2 = server.a2_id.clone().expect("every A2 exists by now");
        let subnet = settings.subnet_id.clone().or_else(|| {
            server
                .a1_instance_id
                .as_ref()
                .and_then(|a1| a1_subnets.get(a1).cloned())
        });
        let Some(subnet_id) = subnet else {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "{b1}: no subnet for A2 {a2}: the instance B1 protected ({}) is not found in account {} ({})",
                    server.a1_instance_id.as_deref().unwrap_or("none named"),
                    origin.account_id,
                    origin.region
                ),
                "set `[failback] subnet_id` to a subnet of the failback target group's VPC, then `retry` this step",
            )));
        };
        let config = retry::read(ctx, || origin.get_launch_configuration(&a2)).await?;
        let template = config.ec2_launch_template_id.ok_or_else(|| {
            Halt::Failed(StepFailure::new(
                format!("{b1}: DRS names no EC2 launch template for A2 {a2}"),
                "check A2's launch settings in the DRS console of the origin, then `retry` this step",
            ))
        })?;
        let mut launch = A2Launch {
            launch_template_id: template.clone(),
            version: 0,
            subnet_id,
            security_group_ids: settings.security_group_ids.clone(),
            instance_type: settings.instance_type.clone(),
        };
        launch.version = new_template_version(ctx, &b1, &a2, &launch).await?;
        let version = launch.version;
        let call = Call::on(
            &origin,
            format!("default-version/{a2}"),
            "ec2:ModifyLaunchTemplate",
            serde_json::json!({ "launchTemplateId": template, "defaultVersion": version }),
        );
        ctx.call(
            &call,
            // An open intent: the version is the default already, or the call is sent.
            async |ctx: &mut StepCtx<'_>| {
                let defaults = retry::read(ctx, || origin.default_launch_template_versions()).await?;
                Ok(
                    if defaults
                        .iter()
                        .any(|v| v.launch_template_id == template && v.version == version)
                    {
                        Found::TookEffect(serde_json::json!({ "defaultVersion": version, "found_by": "DescribeLaunchTemplateVersions $Default" }))
                    } else {
                        Found::Resend
                    },
                )
            },
            async || {
                let called = origin
                    .set_default_launch_template_version(&template, version)
                    .await?;
                Ok(called.map(|_| serde_json::json!({ "defaultVersion": version })))
            },
        )
        .await?;
        if launch.instance_type.is_some() {
            let call = Call::on(
                &origin,
                format!("right-sizing/{a2}"),
                "drs:UpdateLaunchConfiguration",
                serde_json::json!({ "sourceServerID": a2, "targetInstanceTypeRightSizingMethod": "NONE" }),
            );
            ctx.call(
                &call,
                async |ctx: &mut StepCtx<'_>| {
                    let config = retry::read(ctx, || origin.get_launch_configuration(&a2)).await?;
                    Ok(if config.right_sizing.as_deref() == Some("NONE") {
                        Found::TookEffect(serde_json::json!({ "targetInstanceTypeRightSizingMethod": "NONE", "found_by": "GetLaunchConfiguration" }))
                    } else {
                        Found::Resend
                    })
                },
                async || {
                    let called = origin.turn_off_right_sizing(&a2).await?;
                    Ok(called.map(|m| serde_json::json!({ "targetInstanceTypeRightSizingMethod": m })))
                },
            )
            .await?;
        }
        ctx.say(format!(
            "{b1}: A2 {a2} launches into {}{}{} (launch template {template} version {version})",
            launch.subnet_id,
            launch
                .instance_type
                .as_deref()
                .map(|t| format!(" as {t}"))
                .unwrap_or_default(),
            launch
                .security_group_ids
                .as_ref()
                .map(|g| format!(" with {}", g.join(", ")))
                .unwrap_or_default(),
        ));
        out.servers.get_mut(&b1).expect("listed").launch = Some(launch);
        ctx.save(&*out).await?;
    }
    Ok(())
}

/// Intent -> CreateLaunchTemplateVersion -> effect; answers the new version's number. An open
/// intent is reconciled by the template's latest version: this run's if its description is
/// this call's.
async fn new_template_version(
    ctx: &mut StepCtx<'_>,
    b1: &str,
    a2: &str,
    launch: &A2Launch,
) -> Result<i64, Halt> {
    let origin = ctx.clients.source.clone();
    let description = format!("drs-runbook {} failback of {b1}", ctx.run.id);
    let call = Call::on(
        &origin,
        format!("launch-template/{a2}"),
        "ec2:CreateLaunchTemplateVersion",
        serde_json::json!({
            "launchTemplateId": launch.launch_template_id,
            "sourceVersion": "$Default",
            "versionDescription": description,
            "subnetId": launch.subnet_id,
            "securityGroupIds": launch.security_group_ids,
            "instanceType": launch.instance_type,
        }),
    )
    .reconciling_ambiguous();
    let template = launch.launch_template_id.clone();
    let outcome = ctx
        .call(
            &call,
            async |ctx: &mut StepCtx<'_>| {
                let (version, found) =
                    retry::read(ctx, || origin.latest_launch_template_version(&template)).await?;
                Ok(if found == description {
                    Found::TookEffect(serde_json::json!({ "versionNumber": version, "found_by": "DescribeLaunchTemplateVersions $Latest" }))
                } else {
                    Found::Resend
                })
            },
            async || {
                let called = origin
                    .create_launch_template_version(
                        &template,
                        &description,
                        &launch.subnet_id,
                        launch.security_group_ids.as_deref(),
                        launch.instance_type.as_deref(),
                    )
                    .await?;
                Ok(called.map(|n| serde_json::json!({ "versionNumber": n })))
            },
        )
        .await?;
    Ok(outcome.response["versionNumber"]
        .as_i64()
        .unwrap_or_default())
}

/// Polls the A2s (one DescribeSourceServers for the wave) until every one is CONTINUOUS with
/// its lag within the RPO.
async fn wait_ready(
    ctx: &mut StepCtx<'_>,
    out: &mut ReversedReplicationOutput,
) -> Result<(), Halt> {
    let ids: Vec<String> = out
        .servers
        .values()
        .filter_map(|s| s.a2_id.clone())
        .collect();
    let rpo = ctx.runbook.rpo();
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(30));
    let mut last = String::new();
    loop {
        let a2s = ctx.clients.source.describe_source_servers(&ids).await?;
        let mut ready = 0;
        let mut broken = Vec::new();
        for (b1, s) in out.servers.iter_mut() {
            let Some(a2) = a2s.iter().find(|a| Some(&a.id) == s.a2_id.as_ref()) else {
                broken.push(format!(
                    "{b1}: A2 {} is missing from the origin",
                    s.a2_id.as_deref().unwrap_or("?")
                ));
                continue;
            };
            s.replication_state = a2.replication_state.clone();
            s.lag = a2.lag.clone();
            let lag = a2
                .lag
                .as_deref()
                .and_then(parse_iso_duration)
                .unwrap_or_default();
            let state = a2.replication_state.as_deref().unwrap_or("unknown");
            if state == "CONTINUOUS" && rpo.is_none_or(|rpo| lag <= rpo) {
                ready += 1;
                s.ready_at
                    .get_or_insert_with(|| ctx.clock.now().to_rfc3339());
            } else if matches!(state, "STOPPED" | "DISCONNECTED" | "STALLED") {
                broken.push(format!("{b1}: A2 {} is {state}", a2.id));
            }
        }
        if !broken.is_empty() {
            ctx.save(&*out).await?;
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "reversed replication is not progressing: {}",
                    broken.join("; ")
                ),
                format!(
                    "check the A2 servers in the DRS console of account {} ({}) and the network from the recovery instances to the DRS endpoint there (TCP 443), then `retry` this step",
                    ctx.clients.source.account_id, ctx.clients.source.region
                ),
            )));
        }
        let states: Vec<String> = out
            .servers
            .values()
            .map(|s| {
                format!(
                    "{} {}",
                    s.a2_id.as_deref().unwrap_or("?"),
                    s.replication_state.as_deref().unwrap_or("unknown")
                )
            })
            .collect();
        let line = format!(
            "{ready}/{} A2 ready ({})",
            out.servers.len(),
            states.join(", ")
        );
        if line != last {
            ctx.say(&line);
            ctx.save(&*out).await?;
            last = line.clone();
        }
        if ready == out.servers.len() {
            return Ok(());
        }
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        if waited > READY_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "reversed replication did not become ready within {} hours: {line}",
                    READY_DEADLINE.as_secs() / 3600
                ),
                "check replication of the A2 servers in the origin's DRS console (lag, backlog, staging network), then `retry` this step",
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}

// ---------------------------------------------------------------- compensation
//
// `undo:<key>` of a rollback run (see [`super::compensate`]): StopReplication of each A2
// the step created, reconciled or adopted (origin).

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
pub(crate) async fn compensate(ctx: &mut StepCtx<'_>, undone: &Undone) -> Result<(), Halt> {
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
            super::failback_cleanup::stop_replication(ctx, &origin, &a2, "A2").await?;
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
    Ok(ctx
        .journal
        .step_called(&undone.run_id, &undone.key, "drs:ReverseReplication")
        .await?)
}
