//! `preflight` of a failback: read-only checks on both sides before anything changes. The
//! failover's recovery instances (B2) run in the target account, DRS is initialized in the
//! origin (source) account and region, no failback of these servers is in progress (in the run
//! database or in DRS), the launch settings of the A2s that already exist launch into the VPC of
//! the failback target groups, the subnet the failback gives every A2 (`[failback] subnet_id`,
//! else A1's) is in that VPC too, and the failback target groups and hosted zones exist.

use super::launch_settings;
use super::preflight::{Check, PreflightOutput, launch_checks};
use super::{Halt, StepCtx, StepFailure, failback};
use crate::aws::AwsError;
use crate::store::{self, RunFilter, RunStatus};

fn check(
    name: impl Into<String>,
    status: &str,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        name: name.into(),
        status: status.into(),
        detail: detail.into(),
        fix,
    }
}

fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
    check(name, "pass", detail, None)
}

fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    check(name, "fail", detail, Some(fix.into()))
}

fn aws_fail(name: impl Into<String>, e: &AwsError) -> Check {
    fail(name, e.summary(), e.hint.clone())
}

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let mut checks = Vec::new();
    check_other_failbacks(ctx, &mut checks).await?;
    check_recovery_instances(ctx, &mut checks).await?;
    let launch_settings = check_a2_launch_settings(ctx, &mut checks).await?;
    if !ctx.run.options.drill {
        check_traffic_targets(ctx, &mut checks).await;
        check_failback_subnets(ctx, &mut checks).await?;
        check_cleanup_settings(&ctx.runbook.cleanup, &mut checks);
    }
    let servers: Vec<String> = ctx
        .runbook
        .waves
        .iter()
        .flat_map(|w| w.servers.clone())
        .collect();
    let refused = super::native_plans::check(&ctx.clients.target, &servers, &mut checks).await;
    let failed: Vec<&Check> = checks.iter().filter(|c| c.status == "fail").collect();
    ctx.say(format!(
        "{} check(s): {} passed, {} failed",
        checks.len(),
        checks.iter().filter(|c| c.status == "pass").count(),
        failed.len()
    ));
    for c in checks.iter().filter(|c| c.status != "pass") {
        ctx.say(format!(
            "{} {}: {}",
            c.status.to_uppercase(),
            c.name,
            c.detail
        ));
    }
    let failure = (!failed.is_empty()).then(|| {
        StepFailure::new(
            format!(
                "failback preflight failed: {}",
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
    let failure = failure.map(|f| StepFailure { refused, ..f });
    ctx.save(&PreflightOutput {
        checks,
        launch_settings,
        ..Default::default()
    })
    .await?;
    match failure {
        Some(f) => Err(Halt::Failed(f)),
        None => Ok(()),
    }
}

/// `[cleanup]` keys that contradict the re-protect: with B1 protecting A4, an old source left
/// running, or B1's replication stopped, would undo it.
fn check_cleanup_settings(cleanup: &crate::runbook::Cleanup, checks: &mut Vec<Check>) {
    let name = "cleanup settings";
    if !cleanup.reprotect {
        checks.push(pass(name, "no re-protect ([cleanup] reprotect = false)"));
        return;
    }
    let mut problems = Vec::new();
    if cleanup.source_instances == crate::runbook::SourceInstances::Keep {
        problems.push("[cleanup] source_instances = \"keep\" leaves the old source instances (A1) running while B1 is re-protected: if one is running, its agent replicates its stale disk into B1 again and the next failover recovers it");
    }
    if cleanup.stop_source_replication {
        problems.push("[cleanup] stop_source_replication = true stops B1, which the re-protect makes protect the failed-back instances (A4): production would be unprotected");
    }
    if problems.is_empty() {
        checks.push(pass(
            name,
            format!(
                "re-protect, then {} the old source instances",
                cleanup.source_instances.as_str()
            ),
        ));
    } else {
        checks.push(fail(
            name,
            problems.join("; "),
            "set `[cleanup] source_instances = \"stop\"` (or \"terminate\") and `stop_source_replication = false`, or `reprotect = false` to leave the re-protect to someone else",
        ));
    }
}

/// No other failback of this runbook is unfinished in the run database.
async fn check_other_failbacks(ctx: &StepCtx<'_>, checks: &mut Vec<Check>) -> Result<(), Halt> {
    let filter = RunFilter {
        runbook: Some(ctx.runbook.name.clone()),
        operation: Some(store::Operation::Failback),
        ..Default::default()
    };
    let mut conn = ctx.journal.db().pool().acquire().await.map_err(|e| {
        Halt::Failed(StepFailure::new(
            format!("failed to read the run database: {e}"),
            "check the database file, then resume the run",
        ))
    })?;
    let runs = store::runs::list(&mut conn, &filter).await.map_err(|e| {
        Halt::Failed(StepFailure::new(
            format!("failed to list the failback runs: {e}"),
            "check the database file, then resume the run",
        ))
    })?;
    let unfinished: Vec<String> = runs
        .iter()
        .filter(|r| r.id.to_string() != ctx.run.id)
        .filter(|r| {
            matches!(
                r.status,
                RunStatus::Pending
                    | RunStatus::Running
                    | RunStatus::Paused
                    | RunStatus::Failed
                    | RunStatus::Interrupted
            )
        })
        .map(|r| format!("{} ({})", r.id, r.status.as_str()))
        .collect();
    checks.push(if unfinished.is_empty() {
        pass(
            "runs:failback in progress",
            "no other failback of this runbook is unfinished",
        )
    } else {
        fail(
            "runs:failback in progress",
            format!(
                "another failback of {} is unfinished: {}",
                ctx.runbook.name,
                unfinished.join(", ")
            ),
            "finish it first: `drs-runbook resume <run>`, or `drs-runbook rollback <run>`",
        )
    });
    Ok(())
}

/// B2s running in the target; DRS initialized in the origin; no A3 launched from A2 already.
async fn check_recovery_instances(ctx: &StepCtx<'_>, checks: &mut Vec<Check>) -> Result<(), Halt> {
    let failover = failback::failover_run_id(ctx).await?;
    let recovered = failback::failed_over_all(ctx, &failover).await?;
    if recovered.is_empty() {
        checks.push(fail(
            "failover:recovery instances",
            format!("failover run {failover} recorded no recovery instance"),
            "fail back from a failover run that launched its servers (drs-runbook show <run>)",
        ));
        return Ok(());
    }
    let (target, source) = (&ctx.clients.target, &ctx.clients.source);
    let ids: Vec<String> = recovered
        .iter()
        .map(|r| r.recovery_instance_id.clone())
        .collect();
    let instances = match target.recovery_instances_by_id(&ids).await {
        Ok(found) => found,
        Err(e) => {
            checks.push(aws_fail("drs:recovery instances (target)", &e));
            return Ok(());
        }
    };
    for r in &recovered {
        let name = format!(
            "drs:{} recovery instance {}",
            r.source_server_id, r.recovery_instance_id
        );
        match instances.iter().find(|i| i.id == r.recovery_instance_id) {
            None => checks.push(fail(
                name,
                format!("the recovery instance no longer exists in account {} ({})", target.account_id, target.region),
                "fail back needs the failover's recovery instances; fail over again if they were terminated",
            )),
            Some(i) if i.ec2_state.as_deref() != Some("RUNNING") => checks.push(fail(
                name,
                format!("its EC2 instance is {}, not RUNNING", i.ec2_state.as_deref().unwrap_or("unknown")),
                "start the recovery instance's EC2 instance: reverse replication runs from it",
            )),
            Some(i) => checks.push(pass(name, format!("RUNNING (failback state {})", i.failback_state.as_deref().unwrap_or("unknown")))),
        }
    }
    // DRS must be initialized in the origin account and region: one read there tells.
    let origin_servers = match source.list_source_servers().await {
        Ok(servers) => {
            checks.push(pass(
                "drs:origin initialized",
                format!(
                    "DRS answers in account {} ({})",
                    source.account_id, source.region
                ),
            ));
            servers
        }
        Err(e) => {
            checks.push(aws_fail("drs:origin initialized", &e));
            return Ok(());
        }
    };
    let b1_ids: Vec<String> = recovered
        .iter()
        .map(|r| r.source_server_id.clone())
        .collect();
    let b1s = target.describe_source_servers(&b1_ids).await?;
    let b1_arns: Vec<String> = b1s.iter().filter_map(|s| s.arn.clone()).collect();
    let a2s: Vec<String> = origin_servers
        .iter()
        .filter(|s| {
            s.reversed_direction_arn
                .as_ref()
                .is_some_and(|a| b1_arns.contains(a))
        })
        .map(|s| s.id.clone())
        .collect();
    if a2s.is_empty() {
        checks.push(pass(
            "drs:failback in progress",
            "no reversed-direction server exists yet",
        ));
        return Ok(());
    }
    match source.recovery_instances_of(&a2s).await {
        Ok(a3s) if !a3s.is_empty() => checks.push(fail(
            "drs:failback in progress",
            format!(
                "failback instances already exist in account {} ({}): {}",
                source.account_id,
                source.region,
                a3s.iter().map(|i| format!("{} from {}", i.id, i.source_server_id.as_deref().unwrap_or("?"))).collect::<Vec<_>>().join(", ")
            ),
            "finish or roll back the failback that launched them, or terminate them (aws drs terminate-recovery-instances) if they are leftovers",
        )),
        Ok(_) => checks.push(pass("drs:failback in progress", format!("reversed-direction server(s) {} exist with no failback instance: the run adopts them", a2s.join(", ")))),
        Err(e) => checks.push(aws_fail("drs:failback in progress", &e)),
    }
    Ok(())
}

/// The launch settings of the A2s that exist already (replication reversed before the
/// failback: the run adopts them), read in the origin account and region against the failback
/// target groups, by the rules of a failover's preflight. An A2 made later, by
/// `reversed_replication`, is not checked here.
async fn check_a2_launch_settings(
    ctx: &StepCtx<'_>,
    checks: &mut Vec<Check>,
) -> Result<Option<launch_settings::LaunchSettings>, Halt> {
    let failover = failback::failover_run_id(ctx).await?;
    let (target, source) = (&ctx.clients.target, &ctx.clients.source);
    let mut wave_of_b1 = std::collections::BTreeMap::new();
    for wave in &ctx.runbook.waves {
        for r in failback::failed_over(ctx, &failover, &wave.name).await? {
            wave_of_b1.insert(r.source_server_id, wave.name.clone());
        }
    }
    let b1_ids: Vec<String> = wave_of_b1.keys().cloned().collect();
    let read_a2s = async {
        let b1s = target.describe_source_servers(&b1_ids).await?;
        let origin = source.list_source_servers().await?;
        let a2s = origin
            .iter()
            .filter_map(|a2| {
                let b1 = b1s
                    .iter()
                    .find(|b1| b1.arn.is_some() && b1.arn == a2.reversed_direction_arn)?;
                Some((wave_of_b1.get(&b1.id)?.clone(), a2.id.clone()))
            })
            .collect::<Vec<(String, String)>>();
        Ok::<_, AwsError>((a2s, origin))
    };
    let (a2s, origin) = match read_a2s.await {
        Ok(read) => read,
        Err(e) => {
            checks.push(aws_fail("launch settings (failback)", &e));
            return Ok(None);
        }
    };
    if a2s.is_empty() {
        checks.push(pass(
            "launch settings (failback)",
            "no reversed-direction server (A2) exists yet: reversed replication makes them and their launch templates",
        ));
        return Ok(None);
    }
    let groups: Vec<(String, String)> = if ctx.run.options.drill {
        Vec::new()
    } else {
        ctx.runbook
            .load_balancers
            .iter()
            .filter_map(|lb| Some((lb.wave.clone(), lb.failback_target_group_arn.clone()?)))
            .collect()
    };
    let read = match launch_settings::read(source, &a2s, &groups, Some(&origin)).await {
        Ok(read) => read,
        Err(e) => {
            checks.push(aws_fail("launch settings (failback)", &e));
            return Ok(None);
        }
    };
    let first_waves = launch_settings::waves_without_dependencies(ctx.runbook);
    let found = launch_settings::findings(&read, &source.region, &first_waves);
    checks.extend(launch_checks(&read, &found));
    Ok(Some(read))
}

/// The failback target groups (origin) and the hosted zones exist.
/// The subnet each wave's A4s launch into (`[failback] subnet_id`, else each old source
/// instance's, as `reversed_replication` sets them) is in the VPC of the wave's failback target
/// groups: ELBv2 refuses a target outside its group's VPC.
async fn check_failback_subnets(ctx: &StepCtx<'_>, checks: &mut Vec<Check>) -> Result<(), Halt> {
    let failover = failback::failover_run_id(ctx).await?;
    let (target, source) = (&ctx.clients.target, &ctx.clients.source);
    for lb in &ctx.runbook.load_balancers {
        let Some(group) = &lb.failback_target_group_arn else {
            continue;
        };
        let name = format!("failback subnet (wave {})", lb.wave);
        let b1s: Vec<String> = failback::failed_over(ctx, &failover, &lb.wave)
            .await?
            .into_iter()
            .map(|r| r.source_server_id)
            .collect();
        let read = async {
            let group_vpc = source.target_group_vpc(group).await?.flatten();
            // (subnet, its VPC if it exists, whose subnet it is)
            let subnets: Vec<(String, Option<String>, String)> =
                match &ctx.runbook.failback.subnet_id {
                    Some(subnet) => {
                        let found = source
                            .describe_subnets(std::slice::from_ref(subnet))
                            .await?;
                        let vpc = found.first().map(|s| s.vpc_id.clone());
                        vec![(subnet.clone(), vpc, "[failback] subnet_id".to_string())]
                    }
                    None => {
                        let a1s: Vec<String> = target
                            .describe_source_servers(&b1s)
                            .await?
                            .into_iter()
                            .filter_map(|b1| b1.aws_instance_id)
                            .collect();
                        source
                            .describe_instances(&a1s)
                            .await?
                            .into_iter()
                            .filter_map(|a1| {
                                let whose = format!("old source instance {}", a1.instance_id);
                                Some((a1.subnet_id?, a1.vpc_id, whose))
                            })
                            .collect()
                    }
                };
            Ok::<_, AwsError>((group_vpc, subnets))
        };
        let (group_vpc, subnets) = match read.await {
            Ok(read) => read,
            Err(e) => {
                checks.push(aws_fail(name, &e));
                continue;
            }
        };
        let Some(group_vpc) = group_vpc else {
            continue; // a missing group is the target group check's finding
        };
        let wrong: Vec<String> = subnets
            .iter()
            .filter(|(_, vpc, _)| vpc.as_deref() != Some(group_vpc.as_str()))
            .map(|(subnet, vpc, whose)| match vpc {
                Some(vpc) => format!("{subnet} ({whose}) is in {vpc}"),
                None => format!(
                    "{subnet} ({whose}) does not exist in account {} ({})",
                    source.account_id, source.region
                ),
            })
            .collect();
        if wrong.is_empty() {
            checks.push(pass(
                name,
                format!(
                    "A4 launches in {group_vpc}, the VPC of {group}: {}",
                    subnets
                        .iter()
                        .map(|(s, _, _)| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        } else {
            checks.push(fail(
                name,
                format!(
                    "A4 would launch outside {group_vpc}, the VPC of failback target group {group}: subnet {}; ELBv2 refuses a target outside the group's VPC",
                    wrong.join(", subnet ")
                ),
                format!(
                    "set `[failback] subnet_id` to a subnet of {group_vpc} (aws ec2 describe-subnets --filters Name=vpc-id,Values={group_vpc} --region {})",
                    source.region
                ),
            ));
        }
    }
    Ok(())
}

async fn check_traffic_targets(ctx: &StepCtx<'_>, checks: &mut Vec<Check>) {
    let source = &ctx.clients.source;
    for arn in ctx
        .runbook
        .load_balancers
        .iter()
        .filter_map(|lb| lb.failback_target_group_arn.clone())
    {
        let name = format!("elbv2:{}", arn.rsplit(':').next().unwrap_or(&arn));
        match source.target_group_exists(&arn).await {
            Ok(true) => checks.push(pass(name, "exists")),
            Ok(false) => checks.push(fail(
                name,
                format!(
                    "target group {arn} does not exist in account {}",
                    source.account_id
                ),
                "check failback_target_group_arn in the runbook's [[load_balancer]]",
            )),
            Err(e) => checks.push(aws_fail(name, &e)),
        }
    }
    for record in &ctx.runbook.dns {
        let clients = ctx.clients.side(record.account);
        let name = format!("route53:{} {}", record.name, record.record_type.as_str());
        match clients.hosted_zone_exists(&record.hosted_zone_id).await {
            Ok(true) => checks.push(pass(name, "zone exists")),
            Ok(false) => checks.push(fail(
                name,
                format!("hosted zone {} does not exist in account {}", record.hosted_zone_id, clients.account_id),
                "check hosted_zone_id and which account owns the zone (`account` of the [[dns]] entry)",
            )),
            Err(e) => checks.push(aws_fail(name, &e)),
        }
    }
}
