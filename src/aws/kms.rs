//! KMS reads for the doctor: a key's state, rotation and key policy.

use serde_json::Value;

use super::error::{CallSite, classify};
use super::iam::decode_policy;
use super::{AwsError, SetupClients};

/// A KMS key as the doctor needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub arn: String,
    pub key_id: String,
    /// `Enabled`, `Disabled`, `PendingDeletion`, ...
    pub state: String,
    pub rotation_enabled: bool,
    /// The `default` key policy, decoded.
    pub policy: Value,
}

impl Key {
    pub fn is_enabled(&self) -> bool {
        self.state == "Enabled"
    }
}

impl SetupClients {
    fn kms_site<'a>(&'a self, call: &'a str, resource: &'a str) -> CallSite<'a> {
        CallSite {
            side: self.side.as_str(),
            credentials: "the side's credentials",
            call,
            account: &self.account_id,
            region: &self.region,
            resource,
        }
    }

    /// The key named by `key` (ARN, key ID, alias name or alias ARN); `None` when it does not
    /// exist.
    pub async fn key(&self, key: &str) -> Result<Option<Key>, AwsError> {
        let site = self.kms_site("kms:DescribeKey", key);
        let described = match self.kms.describe_key().key_id(key).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(classify(&site, &e)),
        };
        let Some(meta) = described.key_metadata() else {
            return Ok(None);
        };
        let key_id = meta.key_id().to_string();
        let site = self.kms_site("kms:GetKeyRotationStatus", key);
        let rotation = self
            .kms
            .get_key_rotation_status()
            .key_id(&key_id)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        let site = self.kms_site("kms:GetKeyPolicy", key);
        let policy = self
            .kms
            .get_key_policy()
            .key_id(&key_id)
            .policy_name("default")
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(Some(Key {
            arn: meta.arn().unwrap_or_default().to_string(),
            key_id,
            state: meta
                .key_state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| {
                    if meta.enabled() {
                        "Enabled"
                    } else {
                        "Disabled"
                    }
                    .to_string()
                }),
            rotation_enabled: rotation.key_rotation_enabled(),
            policy: policy.policy().map(decode_policy).unwrap_or(Value::Null),
        }))
    }
}
