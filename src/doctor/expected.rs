//! What the cross-account setup must look like for a runbook: the roles in each account with
//! their trust policies and managed policies, and the two KMS key policies. The checks compare
//! against these, and `doctor --print-policies` prints them for infrastructure code.
//!
//! Source: the team's cross-account setup document, corrected where it disagrees with the DRS
//! API or with IAM: a trust policy needs a principal (the document's agent role has an empty
//! `Principal`), DRS ARNs carry an account field (`arn:aws:drs:*:*:...`, not `*::`), and the
//! replication template's `ebsEncryption` is `CUSTOM` with a key, not `ENABLED`.
//!
//! A *direction* is one way servers replicate: from the origin account (where the agents run)
//! into the staging account (where DRS keeps the source servers and recovers them). Failover
//! is source -> target; failback is target -> source, with the same roles mirrored.

use serde_json::{Value, json};

use crate::runbook::{Account, DoctorSettings, Runbook};

/// The path DRS's roles live under.
pub const ROLE_PATH: &str = "/service-role/";

/// The managed policies DRS's roles need, by role kind.
pub const STAGING_POLICY: &str = "AWSElasticDisasterRecoveryStagingAccountPolicy_v2";
pub const REPLICATION_POLICY: &str = "AWSElasticDisasterRecoveryCrossAccountReplicationPolicy";
pub const AGENT_POLICY: &str = "AWSElasticDisasterRecoveryEc2InstancePolicy";

/// The kinds of cross-account roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    Staging,
    Replication,
    Agent,
    AgentAuthorized,
}

/// One replication direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direction {
    pub name: &'static str,
    /// Where the agents run.
    pub origin: Account,
    pub origin_account: String,
    /// Where DRS keeps the source servers.
    pub staging: Account,
    pub staging_account: String,
}

/// The directions the doctor checks: failover, and failback unless `[doctor] failback = false`.
pub fn directions(runbook: &Runbook) -> Vec<Direction> {
    let forward = Direction {
        name: "failover",
        origin: Account::Source,
        origin_account: runbook.source.account_id.clone(),
        staging: Account::Target,
        staging_account: runbook.target.account_id.clone(),
    };
    let mut out = vec![forward];
    if runbook.doctor.failback {
        out.push(Direction {
            name: "failback",
            origin: Account::Target,
            origin_account: runbook.target.account_id.clone(),
            staging: Account::Source,
            staging_account: runbook.source.account_id.clone(),
        });
    }
    out
}

/// A role the setup needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedRole {
    pub kind: RoleKind,
    /// The side whose account holds it.
    pub side: Account,
    pub account: String,
    pub name: String,
    pub arn: String,
    pub trust_policy: Value,
    pub managed_policies: Vec<&'static str>,
    /// The inline policy it needs, if any (the agent-authorized role's).
    pub inline_policy: Option<Value>,
}

pub fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role{ROLE_PATH}{name}")
}

fn with_peer(template: &str, peer: &str) -> String {
    template.replace("{peer}", peer)
}

/// The roles of one direction.
pub fn roles(settings: &DoctorSettings, direction: &Direction) -> Vec<ExpectedRole> {
    let staging = &direction.staging_account;
    let origin = &direction.origin_account;
    let agent_name = with_peer(&settings.agent_role, origin);
    let authorized_name = with_peer(&settings.agent_authorized_role, staging);
    let agent_arn = role_arn(staging, &agent_name);
    let authorized_arn = role_arn(origin, &authorized_name);
    vec![
        ExpectedRole {
            kind: RoleKind::Staging,
            side: direction.staging,
            account: staging.clone(),
            name: settings.staging_role.clone(),
            arn: role_arn(staging, &settings.staging_role),
            trust_policy: staging_trust(staging),
            managed_policies: vec![STAGING_POLICY],
            inline_policy: None,
        },
        ExpectedRole {
            kind: RoleKind::Replication,
            side: direction.staging,
            account: staging.clone(),
            name: settings.replication_role.clone(),
            arn: role_arn(staging, &settings.replication_role),
            trust_policy: replication_trust(),
            managed_policies: vec![REPLICATION_POLICY],
            inline_policy: None,
        },
        ExpectedRole {
            kind: RoleKind::Agent,
            side: direction.staging,
            account: staging.clone(),
            name: agent_name,
            arn: agent_arn.clone(),
            trust_policy: agent_trust(origin, &authorized_arn),
            managed_policies: vec![AGENT_POLICY],
            inline_policy: None,
        },
        ExpectedRole {
            kind: RoleKind::AgentAuthorized,
            side: direction.origin,
            account: origin.clone(),
            name: authorized_name,
            arn: authorized_arn,
            trust_policy: authorized_trust(origin),
            managed_policies: Vec::new(),
            inline_policy: Some(authorized_inline(&agent_arn)),
        },
    ]
}

fn staging_trust(staging: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "drs.amazonaws.com" },
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Condition": {
                "StringLike": { "sts:SourceIdentity": staging, "aws:SourceAccount": staging },
                "ArnLike": { "aws:SourceArn": "arn:aws:drs:*:*:source-server/*" }
            }
        }]
    })
}

fn replication_trust() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": { "Service": "drs.amazonaws.com" },
                "Action": "sts:AssumeRole",
                "Condition": { "ArnLike": { "aws:SourceArn": "arn:aws:drs:*:*:recovery-instance/*" } }
            },
            {
                "Effect": "Allow",
                "Principal": { "Service": "drs.amazonaws.com" },
                "Action": "sts:AssumeRole",
                "Condition": { "ArnLike": { "aws:SourceArn": "arn:aws:drs:*:*:source-server/*" } }
            }
        ]
    })
}

fn agent_trust(origin: &str, authorized_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{origin}:root") },
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": { "ArnEquals": { "aws:PrincipalArn": authorized_arn } }
            },
            {
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{origin}:root") },
                "Action": "sts:SetSourceIdentity",
                "Condition": {
                    "StringLike": { "sts:SourceIdentity": "i-*" },
                    "ArnEquals": { "aws:PrincipalArn": authorized_arn }
                }
            }
        ]
    })
}

fn authorized_trust(origin: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:aws:iam::{origin}:root") },
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {
                "StringLike": { "aws:RequestTag/SourceInstanceARN": "${ec2:SourceInstanceARN}" },
                "ForAnyValue:StringEquals": { "sts:TransitiveTagKeys": "SourceInstanceARN" }
            }
        }]
    })
}

fn authorized_inline(agent_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": agent_arn },
            {
                "Effect": "Allow",
                "Action": "sts:SetSourceIdentity",
                "Resource": agent_arn,
                "Condition": { "StringLike": { "sts:SourceIdentity": "i-*" } }
            }
        ]
    })
}

/// What a key must grant the staging role, and via which services.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedKey {
    pub side: Account,
    pub account: String,
    pub region: String,
    pub key: String,
    /// The staging role of the failover direction (target account).
    pub grantee: String,
    /// The actions the checks require (a subset of those the printed policy grants).
    pub required_actions: Vec<&'static str>,
    pub via_services: Vec<String>,
    pub policy: Value,
}

/// The source key (DRS reads the source volumes) and the target key (DRS encrypts replicated
/// and recovered volumes).
pub fn keys(runbook: &Runbook) -> Vec<ExpectedKey> {
    let staging_role = role_arn(&runbook.target.account_id, &runbook.doctor.staging_role);
    let key = |side: Account,
               key: &str,
               granted: &[&str],
               required: Vec<&'static str>,
               sid: &str| {
        let spec = runbook.side(side);
        let via = vec![
            format!("ec2.{}.amazonaws.com", spec.region),
            format!("drs.{}.amazonaws.com", spec.region),
        ];
        ExpectedKey {
            side,
            account: spec.account_id.clone(),
            region: spec.region.clone(),
            key: key.to_string(),
            grantee: staging_role.clone(),
            required_actions: required,
            via_services: via.clone(),
            policy: json!({
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "Enable IAM User Permissions",
                        "Effect": "Allow",
                        "Principal": { "AWS": format!("arn:aws:iam::{}:root", spec.account_id) },
                        "Action": "kms:*",
                        "Resource": "*"
                    },
                    {
                        "Sid": sid,
                        "Effect": "Allow",
                        "Principal": { "AWS": staging_role },
                        "Action": granted,
                        "Resource": "*",
                        "Condition": { "StringEquals": { "kms:ViaService": via } }
                    }
                ]
            }),
        }
    };
    vec![
        key(
            Account::Source,
            &runbook.doctor.source_kms_key,
            &[
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncrypt*",
                "kms:CreateGrant",
            ],
            vec!["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"],
            "Allow the DRS staging role of the recovery account",
        ),
        key(
            Account::Target,
            &runbook.doctor.target_kms_key,
            &[
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
                "kms:CreateGrant",
                "kms:ListGrants",
                "kms:RevokeGrant",
            ],
            vec![
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "kms:DescribeKey",
                "kms:CreateGrant",
            ],
            "Allow the DRS staging role of this account",
        ),
    ]
}

/// Everything `--print-policies` prints: per account, its roles (trust, managed and inline
/// policies) and its key policy.
pub fn print_policies(runbook: &Runbook) -> Value {
    let mut accounts = serde_json::Map::new();
    for side in [Account::Source, Account::Target] {
        let spec = runbook.side(side);
        let mut role_list = Vec::new();
        for direction in directions(runbook) {
            for role in roles(&runbook.doctor, &direction) {
                if role.side != side {
                    continue;
                }
                let mut entry = json!({
                    "direction": direction.name,
                    "role_name": role.name,
                    "path": ROLE_PATH,
                    "arn": role.arn,
                    "trust_policy": role.trust_policy,
                    "managed_policies": role.managed_policies.iter()
                        .map(|p| format!("arn:aws:iam::aws:policy/service-role/{p}"))
                        .collect::<Vec<_>>(),
                });
                if let Some(inline) = role.inline_policy {
                    entry["inline_policy"] = inline;
                }
                role_list.push(entry);
            }
        }
        let key = keys(runbook)
            .into_iter()
            .find(|k| k.side == side)
            .map(|k| json!({ "key": k.key, "region": k.region, "key_policy": k.policy }));
        accounts.insert(
            side.as_str().to_string(),
            json!({
                "account_id": spec.account_id,
                "region": spec.region,
                "roles": role_list,
                "kms_key": key,
            }),
        );
    }
    json!({ "runbook": runbook.name, "accounts": accounts })
}
