//! STS for the doctor: which account the credentials of a side actually reach.

use super::error::{CallSite, classify};
use super::{AwsError, SetupClients};

impl SetupClients {
    /// GetCallerIdentity: the account ID and ARN the side's credentials act as.
    pub async fn caller_identity(&self) -> Result<(String, String), AwsError> {
        let site = CallSite {
            side: self.side.as_str(),
            credentials: "the side's credentials",
            call: "sts:GetCallerIdentity",
            account: &self.account_id,
            region: &self.region,
            resource: "the caller",
        };
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok((
            out.account().unwrap_or_default().to_string(),
            out.arn().unwrap_or_default().to_string(),
        ))
    }
}
