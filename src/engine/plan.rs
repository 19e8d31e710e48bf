//! The planner: operation + runbook -> the ordered steps of a run (pure).
//!
//! ```text
//! failover:  preflight ─► recovery_job:W ─► snapshot_conversion:W ─► launch:W ─► lb_switch:W ─┐
//!                         (W after its `after` waves' launch)                                  ├─► dns_cutover
//! drill:     preflight ─► recovery_job:W ─► snapshot_conversion:W ─► launch:W ─► validate:W ──► cleanup
//! failback:  preflight ─► reversed_replication:W ─► a2_recovery:W ─► snapshot_conversion:W ─► launch:W
//!            ─► lb_switch:W (failback target groups) ─► dns_cutover (back) ─► cleanup
//!            (a failback drill moves no traffic: launch:W ─► cleanup)
//! ```

use serde::{Deserialize, Serialize};

use crate::runbook::Runbook;

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
    let mut finals = Vec::new();
    for wave_name in wave_order(runbook) {
        let wave = runbook
            .waves
            .iter()
            .find(|w| w.name == wave_name)
            .expect("wave exists");
        let mut deps = vec!["preflight".to_string()];
        deps.extend(wave.after.iter().map(|a| format!("launch:{a}")));
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
        if is_drill {
            steps.push(step(
                StepKind::Validate,
                w,
                vec![format!("launch:{wave_name}")],
                runbook,
            ));
            finals.push(format!("validate:{wave_name}"));
        } else if runbook.load_balancers.iter().any(|lb| lb.wave == wave_name) {
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
    if is_drill {
        if !options.keep {
            steps.push(step(StepKind::Cleanup, None, finals, runbook));
        }
    } else if !runbook.dns.is_empty() || !runbook.routing_controls.is_empty() {
        steps.push(step(StepKind::DnsCutover, None, finals, runbook));
    }
    steps
}

/// Plans a failback (DESIGN section 5): per wave, reversed replication of the failover's
/// recovery instances (B2 -> A2), then recovery of A2 in the origin account and region, with
/// the wave's `after` waves launched first; then traffic back and the cleanup `[cleanup]` asks for.
fn plan_failback(runbook: &Runbook, options: &PlanOptions) -> Vec<PlannedStep> {
    let mut steps = vec![step(StepKind::Preflight, None, vec![], runbook)];
    let mut finals = Vec::new();
    for wave_name in wave_order(runbook) {
        let wave = runbook
            .waves
            .iter()
            .find(|w| w.name == wave_name)
            .expect("wave exists");
        let w = Some(wave_name);
        steps.push(step(
            StepKind::ReversedReplication,
            w,
            vec!["preflight".to_string()],
            runbook,
        ));
        let mut deps = vec![format!("reversed_replication:{wave_name}")];
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
    steps.push(step(StepKind::Cleanup, None, finals, runbook));
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

    #[test]
    fn failover_plans_waves_in_order_then_dns() {
        let steps = plan(Operation::Failover, &payments(), &PlanOptions::default());
        assert_eq!(
            keys(&steps),
            [
                "preflight",
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
        assert_eq!(app.depends_on, ["preflight", "launch:db"]);
        let dns = steps.last().unwrap();
        assert_eq!(dns.depends_on, ["launch:db", "lb_switch:app"]);
        assert!(
            dns.needs_approval,
            "the runbook asks for approval before dns_cutover"
        );
        assert!(!steps[1].needs_approval);
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
                "a2_recovery:db",
                "snapshot_conversion:db",
                "launch:db",
                "reversed_replication:app",
                "a2_recovery:app",
                "snapshot_conversion:app",
                "launch:app",
                "lb_switch:app",
                "dns_cutover",
                "cleanup"
            ]
        );
        let app = steps.iter().find(|s| s.key == "a2_recovery:app").unwrap();
        assert_eq!(app.depends_on, ["reversed_replication:app", "launch:db"]);
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
            !keys.contains(&"dns_cutover") && !keys.contains(&"lb_switch:app"),
            "{keys:?}"
        );
        assert_eq!(steps.last().unwrap().key, "cleanup");
        assert_eq!(
            steps.last().unwrap().depends_on,
            ["launch:db", "launch:app"]
        );
    }
}
