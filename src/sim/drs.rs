//! Simulated DRS (restJson1). PLACEHOLDER: being written.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Ctx, Fault, Outcome, Reply, SimRequest, World};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrsRegion {}

pub fn operation_of(req: &SimRequest) -> Result<String, Reply> {
    Ok(req.path.trim_start_matches('/').to_string())
}

pub fn error_reply(code: &str, message: &str, request_id: &str) -> Reply {
    Reply::json(400, &serde_json::json!({"__type": code, "message": message}))
        .with_header("x-amzn-ErrorType", code)
        .with_header("x-amzn-RequestId", request_id)
}

pub fn handle(ctx: &mut Ctx<'_>, operation: &str, _req: &SimRequest) -> Outcome {
    Outcome::read(error_reply("ValidationException", operation, ctx.request_id))
}

pub fn advance(_world: &mut World, _now: DateTime<Utc>, _faults: &[Fault]) {}

pub fn initialize(_world: &mut World, _account: &str, _region: &str, _now: DateTime<Utc>) {}

pub fn seed_source_server(
    _world: &mut World,
    _now: DateTime<Utc>,
    _account: &str,
    _region: &str,
    _source_server_id: &str,
    _origin: &super::ec2::Instance,
) -> bool {
    false
}
