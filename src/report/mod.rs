//! Reports for the auditor: what a run did, measured against the runbook's objectives, with a
//! verified audit trail.
//!
//! ```text
//!   store (runs, steps, effects, events::verify) ──► gather (the only I/O, here)
//!        ──► model::build (pure) ──► ReportData ──► markdown::render / json::render / html::render (pure)
//! ```
//!
//! Invariants:
//! - Gathering reads the store in one place ([`gather`]); nothing here calls AWS.
//! - Renderers are pure functions of [`ReportData`], unit-tested without a database.
//! - Every runbook- or operator-supplied string reaching HTML goes through [`html::escape`]
//!   (text, attributes and SVG alike); the HTML report loads nothing and runs no script.

pub mod html;
pub mod json;
pub mod markdown;
pub mod model;
pub mod svg;
pub mod trend;

use chrono::{DateTime, Utc};

pub use model::{ReportData, Verdict};

use crate::store::{
    self, ChainBreak, Database, Operation, RunFilter, RunId, StoreError, VerifiedChain,
};

/// How many past drills a drill's report charts.
pub const TREND_DRILLS: u32 = 12;

/// Errors while gathering a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "failed to read the database: {0} (hint: check --db and that no other process holds it exclusively)"
    )]
    Connection(#[from] sqlx::Error),
    /// A step output does not decode as its step's typed output: the report says nothing
    /// rather than something wrong (or empty) about it.
    #[error(
        "failed to report run {run_id}: the output of step {step} could not be read as a {what}: {source} (hint: the database was edited or written by another version; `drs-runbook show {run_id}` shows the stored output)"
    )]
    StepOutput {
        run_id: RunId,
        step: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A step of a kind this drs-runbook does not know (a database written by a newer one).
    #[error(
        "failed to report run {run_id}: step {step} has the unknown kind {kind:?} (hint: the database was written by a newer drs-runbook; upgrade)"
    )]
    UnknownStepKind {
        run_id: RunId,
        step: String,
        kind: String,
    },
}

/// The output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Json,
    Html,
}

impl Format {
    /// The name as given to `--format`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Md => "md",
            Format::Json => "json",
            Format::Html => "html",
        }
    }

    pub fn render(self, data: &ReportData) -> String {
        match self {
            Format::Md => markdown::render(data),
            Format::Json => json::render(data),
            Format::Html => html::render(data),
        }
    }
}

/// Reads everything the report of `run_id` says from the store, in one place.
pub async fn gather(
    db: &Database,
    run_id: &RunId,
    now: DateTime<Utc>,
) -> Result<ReportData, ReportError> {
    let mut conn = db.pool().acquire().await?;
    let run = store::runs::get(&mut conn, run_id).await?;
    let steps = store::steps::list(&mut conn, run_id).await?;
    let effects = store::effects::for_run(&mut conn, run_id).await?;
    let chain = store::events::verify(&mut conn, run_id).await?;
    let trend = if run.operation == Operation::Drill {
        trend::drills(db, &run.runbook_name, TREND_DRILLS).await?
    } else {
        Vec::new()
    };
    let mut data = model::build(model::Sources {
        run: &run,
        steps: &steps,
        effects: &effects,
        chain: &chain,
        trend,
        generated_at: now,
    })?;
    // Who skipped a step is in its `step_skipped` event (the steps table keeps the reason).
    let events = store::events::for_run(&mut conn, run_id).await?;
    for action in data
        .operator_actions
        .iter_mut()
        .filter(|a| a.action == "skipped")
    {
        action.by = events
            .iter()
            .rev()
            .find(|e| e.kind == "step_skipped" && e.step_key.as_deref() == Some(&action.step_key))
            .map(|e| {
                e.data["by"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| e.actor.clone())
            });
    }
    Ok(data)
}

/// The verdict of one run's audit trail, with the event where it breaks when it does.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainVerdict {
    pub run_id: String,
    pub runbook_name: String,
    pub ok: bool,
    /// Events stored (when intact) or recorded by the run (when broken).
    pub events: i64,
    pub final_hash: Option<String>,
    /// Where it breaks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<BrokenLink>,
}

/// The first broken link of a chain, described for a person.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokenLink {
    /// Position in the run's chain (`run_seq`).
    pub event: i64,
    /// What is stored at that position now (kind and step), if anything.
    pub stored_kind: Option<String>,
    pub stored_step: Option<String>,
    pub reason: store::BreakReason,
    pub message: String,
}

/// Recomputes the hash chain of `run_id` (or of every run, oldest first).
pub async fn verify_chains(
    db: &Database,
    run_id: Option<&RunId>,
) -> Result<Vec<ChainVerdict>, ReportError> {
    let mut conn = db.pool().acquire().await?;
    let runs: Vec<(RunId, String, i64)> = match run_id {
        Some(id) => {
            let run = store::runs::get(&mut conn, id).await?;
            vec![(run.id, run.runbook_name, run.event_count)]
        }
        None => {
            let mut all = store::runs::list(&mut conn, &RunFilter::default()).await?;
            all.reverse();
            let mut runs = Vec::with_capacity(all.len());
            for summary in all {
                let run = store::runs::get(&mut conn, &summary.id).await?;
                runs.push((run.id, run.runbook_name, run.event_count));
            }
            runs
        }
    };
    let mut verdicts = Vec::with_capacity(runs.len());
    for (id, runbook_name, recorded) in runs {
        let chain: Result<VerifiedChain, ChainBreak> =
            store::events::verify(&mut conn, &id).await?;
        let verdict = match chain {
            Ok(verified) => ChainVerdict {
                run_id: id.to_string(),
                runbook_name,
                ok: true,
                events: verified.count,
                final_hash: Some(verified.final_hash),
                broken: None,
            },
            Err(broken) => {
                // Best effort: what sits at the broken position now (the row may be gone).
                let stored = store::events::for_run(&mut conn, &id)
                    .await
                    .ok()
                    .and_then(|events| events.into_iter().find(|e| e.run_seq == broken.run_seq));
                ChainVerdict {
                    run_id: id.to_string(),
                    runbook_name,
                    ok: false,
                    events: recorded,
                    final_hash: None,
                    broken: Some(BrokenLink {
                        event: broken.run_seq,
                        stored_kind: stored.as_ref().map(|e| e.kind.clone()),
                        stored_step: stored.and_then(|e| e.step_key),
                        message: broken.to_string(),
                        reason: broken.reason,
                    }),
                }
            }
        };
        verdicts.push(verdict);
    }
    Ok(verdicts)
}

/// `95.0` -> `1m35s`; the one spelling of durations in reports.
pub fn human(seconds: f64) -> String {
    crate::engine::driver::human(seconds)
}

/// A time as reports print it.
pub fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}
