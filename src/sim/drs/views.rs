//! The wire JSON of source servers, recovery instances, jobs and configurations, and the
//! read operations that list them. Values that follow the clock (replication state, lag,
//! "last seen") are computed here from the persisted state and `now`.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    Agent, DrsRegion, Job, JobKind, LogEvent, LogItem, RecoveryInstance, SourceServer,
};
use super::{
    Ctx, Done, DrsError, Scope, check_count, check_id, check_instance_id, hex_id, input,
    iso_duration, jitter, page, parse_arn,
};
use crate::sim::World;
use crate::sim::wire::drs_timestamp;

/// The simulated hardware of a server, derived from its ID.
pub struct Hardware {
    pub cores: i64,
    pub ram_bytes: i64,
    pub disk_bytes: i64,
}

const GIB: i64 = 1 << 30;

pub fn hardware(server_id: &str) -> Hardware {
    let cores = 2 << jitter(&[server_id, "cores"], 0, 2);
    Hardware {
        cores,
        ram_bytes: cores * 2 * GIB,
        disk_bytes: (8 * GIB) << jitter(&[server_id, "disk"], 0, 3),
    }
}

const OS: &str = "Linux version 6.1.112-122.189.amzn2023.x86_64 (Amazon Linux 2023)";
const ROOT_DEVICE: &str = "/dev/xvda";

/// The agent reports every 30 seconds: the last report at or before `now`.
fn last_seen(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::seconds(now.timestamp().rem_euclid(30))
}

fn mac_of(id: &str) -> String {
    let h = hex_id(&[id, "mac"], 10);
    format!(
        "0e:{}:{}:{}:{}:{}",
        &h[0..2],
        &h[2..4],
        &h[4..6],
        &h[6..8],
        &h[8..10]
    )
}

pub fn source_server_json(scope: &Scope, s: &SourceServer, now: DateTime<Utc>) -> Value {
    let hw = hardware(&s.id);
    let state = s.replication.state_at(now);
    let mut replication = json!({
        "dataReplicationState": state,
        "replicatedDisks": [{
            "deviceName": ROOT_DEVICE,
            "totalStorageBytes": if state == "DISCONNECTED" { 0 } else { hw.disk_bytes },
            "replicatedStorageBytes": if state == "CONTINUOUS" { hw.disk_bytes } else { 0 },
            "rescannedStorageBytes": 0,
            "backloggedStorageBytes": 0,
        }],
        "stagingAvailabilityZone": format!("{}a", scope.region),
    });
    match state {
        "CONTINUOUS" => replication["lagDuration"] = json!("P0D"),
        "INITIATING" | "INITIAL_SYNC" => {
            if let Some(eta) = s.replication.continuous_from() {
                replication["etaDateTime"] = json!(drs_timestamp(eta));
            }
        }
        _ => {}
    }
    if let super::model::Replication::Active { since, .. } = &s.replication {
        replication["dataReplicationInitiation"] =
            json!({ "startDateTime": drs_timestamp(*since) });
    }
    let seen = match &s.replication {
        super::model::Replication::Disconnected { at } => *at,
        _ => last_seen(now),
    };
    let mut life_cycle = json!({
        "addedToServiceDateTime": drs_timestamp(s.added_at),
        "firstByteDateTime": drs_timestamp(s.added_at + Duration::seconds(40)),
        "elapsedReplicationDuration": iso_duration(now - s.added_at),
        "lastSeenByServiceDateTime": drs_timestamp(seen),
    });
    if let Some(last) = &s.last_launch {
        life_cycle["lastLaunch"] = json!({
            "initiated": {
                "apiCallDateTime": drs_timestamp(last.api_call_at),
                "jobID": last.job_id,
                "type": if last.drill { "DRILL" } else { "RECOVERY" },
            },
            "status": last.status.as_str(),
        });
    }
    let last_launch_result = match s.last_launch.as_ref().map(|l| l.status) {
        None => "NOT_STARTED",
        Some(super::model::LaunchStatus::Pending | super::model::LaunchStatus::InProgress) => {
            "PENDING"
        }
        Some(super::model::LaunchStatus::Failed) => "FAILED",
        Some(_) => "SUCCEEDED",
    };
    let mut out = json!({
        "sourceServerID": s.id,
        "arn": scope.arn("source-server", &s.id),
        "tags": s.tags,
        "lastLaunchResult": last_launch_result,
        "dataReplicationInfo": replication,
        "lifeCycle": life_cycle,
        "sourceProperties": {
            "lastUpdatedDateTime": drs_timestamp(s.added_at),
            "recommendedInstanceType": "m5.large",
            "identificationHints": {
                "hostname": s.origin.hostname,
                "fqdn": format!("{}.ec2.internal", s.origin.hostname),
                "awsInstanceID": s.origin.instance_id,
            },
            "networkInterfaces": [{
                "macAddress": mac_of(&s.origin.instance_id),
                "ips": [s.origin.private_ip],
                "isPrimary": true,
            }],
            "disks": [{ "deviceName": ROOT_DEVICE, "bytes": hw.disk_bytes }],
            "cpus": [{ "cores": hw.cores, "modelName": "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz" }],
            "ramBytes": hw.ram_bytes,
            "os": { "fullString": OS },
            "supportsNitroInstances": true,
        },
        "stagingArea": { "status": "NOT_EXTENDED", "stagingAccountID": scope.account },
        "sourceCloudProperties": {
            "originAccountID": s.origin.account,
            "originRegion": s.origin.region,
            "originAvailabilityZone": s.origin.availability_zone,
        },
        "replicationDirection": s.direction.as_str(),
        "agentVersion": "4.7.2",
    });
    if let Some(id) = &s.recovery_instance_id {
        out["recoveryInstanceId"] = json!(id);
    }
    if let Some(reversed) = &s.reversed_arn {
        out["reversedDirectionSourceServerArn"] = json!(reversed);
    }
    out
}

/// The source server an ARN names, wherever it lives.
pub fn server_by_arn<'w>(world: &'w World, server_arn: &str) -> Option<&'w SourceServer> {
    let (account, region, kind, id) = parse_arn(server_arn)?;
    if kind != "source-server" {
        return None;
    }
    world
        .drs
        .get(&crate::sim::scope_key(&account, &region))?
        .source_servers
        .get(&id)
}

pub fn recovery_instance_json(
    world: &World,
    scope: &Scope,
    ri: &RecoveryInstance,
    now: DateTime<Utc>,
) -> Value {
    let ec2 = world.ec2.get(&ri.id);
    let hw = hardware(&ri.source_server_id);
    let hostname = ec2.map(|i| i.hostname.clone()).unwrap_or_default();
    let ip = ec2.map(|i| i.private_ip.clone()).unwrap_or_default();
    // The failback state follows the reversed-direction source server (A2) B2 replicates into.
    let reversed = ri
        .failback
        .as_ref()
        .and_then(|link| server_by_arn(world, &link.source_server_arn));
    let reversed_state = reversed.map(|a2| a2.replication.state_at(now));
    let failback_state = match reversed_state {
        Some("INITIATING" | "INITIAL_SYNC") => "FAILBACK_IN_PROGRESS",
        Some("CONTINUOUS") => "FAILBACK_READY_FOR_LAUNCH",
        _ => "FAILBACK_NOT_STARTED",
    };
    let replication_state = if ri.disconnected {
        "DISCONNECTED"
    } else {
        // A2's own state, until it is disconnected (then B2 replicates nowhere).
        reversed_state
            .filter(|state| *state != "DISCONNECTED")
            .unwrap_or("NOT_STARTED")
    };
    let mut replication = json!({
        "dataReplicationState": replication_state,
        "replicatedDisks": [{
            "deviceName": ROOT_DEVICE,
            "totalStorageBytes": if ri.disconnected { 0 } else { hw.disk_bytes },
            "replicatedStorageBytes": if replication_state == "CONTINUOUS" { hw.disk_bytes } else { 0 },
            "rescannedStorageBytes": 0,
            "backloggedStorageBytes": 0,
        }],
    });
    if replication_state == "CONTINUOUS" {
        replication["lagDuration"] = json!("P0D");
    }
    let mut failback = json!({ "state": failback_state, "failbackToOriginalServer": false });
    if let Some(link) = &ri.failback {
        failback["failbackInitiationTime"] = json!(drs_timestamp(link.started_at));
        failback["agentLastSeenByServiceDateTime"] = json!(drs_timestamp(last_seen(now)));
        failback["failbackLaunchType"] = json!(if ri.drill { "DRILL" } else { "RECOVERY" });
    }
    let mut out = json!({
        "recoveryInstanceID": ri.id,
        "ec2InstanceID": ri.id,
        "ec2InstanceState": ec2.map(|i| i.state.as_drs()).unwrap_or("NOT_FOUND"),
        "jobID": ri.job_id,
        "sourceServerID": ri.source_server_id,
        "arn": scope.arn("recovery-instance", &ri.id),
        "tags": ri.tags,
        "isDrill": ri.drill,
        "originEnvironment": "AWS",
        "originAvailabilityZone": format!("{}a", scope.region),
        "failback": failback,
        "dataReplicationInfo": replication,
        "recoveryInstanceProperties": {
            "lastUpdatedDateTime": drs_timestamp(ri.launched_at),
            "identificationHints": {
                "hostname": hostname,
                "fqdn": format!("{hostname}.ec2.internal"),
                "awsInstanceID": ri.id,
            },
            "networkInterfaces": [{ "macAddress": mac_of(&ri.id), "ips": [ip], "isPrimary": true }],
            "disks": [{
                "internalDeviceName": ROOT_DEVICE,
                "bytes": hw.disk_bytes,
                "ebsVolumeID": format!("vol-{}", hex_id(&[&ri.id, "vol"], 17)),
            }],
            "cpus": [{ "cores": hw.cores, "modelName": "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz" }],
            "ramBytes": hw.ram_bytes,
            "os": { "fullString": OS },
        },
        "agentVersion": "4.7.2",
    });
    if let Some(at) = ri.data_timestamp {
        out["pointInTimeSnapshotDateTime"] = json!(drs_timestamp(at));
    }
    out
}

pub fn job_json(scope: &Scope, job: &Job) -> Value {
    let servers: Vec<Value> = job
        .servers
        .iter()
        .map(|s| {
            let mut v = json!({
                "sourceServerID": s.source_server_id,
                "launchStatus": s.launch_status.as_str(),
                "launchActionsStatus": super::launch_actions::status_json(s.post_launch.as_ref()),
            });
            if let Some(id) = &s.recovery_instance_id {
                v["recoveryInstanceID"] = json!(id);
            }
            v
        })
        .collect();
    let mut out = json!({
        "jobID": job.id,
        "arn": scope.arn("job", &job.id),
        "type": match job.kind { JobKind::Launch => "LAUNCH", JobKind::Terminate => "TERMINATE" },
        "initiatedBy": job.initiated_by(),
        "creationDateTime": drs_timestamp(job.created_at),
        "status": job.status.as_str(),
        "participatingServers": servers,
        "participatingResources": [],
        "tags": job.tags,
    });
    if let Some(end) = job.ended_at {
        out["endDateTime"] = json!(drs_timestamp(end));
    }
    out
}

/// The conversion server a job used for a server (deterministic, like every job-made ID).
pub fn conversion_server_id(job_id: &str, server_id: &str) -> String {
    format!("i-{}", hex_id(&[job_id, server_id, "conversion"], 17))
}

pub fn log_item_json(job: &Job, item: &LogItem) -> Value {
    let mut data = json!({});
    if let Some(server) = item.server.and_then(|i| job.servers.get(i)) {
        let id = &server.source_server_id;
        data["sourceServerID"] = json!(id);
        match item.event {
            LogEvent::ConversionStart => {
                data["conversionServerID"] = json!(conversion_server_id(&job.id, id));
            }
            LogEvent::ConversionEnd => {
                let hw = hardware(id);
                let source_snap = format!("snap-{}", hex_id(&[&job.id, id, "source-snap"], 17));
                let converted = format!("snap-{}", hex_id(&[&job.id, id, "converted-snap"], 17));
                data["conversionServerID"] = json!(conversion_server_id(&job.id, id));
                data["conversionProperties"] = json!({
                    "volumeToConversionMap": { ROOT_DEVICE: { source_snap: converted } },
                    "rootVolumeName": ROOT_DEVICE,
                    "forceUefi": false,
                    "dataTimestamp": server.data_timestamp.map(drs_timestamp),
                    "volumeToVolumeSize": { ROOT_DEVICE: hw.disk_bytes },
                    "volumeToProductCodes": {},
                });
            }
            LogEvent::ConversionFail => {
                data["conversionServerID"] = json!(conversion_server_id(&job.id, id));
                data["rawError"] = json!(
                    "Conversion failed: the conversion server could not make the root volume bootable (simulated conversion_failure fault)"
                );
            }
            LogEvent::LaunchStart | LogEvent::LaunchEnd => {
                if let Some(target) = &server.recovery_instance_id {
                    data["targetInstanceID"] = json!(target);
                }
            }
            LogEvent::LaunchFailed => {
                data["rawError"] = json!(
                    "Failed to launch the recovery instance: InsufficientInstanceCapacity (simulated launch_failure fault)"
                );
            }
            _ => {}
        }
    }
    if let Some((count, max)) = item.attempt {
        data["attemptCount"] = json!(count);
        data["maxAttemptsCount"] = json!(max);
    }
    json!({
        "logDateTime": drs_timestamp(item.at),
        "event": item.event.as_str(),
        "eventData": data,
    })
}

/// The EC2 launch template DRS created for a source server (`ec2LaunchTemplateID`).
pub fn launch_template_id(scope: &Scope, server_id: &str) -> String {
    format!("lt-{}", hex_id(&[&scope.key, server_id, "lt"], 17))
}

pub fn launch_configuration_json(scope: &Scope, s: &SourceServer) -> Value {
    let mut out = json!({
        "sourceServerID": s.id,
        "name": s.origin.hostname,
        "ec2LaunchTemplateID": launch_template_id(scope, &s.id),
        "launchDisposition": "STARTED",
        "targetInstanceTypeRightSizingMethod": "BASIC",
        "copyPrivateIp": false,
        "copyTags": true,
        "licensing": { "osByol": false },
        "postLaunchEnabled": false,
        "recoveryMode": "OPTIMAL",
    });
    for (k, v) in &s.launch_settings {
        out[k] = v.clone();
    }
    out
}

/// The launch settings a job reads at StartRecovery.
pub fn launch_plan(s: &SourceServer) -> super::model::LaunchPlan {
    let text = |k: &str| s.launch_settings.get(k).and_then(Value::as_str);
    super::model::LaunchPlan {
        fast: text("recoveryMode") == Some("FAST"),
        stopped: text("launchDisposition") == Some("STOPPED"),
        post_launch: s
            .launch_settings
            .get("postLaunchEnabled")
            .and_then(Value::as_bool)
            == Some(true),
    }
}

/// UpdateLaunchConfiguration: every member of the model is checked against its constraints
/// (botocore `drs` UpdateLaunchConfigurationRequest), persisted, and answered back as the
/// whole LaunchConfiguration. An unknown member is refused (the model has no other).
pub(super) fn update_launch_configuration(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<ServerInput>(&body)?.id()?;
    server(ctx.world, scope, &id)?;
    let fields = body.as_object().cloned().unwrap_or_default();
    let mut settings = serde_json::Map::new();
    for (key, value) in fields {
        let enumerated = |allowed: &[&str]| -> Result<(), DrsError> {
            match value.as_str() {
                Some(v) if allowed.contains(&v) => Ok(()),
                _ => Err(DrsError::field(
                    &key,
                    format!("{value} is not one of {}", allowed.join(", ")),
                )),
            }
        };
        let boolean = || -> Result<(), DrsError> {
            if value.is_boolean() {
                Ok(())
            } else {
                Err(DrsError::field(&key, format!("{value} is not a boolean")))
            }
        };
        match key.as_str() {
            "sourceServerID" => continue,
            "name" => match value.as_str() {
                Some(n) if n.chars().count() <= 128 => {}
                _ => {
                    return Err(DrsError::field(
                        &key,
                        "must be a string of at most 128 characters",
                    ));
                }
            },
            "launchDisposition" => enumerated(&["STOPPED", "STARTED"])?,
            "targetInstanceTypeRightSizingMethod" => enumerated(&["NONE", "BASIC", "IN_AWS"])?,
            "recoveryMode" => enumerated(&["FAST", "OPTIMAL"])?,
            "copyPrivateIp" | "copyTags" | "postLaunchEnabled" => boolean()?,
            "licensing" => {
                if !value.get("osByol").is_none_or(Value::is_boolean) || !value.is_object() {
                    return Err(DrsError::field("licensing.osByol", "is not a boolean"));
                }
            }
            "launchIntoInstanceProperties" => {
                let ok = value.is_object()
                    && value.get("launchIntoEC2InstanceID").is_none_or(|v| {
                        v.as_str().is_some_and(|i| {
                            i.len() <= 255
                                && i.strip_prefix("i-").is_some_and(|h| {
                                    h.len() >= 8 && h.chars().all(|c| c.is_ascii_hexdigit())
                                })
                        })
                    });
                if !ok {
                    return Err(DrsError::field(
                        "launchIntoInstanceProperties.launchIntoEC2InstanceID",
                        "does not match the pattern i-[0-9a-fA-F]{8,}",
                    ));
                }
            }
            other => {
                return Err(DrsError::field(
                    other,
                    format!("{other} is not a member of UpdateLaunchConfigurationRequest"),
                ));
            }
        }
        settings.insert(key, value);
    }
    let s = ctx
        .world
        .drs
        .get_mut(&scope.key)
        .and_then(|r| r.source_servers.get_mut(&id))
        .expect("checked above");
    s.launch_settings.extend(settings);
    let reply = launch_configuration_json(scope, s);
    Ok(Done::mutated(200, Some(reply), body))
}

pub fn replication_configuration_json(scope: &Scope, s: &SourceServer) -> Value {
    let mut out = replication_settings_json(scope, s);
    for (k, v) in &s.replication_settings {
        out[k] = v.clone();
    }
    out["ebsEncryption"] = json!(s.ebs_encryption.as_deref().unwrap_or("DEFAULT"));
    if let Some(key) = &s.ebs_encryption_key_arn {
        out["ebsEncryptionKeyArn"] = json!(key);
    }
    out
}

/// The injected `replication_lag` / `agent_not_seen` faults of a server, applied to its wire
/// JSON: a lag keeps the state CONTINUOUS with `lagDuration` set (as DRS reports a lagging
/// server); a silent agent moves `lastSeenByServiceDateTime` back.
///
/// A `source_outage` of the server's origin (A1's account and region) stops its agent: last
/// seen frozen at the outage, the lag growing with the clock, and DISCONNECTED with
/// AGENT_NOT_SEEN once unseen for 5 minutes (DRS FAQ: lag is "the time since the server was
/// last in CDP mode"; API model `DataReplicationErrorString`).
fn apply_health_faults(
    item: &mut Value,
    faults: &[crate::sim::Fault],
    server: &SourceServer,
    now: DateTime<Utc>,
) {
    let id = server.id.as_str();
    if let Some(since) =
        crate::sim::faults::outage_since(faults, &server.origin.account, &server.origin.region)
        && since <= now
        && item["dataReplicationInfo"]["dataReplicationState"] == "CONTINUOUS"
    {
        let seen = last_seen(since);
        item["lifeCycle"]["lastSeenByServiceDateTime"] = json!(drs_timestamp(seen));
        item["dataReplicationInfo"]["lagDuration"] = json!(iso_duration(now - since));
        if now - seen >= Duration::minutes(5) {
            item["dataReplicationInfo"]["dataReplicationState"] = json!("DISCONNECTED");
            item["dataReplicationInfo"]["dataReplicationError"] = json!({
                "error": "AGENT_NOT_SEEN",
                "rawError": format!("The AWS Replication Agent has not been seen since {}", drs_timestamp(seen)),
            });
        }
    }
    let (lag, silent) = crate::sim::faults::server_health_faults(faults, id);
    if let Some(lag) = lag {
        item["dataReplicationInfo"]["lagDuration"] =
            json!(iso_duration(Duration::seconds(lag as i64)));
    }
    if let Some(seconds) = silent {
        item["lifeCycle"]["lastSeenByServiceDateTime"] =
            json!(drs_timestamp(now - Duration::seconds(seconds as i64)));
    }
}

/// A stopped origin instance (see [`Agent`]), applied to a replicating server's wire JSON:
/// while its last writes reach the staging area, BACKLOG with the backlog in bytes and the lag
/// since the stop was asked for; then CONTINUOUS with no lag, the agent last seen at its final
/// report; 5 minutes later DISCONNECTED with AGENT_NOT_SEEN, the lag growing from that report.
fn apply_agent(item: &mut Value, agent: Agent, now: DateTime<Utc>) {
    let info = &mut item["dataReplicationInfo"];
    if info["dataReplicationState"] != "CONTINUOUS" {
        return;
    }
    match agent {
        Agent::Replicating => {}
        Agent::Flushing { since, until } => {
            info["dataReplicationState"] = json!("BACKLOG");
            // Behind by the writes since the stop request: never "no lag" with a backlog.
            info["lagDuration"] = json!(iso_duration((now - since).max(Duration::seconds(1))));
            // What is left to send: 8 MiB a second of the flush still to come.
            let left = (until - now).num_seconds().max(1) * (8 << 20);
            for disk in info["replicatedDisks"].as_array_mut().into_iter().flatten() {
                disk["backloggedStorageBytes"] = json!(left);
            }
        }
        Agent::Stopped { last_report } => {
            item["lifeCycle"]["lastSeenByServiceDateTime"] = json!(drs_timestamp(last_report));
            if now - last_report >= Duration::minutes(5) {
                let info = &mut item["dataReplicationInfo"];
                info["dataReplicationState"] = json!("DISCONNECTED");
                info["lagDuration"] = json!(iso_duration(now - last_report));
                info["dataReplicationError"] = json!({
                    "error": "AGENT_NOT_SEEN",
                    "rawError": format!("The AWS Replication Agent has not been seen since {}", drs_timestamp(last_report)),
                });
            }
        }
    }
}

/// A failback server behind its origin's writes (`failback::behind_writes`): still CONTINUOUS,
/// with the lag of the newest write it holds and the writes still to come as backlog (4 MiB a
/// second of writes).
fn apply_behind(item: &mut Value, behind: super::failback::Behind, now: DateTime<Utc>) {
    let info = &mut item["dataReplicationInfo"];
    info["lagDuration"] = json!(iso_duration(now - behind.replicated_to));
    let left = (behind.last_write - behind.replicated_to)
        .num_seconds()
        .max(1)
        * (4 << 20);
    for disk in info["replicatedDisks"].as_array_mut().into_iter().flatten() {
        disk["backloggedStorageBytes"] = json!(left);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateReplicationInput {
    #[serde(rename = "sourceServerID")]
    source_server_id: Option<String>,
    ebs_encryption: Option<String>,
    ebs_encryption_key_arn: Option<String>,
}

/// The members of UpdateReplicationConfigurationRequest besides `sourceServerID` and the EBS
/// encryption pair (botocore `drs` model), with the enum values each allows (empty: any value).
const REPLICATION_MEMBERS: &[(&str, &[&str])] = &[
    ("name", &[]),
    ("stagingAreaSubnetId", &[]),
    ("associateDefaultSecurityGroup", &[]),
    ("replicationServersSecurityGroupsIDs", &[]),
    ("replicationServerInstanceType", &[]),
    ("useDedicatedReplicationServer", &[]),
    (
        "defaultLargeStagingDiskType",
        &["GP2", "GP3", "ST1", "AUTO"],
    ),
    ("replicatedDisks", &[]),
    ("bandwidthThrottling", &[]),
    ("dataPlaneRouting", &["PRIVATE_IP", "PUBLIC_IP"]),
    ("createPublicIP", &[]),
    ("stagingAreaTags", &[]),
    ("pitPolicy", &[]),
    ("autoReplicateNewDisks", &[]),
    ("internetProtocol", &["IPV4", "IPV6"]),
];

/// UpdateReplicationConfiguration: every member is persisted (the EBS encryption pair with its
/// rules, the others as sent, enums checked) and read back by GetReplicationConfiguration.
pub(super) fn update_replication_configuration(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let update: UpdateReplicationInput = input(&body)?;
    let id = ServerInput {
        source_server_id: update.source_server_id.clone(),
    }
    .id()?;
    server(ctx.world, scope, &id)?;
    if let Some(mode) = update.ebs_encryption.as_deref() {
        if !["DEFAULT", "CUSTOM", "NONE"].contains(&mode) {
            return Err(DrsError::field(
                "ebsEncryption",
                format!("{mode} is not one of DEFAULT, CUSTOM, NONE"),
            ));
        }
        if mode == "CUSTOM" && update.ebs_encryption_key_arn.is_none() {
            return Err(DrsError::field(
                "ebsEncryptionKeyArn",
                "is required when ebsEncryption is CUSTOM",
            ));
        }
    }
    if let Some(key) = update.ebs_encryption_key_arn.as_deref()
        && (!key.starts_with("arn:") || key.len() < 20)
    {
        return Err(DrsError::field(
            "ebsEncryptionKeyArn",
            format!("{key} is not an ARN"),
        ));
    }
    let mut settings = serde_json::Map::new();
    for (key, value) in body.as_object().into_iter().flatten() {
        if matches!(
            key.as_str(),
            "sourceServerID" | "ebsEncryption" | "ebsEncryptionKeyArn"
        ) {
            continue;
        }
        let Some((_, allowed)) = REPLICATION_MEMBERS.iter().find(|(m, _)| m == key) else {
            return Err(DrsError::field(
                key,
                format!("{key} is not a member of UpdateReplicationConfigurationRequest"),
            ));
        };
        if !allowed.is_empty() && !value.as_str().is_some_and(|v| allowed.contains(&v)) {
            return Err(DrsError::field(
                key,
                format!("{value} is not one of {}", allowed.join(", ")),
            ));
        }
        settings.insert(key.clone(), value.clone());
    }
    let s = ctx
        .world
        .drs
        .get_mut(&scope.key)
        .and_then(|r| r.source_servers.get_mut(&id))
        .expect("checked above");
    s.replication_settings.extend(settings);
    if let Some(mode) = update.ebs_encryption {
        if mode != "CUSTOM" {
            s.ebs_encryption_key_arn = None;
        }
        s.ebs_encryption = Some(mode);
    }
    if let Some(key) = update.ebs_encryption_key_arn {
        s.ebs_encryption_key_arn = Some(key);
    }
    let reply = replication_configuration_json(scope, s);
    Ok(Done::mutated(200, Some(reply), body))
}

fn replication_settings_json(scope: &Scope, s: &SourceServer) -> Value {
    json!({
        "sourceServerID": s.id,
        "name": s.origin.hostname,
        "stagingAreaSubnetId": format!("subnet-{}", hex_id(&[&scope.key, "staging-subnet"], 17)),
        "associateDefaultSecurityGroup": true,
        "replicationServersSecurityGroupsIDs": [],
        "replicationServerInstanceType": "t3.small",
        "useDedicatedReplicationServer": false,
        "defaultLargeStagingDiskType": "GP3",
        "replicatedDisks": [{
            "deviceName": ROOT_DEVICE,
            "isBootDisk": true,
            "stagingDiskType": "AUTO",
            "optimizedStagingDiskType": "GP3",
            "iops": 3000,
            "throughput": 125,
        }],
        "bandwidthThrottling": 0,
        "dataPlaneRouting": "PRIVATE_IP",
        "createPublicIP": false,
        "stagingAreaTags": {},
        "pitPolicy": [
            { "ruleID": 1, "units": "MINUTE", "interval": 10, "retentionDuration": 60, "enabled": true },
            { "ruleID": 2, "units": "HOUR", "interval": 1, "retentionDuration": 24, "enabled": true },
            { "ruleID": 3, "units": "DAY", "interval": 1, "retentionDuration": 7, "enabled": true },
        ],
        "autoReplicateNewDisks": true,
        "internetProtocol": "IPV4",
    })
}

pub(super) fn region<'w>(world: &'w World, scope: &Scope) -> Option<&'w DrsRegion> {
    world.drs.get(&scope.key)
}

/// The source server `id` of the caller's region, or ResourceNotFoundException.
pub(super) fn server<'w>(
    world: &'w World,
    scope: &Scope,
    id: &str,
) -> Result<&'w SourceServer, DrsError> {
    region(world, scope)
        .and_then(|r| r.source_servers.get(id))
        .ok_or_else(|| {
            DrsError::not_found(
                "SOURCE_SERVER",
                id,
                format!(
                    "Source server {id} does not exist in account {} region {}",
                    scope.account, scope.region
                ),
            )
        })
}

fn with_token(mut out: Value, token: Option<String>) -> Value {
    if let Some(token) = token {
        out["nextToken"] = json!(token);
    }
    out
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DescribeServersInput {
    filters: Option<ServerFilters>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ServerFilters {
    #[serde(rename = "sourceServerIDs")]
    source_server_ids: Option<Vec<String>>,
    hardware_id: Option<String>,
    #[serde(rename = "stagingAccountIDs")]
    staging_account_ids: Option<Vec<String>>,
}

pub(super) fn describe_source_servers(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: DescribeServersInput = input(&body)?;
    let filters = input.filters.unwrap_or_default();
    let ids = filters.source_server_ids.unwrap_or_default();
    check_count("filters.sourceServerIDs", ids.len(), 0, 200)?;
    for id in &ids {
        check_id("filters.sourceServerIDs", id, "s-")?;
    }
    let staging = filters.staging_account_ids.unwrap_or_default();
    check_count("filters.stagingAccountIDs", staging.len(), 0, 200)?;
    let Some(drs) = region(ctx.world, scope) else {
        return Ok(Done::read(json!({ "items": [] })));
    };
    let selected: Vec<&SourceServer> = drs
        .source_servers
        .values()
        .filter(|s| ids.is_empty() || ids.contains(&s.id))
        .filter(|s| {
            filters
                .hardware_id
                .as_deref()
                .is_none_or(|h| h.is_empty() || h == s.origin.instance_id)
        })
        .filter(|_| staging.is_empty() || staging.contains(&scope.account))
        .collect();
    let keys: Vec<String> = selected.iter().map(|s| s.id.clone()).collect();
    let page = page(&keys, input.max_results, input.next_token.as_deref())?;
    let items: Vec<Value> = selected[page.start..page.end]
        .iter()
        .map(|s| {
            let mut item = source_server_json(scope, s, ctx.now);
            apply_health_faults(&mut item, ctx.faults, s, ctx.now);
            apply_agent(&mut item, Agent::of(s, &ctx.world.ec2, ctx.now), ctx.now);
            if let Some(behind) = super::failback::behind_writes(s, &ctx.world.elbv2, ctx.now) {
                apply_behind(&mut item, behind, ctx.now);
            }
            item
        })
        .collect();
    Ok(Done::read(with_token(
        json!({ "items": items }),
        page.next_token,
    )))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DescribeInstancesInput {
    filters: Option<InstanceFilters>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct InstanceFilters {
    #[serde(rename = "recoveryInstanceIDs")]
    recovery_instance_ids: Option<Vec<String>>,
    #[serde(rename = "sourceServerIDs")]
    source_server_ids: Option<Vec<String>>,
}

pub(super) fn describe_recovery_instances(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let input: DescribeInstancesInput = input(&body)?;
    let filters = input.filters.unwrap_or_default();
    let ids = filters.recovery_instance_ids.unwrap_or_default();
    check_count("filters.recoveryInstanceIDs", ids.len(), 0, 200)?;
    for id in &ids {
        check_instance_id("filters.recoveryInstanceIDs", id)?;
    }
    let servers = filters.source_server_ids.unwrap_or_default();
    for id in &servers {
        check_id("filters.sourceServerIDs", id, "s-")?;
    }
    let Some(drs) = region(ctx.world, scope) else {
        return Ok(Done::read(json!({ "items": [] })));
    };
    let selected: Vec<&RecoveryInstance> = drs
        .recovery_instances
        .values()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
        .filter(|r| servers.is_empty() || servers.contains(&r.source_server_id))
        .collect();
    let keys: Vec<String> = selected.iter().map(|r| r.id.clone()).collect();
    let page = page(&keys, input.max_results, input.next_token.as_deref())?;
    let items: Vec<Value> = selected[page.start..page.end]
        .iter()
        .map(|r| recovery_instance_json(ctx.world, scope, r, ctx.now))
        .collect();
    Ok(Done::read(with_token(
        json!({ "items": items }),
        page.next_token,
    )))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServerInput {
    #[serde(rename = "sourceServerID")]
    pub source_server_id: Option<String>,
}

impl ServerInput {
    /// The validated `sourceServerID`.
    pub fn id(self) -> Result<String, DrsError> {
        let id = self
            .source_server_id
            .ok_or_else(|| DrsError::field("sourceServerID", "is required"))?;
        check_id("sourceServerID", &id, "s-")?;
        Ok(id)
    }
}

pub(super) fn get_launch_configuration(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<ServerInput>(&body)?.id()?;
    let s = server(ctx.world, scope, &id)?;
    Ok(Done::read(launch_configuration_json(scope, s)))
}

pub(super) fn get_replication_configuration(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<ServerInput>(&body)?.id()?;
    let s = server(ctx.world, scope, &id)?;
    Ok(Done::read(replication_configuration_json(scope, s)))
}
