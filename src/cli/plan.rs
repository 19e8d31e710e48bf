//! `plan <RUNBOOK>`: a dry run. The steps in order, the StartRecovery batches, and the records
//! and target groups that would change. No AWS call at all, no database.

use std::path::PathBuf;

use super::{Cli, CliError, Output, exit};
use crate::engine::plan::{self, Operation, PlanOptions};

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
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8, CliError> {
    if args.operation == Operation::Rollback {
        return Err(CliError::PlanRollback);
    }
    if args.drill && args.operation != Operation::Failback {
        return Err(CliError::PlanDrillWithoutFailback);
    }
    let failback = args.operation == Operation::Failback;
    let drill = args.operation == Operation::Drill || (failback && args.drill);
    let runbook = crate::runbook::load(&args.runbook)?.runbook;
    let steps = plan::plan(
        args.operation,
        &runbook,
        &PlanOptions {
            keep: args.keep,
            drill: args.drill,
            ..Default::default()
        },
    );
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
    match cli.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({ "runbook": runbook.name, "operation": args.operation.as_str(), "steps": steps, "batches": batches, "selections": selections, "records": records, "target_groups": target_groups })
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
            println!("no change was made (plan makes no AWS call)");
        }
    }
    Ok(exit::SUCCEEDED)
}
