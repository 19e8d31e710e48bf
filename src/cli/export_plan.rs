//! `export-plan <RUNBOOK> [--yes]`: the runbook's waves as a native DRS recovery plan in the
//! recovery (target) account and region, for teams that run recoveries from the DRS console.
//!
//! The plan is found by name (the runbook's name) and must carry the tag
//! `drs-runbook:runbook = <name>` (a plan of that name without it is someone else's: refused).
//! Its steps are the waves in run order, SERVER steps of at most 100 servers (a bigger wave is
//! split into `<wave> 1 of N`, ...), optional servers with impact level OPTIONAL. A re-run
//! compares the plan's steps with the wanted ones: from the first step that differs on, the
//! old steps are deleted and the wanted ones created; an unchanged runbook changes nothing.
//!
//! Not a run: nothing is journaled. Every export reads the plan back first, so an interrupted
//! export is finished by running it again; the create calls carry the SDK's `clientToken`.
//! The changes are printed first and need `--yes` or a "y" on a terminal.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::progress::{ask_yes_no, terminal_is_interactive};
use super::{Cli, CliError, Output, exit, session};
use crate::aws::SideClients;
use crate::aws::drs_plans::StepServer;
use crate::runbook::Runbook;

/// `RecoveryPlanServers`: at most 100 servers a SERVER step (botocore model).
pub const MAX_SERVERS_PER_STEP: usize = 100;
/// `RecoveryPlanStepOrder` 1..20: at most 20 steps a plan (botocore model).
pub const MAX_STEPS_PER_PLAN: usize = 20;
/// The tag marking a plan as this runbook's export.
pub const RUNBOOK_TAG: &str = "drs-runbook:runbook";

#[derive(Debug, clap::Args)]
pub struct Args {
    pub runbook: PathBuf,
    /// Make the changes without asking (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// A step the plan should have.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WantedStep {
    pub name: String,
    pub wave: String,
    /// Source server IDs.
    pub servers: Vec<String>,
    #[serde(skip)]
    members: Vec<StepServer>,
}

/// One change an export makes.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    CreatePlan {
        name: String,
    },
    DeleteStep {
        name: String,
        arn: String,
    },
    CreateStep {
        order: usize,
        name: String,
        servers: usize,
    },
}

impl Change {
    fn describe(&self) -> String {
        match self {
            Change::CreatePlan { name } => format!("create recovery plan {name:?}"),
            Change::DeleteStep { name, .. } => format!("delete step {name:?}"),
            Change::CreateStep {
                order,
                name,
                servers,
            } => format!("create step {order} {name:?} ({servers} server(s))"),
        }
    }
}

/// The JSON document of `export-plan --output json`.
#[derive(Debug, Serialize)]
struct Exported<'a> {
    runbook: &'a str,
    account: &'a str,
    region: &'a str,
    plan_name: &'a str,
    plan_arn: Option<String>,
    /// Whether this export changed the plan.
    changed: bool,
    changes: &'a [Change],
    steps: &'a [WantedStep],
}

/// A name as the model's `RecoveryPlanName` / `RecoveryPlanStepName` allow it
/// (`[a-zA-Z0-9][a-zA-Z0-9 _-]*`, at most 256): other characters become `-`.
pub fn model_name(name: &str, max: usize) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 'w');
        out.truncate(max);
    }
    out
}

/// The steps of a wave's servers: one step of at most 100, named after the wave, or several
/// named `<wave> i of n`.
fn wave_steps(wave: &str, servers: &[(String, StepServer)]) -> Vec<WantedStep> {
    let chunks: Vec<&[(String, StepServer)]> = servers.chunks(MAX_SERVERS_PER_STEP).collect();
    let n = chunks.len();
    let base = model_name(wave, 200);
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| WantedStep {
            name: if n == 1 {
                base.clone()
            } else {
                format!("{base} {} of {n}", i + 1)
            },
            wave: wave.to_string(),
            servers: chunk.iter().map(|(id, _)| id.clone()).collect(),
            members: chunk.iter().map(|(_, s)| s.clone()).collect(),
        })
        .collect()
}

/// The wanted steps: every wave in run order, its listed servers then those its `select`
/// matches (one DescribeSourceServers listing, the rule preflight applies: `Select::matches`,
/// a server stays in the first wave that has it).
async fn wanted_steps(
    target: &SideClients,
    runbook: &Runbook,
) -> Result<Vec<WantedStep>, CliError> {
    let selecting = runbook.waves.iter().any(|w| w.select.is_some());
    let listed: Vec<String> = runbook
        .waves
        .iter()
        .flat_map(|w| w.servers.clone())
        .collect();
    let servers = if selecting {
        target.list_source_servers().await?
    } else {
        target.describe_source_servers(&listed).await?
    };
    let arns: BTreeMap<&str, &str> = servers
        .iter()
        .filter_map(|s| s.arn.as_deref().map(|arn| (s.id.as_str(), arn)))
        .collect();
    let missing: Vec<String> = listed
        .iter()
        .filter(|id| !arns.contains_key(id.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(CliError::PlanServersMissing {
            servers: missing,
            account: target.account_id.clone(),
            region: target.region.clone(),
        });
    }
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for wave in &runbook.waves {
        for id in &wave.servers {
            owner.entry(id.clone()).or_insert_with(|| wave.name.clone());
        }
    }
    let mut steps = Vec::new();
    for wave in runbook.waves_in_order() {
        let mut ids: Vec<String> = wave
            .servers
            .iter()
            .filter(|id| owner.get(*id) == Some(&wave.name))
            .cloned()
            .collect();
        if let Some(select) = &wave.select {
            for server in servers.iter().filter(|s| select.matches(&s.tags)) {
                if !owner.contains_key(&server.id) {
                    owner.insert(server.id.clone(), wave.name.clone());
                    ids.push(server.id.clone());
                }
            }
        }
        let members: Vec<(String, StepServer)> = ids
            .into_iter()
            .filter_map(|id| {
                let arn = arns.get(id.as_str())?.to_string();
                let optional = wave.is_optional(&id);
                Some((id, StepServer { arn, optional }))
            })
            .collect();
        steps.extend(wave_steps(&wave.name, &members));
    }
    if steps.len() > MAX_STEPS_PER_PLAN {
        return Err(CliError::PlanTooLarge {
            steps: steps.len(),
            waves: runbook.waves.len(),
        });
    }
    Ok(steps)
}

/// The changes that turn `existing` steps (name, servers; `None` for a WAIT step) into
/// `wanted`: from the first difference on, delete the old steps and create the wanted ones.
pub fn step_changes(
    existing: &[crate::aws::drs_plans::PlanStep],
    wanted: &[WantedStep],
) -> Vec<Change> {
    let same = existing
        .iter()
        .zip(wanted)
        .take_while(|(have, want)| {
            have.name == want.name && have.servers.as_ref() == Some(&want.members)
        })
        .count();
    let deletes = existing[same..].iter().map(|s| Change::DeleteStep {
        name: s.name.clone(),
        arn: s.arn.clone(),
    });
    let creates = wanted[same..]
        .iter()
        .enumerate()
        .map(|(i, s)| Change::CreateStep {
            order: same + i + 1,
            name: s.name.clone(),
            servers: s.servers.len(),
        });
    deletes.chain(creates).collect()
}

pub async fn run(cli: &Cli, args: &Args) -> Result<u8, CliError> {
    let loaded = crate::runbook::load(&args.runbook)?;
    let runbook = &loaded.runbook;
    let cloud = session::connect(cli, runbook, &loaded.text).await?;
    let result = export(cli, args, runbook, &cloud.clients.target).await;
    cloud.close();
    result
}

async fn export(
    cli: &Cli,
    args: &Args,
    runbook: &Runbook,
    target: &SideClients,
) -> Result<u8, CliError> {
    let plan_name = model_name(&runbook.name, 256);
    let wanted = wanted_steps(target, runbook).await?;
    let existing = target
        .recovery_plans()
        .await?
        .into_iter()
        .find(|p| p.name == plan_name);
    let mut plan_arn = existing.as_ref().map(|p| p.arn.clone());
    let changes = match &existing {
        Some(plan) => {
            let tags = target.recovery_plan_tags(&plan.arn).await?;
            if tags.get(RUNBOOK_TAG) != Some(&runbook.name) {
                return Err(CliError::PlanNotOurs {
                    name: plan_name,
                    arn: plan.arn.clone(),
                });
            }
            step_changes(&target.recovery_plan_steps(&plan.arn).await?, &wanted)
        }
        None => std::iter::once(Change::CreatePlan {
            name: plan_name.clone(),
        })
        .chain(step_changes(&[], &wanted))
        .collect(),
    };
    let place = format!(
        "recovery plan {:?} in account {} ({})",
        plan_name, target.account_id, target.region
    );
    if changes.is_empty() {
        eprintln!("{place} is up to date: nothing to change");
    } else {
        eprintln!("{place}: {} change(s)", changes.len());
        for change in &changes {
            eprintln!("  {}", crate::terminal::safe(&change.describe()));
        }
        if !args.yes {
            if !terminal_is_interactive() {
                return Err(CliError::ExportNotConfirmed { plan: plan_name });
            }
            if !ask_yes_no(format!("Make these changes to {place}?")).await {
                eprintln!("not confirmed: nothing changed");
                return Ok(exit::INVALID_INPUT);
            }
        }
        apply(target, runbook, &mut plan_arn, &changes, &wanted).await?;
    }
    let arn = plan_arn.clone().unwrap_or_default();
    match cli.output {
        Output::Json => super::print_json(&Exported {
            runbook: &runbook.name,
            account: &target.account_id,
            region: &target.region,
            plan_name: &plan_name,
            plan_arn,
            changed: !changes.is_empty(),
            changes: &changes,
            steps: &wanted,
        }),
        Output::Text => {
            println!("{}", crate::terminal::safe(&format!("{place}: {arn}")));
            for (i, step) in wanted.iter().enumerate() {
                println!(
                    "  {}. {} ({} server(s), wave {})",
                    i + 1,
                    crate::terminal::safe(&step.name),
                    step.servers.len(),
                    crate::terminal::safe(&step.wave)
                );
            }
            println!(
                "{}",
                if changes.is_empty() {
                    "unchanged".to_string()
                } else {
                    format!("{} change(s) made", changes.len())
                }
            );
        }
    }
    Ok(exit::SUCCEEDED)
}

async fn apply(
    target: &SideClients,
    runbook: &Runbook,
    plan_arn: &mut Option<String>,
    changes: &[Change],
    wanted: &[WantedStep],
) -> Result<(), CliError> {
    for change in changes {
        let request_id = match change {
            Change::CreatePlan { name } => {
                let tags = BTreeMap::from([(RUNBOOK_TAG.to_string(), runbook.name.clone())]);
                let description = format!(
                    "The waves of drs-runbook runbook {} (drs-runbook export-plan)",
                    runbook.name
                );
                let (arn, request_id) = target
                    .create_recovery_plan(name, &model_description(&description), &tags)
                    .await?;
                *plan_arn = Some(arn);
                request_id
            }
            Change::DeleteStep { arn, .. } => target.delete_recovery_plan_step(arn).await?,
            Change::CreateStep { order, name, .. } => {
                let step = &wanted[order - 1];
                let plan = plan_arn
                    .as_deref()
                    .expect("the plan exists (found, or created by the first change)");
                target
                    .create_server_step(plan, name, &step.members)
                    .await?
                    .1
            }
        };
        eprintln!(
            "{} (request ID {})",
            crate::terminal::safe(&change.describe()),
            request_id.as_deref().unwrap_or("none")
        );
    }
    Ok(())
}

/// `RecoveryPlanDescription`: at most 1024 characters.
fn model_description(text: &str) -> String {
    text.chars().take(1024).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::drs_plans::PlanStep;

    fn member(i: usize) -> (String, StepServer) {
        let id = format!("s-{i:017}");
        let arn = format!("arn:aws:drs:us-west-2:222222222222:source-server/{id}");
        (
            id,
            StepServer {
                arn,
                optional: false,
            },
        )
    }

    #[test]
    fn a_wave_of_more_than_100_servers_is_split_into_steps_of_at_most_100() {
        let servers: Vec<_> = (0..250).map(member).collect();
        let steps = wave_steps("web", &servers);
        let sizes: Vec<usize> = steps.iter().map(|s| s.servers.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["web 1 of 3", "web 2 of 3", "web 3 of 3"]);
        assert_eq!(wave_steps("db", &servers[..3])[0].name, "db");
    }

    #[test]
    fn names_follow_the_model_pattern() {
        assert_eq!(model_name("payments.prod/eu", 256), "payments-prod-eu");
        assert_eq!(model_name("_web", 256), "w_web");
        assert_eq!(model_name(&"a".repeat(300), 256).len(), 256);
    }

    #[test]
    fn steps_are_replaced_from_the_first_difference_on() {
        let servers: Vec<_> = (0..3).map(member).collect();
        let wanted = [
            wave_steps("web", &servers[..1]),
            wave_steps("db", &servers[1..]),
        ]
        .concat();
        let as_existing = |w: &WantedStep, arn: &str| PlanStep {
            arn: arn.into(),
            name: w.name.clone(),
            servers: Some(w.members.clone()),
        };
        let same = vec![as_existing(&wanted[0], "a0"), as_existing(&wanted[1], "a1")];
        assert!(step_changes(&same, &wanted).is_empty());
        let mut changed = same.clone();
        changed[1].servers = Some(vec![servers[1].1.clone()]);
        assert_eq!(
            step_changes(&changed, &wanted),
            vec![
                Change::DeleteStep {
                    name: "db".into(),
                    arn: "a1".into()
                },
                Change::CreateStep {
                    order: 2,
                    name: "db".into(),
                    servers: 2
                },
            ]
        );
    }
}
