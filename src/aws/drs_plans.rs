//! Native DRS recovery plans: what `export-plan` reads and writes, and the executions preflight
//! looks for. The create calls carry a `clientToken` (the SDK fills one per call and keeps it
//! across its retries), so they are sent with the SDK's retries; an export is reconciled by
//! reading the plan back on every run, not by a journal.

use aws_sdk_drs::operation::RequestId;
use aws_sdk_drs::types::{
    RecoveryPlanServer, RecoveryPlanServerImpactLevel, RecoveryPlanStepConfiguration,
    ServerStepConfiguration,
};
use serde::Serialize;
use std::collections::BTreeMap;

use super::error::classify;
use super::{AwsError, SideClients};

/// A recovery plan as listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanSummary {
    pub arn: String,
    pub name: String,
    /// `ACTIVE`, or `INVALID` (no SERVER step).
    pub status: String,
}

/// A server of a SERVER step: its source server ARN and whether its failure fails the step.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StepServer {
    pub arn: String,
    pub optional: bool,
}

/// A step of a recovery plan, in order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanStep {
    pub arn: String,
    pub name: String,
    /// The servers of a SERVER step; `None` for a WAIT step.
    pub servers: Option<Vec<StepServer>>,
}

/// An execution of a recovery plan.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanExecution {
    pub arn: String,
    pub plan_arn: String,
    /// `DRILL` or `RECOVERY`.
    pub mode: String,
    pub status: String,
}

impl PlanExecution {
    /// Not in a terminal status: CREATED, IN_PROGRESS, and CANCELLING (its servers may still be
    /// launching).
    pub fn is_active(&self) -> bool {
        matches!(
            self.status.as_str(),
            "CREATED" | "IN_PROGRESS" | "CANCELLING"
        )
    }
}

fn server_config(servers: &[StepServer]) -> RecoveryPlanStepConfiguration {
    let servers = servers
        .iter()
        .map(|s| {
            RecoveryPlanServer::builder()
                .server_arn(&s.arn)
                .impact_level(if s.optional {
                    RecoveryPlanServerImpactLevel::Optional
                } else {
                    RecoveryPlanServerImpactLevel::Critical
                })
                .build()
                .expect("server ARN is set")
        })
        .collect();
    RecoveryPlanStepConfiguration::ServerStepConfiguration(
        ServerStepConfiguration::builder()
            .set_servers(Some(servers))
            .build()
            .expect("servers are set"),
    )
}

fn step_from(step: &aws_sdk_drs::types::RecoveryPlanStep) -> PlanStep {
    let servers = step
        .configuration()
        .and_then(|c| c.as_server_step_configuration().ok())
        .map(|c| {
            c.servers()
                .iter()
                .map(|s| StepServer {
                    arn: s.server_arn().to_string(),
                    optional: s.impact_level() == Some(&RecoveryPlanServerImpactLevel::Optional),
                })
                .collect()
        });
    PlanStep {
        arn: step.recovery_plan_step_arn().to_string(),
        name: step.step_name().to_string(),
        servers,
    }
}

impl SideClients {
    /// Every recovery plan of the account and region.
    pub async fn recovery_plans(&self) -> Result<Vec<PlanSummary>, AwsError> {
        let site = self.site("drs:ListRecoveryPlans", "all recovery plans");
        let items = self
            .drs
            .list_recovery_plans()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(items
            .iter()
            .map(|p| PlanSummary {
                arn: p.recovery_plan_arn().to_string(),
                name: p.name().to_string(),
                status: p.status().as_str().to_string(),
            })
            .collect())
    }

    /// The tags of a recovery plan (GetRecoveryPlan).
    pub async fn recovery_plan_tags(
        &self,
        plan_arn: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        let site = self.site("drs:GetRecoveryPlan", plan_arn);
        let output = self
            .drs
            .get_recovery_plan()
            .recovery_plan_arn(plan_arn)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(output
            .recovery_plan()
            .and_then(|p| p.tags())
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    /// The steps of a recovery plan, in order.
    pub async fn recovery_plan_steps(&self, plan_arn: &str) -> Result<Vec<PlanStep>, AwsError> {
        let site = self.site("drs:ListRecoveryPlanSteps", plan_arn);
        let items = self
            .drs
            .list_recovery_plan_steps()
            .recovery_plan_arn(plan_arn)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(&site, &e))?;
        let mut items = items;
        items.sort_by_key(|s| s.step_order());
        Ok(items.iter().map(step_from).collect())
    }

    /// Every recovery plan execution of the account and region.
    pub async fn recovery_plan_executions(&self) -> Result<Vec<PlanExecution>, AwsError> {
        let site = self.site(
            "drs:ListRecoveryPlanExecutions",
            "all recovery plan executions",
        );
        let items = self
            .drs
            .list_recovery_plan_executions()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(items
            .iter()
            .map(|e| PlanExecution {
                arn: e.recovery_plan_execution_arn().to_string(),
                plan_arn: e.recovery_plan_arn().to_string(),
                mode: e.mode().as_str().to_string(),
                status: e.status().as_str().to_string(),
            })
            .collect())
    }

    /// CreateRecoveryPlan; returns the plan's ARN and the request ID.
    pub async fn create_recovery_plan(
        &self,
        name: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(String, Option<String>), AwsError> {
        let site = self.site("drs:CreateRecoveryPlan", name);
        let output = self
            .drs
            .create_recovery_plan()
            .name(name)
            .description(description)
            .set_tags(Some(
                tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ))
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        let arn = output
            .recovery_plan()
            .map(|p| p.recovery_plan_arn().to_string())
            .unwrap_or_default();
        Ok((arn, output.request_id().map(str::to_string)))
    }

    /// UpdateRecoveryPlan of the description.
    pub async fn update_recovery_plan_description(
        &self,
        plan_arn: &str,
        description: &str,
    ) -> Result<Option<String>, AwsError> {
        let site = self.site("drs:UpdateRecoveryPlan", plan_arn);
        let output = self
            .drs
            .update_recovery_plan()
            .recovery_plan_arn(plan_arn)
            .description(description)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(output.request_id().map(str::to_string))
    }

    /// CreateRecoveryPlanStep of a SERVER step at the end of the plan; returns the step's ARN
    /// and the request ID.
    pub async fn create_server_step(
        &self,
        plan_arn: &str,
        name: &str,
        servers: &[StepServer],
    ) -> Result<(String, Option<String>), AwsError> {
        let resource = format!("{plan_arn} step {name}");
        let site = self.site("drs:CreateRecoveryPlanStep", &resource);
        let output = self
            .drs
            .create_recovery_plan_step()
            .recovery_plan_arn(plan_arn)
            .step_name(name)
            .configuration(server_config(servers))
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        let arn = output
            .recovery_plan_step()
            .map(|s| s.recovery_plan_step_arn().to_string())
            .unwrap_or_default();
        Ok((arn, output.request_id().map(str::to_string)))
    }

    /// DeleteRecoveryPlanStep; a step already gone (a retried call) counts as deleted.
    pub async fn delete_recovery_plan_step(
        &self,
        step_arn: &str,
    ) -> Result<Option<String>, AwsError> {
        let site = self.site("drs:DeleteRecoveryPlanStep", step_arn);
        match self
            .drs
            .delete_recovery_plan_step()
            .recovery_plan_step_arn(step_arn)
            .send()
            .await
        {
            Ok(output) => Ok(output.request_id().map(str::to_string)),
            Err(e) => {
                let error = classify(&site, &e);
                if error.code.as_deref() == Some("ResourceNotFoundException") {
                    Ok(error.request_id)
                } else {
                    Err(error)
                }
            }
        }
    }
}
