//! DRS reads for the doctor: whether DRS is initialized, and the per-server replication
//! configuration (the launch configuration is [`super::drs`]'s `get_launch_configuration`).

use super::error::classify;
use super::{AwsError, SideClients};

/// The EBS encryption of a server's replication configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationEncryption {
    /// `DEFAULT`, `CUSTOM` or `NONE`.
    pub ebs_encryption: String,
    pub key_arn: Option<String>,
}

impl SideClients {
    /// Whether DRS is initialized in the side's account and region: `Ok(false)` when DRS
    /// answers UninitializedAccountException.
    pub async fn drs_initialized(&self) -> Result<bool, AwsError> {
        let site = self.site("drs:DescribeSourceServers", "the account's source servers");
        match self
            .drs
            .describe_source_servers()
            .max_results(1)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let error = classify(&site, &e);
                if error.code.as_deref() == Some("UninitializedAccountException") {
                    Ok(false)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// GetReplicationConfiguration: the EBS encryption DRS replicates the server's volumes with.
    pub async fn replication_encryption(
        &self,
        source_server_id: &str,
    ) -> Result<ReplicationEncryption, AwsError> {
        let site = self.site("drs:GetReplicationConfiguration", source_server_id);
        let out = self
            .drs
            .get_replication_configuration()
            .source_server_id(source_server_id)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(ReplicationEncryption {
            ebs_encryption: out
                .ebs_encryption()
                .map(|e| e.as_str().to_string())
                .unwrap_or_else(|| "DEFAULT".to_string()),
            key_arn: out.ebs_encryption_key_arn().map(str::to_string),
        })
    }
}
