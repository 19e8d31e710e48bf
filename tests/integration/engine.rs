//! The engine end to end: the built binary drives the simulator (in process, on 127.0.0.1)
//! through the real SDK clients; the assertions read the simulated world back through the SDK
//! and `/_sim/stats`.

use crate::support::BINARY;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{
    CliRun, TestSim, binary, drs_runbook, mutations, repo_path, shown, step, step_fields,
};

const THREE_WAVES: &str = include_str!("../fixtures/engine/three-waves.toml");
const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
const REPORTING: &str = include_str!("../../runbooks/reporting-drill.toml");
const PAYMENTS_RUNBOOK: &str = "runbooks/payments.toml";

/// The values of the payments API's A record (`runbooks/payments.toml`'s zone, in the source
/// account).
async fn payments_dns(sim: &TestSim) -> Vec<String> {
    sim.a_record_values("111111111111", PAYMENTS_ZONE, PAYMENTS_NAME)
        .await
}

/// Writes a runbook text into the temp dir and returns its path.
fn runbook_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn servers_of(mutation: &Value) -> Vec<String> {
    mutation["params"]["sourceServers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["sourceServerID"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_of_three_waves_recovers_in_order_switches_traffic_and_measures() {
    let sim = TestSim::start(600.0).await;
    sim.seed(THREE_WAVES).await;
    let dir = tempfile::tempdir().unwrap();
    let runbook = runbook_file(dir.path(), "shop.toml", THREE_WAVES);
    let db = dir.path().join("runs.db");
    let run = sim.run(&db, "failover", runbook.to_str().unwrap()).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr.starts_with("run "),
        "the first stderr line names the run: {}",
        run.stderr
    );
    let report = run.json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["operation"], "failover");
    let keys = step_fields(&report, "key");
    assert_eq!(keys.first(), Some(&"preflight"));
    assert_eq!(keys.last(), Some(&"dns_cutover"));
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "succeeded")
    );
    assert!(report["rto_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["rpo_seconds"].as_f64().is_some());
    assert_eq!(report["objectives"]["rto_met"], true);

    // One StartRecovery per wave (all at once: converted ahead, booted in order, see
    // boot_order.rs), none a drill.
    let stats = sim.get("/_sim/stats").await;
    let starts = mutations(&stats, "StartRecovery");
    assert_eq!(starts.len(), 3, "one StartRecovery per wave: {starts:#?}");
    let mut waves: Vec<Vec<String>> = starts.iter().map(servers_of).collect();
    waves.sort();
    assert_eq!(
        waves,
        [
            vec!["s-00000000000000db1"],
            vec!["s-0000000000000app1", "s-0000000000000app2"],
            vec!["s-0000000000000web1"]
        ]
    );
    assert!(starts.iter().all(|m| m["params"]["isDrill"] != true));
    assert!(
        starts
            .iter()
            .all(|m| m["account"] == "555555555555" && m["region"] == "eu-central-1")
    );
    let drs = sim.drs("555555555555", "eu-central-1");
    let jobs = drs.describe_jobs().send().await.unwrap();
    let jobs: Vec<_> = jobs.items().to_vec();
    assert_eq!(jobs.len(), 3);
    // Tags name the run and the step, for reconciliation after a crash.
    let run_id = report["run_id"].as_str().unwrap();
    assert!(
        jobs.iter()
            .all(|j| j.tags().unwrap().get("drs-runbook:run").map(String::as_str) == Some(run_id))
    );

    // The app wave's recovered instances are healthy in the failover target group.
    let instances = drs.describe_recovery_instances().send().await.unwrap();
    let app_instances: Vec<String> = instances
        .items()
        .iter()
        .filter(|i| i.source_server_id().unwrap().contains("app"))
        .map(|i| i.ec2_instance_id().unwrap().to_string())
        .collect();
    assert_eq!(app_instances.len(), 2);
    let health = sim
        .elbv2("555555555555", "eu-central-1")
        .describe_target_health()
        .target_group_arn("arn:aws:elasticloadbalancing:eu-central-1:555555555555:targetgroup/shop-app/00000000000000aa")
        .send()
        .await
        .unwrap();
    let mut healthy: Vec<String> = health
        .target_health_descriptions()
        .iter()
        .filter(|d| d.target_health().unwrap().state().unwrap().as_str() == "healthy")
        .map(|d| d.target().unwrap().id().unwrap().to_string())
        .collect();
    healthy.sort();
    let mut expected = app_instances.clone();
    expected.sort();
    assert_eq!(healthy, expected);

    // DNS points at the web wave's recovered instance.
    let web_ips: Vec<String> = instances
        .items()
        .iter()
        .filter(|i| i.source_server_id() == Some("s-0000000000000web1"))
        .flat_map(|i| {
            i.recovery_instance_properties()
                .unwrap()
                .network_interfaces()
                .iter()
                .flat_map(|n| n.ips().to_vec())
        })
        .collect();
    assert_eq!(web_ips.len(), 1);
    assert_eq!(
        sim.a_record_values(
            "555555555555",
            "Z00000000000000SHOP1",
            "www.shop.example.com."
        )
        .await,
        web_ips
    );

    // `show` reads the run back with its AWS request IDs.
    let shown = shown(&db, run_id);
    assert_eq!(shown["status"], "succeeded");
    let effects = shown["effects"].as_array().unwrap();
    assert_eq!(
        effects
            .iter()
            .filter(|e| e["operation"] == "drs:StartRecovery")
            .count(),
        3
    );
    assert!(effects.iter().all(
        |e| e["state"] == "done" && e["aws_request_id"].as_str().is_some_and(|r| !r.is_empty())
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn drill_launches_validates_and_cleans_up_and_keep_keeps() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.run(&db, "drill", "runbooks/reporting-drill.toml").await;
    assert_eq!(run.code, 0, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["operation"], "drill");
    let stats = sim.get("/_sim/stats").await;
    let starts = mutations(&stats, "StartRecovery");
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0]["params"]["isDrill"], true);
    assert_eq!(mutations(&stats, "TerminateRecoveryInstances").len(), 1);
    let drs = sim.drs("444444444444", "eu-central-1");
    let left = drs.describe_recovery_instances().send().await.unwrap();
    assert!(
        left.items().is_empty(),
        "the drill left instances behind: {left:#?}"
    );
    // No DNS or load-balancer change in a drill.
    assert!(mutations(&stats, "ChangeResourceRecordSets").is_empty());
    assert!(mutations(&stats, "RegisterTargets").is_empty());

    // --keep: the drill instances stay, marked as drills.
    let run = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "drill",
                "runbooks/reporting-drill.toml",
                "--yes",
                "--keep",
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        !run.json()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "cleanup")
    );
    let kept = drs.describe_recovery_instances().send().await.unwrap();
    assert_eq!(kept.items().len(), 2);
    assert!(kept.items().iter().all(|i| i.is_drill() == Some(true)));
    assert_eq!(
        mutations(&sim.get("/_sim/stats").await, "TerminateRecoveryInstances").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_optional_server_may_fail_but_a_critical_one_fails_the_run_before_dns() {
    // Optional server fails: the run succeeds and DNS lists only the launched app server.
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    sim.faults(json!([{"kind": "launch_failure", "source_server_id": "s-34567890abcdef012"}]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.run(&db, "failover", PAYMENTS_RUNBOOK).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr.contains("optional server s-34567890abcdef012"),
        "{}",
        run.stderr
    );
    let drs = sim.drs("222222222222", "us-west-2");
    let instances = drs.describe_recovery_instances().send().await.unwrap();
    let app_ip: Vec<String> = instances
        .items()
        .iter()
        .filter(|i| i.source_server_id() == Some("s-234567890abcdef01"))
        .flat_map(|i| {
            i.recovery_instance_properties()
                .unwrap()
                .network_interfaces()
                .iter()
                .flat_map(|n| n.ips().to_vec())
        })
        .collect();
    assert_eq!(payments_dns(&sim).await, app_ip);

    // Critical server fails: exit 1 naming the server, the log event and a hint; no DNS change.
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let before = payments_dns(&sim).await;
    sim.faults(json!([{"kind": "launch_failure", "source_server_id": "s-1234567890abcdef0"}]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.run(&db, "failover", PAYMENTS_RUNBOOK).await;
    assert_eq!(run.code, 1, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "failed");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("launch:db"), "{error}");
    assert!(error.contains("s-1234567890abcdef0"), "{error}");
    assert!(error.contains("LAUNCH_FAILED"), "{error}");
    assert!(error.contains("hint:"), "{error}");
    let stats = sim.get("/_sim/stats").await;
    assert!(
        mutations(&stats, "ChangeResourceRecordSets").is_empty(),
        "no DNS change after a failed wave"
    );
    // Converted ahead, the app wave was launched STOPPED and never booted.
    assert_eq!(mutations(&stats, "StartRecovery").len(), 2);
    assert!(
        mutations(&stats, "StartInstances").is_empty(),
        "the app wave never booted"
    );
    assert_eq!(payments_dns(&sim).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_yes_and_a_tty_the_run_pauses_before_dns_and_approve_finishes_it() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let before = payments_dns(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim
        .cli(&db, &["--output", "json", "failover", PAYMENTS_RUNBOOK])
        .await;
    assert_eq!(run.code, 3, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "paused");
    assert_eq!(report["waiting_for"], "dns_cutover");
    let dns = step(&report, "dns_cutover");
    assert_eq!(dns["status"], "waiting_approval");
    assert!(mutations(&sim.get("/_sim/stats").await, "ChangeResourceRecordSets").is_empty());
    assert_eq!(payments_dns(&sim).await, before);
    let run_id = report["run_id"].as_str().unwrap().to_string();

    // A second failover of the same runbook is refused while this one holds the servers.
    let second = sim.cli(&db, &["failover", PAYMENTS_RUNBOOK, "--yes"]).await;
    assert_eq!(second.code, 4, "{second:#?}");
    assert!(
        second.stderr.contains(&run_id),
        "the refusal names the holding run: {}",
        second.stderr
    );

    // Approving an unknown step says which steps have a gate.
    let wrong = sim
        .cli(&db, &["approve", &run_id, "--step", "cleanup"])
        .await;
    assert_eq!(wrong.code, 2, "{wrong:#?}");
    assert!(wrong.stderr.contains("dns_cutover"), "{}", wrong.stderr);

    let id = run_id.clone();
    let approved = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "approve",
                &id,
                "--step",
                "dns_cutover",
                "--comment",
                "bridge call agreed",
            ],
        )
        .await;
    assert_eq!(approved.code, 0, "{approved:#?}");
    let report = approved.json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(
        mutations(&sim.get("/_sim/stats").await, "ChangeResourceRecordSets").len(),
        1
    );
    assert_ne!(payments_dns(&sim).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_the_steps_and_batches_and_calls_nothing() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let calls_before = sim.get("/_sim/stats").await["calls"].clone();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let plan = drs_runbook(
        &db,
        Some(&sim.endpoint),
        &["--output", "json", "plan", PAYMENTS_RUNBOOK, "--offline"],
    );
    assert_eq!(plan.code, 0, "{plan:#?}");
    let plan = plan.json();
    let keys = step_fields(&plan, "key");
    assert_eq!(
        keys,
        [
            "preflight",
            "fence_source",
            "recovery_job:db",
            "snapshot_conversion:db",
            "launch:db",
            "recovery_job:app",
            "snapshot_conversion:app",
            "launch:app",
            "boot:app",
            "lb_switch:app",
            "dns_cutover"
        ]
    );
    assert_eq!(plan["batches"].as_array().unwrap().len(), 2);
    assert_eq!(plan["records"][0]["name"], "api.payments.example.com.");
    // A failback plan: reversed replication first, the A2s recovered in the source side, traffic
    // back through the failback target group.
    let failback = drs_runbook(
        &db,
        Some(&sim.endpoint),
        &[
            "--output",
            "json",
            "plan",
            PAYMENTS_RUNBOOK,
            "--operation",
            "failback",
            "--offline",
        ],
    );
    assert_eq!(failback.code, 0, "{failback:#?}");
    let failback = failback.json();
    let keys = step_fields(&failback, "key");
    assert_eq!(keys[1], "reversed_replication:db");
    assert!(
        keys.contains(&"a2_recovery:app") && keys.contains(&"cleanup"),
        "{keys:?}"
    );
    assert!(
        failback["batches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["side"] == "source")
    );
    assert_eq!(
        failback["target_groups"][0]["target_group_arn"],
        "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/payments/fedcba9876543210"
    );
    let rollback = drs_runbook(
        &db,
        Some(&sim.endpoint),
        &["plan", PAYMENTS_RUNBOOK, "--operation", "rollback"],
    );
    assert_eq!(rollback.code, 2, "{rollback:#?}");
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(stats["calls"], calls_before, "plan made AWS calls");
    assert!(stats["mutations"].as_array().unwrap().is_empty());
    assert!(!db.exists(), "plan touched the database");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_command_works_on_a_fresh_machine_with_the_embedded_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = tokio::task::spawn_blocking(move || {
        binary()
            .current_dir(repo_path(""))
            .args([
                "--sim",
                "--output",
                "json",
                "failover",
                PAYMENTS_RUNBOOK,
                "--yes",
            ])
            .env_remove("DRS_RUNBOOK_DB")
            .env("XDG_STATE_HOME", &state)
            .env("DRS_RUNBOOK_SIM_SPEED", "600")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["status"], "succeeded");
    let db = dir.path().join("state/drs-runbook/runs.db");
    assert!(db.exists());
    assert!(dir.path().join("state/drs-runbook/sim-world.json").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_preflight_changes_nothing_says_why_and_does_not_block_the_corrected_run() {
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    // The target side's credentials may not describe source servers (a missing IAM permission).
    sim.faults(json!([{"kind": "api_error", "service": "drs", "operation": "DescribeSourceServers", "error": "AccessDeniedException", "count": 1}])).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.run(&db, "drill", "runbooks/reporting-drill.toml").await;
    assert_eq!(run.code, 1, "{run:#?}");
    let error = run.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("drs:DescribeSourceServers"), "{error}");
    assert!(error.contains("AccessDeniedException"), "{error}");
    assert!(error.contains("request ID"), "{error}");
    assert!(
        error.contains("IAM policy"),
        "the hint says what to check: {error}"
    );
    assert!(
        sim.get("/_sim/stats").await["mutations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The fix made, the same drill runs again at once: the failed run holds no servers.
    let again = sim.run(&db, "drill", "runbooks/reporting-drill.toml").await;
    assert_eq!(again.code, 0, "{again:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_back_failover_is_not_rolled_back_before_its_failback() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let failover = sim.run(&db, "failover", PAYMENTS_RUNBOOK).await;
    assert_eq!(failover.code, 0, "{failover:#?}");
    let failover_id = failover.json()["run_id"].as_str().unwrap().to_string();
    let failback = sim.run(&db, "failback", PAYMENTS_RUNBOOK).await;
    assert_eq!(failback.code, 0, "{failback:#?}");
    let failback_id = failback.json()["run_id"].as_str().unwrap().to_string();
    let mutations_before = sim.get("/_sim/stats").await["mutations"]
        .as_array()
        .unwrap()
        .len();
    let refused = sim.cli(&db, &["rollback", &failover_id, "--yes"]).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused.stderr.contains(&failback_id),
        "the refusal names the failback: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("roll back the failback first"),
        "{}",
        refused.stderr
    );
    // The failback itself terminated the recovery instances in its cleanup: it cannot be
    // undone either, and says what to do instead.
    let refused = sim.cli(&db, &["rollback", &failback_id, "--yes"]).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused.stderr.contains("run a new failover"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        sim.get("/_sim/stats").await["mutations"]
            .as_array()
            .unwrap()
            .len(),
        mutations_before,
        "nothing changed"
    );
}

/// A webhook receiver on 127.0.0.1 that keeps every JSON body POSTed to it.
async fn webhook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_posts_the_run_report_when_a_run_pauses_and_when_it_ends() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let (url, received) = webhook().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let paused = sim
        .cli(
            &db,
            &[
                "--output",
                "json",
                "failover",
                PAYMENTS_RUNBOOK,
                "--notify",
                &url,
            ],
        )
        .await;
    assert_eq!(paused.code, 3, "{paused:#?}");
    let run_id = paused.json()["run_id"].as_str().unwrap().to_string();
    {
        let bodies = received.lock().unwrap();
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["run_id"], run_id.as_str());
        assert_eq!(bodies[0]["status"], "paused");
        assert_eq!(bodies[0]["waiting_for"], "dns_cutover");
    }
    let id = run_id.clone();
    let done = sim
        .cli(&db, &["--output", "json", "approve", &id, "--notify", &url])
        .await;
    assert_eq!(done.code, 0, "{done:#?}");
    let bodies = received.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1]["status"], "succeeded");
    assert_eq!(bodies[1]["operation"], "failover");
    assert_eq!(
        bodies[1],
        done.json(),
        "the notification is the report the command printed"
    );
}

#[test]
fn a_notification_that_fails_is_a_warning_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of loopback: the POST fails at once.
    let run = drs_runbook(
        &dir.path().join("runs.db"),
        None,
        &[
            "--sim",
            "--output",
            "json",
            "drill",
            "runbooks/reporting-drill.toml",
            "--yes",
            "--notify",
            "http://127.0.0.1:9/hook",
        ],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr
            .contains("warning: the notification to http://127.0.0.1:9/hook failed"),
        "{}",
        run.stderr
    );
}

/// Runs the binary on a pseudo-terminal (util-linux `script`), typing `answer` at its prompt.
fn drs_runbook_on_a_terminal(db: &Path, endpoint: &str, args: &[&str], answer: &str) -> CliRun {
    use std::io::Write;
    let mut command_line = format!("{} --db {} --endpoint-url {endpoint}", BINARY, db.display());
    for arg in args {
        command_line.push(' ');
        command_line.push_str(arg);
    }
    let mut child = Command::new("script")
        .args(["-qec", &command_line, "/dev/null"])
        .current_dir(repo_path(""))
        .env_remove("DRS_RUNBOOK_DB")
        .env("DRS_RUNBOOK_OPERATOR", "test-operator")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs (Debian's bsdutils)");
    // Typed ahead: the terminal keeps the line until the prompt reads it.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    CliRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_the_operator_is_asked_and_yes_continues_while_no_pauses() {
    for (answer, code, changed) in [("y\n", 0, true), ("n\n", 3, false)] {
        let sim = TestSim::start(600.0).await;
        sim.seed(PAYMENTS).await;
        let seeded = payments_dns(&sim).await;
        assert!(!seeded.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let (db, endpoint) = (dir.path().join("runs.db"), sim.endpoint.clone());
        let run = tokio::task::spawn_blocking(move || {
            drs_runbook_on_a_terminal(&db, &endpoint, &["failover", PAYMENTS_RUNBOOK], answer)
        })
        .await
        .unwrap();
        // On a terminal, stdout and stderr both go to it.
        assert!(run.stdout.contains("Approve step dns_cutover?"), "{run:#?}");
        // The status line (indicatif) showed what ran, beside the plain lines.
        assert!(run.stdout.contains("] running: launch:app"), "{run:#?}");
        assert_eq!(run.code, code, "answer {answer:?}: {run:#?}");
        let dns_changes =
            mutations(&sim.get("/_sim/stats").await, "ChangeResourceRecordSets").len();
        assert_eq!(dns_changes == 1, changed, "answer {answer:?}: {run:#?}");
        // Before asking, the prompt lists the record with its values now and after.
        let change = prompt_line(&run.stdout, "upsert api.payments.example.com. A");
        assert!(
            change
                .starts_with("upsert api.payments.example.com. A in zone Z0123456789ABCDEFGHIJ: "),
            "{change}"
        );
        let (old, new) = change.split_once(" -> ").expect("old -> new");
        for ip in &seeded {
            assert!(old.contains(ip.as_str()), "{ip} in {old}");
        }
        if changed {
            let now = payments_dns(&sim).await;
            assert_ne!(now, seeded);
            assert!(new.starts_with(&now.join(", ")), "{now:?} in {new}");
        }
    }
}

const PAYMENTS_ZONE: &str = "Z0123456789ABCDEFGHIJ";
const PAYMENTS_NAME: &str = "api.payments.example.com.";

/// The line of the prompt that starts with `start`, without the terminal's carriage return.
fn prompt_line(screen: &str, start: &str) -> String {
    screen
        .lines()
        .map(|l| l.trim_end_matches('\r').trim())
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in {screen}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_run_says_in_json_what_its_gate_would_change() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let seeded = payments_dns(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = drs_runbook(
        &db,
        Some(&sim.endpoint),
        &["--output", "json", "failover", PAYMENTS_RUNBOOK],
    );
    assert_eq!(run.code, 3, "{run:#?}");
    let paused = run.json();
    assert_eq!(paused["status"], "paused");
    let gate = &paused["approvals"][0];
    assert_eq!(gate["step"], "dns_cutover", "{paused}");
    let change = &gate["changes"][0];
    assert_eq!(change["action"], "upsert");
    assert_eq!(
        change["resource"],
        format!("{PAYMENTS_NAME} A in zone {PAYMENTS_ZONE}")
    );
    let before = change["before"].as_str().unwrap();
    for ip in &seeded {
        assert!(before.contains(ip.as_str()), "{ip} in {before}");
    }
    // The new values are the recovered instances' IPs, as the launch step recorded them.
    let shown = drs_runbook(
        &db,
        None,
        &[
            "--output",
            "json",
            "show",
            paused["run_id"].as_str().unwrap(),
        ],
    )
    .json();
    let launch = step(&shown, "launch:app");
    let mut recovered: Vec<String> = launch["output"]["servers"]
        .as_object()
        .unwrap()
        .values()
        .filter(|s| s["launch_status"] == "LAUNCHED" && s["passed_over"].is_null())
        .flat_map(|s| s["private_ips"].as_array().unwrap().clone())
        .map(|ip| ip.as_str().unwrap().to_string())
        .collect();
    recovered.sort();
    assert!(!recovered.is_empty(), "{launch}");
    assert_eq!(
        change["after"],
        format!("{} (TTL 60)", recovered.join(", ")),
        "{paused}"
    );
    // Nothing changed yet.
    assert_eq!(payments_dns(&sim).await, seeded);

    // Rolled back without a terminal, the run pauses before terminating the recovery
    // instances, and names each one DRS has.
    let rollback = drs_runbook(
        &db,
        Some(&sim.endpoint),
        &[
            "--output",
            "json",
            "rollback",
            paused["run_id"].as_str().unwrap(),
        ],
    );
    assert_eq!(rollback.code, 3, "{rollback:#?}");
    let gates = rollback.json()["approvals"].as_array().unwrap().clone();
    let mut named: Vec<String> = gates
        .iter()
        .flat_map(|g| g["changes"].as_array().unwrap().clone())
        .map(|c| {
            assert_eq!(c["action"], "terminate", "{c}");
            c["resource"].as_str().unwrap().to_string()
        })
        .collect();
    named.sort();
    let described = sim
        .drs("222222222222", "us-west-2")
        .describe_recovery_instances()
        .send()
        .await
        .unwrap();
    let mut live: Vec<String> = described
        .items()
        .iter()
        .map(|i| format!("recovery instance {}", i.recovery_instance_id().unwrap()))
        .collect();
    live.sort();
    assert_eq!(named, live);
    assert_eq!(live.len(), 3, "db and the two app servers: {live:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_point_in_time_failover_recovers_from_that_snapshot_and_measures_the_rpo() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let now = sim.get("/_sim/clock").await["now"]
        .as_str()
        .unwrap()
        .to_string();
    let now = chrono::DateTime::parse_from_rfc3339(&now).unwrap();
    // Before the ransomware hit, 25 minutes ago (on the simulated clock).
    let before = (now - chrono::Duration::minutes(25))
        .with_timezone(&chrono::Utc)
        .to_rfc3339();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = crate::support::drs_runbook_async(
        &db,
        Some(&sim.endpoint),
        &[
            "--output",
            "json",
            "failover",
            PAYMENTS_RUNBOOK,
            "--yes",
            "--point-in-time",
            &before,
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{run:#?}");
    let report = run.json();
    let starts = mutations(&sim.get("/_sim/stats").await, "StartRecovery");
    assert_eq!(starts.len(), 2);
    for start in &starts {
        for server in start["params"]["sourceServers"].as_array().unwrap() {
            let snapshot = server["recoverySnapshotID"].as_str().unwrap_or_default();
            assert!(
                snapshot.starts_with("pit-"),
                "every server recovers from a snapshot: {start}"
            );
        }
    }
    // Snapshots are 10 minutes apart: the one used is 25 to 35 minutes old at the declaration.
    // The planned failover fenced the source: what it wrote until then is lost too.
    let run_id = report["run_id"].as_str().unwrap();
    let fence = crate::support::stored_step(&db, run_id, "fence_source")
        .await
        .output;
    let fenced_at =
        chrono::DateTime::parse_from_rfc3339(fence["fenced_at"].as_str().unwrap()).unwrap();
    let fence_delay = (fenced_at - now).num_seconds() as f64;
    let rpo = report["rpo_seconds"].as_f64().unwrap();
    assert!(
        (25.0 * 60.0 + fence_delay..=36.0 * 60.0 + fence_delay).contains(&rpo),
        "RPO {rpo}, fenced {fence_delay}s after the declaration"
    );
    assert_eq!(
        report["objectives"]["rpo_met"], false,
        "15m objective, 25m+ of data lost"
    );
}
