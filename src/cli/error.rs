//! The one error type at the CLI edge (after cargo-nextest's `ExpectedError`): every variant
//! carries data, and its wording, exit code and hint live here, in one place each.
//!
//! A message is a lowercase fragment saying what failed and why; [`CliError::hint`] says what
//! to do next. `main` prints `error: <message> (hint: <hint>)` and exits with
//! [`CliError::exit_code`].

use std::path::PathBuf;

use super::exit;
use super::sim_serve::error_chain;
use crate::engine::EngineError;
use crate::report::ReportError;
use crate::runbook::RunbookError;
use crate::store::{RunId, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    // Input: exit 2.
    #[error("{0}")]
    Runbook(#[from] RunbookError),
    #[error("{invalid} of {total} runbook{} not valid", if *total == 1 { " is" } else { "s are" })]
    RunbooksInvalid { invalid: usize, total: usize },
    #[error("{0}")]
    InvalidRunId(#[source] StoreError),
    #[error("invalid --from-run {value:?}: {cause}")]
    InvalidFromRun { value: String, cause: StoreError },
    #[error("invalid --point-in-time {value:?}: {cause}")]
    InvalidPointInTime {
        value: String,
        cause: chrono::ParseError,
    },
    #[error("invalid --since {value:?}")]
    InvalidSince { value: String },
    #[error("invalid {flag} {value:?}: expected one of {}", expected.join(", "))]
    InvalidChoice {
        flag: &'static str,
        value: String,
        expected: &'static [&'static str],
    },
    #[error("no command {name:?} (the commands: {})", known.join(", "))]
    UnknownCommand { name: String, known: Vec<String> },
    #[error("invalid --speed {0}: it must be a positive number")]
    InvalidSpeed(f64),
    #[error("--reason must say why the step is skipped (it is recorded in the audit trail)")]
    EmptySkipReason,
    #[error("a rollback is planned from a run, not a runbook")]
    PlanRollback,
    #[error("--drill goes with --operation failback")]
    PlanDrillWithoutFailback,
    #[error("no run {run_id} in {}", db.display())]
    RunNotFound { run_id: String, db: PathBuf },
    #[error("the stored runbook of run {run_id} does not parse: {cause}")]
    StoredRunbook { run_id: RunId, cause: RunbookError },
    #[error("run {run_id} is {status}: there is nothing left to drive")]
    NothingToDrive { run_id: RunId, status: &'static str },
    #[error("run {run_id} is already {status}: nothing to cancel")]
    NothingToCancel { run_id: RunId, status: &'static str },
    #[error(
        "nothing to approve in run {run_id}{} (steps with an approval gate: {})",
        step.as_ref().map(|s| format!(" for step {s}")).unwrap_or_default(),
        if gated.is_empty() { "none".to_string() } else { gated.join(", ") }
    )]
    NothingToApprove {
        run_id: RunId,
        step: Option<String>,
        gated: Vec<String>,
    },
    #[error(
        "run {run_id} cut DNS over to the recovered servers. {ROLLBACK_WARNING} Confirm with --yes to roll back anyway."
    )]
    RollbackNotConfirmed { run_id: RunId },
    /// An AWS call of a command that is not a run (boxed: the error is large).
    #[error("{0}")]
    Aws(Box<crate::aws::AwsError>),
    #[error(
        "source server(s) {} of the runbook do not exist in account {account} ({region}), so the recovery plan cannot name them",
        servers.join(", ")
    )]
    PlanServersMissing {
        servers: Vec<String>,
        account: String,
        region: String,
    },
    #[error(
        "the runbook's {waves} wave(s) make {steps} steps of at most 100 servers; a DRS recovery plan has at most 20 steps"
    )]
    PlanTooLarge { steps: usize, waves: usize },
    #[error(
        "a recovery plan named {name:?} exists ({arn}) but was not exported from this runbook (it has no tag drs-runbook:runbook with the runbook's name)"
    )]
    PlanNotOurs { name: String, arn: String },
    #[error(
        "export-plan would change recovery plan {plan:?}; confirm with --yes (stdin is not a terminal)"
    )]
    ExportNotConfirmed { plan: String },
    #[error("failed to seed the simulator: {0}")]
    SimSeed(String),
    #[error("failed to start the simulator: {0}")]
    ServeStart(String),
    #[error("failed to read the runbook {}: {cause}", path.display())]
    ServeReadSeed {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("failed to seed from {}: {cause}", path.display())]
    ServeSeed { path: PathBuf, cause: String },
    #[error("failed to listen on {addr}: {cause}")]
    ServeListen { addr: String, cause: std::io::Error },
    #[error("failed to read the listening address: {0}")]
    ServeLocalAddr(std::io::Error),

    // The engine: exit 4 (refused), 2 (invalid) or 1.
    #[error("{0}")]
    Engine(#[from] EngineError),

    // Everything else failed: exit 1.
    #[error("failed to open the run database {}: {cause}", path.display())]
    OpenDatabase {
        path: PathBuf,
        cause: String,
        /// The database could not be reached (exit 75), rather than refused the open.
        unreachable: bool,
    },
    /// The cause is kept (not flattened to text) so that a lost connection is still exit 75.
    #[error("failed to read the run database: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Journal(#[from] crate::engine::journal::JournalError),
    #[error("{0}")]
    Sql(#[from] sqlx::Error),
    #[error("failed to start the embedded simulator: {cause}")]
    SimStart {
        cause: String,
        state_file: Option<PathBuf>,
    },
    #[error("the simulator stopped: {0}")]
    SimStopped(String),
    #[error("{}", error_chain(.0))]
    Report(ReportError),
    #[error("failed to write the report to {}: {cause}", path.display())]
    WriteReport {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}", broken.as_deref().unwrap_or("the audit trail does not verify"))]
    AuditBroken {
        run_id: RunId,
        broken: Option<String>,
    },
    #[error("failed to render the JSON report: {0}")]
    RenderJson(#[from] serde_json::Error),
    #[error("refused to act on run {run_id}: {broken}")]
    TrailRefused { run_id: RunId, broken: String },
    #[error("{cause}")]
    NotStored { run_id: RunId, cause: String },
    #[error("failed to write to stdout: {0}")]
    WriteStdout(std::io::Error),
}

/// What a rollback after a DNS cutover does, said before it is confirmed.
pub const ROLLBACK_WARNING: &str = "Rolling back restores the previous records and target groups and terminates the recovery instances; once production traffic has moved to the recovered servers, failback (`drs-runbook failback`) is the way back, not rollback.";

impl CliError {
    /// The exit code of the CLI contract (DESIGN section 7).
    pub fn exit_code(&self) -> u8 {
        use CliError::*;
        if self.store_unreachable() {
            return exit::STORE_UNREACHABLE;
        }
        match self {
            Runbook(_)
            | RunbooksInvalid { .. }
            | InvalidRunId(_)
            | InvalidFromRun { .. }
            | InvalidPointInTime { .. }
            | InvalidSince { .. }
            | InvalidChoice { .. }
            | InvalidSpeed(_)
            | UnknownCommand { .. }
            | EmptySkipReason
            | PlanRollback
            | PlanDrillWithoutFailback
            | RunNotFound { .. }
            | StoredRunbook { .. }
            | NothingToDrive { .. }
            | NothingToCancel { .. }
            | NothingToApprove { .. }
            | RollbackNotConfirmed { .. }
            | PlanServersMissing { .. }
            | PlanTooLarge { .. }
            | PlanNotOurs { .. }
            | ExportNotConfirmed { .. }
            | SimSeed(_)
            | ServeStart(_)
            | ServeReadSeed { .. }
            | ServeSeed { .. }
            | ServeListen { .. }
            | ServeLocalAddr(_) => exit::INVALID_INPUT,
            Engine(e) if e.is_refusal() => exit::REFUSED,
            Engine(e) if e.is_invalid() => exit::INVALID_INPUT,
            Engine(_)
            | Aws(_)
            | OpenDatabase { .. }
            | Database(_)
            | Store(_)
            | Journal(_)
            | Sql(_)
            | SimStart { .. }
            | SimStopped(_)
            | Report(_)
            | WriteReport { .. }
            | AuditBroken { .. }
            | RenderJson(_)
            | TrailRefused { .. }
            | NotStored { .. }
            | WriteStdout(_) => exit::RUN_FAILED,
        }
    }

    /// Whether the run database could not be reached, at the open or on the way (exit 75):
    /// the cause is the connection, not the command, so the same command can be retried.
    fn store_unreachable(&self) -> bool {
        matches!(
            self,
            CliError::OpenDatabase {
                unreachable: true,
                ..
            }
        ) || crate::store::is_unreachable(self)
    }

    /// What to do next, when this edge knows more than the message says.
    pub fn hint(&self) -> Option<String> {
        use CliError::*;
        let hint = match self {
            OpenDatabase { .. } if self.store_unreachable() => "check that the database server is up and reachable from this host, then run the command again; nothing was started".to_string(),
            _ if self.store_unreachable() => "the run stopped at a safe point: what it did is committed, and AWS calls already sent are recorded as intents. Once the database answers again, `drs-runbook resume <run ID>` reconciles them with AWS and goes on, from this host or any other (another host waits until this process's lease expires, 30 s); other commands can simply be run again".to_string(),
            RunbooksInvalid { .. } => "fix the problems named above, then run `drs-runbook validate` again".to_string(),
            InvalidFromRun { .. } => "copy the run ID from `drs-runbook status`".to_string(),
            InvalidPointInTime { .. } => "use an RFC 3339 time such as 2026-11-27T03:00:00Z, or `latest`".to_string(),
            InvalidSince { .. } => "a date such as 2026-01-31, or an RFC 3339 time such as 2026-01-31T03:00:00Z".to_string(),
            InvalidSpeed(_) => "--speed 60 runs an hour in a minute".to_string(),
            PlanRollback => "`drs-runbook rollback <RUN_ID>` plans the compensations of that run's completed steps, and asks before it moves production traffic".to_string(),
            PlanDrillWithoutFailback => "`plan --operation drill` plans a drill".to_string(),
            RunNotFound { .. } => "`drs-runbook history` lists the runs; check --db".to_string(),
            NothingToDrive { run_id, .. } => format!("`drs-runbook show {run_id}`; a cancelled or finished run can be rolled back with `drs-runbook rollback {run_id}`"),
            PlanServersMissing { .. } => "check the runbook's server IDs against `aws drs describe-source-servers` in the target account and region".to_string(),
            PlanTooLarge { .. } => "merge small waves, or export a runbook of fewer servers".to_string(),
            PlanNotOurs { .. } => "rename or delete that plan, or rename the runbook".to_string(),
            ExportNotConfirmed { .. } => "read the changes printed above, then run again with --yes".to_string(),
            ServeListen { .. } => "choose another --listen address, or port 0 for any free port".to_string(),
            SimStart { state_file: Some(file), .. } => format!("delete {} to start a fresh simulated world", file.display()),
            WriteReport { .. } => "check that the directory exists and is writable".to_string(),
            AuditBroken { run_id, .. } => format!("`drs-runbook audit verify {run_id}` shows the broken link; restore the database from a backup to compare"),
            TrailRefused { run_id, .. } => format!("`drs-runbook audit verify {run_id}` shows what disagrees; restore the database from a backup, or start a new run from the runbook file"),
            NotStored { run_id, .. } => format!("run {run_id} was not stored and nothing was started; fix the cause, then start the run again"),
            Engine(e) if !e.is_refusal() && !e.is_invalid() => "the run is resumable once the cause is fixed".to_string(),
            _ => return None,
        };
        Some(hint)
    }

    /// The message and its hint, as printed after `error: `.
    /// The sentence without its hint.
    pub fn message(&self) -> String {
        match self {
            CliError::OpenDatabase { .. } => self.to_string(),
            _ if self.store_unreachable() => {
                format!("lost the run database: {}", crate::store::error_chain(self))
            }
            // The engine's generic failures are shown with their whole chain of causes.
            CliError::Engine(e) if !e.is_refusal() && !e.is_invalid() => error_chain(e),
            other => other.to_string(),
        }
    }

    pub fn render(&self) -> String {
        let message = self.message();
        match self.hint() {
            Some(hint) => format!("{message} (hint: {hint})"),
            None => message,
        }
    }
}

impl From<crate::aws::AwsError> for CliError {
    fn from(e: crate::aws::AwsError) -> Self {
        CliError::Aws(Box::new(e))
    }
}

impl CliError {
    /// A report error, with an unknown run named against the database it was looked up in.
    pub fn report(db: PathBuf, e: ReportError) -> Self {
        match e {
            ReportError::Store(StoreError::RunNotFound { run_id }) => CliError::RunNotFound {
                run_id: run_id.to_string(),
                db,
            },
            other => CliError::Report(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_ends_with_its_hint_and_maps_to_its_exit_code() {
        let e = CliError::RunNotFound {
            run_id: "r1".into(),
            db: PathBuf::from("/tmp/runs.db"),
        };
        assert_eq!(e.exit_code(), exit::INVALID_INPUT);
        assert_eq!(
            e.render(),
            "no run r1 in /tmp/runs.db (hint: `drs-runbook history` lists the runs; check --db)"
        );
        let e = CliError::RunbooksInvalid {
            invalid: 1,
            total: 1,
        };
        assert_eq!(
            e.render(),
            "1 of 1 runbook is not valid (hint: fix the problems named above, then run `drs-runbook validate` again)"
        );
        let e = CliError::SimStart {
            cause: "boom".into(),
            state_file: None,
        };
        assert_eq!(e.exit_code(), exit::RUN_FAILED);
        assert_eq!(e.render(), "failed to start the embedded simulator: boom");
    }

    /// A lost connection anywhere in the chain is exit 75 with the resume hint; a query the
    /// database refused stays exit 1.
    #[test]
    fn an_unreachable_database_is_exit_75_wherever_it_is_met() {
        let lost = |source| {
            CliError::from(EngineError::Store(StoreError::query(
                source,
                "begin a transaction on postgres://drs@db/runs".into(),
            )))
        };
        let timed_out = lost(sqlx::Error::PoolTimedOut);
        assert_eq!(timed_out.exit_code(), exit::STORE_UNREACHABLE);
        assert!(
            timed_out
                .render()
                .starts_with("lost the run database: failed to begin a transaction on postgres://drs@db/runs: pool timed out"),
            "{}",
            timed_out.render()
        );
        assert!(timed_out.render().contains("drs-runbook resume"));
        let reset = lost(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()));
        assert_eq!(reset.exit_code(), exit::STORE_UNREACHABLE);
        assert_eq!(lost(sqlx::Error::RowNotFound).exit_code(), exit::RUN_FAILED);
        let at_open = CliError::OpenDatabase {
            path: PathBuf::from("postgres://drs@db/runs"),
            cause: "pool timed out while waiting for an open connection".into(),
            unreachable: true,
        };
        assert_eq!(at_open.exit_code(), exit::STORE_UNREACHABLE);
        assert!(at_open.render().contains("nothing was started"));
        // `resume`, `show` and `history` read the run first: a connection lost there is 75 too.
        let at_read = CliError::Database(sqlx::Error::PoolTimedOut.into());
        assert_eq!(at_read.exit_code(), exit::STORE_UNREACHABLE);
        assert!(at_read.render().contains("drs-runbook resume"));
        let refused = CliError::Database(sqlx::Error::RowNotFound.into());
        assert_eq!(refused.exit_code(), exit::RUN_FAILED);
    }

    #[test]
    fn engine_errors_keep_their_classes() {
        let refused = CliError::from(EngineError::NotReversible(
            crate::engine::rollback::NotReversible::RunBeingDriven {
                run_id: RunId::generate(),
                pid: 1,
                host: "h".into(),
                since: chrono::Utc::now(),
            },
        ));
        assert_eq!(refused.exit_code(), exit::REFUSED);
        assert!(refused.render().starts_with("refused: run "));
        let invalid = CliError::from(EngineError::from(
            crate::engine::rollback::NotReversible::NoFailoverToReverse {
                runbook: "payments".into(),
            },
        ));
        assert_eq!(invalid.exit_code(), exit::INVALID_INPUT);
        assert_eq!(
            invalid.hint(),
            None,
            "the engine's message carries its own hint"
        );
    }
}
