//! `audit verify [RUN_ID]`: recomputes the hash chain of one run's events (or of every run) and
//! reports the first broken link (exit 1), or confirms the chain and prints its final hash.

use super::report::{parse_run_id, report_error};
use super::{Cli, CliError, Output, exit, session};
use crate::report::{self, ChainVerdict};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit hash chain of a run (default: every run); exit 1 at the first break.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The run to verify (default: every run in the database).
    pub run_id: Option<String>,
}

pub async fn run(cli: &Cli, command: &AuditCommand) -> Result<u8, CliError> {
    match command {
        AuditCommand::Verify(args) => verify(cli, args).await,
    }
}

async fn verify(cli: &Cli, args: &VerifyArgs) -> Result<u8, CliError> {
    let run_id = args.run_id.as_deref().map(parse_run_id).transpose()?;
    let db = session::open_db(cli).await?;
    let verdicts = report::verify_chains(&db, run_id.as_ref())
        .await
        .map_err(|e| report_error(cli, e))?;
    let first_break = verdicts.iter().find(|v| !v.ok);
    match cli.output {
        Output::Json => {
            let value = serde_json::json!({
                "ok": first_break.is_none(),
                "runs": verdicts,
                "first_break": first_break,
            });
            super::print_json(&value);
        }
        Output::Text => {
            if verdicts.is_empty() {
                println!("no run in {}: nothing to verify", db.path().display());
            }
            for verdict in &verdicts {
                println!("{}", line(verdict));
            }
        }
    }
    match first_break {
        None => Ok(exit::SUCCEEDED),
        Some(v) => {
            let link = v
                .broken
                .as_ref()
                .map(|b| b.message.clone())
                .unwrap_or_default();
            eprintln!(
                "error: {link} (hint: the events from there on cannot be trusted; compare with a backup of the database or an exported final hash)"
            );
            Ok(exit::RUN_FAILED)
        }
    }
}

/// One run's verdict as a line of text.
fn line(v: &ChainVerdict) -> String {
    match (&v.broken, &v.final_hash) {
        (Some(b), _) if matches!(b.reason, crate::store::BreakReason::Seal { .. }) => format!(
            "run {} ({}): BROKEN: {}",
            v.run_id,
            crate::terminal::safe(&v.runbook_name),
            b.message
        ),
        (Some(b), _) => format!(
            "run {} ({}): BROKEN at event {}{}: {}",
            v.run_id,
            crate::terminal::safe(&v.runbook_name),
            b.event,
            match (&b.stored_kind, &b.stored_step) {
                (Some(kind), Some(step)) => format!(" ({kind} of step {step})"),
                (Some(kind), None) => format!(" ({kind})"),
                _ => String::new(),
            },
            b.reason
        ),
        (None, hash) => format!(
            "run {} ({}): intact, {} events, final hash {}",
            v.run_id,
            crate::terminal::safe(&v.runbook_name),
            v.events,
            hash.as_deref().unwrap_or("-")
        ),
    }
}
