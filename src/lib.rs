//! # drs-runbook
//!
//! Disaster-recovery runbooks on AWS Elastic Disaster Recovery (DRS): resumable, auditable runs
//! across accounts and regions, plus a simulated AWS cloud to rehearse them on.
//!
//! # Layout
//!
//! - [`cli`]: clap definitions and one file per command; parse, call the library, render.
//! - [`runbook`]: the runbook file model (serde) and its validation, every problem with file:line.
//! - [`store`]: the run store (SQLite via sqlx): runs, steps, effects, the audit hash chain,
//!   leases and claims; free functions that compose inside one transaction.
//! - [`report`]: the auditor's view: run reports (Markdown, JSON, self-contained HTML with an SVG
//!   timeline), the drill trend and the verification of the audit hash chain.
//! - [`doctor`]: read-only readiness checks of the cross-account setup (IAM, KMS, DRS) and
//!   the policies it needs.
//! - [`sim`]: the simulated AWS cloud, an HTTP server that speaks the real wire protocols of DRS
//!   (restJson1), Route 53 (restXml) and ELBv2 (awsQuery), with a JSON control API under `/_sim/`.
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
pub mod sim;
pub mod steps;
pub mod store;
