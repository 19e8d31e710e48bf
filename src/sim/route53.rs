//! Simulated Route 53 (restXml). PLACEHOLDER: being written.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Ctx, Fault, Outcome, Reply, SimRequest, World};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Route53Account {}

pub fn operation_of(req: &SimRequest) -> Result<String, Reply> {
    Ok(req.path.clone())
}

pub fn error_reply(code: &str, message: &str, _request_id: &str) -> Reply {
    Reply::xml(400, format!("<ErrorResponse><Error><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"))
}

pub fn handle(ctx: &mut Ctx<'_>, operation: &str, _req: &SimRequest) -> Outcome {
    Outcome::read(error_reply("InvalidInput", operation, ctx.request_id))
}

pub fn advance(_world: &mut World, _now: DateTime<Utc>, _faults: &[Fault]) {}

pub fn seed_zone(_world: &mut World, _account: &str, _zone_id: &str, _zone_name: &str, _now: DateTime<Utc>) -> bool {
    false
}

pub fn seed_record(
    _world: &mut World,
    _account: &str,
    _zone_id: &str,
    _name: &str,
    _record_type: &str,
    _ttl: u32,
    _values: &[String],
) -> bool {
    false
}

pub fn seed_alias_record(
    _world: &mut World,
    _account: &str,
    _zone_id: &str,
    _name: &str,
    _record_type: &str,
    _dns_name: &str,
    _alias_zone_id: &str,
) -> bool {
    false
}
