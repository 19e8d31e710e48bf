//! The planned failover's fence (issue 12 item 3): `fence_source` stops the source instances
//! (A1) before any recovery and waits until replication has caught up, so the failover loses
//! nothing (RPO 0, from the evidence); its undo starts them again; a crash right after the
//! StopInstances intent does not send it twice; unplanned failovers and drills never fence.
//! The built binary drives the simulator through the real SDK clients.

use crate::support::{
    TestSim, drs_runbook, drs_runbook_async, mutations, run_id_of, start_recovery, step_fields,
    stored_step,
};

const REPORTING: &str = include_str!("../../runbooks/reporting-drill.toml");
const RUNBOOK: &str = "runbooks/reporting-drill.toml";
const ACCOUNT: &str = "444444444444";
const SOURCE: &str = "eu-west-1";
const TARGET: &str = "eu-central-1";

/// The source instances (A1) of the runbook's two servers.
async fn source_instances(sim: &TestSim) -> Vec<String> {
    let ids = sim.source_instances(ACCOUNT, TARGET).await;
    assert_eq!(ids.len(), 2);
    ids
}

/// Each instance's EC2 state name.
async fn states(sim: &TestSim, ids: &[String]) -> Vec<String> {
    sim.instance_states((ACCOUNT, SOURCE), ids).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planned_failover_fences_the_source_recovers_with_rpo_0_and_its_rollback_starts_it() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    let a1 = source_instances(&sim).await;
    assert_eq!(states(&sim, &a1).await, ["running", "running"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");

    let failover = sim.run(&db, "failover", RUNBOOK).await;
    assert_eq!(failover.code, 0, "{failover:#?}");
    let report = failover.json();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let kinds = step_fields(&report, "kind");
    assert_eq!(kinds[..3], ["preflight", "fence_source", "recovery_job"]);
    assert_eq!(states(&sim, &a1).await, ["stopped", "stopped"]);
    assert_eq!(sim.calls("ec2:StopInstances").await, 1);
    assert!(
        failover.stderr.contains("source instance(s) stopped")
            && failover.stderr.contains("replication caught up"),
        "progress on the wait: {}",
        failover.stderr
    );

    // RPO 0 from the evidence: every recovered server's data is from after the fence.
    assert_eq!(report["rpo_seconds"].as_f64(), Some(0.0), "{report}");
    let fence = stored_step(&db, &run_id, "fence_source").await.output;
    let fenced_at =
        chrono::DateTime::parse_from_rfc3339(fence["fenced_at"].as_str().unwrap()).unwrap();
    let stopped_at =
        chrono::DateTime::parse_from_rfc3339(fence["stopped_at"].as_str().unwrap()).unwrap();
    assert!(stopped_at <= fenced_at);
    assert_eq!(fence["stopped_by_fence"].as_array().unwrap().len(), 2);
    let conversion = stored_step(&db, &run_id, "snapshot_conversion:reporting")
        .await
        .output;
    for (server, s) in conversion["servers"].as_object().unwrap() {
        assert_eq!(s["snapshot"], "on_demand", "{server}: {s}");
        let data =
            chrono::DateTime::parse_from_rfc3339(s["data_timestamp"].as_str().unwrap()).unwrap();
        assert!(
            data >= fenced_at,
            "{server}: data {data} before the fence {fenced_at}"
        );
    }
    let json_report = sim.cli(&db, &["report", &run_id, "--format", "json"]).await;
    assert_eq!(json_report.code, 0, "{json_report:#?}");
    let facts: serde_json::Value = serde_json::from_str(&json_report.stdout).unwrap();
    let servers = facts["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{facts}");
    assert!(
        servers
            .iter()
            .all(|s| s["rpo_seconds"].as_f64() == Some(0.0)),
        "{facts}"
    );

    // The rollback terminates the recovery instances, then starts A1 again.
    let rollback = sim.run(&db, "rollback", &run_id).await;
    assert_eq!(rollback.code, 0, "{rollback:#?}");
    assert_eq!(states(&sim, &a1).await, ["running", "running"]);
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(sim.calls("ec2:StartInstances").await, 1);
    let order: Vec<String> = stats["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["operation"].as_str().unwrap().to_string())
        .filter(|o| o == "TerminateRecoveryInstances" || o == "StartInstances")
        .collect();
    assert_eq!(
        order,
        ["TerminateRecoveryInstances", "StartInstances"],
        "production comes back only after the recovery instances are gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_right_after_the_stop_intent_resumes_without_stopping_twice() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    let a1 = source_instances(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    // The fence's StopInstances is the run's first mutating call: abort right after its intent
    // is committed, before it is sent.
    let crashed = drs_runbook_async(
        &db,
        Some(&sim.endpoint),
        &["failover", RUNBOOK, "--yes"],
        &[("DRS_RUNBOOK_CRASH_AFTER_INTENT", "1")],
    )
    .await;
    assert_ne!(crashed.code, 0, "{crashed:#?}");
    assert!(
        crashed.stderr.contains("aborting after the intent commit"),
        "{crashed:#?}"
    );
    assert_eq!(sim.calls("ec2:StopInstances").await, 0);
    assert_eq!(states(&sim, &a1).await, ["running", "running"]);

    let run_id = run_id_of(&crashed);
    let resumed = sim.run(&db, "resume", &run_id).await;
    assert_eq!(resumed.code, 0, "{resumed:#?}");
    assert_eq!(states(&sim, &a1).await, ["stopped", "stopped"]);
    assert_eq!(
        sim.calls("ec2:StopInstances").await,
        1,
        "the open intent is reconciled, then sent once"
    );
    assert_eq!(resumed.json()["rpo_seconds"].as_f64(), Some(0.0));
    // Resuming the finished run again sends nothing more.
    let again = sim.cli(&db, &["resume", &run_id, "--yes"]).await;
    assert_eq!(sim.calls("ec2:StopInstances").await, 1, "{again:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unplanned_failovers_and_drills_do_not_fence() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    let a1 = source_instances(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let drill = sim.run(&db, "drill", RUNBOOK).await;
    assert!(drill.json()["status"] == "succeeded", "{drill:#?}");
    let unplanned = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "failover",
                RUNBOOK,
                "--mode",
                "unplanned",
                "--yes",
            ],
        )
        .await;
    assert_eq!(unplanned.code, 0, "{unplanned:#?}");
    let report = unplanned.json();
    let kinds = step_fields(&report, "kind");
    assert!(!kinds.contains(&"fence_source"), "{kinds:?}");
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(sim.calls("ec2:StopInstances").await, 0);
    assert!(mutations(&stats, "StopInstances").is_empty());
    assert_eq!(states(&sim, &a1).await, ["running", "running"]);
}

#[test]
fn plan_shows_the_fence_and_the_runbook_keys_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let plan = drs_runbook(&db, None, &["--output", "json", "plan", RUNBOOK]);
    assert_eq!(plan.code, 0, "{plan:#?}");
    let steps = plan.json()["steps"].as_array().unwrap().clone();
    assert_eq!(steps[1]["key"], "fence_source");
    assert_eq!(steps[1]["depends_on"], serde_json::json!(["preflight"]));
    assert_eq!(plan.json()["fence_source"]["region"], SOURCE);
    assert_eq!(steps[2]["depends_on"], serde_json::json!(["fence_source"]));
    let text = drs_runbook(&db, None, &["plan", RUNBOOK]);
    assert!(text.stdout.contains("fence_source"), "{}", text.stdout);
    assert!(text.stdout.contains("StopInstances"), "{}", text.stdout);
    let unplanned = drs_runbook(
        &db,
        None,
        &["--output", "json", "plan", RUNBOOK, "--mode", "unplanned"],
    );
    let json = unplanned.json();
    assert!(json["fence_source"].is_null(), "{json}");
    assert!(
        json["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["key"] != "fence_source"),
        "{json}"
    );

    // Gated only when [approvals] names it; opted out with [failover] fence_source = false.
    let gated = dir.path().join("gated.toml");
    std::fs::write(
        &gated,
        format!("{REPORTING}\n[approvals]\nbefore = [\"fence_source\"]\n"),
    )
    .unwrap();
    let plan = drs_runbook(
        &db,
        None,
        &["--output", "json", "plan", gated.to_str().unwrap()],
    );
    assert_eq!(plan.json()["steps"][1]["needs_approval"], true, "{plan:#?}");
    assert_eq!(steps[1]["needs_approval"], false);
    let off = dir.path().join("off.toml");
    std::fs::write(
        &off,
        format!("{REPORTING}\n[failover]\nfence_source = false\n"),
    )
    .unwrap();
    let plan = drs_runbook(
        &db,
        None,
        &["--output", "json", "plan", off.to_str().unwrap()],
    );
    assert_eq!(
        plan.json()["steps"][1]["key"],
        "recovery_job:reporting",
        "{plan:#?}"
    );

    // Bad values name the file, the line and the key.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "{}\n[failover]\nfence_timeout = \"soon\"\n",
            REPORTING.replace(
                "servers = [\"s-4567890abcdef0123\", \"s-567890abcdef01234\"]",
                "servers = [\"s-4567890abcdef0123\", \"s-567890abcdef01234\"]\nlaunch_timeout = \"3d\"",
            )
        ),
    )
    .unwrap();
    let check = drs_runbook(&db, None, &["validate", bad.to_str().unwrap()]);
    assert_eq!(check.code, 2, "{check:#?}");
    let out = check.stdout + &check.stderr;
    assert!(out.contains("bad.toml:"), "{out}");
    assert!(out.contains("failover.fence_timeout"), "{out}");
    assert!(out.contains("wave[0].launch_timeout"), "{out}");
}

/// The simulator's stopped source, read through the real SDK: BACKLOG while the last writes
/// reach the staging area, then CONTINUOUS with the agent's final report frozen, DISCONNECTED
/// 5 minutes later, replicating again once the instance runs; an on-demand snapshot taken
/// during the catch-up holds the data of the stop request, one taken after it newer data.
#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_models_a_stopped_source_and_its_catch_up() {
    let sim = TestSim::start(1.0).await;
    sim.seed(REPORTING).await;
    let drs = sim.drs(ACCOUNT, TARGET);
    let ec2 = sim.ec2(ACCOUNT, SOURCE);
    let server =
        |servers: &aws_sdk_drs::operation::describe_source_servers::DescribeSourceServersOutput,
         id: &str| {
            servers
                .items()
                .iter()
                .find(|s| s.source_server_id() == Some(id))
                .unwrap()
                .clone()
        };
    let listed = drs.describe_source_servers().send().await.unwrap();
    let stopped_server = listed.items()[0].source_server_id().unwrap().to_string();
    let other = listed.items()[1].source_server_id().unwrap().to_string();
    let a1 = listed.items()[0]
        .source_properties()
        .and_then(|p| p.identification_hints())
        .and_then(|h| h.aws_instance_id())
        .unwrap()
        .to_string();
    let clock = async || {
        chrono::DateTime::parse_from_rfc3339(sim.get("/_sim/clock").await["now"].as_str().unwrap())
            .unwrap()
    };
    let before = clock().await;
    ec2.stop_instances().instance_ids(&a1).send().await.unwrap();
    let after = clock().await;
    // A drill right away: its on-demand snapshot is taken while the catch-up runs.
    let early = start_recovery(&drs, &[&stopped_server], true)
        .await
        .job_id()
        .to_string();

    let now = drs.describe_source_servers().send().await.unwrap();
    let info = server(&now, &stopped_server)
        .data_replication_info()
        .unwrap()
        .clone();
    assert_eq!(info.data_replication_state().unwrap().as_str(), "BACKLOG");
    assert!(info.replicated_disks()[0].backlogged_storage_bytes() > 0);
    assert_ne!(info.lag_duration(), Some("P0D"));
    let untouched = server(&now, &other)
        .data_replication_info()
        .unwrap()
        .clone();
    assert_eq!(
        untouched.data_replication_state().unwrap().as_str(),
        "CONTINUOUS"
    );

    // Stopped after 40 s, caught up 15 to 45 s later.
    sim.skip(90.0).await;
    let now = drs.describe_source_servers().send().await.unwrap();
    let s = server(&now, &stopped_server);
    let info = s.data_replication_info().unwrap();
    assert_eq!(
        info.data_replication_state().unwrap().as_str(),
        "CONTINUOUS"
    );
    assert_eq!(info.lag_duration(), Some("P0D"));
    assert_eq!(info.replicated_disks()[0].backlogged_storage_bytes(), 0);
    let last_seen = s
        .life_cycle()
        .unwrap()
        .last_seen_by_service_date_time()
        .unwrap()
        .to_string();
    let seen = chrono::DateTime::parse_from_rfc3339(&last_seen).unwrap();
    assert!(
        seen >= before + chrono::Duration::seconds(55),
        "{seen} vs stop at {before}"
    );
    sim.skip(60.0).await;
    let now = drs.describe_source_servers().send().await.unwrap();
    assert_eq!(
        server(&now, &stopped_server)
            .life_cycle()
            .unwrap()
            .last_seen_by_service_date_time(),
        Some(last_seen.as_str()),
        "the stopped agent is not seen again"
    );

    // The early drill's data is the stop request's: the shutdown's writes had not arrived.
    sim.skip(900.0).await;
    let data_timestamp = async |job: &str| {
        let log = drs
            .describe_job_log_items()
            .job_id(job)
            .send()
            .await
            .unwrap();
        let end = log
            .items()
            .iter()
            .find(|i| i.event().map(|e| e.as_str()) == Some("CONVERSION_END"))
            .unwrap_or_else(|| panic!("{log:#?}"))
            .clone();
        let at = end
            .event_data()
            .and_then(|d| d.conversion_properties())
            .and_then(|c| c.data_timestamp())
            .unwrap()
            .to_string();
        chrono::DateTime::parse_from_rfc3339(&at).unwrap()
    };
    let early_data = data_timestamp(&early).await;
    assert!(
        early_data >= before - chrono::Duration::seconds(1) && early_data <= after,
        "{early_data} not the stop request ({before}..{after})"
    );
    // One after the catch-up holds everything: newer than the instance's stop.
    let late = start_recovery(&drs, &[&stopped_server], true)
        .await
        .job_id()
        .to_string();
    sim.skip(900.0).await;
    assert!(data_timestamp(&late).await > after + chrono::Duration::seconds(40));

    // Unseen for 5 minutes by now: DISCONNECTED; running again: replicating.
    let now = drs.describe_source_servers().send().await.unwrap();
    let info = server(&now, &stopped_server)
        .data_replication_info()
        .unwrap()
        .clone();
    assert_eq!(
        info.data_replication_state().unwrap().as_str(),
        "DISCONNECTED"
    );
    assert_eq!(
        info.data_replication_error()
            .and_then(|e| e.error())
            .map(|e| e.as_str()),
        Some("AGENT_NOT_SEEN")
    );
    ec2.start_instances()
        .instance_ids(&a1)
        .send()
        .await
        .unwrap();
    sim.skip(25.0).await;
    let now = drs.describe_source_servers().send().await.unwrap();
    let info = server(&now, &stopped_server)
        .data_replication_info()
        .unwrap()
        .clone();
    assert_eq!(
        info.data_replication_state().unwrap().as_str(),
        "CONTINUOUS"
    );
    assert!(info.data_replication_error().is_none());
}
