//! Simulated Route 53 Application Recovery Controller cluster data plane (awsJson1_0, target
//! prefix `ToggleCustomerAPI`): GetRoutingControlState, UpdateRoutingControlState,
//! UpdateRoutingControlStates. Every cluster endpoint of a test points at this listener; an
//! endpoint that is down is one nobody listens on.
//!
//! Routing controls are global to their account, keyed by ARN, and are created by seeding
//! (`[[routing_control]]` of a runbook), in the state before a failover.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Ctx, Outcome, Reply, SimRequest, World};

const TARGET_PREFIX: &str = "ToggleCustomerAPI.";
const OPERATIONS: [&str; 3] = [
    "GetRoutingControlState",
    "UpdateRoutingControlState",
    "UpdateRoutingControlStates",
];

/// One routing control: `On` lets traffic through its cell, `Off` stops it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingControl {
    pub arn: String,
    pub name: String,
    pub state: String,
}

/// The operation of a request, from its `X-Amz-Target` header.
pub fn operation_of(req: &SimRequest) -> Result<String, Reply> {
    let target = req
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match target.strip_prefix(TARGET_PREFIX) {
        Some(op) if OPERATIONS.contains(&op) => Ok(op.to_string()),
        _ => Err(error_reply(
            "ValidationException",
            &format!(
                "The simulator does not serve {target:?} (it serves {})",
                OPERATIONS.join(", ")
            ),
            "00000000-0000-0000-0000-000000000000",
        )),
    }
}

/// An ARC error: awsJson `__type` and `message`, with the modeled status code.
pub fn error_reply(code: &str, message: &str, request_id: &str) -> Reply {
    let status = match code {
        "ResourceNotFoundException" => 404,
        "AccessDeniedException" => 403,
        "ConflictException" => 409,
        "ThrottlingException" => 429,
        "InternalServerException" => 500,
        "EndpointTemporarilyUnavailableException" | "ServiceUnavailable" => 503,
        _ => 400,
    };
    Reply::json(status, &json!({ "__type": code, "message": message }))
        .with_header("content-type", "application/x-amz-json-1.0")
        .with_header("x-amzn-RequestId", request_id)
}

pub fn handle(ctx: &mut Ctx<'_>, operation: &str, req: &SimRequest) -> Outcome {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let result = match operation {
        "GetRoutingControlState" => get_state(ctx, &body),
        "UpdateRoutingControlState" => {
            let entry = json!([{ "RoutingControlArn": body["RoutingControlArn"], "RoutingControlState": body["RoutingControlState"] }]);
            update_states(ctx, &entry)
        }
        _ => update_states(ctx, &body["UpdateRoutingControlStateEntries"]),
    };
    match result {
        Ok(outcome) => outcome,
        Err((code, message)) => Outcome::read(error_reply(code, &message, ctx.request_id)),
    }
}

type Handled = Result<Outcome, (&'static str, String)>;

fn ok(value: Value, request_id: &str) -> Reply {
    Reply::json(200, &value)
        .with_header("content-type", "application/x-amz-json-1.0")
        .with_header("x-amzn-RequestId", request_id)
}

/// The control of an ARN, if the caller's account owns it (the ARN's account field).
fn control<'w>(
    world: &'w mut World,
    caller: &str,
    arn: &str,
) -> Result<&'w mut RoutingControl, (&'static str, String)> {
    let owner = arn.split(':').nth(4).unwrap_or_default();
    match world.arc.get_mut(arn) {
        Some(control) if owner == caller => Ok(control),
        _ => Err((
            "ResourceNotFoundException",
            format!("Resource not found: routing control {arn}"),
        )),
    }
}

fn get_state(ctx: &mut Ctx<'_>, body: &Value) -> Handled {
    let arn = body["RoutingControlArn"].as_str().unwrap_or_default();
    let request_id = ctx.request_id.to_string();
    let control = control(ctx.world, &ctx.caller.account, arn)?;
    Ok(Outcome::read(ok(
        json!({ "RoutingControlArn": control.arn, "RoutingControlState": control.state, "RoutingControlName": control.name }),
        &request_id,
    )))
}

/// Every entry is checked before any state changes (the call is all or nothing).
fn update_states(ctx: &mut Ctx<'_>, entries: &Value) -> Handled {
    let entries = entries.as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return Err((
            "ValidationException",
            "UpdateRoutingControlStateEntries must name at least one routing control".into(),
        ));
    }
    let mut wanted = Vec::new();
    for entry in &entries {
        let arn = entry["RoutingControlArn"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let state = entry["RoutingControlState"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if state != "On" && state != "Off" {
            return Err((
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{state}' at 'routingControlState' failed to satisfy constraint: Member must satisfy enum value set: [On, Off]"
                ),
            ));
        }
        control(ctx.world, &ctx.caller.account, &arn)?;
        wanted.push((arn, state));
    }
    for (arn, state) in &wanted {
        control(ctx.world, &ctx.caller.account, arn)?.state = state.clone();
    }
    let params = json!({ "entries": wanted.iter().map(|(arn, state)| json!({ "arn": arn, "state": state })).collect::<Vec<_>>() });
    Ok(Outcome::mutated(ok(json!({}), ctx.request_id), params))
}

/// Creates a routing control in a state (seeding). Returns false when it already exists.
pub fn seed_control(world: &mut World, arn: &str, state: &str) -> bool {
    if world.arc.contains_key(arn) {
        return false;
    }
    let name = arn.rsplit('/').next().unwrap_or(arn).to_string();
    world.arc.insert(
        arn.to_string(),
        RoutingControl {
            arn: arn.to_string(),
            name,
            state: state.to_string(),
        },
    );
    true
}
