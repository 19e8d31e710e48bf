//! The launch settings of the servers a run recovers, read from where AWS keeps them: DRS's
//! launch configuration (GetLaunchConfiguration, one call per server: `launchDisposition`,
//! `recoveryMode`, right-sizing, `copyPrivateIp`, the EC2 launch template), the templates'
//! default versions (DescribeLaunchTemplateVersions `$Default` for the whole account, 200 a
//! page: instance type, subnet), the subnet
//! (DescribeSubnets: VPC, CIDR) and the VPC of each target group the wave registers in
//! (DescribeTargetGroups). Read calls only, all in one account and region.
//!
//! [`read`] does the I/O; [`findings`] is pure: what in those settings fails a launch or will
//! surprise the operator. Preflight (failover, drill, failback), `plan` and `doctor` share both.

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::aws::drs::SourceServer;
use crate::aws::{AwsError, SideClients};

/// How many servers' launch configurations are read at once.
const CONCURRENT_READS: usize = 8;

/// What was read of one server's launch settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerLaunchSettings {
    pub source_server_id: String,
    pub wave: String,
    /// `STARTED` or `STOPPED`.
    pub launch_disposition: Option<String>,
    /// `OPTIMAL` or `FAST`.
    pub recovery_mode: Option<String>,
    /// `targetInstanceTypeRightSizingMethod`: `NONE`, `BASIC` or `IN_AWS` (anything but `NONE`
    /// overrides the template's instance type).
    pub right_sizing: Option<String>,
    pub copy_private_ip: Option<bool>,
    pub launch_template_id: Option<String>,
    /// The template's default version: the one DRS launches from.
    pub launch_template_version: Option<i64>,
    pub instance_type: Option<String>,
    pub subnet_id: Option<String>,
    /// The subnet's VPC; none when the subnet does not exist.
    pub vpc_id: Option<String>,
    pub subnet_cidr: Option<String>,
    /// The source machine's primary private IP: what `copyPrivateIp` copies.
    pub source_ip: Option<String>,
    /// Why some of it could not be read (no such source server, no such template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<String>,
}

/// The VPC of a target group a wave registers its instances in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetGroupVpc {
    pub wave: String,
    pub target_group_arn: String,
    /// Whether the group exists (a missing one is preflight's target group check).
    pub exists: bool,
    pub vpc_id: Option<String>,
}

/// Everything [`read`] found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaunchSettings {
    pub servers: Vec<ServerLaunchSettings>,
    pub target_groups: Vec<TargetGroupVpc>,
}

/// Reads the launch settings of `servers` (`(wave, source server ID)`) and the VPCs of
/// `target_groups` (`(wave, ARN)`) in one account and region. `described`: the servers as the
/// caller's DescribeSourceServers just answered (their source IPs), if it has them; else they
/// are described here. A server or template that does not exist is recorded in its `unread`;
/// any other failure (access, reachability) fails the whole read.
pub async fn read(
    side: &SideClients,
    servers: &[(String, String)],
    target_groups: &[(String, String)],
    described: Option<&[SourceServer]>,
) -> Result<LaunchSettings, AwsError> {
    let ids: Vec<String> = servers.iter().map(|(_, id)| id.clone()).collect();
    let read_here;
    let described = match described {
        Some(described) => described,
        None => {
            read_here = side.describe_source_servers(&ids).await?;
            &read_here
        }
    };
    let source_ips: BTreeMap<String, String> = described
        .iter()
        .filter_map(|s| Some((s.id.clone(), s.private_ips.first()?.clone())))
        .collect();
    let mut read: Vec<ServerLaunchSettings> = stream::iter(servers.iter().cloned())
        .map(|(wave, id)| read_server(side, wave, id))
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await?;
    let templates = if read.iter().any(|s| s.launch_template_id.is_some()) {
        side.default_launch_template_versions().await?
    } else {
        Vec::new()
    };
    for server in &mut read {
        let Some(id) = &server.launch_template_id else {
            continue;
        };
        match templates.iter().find(|t| &t.launch_template_id == id) {
            Some(version) => {
                server.launch_template_version = Some(version.version);
                server.instance_type = version.instance_type.clone();
                server.subnet_id = version.subnet_id.clone();
            }
            None => {
                server.unread = Some(format!(
                    "its EC2 launch template {id} does not exist in account {} ({})",
                    side.account_id, side.region
                ))
            }
        }
    }
    let subnet_ids: Vec<String> = read
        .iter()
        .filter_map(|s| s.subnet_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let subnets = side.describe_subnets(&subnet_ids).await?;
    for server in &mut read {
        server.source_ip = source_ips.get(&server.source_server_id).cloned();
        if let Some(subnet) = subnets
            .iter()
            .find(|s| Some(&s.subnet_id) == server.subnet_id.as_ref())
        {
            server.vpc_id = Some(subnet.vpc_id.clone());
            server.subnet_cidr = subnet.cidr_block.clone();
        }
    }
    let mut groups = Vec::new();
    for (wave, arn) in target_groups {
        let vpc = side.target_group_vpc(arn).await?;
        groups.push(TargetGroupVpc {
            wave: wave.clone(),
            target_group_arn: arn.clone(),
            exists: vpc.is_some(),
            vpc_id: vpc.flatten(),
        });
    }
    Ok(LaunchSettings {
        servers: read,
        target_groups: groups,
    })
}

async fn read_server(
    side: &SideClients,
    wave: String,
    id: String,
) -> Result<ServerLaunchSettings, AwsError> {
    let mut out = ServerLaunchSettings {
        source_server_id: id.clone(),
        wave,
        ..Default::default()
    };
    let config = match side.get_launch_configuration(&id).await {
        Ok(c) => c,
        Err(e) if e.code.as_deref() == Some("ResourceNotFoundException") => {
            out.unread = Some(format!(
                "no source server {id} in account {} ({})",
                side.account_id, side.region
            ));
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    out.launch_disposition = config.launch_disposition;
    out.recovery_mode = config.recovery_mode;
    out.right_sizing = config.right_sizing;
    out.copy_private_ip = config.copy_private_ip;
    out.launch_template_id = config.ec2_launch_template_id;
    Ok(out)
}

/// How serious a finding is: `Fail` stops preflight (and fails doctor), `Warn` is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warn,
    Fail,
}

/// One thing wrong with a server's launch settings, with its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub source_server_id: String,
    pub severity: Severity,
    pub detail: String,
    pub fix: String,
}

/// What in `settings` fails a launch or surprises a failover, server by server:
/// - no launch configuration or template, or a template without a subnet, or a subnet that does
///   not exist (DRS user guide, "Key considerations for EC2 launch templates": without a
///   default VPC a subnet must be set, else the launch fails): fail;
/// - a subnet outside the VPC of a target group of the wave (ELBv2 refuses an instance target
///   outside the group's VPC): fail;
/// - `copyPrivateIp` with a subnet whose CIDR does not hold the source IP (same page: "ensure
///   that the IP is included in the subnet's CIDR block range. Otherwise, instance launch
///   fails"): fail;
/// - `launchDisposition STOPPED` in a wave that waits for no other (`no_dependencies`): the
///   instance comes up stopped and nothing in the runbook starts it: warn.
pub fn findings(
    settings: &LaunchSettings,
    region: &str,
    no_dependencies: &BTreeSet<String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in &settings.servers {
        let id = &s.source_server_id;
        let fail = |detail: String, fix: String| Finding {
            source_server_id: id.clone(),
            severity: Severity::Fail,
            detail,
            fix,
        };
        if let Some(why) = &s.unread {
            out.push(fail(
                format!("launch settings of {id} not read: {why}"),
                format!(
                    "check the server in DRS; a deleted launch template is made again with default values by aws drs update-launch-configuration --source-server-id {id} --region {region}"
                ),
            ));
            continue;
        }
        let Some(template) = &s.launch_template_id else {
            out.push(fail(
                format!("{id}: DRS has no EC2 launch template for it"),
                format!(
                    "open the server's launch settings in the DRS console and save them, or aws drs update-launch-configuration --source-server-id {id} --region {region}"
                ),
            ));
            continue;
        };
        let version = s
            .launch_template_version
            .map_or_else(|| "?".to_string(), |v| v.to_string());
        let wave_vpcs: Vec<&TargetGroupVpc> = settings
            .target_groups
            .iter()
            .filter(|g| g.wave == s.wave && g.exists && g.vpc_id.is_some())
            .collect();
        let wanted_vpc = wave_vpcs
            .first()
            .and_then(|g| g.vpc_id.clone())
            .unwrap_or_else(|| "the VPC the instance should run in".to_string());
        let edit = format!(
            "edit the launch template's subnet: aws ec2 create-launch-template-version --launch-template-id {template} --source-version {version} --launch-template-data '{{\"NetworkInterfaces\":[{{\"DeviceIndex\":0,\"SubnetId\":\"<a subnet of {wanted_vpc}>\"}}]}}' --region {region}, then aws ec2 modify-launch-template --launch-template-id {template} --default-version <the new version> --region {region} (DRS launches from the default version)"
        );
        let Some(subnet) = &s.subnet_id else {
            out.push(fail(
                format!("{id}: launch template {template} version {version} names no subnet"),
                edit,
            ));
            continue;
        };
        let Some(vpc) = &s.vpc_id else {
            out.push(fail(
                format!(
                    "{id}: launch template {template} version {version} launches into subnet {subnet}, which does not exist in {region}"
                ),
                edit,
            ));
            continue;
        };
        for group in &wave_vpcs {
            let group_vpc = group.vpc_id.as_deref().unwrap_or_default();
            if group_vpc != vpc {
                out.push(fail(
                    format!(
                        "{id} (wave {}): launch template {template} version {version} launches into subnet {subnet} in {vpc}, but target group {} is in {group_vpc}: ELBv2 refuses a target outside the group's VPC",
                        s.wave, group.target_group_arn
                    ),
                    edit.clone(),
                ));
            }
        }
        if s.copy_private_ip == Some(true)
            && let (Some(ip), Some(cidr)) = (&s.source_ip, &s.subnet_cidr)
            && !cidr_holds(cidr, ip)
        {
            out.push(fail(
                format!(
                    "{id}: copyPrivateIp is on, but subnet {subnet} ({cidr}) of launch template {template} cannot hold its IP {ip}: the launch fails"
                ),
                format!(
                    "choose a subnet whose CIDR holds {ip} (see above to edit the template's subnet), or turn copying off: aws drs update-launch-configuration --source-server-id {id} --no-copy-private-ip --region {region}"
                ),
            ));
        }
        if s.launch_disposition.as_deref() == Some("STOPPED") && no_dependencies.contains(&s.wave) {
            out.push(Finding {
                source_server_id: id.clone(),
                severity: Severity::Warn,
                detail: format!(
                    "{id}: launchDisposition is STOPPED, so DRS launches its instance stopped, and wave {} waits for no other wave",
                    s.wave
                ),
                fix: format!(
                    "if it should serve after the failover: aws drs update-launch-configuration --source-server-id {id} --launch-disposition STARTED --region {region}"
                ),
            });
        }
    }
    out
}

/// The waves that wait for no other (no `after`): the `no_dependencies` of [`findings`].
pub fn waves_without_dependencies(runbook: &crate::runbook::Runbook) -> BTreeSet<String> {
    runbook
        .waves
        .iter()
        .filter(|w| w.after.is_empty())
        .map(|w| w.name.clone())
        .collect()
}

/// What was read of a server, in one line (`STARTED, OPTIMAL, right-sizing BASIC, ...`).
pub fn summary(s: &ServerLaunchSettings) -> String {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_string());
    format!(
        "launchDisposition {}, recoveryMode {}, right-sizing {}, copyPrivateIp {}, {} from launch template {} version {}, subnet {} in {}",
        text(&s.launch_disposition),
        text(&s.recovery_mode),
        text(&s.right_sizing),
        s.copy_private_ip
            .map_or_else(|| "unknown".to_string(), |c| c.to_string()),
        text(&s.instance_type),
        text(&s.launch_template_id),
        s.launch_template_version
            .map_or_else(|| "unknown".to_string(), |v| v.to_string()),
        text(&s.subnet_id),
        text(&s.vpc_id),
    )
}

/// Whether the IPv4 `cidr` (`a.b.c.d/n`) holds `ip`.
fn cidr_holds(cidr: &str, ip: &str) -> bool {
    let Some((base, prefix)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(base), Ok(prefix), Ok(ip)) = (
        base.parse::<std::net::Ipv4Addr>(),
        prefix.parse::<u32>(),
        ip.parse::<std::net::Ipv4Addr>(),
    ) else {
        return false;
    };
    if prefix > 32 {
        return false;
    }
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(base) & mask == u32::from(ip) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(wave: &str) -> ServerLaunchSettings {
        ServerLaunchSettings {
            source_server_id: "s-1".into(),
            wave: wave.into(),
            launch_disposition: Some("STARTED".into()),
            recovery_mode: Some("OPTIMAL".into()),
            right_sizing: Some("BASIC".into()),
            copy_private_ip: Some(false),
            launch_template_id: Some("lt-1".into()),
            launch_template_version: Some(2),
            instance_type: Some("m5.large".into()),
            subnet_id: Some("subnet-a".into()),
            vpc_id: Some("vpc-a".into()),
            subnet_cidr: Some("10.1.0.0/16".into()),
            source_ip: Some("10.2.3.4".into()),
            unread: None,
        }
    }

    fn group(wave: &str, vpc: &str) -> TargetGroupVpc {
        TargetGroupVpc {
            wave: wave.into(),
            target_group_arn: format!("arn:tg-{vpc}"),
            exists: true,
            vpc_id: Some(vpc.into()),
        }
    }

    fn settings(s: ServerLaunchSettings, groups: Vec<TargetGroupVpc>) -> LaunchSettings {
        LaunchSettings {
            servers: vec![s],
            target_groups: groups,
        }
    }

    #[test]
    fn a_subnet_in_the_target_groups_vpc_is_fine_and_another_vpc_fails_naming_both() {
        let none = BTreeSet::new();
        let ok = settings(server("app"), vec![group("app", "vpc-a")]);
        assert!(findings(&ok, "us-west-2", &none).is_empty());
        // A group of another wave does not count.
        let other_wave = settings(server("app"), vec![group("db", "vpc-b")]);
        assert!(findings(&other_wave, "us-west-2", &none).is_empty());
        let wrong = settings(server("app"), vec![group("app", "vpc-b")]);
        let found = findings(&wrong, "us-west-2", &none);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Fail);
        for part in [
            "s-1",
            "lt-1 version 2",
            "subnet-a in vpc-a",
            "arn:tg-vpc-b is in vpc-b",
        ] {
            assert!(found[0].detail.contains(part), "{part}: {found:?}");
        }
        assert!(
            found[0]
                .fix
                .contains("--launch-template-id lt-1 --source-version 2")
                && found[0].fix.contains("<a subnet of vpc-b>"),
            "{found:?}"
        );
    }

    #[test]
    fn a_missing_subnet_template_or_server_fails() {
        let none = BTreeSet::new();
        let mut gone = server("app");
        gone.vpc_id = None;
        let found = findings(&settings(gone, vec![]), "r", &none);
        assert!(
            found[0].detail.contains("which does not exist"),
            "{found:?}"
        );
        let mut no_subnet = server("app");
        no_subnet.subnet_id = None;
        let found = findings(&settings(no_subnet, vec![]), "r", &none);
        assert!(found[0].detail.contains("names no subnet"), "{found:?}");
        let mut unread = server("app");
        unread.unread = Some("no source server s-1".into());
        let found = findings(&settings(unread, vec![]), "r", &none);
        assert_eq!(found[0].severity, Severity::Fail);
    }

    #[test]
    fn copy_private_ip_needs_a_subnet_that_holds_the_ip() {
        let none = BTreeSet::new();
        let mut copying = server("app");
        copying.copy_private_ip = Some(true);
        let found = findings(&settings(copying.clone(), vec![]), "r", &none);
        assert!(
            found[0].detail.contains("cannot hold its IP 10.2.3.4"),
            "{found:?}"
        );
        copying.source_ip = Some("10.1.200.7".into());
        assert!(findings(&settings(copying, vec![]), "r", &none).is_empty());
    }

    #[test]
    fn stopped_warns_only_in_a_wave_without_dependencies() {
        let mut stopped = server("app");
        stopped.launch_disposition = Some("STOPPED".into());
        let first: BTreeSet<String> = ["app".to_string()].into();
        let found = findings(&settings(stopped.clone(), vec![]), "r", &first);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warn);
        assert!(findings(&settings(stopped, vec![]), "r", &BTreeSet::new()).is_empty());
    }

    #[test]
    fn cidr_membership() {
        assert!(cidr_holds("10.1.0.0/16", "10.1.255.254"));
        assert!(!cidr_holds("10.1.0.0/16", "10.2.0.1"));
        assert!(cidr_holds("0.0.0.0/0", "192.168.1.1"));
        assert!(cidr_holds("10.0.0.8/29", "10.0.0.15"));
        assert!(!cidr_holds("10.0.0.8/29", "10.0.0.16"));
        assert!(!cidr_holds("garbage", "10.0.0.1"));
    }
}
