//! [`ReportData`]: everything a run report says, built by a **pure** function ([`build`]) from
//! rows already read from the store ([`Sources`]). The renderers (Markdown, JSON, HTML) are pure
//! functions of it, so every figure is computed once, here, and tested without a database.
//!
//! Where the figures come from:
//! - the run row: who ran it and from where, the runbook text and SHA-256, RTO/RPO measured;
//! - the stored runbook text (parsed again): the objectives in force when the run started;
//! - the steps' outputs (see `src/steps/*.rs`): per-server conversion and launch data, DRS job
//!   log events as the steps saw them, DNS records before and after, the cleanup inventory;
//! - the effects: every mutating AWS call with its request ID, and the jobs StartRecovery made;
//! - the event chain, verified: the final hash.
//!
//! Nothing here calls AWS: a report is evidence of what was recorded, not of the world now.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::ReportError;
use crate::aws::elbv2::Target;
use crate::aws::route53::RecordSet;
use crate::run::journal::{decode_value, output_type_name};
use crate::run::{Operation, StepKind};
use crate::steps::action::ActionOutput;
use crate::steps::cleanup::CleanupOutput;
use crate::steps::dns_cutover::DnsOutput;
use crate::steps::launch::LaunchOutput;
use crate::steps::lb_switch::LbSwitchOutput;
use crate::steps::recovery_job::RecoveryJobOutput;
use crate::steps::snapshot_conversion::ConversionOutput;
use crate::store::{ChainBreak, Effect, Run, RunSummary, Step, VerifiedChain};

/// A run report. Its serde form is the JSON report (`report --format json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportData {
    pub generated_at: DateTime<Utc>,
    pub run: RunFacts,
    pub runbook: RunbookFacts,
    pub steps: Vec<StepFacts>,
    /// Every source server the run recovered, wave by wave.
    pub servers: Vec<ServerFacts>,
    /// The DRS jobs the run started, with their log events.
    pub jobs: Vec<JobFacts>,
    pub dns: Vec<DnsFacts>,
    pub load_balancers: Vec<TargetGroupFacts>,
    /// Approvals and skips, in time order.
    pub operator_actions: Vec<OperatorAction>,
    /// The runbook's actions (`[[wave.action]]`) the run planned, in plan order.
    #[serde(default)]
    pub actions: Vec<ActionFacts>,
    pub objectives: ObjectiveFacts,
    /// Drills only: what was launched and what was terminated.
    pub cleanup: Option<CleanupFacts>,
    /// Every mutating AWS call, in order.
    pub aws_requests: Vec<AwsRequest>,
    pub audit: AuditFacts,
    /// Drills only: the last drills of the same runbook, oldest first (this one included).
    pub trend: Vec<TrendPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    #[serde(rename = "run_id")]
    pub id: String,
    pub operation: String,
    pub mode: String,
    pub status: String,
    /// `real` or `simulated`: which clock the times are on.
    pub clock: String,
    pub operator: String,
    pub host: String,
    /// A failback's failover, a rollback's run.
    pub parent_run_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The reference point of the RPO (the run's start when no disaster time was declared).
    pub declared_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookFacts {
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    pub sha256: String,
    /// The runbook exactly as it was run.
    pub text: String,
}

/// A step as the report shows it: the one step object of every JSON document.
pub use crate::store::steps::StepObject as StepFacts;

impl StepFacts {
    /// The operator's marks on the step (approval with its comment, skip reason, error), each
    /// passed through `escape` for the output format.
    pub fn notes(&self, escape: impl Fn(&str) -> String) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(by) = &self.approved_by {
            let comment = self
                .approval_comment
                .as_deref()
                .map(|c| format!(": {}", escape(c)));
            notes.push(format!(
                "approved by {}{}",
                escape(by),
                comment.unwrap_or_default()
            ));
        }
        if let Some(reason) = &self.skip_reason {
            notes.push(format!("skipped: {}", escape(reason)));
        }
        if let Some(error) = &self.error {
            notes.push(format!("error: {}", escape(error)));
        }
        notes
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerFacts {
    pub source_server_id: String,
    pub wave: String,
    pub job_id: Option<String>,
    /// When its recovery job started.
    pub started_at: Option<DateTime<Utc>>,
    /// `on_demand` or `previous`.
    pub snapshot: Option<String>,
    pub snapshot_at: Option<DateTime<Utc>>,
    pub conversion_started_at: Option<DateTime<Utc>>,
    pub converted_at: Option<DateTime<Utc>>,
    /// The point in time its recovered data is from.
    pub data_timestamp: Option<DateTime<Utc>>,
    /// Declared time minus the data timestamp, never negative.
    pub rpo_seconds: Option<f64>,
    pub launch_status: Option<String>,
    pub recovery_instance_id: Option<String>,
    pub ec2_instance_id: Option<String>,
    pub private_ips: Vec<String>,
    /// When its wave's jobs had all ended.
    pub launched_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFacts {
    pub job_id: String,
    pub step_key: String,
    pub wave: Option<String>,
    pub is_drill: bool,
    pub servers: Vec<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// The request ID of the StartRecovery call that created it (none when reconciled).
    pub aws_request_id: Option<String>,
    pub log: Vec<JobLogEvent>,
}

/// A DRS job log event as the run's steps recorded it (DescribeJobLogItems).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLogEvent {
    pub at: DateTime<Utc>,
    pub event: String,
    pub source_server_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsFacts {
    pub hosted_zone_id: String,
    pub account: String,
    pub before: Vec<RecordSet>,
    pub after: Vec<RecordSet>,
    pub change_id: Option<String>,
    pub insync_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroupFacts {
    pub target_group_arn: String,
    pub before: Vec<Target>,
    pub registered: Vec<Target>,
    pub deregistered: Vec<Target>,
    pub healthy_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorAction {
    pub step_key: String,
    /// `approved` or `skipped`.
    pub action: String,
    pub by: Option<String>,
    pub at: Option<DateTime<Utc>>,
    /// The approval comment or the skip reason.
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveFacts {
    pub rto: Measure,
    pub rpo: Measure,
    /// The consistency figure: newest minus oldest data timestamp of the run's servers, all
    /// waves together (converting ahead takes every wave's snapshots within seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_spread_seconds: Option<f64>,
}

/// One objective against its measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    pub objective_seconds: Option<f64>,
    pub measured_seconds: Option<f64>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// An objective, but nothing measured (the run did not get that far).
    NotMeasured,
    /// Measured, but the runbook sets no objective.
    NoObjective,
}

impl Verdict {
    pub fn of(objective: Option<f64>, measured: Option<f64>) -> Verdict {
        match (objective, measured) {
            (Some(goal), Some(got)) if got <= goal => Verdict::Pass,
            (Some(_), Some(_)) => Verdict::Fail,
            (Some(_), None) => Verdict::NotMeasured,
            (None, _) => Verdict::NoObjective,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotMeasured => "not measured",
            Verdict::NoObjective => "no objective",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanupFacts {
    /// The drill instances the run created (recovery instance IDs).
    pub created: Vec<String>,
    pub terminated: Vec<String>,
    pub remaining: Vec<String>,
    pub terminate_job_id: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    /// Every created instance was terminated and none remains.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwsRequest {
    pub at: DateTime<Utc>,
    pub step_key: String,
    pub operation: String,
    pub account: String,
    pub region: String,
    pub state: String,
    pub aws_request_id: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditFacts {
    /// The chain recomputed from the stored events matches.
    pub verified: bool,
    pub event_count: i64,
    /// The hash of the last event, recomputed (only when the chain verifies).
    pub final_hash: Option<String>,
    /// The final hash the run recorded when it ended.
    pub recorded_final_hash: Option<String>,
    /// Where the chain breaks, in words.
    pub broken: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub run_id: String,
    pub created_at: DateTime<Utc>,
    pub status: String,
    pub rto: Measure,
    pub rpo: Measure,
}

/// What [`build`] reads: the rows of one run, as the store returns them.
pub struct Sources<'a> {
    pub run: &'a Run,
    pub steps: &'a [Step],
    pub effects: &'a [Effect],
    pub chain: &'a Result<VerifiedChain, ChainBreak>,
    /// For drills: the last drills of the runbook with their objectives, newest first.
    pub trend: Vec<(RunSummary, Objectives)>,
    pub generated_at: DateTime<Utc>,
}

/// The objectives of a stored runbook, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Objectives {
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    /// Whether the stored text still parses (an old run may predate a format change).
    pub parsed: bool,
}

impl Objectives {
    /// Parses the runbook text stored with a run; a text that no longer parses has none.
    pub fn of_text(text: &str, path: &str) -> (Objectives, Option<String>) {
        match crate::runbook::parse(text, path) {
            Ok(runbook) => (
                Objectives {
                    rto_seconds: runbook.rto().map(|d| d.as_secs_f64()),
                    rpo_seconds: runbook.rpo().map(|d| d.as_secs_f64()),
                    parsed: true,
                },
                runbook.description.clone(),
            ),
            Err(_) => (Objectives::default(), None),
        }
    }
}

/// Builds the report of one run. Pure: no I/O, no clock. A step output that does not decode as
/// its step's type is an error naming the run and the step.
pub fn build(sources: Sources<'_>) -> Result<ReportData, ReportError> {
    let run = sources.run;
    let (objectives, description) = Objectives::of_text(&run.runbook_text, &run.runbook_path);
    let outputs = StepOutputs::read(run, sources.steps)?;
    // Data is lost against the source's last write: the fence (a failback's quiesce), or else
    // the declaration.
    let rpo_reference = outputs.fenced_at.or(run.declared_at).or(run.started_at);
    Ok(ReportData {
        generated_at: sources.generated_at,
        run: run_facts(run),
        runbook: RunbookFacts {
            name: run.runbook_name.clone(),
            path: run.runbook_path.clone(),
            description,
            sha256: run.runbook_sha256.clone(),
            text: run.runbook_text.clone(),
        },
        steps: sources.steps.iter().map(StepFacts::from).collect(),
        servers: servers(&outputs, rpo_reference),
        jobs: jobs(&outputs, sources.effects),
        dns: dns(&outputs),
        load_balancers: load_balancers(&outputs),
        operator_actions: operator_actions(sources.steps),
        actions: actions(run, sources.steps)?,
        objectives: ObjectiveFacts {
            rto: measure(objectives.rto_seconds, run.rto_seconds),
            rpo: measure(objectives.rpo_seconds, run.rpo_seconds),
            snapshot_spread_seconds: snapshot_spread(&outputs),
        },
        cleanup: cleanup(&outputs),
        aws_requests: sources
            .effects
            .iter()
            .filter(|e| !e.operation.starts_with("action:"))
            .map(aws_request)
            .collect(),
        audit: audit(run, sources.chain),
        trend: trend(sources.trend),
    })
}

/// An action step of the run: what it ran, when, its result and its captured output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionFacts {
    pub step: String,
    pub wave: Option<String>,
    /// The step's status (`succeeded`, `failed`, `waiting_approval`, ...).
    pub status: String,
    /// `command`, `http` or `manual`.
    pub kind: String,
    /// The command line, the URL or the instructions.
    pub run: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub exit_status: Option<i32>,
    pub http_status: Option<u16>,
    pub attempt_count: usize,
    pub timed_out: bool,
    pub passed_over: bool,
    pub error: Option<String>,
    /// The captured output, last 16 KiB of each stream (an HTTP check: the last body).
    pub stdout: String,
    pub stderr: String,
}

fn actions(run: &Run, steps: &[Step]) -> Result<Vec<ActionFacts>, ReportError> {
    let mut facts = Vec::new();
    for step in steps.iter().filter(|s| s.kind == StepKind::Action.as_str()) {
        let out: ActionOutput = decode(run, step)?;
        let started_at = time(&out.started_at);
        let finished_at = time(&out.finished_at);
        facts.push(ActionFacts {
            step: step.key.clone(),
            wave: step.wave.clone(),
            status: step.status.as_str().to_owned(),
            kind: out.kind,
            run: out.run,
            started_at,
            finished_at,
            duration_seconds: seconds_between(started_at, finished_at),
            exit_status: out.exit_status,
            http_status: out.http_status,
            attempt_count: out.attempt_count,
            timed_out: out.timed_out,
            passed_over: out.passed_over,
            error: out.error,
            stdout: out.stdout,
            stderr: out.stderr,
        });
    }
    Ok(facts)
}

/// Newest minus oldest data timestamp over every wave's conversion.
fn snapshot_spread(outputs: &StepOutputs) -> Option<f64> {
    let stamps: Vec<DateTime<Utc>> = outputs
        .conversions
        .values()
        .flat_map(|c| c.servers.values())
        .filter_map(|s| time(&s.data_timestamp))
        .collect();
    seconds_between(stamps.iter().min().copied(), stamps.iter().max().copied())
}

fn seconds_between(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<f64> {
    start
        .zip(end)
        .map(|(a, b)| (b - a).num_milliseconds() as f64 / 1000.0)
}

fn time(text: &Option<String>) -> Option<DateTime<Utc>> {
    text.as_deref().and_then(crate::aws::parse_time)
}

fn measure(objective: Option<f64>, measured: Option<f64>) -> Measure {
    Measure {
        objective_seconds: objective,
        measured_seconds: measured,
        verdict: Verdict::of(objective, measured),
    }
}

fn run_facts(run: &Run) -> RunFacts {
    RunFacts {
        id: run.id.to_string(),
        operation: run.operation.as_str().to_owned(),
        mode: run.mode.as_str().to_owned(),
        status: run.status.as_str().to_owned(),
        clock: run.clock.as_str().to_owned(),
        operator: run.operator.clone(),
        host: run.host.clone(),
        parent_run_id: run.parent_run_id.as_ref().map(ToString::to_string),
        created_at: run.created_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        declared_at: run.declared_at,
        duration_seconds: seconds_between(run.started_at, run.finished_at),
        error: run.error.clone(),
    }
}

/// The step outputs a report reads, decoded per wave into the typed outputs of their steps
/// (`src/steps/*.rs`): an output that does not decode is a [`ReportError::StepOutput`] naming
/// the run and the step, never an empty default.
#[derive(Default)]
struct StepOutputs {
    /// Wave name -> outputs, in plan order.
    jobs: Vec<(String, String, RecoveryJobOutput)>,
    conversions: BTreeMap<String, ConversionOutput>,
    launches: BTreeMap<String, LaunchOutput>,
    dns: Vec<DnsOutput>,
    lb: Vec<LbSwitchOutput>,
    cleanup: Option<CleanupOutput>,
    /// When the fence of a planned failover saw the source stopped and caught up, or the
    /// quiesce of a failback saw B3 out of its target groups.
    fenced_at: Option<DateTime<Utc>>,
    /// Waves in plan order.
    waves: Vec<String>,
}

/// The output of `step` as its step's type `T` (`{}`: nothing recorded yet, the default).
fn decode<T: serde::de::DeserializeOwned + Default>(
    run: &Run,
    step: &Step,
) -> Result<T, ReportError> {
    decode_value(step.output.clone()).map_err(|source| ReportError::StepOutput {
        run_id: run.id.clone(),
        step: step.key.clone(),
        what: output_type_name::<T>(),
        source,
    })
}

impl StepOutputs {
    fn read(run: &Run, steps: &[Step]) -> Result<StepOutputs, ReportError> {
        let mut out = StepOutputs::default();
        for step in steps {
            let wave = step.wave.clone().unwrap_or_default();
            if step.wave.is_some() && !out.waves.contains(&wave) {
                out.waves.push(wave.clone());
            }
            let kind =
                StepKind::from_name(&step.kind).ok_or_else(|| ReportError::UnknownStepKind {
                    run_id: run.id.clone(),
                    step: step.key.clone(),
                    kind: step.kind.clone(),
                })?;
            // A rollback's steps carry the kind of the step they undo, and their outputs are
            // compensations: the report shows none of them as recovery, DNS or LB facts.
            if run.operation == Operation::Rollback {
                continue;
            }
            match kind {
                StepKind::RecoveryJob | StepKind::A2Recovery => {
                    out.jobs.push((wave, step.key.clone(), decode(run, step)?))
                }
                StepKind::SnapshotConversion => {
                    out.conversions.insert(wave, decode(run, step)?);
                }
                StepKind::Launch => {
                    out.launches.insert(wave, decode(run, step)?);
                }
                // A held wave's boot completes its launch (gate, IPs from EC2) once it has
                // taken it over: it comes later and wins.
                StepKind::Boot => {
                    let booted: LaunchOutput = decode(run, step)?;
                    if booted.completed_at.is_some() {
                        out.launches.insert(wave, booted);
                    }
                }
                StepKind::DnsCutover => out.dns.push(decode(run, step)?),
                StepKind::LbSwitch => out.lb.push(decode(run, step)?),
                StepKind::Cleanup => out.cleanup = Some(decode(run, step)?),
                StepKind::FenceSource => {
                    let fence: crate::steps::fence_source::FenceOutput = decode(run, step)?;
                    out.fenced_at = fence.fenced_at.as_deref().and_then(crate::aws::parse_time);
                }
                StepKind::Quiesce => {
                    let quiesce: crate::steps::quiesce::QuiesceOutput = decode(run, step)?;
                    out.fenced_at = quiesce
                        .quiesced_at
                        .as_deref()
                        .and_then(crate::aws::parse_time);
                }
                StepKind::Preflight
                | StepKind::Validate
                | StepKind::ReversedReplication
                | StepKind::Action => {}
            }
        }
        Ok(out)
    }
}

fn servers(outputs: &StepOutputs, rpo_reference: Option<DateTime<Utc>>) -> Vec<ServerFacts> {
    let mut servers = Vec::new();
    for wave in &outputs.waves {
        let batches = outputs
            .jobs
            .iter()
            .filter(|(w, _, _)| w == wave)
            .flat_map(|(_, _, job)| job.batches.iter());
        let conversion = outputs.conversions.get(wave);
        let launch = outputs.launches.get(wave);
        for batch in batches {
            for (server, _) in &batch.servers {
                let converted = conversion.and_then(|c| c.servers.get(server));
                let launched = launch.and_then(|l| l.servers.get(server));
                let started_at = time(&batch.started_at);
                let launched_at = launch
                    .and_then(|l| time(&l.completed_at))
                    .filter(|_| launched.is_some());
                let data_timestamp = converted.and_then(|c| time(&c.data_timestamp));
                let error = converted
                    .and_then(|c| c.failed.as_ref())
                    .map(|f| {
                        format!(
                            "{}{}",
                            f.event,
                            f.raw_error
                                .as_ref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        )
                    })
                    .or_else(|| launched.and_then(|l| l.error.clone()));
                servers.push(ServerFacts {
                    source_server_id: server.clone(),
                    wave: wave.clone(),
                    job_id: batch.job_id.clone(),
                    started_at,
                    snapshot: converted.and_then(|c| c.snapshot.clone()),
                    snapshot_at: converted.and_then(|c| time(&c.snapshot_at)),
                    conversion_started_at: converted.and_then(|c| time(&c.conversion_started_at)),
                    converted_at: converted.and_then(|c| time(&c.converted_at)),
                    data_timestamp,
                    rpo_seconds: seconds_between(data_timestamp, rpo_reference).map(|s| s.max(0.0)),
                    launch_status: launched.and_then(|l| l.launch_status.clone()),
                    recovery_instance_id: launched.and_then(|l| l.recovery_instance_id.clone()),
                    ec2_instance_id: launched.and_then(|l| l.ec2_instance_id.clone()),
                    private_ips: launched.map(|l| l.private_ips.clone()).unwrap_or_default(),
                    launched_at,
                    duration_seconds: seconds_between(started_at, launched_at),
                    error,
                });
            }
        }
    }
    servers
}

fn jobs(outputs: &StepOutputs, effects: &[Effect]) -> Vec<JobFacts> {
    let mut jobs = Vec::new();
    for (wave, step_key, output) in &outputs.jobs {
        for batch in &output.batches {
            let Some(job_id) = &batch.job_id else {
                continue;
            };
            let effect = effects.iter().find(|e| {
                e.operation == "drs:StartRecovery"
                    && e.response
                        .as_ref()
                        .and_then(|r| r["id"].as_str().or(r["job_id"].as_str()))
                        == Some(job_id.as_str())
            });
            let started_at = time(&batch.started_at).or(effect.map(|e| e.created_at));
            let servers: Vec<String> = batch.servers.iter().map(|(s, _)| s.clone()).collect();
            jobs.push(JobFacts {
                job_id: job_id.clone(),
                step_key: step_key.clone(),
                wave: (!wave.is_empty()).then(|| wave.clone()),
                is_drill: output.is_drill,
                log: job_log(outputs, wave, job_id, started_at),
                servers,
                started_at,
                aws_request_id: effect.and_then(|e| e.aws_request_id.clone()),
            });
        }
    }
    jobs
}

/// The job's log events as the conversion and launch steps recorded them, in time order.
fn job_log(
    outputs: &StepOutputs,
    wave: &str,
    job_id: &str,
    started_at: Option<DateTime<Utc>>,
) -> Vec<JobLogEvent> {
    // The log as DRS returned it after the job ended, when the launch step kept it.
    if let Some(items) = outputs
        .launches
        .get(wave)
        .and_then(|l| l.job_logs.get(job_id))
    {
        return items
            .iter()
            .filter_map(|item| {
                let at = item.at.as_deref().and_then(crate::aws::parse_time)?;
                let detail = [
                    item.data_timestamp
                        .as_ref()
                        .map(|t| format!("data timestamp {t}")),
                    item.target_instance_id
                        .as_ref()
                        .map(|i| format!("instance {i}")),
                    item.raw_error.clone(),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
                Some(JobLogEvent {
                    at,
                    event: item.event.clone(),
                    source_server_id: item.source_server_id.clone(),
                    detail: (!detail.is_empty()).then(|| detail.join("; ")),
                })
            })
            .collect();
    }
    // Older runs: rebuilt from what the conversion and launch steps observed.
    let mut log = Vec::new();
    let mut push =
        |at: Option<DateTime<Utc>>, event: &str, server: Option<&str>, detail: Option<String>| {
            if let Some(at) = at {
                log.push(JobLogEvent {
                    at,
                    event: event.to_owned(),
                    source_server_id: server.map(str::to_owned),
                    detail,
                });
            }
        };
    push(started_at, "JOB_START", None, None);
    if let Some(conversion) = outputs.conversions.get(wave) {
        for (server, c) in conversion
            .servers
            .iter()
            .filter(|(_, c)| c.job_id == job_id)
        {
            let snapshot_event = match c.snapshot.as_deref() {
                Some("previous") => "USING_PREVIOUS_SNAPSHOT",
                _ => "SNAPSHOT_END",
            };
            push(time(&c.snapshot_at), snapshot_event, Some(server), None);
            push(
                time(&c.conversion_started_at),
                "CONVERSION_START",
                Some(server),
                None,
            );
            push(
                time(&c.converted_at),
                "CONVERSION_END",
                Some(server),
                c.data_timestamp
                    .as_ref()
                    .map(|t| format!("data timestamp {t}")),
            );
            if let Some(failed) = &c.failed {
                push(
                    time(&failed.at),
                    &failed.event,
                    Some(server),
                    failed.raw_error.clone(),
                );
            }
        }
    }
    if let Some(launch) = outputs.launches.get(wave) {
        let ended = time(&launch.completed_at);
        let mut any = false;
        for (server, l) in launch.servers.iter().filter(|(_, l)| l.job_id == job_id) {
            any = true;
            // Without DRS's own log (LAUNCH_END), the outcome is the server's launchStatus.
            let event = if l.launch_status.as_deref() == Some("LAUNCHED") {
                "launchStatus LAUNCHED (observed)"
            } else {
                "LAUNCH_FAILED"
            };
            push(ended, event, Some(server), l.launch_status.clone());
        }
        if any {
            push(ended, "JOB_END", None, None);
        }
    }
    log.sort_by_key(|e| e.at);
    log
}

fn dns(outputs: &StepOutputs) -> Vec<DnsFacts> {
    outputs
        .dns
        .iter()
        .flat_map(|d| d.zones.iter())
        .map(|z| DnsFacts {
            hosted_zone_id: z.hosted_zone_id.clone(),
            account: z.account.as_str().to_owned(),
            before: z.before.clone(),
            after: z.after.clone(),
            change_id: z.change_id.clone(),
            insync_at: time(&z.insync_at),
        })
        .collect()
}

fn load_balancers(outputs: &StepOutputs) -> Vec<TargetGroupFacts> {
    outputs
        .lb
        .iter()
        .flat_map(|l| l.groups.iter())
        .map(|g| TargetGroupFacts {
            target_group_arn: g.target_group_arn.clone(),
            before: g.before.clone(),
            registered: g.registered.clone(),
            deregistered: g.deregistered.clone(),
            healthy_at: time(&g.healthy_at),
        })
        .collect()
}

fn operator_actions(steps: &[Step]) -> Vec<OperatorAction> {
    let mut actions = Vec::new();
    for step in steps {
        if step.approved_by.is_some() {
            actions.push(OperatorAction {
                step_key: step.key.clone(),
                action: "approved".to_owned(),
                by: step.approved_by.clone(),
                at: step.approved_at,
                comment: step.approval_comment.clone(),
            });
        }
        if let Some(reason) = &step.skip_reason {
            actions.push(OperatorAction {
                step_key: step.key.clone(),
                action: "skipped".to_owned(),
                by: None,
                at: step.finished_at,
                comment: Some(reason.clone()),
            });
        }
    }
    actions.sort_by_key(|a| a.at);
    actions
}

fn cleanup(outputs: &StepOutputs) -> Option<CleanupFacts> {
    outputs.cleanup.as_ref().map(|c| CleanupFacts {
        complete: c.remaining.is_empty()
            && c.verified_at.is_some()
            && c.instances.iter().all(|i| c.terminated.contains(i)),
        created: c.instances.clone(),
        terminated: c.terminated.clone(),
        remaining: c.remaining.clone(),
        terminate_job_id: c.terminate_job_id.clone(),
        verified_at: time(&c.verified_at),
    })
}

fn aws_request(effect: &Effect) -> AwsRequest {
    AwsRequest {
        at: effect.created_at,
        step_key: effect.step_key.clone(),
        operation: effect.operation.clone(),
        account: effect.account.clone(),
        region: effect.region.clone(),
        state: effect.state.as_str().to_owned(),
        aws_request_id: effect.aws_request_id.clone(),
        error: effect.error.clone(),
    }
}

fn audit(run: &Run, chain: &Result<VerifiedChain, ChainBreak>) -> AuditFacts {
    match chain {
        Ok(verified) => AuditFacts {
            verified: true,
            event_count: verified.count,
            final_hash: Some(verified.final_hash.clone()),
            recorded_final_hash: run.final_hash.clone(),
            broken: None,
        },
        Err(broken) => AuditFacts {
            verified: false,
            event_count: run.event_count,
            final_hash: None,
            recorded_final_hash: run.final_hash.clone(),
            broken: Some(broken.to_string()),
        },
    }
}

/// Trend points from runs and their objectives, oldest first.
pub fn trend(runs: Vec<(RunSummary, Objectives)>) -> Vec<TrendPoint> {
    let mut points: Vec<TrendPoint> = runs
        .into_iter()
        .map(|(run, objectives)| TrendPoint {
            run_id: run.id.to_string(),
            created_at: run.created_at,
            status: run.status.as_str().to_owned(),
            rto: measure(objectives.rto_seconds, run.rto_seconds),
            rpo: measure(objectives.rpo_seconds, run.rpo_seconds),
        })
        .collect();
    points.sort_by_key(|p| p.created_at);
    points
}

/// A drill and a failover built in memory, for the renderers' tests.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::store::{
        ClockKind, EffectId, EffectState, Mode, Operation, RunId, RunStatus, StepStatus,
    };
    use chrono::TimeZone;
    use serde_json::{Value, json};

    pub const HOSTILE: &str =
        r#"<script>alert(1)</script> <img src=x onerror=alert(1)> "quoted" 'single' & more"#;

    pub fn t(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap() + chrono::Duration::minutes(minute)
    }

    fn runbook_text(description: &str) -> String {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/runbooks/payments.toml"
        ))
        .unwrap();
        text.replace(
            r#"description = "Payments tier, us-east-1 (111111111111) -> us-west-2 (222222222222)""#,
            &format!("description = {}", toml::Value::String(description.to_owned())),
        )
    }

    pub fn run(operation: Operation) -> Run {
        let text = runbook_text(HOSTILE);
        Run {
            id: RunId::generate(),
            runbook_name: "payments".into(),
            operation,
            mode: Mode::Planned,
            status: RunStatus::Succeeded,
            clock: ClockKind::Simulated,
            operator: "alice".into(),
            host: "bastion-1".into(),
            parent_run_id: None,
            created_at: t(0),
            started_at: Some(t(0)),
            finished_at: Some(t(20)),
            declared_at: None,
            rto_seconds: Some(18.0 * 60.0),
            rpo_seconds: Some(16.0 * 60.0),
            runbook_path: "runbooks/payments.toml".into(),
            runbook_sha256: crate::store::sha256_hex(&text),
            event_count: 3,
            last_event_hash: Some("a".repeat(64)),
            final_hash: Some("a".repeat(64)),
            error: None,
            options: json!({}),
            runbook_text: text,
        }
    }

    pub fn step(
        run: &Run,
        seq: i64,
        key: &str,
        kind: &str,
        wave: Option<&str>,
        span: (i64, i64),
        output: Value,
    ) -> Step {
        Step {
            run_id: run.id.clone(),
            seq,
            key: key.into(),
            kind: kind.into(),
            wave: wave.map(Into::into),
            depends_on: vec![],
            status: StepStatus::Succeeded,
            attempts: 1,
            started_at: Some(t(span.0)),
            finished_at: Some(t(span.1)),
            approved_by: None,
            approved_at: None,
            approval_comment: None,
            skip_reason: None,
            error: None,
            input: json!({}),
            output,
        }
    }

    pub fn steps(run: &Run) -> Vec<Step> {
        let at = |m: i64| t(m).to_rfc3339();
        let mut dns = step(
            run,
            5,
            "dns_cutover",
            "dns_cutover",
            None,
            (15, 18),
            json!({"zones": [{"hosted_zone_id": "Z0123456789ABCDEFGHIJ", "account": "source",
                "before": [{"name": "api.payments.example.com.", "type": "A", "ttl": 60, "values": ["10.0.0.1"]}],
                "after": [{"name": "api.payments.example.com.", "type": "A", "ttl": 60, "values": ["10.1.0.1"]}],
                "change_id": "C123", "insync_at": at(18)}]}),
        );
        dns.approved_by = Some(format!("bob {HOSTILE}"));
        dns.approved_at = Some(t(15));
        dns.approval_comment = Some(HOSTILE.into());
        vec![
            step(
                run,
                1,
                "preflight",
                "preflight",
                None,
                (0, 0),
                json!({"checks": []}),
            ),
            step(
                run,
                2,
                "recovery_job:db",
                "recovery_job",
                Some("db"),
                (0, 1),
                json!({"is_drill": false, "batches": [
                {"index": 0, "servers": [["s-1234567890abcdef0", null]], "job_id": "drsjob-1", "started_at": at(1)}]}),
            ),
            step(
                run,
                3,
                "snapshot_conversion:db",
                "snapshot_conversion",
                Some("db"),
                (1, 8),
                json!({"servers": {"s-1234567890abcdef0": {
                "job_id": "drsjob-1", "snapshot": "previous", "snapshot_at": at(2), "conversion_started_at": at(3), "converted_at": at(8),
                "data_timestamp": (t(0) - chrono::Duration::minutes(16)).to_rfc3339()}}}),
            ),
            step(
                run,
                4,
                "launch:db",
                "launch",
                Some("db"),
                (8, 14),
                json!({"servers": {"s-1234567890abcdef0": {
                "job_id": "drsjob-1", "launch_status": "LAUNCHED", "recovery_instance_id": "i-0abc", "ec2_instance_id": "i-0ec2",
                "private_ips": ["10.1.0.1"], "is_drill": false}}, "completed_at": at(14)}),
            ),
            dns,
        ]
    }

    pub fn effects(run: &Run) -> Vec<Effect> {
        vec![Effect {
            id: EffectId(1),
            run_id: run.id.clone(),
            step_key: "recovery_job:db".into(),
            idempotency_key: "k".into(),
            operation: "drs:StartRecovery".into(),
            account: "222222222222".into(),
            region: "us-west-2".into(),
            state: EffectState::Done,
            aws_request_id: Some("req-start-1".into()),
            created_at: t(1),
            completed_at: Some(t(1)),
            error: None,
            request: json!({}),
            response: Some(json!({"id": "drsjob-1"})),
        }]
    }

    pub fn data(operation: Operation) -> ReportData {
        let run = run(operation);
        let steps = steps(&run);
        let effects = effects(&run);
        let chain = Ok(VerifiedChain {
            count: 3,
            final_hash: "a".repeat(64),
        });
        build(Sources {
            run: &run,
            steps: &steps,
            effects: &effects,
            chain: &chain,
            trend: vec![],
            generated_at: t(30),
        })
        .expect("the fixture's outputs decode")
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;
    use crate::store::{BreakReason, Operation, RunId};

    #[test]
    fn verdicts_compare_measurements_with_objectives() {
        assert_eq!(Verdict::of(Some(60.0), Some(60.0)), Verdict::Pass);
        assert_eq!(Verdict::of(Some(60.0), Some(60.5)), Verdict::Fail);
        assert_eq!(Verdict::of(Some(60.0), None), Verdict::NotMeasured);
        assert_eq!(Verdict::of(None, Some(1.0)), Verdict::NoObjective);
    }

    #[test]
    fn the_report_carries_the_objectives_of_the_stored_runbook() {
        let data = data(Operation::Failover);
        assert_eq!(
            data.objectives.rto,
            Measure {
                objective_seconds: Some(1800.0),
                measured_seconds: Some(1080.0),
                verdict: Verdict::Pass
            }
        );
        assert_eq!(
            data.objectives.rpo,
            Measure {
                objective_seconds: Some(900.0),
                measured_seconds: Some(960.0),
                verdict: Verdict::Fail
            }
        );
        assert_eq!(data.runbook.description.as_deref(), Some(HOSTILE));
        assert_eq!(
            data.runbook.sha256,
            crate::store::sha256_hex(&data.runbook.text)
        );
    }

    #[test]
    fn servers_combine_job_conversion_and_launch() {
        let data = data(Operation::Failover);
        assert_eq!(data.servers.len(), 1);
        let s = &data.servers[0];
        assert_eq!(s.job_id.as_deref(), Some("drsjob-1"));
        assert_eq!(
            s.rpo_seconds,
            Some(960.0),
            "run start minus the data timestamp"
        );
        assert_eq!((s.started_at, s.launched_at), (Some(t(1)), Some(t(14))));
        assert_eq!(s.duration_seconds, Some(13.0 * 60.0));
        assert_eq!(s.private_ips, vec!["10.1.0.1"]);
        assert_eq!(s.recovery_instance_id.as_deref(), Some("i-0abc"));
    }

    #[test]
    fn jobs_have_their_request_id_and_log_in_time_order() {
        let data = data(Operation::Failover);
        let job = &data.jobs[0];
        assert_eq!(job.aws_request_id.as_deref(), Some("req-start-1"));
        let events: Vec<&str> = job.log.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            events,
            [
                "JOB_START",
                "USING_PREVIOUS_SNAPSHOT",
                "CONVERSION_START",
                "CONVERSION_END",
                "launchStatus LAUNCHED (observed)",
                "JOB_END"
            ]
        );
        assert!(job.log.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn dns_approvals_and_requests_are_carried_over() {
        let data = data(Operation::Failover);
        assert_eq!(data.dns[0].before[0].values, vec!["10.0.0.1"]);
        assert_eq!(data.dns[0].after[0].values, vec!["10.1.0.1"]);
        assert_eq!(data.operator_actions.len(), 1);
        assert_eq!(data.operator_actions[0].comment.as_deref(), Some(HOSTILE));
        assert_eq!(
            data.aws_requests[0].aws_request_id.as_deref(),
            Some("req-start-1")
        );
        assert!(data.cleanup.is_none(), "no cleanup step, no inventory");
        assert_eq!(data.audit.final_hash, Some("a".repeat(64)));
    }

    #[test]
    fn a_broken_chain_has_no_final_hash_and_says_where() {
        let run = run(Operation::Drill);
        let chain = Err(ChainBreak {
            run_id: RunId::generate(),
            run_seq: 7,
            reason: BreakReason::Altered,
        });
        let data = build(Sources {
            run: &run,
            steps: &[],
            effects: &[],
            chain: &chain,
            trend: vec![],
            generated_at: t(1),
        })
        .expect("the outputs decode");
        assert!(!data.audit.verified);
        assert_eq!(data.audit.final_hash, None);
        assert!(data.audit.broken.as_deref().unwrap().contains("event 7"));
    }

    #[test]
    fn an_output_that_does_not_decode_is_an_error_naming_run_and_step() {
        let run = run(Operation::Failover);
        let dns = step(
            &run,
            1,
            "dns_cutover",
            "dns_cutover",
            None,
            (1, 2),
            serde_json::json!({ "zones": "not a list of zones" }),
        );
        let chain = Ok(VerifiedChain {
            count: 0,
            final_hash: "0".repeat(64),
        });
        let err = build(Sources {
            run: &run,
            steps: &[dns],
            effects: &[],
            chain: &chain,
            trend: vec![],
            generated_at: t(3),
        })
        .expect_err("an undecodable output is not reported as empty");
        assert!(
            matches!(&err, ReportError::StepOutput { run_id, step, what: "DnsOutput", .. }
                if *run_id == run.id && step == "dns_cutover"),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&run.id.to_string()), "{text}");
        assert!(text.contains("step dns_cutover"), "{text}");
    }

    #[test]
    fn nothing_recorded_yet_reads_as_no_facts() {
        let run = run(Operation::Failover);
        let dns = step(
            &run,
            1,
            "dns_cutover",
            "dns_cutover",
            None,
            (1, 2),
            serde_json::json!({}),
        );
        let chain = Ok(VerifiedChain {
            count: 0,
            final_hash: "0".repeat(64),
        });
        let data = build(Sources {
            run: &run,
            steps: &[dns],
            effects: &[],
            chain: &chain,
            trend: vec![],
            generated_at: t(3),
        })
        .expect("an empty output is the default");
        assert!(data.dns.is_empty());
    }

    #[test]
    fn an_incomplete_cleanup_is_visible() {
        let run = run(Operation::Drill);
        let cleanup = step(
            &run,
            1,
            "cleanup",
            "cleanup",
            None,
            (1, 2),
            serde_json::json!({
            "instances": ["i-1", "i-2"], "terminated": ["i-1"], "remaining": ["i-2"], "terminate_job_id": "drsjob-9", "verified_at": null}),
        );
        let chain = Ok(VerifiedChain {
            count: 0,
            final_hash: "0".repeat(64),
        });
        let data = build(Sources {
            run: &run,
            steps: &[cleanup],
            effects: &[],
            chain: &chain,
            trend: vec![],
            generated_at: t(3),
        })
        .expect("the outputs decode");
        let c = data.cleanup.unwrap();
        assert!(!c.complete);
        assert_eq!(
            (c.created.len(), c.terminated.len(), c.remaining.clone()),
            (2, 1, vec!["i-2".to_owned()])
        );
    }
}
