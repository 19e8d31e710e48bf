//! Preflight, `plan` and `doctor` read the launch settings (issue 11, item 5): a launch
//! template moved to a subnet of another VPC than its wave's target group fails preflight with
//! the fix and sends no StartRecovery; `plan` shows `launchDisposition` and `recoveryMode` when
//! AWS answers and "not read" when it does not; an unplanned failover reads them in the target
//! region only. The launch template is edited as an operator would, through the real EC2 SDK.

use serde_json::{Value, json};
use std::path::Path;

use crate::support::{TestSim, doctor_check, drs_runbook_async, mutations, shown, step_output};

const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
const RUNBOOK: &str = "runbooks/payments.toml";
const REPORTING: &str = include_str!("../../runbooks/reporting-drill.toml");
const TARGET_ACCOUNT: &str = "222222222222";
const TARGET_REGION: &str = "us-west-2";
const APP: &str = "s-234567890abcdef01";
const APP_GROUP: &str =
    "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123456789abcdef";

/// What preflight recorded in a failover (with `extra` arguments) of runbook `text`, made to
/// pause for approval before its first recovery job: the run stops right after preflight
/// (exit 3), having recovered nothing.
async fn preflight_output(sim: &TestSim, dir: &Path, text: &str, extra: &[&str]) -> Value {
    let text = match text.find("[approvals]") {
        Some(at) => {
            let end = text[at..].find("\n\n").map_or(text.len(), |n| at + n);
            format!(
                "{}[approvals]\nbefore = [\"recovery_job\"]{}",
                &text[..at],
                &text[end..]
            )
        }
        None => format!("{text}\n[approvals]\nbefore = [\"recovery_job\"]\n"),
    };
    let path = dir.join("runbook.toml");
    std::fs::write(&path, text).unwrap();
    let db = dir.join("runs.db");
    let mut args = vec!["--output", "json", "failover", path.to_str().unwrap()];
    args.extend(extra);
    let run = sim.cli(&db, &args).await;
    assert_eq!(run.code, 3, "paused after preflight: {run:#?}");
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    step_output(&shown(&db, &run_id), "preflight")
}

/// Moves `server`'s launch template to a new subnet in a new VPC, as an operator would: a new
/// template version made the default one. Returns (template ID, new version, subnet, VPC).
async fn move_to_another_vpc(
    sim: &TestSim,
    (account, region): (&str, &str),
    server: &str,
) -> (String, i64, String, String) {
    let (vpc, subnet) = sim.vpc_with_subnet((account, region), "10.77.0.0/16").await;
    let ec2 = sim.ec2(account, region);
    let template = sim
        .drs(account, region)
        .get_launch_configuration()
        .source_server_id(server)
        .send()
        .await
        .unwrap()
        .ec2_launch_template_id()
        .unwrap()
        .to_string();
    let version = ec2
        .create_launch_template_version()
        .launch_template_id(&template)
        .source_version("1")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .network_interfaces(
                    aws_sdk_ec2::types::LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                        .device_index(0)
                        .subnet_id(&subnet)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .launch_template_version()
        .unwrap()
        .version_number()
        .unwrap();
    ec2.modify_launch_template()
        .launch_template_id(&template)
        .default_version(version.to_string())
        .send()
        .await
        .unwrap();
    (template, version, subnet, vpc)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeded_world_passes_preflight_which_records_what_it_read() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let dir = tempfile::tempdir().unwrap();
    let output = preflight_output(&sim, dir.path(), PAYMENTS, &[]).await;
    let servers = output["launch_settings"]["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{output}");
    let group_vpc = output["launch_settings"]["target_groups"][0]["vpc_id"].clone();
    assert!(group_vpc.is_string(), "{output}");
    for s in servers {
        assert_eq!(s["launch_disposition"], "STARTED", "{s}");
        assert_eq!(s["recovery_mode"], "OPTIMAL", "{s}");
        assert_eq!(s["right_sizing"], "BASIC", "{s}");
        assert_eq!(s["copy_private_ip"], false, "{s}");
        assert_eq!(s["launch_template_version"], 1, "{s}");
        assert!(
            s["instance_type"].is_string() && s["subnet_id"].is_string(),
            "{s}"
        );
        // Every seeded template launches into the VPC of the app wave's target group.
        assert_eq!(s["vpc_id"], group_vpc, "{s}");
    }
    let launch_checks: Vec<&Value> = output["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("launch:"))
        .collect();
    assert_eq!(launch_checks.len(), 3, "{output}");
    assert!(
        launch_checks.iter().all(|c| c["status"] == "pass"),
        "{launch_checks:?}"
    );
    assert!(mutations(&sim.get("/_sim/stats").await, "StartRecovery").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_moved_to_another_vpc_fails_preflight_with_the_fix_and_doctor_reports_it() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let (template, version, subnet, vpc) =
        move_to_another_vpc(&sim, (TARGET_ACCOUNT, TARGET_REGION), APP).await;
    let group_vpc = sim
        .target_group_vpc((TARGET_ACCOUNT, TARGET_REGION), APP_GROUP)
        .await;
    assert_ne!(group_vpc, vpc);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.run(&db, "failover", RUNBOOK).await;
    assert_eq!(run.code, 1, "{run:#?}");
    let said = format!("{}\n{}", run.stdout, run.stderr);
    for part in [
        APP,
        &format!("launch template {template} version {version}"),
        &format!("subnet {subnet} in {vpc}"),
        &format!("target group {APP_GROUP} is in {group_vpc}"),
        &format!("aws ec2 create-launch-template-version --launch-template-id {template}"),
        "aws ec2 modify-launch-template",
        &format!("<a subnet of {group_vpc}>"),
    ] {
        assert!(said.contains(part), "missing {part:?} in {said}");
    }
    // Only the moved server fails; the others pass.
    assert!(!said.contains("s-1234567890abcdef0 (wave"), "{said}");
    assert!(
        mutations(&sim.get("/_sim/stats").await, "StartRecovery").is_empty(),
        "preflight failed before anything was recovered"
    );

    let doctor = sim.cli(&db, &["--output", "json", "doctor", RUNBOOK]).await;
    assert_eq!(doctor.code, 1, "{doctor:#?}");
    let report = doctor.json();
    let check = doctor_check(&report, &format!("drs.launch:{APP}"));
    assert_eq!(check["status"], "FAIL", "{check}");
    let found = check["found"].as_str().unwrap();
    assert!(
        found.contains(&subnet) && found.contains(&vpc) && found.contains(&group_vpc),
        "{check}"
    );
    assert!(
        check["fix"]
            .as_str()
            .unwrap()
            .contains("aws ec2 modify-launch-template"),
        "{check}"
    );
    let db_check = doctor_check(&report, "drs.launch:s-1234567890abcdef0");
    assert_eq!(db_check["status"], "PASS", "{db_check}");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_warns_of_a_stopped_disposition_in_a_wave_without_dependencies() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let drs = sim.drs(TARGET_ACCOUNT, TARGET_REGION);
    for server in ["s-1234567890abcdef0", APP] {
        drs.update_launch_configuration()
            .source_server_id(server)
            .launch_disposition(aws_sdk_drs::types::LaunchDisposition::Stopped)
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let doctor = sim
        .cli(
            &dir.path().join("runs.db"),
            &["--output", "json", "doctor", RUNBOOK],
        )
        .await;
    let report = doctor.json();
    let status = |id: &str| doctor_check(&report, &format!("drs.launch:{id}"))["status"].clone();
    // db waits for nothing: its instance would come up stopped with nothing to start it.
    assert_eq!(status("s-1234567890abcdef0"), "WARN", "{report}");
    // app comes after db: a stopped launch there is not flagged.
    assert_eq!(status(APP), "PASS", "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_the_launch_settings_it_reads_and_marks_them_not_read_when_aws_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    // The embedded simulator (`--sim`), seeded from the runbook.
    let embedded = drs_runbook_async(
        &db,
        None,
        &["--sim", "--output", "json", "plan", RUNBOOK],
        &[],
    )
    .await;
    assert_eq!(embedded.code, 0, "{embedded:#?}");
    let launch = embedded.json()["launch_settings"].clone();
    assert_eq!(launch["status"], "read", "{launch}");
    assert_eq!(launch["region"], TARGET_REGION);
    let servers = launch["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    assert!(
        servers.iter().all(|s| s["launch_disposition"] == "STARTED"
            && s["recovery_mode"] == "OPTIMAL"
            && s["right_sizing"] == "BASIC"),
        "{launch}"
    );
    assert_eq!(launch["problems"], json!([]));

    // A simulator where one server was switched to FAST and STOPPED: plan shows it, and
    // changes nothing.
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    sim.drs(TARGET_ACCOUNT, TARGET_REGION)
        .update_launch_configuration()
        .source_server_id(APP)
        .recovery_mode(aws_sdk_drs::types::RecoveryMode::Fast)
        .launch_disposition(aws_sdk_drs::types::LaunchDisposition::Stopped)
        .send()
        .await
        .unwrap();
    let mutations_before = sim.get("/_sim/stats").await["mutations"].clone();
    let text = sim.cli(&db, &["plan", RUNBOOK]).await;
    assert_eq!(text.code, 0, "{text:#?}");
    assert!(
        text.stdout.contains(&format!(
            "wave app {APP}: launchDisposition STOPPED, recoveryMode FAST, right-sizing BASIC"
        )),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("launch settings (read in 222222222222/us-west-2)"),
        "{}",
        text.stdout
    );
    assert_eq!(
        sim.get("/_sim/stats").await["mutations"],
        mutations_before,
        "plan changed nothing"
    );

    // Nothing answers on this port: plan still succeeds and says what it could not read.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let started = std::time::Instant::now();
    let (json_run, text_run) = (
        drs_runbook_async(
            &db,
            Some(&unreachable),
            &["--output", "json", "plan", RUNBOOK],
            &credentials,
        )
        .await,
        drs_runbook_async(&db, Some(&unreachable), &["plan", RUNBOOK], &credentials).await,
    );
    assert_eq!(json_run.code, 0, "{json_run:#?}");
    let launch = json_run.json()["launch_settings"].clone();
    assert_eq!(launch["status"], "not read", "{launch}");
    assert!(launch["reason"].as_str().unwrap().len() > 10, "{launch}");
    assert!(
        launch["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["launch_disposition"] == "not read"
                && s["recovery_mode"] == "not read"
                && s["right_sizing"] == "not read"),
        "{launch}"
    );
    assert_eq!(text_run.code, 0, "{text_run:#?}");
    assert!(
        text_run.stdout.contains("launch settings: not read (")
            && text_run.stdout.contains(&format!(
                "wave app {APP}: launchDisposition not read, recoveryMode not read, right-sizing not read"
            )),
        "{}",
        text_run.stdout
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "an unreachable AWS does not hold plan up: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unplanned_failover_reads_the_launch_settings_in_the_target_region_only() {
    const ACCOUNT: &str = "444444444444";
    let sim = TestSim::start(600.0).await;
    sim.seed(REPORTING).await;
    let (status, _) = sim
        .post(
            "/_sim/faults",
            &json!({"faults": [{"kind": "source_outage", "account_id": ACCOUNT, "region": "eu-west-1"}]}),
        )
        .await;
    assert_eq!(status, 200);
    sim.skip(10.0 * 60.0).await;
    let dir = tempfile::tempdir().unwrap();
    let source_calls = |stats: &Value| {
        stats["scopes"][format!("{ACCOUNT}/eu-west-1")]
            .as_u64()
            .unwrap_or(0)
    };
    let before = source_calls(&sim.get("/_sim/stats").await);
    let output = preflight_output(&sim, dir.path(), REPORTING, &["--mode", "unplanned"]).await;
    let servers = output["launch_settings"]["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{output}");
    assert!(
        servers
            .iter()
            .all(|s| s["launch_disposition"] == "STARTED" && s["subnet_id"].is_string()),
        "{output}"
    );
    assert_eq!(
        source_calls(&sim.get("/_sim/stats").await),
        before,
        "no call to the failed source region"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failback_checks_the_launch_settings_of_the_a2s_it_adopts() {
    const SOURCE: (&str, &str) = ("111111111111", "us-east-1");
    const FAILBACK_GROUP: &str =
        "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/payments/fedcba9876543210";
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let failover = sim.run(&db, "failover", RUNBOOK).await;
    assert_eq!(failover.code, 0, "{failover:#?}");
    // Replication reversed ahead of the failback, as operators often do: the A2s exist, each
    // with its launch template in the origin region.
    let target = sim.drs(TARGET_ACCOUNT, TARGET_REGION);
    let b2s = target.describe_recovery_instances().send().await.unwrap();
    for b2 in b2s.items() {
        target
            .reverse_replication()
            .recovery_instance_id(b2.recovery_instance_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    let b1_arn = target
        .describe_source_servers()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .find(|s| s.source_server_id() == Some(APP))
        .and_then(|s| s.arn().map(str::to_string))
        .unwrap();
    let a2 = sim
        .drs(SOURCE.0, SOURCE.1)
        .describe_source_servers()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .find(|s| s.reversed_direction_source_server_arn() == Some(b1_arn.as_str()))
        .and_then(|s| s.source_server_id().map(str::to_string))
        .unwrap();
    let (template, version, subnet, vpc) = move_to_another_vpc(&sim, SOURCE, &a2).await;
    let starts_before = mutations(&sim.get("/_sim/stats").await, "StartRecovery").len();

    let failback = sim.run(&db, "failback", RUNBOOK).await;
    assert_eq!(failback.code, 1, "{failback:#?}");
    let said = format!("{}\n{}", failback.stdout, failback.stderr);
    for part in [
        a2.as_str(),
        &format!("launch template {template} version {version}"),
        &format!("subnet {subnet} in {vpc}"),
        FAILBACK_GROUP,
        "--region us-east-1",
    ] {
        assert!(said.contains(part), "missing {part:?} in {said}");
    }
    assert_eq!(
        mutations(&sim.get("/_sim/stats").await, "StartRecovery").len(),
        starts_before,
        "the failback recovered nothing"
    );
}
