//! `launch:<wave>`: waits for the wave's jobs to end (JOB_END, status COMPLETED) — a job
//! completes even when servers fail, so the outcome is each server's `launchStatus` — then reads
//! the recovery instances (EC2 IDs), then holds the wave at the health gate ([`super::health`]:
//! every critical instance running with both EC2 status checks passed within the wave's
//! `boot_timeout`) and reads the instances' IPs from EC2 (primary private IPv4, and IPv6
//! apart). Polls the run's shared DescribeJobs ([`crate::run::jobs`]) for the wave's jobs, at
//! the intervals of the job phase of the last of its servers ([`crate::run::poll::JOB`],
//! [`crate::run::poll::Phase::last_of`]: sparse early, dense near the end). Each job's log is
//! read once, after its end: DRS's own record, kept for the audit.
//!
//! A wave launched `STOPPED` (convert ahead, boot in order: [`super::boot`]) gets its servers'
//! launch dispositions back as soon as its jobs have ended, and goes through the gate in
//! `boot:W`, once its `after` waves have passed theirs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::recovery_job::RecoveryJobOutput;
use super::{Halt, StepCtx, StepFailure};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LaunchOutput {
    pub servers: BTreeMap<String, ServerLaunch>,
    /// When every job of the wave had completed (engine clock).
    pub completed_at: Option<String>,
    /// Each job's complete log as DRS returned it after JOB_END: the audit record of what DRS
    /// did (one DescribeJobLogItems per job, once).
    #[serde(default)]
    pub job_logs: BTreeMap<String, Vec<crate::aws::drs::LogItem>>,
    /// When the health gate passed (engine clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_at: Option<String>,
    /// The step attempt the deadline (`launch_timeout`) counts from, and when it began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<(i64, String)>,
    /// A wave launched `STOPPED`: the instances `boot:W` started (its output only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<super::boot::Started>,
    /// When the instances' addresses were read from EC2 (engine clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses_read_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerLaunch {
    pub job_id: String,
    pub launch_status: Option<String>,
    pub recovery_instance_id: Option<String>,
    pub ec2_instance_id: Option<String>,
    pub ec2_state: Option<String>,
    pub private_ips: Vec<String>,
    pub is_drill: bool,
    pub error: Option<String>,
    /// IPv6 addresses of the instance (from EC2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<String>,
    /// An optional server whose instance failed the health gate, why: left out of the load
    /// balancer and DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed_over: Option<String>,
}

impl LaunchOutput {
    /// The servers that launched, with their recovery instances (not those passed over by the
    /// health gate).
    pub fn launched(&self) -> impl Iterator<Item = (&String, &ServerLaunch)> {
        self.servers.iter().filter(|(_, s)| {
            s.launch_status.as_deref() == Some("LAUNCHED")
                && s.recovery_instance_id.is_some()
                && s.passed_over.is_none()
        })
    }

    /// Records the gated instances' addresses as EC2 describes them (EC2 is the source of truth
    /// for addresses): the primary private IPv4, and IPv6 apart.
    pub fn record_addresses(&mut self, found: &[crate::aws::ec2::Instance], at: String) {
        for (server, id) in self.gate_instances() {
            let Some(found) = found.iter().find(|i| i.instance_id == id) else {
                continue;
            };
            let entry = self.servers.get_mut(&server).expect("gated server");
            entry.private_ips = found.private_ip.clone().into_iter().collect();
            entry.ipv6 = found.ipv6.clone();
        }
        self.addresses_read_at = Some(at);
    }

    /// The instances the health gate waits for: (source server, EC2 instance ID).
    pub fn gate_instances(&self) -> Vec<(String, String)> {
        self.launched()
            .filter_map(|(server, s)| {
                let id = s
                    .ec2_instance_id
                    .clone()
                    .or(s.recovery_instance_id.clone())?;
                Some((server.clone(), id))
            })
            .collect()
    }
}

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let jobs: RecoveryJobOutput = ctx.output_of(&ctx.job_step_key()).await?;
    let job_ids = jobs.job_ids();
    let mut out: LaunchOutput = ctx.my_output().await?;
    let total: usize = jobs.batches.iter().map(|b| b.servers.len()).sum();
    // The deadline counts from this attempt's start: a `retry` gets a fresh one.
    let since = match &out.waiting_since {
        Some((attempt, at)) if *attempt == ctx.step.attempt => {
            crate::aws::parse_time(at).unwrap_or_else(|| ctx.clock.now())
        }
        _ => {
            let now = ctx.clock.now();
            out.waiting_since = Some((ctx.step.attempt, now.to_rfc3339()));
            ctx.save(&out).await?;
            now
        }
    };
    let deadline = ctx.wave().launch_timeout;
    let mut last_seen = (usize::MAX, usize::MAX);
    let final_jobs = loop {
        let side = ctx.recovery_side();
        let (watch, clock) = (ctx.jobs, ctx.clock);
        let described =
            super::retry::read(ctx, || watch.describe(side, clock.now(), &job_ids)).await?;
        let launched = described
            .iter()
            .flat_map(|j| j.servers.iter())
            .filter(|s| s.launch_status.as_deref() == Some("LAUNCHED"))
            .count();
        let completed = described.iter().filter(|j| j.is_completed()).count();
        if (launched, completed) != last_seen {
            last_seen = (launched, completed);
            ctx.say(format!(
                "{launched}/{total} launched; {completed}/{} job(s) completed",
                job_ids.len()
            ));
        }
        if completed == job_ids.len() && described.len() == job_ids.len() {
            break described;
        }
        if (ctx.clock.now() - since).to_std().unwrap_or_default() > deadline {
            let stuck: Vec<String> = described
                .iter()
                .filter(|j| !j.is_completed())
                .map(|j| format!("job {} ({})", j.id, j.status.as_deref().unwrap_or("?")))
                .collect();
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "the launch did not finish within {} (the wave's launch_timeout): {}",
                    super::snapshot_conversion::humantime(deadline),
                    stuck.join(", ")
                ),
                format!(
                    "the job looks stuck: check it in the DRS console (DescribeJobLogItems); once it moves again, `drs-runbook retry {} --step {}` continues",
                    ctx.run.id, ctx.step.key
                ),
            )));
        }
        let began = crate::run::jobs::latest_created(&described).unwrap_or(since);
        let pause = crate::run::poll::JOB
            .last_of(total)
            .pause(began, ctx.clock.now());
        ctx.pause(pause).await?;
    };
    for job in &final_jobs {
        ctx.budget.release(&job.id);
        for s in &job.servers {
            let entry = out.servers.entry(s.source_server_id.clone()).or_default();
            entry.job_id = job.id.clone();
            entry.launch_status = s.launch_status.clone();
            entry.recovery_instance_id = s.recovery_instance_id.clone();
        }
    }
    let ids: Vec<String> = out
        .servers
        .values()
        .filter_map(|s| s.recovery_instance_id.clone())
        .collect();
    let target = ctx.recovery_side().clone();
    for instance in super::retry::read(ctx, || target.recovery_instances_by_id(&ids)).await? {
        if let Some(entry) = out
            .servers
            .values_mut()
            .find(|s| s.recovery_instance_id.as_deref() == Some(&instance.id))
        {
            entry.ec2_instance_id = instance.ec2_instance_id.clone();
            entry.ec2_state = instance.ec2_state.clone();
            entry.private_ips = instance.private_ips.clone();
            entry.is_drill = instance.is_drill;
        }
    }
    // Keep every job's final log, and explain each failed server with its log event.
    for job_id in &job_ids {
        if !out.job_logs.contains_key(job_id) {
            let log = super::retry::read(ctx, || target.job_log(job_id)).await?;
            out.job_logs.insert(job_id.clone(), log);
        }
    }
    // The jobs have ended: the launch configurations are no longer read for this run.
    super::boot::release(ctx, &target, &jobs.held).await?;
    let failed: Vec<(String, String)> = out
        .servers
        .iter()
        .filter(|(_, s)| s.launch_status.as_deref() != Some("LAUNCHED"))
        .map(|(server, s)| (server.clone(), s.job_id.clone()))
        .collect();
    if !failed.is_empty() {
        let logs = &out.job_logs;
        let mut errors = Vec::new();
        for (server, job_id) in &failed {
            let event = logs[job_id].iter().rev().find(|i| {
                i.source_server_id.as_deref() == Some(server)
                    && (i.event.ends_with("FAIL")
                        || i.event.ends_with("FAILED")
                        || i.event == "SERVER_SKIPPED")
            });
            let status = out.servers[server]
                .launch_status
                .clone()
                .unwrap_or_else(|| "unknown".into());
            let error = match event {
                Some(e) => format!(
                    "{} ({}){}",
                    status,
                    e.event,
                    e.raw_error
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                None => format!("launch status {status}"),
            };
            errors.push((server.clone(), error));
        }
        for (server, error) in errors {
            out.servers.get_mut(&server).expect("present").error = Some(error);
        }
    }
    out.completed_at = Some(ctx.clock.now().to_rfc3339());
    ctx.save(&out).await?;

    let mut critical = Vec::new();
    for (server, s) in &out.servers {
        if let Some(error) = &s.error {
            if jobs.is_optional(ctx, server) {
                ctx.say(format!(
                    "optional server {server} did not launch: {error}; the wave goes on without it"
                ));
            } else {
                critical.push(format!("{server} in job {}: {error}", s.job_id));
            }
        }
    }
    let launched = out.launched().count();
    ctx.say(format!("{launched}/{total} launched"));
    if !critical.is_empty() {
        return Err(Halt::Failed(StepFailure::new(
            format!(
                "recovery failed for critical server(s): {}",
                critical.join("; ")
            ),
            "read the job log (drs-runbook show <run>); check the server's launch template, instance type capacity and subnet in the recovery region, then `retry` or `rollback` the run",
        )));
    }
    let wave = ctx.wave();
    if super::boot::is_held(ctx.run.operation, ctx.runbook, &wave.name) {
        ctx.say(format!(
            "launched STOPPED: boot:{} starts the instances once {} passed the health gate",
            wave.name,
            wave.after.join(", ")
        ));
        return Ok(());
    }
    // The last instance began to boot at its LAUNCH_END, when its job ended.
    let ended = final_jobs
        .iter()
        .filter_map(|j| j.ended.as_deref().and_then(crate::aws::parse_time))
        .max();
    health_gate(ctx, &jobs, &mut out, ended).await
}

/// The health gate of the wave, then the IPs from EC2. Re-entrant: a passed gate is recorded
/// (`healthy_at`) and not waited for again. `booted`: when the last instance began to boot, if
/// known ([`super::health::wait`]).
pub(super) async fn health_gate(
    ctx: &mut StepCtx<'_>,
    jobs: &RecoveryJobOutput,
    out: &mut LaunchOutput,
    booted: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), Halt> {
    if out.healthy_at.is_some() {
        return Ok(());
    }
    let side = ctx.recovery_side().clone();
    let gated: Vec<super::health::Gated> = out
        .gate_instances()
        .into_iter()
        .map(|(server, instance_id)| super::health::Gated {
            optional: jobs.is_optional(ctx, &server),
            source_server_id: server,
            instance_id,
        })
        .collect();
    let timeout = ctx.wave().boot_timeout;
    let passed = super::health::wait(ctx, &side, &gated, timeout, booted).await?;
    for (server, id) in out.gate_instances() {
        let entry = out.servers.get_mut(&server).expect("gated server");
        entry.ec2_state = passed.states.get(&id).map(|s| s.to_ascii_uppercase());
    }
    for (server, reason) in passed.passed_over {
        if let Some(entry) = out.servers.get_mut(&server) {
            entry.passed_over = Some(reason);
        }
    }
    // A held wave's addresses were read while its instances stood stopped (`boot:W`): an
    // instance keeps its private IPv4 and IPv6 addresses through a stop and start (EC2 user
    // guide, "Stop and start your instance").
    if out.addresses_read_at.is_none() {
        let ids: Vec<String> = out.gate_instances().into_iter().map(|(_, id)| id).collect();
        let instances = super::retry::read(ctx, || side.describe_instances(&ids)).await?;
        out.record_addresses(&instances, ctx.clock.now().to_rfc3339());
    }
    out.healthy_at = Some(ctx.clock.now().to_rfc3339());
    ctx.save(&*out).await?;
    Ok(())
}
