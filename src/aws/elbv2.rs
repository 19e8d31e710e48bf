//! ELBv2 calls: target groups, registration and target health.

use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use serde::{Deserialize, Serialize};

use super::drs::Called;
use super::error::classify;
use super::{AwsError, SideClients, with_throttle_retry};

/// A target and its health in a target group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetHealth {
    pub id: String,
    pub port: Option<i32>,
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining`, `unavailable`.
    pub state: String,
    pub reason: Option<String>,
}

/// A target to register or deregister.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub id: String,
    pub port: Option<i32>,
}

fn description(t: &Target) -> TargetDescription {
    TargetDescription::builder()
        .id(&t.id)
        .set_port(t.port)
        .build()
}

impl SideClients {
    /// DescribeTargetHealth of a whole target group.
    pub async fn target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetHealth>, AwsError> {
        let site = self.site("elbv2:DescribeTargetHealth", target_group_arn);
        let output = self
            .elbv2
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(output
            .target_health_descriptions()
            .iter()
            .map(|d| TargetHealth {
                id: d
                    .target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_string(),
                port: d.target().and_then(|t| t.port()),
                state: d
                    .target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                reason: d
                    .target_health()
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string()),
            })
            .collect())
    }

    /// RegisterTargets (idempotent in ELBv2).
    pub async fn register_targets(
        &self,
        target_group_arn: &str,
        targets: &[Target],
    ) -> Result<Called<()>, AwsError> {
        let site = self.site("elbv2:RegisterTargets", target_group_arn);
        with_throttle_retry(|| async {
            let output = self
                .elbv2
                .register_targets()
                .target_group_arn(target_group_arn)
                .set_targets(Some(targets.iter().map(description).collect()))
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_elasticloadbalancingv2::operation::RequestId;
            Ok(Called {
                value: (),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// DeregisterTargets (idempotent in ELBv2).
    pub async fn deregister_targets(
        &self,
        target_group_arn: &str,
        targets: &[Target],
    ) -> Result<Called<()>, AwsError> {
        let site = self.site("elbv2:DeregisterTargets", target_group_arn);
        with_throttle_retry(|| async {
            let output = self
                .elbv2
                .deregister_targets()
                .target_group_arn(target_group_arn)
                .set_targets(Some(targets.iter().map(description).collect()))
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_elasticloadbalancingv2::operation::RequestId;
            Ok(Called {
                value: (),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// The VPC of a target group (DescribeTargetGroups `VpcId`; none for a `lambda` target
    /// group): `Ok(None)` when the group does not exist.
    pub async fn target_group_vpc(
        &self,
        target_group_arn: &str,
    ) -> Result<Option<Option<String>>, AwsError> {
        let site = self.site("elbv2:DescribeTargetGroups", target_group_arn);
        match self
            .elbv2
            .describe_target_groups()
            .target_group_arns(target_group_arn)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .target_groups()
                .first()
                .map(|g| g.vpc_id().map(str::to_string))),
            Err(e) => {
                let err = classify(&site, &e);
                if err.code.as_deref() == Some("TargetGroupNotFound") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The canonical hosted zone ID of the load balancer with this DNS name (a `dualstack.`
    /// prefix and a trailing dot ignored), `None` when this side's region has none
    /// (DescribeLoadBalancers, every page).
    pub async fn load_balancer_zone(&self, dns_name: &str) -> Result<Option<String>, AwsError> {
        let site = self.site("elbv2:DescribeLoadBalancers", dns_name);
        let wanted = dns_name
            .trim_end_matches('.')
            .trim_start_matches("dualstack.")
            .to_ascii_lowercase();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .elbv2
                .describe_load_balancers()
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            if let Some(lb) = out.load_balancers().iter().find(|lb| {
                lb.dns_name()
                    .is_some_and(|d| d.eq_ignore_ascii_case(&wanted))
            }) {
                return Ok(lb.canonical_hosted_zone_id().map(str::to_string));
            }
            match out.next_marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_string()),
                _ => return Ok(None),
            }
        }
    }

    /// Whether the target group exists (preflight).
    pub async fn target_group_exists(&self, target_group_arn: &str) -> Result<bool, AwsError> {
        let site = self.site("elbv2:DescribeTargetGroups", target_group_arn);
        match self
            .elbv2
            .describe_target_groups()
            .target_group_arns(target_group_arn)
            .send()
            .await
        {
            Ok(out) => Ok(!out.target_groups().is_empty()),
            Err(e) => {
                let err = classify(&site, &e);
                if err.code.as_deref() == Some("TargetGroupNotFound") {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }
}

/// Mutating calls are sent once by the SDK: throttling is retried by
/// [`super::with_throttle_retry`], anything ambiguous is reconciled by the step.
fn single_attempt() -> aws_sdk_elasticloadbalancingv2::config::Builder {
    aws_sdk_elasticloadbalancingv2::config::Builder::default()
        .retry_config(aws_sdk_elasticloadbalancingv2::config::retry::RetryConfig::disabled())
}
