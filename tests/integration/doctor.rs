//! `drs-runbook doctor` end to end: IAM, KMS and STS in `moto_server` (one process, an account
//! per side through moto's AssumeRole account switching), DRS in the in-process simulator.
//! The setup is seeded from `doctor --print-policies` itself, so a correct setup passing also
//! proves the printed policies are what the checks require. Then each misconfiguration is
//! seeded on its own and must fail with its message and fix.

use serde_json::Value;
use std::path::Path;

use crate::support::{ChildGuard, TestSim, binary, doctor_check, moto};

const SOURCE: &str = "111111111111";
const TARGET: &str = "222222222222";
const SERVERS: [&str; 2] = ["s-1234567890abcdef0", "s-234567890abcdef01"];

fn runbook(source_region: &str) -> String {
    format!(
        r#"name = "payments"
[objectives]
rpo = "15m"
[source]
account_id = "{SOURCE}"
region = "{source_region}"
role_arn = "arn:aws:iam::{SOURCE}:role/drs-runbook"
[target]
account_id = "{TARGET}"
region = "us-west-2"
role_arn = "arn:aws:iam::{TARGET}:role/drs-runbook"
[[wave]]
name = "db"
servers = ["{}"]
[[wave]]
name = "app"
after = ["db"]
servers = ["{}"]
"#,
        SERVERS[0], SERVERS[1]
    )
}

/// IAM and KMS clients acting in `account` on moto: AssumeRole into the account (moto maps the
/// returned credentials to the role's account).
async fn moto_clients(
    endpoint: &str,
    account: &str,
    region: &str,
) -> (aws_sdk_iam::Client, aws_sdk_kms::Client) {
    let base = aws_sdk_sts::config::Credentials::new("test", "test", None, None, "doctor-tests");
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(base)
            .build(),
    );
    let assumed = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/seeder"))
        .role_session_name("seed")
        .send()
        .await
        .expect("moto AssumeRole");
    let c = assumed.credentials().expect("credentials");
    let creds = aws_sdk_iam::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "doctor-tests",
    );
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(aws_sdk_iam::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(creds.clone())
            .build(),
    );
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(creds)
            .build(),
    );
    (iam, kms)
}

/// Runs the CLI: DRS at the simulator, IAM/KMS/STS at moto through the per-service variables.
async fn doctor(
    dir: &Path,
    sim: &str,
    moto: &str,
    runbook: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let file = dir.join("runbook.toml");
    std::fs::write(&file, runbook).unwrap();
    let out = tokio::process::Command::from(binary())
        .arg("--endpoint-url")
        .arg(sim)
        .args(["--output", "json", "doctor"])
        .arg(&file)
        .args(extra)
        .env("DRS_RUNBOOK_DB", dir.join("runs.db"))
        .env("HOME", dir)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_IAM", moto)
        .env("AWS_ENDPOINT_URL_KMS", moto)
        .env("AWS_ENDPOINT_URL_STS", moto)
        .output()
        .await
        .expect("drs-runbook runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A cloud with a correct cross-account setup.
struct Setup {
    _moto: ChildGuard,
    moto: String,
    sim: TestSim,
    dir: tempfile::TempDir,
    policies: Value,
    target_key_arn: String,
    source_key_arn: String,
}

impl Setup {
    async fn correct() -> Setup {
        let (guard, moto) = moto().await;
        let sim = TestSim::start(1.0).await;
        sim.seed(&runbook("us-east-1")).await;
        let dir = tempfile::tempdir().unwrap();
        let (code, stdout, stderr) = doctor(
            dir.path(),
            &sim.endpoint,
            &moto,
            &runbook("us-east-1"),
            &["--print-policies"],
        )
        .await;
        assert_eq!(code, 0, "{stderr}");
        let policies: Value = serde_json::from_str(&stdout).expect("--print-policies prints JSON");
        let mut arns = Vec::new();
        for side in ["source", "target"] {
            let account = &policies["accounts"][side];
            let (iam, kms) = moto_clients(
                &moto,
                account["account_id"].as_str().unwrap(),
                account["region"].as_str().unwrap(),
            )
            .await;
            seed_roles(&iam, account).await;
            arns.push(seed_key(&kms, &account["kms_key"]).await);
        }
        let drs = sim.drs(TARGET, "us-west-2");
        for server in SERVERS {
            drs.update_replication_configuration()
                .source_server_id(server)
                .ebs_encryption(aws_sdk_drs::types::ReplicationConfigurationEbsEncryption::Custom)
                .ebs_encryption_key_arn(&arns[1])
                .send()
                .await
                .expect("UpdateReplicationConfiguration");
        }
        Setup {
            _moto: guard,
            moto,
            sim,
            dir,
            policies,
            source_key_arn: arns[0].clone(),
            target_key_arn: arns[1].clone(),
        }
    }

    async fn run(&self, runbook: &str) -> (i32, Value) {
        let (code, stdout, stderr) = doctor(
            self.dir.path(),
            &self.sim.endpoint,
            &self.moto,
            runbook,
            &[],
        )
        .await;
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("JSON report ({e}): {stdout}\n{stderr}"));
        (code, report)
    }

    async fn iam(&self, account: &str) -> aws_sdk_iam::Client {
        moto_clients(&self.moto, account, "us-east-1").await.0
    }

    async fn kms(&self, account: &str, region: &str) -> aws_sdk_kms::Client {
        moto_clients(&self.moto, account, region).await.1
    }

    /// The printed role of `side` with this name.
    fn role(&self, side: &str, name: &str) -> Value {
        self.policies["accounts"][side]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["role_name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("printed role {name}"))
    }
}

async fn seed_roles(iam: &aws_sdk_iam::Client, account: &Value) {
    let id = account["account_id"].as_str().unwrap();
    for role in account["roles"].as_array().unwrap() {
        let name = role["role_name"].as_str().unwrap();
        iam.create_role()
            .role_name(name)
            .path(role["path"].as_str().unwrap())
            .assume_role_policy_document(role["trust_policy"].to_string())
            .send()
            .await
            .expect("CreateRole");
        for managed in role["managed_policies"].as_array().unwrap() {
            // moto does not carry the DRS managed policies: a customer policy of the same name
            // stands in (the doctor checks attachments by name).
            let policy_name = managed.as_str().unwrap().rsplit('/').next().unwrap();
            let arn = format!("arn:aws:iam::{id}:policy/{policy_name}");
            let _ = iam
                .create_policy()
                .policy_name(policy_name)
                .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"drs:DescribeSourceServers","Resource":"*"}]}"#)
                .send()
                .await;
            iam.attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .expect("AttachRolePolicy");
        }
        if let Some(inline) = role.get("inline_policy") {
            iam.put_role_policy()
                .role_name(name)
                .policy_name("drs-agent-authorized")
                .policy_document(inline.to_string())
                .send()
                .await
                .expect("PutRolePolicy");
        }
    }
}

/// Creates the key with its printed policy, its alias and rotation; returns its ARN.
async fn seed_key(kms: &aws_sdk_kms::Client, key: &Value) -> String {
    let created = kms
        .create_key()
        .policy(key["key_policy"].to_string())
        .send()
        .await
        .expect("CreateKey");
    let meta = created.key_metadata().unwrap();
    kms.create_alias()
        .alias_name(key["key"].as_str().unwrap())
        .target_key_id(meta.key_id())
        .send()
        .await
        .expect("CreateAlias");
    kms.enable_key_rotation()
        .key_id(meta.key_id())
        .send()
        .await
        .expect("EnableKeyRotation");
    meta.arn().unwrap().to_string()
}

/// Asserts the check failed, its finding says `found` and its fix says `fix`.
fn assert_fails(report: &Value, id: &str, found: &str, fix: &str) {
    let c = doctor_check(report, id);
    assert_eq!(c["status"], "FAIL", "{c:#}");
    assert!(
        c["found"].as_str().unwrap().contains(found),
        "found {:?} lacks {found:?}",
        c["found"]
    );
    assert!(
        c["fix"].as_str().unwrap().contains(fix),
        "fix {:?} lacks {fix:?}",
        c["fix"]
    );
}

fn failed_ids(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "FAIL")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_setup_passes_and_iam_mistakes_fail_with_their_fix() {
    let setup = Setup::correct().await;
    let (code, report) = setup.run(&runbook("us-east-1")).await;
    assert!(failed_ids(&report).is_empty(), "{report:#}");
    assert_eq!(code, 0);
    assert_eq!(report["warnings"], 0, "{report:#}");
    // Both directions: 4 roles each with trust and policies, 2 keys x 3, 2 identities,
    // 2 DRS inits, 2 servers x 5.
    assert_eq!(
        report["checks"].as_array().unwrap().len(),
        16 + 6 + 2 + 2 + 10
    );
    assert!(
        doctor_check(&report, &format!("drs.encryption:{}", SERVERS[0]))["found"]
            .as_str()
            .unwrap()
            .contains(&setup.target_key_arn)
    );

    // 1. The staging role's trust policy without its aws:SourceAccount condition.
    let staging = setup.role("target", "DRSStagingAccountRole");
    let mut trust = staging["trust_policy"].clone();
    trust["Statement"][0]["Condition"]["StringLike"]
        .as_object_mut()
        .unwrap()
        .remove("aws:SourceAccount");
    let iam = setup.iam(TARGET).await;
    iam.update_assume_role_policy()
        .role_name("DRSStagingAccountRole")
        .policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
    let (code, report) = setup.run(&runbook("us-east-1")).await;
    assert_eq!(code, 1);
    assert_fails(
        &report,
        "iam.trust:DRSStagingAccountRole@222222222222",
        "no aws:SourceAccount condition (expected 222222222222)",
        "aws iam update-assume-role-policy --role-name DRSStagingAccountRole",
    );
    assert_eq!(
        failed_ids(&report),
        vec!["iam.trust:DRSStagingAccountRole@222222222222"]
    );
    iam.update_assume_role_policy()
        .role_name("DRSStagingAccountRole")
        .policy_document(staging["trust_policy"].to_string())
        .send()
        .await
        .unwrap();

    // 2. The agent-authorized role trusting another account.
    let name = format!("DRSCrossAccountAgentAuthorizedRole_{TARGET}");
    let authorized = setup.role("source", &name);
    let wrong = authorized["trust_policy"].to_string().replace(
        &format!("arn:aws:iam::{SOURCE}:root"),
        "arn:aws:iam::333333333333:root",
    );
    let iam = setup.iam(SOURCE).await;
    iam.update_assume_role_policy()
        .role_name(&name)
        .policy_document(wrong)
        .send()
        .await
        .unwrap();
    let (code, report) = setup.run(&runbook("us-east-1")).await;
    assert_eq!(code, 1);
    assert_fails(
        &report,
        &format!("iam.trust:{name}@{SOURCE}"),
        "trusts account 333333333333 instead of 111111111111",
        &format!("arn:aws:iam::{SOURCE}:root"),
    );
    assert_eq!(failed_ids(&report).len(), 1, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_mistakes_fail_with_their_fix() {
    let setup = Setup::correct().await;
    // 3. The target key disabled.
    let kms = setup.kms(TARGET, "us-west-2").await;
    // moto answers DisableKey by ARN with a 500: by key ID.
    let key_id = setup.target_key_arn.rsplit('/').next().unwrap().to_string();
    kms.disable_key().key_id(&key_id).send().await.unwrap();
    let (code, report) = setup.run(&runbook("us-east-1")).await;
    assert_eq!(code, 1);
    assert_fails(
        &report,
        "kms.key:alias/drs-target-key@222222222222",
        "is Disabled",
        &format!("aws kms enable-key --key-id {}", setup.target_key_arn),
    );
    kms.enable_key().key_id(&key_id).send().await.unwrap();

    // 4. The source key's policy granting the staging role without kms:ViaService.
    let printed = &setup.policies["accounts"]["source"]["kms_key"]["key_policy"];
    let mut policy = printed.clone();
    policy["Statement"][1]
        .as_object_mut()
        .unwrap()
        .remove("Condition");
    let kms = setup.kms(SOURCE, "us-east-1").await;
    let key_id = setup.source_key_arn.rsplit('/').next().unwrap();
    kms.put_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    let (code, report) = setup.run(&runbook("us-east-1")).await;
    assert_eq!(code, 1);
    assert_fails(
        &report,
        "kms.policy:alias/drs-source-key@111111111111",
        "without a kms:ViaService condition (expected ec2.us-east-1.amazonaws.com and drs.us-east-1.amazonaws.com)",
        "aws kms put-key-policy",
    );
    assert_eq!(failed_ids(&report).len(), 1, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drs_mistakes_fail_with_their_fix() {
    let setup = Setup::correct().await;
    let [db, app] = SERVERS;
    // 5. Replication without encryption.
    setup
        .sim
        .drs(TARGET, "us-west-2")
        .update_replication_configuration()
        .source_server_id(db)
        .ebs_encryption(aws_sdk_drs::types::ReplicationConfigurationEbsEncryption::None)
        .send()
        .await
        .unwrap();
    // 7. A stale agent and 8. lag over the RPO (15m), both injected faults.
    let (status, _) = setup
        .sim
        .post(
            "/_sim/faults",
            &serde_json::json!({"faults": [
                {"kind": "agent_not_seen", "source_server_id": app, "seconds_ago": 3600},
                {"kind": "replication_lag", "source_server_id": db, "lag_seconds": 1800},
            ]}),
        )
        .await;
    assert_eq!(status, 200);
    let (code, report) = setup.run(&runbook("us-east-1")).await;
    assert_eq!(code, 1);
    assert_fails(
        &report,
        &format!("drs.encryption:{db}"),
        "ebsEncryption NONE",
        &format!(
            "--ebs-encryption CUSTOM --ebs-encryption-key-arn {}",
            setup.target_key_arn
        ),
    );
    assert_fails(
        &report,
        &format!("drs.agent:{app}"),
        "longer than 10m ([doctor] agent_seen_within)",
        "replication agent",
    );
    assert_fails(
        &report,
        &format!("drs.lag:{db}"),
        "lag 30m exceeds the RPO of 15m",
        "bandwidth",
    );
    assert_eq!(failed_ids(&report).len(), 3, "{report:#}");

    // 6. DRS never initialized in the source region (the simulator initialized us-east-1 only).
    let (code, report) = setup.run(&runbook("eu-west-1")).await;
    assert_eq!(code, 1);
    assert_fails(
        &report,
        "drs.initialized@111111111111/eu-west-1",
        "UninitializedAccountException",
        "aws drs initialize-service --region eu-west-1",
    );
}

#[tokio::test]
async fn print_policies_fixes_the_documents_mistakes_and_bad_runbooks_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, _) = doctor(
        dir.path(),
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        &runbook("us-east-1"),
        &["--print-policies"],
    )
    .await;
    assert_eq!(code, 0);
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    let target_roles = printed["accounts"]["target"]["roles"].as_array().unwrap();
    let agent = target_roles
        .iter()
        .find(|r| r["role_name"] == format!("DRSCrossAccountAgentRole_{SOURCE}"))
        .unwrap();
    // The setup document's agent role has an empty Principal, which IAM rejects.
    assert_eq!(
        agent["trust_policy"]["Statement"][0]["Principal"]["AWS"],
        format!("arn:aws:iam::{SOURCE}:root")
    );
    assert_eq!(
        printed["accounts"]["source"]["kms_key"]["key_policy"]["Statement"][1]["Condition"]["StringEquals"]
            ["kms:ViaService"],
        serde_json::json!(["ec2.us-east-1.amazonaws.com", "drs.us-east-1.amazonaws.com"])
    );
    let bad = runbook("us-east-1") + "[doctor]\ntarget_kms_key = \"not a key\"\n";
    let (code, _, stderr) = doctor(
        dir.path(),
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        &bad,
        &[],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("doctor.target_kms_key"), "{stderr}");
}
