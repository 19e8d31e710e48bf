//! Native recovery plans: CreateRecoveryPlan, GetRecoveryPlan, ListRecoveryPlans,
//! UpdateRecoveryPlan, DeleteRecoveryPlan, the step calls (CreateRecoveryPlanStep,
//! ListRecoveryPlanSteps, UpdateRecoveryPlanStep, DeleteRecoveryPlanStep) and the executions
//! (StartRecoveryPlanExecution, ListRecoveryPlanExecutions, GetRecoveryPlanExecution,
//! CancelRecoveryPlanExecution).
//!
//! Limits and rules are the botocore model's ([BC] `drs/2020-02-26/service-2.json`, the same
//! shapes as aws-sdk-drs 1.128 `src/operation/*recovery_plan*`); where it is silent, the
//! stricter reading (noted where it applies).
//!
//! ```text
//!  execution:  CREATED ─(5 s)─► IN_PROGRESS ─(steps: SERVER 15 min, WAIT its minutes)─► COMPLETED
//!              any non-terminal ─ CancelRecoveryPlanExecution ─► CANCELLING ─(30 s)─► CANCELLED
//! ```
//!
//! An execution's status is a function of its start, its steps and the simulated clock, so
//! nothing needs advancing. The simulator does not launch instances for an execution; while
//! it is not terminal it holds its servers, so StartRecovery on one of them is refused as a
//! DRS job holding the server would refuse it (see `jobs.rs`).

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use super::jobs::check_tags;
use super::model::{ClientToken, DrsRegion, PlanExecution, PlanStep, PlanStepKind, RecoveryPlan};
use super::{Ctx, Done, DrsError, Scope, check_count, check_id, hex_id, input, page, parse_arn};
use crate::sim::wire::random_hex;

/// `RecoveryPlanStepOrder` is 1..20 and `RecoveryPlanStepArnList` holds at most 20 [BC]: a plan
/// has at most 20 steps.
pub const MAX_STEPS_PER_PLAN: usize = 20;
/// `RecoveryPlanServers`: 1..100 servers a SERVER step [BC].
pub const MAX_SERVERS_PER_STEP: usize = 100;
/// How long an execution stays CREATED before its first step starts (not in the model).
const CREATED_SECS: i64 = 5;
/// How long a SERVER step of an execution takes: a launch (snapshot, conversion, boot).
const SERVER_STEP_MINUTES: i64 = 15;
/// How long an execution stays CANCELLING.
const CANCELLING_SECS: i64 = 30;

/// A timestamp as the model's `ISO8601DatetimeString` pattern has it (UTC, trailing `Z`).
fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

// ---------------------------------------------------------------------------------------------
// Validation of the model's string shapes.

/// `RecoveryPlanName` / `RecoveryPlanStepName`: 1..256, `[a-zA-Z0-9][a-zA-Z0-9 _-]*` [BC].
fn check_name(field: &str, value: &str) -> Result<(), DrsError> {
    let mut chars = value.chars();
    let ok = (1..=256).contains(&value.chars().count())
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(DrsError::field(
            field,
            format!(
                "{value:?} does not match the pattern [a-zA-Z0-9][a-zA-Z0-9 _-]* (1 to 256 characters)"
            ),
        ))
    }
}

/// `RecoveryPlanDescription`: at most 1024 characters [BC].
fn check_description(value: Option<&str>) -> Result<(), DrsError> {
    match value {
        Some(d) if d.chars().count() > 1024 => Err(DrsError::field(
            "description",
            "is longer than 1024 characters",
        )),
        _ => Ok(()),
    }
}

/// `ClientIdempotencyToken`: at most 64 characters [BC].
fn check_token(value: Option<&str>) -> Result<(), DrsError> {
    match value {
        Some(t) if t.chars().count() > 64 => Err(DrsError::field(
            "clientToken",
            "is longer than 64 characters",
        )),
        _ => Ok(()),
    }
}

/// `StrictDRSARN` (20..2048, `arn:aws(-[a-z0-9]+)*:drs:[a-z0-9-]+:[0-9]{12}:[a-zA-Z0-9_/.-]+`)
/// [BC], of this account and region and of `kind`: its ID, or ResourceNotFound.
fn resource_id(
    scope: &Scope,
    field: &str,
    arn: Option<&str>,
    kind: &'static str,
) -> Result<String, DrsError> {
    let arn = arn.ok_or_else(|| DrsError::field(field, "is required"))?;
    let strict = (20..=2048).contains(&arn.len())
        && parse_arn(arn).is_some_and(|(account, region, _, id)| {
            account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && !region.is_empty()
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '-'))
        });
    if !strict {
        return Err(DrsError::field(
            field,
            format!("{arn:?} is not a DRS ARN (StrictDRSARN)"),
        ));
    }
    let (account, region, found_kind, id) = parse_arn(arn).expect("checked above");
    if account != scope.account || region != scope.region || found_kind != kind {
        return Err(not_found(kind, arn));
    }
    Ok(id)
}

fn not_found(kind: &'static str, arn: &str) -> DrsError {
    let resource_type = match kind {
        "recovery-plan" => "RECOVERY_PLAN",
        "recovery-plan-step" => "RECOVERY_PLAN_STEP",
        _ => "RECOVERY_PLAN_EXECUTION",
    };
    DrsError::not_found(resource_type, arn, format!("No {kind} has the ARN {arn}"))
}

// ---------------------------------------------------------------------------------------------
// Executions on the simulated clock.

fn step_duration(step: &PlanStep) -> Duration {
    match step.kind {
        PlanStepKind::Server { .. } => Duration::minutes(SERVER_STEP_MINUTES),
        PlanStepKind::Wait { minutes } => Duration::minutes(minutes),
    }
}

/// An execution's status at `now`, and when it ended.
fn execution_status(
    e: &PlanExecution,
    now: DateTime<Utc>,
) -> (&'static str, Option<DateTime<Utc>>) {
    if let Some(cancelled) = e.cancelled_at {
        let ended = cancelled + Duration::seconds(CANCELLING_SECS);
        return if now < ended {
            ("CANCELLING", None)
        } else {
            ("CANCELLED", Some(ended))
        };
    }
    let running = e.started_at + Duration::seconds(CREATED_SECS);
    let ended = e
        .steps
        .iter()
        .map(step_duration)
        .fold(running, |t, d| t + d);
    if now < running {
        ("CREATED", None)
    } else if now < ended {
        ("IN_PROGRESS", None)
    } else {
        ("COMPLETED", Some(ended))
    }
}

/// Not in a terminal status: CREATED and IN_PROGRESS ([BC] DeleteRecoveryPlan), and CANCELLING
/// (stricter reading: its servers may still be launching).
fn is_active(status: &str) -> bool {
    matches!(status, "CREATED" | "IN_PROGRESS" | "CANCELLING")
}

/// The source server IDs held by executions that are not terminal at `now`, with the ARN of
/// the execution holding each (StartRecovery refuses them).
pub(super) fn servers_in_active_executions(
    drs: &DrsRegion,
    now: DateTime<Utc>,
) -> BTreeMap<String, String> {
    let mut held = BTreeMap::new();
    for e in &drs.plan_executions {
        if !is_active(execution_status(e, now).0) {
            continue;
        }
        for step in &e.steps {
            if let PlanStepKind::Server { servers } = &step.kind {
                for (arn, _) in servers {
                    if let Some((_, _, _, id)) = parse_arn(arn) {
                        held.insert(id, e.id.clone());
                    }
                }
            }
        }
    }
    held
}

// ---------------------------------------------------------------------------------------------
// Wire JSON.

fn plan_status(plan: &RecoveryPlan) -> &'static str {
    // "INVALID means the plan has no SERVER type steps and cannot be executed" [BC].
    if plan
        .steps
        .iter()
        .any(|s| matches!(s.kind, PlanStepKind::Server { .. }))
    {
        "ACTIVE"
    } else {
        "INVALID"
    }
}

fn plan_json(scope: &Scope, plan: &RecoveryPlan) -> Value {
    let mut out = json!({
        "recoveryPlanArn": scope.arn("recovery-plan", &plan.id),
        "name": plan.name,
        "status": plan_status(plan),
        "createdAt": timestamp(plan.created_at),
        "updatedAt": timestamp(plan.updated_at),
        "tags": plan.tags,
    });
    if let Some(d) = &plan.description {
        out["description"] = json!(d);
    }
    out
}

fn step_json(scope: &Scope, order: usize, step: &PlanStep) -> Value {
    let configuration = match &step.kind {
        PlanStepKind::Server { servers } => json!({
            "serverStepConfiguration": {
                "servers": servers
                    .iter()
                    .map(|(arn, impact)| json!({"serverArn": arn, "impactLevel": impact}))
                    .collect::<Vec<_>>(),
            }
        }),
        PlanStepKind::Wait { minutes } => {
            json!({ "waitStepConfiguration": { "waitDurationMinutes": minutes } })
        }
    };
    json!({
        "recoveryPlanStepArn": scope.arn("recovery-plan-step", &step.id),
        "stepOrder": order + 1,
        "stepName": step.name,
        "configuration": configuration,
        "createdAt": timestamp(step.created_at),
        "updatedAt": timestamp(step.updated_at),
    })
}

fn execution_json(scope: &Scope, e: &PlanExecution, now: DateTime<Utc>) -> Value {
    let (status, ended) = execution_status(e, now);
    let mut out = json!({
        "recoveryPlanExecutionArn": scope.arn("recovery-plan-execution", &e.id),
        "recoveryPlanArn": scope.arn("recovery-plan", &e.plan_id),
        "mode": e.mode,
        "status": status,
        "startedAt": timestamp(e.started_at),
        "tags": e.tags,
    });
    if let Some(ended) = ended {
        out["completedAt"] = json!(timestamp(ended));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Idempotency tokens.

/// The ARN a `clientToken` already created, when the same operation is sent again with the
/// same parameters; a ConflictException when the token was used for different ones (the
/// model only marks the member `idempotencyToken`: the stricter reading of a reuse).
fn replayed(
    drs: &DrsRegion,
    operation: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<Option<String>, DrsError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match drs.client_tokens.get(token) {
        None => Ok(None),
        Some(used) if used.operation == operation && used.params == params_digest(body) => {
            Ok(Some(used.arn.clone()))
        }
        Some(used) => Err(DrsError::conflict(
            "CLIENT_TOKEN",
            token,
            format!(
                "The clientToken {token:?} was already used for a different {} request",
                used.operation
            ),
        )),
    }
}

fn params_digest(body: &Value) -> String {
    let mut params = body.clone();
    if let Some(o) = params.as_object_mut() {
        o.remove("clientToken");
    }
    hex_id(&[&params.to_string()], 32)
}

fn remember(drs: &mut DrsRegion, operation: &str, token: Option<&str>, body: &Value, arn: &str) {
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        drs.client_tokens.insert(
            token.to_string(),
            ClientToken {
                operation: operation.to_string(),
                params: params_digest(body),
                arn: arn.to_string(),
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Plans.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatePlanInput {
    name: Option<String>,
    description: Option<String>,
    client_token: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

fn region_mut<'w>(ctx: &'w mut Ctx<'_>, scope: &Scope) -> &'w mut DrsRegion {
    ctx.world.drs.entry(scope.key.clone()).or_default()
}

/// Plan names are unique in an account and region: the model is silent, so the stricter reading
/// (a second plan of the same name is a ConflictException).
fn check_unique_name(drs: &DrsRegion, name: &str, except: Option<&str>) -> Result<(), DrsError> {
    match drs
        .recovery_plans
        .iter()
        .find(|p| p.name == name && Some(p.id.as_str()) != except)
    {
        Some(other) => Err(DrsError::conflict(
            "RECOVERY_PLAN",
            &other.id,
            format!(
                "A recovery plan named {name:?} already exists ({})",
                other.id
            ),
        )),
        None => Ok(()),
    }
}

pub(super) fn create_plan(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: CreatePlanInput = input(&body)?;
    let name = input
        .name
        .ok_or_else(|| DrsError::field("name", "is required"))?;
    check_name("name", &name)?;
    check_description(input.description.as_deref())?;
    check_token(input.client_token.as_deref())?;
    let tags = input.tags.unwrap_or_default();
    check_tags(&tags)?;
    let now = ctx.now;
    let id = format!("rp-{}", random_hex(ctx.rng, 17));
    let drs = region_mut(ctx, scope);
    let token = input.client_token.as_deref();
    if let Some(arn) = replayed(drs, "CreateRecoveryPlan", token, &body)? {
        let id = resource_id(scope, "recoveryPlanArn", Some(&arn), "recovery-plan")?;
        if let Some(plan) = drs.recovery_plans.iter().find(|p| p.id == id) {
            return Ok(Done::read_with(
                201,
                json!({ "recoveryPlan": plan_json(scope, plan) }),
            ));
        }
    }
    check_unique_name(drs, &name, None)?;
    let plan = RecoveryPlan {
        id: id.clone(),
        name,
        description: input.description,
        created_at: now,
        updated_at: now,
        tags,
        steps: Vec::new(),
    };
    let reply = json!({ "recoveryPlan": plan_json(scope, &plan) });
    drs.recovery_plans.push(plan);
    remember(
        drs,
        "CreateRecoveryPlan",
        token,
        &body,
        &scope.arn("recovery-plan", &id),
    );
    Ok(Done::mutated(201, Some(reply), body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanArnInput {
    recovery_plan_arn: Option<String>,
}

fn plan_index(drs: &DrsRegion, scope: &Scope, arn: Option<&str>) -> Result<usize, DrsError> {
    let id = resource_id(scope, "recoveryPlanArn", arn, "recovery-plan")?;
    drs.recovery_plans
        .iter()
        .position(|p| p.id == id)
        .ok_or_else(|| not_found("recovery-plan", arn.unwrap_or_default()))
}

pub(super) fn get_plan(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: PlanArnInput = input(&body)?;
    let drs = region_mut(ctx, scope);
    let i = plan_index(drs, scope, input.recovery_plan_arn.as_deref())?;
    Ok(Done::read(
        json!({ "recoveryPlan": plan_json(scope, &drs.recovery_plans[i]) }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    recovery_plan_arn: Option<String>,
    status: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// `MaxResultsType`: 1..1000 [BC].
fn check_max_results(max_results: Option<i64>) -> Result<(), DrsError> {
    match max_results {
        Some(n) if n > 1000 => Err(DrsError::field(
            "maxResults",
            format!("{n} is more than the maximum of 1000"),
        )),
        _ => Ok(()),
    }
}

pub(super) fn list_plans(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: ListInput = input(&body)?;
    check_max_results(input.max_results)?;
    let drs = region_mut(ctx, scope);
    let keys: Vec<String> = drs.recovery_plans.iter().map(|p| p.id.clone()).collect();
    let page = page(&keys, input.max_results, input.next_token.as_deref())?;
    let items: Vec<Value> = drs.recovery_plans[page.start..page.end]
        .iter()
        .map(|p| {
            json!({
                "recoveryPlanArn": scope.arn("recovery-plan", &p.id),
                "name": p.name,
                "status": plan_status(p),
                "createdAt": timestamp(p.created_at),
                "updatedAt": timestamp(p.updated_at),
            })
        })
        .collect();
    let mut out = json!({ "recoveryPlans": items });
    if let Some(token) = page.next_token {
        out["nextToken"] = json!(token);
    }
    Ok(Done::read(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdatePlanInput {
    recovery_plan_arn: Option<String>,
    name: Option<String>,
    description: Option<String>,
}

pub(super) fn update_plan(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: UpdatePlanInput = input(&body)?;
    if let Some(name) = &input.name {
        check_name("name", name)?;
    }
    check_description(input.description.as_deref())?;
    let now = ctx.now;
    let drs = region_mut(ctx, scope);
    let i = plan_index(drs, scope, input.recovery_plan_arn.as_deref())?;
    if let Some(name) = &input.name {
        check_unique_name(drs, name, Some(&drs.recovery_plans[i].id.clone()))?;
    }
    let plan = &mut drs.recovery_plans[i];
    if let Some(name) = input.name {
        plan.name = name;
    }
    if let Some(description) = input.description {
        plan.description = Some(description);
    }
    plan.updated_at = now;
    let reply = json!({ "recoveryPlan": plan_json(scope, plan) });
    Ok(Done::mutated(200, Some(reply), body))
}

/// The plan's executions that are not terminal (a plan has at most one [BC]).
fn active_execution<'d>(
    drs: &'d DrsRegion,
    plan_id: &str,
    now: DateTime<Utc>,
) -> Option<&'d PlanExecution> {
    drs.plan_executions
        .iter()
        .find(|e| e.plan_id == plan_id && is_active(execution_status(e, now).0))
}

/// A plan with an execution in progress cannot change: [BC] says so of DeleteRecoveryPlan; for
/// its steps the model is silent, so the stricter reading (ConflictException) holds for them too.
fn check_not_executing(
    drs: &DrsRegion,
    scope: &Scope,
    plan_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DrsError> {
    match active_execution(drs, plan_id, now) {
        Some(e) => Err(DrsError::conflict(
            "RECOVERY_PLAN",
            &scope.arn("recovery-plan", plan_id),
            format!(
                "Recovery plan {plan_id} has an execution in status {} ({}); wait for it to end or cancel it",
                execution_status(e, now).0,
                scope.arn("recovery-plan-execution", &e.id)
            ),
        )),
        None => Ok(()),
    }
}

pub(super) fn delete_plan(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: PlanArnInput = input(&body)?;
    let now = ctx.now;
    let drs = region_mut(ctx, scope);
    let i = plan_index(drs, scope, input.recovery_plan_arn.as_deref())?;
    let id = drs.recovery_plans[i].id.clone();
    check_not_executing(drs, scope, &id, now)?;
    drs.recovery_plans.remove(i);
    Ok(Done::mutated(
        200,
        Some(json!({ "recoveryPlanArn": scope.arn("recovery-plan", &id) })),
        body,
    ))
}

// ---------------------------------------------------------------------------------------------
// Steps.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StepConfiguration {
    server_step_configuration: Option<ServerStepConfiguration>,
    wait_step_configuration: Option<WaitStepConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerStepConfiguration {
    servers: Option<Vec<StepServer>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StepServer {
    server_arn: Option<String>,
    impact_level: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WaitStepConfiguration {
    wait_duration_minutes: Option<i64>,
}

/// A step configuration: exactly one member set [BC]; SERVER steps of 1..100 existing source
/// servers of this account and region (stricter reading: the model does not say they must
/// exist), each once; WAIT steps of 1..120 minutes.
fn step_kind(
    drs: &DrsRegion,
    scope: &Scope,
    configuration: StepConfiguration,
) -> Result<PlanStepKind, DrsError> {
    match (
        configuration.server_step_configuration,
        configuration.wait_step_configuration,
    ) {
        (Some(server), None) => {
            let servers = server.servers.ok_or_else(|| {
                DrsError::field(
                    "configuration.serverStepConfiguration.servers",
                    "is required",
                )
            })?;
            check_count(
                "configuration.serverStepConfiguration.servers",
                servers.len(),
                1,
                MAX_SERVERS_PER_STEP,
            )?;
            let mut out = Vec::with_capacity(servers.len());
            let mut seen = BTreeSet::new();
            for (i, server) in servers.into_iter().enumerate() {
                let field = format!("configuration.serverStepConfiguration.servers[{i}].serverArn");
                let arn = server
                    .server_arn
                    .ok_or_else(|| DrsError::field(&field, "is required"))?;
                let id = match parse_arn(&arn) {
                    Some((_, _, kind, id)) if kind == "source-server" => id,
                    _ => {
                        return Err(DrsError::field(
                            &field,
                            format!("{arn:?} is not a source server ARN (SourceServerARN)"),
                        ));
                    }
                };
                check_id(&field, &id, "s-")?;
                if arn != scope.arn("source-server", &id) || !drs.source_servers.contains_key(&id) {
                    return Err(DrsError::not_found(
                        "SOURCE_SERVER",
                        &arn,
                        format!(
                            "Source server {arn} does not exist in account {} region {}",
                            scope.account, scope.region
                        ),
                    ));
                }
                if !seen.insert(id.clone()) {
                    return Err(DrsError::field(&field, format!("{id} is listed twice")));
                }
                let impact = server.impact_level.unwrap_or_else(|| "CRITICAL".into());
                if impact != "CRITICAL" && impact != "OPTIONAL" {
                    return Err(DrsError::field(
                        &field.replace("serverArn", "impactLevel"),
                        format!("{impact:?} is not one of CRITICAL, OPTIONAL"),
                    ));
                }
                out.push((arn, impact));
            }
            Ok(PlanStepKind::Server { servers: out })
        }
        (None, Some(wait)) => {
            let minutes = wait.wait_duration_minutes.ok_or_else(|| {
                DrsError::field(
                    "configuration.waitStepConfiguration.waitDurationMinutes",
                    "is required",
                )
            })?;
            if !(1..=120).contains(&minutes) {
                return Err(DrsError::field(
                    "configuration.waitStepConfiguration.waitDurationMinutes",
                    format!("{minutes} is not between 1 and 120"),
                ));
            }
            Ok(PlanStepKind::Wait { minutes })
        }
        _ => Err(DrsError::field(
            "configuration",
            "exactly one of serverStepConfiguration and waitStepConfiguration must be set",
        )),
    }
}

/// A server is in one step of a plan at most (stricter reading: recovering it twice in one
/// execution would conflict with its own job).
fn check_servers_once(
    plan: &RecoveryPlan,
    except_step: Option<&str>,
    kind: &PlanStepKind,
) -> Result<(), DrsError> {
    let PlanStepKind::Server { servers } = kind else {
        return Ok(());
    };
    for other in plan
        .steps
        .iter()
        .filter(|s| Some(s.id.as_str()) != except_step)
    {
        if let PlanStepKind::Server { servers: theirs } = &other.kind
            && let Some((arn, _)) = servers
                .iter()
                .find(|(a, _)| theirs.iter().any(|(b, _)| a == b))
        {
            return Err(DrsError::field(
                "configuration.serverStepConfiguration.servers",
                format!("{arn} is already in step {:?} of this plan", other.name),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateStepInput {
    recovery_plan_arn: Option<String>,
    step_name: Option<String>,
    step_order: Option<i64>,
    configuration: Option<StepConfiguration>,
    client_token: Option<String>,
}

/// The plan holding a step, and the step's position.
fn step_position(
    drs: &DrsRegion,
    scope: &Scope,
    arn: Option<&str>,
) -> Result<(usize, usize), DrsError> {
    let id = resource_id(scope, "recoveryPlanStepArn", arn, "recovery-plan-step")?;
    drs.recovery_plans
        .iter()
        .enumerate()
        .find_map(|(p, plan)| plan.steps.iter().position(|s| s.id == id).map(|s| (p, s)))
        .ok_or_else(|| not_found("recovery-plan-step", arn.unwrap_or_default()))
}

pub(super) fn create_step(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: CreateStepInput = input(&body)?;
    let name = input
        .step_name
        .ok_or_else(|| DrsError::field("stepName", "is required"))?;
    check_name("stepName", &name)?;
    check_token(input.client_token.as_deref())?;
    let configuration = input
        .configuration
        .ok_or_else(|| DrsError::field("configuration", "is required"))?;
    let now = ctx.now;
    let id = format!("rps-{}", random_hex(ctx.rng, 17));
    let drs = region_mut(ctx, scope);
    let p = plan_index(drs, scope, input.recovery_plan_arn.as_deref())?;
    let token = input.client_token.as_deref();
    if let Some(arn) = replayed(drs, "CreateRecoveryPlanStep", token, &body)?
        && let Ok((p, s)) = step_position(drs, scope, Some(&arn))
    {
        let step = &drs.recovery_plans[p].steps[s];
        return Ok(Done::read_with(
            201,
            json!({ "recoveryPlanStep": step_json(scope, s, step) }),
        ));
    }
    let kind = step_kind(drs, scope, configuration)?;
    let plan_id = drs.recovery_plans[p].id.clone();
    check_not_executing(drs, scope, &plan_id, now)?;
    let plan = &drs.recovery_plans[p];
    if plan.steps.len() >= MAX_STEPS_PER_PLAN {
        return Err(DrsError::field(
            "stepOrder",
            format!(
                "recovery plan {plan_id} has {} steps; a plan has at most {MAX_STEPS_PER_PLAN} (RecoveryPlanStepOrder 1..20)",
                plan.steps.len()
            ),
        ));
    }
    let position = match input.step_order {
        None => plan.steps.len(),
        Some(order) if order >= 1 && order as usize <= plan.steps.len() + 1 => order as usize - 1,
        Some(order) => {
            return Err(DrsError::field(
                "stepOrder",
                format!(
                    "{order} is not between 1 and {} (the plan has {} steps)",
                    plan.steps.len() + 1,
                    plan.steps.len()
                ),
            ));
        }
    };
    check_servers_once(plan, None, &kind)?;
    let step = PlanStep {
        id: id.clone(),
        name,
        kind,
        created_at: now,
        updated_at: now,
    };
    let reply = json!({ "recoveryPlanStep": step_json(scope, position, &step) });
    let plan = &mut drs.recovery_plans[p];
    plan.steps.insert(position, step);
    plan.updated_at = now;
    remember(
        drs,
        "CreateRecoveryPlanStep",
        token,
        &body,
        &scope.arn("recovery-plan-step", &id),
    );
    Ok(Done::mutated(201, Some(reply), body))
}

pub(super) fn list_steps(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: ListInput = input(&body)?;
    check_max_results(input.max_results)?;
    let drs = region_mut(ctx, scope);
    let p = plan_index(drs, scope, input.recovery_plan_arn.as_deref())?;
    let plan = &drs.recovery_plans[p];
    let keys: Vec<String> = plan.steps.iter().map(|s| s.id.clone()).collect();
    let page = page(&keys, input.max_results, input.next_token.as_deref())?;
    let items: Vec<Value> = (page.start..page.end)
        .map(|i| step_json(scope, i, &plan.steps[i]))
        .collect();
    let mut out = json!({ "recoveryPlanSteps": items });
    if let Some(token) = page.next_token {
        out["nextToken"] = json!(token);
    }
    Ok(Done::read(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateStepInput {
    recovery_plan_step_arn: Option<String>,
    step_name: Option<String>,
    configuration: Option<StepConfiguration>,
}

pub(super) fn update_step(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: UpdateStepInput = input(&body)?;
    if let Some(name) = &input.step_name {
        check_name("stepName", name)?;
    }
    let now = ctx.now;
    let drs = region_mut(ctx, scope);
    let (p, s) = step_position(drs, scope, input.recovery_plan_step_arn.as_deref())?;
    let plan_id = drs.recovery_plans[p].id.clone();
    check_not_executing(drs, scope, &plan_id, now)?;
    let kind = match input.configuration {
        Some(configuration) => {
            let kind = step_kind(drs, scope, configuration)?;
            let plan = &drs.recovery_plans[p];
            let current = &plan.steps[s];
            // "Step type is immutable" [BC].
            if std::mem::discriminant(&kind) != std::mem::discriminant(&current.kind) {
                return Err(DrsError::field(
                    "configuration",
                    "the step type cannot change (Step type is immutable)",
                ));
            }
            check_servers_once(plan, Some(&current.id), &kind)?;
            Some(kind)
        }
        None => None,
    };
    let plan = &mut drs.recovery_plans[p];
    let step = &mut plan.steps[s];
    if let Some(name) = input.step_name {
        step.name = name;
    }
    if let Some(kind) = kind {
        step.kind = kind;
    }
    step.updated_at = now;
    plan.updated_at = now;
    let reply = json!({ "recoveryPlanStep": step_json(scope, s, &plan.steps[s]) });
    Ok(Done::mutated(200, Some(reply), body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StepArnInput {
    recovery_plan_step_arn: Option<String>,
}

pub(super) fn delete_step(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let input: StepArnInput = input(&body)?;
    let now = ctx.now;
    let drs = region_mut(ctx, scope);
    let (p, s) = step_position(drs, scope, input.recovery_plan_step_arn.as_deref())?;
    let plan_id = drs.recovery_plans[p].id.clone();
    check_not_executing(drs, scope, &plan_id, now)?;
    let plan = &mut drs.recovery_plans[p];
    let step = plan.steps.remove(s);
    plan.updated_at = now;
    Ok(Done::mutated(
        200,
        Some(json!({ "recoveryPlanStepArn": scope.arn("recovery-plan-step", &step.id) })),
        body,
    ))
}

// ---------------------------------------------------------------------------------------------
// Executions.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartExecutionInput {
    recovery_plan_arn: Option<String>,
    mode: Option<String>,
    client_token: Option<String>,
    source_servers: Option<Vec<ExecutionServer>>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct ExecutionServer {
    #[serde(rename = "sourceServerID")]
    source_server_id: Option<String>,
    #[serde(rename = "recoverySnapshotID")]
    recovery_snapshot_id: Option<String>,
}

pub(super) fn start_execution(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: StartExecutionInput = input(&body)?;
    let mode = input
        .mode
        .ok_or_else(|| DrsError::field("mode", "is required"))?;
    if mode != "DRILL" && mode != "RECOVERY" {
        return Err(DrsError::field(
            "mode",
            format!("{mode:?} is not one of DRILL, RECOVERY"),
        ));
    }
    check_token(input.client_token.as_deref())?;
    let tags = input.tags.unwrap_or_default();
    check_tags(&tags)?;
    let overrides = input.source_servers.unwrap_or_default();
    check_count("sourceServers", overrides.len(), 0, 200)?;
    for (i, server) in overrides.iter().enumerate() {
        let field = format!("sourceServers[{i}].sourceServerID");
        let id = server
            .source_server_id
            .as_deref()
            .ok_or_else(|| DrsError::field(&field, "is required"))?;
        check_id(&field, id, "s-")?;
        let pit_field = format!("sourceServers[{i}].recoverySnapshotID");
        let pit = server
            .recovery_snapshot_id
            .as_deref()
            .ok_or_else(|| DrsError::field(&pit_field, "is required"))?;
        check_id(&pit_field, pit, "pit-")?;
    }
    let now = ctx.now;
    let id = format!("rpe-{}", random_hex(ctx.rng, 17));
    let drs = region_mut(ctx, scope);
    let p = plan_index(drs, scope, input.recovery_plan_arn.as_deref())?;
    let token = input.client_token.as_deref();
    if let Some(arn) = replayed(drs, "StartRecoveryPlanExecution", token, &body)? {
        let e_id = resource_id(
            scope,
            "recoveryPlanExecutionArn",
            Some(&arn),
            "recovery-plan-execution",
        )?;
        if let Some(e) = drs.plan_executions.iter().find(|e| e.id == e_id) {
            return Ok(Done::read_with(
                201,
                json!({ "recoveryPlanExecution": execution_json(scope, e, now) }),
            ));
        }
    }
    let plan = &drs.recovery_plans[p];
    let plan_arn = scope.arn("recovery-plan", &plan.id);
    if plan_status(plan) != "ACTIVE" {
        return Err(DrsError::conflict(
            "RECOVERY_PLAN",
            &plan_arn,
            format!(
                "Recovery plan {} is INVALID: it has no SERVER step and cannot be executed",
                plan.id
            ),
        ));
    }
    // "A plan cannot have more than one execution in a non-terminal status at a time" [BC].
    check_not_executing(drs, scope, &plan.id.clone(), now)?;
    let plan = &drs.recovery_plans[p];
    for (i, server) in overrides.iter().enumerate() {
        let id = server.source_server_id.as_deref().unwrap_or_default();
        let arn = scope.arn("source-server", id);
        let in_plan = plan.steps.iter().any(|s| match &s.kind {
            PlanStepKind::Server { servers } => servers.iter().any(|(a, _)| *a == arn),
            PlanStepKind::Wait { .. } => false,
        });
        if !in_plan {
            return Err(DrsError::field(
                &format!("sourceServers[{i}].sourceServerID"),
                format!("{id} is not a server of recovery plan {}", plan.id),
            ));
        }
    }
    // The servers are held as a job of theirs would hold them.
    let held = servers_in_active_executions(drs, now);
    let busy = drs
        .active_jobs()
        .flat_map(|j| j.servers.iter().map(|s| s.source_server_id.clone()))
        .chain(held.into_keys())
        .collect::<BTreeSet<_>>();
    for step in &plan.steps {
        if let PlanStepKind::Server { servers } = &step.kind
            && let Some((arn, _)) = servers
                .iter()
                .find(|(arn, _)| parse_arn(arn).is_some_and(|(_, _, _, id)| busy.contains(&id)))
        {
            return Err(DrsError::conflict(
                "SOURCE_SERVER",
                arn,
                format!("{}: {arn}", super::jobs::BUSY_MESSAGE),
            ));
        }
    }
    let execution = PlanExecution {
        id: id.clone(),
        plan_id: plan.id.clone(),
        mode,
        started_at: now,
        steps: plan.steps.clone(),
        cancelled_at: None,
        tags,
    };
    let reply = json!({ "recoveryPlanExecution": execution_json(scope, &execution, now) });
    drs.plan_executions.push(execution);
    remember(
        drs,
        "StartRecoveryPlanExecution",
        token,
        &body,
        &scope.arn("recovery-plan-execution", &id),
    );
    Ok(Done::mutated(201, Some(reply), body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionArnInput {
    recovery_plan_execution_arn: Option<String>,
}

fn execution_index(drs: &DrsRegion, scope: &Scope, arn: Option<&str>) -> Result<usize, DrsError> {
    let id = resource_id(
        scope,
        "recoveryPlanExecutionArn",
        arn,
        "recovery-plan-execution",
    )?;
    drs.plan_executions
        .iter()
        .position(|e| e.id == id)
        .ok_or_else(|| not_found("recovery-plan-execution", arn.unwrap_or_default()))
}

pub(super) fn get_execution(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: ExecutionArnInput = input(&body)?;
    let now = ctx.now;
    let drs = region_mut(ctx, scope);
    let i = execution_index(drs, scope, input.recovery_plan_execution_arn.as_deref())?;
    Ok(Done::read(json!({
        "recoveryPlanExecution": execution_json(scope, &drs.plan_executions[i], now)
    })))
}

pub(super) fn list_executions(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: ListInput = input(&body)?;
    check_max_results(input.max_results)?;
    if let Some(status) = &input.status
        && ![
            "CREATED",
            "IN_PROGRESS",
            "COMPLETED",
            "FAILED",
            "CANCELLING",
            "CANCELLED",
        ]
        .contains(&status.as_str())
    {
        return Err(DrsError::field(
            "status",
            format!("{status:?} is not a RecoveryPlanExecutionStatus"),
        ));
    }
    let now = ctx.now;
    let drs = region_mut(ctx, scope);
    let plan_id = match input.recovery_plan_arn.as_deref() {
        Some(arn) => Some(resource_id(
            scope,
            "recoveryPlanArn",
            Some(arn),
            "recovery-plan",
        )?),
        None => None,
    };
    let matching: Vec<&PlanExecution> = drs
        .plan_executions
        .iter()
        .filter(|e| plan_id.as_ref().is_none_or(|p| &e.plan_id == p))
        .filter(|e| {
            input
                .status
                .as_deref()
                .is_none_or(|s| execution_status(e, now).0 == s)
        })
        .collect();
    let keys: Vec<String> = matching.iter().map(|e| e.id.clone()).collect();
    let page = page(&keys, input.max_results, input.next_token.as_deref())?;
    let items: Vec<Value> = matching[page.start..page.end]
        .iter()
        .map(|e| {
            let mut v = execution_json(scope, e, now);
            if let Some(o) = v.as_object_mut() {
                o.remove("tags");
                o.remove("completedAt");
            }
            v
        })
        .collect();
    let mut out = json!({ "recoveryPlanExecutions": items });
    if let Some(token) = page.next_token {
        out["nextToken"] = json!(token);
    }
    Ok(Done::read(out))
}

pub(super) fn cancel_execution(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: ExecutionArnInput = input(&body)?;
    let now = ctx.now;
    let drs = region_mut(ctx, scope);
    let i = execution_index(drs, scope, input.recovery_plan_execution_arn.as_deref())?;
    let execution = &mut drs.plan_executions[i];
    let status = execution_status(execution, now).0;
    // "Cancels an in-progress Recovery Plan execution" [BC]: a terminal or already cancelling
    // one conflicts with its state.
    if !matches!(status, "CREATED" | "IN_PROGRESS") {
        return Err(DrsError::conflict(
            "RECOVERY_PLAN_EXECUTION",
            &scope.arn("recovery-plan-execution", &execution.id),
            format!(
                "Recovery plan execution {} is {status}; only a CREATED or IN_PROGRESS execution can be cancelled",
                execution.id
            ),
        ));
    }
    execution.cancelled_at = Some(now);
    let reply = json!({ "recoveryPlanExecution": execution_json(scope, execution, now) });
    Ok(Done::mutated(200, Some(reply), body))
}
