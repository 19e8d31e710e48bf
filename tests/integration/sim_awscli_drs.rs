//! An outside client keeps the simulated DRS honest: the AWS CLI (botocore's own parser of the
//! restJson1 model) against `drs-runbook sim serve` as a child process.
//!
//! Needs the project's Python venv with awscli (`DRS_RUNBOOK_VENV`, default `.venv` in the
//! repository); without it the test fails and says how to create it.

use crate::support::binary;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Kills the `sim serve` child when the test ends, however it ends.
struct ServerGuard(tokio::process::Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn aws_cli() -> PathBuf {
    let venv = std::env::var_os("DRS_RUNBOOK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let aws = venv.join("bin").join("aws");
    assert!(
        aws.exists(),
        "the AWS CLI is missing at {} — run .ci/run, or create the venv (python3 -m venv .venv && \
         .venv/bin/pip install awscli 'moto[server]'), or point DRS_RUNBOOK_VENV at one",
        aws.display()
    );
    aws
}

/// Starts `sim serve` seeded with the payments runbook; returns the guard and the endpoint.
async fn serve() -> (ServerGuard, String) {
    let mut child = tokio::process::Command::from(binary())
        .args([
            "sim",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "600",
            "--seed",
            "runbooks/payments.toml",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sim serve starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let guard = ServerGuard(child);
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .await
        .expect("sim serve prints its address");
    let endpoint = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line of sim serve: {first:?}"))
        .to_string();
    (guard, endpoint)
}

/// Runs `aws drs <args>` as account 222222222222 in us-west-2 and parses its JSON output.
async fn drs(aws: &PathBuf, endpoint: &str, args: &[&str]) -> Value {
    let output = tokio::process::Command::new(aws)
        .arg("drs")
        .args(args)
        .args(["--endpoint-url", endpoint, "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", "222222222222")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_DEFAULT_REGION", "us-west-2")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .expect("the AWS CLI runs");
    assert!(
        output.status.success(),
        "aws drs {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "aws drs {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

async fn skip(endpoint: &str, seconds: f64) {
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/_sim/clock"))
        .json(&json!({ "skip_seconds": seconds }))
        .send()
        .await
        .expect("the control API answers");
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn the_aws_cli_runs_a_drill_against_sim_serve() {
    let aws = aws_cli();
    let (_guard, endpoint) = serve().await;

    let servers = drs(&aws, &endpoint, &["describe-source-servers"]).await;
    let items = servers["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    for server in items {
        assert_eq!(
            server["dataReplicationInfo"]["dataReplicationState"],
            "CONTINUOUS"
        );
        assert_eq!(
            server["sourceCloudProperties"]["originAccountID"],
            "111111111111"
        );
        assert_eq!(server["replicationDirection"], "FAILOVER");
    }

    let started = drs(
        &aws,
        &endpoint,
        &[
            "start-recovery",
            "--is-drill",
            "--source-servers",
            "sourceServerID=s-1234567890abcdef0",
        ],
    )
    .await;
    let job_id = started["job"]["jobID"].as_str().expect("jobID").to_string();
    assert!(
        job_id.starts_with("drsjob-") && job_id.len() == 24,
        "{job_id}"
    );
    assert_eq!(started["job"]["initiatedBy"], "START_DRILL");
    assert_eq!(started["job"]["type"], "LAUNCH");

    let filters = json!({ "jobIDs": [job_id] }).to_string();
    let mut job = Value::Null;
    for _ in 0..20 {
        skip(&endpoint, 300.0).await;
        let jobs = drs(&aws, &endpoint, &["describe-jobs", "--filters", &filters]).await;
        job = jobs["items"][0].clone();
        if job["status"] == "COMPLETED" {
            break;
        }
    }
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert!(job["endDateTime"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(job["participatingServers"][0]["launchStatus"], "LAUNCHED");

    let log = drs(
        &aws,
        &endpoint,
        &["describe-job-log-items", "--job-id", &job_id],
    )
    .await;
    let events: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"JOB_START"));
    assert_eq!(events.last(), Some(&"JOB_END"));
    assert!(
        events.contains(&"CONVERSION_END") && events.contains(&"LAUNCH_START"),
        "{events:?}"
    );

    let instances = drs(&aws, &endpoint, &["describe-recovery-instances"]).await;
    let instance = &instances["items"][0];
    assert_eq!(instances["items"].as_array().unwrap().len(), 1);
    assert_eq!(instance["sourceServerID"], "s-1234567890abcdef0");
    assert_eq!(instance["isDrill"], true);
    assert_eq!(instance["ec2InstanceState"], "RUNNING");
    assert_eq!(instance["jobID"], job_id.as_str());
}
