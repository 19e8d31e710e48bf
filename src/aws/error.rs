//! One place decides whether an AWS error is worth retrying, keeps its request ID, and says
//! what to check next (trust policies, KMS key policies, quotas, network).

use aws_sdk_drs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_drs::operation::RequestId;

/// What went wrong with one AWS call, with everything an operator needs to act on it.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize, PartialEq)]
#[error("{call} on {resource} in account {account} ({region}) failed: {message}{}{} (hint: {hint})",
    code.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default(),
    request_id.as_ref().map(|r| format!(" (request ID {r})")).unwrap_or_default())]
pub struct AwsError {
    /// `service:Operation`, e.g. `drs:StartRecovery`.
    pub call: String,
    pub account: String,
    pub region: String,
    /// The resource(s) the call was about.
    pub resource: String,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    /// Throttling, 5xx, timeouts: the call may succeed when tried again.
    pub retryable: bool,
    /// Whether the request may have reached AWS and taken effect (timeouts, 5xx): a mutating
    /// call must then be reconciled, never blindly re-sent.
    pub ambiguous: bool,
    pub hint: String,
    /// The `Retry-After` the service answered with (seconds): the earliest time to try again.
    /// The Rust SDK honours only `x-amz-retry-after`, and DRS models `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// The response headers of an SDK error's raw response, for `Retry-After`.
pub trait RawHeaders {
    fn header(&self, name: &str) -> Option<&str>;
}

impl RawHeaders for aws_sdk_drs::config::http::HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name)
    }
}

/// Where a call went: its name, the side's account and region, and the resource.
#[derive(Debug, Clone)]
pub struct CallSite<'a> {
    pub call: &'a str,
    /// `source` or `target`: which side of the runbook the call was for.
    pub side: &'a str,
    /// How that side's credentials are obtained (a profile or a role, never a secret).
    pub credentials: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    pub resource: &'a str,
}

const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "RequestThrottled",
    "SlowDown",
];

/// Classifies an SDK error of any of the three services.
pub fn classify<E, R>(site: &CallSite<'_>, err: &SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + RawHeaders,
    SdkError<E, R>: RequestId,
{
    let request_id = err.request_id().map(str::to_string);
    let retry_after_seconds = err
        .raw_response()
        .and_then(|r| r.header("retry-after"))
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (code, message, retryable, ambiguous) = match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().map(str::to_string);
            let message = e.message().unwrap_or("no message").to_string();
            let throttled = code.as_deref().is_some_and(|c| THROTTLING.contains(&c));
            let server_side = code.as_deref().is_some_and(|c| {
                matches!(
                    c,
                    "InternalServerException"
                        | "InternalFailure"
                        | "ServiceUnavailable"
                        | "InternalError"
                )
            });
            (code, message, throttled || server_side, server_side)
        }
        SdkError::TimeoutError(_) => (None, "the call timed out".to_string(), true, true),
        SdkError::DispatchFailure(d) => {
            let message = format!("the request could not be sent: {}", source_chain(err));
            if message.contains("loading credentials") || message.contains("no credentials") {
                // Nothing was sent, and trying again will not find credentials.
                (Some(NO_CREDENTIALS.to_string()), message, false, false)
            } else {
                // A connection that was never established cannot have had an effect.
                let ambiguous = !d.is_io() || !message.contains("onnection refused");
                (None, message, true, ambiguous)
            }
        }
        SdkError::ResponseError(_) => (
            None,
            format!("the response could not be read: {}", source_chain(err)),
            true,
            true,
        ),
        SdkError::ConstructionFailure(_) => (
            None,
            format!("the request could not be built: {}", source_chain(err)),
            false,
            false,
        ),
        _ => (None, source_chain(err), false, true),
    };
    let hint = hint_for(site, code.as_deref(), retryable);
    AwsError {
        call: site.call.to_string(),
        account: site.account.to_string(),
        region: site.region.to_string(),
        resource: site.resource.to_string(),
        code,
        message,
        request_id,
        retryable,
        ambiguous,
        hint,
        retry_after_seconds,
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The code given to a call that found no credentials to sign with (not an AWS error code).
pub const NO_CREDENTIALS: &str = "NoCredentials";

impl AwsError {
    /// The error without its hint: for places that show the hint on its own line.
    pub fn summary(&self) -> String {
        format!(
            "{} on {} in account {} ({}) failed: {}{}{}",
            self.call,
            self.resource,
            self.account,
            self.region,
            self.message,
            self.code
                .as_ref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default(),
            self.request_id
                .as_ref()
                .map(|r| format!(" (request ID {r})"))
                .unwrap_or_default()
        )
    }
}

/// What to check next, by error code (see the troubleshooting part of the cross-account setup).
fn hint_for(site: &CallSite<'_>, code: Option<&str>, retryable: bool) -> String {
    let account = site.account;
    match code {
        Some(NO_CREDENTIALS) => format!(
            "no AWS credentials for the {} side (account {account}, {}): name a `profile` or a `role_arn` in the runbook's [{}] table, or log in (aws sso login / AWS_PROFILE); to rehearse without AWS, add --sim",
            site.side, site.credentials, site.side
        ),
        Some("AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation") => format!(
            "check that the credentials of the {} side (account {account}, {}) may call {} (IAM policy), that the role's trust policy lets you assume it (and its external ID), and for encrypted volumes that the KMS key policy allows the DRS roles",
            site.side, site.credentials, site.call
        ),
        Some("UninitializedAccountException") => format!(
            "DRS is not initialized in the {} side's account {account} region {} ({}): open the DRS console there once or call InitializeService (both accounts and regions need it for failover and failback)",
            site.side, site.region, site.credentials
        ),
        Some("ConflictException") => "another DRS job is processing these servers: wait for it (drs describe-jobs) or check for another run of this runbook".to_string(),
        Some("ServiceQuotaExceededException") => "a DRS quota is exhausted (100 servers a job, 20 concurrent jobs, 500 servers in active jobs): wait for running jobs or lower the batch size".to_string(),
        Some("ResourceNotFoundException" | "NoSuchHostedZone" | "TargetGroupNotFound") => format!(
            "the resource {} does not exist in account {account} ({}): check the runbook's IDs and that the right account and region are used",
            site.resource, site.region
        ),
        Some("ValidationException" | "ValidationError" | "InvalidInput" | "InvalidChangeBatch" | "InvalidTarget") => {
            "AWS rejected the request's parameters: check the runbook values named above".to_string()
        }
        Some(c) if THROTTLING.contains(&c) => "AWS is throttling these calls: the run retries with backoff; if it keeps failing, lower concurrency or ask for a higher rate".to_string(),
        _ if retryable => format!(
            "a transient failure: check network access to the {} endpoint in {}; the run can be resumed",
            site.call.split(':').next().unwrap_or("AWS"),
            site.region
        ),
        _ => "see the message above; the run can be retried once the cause is fixed".to_string(),
    }
}
