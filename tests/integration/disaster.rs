//! The real disaster (issue 12): the production guard, the model's limits on ID lists and jobs,
//! a source region that is down, DRS's phase retries, FAST recovery and stuck jobs. The built
//! binary drives the simulator through the real SDK clients; the assertions read the world
//! back through the SDK and `/_sim/stats`.

use serde_json::{Value, json};

use crate::support::{TestSim, mutations};

const REPORTING: &str = include_str!("../../runbooks/reporting-drill.toml");
const ACCOUNT: &str = "444444444444";
const TARGET: &str = "eu-central-1";

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_after_a_succeeded_failover_is_refused_and_production_keeps_running() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let runbook = "runbooks/reporting-drill.toml";
    let failover = sim.run(&db, "failover", runbook).await;
    assert_eq!(failover.code, 0, "{failover:#?}");
    let failover_id = failover.json()["run_id"].as_str().unwrap().to_string();
    let drs = sim.drs(ACCOUNT, TARGET);
    let production: Vec<String> = drs
        .describe_recovery_instances()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|i| i.recovery_instance_id().unwrap().to_string())
        .collect();
    assert_eq!(production.len(), 2);

    // Make another preflight check fail too: the guard runs first and wins.
    sim.faults(json!([{"kind": "replication_lag", "source_server_id": "s-4567890abcdef0123", "lag_seconds": 7200}])).await;
    let starts_before = mutations(&sim.get("/_sim/stats").await, "StartRecovery").len();
    for operation in ["drill", "failover"] {
        let refused = sim
            .cli(&db, &["--output", "json", operation, runbook, "--yes"])
            .await;
        assert_eq!(refused.code, 4, "{operation}: {refused:#?}");
        let message = refused.stderr.as_str();
        assert!(message.contains("refused"), "{message}");
        for id in &production {
            assert!(message.contains(id.as_str()), "{message}");
        }
        assert!(
            message.contains(&failover_id),
            "names the run that launched them: {message}"
        );
        assert!(message.contains("--override-production-guard"), "{message}");
        assert!(
            !message.contains("lag"),
            "the guard wins over the lag check: {message}"
        );
    }
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(mutations(&stats, "StartRecovery").len(), starts_before);
    let live = drs.describe_recovery_instances().send().await.unwrap();
    assert_eq!(live.items().len(), 2);
    assert!(live.items().iter().all(|i| i.is_drill() == Some(false)
        && i.ec2_instance_state().map(|s| s.as_str()) == Some("RUNNING")));

    // The guard's scenario: A1 is back (the fence stopped it) and replicates into B1 again.
    let a1 = sim.source_instances(ACCOUNT, TARGET).await;
    sim.ec2(ACCOUNT, "eu-west-1")
        .start_instances()
        .set_instance_ids(Some(a1))
        .send()
        .await
        .unwrap();
    sim.skip(60.0).await;

    // The commander who means it: the override is logged, and the drill replaces production.
    assert_eq!(sim.delete("/_sim/faults").await, 200);
    let overridden = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "drill",
                runbook,
                "--yes",
                "--override-production-guard",
            ],
        )
        .await;
    assert_eq!(overridden.code, 0, "{overridden:#?}");
    assert!(
        overridden.stderr.contains("--override-production-guard")
            && production
                .iter()
                .all(|id| overridden.stderr.contains(id.as_str())),
        "{}",
        overridden.stderr
    );
    let drill_id = overridden.json()["run_id"].as_str().unwrap().to_string();
    let store = drs_runbook::store::Database::open(&db).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let events = drs_runbook::store::events::for_run(&mut conn, &drill_id.parse().unwrap())
        .await
        .unwrap();
    let logged = events
        .iter()
        .find(|e| e.kind == "production_guard_overridden")
        .expect("the override is in the audit trail");
    assert_eq!(logged.actor, "test-operator");
    assert_eq!(logged.data["instances"].as_array().unwrap().len(), 2);
    assert_eq!(
        logged.data["instances"][0]["created_by"]["run_id"],
        failover_id.as_str()
    );
    let after: Value = serde_json::to_value(
        drs.describe_recovery_instances()
            .send()
            .await
            .unwrap()
            .items()
            .iter()
            .map(|i| i.recovery_instance_id().unwrap().to_string())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for id in &production {
        assert!(
            !after.as_array().unwrap().iter().any(|a| a == id.as_str()),
            "{after}"
        );
    }
}

/// A drill runbook of `waves` waves of 100 servers each, in one account (eu-west-1 ->
/// eu-central-1).
fn big_runbook(waves: usize) -> String {
    let mut text = String::from(
        "name = \"big\"\n\n[objectives]\nrto = \"4h\"\nrpo = \"1h\"\n\n[source]\naccount_id = \"444444444444\"\nregion = \"eu-west-1\"\n\n[target]\naccount_id = \"444444444444\"\nregion = \"eu-central-1\"\n",
    );
    for w in 0..waves {
        let servers: Vec<String> = (0..100)
            .map(|i| format!("\"s-{:017x}\"", 0xb000_0000u64 + (w * 100 + i) as u64))
            .collect();
        text.push_str(&format!(
            "\n[[wave]]\nname = \"w{w}\"\nservers = [{}]\n",
            servers.join(", ")
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_300_server_drill_cleans_up_with_every_call_inside_the_models_limits() {
    let sim = TestSim::start(600.0).await;
    let text = big_runbook(3);
    sim.seed(&text).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let path = dir.path().join("big.toml");
    std::fs::write(&path, &text).unwrap();
    let drill = sim.run(&db, "drill", path.to_str().unwrap()).await;
    assert_eq!(drill.code, 0, "{drill:#?}");
    let stats = sim.get("/_sim/stats").await;
    // The simulator refuses an over-limit list (ValidationException) or job (quota): the run
    // succeeded, so none was sent; and the cleanup terminated all 300 in jobs of at most 100.
    let terminations = mutations(&stats, "TerminateRecoveryInstances");
    let sizes: Vec<usize> = terminations
        .iter()
        .map(|m| m["params"]["recoveryInstanceIDs"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 300, "{sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    let left = sim
        .drs(ACCOUNT, TARGET)
        .describe_recovery_instances()
        .send()
        .await
        .unwrap();
    assert!(left.items().is_empty(), "{} left", left.items().len());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_refuses_id_lists_over_the_models_limits() {
    let sim = TestSim::start(1.0).await;
    sim.seed(REPORTING).await;
    let drs = sim.drs(ACCOUNT, TARGET);
    let ids: Vec<String> = (0..201).map(|i| format!("i-{:017x}", i + 1)).collect();
    let err = drs
        .describe_recovery_instances()
        .filters(
            aws_sdk_drs::types::DescribeRecoveryInstancesRequestFilters::builder()
                .set_recovery_instance_ids(Some(ids.clone()))
                .build(),
        )
        .send()
        .await
        .expect_err("201 IDs are over the model's 200");
    assert_eq!(
        aws_sdk_drs::error::ProvideErrorMetadata::code(&err),
        Some("ValidationException"),
        "{err:?}"
    );
    let err = drs
        .terminate_recovery_instances()
        .set_recovery_instance_ids(Some(ids))
        .send()
        .await
        .expect_err("201 IDs are over the model's 200");
    assert_eq!(
        aws_sdk_drs::error::ProvideErrorMetadata::code(&err),
        Some("ValidationException"),
        "{err:?}"
    );
    // 101 servers in one job: refused for a LAUNCH job (and a TERMINATE job holds servers too).
    let servers: Vec<_> = (0..101)
        .map(|i| {
            aws_sdk_drs::types::StartRecoveryRequestSourceServer::builder()
                .source_server_id(format!("s-{:017x}", i + 1))
                .build()
                .unwrap()
        })
        .collect();
    let err = drs
        .start_recovery()
        .set_source_servers(Some(servers))
        .send()
        .await
        .expect_err("a job holds at most 100 servers");
    assert_eq!(
        aws_sdk_drs::error::ProvideErrorMetadata::code(&err),
        Some("ServiceQuotaExceededException"),
        "{err:?}"
    );
    // A TERMINATE job of 101 instances likewise (within the 200 IDs of the list).
    let ids: Vec<String> = (0..101).map(|i| format!("i-{:017x}", i + 1)).collect();
    let err = drs
        .terminate_recovery_instances()
        .set_recovery_instance_ids(Some(ids))
        .send()
        .await
        .expect_err("a job holds at most 100 servers");
    assert_eq!(
        aws_sdk_drs::error::ProvideErrorMetadata::code(&err),
        Some("ServiceQuotaExceededException"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_source_region_down_an_unplanned_failover_succeeds_without_calling_it() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    sim.faults(json!([{"kind": "source_outage", "account_id": ACCOUNT, "region": "eu-west-1"}]))
        .await;
    sim.skip(30.0 * 60.0).await;

    // What DRS shows after 30 minutes: agents unseen, lag growing, DISCONNECTED.
    let servers = sim
        .drs(ACCOUNT, TARGET)
        .describe_source_servers()
        .send()
        .await
        .unwrap();
    for s in servers.items() {
        let info = s.data_replication_info().unwrap();
        assert_eq!(
            info.data_replication_state().map(|s| s.as_str()),
            Some("DISCONNECTED")
        );
        assert_eq!(
            info.data_replication_error()
                .and_then(|e| e.error())
                .map(|e| e.as_str()),
            Some("AGENT_NOT_SEEN")
        );
        let lag = info.lag_duration().unwrap();
        assert!(
            lag.starts_with("PT30M") || lag.starts_with("PT31M"),
            "{lag}"
        );
    }
    // No snapshot is taken after the outage began (half an hour ago).
    let now =
        chrono::DateTime::parse_from_rfc3339(sim.get("/_sim/clock").await["now"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    let snapshots = sim
        .drs(ACCOUNT, TARGET)
        .describe_recovery_snapshots()
        .source_server_id("s-4567890abcdef0123")
        .order(aws_sdk_drs::types::RecoverySnapshotsOrder::Desc)
        .send()
        .await
        .unwrap();
    let latest =
        chrono::DateTime::parse_from_rfc3339(snapshots.items()[0].timestamp().unwrap()).unwrap();
    assert!(
        now - latest.with_timezone(&chrono::Utc) >= chrono::Duration::minutes(30),
        "latest snapshot {latest} at {now}"
    );
    // The failed region answers 503 to DRS and ELBv2.
    let err = sim
        .drs(ACCOUNT, "eu-west-1")
        .describe_source_servers()
        .send()
        .await
        .expect_err("the region is down");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(503),
        "{err:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let runbook = "runbooks/reporting-drill.toml";
    let before = sim.get("/_sim/stats").await["scopes"][format!("{ACCOUNT}/eu-west-1")]
        .as_u64()
        .unwrap_or(0);
    // The test's own probe is counted, refused as it was (the SDK retried the 503s).
    assert!(before >= 1, "{before}");

    // Planned mode: preflight fails, with the hint to use --mode unplanned.
    let planned = sim.run(&db, "failover", runbook).await;
    assert_eq!(planned.code, 1, "{planned:#?}");
    assert_eq!(planned.json()["status"], "failed");
    assert!(
        planned.stdout.contains("--mode unplanned") || planned.stderr.contains("--mode unplanned"),
        "{planned:#?}"
    );
    assert!(mutations(&sim.get("/_sim/stats").await, "StartRecovery").is_empty());

    let unplanned = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "failover",
                runbook,
                "--mode",
                "unplanned",
                "--yes",
            ],
        )
        .await;
    assert_eq!(unplanned.code, 0, "{unplanned:#?}");
    let report = unplanned.json();
    assert_eq!(report["status"], "succeeded");
    let rpo = report["rpo_seconds"].as_f64().unwrap();
    assert!(
        rpo >= 1800.0,
        "RPO {rpo}s covers the 30 minutes the source was down"
    );
    // The expected data loss was said in preflight, before anything was launched.
    let said = unplanned
        .stderr
        .lines()
        .position(|l| l.contains("expected data loss up to"))
        .unwrap_or_else(|| panic!("{}", unplanned.stderr));
    let loss: u64 = unplanned
        .stderr
        .lines()
        .nth(said)
        .unwrap()
        .split("expected data loss up to ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(loss >= 1800, "{loss}");
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(
        stats["scopes"][format!("{ACCOUNT}/eu-west-1")]
            .as_u64()
            .unwrap_or(0),
        before,
        "no call to the failed region: {}",
        stats["scopes"]
    );
    assert!(
        stats["scopes"][format!("{ACCOUNT}/{TARGET}")]
            .as_u64()
            .unwrap()
            > 0
    );
    let live = sim
        .drs(ACCOUNT, TARGET)
        .describe_recovery_instances()
        .send()
        .await
        .unwrap();
    assert_eq!(live.items().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversion_drs_retried_once_passes_and_its_failed_attempt_is_recorded() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    sim.faults(json!([
        {"kind": "conversion_failure", "source_server_id": "s-4567890abcdef0123", "attempts": 1},
        {"kind": "launch_failure", "source_server_id": "s-567890abcdef01234", "attempts": 1}
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    // The retried phases take minutes of their own: an RTO that load cannot make this miss.
    let path = dir.path().join("reporting.toml");
    std::fs::write(&path, REPORTING.replace("rto = \"20m\"", "rto = \"4h\"")).unwrap();
    let drill = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "drill",
                path.to_str().unwrap(),
                "--yes",
                "--keep",
            ],
        )
        .await;
    assert_eq!(drill.code, 0, "{drill:#?}");
    // DRS's log shows the failed attempts with their counters, then the success.
    let drs = sim.drs(ACCOUNT, TARGET);
    let job = drs.describe_jobs().send().await.unwrap().items()[0].clone();
    let log = drs
        .describe_job_log_items()
        .job_id(job.job_id())
        .send()
        .await
        .unwrap();
    let failed: Vec<_> = log
        .items()
        .iter()
        .filter(|i| {
            matches!(
                i.event().map(|e| e.as_str()),
                Some("CONVERSION_FAIL" | "LAUNCH_FAILED")
            )
        })
        .collect();
    assert_eq!(failed.len(), 2, "{log:#?}");
    for f in &failed {
        let data = f.event_data().unwrap();
        assert_eq!((data.attempt_count(), data.max_attempts_count()), (1, 2));
    }
    assert!(
        job.participating_servers()
            .iter()
            .all(|s| s.launch_status().map(|l| l.as_str()) == Some("LAUNCHED"))
    );
    let instances = drs.describe_recovery_instances().send().await.unwrap();
    assert_eq!(instances.items().len(), 2);
    // The step recorded the retried attempt rather than failing on it.
    let run_id = drill.json()["run_id"].as_str().unwrap().to_string();
    let show = sim.cli(&db, &["--output", "json", "show", &run_id]).await;
    assert!(
        show.stdout.contains("CONVERSION_FAIL attempt 1/2"),
        "{}",
        show.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_job_fails_its_step_at_the_deadline_and_retry_continues_once_it_moves() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    sim.faults(json!([{"kind": "stuck_job", "source_server_id": "s-4567890abcdef0123"}]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    // The runbook's deadline, far shorter than the 2 h default.
    let path = dir.path().join("reporting.toml");
    std::fs::write(
        &path,
        REPORTING.replace(
            "servers = [\"s-4567890abcdef0123\", \"s-567890abcdef01234\"]",
            "servers = [\"s-4567890abcdef0123\", \"s-567890abcdef01234\"]\nconversion_timeout = \"10m\"",
        ),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("conversion_timeout")
    );
    let drill = sim.run(&db, "drill", path.to_str().unwrap()).await;
    assert_eq!(drill.code, 1, "{drill:#?}");
    let report = drill.json();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "snapshot_conversion")
        .unwrap()
        .clone();
    assert_eq!(step["status"], "failed");
    let job_id = sim
        .drs(ACCOUNT, TARGET)
        .describe_jobs()
        .send()
        .await
        .unwrap()
        .items()[0]
        .job_id()
        .to_string();
    let error = report["error"].as_str().unwrap_or_default().to_string() + &drill.stderr;
    assert!(
        error.contains(&job_id),
        "the failure names the job: {error}"
    );
    assert!(error.contains("s-4567890abcdef0123"), "{error}");
    assert!(
        error.contains("within 10m") && error.contains("conversion_timeout"),
        "{error}"
    );
    // It failed at the runbook's deadline (simulated time), not at the 2 h default.
    let stored = crate::support::stored_step(&db, &run_id, step["key"].as_str().unwrap()).await;
    let took = stored.finished_at.unwrap() - stored.started_at.unwrap();
    assert!(
        took >= chrono::Duration::minutes(10) && took < chrono::Duration::minutes(60),
        "the step failed after {took}"
    );

    // The job moves again: `retry` continues and the drill ends as it should.
    assert_eq!(sim.delete("/_sim/faults").await, 200);
    let retried = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "retry",
                &run_id,
                "--step",
                step["key"].as_str().unwrap(),
                "--yes",
            ],
        )
        .await;
    let report = retried.json();
    assert_eq!(report["status"], "succeeded", "{retried:#?}");
    // The stuck minutes count in the drill's RTO: a missed objective exits 1 (a drill).
    let met = report["objectives"]["rto_met"].as_bool().unwrap();
    assert_eq!(retried.code, if met { 0 } else { 1 }, "{retried:#?}");
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(
        mutations(&stats, "StartRecovery").len(),
        1,
        "no second launch"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_past_its_launch_timeout_fails_naming_the_job_and_retry_finishes_it() {
    let sim = TestSim::start(60.0).await;
    sim.seed(REPORTING).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    // Booting takes DRS 2 to 5 minutes after LAUNCH_START: a 30-second launch deadline passes
    // first (at 60x, a window of seconds of real time: no load makes the job end first).
    let path = dir.path().join("reporting.toml");
    std::fs::write(
        &path,
        REPORTING.replace(
            "servers = [\"s-4567890abcdef0123\", \"s-567890abcdef01234\"]",
            "servers = [\"s-4567890abcdef0123\", \"s-567890abcdef01234\"]\nlaunch_timeout = \"30s\"",
        ),
    )
    .unwrap();
    let drill = sim.run(&db, "drill", path.to_str().unwrap()).await;
    assert_eq!(drill.code, 1, "{drill:#?}");
    let report = drill.json();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let failed: Vec<&Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["key"], "launch:reporting");
    let job_id = sim
        .drs(ACCOUNT, TARGET)
        .describe_jobs()
        .send()
        .await
        .unwrap()
        .items()[0]
        .job_id()
        .to_string();
    assert!(
        drill.stderr.contains(&format!("job {job_id}"))
            && drill
                .stderr
                .contains("within 30s (the wave's launch_timeout)"),
        "{}",
        drill.stderr
    );

    // Once the job has ended, `retry` follows it to the end (within a fresh deadline).
    sim.skip(600.0).await;
    let retried = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "retry",
                &run_id,
                "--step",
                "launch:reporting",
                "--yes",
            ],
        )
        .await;
    assert_eq!(retried.json()["status"], "succeeded", "{retried:#?}");
    assert_eq!(
        mutations(&sim.get("/_sim/stats").await, "StartRecovery").len(),
        1,
        "the retry follows the same job"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failback_drill_after_a_failback_is_refused_to_protect_the_a3s() {
    const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
    let runbook = "runbooks/payments.toml";
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let failover = sim.run(&db, "failover", runbook).await;
    assert_eq!(failover.code, 0, "{failover:#?}");
    let failover_id = failover.json()["run_id"].as_str().unwrap().to_string();
    let failback = sim.run(&db, "failback", runbook).await;
    assert_eq!(failback.code, 0, "{failback:#?}");
    let failback_id = failback.json()["run_id"].as_str().unwrap().to_string();
    // Production now runs on the A3s in the origin: non-drill recovery instances of the A2s.
    let a3s: Vec<String> = sim
        .drs("111111111111", "us-east-1")
        .describe_recovery_instances()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|i| i.is_drill() == Some(false))
        .map(|i| i.recovery_instance_id().unwrap().to_string())
        .collect();
    assert!(!a3s.is_empty());
    let starts = mutations(&sim.get("/_sim/stats").await, "StartRecovery").len();
    let drill = sim
        .cli(
            &db,
            &[
                "failback",
                runbook,
                "--drill",
                "--from-run",
                &failover_id,
                "--yes",
            ],
        )
        .await;
    assert_eq!(drill.code, 4, "{drill:#?}");
    for id in &a3s {
        assert!(drill.stderr.contains(id.as_str()), "{}", drill.stderr);
    }
    assert!(drill.stderr.contains("failback drill"), "{}", drill.stderr);
    assert!(
        drill.stderr.contains(&failback_id),
        "names the failback run: {}",
        drill.stderr
    );
    assert_eq!(
        mutations(&sim.get("/_sim/stats").await, "StartRecovery").len(),
        starts,
        "nothing launched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_call_reports_the_services_retry_after() {
    let sim = TestSim::start(60.0).await;
    sim.seed(REPORTING).await;
    sim.faults(json!([{"kind": "api_error", "service": "drs", "operation": "DescribeSourceServers", "error": "ThrottlingException", "count": 10}])).await;
    let runbook = drs_runbook::runbook::parse(REPORTING, "reporting-drill.toml").unwrap();
    let clients = drs_runbook::aws::connect(
        &runbook,
        &drs_runbook::aws::Connection::Simulated {
            endpoint_url: sim.endpoint.clone(),
        },
    )
    .await;
    let err = clients
        .target
        .describe_source_servers(&["s-4567890abcdef0123".to_string()])
        .await
        .expect_err("throttled past the SDK's read retries");
    assert_eq!(err.code.as_deref(), Some("ThrottlingException"));
    assert!(err.retryable && !err.ambiguous);
    // DRS models `Retry-After` on ThrottlingException; the engine waits at least that long.
    assert_eq!(err.retry_after_seconds, Some(1), "{err:?}");
}
