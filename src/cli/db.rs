//! `db migrate-to URL`: copies every run of the `--db` store (typically the SQLite file) into
//! another store (typically the team's PostgreSQL), then verifies the audit chain and seal of
//! every copied run there. Refused, copying nothing, when a run ID is on both sides.

use std::path::PathBuf;

use super::{Cli, CliError, Output, exit, session};
use crate::store::copy;

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Copy every run, step, effect, event, lease and claim of --db into the store at URL
    /// (`postgres://...`, or a SQLite path) and verify the audit chains on arrival.
    MigrateTo(MigrateToArgs),
}

#[derive(Debug, clap::Args)]
pub struct MigrateToArgs {
    /// The target store: `postgres://user@host/db` (password from PGPASSWORD or ~/.pgpass),
    /// or a SQLite path. Its schema is created or brought up to date first.
    pub url: PathBuf,
}

pub async fn run(cli: &Cli, command: &DbCommand) -> Result<u8, CliError> {
    match command {
        DbCommand::MigrateTo(args) => migrate_to(cli, args).await,
    }
}

async fn migrate_to(cli: &Cli, args: &MigrateToArgs) -> Result<u8, CliError> {
    let source = session::open_db(cli).await?;
    let target = session::open_location(&args.url).await?;
    let report = copy::copy_all(&source, &target).await?;
    match cli.output {
        Output::Json => super::print_json(&serde_json::json!({
            "source": source.path(),
            "target": target.path(),
            "tables": report.tables.iter().map(|(t, n)| (t.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
            "runs": report.runs,
            "verified": true,
        })),
        Output::Text => {
            let counts: Vec<String> = report
                .tables
                .iter()
                .map(|(table, rows)| format!("{rows} {table}"))
                .collect();
            println!(
                "copied {} into {}: {}",
                source.path().display(),
                target.path().display(),
                counts.join(", ")
            );
            println!(
                "audit chains and seals verified in the target: {} run(s) intact",
                report.runs.len()
            );
        }
    }
    source.close().await;
    target.close().await;
    Ok(exit::SUCCEEDED)
}
