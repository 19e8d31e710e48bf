//! Post-launch actions: PutLaunchAction, ListLaunchActions, DeleteLaunchAction on a source
//! server, and their runs on a launched recovery instance (`participatingServers[]
//! .launchActionsStatus` of the launch job).
//!
//! Shapes, limits and errors are the botocore model's ([BC] `drs/2020-02-26/service-2.json`:
//! PutLaunchActionRequest, LaunchActionsRequestFilters, LaunchActionsStatus, LaunchActionRun);
//! where it is silent, the stricter reading, noted where it applies.
//!
//! ```text
//!  launch (postLaunchEnabled at StartRecovery) ─► instance RUNNING (LAUNCH_END, or StartInstances
//!  of an instance launched STOPPED) ─(30–90 s)─► SSM agent discovered: every active action,
//!  by `order`, listed IN_PROGRESS ─► each ends in turn (30–120 s) SUCCEEDED | FAILED
//! ```
//!
//! The job is COMPLETED at LAUNCH_END as before: its runs go on being reported afterwards (an
//! instance launched STOPPED runs them only once started, long after its job ended). A run's
//! end is materialised by [`advance`] at the time it was due, reading the faults then:
//! `launch_action_failure` (server, `actionCode`) makes it FAILED with a `failureReason`. A
//! failed run of an action that is not `optional` marks the server's launch failed ("whether
//! the launch will not be marked as failed if this action fails", [BC] LaunchAction.optional):
//! its `lastLaunchResult` is FAILED; the job's `launchStatus` stays LAUNCHED (the instance was
//! launched).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use super::model::{JobKind, LaunchStatus};
use super::{Ctx, Done, DrsError, Scope, check_count, hex_id, input, jitter, page, views};
use crate::sim::ec2::InstanceState;
use crate::sim::faults::launch_action_fails;
use crate::sim::wire::drs_timestamp;
use crate::sim::{Fault, World};

/// `LaunchActions` (the `items` of ListLaunchActions) holds at most 200 [BC]: a page is never
/// longer, whatever `maxResults` (1..1000) asks.
const MAX_PAGE: i64 = 200;
/// `LaunchActionIds` (filters.actionIds): at most 100 [BC].
const MAX_FILTER_IDS: usize = 100;
/// `LaunchActionParameters`: at most 20 entries [BC].
const MAX_PARAMETERS: usize = 20;

/// AWS-owned Automation runbooks a launch action may name (its `type` SSM_AUTOMATION); any
/// other document is taken for a Command document (SSM_COMMAND), as `AWS-RunShellScript`.
/// The simulator has no Systems Manager to ask for the document's type.
const AUTOMATION_DOCUMENTS: &[&str] = &[
    "AWS-CreateImage",
    "AWS-RestartEC2Instance",
    "AWS-StartEC2Instance",
    "AWS-StopEC2Instance",
    "AWSEC2-CloneInstanceAndUpgradeWindows",
];

/// A launch action of a source server, stored with its wire members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchAction {
    pub action_id: String,
    pub action_code: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub active: bool,
    pub order: i64,
    pub action_version: String,
    pub optional: bool,
    pub parameters: BTreeMap<String, Parameter>,
    pub description: String,
    pub category: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub value: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The runs of a launched server's actions (`launchActionsStatus`), from the SSM agent's
/// discovery on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostLaunch {
    pub ssm_agent_at: DateTime<Utc>,
    pub runs: Vec<ActionRun>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    InProgress,
    Succeeded,
    Failed,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::InProgress => "IN_PROGRESS",
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionRun {
    pub action: LaunchAction,
    pub run_id: String,
    pub ends_at: DateTime<Utc>,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// The wire `launchActionsStatus` of a job's server.
pub fn status_json(post_launch: Option<&PostLaunch>) -> Value {
    let Some(p) = post_launch else {
        return json!({ "runs": [] });
    };
    let runs: Vec<Value> = p
        .runs
        .iter()
        .map(|r| {
            let mut v = json!({
                "action": r.action,
                "runId": r.run_id,
                "status": r.status.as_str(),
            });
            if let Some(reason) = &r.failure_reason {
                v["failureReason"] = json!(reason);
            }
            v
        })
        .collect();
    json!({ "ssmAgentDiscoveryDatetime": drs_timestamp(p.ssm_agent_at), "runs": runs })
}

// ---------------------------------------------------------------------------------------------
// Validation of the model's shapes.

fn invalid(field: &str, value: &str, rule: &str) -> DrsError {
    DrsError::field(field, format!("{value:?} {rule}"))
}

/// `LaunchActionResourceId`: `s-[0-9a-zA-Z]{17}` or `lct-[0-9a-zA-Z]{17}` [BC].
fn check_resource_id(value: &str) -> Result<(), DrsError> {
    let ok = ["s-", "lct-"].iter().any(|prefix| {
        value
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.len() == 17 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "resourceId",
            value,
            "does not match the pattern (s-[0-9a-zA-Z]{17}$|lct-[0-9a-zA-Z]{17})",
        ))
    }
}

/// `LaunchActionId`: a UUID, `[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-...-[0-9a-fA-F]{12}` [BC].
fn check_action_id(field: &str, value: &str) -> Result<(), DrsError> {
    let groups: Vec<&str> = value.split('-').collect();
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            "is not a launch action ID (a UUID: 8-4-4-4-12 hexadecimal digits)",
        ))
    }
}

/// A string member: its length in `min..=max` and every character allowed.
fn check_chars(
    field: &str,
    value: &str,
    (min, max): (usize, usize),
    allowed: impl Fn(char) -> bool,
    pattern: &str,
) -> Result<(), DrsError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(invalid(
            field,
            value,
            &format!("must be {min} to {max} characters long"),
        ));
    }
    if !value.chars().all(allowed) {
        return Err(invalid(
            field,
            value,
            &format!("does not match the pattern {pattern}"),
        ));
    }
    Ok(())
}

/// The characters of `LaunchActionDescription` and `FailureReason`:
/// `[0-9a-zA-Z ():/.,'-_#*; ]` [BC] (`'-_` is the range from `'` to `_`).
fn description_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " ():/.,#*;".contains(c) || ('\''..='_').contains(&c)
}

fn check_one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), DrsError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            &format!("is not one of {}", allowed.join(", ")),
        ))
    }
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, DrsError> {
    value.ok_or_else(|| DrsError::field(field, "is required"))
}

// ---------------------------------------------------------------------------------------------
// The operations.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutInput {
    resource_id: Option<String>,
    action_code: Option<String>,
    order: Option<i64>,
    action_id: Option<String>,
    optional: Option<bool>,
    active: Option<bool>,
    name: Option<String>,
    action_version: Option<String>,
    category: Option<String>,
    description: Option<String>,
    parameters: Option<BTreeMap<String, ParameterInput>>,
}

#[derive(Deserialize)]
struct ParameterInput {
    value: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The source server a launch action names; `lct-` (a launch configuration template) is a
/// valid resource the simulator has none of.
fn resource_exists(ctx: &Ctx<'_>, scope: &Scope, resource_id: &str) -> Result<(), DrsError> {
    if resource_id.starts_with("s-") {
        return views::server(ctx.world, scope, resource_id).map(|_| ());
    }
    Err(DrsError::not_found(
        "LAUNCH_CONFIGURATION_TEMPLATE",
        resource_id,
        format!(
            "Launch configuration template {resource_id} does not exist in account {} region {} \
             (the simulated DRS has no launch configuration templates; name a source server)",
            scope.account, scope.region
        ),
    ))
}

/// PutLaunchAction: creates or replaces (same `actionId`) a launch action of a source server.
/// Every member but `parameters` is required [BC]; a parameter needs both `value` and `type`
/// (the model marks neither required; a parameter without one cannot be resolved, the stricter
/// reading). Two actions of a resource may not share an `order` (actions run by order; the
/// user guide has custom action orders unique): ConflictException.
pub(super) fn put(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let i: PutInput = input(&body)?;
    let resource_id = required("resourceId", i.resource_id)?;
    check_resource_id(&resource_id)?;
    let action_code = required("actionCode", i.action_code)?;
    check_chars(
        "actionCode",
        &action_code,
        (1, 1011),
        |c| c.is_ascii_alphanumeric() || "-/:".contains(c),
        "([A-Za-z0-9-/:])+",
    )?;
    let order = required("order", i.order)?;
    if !(2..=10_000).contains(&order) {
        return Err(DrsError::field(
            "order",
            format!("{order} is outside the range 2 to 10000"),
        ));
    }
    let action_id = required("actionId", i.action_id)?;
    check_action_id("actionId", &action_id)?;
    let optional = required("optional", i.optional)?;
    let active = required("active", i.active)?;
    let name = required("name", i.name)?;
    check_chars(
        "name",
        &name,
        (1, 256),
        |c| c.is_ascii_alphanumeric() || " /_-".contains(c),
        "[A-Za-z0-9][A-Za-z0-9 /_-]*",
    )?;
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid(
            "name",
            &name,
            "does not match the pattern [A-Za-z0-9][A-Za-z0-9 /_-]*",
        ));
    }
    let action_version = required("actionVersion", i.action_version)?;
    let version_ok = action_version == "$DEFAULT"
        || action_version == "$LATEST"
        || (!action_version.is_empty() && action_version.chars().all(|c| c.is_ascii_digit()));
    if !version_ok || action_version.len() > 10 {
        return Err(invalid(
            "actionVersion",
            &action_version,
            "does not match the pattern (\\$DEFAULT|\\$LATEST|[0-9]+) (at most 10 characters)",
        ));
    }
    let category = required("category", i.category)?;
    check_one_of(
        "category",
        &category,
        &[
            "MONITORING",
            "VALIDATION",
            "CONFIGURATION",
            "SECURITY",
            "OTHER",
        ],
    )?;
    let description = required("description", i.description)?;
    check_chars(
        "description",
        &description,
        (0, 1024),
        description_char,
        "[0-9a-zA-Z ():/.,'-_#*; ]*",
    )?;
    let raw = i.parameters.unwrap_or_default();
    check_count("parameters", raw.len(), 0, MAX_PARAMETERS)?;
    let mut parameters = BTreeMap::new();
    for (key, p) in raw {
        check_chars(
            "parameters",
            &key,
            (1, 1011),
            |c| c.is_ascii_alphanumeric(),
            "([A-Za-z0-9])+ (a parameter name)",
        )?;
        let field = format!("parameters.{key}");
        let value = required(&format!("{field}.value"), p.value)?;
        check_chars(
            &format!("{field}.value"),
            &value,
            (1, 1011),
            |c| c.is_ascii_alphanumeric() || ".-".contains(c),
            "[A-Za-z0-9.-]+ (an SSM_STORE value names a Parameter Store parameter)",
        )?;
        let kind = required(&format!("{field}.type"), p.kind)?;
        check_one_of(&format!("{field}.type"), &kind, &["SSM_STORE", "DYNAMIC"])?;
        parameters.insert(key, Parameter { value, kind });
    }
    resource_exists(ctx, scope, &resource_id)?;
    let kind = if AUTOMATION_DOCUMENTS.contains(&action_code.as_str()) {
        "SSM_AUTOMATION"
    } else {
        "SSM_COMMAND"
    };
    let action = LaunchAction {
        action_id,
        action_code,
        kind: kind.to_string(),
        name,
        active,
        order,
        action_version,
        optional,
        parameters,
        description,
        category,
    };
    let drs = ctx.world.drs.entry(scope.key.clone()).or_default();
    let actions = drs.launch_actions.entry(resource_id.clone()).or_default();
    if let Some(other) = actions
        .iter()
        .find(|a| a.order == action.order && a.action_id != action.action_id)
    {
        return Err(DrsError::conflict(
            "LAUNCH_ACTION",
            &other.action_id,
            format!(
                "Launch action {} of {resource_id} already has order {}; each action of a \
                 resource needs its own order",
                other.action_id, other.order
            ),
        ));
    }
    actions.retain(|a| a.action_id != action.action_id);
    actions.push(action.clone());
    actions.sort_by_key(|a| a.order);
    let mut reply = serde_json::to_value(&action).expect("a launch action serialises");
    reply["resourceId"] = json!(resource_id);
    Ok(Done::mutated(200, Some(reply), body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    resource_id: Option<String>,
    filters: Option<ListFilters>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListFilters {
    action_ids: Option<Vec<String>>,
}

/// ListLaunchActions: the resource's actions by `order`, at most 200 a page.
pub(super) fn list(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let i: ListInput = input(&body)?;
    let resource_id = required("resourceId", i.resource_id)?;
    check_resource_id(&resource_id)?;
    let ids = i.filters.unwrap_or_default().action_ids.unwrap_or_default();
    check_count("filters.actionIds", ids.len(), 0, MAX_FILTER_IDS)?;
    for id in &ids {
        check_action_id("filters.actionIds", id)?;
    }
    if let Some(n) = i.max_results
        && n > 1000
    {
        return Err(DrsError::field(
            "maxResults",
            format!("{n} is more than the maximum of 1000"),
        ));
    }
    if i.next_token.as_ref().is_some_and(|t| t.len() > 2048) {
        return Err(DrsError::field(
            "nextToken",
            "is longer than 2048 characters",
        ));
    }
    resource_exists(ctx, scope, &resource_id)?;
    let wanted: BTreeSet<&String> = ids.iter().collect();
    let selected: Vec<&LaunchAction> = views::region(ctx.world, scope)
        .and_then(|r| r.launch_actions.get(&resource_id))
        .map(|actions| {
            actions
                .iter()
                .filter(|a| wanted.is_empty() || wanted.contains(&a.action_id))
                .collect()
        })
        .unwrap_or_default();
    let keys: Vec<String> = selected.iter().map(|a| a.action_id.clone()).collect();
    let size = Some(i.max_results.unwrap_or(MAX_PAGE).min(MAX_PAGE));
    let page = page(&keys, size, i.next_token.as_deref())?;
    let mut out = json!({ "items": &selected[page.start..page.end] });
    if let Some(token) = page.next_token {
        out["nextToken"] = json!(token);
    }
    Ok(Done::read(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteInput {
    resource_id: Option<String>,
    action_id: Option<String>,
}

/// DeleteLaunchAction (204): ResourceNotFoundException when the resource has no such action.
pub(super) fn delete(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let i: DeleteInput = input(&body)?;
    let resource_id = required("resourceId", i.resource_id)?;
    check_resource_id(&resource_id)?;
    let action_id = required("actionId", i.action_id)?;
    check_action_id("actionId", &action_id)?;
    resource_exists(ctx, scope, &resource_id)?;
    let actions = ctx
        .world
        .drs
        .get_mut(&scope.key)
        .and_then(|r| r.launch_actions.get_mut(&resource_id));
    let Some(actions) = actions.filter(|a| a.iter().any(|a| a.action_id == action_id)) else {
        return Err(DrsError::not_found(
            "LAUNCH_ACTION",
            &action_id,
            format!("Launch action {action_id} does not exist for {resource_id}"),
        ));
    };
    actions.retain(|a| a.action_id != action_id);
    Ok(Done::mutated(204, None, body))
}

// ---------------------------------------------------------------------------------------------
// Runs on the simulated clock.

/// Starts and ends the action runs of every launched server that is due, in every region.
pub fn advance(world: &mut World, now: DateTime<Utc>, faults: &[Fault]) {
    let World { drs, ec2, .. } = world;
    for region in drs.values_mut() {
        let super::model::DrsRegion {
            jobs,
            source_servers,
            launch_actions,
            ..
        } = region;
        for job in jobs.iter_mut().filter(|j| j.kind == JobKind::Launch) {
            for s in &mut job.servers {
                let enabled = s.settings.is_some_and(|p| p.post_launch);
                if !enabled || s.launch_status != LaunchStatus::Launched {
                    continue;
                }
                if s.post_launch.is_none() {
                    // The SSM agent is discovered once the instance runs: at LAUNCH_END, or
                    // when an instance launched STOPPED is started.
                    let Some(running) = s
                        .recovery_instance_id
                        .as_deref()
                        .and_then(|id| ec2.get(id))
                        .filter(|i| i.state == InstanceState::Running)
                        .and_then(|i| i.running_since)
                    else {
                        continue;
                    };
                    let agent_salt = [job.id.as_str(), &s.source_server_id, "ssm-agent"];
                    let found = running + Duration::seconds(jitter(&agent_salt, 30, 90));
                    if found > now {
                        continue;
                    }
                    let mut ends = found;
                    let runs = launch_actions
                        .get(&s.source_server_id)
                        .into_iter()
                        .flatten()
                        .filter(|a| a.active)
                        .map(|a| {
                            let salt = [job.id.as_str(), &s.source_server_id, &a.action_id];
                            ends += Duration::seconds(jitter(&salt, 30, 120));
                            ActionRun {
                                action: a.clone(),
                                run_id: uuid_of(&salt),
                                ends_at: ends,
                                status: RunStatus::InProgress,
                                failure_reason: None,
                            }
                        })
                        .collect();
                    s.post_launch = Some(PostLaunch {
                        ssm_agent_at: found,
                        runs,
                    });
                }
                let instance = s.recovery_instance_id.clone().unwrap_or_default();
                let Some(p) = s.post_launch.as_mut() else {
                    continue;
                };
                for run in p
                    .runs
                    .iter_mut()
                    .filter(|r| r.status == RunStatus::InProgress && r.ends_at <= now)
                {
                    if launch_action_fails(faults, &s.source_server_id, &run.action.action_code) {
                        run.status = RunStatus::Failed;
                        run.failure_reason = Some(format!(
                            "SSM document {} failed on {instance}: exit status 1 (simulated \
                             launch_action_failure fault)",
                            run.action.action_code
                        ));
                        if !run.action.optional
                            && let Some(last) = source_servers
                                .get_mut(&s.source_server_id)
                                .and_then(|server| server.last_launch.as_mut())
                                .filter(|l| l.job_id == job.id)
                        {
                            last.status = LaunchStatus::Failed;
                        }
                    } else {
                        run.status = RunStatus::Succeeded;
                    }
                }
            }
        }
    }
}

/// A UUID-shaped ID derived from `parts` (the same on every replay).
fn uuid_of(parts: &[&str]) -> String {
    let h = hex_id(parts, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_strings_follow_the_model_patterns() {
        assert!(check_resource_id("s-1234567890abcdef0").is_ok());
        assert!(check_resource_id("lct-1234567890abcdef0").is_ok());
        assert!(check_resource_id("i-1234567890abcdef0").is_err());
        assert!(check_action_id("actionId", "0f8fad5b-d9cb-469f-a165-70867728950e").is_ok());
        assert!(check_action_id("actionId", "0f8fad5b-d9cb-469f-a165").is_err());
        assert!(check_action_id("actionId", &uuid_of(&["a"])).is_ok());
        assert!(description_char('\'') && description_char('_') && description_char('A'));
        assert!(!description_char('!') && !description_char('"'));
    }
}
