//! Simulated Route 53 (restXml under `/2013-04-01/`): hosted zones, record sets, changes.
//!
//! Route 53 is global, so state is per caller account. Served operations: ListHostedZones,
//! GetHostedZone, CreateHostedZone, ListResourceRecordSets, ChangeResourceRecordSets, GetChange,
//! and health checks: CreateHealthCheck, GetHealthCheck, GetHealthCheckStatus,
//! UpdateHealthCheck (`Inverted` among its fields), DeleteHealthCheck. A health check's
//! endpoint is healthy until the control API says otherwise ([`set_endpoint_health`]).
//! A change is `PENDING` for [`model::PROPAGATION`] of simulated time, then `INSYNC`, unless the
//! `dns_never_insync` fault names its zone.
//!
//! Errors are `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`
//! with the status codes of the Route 53 model. `InvalidChangeBatch` uses that same shape (the
//! service dropped its old `<InvalidChangeBatch>` root element), with every problem of the batch
//! in one `Message`: `[problem one, problem two]`, which is how the SDKs and the CLI read it.

pub mod model;

use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde_json::json;

pub use model::Route53Account;
use model::{
    Action, AliasTarget, AliasTargets, Change, ChangeStatus, GeoLocation, HealthCheck,
    HealthCheckConfig, HostedZone, RecordChange, RecordSet,
};

use super::xml::{self, Element, XmlWriter};
use super::{Ctx, Fault, Outcome, Reply, SimRequest, World, faults};

const NAMESPACE: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
const API_PREFIX: &str = "/2013-04-01/";
/// Route 53 returns at most this many record sets per page (and 100 hosted zones).
const MAX_RECORD_ITEMS: usize = 300;
const MAX_ZONE_ITEMS: usize = 100;

/// The operation a request asks for, from its method and path.
pub fn operation_of(req: &SimRequest) -> Result<String, Reply> {
    let route = Route::of(req);
    match route {
        Some(route) => Ok(route.operation().to_string()),
        None => Err(error_reply(
            "InvalidInput",
            &format!(
                "The simulator does not serve {} {} (it serves ListHostedZones, GetHostedZone, CreateHostedZone, ListResourceRecordSets, ChangeResourceRecordSets, GetChange, CreateHealthCheck, GetHealthCheck, GetHealthCheckStatus, UpdateHealthCheck and DeleteHealthCheck under /2013-04-01/)",
                req.method, req.path
            ),
            "00000000-0000-0000-0000-000000000000",
        )),
    }
}

/// A Route 53 error in the wire shape the SDKs parse, with the modeled status code.
pub fn error_reply(code: &str, message: &str, request_id: &str) -> Reply {
    let status = status_of(code);
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

/// The HTTP status Route 53 answers an error code with.
fn status_of(code: &str) -> u16 {
    match code {
        "NoSuchHostedZone" | "NoSuchChange" | "NoSuchHealthCheck" | "NoSuchDelegationSet" => 404,
        "HostedZoneAlreadyExists"
        | "ConflictingDomainExists"
        | "HostedZoneNotEmpty"
        | "HealthCheckAlreadyExists"
        | "HealthCheckVersionMismatch" => 409,
        "AccessDenied" | "AccessDeniedException" => 403,
        "InternalFailure" | "InternalError" | "InternalServerError" => 500,
        "ServiceUnavailable" => 503,
        // Throttling, PriorRequestNotComplete, InvalidInput, InvalidChangeBatch and the rest.
        _ => 400,
    }
}

/// The routes Route 53 serves here; IDs are bare (the SDKs strip `/hostedzone/`, and so do we).
enum Route {
    ListHostedZones,
    CreateHostedZone,
    GetHostedZone(String),
    ListResourceRecordSets(String),
    ChangeResourceRecordSets(String),
    GetChange(String),
    CreateHealthCheck,
    GetHealthCheck(String),
    GetHealthCheckStatus(String),
    UpdateHealthCheck(String),
    DeleteHealthCheck(String),
}

impl Route {
    fn of(req: &SimRequest) -> Option<Route> {
        let rest = req.path.strip_prefix(API_PREFIX)?;
        let segments: Vec<String> = rest
            .trim_end_matches('/')
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let get = req.method == axum::http::Method::GET;
        let post = req.method == axum::http::Method::POST;
        let delete = req.method == axum::http::Method::DELETE;
        let route = match segments.as_slice() {
            ["hostedzone"] if get => Route::ListHostedZones,
            ["hostedzone"] if post => Route::CreateHostedZone,
            ["hostedzone", id] if get => Route::GetHostedZone(bare_id(id)),
            ["hostedzone", id, "rrset"] if get => Route::ListResourceRecordSets(bare_id(id)),
            ["hostedzone", id, "rrset"] if post => Route::ChangeResourceRecordSets(bare_id(id)),
            ["change", id] if get => Route::GetChange(bare_id(id)),
            ["healthcheck"] if post => Route::CreateHealthCheck,
            ["healthcheck", id] if get => Route::GetHealthCheck(id.to_string()),
            ["healthcheck", id] if post => Route::UpdateHealthCheck(id.to_string()),
            ["healthcheck", id] if delete => Route::DeleteHealthCheck(id.to_string()),
            ["healthcheck", id, "status"] if get => Route::GetHealthCheckStatus(id.to_string()),
            _ => return None,
        };
        Some(route)
    }

    fn operation(&self) -> &'static str {
        match self {
            Route::ListHostedZones => "ListHostedZones",
            Route::CreateHostedZone => "CreateHostedZone",
            Route::GetHostedZone(_) => "GetHostedZone",
            Route::ListResourceRecordSets(_) => "ListResourceRecordSets",
            Route::ChangeResourceRecordSets(_) => "ChangeResourceRecordSets",
            Route::GetChange(_) => "GetChange",
            Route::CreateHealthCheck => "CreateHealthCheck",
            Route::GetHealthCheck(_) => "GetHealthCheck",
            Route::GetHealthCheckStatus(_) => "GetHealthCheckStatus",
            Route::UpdateHealthCheck(_) => "UpdateHealthCheck",
            Route::DeleteHealthCheck(_) => "DeleteHealthCheck",
        }
    }
}

/// `Z123`, `/hostedzone/Z123` and `/change/C123` all name the same resource.
fn bare_id(id: &str) -> String {
    id.trim_start_matches('/')
        .trim_start_matches("hostedzone/")
        .trim_start_matches("change/")
        .to_string()
}

/// Serves one Route 53 call.
pub fn handle(ctx: &mut Ctx<'_>, _operation: &str, req: &SimRequest) -> Outcome {
    let result = match Route::of(req) {
        Some(Route::ListHostedZones) => list_hosted_zones(ctx, req),
        Some(Route::CreateHostedZone) => create_hosted_zone(ctx, req),
        Some(Route::GetHostedZone(id)) => get_hosted_zone(ctx, &id),
        Some(Route::ListResourceRecordSets(id)) => list_resource_record_sets(ctx, &id, req),
        Some(Route::ChangeResourceRecordSets(id)) => change_resource_record_sets(ctx, &id, req),
        Some(Route::GetChange(id)) => get_change(ctx, &id),
        Some(Route::CreateHealthCheck) => create_health_check(ctx, req),
        Some(Route::GetHealthCheck(id)) => get_health_check(ctx, &id),
        Some(Route::GetHealthCheckStatus(id)) => get_health_check_status(ctx, &id),
        Some(Route::UpdateHealthCheck(id)) => update_health_check(ctx, &id, req),
        Some(Route::DeleteHealthCheck(id)) => delete_health_check(ctx, &id),
        None => Err(ApiError::new(
            "InvalidInput",
            format!("no such route: {} {}", req.method, req.path),
        )),
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) => Outcome::read(error_reply(e.code, &e.message, ctx.request_id)),
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
    fn invalid_input(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidInput", message)
    }
    fn no_such_health_check(id: &str) -> ApiError {
        ApiError::new(
            "NoSuchHealthCheck",
            format!("No health check exists with the specified ID {id}"),
        )
    }
    fn no_such_zone(id: &str) -> ApiError {
        ApiError::new(
            "NoSuchHostedZone",
            format!("No hosted zone found with ID: {id}"),
        )
    }
}

type Handled = Result<Outcome, ApiError>;

fn ok(w: XmlWriter, request_id: &str) -> Reply {
    Reply::xml(200, w.finish()).with_header("x-amzn-RequestId", request_id)
}

fn account<'w>(ctx: &'w mut Ctx<'_>) -> &'w mut Route53Account {
    ctx.world
        .route53
        .entry(ctx.caller.account.clone())
        .or_default()
}

fn list_hosted_zones(ctx: &mut Ctx<'_>, req: &SimRequest) -> Handled {
    let query = req.query_pairs();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let max_items = parse_max_items(param("maxitems"), MAX_ZONE_ITEMS)?;
    let marker = param("marker").map(|m| bare_id(&m));
    let request_id = ctx.request_id.to_string();
    let account = account(ctx);
    let zones: Vec<&HostedZone> = account
        .zones
        .values()
        .filter(|z| marker.as_ref().is_none_or(|m| &z.id >= m))
        .collect();
    let (page, next) = split_page(&zones, max_items);
    let mut w = XmlWriter::document("ListHostedZonesResponse", NAMESPACE);
    w.open("HostedZones");
    for zone in page {
        write_zone(&mut w, zone);
    }
    w.close();
    w.leaf_opt("Marker", marker.as_deref());
    w.leaf("IsTruncated", next.is_some().to_string());
    w.leaf_opt("NextMarker", next.map(|z| z.id.clone()));
    w.leaf("MaxItems", max_items.to_string());
    Ok(Outcome::read(ok(w, &request_id)))
}

fn get_hosted_zone(ctx: &mut Ctx<'_>, id: &str) -> Handled {
    let request_id = ctx.request_id.to_string();
    let zone = account(ctx)
        .zones
        .get(id)
        .ok_or_else(|| ApiError::no_such_zone(id))?;
    let mut w = XmlWriter::document("GetHostedZoneResponse", NAMESPACE);
    write_zone(&mut w, zone);
    write_delegation_set(&mut w, zone);
    Ok(Outcome::read(ok(w, &request_id)))
}

fn create_hosted_zone(ctx: &mut Ctx<'_>, req: &SimRequest) -> Handled {
    let body = parse_body(req)?;
    let name = body
        .child_text("Name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_input(
                "Invalid request: the request has no Name (hint: pass the domain name of the zone)",
            )
        })?
        .to_string();
    let caller_reference = body
        .child_text("CallerReference")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::invalid_input("Invalid request: the request has no CallerReference (hint: pass a unique string per zone)"))?
        .to_string();
    let comment = body
        .child("HostedZoneConfig")
        .and_then(|c| c.child_text("Comment"))
        .map(str::to_string);
    if body
        .child("HostedZoneConfig")
        .and_then(|c| c.child_text("PrivateZone"))
        == Some("true")
    {
        return Err(ApiError::invalid_input(
            "The simulator serves public hosted zones only (hint: omit PrivateZone or set it to false)",
        ));
    }
    if !valid_domain(&name) {
        return Err(ApiError::new(
            "InvalidDomainName",
            format!("{name} is not a valid domain name"),
        ));
    }
    let now = ctx.now;
    let zone_id = model::new_id('Z', ctx.rng);
    let change_id = model::new_id('C', ctx.rng);
    let request_id = ctx.request_id.to_string();
    let account = account(ctx);
    if account
        .zones
        .values()
        .any(|z| z.caller_reference == caller_reference)
    {
        return Err(ApiError::new(
            "HostedZoneAlreadyExists",
            format!(
                "A hosted zone has already been created with the specified caller reference: {caller_reference}"
            ),
        ));
    }
    let zone = HostedZone::new(&zone_id, &name, &caller_reference, comment, now);
    let change = Change {
        id: change_id.clone(),
        zone_id: zone_id.clone(),
        status: ChangeStatus::Pending,
        submitted_at: now,
        comment: None,
    };
    let mut w = XmlWriter::document("CreateHostedZoneResponse", NAMESPACE);
    write_zone(&mut w, &zone);
    write_change_info(&mut w, &change);
    write_delegation_set(&mut w, &zone);
    let params = json!({ "name": zone.name, "caller_reference": caller_reference, "hosted_zone_id": zone_id, "change_id": change_id });
    account.zones.insert(zone_id.clone(), zone);
    account.changes.insert(change_id, change);
    let reply = Reply::xml(201, w.finish())
        .with_header("x-amzn-RequestId", &request_id)
        .with_header(
            "Location",
            format!("https://route53.amazonaws.com/2013-04-01/hostedzone/{zone_id}"),
        );
    Ok(Outcome::mutated(reply, params))
}

fn valid_domain(name: &str) -> bool {
    let trimmed = name.trim_end_matches('.');
    !trimmed.is_empty()
        && trimmed.len() <= 253
        && trimmed.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn list_resource_record_sets(ctx: &mut Ctx<'_>, id: &str, req: &SimRequest) -> Handled {
    let query = req.query_pairs();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let max_items = parse_max_items(param("maxitems"), MAX_RECORD_ITEMS)?;
    let start_name = param("name").map(|n| model::normalize_name(&n));
    let start_type = param("type");
    let start_identifier = param("identifier");
    if start_type.is_some() && start_name.is_none() {
        return Err(ApiError::invalid_input(
            "The input is not valid: a StartRecordType requires a StartRecordName",
        ));
    }
    if let Some(t) = &start_type
        && !model::RECORD_TYPES.contains(&t.as_str())
    {
        return Err(ApiError::invalid_input(format!(
            "Invalid type for resource record set: {t}"
        )));
    }
    let request_id = ctx.request_id.to_string();
    let zone = account(ctx)
        .zones
        .get(id)
        .ok_or_else(|| ApiError::no_such_zone(id))?;
    let start = start_name.as_ref().map(|name| {
        model::order_key(
            name,
            start_type.as_deref().unwrap_or(""),
            start_identifier.as_deref().unwrap_or(""),
        )
    });
    let records: Vec<&RecordSet> = zone
        .records
        .iter()
        .filter(|r| start.as_ref().is_none_or(|s| &r.order_key() >= s))
        .collect();
    let (page, next) = split_page(&records, max_items);
    let mut w = XmlWriter::document("ListResourceRecordSetsResponse", NAMESPACE);
    w.open("ResourceRecordSets");
    for record in page {
        write_record(&mut w, record);
    }
    w.close();
    w.leaf("IsTruncated", next.is_some().to_string());
    if let Some(next) = next {
        w.leaf("NextRecordName", model::wire_name(&next.name));
        w.leaf("NextRecordType", &next.record_type);
        w.leaf_opt("NextRecordIdentifier", next.set_identifier.as_deref());
    }
    w.leaf("MaxItems", max_items.to_string());
    Ok(Outcome::read(ok(w, &request_id)))
}

fn change_resource_record_sets(ctx: &mut Ctx<'_>, id: &str, req: &SimRequest) -> Handled {
    let body = parse_body(req)?;
    let batch = body.child("ChangeBatch").ok_or_else(|| {
        ApiError::invalid_input("Invalid request: the request has no ChangeBatch")
    })?;
    let comment = batch.child_text("Comment").map(str::to_string);
    let changes = parse_changes(batch)?;
    let now = ctx.now;
    let change_id = model::new_id('C', ctx.rng);
    let request_id = ctx.request_id.to_string();
    let targets = AliasTargets {
        load_balancers: ctx
            .world
            .elbv2
            .values()
            .flat_map(|region| region.load_balancers.values())
            .map(|lb| (lb.dns_name.clone(), lb.canonical_hosted_zone_id.clone()))
            .collect(),
    };
    let account = account(ctx);
    // ChangeResourceRecordSets answers NoSuchHealthCheck for a set naming a missing check
    // (Route 53 API Reference, ChangeResourceRecordSets, Errors).
    if let Some(missing) = changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .filter_map(|c| c.record.health_check_id.as_deref())
        .find(|id| !account.health_checks.contains_key(*id))
    {
        return Err(ApiError::no_such_health_check(missing));
    }
    let zone = account
        .zones
        .get_mut(id)
        .ok_or_else(|| ApiError::no_such_zone(id))?;
    let records = model::apply_batch(zone, &changes, &targets).map_err(|problems| {
        ApiError::new("InvalidChangeBatch", format!("[{}]", problems.join(", ")))
    })?;
    zone.records = records;
    let change = Change {
        id: change_id.clone(),
        zone_id: id.to_string(),
        status: ChangeStatus::Pending,
        submitted_at: now,
        comment,
    };
    let mut w = XmlWriter::document("ChangeResourceRecordSetsResponse", NAMESPACE);
    write_change_info(&mut w, &change);
    account.changes.insert(change_id.clone(), change);
    let params = json!({
        "hosted_zone_id": id,
        "change_id": change_id,
        "changes": changes.iter().map(|c| json!({
            "action": c.action.as_str(),
            "record": serde_json::to_value(&c.record).expect("record sets serialise"),
        })).collect::<Vec<_>>(),
    });
    Ok(Outcome::mutated(ok(w, &request_id), params))
}

fn get_change(ctx: &mut Ctx<'_>, id: &str) -> Handled {
    let request_id = ctx.request_id.to_string();
    let change = account(ctx).changes.get(id).ok_or_else(|| {
        ApiError::new(
            "NoSuchChange",
            format!("A change with the specified change ID does not exist: {id}"),
        )
    })?;
    let mut w = XmlWriter::document("GetChangeResponse", NAMESPACE);
    write_change_info(&mut w, change);
    Ok(Outcome::read(ok(w, &request_id)))
}

fn create_health_check(ctx: &mut Ctx<'_>, req: &SimRequest) -> Handled {
    let body = parse_body(req)?;
    let caller_reference = body
        .child_text("CallerReference")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::invalid_input("Invalid request: the request has no CallerReference (hint: pass a unique string per health check)"))?
        .to_string();
    let config = body.child("HealthCheckConfig").ok_or_else(|| {
        ApiError::invalid_input("Invalid request: the request has no HealthCheckConfig")
    })?;
    let config = parse_health_check_config(config)?;
    let id = uuid_like(ctx.rng);
    let request_id = ctx.request_id.to_string();
    let account = account(ctx);
    // The same CallerReference and settings return the existing check; other settings are
    // HealthCheckAlreadyExists (CreateHealthCheck, Route 53 API Reference).
    if let Some(existing) = account
        .health_checks
        .values()
        .find(|c| c.caller_reference == caller_reference)
    {
        if existing.config != config {
            return Err(ApiError::new(
                "HealthCheckAlreadyExists",
                format!(
                    "A health check with caller reference {caller_reference} already exists with different settings"
                ),
            ));
        }
        let mut w = XmlWriter::document("CreateHealthCheckResponse", NAMESPACE);
        write_health_check(&mut w, existing);
        return Ok(Outcome::read(
            Reply::xml(201, w.finish()).with_header("x-amzn-RequestId", &request_id),
        ));
    }
    let check = HealthCheck {
        id: id.clone(),
        caller_reference,
        config,
        version: 1,
        endpoint_healthy: true,
    };
    let mut w = XmlWriter::document("CreateHealthCheckResponse", NAMESPACE);
    write_health_check(&mut w, &check);
    let params = json!({ "health_check_id": id, "config": check.config });
    account.health_checks.insert(id.clone(), check);
    let reply = Reply::xml(201, w.finish())
        .with_header("x-amzn-RequestId", &request_id)
        .with_header(
            "Location",
            format!("https://route53.amazonaws.com/2013-04-01/healthcheck/{id}"),
        );
    Ok(Outcome::mutated(reply, params))
}

/// Health check IDs are UUIDs.
fn uuid_like(rng: &mut impl rand::Rng) -> String {
    let hex: String = (0..32)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("a hex digit"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn parse_health_check_config(config: &Element) -> Result<HealthCheckConfig, ApiError> {
    let check_type = config.child_text("Type").unwrap_or_default();
    if !model::HEALTH_CHECK_TYPES.contains(&check_type) {
        return Err(ApiError::invalid_input(format!(
            "1 validation error detected: Value '{check_type}' at 'healthCheckConfig.type' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            model::HEALTH_CHECK_TYPES.join(", ")
        )));
    }
    let number = |field: &str, default: i64| -> Result<i64, ApiError> {
        match config.child_text(field) {
            None => Ok(default),
            Some(t) => t.parse().map_err(|_| {
                ApiError::invalid_input(format!("Invalid XML ; Value '{t}' is not a valid {field}"))
            }),
        }
    };
    let text = |field: &str| config.child_text(field).map(str::to_string);
    let endpoint = matches!(
        check_type,
        "HTTP" | "HTTPS" | "HTTP_STR_MATCH" | "HTTPS_STR_MATCH" | "TCP"
    );
    let parsed = HealthCheckConfig {
        check_type: check_type.to_string(),
        ip_address: text("IPAddress"),
        port: config
            .child_text("Port")
            .map(|_| number("Port", 0))
            .transpose()?,
        resource_path: text("ResourcePath"),
        fqdn: text("FullyQualifiedDomainName"),
        request_interval: number("RequestInterval", 30)?,
        failure_threshold: number("FailureThreshold", 3)?,
        inverted: config.child_text("Inverted") == Some("true"),
    };
    if endpoint && parsed.ip_address.is_none() && parsed.fqdn.is_none() {
        return Err(ApiError::invalid_input(
            "Invalid request: an endpoint health check needs an IPAddress or a FullyQualifiedDomainName",
        ));
    }
    Ok(parsed)
}

fn get_health_check(ctx: &mut Ctx<'_>, id: &str) -> Handled {
    let request_id = ctx.request_id.to_string();
    let check = account(ctx)
        .health_checks
        .get(id)
        .ok_or_else(|| ApiError::no_such_health_check(id))?;
    let mut w = XmlWriter::document("GetHealthCheckResponse", NAMESPACE);
    write_health_check(&mut w, check);
    Ok(Outcome::read(ok(w, &request_id)))
}

/// One observation per checker region, all alike: the endpoint's health as the control API set
/// it, reversed when the check is inverted.
fn get_health_check_status(ctx: &mut Ctx<'_>, id: &str) -> Handled {
    let request_id = ctx.request_id.to_string();
    let now = ctx.now;
    let check = account(ctx)
        .health_checks
        .get(id)
        .ok_or_else(|| ApiError::no_such_health_check(id))?;
    let status = match (check.reports_healthy(), check.config.inverted) {
        (true, false) => "Success: HTTP Status Code 200, OK",
        (false, false) => {
            "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are being blocked by your firewall."
        }
        (true, true) => "Success: the endpoint is down and the health check is inverted",
        (false, true) => "Failure: the endpoint is up and the health check is inverted",
    };
    let mut w = XmlWriter::document("GetHealthCheckStatusResponse", NAMESPACE);
    w.open("HealthCheckObservations");
    for (region, ip) in [
        ("us-east-1", "15.177.2.1"),
        ("us-west-1", "15.177.10.1"),
        ("eu-west-1", "15.177.62.1"),
    ] {
        w.open("HealthCheckObservation")
            .leaf("Region", region)
            .leaf("IPAddress", ip)
            .open("StatusReport")
            .leaf("Status", status)
            .leaf("CheckedTime", super::wire::xml_timestamp(now))
            .close()
            .close();
    }
    w.close();
    Ok(Outcome::read(ok(w, &request_id)))
}

/// UpdateHealthCheck: the fields given replace the current ones; a HealthCheckVersion that is
/// not the current one is HealthCheckVersionMismatch (Route 53 API Reference).
fn update_health_check(ctx: &mut Ctx<'_>, id: &str, req: &SimRequest) -> Handled {
    let body = parse_body(req)?;
    let request_id = ctx.request_id.to_string();
    let check = account(ctx)
        .health_checks
        .get_mut(id)
        .ok_or_else(|| ApiError::no_such_health_check(id))?;
    if let Some(version) = body.child_text("HealthCheckVersion")
        && version != check.version.to_string()
    {
        return Err(ApiError::new(
            "HealthCheckVersionMismatch",
            format!(
                "The value of HealthCheckVersion in the request ({version}) doesn't match the value of HealthCheckVersion in the health check ({})",
                check.version
            ),
        ));
    }
    let number = |field: &str| -> Result<Option<i64>, ApiError> {
        body.child_text(field)
            .map(|t| {
                t.parse().map_err(|_| {
                    ApiError::invalid_input(format!(
                        "Invalid XML ; Value '{t}' is not a valid {field}"
                    ))
                })
            })
            .transpose()
    };
    let mut config = check.config.clone();
    if let Some(inverted) = body.child_text("Inverted") {
        config.inverted = inverted == "true";
    }
    if let Some(ip) = body.child_text("IPAddress") {
        config.ip_address = Some(ip.to_string());
    }
    if let Some(port) = number("Port")? {
        config.port = Some(port);
    }
    if let Some(path) = body.child_text("ResourcePath") {
        config.resource_path = Some(path.to_string());
    }
    if let Some(fqdn) = body.child_text("FullyQualifiedDomainName") {
        config.fqdn = Some(fqdn.to_string());
    }
    if let Some(threshold) = number("FailureThreshold")? {
        config.failure_threshold = threshold;
    }
    check.config = config;
    check.version += 1;
    let mut w = XmlWriter::document("UpdateHealthCheckResponse", NAMESPACE);
    write_health_check(&mut w, check);
    let params = json!({ "health_check_id": id, "config": check.config, "version": check.version });
    Ok(Outcome::mutated(ok(w, &request_id), params))
}

/// DeleteHealthCheck; a check that a record set names is HealthCheckInUse (Route 53 API
/// Reference).
fn delete_health_check(ctx: &mut Ctx<'_>, id: &str) -> Handled {
    let request_id = ctx.request_id.to_string();
    let account = account(ctx);
    if !account.health_checks.contains_key(id) {
        return Err(ApiError::no_such_health_check(id));
    }
    let in_use = account
        .zones
        .values()
        .flat_map(|z| z.records.iter())
        .any(|r| r.health_check_id.as_deref() == Some(id));
    if in_use {
        return Err(ApiError::new(
            "HealthCheckInUse",
            format!("The health check {id} is still referenced from a resource record set"),
        ));
    }
    account.health_checks.remove(id);
    let w = XmlWriter::document("DeleteHealthCheckResponse", NAMESPACE);
    Ok(Outcome::mutated(
        ok(w, &request_id),
        json!({ "health_check_id": id }),
    ))
}

fn write_health_check(w: &mut XmlWriter, check: &HealthCheck) {
    let config = &check.config;
    w.open("HealthCheck")
        .leaf("Id", &check.id)
        .leaf("CallerReference", &check.caller_reference)
        .open("HealthCheckConfig");
    w.leaf_opt("IPAddress", config.ip_address.as_deref());
    w.leaf_opt("Port", config.port.map(|p| p.to_string()));
    w.leaf("Type", &config.check_type);
    w.leaf_opt("ResourcePath", config.resource_path.as_deref());
    w.leaf_opt("FullyQualifiedDomainName", config.fqdn.as_deref());
    w.leaf("RequestInterval", config.request_interval.to_string())
        .leaf("FailureThreshold", config.failure_threshold.to_string())
        .leaf("Inverted", config.inverted.to_string())
        .close()
        .leaf("HealthCheckVersion", check.version.to_string())
        .close();
}

/// Sets whether a health check's endpoint answers (the control API). Returns false when no
/// account has a check with this ID.
pub fn set_endpoint_health(world: &mut World, id: &str, healthy: bool) -> bool {
    match world
        .route53
        .values_mut()
        .find_map(|a| a.health_checks.get_mut(id))
    {
        Some(check) => {
            check.endpoint_healthy = healthy;
            true
        }
        None => false,
    }
}

fn parse_body(req: &SimRequest) -> Result<Element, ApiError> {
    xml::parse(&req.body).map_err(|e| ApiError::invalid_input(format!("Invalid XML ; {e}")))
}

fn parse_max_items(value: Option<String>, limit: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(limit),
        Some(text) => match text.parse::<usize>() {
            Ok(0) | Err(_) => Err(ApiError::invalid_input(format!(
                "1 validation error detected: Value '{text}' at 'maxItems' failed to satisfy constraint: Member must be a positive integer"
            ))),
            // Route 53 quietly caps larger pages.
            Ok(n) => Ok(n.min(limit)),
        },
    }
}

/// The first `max` items and the first item left over, if any.
fn split_page<'a, T>(items: &'a [&'a T], max: usize) -> (&'a [&'a T], Option<&'a T>) {
    if items.len() > max {
        (&items[..max], Some(items[max]))
    } else {
        (items, None)
    }
}

fn parse_changes(batch: &Element) -> Result<Vec<RecordChange>, ApiError> {
    let changes: Vec<&Element> = batch
        .child("Changes")
        .map(|c| c.children_named("Change").collect())
        .unwrap_or_default();
    if changes.is_empty() {
        return Err(ApiError::invalid_input(
            "Invalid XML ; the ChangeBatch must contain at least one Change",
        ));
    }
    changes.into_iter().map(parse_change).collect()
}

fn parse_change(change: &Element) -> Result<RecordChange, ApiError> {
    let action_text = change.child_text("Action").unwrap_or_default();
    let action = Action::parse(action_text).ok_or_else(|| {
        ApiError::invalid_input(format!(
            "Invalid XML ; Value '{action_text}' is not valid for Action: it must be one of [CREATE, DELETE, UPSERT]"
        ))
    })?;
    let set = change.child("ResourceRecordSet").ok_or_else(|| {
        ApiError::invalid_input("Invalid XML ; a Change has no ResourceRecordSet")
    })?;
    let record = parse_record(set, action)?;
    Ok(RecordChange { action, record })
}

fn parse_record(set: &Element, action: Action) -> Result<RecordSet, ApiError> {
    let name = set.child_text("Name").unwrap_or_default();
    let record_type = set.child_text("Type").unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::invalid_input(
            "Invalid XML ; a ResourceRecordSet has no Name",
        ));
    }
    if !model::RECORD_TYPES.contains(&record_type) {
        return Err(ApiError::invalid_input(format!(
            "Invalid XML ; Value '{record_type}' is not a valid record type (one of {})",
            model::RECORD_TYPES.join(", ")
        )));
    }
    let number = |field: &str| -> Result<Option<i64>, ApiError> {
        set.child_text(field)
            .map(|t| {
                t.parse::<i64>().map_err(|_| {
                    ApiError::invalid_input(format!(
                        "Invalid XML ; Value '{t}' is not a valid {field}"
                    ))
                })
            })
            .transpose()
    };
    let text = |field: &str| set.child_text(field).map(str::to_string);
    let values: Vec<String> = set
        .child("ResourceRecords")
        .map(|rr| {
            rr.children_named("ResourceRecord")
                .filter_map(|r| r.child_text("Value"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let alias = set.child("AliasTarget").map(|a| AliasTarget {
        hosted_zone_id: a.child_text("HostedZoneId").unwrap_or_default().to_string(),
        dns_name: model::normalize_name(a.child_text("DNSName").unwrap_or_default()),
        evaluate_target_health: a.child_text("EvaluateTargetHealth") == Some("true"),
    });
    let geo_location = set.child("GeoLocation").map(|g| GeoLocation {
        continent_code: g.child_text("ContinentCode").map(str::to_string),
        country_code: g.child_text("CountryCode").map(str::to_string),
        subdivision_code: g.child_text("SubdivisionCode").map(str::to_string),
    });
    let record = RecordSet {
        name: model::normalize_name(name),
        record_type: record_type.to_string(),
        set_identifier: text("SetIdentifier"),
        weight: number("Weight")?,
        region: text("Region"),
        failover: text("Failover"),
        geo_location,
        multi_value_answer: set.child_text("MultiValueAnswer").map(|v| v == "true"),
        health_check_id: text("HealthCheckId"),
        ttl: number("TTL")?,
        values,
        alias,
    };
    let plain_complete = record.ttl.is_some() && !record.values.is_empty();
    let exactly_one = record.alias.is_some() != plain_complete
        && !(record.alias.is_some() && (record.ttl.is_some() || !record.values.is_empty()));
    if !exactly_one {
        return Err(ApiError::invalid_input(format!(
            "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found {} in Change with [Action={}, Name={}, Type={}, SetIdentifier={}]",
            if record.alias.is_some() {
                "more than one"
            } else {
                "none"
            },
            action.as_str(),
            model::wire_name(&record.name),
            record.record_type,
            record.set_identifier.as_deref().unwrap_or("null"),
        )));
    }
    check_routing_fields(&record, action)?;
    Ok(record)
}

/// The routing fields of one set: a SetIdentifier exactly when one routing policy is set, a
/// Weight of 0 to 255, a Failover of PRIMARY or SECONDARY (ResourceRecordSet, Route 53 API
/// Reference).
fn check_routing_fields(record: &RecordSet, action: Action) -> Result<(), ApiError> {
    let change = format!(
        "in Change with [Action={}, Name={}, Type={}, SetIdentifier={}]",
        action.as_str(),
        model::wire_name(&record.name),
        record.record_type,
        record.set_identifier.as_deref().unwrap_or("null"),
    );
    let policies = record.policy_fields();
    if record.set_identifier.is_none() && policies > 0 {
        return Err(ApiError::invalid_input(format!(
            "Invalid request: Missing field 'SetIdentifier' {change}"
        )));
    }
    if record.set_identifier.is_some() && policies != 1 {
        return Err(ApiError::invalid_input(format!(
            "Invalid request: Expected exactly one of [Weight, Region, Failover, GeoLocation, MultiValueAnswer, GeoProximityLocation, or CidrRoutingConfig], but found {} {change}",
            if policies == 0 {
                "none"
            } else {
                "more than one"
            }
        )));
    }
    if let Some(weight) = record.weight
        && !(0..=255).contains(&weight)
    {
        return Err(ApiError::invalid_input(format!(
            "1 validation error detected: Value '{weight}' at 'changeBatch.changes.member.resourceRecordSet.weight' failed to satisfy constraint: Member must have value between 0 and 255"
        )));
    }
    if let Some(role) = &record.failover
        && role != "PRIMARY"
        && role != "SECONDARY"
    {
        return Err(ApiError::invalid_input(format!(
            "1 validation error detected: Value '{role}' at 'changeBatch.changes.member.resourceRecordSet.failover' failed to satisfy constraint: Member must satisfy enum value set: [PRIMARY, SECONDARY]"
        )));
    }
    Ok(())
}

fn write_zone(w: &mut XmlWriter, zone: &HostedZone) {
    w.open("HostedZone")
        .leaf("Id", format!("/hostedzone/{}", zone.id))
        .leaf("Name", model::wire_name(&zone.name))
        .leaf("CallerReference", &zone.caller_reference)
        .open("Config");
    w.leaf_opt("Comment", zone.comment.as_deref());
    w.leaf("PrivateZone", zone.private_zone.to_string())
        .close()
        .leaf("ResourceRecordSetCount", zone.records.len().to_string())
        .close();
}

fn write_delegation_set(w: &mut XmlWriter, zone: &HostedZone) {
    w.open("DelegationSet").open("NameServers");
    for ns in &zone.name_servers {
        w.leaf("NameServer", ns.trim_end_matches('.'));
    }
    w.close().close();
}

fn write_change_info(w: &mut XmlWriter, change: &Change) {
    w.open("ChangeInfo")
        .leaf("Id", format!("/change/{}", change.id))
        .leaf("Status", change.status.as_str())
        .leaf(
            "SubmittedAt",
            super::wire::xml_timestamp(change.submitted_at),
        );
    w.leaf_opt("Comment", change.comment.as_deref());
    w.close();
}

fn write_record(w: &mut XmlWriter, record: &RecordSet) {
    w.open("ResourceRecordSet")
        .leaf("Name", model::wire_name(&record.name))
        .leaf("Type", &record.record_type);
    w.leaf_opt("SetIdentifier", record.set_identifier.as_deref());
    w.leaf_opt("Weight", record.weight.map(|v| v.to_string()));
    w.leaf_opt("Region", record.region.as_deref());
    w.leaf_opt("Failover", record.failover.as_deref());
    if let Some(geo) = &record.geo_location {
        w.open("GeoLocation");
        w.leaf_opt("ContinentCode", geo.continent_code.as_deref());
        w.leaf_opt("CountryCode", geo.country_code.as_deref());
        w.leaf_opt("SubdivisionCode", geo.subdivision_code.as_deref());
        w.close();
    }
    w.leaf_opt(
        "MultiValueAnswer",
        record.multi_value_answer.map(|v| v.to_string()),
    );
    w.leaf_opt("TTL", record.ttl.map(|v| v.to_string()));
    if !record.values.is_empty() {
        w.open("ResourceRecords");
        for value in &record.values {
            w.open("ResourceRecord").leaf("Value", value).close();
        }
        w.close();
    }
    if let Some(alias) = &record.alias {
        w.open("AliasTarget")
            .leaf("HostedZoneId", &alias.hosted_zone_id)
            .leaf("DNSName", &alias.dns_name)
            .leaf(
                "EvaluateTargetHealth",
                alias.evaluate_target_health.to_string(),
            )
            .close();
    }
    w.leaf_opt("HealthCheckId", record.health_check_id.as_deref());
    w.close();
}

/// Changes reach `INSYNC` once they have propagated, unless their zone is faulted.
pub fn advance(world: &mut World, now: DateTime<Utc>, faults: &[Fault]) {
    for account in world.route53.values_mut() {
        for change in account.changes.values_mut() {
            if change.status == ChangeStatus::Pending
                && now - change.submitted_at >= model::PROPAGATION
                && !faults::dns_never_insync(faults, &change.zone_id)
            {
                change.status = ChangeStatus::Insync;
            }
        }
    }
}

/// Creates a hosted zone with a given ID (seeding). Returns false when it already exists.
pub fn seed_zone(
    world: &mut World,
    account: &str,
    zone_id: &str,
    zone_name: &str,
    now: DateTime<Utc>,
) -> bool {
    let id = bare_id(zone_id);
    let account = world.route53.entry(account.to_string()).or_default();
    if account.zones.contains_key(&id) {
        return false;
    }
    let zone = HostedZone::new(
        &id,
        zone_name,
        &format!("drs-runbook-seed-{id}"),
        Some("seeded by drs-runbook".into()),
        now,
    );
    account.zones.insert(id, zone);
    true
}

/// Creates a plain record set in a seeded zone. Returns false when the zone is missing, the
/// set already exists, or there are no values (Route 53 has no empty record sets).
pub fn seed_record(
    world: &mut World,
    account: &str,
    zone_id: &str,
    name: &str,
    record_type: &str,
    ttl: u32,
    values: &[String],
) -> bool {
    if values.is_empty() {
        return false;
    }
    let record = RecordSet {
        ttl: Some(i64::from(ttl)),
        values: values.to_vec(),
        ..model::plain(&model::normalize_name(name), record_type)
    };
    seed_set(world, account, zone_id, record)
}

/// Creates an alias record set in a seeded zone. Returns false when the zone is missing or the
/// set already exists.
pub fn seed_alias_record(
    world: &mut World,
    account: &str,
    zone_id: &str,
    name: &str,
    record_type: &str,
    dns_name: &str,
    alias_zone_id: &str,
) -> bool {
    let record = RecordSet {
        alias: Some(AliasTarget {
            hosted_zone_id: alias_zone_id.to_string(),
            dns_name: model::normalize_name(dns_name),
            evaluate_target_health: false,
        }),
        ..model::plain(&model::normalize_name(name), record_type)
    };
    seed_set(world, account, zone_id, record)
}

fn seed_set(world: &mut World, account: &str, zone_id: &str, record: RecordSet) -> bool {
    let Some(zone) = world
        .route53
        .get_mut(account)
        .and_then(|a| a.zones.get_mut(&bare_id(zone_id)))
    else {
        return false;
    };
    if zone.records.iter().any(|r| r.same_set(&record)) || !model::in_zone(&record.name, &zone.name)
    {
        return false;
    }
    zone.records.push(record);
    zone.records.sort_by_key(RecordSet::order_key);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_modeled_status_and_the_request_id() {
        let reply = error_reply(
            "NoSuchHostedZone",
            "No hosted zone found with ID: Z1",
            "rid-1",
        );
        assert_eq!(reply.status, 404);
        let body = String::from_utf8(reply.body).unwrap();
        assert!(body.contains("<Code>NoSuchHostedZone</Code>"), "{body}");
        assert!(body.contains("<RequestId>rid-1</RequestId>"), "{body}");
        assert!(
            reply
                .headers
                .iter()
                .any(|(k, v)| k == "x-amzn-RequestId" && v == "rid-1")
        );
        assert_eq!(error_reply("Throttling", "Rate exceeded", "r").status, 400);
        assert_eq!(error_reply("ServiceUnavailable", "x", "r").status, 503);
    }

    #[test]
    fn seeding_is_idempotent() {
        let mut world = World::default();
        let now = Utc::now();
        assert!(seed_zone(
            &mut world,
            "111111111111",
            "Z0123",
            "example.com.",
            now
        ));
        assert!(!seed_zone(
            &mut world,
            "111111111111",
            "/hostedzone/Z0123",
            "example.com.",
            now
        ));
        let ips = vec!["10.0.1.10".to_string()];
        assert!(seed_record(
            &mut world,
            "111111111111",
            "Z0123",
            "api.example.com",
            "A",
            60,
            &ips
        ));
        assert!(!seed_record(
            &mut world,
            "111111111111",
            "Z0123",
            "api.example.com.",
            "A",
            60,
            &["10.9.9.9".into()]
        ));
        assert!(!seed_record(
            &mut world,
            "111111111111",
            "Z9999",
            "api.example.com.",
            "A",
            60,
            &ips
        ));
        assert!(seed_alias_record(
            &mut world,
            "111111111111",
            "Z0123",
            "www.example.com.",
            "A",
            "lb.us-east-1.elb.amazonaws.com",
            "Z35SXDOTRQ7X7K"
        ));
        let zone = &world.route53["111111111111"].zones["Z0123"];
        assert_eq!(zone.records.len(), 4);
        let api = zone
            .records
            .iter()
            .find(|r| r.name == "api.example.com.")
            .unwrap();
        assert_eq!(api.values, ["10.0.1.10"]);
    }
}
