//! The driver: the only loop that does I/O. It holds the run's lease, asks the pure machine
//! what to do, executes steps concurrently, persists every transition (one transaction with
//! its audit event), handles approvals and Ctrl-C, and ends with a [`RunReport`].
//!
//! ```text
//!   ┌──► journal.steps() ──► machine::decide ──► StartStep ──► steps::execute (concurrent)
//!   │                                        ├─► RequestApproval ──► approver (the CLI prompts) or wait
//!   │                                        ├─► Pause / Finish ──► report
//!   └──── step result persisted ◄── Wait ◄───┘
//! ```

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;

use super::budget::JobBudget;
use super::clock::EngineClock;
use super::journal::{Journal, JournalError, StepRow};
use super::machine::{self, Command, RunFlags, RunOutcome, StepEvent, StepStatus, StepView};
use super::measure::{Evidence, measure};
use super::progress::{Approver, Progress, StepProgress};
use crate::aws::Clients;
use crate::runbook::Runbook;
use crate::steps::{self, RunInfo, StepCtx, StepInfo, StepResult};

/// How a run ended, as `--output json` prints it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunReport {
    pub run_id: String,
    pub operation: String,
    /// `succeeded`, `failed`, `paused`, `cancelled`, `interrupted` or `rolled_back`.
    pub status: String,
    /// The run's steps, as every JSON document shows a step.
    pub steps: Vec<crate::store::steps::StepObject>,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    /// The consistency figure: newest minus oldest data timestamp of the run's servers, all
    /// waves together (converting ahead takes every wave's snapshots within seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_spread_seconds: Option<f64>,
    /// Objectives from the runbook, and whether the measurements met them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objectives: Option<ObjectivesReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// A paused run: what each waiting approval gate lets through.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<crate::run::progress::GatePreview>,
    /// Failed because another run holds what a step needs (exit 4, not 1).
    #[serde(skip)]
    pub refused: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectivesReport {
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub rto_met: Option<bool>,
    pub rpo_met: Option<bool>,
}

/// Exit codes of the CLI contract (DESIGN section 7).
pub mod exit {
    pub const SUCCEEDED: u8 = 0;
    pub const RUN_FAILED: u8 = 1;
    pub const INVALID_INPUT: u8 = 2;
    pub const PAUSED: u8 = 3;
    pub const REFUSED: u8 = 4;
    /// The run database could not be reached (sysexits' `EX_TEMPFAIL`): a run stopped at a
    /// safe point and is resumable, from any host, once the database answers again.
    pub const STORE_UNREACHABLE: u8 = 75;
    pub const INTERRUPTED: u8 = 130;
    pub const HANGUP: u8 = 129;
    pub const TERMINATED: u8 = 143;
    /// stdout was a closed pipe: output ended quietly.
    pub const BROKEN_PIPE: u8 = 141;
}

impl RunReport {
    /// The CLI exit code of this outcome (DESIGN section 7).
    pub fn exit_code(&self) -> u8 {
        match self.status.as_str() {
            "succeeded" | "rolled_back" => {
                let missed = self
                    .objectives
                    .as_ref()
                    .is_some_and(|o| o.rto_met == Some(false) || o.rpo_met == Some(false));
                if missed && self.operation == "drill" {
                    exit::RUN_FAILED
                } else {
                    exit::SUCCEEDED
                }
            }
            "failed" if self.refused => exit::REFUSED,
            "paused" => exit::PAUSED,
            "interrupted" => crate::signals::interrupted_exit_code(),
            _ => exit::RUN_FAILED,
        }
    }
}

/// Awaits the driver's own `work` while the running steps keep being polled (their results
/// are kept in `reported`). Without this, a step suspended inside a write transaction would
/// hold SQLite's write lock while the driver waits for that same lock: a deadlock ended only
/// by the busy timeout ("database is locked").
async fn polling<T, S: std::future::Future>(
    running: &mut FuturesUnordered<S>,
    reported: &mut Vec<S::Output>,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            Some(done) = running.next(), if !running.is_empty() => reported.push(done),
        }
    }
}

/// How often a driver waiting for its steps looks for a `cancel` request from another process.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// What the driver needs besides the journal.
pub struct Driver<'a> {
    pub journal: &'a Journal,
    pub runbook: &'a Runbook,
    pub clients: &'a Clients,
    pub clock: &'a EngineClock,
    pub progress: &'a Progress,
    pub run: RunInfo,
    /// Approvals given up front (`--yes`).
    pub yes: bool,
    /// Asks for approvals (the CLI: on the terminal).
    pub approver: &'a dyn Approver,
    /// Ask the approver (it can ask, and not `--yes`).
    pub interactive: bool,
    pub budget: JobBudget,
    /// One DescribeJobs for every job the run's steps wait for.
    pub jobs: crate::run::jobs::JobWatch,
    /// One DescribeInstanceStatus round for every instance the run's health gates wait for.
    pub instances: crate::run::instances::InstanceWatch,
}

/// Errors that end the driver without a run outcome.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl Driver<'_> {
    /// The jobs this run started before (found in its recovery steps' outputs on resume) hold
    /// their share of the DRS job quotas again, unless their wave's launch step saw them end:
    /// a batch that finds the budget full polls them and frees the ended ones. No AWS call.
    async fn adopt_jobs(&self, rows: &[StepRow]) -> Result<(), DriverError> {
        use crate::steps::recovery_job::RecoveryJobOutput;
        for row in rows {
            if !matches!(
                row.kind,
                crate::run::StepKind::RecoveryJob | crate::run::StepKind::A2Recovery
            ) {
                continue;
            }
            // The step itself, not a rollback's `undo:` of it (another output).
            let Some(wave) = &row.wave else { continue };
            if row.key != format!("{}:{wave}", row.kind.as_str()) {
                continue;
            }
            let launched = rows.iter().any(|r| {
                r.key == format!("{}:{wave}", crate::run::StepKind::Launch.as_str())
                    && r.status == StepStatus::Succeeded
            });
            if launched {
                continue;
            }
            let out: RecoveryJobOutput = self.journal.output(&row.key).await?;
            for batch in &out.batches {
                if let Some(job_id) = &batch.job_id {
                    self.budget.adopt(job_id, batch.servers.len() as u32);
                }
            }
        }
        Ok(())
    }

    /// Drives the run until it succeeds, fails, pauses or is interrupted.
    pub async fn drive(&self) -> Result<RunReport, DriverError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut flags = RunFlags {
            auto_approve: self.yes,
            stopping: false,
        };
        self.journal.run_started(self.clock.now()).await?;
        self.progress.run_line(
            self.clock.now(),
            &format!(
                "{} of {} started",
                self.run.operation.as_str(),
                self.runbook.name
            ),
        );

        let mut running = FuturesUnordered::new();
        let mut interrupts = 0u32;
        let mut cancelling = false;
        // Steps that reported while the driver was busy with its own database writes.
        let mut reported: Vec<(String, StepResult)> = Vec::new();
        let mut interrupt = crate::signals::Interrupts::new();
        // Steps left `running` by a driver that died (or stopped at a safe point): no one
        // executes them now that this driver holds the lease. They are started again first, and
        // each reconciles its open intents against AWS before it sends anything.
        let rows = self.journal.steps().await?;
        self.adopt_jobs(&rows).await?;
        let mut orphans: Vec<String> = rows
            .into_iter()
            .filter(|r| r.status == StepStatus::Running)
            .map(|r| r.key)
            .collect();
        loop {
            for (key, result) in std::mem::take(&mut reported) {
                polling(&mut running, &mut reported, self.record(&key, result)).await?;
            }
            if !cancelling
                && polling(&mut running, &mut reported, self.journal.cancel_requested()).await?
            {
                cancelling = true;
                flags.stopping = true;
                let _ = stop_tx.send(true);
                self.progress.run_line(
                    self.clock.now(),
                    "cancel requested: stopping at a safe point",
                );
            }
            if flags.stopping && running.is_empty() && reported.is_empty() {
                return if cancelling {
                    self.cancelled().await
                } else {
                    self.finish(RunOutcome::Stopped).await
                };
            }
            let rows = polling(&mut running, &mut reported, self.journal.steps()).await?;
            let views: Vec<StepView> = rows.iter().map(|r| r.view()).collect();
            let mut commands: Vec<Command> = orphans.drain(..).map(Command::StartStep).collect();
            commands.extend(machine::decide(&views, flags));
            let mut started_any = false;
            let mut finish = None;
            let mut pause = false;
            for command in commands {
                match command {
                    Command::StartStep(key) => {
                        let row = rows
                            .iter()
                            .find(|r| r.key == key)
                            .expect("decided on a known step");
                        let attempt = polling(
                            &mut running,
                            &mut reported,
                            self.journal.transition(
                                &key,
                                row.status,
                                StepEvent::Start,
                                self.clock.now(),
                                None,
                            ),
                        )
                        .await?;
                        let info = StepInfo {
                            key: key.clone(),
                            kind: row.kind,
                            wave: row.wave.clone(),
                            attempt,
                            resumed: row.status == StepStatus::Running,
                        };
                        self.progress.step(
                            self.clock.now(),
                            &key,
                            if row.status == StepStatus::Running {
                                StepProgress::Resumed
                            } else {
                                StepProgress::Started
                            },
                        );
                        let stop = stop_rx.clone();
                        running.push(async move {
                            let ctx = StepCtx {
                                run: &self.run,
                                step: &info,
                                runbook: self.runbook,
                                clients: self.clients,
                                clock: self.clock,
                                journal: self.journal,
                                progress: self.progress,
                                stop,
                                budget: &self.budget,
                                jobs: &self.jobs,
                                instances: &self.instances,
                            };
                            let result = steps::execute(ctx).await;
                            (info.key, result)
                        });
                        started_any = true;
                    }
                    Command::RequestApproval(key) => {
                        let row = rows
                            .iter()
                            .find(|r| r.key == key)
                            .expect("decided on a known step");
                        let asked = self.interactive && {
                            let preview = polling(
                                &mut running,
                                &mut reported,
                                self.preview(row, stop_rx.clone()),
                            )
                            .await;
                            polling(&mut running, &mut reported, self.approver.approve(&preview))
                                .await
                        };
                        if asked {
                            polling(
                                &mut running,
                                &mut reported,
                                self.journal.approve(
                                    &key,
                                    &operator(),
                                    Some("approved at the prompt"),
                                    self.clock.now(),
                                ),
                            )
                            .await?;
                            started_any = true; // decide again at once: the step is now startable
                        } else if row.status != StepStatus::WaitingApproval {
                            polling(
                                &mut running,
                                &mut reported,
                                self.journal.transition(
                                    &key,
                                    row.status,
                                    StepEvent::AwaitApproval,
                                    self.clock.now(),
                                    None,
                                ),
                            )
                            .await?;
                            self.progress.line(
                                self.clock.now(),
                                &key,
                                "waiting for approval: drs-runbook approve <run> --step <step>",
                            );
                        }
                    }
                    Command::Pause => pause = true,
                    Command::Wait => {}
                    Command::Finish(outcome) => finish = Some(outcome),
                }
            }
            if !reported.is_empty() {
                continue; // record what reported first, then decide again
            }
            if let Some(outcome) = finish {
                return self.finish(outcome).await;
            }
            // Something started, or an operator just approved at the prompt: decide again
            // before pausing (the Pause decided above predates that approval).
            if started_any {
                continue;
            }
            if pause && running.is_empty() {
                return self.pause(&rows).await;
            }
            // Wait for a step to report, for Ctrl-C, or poll for a `cancel` from another process.
            tokio::select! {
                Some(done) = running.next() => reported.push(done),
                _ = tokio::time::sleep(CANCEL_POLL) => {}
                signal = interrupt.recv() => {
                    interrupts += 1;
                    if interrupts > 1 {
                        self.progress.run_line(self.clock.now(), "interrupted again: stopping now; resume the run to continue");
                        self.journal.finish_run("interrupted", None, None, Some("interrupted twice"), self.clock.now()).await?;
                        return self.report("interrupted", None).await;
                    }
                    flags.stopping = true;
                    let _ = stop_tx.send(true);
                    self.progress.run_line(self.clock.now(), &format!("{signal}: stopping at a safe point (Ctrl-C again to stop at once); the run stays resumable"));
                }
            }
        }
    }

    /// Ends a cancelled run: its unfinished steps cancelled, the run `cancelled` (rollbackable).
    async fn cancelled(&self) -> Result<RunReport, DriverError> {
        let now = self.clock.now();
        let cancelled = self.journal.cancel_unfinished(now).await?;
        self.journal
            .finish_run("cancelled", None, None, None, now)
            .await?;
        self.progress.run_line(
            now,
            &format!(
                "cancelled ({} unfinished step(s)); `drs-runbook rollback {}` undoes what it did",
                cancelled.len(),
                self.run.id
            ),
        );
        self.report("cancelled", None).await
    }

    async fn record(&self, key: &str, result: StepResult) -> Result<(), DriverError> {
        let now = self.clock.now();
        match result {
            StepResult::Succeeded => {
                self.journal
                    .transition(key, StepStatus::Running, StepEvent::Succeed, now, None)
                    .await?;
                self.progress.step(now, key, StepProgress::Succeeded);
            }
            StepResult::Failed(failure) => {
                self.journal
                    .transition(
                        key,
                        StepStatus::Running,
                        StepEvent::Fail,
                        now,
                        Some(&failure),
                    )
                    .await?;
                self.progress
                    .step(now, key, StepProgress::Failed(failure.to_string()));
            }
            StepResult::Stopped => {
                self.progress
                    .step(now, key, StepProgress::StoppedAtSafePoint);
            }
        }
        Ok(())
    }

    /// What the gate before `row` lets through, read now: the step's own preview (read calls
    /// only, nothing journaled).
    async fn preview(
        &self,
        row: &StepRow,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> crate::run::progress::GatePreview {
        let info = StepInfo {
            key: row.key.clone(),
            kind: row.kind,
            wave: row.wave.clone(),
            attempt: row.attempts,
            resumed: false,
        };
        let ctx = StepCtx {
            run: &self.run,
            step: &info,
            runbook: self.runbook,
            clients: self.clients,
            clock: self.clock,
            journal: self.journal,
            progress: self.progress,
            stop,
            budget: &self.budget,
            jobs: &self.jobs,
            instances: &self.instances,
        };
        steps::preview(ctx).await
    }

    async fn pause(&self, rows: &[StepRow]) -> Result<RunReport, DriverError> {
        let gates: Vec<&StepRow> = rows
            .iter()
            .filter(|r| {
                r.status == StepStatus::WaitingApproval
                    || (r.needs_approval && !r.approved && r.status == StepStatus::Pending)
            })
            .collect();
        let waiting = gates
            .iter()
            .map(|r| r.key.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        // What each waiting gate lets through, for whoever approves it later (the JSON result
        // and the notification carry it; the lines below show it).
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut approvals = Vec::new();
        for gate in gates {
            let preview = self.preview(gate, stop_rx.clone()).await;
            for line in preview.lines() {
                self.progress.line(self.clock.now(), &gate.key, &line);
            }
            approvals.push(preview);
        }
        self.journal
            .finish_run("paused", None, None, None, self.clock.now())
            .await?;
        self.progress.run_line(
            self.clock.now(),
            &format!(
                "paused: waiting for approval of {waiting} (drs-runbook approve {} --step <step>)",
                self.run.id
            ),
        );
        let mut report = self.report("paused", Some(waiting)).await?;
        report.approvals = approvals;
        Ok(report)
    }

    async fn finish(&self, outcome: RunOutcome) -> Result<RunReport, DriverError> {
        if outcome == RunOutcome::Failed {
            let waiting = self.journal.awaiting_operator().await?;
            if !waiting.is_empty() {
                return self.wait_for_operator(waiting).await;
            }
        }
        let (rto, rpo) = self.measure().await?;
        let (status, error) = match outcome {
            RunOutcome::Succeeded => ("succeeded", None),
            RunOutcome::Failed => ("failed", self.journal.first_failure().await?),
            RunOutcome::Stopped => ("interrupted", None),
        };
        self.journal
            .finish_run(status, rto, rpo, error.as_deref(), self.clock.now())
            .await?;
        let report = self.report(status, None).await?;
        let mut line = match (&report.rto_seconds, &report.rpo_seconds) {
            (Some(rto), Some(rpo)) => format!("{status}: RTO {} RPO {}", human(*rto), human(*rpo)),
            (Some(rto), None) => format!("{status}: RTO {}", human(*rto)),
            _ => status.to_string(),
        };
        if let Some(spread) = report.snapshot_spread_seconds {
            line.push_str(&format!("; snapshots within {}", human(spread)));
        }
        self.progress.run_line(self.clock.now(), &line);
        Ok(report)
    }

    /// Pauses a run whose failed steps wait for an operator's decision (actions in doubt after
    /// a crash): exit 3, each step named with what `retry` and `skip` would do.
    async fn wait_for_operator(
        &self,
        waiting: Vec<(String, crate::run::StepFailure)>,
    ) -> Result<RunReport, DriverError> {
        let now = self.clock.now();
        let keys = waiting
            .iter()
            .map(|(key, _)| key.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut approvals = Vec::new();
        for (key, failure) in &waiting {
            self.progress.line(now, key, &failure.to_string());
            approvals.push(crate::run::progress::GatePreview {
                step: key.clone(),
                changes: vec![crate::run::progress::Change::new(
                    crate::run::progress::Change::DECIDE,
                    failure.to_string(),
                )],
                unavailable: None,
            });
        }
        self.journal
            .finish_run("paused", None, None, None, now)
            .await?;
        self.progress.run_line(
            now,
            &format!(
                "paused: {keys} in doubt, waiting for an operator (drs-runbook retry {0} --step <step>, or skip {0} --step <step> --reason ...)",
                self.run.id
            ),
        );
        let mut report = self.report("paused", Some(keys)).await?;
        report.approvals = approvals;
        Ok(report)
    }

    /// Measured RTO and RPO ([`super::measure::measure`]) over the succeeded steps' typed
    /// outputs.
    async fn measure(&self) -> Result<(Option<f64>, Option<f64>), DriverError> {
        let mut evidence = Vec::new();
        for row in self.journal.steps().await? {
            if row.status != StepStatus::Succeeded {
                continue;
            }
            let output = self.journal.output_value(&row.key).await?;
            evidence.extend(Evidence::decode(
                self.journal.run_id(),
                self.run.operation,
                row.kind,
                &row.key,
                output,
            )?);
        }
        let m = measure(self.run.operation, self.run.started_at, &evidence);
        Ok((m.rto_seconds, m.rpo_seconds))
    }

    /// The report of the run as stored now.
    pub async fn report(
        &self,
        status: &str,
        waiting_for: Option<String>,
    ) -> Result<RunReport, DriverError> {
        report(self.journal, self.runbook, status, waiting_for).await
    }
}

/// Builds the report of a run from the journal.
pub async fn report(
    journal: &Journal,
    runbook: &Runbook,
    status: &str,
    waiting_for: Option<String>,
) -> Result<RunReport, DriverError> {
    let rows = journal.steps().await?;
    let run = journal.run_summary().await?;
    let mut conversions = Vec::new();
    for row in rows.iter().filter(|r| {
        r.kind == crate::run::StepKind::SnapshotConversion && r.status == StepStatus::Succeeded
    }) {
        let output = journal.output_value(&row.key).await?;
        conversions.push(Evidence::Conversion(crate::run::journal::decode_output(
            journal.run_id(),
            &row.key,
            output,
        )?));
    }
    let objectives = (runbook.rto().is_some() || runbook.rpo().is_some()).then(|| {
        let rto_goal = runbook.rto();
        let rpo_goal = runbook.rpo();
        ObjectivesReport {
            rto_seconds: rto_goal.map(|d| d.as_secs_f64()),
            rpo_seconds: rpo_goal.map(|d| d.as_secs_f64()),
            rto_met: rto_goal
                .zip(run.rto_seconds)
                .map(|(goal, got)| got <= goal.as_secs_f64()),
            rpo_met: rpo_goal
                .zip(run.rpo_seconds)
                .map(|(goal, got)| got <= goal.as_secs_f64()),
        }
    });
    Ok(RunReport {
        run_id: run.id.clone(),
        operation: run.operation.clone(),
        status: status.to_string(),
        steps: journal
            .stored_steps()
            .await?
            .iter()
            .map(crate::store::steps::StepObject::from)
            .collect(),
        rto_seconds: run.rto_seconds,
        rpo_seconds: run.rpo_seconds,
        snapshot_spread_seconds: super::measure::snapshot_spread(&conversions),
        objectives,
        error: run.error.clone(),
        waiting_for,
        approvals: Vec::new(),
        refused: status == "failed" && journal.refused().await?,
    })
}

/// The operator's name, for the audit trail.
pub fn operator() -> String {
    std::env::var("DRS_RUNBOOK_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(user_of_this_process)
        .unwrap_or_else(|| "unknown".to_string())
}

/// The login name of this process's real user (cron and systemd may set no `USER`), read from
/// `/proc/self/status` and `/etc/passwd`; `uid:<n>` when the user has no entry.
fn user_of_this_process() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 2 && fields[2] == uid).then(|| fields[0].to_string())
    });
    Some(name.unwrap_or(format!("uid:{uid}")))
}

/// `95.0` -> `1m35s`.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}
