//! The health gate: a wave counts as recovered when every critical instance is `running` and
//! passes both EC2 status checks (system and instance) within the wave's `boot_timeout`. An
//! optional server's instance that fails does not hold the wave: it is reported and passed over
//! (left out of the load balancer and DNS). Target health, where the wave has a target group,
//! is the next gate: `lb_switch` (failover, failback) and `validate` (drills) wait for it before
//! anything moves traffic.
//!
//! [`decide`] is the pure decision over one round of DescribeInstanceStatus answers; [`wait`]
//! polls until it decides, through the run's shared watch ([`crate::run::instances`]: one
//! DescribeInstanceStatus per 100 instances per round for every gate of the run, not per wave),
//! at the intervals of the boot phase of the last of its instances
//! ([`crate::run::poll::BOOT`], [`crate::run::poll::Phase::last_of`]: sparse early, dense near
//! the end). Used by `launch`, `boot` and drill `validate`.

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::{Halt, StepCtx, StepFailure, retry};
use crate::aws::ec2::InstanceStatus;
use crate::run::poll;

/// One instance the gate waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gated {
    pub source_server_id: String,
    pub instance_id: String,
    pub optional: bool,
}

/// Where one instance stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Passed,
    /// Still booting (pending, status checks initializing): may pass.
    Booting(String),
    /// Failing: a check impaired (may still recover until the timeout) ...
    Impaired(String),
    /// ... or a state it does not leave by itself (stopped, terminated ...).
    Down(String),
}

/// What the gate decided this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every critical instance passed; `passed_over` are the optional ones that did not
    /// (source server, reason).
    Recovered {
        passed_over: Vec<(String, String)>,
    },
    Wait,
    /// Critical instances failed: (source server, instance, failed check or state).
    Failed(Vec<(String, String, String)>),
}

/// The standing of one instance from its DescribeInstanceStatus answer.
pub fn standing(status: Option<&InstanceStatus>) -> Standing {
    let Some(s) = status else {
        return Standing::Down("not found in EC2".into());
    };
    match s.state.as_str() {
        "running" => {}
        "pending" => return Standing::Booting("pending".into()),
        other => return Standing::Down(format!("instance state {other}")),
    }
    let failed: Vec<&str> = [("system", &s.system), ("instance", &s.instance)]
        .into_iter()
        .filter(|(_, v)| v.as_str() == "impaired")
        .map(|(name, _)| name)
        .collect();
    if !failed.is_empty() {
        let checks: Vec<String> = failed
            .iter()
            .map(|c| format!("{c} status check impaired"))
            .collect();
        return Standing::Impaired(checks.join(", "));
    }
    if s.system == "ok" && s.instance == "ok" {
        Standing::Passed
    } else {
        Standing::Booting(format!(
            "status checks: system {}, instance {}",
            s.system, s.instance
        ))
    }
}

/// Decides the gate: `timed_out` says the wave's boot timeout is over.
pub fn decide(gated: &[Gated], statuses: &[InstanceStatus], timed_out: bool) -> Decision {
    let mut failed = Vec::new();
    let mut passed_over = Vec::new();
    let mut waiting = false;
    for g in gated {
        let standing = standing(statuses.iter().find(|s| s.instance_id == g.instance_id));
        let (hopeless, reason) = match standing {
            Standing::Passed => continue,
            // An optional instance that is impaired or down does not hold the wave.
            Standing::Impaired(r) | Standing::Down(r) if g.optional => (true, r),
            Standing::Down(r) => (true, r),
            Standing::Impaired(r) | Standing::Booting(r) => (timed_out, r),
        };
        match (hopeless, g.optional) {
            (true, true) => passed_over.push((g.source_server_id.clone(), reason)),
            (true, false) => {
                failed.push((g.source_server_id.clone(), g.instance_id.clone(), reason))
            }
            (false, _) => waiting = true,
        }
    }
    if !failed.is_empty() {
        // Decide only once no other critical instance may still pass: every failing one is
        // reported together.
        if waiting && !timed_out {
            return Decision::Wait;
        }
        return Decision::Failed(failed);
    }
    if waiting {
        return Decision::Wait;
    }
    Decision::Recovered { passed_over }
}

/// A gate passed: the optional servers passed over (source server ID, why), and each gated
/// instance's state (`running`, ...) at the look that decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passed {
    pub passed_over: Vec<(String, String)>,
    pub states: std::collections::BTreeMap<String, String>,
}

/// Polls DescribeInstanceStatus until the gate decides; `Ok` says what passed, a failure names
/// each failing source server, its instance and the failed check.
/// `booted`: when the last of the instances began to boot, if known (engine clock): the
/// StartInstances of a held wave, the end of the wave's jobs (the last LAUNCH_END). The gate
/// cannot pass before the boot phase's earliest end after it, so the first look waits for that;
/// unknown, the gate looks at once, and its boot phase counts from its start.
pub async fn wait(
    ctx: &mut StepCtx<'_>,
    side: &crate::aws::SideClients,
    gated: &[Gated],
    timeout: Duration,
    booted: Option<DateTime<Utc>>,
) -> Result<Passed, Halt> {
    if gated.is_empty() {
        return Ok(Passed::default());
    }
    let ids: Vec<String> = gated.iter().map(|g| g.instance_id.clone()).collect();
    let decided = gate(ctx, side, gated, &ids, timeout, booted).await;
    // Decided, failed or stopped: the run's next rounds no longer ask for these instances.
    ctx.instances.forget(side, &ids).await;
    decided
}

async fn gate(
    ctx: &mut StepCtx<'_>,
    side: &crate::aws::SideClients,
    gated: &[Gated],
    ids: &[String],
    timeout: Duration,
    last_booted: Option<DateTime<Utc>>,
) -> Result<Passed, Halt> {
    let started = ctx.clock.now();
    let booted = last_booted.unwrap_or(started);
    // The gate passes when the last of its instances has booted.
    let phase = poll::BOOT.last_of(ids.len());
    if let Some(at) = last_booted {
        let booting = (started - at).to_std().unwrap_or_default();
        if let Some(early) = phase.earliest.checked_sub(booting) {
            ctx.say(format!(
                "{} instance(s) booting; their status checks are looked at in {} (when the last of them can have passed)",
                ids.len(),
                human(early)
            ));
            ctx.pause(early).await?;
        }
    }
    let mut last = String::new();
    loop {
        let (watch, clock) = (ctx.instances, ctx.clock);
        let statuses = retry::read(ctx, || watch.status(side, clock.now(), ids)).await?;
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        let decision = decide(gated, &statuses, waited >= timeout);
        let passed = gated
            .iter()
            .filter(|g| {
                standing(statuses.iter().find(|s| s.instance_id == g.instance_id))
                    == Standing::Passed
            })
            .count();
        let line = format!(
            "{passed}/{} instance(s) running with both status checks passed",
            gated.len()
        );
        if line != last {
            ctx.say(&line);
            last = line;
        }
        match decision {
            Decision::Recovered { passed_over } => {
                for (server, reason) in &passed_over {
                    ctx.say(format!(
                        "optional server {server} did not pass the health gate ({reason}); the wave goes on without it"
                    ));
                }
                let states = statuses
                    .iter()
                    .map(|s| (s.instance_id.clone(), s.state.clone()))
                    .collect();
                return Ok(Passed {
                    passed_over,
                    states,
                });
            }
            Decision::Failed(failed) => {
                let list: Vec<String> = failed
                    .iter()
                    .map(|(server, instance, check)| {
                        format!("{server} (instance {instance}): {check}")
                    })
                    .collect();
                return Err(Halt::Failed(StepFailure::new(
                    format!(
                        "the health gate failed for critical server(s) within the boot timeout of {}: {}",
                        human(timeout),
                        list.join("; ")
                    ),
                    format!(
                        "look at the instance in the EC2 console of the recovery region (status checks, system log, launch template subnet and security groups); a slow boot needs a longer `boot_timeout` on the wave; then `drs-runbook retry {} --step {}` or `drs-runbook rollback {}`",
                        ctx.run.id, ctx.step.key, ctx.run.id
                    ),
                )));
            }
            Decision::Wait => {
                let pause = phase.pause(booted, ctx.clock.now());
                ctx.pause(pause).await?;
            }
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, state: &str, system: &str, instance: &str) -> InstanceStatus {
        InstanceStatus {
            instance_id: id.into(),
            state: state.into(),
            system: system.into(),
            instance: instance.into(),
        }
    }

    fn gated(server: &str, id: &str, optional: bool) -> Gated {
        Gated {
            source_server_id: server.into(),
            instance_id: id.into(),
            optional,
        }
    }

    #[test]
    fn both_checks_ok_pass_and_initializing_waits() {
        let g = [gated("s-1", "i-1", false)];
        assert_eq!(
            decide(&g, &[status("i-1", "running", "ok", "ok")], false),
            Decision::Recovered {
                passed_over: vec![]
            }
        );
        assert_eq!(
            decide(&g, &[status("i-1", "running", "ok", "initializing")], false),
            Decision::Wait
        );
        assert_eq!(
            decide(
                &g,
                &[status("i-1", "pending", "not-applicable", "not-applicable")],
                false
            ),
            Decision::Wait
        );
    }

    #[test]
    fn a_critical_impaired_instance_holds_then_fails_naming_the_check() {
        let g = [gated("s-1", "i-1", false), gated("s-2", "i-2", false)];
        let statuses = [
            status("i-1", "running", "ok", "impaired"),
            status("i-2", "running", "ok", "ok"),
        ];
        assert_eq!(decide(&g, &statuses, false), Decision::Wait);
        assert_eq!(
            decide(&g, &statuses, true),
            Decision::Failed(vec![(
                "s-1".into(),
                "i-1".into(),
                "instance status check impaired".into()
            )])
        );
    }

    #[test]
    fn an_optional_failure_is_passed_over_and_a_stopped_critical_fails_at_once() {
        let g = [gated("s-1", "i-1", false), gated("s-2", "i-2", true)];
        let statuses = [
            status("i-1", "running", "ok", "ok"),
            status("i-2", "running", "impaired", "impaired"),
        ];
        assert_eq!(
            decide(&g, &statuses, false),
            Decision::Recovered {
                passed_over: vec![(
                    "s-2".into(),
                    "system status check impaired, instance status check impaired".into()
                )]
            }
        );
        let stopped = [status("i-1", "stopped", "not-applicable", "not-applicable")];
        assert!(
            matches!(decide(&g[..1], &stopped, false), Decision::Failed(f) if f[0].2 == "instance state stopped")
        );
        // A missing instance is down, not booting.
        assert!(matches!(decide(&g[..1], &[], false), Decision::Failed(_)));
    }
}
