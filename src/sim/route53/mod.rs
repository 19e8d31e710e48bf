//! Simulated Route 53 (restXml under `/2013-04-01/`): hosted zones, record sets, changes.
//!
//! Route 53 is global, so state is per caller account. Served operations: ListHostedZones,
//! GetHostedZone, CreateHostedZone, ListResourceRecordSets, ChangeResourceRecordSets, GetChange.
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
use model::{Action, AliasTarget, Change, ChangeStatus, HostedZone, RecordChange, RecordSet};

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
                "The simulator does not serve {} {} (it serves ListHostedZones, GetHostedZone, CreateHostedZone, ListResourceRecordSets, ChangeResourceRecordSets and GetChange under /2013-04-01/)",
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
        "HostedZoneAlreadyExists" | "ConflictingDomainExists" | "HostedZoneNotEmpty" => 409,
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
        let route = match segments.as_slice() {
            ["hostedzone"] if get => Route::ListHostedZones,
            ["hostedzone"] if post => Route::CreateHostedZone,
            ["hostedzone", id] if get => Route::GetHostedZone(bare_id(id)),
            ["hostedzone", id, "rrset"] if get => Route::ListResourceRecordSets(bare_id(id)),
            ["hostedzone", id, "rrset"] if post => Route::ChangeResourceRecordSets(bare_id(id)),
            ["change", id] if get => Route::GetChange(bare_id(id)),
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
    let account = account(ctx);
    let zone = account
        .zones
        .get_mut(id)
        .ok_or_else(|| ApiError::no_such_zone(id))?;
    let records = model::apply_batch(zone, &changes).map_err(|problems| {
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
    let record = RecordSet {
        name: model::normalize_name(name),
        record_type: record_type.to_string(),
        set_identifier: text("SetIdentifier"),
        weight: number("Weight")?,
        region: text("Region"),
        failover: text("Failover"),
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
    Ok(record)
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
