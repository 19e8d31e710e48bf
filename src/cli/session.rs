//! What run commands share: the database path, opening it, and reaching AWS or the simulator.

use std::path::PathBuf;

use super::{Cli, CliError, exit};
use crate::aws::{Clients, Connection};
use crate::engine::clock::EngineClock;
use crate::runbook::Runbook;
use crate::sim::{Sim, SimOptions};
use crate::store::Database;

/// The simulated clock speed of the embedded simulator (`--sim`): an hour of DRS work in a
/// minute. `DRS_RUNBOOK_SIM_SPEED` overrides it.
pub const DEFAULT_SIM_SPEED: f64 = 60.0;

/// `--db`, else `$DRS_RUNBOOK_DB` (clap reads it), else `$XDG_STATE_HOME/drs-runbook/runs.db`,
/// else `~/.local/state/drs-runbook/runs.db`.
pub fn db_path(cli: &Cli) -> PathBuf {
    if let Some(db) = &cli.db {
        return db.clone();
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            home.join(".local").join("state")
        });
    state.join("drs-runbook").join("runs.db")
}

pub async fn open_db(cli: &Cli) -> Result<Database, CliError> {
    let path = db_path(cli);
    Database::open(&path).await.map_err(|e| CliError {
        code: exit::RUN_FAILED,
        message: format!(
            "failed to open the run database {}: {}",
            path.display(),
            super::sim_serve::error_chain(&e)
        ),
    })
}

/// The world file of the embedded simulator: beside the database.
pub fn sim_state_path(cli: &Cli) -> PathBuf {
    let db = db_path(cli);
    db.with_file_name("sim-world.json")
}

/// How a command reaches the cloud, kept alive for the command's duration.
pub struct Cloud {
    pub clients: Clients,
    pub clock: EngineClock,
    /// The embedded simulator, when `--sim`.
    pub sim: Option<Sim>,
}

/// Connects to AWS, an endpoint (a `sim serve` is detected by its `/_sim/clock`), or the
/// embedded simulator seeded from the runbook.
impl Cloud {
    /// Writes the embedded simulator's world once more at the end of a command (it is also
    /// written after every mutating call).
    pub fn close(&self) {
        if let Some(sim) = &self.sim
            && let Err(e) = sim.persist()
        {
            eprintln!("warning: the simulated world was not saved: {e}");
        }
    }
}

pub async fn connect(cli: &Cli, runbook: &Runbook, runbook_text: &str) -> Result<Cloud, CliError> {
    if cli.sim {
        let speed = std::env::var("DRS_RUNBOOK_SIM_SPEED")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .unwrap_or(DEFAULT_SIM_SPEED);
        let state_file = sim_state_path(cli);
        let sim = Sim::new(SimOptions { speed, state_file: Some(state_file.clone()) }).map_err(|e| CliError {
            code: exit::RUN_FAILED,
            message: format!("failed to start the embedded simulator: {} (hint: delete {} to start a fresh simulated world)", super::sim_serve::error_chain(&e), state_file.display()),
        })?;
        sim.seed_toml(runbook_text, &runbook.name)
            .map_err(|e| CliError::invalid_input(format!("failed to seed the simulator: {e}")))?;
        let addr = sim
            .clone()
            .spawn("127.0.0.1:0")
            .await
            .map_err(|e| CliError {
                code: exit::RUN_FAILED,
                message: format!(
                    "failed to start the embedded simulator: {}",
                    super::sim_serve::error_chain(&e)
                ),
            })?;
        let endpoint = format!("http://{addr}");
        let clients = crate::aws::connect(
            runbook,
            &Connection::Simulated {
                endpoint_url: endpoint.clone(),
            },
        )
        .await;
        let clock = EngineClock::detect(Some(&endpoint)).await;
        return Ok(Cloud {
            clients,
            clock,
            sim: Some(sim),
        });
    }
    let endpoint = cli.endpoint_url.clone();
    let clock = EngineClock::detect(endpoint.as_deref()).await;
    let connection = match (&endpoint, clock.is_simulated()) {
        (Some(url), true) => Connection::Simulated {
            endpoint_url: url.clone(),
        },
        (url, _) => Connection::Aws {
            endpoint_url: url.clone(),
        },
    };
    let clients = crate::aws::connect(runbook, &connection).await;
    Ok(Cloud {
        clients,
        clock,
        sim: None,
    })
}
