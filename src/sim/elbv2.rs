//! Simulated ELBv2 (awsQuery). PLACEHOLDER: being written.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Ctx, Fault, Outcome, Reply, SimRequest, World};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ElbRegion {}

pub fn operation_of(req: &SimRequest) -> Result<String, Reply> {
    Ok(req.form_pairs().into_iter().find(|(k, _)| k == "Action").map(|(_, v)| v).unwrap_or_default())
}

pub fn error_reply(code: &str, message: &str, _request_id: &str) -> Reply {
    Reply::xml(400, format!("<ErrorResponse><Error><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"))
}

pub fn handle(ctx: &mut Ctx<'_>, operation: &str, _req: &SimRequest) -> Outcome {
    Outcome::read(error_reply("InvalidAction", operation, ctx.request_id))
}

pub fn advance(_world: &mut World, _now: DateTime<Utc>, _faults: &[Fault]) {}

pub fn seed_target_group(
    _world: &mut World,
    _arn: &str,
    _port: u16,
    _targets: &[String],
    _now: DateTime<Utc>,
) -> bool {
    false
}
