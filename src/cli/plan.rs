//! `plan <RUNBOOK>`: a dry run. The steps in order, the StartRecovery batches, and the records
//! and target groups that would change; no database, no change anywhere.
//!
//! One optional section reads AWS (`--sim`: the simulator): each listed server's launch
//! settings (`launchDisposition`, `recoveryMode`, right-sizing, the launch template's instance
//! type and subnet, and what preflight would find wrong with them), with read calls only, in
//! the account and region the operation recovers into. Unreachable, refused or slower than
//! [`READ_TIMEOUT`], they are shown as "not read" and `plan` still succeeds; `--offline` makes
//! no AWS call at all.

use std::path::PathBuf;
use std::time::Duration;

use super::{Cli, CliError, Output, exit, session};
use crate::engine::plan::{self, Operation, PlanOptions};
use crate::runbook::Runbook;
use crate::steps::launch_settings::{self, LaunchSettings, Severity};

/// How long `plan` waits for the launch settings before showing them as not read.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The value shown for a setting that was not read.
const NOT_READ: &str = "not read";

#[derive(Debug, clap::Args)]
pub struct Args {
    pub runbook: PathBuf,
    #[arg(long, value_enum, default_value_t = Operation::Failover)]
    pub operation: Operation,
    /// Drill: plan without the cleanup step.
    #[arg(long)]
    pub keep: bool,
    /// Failback: plan a failback drill (no traffic moved, cleaned up at the end).
    #[arg(long)]
    pub drill: bool,
    /// Make no AWS call: the launch settings are shown as not read.
    #[arg(long)]
    pub offline: bool,
    /// Failover: planned (the source is up and fenced first) or unplanned.
    #[arg(long, value_enum, default_value_t = crate::store::Mode::Planned)]
    pub mode: crate::store::Mode,
}

pub async fn run(cli: &Cli, args: &Args) -> Result<u8, CliError> {
    if args.operation == Operation::Rollback {
        return Err(CliError::PlanRollback);
    }
    if args.drill && args.operation != Operation::Failback {
        return Err(CliError::PlanDrillWithoutFailback);
    }
    let failback = args.operation == Operation::Failback;
    let drill = args.operation == Operation::Drill || (failback && args.drill);
    let loaded = crate::runbook::load(&args.runbook)?;
    let runbook = loaded.runbook;
    let options = PlanOptions {
        keep: args.keep,
        drill: args.drill,
        mode: args.mode,
    };
    let steps = plan::plan(args.operation, &runbook, &options);
    // The fence stops every source instance (A1) in the source account and region.
    let fence = plan::fences_source(args.operation, &runbook, &options).then(|| {
        serde_json::json!({ "account_id": runbook.source.account_id, "region": runbook.source.region, "timeout_seconds": runbook.failover.fence_timeout.as_secs() })
    });
    let batches: Vec<serde_json::Value> = plan::wave_order(&runbook)
        .into_iter()
        .flat_map(|wave| {
            let servers = runbook.waves.iter().find(|w| w.name == wave).map(|w| w.servers.clone()).unwrap_or_default();
            servers
                .chunks(100)
                .enumerate()
                .map(|(i, chunk)| {
                    // A failback recovers each server's A2 in the source account and region.
                    let side = if failback { "source" } else { "target" };
                    // Convert ahead, boot in order: launched STOPPED, started after these waves.
                    let boot_after = crate::steps::boot::is_held(args.operation, &runbook, wave)
                        .then(|| runbook.wave(wave).map(|w| w.after.clone()).unwrap_or_default());
                    serde_json::json!({ "wave": wave, "batch": i + 1, "servers": chunk, "is_drill": drill, "side": side, "boot_after": boot_after })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    // A wave's `select` is resolved by preflight, in the run: plan (no AWS call) shows the tags.
    let selections: Vec<serde_json::Value> = runbook
        .waves
        .iter()
        .filter_map(|w| {
            let select = w.select.as_ref()?;
            Some(serde_json::json!({ "wave": w.name, "tags": select.tags, "resolved": "at run time" }))
        })
        .collect();
    let records: Vec<serde_json::Value> = if !drill {
        runbook
            .dns
            .iter()
            .map(|d| {
                let points_to = match &d.points_to {
                    crate::runbook::PointsTo::Wave(w) => format!("recovered instances of wave {w}"),
                    crate::runbook::PointsTo::LoadBalancer { dns_name, .. } => format!("alias to {dns_name}"),
                };
                serde_json::json!({ "hosted_zone_id": d.hosted_zone_id, "name": d.name, "type": d.record_type.as_str(), "points_to": points_to })
            })
            .collect()
    } else {
        Vec::new()
    };
    let target_groups: Vec<serde_json::Value> = runbook
        .load_balancers
        .iter()
        .filter_map(|l| {
            let arn = match args.operation {
                Operation::Failback if !args.drill => l.failback_target_group_arn.clone(),
                Operation::Failback => None,
                Operation::Drill => l.drill_target_group_arn.clone(),
                _ => Some(l.target_group_arn.clone()),
            }?;
            Some(serde_json::json!({ "wave": l.wave, "target_group_arn": arn, "port": l.port }))
        })
        .collect();
    let launch = launch_section(cli, args, &runbook, &loaded.text, drill).await;
    match cli.output {
        Output::Json => super::print_json(
            &serde_json::json!({ "runbook": runbook.name, "operation": args.operation.as_str(), "steps": steps, "fence_source": fence, "batches": batches, "selections": selections, "records": records, "target_groups": target_groups, "launch_settings": launch }),
        ),
        Output::Text => {
            println!(
                "plan: {} of {}",
                args.operation.as_str(),
                crate::terminal::safe(&runbook.name)
            );
            for (i, s) in steps.iter().enumerate() {
                let gate = if s.needs_approval { "  [approval]" } else { "" };
                let deps = if s.depends_on.is_empty() {
                    String::new()
                } else {
                    format!("  after {}", s.depends_on.join(", "))
                };
                println!("  {:>2}. {:<28}{gate}{deps}", i + 1, s.key);
            }
            if fence.is_some() {
                println!(
                    "  StopInstances on every server's source instance (A1) in {}/{}, then wait until replication has caught up (within {}s; opt out: [failover] fence_source = false)",
                    runbook.source.account_id,
                    runbook.source.region,
                    runbook.failover.fence_timeout.as_secs()
                );
            }
            for b in &batches {
                let held = match b["boot_after"].as_array() {
                    Some(after) => format!(
                        ", launched STOPPED and started once {} passed the health gate",
                        after
                            .iter()
                            .filter_map(|a| a.as_str())
                            .map(crate::terminal::safe)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => String::new(),
                };
                println!(
                    "  StartRecovery{} wave {} batch {}: {} server(s){}{held}",
                    if drill { " (drill)" } else { "" },
                    b["wave"].as_str().unwrap_or(""),
                    b["batch"],
                    b["servers"].as_array().map_or(0, Vec::len),
                    if failback {
                        " (their A2s, in the source account and region)"
                    } else {
                        ""
                    }
                );
            }
            for (wave, select) in runbook
                .waves
                .iter()
                .filter_map(|w| w.select.as_ref().map(|s| (w, s)))
            {
                let tags = select
                    .tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "  wave {}: {} listed server(s), plus those selected by tags {{{}}}: resolved at run time",
                    crate::terminal::safe(&wave.name),
                    wave.servers.len(),
                    crate::terminal::safe(&tags)
                );
            }
            for r in &records {
                println!(
                    "  UPSERT {} {} in {} -> {}",
                    r["name"].as_str().unwrap_or(""),
                    r["type"].as_str().unwrap_or(""),
                    r["hosted_zone_id"].as_str().unwrap_or(""),
                    r["points_to"].as_str().unwrap_or("")
                );
            }
            for t in &target_groups {
                println!(
                    "  register recovered instances of wave {} in {}",
                    t["wave"].as_str().unwrap_or(""),
                    t["target_group_arn"].as_str().unwrap_or("")
                );
            }
            print_launch_section(&launch);
            println!(
                "no change was made ({})",
                if args.offline {
                    "plan made no AWS call"
                } else {
                    "plan only reads"
                }
            );
        }
    }
    Ok(exit::SUCCEEDED)
}

/// The launch settings section: `{"status": "read" | "not read", "reason", "account",
/// "region", "servers": [{"wave", "source_server_id", "launch_disposition", "recovery_mode",
/// "right_sizing", "instance_type", "launch_template", "subnet_id", "vpc_id"}], "problems":
/// [{"source_server_id", "severity", "detail", "fix"}]}`; every value of a server not read is
/// "not read".
async fn launch_section(
    cli: &Cli,
    args: &Args,
    runbook: &Runbook,
    runbook_text: &str,
    drill: bool,
) -> serde_json::Value {
    let servers: Vec<(String, String)> = runbook
        .waves
        .iter()
        .flat_map(|w| w.servers.iter().map(|id| (w.name.clone(), id.clone())))
        .collect();
    let side = &runbook.target;
    let outcome = if args.offline {
        Err("--offline".to_string())
    } else if args.operation == Operation::Failback {
        Err("a failback launches the A2s in the source account, which exist once replication is reversed (failback preflight reads them)".to_string())
    } else {
        match tokio::time::timeout(
            READ_TIMEOUT,
            read_launch_settings(cli, runbook, runbook_text, &servers, drill),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "AWS did not answer within {}s",
                READ_TIMEOUT.as_secs()
            )),
        }
    };
    let not_read = |wave: &str, id: &str| {
        serde_json::json!({
            "wave": wave, "source_server_id": id, "launch_disposition": NOT_READ,
            "recovery_mode": NOT_READ, "right_sizing": NOT_READ, "instance_type": NOT_READ,
            "launch_template": NOT_READ, "subnet_id": NOT_READ, "vpc_id": NOT_READ,
        })
    };
    match outcome {
        Err(reason) => serde_json::json!({
            "status": NOT_READ, "reason": reason, "account": side.account_id, "region": side.region,
            "servers": servers.iter().map(|(w, id)| not_read(w, id)).collect::<Vec<_>>(),
            "problems": [],
        }),
        Ok(read) => {
            let first_waves = launch_settings::waves_without_dependencies(runbook);
            let problems: Vec<serde_json::Value> =
                launch_settings::findings(&read, &side.region, &first_waves)
                    .into_iter()
                    .map(|f| {
                        serde_json::json!({
                            "source_server_id": f.source_server_id,
                            "severity": match f.severity { Severity::Fail => "fail", Severity::Warn => "warn" },
                            "detail": f.detail, "fix": f.fix,
                        })
                    })
                    .collect();
            let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_string());
            let servers: Vec<serde_json::Value> = read
                .servers
                .iter()
                .map(|s| match &s.unread {
                    Some(_) => not_read(&s.wave, &s.source_server_id),
                    None => serde_json::json!({
                        "wave": s.wave, "source_server_id": s.source_server_id,
                        "launch_disposition": shown(&s.launch_disposition),
                        "recovery_mode": shown(&s.recovery_mode),
                        "right_sizing": shown(&s.right_sizing),
                        "instance_type": shown(&s.instance_type),
                        "launch_template": match (&s.launch_template_id, s.launch_template_version) {
                            (Some(id), Some(v)) => format!("{id} version {v}"),
                            (Some(id), None) => id.clone(),
                            _ => "none".to_string(),
                        },
                        "subnet_id": shown(&s.subnet_id),
                        "vpc_id": shown(&s.vpc_id),
                    }),
                })
                .collect();
            serde_json::json!({
                "status": "read", "account": side.account_id, "region": side.region,
                "servers": servers, "problems": problems,
            })
        }
    }
}

/// Reads the launch settings where the operation recovers (the target side), against the
/// target groups the waves register in (the drill ones in a drill).
async fn read_launch_settings(
    cli: &Cli,
    runbook: &Runbook,
    runbook_text: &str,
    servers: &[(String, String)],
    drill: bool,
) -> Result<LaunchSettings, String> {
    let groups: Vec<(String, String)> = runbook
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
    let cloud = session::connect(cli, runbook, runbook_text)
        .await
        .map_err(|e| e.render())?;
    let read = launch_settings::read(&cloud.clients.target, servers, &groups, None)
        .await
        .map_err(|e| e.summary());
    cloud.close();
    read
}

fn print_launch_section(launch: &serde_json::Value) {
    let text = |v: &serde_json::Value| crate::terminal::safe(v.as_str().unwrap_or("")).into_owned();
    let status = launch["status"].as_str().unwrap_or(NOT_READ);
    if status == NOT_READ {
        println!(
            "  launch settings: not read ({}); launchDisposition, recoveryMode and right-sizing are shown when AWS is reachable",
            text(&launch["reason"])
        );
    } else {
        println!(
            "  launch settings (read in {}/{}):",
            text(&launch["account"]),
            text(&launch["region"])
        );
    }
    for s in launch["servers"].as_array().into_iter().flatten() {
        if s["launch_disposition"] == NOT_READ {
            println!(
                "    wave {} {}: launchDisposition not read, recoveryMode not read, right-sizing not read",
                text(&s["wave"]),
                text(&s["source_server_id"]),
            );
            continue;
        }
        println!(
            "    wave {} {}: launchDisposition {}, recoveryMode {}, right-sizing {}, instance type {}, launch template {}, subnet {} in {}",
            text(&s["wave"]),
            text(&s["source_server_id"]),
            text(&s["launch_disposition"]),
            text(&s["recovery_mode"]),
            text(&s["right_sizing"]),
            text(&s["instance_type"]),
            text(&s["launch_template"]),
            text(&s["subnet_id"]),
            text(&s["vpc_id"]),
        );
    }
    for p in launch["problems"].as_array().into_iter().flatten() {
        println!(
            "    {} {}\n      fix: {}",
            text(&p["severity"]).to_uppercase(),
            text(&p["detail"]),
            text(&p["fix"])
        );
    }
}
