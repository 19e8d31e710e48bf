//! `--notify URL`: the run's JSON report POSTed to a webhook when the run ends or pauses.
//!
//! http and https (rustls, with the platform's trust store; `SSL_CERT_FILE` / `SSL_CERT_DIR`
//! replace it, as with OpenSSL tools). A notification is best effort: a failure is a warning
//! that names the cause, never a change to the run's outcome or exit code, and the whole
//! attempt (connection, TLS handshake, request, answer) is bounded by one timeout, so a webhook
//! that hangs delays the exit by at most that long.

use std::error::Error as _;
use std::time::Duration;

use crate::engine::driver::RunReport;
use crate::runbook::{format_duration, parse_duration};
use crate::terminal::safe;

/// The environment variable that sets the timeout (a duration: `"10s"`, `"1m"`).
pub const TIMEOUT_VAR: &str = "DRS_RUNBOOK_NOTIFY_TIMEOUT";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The timeout from the environment, or the default with a warning when it does not parse.
fn timeout() -> Duration {
    match std::env::var(TIMEOUT_VAR) {
        Err(_) => DEFAULT_TIMEOUT,
        Ok(text) => match parse_duration(text.trim()) {
            Ok(timeout) => timeout,
            Err(e) => {
                eprintln!(
                    "warning: {TIMEOUT_VAR}={}: {e}; the notification uses {}",
                    safe(&text),
                    format_duration(DEFAULT_TIMEOUT)
                );
                DEFAULT_TIMEOUT
            }
        },
    }
}

/// POSTs `report` as JSON to `url`; prints a warning when that fails.
pub async fn post(url: &str, report: &RunReport) {
    let timeout = timeout();
    if let Err(why) = send(url, report, timeout).await {
        eprintln!(
            "warning: the notification to {} failed: {} (the run itself is unaffected)",
            safe(url),
            safe(&why)
        );
    }
}

async fn send(url: &str, report: &RunReport, timeout: Duration) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("drs-runbook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("no HTTP client: {}", chain(&e)))?;
    // reqwest's own timeout covers the request; this one also covers anything before it.
    let sent = tokio::time::timeout(
        timeout,
        client.post(url).json(&super::json_document(report)).send(),
    )
    .await
    .map_err(|_| format!("no answer within {}", format_duration(timeout)))?;
    match sent {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => Err(format!("it was answered {}", answer.status())),
        Err(e) if e.is_timeout() => Err(format!(
            "no answer within {} ({TIMEOUT_VAR} sets the timeout)",
            format_duration(timeout)
        )),
        Err(e) => Err(chain(&e)),
    }
}

/// An error with its causes ("error sending request ...: invalid peer certificate: ..."), so
/// that a TLS failure says why.
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}
