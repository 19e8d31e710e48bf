//! `preflight`: read-only checks before anything changes. Every failed check says what to fix;
//! the run stops here, before any mutating call, when one fails.

use serde::{Deserialize, Serialize};

use super::{Halt, StepCtx, StepFailure, parse_iso_duration};
use crate::run::Mode;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PreflightOutput {
    pub checks: Vec<Check>,
    /// Unplanned failover: the data expected to be lost (now minus the oldest last-replicated
    /// time of the servers), reported before any approval gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_data_loss_seconds: Option<u64>,
}

/// The hint of a planned failover whose source does not answer.
const UNPLANNED_HINT: &str = "the source looks unreachable: if its region is down, fail over with `--mode unplanned` (replication state and lag become warnings, and the expected data loss is reported)";

/// An agent unseen this long means its source is not replicating (DRS marks it DISCONNECTED).
const AGENT_UNSEEN: std::time::Duration = std::time::Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    /// `pass`, `warn` or `fail`.
    pub status: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status: "pass".into(),
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status: "fail".into(),
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status: "warn".into(),
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let mut checks = Vec::new();
    let expected_data_loss_seconds = check_servers(ctx, &mut checks).await?;
    check_selections(ctx, &mut checks).await?;
    check_dns(ctx, &mut checks).await?;
    check_target_groups(ctx, &mut checks).await?;
    let failed: Vec<&Check> = checks.iter().filter(|c| c.status == "fail").collect();
    ctx.say(format!(
        "{} check(s): {} passed, {} failed",
        checks.len(),
        checks.iter().filter(|c| c.status == "pass").count(),
        failed.len()
    ));
    for c in &checks {
        if c.status != "pass" {
            ctx.say(format!(
                "{} {}: {}",
                c.status.to_uppercase(),
                c.name,
                c.detail
            ));
        }
    }
    let failure = (!failed.is_empty()).then(|| {
        StepFailure::new(
            format!(
                "{} check(s) failed: {}",
                failed.len(),
                failed
                    .iter()
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            failed
                .iter()
                .filter_map(|c| c.fix.clone())
                .collect::<Vec<_>>()
                .join("; "),
        )
    });
    ctx.save(&PreflightOutput {
        checks,
        expected_data_loss_seconds,
    })
    .await?;
    match failure {
        Some(f) => Err(Halt::Failed(f)),
        None => Ok(()),
    }
}

/// Every wave's `select` matches at least one source server of the recovery account and region:
/// a selection that matches nothing would recover nothing and "succeed".
async fn check_selections(ctx: &mut StepCtx<'_>, checks: &mut Vec<Check>) -> Result<(), Halt> {
    let selecting: Vec<_> = ctx
        .runbook
        .waves
        .iter()
        .filter_map(|w| w.select.as_ref().map(|s| (w.name.clone(), s.tags.clone())))
        .collect();
    if selecting.is_empty() {
        return Ok(());
    }
    let target = &ctx.clients.target;
    let servers = match target.list_source_servers().await {
        Ok(s) => s,
        Err(e) => {
            checks.push(fail("drs:select", e.summary(), e.hint.clone()));
            return Ok(());
        }
    };
    for (wave, tags) in selecting {
        let shown = format!(
            "{{{}}}",
            tags.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let matched = servers
            .iter()
            .filter(|s| tags.iter().all(|(k, v)| s.tags.get(k) == Some(v)))
            .count();
        let name = format!("select:{wave}");
        if matched == 0 {
            checks.push(fail(
                name,
                format!(
                    "wave {wave}: select tags {shown} matched no source server in {}/{}",
                    target.account_id, target.region
                ),
                "check the wave's `select.tags` against the tags of the source servers (`aws drs describe-source-servers` in the target account and region)",
            ));
        } else {
            checks.push(pass(
                name,
                format!("select tags {shown} matched {matched} source server(s)"),
            ));
        }
    }
    Ok(())
}

/// Replication state and lag of every server (warnings in an unplanned failover, with the
/// expected data loss returned), and the snapshot at `--point-in-time`.
async fn check_servers(
    ctx: &mut StepCtx<'_>,
    checks: &mut Vec<Check>,
) -> Result<Option<u64>, Halt> {
    let wanted: Vec<String> = ctx
        .runbook
        .waves
        .iter()
        .flat_map(|w| w.servers.iter().cloned())
        .collect();
    let target = &ctx.clients.target;
    let servers = match target.describe_source_servers(&wanted).await {
        Ok(s) => s,
        Err(e) => {
            checks.push(fail("drs:source servers", e.summary(), e.hint.clone()));
            return Ok(None);
        }
    };
    let rpo = ctx.runbook.rpo();
    let now = ctx.clock.now();
    // An unplanned failover goes on with whatever replicated last: state and lag are warnings.
    let unplanned = ctx.run.operation == crate::run::Operation::Failover
        && ctx.run.options.mode == Mode::Unplanned;
    let mut oldest_data: Option<chrono::DateTime<chrono::Utc>> = None;
    for id in &wanted {
        let name = format!("drs:{id}");
        let Some(server) = servers.iter().find(|s| &s.id == id) else {
            checks.push(fail(
                name,
                format!("source server {id} does not exist in account {} ({})", target.account_id, target.region),
                "check the server ID in the runbook against `aws drs describe-source-servers` in the target account and region",
            ));
            continue;
        };
        let state = server
            .replication_state
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let lag = server
            .lag
            .as_deref()
            .and_then(parse_iso_duration)
            .unwrap_or_default();
        let seen = server.last_seen.as_deref().and_then(crate::aws::parse_time);
        let unseen = seen
            .map(|t| (now - t).to_std().unwrap_or_default())
            .unwrap_or_default();
        // The data in the staging area is as of the last replication: now minus the lag.
        let data_at = now - chrono::Duration::from_std(lag).unwrap_or_default();
        oldest_data = Some(oldest_data.map_or(data_at, |o| o.min(data_at)));
        let problem = if state != "CONTINUOUS" {
            Some(format!("replication is {state}, not CONTINUOUS"))
        } else if rpo.is_some_and(|rpo| lag > rpo) {
            Some(format!(
                "replication lag {}s exceeds the RPO objective {}s",
                lag.as_secs(),
                rpo.map(|r| r.as_secs()).unwrap_or_default()
            ))
        } else if unseen > AGENT_UNSEEN {
            Some(format!("its agent was last seen {}s ago", unseen.as_secs()))
        } else {
            None
        };
        let source_down = state == "DISCONNECTED" || state == "STALLED" || unseen > AGENT_UNSEEN;
        match problem {
            None => checks.push(pass(name, format!("CONTINUOUS, lag {}s", lag.as_secs()))),
            Some(problem) if unplanned => checks.push(warn(
                name,
                format!(
                    "{problem}; recovering the data replicated up to {} (about {}s of data lost)",
                    data_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    lag.as_secs()
                ),
                "none: an unplanned failover recovers what was replicated last",
            )),
            Some(problem) if source_down => checks.push(fail(name, problem, UNPLANNED_HINT)),
            Some(problem) if state != "CONTINUOUS" => checks.push(fail(
                name,
                problem,
                "fix replication first (agent seen? staging network reachable? see the DRS console's data replication status)",
            )),
            Some(problem) => checks.push(fail(
                name,
                problem,
                "wait for replication to catch up; if the source is down, fail over with `--mode unplanned`",
            )),
        }
    }
    let expected = if unplanned {
        let loss = oldest_data
            .map(|t| (now - t).num_seconds().max(0) as u64)
            .unwrap_or_default();
        ctx.say(format!(
            "unplanned failover: expected data loss up to {}s (the oldest data replicated is from {})",
            loss,
            oldest_data
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "unknown".into())
        ));
        Some(loss)
    } else {
        None
    };
    if let Some(pit) = ctx.run.options.point_in_time {
        for id in &wanted {
            match target.snapshot_at_or_before(id, pit).await {
                Ok(Some(snapshot)) => checks.push(pass(
                    format!("drs:{id} snapshot"),
                    format!("{snapshot} at or before {pit}"),
                )),
                Ok(None) => checks.push(fail(
                    format!("drs:{id} snapshot"),
                    format!("no snapshot at or before {pit}"),
                    "choose a later --point-in-time",
                )),
                Err(e) => checks.push(fail(
                    format!("drs:{id} snapshot"),
                    e.summary(),
                    e.hint.clone(),
                )),
            }
        }
    }
    Ok(expected)
}

async fn check_dns(ctx: &mut StepCtx<'_>, checks: &mut Vec<Check>) -> Result<(), Halt> {
    if ctx.run.operation == crate::run::Operation::Drill {
        return Ok(());
    }
    for record in &ctx.runbook.dns {
        let clients = ctx.clients.side(record.account);
        let name = format!("route53:{} {}", record.name, record.record_type.as_str());
        match clients.hosted_zone_exists(&record.hosted_zone_id).await {
            Ok(true) => {}
            Ok(false) => {
                checks.push(fail(
                    name,
                    format!("hosted zone {} does not exist in account {}", record.hosted_zone_id, clients.account_id),
                    "check hosted_zone_id and which account owns the zone (`account` of the [[dns]] entry)",
                ));
                continue;
            }
            Err(e) => {
                checks.push(fail(name, e.summary(), e.hint.clone()));
                continue;
            }
        }
        match clients
            .record_sets(
                &record.hosted_zone_id,
                &record.name,
                record.record_type.as_str(),
            )
            .await
        {
            Ok(sets) if sets.is_empty() => checks.push(warn(
                name,
                "the record does not exist yet; the cutover will create it",
                "none needed if that is intended",
            )),
            Ok(sets) => checks.push(pass(
                name,
                format!("{} record set(s) captured at cutover", sets.len()),
            )),
            Err(e) => checks.push(fail(name, e.summary(), e.hint.clone())),
        }
    }
    Ok(())
}

async fn check_target_groups(ctx: &mut StepCtx<'_>, checks: &mut Vec<Check>) -> Result<(), Halt> {
    let drill = ctx.run.operation == crate::run::Operation::Drill;
    for lb in &ctx.runbook.load_balancers {
        // A drill touches only the drill target groups, never the production ones.
        let mut groups = match (&lb.drill_target_group_arn, drill) {
            (Some(arn), true) => vec![(&ctx.clients.target, arn.clone())],
            (None, true) => continue,
            (_, false) => vec![(&ctx.clients.target, lb.target_group_arn.clone())],
        };
        if !drill && let Some(failback) = &lb.failback_target_group_arn {
            if ctx.run.options.mode == Mode::Planned {
                groups.push((&ctx.clients.source, failback.clone()));
            } else {
                // Unplanned: the source region is never called.
                checks.push(warn(
                    format!("elbv2:{}", failback.rsplit(':').next().unwrap_or(failback)),
                    "not checked: source unavailable (--mode unplanned never calls the source region)",
                    "none",
                ));
            }
        }
        for (clients, arn) in groups {
            let name = format!("elbv2:{}", arn.rsplit(':').next().unwrap_or(&arn));
            match clients.target_group_exists(&arn).await {
                Ok(true) => checks.push(pass(name, "exists")),
                Ok(false) => checks.push(fail(
                    name,
                    format!("target group {arn} does not exist"),
                    "check the ARN in the runbook's [[load_balancer]]",
                )),
                Err(e) => checks.push(fail(name, e.summary(), e.hint.clone())),
            }
        }
    }
    Ok(())
}
