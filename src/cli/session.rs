//! What run commands share: the database path, opening it, reaching AWS or the simulator, and
//! the [`Session`] (database, cloud, progress display and approver) every run is driven in.

use std::path::PathBuf;
use std::sync::Arc;

use super::progress::{Lines, Prompt, terminal_is_interactive};
use super::{Cli, CliError};
use crate::aws::{Clients, Connection};
use crate::engine::Context;
use crate::engine::clock::EngineClock;
use crate::engine::progress::Progress;
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

/// Opens the store [`db_path`] names: a `postgres://` URL is a shared PostgreSQL store, a path
/// or `sqlite://` URL a SQLite file. A URL's password never reaches a message.
pub async fn open_db(cli: &Cli) -> Result<Database, CliError> {
    open_location(&db_path(cli)).await
}

/// Opens the store at `location` (a path, `sqlite://` or `postgres://` URL).
pub async fn open_location(location: &std::path::Path) -> Result<Database, CliError> {
    let text = location.to_string_lossy();
    Database::open_location(&text)
        .await
        .map_err(|e| CliError::OpenDatabase {
            cause: super::sim_serve::error_chain(&e),
            unreachable: crate::store::is_unreachable(&e),
            path: if crate::store::is_postgres_url(&text) {
                PathBuf::from(crate::store::redact_url(&text))
            } else {
                location.to_path_buf()
            },
        })
}

/// A run command's session: the database, the cloud, the progress lines on stderr and the
/// terminal prompt. [`Session::context`] is the engine's view of it.
pub struct Session {
    pub db: Database,
    pub cloud: Cloud,
    progress: Progress,
    prompt: Prompt,
}

impl Session {
    /// Connects to the cloud of `runbook` (see [`connect`]) for a run in `db`.
    pub async fn connect(
        cli: &Cli,
        db: Database,
        runbook: &Runbook,
        runbook_text: &str,
    ) -> Result<Session, CliError> {
        let cloud = connect(cli, runbook, runbook_text).await?;
        let lines = Arc::new(Lines::new());
        Ok(Session {
            db,
            cloud,
            progress: Progress::new(lines.clone()),
            prompt: Prompt {
                interactive: terminal_is_interactive(),
                status: lines.status_line(),
            },
        })
    }

    pub fn context(&self) -> Context<'_> {
        Context {
            db: &self.db,
            clients: &self.cloud.clients,
            clock: &self.cloud.clock,
            progress: &self.progress,
            approver: &self.prompt,
        }
    }

    /// Ends the session (saves the embedded simulator's world).
    pub fn close(&self) {
        self.cloud.close();
    }
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
        let sim = Sim::new(SimOptions {
            speed,
            state_file: Some(state_file.clone()),
        })
        .map_err(|e| CliError::SimStart {
            cause: super::sim_serve::error_chain(&e),
            state_file: Some(state_file),
        })?;
        sim.seed_toml(runbook_text, &runbook.name)
            .map_err(|e| CliError::SimSeed(e.to_string()))?;
        let addr = sim
            .clone()
            .spawn("127.0.0.1:0")
            .await
            .map_err(|e| CliError::SimStart {
                cause: super::sim_serve::error_chain(&e),
                state_file: None,
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
