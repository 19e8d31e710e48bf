//! One module per step kind. Each step is **re-entrant**: it starts by reading what it already
//! knows (its persisted output and its open intents), reconciles that against AWS, and only then
//! continues. Resuming a run is therefore just executing its unfinished steps again.
//!
//! Every mutating AWS call follows intent -> call -> effect through [`StepCtx::call`](crate::run::StepCtx::call): the intent is
//! committed before the call, the effect (IDs, request ID) with the step's new output after it.

pub mod a2_recovery;
pub mod action;
pub mod boot;
pub mod cleanup;
pub mod compensate;
pub mod dns_cutover;
pub mod failback;
pub mod failback_cleanup;
pub mod failback_preflight;
pub mod fence_source;
pub mod health;
pub mod launch;
pub mod launch_actions;
pub mod launch_settings;
pub mod lb_switch;
pub mod native_plans;
pub mod preflight;
pub mod quiesce;
pub mod recovery_job;
pub mod reprotect;
pub mod retry;
pub mod reversed_replication;
pub mod snapshot_conversion;
pub mod validate;

use std::time::Duration;

use crate::run::progress::GatePreview;
pub use crate::run::{Halt, RunInfo, RunOptions, StepCtx, StepFailure, StepInfo, StepResult};
use crate::run::{Operation, StepKind};

/// Executes one step.
pub async fn execute(mut ctx: StepCtx<'_>) -> StepResult {
    // A rollback's steps carry the kind of the step they undo (`undo:<key>`).
    // A rollback runs the actions that name `rollback` as themselves.
    if ctx.run.operation == Operation::Rollback && ctx.step.kind != StepKind::Action {
        return compensate::run(&mut ctx).await.into();
    }
    let result = match ctx.step.kind {
        StepKind::Preflight if ctx.run.operation == Operation::Failback => {
            failback_preflight::run(&mut ctx).await
        }
        StepKind::Preflight => preflight::run(&mut ctx).await,
        StepKind::FenceSource => fence_source::run(&mut ctx).await,
        StepKind::RecoveryJob => recovery_job::run(&mut ctx).await,
        StepKind::SnapshotConversion => snapshot_conversion::run(&mut ctx).await,
        StepKind::Launch => launch::run(&mut ctx).await,
        StepKind::Boot => boot::run(&mut ctx).await,
        StepKind::LbSwitch => lb_switch::run(&mut ctx).await,
        StepKind::DnsCutover => dns_cutover::run(&mut ctx).await,
        StepKind::Validate => validate::run(&mut ctx).await,
        StepKind::Cleanup if ctx.run.operation == Operation::Failback => {
            failback_cleanup::run(&mut ctx).await
        }
        StepKind::Cleanup => cleanup::run(&mut ctx).await,
        StepKind::ReversedReplication => reversed_replication::run(&mut ctx).await,
        StepKind::Quiesce => quiesce::run(&mut ctx).await,
        StepKind::A2Recovery => a2_recovery::run(&mut ctx).await,
        StepKind::Action => action::run(&mut ctx).await,
    };
    result.into()
}

/// What an approval gate before this step lets through, read now: each step kind previews its
/// own changes from the plan, its captured state and read calls (never a mutating call, and
/// nothing is journaled: the step computes its changes again when it runs).
pub async fn preview(mut ctx: StepCtx<'_>) -> GatePreview {
    let changes = if ctx.step.kind == StepKind::Action {
        action::preview(&mut ctx).await
    } else if ctx.run.operation == Operation::Rollback {
        compensate::preview(&mut ctx).await
    } else {
        match ctx.step.kind {
            StepKind::DnsCutover => dns_cutover::preview(&mut ctx).await,
            StepKind::LbSwitch => lb_switch::preview(&mut ctx).await,
            StepKind::RecoveryJob => recovery_job::preview(&mut ctx).await,
            StepKind::Quiesce => quiesce::preview(&mut ctx).await,
            StepKind::Cleanup if ctx.run.operation == Operation::Failback => {
                failback_cleanup::preview(&mut ctx).await
            }
            StepKind::Cleanup => cleanup::preview(&mut ctx).await,
            kind => Err(Halt::Failed(StepFailure::new(
                format!("a {kind} step has no preview"),
                "`drs-runbook plan` shows what the run does",
            ))),
        }
    };
    let step = ctx.step.key.clone();
    match changes {
        Ok(changes) => GatePreview {
            step,
            changes,
            unavailable: None,
        },
        Err(Halt::Failed(failure)) => GatePreview {
            step,
            changes: Vec::new(),
            unavailable: Some(failure.message),
        },
        Err(Halt::Stopped) => GatePreview {
            step,
            changes: Vec::new(),
            unavailable: Some("the run is stopping".to_string()),
        },
    }
}

/// Parses an ISO-8601 duration as DRS sends it (`P0D`, `PT5M`, `PT16H20M38.697305S`, `P1DT2H`).
pub fn parse_iso_duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut seconds = 0f64;
    let mut number = String::new();
    for c in date.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'D' => seconds += number.parse::<f64>().ok()? * 86400.0,
            'W' => seconds += number.parse::<f64>().ok()? * 7.0 * 86400.0,
            _ => return None,
        }
        if c.is_ascii_alphabetic() {
            number.clear();
        }
    }
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' => seconds += number.parse::<f64>().ok()? * 3600.0,
            'M' => seconds += number.parse::<f64>().ok()? * 60.0,
            'S' => seconds += number.parse::<f64>().ok()?,
            _ => return None,
        }
        if c.is_ascii_alphabetic() {
            number.clear();
        }
    }
    if !number.is_empty() {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations_as_drs_sends_them() {
        assert_eq!(parse_iso_duration("P0D"), Some(Duration::ZERO));
        assert_eq!(parse_iso_duration("PT5M"), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_iso_duration("P1DT2H"),
            Some(Duration::from_secs(93600))
        );
        assert_eq!(
            parse_iso_duration("PT16H20M38.5S"),
            Some(Duration::from_secs_f64(16.0 * 3600.0 + 20.0 * 60.0 + 38.5))
        );
        assert_eq!(parse_iso_duration("5M"), None);
        assert_eq!(parse_iso_duration("PT5"), None);
    }
}
