//! Simulated ELBv2 (awsQuery: form-encoded `Action=...&Version=2015-12-01`, XML replies).
//!
//! State is per (account, region). Served actions: DescribeLoadBalancers, DescribeTargetGroups,
//! CreateTargetGroup, RegisterTargets, DeregisterTargets, DescribeTargetHealth. Target health
//! follows [`model::health_of`]: `initial` for [`model::REGISTRATION`] after registration, then
//! `healthy` or `unhealthy`; `draining` for [`model::DRAINING`] after deregistration, then gone.
//! Errors are `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`
//! with status 400 (5xx for the server-side codes), as the awsQuery protocol sends them.

pub mod model;

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub use model::ElbRegion;
use model::{LoadBalancer, Target, TargetGroup, TargetType};

use super::xml::XmlWriter;
use super::{Ctx, Fault, Outcome, Reply, SimRequest, World, scope_key};

const NAMESPACE: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
const VERSION: &str = "2015-12-01";

/// The `Action` of an awsQuery request (form body, or query string for GET).
pub fn operation_of(req: &SimRequest) -> Result<String, Reply> {
    let params = Params::of(req);
    match params.get("Action") {
        Some(action) if !action.is_empty() => Ok(action.to_string()),
        _ => Err(error_reply(
            "MissingAction",
            "The request must contain the parameter Action (hint: awsQuery requests send Action=...&Version=2015-12-01)",
            "00000000-0000-0000-0000-000000000000",
        )),
    }
}

/// An ELBv2 error in the awsQuery shape.
pub fn error_reply(code: &str, message: &str, request_id: &str) -> Reply {
    let status = match code {
        "InternalFailure" | "InternalError" => 500,
        "ServiceUnavailable" => 503,
        "AccessDenied" => 403,
        _ => 400,
    };
    let mut w = XmlWriter::document("ErrorResponse", NAMESPACE);
    w.open("Error")
        .leaf("Type", if status >= 500 { "Receiver" } else { "Sender" })
        .leaf("Code", code)
        .leaf("Message", message)
        .close()
        .leaf("RequestId", request_id);
    let reply = Reply::xml(status, w.finish()).with_header("x-amzn-RequestId", request_id);
    // A throttled caller is told when to come back, as AWS's throttling answers do.
    if matches!(
        code,
        "Throttling" | "ThrottlingException" | "PriorRequestNotComplete"
    ) {
        reply.with_header("Retry-After", "1")
    } else {
        reply
    }
}

/// The decoded parameters of an awsQuery request.
struct Params(Vec<(String, String)>);

impl Params {
    fn of(req: &SimRequest) -> Params {
        Params(req.query_params())
    }

    fn get(&self, key: &str) -> Option<&str> {
        crate::sim::wire::param(&self.0, key)
    }

    fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key).filter(|v| !v.is_empty()).ok_or_else(|| {
            let member = lower_first(key);
            ApiError::validation(format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ))
        })
    }

    /// `Key.member.N` values, in N order.
    fn list(&self, key: &str) -> Vec<String> {
        crate::sim::wire::numbered(&self.0, &format!("{key}.member."))
    }

    /// `Key.member.N.Field` structures, in N order.
    fn structs(&self, key: &str) -> Vec<BTreeMap<String, String>> {
        let prefix = format!("{key}.member.");
        let mut items: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(&prefix) else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse() else { continue };
            items
                .entry(n)
                .or_default()
                .insert(field.to_string(), v.clone());
        }
        items.into_values().collect()
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// A modeled error of one call.
struct ApiError {
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
    fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new("ValidationError", message)
    }
}

type Handled = Result<Outcome, ApiError>;

/// Serves one ELBv2 call.
pub fn handle(ctx: &mut Ctx<'_>, operation: &str, req: &SimRequest) -> Outcome {
    let params = Params::of(req);
    if let Some(version) = params.get("Version")
        && version != VERSION
    {
        return Outcome::read(error_reply(
            "InvalidAction",
            &format!("Version {version} is not served (hint: ELBv2 is Version={VERSION})"),
            ctx.request_id,
        ));
    }
    let result = match operation {
        "DescribeLoadBalancers" => describe_load_balancers(ctx, &params),
        "DescribeTargetGroups" => describe_target_groups(ctx, &params),
        "CreateTargetGroup" => create_target_group(ctx, &params),
        "RegisterTargets" => register_targets(ctx, &params),
        "DeregisterTargets" => deregister_targets(ctx, &params),
        "DescribeTargetHealth" => describe_target_health(ctx, &params),
        other => Err(ApiError::new(
            "InvalidAction",
            format!("Could not find operation {other} for version {VERSION}"),
        )),
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) => Outcome::read(error_reply(e.code, &e.message, ctx.request_id)),
    }
}

fn region<'w>(ctx: &'w mut Ctx<'_>) -> &'w mut ElbRegion {
    ctx.world
        .elbv2
        .entry(scope_key(&ctx.caller.account, &ctx.caller.region))
        .or_default()
}

/// Starts `<{Action}Response><{Action}Result>`.
fn response(action: &'static str, result: &'static str) -> XmlWriter {
    let mut w = XmlWriter::document(action, NAMESPACE);
    w.open(result);
    w
}

/// Closes the result, adds ResponseMetadata and builds the reply.
fn finish(mut w: XmlWriter, request_id: &str) -> Reply {
    w.close();
    w.open("ResponseMetadata")
        .leaf("RequestId", request_id)
        .close();
    Reply::xml(200, w.finish()).with_header("x-amzn-RequestId", request_id)
}

/// Paging over names or ARNs: the marker is the key of the first item of the next page.
fn page<'a, T>(
    items: Vec<(&'a String, &'a T)>,
    params: &Params,
) -> Result<(Vec<&'a T>, Option<String>), ApiError> {
    let size = match params.get("PageSize") {
        None => 400,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=400).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{text}' at 'pageSize' failed to satisfy constraint: Member must have value between 1 and 400"
                )));
            }
        },
    };
    let marker = params.get("Marker");
    let mut rest: Vec<(&String, &T)> = items
        .into_iter()
        .filter(|(key, _)| marker.is_none_or(|m| key.as_str() >= m))
        .collect();
    let next = rest.get(size).map(|(key, _)| (*key).clone());
    rest.truncate(size);
    Ok((rest.into_iter().map(|(_, v)| v).collect(), next))
}

fn describe_load_balancers(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let arns = params.list("LoadBalancerArns");
    let names = params.list("Names");
    let request_id = ctx.request_id.to_string();
    let region = region(ctx);
    let selected: Vec<(&String, &LoadBalancer)> = region
        .load_balancers
        .iter()
        .filter(|(arn, lb)| {
            (arns.is_empty() || arns.contains(arn))
                && (names.is_empty() || names.contains(&lb.name))
        })
        .collect();
    let missing_arn = arns.iter().any(|a| !region.load_balancers.contains_key(a));
    let missing_name = names
        .iter()
        .any(|n| !region.load_balancers.values().any(|lb| &lb.name == n));
    if missing_arn || missing_name {
        return Err(ApiError::new(
            "LoadBalancerNotFound",
            "One or more load balancers not found",
        ));
    }
    let (lbs, next) = page(selected, params)?;
    let mut w = response(
        "DescribeLoadBalancersResponse",
        "DescribeLoadBalancersResult",
    );
    w.open("LoadBalancers");
    for lb in lbs {
        write_load_balancer(&mut w, lb);
    }
    w.close();
    w.leaf_opt("NextMarker", next);
    Ok(Outcome::read(finish(w, &request_id)))
}

fn describe_target_groups(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let arns = params.list("TargetGroupArns");
    let names = params.list("Names");
    let lb_arn = params.get("LoadBalancerArn").map(str::to_string);
    let request_id = ctx.request_id.to_string();
    let region = region(ctx);
    if let Some(lb) = &lb_arn
        && !region.load_balancers.contains_key(lb)
    {
        return Err(ApiError::new(
            "LoadBalancerNotFound",
            "One or more load balancers not found",
        ));
    }
    for arn in &arns {
        if model::parse_arn(arn, "targetgroup").is_none() {
            return Err(ApiError::validation(format!(
                "'{arn}' is not a valid target group ARN"
            )));
        }
    }
    let missing_arn = arns.iter().any(|a| !region.target_groups.contains_key(a));
    let missing_name = names
        .iter()
        .any(|n| !region.target_groups.values().any(|g| &g.name == n));
    if missing_arn || missing_name {
        return Err(ApiError::new(
            "TargetGroupNotFound",
            "One or more target groups not found",
        ));
    }
    let selected: Vec<(&String, &TargetGroup)> = region
        .target_groups
        .iter()
        .filter(|(arn, g)| {
            (arns.is_empty() || arns.contains(arn))
                && (names.is_empty() || names.contains(&g.name))
                && lb_arn
                    .as_ref()
                    .is_none_or(|lb| g.load_balancer_arns.contains(lb))
        })
        .collect();
    let (groups, next) = page(selected, params)?;
    let mut w = response("DescribeTargetGroupsResponse", "DescribeTargetGroupsResult");
    w.open("TargetGroups");
    for group in groups {
        write_target_group(&mut w, group);
    }
    w.close();
    w.leaf_opt("NextMarker", next);
    Ok(Outcome::read(finish(w, &request_id)))
}

fn create_target_group(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let name = params.required("Name")?.to_string();
    if name.len() > 32
        || name.starts_with('-')
        || name.ends_with('-')
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::validation(format!(
            "Target group name '{name}' can have a maximum of 32 characters, can contain only alphanumeric characters or hyphens, and must not begin or end with a hyphen"
        )));
    }
    let target_type = match params.get("TargetType").unwrap_or("instance") {
        "instance" => TargetType::Instance,
        "ip" => TargetType::Ip,
        other => {
            return Err(ApiError::validation(format!(
                "The simulator serves target types 'instance' and 'ip', not '{other}'"
            )));
        }
    };
    let protocol = params.required("Protocol")?.to_string();
    if !["HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP", "GENEVE"].contains(&protocol.as_str()) {
        return Err(ApiError::validation(format!(
            "Protocol '{protocol}' is not valid"
        )));
    }
    let port = parse_port(params.required("Port")?)?;
    let vpc_id = params.required("VpcId")?.to_string();
    let health_check_path = params.get("HealthCheckPath").unwrap_or("/").to_string();
    let suffix = super::wire::random_hex(ctx.rng, 16);
    let (account, region_name) = (ctx.caller.account.clone(), ctx.caller.region.clone());
    let request_id = ctx.request_id.to_string();
    let region = region(ctx);
    if let Some(existing) = region.target_groups.values().find(|g| g.name == name) {
        let same = existing.protocol == protocol
            && existing.port == port
            && existing.vpc_id == vpc_id
            && existing.target_type == target_type;
        if !same {
            return Err(ApiError::new(
                "DuplicateTargetGroupName",
                "A target group with the same name exists, but with different settings",
            ));
        }
        // Creating an identical group again returns the existing one (CreateTargetGroup is
        // idempotent in AWS).
        let mut w = response("CreateTargetGroupResponse", "CreateTargetGroupResult");
        w.open("TargetGroups");
        write_target_group(&mut w, existing);
        w.close();
        return Ok(Outcome::read(finish(w, &request_id)));
    }
    let group = TargetGroup {
        arn: format!(
            "arn:aws:elasticloadbalancing:{region_name}:{account}:targetgroup/{name}/{suffix}"
        ),
        name,
        protocol,
        port,
        vpc_id,
        target_type,
        health_check_path,
        load_balancer_arns: Vec::new(),
        targets: Vec::new(),
    };
    let mut w = response("CreateTargetGroupResponse", "CreateTargetGroupResult");
    w.open("TargetGroups");
    write_target_group(&mut w, &group);
    w.close();
    let params_json = json!({
        "target_group_arn": group.arn, "name": group.name, "protocol": group.protocol,
        "port": group.port, "vpc_id": group.vpc_id, "target_type": group.target_type.as_str(),
    });
    region.target_groups.insert(group.arn.clone(), group);
    Ok(Outcome::mutated(finish(w, &request_id), params_json))
}

fn parse_port(text: &str) -> Result<u16, ApiError> {
    match text.parse::<u16>() {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{text}' at 'port' failed to satisfy constraint: Member must have value between 1 and 65535"
        ))),
    }
}

/// A target as the request names it: an ID and an optional port.
struct TargetRef {
    id: String,
    port: Option<u16>,
}

fn parse_targets(params: &Params) -> Result<Vec<TargetRef>, ApiError> {
    params
        .structs("Targets")
        .into_iter()
        .map(|fields| {
            let id = fields.get("Id").cloned().filter(|id| !id.is_empty()).ok_or_else(|| {
                ApiError::validation("1 validation error detected: Value null at 'targets.member.id' failed to satisfy constraint: Member must not be null")
            })?;
            let port = fields.get("Port").map(|p| parse_port(p)).transpose()?;
            Ok(TargetRef { id, port })
        })
        .collect()
}

/// The group named by `TargetGroupArn`, with the errors AWS answers for a bad or unknown ARN.
fn group_arn(params: &Params) -> Result<String, ApiError> {
    let arn = params.required("TargetGroupArn")?;
    if model::parse_arn(arn, "targetgroup").is_none() {
        return Err(ApiError::validation(format!(
            "'{arn}' is not a valid target group ARN"
        )));
    }
    Ok(arn.to_string())
}

fn group_not_found(arn: &str) -> ApiError {
    ApiError::new(
        "TargetGroupNotFound",
        format!("Target groups '{arn}' not found"),
    )
}

fn register_targets(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let arn = group_arn(params)?;
    let targets = parse_targets(params)?;
    if targets.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'targets' failed to satisfy constraint: Member must not be null",
        ));
    }
    let now = ctx.now;
    let (account, region_name) = (ctx.caller.account.clone(), ctx.caller.region.clone());
    let request_id = ctx.request_id.to_string();
    let ec2 = ctx.world.ec2.clone();
    let group = region(ctx)
        .target_groups
        .get_mut(&arn)
        .ok_or_else(|| group_not_found(&arn))?;
    validate_targets(group, &targets, &ec2, &account, &region_name)?;
    for target in &targets {
        let port = target.port.unwrap_or(group.port);
        match group
            .targets
            .iter_mut()
            .find(|t| t.id == target.id && t.port == port)
        {
            // Registering a draining target registers it again; a registered one is left as is.
            Some(existing) if existing.deregistered_at.is_some() => {
                existing.registered_at = now;
                existing.deregistered_at = None;
            }
            Some(_) => {}
            None => group.targets.push(Target {
                id: target.id.clone(),
                port,
                registered_at: now,
                deregistered_at: None,
            }),
        }
    }
    let w = response("RegisterTargetsResponse", "RegisterTargetsResult");
    let mutation = json!({ "target_group_arn": arn, "targets": targets_json(&targets) });
    Ok(Outcome::mutated(finish(w, &request_id), mutation))
}

/// Checks every target before registering any, so that a bad one registers nothing.
fn validate_targets(
    group: &TargetGroup,
    targets: &[TargetRef],
    ec2: &super::ec2::Ec2,
    account: &str,
    region: &str,
) -> Result<(), ApiError> {
    let mut not_running = Vec::new();
    for target in targets {
        match group.target_type {
            TargetType::Instance => {
                let instance = ec2
                    .get(&target.id)
                    .filter(|i| i.account == account && i.region == region);
                match instance {
                    None => {
                        return Err(ApiError::new(
                            "InvalidTarget",
                            format!(
                                "The specified target does not exist or is not in the same VPC as the target group: '{}'",
                                target.id
                            ),
                        ));
                    }
                    // "The specified target does not exist or is not in the same VPC as
                    // the target group" (ELBv2 API Reference, RegisterTargets, InvalidTarget):
                    // an instance target must be in the group's VPC.
                    Some(i) if i.vpc_id != group.vpc_id => {
                        return Err(ApiError::new(
                            "InvalidTarget",
                            format!(
                                "The specified target does not exist or is not in the same VPC as the target group: '{}' is in {}, the target group in {}",
                                target.id, i.vpc_id, group.vpc_id
                            ),
                        ));
                    }
                    Some(i)
                        if !matches!(
                            i.state,
                            super::ec2::InstanceState::Running | super::ec2::InstanceState::Pending
                        ) =>
                    {
                        not_running.push(format!("'{}'", target.id));
                    }
                    Some(_) => {}
                }
            }
            TargetType::Ip => {
                if !model::is_ipv4(&target.id) {
                    return Err(ApiError::validation(format!(
                        "The IP address '{}' is not a valid IPv4 address (hint: this target group has target type 'ip')",
                        target.id
                    )));
                }
            }
        }
    }
    if !not_running.is_empty() {
        return Err(ApiError::new(
            "InvalidTarget",
            format!(
                "The following targets are not in a running state and cannot be registered: {}",
                not_running.join(", ")
            ),
        ));
    }
    Ok(())
}

fn targets_json(targets: &[TargetRef]) -> serde_json::Value {
    targets
        .iter()
        .map(|t| json!({ "id": t.id, "port": t.port }))
        .collect()
}

fn deregister_targets(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let arn = group_arn(params)?;
    let targets = parse_targets(params)?;
    if targets.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'targets' failed to satisfy constraint: Member must not be null",
        ));
    }
    let now = ctx.now;
    let request_id = ctx.request_id.to_string();
    let group = region(ctx)
        .target_groups
        .get_mut(&arn)
        .ok_or_else(|| group_not_found(&arn))?;
    // Deregistering a target that is not registered (or already draining) changes nothing,
    // which keeps retries and compensations safe.
    for target in &targets {
        for registered in group.targets.iter_mut().filter(|t| {
            t.id == target.id
                && target.port.is_none_or(|p| p == t.port)
                && t.deregistered_at.is_none()
        }) {
            registered.deregistered_at = Some(now);
        }
    }
    let w = response("DeregisterTargetsResponse", "DeregisterTargetsResult");
    let mutation = json!({ "target_group_arn": arn, "targets": targets_json(&targets) });
    Ok(Outcome::mutated(finish(w, &request_id), mutation))
}

fn describe_target_health(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let arn = group_arn(params)?;
    let asked = parse_targets(params)?;
    let now = ctx.now;
    let (account, region_name) = (ctx.caller.account.clone(), ctx.caller.region.clone());
    let request_id = ctx.request_id.to_string();
    let group = ctx
        .world
        .elbv2
        .get(&scope_key(&account, &region_name))
        .and_then(|r| r.target_groups.get(&arn))
        .ok_or_else(|| group_not_found(&arn))?;
    let health = |t: &Target| {
        model::health_of(
            group,
            &account,
            &region_name,
            t,
            &ctx.world.ec2,
            ctx.faults,
            now,
        )
    };
    let rows: Vec<(String, u16, model::Health)> = if asked.is_empty() {
        group
            .targets
            .iter()
            .map(|t| (t.id.clone(), t.port, health(t)))
            .collect()
    } else {
        asked
            .iter()
            .map(|a| {
                let port = a.port.unwrap_or(group.port);
                match group
                    .targets
                    .iter()
                    .find(|t| t.id == a.id && t.port == port)
                {
                    Some(t) => (t.id.clone(), t.port, health(t)),
                    None => (a.id.clone(), port, model::Health::not_registered()),
                }
            })
            .collect()
    };
    let mut w = response("DescribeTargetHealthResponse", "DescribeTargetHealthResult");
    w.open("TargetHealthDescriptions");
    for (id, port, health) in rows {
        w.open("member")
            .open("Target")
            .leaf("Id", &id)
            .leaf("Port", port.to_string())
            .close()
            .leaf("HealthCheckPort", port.to_string())
            .open("TargetHealth")
            .leaf("State", health.state);
        w.leaf_opt("Reason", health.reason);
        w.leaf_opt("Description", health.description);
        w.close().close();
    }
    w.close();
    Ok(Outcome::read(finish(w, &request_id)))
}

fn write_load_balancer(w: &mut XmlWriter, lb: &LoadBalancer) {
    w.open("member")
        .leaf("LoadBalancerArn", &lb.arn)
        .leaf("DNSName", &lb.dns_name)
        .leaf("CanonicalHostedZoneId", &lb.canonical_hosted_zone_id)
        .leaf("CreatedTime", super::wire::xml_timestamp(lb.created_at))
        .leaf("LoadBalancerName", &lb.name)
        .leaf("Scheme", "internet-facing")
        .leaf("VpcId", &lb.vpc_id)
        .open("State")
        .leaf("Code", "active")
        .close()
        .leaf("Type", "application")
        .open("AvailabilityZones");
    for (zone, subnet) in [("a", "subnet-0a"), ("b", "subnet-0b")] {
        w.open("member")
            .leaf("ZoneName", format!("{}{zone}", lb.region))
            .leaf("SubnetId", format!("{subnet}{}", &lb.vpc_id[4..]))
            .close();
    }
    w.close().leaf("IpAddressType", "ipv4").close();
}

fn write_target_group(w: &mut XmlWriter, group: &TargetGroup) {
    let health_protocol = match group.protocol.as_str() {
        "HTTPS" => "HTTPS",
        "HTTP" => "HTTP",
        _ => "TCP",
    };
    w.open("member")
        .leaf("TargetGroupArn", &group.arn)
        .leaf("TargetGroupName", &group.name)
        .leaf("Protocol", &group.protocol)
        .leaf("Port", group.port.to_string())
        .leaf("VpcId", &group.vpc_id)
        .leaf("HealthCheckProtocol", health_protocol)
        .leaf("HealthCheckPort", "traffic-port")
        .leaf("HealthCheckEnabled", "true")
        .leaf("HealthCheckIntervalSeconds", "30")
        .leaf("HealthCheckTimeoutSeconds", "5")
        .leaf("HealthyThresholdCount", "5")
        .leaf("UnhealthyThresholdCount", "2");
    if health_protocol != "TCP" {
        w.leaf("HealthCheckPath", &group.health_check_path)
            .open("Matcher")
            .leaf("HttpCode", "200")
            .close();
    }
    w.open("LoadBalancerArns");
    for lb in &group.load_balancer_arns {
        w.leaf("member", lb);
    }
    w.close()
        .leaf("TargetType", group.target_type.as_str())
        .leaf("IpAddressType", "ipv4")
        .close();
}

/// Drained targets disappear (the region remembers when the last one did).
pub fn advance(world: &mut World, now: DateTime<Utc>, _faults: &[Fault]) {
    for region in world.elbv2.values_mut() {
        for group in region.target_groups.values_mut() {
            let drained = model::finish_draining(group, now);
            region.last_drained_at = region.last_drained_at.max(drained);
        }
    }
}

/// Creates the target group of `arn` (account and region taken from the ARN) with a load
/// balancer in front of it, and registers `targets` as long-registered (healthy at once when
/// their instances run). Returns false, changing nothing, when the group exists or the ARN is
/// not a target group ARN.
pub fn seed_target_group(
    world: &mut World,
    arn: &str,
    port: u16,
    targets: &[String],
    now: DateTime<Utc>,
) -> bool {
    let Some(parts) = model::parse_arn(arn, "targetgroup") else {
        tracing::warn!(arn, "not seeding a target group: not a target group ARN");
        return false;
    };
    let key = scope_key(&parts.account, &parts.region);
    if world
        .elbv2
        .get(&key)
        .is_some_and(|r| r.target_groups.contains_key(arn))
    {
        return false;
    }
    let digest = hex::encode(Sha256::digest(arn.as_bytes()));
    // The VPC of the account and region, where DRS launches its recovery instances (the
    // subnet of every seeded launch template), so that a seeded world recovers cleanly.
    let vpc_id = world.ec2.default_vpc(&parts.account, &parts.region);
    let region = world.elbv2.entry(key).or_default();
    let lb_arn = seed_load_balancer(region, &parts, &digest, &vpc_id, now);
    let target_type = if targets.iter().all(|t| t.starts_with("i-")) {
        TargetType::Instance
    } else {
        TargetType::Ip
    };
    // Seeded targets have been registered long enough to have passed their health checks.
    let long_ago = now - chrono::TimeDelta::hours(1);
    let group = TargetGroup {
        arn: arn.to_string(),
        name: parts.name.clone(),
        protocol: if port == 443 { "HTTPS" } else { "HTTP" }.to_string(),
        port,
        vpc_id,
        target_type,
        health_check_path: "/".to_string(),
        load_balancer_arns: vec![lb_arn],
        targets: targets
            .iter()
            .map(|id| Target {
                id: id.clone(),
                port,
                registered_at: long_ago,
                deregistered_at: None,
            })
            .collect(),
    };
    region.target_groups.insert(arn.to_string(), group);
    true
}

/// The load balancer in front of a seeded group: one per group name in a region.
fn seed_load_balancer(
    region: &mut ElbRegion,
    parts: &model::ArnParts,
    digest: &str,
    vpc_id: &str,
    now: DateTime<Utc>,
) -> String {
    if let Some(existing) = region
        .load_balancers
        .values()
        .find(|lb| lb.name == parts.name)
    {
        return existing.arn.clone();
    }
    let number: u64 =
        u64::from_str_radix(&digest[17..26], 16).unwrap_or(0) % 9_000_000_000 + 1_000_000_000;
    let lb = LoadBalancer {
        arn: format!(
            "arn:aws:elasticloadbalancing:{}:{}:loadbalancer/app/{}/{}",
            parts.region,
            parts.account,
            parts.name,
            &digest[26..42]
        ),
        name: parts.name.clone(),
        dns_name: format!("{}-{number}.{}.elb.amazonaws.com", parts.name, parts.region),
        canonical_hosted_zone_id: model::canonical_hosted_zone_id(&parts.region).to_string(),
        created_at: now - chrono::TimeDelta::days(30),
        vpc_id: vpc_id.to_string(),
        region: parts.region.clone(),
    };
    let arn = lb.arn.clone();
    region.load_balancers.insert(arn.clone(), lb);
    arn
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/payments/fedcba9876543210";

    #[test]
    fn seeding_creates_a_group_behind_a_load_balancer_once() {
        let mut world = World::default();
        let now = Utc::now();
        assert!(seed_target_group(
            &mut world,
            ARN,
            443,
            &["i-0123".into()],
            now
        ));
        assert!(!seed_target_group(&mut world, ARN, 80, &[], now));
        assert!(!seed_target_group(&mut world, "arn:bogus", 80, &[], now));
        let region = &world.elbv2["111111111111/us-east-1"];
        let group = &region.target_groups[ARN];
        assert_eq!(group.protocol, "HTTPS");
        assert_eq!(group.targets.len(), 1);
        let lb = &region.load_balancers[&group.load_balancer_arns[0]];
        assert!(
            lb.dns_name.ends_with(".us-east-1.elb.amazonaws.com"),
            "{}",
            lb.dns_name
        );
        assert_eq!(lb.canonical_hosted_zone_id, "Z35SXDOTRQ7X7K");
    }

    #[test]
    fn errors_are_awsquery_error_responses() {
        let reply = error_reply(
            "TargetGroupNotFound",
            "One or more target groups not found",
            "rid",
        );
        assert_eq!(reply.status, 400);
        let body = String::from_utf8(reply.body).unwrap();
        assert!(body.contains(
            "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">"
        ));
        assert!(body.contains("<Code>TargetGroupNotFound</Code>"));
        assert_eq!(error_reply("ServiceUnavailable", "x", "r").status, 503);
    }

    #[test]
    fn query_lists_and_structures_are_read_in_member_order() {
        let params = Params(vec![
            ("Targets.member.2.Id".into(), "i-2".into()),
            ("Targets.member.1.Id".into(), "i-1".into()),
            ("Targets.member.1.Port".into(), "8080".into()),
            ("Names.member.10".into(), "ten".into()),
            ("Names.member.2".into(), "two".into()),
        ]);
        let targets = params.structs("Targets");
        assert_eq!(targets[0]["Id"], "i-1");
        assert_eq!(targets[0]["Port"], "8080");
        assert_eq!(targets[1]["Id"], "i-2");
        assert_eq!(params.list("Names"), ["two", "ten"]);
    }
}
