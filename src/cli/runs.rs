//! `approve`, `status` and `show`: operator actions on and views of stored runs.

use super::recover::{load as load_run, stored_runbook};
use super::session::{self, Session};
use super::{Cli, CliError, Output, exit, operate};
use crate::engine;
use crate::engine::journal::Journal;
use crate::engine::machine::StepStatus;
use crate::store::{self, Database};
use crate::terminal::{safe, safe_lines};

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    pub run_id: String,
    /// The step to approve (default: every step waiting for approval).
    #[arg(long)]
    pub step: Option<String>,
    /// Recorded in the audit trail with your name.
    #[arg(long)]
    pub comment: Option<String>,
    /// POST a JSON summary to this URL when the run ends or pauses.
    #[arg(long)]
    pub notify: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// A run to show; without it, the runs that are not finished.
    pub run_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    pub run_id: String,
}

pub async fn approve(cli: &Cli, args: &ApproveArgs) -> Result<u8, CliError> {
    let db = session::open_db(cli).await?;
    let run = load_run(&db, &args.run_id).await?;
    let run_id = run.id.clone();
    super::recover::verify_trail(&db, &run_id).await?;
    let runbook = stored_runbook(&run)?;
    let steps = Journal::new(
        db.clone(),
        run_id.clone(),
        None,
        engine::driver::operator(),
        crate::engine::clock::EngineClock::Real,
    )
    .steps()
    .await?;
    let waiting: Vec<_> = steps
        .iter()
        .filter(|s| {
            s.needs_approval
                && !s.approved
                && matches!(s.status, StepStatus::WaitingApproval | StepStatus::Pending)
        })
        .filter(|s| {
            args.step
                .as_ref()
                .is_none_or(|k| &s.key == k || s.kind.as_str() == k)
        })
        .collect();
    if waiting.is_empty() {
        return Err(CliError::NothingToApprove {
            run_id,
            step: args.step.clone(),
            gated: steps
                .iter()
                .filter(|s| s.needs_approval)
                .map(|s| s.key.clone())
                .collect(),
        });
    }
    let session = Session::connect(cli, db.clone(), &runbook, &run.runbook_text).await?;
    let cloud = &session.cloud;
    let journal = Journal::new(
        db.clone(),
        run_id.clone(),
        None,
        engine::driver::operator(),
        cloud.clock.clone(),
    );
    for step in &waiting {
        journal
            .approve(
                &step.key,
                &engine::driver::operator(),
                args.comment.as_deref(),
                cloud.clock.now(),
            )
            .await?;
        eprintln!("approved {} of run {run_id}", safe(&step.key));
    }
    eprintln!("run {run_id}");
    let result = engine::continue_run(&session.context(), &run_id, false).await;
    session.close();
    let (report, _) = result?;
    operate::finish(cli, &report, args.notify.as_deref()).await
}

pub async fn status(cli: &Cli, args: &StatusArgs) -> Result<u8, CliError> {
    let db = session::open_db(cli).await?;
    if let Some(run_id) = &args.run_id {
        return show_run(cli, &db, run_id, false).await;
    }
    let mut conn = db.pool().acquire().await?;
    let runs = store::runs::list(
        &mut conn,
        &store::runs::RunFilter {
            limit: Some(50),
            ..Default::default()
        },
    )
    .await?;
    let open: Vec<_> = runs
        .iter()
        .filter(|r| !matches!(r.status.as_str(), "succeeded" | "cancelled" | "rolled_back"))
        .collect();
    match cli.output {
        Output::Json => super::print_json(&serde_json::json!({ "runs": open })),
        Output::Text => {
            if open.is_empty() {
                println!(
                    "no run in progress, paused, interrupted or failed (see `drs-runbook history`)"
                );
            }
            for r in open {
                println!(
                    "{}  {:<9} {:<12} {}  {}",
                    r.id,
                    r.operation.as_str(),
                    r.status.as_str(),
                    safe(&r.runbook_name),
                    r.created_at.format("%Y-%m-%d %H:%M:%SZ")
                );
            }
        }
    }
    Ok(exit::SUCCEEDED)
}

pub async fn show(cli: &Cli, args: &ShowArgs) -> Result<u8, CliError> {
    let db = session::open_db(cli).await?;
    show_run(cli, &db, &args.run_id, true).await
}

async fn show_run(cli: &Cli, db: &Database, run_id: &str, detailed: bool) -> Result<u8, CliError> {
    let run = load_run(db, run_id).await?;
    let mut conn = db.pool().acquire().await?;
    let steps = store::steps::list(&mut conn, &run.id).await?;
    let effects = if detailed {
        store::effects::for_run(&mut conn, &run.id).await?
    } else {
        Vec::new()
    };
    match cli.output {
        Output::Json => {
            // The run's own fields at the top (`run_id` first among them), then its steps, as
            // a run command's result has them: one shape for a run wherever it is printed.
            let mut value = serde_json::to_value(&run).expect("runs serialise");
            value["steps"] = serde_json::json!(
                steps
                    .iter()
                    .map(store::steps::StepObject::from)
                    .collect::<Vec<_>>()
            );
            if detailed {
                value["effects"] = serde_json::to_value(&effects).expect("effects serialise");
            }
            super::print_json(&value);
        }
        Output::Text => {
            println!(
                "run {} ({} of {}, {} mode): {}",
                run.id,
                run.operation.as_str(),
                safe(&run.runbook_name),
                run.mode.as_str(),
                run.status.as_str()
            );
            println!(
                "  by {} on {}; created {}; runbook sha256 {}",
                safe(&run.operator),
                safe(&run.host),
                run.created_at.to_rfc3339(),
                run.runbook_sha256
            );
            if let Some(parent) = &run.parent_run_id {
                println!("  linked to run {parent}");
            }
            if let (Some(rto), true) = (run.rto_seconds, true) {
                println!("  RTO {}", engine::driver::human(rto));
            }
            if let Some(rpo) = run.rpo_seconds {
                println!("  RPO {}", engine::driver::human(rpo));
            }
            for s in &steps {
                let timing = match (s.started_at, s.finished_at) {
                    (Some(a), Some(b)) => format!(
                        "{} -> {} ({})",
                        a.format("%H:%M:%S"),
                        b.format("%H:%M:%S"),
                        engine::driver::human((b - a).num_milliseconds() as f64 / 1000.0)
                    ),
                    (Some(a), None) => format!("since {}", a.format("%H:%M:%S")),
                    _ => String::new(),
                };
                println!(
                    "  {:<28} {:<16} attempts {}  {timing}",
                    safe(&s.key),
                    s.status.as_str(),
                    s.attempts
                );
                if let Some(by) = &s.approved_by {
                    println!(
                        "      approved by {}{}",
                        safe(by),
                        s.approval_comment
                            .as_ref()
                            .map(|c| format!(": {}", safe(c)))
                            .unwrap_or_default()
                    );
                }
                if let Some(reason) = &s.skip_reason {
                    println!("      skipped: {}", safe(reason));
                }
                if let Some(error) = &s.error {
                    let text = serde_json::from_str::<crate::steps::StepFailure>(error)
                        .map(|f| f.to_string())
                        .unwrap_or_else(|_| error.clone());
                    println!("      error: {}", safe_lines(&text));
                }
            }
            if detailed {
                println!("  AWS calls that changed something:");
                for e in &effects {
                    println!(
                        "    {} {:<36} {:<10} {} {}",
                        e.created_at.format("%H:%M:%S"),
                        e.operation,
                        e.state.as_str(),
                        e.aws_request_id
                            .as_deref()
                            .map(|r| format!("request {}", safe(r)))
                            .unwrap_or_default(),
                        safe(&e.step_key)
                    );
                }
            }
            if let Some(error) = &run.error {
                println!("  error: {}", safe_lines(error));
            }
        }
    }
    Ok(exit::SUCCEEDED)
}
