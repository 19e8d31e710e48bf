//! The runtime below the steps: what a step may use while it executes. The run's [`journal`]
//! (outputs, and effects through the one durable-call primitive [`StepCtx::call`]), the engine's
//! [`clock`], the account-wide DRS job [`budget`], the run's shared job polling ([`jobs`]),
//! [`progress`] lines, and the types of a run
//! ([`Operation`], [`Mode`], [`RunOptions`]) and of a step's execution ([`StepCtx`],
//! [`StepFailure`], [`Halt`], [`StepResult`]).
//!
//! Invariant: nothing here imports `crate::engine` or `crate::steps`; the engine drives the
//! steps, the steps use the runtime (see the `# Layout` of the crate).

pub mod budget;
pub mod call;
pub mod clock;
pub mod instances;
pub mod jobs;
pub mod journal;
pub mod poll;
pub mod progress;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::aws::{AwsError, Clients};
use crate::runbook::Runbook;
use clock::EngineClock;
use journal::Journal;
use progress::Progress;

/// The durable kinds of steps (defined with the runbook, whose `[approvals]` names them).
pub use crate::runbook::StepKind;

/// The operation of a run and its mode: the store's types (one enum each, snake_case text
/// written once in `store`), used by the steps, the engine and the CLI alike.
pub use crate::store::{Mode, Operation};

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
    /// `--override-production-guard`: start even though live non-drill recovery instances
    /// would be replaced (the instances are recorded in the audit trail).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub override_production_guard: bool,
}

fn default_batch() -> usize {
    100
}

/// The servers of the waves that `select` by tags, resolved once per run by preflight and
/// persisted in its output (`selected`: wave -> the wave's listed servers, then the selected
/// ones), so a resume recovers the same servers even if the tags changed meanwhile.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resolution {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub selected: std::collections::BTreeMap<String, Vec<String>>,
}

/// The name under which a run claims a DRS source server (one active run per server).
pub fn server_claim(account_id: &str, region: &str, server: &str) -> String {
    format!("{account_id}/{region}/{server}")
}

/// The run a step belongs to.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: String,
    pub operation: Operation,
    pub options: RunOptions,
    pub started_at: DateTime<Utc>,
    /// The runbook's path as the run was started with it (actions run in its directory).
    pub runbook_path: String,
}

/// The step being executed.
#[derive(Debug, Clone)]
pub struct StepInfo {
    pub key: String,
    pub kind: StepKind,
    pub wave: Option<String>,
    pub attempt: i64,
    /// This attempt continues one that a crash or a stop interrupted (the step was still
    /// running): a resume, not an operator's `retry`.
    pub resumed: bool,
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
    pub budget: &'a budget::JobBudget,
    /// The run's shared DescribeJobs ([`jobs`]): polling per run, not per job.
    pub jobs: &'a jobs::JobWatch,
    /// The run's shared DescribeInstanceStatus ([`instances`]): status checks per run, not per
    /// wave.
    pub instances: &'a instances::InstanceWatch,
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
    /// Another run holds what this step needs (a claimed server): the run ends with exit 4.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    /// Only an operator can decide (an action in doubt after a crash): the run pauses (exit 3)
    /// until `retry` or `skip`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaits_operator: bool,
}

impl StepFailure {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        StepFailure {
            message: message.into(),
            hint: hint.into(),
            aws: None,
            refused: false,
            awaits_operator: false,
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
            refused: false,
            awaits_operator: false,
        }
    }
}

impl From<journal::JournalError> for StepFailure {
    fn from(e: journal::JournalError) -> Self {
        match &e {
            journal::JournalError::Decode {
                run,
                key,
                what,
                source,
            } => StepFailure::new(
                format!(
                    "the output of step {key} of run {run} could not be read as a {what}: {source}"
                ),
                format!(
                    "the database was edited or written by another version; `drs-runbook show {run}` shows the stored output"
                ),
            ),
            journal::JournalError::RequestMismatch { key, call_key, .. } => StepFailure::new(
                format!("call {call_key} of step {key} was made before with a different request"),
                "a durable call key names one request: this is a bug in the step, or the database was edited; report it",
            ),
            _ => StepFailure::new(
                format!("failed to record the step's progress: {e}"),
                "check the database file and disk space, then resume the run",
            ),
        }
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

    /// The wave's servers: its listed `servers`, plus, when it has a `select`, the servers
    /// preflight resolved from the tags (read from preflight's persisted output). The one way
    /// steps learn a wave's servers; a selecting wave that preflight did not resolve fails.
    pub async fn wave_servers(&self) -> Result<Vec<String>, Halt> {
        let wave = self.wave();
        if wave.select.is_none() {
            return Ok(wave.servers.clone());
        }
        let preflight = StepKind::Preflight.as_str();
        let resolution: Resolution = self.journal.output(preflight).await?;
        match resolution.selected.get(&wave.name) {
            Some(servers) => Ok(servers.clone()),
            None => Err(Halt::Failed(StepFailure::new(
                format!(
                    "the `select` of wave {} was not resolved by this run's {preflight} step",
                    wave.name
                ),
                "a selecting wave needs a preflight that resolved it: start a new run from the runbook",
            ))),
        }
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
