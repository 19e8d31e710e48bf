//! `action:<wave>:<name>`: a runbook action (`[[wave.action]]`), one of [`ActionRun`]'s kinds.
//!
//! - **command**: a local process, no shell, in the runbook's directory, with the run's and
//!   the wave's facts in its environment (`DRS_RUNBOOK_*`); its own process group, killed
//!   whole at the timeout; its exit status decides.
//! - **http**: GET until the expected status (and body substring) or the timeout; every
//!   attempt recorded.
//! - **manual**: the approval gate before the step is the action (its preview shows the
//!   instructions); once approved, the step records who approved and succeeds.
//!
//! Durability: a command or a check is one durable call ([`StepCtx::call`]): the intent is
//! committed before the process starts or the first GET is sent, the result (exit status or
//! HTTP status, captured output, timings) is its effect. A result is never produced twice: a
//! resumed step reads it back. An intent left open by a crash is an action **in doubt**: an
//! `idempotent` command runs again (a new attempt), an HTTP check always does (a GET is safe,
//! RFC 9110 section 9.2.1), any other command fails the step as in doubt, which pauses the run
//! for an operator (`retry` runs it again, `skip --reason` passes over it), never re-running it
//! silently.
//!
//! An action has no undo: a rollback runs the actions that name `rollback` instead.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::launch::LaunchOutput;
use super::{Halt, StepCtx, StepFailure};
use crate::aws::drs::Called;
use crate::run::Operation;
use crate::run::call::{Call, Found};
use crate::run::progress::Change;
use crate::runbook::model::{Action, ActionRun};

/// How much of each output stream (stdout, stderr, an HTTP body) is kept: its last 16 KiB.
/// The audit trail and the reports hold it; a chatty script must not fill the database.
pub const OUTPUT_LIMIT: usize = 16 * 1024;

/// How many HTTP attempts are kept (the first and the latest ones); the count is always kept.
const ATTEMPTS_KEPT: usize = 20;

/// What an action did: the step's output, shown by `show` and the reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ActionOutput {
    /// `command`, `http` or `manual`.
    pub kind: String,
    /// What it ran: the command line, the URL, or the instructions.
    pub run: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The command's exit status (none when killed by a signal or at the timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// The HTTP status of the last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// HTTP: how many GETs were sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt_count: usize,
    /// HTTP: the attempts kept (the first and the latest [`ATTEMPTS_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<HttpAttempt>,
    /// The last [`OUTPUT_LIMIT`] bytes of stdout (or of the last HTTP body).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    /// Bytes dropped from the start of stdout / stderr to keep the limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stdout_dropped: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stderr_dropped: usize,
    pub timed_out: bool,
    /// `ssm_document`: each launched server's run of the DRS post-launch action.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_action_runs: Vec<super::launch_actions::ServerRun>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// An optional action that failed: reported and passed over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passed_over: bool,
    /// A command found in doubt: the step attempt that found it (a later attempt that an
    /// operator's `retry` started runs it again; a resume does not: `operator_retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_doubt_at_attempt: Option<i64>,
    /// A command or a check that ran and failed the step: the step attempt that failed (a
    /// later attempt that an operator's `retry` started runs it again; a resume does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at_attempt: Option<i64>,
    /// The durable call of the latest run, once an operator's `retry` ran it again
    /// (`<kind>-retry-<attempt>`: the failed run's result stays recorded under its own call);
    /// none for the first run (`<kind>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_call: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One GET of an HTTP check.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HttpAttempt {
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ActionOutput {
    /// Whether the action did what it was asked.
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }
}

/// The action this step runs.
fn action<'r>(ctx: &StepCtx<'r>) -> Result<&'r Action, Halt> {
    let runbook: &'r crate::runbook::Runbook = ctx.runbook;
    let wave = ctx.step.wave.as_deref().unwrap_or_default();
    let prefix = format!("{}:{wave}:", crate::run::StepKind::Action.as_str());
    let name = ctx.step.key.strip_prefix(&prefix).unwrap_or_default();
    runbook.action(wave, name).ok_or_else(|| {
        Halt::Failed(StepFailure::new(
            format!("the runbook of this run has no action {name:?} in wave {wave:?}"),
            "the stored runbook names the run's actions; this is a bug, report it",
        ))
    })
}

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let action = action(ctx)?;
    let mut out: ActionOutput = ctx.my_output().await?;
    out.kind = action.run.kind().to_string();
    out.run = describe(&action.run);
    let result = match &action.run {
        // DRS ran it: the step reads the result and removes the launch action (its own
        // durable calls), so a resumed step never runs anything twice.
        ActionRun::SsmDocument { .. } => {
            serde_json::to_value(super::launch_actions::run(ctx, action).await?)
                .unwrap_or(Value::Null)
        }
        ActionRun::Manual { .. } => {
            // The gate before the step was the action: an operator approved it (or `--yes`).
            let now = ctx.clock.now().to_rfc3339();
            out.started_at.get_or_insert(now.clone());
            out.finished_at = Some(now);
            Value::Null
        }
        ActionRun::Command { argv, timeout } => {
            let dir = runbook_dir(ctx);
            let request = json!({
                "command": argv,
                "directory": dir.display().to_string(),
                "timeout_seconds": timeout.as_secs(),
            });
            let env = environment(ctx).await?;
            let (argv, timeout) = (argv.clone(), *timeout);
            let clock = ctx.clock;
            durably(ctx, action, "command", request, &mut out, async move || {
                run_command(&argv, &dir, &env, timeout, clock).await
            })
            .await?
        }
        ActionRun::Http {
            url,
            expect_status,
            expect_body,
            timeout,
        } => {
            let request = json!({
                "url": url,
                "expect_status": expect_status,
                "expect_body": expect_body,
                "timeout_seconds": timeout.as_secs(),
            });
            let (url, status, body, timeout) =
                (url.clone(), *expect_status, expect_body.clone(), *timeout);
            let clock = ctx.clock;
            durably(ctx, action, "http", request, &mut out, async move || {
                check_http(&url, status, body.as_deref(), timeout, clock).await
            })
            .await?
        }
    };
    if !result.is_null() {
        let done: ActionOutput = serde_json::from_value(result).unwrap_or_default();
        out = ActionOutput {
            kind: out.kind,
            run: out.run,
            in_doubt_at_attempt: out.in_doubt_at_attempt,
            durable_call: out.durable_call,
            ..done
        };
    }
    match &out.error {
        None => {
            ctx.save(&out).await?;
            ctx.say(format!("{} passed", out.kind));
            Ok(())
        }
        Some(error) if action.optional => {
            out.passed_over = true;
            ctx.save(&out).await?;
            ctx.say(format!("optional action failed, passed over: {error}"));
            Ok(())
        }
        Some(error) => {
            if matches!(
                action.run,
                ActionRun::Command { .. } | ActionRun::Http { .. }
            ) {
                out.failed_at_attempt = Some(ctx.step.attempt);
            }
            ctx.save(&out).await?;
            let hint = match action.run {
                ActionRun::Command { .. } => {
                    "fix the cause (the captured output is in `drs-runbook show <run>`), then `drs-runbook retry <run> --step <step>`, or `skip --reason`"
                }
                ActionRun::SsmDocument { .. } => {
                    "read the command's output in Systems Manager (Run Command history of the instance); `retry` reads the result again (the action runs at the next launch), `rollback` undoes the recovery"
                }
                _ => {
                    "check the endpoint, then `drs-runbook retry <run> --step <step>`, or `skip --reason`"
                }
            };
            Err(Halt::Failed(StepFailure::new(
                format!("action {} failed: {error}", action.name),
                hint,
            )))
        }
    }
}

/// Runs `execute` as the step's one durable call: its recorded result when it has one, the
/// in-doubt rule when a crash left its intent open (see the module), else intent -> execute
/// -> result. The result is what `execute` reports (a failure included): an action that ran
/// and failed is recorded as done, it is not in doubt; an operator's `retry` of it runs it
/// again under a new durable call (the README: "A failing action fails the run (exit 1;
/// `retry --step action:...` or `skip --reason`)"), which a crash then resumes as any other.
async fn durably<'a, E>(
    ctx: &mut StepCtx<'a>,
    action: &Action,
    name: &str,
    request: Value,
    out: &mut ActionOutput,
    execute: E,
) -> Result<Value, Halt>
where
    E: AsyncFnOnce() -> ActionOutput,
{
    let runs_again = action.idempotent || matches!(action.run, ActionRun::Http { .. });
    let attempt = ctx.step.attempt;
    if operator_retry(out.failed_at_attempt, ctx.step) {
        // Retried after it ran and failed: its recorded result is that run's, not this one's.
        out.failed_at_attempt = None;
        out.durable_call = Some(format!("{name}-retry-{attempt}"));
        ctx.save(out).await?;
    }
    let call_name = out.durable_call.clone().unwrap_or_else(|| name.to_string());
    let call = Call::new(
        call_name,
        &format!("action:{name}"),
        "local",
        "local",
        request,
    );
    let retried = operator_retry(out.in_doubt_at_attempt, ctx.step);
    if retried {
        // Decided once: a crash during this new run of it puts it in doubt again.
        out.in_doubt_at_attempt = None;
        ctx.save(out).await?;
    }
    let found_at = &mut out.in_doubt_at_attempt;
    let reconcile = async |ctx: &mut StepCtx<'a>| -> Result<Found, Halt> {
        if runs_again {
            ctx.say("in doubt after a crash; it may run again: running it again");
            return Ok(Found::NoEffect(
                "in doubt after a crash; run again (idempotent)".to_string(),
            ));
        }
        if retried {
            ctx.say("in doubt after a crash; an operator asked to run it again (retry)");
            return Ok(Found::NoEffect(
                "in doubt after a crash; run again by an operator's retry".to_string(),
            ));
        }
        *found_at = Some(attempt);
        Err(Halt::Failed(in_doubt()))
    };
    let started = ctx.clock.now().to_rfc3339();
    let outcome = ctx
        .call(&call, reconcile, async || {
            let mut done = execute().await;
            done.started_at = Some(started);
            Ok(Called {
                value: serde_json::to_value(&done).unwrap_or(Value::Null),
                request_id: None,
            })
        })
        .await;
    match outcome {
        Ok(outcome) => Ok(outcome.response),
        Err(error) => {
            let halt = Halt::from(error);
            if out.in_doubt_at_attempt == Some(attempt) {
                ctx.save(out).await?;
            }
            Err(halt)
        }
    }
}

/// Whether an operator's `retry` asked for this attempt after `recorded`, the attempt that
/// found the action in doubt or saw it fail. A later attempt that resumes an interrupted one
/// (a crash after the record was saved, before the step was marked failed) is not such a
/// request: it meets the recorded result again rather than running the action a second time.
fn operator_retry(recorded: Option<i64>, step: &crate::run::StepInfo) -> bool {
    !step.resumed && recorded.is_some_and(|at| at < step.attempt)
}

/// The failure of an action found in doubt: it pauses the run for an operator.
fn in_doubt() -> StepFailure {
    StepFailure {
        awaits_operator: true,
        ..StepFailure::new(
            "the action was started before the run stopped and its result was not recorded: it is in doubt, and it is not idempotent, so it was not run again",
            "check what it did; then `drs-runbook retry <run> --step <step>` runs it again, or `drs-runbook skip <run> --step <step> --reason ...` passes over it",
        )
    }
}

/// The command line, URL or instructions, for the output and the preview.
fn describe(run: &ActionRun) -> String {
    match run {
        ActionRun::Command { argv, .. } => argv.join(" "),
        ActionRun::Http { url, .. } => url.clone(),
        ActionRun::Manual { instructions } => instructions.clone(),
        ActionRun::SsmDocument {
            document, version, ..
        } => format!("{document} ({version}) as a DRS post-launch action"),
    }
}

/// What the gate before an action lets through: the instructions of a manual action, or
/// what a command or a check will run.
pub async fn preview(ctx: &mut StepCtx<'_>) -> Result<Vec<Change>, Halt> {
    let action = action(ctx)?;
    Ok(vec![match &action.run {
        ActionRun::Manual { instructions } => Change::new("instructions:", instructions.clone()),
        ActionRun::Command { argv, timeout } => Change::new(
            "run",
            format!(
                "{} in {} (timeout {})",
                argv.join(" "),
                runbook_dir(ctx).display(),
                crate::runbook::format_duration(*timeout)
            ),
        ),
        ActionRun::Http {
            url,
            expect_status,
            timeout,
            ..
        } => Change::new(
            "GET",
            format!(
                "{url} until {expect_status} (timeout {})",
                crate::runbook::format_duration(*timeout)
            ),
        ),
        ActionRun::SsmDocument { timeout, .. } => Change::new(
            "read",
            format!(
                "{} on the wave's recovered instances, from the recovery jobs (timeout {})",
                describe(&action.run),
                crate::runbook::format_duration(*timeout)
            ),
        ),
    }])
}

/// The directory of the runbook the run was started with (relative paths from where it was
/// started).
fn runbook_dir(ctx: &StepCtx<'_>) -> PathBuf {
    match Path::new(&ctx.run.runbook_path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether the run this rollback undoes (its parent) was a drill or a failback drill.
async fn undoes_a_drill(ctx: &StepCtx<'_>) -> Result<bool, Halt> {
    let unreadable = |e: crate::store::StoreError| {
        Halt::Failed(StepFailure::new(
            format!("failed to read the run this rollback undoes from the database: {e}"),
            "check the database, then resume the run",
        ))
    };
    let mut conn = ctx.journal.db().acquire().await.map_err(unreadable)?;
    let me = crate::store::runs::get(&mut conn, ctx.journal.run_id())
        .await
        .map_err(unreadable)?;
    let Some(parent) = me.parent_run_id else {
        return Ok(false);
    };
    let undone = crate::store::runs::get(&mut conn, &parent)
        .await
        .map_err(unreadable)?;
    Ok(match undone.operation {
        Operation::Drill => true,
        Operation::Failback => undone.options["drill"].as_bool().unwrap_or(false),
        _ => false,
    })
}

/// The command's environment: the run, and the wave's recovered instances once its gate
/// passed (empty before, and in a rollback, whose run recovered nothing).
async fn environment(ctx: &StepCtx<'_>) -> Result<Vec<(String, String)>, Halt> {
    let wave = ctx.step.wave.clone().unwrap_or_default();
    let operation = ctx.run.operation;
    let launched: LaunchOutput = if operation == Operation::Rollback {
        LaunchOutput::default()
    } else {
        let gate = super::boot::gate_step(operation, ctx.runbook, &wave);
        ctx.output_of(&gate).await?
    };
    let instances: Vec<&str> = launched
        .launched()
        .filter_map(|(_, s)| s.ec2_instance_id.as_deref())
        .collect();
    let ips: Vec<&str> = launched
        .launched()
        .flat_map(|(_, s)| s.private_ips.iter().map(String::as_str))
        .collect();
    let drill = match operation {
        Operation::Drill => true,
        Operation::Failback => ctx.run.options.drill,
        // A rollback's actions are told whether the run it undoes was a drill, as that run's
        // own actions were: a script that must not touch production in a drill must not in
        // the drill's rollback either.
        Operation::Rollback => undoes_a_drill(ctx).await?,
        _ => false,
    };
    Ok(vec![
        ("DRS_RUNBOOK_RUN_ID".into(), ctx.run.id.clone()),
        ("DRS_RUNBOOK_OPERATION".into(), operation.as_str().into()),
        ("DRS_RUNBOOK_WAVE".into(), wave),
        ("DRS_RUNBOOK_INSTANCE_IDS".into(), instances.join(" ")),
        ("DRS_RUNBOOK_PRIVATE_IPS".into(), ips.join(" ")),
        ("DRS_RUNBOOK_DRILL".into(), drill.to_string()),
    ])
}

/// The last [`OUTPUT_LIMIT`] bytes of a stream, and how many were dropped before them.
#[derive(Default)]
struct Tail {
    bytes: std::collections::VecDeque<u8>,
    dropped: usize,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let over = self.bytes.len().saturating_sub(OUTPUT_LIMIT);
        self.bytes.drain(..over);
        self.dropped += over;
    }

    fn text(&self) -> String {
        let bytes: Vec<u8> = self.bytes.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

async fn read_tail(stream: Option<impl tokio::io::AsyncRead + Unpin>) -> Tail {
    use tokio::io::AsyncReadExt;
    let mut tail = Tail::default();
    let Some(mut stream) = stream else {
        return tail;
    };
    let mut buffer = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        tail.push(&buffer[..n]);
    }
    tail
}

/// Runs the command to its end or its timeout (wall-clock time: it runs on this host), in a
/// process group of its own that the timeout kills whole. Its end is recorded on the engine's
/// `clock`, as every time of the run.
async fn run_command(
    argv: &[String],
    dir: &Path,
    env: &[(String, String)],
    timeout: Duration,
    clock: &crate::run::clock::EngineClock,
) -> ActionOutput {
    let mut out = ActionOutput::default();
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            out.error = Some(format!(
                "could not start {:?} in {}: {e}",
                argv[0],
                dir.display()
            ));
            return out;
        }
    };
    let group = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
    let stdout = tokio::spawn(read_tail(child.stdout.take()));
    let stderr = tokio::spawn(read_tail(child.stderr.take()));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            out.timed_out = true;
            if let Some(group) = group {
                // The whole group: a script's children too (they would hold the pipes open).
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.wait().await;
            None
        }
    };
    // A background process left by the command may hold the pipes open: its output is not
    // waited for past a short grace.
    let grace = Duration::from_secs(2);
    let stdout = tokio::time::timeout(grace, stdout)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = tokio::time::timeout(grace, stderr)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    out.stdout = stdout.text();
    out.stdout_dropped = stdout.dropped;
    out.stderr = stderr.text();
    out.stderr_dropped = stderr.dropped;
    out.exit_status = status.and_then(|s| s.code());
    out.finished_at = Some(clock.now().to_rfc3339());
    out.error = if out.timed_out {
        Some(format!(
            "timed out after {}; its process group was killed{}",
            crate::runbook::format_duration(timeout),
            last_lines(&out.stderr)
        ))
    } else {
        match status {
            Some(s) if s.success() => None,
            Some(s) => Some(match s.code() {
                Some(code) => format!("exited with status {code}{}", last_lines(&out.stderr)),
                None => format!("was killed by a signal ({s}){}", last_lines(&out.stderr)),
            }),
            None => Some("its exit status could not be read".to_string()),
        }
    };
    out
}

/// `: <the last lines of stderr>` for an error message (at most 1,000 characters).
fn last_lines(stderr: &str) -> String {
    let trimmed = stderr.trim_end();
    if trimmed.is_empty() {
        return String::new();
    }
    let start = trimmed.char_indices().rev().nth(999).map_or(0, |(i, _)| i);
    format!("; stderr: {}", &trimmed[start..])
}

/// GETs `url` until it answers `expect_status` (with `expect_body` in its body) or `timeout`
/// passes (wall-clock time), waiting 1 s, then doubling up to 10 s, between attempts.
async fn check_http(
    url: &str,
    expect_status: u16,
    expect_body: Option<&str>,
    timeout: Duration,
    clock: &crate::run::clock::EngineClock,
) -> ActionOutput {
    let mut out = ActionOutput::default();
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            out.error = Some(format!("could not build an HTTP client: {e}"));
            return out;
        }
    };
    let started = Instant::now();
    let mut wait = Duration::from_secs(1);
    let mut last_problem;
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        let mut attempt = HttpAttempt {
            at: clock.now().to_rfc3339(),
            ..Default::default()
        };
        match client
            .get(url)
            .timeout(left.clamp(Duration::from_millis(100), Duration::from_secs(30)))
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                attempt.status = Some(status);
                out.http_status = Some(status);
                let body = response.bytes().await.unwrap_or_default();
                let mut tail = Tail::default();
                tail.push(&body);
                out.stdout = tail.text();
                out.stdout_dropped = tail.dropped;
                let body_ok = expect_body
                    .is_none_or(|needle| String::from_utf8_lossy(&body).contains(needle));
                if status == expect_status && body_ok {
                    record(&mut out, attempt);
                    out.error = None;
                    break;
                }
                last_problem = if status != expect_status {
                    format!("answered {status}, expected {expect_status}")
                } else {
                    format!(
                        "answered {status} without {:?} in its body",
                        expect_body.unwrap_or_default()
                    )
                };
            }
            Err(e) => {
                let why = error_chain(&e);
                attempt.error = Some(why.clone());
                last_problem = why;
            }
        }
        record(&mut out, attempt);
        if started.elapsed() + wait >= timeout {
            out.timed_out = true;
            out.error = Some(format!(
                "{url} did not pass within {} ({} attempts); the last one {last_problem}",
                crate::runbook::format_duration(timeout),
                out.attempt_count
            ));
            break;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
    out.finished_at = Some(clock.now().to_rfc3339());
    out
}

/// Keeps the first and the latest attempts ([`ATTEMPTS_KEPT`] in all) and counts every one.
fn record(out: &mut ActionOutput, attempt: HttpAttempt) {
    out.attempt_count += 1;
    out.attempts.push(attempt);
    if out.attempts.len() > ATTEMPTS_KEPT {
        out.attempts.remove(ATTEMPTS_KEPT / 2);
    }
}

/// An error with its causes (reqwest hides the TLS or connection reason in its sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    format!("failed: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: crate::run::clock::EngineClock = crate::run::clock::EngineClock::Real;

    #[test]
    fn only_an_operators_retry_runs_a_failed_or_in_doubt_action_again() {
        let step = |attempt, resumed| crate::run::StepInfo {
            key: "action:app:smoke".into(),
            kind: crate::run::StepKind::Action,
            wave: Some("app".into()),
            attempt,
            resumed,
        };
        // The attempt that recorded it, or nothing recorded: no.
        assert!(!operator_retry(Some(2), &step(2, false)));
        assert!(!operator_retry(None, &step(3, false)));
        // A later attempt started by `retry` (from failed): yes.
        assert!(operator_retry(Some(2), &step(3, false)));
        // A later attempt that resumes an interrupted one (a crash after the record, before
        // the step was marked failed): no, whatever its number.
        assert!(!operator_retry(Some(2), &step(3, true)));
        assert!(!operator_retry(Some(2), &step(7, true)));
    }

    #[test]
    fn a_tail_keeps_the_last_bytes_and_counts_the_dropped_ones() {
        let mut tail = Tail::default();
        tail.push(&vec![b'a'; OUTPUT_LIMIT]);
        tail.push(b"end");
        assert_eq!(tail.dropped, 3);
        assert_eq!(tail.bytes.len(), OUTPUT_LIMIT);
        assert!(tail.text().ends_with("aend"));
    }

    #[test]
    fn kept_attempts_are_the_first_and_the_latest() {
        let mut out = ActionOutput::default();
        for i in 0..50 {
            record(
                &mut out,
                HttpAttempt {
                    at: i.to_string(),
                    ..Default::default()
                },
            );
        }
        assert_eq!(out.attempt_count, 50);
        assert_eq!(out.attempts.len(), ATTEMPTS_KEPT);
        assert_eq!(out.attempts[0].at, "0");
        assert_eq!(out.attempts.last().unwrap().at, "49");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-ran");
        // The grandchild would write the marker after the timeout unless the group is killed.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let argv = ["sh".to_string(), "-c".to_string(), script];
        let started = Instant::now();
        let out = run_command(&argv, dir.path(), &[], Duration::from_millis(300), &REAL).await;
        assert!(out.timed_out, "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            out.error.as_deref().unwrap().contains("timed out"),
            "{out:?}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!marker.exists(), "the grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn a_command_runs_without_a_shell_in_its_directory_with_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let env = [("DRS_RUNBOOK_WAVE".to_string(), "db".to_string())];
        let argv = [
            "sh",
            "-c",
            "pwd; echo \"$DRS_RUNBOOK_WAVE\"; echo oops >&2; exit 3",
        ]
        .map(String::from);
        let out = run_command(&argv, dir.path(), &env, Duration::from_secs(10), &REAL).await;
        assert_eq!(out.exit_status, Some(3));
        let pwd = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(out.stdout, format!("{}\ndb\n", pwd.display()));
        assert_eq!(
            out.error.as_deref(),
            Some("exited with status 3; stderr: oops")
        );
        // No shell: a `;` is an argument like any other.
        let echo = ["echo", "a;", "b"].map(String::from);
        let out = run_command(&echo, dir.path(), &[], Duration::from_secs(10), &REAL).await;
        assert_eq!(out.stdout, "a; b\n");
        assert!(out.passed());
        let missing = ["./no-such-script"].map(String::from);
        let out = run_command(&missing, dir.path(), &[], Duration::from_secs(10), &REAL).await;
        assert!(out.error.unwrap().starts_with("could not start"));
    }
}
