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
    let drill = cli(
        &db,
        &sim.endpoint,
        &["--output", "json", "drill", path.to_str().unwrap(), "--yes"],
    )
    .await;
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
