//! `drs-runbook sim serve`: the simulated AWS cloud over HTTP, for rehearsals, the AWS CLI and
//! outside test suites. Prints `listening on http://ADDR` as its first line on stdout.

use std::io::Write;
use std::path::PathBuf;

use super::{CliError, exit};
use crate::sim::{Sim, SimOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:4566")]
    pub listen: String,
    /// Persist the world to this file (atomic writes); a restarted server continues from it.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Run the simulated clock N times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Seed the world from these runbooks (idempotent).
    #[arg(long = "seed", value_name = "RUNBOOK")]
    pub seeds: Vec<PathBuf>,
}

pub async fn run(args: &Args) -> Result<u8, CliError> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        return Err(CliError::InvalidSpeed(args.speed));
    }
    let sim = Sim::new(SimOptions {
        speed: args.speed,
        state_file: args.state.clone(),
    })
    .map_err(|e| CliError::ServeStart(error_chain(&e)))?;
    for path in &args.seeds {
        let text = std::fs::read_to_string(path).map_err(|cause| CliError::ServeReadSeed {
            path: path.clone(),
            cause,
        })?;
        sim.seed_toml(&text, &path.display().to_string())
            .map_err(|e| CliError::ServeSeed {
                path: path.clone(),
                cause: e.to_string(),
            })?;
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|cause| CliError::ServeListen {
            addr: args.listen.clone(),
            cause,
        })?;
    let addr = listener.local_addr().map_err(CliError::ServeLocalAddr)?;
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let serve = sim.serve(listener);
    tokio::select! {
        result = serve => result.map_err(|e| CliError::SimStopped(e.to_string()))?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(exit::SUCCEEDED)
}

/// An error and its sources, joined with `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
