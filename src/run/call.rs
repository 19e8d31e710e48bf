//! The durable-call primitive: every mutating AWS call of every step and every undo goes
//! through [`StepCtx::call`], and nothing else writes intents or effects (the journal's effect
//! functions are private to `crate::run`).
//!
//! ```text
//!   attempts of <run>/<step>/<name>/ (one range of the unique index of idempotency_key)
//!     ├─ a request differs ─────────────► refused (a durable key names one request)
//!     ├─ done / reconciled ─────────────► its response, never sent again        (Recorded)
//!     ├─ intent left open ──► reconcile ─┬─ took effect ──► reconciled           (Reconciled)
//!     │                                  ├─ no effect ────► failed, then a new attempt
//!     │                                  └─ resend ───────► sent under that intent
//!     └─ none ──► intent <key>attempt-<n> committed ──► send ─┬─ ok ──► done      (Sent)
//!                                                             └─ error ─► failed (an ambiguous
//!                                                                one is reconciled first when
//!                                                                the call asks for it)
//! ```
//!
//! As underway's `Context::call`: the key is deterministic (recomputed identically on resume),
//! the intent is committed before anything is sent, and an open intent is reconciled against
//! AWS before anything else, never blindly re-sent.

use serde_json::Value;
use std::time::Duration;

use super::journal::{Attempt, JournalError};
use super::{Halt, StepCtx};
use crate::aws::AwsError;
use crate::aws::drs::Called;
use crate::store::EffectId;
use crate::store::effects::EffectState;

/// One logical mutating call of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The call's name within its step (`upsert/<zone>`, `batch-0`): its durable key is
    /// `<run>/<step>/<name>/`, and its attempts `<key>attempt-<n>`.
    pub name: String,
    /// `service:Operation`, as the simulator counts calls (`"drs:StartRecovery"`).
    pub operation: String,
    pub account: String,
    pub region: String,
    /// What is sent; a key made again with another request is refused.
    pub request: Value,
    /// On an ambiguous error (timeout, 5xx), wait and reconcile before reporting it: the call
    /// may have taken effect.
    pub reconcile_ambiguous: bool,
}

impl Call {
    pub fn new(
        name: impl Into<String>,
        operation: &str,
        account: &str,
        region: &str,
        request: Value,
    ) -> Self {
        Call {
            name: name.into(),
            operation: operation.to_string(),
            account: account.to_string(),
            region: region.to_string(),
            request,
            reconcile_ambiguous: false,
        }
    }

    /// The call on one side's account and region.
    pub fn on(
        side: &crate::aws::SideClients,
        name: impl Into<String>,
        operation: &str,
        request: Value,
    ) -> Self {
        Call::new(name, operation, &side.account_id, &side.region, request)
    }

    /// Reconciles an ambiguous error at once (see [`Call::reconcile_ambiguous`]).
    pub fn reconciling_ambiguous(mut self) -> Self {
        self.reconcile_ambiguous = true;
        self
    }
}

/// What a reconciliation found out from AWS about an attempt whose outcome was not recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// The call took effect: the response to record (`found_by` says how it was found).
    TookEffect(Value),
    /// The call had no effect (why): the attempt is recorded failed, a new one may be sent.
    NoEffect(String),
    /// Not taken effect, and safe to send under the same intent (an UPSERT, a register).
    Resend,
}

/// How a call's response was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Recorded by an earlier attempt (before a crash): not sent again.
    Recorded,
    /// An attempt left open was found to have taken effect.
    Reconciled,
    /// Sent now (or found to have taken effect after an ambiguous error of this send).
    Sent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub response: Value,
    pub how: How,
}

/// Why a call did not take effect.
#[derive(Debug)]
pub enum CallError {
    /// The journal failed, the key was reused with another request, or the step was stopped.
    Halt(Halt),
    /// AWS refused or failed the call (recorded failed); `attempt` is its attempt number.
    Aws { error: AwsError, attempt: usize },
}

impl From<CallError> for Halt {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Halt(h) => h,
            CallError::Aws { error, .. } => Halt::Failed(error.into()),
        }
    }
}

impl From<Halt> for CallError {
    fn from(h: Halt) -> Self {
        CallError::Halt(h)
    }
}

impl From<JournalError> for CallError {
    fn from(e: JournalError) -> Self {
        CallError::Halt(e.into())
    }
}

/// Where a call stands before anything is sent.
enum Settled {
    Done(Outcome),
    /// Send it: under an intent left open, or as attempt `attempt` (1-based).
    Send {
        open: Option<EffectId>,
        attempt: usize,
    },
}

/// A durable key names one request: an attempt recorded with another one is refused.
fn refuse_reuse(
    step: &str,
    call_key: &str,
    attempts: &[Attempt],
    request: &Value,
) -> Result<(), JournalError> {
    match attempts.iter().find(|a| &a.request != request) {
        Some(other) => Err(JournalError::RequestMismatch {
            key: step.to_string(),
            call_key: call_key.to_string(),
            recorded: other.request.clone(),
            requested: request.clone(),
        }),
        None => Ok(()),
    }
}

impl<'a> StepCtx<'a> {
    /// The durable key of a call of this step.
    pub fn call_key(&self, name: &str) -> String {
        format!("{}/{}/{name}/", self.run.id, self.step.key)
    }

    /// The first half of [`StepCtx::call`], for steps that decide whether to send at all after
    /// it: the call's recorded or reconciled outcome, or `None` when nothing took effect (an
    /// open intent that `reconcile` says to resend stays open for the next `call`).
    pub async fn settle<R>(
        &mut self,
        call: &Call,
        mut reconcile: R,
    ) -> Result<Option<Outcome>, Halt>
    where
        R: AsyncFnMut(&mut StepCtx<'a>) -> Result<Found, Halt>,
    {
        Ok(match self.settle_inner(call, &mut reconcile).await? {
            Settled::Done(outcome) => Some(outcome),
            Settled::Send { .. } => None,
        })
    }

    async fn settle_inner<R>(&mut self, call: &Call, reconcile: &mut R) -> Result<Settled, Halt>
    where
        R: AsyncFnMut(&mut StepCtx<'a>) -> Result<Found, Halt>,
    {
        let key = self.call_key(&call.name);
        let attempts = self.journal.attempts(&key).await?;
        refuse_reuse(&self.step.key, &key, &attempts, &call.request)?;
        if let Some(done) = attempts
            .iter()
            .find(|a| matches!(a.state, EffectState::Done | EffectState::Reconciled))
        {
            return Ok(Settled::Done(Outcome {
                response: done.response.clone().unwrap_or(Value::Null),
                how: How::Recorded,
            }));
        }
        let mut open = None;
        if let Some(intent) = attempts.iter().find(|a| a.state == EffectState::Intent) {
            match reconcile(self).await? {
                Found::TookEffect(response) => {
                    self.journal
                        .reconcile_effect(intent.id, response.clone())
                        .await?;
                    return Ok(Settled::Done(Outcome {
                        response,
                        how: How::Reconciled,
                    }));
                }
                Found::NoEffect(why) => self.journal.fail_effect(intent.id, &why).await?,
                Found::Resend => open = Some(intent.id),
            }
        }
        let attempt = if open.is_some() {
            attempts.len()
        } else {
            attempts.len() + 1
        };
        Ok(Settled::Send { open, attempt })
    }

    /// Makes one durable call: its recorded outcome if an earlier attempt has one, else an
    /// open intent reconciled (`reconcile`), else intent -> `send` -> effect. The response
    /// `send` returns is what is recorded (and returned to later attempts).
    pub async fn call<R, S>(
        &mut self,
        call: &Call,
        mut reconcile: R,
        send: S,
    ) -> Result<Outcome, CallError>
    where
        R: AsyncFnMut(&mut StepCtx<'a>) -> Result<Found, Halt>,
        S: AsyncFnOnce() -> Result<Called<Value>, AwsError>,
    {
        let (open, attempt) = match self.settle_inner(call, &mut reconcile).await? {
            Settled::Done(outcome) => return Ok(outcome),
            Settled::Send { open, attempt } => (open, attempt),
        };
        let effect = match open {
            Some(id) => id,
            None => {
                self.journal
                    .begin_intent(
                        &self.step.key,
                        &format!("{}attempt-{attempt}", self.call_key(&call.name)),
                        &call.operation,
                        &call.account,
                        &call.region,
                        call.request.clone(),
                    )
                    .await?
            }
        };
        match send().await {
            Ok(called) => {
                self.journal
                    .complete_effect(effect, called.value.clone(), called.request_id)
                    .await?;
                Ok(Outcome {
                    response: called.value,
                    how: How::Sent,
                })
            }
            Err(error) if error.ambiguous && call.reconcile_ambiguous => {
                // The call may have taken effect: find out before anything else.
                self.say(format!(
                    "{} outcome unknown ({}); reconciling",
                    call.operation, error.message
                ));
                self.pause(Duration::from_secs(5)).await?;
                match reconcile(self).await? {
                    Found::TookEffect(response) => {
                        self.journal
                            .reconcile_effect(effect, response.clone())
                            .await?;
                        Ok(Outcome {
                            response,
                            how: How::Sent,
                        })
                    }
                    Found::NoEffect(_) | Found::Resend => {
                        self.journal.fail_effect(effect, &error.to_string()).await?;
                        Err(CallError::Aws { error, attempt })
                    }
                }
            }
            Err(error) => {
                self.journal.fail_effect(effect, &error.to_string()).await?;
                Err(CallError::Aws { error, attempt })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::clock::EngineClock;
    use crate::run::journal::Journal;
    use crate::store::testing::{at, new_run, temp_db};
    use crate::store::{Operation, runs, steps};
    use serde_json::json;

    #[tokio::test]
    async fn a_reused_key_with_a_different_request_is_refused() {
        let (_dir, db) = temp_db().await;
        let run = new_run("payments", Operation::Failover);
        let run_id = run.id.clone();
        {
            let mut tx = db.begin().await.unwrap();
            runs::insert(&mut tx, &run, at(0)).await.unwrap();
            let step = steps::NewStep::new("dns_cutover", "dns_cutover", None, &[]);
            steps::insert_all(&mut tx, &run_id, &[step]).await.unwrap();
            tx.commit().await.unwrap();
        }
        let journal = Journal::new(db, run_id.clone(), None, "alice".into(), EngineClock::Real);
        let key = format!("{run_id}/dns_cutover/upsert/Z1/");
        let sent = json!({ "hostedZoneId": "Z1", "changes": ["a"] });
        journal
            .begin_intent(
                "dns_cutover",
                &format!("{key}attempt-1"),
                "route53:ChangeResourceRecordSets",
                "111111111111",
                "global",
                sent.clone(),
            )
            .await
            .unwrap();
        let attempts = journal.attempts(&key).await.unwrap();
        assert_eq!(attempts.len(), 1);
        // The same request under the same key: the call goes on (reconciles, or is recorded).
        refuse_reuse("dns_cutover", &key, &attempts, &sent).unwrap();
        // Another request under the same key: refused, naming the key and both requests.
        let other = json!({ "hostedZoneId": "Z1", "changes": ["b"] });
        let err = refuse_reuse("dns_cutover", &key, &attempts, &other).unwrap_err();
        match &err {
            JournalError::RequestMismatch {
                call_key,
                recorded,
                requested,
                ..
            } => {
                assert_eq!(call_key, &key);
                assert_eq!(recorded, &sent);
                assert_eq!(requested, &other);
            }
            e => panic!("expected a request mismatch, got {e}"),
        }
        assert!(err.to_string().contains("different request"), "{err}");
        // Another call's key (keys end with `/`) has attempts of its own.
        assert!(
            journal
                .attempts(&format!("{run_id}/dns_cutover/upsert/Z2/"))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
