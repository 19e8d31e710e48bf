//! The runbook file (TOML): the model and its parsing. Validation reports every problem with
//! the file, line and key, and what a valid value looks like.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One application's DR runbook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub objectives: Option<Objectives>,
    pub source: Side,
    pub target: Side,
    #[serde(rename = "wave", default)]
    pub waves: Vec<Wave>,
    #[serde(rename = "load_balancer", default)]
    pub load_balancers: Vec<LoadBalancer>,
    #[serde(default)]
    pub dns: Vec<DnsRecord>,
    #[serde(default)]
    pub approvals: Option<Approvals>,
    #[serde(default)]
    pub cleanup: Option<Cleanup>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    #[serde(default)]
    pub rto: Option<String>,
    #[serde(default)]
    pub rpo: Option<String>,
}

/// An account and region: where A1 runs (`source`) or where B1 replicates (`target`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    pub account_id: String,
    pub region: String,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    pub name: String,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub select: Option<Select>,
    #[serde(default)]
    pub optional: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub wave: String,
    pub target_group_arn: String,
    #[serde(default)]
    pub failback_target_group_arn: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
}

/// Which side's credentials own a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    Source,
    Target,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    pub hosted_zone_id: String,
    pub account: Account,
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    #[serde(default)]
    pub ttl: Option<u32>,
    pub points_to: PointsTo,
}

/// What a record points at after cutover: the recovered instances of a wave, or an alias to a
/// load balancer. Exactly one of `wave` and `load_balancer` is set (checked by validation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsTo {
    #[serde(default)]
    pub wave: Option<String>,
    #[serde(default)]
    pub load_balancer: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    #[serde(default)]
    pub before: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cleanup {
    #[serde(default)]
    pub terminate_recovery_instances: bool,
    #[serde(default)]
    pub stop_source_replication: bool,
}

/// A runbook that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    #[error("failed to read the runbook {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Parses a runbook's text. `file` names it in error messages.
pub fn parse(text: &str, file: &str) -> Result<Runbook, RunbookError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_col(text, span.start))
            .unwrap_or((1, 1));
        RunbookError::Parse {
            file: file.to_string(),
            line,
            column,
            message: e.message().to_string(),
        }
    })
}

/// Reads and parses a runbook file.
pub fn load(path: &std::path::Path) -> Result<(Runbook, String), RunbookError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunbookError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let runbook = parse(&text, &path.display().to_string())?;
    Ok((runbook, text))
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Runbook {
    /// The side (account and region) named by `account`.
    pub fn side(&self, account: Account) -> &Side {
        match account {
            Account::Source => &self.source,
            Account::Target => &self.target,
        }
    }
}
