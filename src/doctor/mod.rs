//! `drs-runbook doctor`: read-only readiness checks of a runbook's cross-account setup, each
//! PASS, WARN or FAIL with what was found and the exact fix.
//!
//! # Layout
//!
//! ```text
//!   runbook ──► expected (roles, trust/key policies per account, pure) ──► --print-policies
//!      │
//!      ├─► roles   (IAM: trust principals and conditions, managed/inline policies)  ┐
//!      ├─► keys    (KMS: state, rotation, key policy grants via ec2/drs)             ├─► Report
//!      └─► servers (DRS: initialized, agent seen, CONTINUOUS, lag <= RPO, launch     │
//!                   settings vs target group VPCs, replication encryption)           ┘
//! ```
//!
//! - `policy`: reading policy documents (pure). `expected`: the setup a runbook needs (pure).
//! - Checks never change anything: they call only Get/List/Describe operations.
//! - IAM, KMS and STS may be unreachable (a simulator serves DRS only): their checks are then
//!   reported as WARN "not checked", never silently dropped.

pub mod expected;
pub mod policy;

mod keys;
mod roles;
mod servers;

use serde::Serialize;

use crate::aws::{Clients, SetupPair};
use crate::runbook::{Account, Runbook};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check: what was checked, where, what was found and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier, e.g. `iam.trust:DRSStagingAccountRole@222222222222`.
    pub id: String,
    pub status: Status,
    /// What was checked, in words.
    pub title: String,
    pub account: String,
    pub region: String,
    /// What was found.
    pub found: String,
    /// The exact fix (a command or the policy to apply); `None` when it passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn at(id: String, title: String, account: &str, region: &str) -> CheckBuilder {
        CheckBuilder {
            id,
            title,
            account: account.to_string(),
            region: region.to_string(),
        }
    }
}

/// A check under construction: where and what; its verdict finishes it.
struct CheckBuilder {
    id: String,
    title: String,
    account: String,
    region: String,
}

impl CheckBuilder {
    fn finish(self, status: Status, found: impl Into<String>, fix: Option<String>) -> Check {
        Check {
            id: self.id,
            status,
            title: self.title,
            account: self.account,
            region: self.region,
            found: found.into(),
            fix,
        }
    }

    fn pass(self, found: impl Into<String>) -> Check {
        self.finish(Status::Pass, found, None)
    }

    fn warn(self, found: impl Into<String>, fix: impl Into<String>) -> Check {
        self.finish(Status::Warn, found, Some(fix.into()))
    }

    fn fail(self, found: impl Into<String>, fix: impl Into<String>) -> Check {
        self.finish(Status::Fail, found, Some(fix.into()))
    }
}

/// Every check of one runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub runbook: String,
    pub checks: Vec<Check>,
    pub passed: usize,
    pub warnings: usize,
    pub failed: usize,
}

impl Report {
    fn new(runbook: &str, checks: Vec<Check>) -> Report {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        Report {
            runbook: runbook.to_string(),
            passed: count(Status::Pass),
            warnings: count(Status::Warn),
            failed: count(Status::Fail),
            checks,
        }
    }

    pub fn has_failures(&self) -> bool {
        self.failed > 0
    }

    /// The checks with this status.
    pub fn with_status(&self, status: Status) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(move |c| c.status == status)
    }
}

/// The hint for unreachable IAM, KMS and STS.
const SETUP_UNREACHABLE_FIX: &str = "point AWS_ENDPOINT_URL_IAM, AWS_ENDPOINT_URL_KMS and AWS_ENDPOINT_URL_STS at an IAM/KMS/STS implementation (e.g. moto_server), or run doctor against AWS";

/// Runs every check. `setup` is `None` when IAM, KMS and STS cannot be reached (the simulator
/// serves DRS only); their checks are then WARN "not checked".
pub async fn run(
    runbook: &Runbook,
    clients: &Clients,
    setup: Option<&SetupPair>,
    now: chrono::DateTime<chrono::Utc>,
) -> Report {
    let mut checks = Vec::new();
    let mut target_key_arn = None;
    match setup {
        Some(setup) => {
            checks.extend(identity_checks(runbook, setup).await);
            checks.extend(roles::check(runbook, setup).await);
            let (key_checks, arn) = keys::check(runbook, setup).await;
            checks.extend(key_checks);
            target_key_arn = arn;
        }
        None => {
            for side in [Account::Source, Account::Target] {
                let spec = runbook.side(side);
                checks.push(
                    Check::at(
                        format!("setup.reachable@{}", spec.account_id),
                        format!("IAM roles and KMS keys of the {} account", side.as_str()),
                        &spec.account_id,
                        &spec.region,
                    )
                    .warn(
                        "not checked: the simulated cloud serves DRS, Route 53 and ELBv2, not IAM, KMS or STS",
                        SETUP_UNREACHABLE_FIX,
                    ),
                );
            }
        }
    }
    checks.extend(servers::check(runbook, clients, target_key_arn.as_deref(), now).await);
    Report::new(&runbook.name, checks)
}

/// The credentials of each side reach the side's account.
async fn identity_checks(runbook: &Runbook, setup: &SetupPair) -> Vec<Check> {
    let mut checks = Vec::new();
    for side in [Account::Source, Account::Target] {
        let spec = runbook.side(side);
        let check = Check::at(
            format!("sts.identity@{}", spec.account_id),
            format!(
                "credentials of [{}] act in account {}",
                side.as_str(),
                spec.account_id
            ),
            &spec.account_id,
            &spec.region,
        );
        checks.push(match setup.side(side).caller_identity().await {
            Ok((account, arn)) if account == spec.account_id => check.pass(format!("acting as {arn}")),
            Ok((account, arn)) => check.fail(
                format!("the credentials act as {arn} in account {account}"),
                format!(
                    "set [{}] profile or role_arn to credentials of account {} (every check of this side reads the wrong account)",
                    side.as_str(),
                    spec.account_id
                ),
            ),
            Err(e) => check.fail(format!("the credentials could not be verified: {e}"), e.hint.clone()),
        });
    }
    checks
}

/// Renders a report as text: one block per check, failures last so they stay on screen.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let mut ordered: Vec<&Check> = report.checks.iter().collect();
    ordered.sort_by_key(|c| c.status);
    for check in ordered {
        out.push_str(&format!(
            "{}  {}  [{} {}]\n      found: {}\n",
            check.status.as_str(),
            check.title,
            check.account,
            check.region,
            check.found
        ));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("      fix:   {fix}\n"));
        }
    }
    out.push_str(&format!(
        "{}: {} passed, {} warnings, {} failed\n",
        report.runbook, report.passed, report.warnings, report.failed
    ));
    out
}
