//! Polling that costs per run, not per job or wave (issue 11 item 6), counted by the simulator
//! (`/_sim/stats`): the hold takes the launch dispositions preflight read, a job's log is read
//! only when DescribeJobs can no longer tell more, the health gates poll EC2 at the boot
//! phase's intervals through one shared DescribeInstanceStatus round.

use serde_json::Value;
use std::time::Duration;

use drs_runbook::run::poll::{BOOT, Phase};

use crate::support::{TestSim, mutations, step_output, time_of};

const SHOP: &str = include_str!("../fixtures/engine/three-waves.toml");
const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");

/// How many looks a phase gets in its first `seconds` at most (grid rounding only spaces them
/// further apart).
fn looks(phase: Phase, seconds: f64) -> u64 {
    let mut at = Duration::ZERO;
    let mut n = 0;
    while at.as_secs_f64() <= seconds {
        n += 1;
        at += phase.interval(at);
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chained_failover_reads_per_run_not_per_job_or_wave() {
    let sim = TestSim::start(150.0).await;
    sim.seed(SHOP).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.failover_text(dir.path(), SHOP).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let stats = sim.get("/_sim/stats").await;
    let calls = |operation: &str| stats["calls"][operation].as_u64().unwrap_or(0);

    // Launch configurations: preflight reads each of the 4 servers' once (DRS has no batch
    // read); the hold of the 3 servers of the held waves (app, web) reads none, and still
    // holds them and gives them back.
    assert_eq!(calls("drs:GetLaunchConfiguration"), 4, "{stats}");
    assert_eq!(mutations(&stats, "UpdateLaunchConfiguration").len(), 6);

    // Job logs: 3 jobs, each log read once when DescribeJobs showed every server past its
    // conversion, and once after the job's end (DRS's record, kept for the audit); never per
    // poll, although the run polled DescribeJobs many times meanwhile.
    let jobs = mutations(&stats, "StartRecovery").len() as u64;
    assert_eq!(jobs, 3);
    assert_eq!(calls("drs:DescribeJobLogItems"), 2 * jobs, "{stats}");
    assert!(calls("drs:DescribeJobs") > 2 * jobs, "{stats}");

    // Status checks: each wave's gate (db at its launch, app and web at their boot) polls at
    // the boot phase's intervals, sparse early and dense near the end: no more calls than the
    // looks the schedule allows in each gate's time (engine clock), one call a look for these
    // few instances.
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    let shown = crate::support::shown(&db, &run_id);
    let gate = |key: &str, start: &Value| {
        let output = step_output(&shown, key);
        let seconds =
            (time_of(&output["healthy_at"]) - time_of(start)).num_milliseconds() as f64 / 1000.0;
        assert!(seconds >= 0.0, "{key}: {output}");
        looks(BOOT, seconds)
    };
    let db_launch = step_output(&shown, "launch:db");
    let allowed = gate("launch:db", &db_launch["completed_at"])
        + gate(
            "boot:app",
            &step_output(&shown, "boot:app")["started"]["at"],
        )
        + gate(
            "boot:web",
            &step_output(&shown, "boot:web")["started"]["at"],
        );
    let polled = calls("ec2:DescribeInstanceStatus");
    assert!(
        (3..=allowed).contains(&polled),
        "{polled} DescribeInstanceStatus calls, the schedule allows {allowed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runs_health_gates_share_one_describe_instance_status_round() {
    use drs_runbook::run::instances::InstanceWatch;
    use drs_runbook::run::poll::DENSEST;
    let sim = TestSim::start(60.0).await;
    sim.seed(PAYMENTS).await;
    let runbook = drs_runbook::runbook::parse(PAYMENTS, "payments.toml").unwrap();
    let clients = drs_runbook::aws::connect(
        &runbook,
        &drs_runbook::aws::Connection::Simulated {
            endpoint_url: sim.endpoint.clone(),
        },
    )
    .await;
    // The source instances stand for two waves' booting instances.
    let ids = sim.source_instances("222222222222", "us-west-2").await;
    assert!(ids.len() >= 2, "{ids:?}");
    let (first, second) = ids.split_at(1);
    let side = &clients.source;
    let watch = InstanceWatch::default();
    let calls = || sim.calls("ec2:DescribeInstanceStatus");
    let now = chrono::Utc::now();
    // Two gates start on the same tick: the second one's instances were not asked for yet.
    assert_eq!(watch.status(side, now, first).await.unwrap().len(), 1);
    assert_eq!(calls().await, 1);
    let answered = watch.status(side, now, second).await.unwrap();
    assert_eq!(answered.len(), second.len());
    assert!(
        answered.iter().all(|s| s.state == "running"),
        "{answered:?}"
    );
    assert_eq!(calls().await, 2);
    // Every later tick: one round for both gates, not one each.
    for tick in 1..=3 {
        let at = now + chrono::Duration::from_std(DENSEST * tick).unwrap();
        watch.status(side, at, first).await.unwrap();
        watch.status(side, at, second).await.unwrap();
        assert_eq!(calls().await, 2 + u64::from(tick));
    }
    // A decided gate leaves the rounds; the other keeps its answers.
    watch.forget(side, first).await;
    let at = now + chrono::Duration::from_std(DENSEST * 4).unwrap();
    assert_eq!(
        watch.status(side, at, second).await.unwrap().len(),
        second.len()
    );
    assert_eq!(calls().await, 6);
    // The decided gate's instances were not in that round: asking for them costs a call.
    watch.status(side, at, first).await.unwrap();
    assert_eq!(calls().await, 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_after_a_long_approval_wait_reads_the_launch_configurations_again() {
    let sim = TestSim::start(150.0).await;
    sim.seed(SHOP).await;
    let dir = tempfile::tempdir().unwrap();
    let runbook = dir.path().join("shop.toml");
    let text = SHOP.replace("before = [\"dns_cutover\"]", "before = [\"recovery_job\"]");
    std::fs::write(&runbook, &text).unwrap();
    let db = dir.path().join("runs.db");
    let paused = sim
        .cli(
            &db,
            &["--output", "json", "failover", runbook.to_str().unwrap()],
        )
        .await;
    assert_eq!(paused.code, 3, "{paused:#?}");
    assert_eq!(paused.json()["status"], "paused");
    // Preflight read each server's launch configuration once.
    assert_eq!(sim.calls("drs:GetLaunchConfiguration").await, 4);
    // The operator approves the recoveries 20 minutes later (simulated): preflight's reading is
    // too old to stand for the launch configurations as they are, so the hold reads the 3 held
    // servers' again before it changes them.
    sim.skip(20.0 * 60.0).await;
    let run_id = paused.json()["run_id"].as_str().unwrap().to_string();
    let done = sim
        .cli(&db, &["--output", "json", "approve", &run_id])
        .await;
    assert_eq!(done.code, 0, "{done:#?}");
    assert_eq!(done.json()["status"], "succeeded");
    assert_eq!(sim.calls("drs:GetLaunchConfiguration").await, 4 + 3);
}
