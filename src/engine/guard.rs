//! The production guard: a run that would replace a live non-drill recovery instance is refused
//! (exit 4) before it is even stored, unless the operator overrides it explicitly
//! (`--override-production-guard`, recorded in the run's audit trail).
//!
//! Why: "Launch of a new recovery instance from the same source server cleans up all the
//! previous recovery instances" (DRS user guide, *Recovery instances*). A drill, or a second
//! failover, after a succeeded failover would terminate the instances serving production; a
//! failback drill launched from A2 would terminate the A3s serving production after a failback.
//!
//! ```text
//!   drill / failover:  the runbook's servers (B1, target)   ─► DescribeRecoveryInstances(target)
//!   failback --drill:  the A2s reversed from those B1s (source) ─► DescribeRecoveryInstances(source)
//!        any isDrill = false whose EC2 state is not TERMINATED ─► refused, naming each instance,
//!        the run that created it (our database, when it knows the job) and what would go
//! ```
//!
//! What DRS says is the authority, not our database: an instance launched from the console, or
//! by a run whose database is elsewhere, is found all the same. The guard runs first, before
//! any other check, and wins: a refusal is exit 4 whatever the preflight would say.
//! A failback (not a drill) is not guarded here: its preflight refuses existing A3s, and the
//! failover's B2s are expected to be live.

use serde::Serialize;

use crate::aws::{AwsError, Clients, SideClients};
use crate::runbook::Runbook;
use crate::steps::RunOptions;
use crate::store::{self, Database, Operation, RunId};

/// A live non-drill recovery instance the run would replace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveInstance {
    pub recovery_instance_id: String,
    pub source_server_id: String,
    pub job_id: Option<String>,
    pub ec2_state: String,
    pub account: String,
    pub region: String,
    /// The run of our database that launched it (its StartRecovery's job), if known.
    pub created_by: Option<CreatedBy>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreatedBy {
    pub run_id: RunId,
    pub operation: String,
    pub step: String,
}

impl std::fmt::Display for LiveInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (EC2 {}, recovered from {} in {}/{}",
            self.recovery_instance_id,
            self.ec2_state,
            self.source_server_id,
            self.account,
            self.region
        )?;
        if let Some(job) = &self.job_id {
            write!(f, ", job {job}")?;
        }
        match &self.created_by {
            Some(by) => write!(
                f,
                ", launched by {} run {} step {})",
                by.operation, by.run_id, by.step
            ),
            None => write!(f, ", not launched by a run of this database)"),
        }
    }
}

/// A run refused by the guard.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub operation: Operation,
    pub instances: Vec<LiveInstance>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} would terminate {} live production recovery instance(s), because DRS cleans up a server's previous recovery instances when it launches a new one: {} (hint: fail back first (`drs-runbook failback`), or terminate them if they are leftovers; to replace them anyway, run again with --override-production-guard, which is recorded in the audit trail)",
            what(self.operation),
            self.instances.len(),
            self.instances
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

fn what(operation: Operation) -> &'static str {
    match operation {
        Operation::Drill => "drill",
        Operation::Failover => "failover",
        Operation::Failback => "failback drill",
        Operation::Rollback => "rollback",
    }
}

/// Whether this run is guarded at all.
pub fn applies(operation: Operation, options: &RunOptions) -> bool {
    match operation {
        Operation::Drill | Operation::Failover => true,
        Operation::Failback => options.drill,
        Operation::Rollback => false,
    }
}

/// The live non-drill recovery instances the run would replace (empty: nothing to guard).
pub async fn live_production(
    db: &Database,
    clients: &Clients,
    runbook: &Runbook,
    operation: Operation,
) -> Result<Vec<LiveInstance>, AwsError> {
    let b1s = runbook_servers(&clients.target, runbook).await?;
    let (side, servers) = match operation {
        Operation::Failback => (&clients.source, reversed_servers(clients, &b1s).await?),
        _ => (&clients.target, b1s),
    };
    if servers.is_empty() {
        return Ok(Vec::new());
    }
    let found = crate::aws::with_throttle_retry(|| side.recovery_instances_of(&servers)).await?;
    let mut live = Vec::new();
    for instance in found {
        let state = instance
            .ec2_state
            .clone()
            .unwrap_or_else(|| "UNKNOWN".into());
        if instance.is_drill || matches!(state.as_str(), "TERMINATED" | "NOT_FOUND") {
            continue;
        }
        let created_by = match &instance.job_id {
            Some(job) => created_by(db, job).await,
            None => None,
        };
        live.push(LiveInstance {
            recovery_instance_id: instance.id.clone(),
            source_server_id: instance.source_server_id.clone().unwrap_or_default(),
            job_id: instance.job_id.clone(),
            ec2_state: state,
            account: side.account_id.clone(),
            region: side.region.clone(),
            created_by,
        });
    }
    live.sort_by(|a, b| a.recovery_instance_id.cmp(&b.recovery_instance_id));
    Ok(live)
}

/// The runbook's source servers (B1): those it names, and those its selections match.
async fn runbook_servers(target: &SideClients, runbook: &Runbook) -> Result<Vec<String>, AwsError> {
    let mut servers: Vec<String> = runbook
        .waves
        .iter()
        .flat_map(|w| w.servers.iter().cloned())
        .collect();
    let selections: Vec<_> = runbook
        .waves
        .iter()
        .filter_map(|w| w.select.as_ref())
        .collect();
    if !selections.is_empty() {
        let all = crate::aws::with_throttle_retry(|| target.list_source_servers()).await?;
        for s in all {
            if selections
                .iter()
                .any(|selection| selection.matches(&s.tags))
            {
                servers.push(s.id);
            }
        }
    }
    servers.sort();
    servers.dedup();
    Ok(servers)
}

/// The A2s (source side) reversed from these B1s: their recovery instances are the A3s.
async fn reversed_servers(clients: &Clients, b1s: &[String]) -> Result<Vec<String>, AwsError> {
    let target = &clients.target;
    let source = &clients.source;
    let described = crate::aws::with_throttle_retry(|| target.describe_source_servers(b1s)).await?;
    let arns: Vec<String> = described.iter().filter_map(|s| s.arn.clone()).collect();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let origin = crate::aws::with_throttle_retry(|| source.list_source_servers()).await?;
    Ok(origin
        .into_iter()
        .filter(|s| {
            s.reversed_direction_arn
                .as_ref()
                .is_some_and(|a| arns.contains(a))
        })
        .map(|s| s.id)
        .collect())
}

/// An old source instance (A1) that a failback did not fence, replicating into B1 again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaleSource {
    /// B1, in the target account and region.
    pub source_server_id: String,
    /// The instance B1 replicates from: the old source, A1.
    pub replicates_from: String,
    pub replication_state: String,
    /// The failed-back instance (A4) serving production, which B1 should protect.
    pub failed_back_to: String,
}

/// A failover refused because it would recover the stale disks of an unfenced old source.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleRefusal {
    pub servers: Vec<StaleSource>,
}

impl std::fmt::Display for StaleRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the failover would recover stale data: {} source server(s) replicate from the old source instance a failback left running, not from the failed-back instance that serves production: {} (hint: stop or terminate the old source instances (`aws ec2 stop-instances`), then re-protect the failed-back servers: ReverseReplication on each A3, or a failback with `[cleanup] reprotect = true`)",
            self.servers.len(),
            self.servers
                .iter()
                .map(|s| format!(
                    "{} replicates {} from {} instead of {}",
                    s.source_server_id, s.replication_state, s.replicates_from, s.failed_back_to
                ))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

/// The runbook's B1s that were failed back from (B1 names its A2 by
/// `reversedDirectionSourceServerArn`, and that A2 has a live A3) but still replicate from
/// another instance than A3's (A4): the old source's agent resumed, e.g. when its region came
/// back. DRS is the authority, as for the production guard. The source side is read only when
/// such a B1 replicates, so a failover in a source-region outage never calls it.
pub async fn stale_sources(
    clients: &Clients,
    runbook: &Runbook,
) -> Result<Vec<StaleSource>, AwsError> {
    let target = &clients.target;
    let b1s = runbook_servers(target, runbook).await?;
    if b1s.is_empty() {
        return Ok(Vec::new());
    }
    let described =
        crate::aws::with_throttle_retry(|| target.describe_source_servers(&b1s)).await?;
    let candidates: Vec<(&crate::aws::drs::SourceServer, String)> = described
        .iter()
        .filter(|s| {
            !matches!(
                s.replication_state.as_deref(),
                None | Some("STOPPED" | "DISCONNECTED" | "NOT_STARTED")
            )
        })
        .filter_map(|s| {
            let a2 = s.reversed_direction_arn.as_deref()?.rsplit('/').next()?;
            Some((s, a2.to_string()))
        })
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let a2s: Vec<String> = candidates.iter().map(|(_, a2)| a2.clone()).collect();
    let source = &clients.source;
    let a3s = crate::aws::with_throttle_retry(|| source.recovery_instances_of(&a2s)).await?;
    let mut stale = Vec::new();
    for (b1, a2) in candidates {
        let a4 = a3s
            .iter()
            .filter(|a3| {
                a3.source_server_id.as_deref() == Some(a2.as_str())
                    && !a3.is_drill
                    && !matches!(a3.ec2_state.as_deref(), Some("TERMINATED" | "NOT_FOUND"))
            })
            .find_map(|a3| a3.ec2_instance_id.clone());
        if let Some(a4) = a4
            && b1.aws_instance_id.as_deref() != Some(a4.as_str())
        {
            stale.push(StaleSource {
                source_server_id: b1.id.clone(),
                replicates_from: b1.aws_instance_id.clone().unwrap_or_else(|| "?".into()),
                replication_state: b1.replication_state.clone().unwrap_or_default(),
                failed_back_to: a4,
            });
        }
    }
    Ok(stale)
}

/// The run of our database whose StartRecovery made this job, if any.
async fn created_by(db: &Database, job_id: &str) -> Option<CreatedBy> {
    let mut conn = db.pool().acquire().await.ok()?;
    let effect = store::effects::mentioning(&mut conn, "drs:StartRecovery", job_id)
        .await
        .ok()?
        .into_iter()
        .next()?;
    let run = store::runs::get(&mut conn, &effect.run_id).await.ok()?;
    Some(CreatedBy {
        run_id: effect.run_id,
        operation: run.operation.as_str().to_string(),
        step: effect.step_key,
    })
}
