//! Progress events and operator approvals: what the driver and the steps tell the outside, and
//! what they ask it. The engine only emits typed [`ProgressEvent`]s to an [`Observer`] and asks
//! an [`Approver`]; the CLI implements both (the terminal prompt, plain timestamped lines, the
//! status line), so the engine never touches a terminal. Events are also sent to tracing at
//! info level.

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// What happened to a step (or, for `step == "run"`, to the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepProgress {
    Started,
    /// Started again after a crash or an interruption.
    Resumed,
    Succeeded,
    Failed(String),
    StoppedAtSafePoint,
    /// Anything else a step or the driver has to say.
    Note(String),
}

impl StepProgress {
    /// The event as one line of text.
    pub fn message(&self) -> std::borrow::Cow<'_, str> {
        match self {
            StepProgress::Started => "started".into(),
            StepProgress::Resumed => "resumed".into(),
            StepProgress::Succeeded => "succeeded".into(),
            StepProgress::Failed(failure) => format!("FAILED: {failure}").into(),
            StepProgress::StoppedAtSafePoint => "stopped at a safe point".into(),
            StepProgress::Note(message) => message.as_str().into(),
        }
    }
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent<'a> {
    pub at: DateTime<Utc>,
    /// The step's key, or `run` for the run itself.
    pub step: &'a str,
    pub progress: StepProgress,
}

/// Receives progress events (the CLI draws them).
pub trait Observer: Send + Sync {
    fn event(&self, event: &ProgressEvent<'_>);
}

/// One change an approval gate lets through, as the approver sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// What is done: `upsert`, `delete`, `register`, `deregister`, `terminate`, `stop_replication`,
    /// `start_recovery`...
    pub action: String,
    /// What it is done to: a record (`www.example.com. A in zone Z...`), a target group, an
    /// instance, a source server.
    pub resource: String,
    /// The value before (a record's values, a group's targets), where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The value after, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl Change {
    /// The action of the change a paused run shows for a step that waits for an operator's
    /// decision rather than an approval (an action in doubt: `retry` or `skip`).
    pub const DECIDE: &'static str = "decide:";

    pub fn new(action: &str, resource: impl Into<String>) -> Change {
        Change {
            action: action.to_string(),
            resource: resource.into(),
            before: None,
            after: None,
        }
    }

    pub fn from_to(mut self, before: impl Into<String>, after: impl Into<String>) -> Change {
        self.before = Some(before.into());
        self.after = Some(after.into());
        self
    }

    /// The change as one line: `upsert www.example.com. A in zone Z1: 10.0.0.1 -> 10.1.0.7`.
    pub fn line(&self) -> String {
        let mut line = format!("{} {}", self.action, self.resource);
        match (&self.before, &self.after) {
            (Some(before), Some(after)) => line.push_str(&format!(": {before} -> {after}")),
            (None, Some(after)) => line.push_str(&format!(": {after}")),
            (Some(before), None) => line.push_str(&format!(" (was {before})")),
            (None, None) => {}
        }
        line
    }
}

/// What an approval gate lets through: the step's changes as read at the gate, or why they
/// could not be read (the gate is still asked: at 3 a.m. a failed read must not block it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GatePreview {
    pub step: String,
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl GatePreview {
    /// The preview as lines for a person: one per change, or why there are none.
    pub fn lines(&self) -> Vec<String> {
        if let Some(why) = &self.unavailable {
            return vec![format!("the changes could not be read: {why}")];
        }
        if self.changes.is_empty() {
            return vec!["no change to AWS resources is planned by this step".to_string()];
        }
        self.changes.iter().map(Change::line).collect()
    }
}

/// Asks an operator to approve a step now.
pub trait Approver: Send + Sync {
    /// Whether anyone can be asked (otherwise the run pauses at the gate).
    fn can_ask(&self) -> bool;
    /// Asks, showing what the gate lets through; anything but a clear yes declines.
    fn approve<'a>(&'a self, preview: &'a GatePreview) -> BoxFuture<'a, bool>;
}

/// Nobody to ask: every gate pauses the run (or `--yes` approved it up front).
pub struct NoApprover;

impl Approver for NoApprover {
    fn can_ask(&self) -> bool {
        false
    }
    fn approve<'a>(&'a self, _preview: &'a GatePreview) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }
}

/// Nothing drawn; events still go to tracing.
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _event: &ProgressEvent<'_>) {}
}

/// The handle the driver and the steps emit through. Cheap to clone; clones share one observer.
#[derive(Clone)]
pub struct Progress {
    observer: Arc<dyn Observer>,
}

impl Progress {
    pub fn new(observer: Arc<dyn Observer>) -> Self {
        Progress { observer }
    }

    /// Progress that only goes to tracing.
    pub fn silent() -> Self {
        Progress::new(Arc::new(Silent))
    }

    /// Emits one event of a step.
    pub fn step(&self, at: DateTime<Utc>, step: &str, progress: StepProgress) {
        tracing::info!(step, "{}", progress.message());
        self.observer.event(&ProgressEvent { at, step, progress });
    }

    /// A free-form line for a step.
    pub fn line(&self, at: DateTime<Utc>, step: &str, message: &str) {
        self.step(at, step, StepProgress::Note(message.to_string()));
    }

    /// A run-level line.
    pub fn run_line(&self, at: DateTime<Utc>, message: &str) {
        self.line(at, "run", message);
    }
}
