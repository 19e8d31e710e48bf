//! Shared test helpers: an in-process simulator on 127.0.0.1:0 and real SDK clients for it, the
//! one launcher of the built binary, the Python venv's tools (the AWS CLI, moto), and builders
//! of Route 53 and ELBv2 requests. Test modules import helpers from here, never from each other.

use aws_sdk_drs::config::{Credentials, Region};
use aws_sdk_drs::types::{Job, StartRecoveryRequestSourceServer};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use drs_runbook::sim::{Sim, SimOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A simulator serving on loopback in this process.
pub struct TestSim {
    pub sim: Sim,
    pub endpoint: String,
    http: reqwest::Client,
}

impl TestSim {
    /// Starts a simulator with the simulated clock at `speed`.
    pub async fn start(speed: f64) -> TestSim {
        Self::start_with(SimOptions {
            speed,
            state_file: None,
        })
        .await
    }

    pub async fn start_with(options: SimOptions) -> TestSim {
        let sim = Sim::new(options).expect("simulator starts");
        let addr = sim
            .clone()
            .spawn("127.0.0.1:0")
            .await
            .expect("simulator listens");
        TestSim {
            sim,
            endpoint: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    fn credentials(account: &str) -> Credentials {
        Credentials::new(account, "simulated-secret", None, None, "drs-runbook-tests")
    }

    /// A DRS client acting as `account` in `region`.
    pub fn drs(&self, account: &str, region: &str) -> aws_sdk_drs::Client {
        let config = aws_sdk_drs::Config::builder()
            .behavior_version(aws_sdk_drs::config::BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::credentials(account))
            .build();
        aws_sdk_drs::Client::from_conf(config)
    }

    /// A Route 53 client acting as `account` (Route 53 is global; it signs for us-east-1).
    pub fn route53(&self, account: &str) -> aws_sdk_route53::Client {
        let config = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(aws_sdk_route53::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::credentials(account))
            .build();
        aws_sdk_route53::Client::from_conf(config)
    }

    /// An ELBv2 client acting as `account` in `region`.
    pub fn elbv2(&self, account: &str, region: &str) -> aws_sdk_elasticloadbalancingv2::Client {
        let config = aws_sdk_elasticloadbalancingv2::Config::builder()
            .behavior_version(aws_sdk_elasticloadbalancingv2::config::BehaviorVersion::latest())
            .region(aws_sdk_elasticloadbalancingv2::config::Region::new(
                region.to_string(),
            ))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::credentials(account))
            .build();
        aws_sdk_elasticloadbalancingv2::Client::from_conf(config)
    }

    /// An EC2 client acting as `account` in `region`.
    pub fn ec2(&self, account: &str, region: &str) -> aws_sdk_ec2::Client {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::credentials(account))
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }

    /// `GET` a control endpoint, e.g. `/_sim/stats`.
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.endpoint))
            .send()
            .await
            .expect("control API answers")
            .json()
            .await
            .expect("control API answers JSON")
    }

    /// `POST` JSON to a control endpoint; returns the status and the JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .json(body)
            .send()
            .await
            .expect("control API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `DELETE` a control endpoint (e.g. `/_sim/faults`: every fault ends); returns the status.
    pub async fn delete(&self, path: &str) -> u16 {
        self.http
            .delete(format!("{}{path}", self.endpoint))
            .send()
            .await
            .expect("control API answers")
            .status()
            .as_u16()
    }

    /// Seeds the world from a runbook's TOML text.
    pub async fn seed(&self, toml: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/_sim/seed", self.endpoint))
            .body(toml.to_string())
            .send()
            .await
            .expect("control API answers");
        assert_eq!(response.status().as_u16(), 200, "seeding succeeds");
        response.json().await.expect("seed answers JSON")
    }

    /// Arms `faults` (a JSON array of fault objects) through `/_sim/faults`, which must accept them.
    pub async fn faults(&self, faults: Value) {
        let (status, body) = self
            .post("/_sim/faults", &serde_json::json!({ "faults": faults }))
            .await;
        assert_eq!(status, 200, "faults refused: {body}");
    }

    /// Jumps the simulated clock forward.
    pub async fn skip(&self, seconds: f64) {
        let (status, _) = self
            .post(
                "/_sim/clock",
                &serde_json::json!({ "skip_seconds": seconds }),
            )
            .await;
        assert_eq!(status, 200);
    }

    /// The source instances (A1) of the DRS source servers in `account`/`region`, as DRS names
    /// them (`identificationHints.awsInstanceID`).
    pub async fn source_instances(&self, account: &str, region: &str) -> Vec<String> {
        let servers = self
            .drs(account, region)
            .describe_source_servers()
            .send()
            .await
            .unwrap();
        servers
            .items()
            .iter()
            .map(|s| {
                s.source_properties()
                    .and_then(|p| p.identification_hints())
                    .and_then(|h| h.aws_instance_id())
                    .expect("a source server names its EC2 instance")
                    .to_string()
            })
            .collect()
    }

    /// How often `service:Operation` was called.
    pub async fn calls(&self, key: &str) -> u64 {
        self.get("/_sim/stats").await["calls"][key]
            .as_u64()
            .unwrap_or(0)
    }

    /// The built binary against this simulator, off the async runtime.
    pub async fn cli(&self, db: &Path, args: &[&str]) -> CliRun {
        drs_runbook_async(db, Some(&self.endpoint), args, &[]).await
    }

    /// `--output json <command> <target> --yes` against this simulator: a failover, drill or
    /// failback of a runbook file, or a rollback or resume of a run ID, that asks nothing.
    pub async fn run(&self, db: &Path, command: &str, target: &str) -> CliRun {
        self.cli(db, &["--output", "json", command, target, "--yes"])
            .await
    }

    /// A failover (`--output json failover <runbook> --yes`) of the runbook `text`, written to
    /// `dir/runbook.toml`, with its run database `dir/runs.db`.
    pub async fn failover_text(&self, dir: &Path, text: &str) -> CliRun {
        let runbook = dir.join("runbook.toml");
        std::fs::write(&runbook, text).unwrap();
        let args = [
            "--output",
            "json",
            "failover",
            runbook.to_str().unwrap(),
            "--yes",
        ];
        self.cli(&dir.join("runs.db"), &args).await
    }

    /// The values of the `A` records `name` in hosted zone `zone` of `account`, sorted.
    pub async fn a_record_values(&self, account: &str, zone: &str, name: &str) -> Vec<String> {
        let sets = self
            .route53(account)
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .unwrap();
        let mut values: Vec<String> = sets
            .resource_record_sets()
            .iter()
            .filter(|r| r.name() == name && r.r#type().as_str() == "A")
            .flat_map(|r| r.resource_records().iter().map(|v| v.value().to_string()))
            .collect();
        values.sort();
        values
    }

    /// A new VPC of `cidr` in `account`/`region` with one subnet spanning it, as an operator
    /// would make one: returns (VPC ID, subnet ID).
    pub async fn vpc_with_subnet(
        &self,
        (account, region): (&str, &str),
        cidr: &str,
    ) -> (String, String) {
        let ec2 = self.ec2(account, region);
        let vpc = ec2
            .create_vpc()
            .cidr_block(cidr)
            .send()
            .await
            .unwrap()
            .vpc()
            .unwrap()
            .vpc_id()
            .unwrap()
            .to_string();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr)
            .send()
            .await
            .unwrap()
            .subnet()
            .unwrap()
            .subnet_id()
            .unwrap()
            .to_string();
        (vpc, subnet)
    }

    /// The IDs of the members of the ELBv2 target group `arn` in `account`/`region` whose health
    /// state (`healthy`, `draining`, ...) `keep` accepts, sorted.
    pub async fn target_group_members(
        &self,
        (account, region): (&str, &str),
        arn: &str,
        keep: fn(&str) -> bool,
    ) -> Vec<String> {
        let health = self
            .elbv2(account, region)
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .unwrap();
        let mut ids: Vec<String> = health
            .target_health_descriptions()
            .iter()
            .filter(|d| {
                keep(
                    d.target_health()
                        .and_then(|h| h.state())
                        .map_or("", |s| s.as_str()),
                )
            })
            .map(|d| d.target().unwrap().id().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// The VPC of the ELBv2 target group `arn` in `account`/`region`.
    pub async fn target_group_vpc(&self, (account, region): (&str, &str), arn: &str) -> String {
        self.elbv2(account, region)
            .describe_target_groups()
            .target_group_arns(arn)
            .send()
            .await
            .unwrap()
            .target_groups()[0]
            .vpc_id()
            .unwrap()
            .to_string()
    }

    /// The EC2 state name (`running`, `stopped`, ...) of each of `ids` in `account`/`region`.
    pub async fn instance_states(
        &self,
        (account, region): (&str, &str),
        ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Vec<String> {
        let found = self
            .ec2(account, region)
            .describe_instances()
            .set_instance_ids(Some(ids.into_iter().map(Into::into).collect()))
            .send()
            .await
            .unwrap();
        found
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| i.state().unwrap().name().unwrap().as_str().to_string())
            .collect()
    }
}

/// The path of a file in the repository.
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The built binary, ready for arguments: the one launcher of `drs-runbook` in the tests.
pub fn binary() -> Command {
    Command::new(BINARY)
}

/// The path of the built binary (for `script`, which runs it under a pseudo-terminal).
pub const BINARY: &str = env!("CARGO_BIN_EXE_drs-runbook");

/// What one CLI invocation did.
#[derive(Debug)]
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// The single JSON object printed on stdout with `--output json`.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}): {self:#?}"))
    }
}

/// Runs the built binary with no TTY on stdin (as cron would), against `endpoint` if given.
pub fn drs_runbook(db: &Path, endpoint: Option<&str>, args: &[&str]) -> CliRun {
    drs_runbook_env(db, endpoint, args, &[])
}

/// [`drs_runbook`] with extra environment variables.
pub fn drs_runbook_env(
    db: &Path,
    endpoint: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> CliRun {
    let mut command = binary();
    command.current_dir(repo_path("")).arg("--db").arg(db);
    if let Some(endpoint) = endpoint {
        command.arg("--endpoint-url").arg(endpoint);
    }
    let output = command
        .args(args)
        .env_remove("DRS_RUNBOOK_DB")
        .env("DRS_RUNBOOK_OPERATOR", "test-operator")
        .env("DRS_RUNBOOK_SIM_SPEED", "600")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    CliRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`drs_runbook_env`] off the async runtime (the binary blocks until it exits).
pub async fn drs_runbook_async(
    db: &Path,
    endpoint: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> CliRun {
    let db = db.to_path_buf();
    let endpoint = endpoint.map(str::to_string);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        drs_runbook_env(&db, endpoint.as_deref(), &args, &env)
    })
    .await
    .expect("the binary's thread joins")
}

/// Step `key` of a run report (a run command's JSON or `show --output json`).
pub fn step<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["key"] == key))
        .unwrap_or_else(|| panic!("no step {key} in {report}"))
}

/// The output of step `key` in a `show --output json` document.
pub fn step_output(shown: &Value, key: &str) -> Value {
    match &step(shown, key)["output"] {
        Value::String(text) => serde_json::from_str(text).expect("the output is JSON"),
        other => other.clone(),
    }
}

/// The `field` (`key`, `kind`, `status`) of each step of a run report, in the report's order.
pub fn step_fields<'a>(report: &'a Value, field: &str) -> Vec<&'a str> {
    report["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {report}"))
        .iter()
        .map(|s| s[field].as_str().unwrap())
        .collect()
}

/// A run read back with `show --output json`, which must succeed.
pub fn shown(db: &Path, run_id: &str) -> Value {
    let show = drs_runbook(db, None, &["--output", "json", "show", run_id]);
    assert_eq!(show.code, 0, "{show:#?}");
    show.json()
}

/// The check `id` of a `doctor --output json` report.
pub fn doctor_check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

/// Starts one DRS recovery job (a drill when `drill`) of the source servers `ids`; returns it.
pub async fn start_recovery(drs: &aws_sdk_drs::Client, ids: &[&str], drill: bool) -> Job {
    let mut call = drs.start_recovery().is_drill(drill);
    for id in ids {
        call = call.source_servers(
            StartRecoveryRequestSourceServer::builder()
                .source_server_id(*id)
                .build()
                .expect("sourceServerID is set"),
        );
    }
    call.send()
        .await
        .expect("StartRecovery succeeds")
        .job()
        .expect("a job")
        .clone()
}

/// The run ID a run command printed first on stderr (`run <RUN_ID>`), also when it crashed.
pub fn run_id_of(run: &CliRun) -> String {
    run.stderr
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .map(|id| id.trim().to_string())
        .unwrap_or_else(|| panic!("no `run <id>` line: {run:#?}"))
}

/// The run database of a test, as `--db` takes it: `<dir>/runs.db`, or with
/// `DRS_RUNBOOK_TEST_ENGINE=postgres` a new database on the server of `DRS_RUNBOOK_TEST_PG`
/// (how CI runs a subset of these tests on PostgreSQL; see `.ci/run`).
pub async fn test_db(dir: &Path) -> PathBuf {
    if std::env::var("DRS_RUNBOOK_TEST_ENGINE").as_deref() == Ok("postgres") {
        let server =
            postgres_server().expect("DRS_RUNBOOK_TEST_ENGINE=postgres needs DRS_RUNBOOK_TEST_PG");
        PathBuf::from(scratch_postgres(&server).await)
    } else {
        dir.join("runs.db")
    }
}

/// The PostgreSQL server of the tests (`DRS_RUNBOOK_TEST_PG`, an admin URL such as
/// `postgres://postgres@127.0.0.1:55432/postgres`). Unset: under CI (`CI=true`) a PostgreSQL
/// test fails, never passing silently; elsewhere it prints a notice and is skipped (`None`).
pub fn postgres_server() -> Option<String> {
    match std::env::var("DRS_RUNBOOK_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => panic!(
            "DRS_RUNBOOK_TEST_PG is not set, and CI=true: the PostgreSQL tests must run in CI \
             (`.ci/postgres` starts a throwaway server and prints the URL to export)"
        ),
        _ => {
            eprintln!(
                "notice: DRS_RUNBOOK_TEST_PG is not set: skipping a PostgreSQL test \
                 (start a server with `.ci/postgres`, then export DRS_RUNBOOK_TEST_PG=<the URL it prints>)"
            );
            None
        }
    }
}

/// A new, empty database on the server `admin` (an admin URL); returns its URL.
pub async fn scratch_postgres(admin: &str) -> String {
    use sqlx::Connection;
    let name = format!("drs_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("connect to DRS_RUNBOOK_TEST_PG: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a scratch database");
    conn.close().await.ok();
    let mut url = url::Url::parse(admin).expect("DRS_RUNBOOK_TEST_PG is a URL");
    url.set_path(&name);
    url.to_string()
}

/// One stored step of a run, read from the run database.
pub async fn stored_step(db: &Path, run_id: &str, key: &str) -> drs_runbook::store::steps::Step {
    let store = drs_runbook::store::Database::open_location(db.to_str().unwrap())
        .await
        .unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    drs_runbook::store::steps::get(&mut conn, &run_id.parse().unwrap(), key)
        .await
        .unwrap()
}

/// The mutating calls named `operation` in `/_sim/stats`.
pub fn mutations(stats: &Value, operation: &str) -> Vec<Value> {
    stats["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["operation"] == operation)
        .cloned()
        .collect()
}

/// The target IDs of a RegisterTargets or DeregisterTargets call in `/_sim/stats`, sorted.
pub fn target_ids(mutation: &Value) -> Vec<String> {
    let mut ids: Vec<String> = mutation["params"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The Python venv with awscli and moto: `$DRS_RUNBOOK_VENV`, else `.venv` in the repository.
/// Fails the test, saying how to create it, when it is missing.
pub fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var_os("DRS_RUNBOOK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let bin = venv.join("bin").join(tool);
    assert!(
        bin.exists(),
        "{} not found: this test needs a Python venv with the AWS CLI and moto \
         (hint: `python3 -m venv .venv && .venv/bin/pip install awscli 'moto[server]'` in the \
         repository, or point DRS_RUNBOOK_VENV at an existing venv)",
        bin.display()
    );
    bin
}

/// A child process killed when the guard is dropped (also when the test panics).
pub struct ChildGuard(pub tokio::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Runs the AWS CLI as `account` against `endpoint` and parses its JSON output.
pub async fn aws(endpoint: &str, account: &str, region: &str, args: &[&str]) -> Value {
    aws_env(endpoint, account, region, args, &[]).await
}

/// The venv's botocore service models (`AWS_DATA_PATH`): awscli 1.x ships an older copy of the
/// DRS model without the recovery-plan operations, which botocore's own copy has.
pub fn botocore_data_path() -> PathBuf {
    let lib = venv_bin("aws")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("lib");
    std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/botocore/data"))
        .find(|p| p.join("drs").exists())
        .unwrap_or_else(|| panic!("no botocore/data with a DRS model under {}", lib.display()))
}

/// [`aws`] with extra environment variables.
pub async fn aws_env(
    endpoint: &str,
    account: &str,
    region: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Value {
    let home = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(venv_bin("aws"))
        .args(args)
        .args([
            "--endpoint-url",
            endpoint,
            "--output",
            "json",
            "--region",
            region,
        ])
        .env("AWS_ACCESS_KEY_ID", account)
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("credentials"),
        )
        .env("AWS_PAGER", "")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", home.path())
        .envs(env.iter().copied())
        .output()
        .await
        .expect("the AWS CLI runs");
    assert!(
        output.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "aws {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `moto_server` on a free loopback port, answering.
pub async fn moto() -> (ChildGuard, String) {
    // Pick a free port by binding and releasing it; moto binds it a moment later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(venv_bin("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("moto_server starts");
    let guard = ChildGuard(child);
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (guard, endpoint);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("moto_server did not listen on {endpoint}");
}

/// An `A` record set `name` with `ttl` and the given addresses.
pub fn a_record(name: &str, ttl: i64, ips: &[&str]) -> ResourceRecordSet {
    let mut builder = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .ttl(ttl);
    for ip in ips {
        builder = builder.resource_records(ResourceRecord::builder().value(*ip).build().unwrap());
    }
    builder.build().unwrap()
}

/// A change batch of one change.
pub fn batch(action: ChangeAction, record: ResourceRecordSet) -> ChangeBatch {
    ChangeBatch::builder()
        .changes(
            Change::builder()
                .action(action)
                .resource_record_set(record)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// An ELBv2 target by instance ID.
pub fn target(id: &str) -> TargetDescription {
    TargetDescription::builder().id(id).build()
}

/// A timestamp the simulator or the engine wrote (RFC 3339).
pub fn time_of(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("{value}")))
        .unwrap_or_else(|e| panic!("{value}: {e}"))
        .with_timezone(&chrono::Utc)
}

/// Each server's `launchDisposition` (GetLaunchConfiguration), as DRS answers it.
pub async fn launch_dispositions(
    sim: &TestSim,
    account: &str,
    region: &str,
    servers: &[&str],
) -> std::collections::BTreeMap<String, String> {
    let drs = sim.drs(account, region);
    let mut out = std::collections::BTreeMap::new();
    for server in servers {
        let config = drs
            .get_launch_configuration()
            .source_server_id(*server)
            .send()
            .await
            .unwrap();
        let disposition = config
            .launch_disposition()
            .map(|d| d.as_str().to_string())
            .unwrap_or_default();
        out.insert(server.to_string(), disposition);
    }
    out
}

/// The built binary started as a child against `endpoint` (stdout and stdin closed, stderr
/// piped), for tests that kill it mid-run.
pub fn cli_child(db: &Path, endpoint: &str, args: &[&str]) -> std::process::Child {
    binary()
        .current_dir(repo_path(""))
        .arg("--db")
        .arg(db)
        .arg("--endpoint-url")
        .arg(endpoint)
        .args(args)
        .env_remove("DRS_RUNBOOK_DB")
        .env("DRS_RUNBOOK_OPERATOR", "test-operator")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Runs openssl with `args` in `dir`, failing the test with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA (`<name>-ca.pem`) and, signed by it, a certificate for 127.0.0.1 (`<name>.pem`,
/// `<name>.key`).
pub fn certificates(dir: &Path, name: &str) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    let (key, csr, cert, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=drs-runbook test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}
