//! Convert ahead, boot in order (issue 11 item 4): every wave's recovery job starts at once, the
//! waves with `after` dependencies are launched STOPPED and started (EC2 StartInstances) only
//! once their `after` waves passed the health gate. The launch configurations the engine holds
//! end the run as they began (also through a rollback), a resumed boot never starts an
//! instance twice, and `[recovery] convert_ahead = false` gives back the sequential run.
//!
//! Evidence comes from both sides: the simulator's call log and jobs (its clock), and the run's
//! step outputs (the engine's clock), each compared only with itself.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{
    TestSim, cli_child, launch_dispositions, mutations, shown, step_output, time_of,
};

const SHOP: &str = include_str!("../fixtures/engine/three-waves.toml");
const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
const SHOP_TARGET: (&str, &str) = ("555555555555", "eu-central-1");
const SHOP_SERVERS: [&str; 4] = [
    "s-00000000000000db1",
    "s-0000000000000app1",
    "s-0000000000000app2",
    "s-0000000000000web1",
];
const PAYMENTS_TARGET: (&str, &str) = ("222222222222", "us-west-2");
const PAYMENTS_APP: [&str; 2] = ["s-234567890abcdef01", "s-34567890abcdef012"];

/// The step each recovery job belongs to (its `drs-runbook:step` tag), and when it was created
/// and when it ended.
async fn job_times(
    sim: &TestSim,
    (account, region): (&str, &str),
) -> BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)> {
    let jobs = sim
        .drs(account, region)
        .describe_jobs()
        .send()
        .await
        .unwrap();
    jobs.items()
        .iter()
        .filter_map(|j| {
            let step = j.tags()?.get("drs-runbook:step")?.clone();
            let created = time_of(&json!(j.creation_date_time()?));
            let end = time_of(&json!(j.end_date_time()?));
            Some((step, (created, end)))
        })
        .collect()
}

/// The EC2 instance recovered from each source server.
async fn instances_by_server(
    sim: &TestSim,
    (account, region): (&str, &str),
) -> BTreeMap<String, String> {
    let found = sim
        .drs(account, region)
        .describe_recovery_instances()
        .send()
        .await
        .unwrap();
    found
        .items()
        .iter()
        .filter_map(|i| {
            Some((
                i.source_server_id()?.to_string(),
                i.ec2_instance_id()?.to_string(),
            ))
        })
        .collect()
}

/// When StartInstances was sent for the instance (the simulator's clock), once.
fn started_at(stats: &Value, instance: &str) -> DateTime<Utc> {
    let starts: Vec<Value> = mutations(stats, "StartInstances")
        .into_iter()
        .filter(|m| {
            m["params"]["instance_ids"]
                .as_array()
                .unwrap()
                .contains(&json!(instance))
        })
        .collect();
    assert_eq!(starts.len(), 1, "{instance} started once: {starts:#?}");
    time_of(&starts[0]["at"])
}

/// The latest LAUNCH_END of a job's log (the instances run, or are stopped, from then on).
async fn last_launch_end(
    sim: &TestSim,
    (account, region): (&str, &str),
    step: &str,
) -> DateTime<Utc> {
    let drs = sim.drs(account, region);
    let jobs = drs.describe_jobs().send().await.unwrap();
    let mut last = None;
    for job in jobs.items() {
        if job
            .tags()
            .and_then(|t| t.get("drs-runbook:step"))
            .map(String::as_str)
            != Some(step)
        {
            continue;
        }
        let log = drs
            .describe_job_log_items()
            .job_id(job.job_id())
            .send()
            .await
            .unwrap();
        for item in log.items() {
            if item.event().map(|e| e.as_str()) == Some("LAUNCH_END") {
                let at = time_of(&json!(item.log_date_time().unwrap()));
                last = Some(last.map_or(at, |l: DateTime<Utc>| l.max(at)));
            }
        }
    }
    last.unwrap_or_else(|| panic!("{step} has a LAUNCH_END"))
}

/// Runs a failover of `text` (written to a file in `dir`) and returns its JSON report.
async fn failover(sim: &TestSim, dir: &Path, text: &str) -> Value {
    let run = sim.failover_text(dir, text).await;
    assert_eq!(run.code, 0, "{run:#?}");
    run.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chained_failover_converts_every_wave_ahead_and_boots_each_after_its_predecessors_gate() {
    // Speed 150, not 600: the hold of the later waves' launch settings takes some real
    // milliseconds, and the assertion that every wave's recovery started before the first
    // wave's job ended must not depend on the machine's load.
    let sim = TestSim::start(150.0).await;
    sim.seed(SHOP).await;
    let before = launch_dispositions(&sim, SHOP_TARGET.0, SHOP_TARGET.1, &SHOP_SERVERS).await;
    assert!(before.values().all(|d| d == "STARTED"), "{before:?}");
    let dir = tempfile::tempdir().unwrap();
    let report = failover(&sim, dir.path(), SHOP).await;
    let stats = sim.get("/_sim/stats").await;

    // Every wave's recovery started before the first wave's job had even ended.
    let jobs = job_times(&sim, SHOP_TARGET).await;
    let recoveries = mutations(&stats, "StartRecovery");
    assert_eq!(recoveries.len(), 3, "one job per wave");
    for r in &recoveries {
        assert!(
            time_of(&r["at"]) < jobs["recovery_job:db"].1,
            "{r} before db's job ended"
        );
    }

    // Held waves (app, web) were launched STOPPED: the hold came before their StartRecovery,
    // and db (no `after`) was never touched.
    let updates = mutations(&stats, "UpdateLaunchConfiguration");
    for server in &SHOP_SERVERS[1..] {
        let mine: Vec<&Value> = updates
            .iter()
            .filter(|u| u["params"]["sourceServerID"] == *server)
            .collect();
        let dispositions: Vec<&str> = mine
            .iter()
            .map(|u| u["params"]["launchDisposition"].as_str().unwrap())
            .collect();
        assert_eq!(dispositions, ["STOPPED", "STARTED"], "{server}");
        let recovery = recoveries
            .iter()
            .find(|r| r["params"]["sourceServers"].to_string().contains(server))
            .unwrap();
        assert!(
            time_of(&mine[0]["at"]) <= time_of(&recovery["at"]),
            "{server} held before its recovery"
        );
    }
    assert!(
        !updates
            .iter()
            .any(|u| u["params"]["sourceServerID"] == SHOP_SERVERS[0])
    );

    // Each held wave started only after its `after` wave passed the gate. Simulator clock:
    // a predecessor's instances need at least 60 s of status checks once running.
    let instances = instances_by_server(&sim, SHOP_TARGET).await;
    assert_eq!(
        mutations(&stats, "StartInstances").len(),
        2,
        "one StartInstances per held wave"
    );
    let db_running = last_launch_end(&sim, SHOP_TARGET, "recovery_job:db").await;
    let app_started = started_at(&stats, &instances["s-0000000000000app1"]);
    assert_eq!(
        app_started,
        started_at(&stats, &instances["s-0000000000000app2"])
    );
    let web_started = started_at(&stats, &instances["s-0000000000000web1"]);
    assert!(
        app_started >= db_running + Duration::seconds(60),
        "app started {app_started}, db running {db_running}"
    );
    assert!(
        web_started >= app_started + Duration::seconds(60),
        "web started {web_started}, app started {app_started}"
    );
    // Engine clock: the run's own records say the same.
    let run_id = report["run_id"].as_str().unwrap();
    let shown = shown(&dir.path().join("runs.db"), run_id);
    let db_healthy = time_of(&step_output(&shown, "launch:db")["healthy_at"]);
    let app = step_output(&shown, "boot:app");
    let web = step_output(&shown, "boot:web");
    assert!(time_of(&app["started"]["at"]) >= db_healthy);
    assert!(time_of(&web["started"]["at"]) >= time_of(&app["healthy_at"]));
    assert!(
        step_output(&shown, "launch:app")["healthy_at"].is_null(),
        "a held wave's launch does not gate"
    );

    // The consistency figure, and the launch configurations as they began.
    // Every wave's snapshot was taken while the first wave's job was still running.
    let spread = report["snapshot_spread_seconds"].as_f64().unwrap();
    let (db_created, db_ended) = jobs["recovery_job:db"];
    let db_job = (db_ended - db_created).num_milliseconds() as f64 / 1000.0;
    assert!(
        spread < db_job,
        "snapshots within {spread} s, the db job took {db_job} s"
    );
    let audit = sim
        .cli(
            &dir.path().join("runs.db"),
            &["report", run_id, "--format", "json"],
        )
        .await;
    assert_eq!(audit.code, 0, "{audit:#?}");
    assert_eq!(
        audit.json()["objectives"]["snapshot_spread_seconds"].as_f64(),
        Some(spread),
        "the report carries the same consistency figure"
    );
    let after = launch_dispositions(&sim, SHOP_TARGET.0, SHOP_TARGET.1, &SHOP_SERVERS).await;
    assert_eq!(after, before);

    // `[recovery] convert_ahead = false`: today's sequential run, nothing held, nothing booted.
    let sequential_sim = TestSim::start(150.0).await;
    sequential_sim.seed(SHOP).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{SHOP}\n[recovery]\nconvert_ahead = false\n");
    let report = failover(&sequential_sim, dir.path(), &text).await;
    let stats = sequential_sim.get("/_sim/stats").await;
    assert!(mutations(&stats, "UpdateLaunchConfiguration").is_empty());
    assert!(mutations(&stats, "StartInstances").is_empty());
    assert!(
        !report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "boot")
    );
    let jobs = job_times(&sequential_sim, SHOP_TARGET).await;
    let recoveries = mutations(&stats, "StartRecovery");
    let web = recoveries
        .iter()
        .find(|r| r["params"]["sourceServers"].to_string().contains("web1"))
        .unwrap();
    assert!(
        time_of(&web["at"]) > jobs["recovery_job:app"].1,
        "web recovered after app's job"
    );
    let sequential_spread = report["snapshot_spread_seconds"].as_f64().unwrap();
    let (db_created, db_ended) = jobs["recovery_job:db"];
    let db_job = (db_ended - db_created).num_milliseconds() as f64 / 1000.0;
    assert!(
        sequential_spread > db_job,
        "sequential: snapshots within {sequential_spread} s, more than the db job's {db_job} s (ahead: {spread} s)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_run_gives_the_held_launch_configurations_back() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    sim.faults(json!([{"kind": "api_error", "service": "drs", "operation": "StartRecovery", "error": "AccessDeniedException", "count": 1}])).await;
    let dir = tempfile::tempdir().unwrap();
    let runbook = dir.path().join("payments.toml");
    std::fs::write(&runbook, PAYMENTS).unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.run(&db, "failover", runbook.to_str().unwrap()).await;
    assert_eq!(run.code, 1, "{run:#?}");
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    // The failed run stopped before the app wave's launch: its servers are still held.
    let held = launch_dispositions(&sim, PAYMENTS_TARGET.0, PAYMENTS_TARGET.1, &PAYMENTS_APP).await;
    assert!(held.values().all(|d| d == "STOPPED"), "{held:?}");
    let rollback = sim.run(&db, "rollback", &run_id).await;
    assert_eq!(rollback.code, 0, "{rollback:#?}");
    let after =
        launch_dispositions(&sim, PAYMENTS_TARGET.0, PAYMENTS_TARGET.1, &PAYMENTS_APP).await;
    assert!(after.values().all(|d| d == "STARTED"), "{after:?}");
    let stats = sim.get("/_sim/stats").await;
    // No recovered instance was booted (the rollback restarts only the fenced source
    // instances, in the source account).
    let booted: Vec<Value> = mutations(&stats, "StartInstances")
        .into_iter()
        .filter(|m| m["account"] == PAYMENTS_TARGET.0)
        .collect();
    assert!(booted.is_empty(), "nothing was booted: {booted:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_after_a_kill_in_the_boot_phase_starts_no_instance_twice() {
    let sim = TestSim::start(600.0).await;
    sim.seed(SHOP).await;
    let dir = tempfile::tempdir().unwrap();
    let runbook = dir.path().join("shop.toml");
    std::fs::write(&runbook, SHOP).unwrap();
    let db = dir.path().join("runs.db");
    let mut child = cli_child(
        &db,
        &sim.endpoint,
        &["failover", runbook.to_str().unwrap(), "--yes"],
    );
    // Killed (SIGKILL) as soon as the first held wave's StartInstances reached EC2.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while sim.calls("ec2:StartInstances").await == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the failover ended before its boot phase"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no StartInstances within 2 minutes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    let run_id = stderr
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("run "))
        .unwrap()
        .to_string();
    assert_eq!(sim.calls("ec2:StartInstances").await, 1);
    let resumed = sim.run(&db, "resume", &run_id).await;
    assert_eq!(resumed.code, 0, "{resumed:#?}");
    assert_eq!(resumed.json()["status"], "succeeded");
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(
        stats["calls"]["ec2:StartInstances"].as_u64(),
        Some(2),
        "app and web started once each, the started app wave not again"
    );
    let instances = instances_by_server(&sim, SHOP_TARGET).await;
    for server in &SHOP_SERVERS[1..] {
        started_at(&stats, &instances[*server]);
    }
    let after = launch_dispositions(&sim, SHOP_TARGET.0, SHOP_TARGET.1, &SHOP_SERVERS).await;
    assert!(after.values().all(|d| d == "STARTED"), "{after:?}");
}

#[test]
fn a_convert_ahead_that_is_not_a_boolean_is_a_runbook_problem_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payments.toml");
    let text = format!("{PAYMENTS}\n[recovery]\nconvert_ahead = \"no\"\n");
    let line = text
        .lines()
        .position(|l| l.starts_with("convert_ahead"))
        .unwrap()
        + 1;
    std::fs::write(&path, &text).unwrap();
    let run = crate::support::drs_runbook(
        &dir.path().join("runs.db"),
        None,
        &["validate", path.to_str().unwrap()],
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains(&format!("payments.toml:{line}:")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("recovery.convert_ahead"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("boolean"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runs_steps_share_one_describe_jobs_for_all_their_open_jobs() {
    use drs_runbook::run::jobs::{FRESH, JobWatch};
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
    let drs = sim.drs(PAYMENTS_TARGET.0, PAYMENTS_TARGET.1);
    let mut jobs = Vec::new();
    for server in ["s-1234567890abcdef0", "s-234567890abcdef01"] {
        let started = drs
            .start_recovery()
            .source_servers(
                aws_sdk_drs::types::StartRecoveryRequestSourceServer::builder()
                    .source_server_id(server)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        jobs.push(started.job().unwrap().job_id().to_string());
    }
    let watch = JobWatch::default();
    let side = &clients.target;
    let now = Utc::now();
    let calls = || sim.calls("drs:DescribeJobs");
    // Two waves' steps ask at the same time: the second gets the first one's answer.
    assert_eq!(
        watch.describe(side, now, &jobs[..1]).await.unwrap().len(),
        1
    );
    assert_eq!(calls().await, 1);
    // A job not in the last answer: one call, for every job any step waits for.
    assert_eq!(
        watch.describe(side, now, &jobs[1..]).await.unwrap().len(),
        1
    );
    assert_eq!(calls().await, 2);
    let both = watch.describe(side, now, &jobs).await.unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(calls().await, 2, "answered from the shared call");
    // Older than FRESH: asked again.
    let later = now + chrono::Duration::from_std(FRESH).unwrap();
    watch.describe(side, later, &jobs[..1]).await.unwrap();
    assert_eq!(calls().await, 3);
}
