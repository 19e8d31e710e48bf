//! DRS post-launch actions (issue 15, item 4): PutLaunchAction / ListLaunchActions /
//! DeleteLaunchAction through the engine's adapter and the AWS CLI, their runs reported in the
//! launch job's `launchActionsStatus` (a `launch_action_failure` fault fails one), and an
//! instance launched STOPPED running its actions only once started.

use aws_sdk_drs::error::ProvideErrorMetadata;
use aws_sdk_drs::types::LaunchActionCategory;
use drs_runbook::aws::SideClients;
use drs_runbook::aws::drs_launch_actions::{LaunchAction, LaunchActionParam};
use serde_json::json;
use std::collections::BTreeMap;

use crate::support::{TestSim, aws, start_recovery};

const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
const TARGET: (&str, &str) = ("222222222222", "us-west-2");
const DB: &str = "s-1234567890abcdef0";
const APP1: &str = "s-234567890abcdef01";
const CHECK_ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const PACKAGE_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

fn action(id: &str, code: &str, order: i32, optional: bool) -> LaunchAction {
    LaunchAction {
        action_id: id.to_string(),
        action_code: code.to_string(),
        kind: None,
        name: format!("drs-runbook {code}"),
        active: true,
        order,
        action_version: "$DEFAULT".to_string(),
        optional,
        parameters: BTreeMap::from([(
            "commands".to_string(),
            LaunchActionParam {
                value: "dr-app-check".to_string(),
                kind: "SSM_STORE".to_string(),
            },
        )]),
        description: "Installed by drs-runbook (wave app)".to_string(),
        category: "VALIDATION".to_string(),
    }
}

async fn target_clients(sim: &TestSim) -> SideClients {
    let runbook = drs_runbook::runbook::parse(PAYMENTS, "payments.toml").unwrap();
    drs_runbook::aws::connect(
        &runbook,
        &drs_runbook::aws::Connection::Simulated {
            endpoint_url: sim.endpoint.clone(),
        },
    )
    .await
    .target
}

async fn set_launch(sim: &TestSim, server: &str, stopped: bool) {
    let mut call = sim
        .drs(TARGET.0, TARGET.1)
        .update_launch_configuration()
        .source_server_id(server)
        .post_launch_enabled(true);
    if stopped {
        call = call.launch_disposition(aws_sdk_drs::types::LaunchDisposition::Stopped);
    }
    call.send()
        .await
        .expect("UpdateLaunchConfiguration succeeds");
}

async fn start_drill(sim: &TestSim, servers: &[&str]) -> String {
    let drs = sim.drs(TARGET.0, TARGET.1);
    start_recovery(&drs, servers, true)
        .await
        .job_id()
        .to_string()
}

async fn job(side: &SideClients, job_id: &str) -> drs_runbook::aws::drs::Job {
    side.describe_jobs(&[job_id.to_string()])
        .await
        .unwrap()
        .pop()
        .expect("the job exists")
}

#[tokio::test(flavor = "multi_thread")]
async fn launch_actions_are_put_listed_and_deleted_with_the_models_rules() {
    let sim = TestSim::start(1.0).await;
    sim.seed(PAYMENTS).await;
    let side = target_clients(&sim).await;

    let put = side
        .put_launch_action(DB, &action(CHECK_ID, "AWS-RunShellScript", 1001, false))
        .await
        .expect("PutLaunchAction succeeds");
    assert_eq!(put.value.kind.as_deref(), Some("SSM_COMMAND"));
    assert!(put.request_id.is_some());
    side.put_launch_action(
        DB,
        &action(PACKAGE_ID, "AWS-ConfigureAWSPackage", 1002, true),
    )
    .await
    .unwrap();
    // The same actionId again replaces the action (a put, safe to repeat).
    let mut inactive = action(CHECK_ID, "AWS-RunShellScript", 1001, false);
    inactive.active = false;
    side.put_launch_action(DB, &inactive).await.unwrap();
    let listed = side.list_launch_actions(DB, &[]).await.unwrap();
    let ids: Vec<(&str, bool)> = listed
        .iter()
        .map(|a| (a.action_id.as_str(), a.active))
        .collect();
    assert_eq!(ids, [(CHECK_ID, false), (PACKAGE_ID, true)]);
    assert_eq!(listed[0].parameters["commands"].value, "dr-app-check");
    let filtered = side
        .list_launch_actions(DB, &[PACKAGE_ID.to_string()])
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].action_code, "AWS-ConfigureAWSPackage");

    // The model's rules, through the raw client.
    let drs = sim.drs(TARGET.0, TARGET.1);
    let put_raw = |order: i32, id: &str, value: &str, server: &str| {
        drs.put_launch_action()
            .resource_id(server)
            .action_id(id)
            .action_code("AWS-RunShellScript")
            .order(order)
            .optional(false)
            .active(true)
            .name("check")
            .action_version("$LATEST")
            .category(LaunchActionCategory::Validation)
            .description("check")
            .parameters(
                "commands",
                aws_sdk_drs::types::LaunchActionParameter::builder()
                    .value(value)
                    .r#type(aws_sdk_drs::types::LaunchActionParameterType::SsmStore)
                    .build(),
            )
            .send()
    };
    let other = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    let conflict = put_raw(1002, other, "dr-app-check", DB).await.unwrap_err();
    assert_eq!(conflict.code(), Some("ConflictException"), "{conflict:?}");
    let low = put_raw(1, other, "dr-app-check", DB).await.unwrap_err();
    assert_eq!(low.code(), Some("ValidationException"));
    let spaced = put_raw(1003, other, "systemctl is-active app", DB)
        .await
        .unwrap_err();
    assert_eq!(spaced.code(), Some("ValidationException"));
    assert!(
        spaced
            .message()
            .unwrap_or_default()
            .contains("parameters.commands.value"),
        "{spaced:?}"
    );
    let missing = put_raw(1003, other, "dr-app-check", "s-00000000000000000")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("ResourceNotFoundException"));

    assert!(
        side.delete_launch_action(DB, PACKAGE_ID)
            .await
            .unwrap()
            .value
    );
    assert!(
        !side
            .delete_launch_action(DB, PACKAGE_ID)
            .await
            .unwrap()
            .value,
        "a second delete finds nothing to delete"
    );
    let gone = side
        .delete_launch_action("s-00000000000000000", PACKAGE_ID)
        .await
        .unwrap_err();
    assert_eq!(gone.code.as_deref(), Some("ResourceNotFoundException"));
    let left = side.list_launch_actions(DB, &[]).await.unwrap();
    assert_eq!(left.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovery_runs_the_active_actions_and_a_fault_fails_one() {
    let sim = TestSim::start(1.0).await;
    sim.seed(PAYMENTS).await;
    let side = target_clients(&sim).await;
    for server in [DB, APP1] {
        set_launch(&sim, server, false).await;
        side.put_launch_action(server, &action(CHECK_ID, "AWS-RunShellScript", 1001, false))
            .await
            .unwrap();
    }
    side.put_launch_action(
        DB,
        &action(PACKAGE_ID, "AWS-ConfigureAWSPackage", 1002, true),
    )
    .await
    .unwrap();
    sim.faults(json!([
        {"kind": "launch_action_failure", "source_server_id": DB, "action_code": "AWS-ConfigureAWSPackage"},
        {"kind": "launch_action_failure", "source_server_id": APP1, "action_code": "AWS-RunShellScript"},
    ]))
    .await;
    let job_id = start_drill(&sim, &[DB, APP1]).await;

    // Step the clock: the runs appear IN_PROGRESS once the SSM agent is found, then end.
    let mut seen_in_progress = false;
    let mut done = None;
    for _ in 0..400 {
        sim.skip(10.0).await;
        let job = job(&side, &job_id).await;
        let runs: Vec<_> = job
            .servers
            .iter()
            .flat_map(|s| s.launch_actions.runs.clone())
            .collect();
        for s in &job.servers {
            if s.launch_status.as_deref() != Some("LAUNCHED") {
                assert!(
                    s.launch_actions.is_empty(),
                    "no runs before the launch: {s:?}"
                );
            }
        }
        seen_in_progress |= runs.iter().any(|r| r.status == "IN_PROGRESS");
        if runs.len() == 3 && runs.iter().all(|r| r.status != "IN_PROGRESS") {
            done = Some(job);
            break;
        }
    }
    assert!(seen_in_progress, "the runs are reported IN_PROGRESS first");
    let job = done.expect("every run ends");
    assert!(job.is_completed());
    let by_server: BTreeMap<&str, &drs_runbook::aws::drs::JobServer> = job
        .servers
        .iter()
        .map(|s| (s.source_server_id.as_str(), s))
        .collect();
    let db = &by_server[DB].launch_actions;
    assert!(db.ssm_agent_discovered.is_some());
    let statuses: Vec<(&str, &str)> = db
        .runs
        .iter()
        .map(|r| (r.action_code.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("AWS-RunShellScript", "SUCCEEDED"),
            ("AWS-ConfigureAWSPackage", "FAILED")
        ]
    );
    assert!(db.runs[1].optional);
    let app = &by_server[APP1].launch_actions.runs;
    assert_eq!(app.len(), 1);
    assert_eq!(app[0].status, "FAILED");
    assert_eq!(app[0].action_id, CHECK_ID);
    let reason = app[0].failure_reason.as_deref().unwrap_or_default();
    assert!(reason.contains("AWS-RunShellScript"), "{reason}");
    assert_ne!(app[0].run_id, db.runs[0].run_id);

    // A failed action that is not optional marks the launch failed; an optional one does not.
    let servers = sim
        .drs(TARGET.0, TARGET.1)
        .describe_source_servers()
        .send()
        .await
        .unwrap();
    let result = |id: &str| {
        servers
            .items()
            .iter()
            .find(|s| s.source_server_id() == Some(id))
            .and_then(|s| s.last_launch_result())
            .map(|r| r.as_str().to_string())
    };
    assert_eq!(result(APP1).as_deref(), Some("FAILED"));
    assert_eq!(result(DB).as_deref(), Some("SUCCEEDED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_launched_stopped_runs_its_actions_once_started() {
    let sim = TestSim::start(1.0).await;
    sim.seed(PAYMENTS).await;
    let side = target_clients(&sim).await;
    set_launch(&sim, DB, true).await;
    side.put_launch_action(DB, &action(CHECK_ID, "AWS-RunShellScript", 1001, false))
        .await
        .unwrap();
    // APP1 has the action but post-launch actions are not enabled on it: nothing runs.
    side.put_launch_action(APP1, &action(CHECK_ID, "AWS-RunShellScript", 1001, false))
        .await
        .unwrap();
    let job_id = start_drill(&sim, &[DB, APP1]).await;
    sim.skip(40.0 * 60.0).await;
    let launched = job(&side, &job_id).await;
    assert!(launched.is_completed());
    for s in &launched.servers {
        assert_eq!(s.launch_status.as_deref(), Some("LAUNCHED"));
        assert!(s.launch_actions.is_empty(), "nothing ran yet: {s:?}");
    }
    let instance = launched
        .servers
        .iter()
        .find(|s| s.source_server_id == DB)
        .and_then(|s| s.recovery_instance_id.clone())
        .unwrap();
    sim.ec2(TARGET.0, TARGET.1)
        .start_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("StartInstances succeeds");
    sim.skip(20.0 * 60.0).await;
    let after = job(&side, &job_id).await;
    let db = &after
        .servers
        .iter()
        .find(|s| s.source_server_id == DB)
        .unwrap()
        .launch_actions;
    let found = drs_runbook::aws::parse_time(db.ssm_agent_discovered.as_deref().unwrap()).unwrap();
    let ended = drs_runbook::aws::parse_time(after.ended.as_deref().unwrap()).unwrap();
    assert!(
        found > ended,
        "the agent is found after the job ended, once started"
    );
    assert_eq!(db.runs.len(), 1);
    assert_eq!(db.runs[0].status, "SUCCEEDED");
    let app = after
        .servers
        .iter()
        .find(|s| s.source_server_id == APP1)
        .unwrap();
    assert!(
        app.launch_actions.is_empty(),
        "postLaunchEnabled is off on APP1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_puts_lists_and_deletes_a_launch_action() {
    let sim = TestSim::start(60.0).await;
    sim.seed(PAYMENTS).await;
    let put = aws(
        &sim.endpoint,
        TARGET.0,
        TARGET.1,
        &[
            "drs",
            "put-launch-action",
            "--resource-id",
            DB,
            "--action-id",
            CHECK_ID,
            "--action-code",
            "AWS-RunShellScript",
            "--order",
            "1001",
            "--no-optional",
            "--active",
            "--name",
            "app check",
            "--action-version",
            "$DEFAULT",
            "--category",
            "VALIDATION",
            "--description",
            "drs-runbook check",
            "--parameters",
            r#"{"commands": {"value": "dr-app-check", "type": "SSM_STORE"}}"#,
        ],
    )
    .await;
    assert_eq!(put["resourceId"], DB);
    assert_eq!(put["type"], "SSM_COMMAND");
    assert_eq!(put["order"], 1001);
    let listed = aws(
        &sim.endpoint,
        TARGET.0,
        TARGET.1,
        &["drs", "list-launch-actions", "--resource-id", DB],
    )
    .await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["actionId"], CHECK_ID);
    assert_eq!(items[0]["parameters"]["commands"]["type"], "SSM_STORE");
    assert_eq!(items[0]["optional"], false);
    aws(
        &sim.endpoint,
        TARGET.0,
        TARGET.1,
        &[
            "drs",
            "delete-launch-action",
            "--resource-id",
            DB,
            "--action-id",
            CHECK_ID,
        ],
    )
    .await;
    let after = aws(
        &sim.endpoint,
        TARGET.0,
        TARGET.1,
        &["drs", "list-launch-actions", "--resource-id", DB],
    )
    .await;
    assert_eq!(after["items"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// `ssm_document` runbook actions: installed before the recovery, read from the job, removed.

const APP2: &str = "s-34567890abcdef012";

/// The payments runbook with an `ssm_document` action on wave `app` (launched STOPPED: it
/// boots after `db`, so its actions run once `boot:app` starts the instances).
fn payments_with_ssm_action() -> String {
    PAYMENTS.replace(
        "optional = [\"s-34567890abcdef012\"]   # failure of an optional server does not fail the wave\n",
        "optional = [\"s-34567890abcdef012\"]\n\n\
         [[wave.action]]\n\
         name = \"app-check\"\n\
         when = \"after_boot\"\n\
         run = { ssm_document = \"AWS-RunShellScript\", parameters = { commands = { ssm_store = \"payments-app-check\" } }, timeout = \"30m\" }\n",
    )
}

async fn action_step(dir: &std::path::Path, run_id: &str) -> serde_json::Value {
    let shown = crate::support::shown(&dir.join("runs.db"), run_id);
    crate::support::step_output(&shown, "action:app:app-check")
}

/// What the run left on the app servers: their launch actions and `postLaunchEnabled`.
async fn left_on_app_servers(sim: &TestSim) -> Vec<(usize, Option<bool>)> {
    let drs = sim.drs(TARGET.0, TARGET.1);
    let mut out = Vec::new();
    for server in [APP1, APP2] {
        let listed = drs
            .list_launch_actions()
            .resource_id(server)
            .send()
            .await
            .unwrap();
        let config = drs
            .get_launch_configuration()
            .source_server_id(server)
            .send()
            .await
            .unwrap();
        out.push((listed.items().len(), config.post_launch_enabled()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ssm_action_runs_in_the_recovery_job_and_is_removed_after_the_run() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    let dir = tempfile::tempdir().unwrap();
    let run = sim
        .failover_text(dir.path(), &payments_with_ssm_action())
        .await;
    assert_eq!(run.code, 0, "{run:#?}");
    let run_id = crate::support::run_id_of(&run);

    // Installed before the wave's StartRecovery, with post-launch actions enabled.
    let stats = sim.get("/_sim/stats").await;
    let puts = crate::support::mutations(&stats, "PutLaunchAction");
    assert_eq!(puts.len(), 2, "one per app server: {puts:#?}");
    let app_recovery = crate::support::mutations(&stats, "StartRecovery")
        .into_iter()
        .find(|r| r["params"]["sourceServers"].to_string().contains(APP1))
        .unwrap();
    for put in &puts {
        assert!(
            crate::support::time_of(&put["at"]) <= crate::support::time_of(&app_recovery["at"])
        );
        assert_eq!(put["params"]["actionCode"], "AWS-RunShellScript");
        assert_eq!(
            put["params"]["parameters"]["commands"]["value"],
            "payments-app-check"
        );
        assert_eq!(put["params"]["parameters"]["commands"]["type"], "SSM_STORE");
    }

    // The step read each launched server's run from the job.
    let step = action_step(dir.path(), &run_id).await;
    assert_eq!(step["kind"], "ssm_document");
    let runs = step["launch_action_runs"].as_array().unwrap();
    assert!(!runs.is_empty());
    for r in runs {
        assert_eq!(r["status"], "SUCCEEDED", "{step:#}");
        assert!(r["run_id"].as_str().is_some());
    }

    // Removed at the end, and postLaunchEnabled given back.
    assert_eq!(
        left_on_app_servers(&sim).await,
        [(0, Some(false)), (0, Some(false))]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_ssm_action_fails_the_wave_and_is_removed() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    sim.faults(json!([{"kind": "launch_action_failure", "source_server_id": APP1, "action_code": "AWS-RunShellScript"}])).await;
    let dir = tempfile::tempdir().unwrap();
    let run = sim
        .failover_text(dir.path(), &payments_with_ssm_action())
        .await;
    assert_eq!(run.code, 1, "{run:#?}");
    let run_id = crate::support::run_id_of(&run);
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("app-check"), "{text}");
    assert!(
        text.contains("launch_action_failure"),
        "the failureReason is shown: {text}"
    );
    let step = action_step(dir.path(), &run_id).await;
    let failed: Vec<&serde_json::Value> = step["launch_action_runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "FAILED")
        .collect();
    assert_eq!(failed.len(), 1, "{step:#}");
    assert_eq!(failed[0]["server"], APP1);
    // The traffic never moved to the failed wave.
    let stats = sim.get("/_sim/stats").await;
    assert!(crate::support::mutations(&stats, "ChangeResourceRecordSets").is_empty());
    // The step removed its action before failing the wave.
    assert_eq!(
        left_on_app_servers(&sim).await,
        [(0, Some(false)), (0, Some(false))]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_stops_before_its_ssm_action_is_rolled_back_without_the_installed_actions() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    sim.faults(json!([{"kind": "launch_failure", "source_server_id": APP1}]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let run = sim
        .failover_text(dir.path(), &payments_with_ssm_action())
        .await;
    assert_eq!(run.code, 1, "{run:#?}");
    let run_id = crate::support::run_id_of(&run);
    // launch:app failed: the action step never ran, its launch actions are still installed.
    assert_eq!(
        left_on_app_servers(&sim).await,
        [(1, Some(true)), (1, Some(true))]
    );
    let rollback = sim
        .run(&dir.path().join("runs.db"), "rollback", &run_id)
        .await;
    assert_eq!(rollback.code, 0, "{rollback:#?}");
    assert_eq!(
        left_on_app_servers(&sim).await,
        [(0, Some(false)), (0, Some(false))]
    );
}
