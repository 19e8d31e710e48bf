//! `history`: the runs in the database, newest first, filtered by runbook, operation, status
//! and date, with the links between runs (a failback and its failover, a rollback and its run);
//! `history --trend <RUNBOOK>`: the RTO/RPO of the last drills against the objectives.

use chrono::{DateTime, NaiveDate, Utc};

use super::report::report_error;
use super::{Cli, CliError, Output, exit, session};
use crate::report::{self, trend};
use crate::store::{self, Operation, RunFilter, RunStatus, RunSummary};
use crate::terminal::safe;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only runs of this runbook (its `name`).
    #[arg(long)]
    pub runbook: Option<String>,
    /// Only this operation: failover, drill, failback or rollback.
    #[arg(long)]
    pub operation: Option<String>,
    /// Only runs in this status: succeeded, failed, paused, interrupted, running, ...
    #[arg(long)]
    pub status: Option<String>,
    /// Only runs created on or after this date (YYYY-MM-DD, UTC) or time (RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Instead of the runs: the RTO/RPO of this runbook's last drills against its objectives.
    #[arg(long, value_name = "RUNBOOK", conflicts_with_all = ["runbook", "operation", "status", "since"])]
    pub trend: Option<String>,
}

/// A value of a persisted enum given on the command line.
fn parse_enum<T: std::str::FromStr<Err = store::UnknownValue>>(
    flag: &'static str,
    value: &str,
) -> Result<T, CliError> {
    value
        .parse()
        .map_err(|e: store::UnknownValue| CliError::InvalidChoice {
            flag,
            value: value.to_string(),
            expected: e.expected,
        })
}

/// `2026-01-31` (midnight UTC) or an RFC 3339 time.
pub fn parse_since(value: &str) -> Result<DateTime<Utc>, CliError> {
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| CliError::InvalidSince {
            value: value.to_string(),
        })
}

pub async fn run(cli: &Cli, args: &Args) -> Result<u8, CliError> {
    if let Some(runbook) = &args.trend {
        return show_trend(cli, runbook, args.limit).await;
    }
    let filter = RunFilter {
        runbook: args.runbook.clone(),
        operation: args
            .operation
            .as_deref()
            .map(|v| parse_enum::<Operation>("--operation", v))
            .transpose()?,
        status: args
            .status
            .as_deref()
            .map(|v| parse_enum::<RunStatus>("--status", v))
            .transpose()?,
        since: args.since.as_deref().map(parse_since).transpose()?,
        limit: Some(args.limit),
    };
    let db = session::open_db(cli).await?;
    let mut conn = db
        .pool()
        .acquire()
        .await
        .map_err(|e| CliError::Database(e.into()))?;
    let runs = store::runs::list(&mut conn, &filter)
        .await
        .map_err(|e| report_error(cli, e.into()))?;
    match cli.output {
        Output::Json => {
            let listed: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    let mut value = serde_json::to_value(r).unwrap_or_default();
                    value["linked_runs"] = serde_json::json!(children(&runs, r));
                    value
                })
                .collect();
            super::print_json(&serde_json::json!({ "runs": listed }));
        }
        Output::Text => print!("{}", table(&runs)),
    }
    Ok(exit::SUCCEEDED)
}

/// The listed runs that name `run` as their parent (its failbacks and rollbacks).
fn children(runs: &[RunSummary], run: &RunSummary) -> Vec<String> {
    runs.iter()
        .filter(|c| c.parent_run_id.as_ref() == Some(&run.id))
        .map(|c| c.id.to_string())
        .collect()
}

/// How a run relates to others: `failback of <id>`, `rolled back by <id>`, ...
fn link(runs: &[RunSummary], run: &RunSummary) -> String {
    let mut parts = Vec::new();
    if let Some(parent) = &run.parent_run_id {
        parts.push(format!("{} of {parent}", run.operation.as_str()));
    }
    for child in runs
        .iter()
        .filter(|c| c.parent_run_id.as_ref() == Some(&run.id))
    {
        let verb = match child.operation {
            Operation::Failback => "failed back by",
            Operation::Rollback => "rolled back by",
            _ => "followed by",
        };
        parts.push(format!("{verb} {}", child.id));
    }
    parts.join("; ")
}

fn figure(seconds: Option<f64>) -> String {
    seconds.map(report::human).unwrap_or_else(|| "-".to_owned())
}

/// The runs as a text table, newest first.
fn table(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "no run matches (hint: drop a filter, or check --db)\n".to_owned();
    }
    let mut out = format!(
        "{:<36}  {:<20}  {:<9}  {:<11}  {:<16}  {:>8}  {:>8}  {:<12}  {}\n",
        "run", "created", "operation", "status", "runbook", "RTO", "RPO", "operator", "linked"
    );
    for r in runs {
        out.push_str(&format!(
            "{:<36}  {:<20}  {:<9}  {:<11}  {:<16}  {:>8}  {:>8}  {:<12}  {}\n",
            r.id,
            report::when(&r.created_at),
            r.operation.as_str(),
            r.status.as_str(),
            safe(&r.runbook_name),
            figure(r.rto_seconds),
            figure(r.rpo_seconds),
            safe(&r.operator),
            link(runs, r)
        ));
    }
    out
}

async fn show_trend(cli: &Cli, runbook: &str, limit: u32) -> Result<u8, CliError> {
    let db = session::open_db(cli).await?;
    let points = trend::points(&db, runbook, limit.min(100))
        .await
        .map_err(|e| report_error(cli, e))?;
    match cli.output {
        Output::Json => {
            super::print_json(&serde_json::json!({ "runbook": runbook, "drills": points }))
        }
        Output::Text => print!("{}", trend::table(runbook, &points)),
    }
    Ok(exit::SUCCEEDED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_a_time_and_says_what_it_wants() {
        assert_eq!(
            parse_since("2026-01-31").unwrap().to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-01-31T03:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-01-31T01:00:00+00:00"
        );
        let err = parse_since("last tuesday").unwrap_err();
        assert_eq!(err.exit_code(), exit::INVALID_INPUT);
        assert!(err.render().contains("2026-01-31"), "{}", err.render());
    }

    #[test]
    fn an_unknown_operation_lists_the_known_ones() {
        let err = parse_enum::<Operation>("--operation", "failbak").unwrap_err();
        assert!(
            err.to_string()
                .contains("failover, drill, failback, rollback"),
            "{}",
            err
        );
    }
}
