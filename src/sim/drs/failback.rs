//! AWS-to-AWS failback and the replication life of source servers: ReverseReplication,
//! Start/StopReplication, Disconnect/Delete of source servers and recovery instances.
//!
//! ```text
//!  recovery region (B)                          origin region (A)
//!  B1 ──StartRecovery──► B2 (EC2 B3)
//!                        └─ReverseReplication──► A2 (FAILBACK; INITIATING → INITIAL_SYNC → CONTINUOUS)
//!  B2.failback.state: NOT_STARTED → IN_PROGRESS → READY_FOR_LAUNCH  (follows A2)
//!  B1.reversedDirectionSourceServerArn = A2 and A2's = B1
//!                                               A2 ──StartRecovery──► A3 (EC2 A4)
//!                                               A3 ──ReverseReplication──► B1 re-protects A4
//! ```
//!
//! The replication phases are derived from the time replication (re)started, so A2 reaches
//! CONTINUOUS by the clock alone; nothing here needs `advance`.
//!
//! Writes on B3 ([`behind_writes`]): B3 takes the application's writes while the application
//! in its account and region receives traffic (a target of one of the load balancers there is
//! registered or draining: [`crate::sim::elbv2::model::traffic_until`]). Reversed replication
//! crosses regions and carries them a lag behind (20 to 90 seconds, per server): A2 reports it
//! (`lagDuration`, `backloggedStorageBytes`) and an on-demand snapshot of A2 holds data only that
//! old. Once the traffic stops (the failback's quiesce deregisters B3), so do the writes, and A2
//! has caught up one lag later.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{Direction, FailbackLink, Origin, RecoveryInstance, Replication, SourceServer};
use super::views::{self, ServerInput, server_by_arn};
use super::{
    Ctx, Done, DrsError, Scope, check_instance_id, input, is_initialized, jitter, parse_arn,
    uninitialized,
};
use crate::sim::World;
use crate::sim::ec2::InstanceState;
use crate::sim::elbv2::model::{ElbRegion, traffic_until};
use crate::sim::wire::random_hex;

/// How long a fresh reverse replication stays INITIATING.
const INITIATING_SECS: i64 = 60;
/// The initial sync of a reversed replication copies the whole disk across regions (user
/// guide, failback: "All data is copied" from the recovery instance to the source Region), at
/// this rate: 20 MiB a second, 7 minutes for 8 GiB, close to an hour for 64 GiB.
const SYNC_BYTES_PER_SEC: i64 = 20 << 20;
/// A restarted (previously stopped) replication only re-initiates.
const RESTART_INITIATING_SECS: i64 = 30;

#[derive(Deserialize)]
struct InstanceInput {
    #[serde(rename = "recoveryInstanceID")]
    recovery_instance_id: Option<String>,
}

impl InstanceInput {
    fn id(self) -> Result<String, DrsError> {
        let id = self
            .recovery_instance_id
            .ok_or_else(|| DrsError::field("recoveryInstanceID", "is required"))?;
        check_instance_id("recoveryInstanceID", &id)?;
        Ok(id)
    }
}

fn instance<'w>(
    world: &'w World,
    scope: &Scope,
    id: &str,
) -> Result<&'w RecoveryInstance, DrsError> {
    views::region(world, scope)
        .and_then(|r| r.recovery_instances.get(id))
        .ok_or_else(|| {
            DrsError::not_found(
                "RECOVERY_INSTANCE",
                id,
                format!(
                    "Recovery instance {id} does not exist in account {} region {}",
                    scope.account, scope.region
                ),
            )
        })
}

fn busy(world: &World, scope: &Scope, server_id: &str) -> Result<(), DrsError> {
    if views::region(world, scope).is_some_and(|r| r.active_job_of(server_id).is_some()) {
        return Err(DrsError::conflict(
            "SOURCE_SERVER",
            server_id,
            super::jobs::BUSY_MESSAGE.to_string(),
        ));
    }
    Ok(())
}

/// The reversed-direction source server a recovery instance replicates into, while it exists.
fn reversed_server<'w>(world: &'w World, ri: &RecoveryInstance) -> Option<&'w SourceServer> {
    ri.failback
        .as_ref()
        .and_then(|link| server_by_arn(world, &link.source_server_arn))
}

/// AWS: "StopReplication(A2) is required before terminating the recovery instance (B2)".
pub(super) fn check_no_active_reverse_replication(
    world: &World,
    ri: &RecoveryInstance,
) -> Result<(), DrsError> {
    if let Some(a2) = reversed_server(world, ri)
        && matches!(a2.replication, Replication::Active { .. })
    {
        let arn = &ri.failback.as_ref().expect("linked").source_server_arn;
        return Err(DrsError::conflict(
            "RECOVERY_INSTANCE",
            &ri.id,
            format!(
                "Recovery instance {} is replicating into the reversed-direction source server \
                 {arn}; call StopReplication on that server first",
                ri.id
            ),
        ));
    }
    Ok(())
}

/// ReverseReplication on a recovery instance (B2): replication back into the origin account and
/// region of its source server, into a new source server A2 (or, to re-protect after a
/// failback, into the server on the opposite direction that already exists).
pub(super) fn reverse_replication(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<InstanceInput>(&body)?.id()?;
    let ri = instance(ctx.world, scope, &id)?.clone();
    let ec2 = ctx.world.ec2.get(&id).cloned();
    let Some(ec2) = ec2.filter(|i| {
        !matches!(
            i.state,
            InstanceState::Terminated | InstanceState::ShuttingDown
        )
    }) else {
        return Err(DrsError::conflict(
            "RECOVERY_INSTANCE",
            &id,
            format!(
                "Recovery instance {id} is terminated or terminating; reverse replication needs a running instance"
            ),
        ));
    };
    if ri.disconnected {
        return Err(DrsError::conflict(
            "RECOVERY_INSTANCE",
            &id,
            format!("Recovery instance {id} is disconnected from Elastic Disaster Recovery"),
        ));
    }
    if let Some(existing) = reversed_server(ctx.world, &ri) {
        return Err(DrsError::conflict(
            "RECOVERY_INSTANCE",
            &id,
            format!(
                "Reverse replication was already started for recovery instance {id}: it replicates \
                 into source server {}",
                existing.id
            ),
        ));
    }
    busy(ctx.world, scope, &ri.source_server_id)?;
    let source = views::server(ctx.world, scope, &ri.source_server_id)?.clone();
    let source_arn = scope.arn("source-server", &source.id);
    let origin = Scope::new(&source.origin.account, &source.origin.region);
    if !is_initialized(ctx.world, &origin.account, &origin.region) {
        let mut error = uninitialized(&origin.account, &origin.region);
        if let DrsError::Uninitialized { message } = &mut error {
            *message = format!(
                "Cannot reverse replication of recovery instance {id}: its source server {} \
                 originates in account {} region {}, where {message}",
                source.id, origin.account, origin.region
            );
        }
        return Err(error);
    }

    let replicates_from = Origin {
        account: scope.account.clone(),
        region: scope.region.clone(),
        availability_zone: format!("{}a", scope.region),
        instance_id: ec2.instance_id.clone(),
        private_ip: ec2.private_ip.clone(),
        hostname: ec2.hostname.clone(),
    };
    // Re-protect: the server on the opposite direction exists already (A3 -> B1).
    let existing = source
        .reversed_arn
        .as_deref()
        .and_then(parse_arn)
        .filter(|(account, region, _, _)| *account == origin.account && *region == origin.region)
        .map(|(_, _, _, id)| id)
        .filter(|id| {
            views::region(ctx.world, &origin).is_some_and(|r| r.source_servers.contains_key(id))
        });
    match &existing {
        Some(existing) => busy(ctx.world, &origin, existing)?,
        None => super::templates::check_launch_into_source(ctx.world, &origin, &source)?,
    }
    let target_id = existing
        .clone()
        .unwrap_or_else(|| format!("s-{}", random_hex(ctx.rng, 17)));
    let replication = Replication::Active {
        since: ctx.now,
        initiating_secs: INITIATING_SECS,
        sync_secs: initial_sync_secs(&target_id),
    };
    let pits_from = replication.continuous_from();
    let target_drs = ctx.world.drs.entry(origin.key.clone()).or_default();
    match existing {
        Some(existing) => {
            let server = target_drs
                .source_servers
                .get_mut(&existing)
                .expect("checked above");
            server.origin = replicates_from;
            server.replication = replication;
            server.pits_from = pits_from;
            server.reversed_arn = Some(source_arn);
        }
        None => {
            let direction = match source.direction {
                Direction::Failover => Direction::Failback,
                Direction::Failback => Direction::Failover,
            };
            target_drs.source_servers.insert(
                target_id.clone(),
                SourceServer {
                    id: target_id.clone(),
                    added_at: ctx.now,
                    origin: replicates_from,
                    direction,
                    replication,
                    pits_from,
                    recovery_instance_id: None,
                    last_launch: None,
                    reversed_arn: Some(source_arn),
                    tags: Default::default(),
                    ebs_encryption: None,
                    ebs_encryption_key_arn: None,
                    launch_settings: Default::default(),
                    replication_settings: Default::default(),
                },
            );
        }
    }
    // DRS makes every source server's EC2 launch template with the server (an A2 too: its
    // launch settings can be edited before the failback launches it).
    super::ensure_launch_template(
        ctx.world,
        &origin.account,
        &origin.region,
        &target_id,
        ctx.now,
    );
    let target_arn = origin.arn("source-server", &target_id);
    let drs = ctx
        .world
        .drs
        .get_mut(&scope.key)
        .expect("the caller's region exists");
    if let Some(b1) = drs.source_servers.get_mut(&source.id) {
        b1.reversed_arn = Some(target_arn.clone());
    }
    if let Some(b2) = drs.recovery_instances.get_mut(&id) {
        b2.failback = Some(FailbackLink {
            source_server_arn: target_arn.clone(),
            started_at: ctx.now,
        });
    }
    Ok(Done::mutated(
        200,
        Some(json!({ "reversedDirectionSourceServerArn": target_arn })),
        body,
    ))
}

/// How long the initial sync of a reversed replication into `server_id` takes: its disk size
/// (as DescribeSourceServers reports it) at [`SYNC_BYTES_PER_SEC`].
fn initial_sync_secs(server_id: &str) -> i64 {
    views::hardware(server_id).disk_bytes / SYNC_BYTES_PER_SEC
}

/// How far behind its origin's writes a failback server (A2) is at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Behind {
    /// The newest write that reached A2.
    pub replicated_to: DateTime<Utc>,
    /// The newest write on B3 (`now` while traffic arrives).
    pub last_write: DateTime<Utc>,
}

/// Where a CONTINUOUS failback server (A2) is behind the writes on its origin B3, or `None`
/// when it holds all of them (see the module's "Writes on B3").
pub(super) fn behind_writes(
    server: &SourceServer,
    elbv2: &std::collections::BTreeMap<String, ElbRegion>,
    now: DateTime<Utc>,
) -> Option<Behind> {
    if server.direction != Direction::Failback || server.replication.state_at(now) != "CONTINUOUS" {
        return None;
    }
    let region = elbv2.get(&crate::sim::scope_key(
        &server.origin.account,
        &server.origin.region,
    ))?;
    let last_write = traffic_until(region, now)?;
    let lag = chrono::Duration::seconds(jitter(&[&server.id, "failback-lag"], 20, 90));
    let replicated_to = now - lag;
    (replicated_to < last_write).then_some(Behind {
        replicated_to,
        last_write,
    })
}

fn server_mut<'w>(
    world: &'w mut World,
    scope: &Scope,
    id: &str,
) -> Result<&'w mut SourceServer, DrsError> {
    world
        .drs
        .get_mut(&scope.key)
        .and_then(|r| r.source_servers.get_mut(id))
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

/// StartReplication: a STOPPED server replicates again (after a short INITIATING).
pub(super) fn start_replication(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<ServerInput>(&body)?.id()?;
    let now = ctx.now;
    let server = server_mut(ctx.world, scope, &id)?;
    match server.replication {
        Replication::Stopped { .. } => {}
        Replication::Active { .. } => {
            return Err(DrsError::conflict(
                "SOURCE_SERVER",
                &id,
                format!("Source server {id} is already replicating"),
            ));
        }
        Replication::Disconnected { .. } => {
            return Err(DrsError::conflict(
                "SOURCE_SERVER",
                &id,
                format!(
                    "Source server {id} is disconnected; reinstall the AWS Replication Agent to replicate it again"
                ),
            ));
        }
    }
    server.replication = Replication::Active {
        since: now,
        initiating_secs: RESTART_INITIATING_SECS,
        sync_secs: 0,
    };
    server.pits_from = server.replication.continuous_from();
    let reply = json!({ "sourceServer": views::source_server_json(scope, server, now) });
    Ok(Done::mutated(200, Some(reply), body))
}

/// StopReplication: STOPPED, and (as AWS warns) all the server's snapshots are deleted.
pub(super) fn stop_replication(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<ServerInput>(&body)?.id()?;
    let now = ctx.now;
    let server = server_mut(ctx.world, scope, &id)?;
    if !matches!(server.replication, Replication::Active { .. }) {
        return Err(DrsError::conflict(
            "SOURCE_SERVER",
            &id,
            format!(
                "Source server {id} is not replicating (its state is {})",
                server.replication.state_at(now)
            ),
        ));
    }
    server.replication = Replication::Stopped { at: now };
    server.pits_from = None;
    let reply = json!({ "sourceServer": views::source_server_json(scope, server, now) });
    Ok(Done::mutated(200, Some(reply), body))
}

/// DisconnectSourceServer: DISCONNECTED at once; refused while it has a recovery instance.
pub(super) fn disconnect_source_server(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<ServerInput>(&body)?.id()?;
    let server = views::server(ctx.world, scope, &id)?;
    if let Some(ri) = server.recovery_instance_id.as_deref().filter(|ri| {
        views::region(ctx.world, scope).is_some_and(|r| r.recovery_instances.contains_key(*ri))
    }) {
        return Err(DrsError::conflict(
            "SOURCE_SERVER",
            &id,
            format!(
                "Source server {id} has the recovery instance {ri}; terminate or delete it before disconnecting the server"
            ),
        ));
    }
    busy(ctx.world, scope, &id)?;
    let now = ctx.now;
    let server = server_mut(ctx.world, scope, &id)?;
    if matches!(server.replication, Replication::Disconnected { .. }) {
        return Ok(Done::read(views::source_server_json(scope, server, now)));
    }
    server.replication = Replication::Disconnected { at: now };
    server.pits_from = None;
    let reply = views::source_server_json(scope, server, now);
    Ok(Done::mutated(200, Some(reply), body))
}

/// DeleteSourceServer (204): only a DISCONNECTED server that no job holds.
pub(super) fn delete_source_server(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<ServerInput>(&body)?.id()?;
    let server = views::server(ctx.world, scope, &id)?;
    if !matches!(server.replication, Replication::Disconnected { .. }) {
        return Err(DrsError::conflict(
            "SOURCE_SERVER",
            &id,
            format!(
                "Source server {id} must be disconnected before it is deleted (call DisconnectSourceServer first)"
            ),
        ));
    }
    busy(ctx.world, scope, &id)?;
    if let Some(drs) = ctx.world.drs.get_mut(&scope.key) {
        drs.source_servers.remove(&id);
    }
    Ok(Done::mutated(204, None, body))
}

/// DisconnectRecoveryInstance: DISCONNECTED; refused once reverse replication started from it
/// (user guide, failback step 4).
pub(super) fn disconnect_recovery_instance(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<InstanceInput>(&body)?.id()?;
    let ri = instance(ctx.world, scope, &id)?;
    if ri.failback.is_some() {
        return Err(DrsError::conflict(
            "RECOVERY_INSTANCE",
            &id,
            format!(
                "Recovery instance {id} cannot be disconnected: reverse replication was started for it; delete it instead (DeleteRecoveryInstance)"
            ),
        ));
    }
    busy(ctx.world, scope, &ri.source_server_id.clone())?;
    if ri.disconnected {
        return Ok(Done::read(json!({})));
    }
    if let Some(ri) = ctx
        .world
        .drs
        .get_mut(&scope.key)
        .and_then(|r| r.recovery_instances.get_mut(&id))
    {
        ri.disconnected = true;
    }
    Ok(Done::mutated(200, None, body))
}

/// DeleteRecoveryInstance: removes it from DRS (the EC2 instance stays).
///
/// AWS contradicts itself here: the API reference says the instance must be disconnected
/// first, the failback guide says an instance with reversed replication (A3) cannot be
/// disconnected and should "simply" be deleted. The simulator accepts both paths: a
/// disconnected instance, or one from which reverse replication was started; any other
/// instance gets a ConflictException asking to disconnect it first.
pub(super) fn delete_recovery_instance(
    ctx: &mut Ctx<'_>,
    scope: &Scope,
    body: Value,
) -> Result<Done, DrsError> {
    let id = input::<InstanceInput>(&body)?.id()?;
    let ri = instance(ctx.world, scope, &id)?;
    if !ri.disconnected && ri.failback.is_none() {
        return Err(DrsError::conflict(
            "RECOVERY_INSTANCE",
            &id,
            format!(
                "Recovery instance {id} must be disconnected before it is deleted (call DisconnectRecoveryInstance first)"
            ),
        ));
    }
    let server_id = ri.source_server_id.clone();
    busy(ctx.world, scope, &server_id)?;
    if let Some(drs) = ctx.world.drs.get_mut(&scope.key) {
        drs.recovery_instances.remove(&id);
        if let Some(server) = drs.source_servers.get_mut(&server_id)
            && server.recovery_instance_id.as_deref() == Some(id.as_str())
        {
            server.recovery_instance_id = None;
        }
    }
    Ok(Done::mutated(200, None, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn the_initial_sync_of_a_reversed_replication_grows_with_the_disk_size() {
        let servers: Vec<String> = (0..64).map(|i| format!("s-{i:017}")).collect();
        let (small, large) = (
            servers
                .iter()
                .min_by_key(|s| views::hardware(s).disk_bytes)
                .unwrap(),
            servers
                .iter()
                .max_by_key(|s| views::hardware(s).disk_bytes)
                .unwrap(),
        );
        assert_eq!(views::hardware(small).disk_bytes, 8 << 30);
        assert_eq!(views::hardware(large).disk_bytes, 64 << 30);
        assert_eq!(initial_sync_secs(small), 409, "8 GiB at 20 MiB/s");
        assert_eq!(initial_sync_secs(large), 3276, "64 GiB: 8 times longer");
        let since = chrono::Utc::now();
        let r = Replication::Active {
            since,
            initiating_secs: INITIATING_SECS,
            sync_secs: initial_sync_secs(large),
        };
        assert_eq!(r.state_at(since), "INITIATING");
        assert_eq!(r.state_at(since + Duration::minutes(50)), "INITIAL_SYNC");
        assert_eq!(r.state_at(since + Duration::minutes(56)), "CONTINUOUS");
    }

    #[test]
    fn a2_runs_behind_the_writes_on_b3_until_its_traffic_stopped_and_one_lag_more() {
        use crate::sim::elbv2::model::{DRAINING, Target, TargetGroup, TargetType};
        let t0 = chrono::Utc::now();
        let a2 = SourceServer {
            id: "s-1234567890abcdef0".into(),
            added_at: t0,
            origin: Origin {
                account: "222222222222".into(),
                region: "us-west-2".into(),
                availability_zone: "us-west-2a".into(),
                instance_id: "i-0b3".into(),
                private_ip: "10.1.0.1".into(),
                hostname: "b3".into(),
            },
            direction: Direction::Failback,
            replication: Replication::Active {
                since: t0,
                initiating_secs: 0,
                sync_secs: 0,
            },
            pits_from: None,
            recovery_instance_id: None,
            last_launch: None,
            reversed_arn: None,
            tags: Default::default(),
            ebs_encryption: None,
            ebs_encryption_key_arn: None,
            launch_settings: Default::default(),
            replication_settings: Default::default(),
        };
        let mut group = TargetGroup {
            arn: "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/app/0123456789abcdef".into(),
            name: "app".into(),
            protocol: "HTTPS".into(),
            port: 443,
            vpc_id: "vpc-1".into(),
            target_type: TargetType::Instance,
            health_check_path: "/".into(),
            load_balancer_arns: vec![],
            targets: vec![Target {
                id: "i-0b3".into(),
                port: 443,
                registered_at: t0,
                deregistered_at: None,
            }],
        };
        let world = |group: &TargetGroup| {
            let mut region = ElbRegion::default();
            region
                .target_groups
                .insert(group.arn.clone(), group.clone());
            std::iter::once(("222222222222/us-west-2".to_string(), region)).collect()
        };
        let lag = Duration::seconds(jitter(&[&a2.id, "failback-lag"], 20, 90));
        // Serving: behind by the lag, the newest write being now.
        let now = t0 + Duration::minutes(15);
        let behind = behind_writes(&a2, &world(&group), now).expect("behind while serving");
        assert_eq!((behind.replicated_to, behind.last_write), (now - lag, now));
        // Deregistered: the writes stop when the draining ends; A2 holds them one lag later.
        group.targets[0].deregistered_at = Some(now);
        let ended = now + DRAINING;
        let elb = world(&group);
        assert_eq!(
            behind_writes(&a2, &elb, ended + lag - Duration::seconds(1)).map(|b| b.last_write),
            Some(ended)
        );
        assert_eq!(behind_writes(&a2, &elb, ended + lag), None);
        // A failover-direction server is never behind this way; nor one with no traffic.
        let b1 = SourceServer {
            direction: Direction::Failover,
            ..a2.clone()
        };
        assert_eq!(behind_writes(&b1, &world(&group), now), None);
        assert_eq!(behind_writes(&a2, &Default::default(), now), None);
    }
}
