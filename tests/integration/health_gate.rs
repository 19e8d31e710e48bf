//! The engine's health gate end to end: a wave counts as recovered only when its critical
//! instances run with both EC2 status checks passed. An impaired critical instance holds its
//! wave and DNS and fails the step naming server, instance and check; an impaired optional one
//! is reported and left out of DNS. The run's IPs come from EC2.

use serde_json::json;

use crate::support::{TestSim, drs_runbook, mutations};

const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
const ZONE: &str = "Z0123456789ABCDEFGHIJ";
const NAME: &str = "api.payments.example.com.";

/// The values of the payments A record.
async fn record_values(sim: &TestSim) -> Vec<String> {
    sim.a_record_values("111111111111", ZONE, NAME).await
}

/// Runs a failover of `runbook_text` against the simulator.
async fn failover(sim: &TestSim, runbook_text: &str) -> crate::support::CliRun {
    let dir = tempfile::tempdir().unwrap();
    sim.failover_text(dir.path(), runbook_text).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_impaired_critical_instance_holds_its_wave_and_dns() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let before = record_values(&sim).await;
    sim.faults(json!([{"kind": "impaired_instance", "source_server_id": "s-1234567890abcdef0"}]))
        .await;
    // A short boot timeout on the db wave (the key is validated like every other).
    let text = PAYMENTS.replacen(
        "name = \"db\"\n",
        "name = \"db\"\nboot_timeout = \"6m\"\n",
        1,
    );
    assert_ne!(text, PAYMENTS);
    let run = failover(&sim, &text).await;
    assert_eq!(run.code, 1, "{run:#?}");
    let report = run.json();
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("launch:db"), "{error}");
    assert!(error.contains("s-1234567890abcdef0"), "{error}");
    assert!(error.contains("instance status check impaired"), "{error}");
    assert!(error.contains("6 min"), "{error}");
    assert!(
        error.contains("hint:") && error.contains("boot_timeout"),
        "{error}"
    );
    let drs = sim.drs("222222222222", "us-west-2");
    let instances = drs.describe_recovery_instances().send().await.unwrap();
    let db_instance = instances
        .items()
        .iter()
        .find(|i| i.source_server_id() == Some("s-1234567890abcdef0"))
        .and_then(|i| i.ec2_instance_id())
        .unwrap()
        .to_string();
    assert!(error.contains(&db_instance), "{error} names {db_instance}");
    let stats = sim.get("/_sim/stats").await;
    assert!(mutations(&stats, "ChangeResourceRecordSets").is_empty());
    // Converted ahead, the app wave was launched STOPPED and never started; its servers'
    // launch configurations end the failed run as they began.
    assert_eq!(mutations(&stats, "StartRecovery").len(), 2);
    assert_eq!(
        stats["calls"]["ec2:StartInstances"].as_u64().unwrap_or(0),
        0,
        "the app wave never booted"
    );
    for server in ["s-234567890abcdef01", "s-34567890abcdef012"] {
        let config = drs
            .get_launch_configuration()
            .source_server_id(server)
            .send()
            .await
            .unwrap();
        assert_eq!(
            config.launch_disposition().map(|d| d.as_str()),
            Some("STARTED"),
            "{server}"
        );
    }
    assert_eq!(record_values(&sim).await, before, "DNS unchanged");
    assert!(
        stats["calls"]["ec2:DescribeInstanceStatus"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_impaired_optional_instance_is_reported_and_passed_over() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    sim.faults(json!([{"kind": "impaired_instance", "source_server_id": "s-34567890abcdef012", "check": "system"}])).await;
    let run = failover(&sim, PAYMENTS).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr
            .contains("optional server s-34567890abcdef012 did not pass the health gate"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("system status check impaired"),
        "{}",
        run.stderr
    );
    // DNS carries the healthy app server only, with its address as EC2 reports it.
    let drs = sim.drs("222222222222", "us-west-2");
    let instances = drs.describe_recovery_instances().send().await.unwrap();
    let app = instances
        .items()
        .iter()
        .find(|i| i.source_server_id() == Some("s-234567890abcdef01"))
        .and_then(|i| i.ec2_instance_id())
        .unwrap()
        .to_string();
    let ec2 = sim.ec2("222222222222", "us-west-2");
    let described = ec2
        .describe_instances()
        .instance_ids(&app)
        .send()
        .await
        .unwrap();
    let ip = described.reservations()[0].instances()[0]
        .private_ip_address()
        .unwrap()
        .to_string();
    assert_eq!(record_values(&sim).await, vec![ip]);
    // The impaired optional instance is not behind the load balancer either.
    let impaired = instances
        .items()
        .iter()
        .find(|i| i.source_server_id() == Some("s-34567890abcdef012"))
        .and_then(|i| i.ec2_instance_id())
        .unwrap()
        .to_string();
    let health = sim
        .elbv2("222222222222", "us-west-2")
        .describe_target_health()
        .target_group_arn("arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123456789abcdef")
        .send()
        .await
        .unwrap();
    let registered: Vec<&str> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target().and_then(|t| t.id()))
        .collect();
    assert!(registered.contains(&app.as_str()), "{registered:?}");
    assert!(!registered.contains(&impaired.as_str()), "{registered:?}");
}

#[test]
fn a_boot_timeout_that_is_not_a_duration_is_a_runbook_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payments.toml");
    std::fs::write(
        &path,
        PAYMENTS.replacen(
            "name = \"db\"\n",
            "name = \"db\"\nboot_timeout = \"soon\"\n",
            1,
        ),
    )
    .unwrap();
    let run = drs_runbook(
        &dir.path().join("runs.db"),
        None,
        &["validate", path.to_str().unwrap()],
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("wave[0].boot_timeout"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("payments.toml:23"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fast_recovery_mode_server_fails_over_without_conversion_events() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let drs = sim.drs("222222222222", "us-west-2");
    drs.update_launch_configuration()
        .source_server_id("s-1234567890abcdef0")
        .recovery_mode(aws_sdk_drs::types::RecoveryMode::Fast)
        .send()
        .await
        .unwrap();
    let run = failover(&sim, PAYMENTS).await;
    assert_eq!(run.code, 0, "{run:#?}");
    // The db job's log: a snapshot, a launch and its LAUNCH_END, no conversion.
    let jobs = drs.describe_jobs().send().await.unwrap();
    let db_job = jobs
        .items()
        .iter()
        .find(|j| {
            j.participating_servers()
                .iter()
                .any(|s| s.source_server_id() == Some("s-1234567890abcdef0"))
        })
        .unwrap();
    let log = drs
        .describe_job_log_items()
        .job_id(db_job.job_id())
        .send()
        .await
        .unwrap();
    let events: Vec<String> = log
        .items()
        .iter()
        .filter_map(|i| i.event().map(|e| e.as_str().to_string()))
        .collect();
    assert!(
        !events.iter().any(|e| e.starts_with("CONVERSION")),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e == "LAUNCH_END"), "{events:?}");
}
