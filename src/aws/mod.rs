//! Thin adapters over the real AWS SDK clients (DRS, Route 53, ELBv2). They return domain types,
//! classify errors ([`error::classify`]) and keep AWS request IDs. No SDK type leaks above this
//! layer.
//!
//! Mutating calls are sent with SDK retries disabled: a throttled call is retried here (it was
//! rejected, so it had no effect), while an ambiguous failure (timeout, 5xx) is returned to the
//! step, which reconciles against AWS before trying again (DESIGN section 6).

pub mod drs;
pub mod elbv2;
pub mod error;
pub mod route53;

pub use error::AwsError;

use aws_config::BehaviorVersion;
use aws_sdk_drs::config::Region;

use crate::runbook::{Account, Credentials, Runbook, Side};

/// How to reach AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// The real AWS, through the standard credential chain (profiles, SSO, assume-role per
    /// account), honouring `AWS_ENDPOINT_URL` and the per-service variables.
    Aws { endpoint_url: Option<String> },
    /// The simulated cloud at this endpoint: the access key ID is the account ID.
    Simulated { endpoint_url: String },
}

/// The clients of one side (account and region) of a runbook.
#[derive(Clone, Debug)]
pub struct SideClients {
    pub side: Account,
    pub account_id: String,
    pub region: String,
    /// How this side's credentials are obtained (`profile payments-dr`, `role arn:...`), named in
    /// access errors so the operator knows what to check. Never a secret.
    pub credentials: String,
    pub drs: aws_sdk_drs::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub route53: aws_sdk_route53::Client,
}

/// The clients of both sides.
#[derive(Clone, Debug)]
pub struct Clients {
    pub source: SideClients,
    pub target: SideClients,
}

impl Clients {
    pub fn side(&self, side: Account) -> &SideClients {
        match side {
            Account::Source => &self.source,
            Account::Target => &self.target,
        }
    }
}

/// Builds the clients of both sides of a runbook.
pub async fn connect(runbook: &Runbook, connection: &Connection) -> Clients {
    Clients {
        source: connect_side(Account::Source, &runbook.source, connection).await,
        target: connect_side(Account::Target, &runbook.target, connection).await,
    }
}

async fn connect_side(side: Account, spec: &Side, connection: &Connection) -> SideClients {
    let region = Region::new(spec.region.clone());
    let sdk_config = match connection {
        Connection::Simulated { endpoint_url } => {
            aws_config::defaults(BehaviorVersion::latest())
                .region(region.clone())
                .endpoint_url(endpoint_url)
                .credentials_provider(aws_sdk_drs::config::Credentials::new(
                    spec.account_id.clone(),
                    "simulated",
                    None,
                    None,
                    "drs-runbook-sim",
                ))
                .load()
                .await
        }
        Connection::Aws { endpoint_url } => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region.clone());
            if let Credentials::Profile(profile) = &spec.credentials {
                loader = loader.profile_name(profile);
            }
            if let Some(url) = endpoint_url {
                loader = loader.endpoint_url(url);
            }
            let base = loader.load().await;
            if let Credentials::AssumeRole { role_arn, external_id } = &spec.credentials {
                let mut provider = aws_config::sts::AssumeRoleProvider::builder(role_arn.clone())
                    .session_name("drs-runbook")
                    .region(region.clone())
                    .configure(&base);
                if let Some(external_id) = external_id {
                    provider = provider.external_id(external_id.clone());
                }
                let provider = provider.build().await;
                base.into_builder()
                    .credentials_provider(aws_sdk_drs::config::SharedCredentialsProvider::new(provider))
                    .build()
            } else {
                base
            }
        }
    };
    // Route 53 is global: its calls are signed for us-east-1 whatever the side's region.
    let route53_config = aws_sdk_route53::config::Builder::from(&sdk_config)
        .region(aws_sdk_route53::config::Region::new("us-east-1"))
        .build();
    let credentials = match (connection, &spec.credentials) {
        (Connection::Simulated { .. }, _) => "the simulator's credentials".to_string(),
        (_, Credentials::DefaultChain) => "the default credential chain".to_string(),
        (_, Credentials::Profile(profile)) => format!("profile {profile}"),
        (_, Credentials::AssumeRole { role_arn, .. }) => format!("role {role_arn}"),
    };
    SideClients {
        side,
        account_id: spec.account_id.clone(),
        region: spec.region.clone(),
        credentials,
        drs: aws_sdk_drs::Client::new(&sdk_config),
        elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&sdk_config),
        route53: aws_sdk_route53::Client::from_conf(route53_config),
    }
}

impl SideClients {
    fn site<'a>(&'a self, call: &'a str, resource: &'a str) -> error::CallSite<'a> {
        error::CallSite {
            call,
            side: self.side.as_str(),
            credentials: &self.credentials,
            account: &self.account_id,
            region: &self.region,
            resource,
        }
    }
}

/// Parses a DRS timestamp (`+00:00` with microseconds, or `Z`).
pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Retries a call that AWS rejected by throttling (it had no effect), with exponential
/// backoff and jitter, up to a bounded budget. Ambiguous failures are returned at once.
pub async fn with_throttle_retry<T, F, Fut>(mut call: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    const ATTEMPTS: u32 = 8;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(e) if e.retryable && !e.ambiguous && attempt < ATTEMPTS => {
                let base = 100u64 << attempt.min(6);
                let jitter = rand::random::<u64>() % (base / 2 + 1);
                tracing::info!(call = %e.call, attempt, "throttled; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(base / 2 + jitter)).await;
            }
            other => return other,
        }
    }
}
