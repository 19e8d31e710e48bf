//! The command line: clap definitions, one file per command or family of commands (`recover.rs`
//! holds the five that take a stored run further: resume, rollback, retry, skip, cancel; `runs.rs`
//! approve, status and show), and [`error`], which maps every error to its exit code
//! (DESIGN section 7):
//! `0` succeeded · `1` the run failed · `2` invalid input · `3` paused for an operator ·
//! `4` refused, another run holds the resources · `75` the run database could not be reached
//! (a run stopped at a safe point, resumable) · `130` interrupted by Ctrl-C, `143` by
//! SIGTERM, `129` by SIGHUP · `141` stdout was a closed pipe.

mod audit;
mod db;
mod doctor;
mod error;
mod export_plan;
mod failback;
mod history;
mod notify;
mod operate;
mod plan;
mod progress;
mod recover;
mod report;
mod runs;
mod session;
mod shell;
mod sim_serve;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

pub use crate::engine::driver::exit;
pub use error::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "drs-runbook",
    version,
    about = "Disaster-recovery runbooks on AWS Elastic Disaster Recovery: plan, fail over, drill, fail back, audit",
    propagate_version = true
)]
pub struct Cli {
    /// The run database (default: $DRS_RUNBOOK_DB, else $XDG_STATE_HOME/drs-runbook/runs.db).
    #[arg(long, global = true, env = "DRS_RUNBOOK_DB")]
    pub db: Option<PathBuf>,
    /// Use the embedded simulated AWS cloud (its world kept beside the database).
    #[arg(long, global = true, conflicts_with = "endpoint_url")]
    pub sim: bool,
    /// Send every AWS call to this endpoint (e.g. a `sim serve` at http://127.0.0.1:4566).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Output format of results on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// More detail in logs on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

// The operation and mode of a run are the store's types (one enum each); their command-line
// values are their stored snake_case names (`as_str`), so the text is written once.
impl ValueEnum for crate::store::Operation {
    fn value_variants<'a>() -> &'a [Self] {
        Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for crate::store::Mode {
    fn value_variants<'a>() -> &'a [Self] {
        Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        use crate::store::Mode;
        let help = match self {
            Mode::Planned => {
                "The source is reachable: stop on the first error, check the source side too"
            }
            Mode::Unplanned => {
                "The source is down: skip source-side checks, continue past optional servers"
            }
        };
        Some(clap::builder::PossibleValue::new(self.as_str()).help(help))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check runbook files: every problem with file, line and key. No AWS call, no database.
    Validate(validate::Args),
    /// Show what a run would do (steps, batches, records, targets, launch settings); changes
    /// nothing.
    Plan(plan::Args),
    /// Fail over to the recovery account/region: recover, switch load balancers, cut DNS over.
    Failover(operate::FailoverArgs),
    /// Rehearse: launch drill instances, validate them, measure RTO/RPO, clean up.
    Drill(operate::DrillArgs),
    /// Fail back to the origin: reverse replication, recover A2 there, cut traffic back, clean up.
    Failback(failback::FailbackArgs),
    /// Approve a step waiting at an approval gate, and continue the run.
    Approve(runs::ApproveArgs),
    /// Continue an interrupted run: reconcile what a crash left open against AWS, then go on.
    Resume(recover::ResumeArgs),
    /// Undo a run's changes (DNS records, target groups, recovery instances), newest first.
    Rollback(recover::RollbackArgs),
    /// Run a failed step again, and continue the run.
    Retry(recover::RetryArgs),
    /// Skip a step (the reason is recorded), and continue the run.
    Skip(recover::SkipArgs),
    /// Stop a run at a safe point and mark it cancelled (it can then be rolled back).
    Cancel(recover::CancelArgs),
    /// The runs in progress, or one run's steps.
    Status(runs::StatusArgs),
    /// One run in detail: steps, timings, attempts, approvals, errors, AWS request IDs.
    Show(runs::ShowArgs),
    /// The runs in the database (filter by runbook, operation, status, date), or the RTO/RPO
    /// trend of a runbook's drills (`--trend`).
    History(history::Args),
    /// The auditor's report of a run: Markdown, JSON, or a self-contained HTML file.
    Report(report::Args),
    /// The tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// The run store itself: `db migrate-to URL` copies it into another (e.g. PostgreSQL).
    Db {
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// Read-only readiness of the cross-account setup: IAM roles, KMS keys, DRS and replication.
    Doctor(doctor::Args),
    /// Create or update a native DRS recovery plan whose steps are the runbook's waves (in the
    /// recovery account and region); an unchanged runbook changes nothing.
    ExportPlan(export_plan::Args),
    /// The JSON Schema (draft 2020-12) of the runbook file, for editors and CI linters.
    Schema,
    /// A shell completion script on stdout (e.g. `drs-runbook completions bash >
    /// /etc/bash_completion.d/drs-runbook`).
    Completions(shell::CompletionsArgs),
    /// A manual page in roff on stdout: drs-runbook(1), or a command's (`drs-runbook man
    /// failover | man -l -`).
    Man(shell::ManArgs),
    /// The simulated AWS cloud.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve the simulated cloud (DRS, Route 53, ELBv2, EC2 and the /_sim/ control API) over HTTP.
    Serve(sim_serve::Args),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    crate::signals::quiet_broken_pipe();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(exit::RUN_FAILED);
        }
    };
    let output = cli.output;
    let result = runtime.block_on(run(cli));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", crate::terminal::safe_lines(&e.render()));
            if output == Output::Json && !JSON_PRINTED.load(std::sync::atomic::Ordering::SeqCst) {
                println!("{}", error_document(&e));
            }
            ExitCode::from(e.exit_code())
        }
    }
}

pub use crate::report::json::SCHEMA_VERSION as JSON_SCHEMA_VERSION;

/// Whether this process has printed its JSON document (an error then adds none: stdout holds
/// exactly one document).
static JSON_PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints one JSON document on stdout, with `"schema_version"` at its top.
pub fn print_json(document: &impl serde::Serialize) {
    json_printed();
    println!("{}", json_document(document));
}

/// Notes that stdout holds this process's JSON document (printed by other means).
pub fn json_printed() {
    JSON_PRINTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// `document` as a JSON object carrying `"schema_version"`.
pub fn json_document(document: &impl serde::Serialize) -> serde_json::Value {
    // Every document is a struct or a `json!` object: both serialise to an object.
    let mut value = serde_json::to_value(document).expect("documents serialise");
    if let Some(object) = value.as_object_mut() {
        object.insert("schema_version".into(), JSON_SCHEMA_VERSION.into());
    }
    value
}

/// An error as a JSON document (`--output json`): the same sentence, hint and exit code.
pub fn error_document(error: &CliError) -> serde_json::Value {
    json_document(&serde_json::json!({
        "error": {
            "message": error.message(),
            "hint": error.hint(),
            "exit_code": error.exit_code(),
        }
    }))
}

/// A command line clap refuses: its message on stderr as always and, under `--output json`, the
/// error document on stdout with the same exit code (help and version print as usual).
fn usage_error(error: clap::Error) -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let wants_json = args.iter().any(|a| a == "--output=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--output" && w[1] == "json");
    if !error.use_stderr() || !wants_json {
        error.exit();
    }
    let _ = error.print();
    let code = error.exit_code();
    let rendered = error.render().to_string();
    // clap's sentence runs until the blank line before its usage.
    let message = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string();
    println!(
        "{}",
        json_document(&serde_json::json!({
            "error": {
                "message": message,
                "hint": "`drs-runbook --help` lists the commands and their options",
                "exit_code": code,
            }
        }))
    );
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

async fn run(cli: Cli) -> Result<u8, CliError> {
    match &cli.command {
        Command::Validate(args) => validate::run(&cli, args),
        Command::Plan(args) => plan::run(&cli, args).await,
        Command::Failover(args) => operate::failover(&cli, args).await,
        Command::Drill(args) => operate::drill(&cli, args).await,
        Command::Failback(args) => failback::run(&cli, args).await,
        Command::Approve(args) => runs::approve(&cli, args).await,
        Command::Resume(args) => recover::resume(&cli, args).await,
        Command::Rollback(args) => recover::rollback(&cli, args).await,
        Command::Retry(args) => recover::retry(&cli, args).await,
        Command::Skip(args) => recover::skip(&cli, args).await,
        Command::Cancel(args) => recover::cancel(&cli, args).await,
        Command::Status(args) => runs::status(&cli, args).await,
        Command::Show(args) => runs::show(&cli, args).await,
        Command::History(args) => history::run(&cli, args).await,
        Command::Report(args) => report::run(&cli, args).await,
        Command::Audit { command } => audit::run(&cli, command).await,
        Command::Db { command } => db::run(&cli, command).await,
        Command::Doctor(args) => doctor::run(&cli, args).await,
        Command::ExportPlan(args) => export_plan::run(&cli, args).await,
        Command::Schema => shell::schema(),
        Command::Completions(args) => shell::completions(args),
        Command::Man(args) => shell::man(args),
        Command::Sim {
            command: SimCommand::Serve(args),
        } => sim_serve::run(args).await,
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,aws_smithy_runtime=warn,aws_config=warn",
        // Not the credential and signing crates: their debug lines carry the access key ID
        // (`Credentials { access_key_id, .. }`, `Credential=AKIA.../` of the signature).
        _ => {
            "debug,aws_config=info,aws_credential_types=info,aws_sigv4=info,aws_runtime=info,aws_smithy_runtime=info,aws_smithy_runtime_api=info,hyper=info,hyper_util=info,h2=info,reqwest=info"
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRS_RUNBOOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
