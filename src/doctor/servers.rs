//! The DRS checks: DRS initialized in both accounts; for every runbook server (B1, target
//! account), the agent recently seen, replication CONTINUOUS, lag within the RPO, launch
//! settings that launch (a launch template whose subnet exists in the VPC of the wave's target
//! groups, `copyPrivateIp` with a subnet that holds the IP; a STOPPED disposition in a wave
//! without dependencies warns), and replication encrypting with the intended key.

use chrono::{DateTime, Utc};

use super::Check;
use crate::aws::{Clients, parse_time};
use crate::runbook::{Account, Runbook, format_duration};
use crate::steps::launch_settings::{self, Severity};
use crate::steps::parse_iso_duration;

pub(super) async fn check(
    runbook: &Runbook,
    clients: &Clients,
    target_key_arn: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut target_ready = false;
    for side in [Account::Source, Account::Target] {
        let spec = runbook.side(side);
        let check = Check::at(
            format!("drs.initialized@{}/{}", spec.account_id, spec.region),
            format!("DRS is initialized in the {} account", side.as_str()),
            &spec.account_id,
            &spec.region,
        );
        let why = match side {
            Account::Source => "failback recovers into it",
            Account::Target => "failover recovers into it",
        };
        checks.push(match clients.side(side).drs_initialized().await {
            Ok(true) => {
                target_ready |= side == Account::Target;
                check.pass("DescribeSourceServers answers")
            }
            Ok(false) => check.fail(
                format!("DRS answers UninitializedAccountException: it was never initialized here ({why})"),
                format!(
                    "in account {}: aws drs initialize-service --region {} (or open the DRS console there once)",
                    spec.account_id, spec.region
                ),
            ),
            Err(e) => check.fail(format!("DRS could not be reached: {e}"), e.hint.clone()),
        });
    }
    if target_ready {
        checks.extend(server_checks(runbook, clients, target_key_arn, now).await);
    }
    checks
}

async fn server_checks(
    runbook: &Runbook,
    clients: &Clients,
    target_key_arn: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<Check> {
    let target = &clients.target;
    let ids: Vec<String> = runbook
        .servers()
        .iter()
        .map(|s| s.source_server_id.to_string())
        .collect();
    let builder = |what: &str, id: &str, title: String| {
        Check::at(
            format!("drs.{what}:{id}"),
            title,
            &target.account_id,
            &target.region,
        )
    };
    let found = match target.describe_source_servers(&ids).await {
        Ok(found) => found,
        Err(e) => {
            return vec![
                builder(
                    "servers",
                    "all",
                    "the runbook's source servers can be read".into(),
                )
                .fail(format!("DescribeSourceServers failed: {e}"), e.hint.clone()),
            ];
        }
    };
    // The launch settings of the servers that exist, against the VPCs of the target groups
    // their waves register in: the production one and, when set, the drill one.
    let existing: Vec<(String, String)> = runbook
        .servers()
        .iter()
        .filter(|s| found.iter().any(|f| f.id == s.source_server_id))
        .map(|s| (s.wave.to_string(), s.source_server_id.to_string()))
        .collect();
    let groups: Vec<(String, String)> = runbook
        .load_balancers
        .iter()
        .flat_map(|lb| {
            std::iter::once(lb.target_group_arn.clone())
                .chain(lb.drill_target_group_arn.clone())
                .map(|arn| (lb.wave.clone(), arn))
        })
        .collect();
    let launch_read = launch_settings::read(target, &existing, &groups, Some(&found)).await;
    let first_waves = launch_settings::waves_without_dependencies(runbook);
    let launch_findings = match &launch_read {
        Ok(read) => launch_settings::findings(read, &target.region, &first_waves),
        Err(_) => Vec::new(),
    };
    let mut checks = Vec::new();
    for id in &ids {
        let Some(server) = found.iter().find(|s| &s.id == id) else {
            checks.push(builder("server", id, format!("source server {id} exists")).fail(
                format!("no source server {id} in account {} ({})", target.account_id, target.region),
                "install the DRS agent on the source instance (it creates the source server in the recovery account), or correct the ID in the runbook",
            ));
            continue;
        };
        checks.push(agent_check(
            builder("agent", id, format!("agent of {id} recently seen")),
            server,
            runbook,
            now,
        ));
        checks.push(state_check(
            builder("replication", id, format!("{id} replicates continuously")),
            server,
        ));
        checks.push(lag_check(
            builder("lag", id, format!("replication lag of {id} within the RPO")),
            server,
            runbook,
        ));
        let launch = || {
            builder(
                "launch",
                id,
                format!("{id} launches into a subnet of its wave's target group VPC"),
            )
        };
        match &launch_read {
            Err(e) => checks.push(launch().fail(
                format!("the launch settings could not be read: {e}"),
                e.hint.clone(),
            )),
            Ok(read) => {
                let mine: Vec<_> = launch_findings
                    .iter()
                    .filter(|f| &f.source_server_id == id)
                    .collect();
                match read.servers.iter().find(|s| &s.source_server_id == id) {
                    Some(server) if mine.is_empty() => {
                        checks.push(launch().pass(launch_settings::summary(server)))
                    }
                    _ => checks.extend(mine.into_iter().map(|f| match f.severity {
                        Severity::Fail => launch().fail(f.detail.clone(), f.fix.clone()),
                        Severity::Warn => launch().warn(f.detail.clone(), f.fix.clone()),
                    })),
                }
            }
        }
        let encryption = builder(
            "encryption",
            id,
            format!("replication of {id} encrypts with the target key"),
        );
        checks.push(match target.replication_encryption(id).await {
            Ok(found) => encryption_check(encryption, id, &found, runbook, target_key_arn),
            Err(e) => encryption.fail(
                format!("GetReplicationConfiguration failed: {e}"),
                e.hint.clone(),
            ),
        });
    }
    checks
}

fn agent_check(
    check: super::CheckBuilder,
    server: &crate::aws::drs::SourceServer,
    runbook: &Runbook,
    now: DateTime<Utc>,
) -> Check {
    let within = runbook.doctor.agent_seen_within;
    let Some(seen) = server.last_seen.as_deref().and_then(parse_time) else {
        return check.fail(
            "DRS has never seen the agent (no lastSeenByServiceDateTime)",
            "check that the replication agent runs on the source instance and reaches DRS over TCP 443",
        );
    };
    let silent = (now - seen).to_std().unwrap_or_default();
    if silent <= within {
        return check.pass(format!("last seen {} ago", format_duration(silent)));
    }
    check.fail(
        format!(
            "last seen {} ago at {}, longer than {} ([doctor] agent_seen_within)",
            format_duration(silent),
            seen.to_rfc3339(),
            format_duration(within)
        ),
        format!(
            "on the source instance of {}: check that the replication agent (aws-replication service) runs and reaches drs.{}.amazonaws.com and the replication servers (TCP 443 and 1500)",
            server.hostname.as_deref().unwrap_or(&server.id),
            runbook.target.region
        ),
    )
}

fn state_check(check: super::CheckBuilder, server: &crate::aws::drs::SourceServer) -> Check {
    match server.replication_state.as_deref() {
        Some("CONTINUOUS") => check.pass("dataReplicationState CONTINUOUS"),
        state => check.fail(
            format!("dataReplicationState {}", state.unwrap_or("unknown")),
            format!(
                "wait for the initial sync to finish, or see the server's dataReplicationError in the DRS console; a stopped server resumes with aws drs start-replication --source-server-id {}",
                server.id
            ),
        ),
    }
}

fn lag_check(
    check: super::CheckBuilder,
    server: &crate::aws::drs::SourceServer,
    runbook: &Runbook,
) -> Check {
    let lag = server.lag.as_deref().and_then(parse_iso_duration);
    match (lag, runbook.rpo()) {
        (Some(lag), Some(rpo)) if lag > rpo => check.fail(
            format!("lag {} exceeds the RPO of {}", format_duration(lag), format_duration(rpo)),
            "check the source instance's bandwidth to the staging area and the replication server's size (replicationServerInstanceType), and any bandwidthThrottling in the replication settings",
        ),
        (Some(lag), Some(rpo)) => check.pass(format!("lag {} (RPO {})", format_duration(lag), format_duration(rpo))),
        (Some(lag), None) => check.pass(format!("lag {} (the runbook sets no RPO)", format_duration(lag))),
        (None, _) => check.warn(
            "DRS reports no lagDuration",
            "check the server's replication state in the DRS console",
        ),
    }
}

fn encryption_check(
    check: super::CheckBuilder,
    id: &str,
    found: &crate::aws::drs_setup::ReplicationEncryption,
    runbook: &Runbook,
    target_key_arn: Option<&str>,
) -> Check {
    let intended = target_key_arn.unwrap_or(&runbook.doctor.target_kms_key);
    // DRS wants the key's ARN; an alias is resolved by the fix itself when KMS could not be read.
    let key_arg = if intended.starts_with("arn:") && !intended.contains(":alias/") {
        intended.to_string()
    } else {
        format!(
            "$(aws kms describe-key --key-id {intended} --region {} --query KeyMetadata.Arn --output text)",
            runbook.target.region
        )
    };
    let fix = format!(
        "in account {}: aws drs update-replication-configuration --source-server-id {id} --ebs-encryption CUSTOM --ebs-encryption-key-arn {key_arg} --region {}",
        runbook.target.account_id, runbook.target.region
    );
    match (found.ebs_encryption.as_str(), found.key_arn.as_deref()) {
        ("NONE", _) => check.fail("ebsEncryption NONE: replicated volumes are not encrypted", fix),
        ("CUSTOM", Some(key)) if key == intended => check.pass(format!("ebsEncryption CUSTOM with {key}")),
        ("CUSTOM", Some(key)) if target_key_arn.is_none() && !intended.starts_with("arn:") => check.warn(
            format!("ebsEncryption CUSTOM with {key}; the intended key {intended} could not be resolved to compare"),
            "run doctor where KMS can be reached, or set [doctor] target_kms_key to the key ARN",
        ),
        ("CUSTOM", key) => check.fail(
            format!("ebsEncryption CUSTOM with {} instead of {intended}", key.unwrap_or("no key")),
            fix,
        ),
        (mode, _) => check.warn(
            format!("ebsEncryption {mode}: volumes use the account's default EBS key, not {intended}"),
            fix,
        ),
    }
}
