//! `validate:<wave>` (drill): every launched drill instance of the wave is running in EC2 and is
//! marked as a drill by DRS.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::launch::LaunchOutput;
use super::{Halt, StepCtx, StepFailure};
use crate::engine::clock::Backoff;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ValidateOutput {
    pub instances: Vec<ValidatedInstance>,
    pub validated_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ValidatedInstance {
    pub source_server_id: String,
    pub recovery_instance_id: String,
    pub ec2_instance_id: Option<String>,
    pub ec2_state: Option<String>,
    pub is_drill: bool,
}

/// How long a launched instance may take to report RUNNING.
const RUNNING_DEADLINE: Duration = Duration::from_secs(10 * 60);

pub async fn run(ctx: &mut StepCtx<'_>) -> Result<(), Halt> {
    let wave = ctx.step.wave.clone().unwrap_or_default();
    let launch: LaunchOutput = ctx.output_of(&format!("launch:{wave}")).await?;
    let expected: Vec<(String, String)> = launch
        .launched()
        .filter_map(|(server, s)| s.recovery_instance_id.clone().map(|ri| (server.clone(), ri)))
        .collect();
    let ids: Vec<String> = expected.iter().map(|(_, ri)| ri.clone()).collect();
    let started = ctx.clock.now();
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(15));
    loop {
        let target = ctx.clients.target.clone();
        let found = super::retry::read(ctx, || target.recovery_instances_by_id(&ids)).await?;
        let instances: Vec<ValidatedInstance> = expected
            .iter()
            .map(|(server, ri)| {
                let f = found.iter().find(|i| &i.id == ri);
                ValidatedInstance {
                    source_server_id: server.clone(),
                    recovery_instance_id: ri.clone(),
                    ec2_instance_id: f.and_then(|i| i.ec2_instance_id.clone()),
                    ec2_state: f.and_then(|i| i.ec2_state.clone()),
                    is_drill: f.is_some_and(|i| i.is_drill),
                }
            })
            .collect();
        let bad: Vec<String> = instances
            .iter()
            .filter(|i| i.ec2_state.as_deref() != Some("RUNNING") || !i.is_drill)
            .map(|i| format!("{} ({}): {}{}", i.recovery_instance_id, i.source_server_id, i.ec2_state.as_deref().unwrap_or("not found"), if i.is_drill { "" } else { ", not a drill instance" }))
            .collect();
        if bad.is_empty() {
            ctx.say(format!("{} drill instance(s) running", instances.len()));
            let out = ValidateOutput { instances, validated_at: Some(ctx.clock.now().to_rfc3339()) };
            ctx.save(&out).await?;
            return Ok(());
        }
        let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
        if waited > RUNNING_DEADLINE {
            return Err(Halt::Failed(StepFailure::new(
                format!("drill instances are not running: {}", bad.join("; ")),
                "look at the instances in the EC2 console of the recovery region (status checks, console output); the drill cleanup still runs with `rollback`",
            )));
        }
        let interval = backoff.next_interval();
        ctx.pause(interval).await?;
    }
}
