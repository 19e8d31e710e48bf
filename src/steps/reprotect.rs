//! Re-protect, the first phase of a failback's cleanup (not in failback drills; drs-api.md 4.2
//! step 3): ReverseReplication on each A3 "will replace the Instances that the Source Server
//! (B1) protects (A4 instead of A1)", so that the next failover recovers the servers that now
//! run production, not the old source's stale disks.
//!
//! ```text
//!   per A3 (source):  ReverseReplication(A3), a durable call reconciled by DescribeSourceServers
//!                     (target): B1's identificationHints.awsInstanceID already names A4
//!   ─► wait: every B1 names A4 and replicates CONTINUOUS ─► `reprotected_at`
//! ```
//!
//! A ReverseReplication cannot be undone: B1 keeps protecting A4 (a rollback of a failback
//! puts traffic back on B3, whose B1 protected A1 before; re-protect is after the cutback, so
//! after the point where a rollback makes sense).

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::failback_cleanup::FailbackCleanupOutput;
use super::{Halt, StepCtx, StepFailure, retry};
use crate::run::call::{Call, Found};
use crate::run::clock::Backoff;

/// One failed-back server to re-protect: B1 (target) from A4, through its A3 (source).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Reprotect {
    pub b1: String,
    /// A3, the recovery instance launched from A2, and its EC2 instance A4.
    pub a3: String,
    pub a4: String,
    /// ReverseReplication(A3) called (or found done).
    pub reversed: bool,
    pub replication_state: Option<String>,
}

/// A copy of a whole disk across regions: hours for large volumes (as A2's initial sync).
const CONTINUOUS_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// ReverseReplication on every A3 not reversed yet, each recorded as soon as it is done.
pub(crate) async fn reverse(
    ctx: &mut StepCtx<'_>,
    out: &mut FailbackCleanupOutput,
) -> Result<(), Halt> {
    let source = ctx.clients.source.clone();
    let target = ctx.clients.target.clone();
    for i in 0..out.reprotect.len() {
        if out.reprotect[i].reversed {
            continue;
        }
        let Reprotect { b1, a3, a4, .. } = out.reprotect[i].clone();
        let b1s = [b1.clone()];
        let call = Call::on(
            &source,
            format!("reverse-replication/{a3}"),
            "drs:ReverseReplication",
            serde_json::json!({ "recoveryInstanceID": a3 }),
        );
        // Took effect when B1 already protects A4 (an interrupted call, or an earlier run).
        let protects_a4 = async |ctx: &mut StepCtx<'_>| -> Result<Found, Halt> {
            let found = retry::read(ctx, || target.describe_source_servers(&b1s)).await?;
            Ok(
                if found
                    .iter()
                    .any(|s| s.aws_instance_id.as_deref() == Some(a4.as_str()))
                {
                    Found::TookEffect(serde_json::json!({ "found_by": "DescribeSourceServers" }))
                } else {
                    Found::Resend
                },
            )
        };
        let settled = ctx.settle(&call, protects_a4).await?;
        if settled.is_none() {
            ctx.call(
                &call,
                async |_: &mut StepCtx<'_>| Ok(Found::Resend),
                async || {
                    let called = source.reverse_replication(&a3).await?;
                    Ok(called
                        .map(|arn| serde_json::json!({ "reversedDirectionSourceServerArn": arn })))
                },
            )
            .await?;
            ctx.say(format!(
                "ReverseReplication of A3 {a3}: B1 {b1} protects A4 {a4} instead of the old source"
            ));
        }
        out.reprotect[i].reversed = true;
        ctx.save(&*out).await?;
    }
    Ok(())
}

/// Waits until every B1 names its A4 and replicates CONTINUOUS.
pub(crate) async fn wait_continuous(
    ctx: &mut StepCtx<'_>,
    out: &mut FailbackCleanupOutput,
) -> Result<(), Halt> {
    let servers = &mut out.reprotect;
    let target = ctx.clients.target.clone();
    let b1s: Vec<String> = servers.iter().map(|s| s.b1.clone()).collect();
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(15), Duration::from_secs(60));
    let mut last = String::new();
    loop {
        let found = retry::read(ctx, || target.describe_source_servers(&b1s)).await?;
        let mut behind = Vec::new();
        for server in servers.iter_mut() {
            let b1 = found.iter().find(|s| s.id == server.b1);
            server.replication_state = b1.and_then(|s| s.replication_state.clone());
            let protects = b1.and_then(|s| s.aws_instance_id.clone());
            if protects.as_deref() != Some(server.a4.as_str())
                || server.replication_state.as_deref() != Some("CONTINUOUS")
            {
                behind.push(format!(
                    "B1 {} ({} from {})",
                    server.b1,
                    server.replication_state.as_deref().unwrap_or("not found"),
                    protects.as_deref().unwrap_or("?")
                ));
            }
        }
        if behind.is_empty() {
            out.reprotected_at = Some(ctx.clock.now().to_rfc3339());
            ctx.save(&*out).await?;
            ctx.say(format!(
                "re-protected: {} B1 server(s) replicate CONTINUOUS from the failed-back instances",
                out.reprotect.len()
            ));
            return Ok(());
        }
        let waiting = format!("waiting for re-protection: {}", behind.join(", "));
        if waiting != last {
            ctx.say(&waiting);
            last = waiting.clone();
        }
        if (ctx.clock.now() - started).to_std().unwrap_or_default() > CONTINUOUS_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!(
                    "re-protection not CONTINUOUS within {} hours: {}",
                    CONTINUOUS_DEADLINE.as_secs() / 3600,
                    behind.join(", ")
                ),
                format!(
                    "check the B1 servers' replication in the DRS console of the target, then `drs-runbook retry {} --step {}`",
                    ctx.run.id, ctx.step.key
                ),
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}
