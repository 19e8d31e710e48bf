//! Transient faults on reads (throttling, 5xx, timeouts): a polling step retries the read with
//! exponential backoff and jitter on the engine's clock, within a bounded budget. Reads have no
//! effect, so even an ambiguous failure is safe to repeat. When the budget is spent the step
//! fails naming the call and the last AWS request ID, and the run stays resumable.
//!
//! Mutating calls never come through here: a throttled mutation is retried in the AWS layer
//! (it was rejected, so it had no effect), an ambiguous one is reconciled by its step.

use std::future::Future;
use std::time::Duration;

use super::{Halt, StepCtx, StepFailure};
use crate::aws::AwsError;

/// Attempts of one read before the step fails (the SDK's own retries come on top).
pub const READ_ATTEMPTS: u32 = 8;

/// The wait before attempt `attempt + 1`: 1 s, 2 s, 4 s ... capped at 30 s (engine clock),
/// with full jitter over the upper half so that concurrent steps do not retry in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base =
        Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30));
    let half = base / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Runs `call` until it succeeds, fails for good, or the budget is spent.
pub async fn read<T, F, Fut>(ctx: &mut StepCtx<'_>, mut call: F) -> Result<T, Halt>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if e.retryable && attempt < READ_ATTEMPTS => {
                tracing::info!(call = %e.call, attempt, request_id = ?e.request_id, "transient read failure; retrying");
                if attempt == 1 || attempt % 3 == 0 {
                    ctx.say(format!(
                        "{} failed transiently ({}); retrying",
                        e.call,
                        e.code.as_deref().unwrap_or(&e.message)
                    ));
                }
                // Never sooner than the service's `Retry-After`.
                let wait = backoff(attempt).max(std::time::Duration::from_secs(
                    e.retry_after_seconds.unwrap_or_default(),
                ));
                ctx.pause(wait).await?;
            }
            Err(e) if e.retryable => return Err(Halt::Failed(exhausted(e, attempt))),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The failure once the retry budget is spent: the call, the request ID, what to do.
fn exhausted(e: AwsError, attempts: u32) -> StepFailure {
    let mut failure = StepFailure::from(e.clone());
    failure.message = format!(
        "{} still failed after {attempts} attempts: {}{}",
        e.call,
        e.message,
        e.request_id
            .as_ref()
            .map(|r| format!(" (last request ID {r})"))
            .unwrap_or_default()
    );
    failure.hint = format!(
        "{}; once AWS answers again, `drs-runbook retry <run> --step <step>` continues where the run stopped",
        e.hint
    );
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_the_upper_half() {
        for attempt in 1..12 {
            let nominal =
                Duration::from_secs(1u64 << (attempt - 1).min(5)).min(Duration::from_secs(30));
            let wait = backoff(attempt);
            assert!(
                wait >= nominal / 2 && wait <= nominal,
                "attempt {attempt}: {wait:?} vs {nominal:?}"
            );
        }
        assert!(backoff(20) <= Duration::from_secs(30));
    }
}
