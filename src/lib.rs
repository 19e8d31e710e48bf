//! # drs-runbook
//!
//! Disaster-recovery runbooks on AWS Elastic Disaster Recovery (DRS): resumable, auditable runs
//! across accounts and regions, plus a simulated AWS cloud to rehearse them on.
//!
//! # Layout
//!
//! Dependencies point down this list only (no module cycle); `sim` stands apart.
//!
//! ```text
//!   cli ─► engine ─► steps ─► run ─► aws, store, runbook
//!    │       └────────────────► run        (report, doctor: beside the engine, below cli)
//! ```
//!
//! - [`cli`]: clap definitions and the commands; parse, call the library, render (the edge).
//! - [`engine`]: the pure state machine (`machine`), the planner (`plan`), the rollback planner,
//!   RTO/RPO measurement over typed step outputs (`measure`), and the driver, the only I/O loop;
//!   it drives the steps and records the lifecycle of runs and steps (`engine::journal`).
//! - [`steps`]: one module per step kind, each holding its re-entrant `run` and its
//!   compensation (`compensate`: the rollback's loader and dispatch), and what several share:
//!   the health gate (`health`) and the launch settings read and checks (`launch_settings`, also
//!   used by `plan` and `doctor`). Steps never import the engine.
//! - [`run`]: the runtime below the steps: the journal of outputs and effects, the durable-call
//!   primitive (`run::call`, the only writer of intents and effects), the clock, the DRS job
//!   budget, the run's shared polling (`run::jobs` DescribeJobs, `run::instances` EC2 status
//!   checks) and its poll intervals (`run::poll`), progress lines, `StepCtx`,
//!   `StepFailure`, `Halt`, `RunOptions`, `Operation`, `Mode`.
//!   It imports neither the engine nor the steps.
//! - [`aws`]: the SDK adapters (DRS, Route 53, Route 53 ARC, ELBv2, EC2, IAM, ...) returning
//!   domain types; one `classify` of errors. No SDK type leaves this module.
//! - [`runbook`]: the runbook file model (serde) and its validation, every problem with file:line.
//! - [`store`]: the run store (SQLite via sqlx): runs, steps, effects, the audit hash chain,
//!   leases and claims; free functions that compose inside one transaction.
//! - [`report`]: the auditor's view: run reports (Markdown, JSON, self-contained HTML with an SVG
//!   timeline), the drill trend and the verification of the audit hash chain.
//! - [`doctor`]: read-only readiness checks of the cross-account setup (IAM, KMS, DRS) and
//!   the policies it needs.
//! - [`signals`]: SIGINT, SIGTERM and SIGHUP as one stream of stop requests (the driver stops at
//!   a safe point; exit 130 / 143 / 129), and a closed stdout pipe ending output quietly.
//! - [`terminal`]: strings from runbooks, operators, AWS and the environment made safe for a
//!   terminal (control characters escaped visibly); used by `cli` and the progress lines.
//! - [`sim`]: the simulated AWS cloud, an HTTP server that speaks the real wire protocols of DRS
//!   (restJson1), Route 53 (restXml), the Route 53 ARC cluster data plane (awsJson1_0), ELBv2
//!   (awsQuery) and EC2 (ec2Query), with a JSON control API under `/_sim/`.
//!
//! See `DESIGN.md` of the team for the contracts (CLI, exit codes, JSON output, simulator API).
#![forbid(unsafe_code)]

pub mod aws;
pub mod cli;
pub mod doctor;
pub mod engine;
pub mod report;
pub mod run;
pub mod runbook;
pub mod signals;
pub mod sim;
pub mod steps;
pub mod store;
pub mod terminal;
