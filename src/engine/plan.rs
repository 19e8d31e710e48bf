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
use crate::runbook::model::{Action, ActionRun, ActionWhen};
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
    let mut actions = WaveActions::new(operation, runbook);
    for wave_name in wave_order(runbook) {
        let wave = runbook.wave(wave_name).expect("wave exists");
        let gate_steps_before: Vec<String> = wave
            .after
            .iter()
            .flat_map(|a| actions.up(a, gate_step(operation, runbook, a)))
            .collect();
        let held = is_held(operation, runbook, wave_name);
        let mut deps = vec![first.clone()];
        if !runbook.recovery.convert_ahead {
            deps.extend(gate_steps_before.iter().cloned());
        }
        let w = Some(wave_name);
        let deps = actions.before_recovery(wave_name, deps, &mut steps);
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
        let ready = actions.before_traffic(wave_name, gate, &mut steps);
        let wave_finals = if is_drill {
            steps.push(step(StepKind::Validate, w, ready, runbook));
            vec![format!("validate:{wave_name}")]
        } else if runbook.load_balancers.iter().any(|lb| lb.wave == wave_name) {
            steps.push(step(StepKind::LbSwitch, w, ready, runbook));
            vec![format!("lb_switch:{wave_name}")]
        } else {
            ready
        };
        actions.traffic_moved(wave_name, wave_finals.clone());
        finals.extend(wave_finals);
    }
    if is_drill {
        let finals = actions.after_traffic(None, finals, &mut steps);
        if !options.keep {
            steps.push(step(StepKind::Cleanup, None, finals, runbook));
        }
    } else if !runbook.dns.is_empty() || !runbook.routing_controls.is_empty() {
        steps.push(step(StepKind::DnsCutover, None, finals, runbook));
        actions.after_traffic(Some("dns_cutover"), Vec::new(), &mut steps);
    } else {
        actions.after_traffic(None, Vec::new(), &mut steps);
    }
    steps
}

/// Places a run's actions (`[[wave.action]]`) among their waves' steps, by `when`:
///
/// ```text
///   before_recovery:  [what recovery_job:W waits for] ─► action ─► recovery_job:W (a2_recovery:W)
///   after_boot:       gate(W) ─► action ─► before_traffic actions, lb_switch:W / validate:W,
///                                          the dns_cutover, and the waves `after` W
///   before_traffic:   gate(W) + after_boot ─► action ─► lb_switch:W / validate:W, dns_cutover
///   after_traffic:    dns_cutover (else the wave's lb_switch:W / validate:W, else its gate)
///                     ─► action ─► the cleanup of a drill or a failback
/// ```
///
/// gate(W) is the step after which the wave's instances passed the health gate (`launch:W`,
/// or `boot:W` for a held wave). A drill moves no traffic: its `validate:W` (the drill target
/// group) stands where lb_switch:W is, and its after_traffic actions run before the cleanup.
/// Only the actions whose `operations` name the run's operation are planned.
struct WaveActions<'r> {
    operation: Operation,
    runbook: &'r Runbook,
    /// Per wave: the steps after which it is up (its gate, then its after_boot actions).
    up: std::collections::HashMap<String, Vec<String>>,
    /// Per wave (in wave order): what its after_traffic actions wait for without a DNS cutover.
    moved: Vec<(String, Vec<String>)>,
}

impl<'r> WaveActions<'r> {
    fn new(operation: Operation, runbook: &'r Runbook) -> Self {
        WaveActions {
            operation,
            runbook,
            up: Default::default(),
            moved: Vec::new(),
        }
    }

    fn of(&self, wave: &str, when: ActionWhen) -> Vec<&'r Action> {
        let runbook: &'r Runbook = self.runbook;
        runbook
            .wave(wave)
            .map(|w| {
                w.actions
                    .iter()
                    .filter(|a| a.when == when && a.runs_in(self.operation))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Plans the wave's actions of `when`, each waiting for `deps`; returns their keys.
    fn push(
        &self,
        wave: &str,
        when: ActionWhen,
        deps: &[String],
        steps: &mut Vec<PlannedStep>,
    ) -> Vec<String> {
        self.of(wave, when)
            .into_iter()
            .map(|a| {
                let planned = action_step(self.runbook, wave, a, deps.to_vec());
                let key = planned.key.clone();
                steps.push(planned);
                key
            })
            .collect()
    }

    /// The wave's before_recovery actions, waiting for what its recovery waits for; returns
    /// what the recovery step waits for now.
    fn before_recovery(
        &self,
        wave: &str,
        deps: Vec<String>,
        steps: &mut Vec<PlannedStep>,
    ) -> Vec<String> {
        let keys = self.push(wave, ActionWhen::BeforeRecovery, &deps, steps);
        deps.into_iter().chain(keys).collect()
    }

    /// The steps after which a wave named in `after` is up: its gate and its after_boot
    /// actions (already planned: waves are planned in dependency order).
    fn up(&self, wave: &str, gate: String) -> Vec<String> {
        self.up.get(wave).cloned().unwrap_or_else(|| vec![gate])
    }

    /// The wave's after_boot then before_traffic actions after its gate; returns what the
    /// steps that move its traffic wait for.
    fn before_traffic(
        &mut self,
        wave: &str,
        gate: String,
        steps: &mut Vec<PlannedStep>,
    ) -> Vec<String> {
        let gate = vec![gate];
        let after_boot = self.push(wave, ActionWhen::AfterBoot, &gate, steps);
        let up: Vec<String> = gate.into_iter().chain(after_boot).collect();
        self.up.insert(wave.to_string(), up.clone());
        let before = self.push(wave, ActionWhen::BeforeTraffic, &up, steps);
        up.into_iter().chain(before).collect()
    }

    /// Records the steps that moved the wave's traffic (or validated a drill).
    fn traffic_moved(&mut self, wave: &str, finals: Vec<String>) {
        self.moved.push((wave.to_string(), finals));
    }

    /// Every wave's after_traffic actions, after `cutover` when the run has one, else after
    /// their wave's traffic steps; returns `finals` with their keys (what a cleanup waits for).
    fn after_traffic(
        &self,
        cutover: Option<&str>,
        finals: Vec<String>,
        steps: &mut Vec<PlannedStep>,
    ) -> Vec<String> {
        let mut all = finals;
        for (wave, moved) in &self.moved {
            let deps = match cutover {
                Some(key) => vec![key.to_string()],
                None => moved.clone(),
            };
            all.extend(self.push(wave, ActionWhen::AfterTraffic, &deps, steps));
        }
        all
    }
}

/// The planned step of an action: a manual action is an approval gate (its preview shows
/// the instructions); `[approvals] before = ["action"]` gates every action.
fn action_step(runbook: &Runbook, wave: &str, action: &Action, deps: Vec<String>) -> PlannedStep {
    PlannedStep {
        key: Action::step_key(wave, &action.name),
        kind: StepKind::Action,
        wave: Some(wave.to_string()),
        depends_on: deps,
        needs_approval: matches!(action.run, ActionRun::Manual { .. })
            || runbook.approval_required(StepKind::Action),
    }
}

/// The actions a rollback runs: those naming `rollback` in `operations`, after the undo steps
/// (`after`: the last of them), one after the other in wave order.
pub fn rollback_actions(runbook: &Runbook, after: Option<&str>) -> Vec<PlannedStep> {
    let mut planned: Vec<PlannedStep> = Vec::new();
    for wave in runbook.waves_in_order() {
        for action in wave
            .actions
            .iter()
            .filter(|a| a.runs_in(Operation::Rollback))
        {
            let previous = planned.last().map(|p| p.key.as_str()).or(after);
            let deps = previous.map(|p| vec![p.to_string()]).unwrap_or_default();
            planned.push(action_step(runbook, &wave.name, action, deps));
        }
    }
    planned
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
    let operation = Operation::Failback;
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
    let mut actions = WaveActions::new(operation, runbook);
    for wave_name in wave_order(runbook) {
        let wave = runbook.wave(wave_name).expect("wave exists");
        let w = Some(wave_name);
        let mut deps = if options.drill {
            vec![format!("reversed_replication:{wave_name}")]
        } else {
            vec![StepKind::Quiesce.as_str().to_string()]
        };
        deps.extend(
            wave.after
                .iter()
                .flat_map(|a| actions.up(a, format!("launch:{a}"))),
        );
        let deps = actions.before_recovery(wave_name, deps, &mut steps);
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
        let ready = actions.before_traffic(wave_name, format!("launch:{wave_name}"), &mut steps);
        let switched = runbook
            .load_balancers_of(wave_name)
            .any(|lb| lb.failback_target_group_arn.is_some());
        let wave_finals = if switched && !options.drill {
            steps.push(step(StepKind::LbSwitch, w, ready, runbook));
            vec![format!("lb_switch:{wave_name}")]
        } else {
            ready
        };
        actions.traffic_moved(wave_name, wave_finals.clone());
        finals.extend(wave_finals);
    }
    if !options.drill && (!runbook.dns.is_empty() || !runbook.routing_controls.is_empty()) {
        steps.push(step(StepKind::DnsCutover, None, finals, runbook));
        finals = actions.after_traffic(
            Some("dns_cutover"),
            vec!["dns_cutover".to_string()],
            &mut steps,
        );
    } else {
        finals = actions.after_traffic(None, finals, &mut steps);
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

    /// payments.toml with an action at each moment: db freezes writes by hand before its
    /// recovery and promotes after boot; app is smoke-tested before traffic and announced
    /// after it (`announce_operations`: its `operations` line, or none).
    fn payments_with_actions(announce_operations: &str) -> Runbook {
        let text = include_str!("../../runbooks/payments.toml")
            .replacen(
                "servers = [\"s-1234567890abcdef0\"]\n",
                "servers = [\"s-1234567890abcdef0\"]\n\
                 [[wave.action]]\nname = \"promote\"\nwhen = \"after_boot\"\nrun = { command = [\"./promote.sh\"] }\n\
                 [[wave.action]]\nname = \"freeze\"\nwhen = \"before_recovery\"\nrun = { manual = \"Freeze writes.\" }\n",
                1,
            )
            .replacen(
                "optional = [\"s-34567890abcdef012\"]",
                &format!(
                    "optional = [\"s-34567890abcdef012\"]\n\
                     [[wave.action]]\nname = \"smoke\"\nwhen = \"before_traffic\"\nrun = {{ http = \"https://app.example.org/health\" }}\n\
                     [[wave.action]]\nname = \"announce\"\nwhen = \"after_traffic\"\nrun = {{ command = [\"./announce.sh\"] }}\n{announce_operations}\n"
                ),
                1,
            );
        crate::runbook::parse(&text, "payments.toml").unwrap()
    }

    #[test]
    fn failover_actions_run_at_their_moment_of_the_wave() {
        let runbook = payments_with_actions("operations = [\"failover\", \"rollback\"]");
        let steps = plan(Operation::Failover, &runbook, &PlanOptions::default());
        assert_eq!(
            keys(&steps),
            [
                "preflight",
                "fence_source",
                "action:db:freeze",
                "recovery_job:db",
                "snapshot_conversion:db",
                "launch:db",
                "action:db:promote",
                "recovery_job:app",
                "snapshot_conversion:app",
                "launch:app",
                "boot:app",
                "action:app:smoke",
                "lb_switch:app",
                "dns_cutover",
                "action:app:announce",
            ]
        );
        assert_eq!(depends_on(&steps, "action:db:freeze"), ["fence_source"]);
        assert_eq!(
            depends_on(&steps, "recovery_job:db"),
            ["fence_source", "action:db:freeze"]
        );
        assert_eq!(depends_on(&steps, "action:db:promote"), ["launch:db"]);
        assert_eq!(
            depends_on(&steps, "boot:app"),
            ["launch:app", "launch:db", "action:db:promote"],
            "a wave after db boots once db's after_boot actions are done"
        );
        assert_eq!(depends_on(&steps, "action:app:smoke"), ["boot:app"]);
        assert_eq!(
            depends_on(&steps, "lb_switch:app"),
            ["boot:app", "action:app:smoke"]
        );
        assert_eq!(
            depends_on(&steps, "dns_cutover"),
            ["launch:db", "action:db:promote", "lb_switch:app"]
        );
        assert_eq!(depends_on(&steps, "action:app:announce"), ["dns_cutover"]);
        let gated: Vec<&str> = steps
            .iter()
            .filter(|s| s.needs_approval)
            .map(|s| s.key.as_str())
            .collect();
        assert_eq!(
            gated,
            ["action:db:freeze", "dns_cutover"],
            "a manual action is a gate"
        );
        assert!(
            steps
                .iter()
                .filter(|s| s.key.starts_with("action:"))
                .all(|s| s.kind == StepKind::Action && s.wave.is_some())
        );

        // Without convert ahead, app's recovery waits for db's after_boot actions too.
        let mut sequential = runbook.clone();
        sequential.recovery.convert_ahead = false;
        let steps = plan(Operation::Failover, &sequential, &PlanOptions::default());
        assert_eq!(
            depends_on(&steps, "recovery_job:app"),
            ["fence_source", "launch:db", "action:db:promote"]
        );
        assert_eq!(
            depends_on(&steps, "lb_switch:app"),
            ["launch:app", "action:app:smoke"]
        );
    }

    #[test]
    fn drill_actions_surround_validate_and_precede_the_cleanup() {
        let runbook = payments_with_actions("");
        let steps = plan(Operation::Drill, &runbook, &PlanOptions::default());
        assert_eq!(
            depends_on(&steps, "validate:db"),
            ["launch:db", "action:db:promote"]
        );
        assert_eq!(
            depends_on(&steps, "validate:app"),
            ["boot:app", "action:app:smoke"]
        );
        assert_eq!(depends_on(&steps, "action:app:announce"), ["validate:app"]);
        assert_eq!(
            depends_on(&steps, "cleanup"),
            ["validate:db", "validate:app", "action:app:announce"]
        );
        assert!(!keys(&steps).contains(&"lb_switch:app"));
        // Not in `operations`: not planned.
        let failover_only = payments_with_actions("operations = [\"failover\"]");
        let steps = plan(Operation::Drill, &failover_only, &PlanOptions::default());
        assert!(!keys(&steps).contains(&"action:app:announce"));
        assert_eq!(
            depends_on(&steps, "cleanup"),
            ["validate:db", "validate:app"]
        );
    }

    #[test]
    fn failback_actions_surround_a2_recovery_and_the_cutback() {
        let runbook = payments_with_actions("");
        let steps = plan(Operation::Failback, &runbook, &PlanOptions::default());
        // (after the quiesce, which waits for every wave's reversed replication)
        assert_eq!(
            depends_on(&steps, "a2_recovery:db"),
            ["quiesce", "action:db:freeze"]
        );
        assert_eq!(depends_on(&steps, "action:db:freeze"), ["quiesce"]);
        assert_eq!(depends_on(&steps, "action:db:promote"), ["launch:db"]);
        assert_eq!(
            depends_on(&steps, "a2_recovery:app"),
            ["quiesce", "launch:db", "action:db:promote"]
        );
        assert_eq!(
            depends_on(&steps, "lb_switch:app"),
            ["launch:app", "action:app:smoke"]
        );
        assert_eq!(depends_on(&steps, "action:app:announce"), ["dns_cutover"]);
        assert_eq!(
            depends_on(&steps, "cleanup"),
            ["dns_cutover", "action:app:announce"]
        );
        // A failback drill moves no traffic: after_traffic follows the wave's launch.
        let drill = plan(
            Operation::Failback,
            &runbook,
            &PlanOptions {
                drill: true,
                ..Default::default()
            },
        );
        assert_eq!(
            depends_on(&drill, "action:app:announce"),
            ["launch:app", "action:app:smoke"]
        );
        assert_eq!(
            depends_on(&drill, "cleanup"),
            [
                "launch:db",
                "action:db:promote",
                "launch:app",
                "action:app:smoke",
                "action:app:announce"
            ]
        );
    }

    #[test]
    fn a_rollback_runs_only_the_actions_that_name_it_after_its_undos() {
        let by_default = payments_with_actions("");
        assert!(rollback_actions(&by_default, Some("undo:launch:db")).is_empty());
        let named = payments_with_actions("operations = [\"failover\", \"rollback\"]");
        let steps = rollback_actions(&named, Some("undo:launch:db"));
        assert_eq!(keys(&steps), ["action:app:announce"]);
        assert_eq!(steps[0].depends_on, ["undo:launch:db"]);
        assert_eq!(
            rollback_actions(&named, None)[0].depends_on,
            Vec::<String>::new()
        );
    }
}
