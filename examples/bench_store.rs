//! Benchmark: `status` and `history` with many runs in the store, on SQLite or PostgreSQL.
//!
//! ```text
//! cargo run --release --example bench_store -- [--runs 10000] [--db PATH_OR_URL]
//! ```
//!
//! Fills a new store (default: a SQLite file in a temporary directory; `--db postgres://...`
//! for a PostgreSQL database, which should be empty) with N finished runs of 20 runbooks, each
//! with three steps and four events, through the store's own functions (100 runs per
//! transaction); then times the built `drs-runbook status` and `history` commands (`--output
//! json`, default 50 rows, and `history --runbook NAME`), five times each, as a user sees them:
//! process start, connecting and the schema check included. Prints the median of each.
//! The binary is the one built beside this example (`target/<profile>/drs-runbook`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use drs_runbook::store::{
    self, ClockKind, Database, Finish, Mode, NewRun, NewStep, Operation, RunId, RunStatus,
};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the example knows its path");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("examples live under the profile dir")
        .join("drs-runbook")
}

/// The median wall time of five runs of `drs-runbook --db DB --output json ARGS`.
fn median_of_five(db: &str, args: &[&str]) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let output = Command::new(binary())
                .arg("--db")
                .arg(db)
                .args(["--output", "json"])
                .args(args)
                .output()
                .expect("the binary runs");
            assert!(output.status.success(), "{args:?}: {output:?}");
            started.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

#[tokio::main]
async fn main() {
    let runs: usize = arg("--runs").and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let location = arg("--db").unwrap_or_else(|| {
        dir.path()
            .join("runs.db")
            .to_str()
            .expect("UTF-8 path")
            .to_owned()
    });
    let db = Database::open_location(&location)
        .await
        .expect("open the store");
    let started = Instant::now();
    let base = Utc::now() - TimeDelta::days(365);
    for chunk in 0..runs.div_ceil(100) {
        let mut tx = db.begin().await.expect("begin");
        for i in chunk * 100..((chunk + 1) * 100).min(runs) {
            let at = base + TimeDelta::minutes(i as i64);
            let name = format!("app-{:02}", i % 20);
            let new = NewRun {
                id: RunId::generate(),
                runbook_name: name.clone(),
                runbook_path: format!("runbooks/{name}.toml"),
                runbook_text: format!("name = \"{name}\"\n# {}\n", "x".repeat(2000)),
                operation: if i % 3 == 0 {
                    Operation::Failover
                } else {
                    Operation::Drill
                },
                mode: Mode::Planned,
                options: serde_json::json!({"yes": true}),
                operator: "bench".to_owned(),
                host: "bench-host".to_owned(),
                parent_run_id: None,
                clock: ClockKind::Real,
                declared_at: Some(at),
            };
            let run = store::runs::insert(&mut tx, &new, at)
                .await
                .expect("insert");
            let steps = [
                NewStep::new("preflight", "preflight", None, &[]),
                NewStep::new(
                    "recovery_job:w1",
                    "recovery_job",
                    Some("w1"),
                    &["preflight"],
                ),
                NewStep::new("cleanup", "cleanup", None, &["recovery_job:w1"]),
            ];
            store::steps::insert_all(&mut tx, &run.id, &steps)
                .await
                .expect("steps");
            for (n, kind) in ["run_created", "step_status", "step_status", "run_finished"]
                .iter()
                .enumerate()
            {
                store::events::append(
                    &mut tx,
                    &run.id,
                    at + TimeDelta::seconds(n as i64),
                    kind,
                    "bench",
                    None,
                    &serde_json::json!({"n": n}),
                )
                .await
                .expect("event");
            }
            let status = if i % 17 == 0 {
                RunStatus::Failed
            } else {
                RunStatus::Succeeded
            };
            let finish = Finish {
                status,
                rto_seconds: Some(1800.0 + i as f64 % 600.0),
                rpo_seconds: Some(30.0),
                error: None,
            };
            store::runs::finish(&mut tx, &run.id, &finish, at + TimeDelta::minutes(30))
                .await
                .expect("finish");
        }
        tx.commit().await.expect("commit");
    }
    let engine = format!("{:?}", db.engine());
    db.close().await;
    println!(
        "{engine}: {runs} runs written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for args in [
        &["status"][..],
        &["history"][..],
        &["history", "--runbook", "app-07"][..],
    ] {
        println!(
            "{engine}: `{}` median of 5: {:.0} ms",
            args.join(" "),
            median_of_five(&location, args).as_secs_f64() * 1000.0
        );
    }
}
