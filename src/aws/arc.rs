//! Route 53 ARC routing controls through the cluster's data plane: each call tries the
//! cluster's endpoints in turn, as AWS recommends ("Getting and updating routing control states
//! using the API": "retry with another of the cluster endpoints"), so that no single region is
//! in the path. Setting a state is idempotent, so a call that fails on one endpoint (not
//! reached, timed out, throttled, a server error) is sent to the next.

use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};

use super::drs::Called;
use super::error::classify;
use super::{AwsError, SideClients};
use crate::runbook::ClusterEndpoint;

impl SideClients {
    /// The data-plane client of one cluster endpoint, with this side's credentials, signed for
    /// the endpoint's region; sent once (the next endpoint is the retry).
    fn arc(&self, endpoint: &ClusterEndpoint) -> aws_sdk_route53recoverycluster::Client {
        let config = aws_sdk_route53recoverycluster::config::Builder::from(&self.sdk_config)
            .endpoint_url(&endpoint.url)
            .region(aws_sdk_route53recoverycluster::config::Region::new(
                endpoint.region.clone(),
            ))
            .retry_config(aws_sdk_route53recoverycluster::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_route53recoverycluster::Client::from_conf(config)
    }

    /// GetRoutingControlState (`On` or `Off`).
    pub async fn routing_control_state(
        &self,
        endpoints: &[ClusterEndpoint],
        arn: &str,
    ) -> Result<String, AwsError> {
        let mut last = None;
        for endpoint in endpoints {
            let site = self.site("route53-recovery-cluster:GetRoutingControlState", arn);
            match self
                .arc(endpoint)
                .get_routing_control_state()
                .routing_control_arn(arn)
                .send()
                .await
            {
                Ok(out) => return Ok(out.routing_control_state().as_str().to_string()),
                Err(e) => {
                    let err = classify(&site, &e);
                    if !err.retryable {
                        return Err(err);
                    }
                    last = Some(on_endpoint(err, endpoint));
                }
            }
        }
        Err(last.unwrap_or_else(|| no_endpoint(arn)))
    }

    /// UpdateRoutingControlStates: every control of `states` (ARN, `On`/`Off`) at once.
    pub async fn set_routing_control_states(
        &self,
        endpoints: &[ClusterEndpoint],
        states: &[(String, String)],
    ) -> Result<Called<String>, AwsError> {
        let resource = states
            .iter()
            .map(|(arn, state)| format!("{arn} {state}"))
            .collect::<Vec<_>>()
            .join(", ");
        let entries: Vec<UpdateRoutingControlStateEntry> = states
            .iter()
            .map(|(arn, state)| {
                UpdateRoutingControlStateEntry::builder()
                    .routing_control_arn(arn)
                    .routing_control_state(RoutingControlState::from(state.as_str()))
                    .build()
                    .expect("ARN and state are set")
            })
            .collect();
        let mut last = None;
        for endpoint in endpoints {
            let site = self.site(
                "route53-recovery-cluster:UpdateRoutingControlStates",
                &resource,
            );
            match self
                .arc(endpoint)
                .update_routing_control_states()
                .set_update_routing_control_state_entries(Some(entries.clone()))
                .send()
                .await
            {
                Ok(out) => {
                    use aws_sdk_route53recoverycluster::operation::RequestId;
                    return Ok(Called {
                        value: endpoint.url.clone(),
                        request_id: out.request_id().map(str::to_string),
                    });
                }
                Err(e) => {
                    let err = classify(&site, &e);
                    if !err.retryable {
                        return Err(err);
                    }
                    last = Some(on_endpoint(err, endpoint));
                }
            }
        }
        Err(last.unwrap_or_else(|| no_endpoint(&resource)))
    }
}

/// The last endpoint's error, saying that every endpoint was tried.
fn on_endpoint(mut err: AwsError, endpoint: &ClusterEndpoint) -> AwsError {
    err.message = format!(
        "{} (endpoint {}, the last one tried)",
        err.message, endpoint.url
    );
    err.hint = "every cluster endpoint failed: check the endpoints of the [[routing_control]] entry (aws route53-recovery-control-config describe-cluster) and retry".into();
    err
}

fn no_endpoint(resource: &str) -> AwsError {
    AwsError {
        call: "route53-recovery-cluster".into(),
        account: String::new(),
        region: String::new(),
        resource: resource.to_string(),
        code: None,
        message: "no cluster endpoint to call".into(),
        request_id: None,
        retryable: false,
        ambiguous: false,
        hint: "list the cluster's endpoints in the [[routing_control]] entry".into(),
        retry_after_seconds: None,
    }
}
