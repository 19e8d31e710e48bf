//! The planner: operation + runbook -> the ordered steps of a run (pure).
//!
//! Convert ahead, boot in order (the default; [`crate::steps::boot`]): every wave's recovery
//! starts at once; a wave with `after` dependencies (H) is launched `STOPPED`, and its `boot:H`
//! starts it once the gate step of each of its `after` waves (`launch:W`, or `boot:W` when held
//! too) has succeeded, that is once they passed the health gate.
//!
//! ```text
//! failover (wave W; wave H with after = ["W"]; both recovered at once):
//!   preflight ─► [fence_source] ─┬► recovery_job:W ─► snapshot_conversion:W ─► launch:W ─┬──────────► lb_switch:W ─┐
//!                                └► recovery_job:H ─► snapshot_conversion:H ─► launch:H ─┴► boot:H ─► lb_switch:H ─┤
//!                                                                                             dns_cutover ◄───────┘
//!   (fence_source: a planned failover, unless `[failover] fence_source = false`)
//! drill:     the same without fence_source, with validate:W for lb_switch:W, then cleanup
//! failback:  preflight ─► reversed_replication:W (every wave) ─► quiesce (approved) ─► a2_recovery:W
//!            ─► snapshot_conversion:W ─► launch:W ─► lb_switch:W (failback target groups)
//!            ─► dns_cutover (back) ─► cleanup
//!            (quiesce: traffic to every B3 stopped, A2s caught up: A3 recovers the last write)
//!            (cleanup: re-protect, fence the old source, then AWS's order; always approved
//!            when it terminates anything)
//!            (a failback drill moves no traffic: no quiesce, reversed_replication:W ─►
//!            a2_recovery:W, launch:W ─► cleanup)
//! ```
//!
//! With `[recovery] convert_ahead = false` (and in a failback) nothing is held: `recovery_job:W`
//! waits for its `after` waves' `launch`, and there is no `boot` step.

use serde::{Deserialize, Serialize};

use crate::runbook::Runbook;
use crate::steps::boot::{gate_step, is_held};

pub use crate::run::{Mode, Operation, StepKind};

/// Options that shape a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    pub mode: Mode,
    /// Drill: keep the drill instances (no cleanup step).
    pub keep: bool,
    /// Failback: a failback drill (no traffic moved, cleaned up at the end).
    #[serde(default)]
    pub drill: bool,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub key: String,
    pub kind: StepKind,
    pub wave: Option<String>,
    pub depends_on: Vec<String>,
    pub needs_approval: bool,
}

fn step(
    kind: StepKind,
    wave: Option<&str>,
    depends_on: Vec<String>,
    runbook: &Runbook,
) -> PlannedStep {
    let key = match wave {
        Some(w) => format!("{}:{w}", kind.as_str()),
        None => kind.as_str().to_string(),
    };
    let needs_approval = runbook.approval_required(kind);
    PlannedStep {
        key,
        kind,
        wave: wave.map(str::to_string),
        depends_on,
        needs_approval,
    }
}

/// The waves in dependency order (stable: file order among equals).
pub fn wave_order(runbook: &Runbook) -> Vec<&str> {
    runbook.waves_in_order().map(|w| w.name.as_str()).collect()
}

/// Plans a run of the runbook.
pub fn plan(operation: Operation, runbook: &Runbook, options: &PlanOptions) -> Vec<PlannedStep> {
    if operation == Operation::Failback {
        return plan_failback(runbook, options);
    }
    let mut steps = vec![step(StepKind::Preflight, None, vec![], runbook)];
    let is_drill = operation == Operation::Drill;
    // Every wave's recovery starts after this step: the fence, when the failover has one.
    let mut first = "preflight".to_string();
    if fences_source(operation, runbook, options) {
        steps.push(step(StepKind::FenceSource, None, vec![first], runbook));
        first = StepKind::FenceSource.as_str().to_string();
    }
    let mut finals = Vec::new();
    for wave_name in wave_order(runbook) {
        let wave = runbook
            .waves
            .iter()
            .find(|w| w.name == wave_name)
            .expect("wave exists");
        let gate_steps_before: Vec<String> = wave
            .after
            .iter()
            .map(|a| gate_step(operation, runbook, a))
            .collect();
        let held = is_held(operation, runbook, wave_name);
        let mut deps = vec![first.clone()];
        if !runbook.recovery.convert_ahead {
            deps.extend(gate_steps_before.iter().cloned());
        }
        let w = Some(wave_name);
        steps.push(step(StepKind::RecoveryJob, w, deps, runbook));
        steps.push(step(
            StepKind::SnapshotConversion,
            w,
            vec![format!("recovery_job:{wave_name}")],
            runbook,
        ));
        steps.push(step(
            StepKind::Launch,
            w,
            vec![format!("snapshot_conversion:{wave_name}")],
            runbook,
        ));
        if held {
            let mut deps = vec![format!("launch:{wave_name}")];
            deps.extend(gate_steps_before);
            steps.push(step(StepKind::Boot, w, deps, runbook));
        }
        let gate = gate_step(operation, runbook, wave_name);
        if is_drill {
            steps.push(step(StepKind::Validate, w, vec![gate], runbook));
            finals.push(format!("validate:{wave_name}"));
        } else if runbook.load_balancers.iter().any(|lb| lb.wave == wave_name) {
            steps.push(step(StepKind::LbSwitch, w, vec![gate], runbook));
            finals.push(format!("lb_switch:{wave_name}"));
        } else {
            finals.push(gate);
        }
    }
    if is_drill {
        if !options.keep {
            steps.push(step(StepKind::Cleanup, None, finals, runbook));
        }
    } else if !runbook.dns.is_empty() || !runbook.routing_controls.is_empty() {
        steps.push(step(StepKind::DnsCutover, None, finals, runbook));
    }
    steps
}

/// Whether the run stops the source instances before recovering: a planned failover (the
/// source is up: zero data loss), unless the runbook opts out. An unplanned failover never
/// calls the source region; drills and failbacks leave production running.
pub fn fences_source(operation: Operation, runbook: &Runbook, options: &PlanOptions) -> bool {
    operation == Operation::Failover
        && options.mode == Mode::Planned
        && runbook.failover.fence_source
}

/// Plans a failback (DESIGN section 5): per wave, reversed replication of the failover's
/// recovery instances (B2 -> A2); then (not in a drill) the quiesce of every B3; then per wave
/// recovery of A2 in the origin account and region, with the wave's `after` waves launched
/// first; then traffic back and the cleanup `[cleanup]` asks for.
fn plan_failback(runbook: &Runbook, options: &PlanOptions) -> Vec<PlannedStep> {
    let mut steps = vec![step(StepKind::Preflight, None, vec![], runbook)];
    for wave_name in wave_order(runbook) {
        steps.push(step(
            StepKind::ReversedReplication,
            Some(wave_name),
            vec!["preflight".to_string()],
            runbook,
        ));
    }
    // A failback (not a drill) stops the traffic to every B3 at once, behind an operator's
    // approval whatever `[approvals]` says, and recovers from data after that moment.
    if !options.drill {
        let reversed = wave_order(runbook)
            .into_iter()
            .map(|w| format!("reversed_replication:{w}"))
            .collect();
        let mut quiesce = step(StepKind::Quiesce, None, reversed, runbook);
        quiesce.needs_approval = true;
        steps.push(quiesce);
    }
    let mut finals = Vec::new();
    for wave_name in wave_order(runbook) {
        let wave = runbook
            .waves
            .iter()
            .find(|w| w.name == wave_name)
            .expect("wave exists");
        let w = Some(wave_name);
        let mut deps = if options.drill {
            vec![format!("reversed_replication:{wave_name}")]
        } else {
            vec![StepKind::Quiesce.as_str().to_string()]
        };
        deps.extend(wave.after.iter().map(|a| format!("launch:{a}")));
        steps.push(step(StepKind::A2Recovery, w, deps, runbook));
        steps.push(step(
            StepKind::SnapshotConversion,
            w,
            vec![format!("a2_recovery:{wave_name}")],
            runbook,
        ));
        steps.push(step(
            StepKind::Launch,
            w,
            vec![format!("snapshot_conversion:{wave_name}")],
            runbook,
        ));
        let switched = runbook
            .load_balancers_of(wave_name)
            .any(|lb| lb.failback_target_group_arn.is_some());
        if switched && !options.drill {
            steps.push(step(
                StepKind::LbSwitch,
                w,
                vec![format!("launch:{wave_name}")],
                runbook,
            ));
            finals.push(format!("lb_switch:{wave_name}"));
        } else {
            finals.push(format!("launch:{wave_name}"));
        }
    }
    if !options.drill && (!runbook.dns.is_empty() || !runbook.routing_controls.is_empty()) {
        steps.push(step(StepKind::DnsCutover, None, finals, runbook));
        finals = vec!["dns_cutover".to_string()];
    }
    let mut cleanup = step(StepKind::Cleanup, None, finals, runbook);
    // A termination cannot be undone: an operator approves it, whatever `[approvals]` says.
    let cleanup_settings = &runbook.cleanup;
    cleanup.needs_approval |= !options.drill
        && (cleanup_settings.terminate_recovery_instances
            || cleanup_settings.source_instances == crate::runbook::SourceInstances::Terminate);
    steps.push(cleanup);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payments() -> Runbook {
        crate::runbook::parse(
            include_str!("../../runbooks/payments.toml"),
            "payments.toml",
        )
        .unwrap()
    }

    fn keys(steps: &[PlannedStep]) -> Vec<&str> {
        steps.iter().map(|s| s.key.as_str()).collect()
    }

    fn depends_on<'a>(steps: &'a [PlannedStep], key: &str) -> &'a [String] {
        &steps.iter().find(|s| s.key == key).unwrap().depends_on
    }

    #[test]
    fn failover_converts_every_wave_ahead_and_boots_them_in_order() {
        let steps = plan(Operation::Failover, &payments(), &PlanOptions::default());
        assert_eq!(
            keys(&steps),
            [
                "preflight",
                "fence_source",
                "recovery_job:db",
                "snapshot_conversion:db",
                "launch:db",
                "recovery_job:app",
                "snapshot_conversion:app",
                "launch:app",
                "boot:app",
                "lb_switch:app",
                "dns_cutover"
            ]
        );
        assert_eq!(
            depends_on(&steps, "recovery_job:app"),
            ["fence_source"],
            "every wave's recovery starts at once (after the planned failover's fence)"
        );
        assert_eq!(depends_on(&steps, "boot:app"), ["launch:app", "launch:db"]);
        assert_eq!(depends_on(&steps, "lb_switch:app"), ["boot:app"]);
        let dns = steps.last().unwrap();
        assert_eq!(dns.depends_on, ["launch:db", "lb_switch:app"]);
        let drill = plan(Operation::Drill, &payments(), &PlanOptions::default());
        assert_eq!(depends_on(&drill, "recovery_job:app"), ["preflight"]);
        assert_eq!(depends_on(&drill, "validate:app"), ["boot:app"]);
        assert_eq!(depends_on(&drill, "validate:db"), ["launch:db"]);
    }

    #[test]
    fn a_held_wave_boots_after_the_gate_step_of_each_after_wave() {
        let text = include_str!("../../tests/fixtures/engine/three-waves.toml");
        let runbook = crate::runbook::parse(text, "three-waves.toml").unwrap();
        let steps = plan(Operation::Failover, &runbook, &PlanOptions::default());
        for step in steps.iter().filter(|s| s.kind == StepKind::RecoveryJob) {
            assert_eq!(step.depends_on, ["fence_source"], "{}", step.key);
        }
        for step in steps.iter().filter(|s| s.kind == StepKind::Boot) {
            let wave = step.wave.as_deref().unwrap();
            let after = &runbook.wave(wave).unwrap().after;
            assert_eq!(step.depends_on[0], format!("launch:{wave}"));
            assert_eq!(step.depends_on.len(), 1 + after.len(), "{}", step.key);
            for (a, dep) in after.iter().zip(&step.depends_on[1..]) {
                let expected = if runbook.wave(a).unwrap().after.is_empty() {
                    format!("launch:{a}")
                } else {
                    format!("boot:{a}")
                };
                assert_eq!(dep, &expected, "{}", step.key);
            }
        }
        assert!(steps.iter().any(|s| s.kind == StepKind::Boot));
    }

    #[test]
    fn convert_ahead_off_restores_the_sequential_plan() {
        let text = include_str!("../../runbooks/payments.toml").to_string()
            + "\n[recovery]\nconvert_ahead = false\n";
        let runbook = crate::runbook::parse(&text, "payments.toml").unwrap();
        assert!(!runbook.recovery.convert_ahead);
        let steps = plan(Operation::Failover, &runbook, &PlanOptions::default());
        assert_eq!(
            keys(&steps),
            [
                "preflight",
                "fence_source",
                "recovery_job:db",
                "snapshot_conversion:db",
                "launch:db",
                "recovery_job:app",
                "snapshot_conversion:app",
                "launch:app",
                "lb_switch:app",
                "dns_cutover"
            ]
        );
        let app = steps.iter().find(|s| s.key == "recovery_job:app").unwrap();
        assert_eq!(app.depends_on, ["fence_source", "launch:db"]);
        assert_eq!(steps[1].depends_on, ["preflight"]);
        let dns = steps.last().unwrap();
        assert_eq!(dns.depends_on, ["launch:db", "lb_switch:app"]);
        assert!(
            dns.needs_approval,
            "the runbook asks for approval before dns_cutover"
        );
        assert!(!steps[1].needs_approval && !steps[2].needs_approval);
    }

    #[test]
    fn only_a_planned_failover_fences_the_source_and_the_runbook_may_opt_out() {
        let fenced = |operation, runbook: &Runbook, mode| {
            let options = PlanOptions {
                mode,
                ..Default::default()
            };
            keys(&plan(operation, runbook, &options)).contains(&"fence_source")
        };
        let payments = payments();
        assert!(fenced(Operation::Failover, &payments, Mode::Planned));
        assert!(!fenced(Operation::Failover, &payments, Mode::Unplanned));
        assert!(!fenced(Operation::Drill, &payments, Mode::Planned));
        assert!(!fenced(Operation::Failback, &payments, Mode::Planned));
        let opted_out = crate::runbook::parse(
            &format!(
                "{}\n[failover]\nfence_source = false\n",
                include_str!("../../runbooks/payments.toml")
            ),
            "payments.toml",
        )
        .unwrap();
        assert!(!fenced(Operation::Failover, &opted_out, Mode::Planned));
        let unplanned = plan(
            Operation::Failover,
            &payments,
            &PlanOptions {
                mode: Mode::Unplanned,
                ..Default::default()
            },
        );
        let db = unplanned
            .iter()
            .find(|s| s.key == "recovery_job:db")
            .unwrap();
        assert_eq!(db.depends_on, ["preflight"]);
    }

    #[test]
    fn a_failback_holds_nothing() {
        let steps = plan(Operation::Failback, &payments(), &PlanOptions::default());
        assert!(!steps.iter().any(|s| s.kind == StepKind::Boot));
    }

    #[test]
    fn drill_validates_and_cleans_up_unless_kept() {
        let steps = plan(Operation::Drill, &payments(), &PlanOptions::default());
        assert_eq!(steps.last().unwrap().key, "cleanup");
        assert_eq!(
            steps.last().unwrap().depends_on,
            ["validate:db", "validate:app"]
        );
        assert!(!keys(&steps).contains(&"dns_cutover"));
        assert!(!keys(&steps).contains(&"lb_switch:app"));
        let kept = plan(
            Operation::Drill,
            &payments(),
            &PlanOptions {
                keep: true,
                ..Default::default()
            },
        );
        assert!(!keys(&kept).contains(&"cleanup"));
    }

    #[test]
    fn failback_reverses_then_recovers_a2_by_waves_then_cuts_back_and_cleans_up() {
        let steps = plan(Operation::Failback, &payments(), &PlanOptions::default());
        assert_eq!(
            keys(&steps),
            [
                "preflight",
                "reversed_replication:db",
                "reversed_replication:app",
                "quiesce",
                "a2_recovery:db",
                "snapshot_conversion:db",
                "launch:db",
                "a2_recovery:app",
                "snapshot_conversion:app",
                "launch:app",
                "lb_switch:app",
                "dns_cutover",
                "cleanup"
            ]
        );
        let quiesce = steps.iter().find(|s| s.key == "quiesce").unwrap();
        assert_eq!(
            quiesce.depends_on,
            ["reversed_replication:db", "reversed_replication:app"],
            "traffic stops once every A2 replicates"
        );
        assert!(
            quiesce.needs_approval,
            "stopping the traffic always waits for an operator"
        );
        assert_eq!(depends_on(&steps, "a2_recovery:db"), ["quiesce"]);
        let app = steps.iter().find(|s| s.key == "a2_recovery:app").unwrap();
        assert_eq!(app.depends_on, ["quiesce", "launch:db"]);
        let reversed = steps
            .iter()
            .find(|s| s.key == "reversed_replication:app")
            .unwrap();
        assert_eq!(
            reversed.depends_on,
            ["preflight"],
            "replication reverses for every wave at once"
        );
        assert_eq!(steps.last().unwrap().depends_on, ["dns_cutover"]);
        assert!(
            steps.last().unwrap().needs_approval,
            "the runbook asks for approval before cleanup"
        );
        // The failover plan is unchanged by the failback planner.
        let failover = plan(Operation::Failover, &payments(), &PlanOptions::default());
        assert!(
            !keys(&failover)
                .iter()
                .any(|k| k.starts_with("a2_recovery") || k.starts_with("reversed"))
        );
    }

    #[test]
    fn a_failback_cleanup_that_terminates_always_waits_for_an_approval() {
        let cleanup_approved = |terminate_b2: bool, source_instances: &str, drill: bool| {
            let text = include_str!("../../runbooks/payments.toml")
                .replace(
                    r#"before = ["dns_cutover", "cleanup"]"#,
                    r#"before = ["dns_cutover"]"#,
                )
                .replace(
                    "terminate_recovery_instances = true",
                    &format!("terminate_recovery_instances = {terminate_b2}"),
                )
                .replace(
                    r#"source_instances = "stop""#,
                    &format!(r#"source_instances = "{source_instances}""#),
                );
            let runbook = crate::runbook::parse(&text, "payments.toml").unwrap();
            let options = PlanOptions {
                drill,
                ..Default::default()
            };
            let steps = plan(Operation::Failback, &runbook, &options);
            steps.last().unwrap().needs_approval
        };
        assert!(cleanup_approved(true, "stop", false), "B2 terminated");
        assert!(cleanup_approved(false, "terminate", false), "A1 terminated");
        assert!(
            !cleanup_approved(false, "stop", false),
            "nothing terminated"
        );
        assert!(
            !cleanup_approved(true, "terminate", true),
            "a failback drill terminates only its own A3s"
        );
    }

    #[test]
    fn a_failback_drill_moves_no_traffic_and_cleans_up() {
        let steps = plan(
            Operation::Failback,
            &payments(),
            &PlanOptions {
                drill: true,
                ..Default::default()
            },
        );
        let keys = keys(&steps);
        assert!(
            !keys.contains(&"dns_cutover")
                && !keys.contains(&"lb_switch:app")
                && !keys.contains(&"quiesce"),
            "{keys:?}"
        );
        assert_eq!(
            depends_on(&steps, "a2_recovery:app"),
            ["reversed_replication:app", "launch:db"]
        );
        assert_eq!(steps.last().unwrap().key, "cleanup");
        assert_eq!(
            steps.last().unwrap().depends_on,
            ["launch:db", "launch:app"]
        );
    }
}
