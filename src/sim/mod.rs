//! The simulated AWS cloud: one HTTP listener that speaks the wire protocols the real SDK
//! clients use, so the engine, the AWS CLI and boto3 can all talk to it.
//!
//! ```text
//!   request ──► caller (SigV4 scope: account, region, service)
//!           ──► advance the world to "now" on the simulated clock
//!           ──► count the call, maybe inject an `api_error` fault
//!           ──► drs | route53 | elbv2 | ec2 handler (mutates `World`, returns the wire reply)
//!           ──► record the mutation, persist the state file atomically
//! ```
//!
//! Invariants:
//! - All state lives in one [`SimState`] behind one std mutex. Handlers are synchronous and
//!   short (no `.await` while the lock is held), which is why a std mutex is right here.
//! - Time-driven progress (job phases, replication, DNS propagation, target health) is a pure
//!   function of the simulated clock: [`World::advance`] materialises it before every call, so a
//!   restarted server continues exactly where the state file left it.
//! - The state file is rewritten (tmp + fsync + rename) after every mutating call.

pub mod arc;
pub mod caller;
pub mod clock;
pub mod control;
pub mod drs;
pub mod ec2;
pub mod elbv2;
pub mod faults;
pub mod route53;
pub mod seed;
pub mod stats;
pub mod wire;
pub mod xml;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

pub use caller::Caller;
pub use clock::SimClock;
pub use faults::Fault;
pub use stats::Stats;
pub use wire::{Reply, SimRequest};

/// Everything the simulated cloud knows, per (account, region) where AWS scopes it so.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct World {
    /// DRS state, keyed by [`scope_key`] (`"<account>/<region>"`).
    #[serde(default)]
    pub drs: std::collections::BTreeMap<String, drs::DrsRegion>,
    /// EC2 of every account and region: instances (A1 sources, recovery instances), subnets
    /// and launch templates.
    #[serde(default)]
    pub ec2: ec2::Ec2,
    /// Route 53 is global: state per account.
    #[serde(default)]
    pub route53: std::collections::BTreeMap<String, route53::Route53Account>,
    /// ELBv2 state, keyed by [`scope_key`].
    #[serde(default)]
    pub elbv2: std::collections::BTreeMap<String, elbv2::ElbRegion>,
    /// Route 53 ARC routing controls by ARN (their account is the ARN's).
    #[serde(default)]
    pub arc: std::collections::BTreeMap<String, arc::RoutingControl>,
}

/// The key of per-(account, region) maps in [`World`].
pub fn scope_key(account: &str, region: &str) -> String {
    format!("{account}/{region}")
}

impl World {
    /// Brings every time-driven process up to `now`.
    pub fn advance(&mut self, now: DateTime<Utc>, faults: &[Fault]) {
        ec2::advance(self, now, faults);
        drs::advance(self, now, faults);
        route53::advance(self, now, faults);
        elbv2::advance(self, now, faults);
    }
}

/// What a handler gets: the world, the simulated time, the active faults and a random source.
pub struct Ctx<'a> {
    pub world: &'a mut World,
    pub now: DateTime<Utc>,
    pub faults: &'a [Fault],
    pub rng: &'a mut StdRng,
    pub request_id: &'a str,
    pub caller: &'a Caller,
}

/// What a handler returns: the wire reply, and the parameters when the call changed state
/// (recorded in `/_sim/stats` `mutations`, in order).
pub struct Outcome {
    pub reply: Reply,
    pub mutation: Option<serde_json::Value>,
}

impl Outcome {
    pub fn read(reply: Reply) -> Self {
        Outcome {
            reply,
            mutation: None,
        }
    }
    pub fn mutated(reply: Reply, params: serde_json::Value) -> Self {
        Outcome {
            reply,
            mutation: Some(params),
        }
    }
}

/// The whole mutable state of a simulator instance.
pub struct SimState {
    pub clock: SimClock,
    pub world: World,
    pub stats: Stats,
    pub faults: Vec<Fault>,
    pub rng: StdRng,
}

/// What the state file holds.
#[derive(Serialize, Deserialize)]
struct Persisted {
    format: u32,
    sim_now: DateTime<Utc>,
    speed: f64,
    world: World,
    faults: Vec<Fault>,
    stats: Stats,
}

/// Options of a simulator instance.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// How many times faster than real time the simulated clock runs.
    pub speed: f64,
    /// Where the world is persisted; `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            speed: 1.0,
            state_file: None,
        }
    }
}

/// A simulated cloud. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<SimState>,
    state_file: Option<PathBuf>,
    /// Serialises writers of the state file, so that a newer snapshot is never overwritten by
    /// an older one taken by a concurrent request (lock order: this, then `state`).
    persist_lock: Mutex<()>,
}

/// Errors of starting or persisting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("failed to read the simulator state file {path}")]
    ReadState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the simulator state file {path} is not valid (hint: delete it to start a fresh world)"
    )]
    ParseState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to write the simulator state file {path}")]
    WriteState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to seed the simulator: {0}")]
    Seed(String),
}

impl Sim {
    /// Creates a simulator, loading the world from the state file when it exists.
    pub fn new(options: SimOptions) -> Result<Sim, SimError> {
        let speed = if options.speed > 0.0 {
            options.speed
        } else {
            1.0
        };
        let mut state = SimState {
            clock: SimClock::new(Utc::now(), speed),
            world: World::default(),
            stats: Stats::default(),
            faults: Vec::new(),
            rng: StdRng::from_os_rng(),
        };
        if let Some(path) = &options.state_file
            && let Some(persisted) = load_state(path)?
        {
            // The simulated clock continues from where the file left it, at the speed
            // asked for now: the world did not move while no server was running.
            state.clock = SimClock::new(persisted.sim_now, speed);
            state.world = persisted.world;
            state.faults = persisted.faults;
            state.stats = persisted.stats;
        }
        let sim = Sim {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                state_file: options.state_file,
                persist_lock: Mutex::new(()),
            }),
        };
        sim.persist()?;
        Ok(sim)
    }

    /// Runs `f` on the locked state (after advancing the world to now).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let mut guard = self.lock();
        let state = &mut *guard;
        let now = state.clock.now();
        state.world.advance(now, &state.faults);
        f(state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        // A panic in a handler must not take the whole simulator down with a poisoned lock:
        // the state is still consistent at the granularity of a call.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the state file, if any, atomically.
    pub fn persist(&self) -> Result<(), SimError> {
        let Some(path) = &self.inner.state_file else {
            return Ok(());
        };
        let _writer = self
            .inner
            .persist_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let state = self.lock();
            let persisted = Persisted {
                format: 1,
                sim_now: state.clock.now(),
                speed: state.clock.speed(),
                world: state.world.clone(),
                faults: state.faults.clone(),
                stats: state.stats.clone(),
            };
            serde_json::to_vec(&persisted).expect("the world serialises")
        };
        write_atomically(path, &bytes).map_err(|source| SimError::WriteState {
            path: path.clone(),
            source,
        })
    }

    /// Seeds the world from a runbook's TOML text (idempotent).
    pub fn seed_toml(&self, text: &str, file_name: &str) -> Result<seed::SeedSummary, SimError> {
        let runbook =
            crate::runbook::parse(text, file_name).map_err(|e| SimError::Seed(e.to_string()))?;
        let summary = self.with_state(|state| {
            let now = state.clock.now();
            seed::seed(&mut state.world, &runbook, now)
        });
        self.persist()?;
        Ok(summary)
    }

    /// The simulated time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().clock.now()
    }

    /// Handles one HTTP request (AWS wire protocols and the control API).
    pub fn handle(&self, req: SimRequest) -> Reply {
        if req.path.starts_with("/_sim/") || req.path == "/_sim" {
            return control::handle(self, &req);
        }
        let caller = Caller::from_request(&req);
        let request_id = uuid::Uuid::new_v4().to_string();
        let (reply, mutated) = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let now = state.clock.now();
            state.world.advance(now, &state.faults);
            let outcome = dispatch(state, &caller, &req, now, &request_id);
            (outcome.reply, outcome.mutation.is_some())
        };
        if mutated && let Err(e) = self.persist() {
            tracing::error!(error = %e, "simulator state not persisted");
        }
        reply
    }

    /// Serves HTTP on an already bound listener until the future is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let sim = self.clone();
                async move {
                    let req = SimRequest::new(method, &uri, headers, body);
                    sim.handle(req).into_response()
                }
            },
        );
        axum::serve(listener, app).await
    }

    /// Binds `addr` (use port 0 for any) and serves in a background task.
    /// Returns the bound address, e.g. for tests and `--sim`.
    pub async fn spawn(self, addr: &str) -> Result<SocketAddr, SimError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| SimError::Listen {
            addr: addr.to_string(),
            source,
        })?;
        tokio::spawn(async move {
            if let Err(e) = self.serve(listener).await {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        Ok(local)
    }
}

/// Routes an AWS request to its service, counting it and applying `api_error` faults.
fn dispatch(
    state: &mut SimState,
    caller: &Caller,
    req: &SimRequest,
    now: DateTime<Utc>,
    request_id: &str,
) -> Outcome {
    let service = caller.service.as_str();
    state.stats.count_scope(&caller.account, &caller.region);
    let (service_name, operation) = match service {
        "drs" => ("drs", drs::operation_of(req)),
        "route53" => ("route53", route53::operation_of(req)),
        "elasticloadbalancing" => ("elbv2", elbv2::operation_of(req)),
        "ec2" => ("ec2", ec2::operation_of(req)),
        "route53-recovery-cluster" => ("arc", arc::operation_of(req)),
        other => {
            return Outcome::read(Reply::text(
                400,
                format!(
                    "the simulator does not serve the service {other:?} (it serves drs, route53, elasticloadbalancing, ec2 and route53-recovery-cluster)"
                ),
            ));
        }
    };
    let operation = match operation {
        Ok(op) => op,
        Err(reply) => {
            state.stats.count(service_name, "UnknownOperation");
            return Outcome::read(reply);
        }
    };
    state.stats.count(service_name, &operation);

    // A region that is down answers nothing (source_outage): DRS, ELBv2 and EC2 are regional.
    if matches!(service_name, "drs" | "elbv2" | "ec2")
        && faults::outage_since(&state.faults, &caller.account, &caller.region).is_some()
    {
        let message = format!(
            "Service unavailable: {service_name} in {} is down (simulated source_outage)",
            caller.region
        );
        let reply = match service_name {
            "drs" => drs::error_reply("ServiceUnavailable", &message, request_id),
            // EC2's own code for it, in EC2's error shape (EC2 API reference, "Error codes").
            "ec2" => ec2::error_reply("Unavailable", &message, request_id),
            _ => elbv2::error_reply("ServiceUnavailable", &message, request_id),
        };
        return Outcome::read(reply);
    }

    if let Some(error) =
        faults::take_api_error(&mut state.faults, service_name, &operation, &mut state.rng)
    {
        let message = format!("Simulated fault: {error} on {service_name}:{operation}");
        let reply = match service_name {
            "drs" => drs::error_reply(&error, &message, request_id),
            "route53" => route53::error_reply(&error, &message, request_id),
            "ec2" => ec2::error_reply(&error, &message, request_id),
            "arc" => arc::error_reply(&error, &message, request_id),
            _ => elbv2::error_reply(&error, &message, request_id),
        };
        return Outcome::read(reply);
    }

    let mut ctx = Ctx {
        world: &mut state.world,
        now,
        faults: &state.faults,
        rng: &mut state.rng,
        request_id,
        caller,
    };
    let outcome = match service_name {
        "drs" => drs::handle(&mut ctx, &operation, req),
        "route53" => route53::handle(&mut ctx, &operation, req),
        "ec2" => ec2::handle(&mut ctx, &operation, req),
        "arc" => arc::handle(&mut ctx, &operation, req),
        _ => elbv2::handle(&mut ctx, &operation, req),
    };
    if let Some(params) = &outcome.mutation {
        state.stats.record_mutation(stats::Mutation {
            at: now,
            service: service_name.to_string(),
            operation: operation.clone(),
            account: caller.account.clone(),
            region: caller.region.clone(),
            params: params.clone(),
        });
    }
    outcome
}

fn load_state(path: &Path) -> Result<Option<Persisted>, SimError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Ok(None),
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| SimError::ParseState {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SimError::ReadState {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old or the new file, never
/// half of one: write a temporary file beside it, fsync, rename over. The file is created 0600
/// (the world names accounts, hosts and IPs), and a failed write (disk full) removes the
/// temporary file rather than leaving `<file>.tmp.<pid>` behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_world_file_is_private_and_a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim-world.json");
        super::write_atomically(&path, b"{}").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A write that cannot complete (here: the rename onto a non-empty directory fails, as
        // a full disk fails the write) removes its temporary file.
        let blocked = dir.path().join("blocked.json");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), "x").unwrap();
        assert!(super::write_atomically(&blocked, b"{}").is_err());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
