//! The run store: SQLite through sqlx, one file per table, migrations in `migrations/`.
//!
//! ```text
//!   Database::open(path)        create the file 0600, WAL, synchronous=FULL, foreign keys,
//!        │                      busy timeout, then the embedded forward-only migrations
//!        │                      (connect and migrate under an exclusive lock on <db>.lock)
//!        ▼
//!   db.begin()  ──►  BEGIN IMMEDIATE transaction  ──►  runs:: steps:: effects:: events::
//!                                                      leases:: claims::   (free functions over
//!                                                      &mut SqliteConnection)  ──► commit
//! ```
//!
//! Invariants (DESIGN section 6):
//! - Every function takes `&mut SqliteConnection` and never commits: the caller composes a step
//!   transition, its effect and its audit event in one transaction ([`Database::begin`]).
//! - Write transactions start with `BEGIN IMMEDIATE`, so two processes serialise on the write
//!   lock at `begin` (waiting up to the busy timeout) instead of failing later with
//!   `SQLITE_BUSY` when a read lock cannot be upgraded.
//! - Every timestamp is passed in by the caller (`now`, `at`): in `--sim` mode the engine records
//!   simulated time. Timestamps are stored as fixed-width RFC 3339 UTC text with microseconds
//!   (`2025-01-02T03:04:05.123456Z`), so text order is time order and indexes on them work.
//! - Persisted states are plain enums stored as snake_case TEXT with a `CHECK` in the schema.
//! - Credentials never reach the database: requests, outputs and event data hold identifiers
//!   and parameters only.
//!
//! Queries are runtime queries (`sqlx::query`, `query_as`) rather than the `query!` macros:
//! the macros need either a live database at build time or a committed `.sqlx/` offline cache
//! that must be regenerated on every schema or query change. With runtime queries there is
//! nothing to keep in sync; instead every query is exercised by a unit test in its module
//! against a real temporary database with the real migrations.

pub mod claims;
pub mod copy;
pub mod effects;
pub mod events;
pub mod iam;
pub mod leases;
pub mod runs;
pub mod seal;
pub mod steps;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use claims::{Claim, ClaimHolder};
pub use effects::{Effect, EffectState, NewEffect};
pub use events::{BreakReason, ChainBreak, Event, VerifiedChain};
pub use leases::{Lease, LeaseHolder};
pub use runs::{ClockKind, Finish, Mode, NewRun, Operation, Run, RunFilter, RunStatus, RunSummary};
pub use seal::SealBreak;
pub use steps::{NewStep, Step, StepStatus};

/// How long a connection waits for another process's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations in `migrations/`, embedded at build time (SQLite).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The same schema in PostgreSQL's dialect, `migrations/postgres/`: one file per SQLite one
/// (the same version), and the PostgreSQL-only 0019 (effect IDs unique per run, for
/// `db migrate-to`).
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The key of the transaction-level advisory lock every PostgreSQL write transaction takes
/// first (see [`Database::begin`]): "drs-runbook" as an integer, the same in every process.
const PG_WRITE_LOCK: i64 = 0x6472_732d_7275_6e62;

/// Which engine a store is on; store functions ask [`engine`] where the SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The engine of a connection, by sqlx's backend name.
pub fn engine(conn: &sqlx::AnyConnection) -> Engine {
    if conn.backend_name() == "PostgreSQL" {
        Engine::Postgres
    } else {
        Engine::Sqlite
    }
}

/// Whether `--db` names a PostgreSQL store (`postgres://` or `postgresql://` URL) rather than
/// a SQLite file (a path, or a `sqlite://` URL).
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A PostgreSQL URL with its password removed, for messages: credentials are never shown.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(None);
            }
            let mut kept: Vec<(String, String)> = parsed
                .query_pairs()
                .filter(|(k, _)| k != "password")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                parsed.set_query(None);
            } else {
                parsed
                    .query_pairs_mut()
                    .clear()
                    .extend_pairs(kept.drain(..));
            }
            parsed.to_string()
        }
        Err(_) => "a PostgreSQL URL that does not parse".to_owned(),
    }
}

/// The run database: a pool of connections to SQLite (opened with the pragmas of DESIGN
/// section 6) or PostgreSQL, behind sqlx's `Any` driver so that every store function takes one
/// connection type. The SQL is shared; where the dialects differ a function asks [`engine`].
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    engine: Engine,
    /// The file, or the URL of a PostgreSQL store with its password removed.
    path: PathBuf,
    /// Why the database stopped answering, once a write transaction could not begin for that
    /// reason (see [`Database::begin`]); shared by the clones.
    lost: Arc<OnceLock<String>>,
}

impl Database {
    /// Opens the store `--db` names: a PostgreSQL URL ([`Database::connect_postgres`]), else
    /// a SQLite path or `sqlite://` URL ([`Database::open`]).
    pub async fn open_location(location: &str) -> Result<Database, StoreError> {
        if is_postgres_url(location) {
            Database::connect_postgres(location).await
        } else {
            let path = location
                .strip_prefix("sqlite://")
                .or_else(|| location.strip_prefix("sqlite:"))
                .unwrap_or(location);
            Database::open(path).await
        }
    }

    /// Opens (creating if missing, with mode 0600 and private parent directories) the SQLite
    /// database at `path` and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Database, StoreError> {
        sqlx::any::install_default_drivers();
        let path = path.as_ref().to_path_buf();
        create_private_file(&path)?;
        // Two processes opening a new database at once race: both switch the new file to WAL
        // (which needs SQLite's exclusive lock, and can fail with "database is locked"), then
        // both find no migration applied and both run migration 1 ("table runs already
        // exists"). Connecting, checking and migrating run under an exclusive lock, held only
        // for that; the second opener then finds WAL set and the schema up to date.
        let lock = MigrationLock::acquire(&path).await?;
        let options = AnyConnectOptions::from_str(&sqlite_url(&path)?)
            .map_err(|source| open_error(&path, source))?;
        // One connection first, so that a file that is not a database fails here, with its
        // own error, instead of the pool retrying it until its acquire timeout.
        {
            use sqlx::Connection;
            let mut probe = sqlx::AnyConnection::connect_with(&options)
                .await
                .map_err(|source| open_error(&path, source))?;
            probe
                .execute(SQLITE_PRAGMAS)
                .await
                .map_err(|source| open_error(&path, source))?;
            probe
                .close()
                .await
                .map_err(|source| open_error(&path, source))?;
        }
        // SQLite serialises writers anyway; a few connections let readers (status, history)
        // proceed beside the driver's write transactions under WAL.
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| open_error(&path, source))?;
        ensure_ours(&pool, &path).await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| migrate_error(&path, source))?;
        drop(lock);
        Ok(Database {
            pool,
            engine: Engine::Sqlite,
            path,
            lost: Arc::default(),
        })
    }

    /// Connects to the PostgreSQL store at `url` (credentials from the URL, `PGPASSWORD` or
    /// `~/.pgpass`) and brings its schema up to date. sqlx's migrator holds a session-level
    /// advisory lock while it checks and applies migrations, so two processes starting at
    /// once are safe.
    ///
    /// With `aws_iam_auth=true` in the URL the password is an RDS IAM authentication token
    /// ([`iam`]), renewed for new connections while the store is open.
    pub async fn connect_postgres(url: &str) -> Result<Database, StoreError> {
        sqlx::any::install_default_drivers();
        let path = PathBuf::from(redact_url(url));
        let iam_url = iam::requested(url);
        let connect_url = match &iam_url {
            Some(plain) => iam::with_token(plain).await?,
            None => url.to_owned(),
        };
        let options =
            AnyConnectOptions::from_str(&connect_url).map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        if let Some(plain) = iam_url {
            tokio::spawn(renew_iam_token(pool.clone(), plain));
        }
        PG_MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| migrate_error(&path, source))?;
        Ok(Database {
            pool,
            engine: Engine::Postgres,
            path,
            lost: Arc::default(),
        })
    }

    /// The connection pool, for reads that need no transaction.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine the store is on.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Where the store is: the SQLite file, or the PostgreSQL URL without its password.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a write transaction. Pass `&mut *tx` to the store functions, then `tx.commit()`;
    /// dropping it rolls back.
    ///
    /// Writers are serialised, on both engines, because the store's read-check-write
    /// sequences (the lease's compare-and-set, a claim's conflict check, the event chain's
    /// head) rely on it: SQLite's `BEGIN IMMEDIATE` takes the write lock at `begin`;
    /// PostgreSQL takes one transaction-level advisory lock ([`PG_WRITE_LOCK`]) first, released
    /// by commit or rollback, waiting up to [`BUSY_TIMEOUT`] (`lock_timeout`) like SQLite's
    /// busy timeout. Readers are never blocked on either engine.
    ///
    /// Once the database could not be reached ([`is_unreachable`]) by a `begin` or an
    /// [`acquire`](Database::acquire), every later one in this process fails at once with
    /// [`StoreError::Lost`], naming the first cause: the run's writers queue for their turn,
    /// and each waiting out the pool's acquire timeout in turn would delay the run's stop by
    /// as many timeouts.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        self.check_lost()?;
        let began = self.begin_on_engine().await;
        self.note_lost(began)
    }

    /// A connection for reads that need no transaction (see [`Database::begin`] for how a
    /// lost database fails it at once).
    pub async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<Any>, StoreError> {
        self.check_lost()?;
        let acquired = self.pool.acquire().await.map_err(|source| {
            StoreError::query(source, format!("connect to {}", self.path.display()))
        });
        self.note_lost(acquired)
    }

    fn check_lost(&self) -> Result<(), StoreError> {
        match self.lost.get() {
            Some(cause) => Err(StoreError::Lost {
                path: self.path.clone(),
                cause: LostCause(cause.clone()),
            }),
            None => Ok(()),
        }
    }

    fn note_lost<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result
            && is_unreachable(e)
        {
            let _ = self.lost.set(error_chain(e));
        }
        result
    }

    async fn begin_on_engine(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let action = || format!("begin a transaction on {}", self.path.display());
        match self.engine {
            Engine::Sqlite => self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|source| StoreError::query(source, action())),
            Engine::Postgres => {
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(|source| StoreError::query(source, action()))?;
                sqlx::query(&format!(
                    "SET LOCAL lock_timeout = '{}ms'",
                    BUSY_TIMEOUT.as_millis()
                ))
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::query(source, action()))?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::query(source, action()))?;
                Ok(tx)
            }
        }
    }

    /// Closes every connection (checkpointing a SQLite WAL).
    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// Signs a new RDS IAM token for the connections `pool` opens next, every
/// [`iam::RENEW_EVERY`], until the pool is closed. A failed renewal keeps the last token (valid
/// for five more minutes) and says why; a connection opened with an expired one fails to
/// authenticate, which stops a run as an unreachable database does.
async fn renew_iam_token(pool: AnyPool, url: url::Url) {
    loop {
        tokio::time::sleep(iam::RENEW_EVERY).await;
        if pool.is_closed() {
            return;
        }
        match iam::with_token(&url).await.and_then(|with_token| {
            AnyConnectOptions::from_str(&with_token).map_err(|source| StoreError::Open {
                path: PathBuf::from(redact_url(url.as_str())),
                source,
            })
        }) {
            Ok(options) => pool.set_connect_options(options),
            Err(e) => tracing::warn!(error = %e, "failed to renew the RDS IAM token"),
        }
    }
}

/// The pragmas of DESIGN section 6, run on every new SQLite connection.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";

/// The `sqlite://` URL of `path` (made absolute, percent-encoded), with `mode=rwc`.
fn sqlite_url(path: &Path) -> Result<String, StoreError> {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_');
    let absolute = std::path::absolute(path).map_err(|source| StoreError::CreateFile {
        path: path.to_path_buf(),
        source,
    })?;
    let text = absolute.to_str().ok_or_else(|| StoreError::CreateFile {
        path: path.to_path_buf(),
        source: std::io::Error::other("the path is not UTF-8"),
    })?;
    Ok(format!(
        "sqlite://{}?mode=rwc",
        utf8_percent_encode(text, KEEP)
    ))
}

/// How long an open waits for another process to finish migrating the same database.
pub const MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// An exclusive advisory lock (`flock`) on `<db>.lock`, serialising schema checks and
/// migrations between processes; released when dropped, or by the kernel when the process dies,
/// so a crashed migration never leaves it held.
///
/// A sibling file rather than the database file itself: closing any descriptor of the database
/// file would drop the POSIX locks SQLite holds on it in this process. The lock file stays
/// (removing it would let a third process lock a new file while the second holds the old one).
struct MigrationLock {
    _file: std::fs::File,
}

impl MigrationLock {
    async fn acquire(db_path: &Path) -> Result<MigrationLock, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let lock_path = lock_path_of(db_path);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| StoreError::CreateFile {
                path: lock_path.clone(),
                source,
            })?;
        // Polled rather than a blocking `lock()`: that would stall this runtime's thread, and
        // with it any task of this process that holds the lock.
        let deadline = tokio::time::Instant::now() + MIGRATION_LOCK_TIMEOUT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(MigrationLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::MigrationLocked {
                        path: db_path.to_path_buf(),
                        lock_path,
                    });
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(StoreError::CreateFile {
                        path: lock_path,
                        source,
                    });
                }
            }
        }
    }
}

/// `<db>.lock` beside the database (`runs.db` -> `runs.db.lock`).
fn lock_path_of(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Creates the database file with mode 0600 (and missing parent directories with 0700) before
/// SQLite opens it: SQLite would create it with the umask, and the WAL and shared-memory files
/// it creates later copy the main file's permissions. An existing file is left as it is.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CreateFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Refuses a SQLite file that holds tables but was never migrated by drs-runbook, rather than
/// adding our tables to someone else's database.
async fn ensure_ours(pool: &AnyPool, path: &Path) -> Result<(), StoreError> {
    let tables: Vec<String> = sqlx::query_scalar(
        r#"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"#,
    )
    .fetch_all(pool)
    .await
    .map_err(|source| open_error(path, source))?;
    let has = |name: &str| tables.iter().any(|t| t == name);
    // Only `_sqlx_migrations`: a first open that stopped before migration 1 committed.
    let ours = tables.is_empty() || (has("_sqlx_migrations") && (has("runs") || tables.len() == 1));
    if ours {
        Ok(())
    } else {
        Err(StoreError::NotOurs {
            path: path.to_path_buf(),
        })
    }
}

fn open_error(path: &Path, source: sqlx::Error) -> StoreError {
    match sqlite_code(&source) {
        Some(SQLITE_NOTADB) => StoreError::NotOurs {
            path: path.to_path_buf(),
        },
        Some(SQLITE_BUSY | SQLITE_LOCKED) => StoreError::Locked {
            action: format!("open {}", path.display()),
            source,
        },
        _ => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    }
}

fn migrate_error(path: &Path, source: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError;
    match source {
        MigrateError::VersionMissing(version) => StoreError::UnknownMigration {
            path: path.to_path_buf(),
            version,
        },
        MigrateError::Execute(e)
            if matches!(sqlite_code(&e), Some(SQLITE_BUSY | SQLITE_LOCKED)) =>
        {
            StoreError::Locked {
                action: format!("migrate {}", path.display()),
                source: e,
            }
        }
        source => StoreError::Migrate {
            path: path.to_path_buf(),
            source,
        },
    }
}

// SQLite primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_NOTADB: i64 = 26;

/// PostgreSQL's `lock_not_available`: `lock_timeout` ran out waiting for the write lock.
const PG_LOCK_NOT_AVAILABLE: &str = "55P03";

/// The primary SQLite result code of a database error, if it is a SQLite one.
fn sqlite_code(error: &sqlx::Error) -> Option<i64> {
    let database_error = error.as_database_error()?;
    let sqlite = database_error.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    let code = sqlx::error::DatabaseError::code(sqlite)?;
    code.parse::<i64>().ok().map(|extended| extended & 0xff)
}

/// Whether a query failed waiting for another process's write lock, on either engine.
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    matches!(sqlite_code(error), Some(SQLITE_BUSY | SQLITE_LOCKED))
        || error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == PG_LOCK_NOT_AVAILABLE)
}

/// Whether `error`, or one of its causes, says that the database could not be reached or that
/// the connection to it was lost (a stopped or restarting server, a dropped network, a
/// terminated backend), rather than that a query was refused. A run that meets it stops: no
/// write can be trusted to land, and every write before it is committed.
pub fn is_unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<sqlx::Error>().is_some_and(connection_lost)
            || e.downcast_ref::<LostCause>().is_some()
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// `error` and its causes, `: `-separated, each cause once (a wrapper often repeats the
/// message of what it wraps).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let message = e.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = e.source();
    }
    text
}

/// PostgreSQL's connection exceptions (class 08) and the server's shutdown codes:
/// `admin_shutdown` (`pg_terminate_backend`, a fast stop), `crash_shutdown`,
/// `cannot_connect_now` (starting up or shutting down).
fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// Why the database stopped answering, as first seen by this process (the source of
/// [`StoreError::Lost`]: a source, so that [`is_unreachable`] finds it through the engine's
/// transparent wrappers).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LostCause(String);

/// Errors of the run store. Messages fit "failed to ..." and end with what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "failed to create the directory {path} for the run database (hint: check its permissions, or pass --db PATH)"
    )]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to create the run database {path} (hint: check the directory's permissions, or pass --db PATH)"
    )]
    CreateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to open the run database {path} (hint: check the file, or pass --db PATH)")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "failed to make an RDS IAM authentication token for {url}: {reason} (hint: check the AWS credentials and region this host uses, e.g. with `aws sts get-caller-identity`)"
    )]
    IamToken { url: String, reason: String },
    #[error("{path} is not a drs-runbook database (hint: pass --db PATH to use another file)")]
    NotOurs { path: PathBuf },
    #[error(
        "the run database {path} has migration {version}, which this drs-runbook does not know (hint: it was written by a newer drs-runbook; upgrade, or pass --db PATH)"
    )]
    UnknownMigration { path: PathBuf, version: i64 },
    #[error(
        "failed to migrate the run database {path} (hint: restore it from a backup, or pass --db PATH to start a new one)"
    )]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error(
        "failed to open the run database {path}: another drs-runbook process has held its migration lock {lock_path} for over a minute (hint: wait for that process to finish, or stop it, then retry)"
    )]
    MigrationLocked { path: PathBuf, lock_path: PathBuf },
    #[error(
        "failed to {action}: the database is locked by another process (hint: wait for the other drs-runbook to finish, then retry)"
    )]
    Locked {
        action: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("failed to use the run database {path}: it stopped answering earlier in this process")]
    Lost {
        path: PathBuf,
        #[source]
        cause: LostCause,
    },
    #[error("failed to {action}")]
    Query {
        action: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("run {run_id} not found (hint: `drs-runbook history` lists the runs)")]
    RunNotFound { run_id: RunId },
    #[error(
        "step {key} of run {run_id} not found (hint: `drs-runbook show {run_id}` lists its steps)"
    )]
    StepNotFound { run_id: RunId, key: String },
    #[error("step {key} of run {run_id} depends on {depends_on}, which is not a step of the run")]
    UnknownDependency {
        run_id: RunId,
        key: String,
        depends_on: String,
    },
    #[error(
        "step {key} of run {run_id} is {status}, not waiting for approval (hint: `drs-runbook status {run_id}` shows which step waits)"
    )]
    NotWaitingApproval {
        run_id: RunId,
        key: String,
        status: StepStatus,
    },
    #[error(
        "step {key} of run {run_id} is {status} and cannot be skipped (hint: only pending, failed, cancelled or waiting steps can be skipped)"
    )]
    NotSkippable {
        run_id: RunId,
        key: String,
        status: StepStatus,
    },
    #[error("effect {id} not found")]
    EffectNotFound { id: EffectId },
    #[error("effect {id} is already {state}, not an open intent; its outcome is recorded once")]
    EffectNotOpen { id: EffectId, state: EffectState },
    #[error(
        "an effect with idempotency key {idempotency_key} is already recorded: that call was already attempted (hint: reconcile the recorded intent instead of sending it again)"
    )]
    DuplicateEffect { idempotency_key: String },
    #[error("run {} is driven by {} on {} (pid {}) since {}; its lease expires at {} (hint: wait for that process to finish; if it is gone, retry after the lease expires)",
        .holder.run_id, .holder.owner, .holder.host, .holder.pid, .holder.acquired_at, .holder.expires_at)]
    LeaseHeld { holder: Box<LeaseHolder> },
    #[error("lost the lease on run {run_id} (fence {fence}): {} (hint: another drs-runbook process drives this run now; this one stops)", leases::describe_current(.holder))]
    LostLease {
        run_id: RunId,
        fence: i64,
        holder: Option<Box<LeaseHolder>>,
    },
    #[error("{resource} is claimed by run {} ({} of {}, {}, by {} on {} since {}) (hint: wait for that run to end, or resume or cancel it)",
        .holder.run_id, .holder.operation, .holder.runbook_name, .holder.status, .holder.operator, .holder.host, .holder.claimed_at)]
    ClaimConflict {
        resource: String,
        holder: Box<ClaimHolder>,
    },
    #[error(
        "invalid run ID {value:?} (hint: run IDs are UUIDs as printed by `drs-runbook history`)"
    )]
    InvalidRunId { value: String },
    #[error(
        "failed to copy: {} {what} ID(s) are already in {} ({}{}); nothing was copied (hint: a run is migrated once; remove the file's duplicate runs or copy into another database)",
        .ids.len(), .target.display(), .ids.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
        if .ids.len() > 3 { ", ..." } else { "" }
    )]
    CopyConflict {
        what: &'static str,
        ids: Vec<String>,
        target: PathBuf,
    },
    #[error(
        "the copy of run {run_id} does not verify in the target: {reason} (hint: the source database may have been altered; run `drs-runbook audit verify` on it)"
    )]
    CopyBroken { run_id: RunId, reason: String },
}

impl StoreError {
    /// Wraps a query error with what was being done, telling a lock timeout apart.
    pub(crate) fn query(source: sqlx::Error, action: String) -> StoreError {
        if is_lock_timeout(&source) {
            StoreError::Locked { action, source }
        } else {
            StoreError::Query { action, source }
        }
    }
}

/// A run's ID: a UUIDv7 (time-ordered) string.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct RunId(String);

impl RunId {
    /// A fresh, time-ordered run ID.
    pub fn generate() -> RunId {
        RunId(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RunId {
    type Err = StoreError;

    /// Accepts any UUID spelling and normalises it to the lowercase hyphenated form stored.
    fn from_str(value: &str) -> Result<RunId, StoreError> {
        uuid::Uuid::parse_str(value.trim())
            .map(|uuid| RunId(uuid.to_string()))
            .map_err(|_| StoreError::InvalidRunId {
                value: value.to_owned(),
            })
    }
}

/// The row ID of an effect.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct EffectId(pub i64);

impl fmt::Display for EffectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A persisted enum's text was not one of its values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {})", .expected.join(", "))]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

/// Defines a persisted state enum whose snake_case text is written once, here, and used by
/// `Display`, `FromStr`, serde and sqlx alike. The schema's `CHECK` lists the same strings;
/// each table's tests insert every value of `ALL` so the two cannot drift apart silently.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The persisted (snake_case) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::store::UnknownValue;

            fn from_str(value: &str) -> Result<$name, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::store::UnknownValue {
                        what: stringify!($name),
                        value: value.to_owned(),
                        expected: &[$($text,)+],
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl sqlx::Type<sqlx::Any> for $name {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <str as sqlx::Type<sqlx::Any>>::type_info()
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, sqlx::Any>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $name {
            fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<$name, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}
use text_enum;

/// A JSON column as stored (TEXT, or NULL), decoded into serde types through `TryFrom` by
/// `#[sqlx(try_from = "JsonText")]`. sqlx's own `Json` wrapper needs its `json` feature, which
/// this build does not enable; this is the few lines of it the store needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(Option<String>);

impl sqlx::Type<Any> for JsonText {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <str as sqlx::Type<Any>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, Any> for JsonText {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<JsonText, sqlx::error::BoxDynError> {
        Ok(JsonText(<Option<String> as sqlx::Decode<'r, Any>>::decode(
            value,
        )?))
    }
}

/// A timestamp column as stored (fixed-width RFC 3339 text, or NULL), decoded into
/// `DateTime<Utc>` by `#[sqlx(try_from = "TimeText")]`: sqlx's `Any` driver decodes no chrono
/// type, and the text is what both engines store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeText(Option<String>);

impl sqlx::Type<Any> for TimeText {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <str as sqlx::Type<Any>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, Any> for TimeText {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<TimeText, sqlx::error::BoxDynError> {
        Ok(TimeText(<Option<String> as sqlx::Decode<'r, Any>>::decode(
            value,
        )?))
    }
}

/// A timestamp column that did not decode.
#[derive(Debug, thiserror::Error)]
pub enum TimeColumnError {
    #[error("unexpected NULL in a timestamp column")]
    Null,
    #[error("invalid timestamp {0:?} in a column")]
    Invalid(String),
}

fn parse_stored_time(text: &str) -> Result<DateTime<Utc>, TimeColumnError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| TimeColumnError::Invalid(text.to_owned()))
}

impl TryFrom<TimeText> for DateTime<Utc> {
    type Error = TimeColumnError;
    fn try_from(text: TimeText) -> Result<Self, TimeColumnError> {
        parse_stored_time(&text.0.ok_or(TimeColumnError::Null)?)
    }
}

impl TryFrom<TimeText> for Option<DateTime<Utc>> {
    type Error = TimeColumnError;
    fn try_from(text: TimeText) -> Result<Self, TimeColumnError> {
        text.0.as_deref().map(parse_stored_time).transpose()
    }
}

/// A JSON column that did not decode (the schema's `json_valid` checks make this unlikely).
#[derive(Debug, thiserror::Error)]
pub enum JsonColumnError {
    #[error("unexpected NULL in a JSON column")]
    Null,
    #[error("invalid JSON in a column")]
    Invalid(#[from] serde_json::Error),
}

impl JsonText {
    fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, JsonColumnError> {
        let text = self.0.ok_or(JsonColumnError::Null)?;
        Ok(serde_json::from_str(&text)?)
    }
}

impl TryFrom<JsonText> for serde_json::Value {
    type Error = JsonColumnError;
    fn try_from(text: JsonText) -> Result<Self, JsonColumnError> {
        text.parse()
    }
}

impl TryFrom<JsonText> for Vec<String> {
    type Error = JsonColumnError;
    fn try_from(text: JsonText) -> Result<Self, JsonColumnError> {
        text.parse()
    }
}

impl TryFrom<JsonText> for Option<serde_json::Value> {
    type Error = JsonColumnError;
    fn try_from(text: JsonText) -> Result<Self, JsonColumnError> {
        match text.0 {
            None => Ok(None),
            Some(_) => text.parse().map(Some),
        }
    }
}

/// The stored form of a timestamp: RFC 3339 UTC with exactly six fractional digits.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `at` as it reads back from the database (truncated to microseconds).
pub(crate) fn stored_time(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&timestamp(at))
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(at)
}

/// Lowercase hex SHA-256, as stored for runbook texts and event hashes.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(bytes.as_ref()))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Shared fixtures of the store's unit tests: a real database file in a temporary directory.
    use super::*;

    /// A fresh database in its own temporary directory (kept alive by the returned guard): a
    /// SQLite file, or with `DRS_RUNBOOK_TEST_ENGINE=postgres` a new PostgreSQL database on the
    /// server of `DRS_RUNBOOK_TEST_PG` (how CI runs the store's tests on both engines).
    pub(crate) async fn temp_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = if std::env::var("DRS_RUNBOOK_TEST_ENGINE").as_deref() == Ok("postgres") {
            Database::connect_postgres(&scratch_postgres().await)
                .await
                .expect("open the PostgreSQL database")
        } else {
            Database::open(dir.path().join("runs.db"))
                .await
                .expect("open the database")
        };
        (dir, db)
    }

    /// A fresh SQLite database, for the tests of what only SQLite has (pragmas, the file).
    pub(crate) async fn temp_sqlite_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = Database::open(dir.path().join("runs.db"))
            .await
            .expect("open the database");
        (dir, db)
    }

    /// The admin URL of the PostgreSQL server of the tests (`DRS_RUNBOOK_TEST_PG`). Unset: under
    /// CI (`CI=true`) the test fails, never passing silently; elsewhere it prints a notice and
    /// the test skips (`None`).
    pub(crate) fn postgres_server() -> Option<String> {
        match std::env::var("DRS_RUNBOOK_TEST_PG") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => panic!(
                "DRS_RUNBOOK_TEST_PG is not set, and CI=true: the PostgreSQL tests must run in CI \
                 (`.ci/postgres` starts a throwaway server and prints the URL to export)"
            ),
            _ => {
                eprintln!(
                    "notice: DRS_RUNBOOK_TEST_PG is not set: skipping a PostgreSQL test \
                     (start a server with `.ci/postgres`, then export DRS_RUNBOOK_TEST_PG=<the URL it prints>)"
                );
                None
            }
        }
    }

    /// The URL of a new, empty PostgreSQL database on the server of `DRS_RUNBOOK_TEST_PG`
    /// (an admin URL, e.g. `postgres://postgres@127.0.0.1:55432/postgres`). Panics with how to
    /// set it when it is missing.
    pub(crate) async fn scratch_postgres() -> String {
        use sqlx::Connection;
        let admin = std::env::var("DRS_RUNBOOK_TEST_PG").unwrap_or_else(|_| {
            panic!(
                "DRS_RUNBOOK_TEST_ENGINE=postgres needs DRS_RUNBOOK_TEST_PG, the admin URL of a \
                 PostgreSQL server (`.ci/postgres` starts one and prints it; see the README, Tests)"
            )
        });
        let name = format!("drs_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("connect to DRS_RUNBOOK_TEST_PG: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create a scratch database");
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin).expect("DRS_RUNBOOK_TEST_PG is a URL");
        url.set_path(&name);
        url.to_string()
    }

    /// A fixed instant plus `seconds`, so tests never depend on the wall clock.
    pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-01T12:00:00.123456Z")
            .expect("valid fixture time")
            .with_timezone(&Utc)
            + chrono::TimeDelta::seconds(seconds)
    }

    pub(crate) fn new_run(runbook_name: &str, operation: Operation) -> NewRun {
        NewRun {
            id: RunId::generate(),
            runbook_name: runbook_name.to_owned(),
            runbook_path: format!("runbooks/{runbook_name}.toml"),
            runbook_text: format!("name = \"{runbook_name}\"\n"),
            operation,
            mode: Mode::Planned,
            options: serde_json::json!({"yes": true, "point_in_time": "latest"}),
            operator: "alice".to_owned(),
            host: "ops-1".to_owned(),
            parent_run_id: None,
            clock: ClockKind::Simulated,
            declared_at: Some(at(0)),
        }
    }

    /// Inserts a failover run of "payments" with two steps, `preflight` and `recovery_job:db`.
    pub(crate) async fn run_with_steps(db: &Database) -> RunId {
        let mut tx = db.begin().await.expect("begin");
        let run = runs::insert(&mut tx, &new_run("payments", Operation::Failover), at(0))
            .await
            .expect("insert run");
        let steps = [
            NewStep::new("preflight", "preflight", None, &[]),
            NewStep::new(
                "recovery_job:db",
                "recovery_job",
                Some("db"),
                &["preflight"],
            ),
        ];
        steps::insert_all(&mut tx, &run.id, &steps)
            .await
            .expect("insert steps");
        tx.commit().await.expect("commit");
        run.id
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn open_creates_a_private_file_in_new_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/drs-runbook/runs.db");
        let db = Database::open(&path).await.unwrap();
        run_with_steps(&db).await; // writes, so the WAL file exists too
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&path.with_extension("db-wal")), 0o600);
        assert_eq!(mode(&path.with_extension("db.lock")), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(db.path(), path);
    }

    #[tokio::test]
    async fn pragmas_are_in_effect_on_every_connection() {
        let (_dir, db) = temp_sqlite_db().await;
        // Hold two connections at once so the second is a distinct one from the pool.
        let mut first = db.pool().acquire().await.unwrap();
        let mut second = db.pool().acquire().await.unwrap();
        for conn in [&mut first, &mut second] {
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(journal, "wal");
            assert_eq!(synchronous, 2, "synchronous = FULL");
            assert_eq!(foreign_keys, 1);
            assert_eq!(busy, 5000);
        }
    }

    /// Two processes opening a brand-new database at the same moment (two drills started by
    /// cron): each open here has its own thread, runtime and pool, as a process would, and they
    /// start together. Without the lock one of them fails on "database is locked" or "table
    /// runs already exists"; repeated on fresh paths because the race window is narrow.
    #[test]
    fn concurrent_first_opens_both_succeed_and_migrate_once() {
        const ROUNDS: usize = 12;
        const OPENERS: usize = 3;
        let dir = tempfile::tempdir().unwrap();
        for round in 0..ROUNDS {
            let path = dir.path().join(format!("round-{round}/runs.db"));
            let start = std::sync::Arc::new(std::sync::Barrier::new(OPENERS));
            let openers: Vec<_> = (0..OPENERS)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap();
                        runtime.block_on(async {
                            start.wait();
                            let db = Database::open(&path).await?;
                            let applied: i64 =
                                sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                                    .fetch_one(db.pool())
                                    .await
                                    .unwrap();
                            db.close().await;
                            Ok::<i64, StoreError>(applied)
                        })
                    })
                })
                .collect();
            for opener in openers {
                let applied = opener.join().unwrap().unwrap_or_else(|e| {
                    panic!("round {round}: {e}: {:?}", std::error::Error::source(&e))
                });
                assert_eq!(applied, MIGRATOR.iter().count() as i64, "round {round}");
            }
        }
    }

    #[tokio::test]
    async fn reopening_keeps_the_data_and_applies_no_migration_twice() {
        let (dir, db) = temp_sqlite_db().await;
        let run_id = run_with_steps(&db).await;
        db.close().await;
        let db = Database::open(dir.path().join("runs.db")).await.unwrap();
        let mut conn = db.pool().acquire().await.unwrap();
        assert_eq!(runs::get(&mut conn, &run_id).await.unwrap().id, run_id);
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(applied, MIGRATOR.iter().count() as i64);
    }

    #[tokio::test]
    async fn a_file_that_is_not_sqlite_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        std::fs::write(
            &path,
            "this is a text file, not a database, and it is long enough to have a header ....",
        )
        .unwrap();
        let err = Database::open(&path).await.unwrap_err();
        assert!(matches!(err, StoreError::NotOurs { .. }), "{err:?}");
        assert!(
            err.to_string().contains("is not a drs-runbook database"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn another_applications_sqlite_database_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        {
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = SqlitePool::connect_with(options).await.unwrap();
            sqlx::query("CREATE TABLE notes (body TEXT)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        let err = Database::open(&path).await.unwrap_err();
        assert!(matches!(err, StoreError::NotOurs { .. }), "{err:?}");
        let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path))
            .await
            .unwrap();
        let tables: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(tables, 1, "no table was added to the foreign database");
    }

    #[tokio::test]
    async fn a_write_lock_held_elsewhere_times_out_as_locked() {
        let (dir, db) = temp_sqlite_db().await;
        let _holder = db.begin().await.unwrap();
        // A second process, modelled by a second pool with a short busy timeout.
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("runs.db"))
            .busy_timeout(Duration::from_millis(50));
        let other = SqlitePool::connect_with(options).await.unwrap();
        let source = other.begin_with("BEGIN IMMEDIATE").await.unwrap_err();
        let err = StoreError::query(source, "begin a transaction".to_owned());
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
    }

    /// The engine's pattern: fence check, step transition and audit event in one transaction.
    /// A lost lease aborts the whole transition; nothing of it is persisted.
    #[tokio::test]
    async fn a_step_transition_commits_or_vanishes_as_a_whole() {
        let (_dir, db) = temp_db().await;
        let run_id = run_with_steps(&db).await;
        let ttl = Duration::from_secs(30);
        let stale = {
            let mut tx = db.begin().await.unwrap();
            let lease = leases::acquire(&mut tx, &run_id, "driver-a", "ops-1", 1, ttl, at(0))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            lease
        };
        let transition = |lease: Lease, status: StepStatus, at_s: i64| {
            let db = db.clone();
            let run_id = run_id.clone();
            async move {
                let mut tx = db.begin().await?;
                steps::set_status(&mut tx, &run_id, "preflight", status, None, at(at_s)).await?;
                events::append(
                    &mut tx,
                    &run_id,
                    at(at_s),
                    "step_status",
                    &lease.owner,
                    Some("preflight"),
                    &serde_json::json!({"to": status}),
                )
                .await?;
                leases::check_fence(&mut tx, &lease).await?;
                tx.commit()
                    .await
                    .map_err(|e| StoreError::query(e, "commit".into()))
            }
        };
        transition(stale.clone(), StepStatus::Running, 1)
            .await
            .unwrap();

        let fresh = {
            let mut tx = db.begin().await.unwrap();
            let lease = leases::acquire(&mut tx, &run_id, "driver-b", "ops-2", 2, ttl, at(60))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            lease
        };
        let err = transition(stale, StepStatus::Failed, 61).await.unwrap_err();
        assert!(matches!(err, StoreError::LostLease { .. }), "{err:?}");

        let mut conn = db.pool().acquire().await.unwrap();
        assert_eq!(
            steps::get(&mut conn, &run_id, "preflight")
                .await
                .unwrap()
                .status,
            StepStatus::Running
        );
        assert_eq!(
            events::for_run(&mut conn, &run_id).await.unwrap().len(),
            1,
            "the stale event rolled back"
        );
        assert!(events::verify(&mut conn, &run_id).await.unwrap().is_ok());
        drop(conn);
        transition(fresh, StepStatus::Succeeded, 62).await.unwrap();
    }

    /// Three processes opening one new PostgreSQL database at once: sqlx's migrator holds an
    /// advisory lock, so exactly one applies the migrations and all three open.
    #[test]
    fn concurrent_first_opens_of_a_postgres_store_all_succeed_and_migrate_once() {
        if postgres_server().is_none() {
            return;
        }
        let url = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(scratch_postgres());
        let start = std::sync::Arc::new(std::sync::Barrier::new(3));
        let openers: Vec<_> = (0..3)
            .map(|_| {
                let (url, start) = (url.clone(), start.clone());
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        start.wait();
                        let db = Database::connect_postgres(&url).await.unwrap();
                        let applied: i64 =
                            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                                .fetch_one(db.pool())
                                .await
                                .unwrap();
                        db.close().await;
                        applied
                    })
                })
            })
            .collect();
        for opener in openers {
            assert_eq!(opener.join().unwrap(), PG_MIGRATOR.iter().count() as i64);
        }
        let postgres: Vec<i64> = PG_MIGRATOR.iter().map(|m| m.version).collect();
        for sqlite in MIGRATOR.iter() {
            assert!(
                postgres.contains(&sqlite.version),
                "SQLite migration {} has no PostgreSQL twin",
                sqlite.version
            );
        }
    }

    /// PostgreSQL's `BEGIN IMMEDIATE`: a second writer waits for the first, then gives up
    /// after the busy timeout as on SQLite, with the same error.
    #[tokio::test]
    async fn a_postgres_writer_waits_for_the_other_and_times_out_as_locked() {
        if postgres_server().is_none() {
            return;
        }
        let db = Database::connect_postgres(&scratch_postgres().await)
            .await
            .unwrap();
        let other = Database::open_location(db.path().to_str().unwrap())
            .await
            .unwrap();
        let holder = db.begin().await.unwrap();
        let started = std::time::Instant::now();
        let err = other.begin().await.unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        assert!(started.elapsed() >= BUSY_TIMEOUT, "{:?}", started.elapsed());
        drop(holder);
        other
            .begin()
            .await
            .expect("free once the first writer is done");
    }

    /// The same run written on both engines seals to the same row hashes, numbers and
    /// awkward strings included, so a copied run's seal verifies in the other store.
    #[tokio::test]
    async fn a_run_seals_to_the_same_rows_on_both_engines() {
        if postgres_server().is_none() {
            return;
        }
        let (_dir, sqlite) = temp_sqlite_db().await;
        let postgres = Database::connect_postgres(&scratch_postgres().await)
            .await
            .unwrap();
        let mut new = new_run("payments", Operation::Failover);
        new.runbook_text = "name = \"pay\u{e9}\"\n# \"quoted\" \\ tab\t\u{1}\n".to_owned();
        let mut seals = Vec::new();
        for db in [&sqlite, &postgres] {
            let mut tx = db.begin().await.unwrap();
            runs::insert(&mut tx, &new, at(0)).await.unwrap();
            steps::insert_all(
                &mut tx,
                &new.id,
                &[NewStep::new("preflight", "preflight", None, &[])],
            )
            .await
            .unwrap();
            let finish = Finish {
                status: RunStatus::Failed,
                rto_seconds: Some(1_234.567_890_123_4),
                rpo_seconds: Some(0.1 + 0.2),
                error: Some("line one\nline \"two\" \u{2603}".to_owned()),
            };
            runs::finish(&mut tx, &new.id, &finish, at(90))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let rows: String = sqlx::query_scalar("SELECT rows FROM seals WHERE run_id = $1")
                .bind(&new.id)
                .fetch_one(db.pool())
                .await
                .unwrap();
            seals.push(rows);
        }
        assert_eq!(seals[0], seals[1]);
    }

    /// A SQLite store with one run: an effect done (with its event), a claim on `resource`, a
    /// lease. Its effect is effect 1, as the first effect of every SQLite file.
    async fn sqlite_run_with_an_effect(resource: &str) -> (tempfile::TempDir, Database, RunId) {
        let (dir, sqlite) = temp_sqlite_db().await;
        let run_id = run_with_steps(&sqlite).await;
        let mut tx = sqlite.begin().await.unwrap();
        let effect = NewEffect {
            step_key: "preflight".to_owned(),
            idempotency_key: effects::idempotency_key(&run_id, "preflight", 1, 1),
            operation: "drs:StartRecovery".to_owned(),
            account: "111111111111".to_owned(),
            region: "us-east-1".to_owned(),
            request: serde_json::json!({"sourceServers": [resource]}),
        };
        let id = effects::begin(&mut tx, &run_id, &effect, at(1))
            .await
            .unwrap();
        effects::complete(
            &mut tx,
            &run_id,
            id,
            &serde_json::json!({"job": "drsjob-1"}),
            Some("req-1"),
            at(2),
        )
        .await
        .unwrap();
        events::append(
            &mut tx,
            &run_id,
            at(3),
            "effect_done",
            "t",
            Some("preflight"),
            &serde_json::json!({"effect": id.0}),
        )
        .await
        .unwrap();
        claims::claim_all(&mut tx, &run_id, &[resource][..], at(3))
            .await
            .unwrap();
        leases::acquire(
            &mut tx,
            &run_id,
            "driver",
            "ops-1",
            7,
            Duration::from_secs(30),
            at(3),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        (dir, sqlite, run_id)
    }

    /// `db migrate-to`: everything of a SQLite store arrives in PostgreSQL and verifies there;
    /// a second copy of the same runs is refused before anything is written.
    #[tokio::test]
    async fn copy_all_moves_a_sqlite_store_to_postgres_and_refuses_a_run_twice() {
        if postgres_server().is_none() {
            return;
        }
        let (_dir, sqlite, run_id) = sqlite_run_with_an_effect("drs:s-1").await;
        let postgres = Database::connect_postgres(&scratch_postgres().await)
            .await
            .unwrap();
        let report = copy::copy_all(&sqlite, &postgres).await.unwrap();
        assert_eq!(report.runs, vec![run_id.clone()]);
        let counts: std::collections::BTreeMap<_, _> = report.tables.into_iter().collect();
        assert_eq!(counts["effects"], 1);
        assert_eq!(counts["claims"], 1);
        assert_eq!(counts["leases"], 1);
        let mut conn = postgres.pool().acquire().await.unwrap();
        assert!(events::verify(&mut conn, &run_id).await.unwrap().is_ok());
        assert_eq!(
            leases::current(&mut conn, &run_id)
                .await
                .unwrap()
                .unwrap()
                .fence,
            1
        );
        drop(conn);
        let err = copy::copy_all(&sqlite, &postgres).await.unwrap_err();
        assert!(matches!(err, StoreError::CopyConflict { .. }), "{err:?}");
        assert!(err.to_string().contains(run_id.as_str()), "{err}");
    }

    /// Two SQLite files, each with its effect 1 and an audit event naming it, migrated into
    /// one PostgreSQL store: both copies verify, each run keeps its effect 1, and effects are
    /// closed and found per run; a new effect takes an ID past every copied one.
    #[tokio::test]
    async fn copy_all_takes_two_sqlite_files_whose_effect_ids_collide() {
        if postgres_server().is_none() {
            return;
        }
        let postgres = Database::connect_postgres(&scratch_postgres().await)
            .await
            .unwrap();
        let mut copied = Vec::new();
        for resource in ["drs:s-1", "drs:s-2"] {
            let (_dir, sqlite, run_id) = sqlite_run_with_an_effect(resource).await;
            let report = copy::copy_all(&sqlite, &postgres).await.unwrap();
            assert_eq!(report.runs, vec![run_id.clone()]);
            copied.push(run_id);
        }
        let mut conn = postgres.pool().acquire().await.unwrap();
        for run_id in &copied {
            assert!(events::verify(&mut conn, run_id).await.unwrap().is_ok());
            let effects = effects::for_run(&mut conn, run_id).await.unwrap();
            assert_eq!(effects.len(), 1);
            assert_eq!((effects[0].id, &effects[0].run_id), (EffectId(1), run_id));
        }
        drop(conn);

        let (first, second) = (&copied[0], &copied[1]);
        let mut tx = postgres.begin().await.unwrap();
        let effect = NewEffect {
            step_key: "preflight".to_owned(),
            idempotency_key: effects::idempotency_key(second, "preflight", 2, 1),
            operation: "drs:StartRecovery".to_owned(),
            account: "111111111111".to_owned(),
            region: "us-east-1".to_owned(),
            request: serde_json::json!({"sourceServers": ["s-2"]}),
        };
        let new = effects::begin(&mut tx, second, &effect, at(10))
            .await
            .unwrap();
        assert!(new.0 > 1, "{new}");
        effects::fail(&mut tx, second, new, "AccessDenied", None, at(11))
            .await
            .unwrap();
        let err = effects::complete(&mut tx, first, new, &serde_json::json!({}), None, at(11))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::EffectNotFound { .. }), "{err:?}");
        tx.commit().await.unwrap();
        let mut conn = postgres.pool().acquire().await.unwrap();
        for run_id in &copied {
            assert!(events::verify(&mut conn, run_id).await.unwrap().is_ok());
        }
        assert_eq!(
            effects::get(&mut conn, second, new).await.unwrap().state,
            EffectState::Failed
        );
    }

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        assert_eq!(
            redact_url("postgres://drs:s3cret@db.example.com:5432/runs?sslmode=require&password=x"),
            "postgres://drs@db.example.com:5432/runs?sslmode=require"
        );
        assert!(is_postgres_url("postgresql://h/db"));
        assert!(!is_postgres_url("/var/lib/drs-runbook/runs.db"));
    }

    #[test]
    fn run_ids_are_uuid_v7_and_parse_back() {
        let id = RunId::generate();
        let uuid = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(id.as_str().parse::<RunId>().unwrap(), id);
        assert_eq!(id.as_str().to_uppercase().parse::<RunId>().unwrap(), id);
        assert!(matches!(
            "not-a-run".parse::<RunId>(),
            Err(StoreError::InvalidRunId { .. })
        ));
    }

    #[test]
    fn timestamps_are_fixed_width_so_text_order_is_time_order() {
        let whole = timestamp(at(0) - chrono::TimeDelta::microseconds(123_456));
        let fraction = timestamp(at(0));
        assert_eq!(whole, "2025-03-01T12:00:00.000000Z");
        assert_eq!(fraction, "2025-03-01T12:00:00.123456Z");
        assert!(whole < fraction);
        let nanos = at(0) + chrono::TimeDelta::nanoseconds(999);
        assert_eq!(stored_time(nanos), at(0));
    }

    #[test]
    fn unknown_enum_text_names_the_expected_values() {
        let err = "exploded".parse::<RunStatus>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown RunStatus \"exploded\" (expected one of: pending, running, paused, succeeded, failed, cancelled, interrupted, rolled_back)"
        );
        assert_eq!(
            serde_json::to_string(&RunStatus::RolledBack).unwrap(),
            "\"rolled_back\""
        );
        assert_eq!(
            serde_json::from_str::<StepStatus>("\"waiting_approval\"").unwrap(),
            StepStatus::WaitingApproval
        );
    }
}
