//! The HTTP request and reply as the simulator's handlers see them, independent of axum.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;

/// One HTTP request to the simulator.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub method: Method,
    /// The path as sent (still percent-encoded), e.g. `/tags/arn%3Aaws%3Adrs...`.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl SimRequest {
    pub fn new(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Self {
        SimRequest {
            method,
            path: uri.path().to_string(),
            query: uri.query().unwrap_or("").to_string(),
            headers,
            body,
        }
    }

    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The decoded query parameters, in order (repeated keys kept).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The body decoded as `application/x-www-form-urlencoded` pairs (awsQuery).
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The parameters of a query-protocol request (ELBv2, EC2): the query string's pairs, then
    /// the form body's.
    pub fn query_params(&self) -> Vec<(String, String)> {
        let mut pairs = self.query_pairs();
        pairs.extend(self.form_pairs());
        pairs
    }
}

/// The first value of `key` among query-protocol parameters.
pub fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The values of `<prefix><N>` keys in N order: the query protocols' flattened lists
/// (`InstanceId.1` for EC2, `Names.member.1` for ELBv2).
pub fn numbered(pairs: &[(String, String)], prefix: &str) -> Vec<String> {
    let mut items: std::collections::BTreeMap<u32, String> = std::collections::BTreeMap::new();
    for (k, v) in pairs {
        if let Some(n) = k.strip_prefix(prefix).and_then(|n| n.parse().ok()) {
            items.insert(n, v.clone());
        }
    }
    items.into_values().collect()
}

/// One HTTP reply of the simulator.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON reply (`application/json`).
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Reply::new(status)
            .with_header("content-type", "application/json")
            .with_body(serde_json::to_vec(value).expect("JSON values serialise"))
    }

    /// An XML reply (`text/xml`), as Route 53 and ELBv2 send.
    pub fn xml(status: u16, text: String) -> Self {
        Reply::new(status)
            .with_header("content-type", "text/xml")
            .with_body(text.into_bytes())
    }

    /// A plain-text reply (for requests no AWS protocol explains).
    pub fn text(status: u16, text: String) -> Self {
        Reply::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.into_bytes())
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    pub fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A timestamp as DRS sends it: microseconds and `+00:00` (not `Z`).
pub fn drs_timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// A timestamp as the XML protocols send it: `2026-11-27T10:00:00.000Z`.
pub fn xml_timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A random lowercase hexadecimal string of `len` characters (AWS resource ID suffixes).
pub fn random_hex(rng: &mut impl rand::Rng, len: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    (0..len)
        .map(|_| HEX[rng.random_range(0..16)] as char)
        .collect()
}
