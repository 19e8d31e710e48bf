//! IAM reads for the doctor: a role's trust policy, its managed policies (by name) and its
//! inline policies, the documents decoded from IAM's URL encoding into JSON.

use serde_json::Value;

use super::error::{CallSite, classify};
use super::{AwsError, SetupClients};

/// An IAM role as the doctor needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub arn: String,
    /// The trust policy (`AssumeRolePolicyDocument`), decoded.
    pub trust_policy: Value,
    /// The names of the attached managed policies.
    pub managed_policies: Vec<String>,
    /// The inline policies: name and document.
    pub inline_policies: Vec<(String, Value)>,
}

/// IAM answers policy documents URL-encoded (RFC 3986); some implementations send them plain.
pub fn decode_policy(text: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded)
        .or_else(|_| serde_json::from_str(text))
        .unwrap_or(Value::Null)
}

impl SetupClients {
    fn iam_site<'a>(&'a self, call: &'a str, resource: &'a str) -> CallSite<'a> {
        CallSite {
            side: self.side.as_str(),
            credentials: "the side's credentials",
            call,
            account: &self.account_id,
            region: "global",
            resource,
        }
    }

    /// The role `name` with its policies; `None` when it does not exist.
    pub async fn role(&self, name: &str) -> Result<Option<Role>, AwsError> {
        let site = self.iam_site("iam:GetRole", name);
        let got = match self.iam.get_role().role_name(name).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(classify(&site, &e)),
        };
        let Some(role) = got.role() else {
            return Ok(None);
        };
        let trust_policy = role
            .assume_role_policy_document()
            .map(decode_policy)
            .unwrap_or(Value::Null);
        Ok(Some(Role {
            name: role.role_name().to_string(),
            arn: role.arn().to_string(),
            trust_policy,
            managed_policies: self.managed_policy_names(name).await?,
            inline_policies: self.inline_policies(name).await?,
        }))
    }

    async fn managed_policy_names(&self, role: &str) -> Result<Vec<String>, AwsError> {
        let site = self.iam_site("iam:ListAttachedRolePolicies", role);
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .iam
                .list_attached_role_policies()
                .role_name(role)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            names.extend(
                page.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_name().map(str::to_string)),
            );
            marker = page.marker().map(str::to_string);
            if !page.is_truncated() || marker.is_none() {
                return Ok(names);
            }
        }
    }

    async fn inline_policies(&self, role: &str) -> Result<Vec<(String, Value)>, AwsError> {
        let site = self.iam_site("iam:ListRolePolicies", role);
        let listed = self
            .iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        let mut out = Vec::new();
        for name in listed.policy_names() {
            let site = self.iam_site("iam:GetRolePolicy", role);
            let got = self
                .iam
                .get_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            out.push((name.clone(), decode_policy(got.policy_document())));
        }
        Ok(out)
    }
}
