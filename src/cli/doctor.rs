//! `doctor <RUNBOOK> [--print-policies]`: read-only readiness checks of the cross-account setup
//! (IAM roles and trust policies, KMS keys and key policies, DRS in both accounts and every
//! server's replication), or the policies the setup needs, as JSON for infrastructure code.
//!
//! Exit codes: `0` no check failed (warnings allowed) · `1` a check failed · `2` bad runbook.
//! No database is opened; `--sim` keeps its simulated world beside the database path as usual.

use std::path::PathBuf;

use super::{Cli, CliError, Output, exit, session};
use crate::aws::Connection;
use crate::doctor;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub runbook: PathBuf,
    /// Print the trust policies, managed policies and KMS key policies the runbook's accounts
    /// and regions need, as JSON, and check nothing.
    #[arg(long)]
    pub print_policies: bool,
}

pub async fn run(cli: &Cli, args: &Args) -> Result<u8, CliError> {
    let loaded = crate::runbook::load(&args.runbook)?;
    let runbook = &loaded.runbook;
    if args.print_policies {
        let policies = doctor::expected::print_policies(runbook);
        println!(
            "{}",
            serde_json::to_string_pretty(&policies).unwrap_or_default()
        );
        return Ok(exit::SUCCEEDED);
    }
    let cloud = session::connect(cli, runbook, &loaded.text).await?;
    let connection = match (&cli.endpoint_url, cli.sim || cloud.clock.is_simulated()) {
        (_, true) => Connection::Simulated {
            endpoint_url: cli.endpoint_url.clone().unwrap_or_default(),
        },
        (url, false) => Connection::Aws {
            endpoint_url: url.clone(),
        },
    };
    let setup = crate::aws::connect_setup(runbook, &connection).await;
    let report = doctor::run(runbook, &cloud.clients, setup.as_ref(), cloud.clock.now()).await;
    cloud.close();
    match cli.output {
        Output::Json => super::print_json(&report),
        // AWS error messages and runbook strings: escaped for the terminal.
        Output::Text => print!(
            "{}",
            crate::terminal::safe_lines(&doctor::render_text(&report))
        ),
    }
    Ok(if report.has_failures() {
        exit::RUN_FAILED
    } else {
        exit::SUCCEEDED
    })
}
