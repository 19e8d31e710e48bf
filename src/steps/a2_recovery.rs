//! `a2_recovery:<wave>` (failback): StartRecovery on the wave's A2 servers in the origin
//! (source) account and region, launching A3 (EC2 A4) there; a drill when the failback is one.
//!
//! The batches are planned from the wave's `reversed_replication` output (B1 -> A2), then the
//! StartRecovery machinery of [`super::recovery_job`] runs them on the origin side: the same
//! quotas, the same job tags, the same reconciliation of an open intent by DescribeJobs.

use super::recovery_job::{self, Batch, RecoveryJobOutput};
use super::reversed_replication::ReversedReplicationOutput;
use super::{Halt, StepCtx, StepFailure};

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let out: RecoveryJobOutput = ctx.my_output().await?;
    if out.batches.is_empty() {
        let planned = plan_batches(ctx).await?;
        ctx.save(&planned).await?;
    }
    recovery_job::run(ctx).await
}

async fn plan_batches(ctx: &mut StepCtx<'_>) -> Result<RecoveryJobOutput, Halt> {
    let wave = ctx.wave().clone();
    let reversed: ReversedReplicationOutput = ctx
        .output_of(&format!("reversed_replication:{}", wave.name))
        .await?;
    // The servers the failover recovered (its reversed_replication inventory), the listed ones
    // in the runbook's order, then those a `select` had resolved; a server the failover did not
    // recover has no A2 and is left out.
    let mut servers = Vec::new();
    let mut optional = Vec::new();
    let b1s = wave.servers.iter().chain(
        reversed
            .servers
            .keys()
            .filter(|b1| !wave.servers.contains(b1)),
    );
    for b1 in b1s {
        let Some(a2) = reversed.servers.get(b1).and_then(|s| s.a2_id.clone()) else {
            continue;
        };
        if wave.is_optional(b1) {
            optional.push(a2.clone());
        }
        servers.push(a2);
    }
    if servers.is_empty() {
        return Err(Halt::Failed(StepFailure::new(
            format!("wave {} has no A2 server to recover", wave.name),
            "check the reversed_replication step of this run (drs-runbook show <run>)",
        )));
    }
    let size = ctx.run.options.max_servers_per_job.clamp(1, 100);
    let batches = servers
        .chunks(size)
        .enumerate()
        .map(|(index, chunk)| Batch {
            index,
            servers: chunk.iter().map(|s| (s.clone(), None)).collect(),
            job_id: None,
            started_at: None,
        })
        .collect();
    Ok(RecoveryJobOutput {
        is_drill: ctx.run.options.drill,
        batches,
        optional,
        held: Default::default(),
        launch_actions: Default::default(),
    })
}
