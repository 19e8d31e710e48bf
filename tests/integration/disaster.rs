//! The real disaster (issue 12): the production guard, the model's limits on ID lists and jobs,
//! a source region that is down, DRS's phase retries, FAST recovery and stuck jobs. The built
//! binary drives the simulator through the real SDK clients; the assertions read the world
//! back through the SDK and `/_sim/stats`.

use serde_json::{Value, json};

use crate::support::{TestSim, drs_runbook, mutations};

const REPORTING: &str = include_str!("../../runbooks/reporting-drill.toml");
const ACCOUNT: &str = "444444444444";
const TARGET: &str = "eu-central-1";

async fn cli(db: &std::path::Path, endpoint: &str, args: &[&str]) -> crate::support::CliRun {
    let (db, endpoint) = (db.to_path_buf(), endpoint.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        drs_runbook(&db, Some(&endpoint), &args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_after_a_succeeded_failover_is_refused_and_production_keeps_running() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let runbook = "runbooks/reporting-drill.toml";
    let failover = cli(
        &db,
        &sim.endpoint,
        &["--output", "json", "failover", runbook, "--yes"],
    )
    .await;
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
    let (status, _) = sim
        .post(
            "/_sim/faults",
            &json!({"faults": [{"kind": "replication_lag", "source_server_id": "s-4567890abcdef0123", "lag_seconds": 7200}]}),
        )
        .await;
    assert_eq!(status, 200);
    let starts_before = mutations(&sim.get("/_sim/stats").await, "StartRecovery").len();
    for operation in ["drill", "failover"] {
        let refused = cli(&db, &sim.endpoint, &["--output", "json", operation, runbook, "--yes"]).await;
        assert_eq!(refused.code, 4, "{operation}: {refused:#?}");
        let message = refused.stderr.as_str();
        assert!(message.contains("refused"), "{message}");
        for id in &production {
            assert!(message.contains(id.as_str()), "{message}");
        }
        assert!(message.contains(&failover_id), "names the run that launched them: {message}");
        assert!(message.contains("--override-production-guard"), "{message}");
        assert!(!message.contains("lag"), "the guard wins over the lag check: {message}");
    }
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(mutations(&stats, "StartRecovery").len(), starts_before);
    let live = drs.describe_recovery_instances().send().await.unwrap();
    assert_eq!(live.items().len(), 2);
    assert!(live.items().iter().all(|i| i.is_drill() == Some(false)
        && i.ec2_instance_state().map(|s| s.as_str()) == Some("RUNNING")));

    // The commander who means it: the override is logged, and the drill replaces production.
    sim.post("/_sim/faults", &json!({"faults": []})).await;
    let _ = reqwest::Client::new()
        .delete(format!("{}/_sim/faults", sim.endpoint))
        .send()
        .await
        .unwrap();
    let overridden = cli(
        &db,
        &sim.endpoint,
        &["--output", "json", "drill", runbook, "--yes", "--override-production-guard"],
    )
    .await;
    assert_eq!(overridden.code, 0, "{overridden:#?}");
    assert!(
        overridden.stderr.contains("--override-production-guard")
            && production.iter().all(|id| overridden.stderr.contains(id.as_str())),
        "{}",
        overridden.stderr
    );
    let drill_id = overridden.json()["run_id"].as_str().unwrap().to_string();
    let store = drs_runbook::store::Database::open(&db).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let events =
        drs_runbook::store::events::for_run(&mut conn, &drill_id.parse().unwrap()).await.unwrap();
    let logged = events
        .iter()
        .find(|e| e.kind == "production_guard_overridden")
        .expect("the override is in the audit trail");
    assert_eq!(logged.actor, "test-operator");
    assert_eq!(logged.data["instances"].as_array().unwrap().len(), 2);
    assert_eq!(logged.data["instances"][0]["created_by"]["run_id"], failover_id.as_str());
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
        assert!(!after.as_array().unwrap().iter().any(|a| a == id.as_str()), "{after}");
    }
}
