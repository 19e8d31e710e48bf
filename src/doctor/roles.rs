//! The IAM checks: each cross-account role exists in the right account, its trust policy names
//! the principals and conditions DRS requires, and its policies are attached.

use serde_json::Value;

use super::expected::{self, ExpectedRole, ROLE_PATH, RoleKind};
use super::policy::{Statement, statements};
use super::{Check, CheckBuilder};
use crate::aws::SetupPair;
use crate::aws::iam::Role;
use crate::runbook::Runbook;

const DRS_SERVICE: &str = "drs.amazonaws.com";

pub(super) async fn check(runbook: &Runbook, setup: &SetupPair) -> Vec<Check> {
    let mut checks = Vec::new();
    for direction in expected::directions(runbook) {
        for role in expected::roles(&runbook.doctor, &direction) {
            let region = &runbook.side(role.side).region;
            let trust = Check::at(
                format!("iam.trust:{}@{}", role.name, role.account),
                format!(
                    "role {} ({}) trusts what DRS requires",
                    role.name, direction.name
                ),
                &role.account,
                region,
            );
            let policies = Check::at(
                format!("iam.policies:{}@{}", role.name, role.account),
                format!("role {} ({}) has its policies", role.name, direction.name),
                &role.account,
                region,
            );
            match setup.side(role.side).role(&role.name).await {
                Ok(Some(found)) => {
                    checks.push(trust_check(trust, &role, &found, &direction.origin_account));
                    checks.push(policies_check(policies, &role, &found));
                }
                Ok(None) => checks.push(trust.fail(
                    format!("no role {} in account {}", role.name, role.account),
                    create_role_fix(&role),
                )),
                Err(e) => checks
                    .push(trust.fail(format!("the role could not be read: {e}"), e.hint.clone())),
            }
        }
    }
    checks
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn create_role_fix(role: &ExpectedRole) -> String {
    let mut fix = format!(
        "in account {}: aws iam create-role --role-name {} --path {ROLE_PATH} --assume-role-policy-document '{}'",
        role.account,
        role.name,
        compact(&role.trust_policy)
    );
    for policy in &role.managed_policies {
        fix.push_str(&format!(
            " && aws iam attach-role-policy --role-name {} --policy-arn arn:aws:iam::aws:policy/service-role/{policy}",
            role.name
        ));
    }
    if let Some(inline) = &role.inline_policy {
        fix.push_str(&format!(" && {}", inline_fix(role, inline)));
    }
    fix
}

fn inline_fix(role: &ExpectedRole, inline: &Value) -> String {
    format!(
        "aws iam put-role-policy --role-name {} --policy-name drs-agent-authorized --policy-document '{}'",
        role.name,
        compact(inline)
    )
}

fn trust_check(check: CheckBuilder, role: &ExpectedRole, found: &Role, origin: &str) -> Check {
    let statements = statements(&found.trust_policy);
    let problems = match role.kind {
        RoleKind::Staging => staging_problems(&statements, &role.account),
        RoleKind::Replication => replication_problems(&statements, &role.account),
        RoleKind::Agent => agent_problems(&statements, origin, &authorized_arn(role, origin)),
        RoleKind::AgentAuthorized => authorized_problems(&statements, origin),
    };
    if problems.is_empty() {
        return check.pass(format!("{} trusts what DRS requires", found.arn));
    }
    check.fail(
        problems.join("; "),
        format!(
            "in account {}: aws iam update-assume-role-policy --role-name {} --policy-document '{}'",
            role.account,
            role.name,
            compact(&role.trust_policy)
        ),
    )
}

/// The agent role's trust names the agent-authorized role of the origin account; its ARN is
/// in the expected agent trust policy's condition.
fn authorized_arn(role: &ExpectedRole, origin: &str) -> String {
    statements(&role.trust_policy)
        .first()
        .and_then(|s| {
            s.condition("aws:PrincipalArn")
                .first()
                .and_then(|c| c.values.first().cloned())
        })
        .unwrap_or_else(|| format!("arn:aws:iam::{origin}:role{ROLE_PATH}"))
}

/// The Allow statements trusting the DRS service for `action`.
fn drs_statements<'a>(statements: &'a [Statement], action: &str) -> Vec<&'a Statement> {
    statements
        .iter()
        .filter(|s| s.names_principal("Service", DRS_SERVICE) && s.grants(action))
        .collect()
}

/// A condition the trusting statements must carry: `key` allowing `value`.
fn condition_problem(trusting: &[&Statement], key: &str, value: &str) -> Option<String> {
    if trusting.iter().any(|s| s.condition_allows(key, value)) {
        return None;
    }
    let found: Vec<String> = trusting
        .iter()
        .flat_map(|s| s.condition(key))
        .flat_map(|c| c.values.clone())
        .collect();
    Some(if found.is_empty() {
        format!("no {key} condition (expected {value})")
    } else {
        format!("{key} is {} (expected {value})", found.join(", "))
    })
}

fn staging_problems(statements: &[Statement], account: &str) -> Vec<String> {
    let trusting = drs_statements(statements, "sts:AssumeRole");
    if trusting.is_empty() {
        return vec![format!("does not trust {DRS_SERVICE} for sts:AssumeRole")];
    }
    let mut problems = Vec::new();
    if drs_statements(statements, "sts:SetSourceIdentity").is_empty() {
        problems.push(format!(
            "does not let {DRS_SERVICE} call sts:SetSourceIdentity"
        ));
    }
    problems.extend(condition_problem(&trusting, "sts:SourceIdentity", account));
    problems.extend(condition_problem(&trusting, "aws:SourceAccount", account));
    problems
}

fn replication_problems(statements: &[Statement], account: &str) -> Vec<String> {
    let trusting = drs_statements(statements, "sts:AssumeRole");
    if trusting.is_empty() {
        return vec![format!("does not trust {DRS_SERVICE} for sts:AssumeRole")];
    }
    [
        "recovery-instance/i-0123456789abcdef0",
        "source-server/s-0123456789abcdef0",
    ]
    .iter()
    .filter_map(|resource| {
        let sample = format!("arn:aws:drs:us-east-1:{account}:{resource}");
        condition_problem(&trusting, "aws:SourceArn", &sample)
            .map(|p| format!("{p} for {}", resource.split('/').next().unwrap_or(resource)))
    })
    .collect()
}

/// Whether a statement trusts `principal_arn` for `action`: naming it, or naming its account
/// with an `aws:PrincipalArn` condition allowing it.
fn trusts_role(statement: &Statement, action: &str, principal_arn: &str, account: &str) -> bool {
    statement.grants(action)
        && (statement.names_principal("AWS", principal_arn)
            || ((statement.names_principal("AWS", &format!("arn:aws:iam::{account}:root"))
                || statement.names_principal("AWS", account))
                && statement.condition_allows("aws:PrincipalArn", principal_arn)))
}

/// The accounts the statements granting `action` to AWS principals name, other than `account`.
fn other_accounts(statements: &[Statement], action: &str, account: &str) -> Vec<String> {
    let mut others: Vec<String> = statements
        .iter()
        .filter(|s| s.grants(action))
        .flat_map(Statement::principal_accounts)
        .filter(|a| a != account)
        .collect();
    others.sort();
    others.dedup();
    others
}

fn wrong_account(statements: &[Statement], action: &str, account: &str, what: &str) -> String {
    let others = other_accounts(statements, action, account);
    if others.is_empty() {
        format!("does not trust {what} for {action}")
    } else {
        format!(
            "trusts account {} instead of {account} ({what}) for {action}",
            others.join(", ")
        )
    }
}

fn agent_problems(statements: &[Statement], origin: &str, authorized: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for action in ["sts:AssumeRole", "sts:TagSession"] {
        if !statements
            .iter()
            .any(|s| trusts_role(s, action, authorized, origin))
        {
            problems.push(wrong_account(statements, action, origin, authorized));
        }
    }
    let identity: Vec<&Statement> = statements
        .iter()
        .filter(|s| trusts_role(s, "sts:SetSourceIdentity", authorized, origin))
        .collect();
    if identity.is_empty() {
        problems.push(wrong_account(
            statements,
            "sts:SetSourceIdentity",
            origin,
            authorized,
        ));
    } else {
        problems.extend(condition_problem(
            &identity,
            "sts:SourceIdentity",
            "i-0123456789abcdef0",
        ));
    }
    problems
}

fn authorized_problems(statements: &[Statement], origin: &str) -> Vec<String> {
    let root = format!("arn:aws:iam::{origin}:root");
    let trusting: Vec<&Statement> = statements
        .iter()
        .filter(|s| {
            s.grants("sts:AssumeRole")
                && (s.names_principal("AWS", &root) || s.names_principal("AWS", origin))
        })
        .collect();
    if trusting.is_empty() {
        return vec![wrong_account(statements, "sts:AssumeRole", origin, &root)];
    }
    let mut problems = Vec::new();
    if !trusting.iter().any(|s| s.grants("sts:TagSession")) {
        problems.push(format!("does not let {root} call sts:TagSession"));
    }
    for key in ["aws:RequestTag/SourceInstanceARN", "sts:TransitiveTagKeys"] {
        if trusting.iter().all(|s| s.condition(key).is_empty()) {
            problems.push(format!(
                "no {key} condition (the agent's instance must tag its session)"
            ));
        }
    }
    problems
}

fn policies_check(check: CheckBuilder, role: &ExpectedRole, found: &Role) -> Check {
    let missing: Vec<&str> = role
        .managed_policies
        .iter()
        .copied()
        .filter(|p| !found.managed_policies.iter().any(|f| f == p))
        .collect();
    let mut problems: Vec<String> = missing
        .iter()
        .map(|p| format!("managed policy {p} is not attached"))
        .collect();
    let mut fixes: Vec<String> = missing
        .iter()
        .map(|p| {
            format!(
                "aws iam attach-role-policy --role-name {} --policy-arn arn:aws:iam::aws:policy/service-role/{p}",
                role.name
            )
        })
        .collect();
    if let Some(inline) = &role.inline_policy {
        let agent_arn = statements(inline)
            .first()
            .and_then(|s| s.resources.first().cloned())
            .unwrap_or_default();
        let allowed = found.inline_policies.iter().any(|(_, doc)| {
            statements(doc).iter().any(|s| {
                s.grants("sts:AssumeRole")
                    && s.resources
                        .iter()
                        .any(|r| super::policy::wildcard_match(r, &agent_arn))
            })
        });
        if !allowed {
            problems.push(format!(
                "no inline policy allows sts:AssumeRole on {agent_arn}"
            ));
            fixes.push(inline_fix(role, inline));
        }
    }
    if problems.is_empty() {
        let attached = if found.managed_policies.is_empty() {
            format!("{} inline policies", found.inline_policies.len())
        } else {
            found.managed_policies.join(", ")
        };
        return check.pass(format!("attached: {attached}"));
    }
    check.fail(
        problems.join("; "),
        format!("in account {}: {}", role.account, fixes.join(" && ")),
    )
}
