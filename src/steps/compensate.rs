//! The steps of a rollback run: `undo:<key>` undoes the step `<key>` of the original run (the
//! rollback's parent), and carries that step's kind. Like every step they are re-entrant: each
//! persists what it is going to change before changing it, and every mutating call goes
//! intent -> call -> effect, an open intent being reconciled against AWS on resume.
//!
//! Each compensation lives beside its step (`dns_cutover::compensate`, ...); this module is the
//! loader (which original step, and its typed output) and the dispatch.
//!
//! | original step | compensation |
//! |---|---|
//! | `dns_cutover` | the captured record sets (`zones[].before`) UPSERTed back, records that did not exist before DELETEd; wait INSYNC |
//! | `lb_switch:W` | the targets it deregistered registered again, the ones it added deregistered |
//! | `validate:W` (drill) | the drill instances it registered in a drill target group deregistered |
//! | `recovery_job:W` | the launch dispositions it held `STOPPED` given back ([`super::boot`]); the recovery instances of its jobs (found by the jobs' tags) terminated; planned with an approval gate unless the run was a drill |
//! | `a2_recovery:W` | the same, in the origin: the failback instances (A3) of its jobs terminated |
//! | `quiesce` (failback) | the recovery instances (B3) it deregistered registered again in the failover target groups (recovery account) |
//! | `reversed_replication:W` | StopReplication of each A2 the step created, reconciled or adopted (origin) |
//! | `fence_source` | StartInstances on the source instances (A1) the fence stopped, then a wait until they run (last: after the recovery instances are gone) |
//!
//! A compensation works on the side its original step used: for a failback, the target groups
//! and the recovery jobs are in the origin (source) account and region; DNS is always changed
//! with the credentials of the account that owns the zone. A rollback of a failback, newest first,
//! registers the B3s again as soon as traffic points back at them (`undo:quiesce`, moved before
//! the A3s' terminations), terminates a wave's A3s before it stops its A2s, and stops every A2
//! before anything could terminate the B2s replicating into them (DRS refuses that order the
//! other way round).

use serde_json::Value;

use super::{Halt, StepCtx, StepFailure};
use super::{
    dns_cutover, fence_source, lb_switch, quiesce, recovery_job, reversed_replication, validate,
};
use crate::run::StepKind;
use crate::runbook::Account;
use crate::store::{self, RunId};

/// The compensations' outputs, each beside its step.
pub use super::dns_cutover::{UndoDnsOutput, ZoneRestore};
pub use super::fence_source::UndoFenceOutput;
pub use super::lb_switch::{GroupRestore, UndoLbOutput};
pub use super::quiesce::UndoQuiesceOutput;
pub use super::recovery_job::UndoRecoveryOutput;
pub use super::reversed_replication::UndoReversedOutput;

/// The key prefix of a compensation step.
pub const UNDO_PREFIX: &str = "undo:";

/// Whether a step of this kind has a compensation (the rollback planner plans only these).
pub fn compensates(kind: StepKind) -> bool {
    match kind {
        StepKind::DnsCutover
        | StepKind::LbSwitch
        | StepKind::RecoveryJob
        | StepKind::A2Recovery
        | StepKind::ReversedReplication
        | StepKind::Quiesce
        | StepKind::FenceSource => true,
        // A drill's validate registers the drill instances in the runbook's drill target
        // groups; undone before the instances are terminated (it is newer than their job).
        StepKind::Validate => true,
        // Read-only steps change nothing; a drill's cleanup only removed what the run created.
        StepKind::Preflight
        | StepKind::SnapshotConversion
        | StepKind::Launch
        | StepKind::Cleanup => false,
        // StartInstances of instances the recovery's undo terminates anyway.
        StepKind::Boot => false,
        // An action has no undo: a rollback runs the actions that name `rollback` instead.
        StepKind::Action => false,
    }
}

/// The original step a compensation undoes.
pub(crate) struct Undone {
    pub(crate) run_id: RunId,
    pub(crate) key: String,
    pub(crate) output: Value,
    pub(crate) created_at: chrono::DateTime<chrono::Utc>,
    /// The original run was a failback: its jobs and target groups are in the origin.
    pub(crate) failback: bool,
}

impl Undone {
    /// The original step's output, typed: one that does not decode fails the compensation
    /// (naming the run and the step), never reads as "nothing to undo".
    pub(crate) fn decode<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, Halt> {
        Ok(crate::run::journal::decode_output(
            &self.run_id,
            &self.key,
            self.output.clone(),
        )?)
    }

    /// The side whose DRS and load balancers the original step used (as
    /// [`StepCtx::recovery_side`] chose it for the original run).
    pub(crate) fn side(&self) -> Account {
        if self.failback {
            Account::Source
        } else {
            Account::Target
        }
    }
}

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let undone = undone(ctx).await?;
    match ctx.step.kind {
        StepKind::DnsCutover => dns_cutover::compensate(ctx, &undone).await,
        StepKind::LbSwitch => lb_switch::compensate(ctx, &undone).await,
        StepKind::RecoveryJob | StepKind::A2Recovery => {
            recovery_job::compensate(ctx, &undone).await
        }
        StepKind::ReversedReplication => reversed_replication::compensate(ctx, &undone).await,
        StepKind::Validate => validate::compensate(ctx, &undone).await,
        StepKind::FenceSource => fence_source::compensate(ctx, &undone).await,
        StepKind::Quiesce => quiesce::compensate(ctx, &undone).await,
        kind => Err(Halt::Failed(StepFailure::new(
            format!("a {kind} step has no compensation"),
            format!(
                "skip it: `drs-runbook skip {} --step {} --reason ...`",
                ctx.run.id, ctx.step.key
            ),
        ))),
    }
}

/// The approval gate's view of a compensation: what it changes back.
pub(crate) async fn preview(
    ctx: &mut StepCtx<'_>,
) -> Result<Vec<crate::run::progress::Change>, Halt> {
    let undone = undone(ctx).await?;
    match ctx.step.kind {
        StepKind::DnsCutover => dns_cutover::preview_compensation(&undone),
        StepKind::LbSwitch => lb_switch::preview_compensation(&undone),
        StepKind::RecoveryJob | StepKind::A2Recovery => {
            recovery_job::preview_compensation(ctx, &undone).await
        }
        kind => Err(Halt::Failed(StepFailure::new(
            format!("the undo of a {kind} step has no preview"),
            "`drs-runbook show <run>` shows what the original step recorded",
        ))),
    }
}

/// Reads which run and step this compensation undoes (the step's input) and that step's output.
async fn undone(ctx: &StepCtx<'_>) -> Result<Undone, Halt> {
    let corrupt = |what: &str| {
        Halt::Failed(StepFailure::new(
            format!(
                "step {} of rollback run {} does not name {what}",
                ctx.step.key, ctx.run.id
            ),
            "the database was edited or is from another version; start a new rollback",
        ))
    };
    let mut conn = ctx.journal.db().pool().acquire().await.map_err(|e| {
        StepFailure::new(
            format!("failed to read the run database: {e}"),
            "check the database file",
        )
    })?;
    let me = store::steps::get(&mut conn, ctx.journal.run_id(), &ctx.step.key)
        .await
        .map_err(store_failure)?;
    let run_id: RunId = me.input["original_run"]
        .as_str()
        .ok_or_else(|| corrupt("the original run"))?
        .parse()
        .map_err(|_| corrupt("a valid original run"))?;
    let key = me.input["undo"]
        .as_str()
        .ok_or_else(|| corrupt("the step it undoes"))?
        .to_string();
    let original = store::runs::get(&mut conn, &run_id)
        .await
        .map_err(store_failure)?;
    let step = store::steps::get(&mut conn, &run_id, &key)
        .await
        .map_err(store_failure)?;
    Ok(Undone {
        run_id,
        key,
        output: step.output,
        created_at: original.created_at,
        failback: original.operation == store::Operation::Failback,
    })
}

fn store_failure(e: store::StoreError) -> StepFailure {
    StepFailure::new(
        format!("failed to read the original run: {e}"),
        "check the database file, then resume the rollback",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_output_that_does_not_decode_fails_the_rollback_naming_run_and_step() {
        let run_id = crate::store::RunId::generate();
        let undone = super::Undone {
            run_id: run_id.clone(),
            key: "dns_cutover".into(),
            // A capture edited (or written by another version): not a list of zones.
            output: serde_json::json!({ "zones": "not a list" }),
            created_at: chrono::Utc::now(),
            failback: false,
        };
        let Err(super::Halt::Failed(failure)) = undone.decode::<super::dns_cutover::DnsOutput>()
        else {
            panic!("a corrupt capture must fail the compensation, not restore nothing");
        };
        assert!(failure.message.contains(&run_id.to_string()), "{failure}");
        assert!(failure.message.contains("step dns_cutover"), "{failure}");
        assert!(failure.message.contains("DnsOutput"), "{failure}");
        // No output yet is not an error: nothing was captured, so nothing is restored.
        let empty = super::Undone {
            output: serde_json::json!({}),
            ..undone
        };
        assert_eq!(
            empty.decode::<super::dns_cutover::DnsOutput>().unwrap(),
            super::dns_cutover::DnsOutput::default()
        );
    }
}
