//! DRS post-launch actions of a source server (PutLaunchAction, ListLaunchActions,
//! DeleteLaunchAction) and their runs as a launch job reports them
//! (`participatingServers[].launchActionsStatus`), as domain types.
//!
//! PutLaunchAction is a put keyed by the caller's `actionId`: sending it again under an open
//! intent sets the same action, so a step may repeat it; DeleteLaunchAction answers
//! ResourceNotFoundException once the action is gone, which [`SideClients::delete_launch_action`]
//! reports as `false` (nothing deleted) so a repeated delete is harmless too.

use aws_sdk_drs::operation::RequestId;
use aws_sdk_drs::types::{
    LaunchActionCategory, LaunchActionParameter, LaunchActionParameterType,
    LaunchActionsRequestFilters,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::drs::{Called, single_attempt};
use super::error::classify;
use super::{AwsError, SideClients, with_throttle_retry};

/// One launch action of a source server (botocore `drs` LaunchAction).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaunchAction {
    /// A UUID the caller chooses; PutLaunchAction with the same ID replaces the action.
    pub action_id: String,
    /// The SSM document, e.g. `AWS-RunShellScript`.
    pub action_code: String,
    /// `SSM_COMMAND` or `SSM_AUTOMATION`, as DRS answers it (not sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    pub active: bool,
    /// 2..10000; actions run in this order and each order is used once per server.
    pub order: i32,
    /// `$DEFAULT`, `$LATEST` or a version number.
    pub action_version: String,
    /// Whether the launch is not marked failed when the action fails.
    pub optional: bool,
    pub parameters: BTreeMap<String, LaunchActionParam>,
    pub description: String,
    /// `MONITORING`, `VALIDATION`, `CONFIGURATION`, `SECURITY` or `OTHER`.
    pub category: String,
}

/// A parameter of a launch action: `kind` `SSM_STORE` (then `value` names a Parameter Store
/// parameter) or `DYNAMIC`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaunchActionParam {
    pub value: String,
    pub kind: String,
}

/// One run of a launch action on a launched recovery instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaunchActionRun {
    pub action_id: String,
    pub action_code: String,
    pub name: String,
    pub optional: bool,
    pub run_id: String,
    /// `IN_PROGRESS`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// The post-launch action runs of one server of a launch job: empty until DRS found the SSM
/// agent on the recovery instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaunchActionsStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm_agent_discovered: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<LaunchActionRun>,
}

impl LaunchActionsStatus {
    pub fn is_empty(&self) -> bool {
        self.ssm_agent_discovered.is_none() && self.runs.is_empty()
    }

    pub(super) fn from_sdk(status: Option<&aws_sdk_drs::types::LaunchActionsStatus>) -> Self {
        let Some(status) = status else {
            return LaunchActionsStatus::default();
        };
        LaunchActionsStatus {
            ssm_agent_discovered: status.ssm_agent_discovery_datetime().map(str::to_string),
            runs: status
                .runs()
                .iter()
                .map(|r| {
                    let action = r.action();
                    let text = |f: fn(&aws_sdk_drs::types::LaunchAction) -> Option<&str>| {
                        action.and_then(f).unwrap_or_default().to_string()
                    };
                    LaunchActionRun {
                        action_id: text(|a| a.action_id()),
                        action_code: text(|a| a.action_code()),
                        name: text(|a| a.name()),
                        optional: action.and_then(|a| a.optional()).unwrap_or(false),
                        run_id: r.run_id().unwrap_or_default().to_string(),
                        status: r
                            .status()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        failure_reason: r.failure_reason().map(str::to_string),
                    }
                })
                .collect(),
        }
    }
}

fn action_from(a: &aws_sdk_drs::types::LaunchAction) -> LaunchAction {
    LaunchAction {
        action_id: a.action_id().unwrap_or_default().to_string(),
        action_code: a.action_code().unwrap_or_default().to_string(),
        kind: a.r#type().map(|t| t.as_str().to_string()),
        name: a.name().unwrap_or_default().to_string(),
        active: a.active().unwrap_or(false),
        order: a.order().unwrap_or_default(),
        action_version: a.action_version().unwrap_or_default().to_string(),
        optional: a.optional().unwrap_or(false),
        parameters: a
            .parameters()
            .map(|m| {
                m.iter()
                    .map(|(k, p)| {
                        (
                            k.clone(),
                            LaunchActionParam {
                                value: p.value().unwrap_or_default().to_string(),
                                kind: p
                                    .r#type()
                                    .map(|t| t.as_str().to_string())
                                    .unwrap_or_default(),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        description: a.description().unwrap_or_default().to_string(),
        category: a
            .category()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
    }
}

impl SideClients {
    /// PutLaunchAction on a source server: creates the action, or sets it again when its
    /// `action_id` exists. Sent once by the SDK (throttling retried); a repeat is harmless.
    pub async fn put_launch_action(
        &self,
        source_server_id: &str,
        action: &LaunchAction,
    ) -> Result<Called<LaunchAction>, AwsError> {
        let site = self.site("drs:PutLaunchAction", source_server_id);
        let parameters: std::collections::HashMap<String, LaunchActionParameter> = action
            .parameters
            .iter()
            .map(|(k, p)| {
                (
                    k.clone(),
                    LaunchActionParameter::builder()
                        .value(&p.value)
                        .r#type(LaunchActionParameterType::from(p.kind.as_str()))
                        .build(),
                )
            })
            .collect();
        with_throttle_retry(|| async {
            let output = self
                .drs
                .put_launch_action()
                .resource_id(source_server_id)
                .action_id(&action.action_id)
                .action_code(&action.action_code)
                .name(&action.name)
                .active(action.active)
                .order(action.order)
                .action_version(&action.action_version)
                .optional(action.optional)
                .set_parameters(Some(parameters.clone()))
                .description(&action.description)
                .category(LaunchActionCategory::from(action.category.as_str()))
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            let value = LaunchAction {
                kind: output.r#type().map(|t| t.as_str().to_string()),
                ..action.clone()
            };
            Ok(Called {
                value,
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// ListLaunchActions of a source server (every page), by `order`; only `action_ids` when
    /// given (at most 100 a call, the model's limit of `filters.actionIds`).
    pub async fn list_launch_actions(
        &self,
        source_server_id: &str,
        action_ids: &[String],
    ) -> Result<Vec<LaunchAction>, AwsError> {
        let site = self.site("drs:ListLaunchActions", source_server_id);
        let chunks: Vec<Option<Vec<String>>> = if action_ids.is_empty() {
            vec![None]
        } else {
            action_ids.chunks(100).map(|c| Some(c.to_vec())).collect()
        };
        let mut out = Vec::new();
        for ids in chunks {
            let items = self
                .drs
                .list_launch_actions()
                .resource_id(source_server_id)
                .filters(
                    LaunchActionsRequestFilters::builder()
                        .set_action_ids(ids)
                        .build(),
                )
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| classify(&site, &e))?;
            out.extend(items.iter().map(action_from));
        }
        out.sort_by_key(|a| a.order);
        Ok(out)
    }

    /// UpdateLaunchConfiguration of one member, `postLaunchEnabled` (whether the server's
    /// post-launch actions run after a launch); every other member is left as it is. Setting a
    /// value is idempotent, so a step may send it again under an open intent.
    pub async fn set_post_launch_enabled(
        &self,
        source_server_id: &str,
        enabled: bool,
    ) -> Result<Called<Option<bool>>, AwsError> {
        let site = self.site("drs:UpdateLaunchConfiguration", source_server_id);
        with_throttle_retry(|| async {
            let output = self
                .drs
                .update_launch_configuration()
                .source_server_id(source_server_id)
                .post_launch_enabled(enabled)
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            Ok(Called {
                value: output.post_launch_enabled(),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// DeleteLaunchAction; `false` when the server has no such action (already deleted).
    pub async fn delete_launch_action(
        &self,
        source_server_id: &str,
        action_id: &str,
    ) -> Result<Called<bool>, AwsError> {
        let site = self.site("drs:DeleteLaunchAction", source_server_id);
        with_throttle_retry(|| async {
            let result = self
                .drs
                .delete_launch_action()
                .resource_id(source_server_id)
                .action_id(action_id)
                .customize()
                .config_override(single_attempt())
                .send()
                .await;
            match result {
                Ok(output) => Ok(Called {
                    value: true,
                    request_id: output.request_id().map(str::to_string),
                }),
                Err(e) => {
                    let error = classify(&site, &e);
                    if error.code.as_deref() != Some("ResourceNotFoundException") {
                        return Err(error);
                    }
                    // The action is gone, or the server is: only a listing of the server's
                    // actions tells which (an error when the server does not exist).
                    self.list_launch_actions(source_server_id, &[action_id.to_string()])
                        .await?;
                    Ok(Called {
                        value: false,
                        request_id: error.request_id.clone(),
                    })
                }
            }
        })
        .await
    }
}
