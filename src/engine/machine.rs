//! The pure state machine of a run: no async, no clock, no I/O.
//!
//! Two layers, both table-tested:
//! - [`step_transition`]: one exhaustive `match (status, event)` for a single step;
//! - [`decide`]: given every step's status, what the driver must do next (start steps, ask for
//!   an approval, pause, or finish the run with an outcome).
//!
//! Terminal states absorb duplicate events of the same kind (a `Succeeded` delivered twice
//! after a resume is not an error), everything else that makes no sense is refused.

use serde::{Deserialize, Serialize};

/// The persisted status of a step: the store's type, one enum for the engine and the store.
pub use crate::store::StepStatus;

/// What can happen to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEvent {
    /// The driver starts (or, after a resume, restarts) the step's execution.
    Start,
    /// The step waits for an operator before it may start.
    AwaitApproval,
    /// An operator approved it (`approve`, or the prompt).
    Approve,
    Succeed,
    Fail,
    /// An operator skipped it (`skip --reason`).
    Skip,
    /// An operator asked to try a failed step again (`retry`).
    Retry,
    /// The run was cancelled before the step finished.
    Cancel,
}

/// A transition that the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a step that is {from} cannot take the event {event:?}")]
pub struct InvalidTransition {
    pub from: &'static str,
    pub event: StepEvent,
}

/// The next status of a step.
pub fn step_transition(
    from: StepStatus,
    event: StepEvent,
) -> Result<StepStatus, InvalidTransition> {
    use StepEvent as E;
    use StepStatus as S;
    // Every (status, event) pair is spelled out, refusals included: a new status or event does
    // not compile until each of its pairs is decided here (and in the table test).
    let next = match (from, event) {
        (S::Pending, E::Start) => Some(S::Running),
        (S::Pending, E::AwaitApproval) => Some(S::WaitingApproval),
        (S::Pending, E::Skip) => Some(S::Skipped),
        (S::Pending, E::Cancel) => Some(S::Cancelled),
        (S::Pending, E::Approve | E::Succeed | E::Fail | E::Retry) => None,

        (S::WaitingApproval, E::Approve) => Some(S::Pending),
        (S::WaitingApproval, E::AwaitApproval) => Some(S::WaitingApproval),
        (S::WaitingApproval, E::Skip) => Some(S::Skipped),
        (S::WaitingApproval, E::Cancel) => Some(S::Cancelled),
        (S::WaitingApproval, E::Start | E::Succeed | E::Fail | E::Retry) => None,

        // A resumed run restarts a step that was running when the driver stopped: the step
        // reconciles its open intents before doing anything else.
        (S::Running, E::Start) => Some(S::Running),
        (S::Running, E::Succeed) => Some(S::Succeeded),
        (S::Running, E::Fail) => Some(S::Failed),
        (S::Running, E::Cancel) => Some(S::Cancelled),
        (S::Running, E::AwaitApproval | E::Approve | E::Skip | E::Retry) => None,

        (S::Failed, E::Retry) => Some(S::Pending),
        (S::Failed, E::Skip) => Some(S::Skipped),
        // Terminal states absorb a duplicate of the event that made them.
        (S::Failed, E::Fail) => Some(S::Failed),
        (S::Failed, E::Start | E::AwaitApproval | E::Approve | E::Succeed | E::Cancel) => None,

        (S::Succeeded, E::Succeed) => Some(S::Succeeded),
        (
            S::Succeeded,
            E::Start | E::AwaitApproval | E::Approve | E::Fail | E::Skip | E::Retry | E::Cancel,
        ) => None,

        (S::Skipped, E::Skip) => Some(S::Skipped),
        (
            S::Skipped,
            E::Start | E::AwaitApproval | E::Approve | E::Succeed | E::Fail | E::Retry | E::Cancel,
        ) => None,

        (S::Cancelled, E::Cancel) => Some(S::Cancelled),
        (
            S::Cancelled,
            E::Start | E::AwaitApproval | E::Approve | E::Succeed | E::Fail | E::Skip | E::Retry,
        ) => None,
    };
    let next = next.ok_or(InvalidTransition {
        from: from.as_str(),
        event,
    })?;
    Ok(next)
}

/// What the machine needs to know of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepView {
    pub key: String,
    pub status: StepStatus,
    pub depends_on: Vec<String>,
    /// The runbook asks for an operator before this step.
    pub needs_approval: bool,
    /// An operator approved it already.
    pub approved: bool,
}

/// Flags of the run that change the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFlags {
    /// `--yes`: approvals are given up front.
    pub auto_approve: bool,
    /// Ctrl-C or `cancel`: start nothing new.
    pub stopping: bool,
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    /// Stopped at a safe point; resumable.
    Stopped,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    StartStep(String),
    /// Ask for (or wait for) an operator's approval of this step.
    RequestApproval(String),
    /// Nothing can move without an operator: pause the run (exit 3).
    Pause,
    /// Wait for running steps to report.
    Wait,
    Finish(RunOutcome),
}

/// Decides the next commands from every step's status. Pure and total.
pub fn decide(steps: &[StepView], flags: RunFlags) -> Vec<Command> {
    let status_of = |key: &str| steps.iter().find(|s| s.key == key).map(|s| s.status);
    let running = steps.iter().any(|s| s.status == StepStatus::Running);
    let failed = steps.iter().any(|s| s.status == StepStatus::Failed);

    if flags.stopping || failed {
        // Start nothing new; finish once the running steps have reported.
        return if running {
            vec![Command::Wait]
        } else if failed {
            vec![Command::Finish(RunOutcome::Failed)]
        } else {
            vec![Command::Finish(RunOutcome::Stopped)]
        };
    }
    if steps.iter().all(|s| s.status.is_done()) {
        return vec![Command::Finish(RunOutcome::Succeeded)];
    }

    let mut commands = Vec::new();
    let mut waiting_for_operator = false;
    for step in steps {
        let ready = step
            .depends_on
            .iter()
            .all(|d| status_of(d).is_some_and(StepStatus::is_done));
        match step.status {
            StepStatus::Pending | StepStatus::WaitingApproval if ready => {
                if step.needs_approval && !step.approved && !flags.auto_approve {
                    commands.push(Command::RequestApproval(step.key.clone()));
                    waiting_for_operator = true;
                } else {
                    commands.push(Command::StartStep(step.key.clone()));
                }
            }
            _ => {}
        }
    }
    let starting = commands.iter().any(|c| matches!(c, Command::StartStep(_)));
    if !starting && !running {
        if waiting_for_operator {
            commands.push(Command::Pause);
        } else {
            // Nothing runs, nothing can start and no operator is awaited: only a step whose
            // dependencies were cancelled can be left; treat as stopped.
            commands.push(Command::Finish(RunOutcome::Stopped));
        }
    } else if !starting {
        commands.push(Command::Wait);
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepEvent as E;
    use StepStatus as S;

    #[test]
    fn step_transitions_table() {
        // Every (status, event) pair: 7 x 8 = 56 rows, 18 accepted.
        let table = [
            (S::Pending, E::Start, Some(S::Running)),
            (S::Pending, E::AwaitApproval, Some(S::WaitingApproval)),
            (S::Pending, E::Approve, None),
            (S::Pending, E::Succeed, None),
            (S::Pending, E::Fail, None),
            (S::Pending, E::Skip, Some(S::Skipped)),
            (S::Pending, E::Retry, None),
            (S::Pending, E::Cancel, Some(S::Cancelled)),
            (S::WaitingApproval, E::Start, None),
            (
                S::WaitingApproval,
                E::AwaitApproval,
                Some(S::WaitingApproval),
            ),
            (S::WaitingApproval, E::Approve, Some(S::Pending)),
            (S::WaitingApproval, E::Succeed, None),
            (S::WaitingApproval, E::Fail, None),
            (S::WaitingApproval, E::Skip, Some(S::Skipped)),
            (S::WaitingApproval, E::Retry, None),
            (S::WaitingApproval, E::Cancel, Some(S::Cancelled)),
            (S::Running, E::Start, Some(S::Running)),
            (S::Running, E::AwaitApproval, None),
            (S::Running, E::Approve, None),
            (S::Running, E::Succeed, Some(S::Succeeded)),
            (S::Running, E::Fail, Some(S::Failed)),
            (S::Running, E::Skip, None),
            (S::Running, E::Retry, None),
            (S::Running, E::Cancel, Some(S::Cancelled)),
            (S::Succeeded, E::Start, None),
            (S::Succeeded, E::AwaitApproval, None),
            (S::Succeeded, E::Approve, None),
            (S::Succeeded, E::Succeed, Some(S::Succeeded)),
            (S::Succeeded, E::Fail, None),
            (S::Succeeded, E::Skip, None),
            (S::Succeeded, E::Retry, None),
            (S::Succeeded, E::Cancel, None),
            (S::Failed, E::Start, None),
            (S::Failed, E::AwaitApproval, None),
            (S::Failed, E::Approve, None),
            (S::Failed, E::Succeed, None),
            (S::Failed, E::Fail, Some(S::Failed)),
            (S::Failed, E::Skip, Some(S::Skipped)),
            (S::Failed, E::Retry, Some(S::Pending)),
            (S::Failed, E::Cancel, None),
            (S::Skipped, E::Start, None),
            (S::Skipped, E::AwaitApproval, None),
            (S::Skipped, E::Approve, None),
            (S::Skipped, E::Succeed, None),
            (S::Skipped, E::Fail, None),
            (S::Skipped, E::Skip, Some(S::Skipped)),
            (S::Skipped, E::Retry, None),
            (S::Skipped, E::Cancel, None),
            (S::Cancelled, E::Start, None),
            (S::Cancelled, E::AwaitApproval, None),
            (S::Cancelled, E::Approve, None),
            (S::Cancelled, E::Succeed, None),
            (S::Cancelled, E::Fail, None),
            (S::Cancelled, E::Skip, None),
            (S::Cancelled, E::Retry, None),
            (S::Cancelled, E::Cancel, Some(S::Cancelled)),
        ];
        assert_eq!(table.len(), 56);
        let mut pairs = std::collections::HashSet::new();
        for (from, event, expected) in table {
            assert!(
                pairs.insert((from, format!("{event:?}"))),
                "{from:?} + {event:?} twice"
            );
            assert_eq!(
                step_transition(from, event).ok(),
                expected,
                "{from:?} + {event:?}"
            );
        }
        assert_eq!(table.iter().filter(|(_, _, to)| to.is_some()).count(), 18);
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in [
            S::Pending,
            S::Running,
            S::WaitingApproval,
            S::Succeeded,
            S::Failed,
            S::Skipped,
            S::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<StepStatus>(), Ok(s));
        }
        assert!("done".parse::<StepStatus>().is_err());
    }

    fn view(key: &str, status: StepStatus, deps: &[&str]) -> StepView {
        StepView {
            key: key.into(),
            status,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            needs_approval: false,
            approved: false,
        }
    }

    #[test]
    fn independent_ready_steps_start_together() {
        let steps = [
            view("preflight", S::Succeeded, &[]),
            view("recovery_job:db", S::Pending, &["preflight"]),
            view("recovery_job:cache", S::Pending, &["preflight"]),
            view("recovery_job:app", S::Pending, &["preflight", "launch:db"]),
            view("launch:db", S::Pending, &["recovery_job:db"]),
        ];
        assert_eq!(
            decide(&steps, RunFlags::default()),
            vec![
                Command::StartStep("recovery_job:db".into()),
                Command::StartStep("recovery_job:cache".into())
            ]
        );
    }

    #[test]
    fn running_steps_are_waited_for() {
        let steps = [view("a", S::Running, &[]), view("b", S::Pending, &["a"])];
        assert_eq!(decide(&steps, RunFlags::default()), vec![Command::Wait]);
    }

    #[test]
    fn approval_gates_pause_without_yes_and_pass_with_it() {
        let mut dns = view("dns_cutover", S::Pending, &["launch:app"]);
        dns.needs_approval = true;
        let steps = [view("launch:app", S::Succeeded, &[]), dns.clone()];
        assert_eq!(
            decide(&steps, RunFlags::default()),
            vec![
                Command::RequestApproval("dns_cutover".into()),
                Command::Pause
            ]
        );
        let yes = RunFlags {
            auto_approve: true,
            ..RunFlags::default()
        };
        assert_eq!(
            decide(&steps, yes),
            vec![Command::StartStep("dns_cutover".into())]
        );
        dns.approved = true;
        dns.status = S::Pending;
        let steps = [view("launch:app", S::Succeeded, &[]), dns];
        assert_eq!(
            decide(&steps, RunFlags::default()),
            vec![Command::StartStep("dns_cutover".into())]
        );
    }

    #[test]
    fn an_approval_does_not_block_other_branches() {
        let mut gate = view("cleanup", S::Pending, &["x"]);
        gate.needs_approval = true;
        let steps = [
            view("x", S::Succeeded, &[]),
            gate,
            view("y", S::Running, &[]),
        ];
        assert_eq!(
            decide(&steps, RunFlags::default()),
            vec![Command::RequestApproval("cleanup".into()), Command::Wait]
        );
    }

    #[test]
    fn a_failure_stops_new_starts_and_fails_the_run_once_quiet() {
        let steps = [
            view("a", S::Failed, &[]),
            view("b", S::Running, &[]),
            view("c", S::Pending, &[]),
        ];
        assert_eq!(decide(&steps, RunFlags::default()), vec![Command::Wait]);
        let steps = [view("a", S::Failed, &[]), view("c", S::Pending, &[])];
        assert_eq!(
            decide(&steps, RunFlags::default()),
            vec![Command::Finish(RunOutcome::Failed)]
        );
    }

    #[test]
    fn stopping_waits_for_running_steps_then_stops() {
        let stop = RunFlags {
            stopping: true,
            ..RunFlags::default()
        };
        let steps = [view("a", S::Running, &[]), view("b", S::Pending, &[])];
        assert_eq!(decide(&steps, stop), vec![Command::Wait]);
        let steps = [view("a", S::Succeeded, &[]), view("b", S::Pending, &[])];
        assert_eq!(
            decide(&steps, stop),
            vec![Command::Finish(RunOutcome::Stopped)]
        );
    }

    #[test]
    fn all_done_succeeds_including_skipped_steps() {
        let steps = [view("a", S::Succeeded, &[]), view("b", S::Skipped, &["a"])];
        assert_eq!(
            decide(&steps, RunFlags::default()),
            vec![Command::Finish(RunOutcome::Succeeded)]
        );
        assert_eq!(
            decide(&[], RunFlags::default()),
            vec![Command::Finish(RunOutcome::Succeeded)]
        );
    }
}
