//! Thin adapters over the real AWS SDK clients (DRS, Route 53, ELBv2, EC2). They return domain types,
//! classify errors ([`error::classify`]) and keep AWS request IDs. No SDK type leaks above this
//! layer.
//!
//! Mutating calls are sent with SDK retries disabled: a throttled call is retried here (it was
//! rejected, so it had no effect), while an ambiguous failure (timeout, 5xx) is returned to the
//! step, which reconciles against AWS before trying again (DESIGN section 6).

pub mod arc;
pub mod drs;
pub mod drs_launch_actions;
pub mod drs_plans;
pub mod drs_setup;
pub mod ec2;
pub mod elbv2;
pub mod error;
pub mod iam;
pub mod kms;
pub mod route53;
pub mod sts;

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
    pub ec2: aws_sdk_ec2::Client,
    /// The side's configuration (credentials), for clients built per endpoint (ARC clusters).
    pub sdk_config: aws_config::SdkConfig,
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
        source: connect_side(
            Account::Source,
            &runbook.source,
            sts_region(runbook),
            connection,
        )
        .await,
        target: connect_side(
            Account::Target,
            &runbook.target,
            sts_region(runbook),
            connection,
        )
        .await,
    }
}

/// The region whose STS endpoint assumes the runbook's roles: the target's, which is up when
/// the source region is the one that failed (a regional endpoint, never the global one).
pub fn sts_region(runbook: &Runbook) -> &str {
    &runbook.target.region
}

async fn connect_side(
    side: Account,
    spec: &Side,
    sts_region: &str,
    connection: &Connection,
) -> SideClients {
    let sdk_config = side_sdk_config(spec, sts_region, connection).await;
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
        ec2: aws_sdk_ec2::Client::new(&sdk_config),
        sdk_config,
    }
}

/// The IAM, KMS and STS clients of one side, for the doctor's read-only checks of the
/// cross-account setup.
#[derive(Clone, Debug)]
pub struct SetupClients {
    pub side: Account,
    pub account_id: String,
    pub region: String,
    pub iam: aws_sdk_iam::Client,
    pub kms: aws_sdk_kms::Client,
    pub sts: aws_sdk_sts::Client,
}

/// The setup clients of both sides.
#[derive(Clone, Debug)]
pub struct SetupPair {
    pub source: SetupClients,
    pub target: SetupClients,
}

impl SetupPair {
    pub fn side(&self, side: Account) -> &SetupClients {
        match side {
            Account::Source => &self.source,
            Account::Target => &self.target,
        }
    }
}

/// The per-service endpoint variables the setup clients need when the DRS endpoint is the
/// simulator (which serves DRS, Route 53, ELBv2 and EC2, not IAM, KMS or STS).
pub const SETUP_ENDPOINT_VARIABLES: [&str; 3] = [
    "AWS_ENDPOINT_URL_IAM",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ENDPOINT_URL_STS",
];

/// Builds the IAM, KMS and STS clients of both sides; `None` when they cannot be reached: the
/// connection is the simulator and the `AWS_ENDPOINT_URL_IAM` / `_KMS` / `_STS` variables do
/// not say where IAM, KMS and STS are.
///
/// Endpoints: a per-service variable wins (aws-config reads it natively, but only when no
/// endpoint was set in code, so none is set here for a service that has one); otherwise
/// `--endpoint-url` applies as for every call. Against the simulator, IAM, KMS and STS are
/// another implementation (e.g. moto_server): their credentials come from the standard chain
/// and the runbook's profile or role, not from the simulator's account-ID convention.
pub async fn connect_setup(runbook: &Runbook, connection: &Connection) -> Option<SetupPair> {
    let endpoint = match connection {
        Connection::Simulated { .. } => {
            if SETUP_ENDPOINT_VARIABLES
                .iter()
                .any(|v| std::env::var_os(v).is_none_or(|url| url.is_empty()))
            {
                return None;
            }
            None
        }
        Connection::Aws { endpoint_url } => endpoint_url.clone(),
    };
    let aws = Connection::Aws { endpoint_url: None };
    Some(SetupPair {
        source: connect_setup_side(Account::Source, &runbook.source, &aws, endpoint.as_deref())
            .await,
        target: connect_setup_side(Account::Target, &runbook.target, &aws, endpoint.as_deref())
            .await,
    })
}

fn has_service_endpoint(variable: &str) -> bool {
    std::env::var_os(variable).is_some_and(|url| !url.is_empty())
}

async fn connect_setup_side(
    side: Account,
    spec: &Side,
    connection: &Connection,
    endpoint: Option<&str>,
) -> SetupClients {
    let sdk_config = side_sdk_config(spec, &spec.region, connection).await;
    // Only a missing per-service variable falls back to `--endpoint-url`: setting `None` here
    // would erase the endpoint the builder just read from the variable.
    let fallback = |variable: &str| {
        endpoint
            .filter(|_| !has_service_endpoint(variable))
            .map(str::to_string)
    };
    // IAM is global: signed for us-east-1.
    let mut iam = aws_sdk_iam::config::Builder::from(&sdk_config)
        .region(aws_sdk_iam::config::Region::new("us-east-1"));
    if let Some(url) = fallback("AWS_ENDPOINT_URL_IAM") {
        iam.set_endpoint_url(Some(url));
    }
    let mut kms = aws_sdk_kms::config::Builder::from(&sdk_config);
    if let Some(url) = fallback("AWS_ENDPOINT_URL_KMS") {
        kms.set_endpoint_url(Some(url));
    }
    let mut sts =
        aws_sdk_sts::config::Builder::from(&sdk_config).behavior_version(BehaviorVersion::latest());
    if let Some(url) = fallback("AWS_ENDPOINT_URL_STS") {
        sts.set_endpoint_url(Some(url));
    }
    let (iam, kms, sts) = (iam.build(), kms.build(), sts.build());
    SetupClients {
        side,
        account_id: spec.account_id.clone(),
        region: spec.region.clone(),
        iam: aws_sdk_iam::Client::from_conf(iam),
        kms: aws_sdk_kms::Client::from_conf(kms),
        sts: aws_sdk_sts::Client::from_conf(sts),
    }
}

/// The SDK configuration of a side: region, credentials (the simulator's account-ID
/// convention, or the standard chain with the runbook's profile or role, assumed through the
/// STS endpoint of `sts_region`) and the endpoint.
async fn side_sdk_config(
    spec: &Side,
    sts_region: &str,
    connection: &Connection,
) -> aws_config::SdkConfig {
    let region = Region::new(spec.region.clone());
    match connection {
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
            if let Credentials::AssumeRole {
                role_arn,
                external_id,
            } = &spec.credentials
            {
                let mut provider = aws_config::sts::AssumeRoleProvider::builder(role_arn.clone())
                    .session_name("drs-runbook")
                    .region(Region::new(sts_region.to_string()))
                    .configure(&base);
                if let Some(external_id) = external_id {
                    provider = provider.external_id(external_id.clone());
                }
                let provider = provider.build().await;
                base.into_builder()
                    .credentials_provider(aws_sdk_drs::config::SharedCredentialsProvider::new(
                        provider,
                    ))
                    .build()
            } else {
                base
            }
        }
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
                // Never sooner than the service's `Retry-After`.
                let wait = std::time::Duration::from_millis(base / 2 + jitter).max(
                    std::time::Duration::from_secs(e.retry_after_seconds.unwrap_or_default()),
                );
                tracing::info!(call = %e.call, attempt, ?wait, "throttled; retrying");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}
