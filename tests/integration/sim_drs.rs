//! The simulated DRS through the real aws-sdk-drs client: initialization, quotas, job life and
//! its log, faults, termination, the AWS-to-AWS failback flow, and a restart mid-job.
//! Long waits are skipped on the simulated clock (`/_sim/clock`), never slept.

use aws_sdk_drs::Client;
use aws_sdk_drs::error::ProvideErrorMetadata;
use aws_sdk_drs::types::{
    DescribeJobsRequestFilters, DescribeRecoveryInstancesRequestFilters,
    DescribeSourceServersRequestFilters, Job, RecoveryInstance, SourceServer,
    StartRecoveryRequestSourceServer,
};
use drs_runbook::sim::SimOptions;
use serde_json::json;

use crate::support::{TestSim, start_recovery};

const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
/// The payments runbook: target (B1 lives here) and source (A1 runs here).
const TARGET: (&str, &str) = ("222222222222", "us-west-2");
const SOURCE: (&str, &str) = ("111111111111", "us-east-1");
const DB: &str = "s-1234567890abcdef0";
const APP1: &str = "s-234567890abcdef01";
const APP2: &str = "s-34567890abcdef012";
/// Longer than any launch job can take (15 s + 45 s + 40 s + 6 min + 5 min + a few seconds).
const JOB_DONE_SECS: f64 = 30.0 * 60.0;

fn server(id: &str) -> StartRecoveryRequestSourceServer {
    StartRecoveryRequestSourceServer::builder()
        .source_server_id(id)
        .build()
        .expect("sourceServerID is set")
}

async fn seeded() -> (TestSim, Client) {
    let sim = TestSim::start(1.0).await;
    sim.seed(PAYMENTS).await;
    let drs = sim.drs(TARGET.0, TARGET.1);
    (sim, drs)
}

async fn job(drs: &Client, job_id: &str) -> Job {
    let out = drs
        .describe_jobs()
        .filters(
            DescribeJobsRequestFilters::builder()
                .job_ids(job_id)
                .build(),
        )
        .send()
        .await
        .expect("DescribeJobs succeeds");
    assert_eq!(out.items().len(), 1, "DescribeJobs finds {job_id}");
    out.items()[0].clone()
}

fn status(job: &Job) -> &str {
    job.status().map(|s| s.as_str()).unwrap_or("")
}

fn launch_status_of(job: &Job, server_id: &str) -> String {
    job.participating_servers()
        .iter()
        .find(|s| s.source_server_id() == Some(server_id))
        .and_then(|s| s.launch_status())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

/// The job's log as (event, sourceServerID) pairs, every page.
async fn log(drs: &Client, job_id: &str) -> Vec<aws_sdk_drs::types::JobLog> {
    drs.describe_job_log_items()
        .job_id(job_id)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("DescribeJobLogItems succeeds")
}

fn events_of(log: &[aws_sdk_drs::types::JobLog], server_id: Option<&str>) -> Vec<String> {
    log.iter()
        .filter(|item| {
            server_id.is_none()
                || item.event_data().and_then(|d| d.source_server_id()) == server_id
                || matches!(
                    item.event().map(|e| e.as_str()),
                    Some("JOB_START" | "JOB_END")
                )
        })
        .map(|item| {
            item.event()
                .map(|e| e.as_str().to_string())
                .unwrap_or_default()
        })
        .collect()
}

async fn source_server(drs: &Client, id: &str) -> SourceServer {
    let out = drs
        .describe_source_servers()
        .filters(
            DescribeSourceServersRequestFilters::builder()
                .source_server_ids(id)
                .build(),
        )
        .send()
        .await
        .expect("DescribeSourceServers succeeds");
    out.items()
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("source server {id} exists"))
}

async fn recovery_instances(drs: &Client) -> Vec<RecoveryInstance> {
    drs.describe_recovery_instances()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("DescribeRecoveryInstances succeeds")
}

fn replication_state(s: &SourceServer) -> String {
    s.data_replication_info()
        .and_then(|d| d.data_replication_state())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn calls_fail_with_uninitialized_account_until_initialize_service() {
    let sim = TestSim::start(1.0).await;
    let drs = sim.drs("333333333333", "eu-central-1");
    let err = drs.describe_source_servers().send().await.unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_uninitialized_account_exception(), "{err:?}");
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("InitializeService")
    );

    drs.initialize_service()
        .send()
        .await
        .expect("InitializeService succeeds");
    let out = drs
        .describe_source_servers()
        .send()
        .await
        .expect("now initialized");
    assert!(out.items().is_empty());
    assert!(out.next_token().is_none());
    // Initialization is per account and region.
    let other = sim.drs("333333333333", "eu-west-1");
    assert!(
        other
            .describe_jobs()
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .is_uninitialized_account_exception()
    );
}

#[tokio::test]
async fn errors_carry_the_modeled_status_type_header_and_field_list() {
    let sim = TestSim::start(1.0).await;
    let http = reqwest::Client::new();
    // Unsigned requests act as account 000000000000 in us-east-1.
    let init = http
        .post(format!("{}/InitializeService", sim.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status().as_u16(), 204);
    assert!(init.headers().contains_key("x-amzn-requestid"));
    let response = http
        .post(format!("{}/StartRecovery", sim.endpoint))
        .header("content-type", "application/json")
        .body(r#"{"sourceServers": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "ValidationException"
    );
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["__type"], "ValidationException");
    assert_eq!(body["reason"], "fieldValidationFailed");
    assert_eq!(body["fieldList"][0]["name"], "sourceServers");

    let unknown = http
        .post(format!("{}/StartFailbackLaunch", sim.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 400);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["reason"], "unknownOperation");
}

#[tokio::test]
async fn a_150_server_drill_needs_two_jobs_and_lists_them_page_by_page() {
    let sim = TestSim::start(1.0).await;
    let ids: Vec<String> = (1..=150).map(|i| format!("s-{i:017x}")).collect();
    let runbook = format!(
        "name = \"big\"\n[source]\naccount_id = \"{}\"\nregion = \"{}\"\n[target]\naccount_id = \"{}\"\nregion = \"{}\"\n[[wave]]\nname = \"all\"\nservers = [{}]\n",
        SOURCE.0,
        SOURCE.1,
        TARGET.0,
        TARGET.1,
        ids.iter()
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let summary = sim.seed(&runbook).await;
    assert_eq!(summary["source_servers"], 150);
    let drs = sim.drs(TARGET.0, TARGET.1);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();

    let err = drs
        .start_recovery()
        .set_source_servers(Some(refs.iter().map(|id| server(id)).collect()))
        .is_drill(true)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_service_quota_exceeded_exception(), "{err:?}");
    assert!(err.message().unwrap_or_default().contains("100"));

    let first = start_recovery(&drs, &refs[..100], true).await;
    let second = start_recovery(&drs, &refs[100..], true).await;
    assert_eq!(first.participating_servers().len(), 100);
    assert_eq!(second.participating_servers().len(), 50);
    assert_eq!(
        first.initiated_by().map(|i| i.as_str()),
        Some("START_DRILL")
    );
    assert_eq!(status(&first), "PENDING");

    // One active job per server, with the service's own words.
    let err = drs
        .start_recovery()
        .source_servers(server(refs[120]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");
    assert_eq!(
        err.message(),
        Some(
            "One or more of the Source Servers included in API call are currently being processed by a Job"
        )
    );

    // Pagination: one job a page, latest first, no token after the last page.
    let page1 = drs.describe_jobs().max_results(1).send().await.unwrap();
    assert_eq!(page1.items()[0].job_id(), second.job_id());
    let token = page1.next_token().expect("a second page").to_string();
    let page2 = drs
        .describe_jobs()
        .max_results(1)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(page2.items()[0].job_id(), first.job_id());
    assert!(page2.next_token().is_none());
    let all: Vec<Job> = drs
        .describe_jobs()
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);

    sim.skip(JOB_DONE_SECS).await;
    for j in [&first, &second] {
        let done = job(&drs, j.job_id()).await;
        assert_eq!(status(&done), "COMPLETED");
        assert!(done.end_date_time().is_some());
        assert!(
            done.participating_servers()
                .iter()
                .all(|s| s.launch_status().map(|l| l.as_str()) == Some("LAUNCHED"))
        );
    }
    let instances = recovery_instances(&drs).await;
    assert_eq!(instances.len(), 150);
    assert!(instances.iter().all(|r| r.is_drill() == Some(true)
        && r.ec2_instance_state().map(|s| s.as_str()) == Some("RUNNING")));
}

#[tokio::test]
async fn a_launch_logs_its_phases_in_order_and_a_relaunch_cleans_up_from_a_snapshot() {
    let (sim, drs) = seeded().await;
    let first = start_recovery(&drs, &[DB], false).await;
    assert!(first.creation_date_time().unwrap().ends_with("+00:00"));
    sim.skip(JOB_DONE_SECS).await;
    let items = log(&drs, first.job_id()).await;
    assert_eq!(
        events_of(&items, Some(DB)),
        [
            "JOB_START",
            "SNAPSHOT_START",
            "SNAPSHOT_END",
            "CONVERSION_START",
            "CONVERSION_END",
            "LAUNCH_START",
            "LAUNCH_END",
            "JOB_END"
        ]
    );
    let snapshot_start = items[1].log_date_time().unwrap().to_string();
    let conversion = items
        .iter()
        .find(|i| i.event().map(|e| e.as_str()) == Some("CONVERSION_END"))
        .unwrap();
    let data_timestamp = conversion
        .event_data()
        .and_then(|d| d.conversion_properties())
        .and_then(|c| c.data_timestamp())
        .unwrap();
    assert_eq!(
        data_timestamp, snapshot_start,
        "an on-demand snapshot holds the data of its start"
    );
    let conversion_start = items
        .iter()
        .find(|i| i.event().map(|e| e.as_str()) == Some("CONVERSION_START"))
        .unwrap();
    assert!(
        conversion_start
            .event_data()
            .unwrap()
            .conversion_server_id()
            .unwrap()
            .starts_with("i-")
    );
    let launch = items
        .iter()
        .find(|i| i.event().map(|e| e.as_str()) == Some("LAUNCH_START"))
        .unwrap();
    let b2 = launch
        .event_data()
        .unwrap()
        .target_instance_id()
        .unwrap()
        .to_string();
    let times: Vec<&str> = items.iter().map(|i| i.log_date_time().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "log in time order: {times:?}"
    );

    let b1 = source_server(&drs, DB).await;
    assert_eq!(b1.recovery_instance_id(), Some(b2.as_str()));
    assert_eq!(
        b1.last_launch_result().map(|r| r.as_str()),
        Some("SUCCEEDED")
    );
    let instances = recovery_instances(&drs).await;
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].recovery_instance_id(), Some(b2.as_str()));
    assert_eq!(
        instances[0].point_in_time_snapshot_date_time(),
        Some(data_timestamp)
    );
    assert_eq!(
        instances[0].ec2_instance_state().map(|s| s.as_str()),
        Some("RUNNING")
    );
    let ips = instances[0]
        .recovery_instance_properties()
        .unwrap()
        .network_interfaces()[0]
        .ips();
    assert!(ips[0].starts_with("10."), "{ips:?}");

    // Relaunch from a point-in-time snapshot: the previous instance is cleaned up first.
    let snapshots = drs
        .describe_recovery_snapshots()
        .source_server_id(DB)
        .order(aws_sdk_drs::types::RecoverySnapshotsOrder::Desc)
        .max_results(5)
        .send()
        .await
        .unwrap();
    assert_eq!(snapshots.items().len(), 5);
    assert!(snapshots.next_token().is_some());
    let pit = &snapshots.items()[2];
    assert!(pit.snapshot_id().starts_with("pit-") && pit.snapshot_id().len() == 21);
    let second = drs
        .start_recovery()
        .source_servers(
            StartRecoveryRequestSourceServer::builder()
                .source_server_id(DB)
                .recovery_snapshot_id(pit.snapshot_id())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .job()
        .unwrap()
        .clone();
    sim.skip(JOB_DONE_SECS).await;
    let items = log(&drs, second.job_id()).await;
    assert_eq!(
        events_of(&items, Some(DB)),
        [
            "JOB_START",
            "CLEANUP_START",
            "CLEANUP_END",
            "USING_PREVIOUS_SNAPSHOT",
            "CONVERSION_START",
            "CONVERSION_END",
            "LAUNCH_START",
            "LAUNCH_END",
            "JOB_END"
        ]
    );
    let conversion = items
        .iter()
        .find(|i| i.event().map(|e| e.as_str()) == Some("CONVERSION_END"))
        .unwrap();
    assert_eq!(
        conversion
            .event_data()
            .unwrap()
            .conversion_properties()
            .unwrap()
            .data_timestamp(),
        pit.timestamp()
    );
    let instances = recovery_instances(&drs).await;
    assert_eq!(
        instances.len(),
        1,
        "the previous recovery instance was cleaned up"
    );
    assert_ne!(instances[0].recovery_instance_id(), Some(b2.as_str()));

    // A snapshot of another server is refused.
    let err = drs
        .start_recovery()
        .source_servers(
            StartRecoveryRequestSourceServer::builder()
                .source_server_id(APP1)
                .recovery_snapshot_id(pit.snapshot_id())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
}

#[tokio::test]
async fn throttled_describe_jobs_is_retried_by_the_sdk() {
    let (sim, drs) = seeded().await;
    sim.faults(json!([
        {"kind": "api_error", "service": "drs", "operation": "DescribeJobs", "error": "ThrottlingException", "count": 2}
    ]))
    .await;
    let out = drs
        .describe_jobs()
        .send()
        .await
        .expect("the SDK retries throttling");
    assert!(out.items().is_empty());
    assert_eq!(sim.calls("drs:DescribeJobs").await, 3);
}

#[tokio::test]
async fn launch_and_conversion_failures_fail_only_their_servers() {
    let (sim, drs) = seeded().await;
    sim.faults(json!([
        {"kind": "conversion_failure", "source_server_id": APP1},
        {"kind": "launch_failure", "source_server_id": APP2}
    ]))
    .await;
    let started = start_recovery(&drs, &[DB, APP1, APP2], false).await;
    sim.skip(JOB_DONE_SECS).await;
    let done = job(&drs, started.job_id()).await;
    assert_eq!(
        status(&done),
        "COMPLETED",
        "a job completes even when servers fail"
    );
    assert_eq!(launch_status_of(&done, DB), "LAUNCHED");
    assert_eq!(launch_status_of(&done, APP1), "FAILED");
    assert_eq!(launch_status_of(&done, APP2), "FAILED");
    let items = log(&drs, started.job_id()).await;
    let app1 = events_of(&items, Some(APP1));
    assert_eq!(app1[app1.len() - 2], "CONVERSION_FAIL");
    assert!(!app1.contains(&"LAUNCH_START".to_string()));
    let app2 = events_of(&items, Some(APP2));
    assert_eq!(app2[app2.len() - 2], "LAUNCH_FAILED");
    for event in ["CONVERSION_FAIL", "LAUNCH_FAILED"] {
        let item = items
            .iter()
            .find(|i| i.event().map(|e| e.as_str()) == Some(event))
            .unwrap();
        assert!(
            !item
                .event_data()
                .unwrap()
                .raw_error()
                .unwrap_or_default()
                .is_empty()
        );
    }
    assert_eq!(
        source_server(&drs, APP1)
            .await
            .last_launch_result()
            .map(|r| r.as_str()),
        Some("FAILED")
    );
    assert_eq!(recovery_instances(&drs).await.len(), 1);
}

#[tokio::test]
async fn a_stuck_job_never_completes_until_the_fault_is_cleared() {
    let (sim, drs) = seeded().await;
    sim.faults(json!([{"kind": "stuck_job", "source_server_id": APP1}]))
        .await;
    let started = start_recovery(&drs, &[DB, APP1], true).await;
    sim.skip(6.0 * 3600.0).await;
    let stuck = job(&drs, started.job_id()).await;
    assert_eq!(status(&stuck), "STARTED");
    assert!(stuck.end_date_time().is_none());
    assert_eq!(launch_status_of(&stuck, DB), "LAUNCHED");
    assert_eq!(launch_status_of(&stuck, APP1), "IN_PROGRESS");

    reqwest::Client::new()
        .delete(format!("{}/_sim/faults", sim.endpoint))
        .send()
        .await
        .unwrap();
    sim.skip(JOB_DONE_SECS).await;
    let done = job(&drs, started.job_id()).await;
    assert_eq!(status(&done), "COMPLETED");
    assert_eq!(launch_status_of(&done, APP1), "LAUNCHED");
}

#[tokio::test]
async fn a_terminate_job_removes_the_recovery_instances() {
    let (sim, drs) = seeded().await;
    start_recovery(&drs, &[DB, APP1], true).await;
    sim.skip(JOB_DONE_SECS).await;
    let ids: Vec<String> = recovery_instances(&drs)
        .await
        .iter()
        .filter_map(|r| r.recovery_instance_id().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 2);
    let terminate = drs
        .terminate_recovery_instances()
        .set_recovery_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap()
        .job()
        .unwrap()
        .clone();
    assert_eq!(terminate.r#type().map(|t| t.as_str()), Some("TERMINATE"));
    assert_eq!(
        terminate.initiated_by().map(|i| i.as_str()),
        Some("TERMINATE_RECOVERY_INSTANCES")
    );
    // The terminate job holds its servers.
    let err = drs
        .start_recovery()
        .source_servers(server(DB))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_conflict_exception());

    // Shutting down starts seconds after the job does; termination takes 60-180 s (jittered
    // per job), so 20 s in is always the middle of the job.
    sim.skip(20.0).await;
    let mid = drs
        .describe_recovery_instances()
        .filters(
            DescribeRecoveryInstancesRequestFilters::builder()
                .recovery_instance_ids(&ids[0])
                .build(),
        )
        .send()
        .await
        .unwrap();
    let state = mid.items()[0]
        .ec2_instance_state()
        .map(|s| s.as_str().to_string());
    assert!(
        matches!(state.as_deref(), Some("SHUTTING-DOWN" | "TERMINATED")),
        "{state:?}"
    );

    sim.skip(JOB_DONE_SECS).await;
    let done = job(&drs, terminate.job_id()).await;
    assert_eq!(status(&done), "COMPLETED");
    assert!(
        done.participating_servers()
            .iter()
            .all(|s| s.launch_status().map(|l| l.as_str()) == Some("TERMINATED"))
    );
    assert!(recovery_instances(&drs).await.is_empty());
    assert!(
        source_server(&drs, DB)
            .await
            .recovery_instance_id()
            .is_none()
    );
}

#[tokio::test]
async fn failback_reverses_replication_to_the_origin_and_launches_there() {
    let (sim, drs) = seeded().await;
    let origin = sim.drs(SOURCE.0, SOURCE.1);
    start_recovery(&drs, &[DB], false).await;
    sim.skip(JOB_DONE_SECS).await;
    let b2 = recovery_instances(&drs).await[0].clone();
    let b2_id = b2.recovery_instance_id().unwrap().to_string();
    assert_eq!(
        b2.failback().unwrap().state().map(|s| s.as_str()),
        Some("FAILBACK_NOT_STARTED")
    );

    let a2_arn = drs
        .reverse_replication()
        .recovery_instance_id(&b2_id)
        .send()
        .await
        .unwrap()
        .reversed_direction_source_server_arn()
        .unwrap()
        .to_string();
    assert!(
        a2_arn.starts_with(&format!(
            "arn:aws:drs:{}:{}:source-server/s-",
            SOURCE.1, SOURCE.0
        )),
        "{a2_arn}"
    );
    let a2_id = a2_arn.rsplit('/').next().unwrap().to_string();
    let err = drs
        .reverse_replication()
        .recovery_instance_id(&b2_id)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_conflict_exception());

    let a2 = source_server(&origin, &a2_id).await;
    assert_eq!(
        a2.replication_direction().map(|d| d.as_str()),
        Some("FAILBACK")
    );
    assert_eq!(replication_state(&a2), "INITIATING");
    assert_eq!(
        a2.source_properties()
            .unwrap()
            .identification_hints()
            .unwrap()
            .aws_instance_id(),
        b2.ec2_instance_id()
    );
    let cloud = a2.source_cloud_properties().unwrap();
    assert_eq!(
        (cloud.origin_account_id(), cloud.origin_region()),
        (Some(TARGET.0), Some(TARGET.1))
    );
    let b1 = source_server(&drs, DB).await;
    assert_eq!(
        b1.reversed_direction_source_server_arn(),
        Some(a2_arn.as_str())
    );
    assert_eq!(a2.reversed_direction_source_server_arn(), b1.arn());
    let b2_now = recovery_instances(&drs).await[0].clone();
    assert_eq!(
        b2_now.failback().unwrap().state().map(|s| s.as_str()),
        Some("FAILBACK_IN_PROGRESS")
    );

    // The initial sync copies A2's whole disk across regions, at 20 MiB a second.
    let info = a2.data_replication_info().unwrap();
    let disk = info.replicated_disks()[0].total_storage_bytes();
    let started = info
        .data_replication_initiation()
        .unwrap()
        .start_date_time()
        .unwrap();
    let eta = info.eta_date_time().unwrap();
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    assert_eq!(
        (parse(eta) - parse(started)).num_seconds(),
        60 + disk / (20 << 20),
        "INITIATING for a minute, then the copy of {disk} bytes"
    );
    sim.skip((60 + disk / (20 << 20) - 30) as f64).await;
    assert_eq!(
        replication_state(&source_server(&origin, &a2_id).await),
        "INITIAL_SYNC"
    );
    sim.skip(60.0).await;
    assert_eq!(
        replication_state(&source_server(&origin, &a2_id).await),
        "CONTINUOUS"
    );
    let b2_ready = recovery_instances(&drs).await[0].clone();
    assert_eq!(
        b2_ready.failback().unwrap().state().map(|s| s.as_str()),
        Some("FAILBACK_READY_FOR_LAUNCH")
    );
    assert_eq!(
        b2_ready
            .data_replication_info()
            .unwrap()
            .data_replication_state()
            .map(|s| s.as_str()),
        Some("CONTINUOUS")
    );

    // A3: StartRecovery on A2 in the origin account and region.
    let failback = start_recovery(&origin, &[&a2_id], false).await;
    sim.skip(JOB_DONE_SECS).await;
    let done = job(&origin, failback.job_id()).await;
    assert_eq!(launch_status_of(&done, &a2_id), "LAUNCHED");
    let a3 = recovery_instances(&origin).await;
    assert_eq!(a3.len(), 1);
    assert_eq!(a3[0].source_server_id(), Some(a2_id.as_str()));
    let world = sim.get("/_sim/world").await;
    let a4 = &world["ec2"]["instances"][a3[0].ec2_instance_id().unwrap()];
    assert_eq!(
        (a4["account"].as_str(), a4["region"].as_str()),
        (Some(SOURCE.0), Some(SOURCE.1))
    );

    // B2 cannot be terminated while A2 replicates from it; after StopReplication it can.
    let err = drs
        .terminate_recovery_instances()
        .recovery_instance_ids(&b2_id)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_conflict_exception());
    let stopped = origin
        .stop_replication()
        .source_server_id(&a2_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replication_state(stopped.source_server().unwrap()),
        "STOPPED"
    );
    let snapshots = origin
        .describe_recovery_snapshots()
        .source_server_id(&a2_id)
        .send()
        .await
        .unwrap();
    assert!(
        snapshots.items().is_empty(),
        "StopReplication deletes the snapshots"
    );
    drs.terminate_recovery_instances()
        .recovery_instance_ids(&b2_id)
        .send()
        .await
        .unwrap();
}

/// Fails DB over, then gives the origin default launch settings that launch into the source
/// instance (and transfer the server tags with `copy_tags`); returns the world, B2 and A1.
async fn launching_into_the_source_by_default(
    copy_tags: bool,
) -> (TestSim, Client, String, String) {
    let (sim, drs) = seeded().await;
    let origin = sim.drs(SOURCE.0, SOURCE.1);
    let templates = origin
        .describe_launch_configuration_templates()
        .send()
        .await
        .unwrap();
    assert!(
        templates.items().is_empty(),
        "seeding sets no default launch settings: launch into source instance is off"
    );
    start_recovery(&drs, &[DB], false).await;
    sim.skip(JOB_DONE_SECS).await;
    let b2 = recovery_instances(&drs).await[0]
        .recovery_instance_id()
        .unwrap()
        .to_string();
    let a1 = source_server(&drs, DB)
        .await
        .source_properties()
        .unwrap()
        .identification_hints()
        .unwrap()
        .aws_instance_id()
        .unwrap()
        .to_string();
    let created = origin
        .create_launch_configuration_template()
        .launch_into_source_instance(true)
        .copy_tags(copy_tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created
            .launch_configuration_template()
            .unwrap()
            .launch_into_source_instance(),
        Some(true)
    );
    (sim, drs, b2, a1)
}

async fn tag_for_launching_into(sim: &TestSim, a1: &str) {
    sim.ec2(SOURCE.0, SOURCE.1)
        .create_tags()
        .resources(a1)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("AWSDRS")
                .value("AllowLaunchingIntoThisInstance")
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn launching_into_the_source_instance_by_default_needs_a1_tagged_and_no_copied_ip_or_tags() {
    let (sim, drs, b2, a1) = launching_into_the_source_by_default(false).await;
    let err = drs
        .reverse_replication()
        .recovery_instance_id(&b2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");
    let message = err.message().unwrap();
    assert!(
        message.contains(&a1) && message.contains("AWSDRS=AllowLaunchingIntoThisInstance"),
        "{message}"
    );
    tag_for_launching_into(&sim, &a1).await;
    drs.reverse_replication()
        .recovery_instance_id(&b2)
        .send()
        .await
        .unwrap();

    // Transferring the server's tags is incompatible with launching into an instance.
    let (sim, drs, b2, a1) = launching_into_the_source_by_default(true).await;
    tag_for_launching_into(&sim, &a1).await;
    let err = drs
        .reverse_replication()
        .recovery_instance_id(&b2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");
    assert!(err.message().unwrap().contains("copyTags"), "{err:?}");
}

#[tokio::test]
async fn reverse_replication_needs_drs_initialized_in_the_origin() {
    let sim = TestSim::start(1.0).await;
    // Seed only the target side by hand: B1 replicating from an A1 in an uninitialized account.
    sim.sim.with_state(|state| {
        let now = state.clock.now();
        let a1 = state
            .world
            .ec2
            .launch(
                "i-0a1a1a1a1a1a1a1a1".into(),
                "444444444444",
                "eu-west-1",
                drs_runbook::sim::ec2::InstanceState::Running,
                now,
                "legacy",
            )
            .clone();
        drs_runbook::sim::drs::initialize(&mut state.world, TARGET.0, TARGET.1, now);
        assert!(drs_runbook::sim::drs::seed_source_server(
            &mut state.world,
            now,
            TARGET.0,
            TARGET.1,
            DB,
            &a1
        ));
        assert!(!drs_runbook::sim::drs::seed_source_server(
            &mut state.world,
            now,
            TARGET.0,
            TARGET.1,
            DB,
            &a1
        ));
        assert!(!drs_runbook::sim::drs::is_initialized(
            &state.world,
            "444444444444",
            "eu-west-1"
        ));
    });
    let drs = sim.drs(TARGET.0, TARGET.1);
    start_recovery(&drs, &[DB], false).await;
    sim.skip(JOB_DONE_SECS).await;
    let b2 = recovery_instances(&drs).await[0]
        .recovery_instance_id()
        .unwrap()
        .to_string();
    let err = drs
        .reverse_replication()
        .recovery_instance_id(&b2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_uninitialized_account_exception(), "{err:?}");
    assert!(err.message().unwrap().contains("444444444444"));
}

#[tokio::test]
async fn a_restarted_simulator_finishes_the_job_it_was_running() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("world.json");
    let options = SimOptions {
        speed: 1.0,
        state_file: Some(state_file.clone()),
    };
    let (job_id, before) = {
        let sim = TestSim::start_with(options.clone()).await;
        sim.seed(PAYMENTS).await;
        let drs = sim.drs(TARGET.0, TARGET.1);
        let started = start_recovery(&drs, &[DB, APP1], false).await;
        sim.skip(120.0).await;
        let mid = job(&drs, started.job_id()).await;
        assert_eq!(status(&mid), "STARTED");
        (
            started.job_id().to_string(),
            log(&drs, started.job_id()).await.len(),
        )
    };
    assert!(before >= 3, "the job was under way ({before} log items)");

    let sim = TestSim::start_with(options).await;
    let drs = sim.drs(TARGET.0, TARGET.1);
    let resumed = job(&drs, &job_id).await;
    assert_eq!(status(&resumed), "STARTED");
    assert!(log(&drs, &job_id).await.len() >= before);
    sim.skip(JOB_DONE_SECS).await;
    let done = job(&drs, &job_id).await;
    assert_eq!(status(&done), "COMPLETED");
    assert_eq!(launch_status_of(&done, DB), "LAUNCHED");
    assert_eq!(launch_status_of(&done, APP1), "LAUNCHED");
    assert_eq!(recovery_instances(&drs).await.len(), 2);
}

#[tokio::test]
async fn launch_and_replication_configurations_read_plausibly() {
    let (_sim, drs) = seeded().await;
    let launch = drs
        .get_launch_configuration()
        .source_server_id(DB)
        .send()
        .await
        .unwrap();
    assert_eq!(launch.source_server_id(), Some(DB));
    assert_eq!(
        launch.launch_disposition().map(|d| d.as_str()),
        Some("STARTED")
    );
    let replication = drs
        .get_replication_configuration()
        .source_server_id(DB)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replication.ebs_encryption().map(|e| e.as_str()),
        Some("DEFAULT")
    );
    assert_eq!(replication.pit_policy().len(), 3);
    let err = drs
        .get_launch_configuration()
        .source_server_id("s-00000000000000000")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());

    let b1 = source_server(&drs, DB).await;
    assert_eq!(replication_state(&b1), "CONTINUOUS");
    assert_eq!(
        b1.data_replication_info().unwrap().lag_duration(),
        Some("P0D")
    );
    assert_eq!(
        b1.staging_area().unwrap().status().map(|s| s.as_str()),
        Some("NOT_EXTENDED")
    );
    assert_eq!(
        b1.source_cloud_properties().unwrap().origin_region(),
        Some(SOURCE.1)
    );
    let arn = b1.arn().unwrap().to_string();
    drs.tag_resource()
        .resource_arn(&arn)
        .tags("Tier", "db")
        .send()
        .await
        .unwrap();
    let tags = drs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().unwrap().get("Tier").map(String::as_str),
        Some("db")
    );
    drs.untag_resource()
        .resource_arn(&arn)
        .tag_keys("Tier")
        .send()
        .await
        .unwrap();
    let tags = drs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(tags.tags().is_none_or(|t| t.is_empty()));
}

#[tokio::test]
async fn job_progress_does_not_depend_on_how_often_the_world_advances() {
    let (sim, drs) = seeded().await;
    start_recovery(&drs, &[DB, APP1, APP2], false).await;
    let (world, now) = sim.sim.with_state(|s| (s.world.clone(), s.clock.now()));
    let end = now + chrono::Duration::minutes(30);
    let mut at_once = world.clone();
    at_once.advance(end, &[]);
    let mut step_by_step = world;
    let mut t = now;
    while t < end {
        t += chrono::Duration::seconds(7);
        step_by_step.advance(t.min(end), &[]);
    }
    let a = serde_json::to_value(&at_once).unwrap();
    let b = serde_json::to_value(&step_by_step).unwrap();
    assert_eq!(a["drs"], b["drs"]);
    assert_eq!(
        a["drs"][format!("{}/{}", TARGET.0, TARGET.1)]["jobs"][0]["status"],
        "COMPLETED"
    );
}
