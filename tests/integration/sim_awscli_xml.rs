//! The AWS CLI (botocore's own restXml and awsQuery parsers) against `drs-runbook sim serve` as a
//! child process: Route 53 record sets and changes, ELBv2 target groups and target health.

use crate::support::{ChildGuard, aws, binary};
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

const ZONE: &str = "Z0123456789ABCDEFGHIJ";
const RECORD: &str = "api.payments.example.com.";
const FAILBACK_TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/payments/fedcba9876543210";

/// `drs-runbook sim serve` on a free loopback port, seeded with runbooks/payments.toml.
/// Returns the guard and the endpoint read from its first stdout line.
async fn sim_serve() -> (ChildGuard, String) {
    let mut child = tokio::process::Command::from(binary())
        .args([
            "sim",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "600",
            "--seed",
        ])
        .arg(crate::support::repo_path("runbooks/payments.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the drs-runbook binary starts");
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).await.unwrap();
    let endpoint = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line of sim serve: {first:?}"))
        .to_string();
    (guard, endpoint)
}

#[tokio::test]
async fn the_aws_cli_reads_and_changes_route53_records_until_insync() {
    let (_child, endpoint) = sim_serve().await;
    let src = "111111111111";
    let zones = aws(
        &endpoint,
        src,
        "us-east-1",
        &["route53", "list-hosted-zones"],
    )
    .await;
    assert_eq!(zones["HostedZones"][0]["Id"], format!("/hostedzone/{ZONE}"));

    let sets = aws(
        &endpoint,
        src,
        "us-east-1",
        &[
            "route53",
            "list-resource-record-sets",
            "--hosted-zone-id",
            ZONE,
        ],
    )
    .await;
    let listed: Vec<(String, String)> = sets["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["Name"].as_str().unwrap().to_string(),
                s["Type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed[0],
        ("payments.example.com.".to_string(), "NS".to_string())
    );
    assert_eq!(listed[2], (RECORD.to_string(), "A".to_string()));
    assert_eq!(sets["ResourceRecordSets"][2]["TTL"], 60);
    assert_eq!(
        sets["ResourceRecordSets"][2]["ResourceRecords"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let batch = json!({"Comment": "cut over", "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": RECORD, "Type": "A", "TTL": 30, "ResourceRecords": [{"Value": "10.200.0.7"}]}}]});
    let changed = aws(
        &endpoint,
        src,
        "us-east-1",
        &[
            "route53",
            "change-resource-record-sets",
            "--hosted-zone-id",
            ZONE,
            "--change-batch",
            &batch.to_string(),
        ],
    )
    .await;
    let change_id = changed["ChangeInfo"]["Id"].as_str().unwrap().to_string();
    assert!(change_id.starts_with("/change/C"), "{change_id}");
    assert_eq!(changed["ChangeInfo"]["Comment"], "cut over");

    // At --speed 600 the 60 s of propagation take 0.1 s: poll as an operator would.
    let mut status = String::new();
    for _ in 0..50 {
        let got = aws(
            &endpoint,
            src,
            "us-east-1",
            &["route53", "get-change", "--id", &change_id],
        )
        .await;
        status = got["ChangeInfo"]["Status"].as_str().unwrap().to_string();
        if status == "INSYNC" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "INSYNC");

    let after = aws(
        &endpoint,
        src,
        "us-east-1",
        &[
            "route53",
            "list-resource-record-sets",
            "--hosted-zone-id",
            ZONE,
            "--start-record-name",
            RECORD,
            "--start-record-type",
            "A",
            "--max-items",
            "1",
        ],
    )
    .await;
    assert_eq!(
        after["ResourceRecordSets"][0]["ResourceRecords"],
        json!([{"Value": "10.200.0.7"}])
    );
    assert_eq!(after["ResourceRecordSets"][0]["TTL"], 30);
}

#[tokio::test]
async fn the_aws_cli_registers_targets_and_reads_their_health() {
    let (_child, endpoint) = sim_serve().await;
    let src = "111111111111";
    let groups = aws(
        &endpoint,
        src,
        "us-east-1",
        &["elbv2", "describe-target-groups", "--names", "payments"],
    )
    .await;
    let group = &groups["TargetGroups"][0];
    assert_eq!(group["TargetGroupArn"], FAILBACK_TG);
    assert_eq!(group["Port"], 443);
    assert_eq!(group["Protocol"], "HTTPS");
    assert_eq!(group["TargetType"], "instance");
    assert_eq!(group["LoadBalancerArns"].as_array().unwrap().len(), 1);

    // The db wave's A1 instance is not in the group yet: register it.
    let db = drs_runbook::sim::seed::source_instance_id("s-1234567890abcdef0");
    let registered = aws(
        &endpoint,
        src,
        "us-east-1",
        &[
            "elbv2",
            "register-targets",
            "--target-group-arn",
            FAILBACK_TG,
            "--targets",
            &format!("Id={db}"),
        ],
    )
    .await;
    assert_eq!(
        registered,
        Value::Null,
        "RegisterTargets has an empty result"
    );

    let mut state = String::new();
    for _ in 0..50 {
        let health = aws(
            &endpoint,
            src,
            "us-east-1",
            &[
                "elbv2",
                "describe-target-health",
                "--target-group-arn",
                FAILBACK_TG,
            ],
        )
        .await;
        let rows = health["TargetHealthDescriptions"].as_array().unwrap();
        assert_eq!(
            rows.len(),
            3,
            "two seeded targets and the new one: {health}"
        );
        let row = rows
            .iter()
            .find(|r| r["Target"]["Id"] == db.as_str())
            .expect("the new target is listed");
        assert_eq!(row["Target"]["Port"], 443);
        state = row["TargetHealth"]["State"].as_str().unwrap().to_string();
        if state == "healthy" {
            break;
        }
        assert_eq!(state, "initial");
        assert_eq!(row["TargetHealth"]["Reason"], "Elb.RegistrationInProgress");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "healthy");
}
