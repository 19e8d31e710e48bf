//! RDS IAM database authentication: a PostgreSQL URL with `aws_iam_auth=true` connects with an
//! authentication token instead of a password, signed with the AWS credentials of the standard
//! chain (profile, SSO, role, instance role; the same as the AWS calls).
//!
//! ```text
//!   token = <host>:<port>/?Action=connect&DBUser=<user>&X-Amz-Algorithm=AWS4-HMAC-SHA256
//!           &X-Amz-Credential=<key>/<date>/<region>/rds-db/aws4_request&X-Amz-Date=...
//!           &X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=...
//! ```
//!
//! a SigV4 presigned `GET https://<host>:<port>/?Action=connect&DBUser=<user>` for the service
//! `rds-db`, as `aws rds generate-db-auth-token` makes it (AWS documentation, "Connecting to
//! your DB instance using IAM authentication"). The region is the one in an RDS host name
//! (`<name>.<id>.<region>.rds.amazonaws.com`), else the standard chain's (`AWS_REGION`, profile).
//!
//! Invariants:
//! - A token is checked only when a connection opens, and lives 15 minutes: the store renews
//!   its pool's connect options every [`RENEW_EVERY`], so a connection opened late in a long
//!   run still authenticates.
//! - A token is never stored or logged: it exists in the pool's connect options only, and every
//!   message shows the URL without a password ([`super::redact_url`]).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;

use super::StoreError;

/// The URL parameter that asks for IAM authentication (`aws_iam_auth=true`).
pub const PARAMETER: &str = "aws_iam_auth";

/// How long a token is valid: RDS accepts at most 15 minutes.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// How often an open store signs a new token for the connections it opens next.
pub const RENEW_EVERY: Duration = Duration::from_secs(600);

/// The URL without the [`PARAMETER`], when `url` asks for IAM authentication.
pub fn requested(url: &str) -> Option<url::Url> {
    let mut parsed = url::Url::parse(url).ok()?;
    let mut asked = false;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, value)| {
            let ours = key == PARAMETER;
            asked |= ours && matches!(value.as_ref(), "true" | "1");
            !ours
        })
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    if !asked {
        return None;
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Some(parsed)
}

/// `url` (without [`PARAMETER`]) with a fresh token as its password.
pub async fn with_token(url: &url::Url) -> Result<String, StoreError> {
    let failed = |reason: String| StoreError::IamToken {
        url: super::redact_url(url.as_str()),
        reason,
    };
    let host = url
        .host_str()
        .ok_or_else(|| failed("the URL names no host".to_owned()))?;
    let user = match url.username() {
        "" => {
            return Err(failed(
                "the URL names no user (postgres://USER@host/db)".to_owned(),
            ));
        }
        user => user,
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let region = region_of_host(host)
        .or_else(|| config.region().map(|r| r.as_ref().to_owned()))
        .ok_or_else(|| {
            failed("no region: the host is not an RDS name and AWS_REGION is not set".to_owned())
        })?;
    let provider = config
        .credentials_provider()
        .ok_or_else(|| failed("no AWS credentials provider".to_owned()))?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| failed(format!("no AWS credentials: {e}")))?;
    let token = token(
        host,
        url.port().unwrap_or(5432),
        user,
        &region,
        credentials,
        SystemTime::now(),
    )
    .map_err(failed)?;
    let mut with_password = url.clone();
    with_password
        .set_password(Some(&token))
        .map_err(|()| failed("the URL cannot hold a password".to_owned()))?;
    Ok(with_password.to_string())
}

/// The region of an RDS host name (`<name>.<id>.<region>.rds.amazonaws.com`).
fn region_of_host(host: &str) -> Option<String> {
    let name = host.strip_suffix(".rds.amazonaws.com")?;
    name.rsplit('.').next().map(str::to_owned)
}

/// The token for `user` on `host:port` in `region`, signed at `at`.
fn token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    credentials: Credentials,
    at: SystemTime,
) -> Result<String, String> {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.expires_in = Some(TOKEN_LIFETIME);
    settings.signature_location = SignatureLocation::QueryParams;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let mut url = url::Url::parse(&format!("https://{host}:{port}/?Action=connect"))
        .map_err(|e| e.to_string())?;
    url.query_pairs_mut().append_pair("DBUser", user);
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    for (name, value) in instructions.params() {
        url.query_pairs_mut().append_pair(name, value);
    }
    Ok(url.as_str().trim_start_matches("https://").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_presigned_connect_for_the_user_valid_fifteen_minutes() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_740_830_400); // 2025-03-01T12:00:00Z
        let token = token(
            "runs.abc123.eu-central-1.rds.amazonaws.com",
            5432,
            "drs",
            "eu-central-1",
            credentials,
            at,
        )
        .unwrap();
        let (authority, query) = token.split_once("/?").unwrap();
        assert_eq!(authority, "runs.abc123.eu-central-1.rds.amazonaws.com:5432");
        let pairs: std::collections::BTreeMap<String, String> =
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(pairs["Action"], "connect");
        assert_eq!(pairs["DBUser"], "drs");
        assert_eq!(pairs["X-Amz-Expires"], "900");
        assert_eq!(pairs["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            pairs["X-Amz-Credential"],
            "AKIDEXAMPLE/20250301/eu-central-1/rds-db/aws4_request"
        );
        assert_eq!(pairs["X-Amz-Date"], "20250301T120000Z");
        assert_eq!(pairs["X-Amz-SignedHeaders"], "host");
        let signature = &pairs["X-Amz-Signature"];
        assert!(
            signature.len() == 64 && signature.chars().all(|c| c.is_ascii_hexdigit()),
            "{signature}"
        );
        assert!(!token.contains("secret") && !token.starts_with("https://"));
    }

    #[test]
    fn the_parameter_is_taken_out_of_the_url_and_the_region_read_from_an_rds_host() {
        let url = requested(
            "postgres://drs@runs.abc.eu-west-1.rds.amazonaws.com/drs?sslmode=verify-full&aws_iam_auth=true",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "postgres://drs@runs.abc.eu-west-1.rds.amazonaws.com/drs?sslmode=verify-full"
        );
        assert!(requested("postgres://drs@db.internal/drs?sslmode=require").is_none());
        assert!(requested("postgres://drs@db.internal/drs?aws_iam_auth=false").is_none());
        assert_eq!(
            region_of_host("runs.abc.eu-west-1.rds.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of_host("db.internal"), None);
    }
}
