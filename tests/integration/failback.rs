//! Failback end to end: the built binary fails `runbooks/payments.toml` over (cross-account,
//! cross-region, two waves) and back against the in-process simulator; the assertions read the
//! world back through the SDK and count mutating calls from `/_sim/stats`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::support::{
    CliRun, TestSim, drs_runbook, mutations, shown, step, step_fields, target_ids, time_of,
};

const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
const RUNBOOK: &str = "runbooks/payments.toml";
const SOURCE: (&str, &str) = ("111111111111", "us-east-1");
const TARGET: (&str, &str) = ("222222222222", "us-west-2");
const ZONE: &str = "Z0123456789ABCDEFGHIJ";
const NAME: &str = "api.payments.example.com.";
const FAILOVER_TG: &str =
    "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123456789abcdef";
const FAILBACK_TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/payments/fedcba9876543210";
const APP_SERVERS: [&str; 2] = ["s-234567890abcdef01", "s-34567890abcdef012"];

/// The values of the payments A record.
async fn record_values(sim: &TestSim) -> Vec<String> {
    sim.a_record_values(SOURCE.0, ZONE, NAME).await
}

async fn healthy_targets(sim: &TestSim) -> Vec<String> {
    sim.target_group_members(SOURCE, FAILBACK_TG, |state| state == "healthy")
        .await
}

async fn recovery_instances(
    sim: &TestSim,
    (account, region): (&str, &str),
) -> Vec<aws_sdk_drs::types::RecoveryInstance> {
    sim.drs(account, region)
        .describe_recovery_instances()
        .send()
        .await
        .unwrap()
        .items()
        .to_vec()
}

async fn source_servers(
    sim: &TestSim,
    (account, region): (&str, &str),
) -> Vec<aws_sdk_drs::types::SourceServer> {
    sim.drs(account, region)
        .describe_source_servers()
        .send()
        .await
        .unwrap()
        .items()
        .to_vec()
}

fn ips(instance: &aws_sdk_drs::types::RecoveryInstance) -> Vec<String> {
    instance
        .recovery_instance_properties()
        .unwrap()
        .network_interfaces()
        .iter()
        .flat_map(|n| n.ips().to_vec())
        .collect()
}

/// Seeds the payments world and fails it over; returns the failover run's ID.
async fn failed_over(sim: &TestSim, db: &Path) -> String {
    sim.seed(PAYMENTS).await;
    let run = sim.run(db, "failover", RUNBOOK).await;
    assert_eq!(run.code, 0, "{run:#?}");
    run.json()["run_id"].as_str().unwrap().to_string()
}

/// The A2s (origin) and the B1s (target) reference each other by reversedDirectionSourceServerArn.
async fn assert_a2_linked_to_b1(sim: &TestSim) -> Vec<aws_sdk_drs::types::SourceServer> {
    let b1s = source_servers(sim, TARGET).await;
    let a2s: Vec<_> = source_servers(sim, SOURCE)
        .await
        .into_iter()
        .filter(|s| s.replication_direction().map(|d| d.as_str()) == Some("FAILBACK"))
        .collect();
    assert_eq!(a2s.len(), 3, "one A2 per recovered server: {a2s:#?}");
    for a2 in &a2s {
        let b1 = b1s
            .iter()
            .find(|b| b.arn() == a2.reversed_direction_source_server_arn())
            .unwrap_or_else(|| panic!("A2 {a2:#?} is linked to a B1"));
        assert_eq!(
            b1.reversed_direction_source_server_arn(),
            a2.arn(),
            "B1 points back at its A2"
        );
    }
    a2s
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_then_failback_returns_traffic_to_the_origin_and_cleans_up() {
    let sim = TestSim::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let failover_id = failed_over(&sim, &db).await;
    let b2s: BTreeSet<String> = recovery_instances(&sim, TARGET)
        .await
        .iter()
        .map(|i| i.recovery_instance_id().unwrap().to_string())
        .collect();
    assert_eq!(b2s.len(), 3);
    let before = sim.get("/_sim/stats").await;

    let run = sim.run(&db, "failback", RUNBOOK).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr
            .contains(&format!("failing back from failover run {failover_id}")),
        "{}",
        run.stderr
    );
    let report = run.json();
    assert_eq!(report["operation"], "failback");
    assert_eq!(report["status"], "succeeded");
    let keys = step_fields(&report, "key");
    assert_eq!(
        keys,
        [
            "preflight",
            "reversed_replication:db",
            "reversed_replication:app",
            "quiesce",
            "a2_recovery:db",
            "snapshot_conversion:db",
            "launch:db",
            "a2_recovery:app",
            "snapshot_conversion:app",
            "launch:app",
            "lb_switch:app",
            "dns_cutover",
            "cleanup"
        ]
    );
    let run_id = report["run_id"].as_str().unwrap();

    // Mutating calls of the failback alone: one ReverseReplication per B2, in the target;
    // one StartRecovery per wave (the minimal batches), in the origin, on the A2s.
    let stats = sim.get("/_sim/stats").await;
    let new = |op: &str| mutations(&stats, op).split_off(mutations(&before, op).len());
    let (reversals, reprotects): (Vec<Value>, Vec<Value>) = new("ReverseReplication")
        .into_iter()
        .partition(|m| m["account"] == TARGET.0);
    let reversed: BTreeSet<String> = reversals
        .iter()
        .map(|m| {
            m["params"]["recoveryInstanceID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        reversed, b2s,
        "one ReverseReplication per B2: {reversals:#?}"
    );
    assert_eq!(reversals.len(), 3);
    assert!(
        reversals
            .iter()
            .all(|m| m["account"] == TARGET.0 && m["region"] == TARGET.1)
    );
    let starts = new("StartRecovery");
    assert_eq!(starts.len(), 2, "one StartRecovery per wave: {starts:#?}");
    assert!(starts.iter().all(|m| m["account"] == SOURCE.0
        && m["region"] == SOURCE.1
        && m["params"]["isDrill"] != true));
    assert_eq!(
        starts[0]["params"]["sourceServers"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the db wave first"
    );
    assert_eq!(
        starts[1]["params"]["sourceServers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(new("StartReplication").is_empty());

    // A2s exist in the origin, linked to their B1s, and A3s were launched from them.
    let a2s = assert_a2_linked_to_b1(&sim).await;
    let a2_ids: BTreeSet<&str> = a2s.iter().map(|s| s.source_server_id().unwrap()).collect();
    let a3s = recovery_instances(&sim, SOURCE).await;
    assert_eq!(a3s.len(), 3, "{a3s:#?}");
    assert!(
        a3s.iter().all(
            |a3| a2_ids.contains(a3.source_server_id().unwrap()) && a3.is_drill() != Some(true)
        )
    );
    // Started with AWS's order: A2's replication stopped, then the B2s terminated.
    assert!(a2s.iter().all(|s| replication_state(s) == "STOPPED"));
    assert!(
        recovery_instances(&sim, TARGET).await.is_empty(),
        "the B2s are terminated ([cleanup] terminate_recovery_instances = true)"
    );
    let order: Vec<String> = stats["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["operation"].as_str().unwrap().to_string())
        .filter(|o| o == "StopReplication" || o == "TerminateRecoveryInstances")
        .collect();
    assert_eq!(
        order,
        [
            "StopReplication",
            "StopReplication",
            "StopReplication",
            "TerminateRecoveryInstances"
        ]
    );
    // Re-protected first (AWS's order): one ReverseReplication per A3, in the origin, and every
    // B1 protects its A4 (DescribeSourceServers: identificationHints.awsInstanceID).
    assert_eq!(reprotects.len(), 3, "{reprotects:#?}");
    assert!(
        reprotects
            .iter()
            .all(|m| m["account"] == SOURCE.0 && m["region"] == SOURCE.1)
    );
    let a4s: BTreeSet<&str> = a3s.iter().map(|a3| a3.ec2_instance_id().unwrap()).collect();
    assert_eq!(
        protected_instances(&sim).await,
        a4s.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()
    );
    // B1's replication is not stopped (stop_source_replication = false): it replicates A4.
    assert!(
        source_servers(&sim, TARGET)
            .await
            .iter()
            .all(|s| replication_state(s) == "CONTINUOUS")
    );

    // Traffic is back on the failed-back instances: DNS at the app A3s' IPs, A4s healthy in the
    // origin target group (and A1 deregistered).
    let app_a2s: BTreeSet<&str> = a2s
        .iter()
        .filter(|a2| {
            let b1 = a2.reversed_direction_source_server_arn().unwrap();
            APP_SERVERS.iter().any(|s| b1.ends_with(s))
        })
        .map(|a2| a2.source_server_id().unwrap())
        .collect();
    let app_a3s: Vec<_> = a3s
        .iter()
        .filter(|a3| app_a2s.contains(a3.source_server_id().unwrap()))
        .collect();
    assert_eq!(app_a3s.len(), 2);
    let mut app_ips: Vec<String> = app_a3s.iter().flat_map(|a3| ips(a3)).collect();
    app_ips.sort();
    assert_eq!(record_values(&sim).await, app_ips);
    let mut app_a4s: Vec<String> = app_a3s
        .iter()
        .map(|a3| a3.ec2_instance_id().unwrap().to_string())
        .collect();
    app_a4s.sort();
    assert_eq!(healthy_targets(&sim).await, app_a4s);

    // No orphan: every recovery instance left is one this run recorded.
    let shown = shown(&db, run_id);
    assert_eq!(
        shown["parent_run_id"],
        failover_id.as_str(),
        "the failback is linked to its failover"
    );
    let recorded: BTreeSet<String> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "launch")
        .flat_map(|s| {
            s["output"]["servers"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v["recovery_instance_id"].as_str().unwrap().to_string())
        })
        .collect();
    let present: BTreeSet<String> = a3s
        .iter()
        .map(|i| i.recovery_instance_id().unwrap().to_string())
        .collect();
    assert_eq!(present, recorded);
    // The A2s replicated continuously before they were launched from.
    let reversed_steps: Vec<&Value> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "reversed_replication")
        .collect();
    assert_eq!(reversed_steps.len(), 2);
    for step in reversed_steps {
        for server in step["output"]["servers"].as_object().unwrap().values() {
            assert_eq!(server["replication_state"], "CONTINUOUS", "{step:#}");
            assert_eq!(server["how"], "reverse_replication");
        }
    }
    let text = drs_runbook(&db, None, &["show", run_id]);
    assert!(
        text.stdout
            .contains(&format!("linked to run {failover_id}")),
        "{}",
        text.stdout
    );
    // `history` shows the pair: the failover lists its failback, the failback names its failover.
    let history = history(&db);
    assert_eq!(
        history[&failover_id]["linked_runs"],
        serde_json::json!([run_id])
    );
    assert_eq!(history[run_id]["parent_run_id"], failover_id.as_str());
    assert_eq!(history[run_id]["linked_runs"], serde_json::json!([]));
}

/// The instances the B1s protect (`identificationHints.awsInstanceID`).
async fn protected_instances(sim: &TestSim) -> BTreeSet<String> {
    source_servers(sim, TARGET)
        .await
        .iter()
        .filter_map(|b1| {
            b1.source_properties()
                .and_then(|p| p.identification_hints())
                .and_then(|h| h.aws_instance_id())
                .map(str::to_string)
        })
        .collect()
}

/// The EC2 state of each of these instances in the origin.
async fn ec2_states(sim: &TestSim, ids: &BTreeSet<String>) -> Vec<String> {
    sim.instance_states(SOURCE, ids).await
}

/// The source region goes down, the failover is unplanned; the region comes back (A1's agent
/// resumes replicating into B1), then the failback. Returns the old source instances (A1).
async fn failed_over_in_an_outage_and_back(
    sim: &TestSim,
    db: &Path,
    runbook: &str,
) -> BTreeSet<String> {
    sim.seed(PAYMENTS).await;
    let a1s = protected_instances(sim).await;
    let (status, _) = sim
        .post(
            "/_sim/faults",
            &serde_json::json!({"faults": [{"kind": "source_outage", "account_id": SOURCE.0, "region": SOURCE.1}]}),
        )
        .await;
    assert_eq!(status, 200);
    sim.skip(10.0 * 60.0).await;
    let failover = sim
        .cli(db, &["failover", RUNBOOK, "--yes", "--mode", "unplanned"])
        .await;
    assert_eq!(failover.code, 0, "{failover:#?}");
    assert_eq!(sim.delete("/_sim/faults").await, 200);
    sim.skip(10.0 * 60.0).await;
    assert!(
        source_servers(sim, TARGET)
            .await
            .iter()
            .all(|b1| replication_state(b1) == "CONTINUOUS"),
        "the old source's agents replicate into B1 again"
    );
    let failback = sim.run(db, "failback", runbook).await;
    assert_eq!(failback.code, 0, "{failback:#?}");
    a1s
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_outage_the_failback_fences_the_old_source_and_the_next_failover_protects_a4() {
    let sim = TestSim::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let a1s = failed_over_in_an_outage_and_back(&sim, &db, RUNBOOK).await;
    assert_eq!(
        ec2_states(&sim, &a1s).await,
        ["stopped", "stopped", "stopped"],
        "[cleanup] source_instances defaults to stop"
    );
    let a4s: BTreeSet<String> = recovery_instances(&sim, SOURCE)
        .await
        .iter()
        .map(|a3| a3.ec2_instance_id().unwrap().to_string())
        .collect();
    assert_eq!(
        protected_instances(&sim).await,
        a4s,
        "B1 protects A4, not A1"
    );
    assert!(a1s.is_disjoint(&a4s));

    // The next (planned) failover fences and recovers the failed-back instances, not A1.
    let next = sim.run(&db, "failover", RUNBOOK).await;
    assert_eq!(next.code, 0, "{next:#?}");
    let run_id = next.json()["run_id"].as_str().unwrap().to_string();
    let shown = shown(&db, &run_id);
    let fence = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "fence_source")
        .unwrap();
    let fenced: BTreeSet<String> = fence["output"]["instances"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(fenced, a4s, "{fence:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failover_is_refused_while_an_unfenced_old_source_replicates_into_b1() {
    let sim = TestSim::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let text = PAYMENTS
        .replace(
            r#"source_instances = "stop""#,
            r#"source_instances = "keep""#,
        )
        .replace("reprotect = true", "reprotect = false");
    let runbook = dir.path().join("payments.toml");
    std::fs::write(&runbook, text).unwrap();
    let a1s = failed_over_in_an_outage_and_back(&sim, &db, runbook.to_str().unwrap()).await;
    assert_eq!(
        ec2_states(&sim, &a1s).await,
        ["running", "running", "running"]
    );
    assert_eq!(protected_instances(&sim).await, a1s);

    let before = sim.get("/_sim/stats").await;
    let refused = sim
        .cli(&db, &["failover", runbook.to_str().unwrap(), "--yes"])
        .await;
    assert_eq!(refused.code, 4, "{refused:#?}");
    assert!(
        refused.stderr.contains("would recover stale data"),
        "{}",
        refused.stderr
    );
    for a1 in &a1s {
        assert!(
            refused.stderr.contains(a1.as_str()),
            "names {a1}: {}",
            refused.stderr
        );
    }
    assert!(
        refused.stderr.contains("stop-instances"),
        "names the fix: {}",
        refused.stderr
    );
    let after = sim.get("/_sim/stats").await;
    assert_eq!(
        after["mutations"].as_array().unwrap().len(),
        before["mutations"].as_array().unwrap().len(),
        "nothing changed"
    );

    // With keep and re-protect on together, the failback's preflight refuses, with the reason.
    let contradictory = dir.path().join("contradictory.toml");
    std::fs::write(
        &contradictory,
        PAYMENTS.replace(
            r#"source_instances = "stop""#,
            r#"source_instances = "keep""#,
        ),
    )
    .unwrap();
    let failback = sim
        .cli(&db, &["failback", contradictory.to_str().unwrap(), "--yes"])
        .await;
    assert_ne!(failback.code, 0);
    assert!(
        failback.stderr.contains("source_instances = \"keep\""),
        "{}",
        failback.stderr
    );
}

/// `history --output json`, by run ID.
fn history(db: &Path) -> std::collections::BTreeMap<String, Value> {
    let listed = drs_runbook(db, None, &["--output", "json", "history"]);
    assert_eq!(listed.code, 0, "{listed:#?}");
    listed.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["run_id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// The failover's target group in the recovery account: its members, draining ones included
/// (a draining B3 still completes requests), any health.
async fn failover_members(sim: &TestSim) -> Vec<String> {
    sim.target_group_members(TARGET, FAILOVER_TG, |_| true)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failback_quiesces_b3_first_so_a3_recovers_its_last_write_with_rpo_0() {
    let sim = TestSim::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    failed_over(&sim, &db).await;
    let b3s = failover_members(&sim).await;
    assert_eq!(b3s.len(), 2);
    // Writes arrive on B3 while it serves.
    sim.skip(15.0 * 60.0).await;
    let before = sim.get("/_sim/stats").await;

    let run = sim.run(&db, "failback", RUNBOOK).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["rpo_seconds"], 0.0, "{report:#}");
    let run_id = report["run_id"].as_str().unwrap();
    let shown = shown(&db, run_id);

    // While B3 took writes, reversed replication ran behind them (the A2s' lag).
    let lags: Vec<&str> = step(&shown, "reversed_replication:app")["output"]["servers"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["lag"].as_str().unwrap())
        .collect();
    assert!(lags.iter().all(|lag| *lag != "P0D"), "{lags:?}");
    // The quiesce took every B3 out of the failover group, then waited for the A2s.
    let quiesce = &step(&shown, "quiesce")["output"];
    let quiesced_at = time_of(&quiesce["quiesced_at"]);
    assert!(
        time_of(&quiesce["caught_up_at"]) > quiesced_at,
        "{quiesce:#}"
    );
    let stats = sim.get("/_sim/stats").await;
    let new = |op: &str| mutations(&stats, op).split_off(mutations(&before, op).len());
    let deregistered: Vec<Value> = new("DeregisterTargets")
        .into_iter()
        .filter(|m| m["account"] == TARGET.0)
        .collect();
    assert_eq!(deregistered.len(), 1, "{deregistered:#?}");
    assert_eq!(target_ids(&deregistered[0]), b3s);
    // Every A3 holds data from after the quiesce: nothing B3 accepted is lost.
    let a3s = recovery_instances(&sim, SOURCE).await;
    assert_eq!(a3s.len(), 3);
    for a3 in &a3s {
        let data = time_of(&Value::from(a3.point_in_time_snapshot_date_time().unwrap()));
        assert!(data >= quiesced_at, "{a3:#?} before {quiesced_at}");
    }
}

/// Fails back with `[failback]` set to `settings` (appended to payments, written beside `db`).
async fn failback_with(sim: &TestSim, db: &Path, settings: &str) -> CliRun {
    let runbook = db.with_file_name("payments-failback.toml");
    std::fs::write(&runbook, format!("{PAYMENTS}\n[failback]\n{settings}")).unwrap();
    sim.run(db, "failback", runbook.to_str().unwrap()).await
}

async fn failback_group_vpc(sim: &TestSim) -> String {
    sim.target_group_vpc(SOURCE, FAILBACK_TG).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failback_subnet_outside_the_target_groups_vpc_fails_preflight_naming_the_fix() {
    let sim = TestSim::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    failed_over(&sim, &db).await;
    let (vpc, subnet) = sim.vpc_with_subnet(SOURCE, "10.88.0.0/16").await;
    let group_vpc = failback_group_vpc(&sim).await;
    assert_ne!(vpc, group_vpc);
    let before = sim.get("/_sim/stats").await;

    let run = failback_with(&sim, &db, &format!("subnet_id = \"{subnet}\"\n")).await;
    assert_eq!(run.code, 1, "{run:#?}");
    for expected in [
        format!("{subnet} ([failback] subnet_id) is in {vpc}"),
        format!("outside {group_vpc}"),
        format!("set `[failback] subnet_id` to a subnet of {group_vpc}"),
    ] {
        assert!(run.stderr.contains(&expected), "{expected}: {}", run.stderr);
    }
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(
        mutations(&stats, "ReverseReplication").len(),
        mutations(&before, "ReverseReplication").len(),
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failback_sets_each_a2s_launch_settings_so_a4_lands_in_the_target_groups_vpc() {
    let sim = TestSim::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    failed_over(&sim, &db).await;
    let group_vpc = failback_group_vpc(&sim).await;
    let a1 = protected_instances(&sim).await.into_iter().next().unwrap();
    let a1_subnet = sim
        .ec2(SOURCE.0, SOURCE.1)
        .describe_instances()
        .instance_ids(&a1)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .subnet_id()
        .unwrap()
        .to_string();
    let before = sim.get("/_sim/stats").await;

    let run = failback_with(
        &sim,
        &db,
        &format!("subnet_id = \"{a1_subnet}\"\ninstance_type = \"m5.xlarge\"\n"),
    )
    .await;
    assert_eq!(run.code, 0, "{run:#?}");
    let stats = sim.get("/_sim/stats").await;
    let new = |op: &str| mutations(&stats, op).split_off(mutations(&before, op).len());
    // One new template version per A2 (subnet, instance type), made the default, with DRS's
    // right-sizing off so that the type applies: in the origin, before any StartRecovery there.
    let versions = new("CreateLaunchTemplateVersion");
    assert_eq!(versions.len(), 3, "{versions:#?}");
    for v in &versions {
        assert_eq!(v["account"], SOURCE.0);
        assert_eq!(
            v["params"]["data"]["subnet_id"],
            a1_subnet.as_str(),
            "{v:#}"
        );
        assert_eq!(v["params"]["data"]["instance_type"], "m5.xlarge", "{v:#}");
    }
    assert_eq!(new("ModifyLaunchTemplate").len(), 3);
    let sizing: Vec<Value> = new("UpdateLaunchConfiguration")
        .into_iter()
        .filter(|m| m["account"] == SOURCE.0)
        .collect();
    assert_eq!(sizing.len(), 3, "{sizing:#?}");
    // A4 runs in the subnet, in the failback target group's VPC, with the instance type.
    let a4s: Vec<String> = recovery_instances(&sim, SOURCE)
        .await
        .iter()
        .map(|a3| a3.ec2_instance_id().unwrap().to_string())
        .collect();
    assert_eq!(a4s.len(), 3);
    let found = sim
        .ec2(SOURCE.0, SOURCE.1)
        .describe_instances()
        .set_instance_ids(Some(a4s))
        .send()
        .await
        .unwrap();
    for a4 in found.reservations().iter().flat_map(|r| r.instances()) {
        assert_eq!(a4.subnet_id(), Some(a1_subnet.as_str()), "{a4:#?}");
        assert_eq!(a4.vpc_id(), Some(group_vpc.as_str()), "{a4:#?}");
        assert_eq!(
            a4.instance_type().map(|t| t.as_str()),
            Some("m5.xlarge"),
            "{a4:#?}"
        );
    }
}

/// The members of the origin's (failback) target group that are not draining, any health.
async fn members(sim: &TestSim) -> Vec<String> {
    sim.target_group_members(SOURCE, FAILBACK_TG, |state| state != "draining")
        .await
}

fn replication_state(server: &aws_sdk_drs::types::SourceServer) -> String {
    server
        .data_replication_info()
        .unwrap()
        .data_replication_state()
        .unwrap()
        .as_str()
        .to_string()
}

async fn live_instances(sim: &TestSim, side: (&str, &str)) -> Vec<String> {
    let mut ids: Vec<String> = recovery_instances(sim, side)
        .await
        .iter()
        .filter(|i| i.ec2_instance_state().map(|s| s.as_str()) != Some("TERMINATED"))
        .map(|i| i.recovery_instance_id().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_of_a_failback_puts_traffic_back_on_the_failover_and_stops_reversed_replication() {
    let sim = TestSim::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let failover_id = failed_over(&sim, &db).await;
    let dns_after_failover = record_values(&sim).await;
    let origin_group_before = members(&sim).await;
    assert_eq!(
        origin_group_before.len(),
        2,
        "the A1s are in the origin group (stopped by the fence)"
    );
    let b2s = live_instances(&sim, TARGET).await;
    assert_eq!(b2s.len(), 3);

    // The failback quiesces B3 and cuts traffic back (both approved), then waits before its
    // cleanup.
    let b3s = failover_members(&sim).await;
    assert_eq!(b3s.len(), 2, "the app B3s serve in the failover group");
    let paused = sim
        .cli(&db, &["--output", "json", "failback", RUNBOOK])
        .await;
    assert_eq!(
        paused.code, 3,
        "paused at the quiesce approval: {paused:#?}"
    );
    let failback_id = paused.json()["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        failover_members(&sim).await,
        b3s,
        "nothing quiesced before the approval"
    );
    let approved = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "approve",
                &failback_id,
                "--step",
                "quiesce",
            ],
        )
        .await;
    assert_eq!(
        approved.code, 3,
        "paused at the DNS approval: {approved:#?}"
    );
    assert!(failover_members(&sim).await.is_empty(), "B3 quiesced");
    let approved = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "approve",
                &failback_id,
                "--step",
                "dns_cutover",
            ],
        )
        .await;
    assert_eq!(
        approved.code, 3,
        "paused at the cleanup approval: {approved:#?}"
    );
    assert_ne!(
        record_values(&sim).await,
        dns_after_failover,
        "DNS was cut back"
    );
    assert_ne!(members(&sim).await, origin_group_before, "the A4s serve");
    let a3s = live_instances(&sim, SOURCE).await;
    assert_eq!(a3s.len(), 3);
    assert!(
        assert_a2_linked_to_b1(&sim)
            .await
            .iter()
            .all(|a2| replication_state(a2) == "CONTINUOUS")
    );
    let before = sim.get("/_sim/stats").await;

    let rollback = sim.run(&db, "rollback", &failback_id).await;
    assert_eq!(rollback.code, 0, "{rollback:#?}");
    let report = rollback.json();
    let rollback_id = report["run_id"].as_str().unwrap().to_string();
    let keys = step_fields(&report, "key");
    assert_eq!(
        keys,
        [
            "undo:dns_cutover",
            "undo:lb_switch:app",
            "undo:quiesce",
            "undo:a2_recovery:app",
            "undo:a2_recovery:db",
            "undo:reversed_replication:app",
            "undo:reversed_replication:db"
        ]
    );
    assert_eq!(
        failover_members(&sim).await,
        b3s,
        "the B3s serve in the failover group again"
    );

    // Traffic is where the failover had put it.
    assert_eq!(record_values(&sim).await, dns_after_failover);
    sim.skip(600.0).await; // the A4s finish draining
    // The A1s the failover fenced are stopped: ELBv2 registers only running instances, so the
    // origin group is left without them (and the rollback says so) rather than failing.
    assert!(members(&sim).await.is_empty(), "{origin_group_before:?}");
    assert!(healthy_targets(&sim).await.is_empty());
    assert!(
        rollback.stderr.contains("is stopped: not registered in"),
        "{}",
        rollback.stderr
    );
    // The failback's A3s are terminated, its A2s stopped; the B2s keep serving.
    assert_eq!(live_instances(&sim, SOURCE).await, Vec::<String>::new());
    assert!(
        assert_a2_linked_to_b1(&sim)
            .await
            .iter()
            .all(|a2| replication_state(a2) == "STOPPED")
    );
    assert_eq!(live_instances(&sim, TARGET).await, b2s);

    // Each undo made its calls once, on the origin side (the zone belongs to the source account).
    let stats = sim.get("/_sim/stats").await;
    let new = |op: &str| mutations(&stats, op).split_off(mutations(&before, op).len());
    let stops = new("StopReplication");
    assert_eq!(stops.len(), 3, "{stops:#?}");
    let terminations = new("TerminateRecoveryInstances");
    assert_eq!(terminations.len(), 2, "one per wave: {terminations:#?}");
    let mut terminated: Vec<String> = terminations
        .iter()
        .flat_map(|m| {
            m["params"]["recoveryInstanceIDs"]
                .as_array()
                .unwrap()
                .clone()
        })
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    terminated.sort();
    assert_eq!(terminated, a3s, "exactly the A3s");
    let (b3_back, a1_back): (Vec<Value>, Vec<Value>) = new("RegisterTargets")
        .into_iter()
        .partition(|m| m["account"] == TARGET.0);
    assert_eq!(
        b3_back.len(),
        1,
        "undo:quiesce, in the recovery account: {b3_back:#?}"
    );
    assert!(
        a1_back.is_empty(),
        "the stopped A1s are not registered: {a1_back:#?}"
    );
    for op in [
        "StopReplication",
        "TerminateRecoveryInstances",
        "DeregisterTargets",
        "ChangeResourceRecordSets",
    ] {
        assert!(
            new(op).iter().all(|m| m["account"] == SOURCE.0),
            "{op} in the origin account: {:#?}",
            new(op)
        );
    }
    assert_eq!(new("ChangeResourceRecordSets").len(), 1);
    assert!(new("StartRecovery").is_empty() && new("ReverseReplication").is_empty());

    // The failback is rolled back; the three runs are linked in `history`.
    assert_eq!(shown(&db, &failback_id)["status"], "rolled_back");
    let history = history(&db);
    assert_eq!(
        history[&failover_id]["linked_runs"],
        serde_json::json!([failback_id])
    );
    assert_eq!(
        history[&failback_id]["linked_runs"],
        serde_json::json!([rollback_id])
    );
    assert_eq!(history[&rollback_id]["operation"], "rollback");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failback_drill_leaves_nothing_behind_and_a_real_failback_reuses_its_a2s() {
    let sim = TestSim::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    failed_over(&sim, &db).await;
    let dns_after_failover = record_values(&sim).await;
    let tg_after_failover = healthy_targets(&sim).await;
    let running = |instances: Vec<aws_sdk_drs::types::RecoveryInstance>| -> Vec<(String, String)> {
        instances
            .iter()
            .map(|i| {
                (
                    i.recovery_instance_id().unwrap().to_string(),
                    i.ec2_instance_state().unwrap().as_str().to_string(),
                )
            })
            .collect()
    };
    let b2s_before = running(recovery_instances(&sim, TARGET).await);
    assert_eq!(b2s_before.len(), 3);
    let b3s_serving = failover_members(&sim).await;
    assert_eq!(b3s_serving.len(), 2);
    let b3s: BTreeSet<String> = recovery_instances(&sim, TARGET)
        .await
        .iter()
        .map(|i| i.ec2_instance_id().unwrap().to_string())
        .collect();

    let run = sim
        .cli(
            &db,
            &["--output", "json", "failback", RUNBOOK, "--drill", "--yes"],
        )
        .await;
    assert_eq!(run.code, 0, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "succeeded");
    let drill_id = report["run_id"].as_str().unwrap();
    let keys = step_fields(&report, "key");
    assert!(
        !keys.contains(&"dns_cutover")
            && !keys.contains(&"lb_switch:app")
            && !keys.contains(&"quiesce"),
        "a drill moves no traffic: {keys:?}"
    );

    let stats = sim.get("/_sim/stats").await;
    let starts: Vec<Value> = mutations(&stats, "StartRecovery")
        .into_iter()
        .filter(|m| m["account"] == SOURCE.0)
        .collect();
    assert_eq!(starts.len(), 2);
    assert!(
        starts.iter().all(|m| m["params"]["isDrill"] == true),
        "A2 launched as a drill"
    );
    // Nothing behind: no A3 left, every A2 stopped, traffic and the failover's B2s untouched.
    assert!(
        recovery_instances(&sim, SOURCE).await.is_empty(),
        "the drill instances (A3) are terminated"
    );
    let a2s = assert_a2_linked_to_b1(&sim).await;
    assert!(a2s.iter().all(|s| replication_state(s) == "STOPPED"));
    assert_eq!(record_values(&sim).await, dns_after_failover);
    assert_eq!(healthy_targets(&sim).await, tg_after_failover);
    assert_eq!(
        running(recovery_instances(&sim, TARGET).await),
        b2s_before,
        "the failover's recovery instances keep serving"
    );
    assert!(b2s_before.iter().all(|(_, state)| state == "RUNNING"));
    // As EC2 and ELBv2 say it: the B3s run and still serve in the failover's target group; the
    // drill's A4s are terminated.
    assert_eq!(
        sim.instance_states(TARGET, &b3s).await,
        ["running", "running", "running"]
    );
    assert_eq!(failover_members(&sim).await, b3s_serving);
    let failover_health = sim
        .elbv2(TARGET.0, TARGET.1)
        .describe_target_health()
        .target_group_arn(FAILOVER_TG)
        .send()
        .await
        .unwrap();
    assert!(
        failover_health
            .target_health_descriptions()
            .iter()
            .all(|d| d.target_health().unwrap().state().unwrap().as_str() == "healthy"),
        "{failover_health:#?}"
    );
    let shown = shown(&db, drill_id);
    let a4s: BTreeSet<String> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "launch")
        .flat_map(|s| s["output"]["servers"].as_object().unwrap().values())
        .map(|v| v["ec2_instance_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(a4s.len(), 3, "{shown:#}");
    assert!(
        sim.instance_states(SOURCE, &a4s)
            .await
            .iter()
            .all(|s| s == "terminated" || s == "shutting-down"),
        "{a4s:?}"
    );

    // A real failback afterwards restarts the stopped A2s instead of reversing again.
    let run = sim.run(&db, "failback", RUNBOOK).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let stats = sim.get("/_sim/stats").await;
    let reversed_b2s = mutations(&stats, "ReverseReplication")
        .iter()
        .filter(|m| m["account"] == TARGET.0)
        .count();
    assert_eq!(reversed_b2s, 3, "one ReverseReplication per B2, ever");
    assert_eq!(mutations(&stats, "StartReplication").len(), 3);
    assert!(recovery_instances(&sim, TARGET).await.is_empty());
    assert_eq!(recovery_instances(&sim, SOURCE).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn failback_without_a_succeeded_failover_is_refused() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.cli(&db, &["failback", RUNBOOK, "--yes"]).await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("no failover of runbook payments has succeeded"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("drs-runbook failover"),
        "says what to do: {}",
        run.stderr
    );

    // A drill is not a failover to reverse.
    let drill = sim.run(&db, "drill", RUNBOOK).await;
    assert_eq!(drill.code, 0, "{drill:#?}");
    let drill_id = drill.json()["run_id"].as_str().unwrap().to_string();
    let run = sim
        .cli(&db, &["failback", RUNBOOK, "--from-run", &drill_id])
        .await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("it is a drill run, not a failover"),
        "{}",
        run.stderr
    );
    let stats = sim.get("/_sim/stats").await;
    assert!(mutations(&stats, "ReverseReplication").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uninitialized_origin_fails_preflight_naming_the_account_and_what_to_do() {
    let sim = TestSim::start(600.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    failed_over(&sim, &db).await;
    // The failback's first DescribeSourceServers is its look at the origin (source) side.
    let fault = serde_json::json!({ "faults": [{ "kind": "api_error", "service": "drs", "operation": "DescribeSourceServers", "error": "UninitializedAccountException", "count": 1 }] });
    assert_eq!(sim.post("/_sim/faults", &fault).await.0, 200);
    let run = sim.run(&db, "failback", RUNBOOK).await;
    assert_eq!(run.code, 1, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "failed");
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("step preflight failed"), "{error}");
    assert!(error.contains("drs:origin initialized"), "{error}");
    assert!(
        error.contains("source side's account 111111111111 region us-east-1"),
        "names the side and account: {error}"
    );
    assert!(
        error.contains("InitializeService"),
        "says what to do: {error}"
    );
    let stats = sim.get("/_sim/stats").await;
    assert!(
        mutations(&stats, "ReverseReplication").is_empty(),
        "nothing changed"
    );
}
