//! A preflight check shared by failover, drill and failback: no native DRS recovery plan
//! execution is active over any of the run's servers in the recovery (target) account and
//! region. One would launch the same servers beside the run: a refusal (exit 4), naming the
//! plan, the execution and its state. Only the target region is called, so an unplanned
//! failover can run it too.

use super::preflight::Check;
use crate::aws::SideClients;

const NAME: &str = "drs:recovery plan executions";

fn fail(name: String, detail: String, fix: String) -> Check {
    Check {
        name,
        status: "fail".into(),
        detail,
        fix: Some(fix),
    }
}

/// Adds the check's result to `checks`; returns whether the run must be refused.
pub async fn check(target: &SideClients, servers: &[String], checks: &mut Vec<Check>) -> bool {
    let executions = match target.recovery_plan_executions().await {
        Ok(all) => all
            .into_iter()
            .filter(|e| e.is_active())
            .collect::<Vec<_>>(),
        Err(e) => {
            checks.push(fail(NAME.into(), e.summary(), e.hint.clone()));
            return false;
        }
    };
    let names = if executions.is_empty() {
        Vec::new()
    } else {
        target.recovery_plans().await.unwrap_or_default()
    };
    let mut refused = false;
    for execution in &executions {
        let steps = match target.recovery_plan_steps(&execution.plan_arn).await {
            Ok(steps) => steps,
            Err(e) => {
                checks.push(fail(NAME.into(), e.summary(), e.hint.clone()));
                continue;
            }
        };
        let overlap: Vec<&str> = steps
            .iter()
            .flat_map(|s| s.servers.iter().flatten())
            .filter_map(|s| s.arn.rsplit('/').next())
            .filter(|id| servers.iter().any(|s| s == id))
            .collect();
        if overlap.is_empty() {
            continue;
        }
        refused = true;
        let plan = names
            .iter()
            .find(|p| p.arn == execution.plan_arn)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| execution.plan_arn.clone());
        let execution_id = execution.arn.rsplit('/').next().unwrap_or(&execution.arn);
        checks.push(fail(
            format!("drs:recovery plan {plan}"),
            format!(
                "recovery plan {plan:?} ({}) has execution {execution_id} {} ({} mode) over server(s) {} in {}/{}",
                execution.plan_arn,
                execution.status,
                execution.mode,
                overlap.join(", "),
                target.account_id,
                target.region
            ),
            format!(
                "wait for that execution to end, or cancel it (aws drs cancel-recovery-plan-execution --recovery-plan-execution-arn {})",
                execution.arn
            ),
        ));
    }
    if !refused {
        checks.push(Check {
            name: NAME.into(),
            status: "pass".into(),
            detail: format!(
                "no active recovery plan execution holds these servers ({} active in {}/{})",
                executions.len(),
                target.account_id,
                target.region
            ),
            fix: None,
        });
    }
    refused
}
