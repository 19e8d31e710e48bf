//! `preflight`: read-only checks before anything changes. Every failed check says what to fix;
//! the run stops here, before any mutating call, when one fails.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::dns_cutover;
use super::launch_settings::{self, LaunchSettings, Severity};
use super::{Halt, StepCtx, StepFailure, parse_iso_duration};
use crate::aws::drs::SourceServer;
use crate::run::journal::JournalError;
use crate::run::{Mode, server_claim};
use crate::runbook::PointsTo;
use crate::store::StoreError;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PreflightOutput {
    pub checks: Vec<Check>,
    /// Unplanned failover: the data expected to be lost (now minus the oldest last-replicated
    /// time of the servers), reported before any approval gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_data_loss_seconds: Option<u64>,
    /// The servers of the waves that `select` by tags, as resolved by this preflight (read
    /// back through `StepCtx::wave_servers`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selected: BTreeMap<String, Vec<String>>,
    /// Each server's launch settings as read (DRS launch configuration, the launch template's
    /// default version, its subnet and VPC) and the VPCs of the waves' target groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_settings: Option<LaunchSettings>,
    /// When the launch settings were read (engine clock): the held waves' launch dispositions
    /// are taken from this reading while it is recent ([`super::boot::hold`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_settings_read_at: Option<String>,
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
    let selected = check_selections(ctx, &mut checks).await?;
    let (expected_data_loss_seconds, described) =
        check_servers(ctx, &selected, &mut checks).await?;
    check_dns(ctx, &mut checks).await?;
    check_dns_routing(ctx, &mut checks).await?;
    check_routing_controls(ctx, &mut checks).await;
    check_target_groups(ctx, &mut checks).await?;
    let launch_settings = check_launch_settings(ctx, &selected, &described, &mut checks).await;
    let launch_settings_read_at = launch_settings
        .as_ref()
        .map(|_| ctx.clock.now().to_rfc3339());
    let refused = claim_selected(ctx, &selected, &mut checks).await?;
    let run_servers = servers_of_run(ctx, &selected);
    let refused =
        super::native_plans::check(&ctx.clients.target, &run_servers, &mut checks).await || refused;
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
            {
                // One hint per distinct fix: 200 servers with the same problem say it once.
                let mut fixes: Vec<String> = Vec::new();
                for fix in failed.iter().filter_map(|c| c.fix.clone()) {
                    if !fixes.contains(&fix) {
                        fixes.push(fix);
                    }
                }
                fixes.join("; ")
            },
        )
    });
    let failure = failure.map(|f| StepFailure { refused, ..f });
    ctx.save(&PreflightOutput {
        checks,
        expected_data_loss_seconds,
        selected,
        launch_settings,
        launch_settings_read_at,
    })
    .await?;
    match failure {
        Some(f) => Err(Halt::Failed(f)),
        None => Ok(()),
    }
}

/// Resolves every wave's `select` (one DescribeSourceServers listing of the recovery account
/// and region; a server matches when every selector tag is equal) into the wave's listed
/// servers followed by the selected ones. A selection that matches nothing would recover
/// nothing and "succeed": a failed check. So is a server in two waves (selected by both, or
/// listed by one and selected by the other): it would be recovered twice.
async fn check_selections(
    ctx: &mut StepCtx<'_>,
    checks: &mut Vec<Check>,
) -> Result<BTreeMap<String, Vec<String>>, Halt> {
    let mut selected = BTreeMap::new();
    let selecting: Vec<_> = ctx
        .runbook
        .waves
        .iter()
        .filter_map(|w| w.select.clone().map(|s| (w, s)))
        .collect();
    if selecting.is_empty() {
        return Ok(selected);
    }
    let target = &ctx.clients.target;
    let servers = match target.list_source_servers().await {
        Ok(s) => s,
        Err(e) => {
            checks.push(fail("drs:select", e.summary(), e.hint.clone()));
            return Ok(selected);
        }
    };
    // Which wave each server belongs to, listed servers first.
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for wave in &ctx.runbook.waves {
        for server in &wave.servers {
            owner
                .entry(server.clone())
                .or_insert_with(|| wave.name.clone());
        }
    }
    for (wave, selection) in selecting {
        let shown = format!(
            "{{{}}}",
            selection
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let matched: Vec<String> = servers
            .iter()
            .filter(|s| selection.matches(&s.tags))
            .map(|s| s.id.clone())
            .collect();
        let name = format!("select:{}", wave.name);
        if matched.is_empty() {
            checks.push(fail(
                name,
                format!(
                    "wave {}: select tags {shown} matched no source server in {}/{}",
                    wave.name, target.account_id, target.region
                ),
                "check the wave's `select.tags` against the tags of the source servers (`aws drs describe-source-servers` in the target account and region)",
            ));
            continue;
        }
        let mut all = wave.servers.clone();
        let mut clashes = Vec::new();
        for id in &matched {
            match owner.get(id) {
                Some(other) if other == &wave.name => {}
                Some(other) => clashes.push(format!("{id} (wave {other})")),
                None => {
                    owner.insert(id.clone(), wave.name.clone());
                    all.push(id.clone());
                }
            }
        }
        if clashes.is_empty() {
            checks.push(pass(
                name,
                format!(
                    "select tags {shown} matched {} source server(s): {}",
                    matched.len(),
                    matched.join(", ")
                ),
            ));
        } else {
            checks.push(fail(
                name,
                format!(
                    "wave {}: select tags {shown} matched server(s) of another wave: {}",
                    wave.name,
                    clashes.join(", ")
                ),
                "a server belongs to one wave: narrow the `select.tags`, or take the server out of the other wave",
            ));
        }
        selected.insert(wave.name.clone(), all);
    }
    Ok(selected)
}

/// Every server of the run: the waves' listed servers and those their `select` resolved to.
fn servers_of_run(ctx: &StepCtx<'_>, selected: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    ctx.runbook
        .waves
        .iter()
        .flat_map(|w| selected.get(&w.name).unwrap_or(&w.servers))
        .cloned()
        .collect()
}

/// Claims the selected servers for the run, as the listed ones were claimed at its start, so
/// two runs never recover the same server. Returns whether another run holds one: a failed
/// check naming that run, and a refusal (exit 4).
async fn claim_selected(
    ctx: &mut StepCtx<'_>,
    selected: &BTreeMap<String, Vec<String>>,
    checks: &mut Vec<Check>,
) -> Result<bool, Halt> {
    if selected.is_empty() {
        return Ok(false);
    }
    let target = &ctx.clients.target;
    let resources: Vec<String> = selected
        .values()
        .flatten()
        .map(|id| server_claim(&target.account_id, &target.region, id))
        .collect();
    match ctx.journal.claim(&resources, ctx.clock.now()).await {
        Ok(()) => Ok(false),
        Err(JournalError::Store(e @ StoreError::ClaimConflict { .. })) => {
            let StoreError::ClaimConflict { resource, .. } = &e else {
                unreachable!("matched above")
            };
            checks.push(fail(
                format!("claim:{resource}"),
                e.to_string(),
                "wait for that run to end, or resume or cancel it",
            ));
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// Every server of every wave (listed, or selected as resolved above) exists, and its
/// replication state and lag (warnings in an unplanned failover, with the expected data loss
/// returned), and the snapshot at `--point-in-time`. Returns the servers as DescribeSourceServers
/// answered (none when it failed), for the launch settings check.
async fn check_servers(
    ctx: &mut StepCtx<'_>,
    selected: &BTreeMap<String, Vec<String>>,
    checks: &mut Vec<Check>,
) -> Result<(Option<u64>, Vec<SourceServer>), Halt> {
    let mut seen = std::collections::BTreeSet::new();
    let wanted: Vec<String> = ctx
        .runbook
        .waves
        .iter()
        .flat_map(|w| selected.get(&w.name).unwrap_or(&w.servers))
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect();
    let target = &ctx.clients.target;
    // An agent's "last seen" is measured from when the listing began: a listing of hundreds of
    // servers takes several pages, and the time it takes is not the agents' silence.
    let listed_at = ctx.clock.now();
    let servers = match target.describe_source_servers(&wanted).await {
        Ok(s) => s,
        Err(e) => {
            checks.push(fail("drs:source servers", e.summary(), e.hint.clone()));
            return Ok((None, Vec::new()));
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
            .map(|t| (listed_at - t).to_std().unwrap_or_default())
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
    Ok((expected, servers))
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

/// Each [[dns]] entry against the sets found under its name: the set the cutover writes exists
/// and can be written (see [`dns_cutover::plan_record`]), and an alias names its load balancer's
/// canonical hosted zone (DescribeLoadBalancers in the target region).
async fn check_dns_routing(ctx: &mut StepCtx<'_>, checks: &mut Vec<Check>) -> Result<(), Halt> {
    if ctx.run.operation == crate::run::Operation::Drill {
        return Ok(());
    }
    for record in &ctx.runbook.dns {
        let clients = ctx.clients.side(record.account);
        let name = format!("route53:{} {}", record.name, record.record_type.as_str());
        let routing = format!("{name} routing");
        // A failed read was reported by check_dns.
        if let Ok(sets) = clients
            .record_sets(
                &record.hosted_zone_id,
                &record.name,
                record.record_type.as_str(),
            )
            .await
        {
            match dns_cutover::plan_record(record, &sets, ctx.run.options.mode) {
                Ok(plan) => {
                    if record.set_identifier.is_some() {
                        checks.push(pass(
                            routing,
                            format!(
                                "{} set(s) of the policy group written at cutover",
                                plan.writes.len()
                            ),
                        ));
                    }
                }
                Err((problem, fix)) => checks.push(fail(routing, problem, fix)),
            }
        }
        if let PointsTo::LoadBalancer { dns_name, zone } = &record.points_to {
            let alias = format!("{name} alias");
            match ctx.clients.target.load_balancer_zone(dns_name).await {
                Ok(Some(canonical)) if canonical == *zone => {
                    checks.push(pass(alias, format!("{dns_name} is in hosted zone {zone}")));
                }
                Ok(Some(canonical)) => checks.push(fail(
                    alias,
                    format!("the load balancer {dns_name} has canonical hosted zone {canonical}, not {zone}: Route 53 refuses the alias"),
                    format!("set zone = \"{canonical}\" in points_to of the [[dns]] entry"),
                )),
                Ok(None) => checks.push(fail(
                    alias,
                    format!("no load balancer with DNS name {dns_name} in the target region ({})", ctx.clients.target.region),
                    "check points_to.load_balancer (DescribeLoadBalancers lists the DNS names)",
                )),
                Err(e) => checks.push(fail(alias, e.summary(), e.hint.clone())),
            }
        }
    }
    Ok(())
}

/// Each ARC routing control reads through one of its cluster endpoints (GetRoutingControlState).
async fn check_routing_controls(ctx: &mut StepCtx<'_>, checks: &mut Vec<Check>) {
    if ctx.run.operation == crate::run::Operation::Drill {
        return;
    }
    for control in &ctx.runbook.routing_controls {
        let name = format!(
            "arc:{}",
            control.arn.rsplit('/').next().unwrap_or(&control.arn)
        );
        match ctx
            .clients
            .side(control.account)
            .routing_control_state(&control.endpoints, &control.arn)
            .await
        {
            Ok(state) => checks.push(pass(
                name,
                format!("{state} now; the cutover sets it {}", control.state),
            )),
            Err(e) => checks.push(fail(name, e.summary(), e.hint.clone())),
        }
    }
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

/// Every server's launch settings, in the target account and region only (an unplanned
/// failover never calls the source): the launch template's subnet exists and is in the VPC of
/// the wave's target groups (the drill target group in a drill), `copyPrivateIp` has a subnet
/// that holds the IP; a STOPPED disposition in a wave without dependencies is a warning. Each
/// server gets one check naming what was read, or what is wrong with the fix.
async fn check_launch_settings(
    ctx: &StepCtx<'_>,
    selected: &BTreeMap<String, Vec<String>>,
    described: &[SourceServer],
    checks: &mut Vec<Check>,
) -> Option<LaunchSettings> {
    let drill = ctx.run.operation == crate::run::Operation::Drill;
    let servers: Vec<(String, String)> = ctx
        .runbook
        .waves
        .iter()
        .flat_map(|w| {
            selected
                .get(&w.name)
                .unwrap_or(&w.servers)
                .iter()
                .map(|id| (w.name.clone(), id.clone()))
        })
        .collect();
    let groups: Vec<(String, String)> = ctx
        .runbook
        .load_balancers
        .iter()
        .filter_map(|lb| {
            let arn = if drill {
                lb.drill_target_group_arn.clone()?
            } else {
                lb.target_group_arn.clone()
            };
            Some((lb.wave.clone(), arn))
        })
        .collect();
    let target = &ctx.clients.target;
    // Described moments ago by `check_servers`: not read again (none: that read failed).
    let described = (!described.is_empty()).then_some(described);
    let read = match launch_settings::read(target, &servers, &groups, described).await {
        Ok(read) => read,
        Err(e) => {
            checks.push(fail("launch settings", e.summary(), e.hint.clone()));
            return None;
        }
    };
    let first_waves = launch_settings::waves_without_dependencies(ctx.runbook);
    let found = launch_settings::findings(&read, &target.region, &first_waves);
    checks.extend(launch_checks(&read, &found));
    Some(read)
}

/// One check per server read: `launch:<server>` passing with what was read, or one check per
/// finding (fail or warn) with its fix.
pub(super) fn launch_checks(
    read: &LaunchSettings,
    found: &[launch_settings::Finding],
) -> Vec<Check> {
    let mut checks = Vec::new();
    for server in &read.servers {
        let name = format!("launch:{}", server.source_server_id);
        let mine: Vec<_> = found
            .iter()
            .filter(|f| f.source_server_id == server.source_server_id)
            .collect();
        if mine.is_empty() {
            checks.push(pass(name.clone(), launch_settings::summary(server)));
        }
        for f in mine {
            checks.push(match f.severity {
                Severity::Fail => fail(name.clone(), f.detail.clone(), f.fix.clone()),
                Severity::Warn => warn(name.clone(), f.detail.clone(), f.fix.clone()),
            });
        }
    }
    checks
}
