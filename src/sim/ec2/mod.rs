//! Simulated EC2 on the EC2 query protocol (form-encoded `Action=...&Version=2016-11-15`, XML
//! replies without a `<...Result>` wrapper: `<{Action}Response><requestId/>...`, lists as
//! `<item>`s; errors `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/>`).
//!
//! Served actions: DescribeInstances (filters, pagination), DescribeInstanceStatus,
//! Start/Stop/TerminateInstances, DescribeSubnets, CreateVpc, CreateSubnet,
//! DescribeLaunchTemplateVersions, CreateLaunchTemplateVersion, ModifyLaunchTemplate. Shapes follow botocore's `ec2` model
//! (2016-11-15). State is [`model::Ec2`], shared with DRS (which launches the instances) and
//! ELBv2 (which checks them as targets).

pub mod model;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::collections::BTreeMap;

pub use model::{
    CheckStatus, Ec2, ImpairedCheck, Instance, InstanceState, LaunchTemplate, Subnet, TemplateData,
    Transition, new_instance_id,
};

use super::wire::xml_timestamp;
use super::xml::XmlWriter;
use super::{Ctx, Fault, Outcome, Reply, SimRequest, World};

const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
const VERSION: &str = "2016-11-15";

/// `pending -> running` after StartInstances (EC2 reports this within seconds to a minute).
const START_SECS: i64 = 20;
/// `stopping -> stopped` after StopInstances.
pub(crate) const STOP_SECS: i64 = 40;
/// `shutting-down -> terminated` after TerminateInstances.
const TERMINATE_SECS: i64 = 45;

/// The decoded parameters of an EC2 query request.
struct Params(Vec<(String, String)>);

impl Params {
    fn of(req: &SimRequest) -> Params {
        Params(req.query_params())
    }

    fn get(&self, key: &str) -> Option<&str> {
        crate::sim::wire::param(&self.0, key)
    }

    /// `Key.N` values in N order (the EC2 protocol's flattened lists).
    fn list(&self, key: &str) -> Vec<String> {
        crate::sim::wire::numbered(&self.0, &format!("{key}."))
    }

    /// `Filter.N.Name` with its `Filter.N.Value.M` values.
    fn filters(&self) -> Vec<(String, Vec<String>)> {
        let mut by_n: BTreeMap<u32, (String, BTreeMap<u32, String>)> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix("Filter.") else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            let entry = by_n.entry(n).or_default();
            if field == "Name" {
                entry.0 = v.clone();
            } else if let Some(m) = field.strip_prefix("Value.").and_then(|m| m.parse().ok()) {
                entry.1.insert(m, v.clone());
            }
        }
        by_n.into_values()
            .map(|(name, values)| (name, values.into_values().collect()))
            .collect()
    }

    fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// A modeled EC2 error.
struct ApiError {
    code: String,
    message: String,
}

impl ApiError {
    fn new(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code: code.to_string(),
            message: message.into(),
        }
    }
    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidParameterValue", message)
    }
}

type Handled = Result<Outcome, ApiError>;

/// The `Action` of an EC2 query request.
pub fn operation_of(req: &SimRequest) -> Result<String, Reply> {
    match Params::of(req).get("Action") {
        Some(action) if !action.is_empty() => Ok(action.to_string()),
        _ => Err(error_reply(
            "MissingAction",
            "The request must contain the parameter Action (hint: EC2 query requests send Action=...&Version=2016-11-15)",
            "00000000-0000-0000-0000-000000000000",
        )),
    }
}

/// An EC2 error: `<Response><Errors><Error>...</Error></Errors><RequestID/></Response>`.
pub fn error_reply(code: &str, message: &str, request_id: &str) -> Reply {
    let status = match code {
        "InternalError" | "InternalFailure" => 500,
        "Unavailable" | "ServiceUnavailable" => 503,
        "UnauthorizedOperation" | "AuthFailure" => 403,
        _ => 400,
    };
    let mut w = XmlWriter::bare("Response");
    w.open("Errors")
        .open("Error")
        .leaf("Code", code)
        .leaf("Message", message)
        .close()
        .close()
        .leaf("RequestID", request_id);
    Reply::xml(status, w.finish()).with_header("x-amzn-RequestId", request_id)
}

/// Serves one EC2 call.
pub fn handle(ctx: &mut Ctx<'_>, operation: &str, req: &SimRequest) -> Outcome {
    let params = Params::of(req);
    if let Some(version) = params.get("Version")
        && version != VERSION
    {
        return Outcome::read(error_reply(
            "InvalidAction",
            &format!("Version {version} is not served (hint: EC2 is Version={VERSION})"),
            ctx.request_id,
        ));
    }
    let result = match operation {
        "DescribeInstances" => describe_instances(ctx, &params),
        "DescribeInstanceStatus" => describe_instance_status(ctx, &params),
        "StartInstances" => change_state(ctx, &params, Change::Start),
        "StopInstances" => change_state(ctx, &params, Change::Stop),
        "TerminateInstances" => change_state(ctx, &params, Change::Terminate),
        "DescribeSubnets" => describe_subnets(ctx, &params),
        "CreateVpc" => create_vpc(ctx, &params),
        "CreateSubnet" => create_subnet(ctx, &params),
        "DescribeLaunchTemplateVersions" => describe_launch_template_versions(ctx, &params),
        "CreateLaunchTemplateVersion" => create_launch_template_version(ctx, &params),
        "ModifyLaunchTemplate" => modify_launch_template(ctx, &params),
        "CreateTags" => create_tags(ctx, &params),
        other => Err(ApiError::new(
            "InvalidAction",
            format!(
                "The action {other} is not valid for this web service (the simulated EC2 serves DescribeInstances, DescribeInstanceStatus, StartInstances, StopInstances, TerminateInstances, DescribeSubnets, CreateVpc, CreateSubnet, DescribeLaunchTemplateVersions, CreateLaunchTemplateVersion, ModifyLaunchTemplate)"
            ),
        )),
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) => Outcome::read(error_reply(&e.code, &e.message, ctx.request_id)),
    }
}

/// Ends the EC2 transitions due by `now`.
pub fn advance(world: &mut World, now: DateTime<Utc>, _faults: &[Fault]) {
    world.ec2.advance(now);
}

fn response(root: &'static str, request_id: &str) -> XmlWriter {
    let mut w = XmlWriter::document(root, NAMESPACE);
    w.leaf("requestId", request_id);
    w
}

fn finish(w: XmlWriter, request_id: &str) -> Reply {
    Reply::xml(200, w.finish()).with_header("x-amzn-RequestId", request_id)
}

fn check_instance_ids(ids: &[String]) -> Result<(), ApiError> {
    for id in ids {
        let hex = id.strip_prefix("i-").unwrap_or("");
        if !(hex.len() == 8 || hex.len() == 17) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ApiError::new(
                "InvalidInstanceID.Malformed",
                format!("Invalid id: \"{id}\""),
            ));
        }
    }
    Ok(())
}

/// The caller's visible instances named by `ids` (all of them when empty); unknown IDs are
/// `InvalidInstanceID.NotFound`, naming every one.
fn select<'w>(ctx: &'w Ctx<'_>, ids: &[String]) -> Result<Vec<&'w Instance>, ApiError> {
    check_instance_ids(ids)?;
    let (account, region) = (&ctx.caller.account, &ctx.caller.region);
    let mine =
        |i: &&Instance| &i.account == account && &i.region == region && i.is_visible(ctx.now);
    if ids.is_empty() {
        return Ok(ctx.world.ec2.instances.values().filter(mine).collect());
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match ctx.world.ec2.get(id).filter(mine) {
            Some(i) => {
                if !found
                    .iter()
                    .any(|f: &&Instance| f.instance_id == i.instance_id)
                {
                    found.push(i);
                }
            }
            None => missing.push(id.as_str()),
        }
    }
    match missing.as_slice() {
        [] => Ok(found),
        [one] => Err(ApiError::new(
            "InvalidInstanceID.NotFound",
            format!("The instance ID '{one}' does not exist"),
        )),
        many => Err(ApiError::new(
            "InvalidInstanceID.NotFound",
            format!("The instance IDs '{}' do not exist", many.join(", ")),
        )),
    }
}

/// Whether an instance matches one DescribeInstances / DescribeInstanceStatus filter.
fn matches(
    i: &Instance,
    name: &str,
    values: &[String],
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let any = |v: &str| values.iter().any(|x| wildcard(x, v));
    Ok(match name {
        "instance-id" => any(&i.instance_id),
        "instance-state-name" => any(i.state.ec2().0),
        "instance-state-code" => any(&i.state.ec2().1.to_string()),
        "private-ip-address" | "network-interface.addresses.private-ip-address" => {
            any(&i.private_ip)
        }
        "ipv6-address" => i.ipv6.as_deref().is_some_and(any),
        "subnet-id" => any(&i.subnet_id),
        "vpc-id" => any(&i.vpc_id),
        "instance-type" => any(&i.instance_type),
        "availability-zone" => any(&format!("{}a", i.region)),
        "private-dns-name" => any(&private_dns(i)),
        "tag-key" => i.tags.keys().any(|k| any(k)),
        "instance-status.status" | "system-status.status" => {
            // Answered by DescribeInstanceStatus only; see `status_matches`.
            let _ = now;
            true
        }
        other => match other.strip_prefix("tag:") {
            Some(key) => i.tags.get(key).is_some_and(|v| any(v)),
            None => {
                return Err(ApiError::invalid(format!(
                    "The filter '{other}' is invalid (the simulated EC2 filters on instance-id, instance-state-name, instance-state-code, private-ip-address, ipv6-address, subnet-id, vpc-id, instance-type, availability-zone, private-dns-name, tag-key and tag:<key>)"
                )));
            }
        },
    })
}

/// EC2 filter values may use `*` and `?` wildcards.
fn wildcard(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

fn private_dns(i: &Instance) -> String {
    let ip = i.private_ip.replace('.', "-");
    if i.region == "us-east-1" {
        format!("ip-{ip}.ec2.internal")
    } else {
        format!("ip-{ip}.{}.compute.internal", i.region)
    }
}

/// `MaxResults` (5..=1000, not with explicit IDs) and `NextToken` (the first ID of the page).
fn page<'a>(
    items: Vec<&'a Instance>,
    params: &Params,
    explicit_ids: bool,
) -> Result<(Vec<&'a Instance>, Option<String>), ApiError> {
    let max = match params.get("MaxResults") {
        None => None,
        Some(_) if explicit_ids => {
            return Err(ApiError::new(
                "InvalidParameterCombination",
                "The parameter instancesSet cannot be used with the parameter maxResults",
            ));
        }
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (5..=1000).contains(&n) => Some(n),
            _ => {
                return Err(ApiError::invalid(format!(
                    "Value ( {text} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."
                )));
            }
        },
    };
    let start = match params.get("NextToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => items
            .iter()
            .position(|i| i.instance_id.as_str() >= token)
            .ok_or_else(|| ApiError::invalid(format!("Invalid NextToken: {token}")))?,
    };
    let rest = &items[start..];
    match max {
        Some(n) if rest.len() > n => Ok((rest[..n].to_vec(), Some(rest[n].instance_id.clone()))),
        _ => Ok((rest.to_vec(), None)),
    }
}

fn describe_instances(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let ids = params.list("InstanceId");
    let filters = params.filters();
    let mut selected = Vec::new();
    for i in select(ctx, &ids)? {
        let mut keep = true;
        for (name, values) in &filters {
            keep &= matches(i, name, values, ctx.now)?;
        }
        if keep {
            selected.push(i);
        }
    }
    let (items, next) = page(selected, params, !ids.is_empty())?;
    let mut w = response("DescribeInstancesResponse", ctx.request_id);
    w.open("reservationSet");
    for i in items {
        w.open("item")
            .leaf("reservationId", format!("r-{}", &i.instance_id[2..]))
            .leaf("ownerId", &i.account)
            .open("groupSet")
            .close()
            .open("instancesSet");
        write_instance(&mut w, i, ctx.now);
        w.close().close();
    }
    w.close();
    if let Some(token) = next {
        w.leaf("nextToken", token);
    }
    Ok(Outcome::read(finish(w, ctx.request_id)))
}

fn write_state(w: &mut XmlWriter, element: &'static str, state: InstanceState) {
    let (name, code) = state.ec2();
    w.open(element)
        .leaf("code", code.to_string())
        .leaf("name", name)
        .close();
}

fn write_instance(w: &mut XmlWriter, i: &Instance, now: DateTime<Utc>) {
    let live = !matches!(i.state, InstanceState::Terminated);
    w.open("item")
        .leaf("instanceId", &i.instance_id)
        .leaf("imageId", format!("ami-{}", &i.instance_id[2..]));
    write_state(w, "instanceState", i.state);
    w.leaf(
        "privateDnsName",
        if live { private_dns(i) } else { String::new() },
    )
    .leaf("dnsName", "")
    .leaf("amiLaunchIndex", "0")
    .leaf("instanceType", &i.instance_type)
    .leaf("launchTime", xml_timestamp(i.launched_at))
    .open("placement")
    .leaf("availabilityZone", format!("{}a", i.region))
    .leaf("tenancy", "default")
    .close()
    .open("monitoring")
    .leaf("state", "disabled")
    .close();
    if live {
        w.leaf("subnetId", &i.subnet_id)
            .leaf("vpcId", &i.vpc_id)
            .leaf("privateIpAddress", &i.private_ip);
        if let Some(v6) = &i.ipv6 {
            w.leaf("ipv6Address", v6);
        }
    }
    w.leaf("architecture", "x86_64")
        .leaf("rootDeviceType", "ebs")
        .leaf("rootDeviceName", "/dev/xvda")
        .leaf("virtualizationType", "hvm")
        .leaf("hypervisor", "xen");
    w.open("groupSet");
    for sg in &i.security_group_ids {
        w.open("item").leaf("groupId", sg).close();
    }
    w.close();
    if live {
        let eni = format!("eni-{}", &i.instance_id[2..]);
        w.open("networkInterfaceSet")
            .open("item")
            .leaf("networkInterfaceId", &eni)
            .leaf("subnetId", &i.subnet_id)
            .leaf("vpcId", &i.vpc_id)
            .leaf("ownerId", &i.account)
            .leaf("status", "in-use")
            .leaf("privateIpAddress", &i.private_ip)
            .leaf("privateDnsName", private_dns(i))
            .open("attachment")
            .leaf(
                "attachmentId",
                format!("eni-attach-{}", &i.instance_id[2..]),
            )
            .leaf("deviceIndex", "0")
            .leaf("status", "attached")
            .close()
            .open("privateIpAddressesSet")
            .open("item")
            .leaf("privateIpAddress", &i.private_ip)
            .leaf("primary", "true")
            .close()
            .close()
            .open("ipv6AddressesSet");
        if let Some(v6) = &i.ipv6 {
            w.open("item")
                .leaf("ipv6Address", v6)
                .leaf("isPrimaryIpv6", "false")
                .close();
        }
        w.close().close().close();
    }
    if i.state == InstanceState::Stopped || i.state == InstanceState::Terminated {
        let reason = if i.state == InstanceState::Stopped {
            "User initiated"
        } else {
            "Client.UserInitiatedShutdown"
        };
        w.leaf(
            "reason",
            format!(
                "{reason} ({})",
                i.state_since.unwrap_or(now).format("%Y-%m-%d %H:%M:%S GMT")
            ),
        );
    }
    w.open("tagSet");
    for (k, v) in &i.tags {
        w.open("item").leaf("key", k).leaf("value", v).close();
    }
    w.close().close();
}

/// At most 100 explicit IDs in one DescribeInstanceStatus (EC2 API Reference,
/// DescribeInstanceStatus, `InstanceId.N`: "Constraints: Maximum 100 explicitly specified
/// instance IDs").
pub const MAX_STATUS_IDS: usize = 100;

fn describe_instance_status(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let ids = params.list("InstanceId");
    if ids.len() > MAX_STATUS_IDS {
        return Err(ApiError::invalid(format!(
            "The maximum number of explicitly specified instance IDs is {MAX_STATUS_IDS}; {} were given",
            ids.len()
        )));
    }
    let include_all = params.flag("IncludeAllInstances");
    let filters = params.filters();
    let faults = ctx.faults;
    let now = ctx.now;
    let mut selected = Vec::new();
    for i in select(ctx, &ids)? {
        // "By default, only running instances are described, unless you specifically
        // indicate to return the status of all instances" (IncludeAllInstances).
        if !include_all && i.state != InstanceState::Running {
            continue;
        }
        let checks = i.status_checks(now, super::faults::impaired_check(faults, i));
        let mut keep = true;
        for (name, values) in &filters {
            keep &= match name.as_str() {
                "system-status.status" => values.iter().any(|v| v == checks.0.wire().0),
                "instance-status.status" => values.iter().any(|v| v == checks.1.wire().0),
                "system-status.reachability" => values.iter().any(|v| v == checks.0.wire().1),
                "instance-status.reachability" => values.iter().any(|v| v == checks.1.wire().1),
                _ => matches(i, name, values, now)?,
            };
        }
        if keep {
            selected.push(i);
        }
    }
    let (items, next) = page(selected, params, !ids.is_empty())?;
    let mut w = response("DescribeInstanceStatusResponse", ctx.request_id);
    w.open("instanceStatusSet");
    for i in items {
        let (system, instance) = i.status_checks(now, super::faults::impaired_check(faults, i));
        w.open("item")
            .leaf("instanceId", &i.instance_id)
            .leaf("availabilityZone", format!("{}a", i.region));
        write_state(&mut w, "instanceState", i.state);
        write_check(&mut w, "systemStatus", system, i, now);
        write_check(&mut w, "instanceStatus", instance, i, now);
        w.close();
    }
    w.close();
    if let Some(token) = next {
        w.leaf("nextToken", token);
    }
    Ok(Outcome::read(finish(w, ctx.request_id)))
}

fn write_check(
    w: &mut XmlWriter,
    element: &'static str,
    status: CheckStatus,
    i: &Instance,
    now: DateTime<Utc>,
) {
    let (summary, detail) = status.wire();
    w.open(element).leaf("status", summary).open("details");
    if status != CheckStatus::NotApplicable {
        w.open("item")
            .leaf("name", "reachability")
            .leaf("status", detail);
        if status == CheckStatus::Impaired {
            let since = i.running_since.unwrap_or(now)
                + Duration::seconds(model::boot_seconds(&i.instance_id));
            w.leaf("impairedSince", xml_timestamp(since));
        }
        w.close();
    }
    w.close().close();
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Start,
    Stop,
    Terminate,
}

fn change_state(ctx: &mut Ctx<'_>, params: &Params, change: Change) -> Handled {
    let ids = params.list("InstanceId");
    if ids.is_empty() {
        return Err(ApiError::new(
            "MissingParameter",
            "The request must contain the parameter InstanceId",
        ));
    }
    let found: Vec<String> = select(ctx, &ids)?
        .into_iter()
        .map(|i| i.instance_id.clone())
        .collect();
    // Check every instance before changing any.
    for id in &found {
        let i = &ctx.world.ec2.instances[id];
        let refused = match change {
            // "IncorrectInstanceState: The instance is not in a state from which it can be
            // started" (EC2 error codes): only stopped (and already running/pending) ones.
            Change::Start => matches!(
                i.state,
                InstanceState::Stopping | InstanceState::ShuttingDown | InstanceState::Terminated
            ),
            Change::Stop => matches!(
                i.state,
                InstanceState::ShuttingDown | InstanceState::Terminated
            ),
            Change::Terminate => false,
        };
        if refused {
            let verb = match change {
                Change::Start => "started",
                Change::Stop => "stopped",
                Change::Terminate => "terminated",
            };
            return Err(ApiError::new(
                "IncorrectInstanceState",
                format!(
                    "The instance '{id}' is not in a state from which it can be {verb} (it is {})",
                    i.state.ec2().0
                ),
            ));
        }
    }
    let now = ctx.now;
    let mut changes = Vec::new();
    let mut changed = false;
    for id in &found {
        let i = ctx.world.ec2.instances.get_mut(id).expect("selected");
        let previous = i.state;
        let (now_state, ends) = match (change, previous) {
            (Change::Start, InstanceState::Stopped) => (
                InstanceState::Pending,
                Some((InstanceState::Running, START_SECS)),
            ),
            (Change::Stop, InstanceState::Running | InstanceState::Pending) => (
                InstanceState::Stopping,
                Some((InstanceState::Stopped, STOP_SECS)),
            ),
            (Change::Terminate, s)
                if s != InstanceState::Terminated && s != InstanceState::ShuttingDown =>
            {
                (
                    InstanceState::ShuttingDown,
                    Some((InstanceState::Terminated, TERMINATE_SECS)),
                )
            }
            (_, s) => (s, None),
        };
        if let Some((to, secs)) = ends {
            i.set_state(now_state, now);
            i.transition = Some(Transition {
                to,
                at: now + Duration::seconds(secs),
            });
            changed = true;
        }
        changes.push((id.clone(), now_state, previous));
    }
    let action = match change {
        Change::Start => "StartInstancesResponse",
        Change::Stop => "StopInstancesResponse",
        Change::Terminate => "TerminateInstancesResponse",
    };
    let mut w = response(action, ctx.request_id);
    w.open("instancesSet");
    for (id, current, previous) in &changes {
        w.open("item").leaf("instanceId", id);
        write_state(&mut w, "currentState", *current);
        write_state(&mut w, "previousState", *previous);
        w.close();
    }
    w.close();
    let reply = finish(w, ctx.request_id);
    if changed {
        Ok(Outcome::mutated(reply, json!({ "instance_ids": ids })))
    } else {
        Ok(Outcome::read(reply))
    }
}

fn describe_subnets(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let ids = params.list("SubnetId");
    let filters = params.filters();
    let (account, region) = (ctx.caller.account.clone(), ctx.caller.region.clone());
    // The caller's region always has its subnet.
    ctx.world.ec2.default_subnet(&account, &region);
    let mine: Vec<&Subnet> = ctx
        .world
        .ec2
        .subnets
        .values()
        .filter(|s| s.account == account && s.region == region)
        .collect();
    for id in &ids {
        if !mine.iter().any(|s| &s.subnet_id == id) {
            return Err(ApiError::new(
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{id}' does not exist"),
            ));
        }
    }
    let mut selected = Vec::new();
    for s in mine {
        if !ids.is_empty() && !ids.contains(&s.subnet_id) {
            continue;
        }
        let mut keep = true;
        for (name, values) in &filters {
            let any = |v: &str| values.iter().any(|x| wildcard(x, v));
            keep &= match name.as_str() {
                "subnet-id" => any(&s.subnet_id),
                "vpc-id" => any(&s.vpc_id),
                "cidr-block" | "cidr" | "cidrBlock" => any(&s.cidr()),
                "availability-zone" => any(&s.availability_zone()),
                "state" => any("available"),
                other => {
                    return Err(ApiError::invalid(format!(
                        "The filter '{other}' is invalid (the simulated EC2 filters subnets on subnet-id, vpc-id, cidr-block, availability-zone and state)"
                    )));
                }
            };
        }
        if keep {
            selected.push(s);
        }
    }
    let mut w = response("DescribeSubnetsResponse", ctx.request_id);
    w.open("subnetSet");
    for s in selected {
        write_subnet(&mut w, "item", &ctx.world.ec2, s);
    }
    w.close();
    Ok(Outcome::read(finish(w, ctx.request_id)))
}

fn write_subnet(w: &mut XmlWriter, element: &'static str, ec2: &Ec2, s: &Subnet) {
    let used = ec2
        .instances
        .values()
        .filter(|i| i.subnet_id == s.subnet_id && i.state != InstanceState::Terminated)
        .count();
    w.open(element)
        .leaf("subnetId", &s.subnet_id)
        .leaf(
            "subnetArn",
            format!(
                "arn:aws:ec2:{}:{}:subnet/{}",
                s.region, s.account, s.subnet_id
            ),
        )
        .leaf("state", "available")
        .leaf("ownerId", &s.account)
        .leaf("vpcId", &s.vpc_id)
        .leaf("cidrBlock", s.cidr())
        .leaf("availableIpAddressCount", (65_531 - used).to_string())
        .leaf("availabilityZone", s.availability_zone())
        .leaf("defaultForAz", "false")
        .leaf("mapPublicIpOnLaunch", "false")
        .close();
}

/// An IPv4 CIDR block `a.b.c.d/n`: the address and the prefix length.
fn parse_cidr(text: &str) -> Option<([u8; 4], u8)> {
    let (address, prefix) = text.split_once('/')?;
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((address.octets(), prefix))
}

/// The `CidrBlock` of CreateVpc or CreateSubnet, which the simulator holds as `10.N.0.0/16`.
/// AWS refuses a malformed block (InvalidParameterValue) and a VPC block outside /16../28
/// (Amazon VPC User Guide, "VPC CIDR blocks": "The allowed block size is between a /16
/// netmask (65,536 IP addresses) and /28 netmask (16 IP addresses)"; EC2 error code
/// `InvalidVpc.Range`). The simulator's subnets span their VPC, so it takes `10.N.0.0/16` only,
/// and says so.
fn sim_cidr(params: &Params, range_code: &str) -> Result<(String, u8), ApiError> {
    let text = params
        .get("CidrBlock")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                "MissingParameter",
                "The request must contain the parameter CidrBlock",
            )
        })?;
    let (octets, prefix) = parse_cidr(text).ok_or_else(|| {
        ApiError::invalid(format!(
            "Value ({text}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })?;
    if !(16..=28).contains(&prefix) {
        return Err(ApiError::new(
            range_code,
            format!("The CIDR '{text}' is invalid."),
        ));
    }
    if octets[0] != 10 || octets[2] != 0 || octets[3] != 0 || prefix != 16 {
        return Err(ApiError::invalid(format!(
            "The CIDR '{text}' is valid in EC2, but the simulated EC2 holds only 10.N.0.0/16 blocks (a subnet spans its VPC)"
        )));
    }
    Ok((text.to_string(), octets[1]))
}

/// CreateVpc (EC2 API Reference, CreateVpc): a VPC `10.N.0.0/16` in the caller's account and
/// region, answered `pending` as EC2 answers a new VPC.
fn create_vpc(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let (cidr, octet) = sim_cidr(params, "InvalidVpc.Range")?;
    let (account, region) = (ctx.caller.account.clone(), ctx.caller.region.clone());
    let vpc = ctx.world.ec2.create_vpc(&account, &region, octet).clone();
    let mut w = response("CreateVpcResponse", ctx.request_id);
    w.open("vpc")
        .leaf("vpcId", &vpc.vpc_id)
        .leaf("ownerId", &vpc.account)
        .leaf("state", "pending")
        .leaf("cidrBlock", &cidr)
        .leaf("instanceTenancy", "default")
        .leaf("isDefault", "false")
        .close();
    let mutation = json!({ "vpc_id": vpc.vpc_id, "cidr_block": cidr });
    Ok(Outcome::mutated(finish(w, ctx.request_id), mutation))
}

/// CreateSubnet (EC2 API Reference, CreateSubnet) in a VPC of the caller's account and region:
/// an unknown VPC is `InvalidVpcID.NotFound`, a block outside the VPC's `InvalidSubnet.Range`,
/// and one overlapping another subnet of the VPC `InvalidSubnet.Conflict` (EC2 error codes).
fn create_subnet(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let vpc_id = params
        .get("VpcId")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                "MissingParameter",
                "The request must contain the parameter VpcId",
            )
        })?
        .to_string();
    let (account, region) = (ctx.caller.account.clone(), ctx.caller.region.clone());
    // The default VPC of the caller's region exists with its subnet.
    let default = ctx.world.ec2.default_subnet(&account, &region).clone();
    let vpc = match ctx.world.ec2.vpcs.get(&vpc_id) {
        Some(v) if v.account == account && v.region == region => v.clone(),
        _ if default.vpc_id == vpc_id => model::Vpc {
            vpc_id: default.vpc_id.clone(),
            account: account.clone(),
            region: region.clone(),
            octet: default.octet,
        },
        _ => {
            return Err(ApiError::new(
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{vpc_id}' does not exist"),
            ));
        }
    };
    let (cidr, octet) = sim_cidr(params, "InvalidSubnet.Range")?;
    if octet != vpc.octet {
        return Err(ApiError::new(
            "InvalidSubnet.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    if ctx
        .world
        .ec2
        .subnets
        .values()
        .any(|s| s.vpc_id == vpc.vpc_id)
    {
        return Err(ApiError::new(
            "InvalidSubnet.Conflict",
            format!("The CIDR '{cidr}' conflicts with another subnet"),
        ));
    }
    let subnet = ctx.world.ec2.create_subnet(&vpc).clone();
    let mut w = response("CreateSubnetResponse", ctx.request_id);
    write_subnet(&mut w, "subnet", &ctx.world.ec2, &subnet);
    let mutation =
        json!({ "subnet_id": subnet.subnet_id, "vpc_id": vpc.vpc_id, "cidr_block": cidr });
    Ok(Outcome::mutated(finish(w, ctx.request_id), mutation))
}

/// CreateTags on instances of the caller (EC2 API Reference, CreateTags: `ResourceId.N`,
/// `Tag.N.Key` / `Tag.N.Value`; an existing key is overwritten). Other resource kinds are not
/// modelled: InvalidID.
fn create_tags(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let ids = params.list("ResourceId");
    if ids.is_empty() {
        return Err(ApiError::new(
            "MissingParameter",
            "The request must contain the parameter ResourceId",
        ));
    }
    if let Some(other) = ids.iter().find(|id| !id.starts_with("i-")) {
        return Err(ApiError::new(
            "InvalidID",
            format!("The ID '{other}' is not valid (the simulated EC2 tags instances only)"),
        ));
    }
    let found: Vec<String> = select(ctx, &ids)?
        .into_iter()
        .map(|i| i.instance_id.clone())
        .collect();
    let mut tags = Vec::new();
    for n in 1.. {
        let Some(key) = params.get(&format!("Tag.{n}.Key")) else {
            break;
        };
        let value = params.get(&format!("Tag.{n}.Value")).unwrap_or("");
        tags.push((key.to_string(), value.to_string()));
    }
    for id in &found {
        if let Some(instance) = ctx.world.ec2.get_mut(id) {
            instance.tags.extend(tags.iter().cloned());
        }
    }
    let mut w = response("CreateTagsResponse", ctx.request_id);
    w.leaf("return", "true");
    let mutation = json!({ "resources": found, "tags": tags });
    Ok(Outcome::mutated(finish(w, ctx.request_id), mutation))
}

/// The caller's launch template named by `LaunchTemplateId` or `LaunchTemplateName`.
fn template_id(ctx: &Ctx<'_>, params: &Params) -> Result<String, ApiError> {
    let (account, region) = (&ctx.caller.account, &ctx.caller.region);
    let mine = |t: &&LaunchTemplate| &t.account == account && &t.region == region;
    if let Some(id) = params.get("LaunchTemplateId").filter(|v| !v.is_empty()) {
        if !id.starts_with("lt-") {
            return Err(ApiError::new(
                "InvalidLaunchTemplateId.Malformed",
                format!("The specified launch template ID is malformed: '{id}'"),
            ));
        }
        return ctx
            .world
            .ec2
            .launch_templates
            .get(id)
            .filter(mine)
            .map(|t| t.id.clone())
            .ok_or_else(|| {
                ApiError::new(
                    "InvalidLaunchTemplateId.NotFound",
                    format!(
                        "The specified launch template, with template ID {id}, does not exist."
                    ),
                )
            });
    }
    if let Some(name) = params.get("LaunchTemplateName").filter(|v| !v.is_empty()) {
        return ctx
            .world
            .ec2
            .launch_templates
            .values()
            .filter(mine)
            .find(|t| t.name == name)
            .map(|t| t.id.clone())
            .ok_or_else(|| {
                ApiError::new(
                    "InvalidLaunchTemplateName.NotFoundException",
                    format!(
                        "The specified launch template, with template name {name}, does not exist."
                    ),
                )
            });
    }
    Err(ApiError::new(
        "MissingParameter",
        "The request must include either the launch template ID or the launch template name",
    ))
}

/// A version reference: a number, `$Latest` or `$Default`.
fn version_number(t: &LaunchTemplate, text: &str) -> Result<u64, ApiError> {
    let n = match text {
        "$Latest" => t.latest_version(),
        "$Default" => t.default_version,
        other => other.parse().map_err(|_| {
            ApiError::new(
                "InvalidLaunchTemplateId.VersionNotFound",
                format!(
                    "Could not find launch template version {other} for {}",
                    t.id
                ),
            )
        })?,
    };
    if t.version(n).is_none() {
        return Err(ApiError::new(
            "InvalidLaunchTemplateId.VersionNotFound",
            format!("Could not find launch template version {n} for {}", t.id),
        ));
    }
    Ok(n)
}

fn write_version(w: &mut XmlWriter, element: &'static str, t: &LaunchTemplate, number: u64) {
    let v = t.version(number).expect("checked version");
    w.open(element)
        .leaf("launchTemplateId", &t.id)
        .leaf("launchTemplateName", &t.name)
        .leaf("versionNumber", number.to_string())
        .leaf("versionDescription", &v.description)
        .leaf("createTime", xml_timestamp(v.created_at))
        .leaf("createdBy", format!("arn:aws:iam::{}:root", t.account))
        .leaf(
            "defaultVersion",
            if number == t.default_version {
                "true"
            } else {
                "false"
            },
        )
        .open("launchTemplateData");
    if let Some(kind) = &v.data.instance_type {
        w.leaf("instanceType", kind);
    }
    if v.data.subnet_id.is_some() || v.data.private_ip.is_some() {
        w.open("networkInterfaceSet")
            .open("item")
            .leaf("deviceIndex", "0");
        if let Some(subnet) = &v.data.subnet_id {
            w.leaf("subnetId", subnet);
        }
        if let Some(ip) = &v.data.private_ip {
            w.leaf("privateIpAddress", ip);
        }
        w.open("groupSet");
        for sg in &v.data.security_group_ids {
            w.leaf("groupId", sg);
        }
        w.close().close().close();
    } else if !v.data.security_group_ids.is_empty() {
        w.open("securityGroupIdSet");
        for sg in &v.data.security_group_ids {
            w.leaf("item", sg);
        }
        w.close();
    }
    w.close().close();
}

fn describe_launch_template_versions(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let named = ["LaunchTemplateId", "LaunchTemplateName"]
        .iter()
        .any(|k| params.get(k).is_some_and(|v| !v.is_empty()));
    if !named {
        return describe_account_template_versions(ctx, params);
    }
    let id = template_id(ctx, params)?;
    let t = &ctx.world.ec2.launch_templates[&id];
    let asked = params.list("LaunchTemplateVersion");
    let numbers: Vec<u64> = if asked.is_empty() {
        let min = params
            .get("MinVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let max = params
            .get("MaxVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        t.versions
            .iter()
            .map(|v| v.number)
            .filter(|n| (min..=max).contains(n))
            .collect()
    } else {
        asked
            .iter()
            .map(|a| version_number(t, a))
            .collect::<Result<_, _>>()?
    };
    let mut w = response("DescribeLaunchTemplateVersionsResponse", ctx.request_id);
    w.open("launchTemplateVersionSet");
    for n in numbers {
        write_version(&mut w, "item", t, n);
    }
    w.close();
    Ok(Outcome::read(finish(w, ctx.request_id)))
}

/// DescribeLaunchTemplateVersions without a template: the `$Latest` and/or `$Default` version
/// of every launch template of the caller's account and region (EC2 API Reference,
/// DescribeLaunchTemplateVersions, `LaunchTemplateId`: "To describe all the latest or default
/// launch template versions in your account, you must omit this parameter"; `Versions`: "You
/// cannot specify numbers"), by template ID, `MaxResults` 1..=200 a page with `NextToken`.
fn describe_account_template_versions(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let asked = params.list("LaunchTemplateVersion");
    if asked.is_empty() || asked.iter().any(|v| v != "$Latest" && v != "$Default") {
        return Err(ApiError::new(
            "MissingParameter",
            "The request must include either the launch template ID or the launch template name, or ask only for the $Latest and $Default versions",
        ));
    }
    let max = match params.get("MaxResults") {
        None => usize::MAX,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "Value ( {text} ) for parameter maxResults is invalid. Expecting a value between 1 and 200."
                )));
            }
        },
    };
    let (account, region) = (&ctx.caller.account, &ctx.caller.region);
    let mut items: Vec<(&LaunchTemplate, u64)> = Vec::new();
    for t in ctx
        .world
        .ec2
        .launch_templates
        .values()
        .filter(|t| &t.account == account && &t.region == region)
    {
        let mut numbers: Vec<u64> = asked
            .iter()
            .map(|a| version_number(t, a))
            .collect::<Result<_, _>>()?;
        numbers.dedup();
        items.extend(numbers.into_iter().map(|n| (t, n)));
    }
    let key = |(t, n): &(&LaunchTemplate, u64)| format!("{}/{n:020}", t.id);
    let start = match params.get("NextToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => items
            .iter()
            .position(|i| key(i).as_str() >= token)
            .ok_or_else(|| ApiError::invalid(format!("Invalid NextToken: {token}")))?,
    };
    let rest = &items[start..];
    let (shown, next) = if rest.len() > max {
        (&rest[..max], Some(key(&rest[max])))
    } else {
        (rest, None)
    };
    let mut w = response("DescribeLaunchTemplateVersionsResponse", ctx.request_id);
    w.open("launchTemplateVersionSet");
    for (t, n) in shown {
        write_version(&mut w, "item", t, *n);
    }
    w.close();
    if let Some(next) = next {
        w.leaf("nextToken", next);
    }
    Ok(Outcome::read(finish(w, ctx.request_id)))
}

fn create_launch_template_version(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let id = template_id(ctx, params)?;
    let now = ctx.now;
    let (account, region) = (ctx.caller.account.clone(), ctx.caller.region.clone());
    let t = &ctx.world.ec2.launch_templates[&id];
    let mut data = match params.get("SourceVersion") {
        Some(source) => t
            .version(version_number(t, source)?)
            .map(|v| v.data.clone())
            .unwrap_or_default(),
        None => TemplateData::default(),
    };
    const D: &str = "LaunchTemplateData.";
    if let Some(kind) = params.get(&format!("{D}InstanceType")) {
        data.instance_type = Some(kind.to_string());
    }
    let nic = format!("{D}NetworkInterface.1.");
    if let Some(subnet) = params.get(&format!("{nic}SubnetId")) {
        data.subnet_id = Some(subnet.to_string());
    }
    if let Some(ip) = params.get(&format!("{nic}PrivateIpAddress")) {
        data.private_ip = Some(ip.to_string());
    }
    let groups = {
        let mut g = params.list(&format!("{nic}SecurityGroupId"));
        g.extend(params.list(&format!("{D}SecurityGroupId")));
        g
    };
    if !groups.is_empty() {
        data.security_group_ids = groups;
    }
    if let Some(subnet) = &data.subnet_id
        && !ctx
            .world
            .ec2
            .subnets
            .get(subnet)
            .is_some_and(|s| s.account == account && s.region == region)
    {
        return Err(ApiError::new(
            "InvalidSubnetID.NotFound",
            format!("The subnet ID '{subnet}' does not exist"),
        ));
    }
    let t = ctx.world.ec2.launch_templates.get_mut(&id).expect("found");
    let number = t.latest_version() + 1;
    t.versions.push(model::TemplateVersion {
        number,
        description: params.get("VersionDescription").unwrap_or("").to_string(),
        created_at: now,
        data: data.clone(),
    });
    let t = &ctx.world.ec2.launch_templates[&id];
    let mut w = response("CreateLaunchTemplateVersionResponse", ctx.request_id);
    write_version(&mut w, "launchTemplateVersion", t, number);
    let mutation = json!({ "launch_template_id": id, "version": number, "data": data });
    Ok(Outcome::mutated(finish(w, ctx.request_id), mutation))
}

fn modify_launch_template(ctx: &mut Ctx<'_>, params: &Params) -> Handled {
    let id = template_id(ctx, params)?;
    let t = &ctx.world.ec2.launch_templates[&id];
    let default = match params.get("SetDefaultVersion") {
        Some(v) => Some(version_number(t, v)?),
        None => None,
    };
    let t = ctx.world.ec2.launch_templates.get_mut(&id).expect("found");
    if let Some(n) = default {
        t.default_version = n;
    }
    let t = &ctx.world.ec2.launch_templates[&id];
    let mut w = response("ModifyLaunchTemplateResponse", ctx.request_id);
    w.open("launchTemplate")
        .leaf("launchTemplateId", &t.id)
        .leaf("launchTemplateName", &t.name)
        .leaf("createTime", xml_timestamp(t.created_at))
        .leaf("createdBy", format!("arn:aws:iam::{}:root", t.account))
        .leaf("defaultVersionNumber", t.default_version.to_string())
        .leaf("latestVersionNumber", t.latest_version().to_string())
        .close();
    let mutation = json!({ "launch_template_id": id, "default_version": t.default_version });
    Ok(Outcome::mutated(finish(w, ctx.request_id), mutation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_ec2_filters() {
        assert!(wildcard("i-*", "i-0123"));
        assert!(wildcard("web-?", "web-1"));
        assert!(!wildcard("web-?", "web-12"));
        assert!(wildcard("exact", "exact"));
    }

    #[test]
    fn errors_are_ec2_error_responses() {
        let reply = error_reply("InvalidInstanceID.NotFound", "nope", "req-1");
        assert_eq!(reply.status, 400);
        let doc = crate::sim::xml::parse(&reply.body).unwrap();
        assert_eq!(doc.name, "Response");
        let error = doc.child("Errors").unwrap().child("Error").unwrap();
        assert_eq!(error.child_text("Code"), Some("InvalidInstanceID.NotFound"));
        assert_eq!(doc.child_text("RequestID"), Some("req-1"));
    }
}
