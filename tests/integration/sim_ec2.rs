//! The simulated EC2 through the real aws-sdk-ec2 client and the AWS CLI, and the DRS launch
//! settings that decide what a recovery makes of it: instances and their status checks, state
//! transitions and their errors, subnets and launch templates, the VPC rule of RegisterTargets,
//! launch configurations that round-trip and change a recovery (STOPPED, FAST), LAUNCH_END.

use aws_sdk_drs::types::{LaunchDisposition, RecoveryMode};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{InstanceStateName, SummaryStatus};
use serde_json::json;

use crate::support::{TestSim, aws, start_recovery, target};

const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
const TARGET: (&str, &str) = ("222222222222", "us-west-2");
const SOURCE: (&str, &str) = ("111111111111", "us-east-1");
const DB: &str = "s-1234567890abcdef0";
const APP1: &str = "s-234567890abcdef01";
const APP2: &str = "s-34567890abcdef012";
const JOB_DONE_SECS: f64 = 30.0 * 60.0;

async fn seeded() -> TestSim {
    let sim = TestSim::start(1.0).await;
    sim.seed(PAYMENTS).await;
    sim
}

/// Starts one recovery job of `ids`, waits for it to end and returns its ID.
async fn recover(sim: &TestSim, ids: &[&str]) -> String {
    let job = start_recovery(&sim.drs(TARGET.0, TARGET.1), ids, false).await;
    sim.skip(JOB_DONE_SECS).await;
    job.job_id().to_string()
}

/// The EC2 instance recovered from `server` (by its DRS recovery instance).
async fn recovered_instance(sim: &TestSim, server: &str) -> String {
    let drs = sim.drs(TARGET.0, TARGET.1);
    let out = drs.describe_recovery_instances().send().await.unwrap();
    out.items()
        .iter()
        .find(|i| i.source_server_id() == Some(server))
        .and_then(|i| i.ec2_instance_id())
        .expect("a recovery instance")
        .to_string()
}

#[tokio::test]
async fn the_aws_cli_reads_instances_with_a_filter_and_their_status_checks() {
    let sim = seeded().await;
    let all = aws(
        &sim.endpoint,
        SOURCE.0,
        SOURCE.1,
        &[
            "ec2",
            "describe-instances",
            "--filters",
            "Name=instance-state-name,Values=running",
        ],
    )
    .await;
    let instances: Vec<&serde_json::Value> = all["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .collect();
    // The three seeded A1 sources, running in the source account's VPC.
    assert_eq!(instances.len(), 3, "{all:#}");
    let a1 = drs_runbook::sim::seed::source_instance_id(DB);
    let db = instances
        .iter()
        .find(|i| i["InstanceId"] == a1.as_str())
        .expect("the db A1");
    assert_eq!(db["State"]["Name"], "running");
    assert_eq!(db["State"]["Code"], 16);
    let ip = db["PrivateIpAddress"].as_str().unwrap();
    assert!(ip.starts_with("10."), "{ip}");
    let subnet = db["SubnetId"].as_str().unwrap().to_string();

    // A filter that matches nothing, and one by private IP that matches one.
    let none = aws(
        &sim.endpoint,
        SOURCE.0,
        SOURCE.1,
        &[
            "ec2",
            "describe-instances",
            "--filters",
            "Name=instance-state-name,Values=stopped",
        ],
    )
    .await;
    assert_eq!(none["Reservations"].as_array().unwrap().len(), 0);
    let by_ip = aws(
        &sim.endpoint,
        SOURCE.0,
        SOURCE.1,
        &[
            "ec2",
            "describe-instances",
            "--filters",
            &format!("Name=private-ip-address,Values={ip}"),
        ],
    )
    .await;
    assert_eq!(
        by_ip["Reservations"][0]["Instances"][0]["InstanceId"],
        a1.as_str()
    );
    // Another account sees none of them.
    let other = aws(
        &sim.endpoint,
        TARGET.0,
        TARGET.1,
        &["ec2", "describe-instances"],
    )
    .await;
    assert_eq!(other["Reservations"].as_array().unwrap().len(), 0);

    let status = aws(
        &sim.endpoint,
        SOURCE.0,
        SOURCE.1,
        &["ec2", "describe-instance-status", "--instance-ids", &a1],
    )
    .await;
    let s = &status["InstanceStatuses"][0];
    assert_eq!(s["InstanceStatus"]["Status"], "ok", "{status:#}");
    assert_eq!(s["SystemStatus"]["Status"], "ok");
    assert_eq!(s["InstanceStatus"]["Details"][0]["Name"], "reachability");
    assert_eq!(s["InstanceStatus"]["Details"][0]["Status"], "passed");

    let subnets = aws(
        &sim.endpoint,
        SOURCE.0,
        SOURCE.1,
        &["ec2", "describe-subnets", "--subnet-ids", &subnet],
    )
    .await;
    assert_eq!(subnets["Subnets"][0]["VpcId"], db["VpcId"]);
    assert!(
        subnets["Subnets"][0]["CidrBlock"]
            .as_str()
            .unwrap()
            .ends_with("/16")
    );

    // An unknown instance is EC2's error, as the CLI reports it.
    let ec2 = sim.ec2(SOURCE.0, SOURCE.1);
    let err = ec2
        .describe_instances()
        .instance_ids("i-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceID.NotFound"));
    assert!(err.message().unwrap().contains("i-0123456789abcdef0"));
}

#[tokio::test]
async fn describe_instances_pages_with_max_results_and_next_token() {
    let sim = seeded().await;
    let ec2 = sim.ec2(SOURCE.0, SOURCE.1);
    // 3 instances, pages of 5 (the minimum): one page; ask MaxResults with IDs: refused.
    let page = ec2
        .describe_instances()
        .max_results(5)
        .send()
        .await
        .unwrap();
    assert_eq!(page.reservations().len(), 3);
    assert!(page.next_token().is_none());
    let err = ec2
        .describe_instances()
        .max_results(5)
        .instance_ids(drs_runbook::sim::seed::source_instance_id(DB))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
    let err = ec2
        .describe_instances()
        .max_results(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    // The paginator of the SDK reads every page.
    let sim2 = TestSim::start(1.0).await;
    sim2.seed(PAYMENTS).await;
    let mut ids = Vec::new();
    let mut token = None;
    // Recover all three twice so that the target region has six instances to page through
    // (the second launch terminates the first instances, which stay visible for an hour).
    recover(&sim2, &[DB, APP1, APP2]).await;
    recover(&sim2, &[DB, APP1, APP2]).await;
    let mut pages = 0;
    let ec2 = sim2.ec2(TARGET.0, TARGET.1);
    loop {
        let p = ec2
            .describe_instances()
            .max_results(5)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        ids.extend(
            p.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .map(|i| i.instance_id().unwrap().to_string()),
        );
        pages += 1;
        token = p.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert_eq!(pages, 2);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "no instance on two pages");
}

#[tokio::test]
async fn instances_start_stop_and_terminate_on_the_simulated_clock() {
    let sim = seeded().await;
    recover(&sim, &[DB]).await;
    let id = recovered_instance(&sim, DB).await;
    let ec2 = sim.ec2(TARGET.0, TARGET.1);
    let state = |out: &aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput| {
        out.reservations()[0].instances()[0]
            .state()
            .unwrap()
            .name()
            .unwrap()
            .clone()
    };
    // DescribeInstanceStatus of the instance, without IncludeAllInstances.
    let instance_status = async || {
        ec2.describe_instance_status()
            .instance_ids(&id)
            .send()
            .await
            .unwrap()
    };
    let d = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&d), InstanceStateName::Running);
    // The recovered instance is in the launch template's subnet, in the target groups' VPC.
    let vpc = d.reservations()[0].instances()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let groups = sim
        .elbv2(TARGET.0, TARGET.1)
        .describe_target_groups()
        .send()
        .await
        .unwrap();
    assert!(
        groups
            .target_groups()
            .iter()
            .all(|g| g.vpc_id() == Some(vpc.as_str()))
    );

    let stopped = ec2.stop_instances().instance_ids(&id).send().await.unwrap();
    assert_eq!(
        stopped.stopping_instances()[0]
            .current_state()
            .unwrap()
            .name(),
        Some(&InstanceStateName::Stopping)
    );
    sim.skip(60.0).await;
    assert_eq!(sim.instance_states(TARGET, [&id]).await, ["stopped"]);
    // Only running instances have a status unless IncludeAllInstances.
    let s = instance_status().await;
    assert!(s.instance_statuses().is_empty());
    let s = ec2
        .describe_instance_status()
        .instance_ids(&id)
        .include_all_instances(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.instance_statuses()[0].instance_status().unwrap().status(),
        Some(&SummaryStatus::NotApplicable)
    );

    let started = ec2
        .start_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        started.starting_instances()[0]
            .current_state()
            .unwrap()
            .name(),
        Some(&InstanceStateName::Pending)
    );
    assert_eq!(
        started.starting_instances()[0]
            .previous_state()
            .unwrap()
            .name(),
        Some(&InstanceStateName::Stopped)
    );
    sim.skip(30.0).await;
    let s = instance_status().await;
    assert_eq!(
        s.instance_statuses()[0].instance_status().unwrap().status(),
        Some(&SummaryStatus::Initializing),
        "status checks start again after a start"
    );
    sim.skip(200.0).await;
    let s = instance_status().await;
    assert_eq!(
        s.instance_statuses()[0].instance_status().unwrap().status(),
        Some(&SummaryStatus::Ok)
    );

    ec2.terminate_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let err = ec2
        .start_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("IncorrectInstanceState"), "{err:?}");
    sim.skip(60.0).await;
    assert_eq!(sim.instance_states(TARGET, [&id]).await, ["terminated"]);
    let err = ec2
        .stop_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("IncorrectInstanceState"));
    let err = ec2
        .stop_instances()
        .instance_ids("i-0000000000000000f")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceID.NotFound"));
    let err = ec2
        .stop_instances()
        .instance_ids("bogus")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceID.Malformed"));
}

#[tokio::test]
async fn an_impaired_instance_fault_keeps_the_instance_check_impaired() {
    let sim = seeded().await;
    sim.faults(json!([{"kind": "impaired_instance", "source_server_id": APP1}]))
        .await;
    recover(&sim, &[APP1, APP2]).await;
    let (impaired, healthy) = (
        recovered_instance(&sim, APP1).await,
        recovered_instance(&sim, APP2).await,
    );
    let out = aws(
        &sim.endpoint,
        TARGET.0,
        TARGET.1,
        &[
            "ec2",
            "describe-instance-status",
            "--instance-ids",
            &impaired,
            &healthy,
        ],
    )
    .await;
    let status_of = |id: &str| {
        out["InstanceStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["InstanceId"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(status_of(&impaired)["InstanceStatus"]["Status"], "impaired");
    assert_eq!(
        status_of(&impaired)["InstanceStatus"]["Details"][0]["Status"],
        "failed"
    );
    assert_eq!(status_of(&impaired)["SystemStatus"]["Status"], "ok");
    assert_eq!(status_of(&healthy)["InstanceStatus"]["Status"], "ok");
    // More than 100 explicit IDs in one call: refused, as EC2 documents.
    let many: Vec<String> = (0..101).map(|n| format!("i-{n:017x}")).collect();
    let err = sim
        .ec2(TARGET.0, TARGET.1)
        .describe_instance_status()
        .set_instance_ids(Some(many))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
}

#[tokio::test]
async fn launch_configuration_updates_round_trip_and_change_the_recovery() {
    let sim = seeded().await;
    let drs = sim.drs(TARGET.0, TARGET.1);
    let updated = drs
        .update_launch_configuration()
        .source_server_id(DB)
        .launch_disposition(LaunchDisposition::Stopped)
        .recovery_mode(RecoveryMode::Fast)
        .copy_private_ip(true)
        .name("db-recovered")
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.launch_disposition(),
        Some(&LaunchDisposition::Stopped)
    );
    let got = drs
        .get_launch_configuration()
        .source_server_id(DB)
        .send()
        .await
        .unwrap();
    assert_eq!(got.launch_disposition(), Some(&LaunchDisposition::Stopped));
    assert_eq!(got.recovery_mode(), Some(&RecoveryMode::Fast));
    assert_eq!(got.copy_private_ip(), Some(true));
    assert_eq!(got.name(), Some("db-recovered"));
    // The AWS CLI reads the same, and updates through the CLI persist too.
    let cli = aws(
        &sim.endpoint,
        TARGET.0,
        TARGET.1,
        &["drs", "get-launch-configuration", "--source-server-id", DB],
    )
    .await;
    assert_eq!(cli["launchDisposition"], "STOPPED");
    assert_eq!(cli["recoveryMode"], "FAST");
    aws(
        &sim.endpoint,
        TARGET.0,
        TARGET.1,
        &[
            "drs",
            "update-launch-configuration",
            "--source-server-id",
            APP1,
            "--target-instance-type-right-sizing-method",
            "NONE",
            "--licensing",
            "osByol=true",
        ],
    )
    .await;
    let app = drs
        .get_launch_configuration()
        .source_server_id(APP1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.target_instance_type_right_sizing_method()
            .map(|m| m.as_str()),
        Some("NONE")
    );
    assert_eq!(app.licensing().and_then(|l| l.os_byol()), Some(true));
    assert_eq!(app.launch_disposition(), Some(&LaunchDisposition::Started));
    // The replication configuration keeps every member it was given.
    drs.update_replication_configuration()
        .source_server_id(DB)
        .replication_server_instance_type("m5.large")
        .data_plane_routing(aws_sdk_drs::types::ReplicationConfigurationDataPlaneRouting::PublicIp)
        .bandwidth_throttling(100)
        .send()
        .await
        .unwrap();
    let rc = drs
        .get_replication_configuration()
        .source_server_id(DB)
        .send()
        .await
        .unwrap();
    assert_eq!(rc.replication_server_instance_type(), Some("m5.large"));
    assert_eq!(
        rc.data_plane_routing().map(|r| r.as_str()),
        Some("PUBLIC_IP")
    );
    assert_eq!(rc.bandwidth_throttling(), 100);

    // The recovery honours them: FAST has no conversion, STOPPED leaves the instance stopped,
    // and LAUNCH_END names the instance.
    let job_id = recover(&sim, &[DB, APP1]).await;
    let log = drs
        .describe_job_log_items()
        .job_id(&job_id)
        .send()
        .await
        .unwrap();
    let events: Vec<(String, Option<String>, Option<String>)> = log
        .items()
        .iter()
        .map(|i| {
            (
                i.event()
                    .map(|e| e.as_str().to_string())
                    .unwrap_or_default(),
                i.event_data()
                    .and_then(|d| d.source_server_id())
                    .map(str::to_string),
                i.event_data()
                    .and_then(|d| d.target_instance_id())
                    .map(str::to_string),
            )
        })
        .collect();
    let of = |server: &str| -> Vec<&str> {
        events
            .iter()
            .filter(|(_, s, _)| s.as_deref() == Some(server))
            .map(|(e, _, _)| e.as_str())
            .collect()
    };
    assert!(
        !of(DB).iter().any(|e| e.starts_with("CONVERSION")),
        "{:?}",
        of(DB)
    );
    assert!(of(APP1).contains(&"CONVERSION_END"), "{:?}", of(APP1));
    let db_instance = recovered_instance(&sim, DB).await;
    assert!(
        events.iter().any(|(e, s, t)| e == "LAUNCH_END"
            && s.as_deref() == Some(DB)
            && t.as_deref() == Some(db_instance.as_str())),
        "{events:?}"
    );
    let ec2 = sim.ec2(TARGET.0, TARGET.1);
    let d = ec2
        .describe_instances()
        .instance_ids(&db_instance)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.reservations()[0].instances()[0].state().unwrap().name(),
        Some(&InstanceStateName::Stopped)
    );
    let app_instance = recovered_instance(&sim, APP1).await;
    let d = ec2
        .describe_instances()
        .instance_ids(&app_instance)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.reservations()[0].instances()[0].state().unwrap().name(),
        Some(&InstanceStateName::Running)
    );
    // A bad enum value is refused by the simulated DRS (sent raw: the SDK would not build it).
    let err = drs
        .update_launch_configuration()
        .source_server_id(DB)
        .launch_disposition(LaunchDisposition::from("HALTED"))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_validation_exception());
}

#[tokio::test]
async fn launch_template_versions_decide_the_recovered_instance_and_ips_follow_the_server() {
    let sim = seeded().await;
    let drs = sim.drs(TARGET.0, TARGET.1);
    let lt = drs
        .get_launch_configuration()
        .source_server_id(DB)
        .send()
        .await
        .unwrap()
        .ec2_launch_template_id()
        .unwrap()
        .to_string();
    let ec2 = sim.ec2(TARGET.0, TARGET.1);
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_id(&lt)
        .versions("$Default")
        .send()
        .await
        .unwrap();
    let v1 = &versions.launch_template_versions()[0];
    assert_eq!(v1.version_number(), Some(1));
    assert_eq!(v1.default_version(), Some(true));
    let subnet = v1.launch_template_data().unwrap().network_interfaces()[0]
        .subnet_id()
        .unwrap()
        .to_string();
    let subnets = ec2
        .describe_subnets()
        .subnet_ids(&subnet)
        .send()
        .await
        .unwrap();
    assert_eq!(subnets.subnets().len(), 1);

    let created = ec2
        .create_launch_template_version()
        .launch_template_id(&lt)
        .source_version("1")
        .version_description("bigger")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .instance_type(aws_sdk_ec2::types::InstanceType::M5Xlarge)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v2 = created.launch_template_version().unwrap();
    assert_eq!(v2.version_number(), Some(2));
    assert_eq!(v2.default_version(), Some(false));
    // The CLI lists both versions, the subnet kept from the source version.
    let cli = aws(
        &sim.endpoint,
        TARGET.0,
        TARGET.1,
        &[
            "ec2",
            "describe-launch-template-versions",
            "--launch-template-id",
            &lt,
        ],
    )
    .await;
    let listed = cli["LaunchTemplateVersions"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{cli:#}");
    assert!(
        listed
            .iter()
            .any(|v| v["LaunchTemplateData"]["InstanceType"] == "m5.xlarge"
                && v["LaunchTemplateData"]["NetworkInterfaces"][0]["SubnetId"] == subnet.as_str())
    );
    let modified = ec2
        .modify_launch_template()
        .launch_template_id(&lt)
        .default_version("2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        modified.launch_template().unwrap().default_version_number(),
        Some(2)
    );
    let err = ec2
        .modify_launch_template()
        .launch_template_id(&lt)
        .default_version("7")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidLaunchTemplateId.VersionNotFound"));

    recover(&sim, &[DB]).await;
    let id = recovered_instance(&sim, DB).await;
    let d = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let instance = &d.reservations()[0].instances()[0];
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some("m5.xlarge")
    );
    assert_eq!(instance.subnet_id(), Some(subnet.as_str()));
    let ip_here = instance.private_ip_address().unwrap().to_string();
    assert!(!instance.network_interfaces()[0].ipv6_addresses().is_empty());

    // Another world that launches the servers in another order gives DB the same address.
    let other = seeded().await;
    recover(&other, &[APP2]).await;
    recover(&other, &[APP1, DB]).await;
    let id = recovered_instance(&other, DB).await;
    let d = other
        .ec2(TARGET.0, TARGET.1)
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.reservations()[0].instances()[0].private_ip_address(),
        Some(ip_here.as_str())
    );
}

#[tokio::test]
async fn register_targets_refuses_an_instance_outside_the_target_group_vpc() {
    let sim = seeded().await;
    recover(&sim, &[APP1]).await;
    let id = recovered_instance(&sim, APP1).await;
    let elb = sim.elbv2(TARGET.0, TARGET.1);
    let group = elb
        .create_target_group()
        .name("elsewhere")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id("vpc-0123456789abcdef0")
        .send()
        .await
        .unwrap();
    let arn = group.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let err = elb
        .register_targets()
        .target_group_arn(&arn)
        .targets(target(&id))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_target_exception(), "{err:?}");
    // The seeded group of the wave is in the instance's VPC: registration succeeds.
    let seeded_group =
        "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123456789abcdef";
    elb.register_targets()
        .target_group_arn(seeded_group)
        .targets(target(&id))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn create_vpc_and_create_subnet_refuse_what_ec2_refuses() {
    let sim = seeded().await;
    let ec2 = sim.ec2(TARGET.0, TARGET.1);
    fn code(e: &impl ProvideErrorMetadata) -> String {
        e.code().unwrap_or_default().to_string()
    }
    // A VPC block outside /16../28 (Amazon VPC User Guide).
    let err = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/8")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidVpc.Range");
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.88.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .clone();
    assert_eq!(vpc.cidr_block(), Some("10.88.0.0/16"));
    let vpc_id = vpc.vpc_id().unwrap();
    let err = ec2
        .create_subnet()
        .vpc_id("vpc-0000000000000000a")
        .cidr_block("10.88.0.0/16")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidVpcID.NotFound");
    let err = ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block("10.89.0.0/16")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidSubnet.Range");
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block("10.88.0.0/16")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .clone();
    assert_eq!(subnet.vpc_id(), Some(vpc_id));
    let err = ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block("10.88.0.0/16")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidSubnet.Conflict");
    // The new subnet is listed by the filter preflight uses, and the default one is not.
    let listed = ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("subnet-id")
                .values(subnet.subnet_id().unwrap())
                .values("subnet-00000000000000000")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listed.subnets().len(), 1);
    assert_eq!(listed.subnets()[0].vpc_id(), Some(vpc_id));
    assert_eq!(listed.subnets()[0].cidr_block(), Some("10.88.0.0/16"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_versions_of_every_launch_template_page_without_naming_a_template() {
    let sim = seeded().await;
    let ec2 = sim.ec2(TARGET.0, TARGET.1);
    // One server's template gets a second version, made the default.
    let template = sim
        .drs(TARGET.0, TARGET.1)
        .get_launch_configuration()
        .source_server_id(APP1)
        .send()
        .await
        .unwrap()
        .ec2_launch_template_id()
        .unwrap()
        .to_string();
    ec2.create_launch_template_version()
        .launch_template_id(&template)
        .source_version("1")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .instance_type(aws_sdk_ec2::types::InstanceType::M5Xlarge)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.modify_launch_template()
        .launch_template_id(&template)
        .default_version("2")
        .send()
        .await
        .unwrap();
    let pages: Vec<_> = ec2
        .describe_launch_template_versions()
        .versions("$Default")
        .max_results(2)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2, "3 templates, 2 a page");
    let versions: Vec<_> = pages
        .iter()
        .flat_map(|p| p.launch_template_versions().to_vec())
        .collect();
    assert_eq!(
        versions.len(),
        3,
        "one per DRS source server: {versions:#?}"
    );
    assert!(versions.iter().all(|v| v.default_version() == Some(true)));
    let moved = versions
        .iter()
        .find(|v| v.launch_template_id() == Some(template.as_str()))
        .unwrap();
    assert_eq!(moved.version_number(), Some(2));
    assert_eq!(
        moved
            .launch_template_data()
            .and_then(|d| d.instance_type())
            .map(|t| t.as_str()),
        Some("m5.xlarge")
    );
    // A version number needs a template.
    let err = ec2
        .describe_launch_template_versions()
        .versions("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("MissingParameter"), "{err:?}");
}
