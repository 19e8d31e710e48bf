//! One module per step kind. Each step is **re-entrant**: it starts by reading what it already
//! knows (its persisted output and its open intents), reconciles that against AWS, and only then
//! continues. Resuming a run is therefore just executing its unfinished steps again.
//!
//! Every mutating AWS call follows intent -> call -> effect through [`Journal`]: the intent is
//! committed before the call, the effect (IDs, request ID) with the step's new output after it.

pub mod a2_recovery;
pub mod cleanup;
pub mod compensate;
pub mod dns_cutover;
pub mod failback;
pub mod failback_cleanup;
pub mod failback_preflight;
pub mod launch;
pub mod lb_switch;
pub mod preflight;
pub mod recovery_job;
pub mod retry;
pub mod reversed_replication;
pub mod snapshot_conversion;
pub mod validate;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::aws::{AwsError, Clients};
use crate::engine::clock::EngineClock;
use crate::engine::journal::Journal;
use crate::engine::plan::{Mode, Operation, StepKind};
use crate::engine::progress::Progress;
use crate::runbook::Runbook;

/// Options of a run that steps read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunOptions {
    pub mode: Mode,
    /// Recover from the latest snapshot at or before this time instead of a fresh one.
    #[serde(default)]
    pub point_in_time: Option<DateTime<Utc>>,
    /// Drill: keep the drill instances.
    #[serde(default)]
    pub keep: bool,
    /// Approvals given up front.
    #[serde(default)]
    pub yes: bool,
    /// Servers per StartRecovery (DRS quota: 100).
    #[serde(default = "default_batch")]
    pub max_servers_per_job: usize,
    /// Failback: a failback drill (A2 launched as a drill, no traffic moved, cleaned up).
    #[serde(default)]
    pub drill: bool,
}

fn default_batch() -> usize {
    100
}

/// The run a step belongs to.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: String,
    pub operation: Operation,
    pub options: RunOptions,
    pub started_at: DateTime<Utc>,
}

/// The step being executed.
#[derive(Debug, Clone)]
pub struct StepInfo {
    pub key: String,
    pub kind: StepKind,
    pub wave: Option<String>,
    pub attempt: i64,
}

/// Everything a step may use.
pub struct StepCtx<'a> {
    pub run: &'a RunInfo,
    pub step: &'a StepInfo,
    pub runbook: &'a Runbook,
    pub clients: &'a Clients,
    pub clock: &'a EngineClock,
    pub journal: &'a Journal,
    pub progress: &'a Progress,
    pub stop: tokio::sync::watch::Receiver<bool>,
    pub budget: &'a crate::engine::budget::JobBudget,
}

/// How a step's execution ended.
#[derive(Debug)]
pub enum StepResult {
    Succeeded,
    Failed(StepFailure),
    /// Stopped at a safe point (Ctrl-C, cancel); the step stays running and resumes later.
    Stopped,
}

/// Why a step failed: one sentence, the cause, and what to do next.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepFailure {
    pub message: String,
    pub hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<Box<AwsError>>,
}

impl StepFailure {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        StepFailure {
            message: message.into(),
            hint: hint.into(),
            aws: None,
        }
    }
}

impl From<AwsError> for StepFailure {
    fn from(e: AwsError) -> Self {
        StepFailure {
            message: format!(
                "{}: {}{}",
                e.call,
                e.message,
                e.request_id
                    .as_ref()
                    .map(|r| format!(" (request ID {r})"))
                    .unwrap_or_default()
            ),
            hint: e.hint.clone(),
            aws: Some(Box::new(e)),
        }
    }
}

impl From<crate::engine::journal::JournalError> for StepFailure {
    fn from(e: crate::engine::journal::JournalError) -> Self {
        StepFailure::new(
            format!("failed to record the step's progress: {e}"),
            "check the database file and disk space, then resume the run",
        )
    }
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (hint: {})", self.message, self.hint)
    }
}

/// The early exits of a step body: a failure, or a stop at a safe point.
#[derive(Debug)]
pub enum Halt {
    Failed(StepFailure),
    Stopped,
}

impl<E: Into<StepFailure>> From<E> for Halt {
    fn from(e: E) -> Self {
        Halt::Failed(e.into())
    }
}

impl From<Result<(), Halt>> for StepResult {
    fn from(r: Result<(), Halt>) -> Self {
        match r {
            Ok(()) => StepResult::Succeeded,
            Err(Halt::Failed(f)) => StepResult::Failed(f),
            Err(Halt::Stopped) => StepResult::Stopped,
        }
    }
}

impl<'a> StepCtx<'a> {
    /// The side whose DRS recovers the servers: the target for failover and drill, the source
    /// (origin) for failback, where A2 is launched. Borrowed for the run, not from `self`, so
    /// a step can hold it across its own `pause`.
    pub fn recovery_side(&self) -> &'a crate::aws::SideClients {
        let clients: &'a Clients = self.clients;
        match self.run.operation {
            Operation::Failback => &clients.source,
            _ => &clients.target,
        }
    }
}

impl StepCtx<'_> {
    /// The wave this step works on.
    pub fn wave(&self) -> &crate::runbook::Wave {
        let name = self.step.wave.as_deref().expect("a wave step has a wave");
        self.runbook.wave(name).expect("planned waves exist")
    }

    /// The key of the step that started this wave's recovery jobs (`recovery_job:W`, or
    /// `a2_recovery:W` in a failback); snapshot_conversion and launch follow its output.
    pub fn job_step_key(&self) -> String {
        let wave = self.step.wave.as_deref().unwrap_or_default();
        match self.run.operation {
            Operation::Failback => format!("{}:{wave}", StepKind::A2Recovery.as_str()),
            _ => format!("{}:{wave}", StepKind::RecoveryJob.as_str()),
        }
    }

    /// Whether the server may fail without failing its wave.
    pub fn is_optional(&self, server: &str) -> bool {
        self.runbook
            .waves
            .iter()
            .any(|w| w.optional.iter().any(|o| o == server))
    }

    /// Sleeps `duration` of the engine's clock, or returns `Err(Halt::Stopped)` when asked to stop.
    pub async fn pause(&mut self, duration: Duration) -> Result<(), Halt> {
        if *self.stop.borrow() {
            return Err(Halt::Stopped);
        }
        let real = self.clock.real(duration);
        tokio::select! {
            _ = tokio::time::sleep(real) => Ok(()),
            _ = self.stop.changed() => Err(Halt::Stopped),
        }
    }

    /// Whether a stop was asked for (checked at safe points).
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// The output of another step of the run (e.g. `launch:app` for `lb_switch:app`).
    pub async fn output_of<T: serde::de::DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, Halt> {
        Ok(self.journal.output(key).await?)
    }

    /// This step's own persisted output.
    pub async fn my_output<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, Halt> {
        Ok(self.journal.output(&self.step.key).await?)
    }

    pub async fn save<T: Serialize>(&self, output: &T) -> Result<(), Halt> {
        Ok(self.journal.save_output(&self.step.key, output).await?)
    }

    pub fn say(&self, message: impl AsRef<str>) {
        self.progress
            .line(self.clock.now(), &self.step.key, message.as_ref());
    }
}

/// Executes one step.
pub async fn execute(mut ctx: StepCtx<'_>) -> StepResult {
    // A rollback's steps carry the kind of the step they undo (`undo:<key>`).
    if ctx.run.operation == Operation::Rollback {
        return compensate::run(&mut ctx).await.into();
    }
    let result = match ctx.step.kind {
        StepKind::Preflight if ctx.run.operation == Operation::Failback => {
            failback_preflight::run(&mut ctx).await
        }
        StepKind::Preflight => preflight::run(&mut ctx).await,
        StepKind::RecoveryJob => recovery_job::run(&mut ctx).await,
        StepKind::SnapshotConversion => snapshot_conversion::run(&mut ctx).await,
        StepKind::Launch => launch::run(&mut ctx).await,
        StepKind::LbSwitch => lb_switch::run(&mut ctx).await,
        StepKind::DnsCutover => dns_cutover::run(&mut ctx).await,
        StepKind::Validate => validate::run(&mut ctx).await,
        StepKind::Cleanup if ctx.run.operation == Operation::Failback => {
            failback_cleanup::run(&mut ctx).await
        }
        StepKind::Cleanup => cleanup::run(&mut ctx).await,
        StepKind::ReversedReplication => reversed_replication::run(&mut ctx).await,
        StepKind::A2Recovery => a2_recovery::run(&mut ctx).await,
    };
    result.into()
}

/// Parses an ISO-8601 duration as DRS sends it (`P0D`, `PT5M`, `PT16H20M38.697305S`, `P1DT2H`).
pub fn parse_iso_duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut seconds = 0f64;
    let mut number = String::new();
    for c in date.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'D' => seconds += number.parse::<f64>().ok()? * 86400.0,
            'W' => seconds += number.parse::<f64>().ok()? * 7.0 * 86400.0,
            _ => return None,
        }
        if c.is_ascii_alphabetic() {
            number.clear();
        }
    }
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' => seconds += number.parse::<f64>().ok()? * 3600.0,
            'M' => seconds += number.parse::<f64>().ok()? * 60.0,
            'S' => seconds += number.parse::<f64>().ok()?,
            _ => return None,
        }
        if c.is_ascii_alphabetic() {
            number.clear();
        }
    }
    if !number.is_empty() {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations_as_drs_sends_them() {
        assert_eq!(parse_iso_duration("P0D"), Some(Duration::ZERO));
        assert_eq!(parse_iso_duration("PT5M"), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_iso_duration("P1DT2H"),
            Some(Duration::from_secs(93600))
        );
        assert_eq!(
            parse_iso_duration("PT16H20M38.5S"),
            Some(Duration::from_secs_f64(16.0 * 3600.0 + 20.0 * 60.0 + 38.5))
        );
        assert_eq!(parse_iso_duration("5M"), None);
        assert_eq!(parse_iso_duration("PT5"), None);
    }
}
