//! Native DRS recovery plans (issue 17, item 7): `export-plan` writes the runbook's waves as a
//! plan the AWS CLI reads back (steps in wave order, at most 100 servers each), a second export
//! changes nothing, and an active plan execution over a runbook's server refuses a failover
//! (exit 4) until it ends.

use crate::support::{TestSim, aws_env, botocore_data_path, mutations};
use aws_sdk_drs::error::ProvideErrorMetadata;
use aws_sdk_drs::types::{
    RecoveryPlanExecutionMode, RecoveryPlanServer, RecoveryPlanStepConfiguration,
    ServerStepConfiguration, StartRecoveryRequestSourceServer, WaitStepConfiguration,
};
use serde_json::Value;

const HEAD: &str = "description = \"native plans\"\n\n\
[objectives]\nrto = \"24h\"\nrpo = \"1h\"\n\n\
[source]\naccount_id = \"111111111111\"\nregion = \"us-east-1\"\n\n\
[target]\naccount_id = \"222222222222\"\nregion = \"us-west-2\"\n\n";

fn server(i: usize) -> String {
    format!("s-{i:017}")
}

fn list(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| format!("\"{}\"", server(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `web`: 150 servers; `db` (after web): 2 more.
fn big_runbook() -> String {
    format!(
        "name = \"plans\"\n{HEAD}[[wave]]\nname = \"web\"\nservers = [{}]\n\n\
[[wave]]\nname = \"db\"\nafter = [\"web\"]\nservers = [{}]\n",
        list(0..150),
        list(150..152)
    )
}

/// One server of the big runbook's `db` wave.
fn small_runbook() -> String {
    format!(
        "name = \"plans-small\"\n{HEAD}[[wave]]\nname = \"app\"\nservers = [\"{}\"]\n",
        server(151)
    )
}

async fn cli_aws(endpoint: &str, args: &[&str]) -> Value {
    let data = botocore_data_path();
    aws_env(
        endpoint,
        "222222222222",
        "us-west-2",
        args,
        &[("AWS_DATA_PATH", data.to_str().unwrap())],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn export_plan_writes_the_waves_as_steps_and_an_active_execution_refuses_a_failover() {
    let sim = TestSim::start(600.0).await;
    sim.seed(&big_runbook()).await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("plans.toml");
    std::fs::write(&big, big_runbook()).unwrap();
    let small = dir.path().join("small.toml");
    std::fs::write(&small, small_runbook()).unwrap();
    let db = dir.path().join("runs.db");
    let (big, small) = (big.to_str().unwrap(), small.to_str().unwrap());
    let export = async |yes: bool| {
        let mut args = vec!["--output", "json", "export-plan", big];
        if yes {
            args.push("--yes");
        }
        sim.cli(&db, &args).await
    };

    // Without --yes and without a terminal: the changes are shown, nothing is made.
    let refused = export(false).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains("create step 3 \"db\" (2 server(s))"),
        "{refused:#?}"
    );
    assert_eq!(sim.calls("drs:CreateRecoveryPlan").await, 0);

    let first = export(true).await;
    assert_eq!(first.code, 0, "{first:#?}");
    let doc = first.json();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["changed"], true);
    let plan_arn = doc["plan_arn"].as_str().unwrap().to_string();

    // The AWS CLI (botocore's parser) reads the plan back: the waves as steps, in order.
    let plans = cli_aws(&sim.endpoint, &["drs", "list-recovery-plans"]).await;
    let plan = &plans["recoveryPlans"][0];
    assert_eq!(plan["name"], "plans");
    assert_eq!(plan["status"], "ACTIVE");
    let steps = cli_aws(
        &sim.endpoint,
        &[
            "drs",
            "list-recovery-plan-steps",
            "--recovery-plan-arn",
            &plan_arn,
        ],
    )
    .await;
    let steps = steps["recoveryPlanSteps"].as_array().unwrap().clone();
    let shape: Vec<(String, i64, usize)> = steps
        .iter()
        .map(|s| {
            (
                s["stepName"].as_str().unwrap().to_string(),
                s["stepOrder"].as_i64().unwrap(),
                s["configuration"]["serverStepConfiguration"]["servers"]
                    .as_array()
                    .unwrap()
                    .len(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("web 1 of 2".to_string(), 1, 100),
            ("web 2 of 2".to_string(), 2, 50),
            ("db".to_string(), 3, 2),
        ]
    );
    let first_server = &steps[0]["configuration"]["serverStepConfiguration"]["servers"][0];
    assert_eq!(
        first_server["serverArn"],
        format!(
            "arn:aws:drs:us-west-2:222222222222:source-server/{}",
            server(0)
        )
    );
    let got = cli_aws(
        &sim.endpoint,
        &["drs", "get-recovery-plan", "--recovery-plan-arn", &plan_arn],
    )
    .await;
    assert_eq!(got["recoveryPlan"]["tags"]["drs-runbook:runbook"], "plans");

    // A second export of the unchanged runbook changes nothing.
    let mutations_before = sim.get("/_sim/stats").await["mutations"]
        .as_array()
        .unwrap()
        .len();
    let second = export(false).await;
    assert_eq!(second.code, 0, "{second:#?}");
    assert_eq!(second.json()["changed"], false);
    assert!(
        second.stderr.contains("up to date: nothing to change"),
        "{second:#?}"
    );
    let mutations_after = sim.get("/_sim/stats").await["mutations"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        mutations_before, mutations_after,
        "no call changed anything"
    );

    // An execution of the plan, started with the SDK, holds server 151: the failover of a
    // runbook with that server is refused (exit 4), naming the plan, execution and state.
    sim.post("/_sim/clock", &serde_json::json!({ "speed": 1.0 }))
        .await;
    let drs = sim.drs("222222222222", "us-west-2");
    let execution = drs
        .start_recovery_plan_execution()
        .recovery_plan_arn(&plan_arn)
        .mode(RecoveryPlanExecutionMode::Drill)
        .send()
        .await
        .expect("the execution starts")
        .recovery_plan_execution
        .expect("an execution");
    let execution_id = execution
        .recovery_plan_execution_arn
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let failover = async || sim.cli(&db, &["failover", small, "--yes"]).await;
    let blocked = failover().await;
    assert_eq!(blocked.code, 4, "{blocked:#?}");
    assert!(
        blocked.stderr.contains("recovery plan \"plans\""),
        "{blocked:#?}"
    );
    assert!(blocked.stderr.contains(&execution_id), "{blocked:#?}");
    assert!(
        blocked.stderr.contains("CREATED") || blocked.stderr.contains("IN_PROGRESS"),
        "{blocked:#?}"
    );
    // A drill of the same servers is refused the same way.
    let drill = sim.cli(&db, &["drill", small, "--yes"]).await;
    assert_eq!(drill.code, 4, "{drill:#?}");
    assert!(drill.stderr.contains(&execution_id), "{drill:#?}");
    let stats = sim.get("/_sim/stats").await;
    assert!(
        mutations(&stats, "StartRecovery").is_empty(),
        "nothing recovered"
    );

    // Once the execution is cancelled and over, the failover passes preflight and recovers.
    drs.cancel_recovery_plan_execution()
        .recovery_plan_execution_arn(&execution.recovery_plan_execution_arn)
        .send()
        .await
        .expect("the execution is cancelled");
    sim.skip(60.0).await;
    let state = drs
        .get_recovery_plan_execution()
        .recovery_plan_execution_arn(&execution.recovery_plan_execution_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state.recovery_plan_execution.unwrap().status.as_str(),
        "CANCELLED"
    );
    sim.post("/_sim/clock", &serde_json::json!({ "speed": 600.0 }))
        .await;
    let passed = failover().await;
    assert_eq!(passed.code, 0, "{passed:#?}");
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(mutations(&stats, "StartRecovery").len(), 1);
}

/// A SERVER step configuration of these servers (ARNs in the recovery account and region).
fn server_step(servers: std::ops::Range<usize>) -> RecoveryPlanStepConfiguration {
    let servers = servers
        .map(|i| {
            RecoveryPlanServer::builder()
                .server_arn(format!(
                    "arn:aws:drs:us-west-2:222222222222:source-server/{}",
                    server(i)
                ))
                .build()
                .unwrap()
        })
        .collect();
    RecoveryPlanStepConfiguration::ServerStepConfiguration(
        ServerStepConfiguration::builder()
            .set_servers(Some(servers))
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn the_simulated_plans_enforce_the_model_limits_through_the_sdk() {
    let sim = TestSim::start(60.0).await;
    sim.seed(&big_runbook()).await;
    let drs = sim.drs("222222222222", "us-west-2");

    // A name outside `[a-zA-Z0-9][a-zA-Z0-9 _-]*` is refused; a clientToken replays the create.
    let err = drs
        .create_recovery_plan()
        .name("bad/name")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    let create = || {
        drs.create_recovery_plan()
            .name("p1")
            .client_token("token-1")
            .send()
    };
    let plan = create().await.unwrap().recovery_plan.unwrap();
    let again = create().await.unwrap().recovery_plan.unwrap();
    assert_eq!(plan.recovery_plan_arn, again.recovery_plan_arn);
    assert_eq!(plan.status.as_str(), "INVALID", "no SERVER step yet");
    assert_eq!(
        sim.get("/_sim/stats").await["calls"]["drs:CreateRecoveryPlan"],
        3
    );
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(mutations(&stats, "CreateRecoveryPlan").len(), 1);
    // A second plan of the same name conflicts (the stricter reading).
    let err = drs
        .create_recovery_plan()
        .name("p1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));

    // An INVALID plan cannot be executed.
    let arn = plan.recovery_plan_arn.clone();
    let err = drs
        .start_recovery_plan_execution()
        .recovery_plan_arn(&arn)
        .mode(RecoveryPlanExecutionMode::Recovery)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));

    // 101 servers in a step: the SDK's own validation or the simulator refuses.
    let err = drs
        .create_recovery_plan_step()
        .recovery_plan_arn(&arn)
        .step_name("too big")
        .configuration(server_step(0..101))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    // A server in two steps of a plan is refused.
    for (name, range) in [("a", 0..100), ("b", 100..102)] {
        drs.create_recovery_plan_step()
            .recovery_plan_arn(&arn)
            .step_name(name)
            .configuration(server_step(range))
            .send()
            .await
            .unwrap();
    }
    let err = drs
        .create_recovery_plan_step()
        .recovery_plan_arn(&arn)
        .step_name("c")
        .configuration(server_step(101..103))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));

    // At most 20 steps a plan (RecoveryPlanStepOrder 1..20).
    let other = drs
        .create_recovery_plan()
        .name("p2")
        .send()
        .await
        .unwrap()
        .recovery_plan
        .unwrap()
        .recovery_plan_arn;
    for i in 0..20 {
        drs.create_recovery_plan_step()
            .recovery_plan_arn(&other)
            .step_name(format!("wait {i}"))
            .configuration(RecoveryPlanStepConfiguration::WaitStepConfiguration(
                WaitStepConfiguration::builder()
                    .wait_duration_minutes(1)
                    .build()
                    .unwrap(),
            ))
            .send()
            .await
            .unwrap();
    }
    let err = drs
        .create_recovery_plan_step()
        .recovery_plan_arn(&other)
        .step_name("one too many")
        .configuration(server_step(140..141))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));

    // One non-terminal execution a plan; it holds its servers against StartRecovery and
    // against changes to the plan; it moves on the simulated clock.
    let start = || {
        drs.start_recovery_plan_execution()
            .recovery_plan_arn(&arn)
            .mode(RecoveryPlanExecutionMode::Drill)
            .send()
    };
    let execution = start().await.unwrap().recovery_plan_execution.unwrap();
    assert_eq!(execution.status.as_str(), "CREATED");
    assert_eq!(start().await.unwrap_err().code(), Some("ConflictException"));
    let err = drs
        .start_recovery()
        .source_servers(
            StartRecoveryRequestSourceServer::builder()
                .source_server_id(server(101))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));
    let err = drs
        .delete_recovery_plan()
        .recovery_plan_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));
    sim.skip(10.0).await;
    let status = |e: &aws_sdk_drs::types::RecoveryPlanExecution| e.status.as_str().to_string();
    let get = || {
        drs.get_recovery_plan_execution()
            .recovery_plan_execution_arn(&execution.recovery_plan_execution_arn)
            .send()
    };
    assert_eq!(
        status(&get().await.unwrap().recovery_plan_execution.unwrap()),
        "IN_PROGRESS"
    );
    // Two SERVER steps of 15 minutes: COMPLETED after half an hour; a completed execution
    // cannot be cancelled.
    sim.skip(31.0 * 60.0).await;
    assert_eq!(
        status(&get().await.unwrap().recovery_plan_execution.unwrap()),
        "COMPLETED"
    );
    let err = drs
        .cancel_recovery_plan_execution()
        .recovery_plan_execution_arn(&execution.recovery_plan_execution_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));
    let listed = drs
        .list_recovery_plan_executions()
        .status(aws_sdk_drs::types::RecoveryPlanExecutionStatus::Completed)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.recovery_plan_executions.len(), 1);

    // An unknown plan is a ResourceNotFoundException.
    let err = drs
        .get_recovery_plan()
        .recovery_plan_arn("arn:aws:drs:us-west-2:222222222222:recovery-plan/rp-00000000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}
