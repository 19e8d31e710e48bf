//! What the failback steps share: the failover run a failback reverses (its `parent_run_id`),
//! and the recovery instances (B2) its launch steps recorded, read from the store.

use super::launch::LaunchOutput;
use super::{Halt, StepCtx, StepFailure};
use crate::store::{self, RunId};

/// One server the failover recovered: B1 and its recovery instance B2.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedOver {
    /// B1, the source server in the target account and region (as named in the runbook).
    pub source_server_id: String,
    /// B2, the recovery instance.
    pub recovery_instance_id: String,
    /// B3, B2's EC2 instance.
    pub ec2_instance_id: Option<String>,
}

fn store_failure(e: impl std::fmt::Display) -> Halt {
    Halt::Failed(StepFailure::new(
        format!("failed to read the failover run from the database: {e}"),
        "check the database file, then resume the run",
    ))
}

/// The failover run this failback reverses.
pub async fn failover_run_id(ctx: &StepCtx<'_>) -> Result<RunId, Halt> {
    let mut conn = ctx
        .journal
        .db()
        .pool()
        .acquire()
        .await
        .map_err(store_failure)?;
    let run = store::runs::get(&mut conn, ctx.journal.run_id())
        .await
        .map_err(store_failure)?;
    run.parent_run_id.ok_or_else(|| {
        Halt::Failed(StepFailure::new(
            format!(
                "failback run {} is not linked to a failover run",
                ctx.run.id
            ),
            "start the failback with `drs-runbook failback <runbook> --from-run <failover run>`",
        ))
    })
}

/// The servers of `wave` that the failover launched, with their recovery instances.
pub async fn failed_over(
    ctx: &StepCtx<'_>,
    failover: &RunId,
    wave: &str,
) -> Result<Vec<FailedOver>, Halt> {
    let mut conn = ctx
        .journal
        .db()
        .pool()
        .acquire()
        .await
        .map_err(store_failure)?;
    let step = store::steps::get(&mut conn, failover, &format!("launch:{wave}"))
        .await
        .map_err(store_failure)?;
    let launch: LaunchOutput = serde_json::from_value(step.output).unwrap_or_default();
    Ok(launch
        .launched()
        .filter(|(_, s)| !s.is_drill)
        .map(|(server, s)| FailedOver {
            source_server_id: server.clone(),
            recovery_instance_id: s
                .recovery_instance_id
                .clone()
                .expect("launched() has an instance"),
            ec2_instance_id: s.ec2_instance_id.clone(),
        })
        .collect())
}

/// The servers of every wave that the failover launched.
pub async fn failed_over_all(ctx: &StepCtx<'_>, failover: &RunId) -> Result<Vec<FailedOver>, Halt> {
    let mut all = Vec::new();
    for wave in &ctx.runbook.waves {
        all.extend(failed_over(ctx, failover, &wave.name).await?);
    }
    Ok(all)
}
