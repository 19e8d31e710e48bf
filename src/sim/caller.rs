//! Who is calling: the account from the SigV4 access key ID (when it is a 12-digit number, the
//! convention LocalStack uses), the region and the service from the credential scope.
//! Signatures are not verified.

use super::SimRequest;

/// The account used when the access key ID is not a 12-digit number.
pub const DEFAULT_ACCOUNT: &str = "000000000000";
/// The region used when the request carries no credential scope.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The caller of one AWS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    pub region: String,
    /// The SigV4 signing name: `drs`, `route53` or `elasticloadbalancing`.
    pub service: String,
}

impl Caller {
    /// Reads the caller from the `Authorization` header
    /// (`AWS4-HMAC-SHA256 Credential=AKID/20261127/us-west-2/drs/aws4_request, ...`),
    /// or from `X-Amz-Credential` in the query string (presigned requests).
    pub fn from_request(req: &SimRequest) -> Caller {
        let credential = req
            .header("authorization")
            .and_then(|auth| {
                auth.split([',', ' '])
                    .find_map(|part| part.trim().strip_prefix("Credential="))
                    .map(str::to_string)
            })
            .or_else(|| {
                req.query_pairs()
                    .into_iter()
                    .find(|(k, _)| k == "X-Amz-Credential")
                    .map(|(_, v)| v)
            });
        let mut caller = Caller {
            account: DEFAULT_ACCOUNT.to_string(),
            region: DEFAULT_REGION.to_string(),
            service: guess_service(req).to_string(),
        };
        if let Some(credential) = credential {
            let parts: Vec<&str> = credential.split('/').collect();
            if let Some(key) = parts.first()
                && key.len() == 12
                && key.bytes().all(|b| b.is_ascii_digit())
            {
                caller.account = key.to_string();
            }
            if parts.len() >= 5 {
                caller.region = parts[2].to_string();
                caller.service = parts[3].to_string();
            }
        }
        caller
    }
}

/// For unsigned requests: the service by the shape of the request.
fn guess_service(req: &SimRequest) -> &'static str {
    if req.path.starts_with("/2013-04-01/") {
        "route53"
    } else if req.path == "/"
        && req
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
    {
        "elasticloadbalancing"
    } else {
        "drs"
    }
}
