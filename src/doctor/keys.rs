//! The KMS checks: each key exists and is enabled, rotates, and its key policy lets the
//! recovery account's DRS staging role use it through EC2 and DRS of the key's region
//! (`kms:ViaService`), and nothing else.

use super::expected::{self, ExpectedKey};
use super::policy::{Statement, statements};
use super::{Check, CheckBuilder};
use crate::aws::SetupPair;
use crate::aws::kms::Key;
use crate::runbook::Runbook;

/// The key checks, and the ARN of the target key (the key replication must encrypt with).
pub(super) async fn check(runbook: &Runbook, setup: &SetupPair) -> (Vec<Check>, Option<String>) {
    let mut checks = Vec::new();
    let mut target_arn = None;
    for expected in expected::keys(runbook) {
        let side = expected.side.as_str();
        let builder = |what: &str, title: String| {
            Check::at(
                format!("kms.{what}:{}@{}", expected.key, expected.account),
                title,
                &expected.account,
                &expected.region,
            )
        };
        let state = builder("key", format!("{side} KMS key {} is enabled", expected.key));
        let key = match setup.side(expected.side).key(&expected.key).await {
            Ok(Some(key)) => key,
            Ok(None) => {
                checks.push(state.fail(
                    format!(
                        "no key {} in account {} ({})",
                        expected.key, expected.account, expected.region
                    ),
                    create_key_fix(&expected),
                ));
                continue;
            }
            Err(e) => {
                checks.push(state.fail(format!("the key could not be read: {e}"), e.hint.clone()));
                continue;
            }
        };
        if expected.side == crate::runbook::Account::Target {
            target_arn = Some(key.arn.clone());
        }
        checks.push(if key.is_enabled() {
            state.pass(format!("{} is Enabled", key.arn))
        } else {
            state.fail(
                format!(
                    "{} is {}: nothing can encrypt or decrypt with it",
                    key.arn, key.state
                ),
                format!(
                    "aws kms enable-key --key-id {} --region {}",
                    key.arn, expected.region
                ),
            )
        });
        let rotation = builder(
            "rotation",
            format!("{side} KMS key {} rotates", expected.key),
        );
        checks.push(if key.rotation_enabled {
            rotation.pass("automatic rotation is on")
        } else {
            rotation.warn(
                "automatic rotation is off",
                format!(
                    "aws kms enable-key-rotation --key-id {} --region {}",
                    key.arn, expected.region
                ),
            )
        });
        let policy = builder(
            "policy",
            format!(
                "{side} KMS key {} lets the DRS staging role use it via EC2 and DRS",
                expected.key
            ),
        );
        checks.push(policy_check(policy, &expected, &key));
    }
    (checks, target_arn)
}

fn put_policy_fix(expected: &ExpectedKey, key: &str) -> String {
    format!(
        "in account {}: aws kms put-key-policy --key-id {key} --policy-name default --region {} --policy '{}'",
        expected.account,
        expected.region,
        serde_json::to_string(&expected.policy).unwrap_or_default()
    )
}

fn create_key_fix(expected: &ExpectedKey) -> String {
    let alias = if expected.key.starts_with("alias/") {
        format!(
            " && aws kms create-alias --alias-name {} --target-key-id <KEY-ID> --region {}",
            expected.key, expected.region
        )
    } else {
        String::new()
    };
    format!(
        "in account {}: aws kms create-key --region {} --policy '{}'{alias} && aws kms enable-key-rotation --key-id <KEY-ID> --region {}, then set [doctor] {}_kms_key to its ARN if it has no alias",
        expected.account,
        expected.region,
        serde_json::to_string(&expected.policy).unwrap_or_default(),
        expected.region,
        expected.side.as_str()
    )
}

fn policy_check(check: CheckBuilder, expected: &ExpectedKey, key: &Key) -> Check {
    let all = statements(&key.policy);
    let grantee = &expected.grantee;
    let granting: Vec<&Statement> = all
        .iter()
        .filter(|s| s.names_principal("AWS", grantee))
        .filter(|s| expected.required_actions.iter().any(|a| s.grants(a)))
        .collect();
    let missing = super::policy::missing_actions(&all, "AWS", grantee, &expected.required_actions);
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("does not allow {grantee} {}", missing.join(", ")));
    }
    let unrestricted: Vec<&&Statement> = granting
        .iter()
        .filter(|s| s.condition("kms:ViaService").is_empty())
        .collect();
    if !unrestricted.is_empty() {
        problems.push(format!(
            "allows {grantee} without a kms:ViaService condition (expected {}): the role could use the key outside EC2 and DRS",
            expected.via_services.join(" and ")
        ));
    } else if !granting.is_empty() {
        for service in &expected.via_services {
            if !granting
                .iter()
                .any(|s| s.condition_allows("kms:ViaService", service))
            {
                problems.push(format!("kms:ViaService does not include {service}"));
            }
        }
    }
    if problems.is_empty() {
        return check.pass(format!(
            "allows {grantee} {} via {}",
            expected.required_actions.join(", "),
            expected.via_services.join(", ")
        ));
    }
    check.fail(problems.join("; "), put_policy_fix(expected, &key.arn))
}
