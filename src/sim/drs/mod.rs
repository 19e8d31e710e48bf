//! The simulated AWS Elastic Disaster Recovery service (restJson1, API version 2020-02-26).
//!
//! ```text
//!   POST /StartRecovery ─► operation_of ─► handle ─► require InitializeService ─► op (jobs.rs …)
//!                                                      │                          │
//!   error: modeled status + x-amzn-ErrorType + {__type, message, …}   Outcome::mutated(params)
//!
//!   every call: World::advance ─► drs::advance ─► jobs::advance (discrete events up to now)
//! ```
//!
//! Layout: `model.rs` (persisted state), `jobs.rs` (StartRecovery, TerminateRecoveryInstances,
//! job life on the simulated clock), `failback.rs` (ReverseReplication and the replication /
//! disconnect / delete operations), `snapshots.rs` (point-in-time snapshots, derived lazily),
//! `views.rs` (the wire JSON of servers, instances, jobs and configurations), `plans.rs` (native
//! recovery plans, their steps and executions), `launch_actions.rs` (post-launch actions and
//! their runs on launched instances), `tags.rs`.
//!
//! Invariants:
//! - Wire facts follow `reference/drs-api.md`: modeled success codes (202 StartRecovery, 204
//!   InitializeService / DeleteSourceServer, else 200), `x-amzn-RequestId` on every reply,
//!   timestamps with microseconds and `+00:00`, IDs `s-`/`drsjob-`/`pit-` + 17 hex.
//! - Everything time-driven is a pure function of the persisted state and the simulated clock:
//!   job events are materialised by [`advance`] at the times they were due (with jitter derived
//!   from the job ID), replication phases and snapshots are computed when read.

mod failback;
mod jobs;
mod launch_actions;
mod model;
mod plans;
mod snapshots;
mod tags;
mod templates;
mod views;

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Ctx, Fault, Outcome, Reply, SimRequest, World, scope_key};

pub use model::DrsRegion;

/// The DRS operations the simulator implements (everything else answers `unknownOperation`).
const IMPLEMENTED: &[&str] = &[
    "InitializeService",
    "DescribeSourceServers",
    "DescribeRecoverySnapshots",
    "StartRecovery",
    "DescribeJobs",
    "DescribeJobLogItems",
    "DescribeRecoveryInstances",
    "TerminateRecoveryInstances",
    "ReverseReplication",
    "StartReplication",
    "StopReplication",
    "DisconnectRecoveryInstance",
    "DisconnectSourceServer",
    "DeleteSourceServer",
    "DeleteRecoveryInstance",
    "GetLaunchConfiguration",
    "GetReplicationConfiguration",
    "UpdateReplicationConfiguration",
    "UpdateLaunchConfiguration",
    "CreateLaunchConfigurationTemplate",
    "DescribeLaunchConfigurationTemplates",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "CreateRecoveryPlan",
    "GetRecoveryPlan",
    "ListRecoveryPlans",
    "UpdateRecoveryPlan",
    "DeleteRecoveryPlan",
    "CreateRecoveryPlanStep",
    "ListRecoveryPlanSteps",
    "UpdateRecoveryPlanStep",
    "DeleteRecoveryPlanStep",
    "StartRecoveryPlanExecution",
    "ListRecoveryPlanExecutions",
    "GetRecoveryPlanExecution",
    "CancelRecoveryPlanExecution",
    "PutLaunchAction",
    "ListLaunchActions",
    "DeleteLaunchAction",
];

/// A modeled DRS error, answered with its HTTP status and `x-amzn-ErrorType`.
#[derive(Debug, thiserror::Error)]
pub enum DrsError {
    #[error("{message}")]
    Validation {
        message: String,
        reason: &'static str,
        fields: Vec<(String, String)>,
    },
    #[error("{message}")]
    Uninitialized { message: String },
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        quota_code: &'static str,
        resource_type: &'static str,
    },
    #[error("{message}")]
    NotFound {
        message: String,
        resource_id: String,
        resource_type: &'static str,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        resource_id: String,
        resource_type: &'static str,
    },
}

impl DrsError {
    /// A ValidationException naming one field (`reason: fieldValidationFailed`).
    pub fn field(name: &str, message: impl Into<String>) -> DrsError {
        let message = message.into();
        DrsError::Validation {
            message: format!("Invalid value for {name}: {message}"),
            reason: "fieldValidationFailed",
            fields: vec![(name.to_string(), message)],
        }
    }

    pub fn not_found(resource_type: &'static str, resource_id: &str, message: String) -> DrsError {
        DrsError::NotFound {
            message,
            resource_id: resource_id.to_string(),
            resource_type,
        }
    }

    pub fn conflict(resource_type: &'static str, resource_id: &str, message: String) -> DrsError {
        DrsError::Conflict {
            message,
            resource_id: resource_id.to_string(),
            resource_type,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            DrsError::Validation { .. } => "ValidationException",
            DrsError::Uninitialized { .. } => "UninitializedAccountException",
            DrsError::QuotaExceeded { .. } => "ServiceQuotaExceededException",
            DrsError::NotFound { .. } => "ResourceNotFoundException",
            DrsError::Conflict { .. } => "ConflictException",
        }
    }

    /// The wire reply: the shape's members beside `__type` and `message`.
    pub fn reply(&self, request_id: &str) -> Reply {
        let code = self.code();
        let mut body = json!({ "__type": code, "message": self.to_string() });
        match self {
            DrsError::Validation { reason, fields, .. } => {
                body["reason"] = json!(reason);
                if !fields.is_empty() {
                    body["fieldList"] = fields
                        .iter()
                        .map(|(name, message)| json!({"name": name, "message": message}))
                        .collect();
                }
            }
            DrsError::Uninitialized { .. } => {}
            DrsError::QuotaExceeded {
                quota_code,
                resource_type,
                ..
            } => {
                body["serviceCode"] = json!("drs");
                body["quotaCode"] = json!(quota_code);
                body["resourceType"] = json!(resource_type);
            }
            DrsError::NotFound {
                resource_id,
                resource_type,
                ..
            }
            | DrsError::Conflict {
                resource_id,
                resource_type,
                ..
            } => {
                body["resourceId"] = json!(resource_id);
                body["resourceType"] = json!(resource_type);
            }
        }
        with_error_headers(Reply::json(status_of(code), &body), code, request_id)
    }
}

/// The modeled HTTP status of a DRS error name.
fn status_of(code: &str) -> u16 {
    match code {
        "ServiceQuotaExceededException" => 402,
        "AccessDeniedException" => 403,
        "ResourceNotFoundException" => 404,
        "ConflictException" => 409,
        "ThrottlingException" => 429,
        "InternalServerException" => 500,
        // Not a modeled DRS error: what any AWS endpoint of a region that is down answers.
        "ServiceUnavailable" => 503,
        _ => 400,
    }
}

fn with_error_headers(reply: Reply, code: &str, request_id: &str) -> Reply {
    let reply = reply
        .with_header("x-amzn-ErrorType", code)
        .with_header("x-amzn-RequestId", request_id);
    // Both shapes model `retryAfterSeconds` as the `Retry-After` header; the SDK parses the
    // InternalServerException one as an integer, so it must be a bare number.
    if code == "ThrottlingException" || code == "InternalServerException" {
        reply.with_header("Retry-After", "1")
    } else {
        reply
    }
}

/// The reply of any modeled error by name (used for injected `api_error` faults).
pub fn error_reply(code: &str, message: &str, request_id: &str) -> Reply {
    let mut body = json!({ "__type": code, "message": message });
    if code == "ValidationException" {
        body["reason"] = json!("other");
    }
    if code == "ThrottlingException" || code == "ServiceQuotaExceededException" {
        body["serviceCode"] = json!("drs");
    }
    with_error_headers(Reply::json(status_of(code), &body), code, request_id)
}

/// Maps a request to its operation name: `POST /<Operation>` (and `GET /ListStagingAccounts`),
/// and the tag operations on `/tags/{resourceArn}` by method.
///
/// A request that names no operation gets a ValidationException with reason
/// `unknownOperation` (HTTP 400) rather than AWS's bare 404: it is a modeled error, so the SDK
/// and the AWS CLI both decode it and show the message saying what the simulator serves.
pub fn operation_of(req: &SimRequest) -> Result<String, Reply> {
    use axum::http::Method;
    if let Some(rest) = req.path.strip_prefix("/tags/")
        && !rest.is_empty()
    {
        match req.method {
            Method::POST => return Ok("TagResource".to_string()),
            Method::GET => return Ok("ListTagsForResource".to_string()),
            Method::DELETE => return Ok("UntagResource".to_string()),
            _ => {}
        }
    }
    let name = req.path.trim_start_matches('/');
    let looks_like_operation = name.len() > 1
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    let method_fits =
        req.method == Method::POST || (req.method == Method::GET && name == "ListStagingAccounts");
    if looks_like_operation && method_fits {
        return Ok(name.to_string());
    }
    Err(unknown_operation(
        &format!("{} {}", req.method, req.path),
        &uuid::Uuid::new_v4().to_string(),
    ))
}

fn unknown_operation(what: &str, request_id: &str) -> Reply {
    DrsError::Validation {
        message: format!(
            "The simulated DRS does not implement {what}. It implements: {}.",
            IMPLEMENTED.join(", ")
        ),
        reason: "unknownOperation",
        fields: Vec::new(),
    }
    .reply(request_id)
}

/// What a successful operation returns: the reply, and its parameters when it changed state.
pub(crate) struct Done {
    reply: Reply,
    mutation: Option<Value>,
}

impl Done {
    fn read(body: Value) -> Done {
        Done {
            reply: Reply::json(200, &body),
            mutation: None,
        }
    }

    /// A read with another success code: a repeated create answered from its `clientToken`.
    fn read_with(status: u16, body: Value) -> Done {
        Done {
            reply: Reply::json(status, &body),
            mutation: None,
        }
    }

    fn mutated(status: u16, body: Option<Value>, params: Value) -> Done {
        let reply = match body {
            Some(body) => Reply::json(status, &body),
            // No-output operations: an empty body, which every client reads as `{}`.
            None => Reply::new(status).with_header("content-type", "application/json"),
        };
        Done {
            reply,
            mutation: Some(params),
        }
    }
}

/// The account and region of the caller, and the key of its state.
pub(crate) struct Scope {
    pub account: String,
    pub region: String,
    pub key: String,
}

impl Scope {
    fn of(ctx: &Ctx<'_>) -> Scope {
        Scope::new(&ctx.caller.account, &ctx.caller.region)
    }

    pub fn new(account: &str, region: &str) -> Scope {
        Scope {
            account: account.to_string(),
            region: region.to_string(),
            key: scope_key(account, region),
        }
    }

    pub fn arn(&self, kind: &str, id: &str) -> String {
        arn(&self.account, &self.region, kind, id)
    }
}

pub fn handle(ctx: &mut Ctx<'_>, operation: &str, req: &SimRequest) -> Outcome {
    let request_id = ctx.request_id.to_string();
    match route(ctx, operation, req) {
        Ok(done) => {
            let reply = done.reply.with_header("x-amzn-RequestId", request_id);
            match done.mutation {
                Some(params) => Outcome::mutated(reply, params),
                None => Outcome::read(reply),
            }
        }
        Err(error) => Outcome::read(error.reply(&request_id)),
    }
}

fn route(ctx: &mut Ctx<'_>, operation: &str, req: &SimRequest) -> Result<Done, DrsError> {
    if !IMPLEMENTED.contains(&operation) {
        return Err(DrsError::Validation {
            message: format!(
                "The simulated DRS does not implement {operation}. It implements: {}.",
                IMPLEMENTED.join(", ")
            ),
            reason: "unknownOperation",
            fields: Vec::new(),
        });
    }
    let scope = Scope::of(ctx);
    match operation {
        "InitializeService" => {
            // Idempotent: a repeated call changes nothing, so it is not recorded as a mutation.
            if is_initialized(ctx.world, &scope.account, &scope.region) {
                return Ok(Done {
                    reply: Reply::new(204).with_header("content-type", "application/json"),
                    mutation: None,
                });
            }
            initialize(ctx.world, &scope.account, &scope.region, ctx.now);
            return Ok(Done::mutated(204, None, json!({})));
        }
        // The tag operations do not model UninitializedAccountException.
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            return tags::handle(ctx, operation, req);
        }
        _ => {}
    }
    if !is_initialized(ctx.world, &scope.account, &scope.region) {
        return Err(uninitialized(&scope.account, &scope.region));
    }
    let body = parse_body(req)?;
    match operation {
        "DescribeSourceServers" => views::describe_source_servers(ctx, &scope, body),
        "DescribeRecoveryInstances" => views::describe_recovery_instances(ctx, &scope, body),
        "GetLaunchConfiguration" => views::get_launch_configuration(ctx, &scope, body),
        "GetReplicationConfiguration" => views::get_replication_configuration(ctx, &scope, body),
        "UpdateReplicationConfiguration" => {
            views::update_replication_configuration(ctx, &scope, body)
        }
        "UpdateLaunchConfiguration" => views::update_launch_configuration(ctx, &scope, body),
        "CreateLaunchConfigurationTemplate" => templates::create(ctx, &scope, body),
        "DescribeLaunchConfigurationTemplates" => templates::describe(ctx, &scope, body),
        "DescribeRecoverySnapshots" => snapshots::describe(ctx, &scope, body),
        "StartRecovery" => jobs::start_recovery(ctx, &scope, body),
        "TerminateRecoveryInstances" => jobs::terminate_recovery_instances(ctx, &scope, body),
        "DescribeJobs" => jobs::describe_jobs(ctx, &scope, body),
        "DescribeJobLogItems" => jobs::describe_job_log_items(ctx, &scope, body),
        "ReverseReplication" => failback::reverse_replication(ctx, &scope, body),
        "StartReplication" => failback::start_replication(ctx, &scope, body),
        "StopReplication" => failback::stop_replication(ctx, &scope, body),
        "DisconnectSourceServer" => failback::disconnect_source_server(ctx, &scope, body),
        "DeleteSourceServer" => failback::delete_source_server(ctx, &scope, body),
        "DisconnectRecoveryInstance" => failback::disconnect_recovery_instance(ctx, &scope, body),
        "DeleteRecoveryInstance" => failback::delete_recovery_instance(ctx, &scope, body),
        "CreateRecoveryPlan" => plans::create_plan(ctx, &scope, body),
        "GetRecoveryPlan" => plans::get_plan(ctx, &scope, body),
        "ListRecoveryPlans" => plans::list_plans(ctx, &scope, body),
        "UpdateRecoveryPlan" => plans::update_plan(ctx, &scope, body),
        "DeleteRecoveryPlan" => plans::delete_plan(ctx, &scope, body),
        "CreateRecoveryPlanStep" => plans::create_step(ctx, &scope, body),
        "ListRecoveryPlanSteps" => plans::list_steps(ctx, &scope, body),
        "UpdateRecoveryPlanStep" => plans::update_step(ctx, &scope, body),
        "DeleteRecoveryPlanStep" => plans::delete_step(ctx, &scope, body),
        "StartRecoveryPlanExecution" => plans::start_execution(ctx, &scope, body),
        "ListRecoveryPlanExecutions" => plans::list_executions(ctx, &scope, body),
        "GetRecoveryPlanExecution" => plans::get_execution(ctx, &scope, body),
        "CancelRecoveryPlanExecution" => plans::cancel_execution(ctx, &scope, body),
        "PutLaunchAction" => launch_actions::put(ctx, &scope, body),
        "ListLaunchActions" => launch_actions::list(ctx, &scope, body),
        "DeleteLaunchAction" => launch_actions::delete(ctx, &scope, body),
        other => unreachable!("{other} is listed in IMPLEMENTED but not routed"),
    }
}

pub(crate) fn uninitialized(account: &str, region: &str) -> DrsError {
    DrsError::Uninitialized {
        message: format!(
            "Account {account} is not initialized for Elastic Disaster Recovery in {region}. \
             Call InitializeService first (aws drs initialize-service --region {region})."
        ),
    }
}

/// The JSON body of a request; an empty body reads as `{}` (InitializeService sends none).
fn parse_body(req: &SimRequest) -> Result<Value, DrsError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_slice(&req.body).map_err(|e| DrsError::Validation {
        message: format!("The request body is not valid JSON: {e}"),
        reason: "cannotParse",
        fields: Vec::new(),
    })?;
    if !value.is_object() {
        return Err(DrsError::Validation {
            message: "The request body must be a JSON object".to_string(),
            reason: "cannotParse",
            fields: Vec::new(),
        });
    }
    Ok(value)
}

/// Decodes a request body into an operation's input type.
pub(crate) fn input<T: DeserializeOwned>(body: &Value) -> Result<T, DrsError> {
    T::deserialize(body).map_err(|e| DrsError::Validation {
        message: format!("The request body does not match the operation's input: {e}"),
        reason: "cannotParse",
        fields: Vec::new(),
    })
}

/// Brings every DRS job up to `now` (see `jobs.rs`).
pub fn advance(world: &mut World, now: DateTime<Utc>, faults: &[Fault]) {
    jobs::advance(world, now, faults);
    launch_actions::advance(world, now, faults);
}

/// Marks DRS initialized in an account and region (idempotent).
pub fn initialize(world: &mut World, account: &str, region: &str, _now: DateTime<Utc>) {
    world
        .drs
        .entry(scope_key(account, region))
        .or_default()
        .initialized = true;
}

/// Whether `InitializeService` ran in the account and region.
pub fn is_initialized(world: &World, account: &str, region: &str) -> bool {
    world
        .drs
        .get(&scope_key(account, region))
        .is_some_and(|r| r.initialized)
}

/// Creates the source server B1 replicating `origin` (A1) into `account`/`region`, healthy
/// and CONTINUOUS, with point-in-time snapshots from one day before now. Returns whether it
/// created the server (false when it existed already).
pub fn seed_source_server(
    world: &mut World,
    now: DateTime<Utc>,
    account: &str,
    region: &str,
    source_server_id: &str,
    origin: &super::ec2::Instance,
) -> bool {
    let drs = world.drs.entry(scope_key(account, region)).or_default();
    if drs.source_servers.contains_key(source_server_id) {
        return false;
    }
    let added_at = origin.launched_at.max(now - Duration::days(30));
    let server = model::SourceServer {
        id: source_server_id.to_string(),
        added_at,
        origin: model::Origin {
            account: origin.account.clone(),
            region: origin.region.clone(),
            availability_zone: format!("{}a", origin.region),
            instance_id: origin.instance_id.clone(),
            private_ip: origin.private_ip.clone(),
            hostname: origin.hostname.clone(),
        },
        direction: model::Direction::Failover,
        replication: model::Replication::Active {
            since: added_at,
            initiating_secs: 0,
            sync_secs: 0,
        },
        pits_from: Some(now - Duration::days(1)),
        recovery_instance_id: None,
        last_launch: None,
        reversed_arn: None,
        tags: Default::default(),
        ebs_encryption: None,
        ebs_encryption_key_arn: None,
        launch_settings: Default::default(),
        replication_settings: Default::default(),
    };
    drs.source_servers
        .insert(source_server_id.to_string(), server);
    ensure_launch_template(world, account, region, source_server_id, now);
    true
}

/// Creates the EC2 launch template of a source server (DRS creates one per server, in the
/// subnet of its account and region) when it does not exist; returns its ID.
pub fn ensure_launch_template(
    world: &mut World,
    account: &str,
    region: &str,
    source_server_id: &str,
    now: DateTime<Utc>,
) -> String {
    let scope = Scope::new(account, region);
    let id = views::launch_template_id(&scope, source_server_id);
    let subnet = world.ec2.default_subnet(account, region).subnet_id.clone();
    world.ec2.ensure_launch_template(
        &id,
        &format!("drs-{source_server_id}"),
        account,
        region,
        &subnet,
        now,
    );
    id
}

// ---------------------------------------------------------------------------------------------
// Small shared helpers: ARNs, deterministic IDs and jitter, validation, time, pagination.

pub(crate) fn arn(account: &str, region: &str, kind: &str, id: &str) -> String {
    format!("arn:aws:drs:{region}:{account}:{kind}/{id}")
}

/// A DRS ARN taken apart: (account, region, kind, id).
pub(crate) fn parse_arn(arn: &str) -> Option<(String, String, String, String)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("drs"), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let (kind, id) = resource.split_once('/')?;
    Some((account.into(), region.into(), kind.into(), id.into()))
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"/");
    }
    hasher.finalize().into()
}

/// `len` lowercase hex digits derived from `parts` (IDs that must replay identically).
pub(crate) fn hex_id(parts: &[&str], len: usize) -> String {
    hex::encode(digest(parts))[..len].to_string()
}

/// A whole number of seconds in `lo..=hi`, derived from `parts`: the per-server jitter of a
/// job, the same on every replay of the state.
pub(crate) fn jitter(parts: &[&str], lo: i64, hi: i64) -> i64 {
    let d = digest(parts);
    let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    lo + (n % (hi - lo + 1) as u64) as i64
}

/// Checks an ID of the form `<prefix>` + 17 alphanumerics (`s-`, `drsjob-`, `pit-`).
pub(crate) fn check_id(field: &str, value: &str, prefix: &str) -> Result<(), DrsError> {
    let ok = value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 17 && rest.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(DrsError::field(
            field,
            format!("{value:?} does not match the pattern {prefix}[0-9a-zA-Z]{{17}}"),
        ))
    }
}

/// Checks an EC2 instance ID (`i-[0-9a-fA-F]{8,}`, 10..19 characters; recovery instance IDs).
pub(crate) fn check_instance_id(field: &str, value: &str) -> Result<(), DrsError> {
    let ok = (10..=19).contains(&value.len())
        && value
            .strip_prefix("i-")
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(DrsError::field(
            field,
            format!(
                "{value:?} does not match the pattern i-[0-9a-fA-F]{{8,}} (10 to 19 characters)"
            ),
        ))
    }
}

/// Checks the length of a list member.
pub(crate) fn check_count(field: &str, len: usize, min: usize, max: usize) -> Result<(), DrsError> {
    if len < min || len > max {
        return Err(DrsError::field(
            field,
            format!("has {len} members; it must have between {min} and {max}"),
        ));
    }
    Ok(())
}

/// Parses an ISO 8601 timestamp as clients send it (`Z` or `+00:00`).
/// A request's ISO8601DatetimeString. The model's pattern ends in `Z` (UTC, optional
/// fraction; 19 to 32 characters): the `+00:00` form the service itself answers with is
/// refused in requests, as the real service's validation does.
pub(crate) fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, DrsError> {
    let invalid = || {
        DrsError::field(
            field,
            format!(
                "{value:?} does not match the pattern of an ISO8601DatetimeString (UTC with a trailing Z, e.g. 2026-11-27T10:00:00Z)"
            ),
        )
    };
    if !value.ends_with('Z') || !(19..=32).contains(&value.len()) {
        return Err(invalid());
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid())
}

/// An ISO 8601 duration as DRS sends them: `P0D`, `PT5M`, `P1DT2H3M4S`.
pub(crate) fn iso_duration(d: Duration) -> String {
    let total = d.num_seconds().max(0);
    if total == 0 {
        return "P0D".to_string();
    }
    let (days, rest) = (total / 86_400, total % 86_400);
    let (hours, minutes, seconds) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if rest > 0 {
        out.push('T');
        if hours > 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if seconds > 0 {
            out.push_str(&format!("{seconds}S"));
        }
    }
    out
}

/// The page of a list to return: items `start..end`, and the token of the next page (none on
/// the last page). Tokens are the key of the next page's first item, so they never repeat.
pub(crate) struct Page {
    pub start: usize,
    pub end: usize,
    pub next_token: Option<String>,
}

/// Pages answered when the caller sets no `maxResults`.
const DEFAULT_PAGE_SIZE: usize = 1000;

pub(crate) fn page(
    keys: &[String],
    max_results: Option<i64>,
    next_token: Option<&str>,
) -> Result<Page, DrsError> {
    let size = match max_results {
        None => DEFAULT_PAGE_SIZE,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            return Err(DrsError::field(
                "maxResults",
                format!("{n} is less than the minimum of 1"),
            ));
        }
    };
    let start = match next_token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => keys.iter().position(|k| k == token).ok_or_else(|| {
            DrsError::field(
                "nextToken",
                "is not a token this list returned (or the list changed); start again without it",
            )
        })?,
    };
    let end = (start + size).min(keys.len());
    Ok(Page {
        start,
        end,
        next_token: keys.get(end).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_real_service() {
        assert_eq!(iso_duration(Duration::zero()), "P0D");
        assert_eq!(iso_duration(Duration::minutes(5)), "PT5M");
        assert_eq!(iso_duration(Duration::seconds(86_400 + 3723)), "P1DT1H2M3S");
        assert_eq!(iso_duration(Duration::days(2)), "P2D");
    }

    #[test]
    fn jitter_is_deterministic_and_in_range() {
        for i in 0..200 {
            let key = format!("drsjob-{i:017}");
            let j = jitter(&[&key, "s-1", "snapshot"], 20, 40);
            assert!((20..=40).contains(&j));
            assert_eq!(j, jitter(&[&key, "s-1", "snapshot"], 20, 40));
        }
    }

    #[test]
    fn arns_round_trip() {
        let a = arn(
            "111111111111",
            "us-east-1",
            "source-server",
            "s-1234567890abcdef0",
        );
        assert_eq!(
            parse_arn(&a),
            Some((
                "111111111111".into(),
                "us-east-1".into(),
                "source-server".into(),
                "s-1234567890abcdef0".into()
            ))
        );
        assert_eq!(parse_arn("arn:aws:ec2:us-east-1:1:instance/i-1"), None);
    }

    #[test]
    fn pages_end_without_a_token_and_resume_by_key() {
        let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
        let first = page(&keys, Some(2), None).unwrap();
        assert_eq!((first.start, first.end), (0, 2));
        assert_eq!(first.next_token.as_deref(), Some("k2"));
        let last = page(&keys, Some(3), Some("k2")).unwrap();
        assert_eq!((last.start, last.end), (2, 5));
        assert!(last.next_token.is_none());
        assert!(page(&keys, Some(0), None).is_err());
        assert!(page(&keys, None, Some("nope")).is_err());
    }

    #[test]
    fn ids_are_checked_against_the_model_patterns() {
        assert!(check_id("sourceServerID", "s-1234567890abcdef0", "s-").is_ok());
        assert!(check_id("sourceServerID", "s-123", "s-").is_err());
        assert!(check_instance_id("recoveryInstanceID", "i-0123456789abcdef0").is_ok());
        assert!(check_instance_id("recoveryInstanceID", "i-xyz").is_err());
    }
}
