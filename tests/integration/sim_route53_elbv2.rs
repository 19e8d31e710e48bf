//! Simulated Route 53 and ELBv2 through the real Rust SDK clients: seeding, changes reaching
//! INSYNC, InvalidChangeBatch as the SDK parses it, target health over simulated time, faults.

use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use aws_sdk_route53::types::{ChangeAction, ChangeStatus, RrType};
use serde_json::{Value, json};

use crate::support::{TestSim, a_record, batch, repo_path, target};

const SOURCE: &str = "111111111111";
const ZONE: &str = "Z0123456789ABCDEFGHIJ";
const RECORD: &str = "api.payments.example.com.";
const FAILBACK_TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/payments/fedcba9876543210";
const FAILOVER_TG: &str =
    "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123456789abcdef";

/// A simulator seeded with runbooks/payments.toml.
async fn seeded() -> TestSim {
    let sim = TestSim::start(1.0).await;
    let toml = std::fs::read_to_string(repo_path("runbooks/payments.toml")).unwrap();
    sim.seed(&toml).await;
    sim
}

/// The seeded A1 instances as `(instance id, private ip)`, in wave order of payments.toml.
async fn a1_instances(sim: &TestSim) -> Vec<(String, String)> {
    let world = sim.get("/_sim/world").await;
    let instances = world["ec2"]["instances"]
        .as_object()
        .expect("world.ec2.instances");
    [
        "s-1234567890abcdef0",
        "s-234567890abcdef01",
        "s-34567890abcdef012",
    ]
    .iter()
    .map(|server| {
        let id = drs_runbook::sim::seed::source_instance_id(server);
        let ip = instances[&id]["private_ip"].as_str().unwrap().to_string();
        assert_eq!(instances[&id]["account"], SOURCE);
        (id, ip)
    })
    .collect()
}

/// The values of the record set `name`/`A` in the zone, as the SDK reads them.
async fn a_values(client: &aws_sdk_route53::Client, name: &str) -> Vec<String> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(ZONE)
        .start_record_name(name)
        .start_record_type(RrType::A)
        .max_items(1)
        .send()
        .await
        .unwrap();
    let set = &out.resource_record_sets()[0];
    assert_eq!(set.name(), name);
    set.resource_records()
        .iter()
        .map(|r| r.value().to_string())
        .collect()
}

/// The health states of the group's targets, by target ID.
async fn health(
    client: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
) -> Vec<(String, String, Option<String>)> {
    let out = client
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .unwrap();
    let mut rows: Vec<_> = out
        .target_health_descriptions()
        .iter()
        .map(|d| {
            let h = d.target_health().unwrap();
            (
                d.target().unwrap().id().unwrap().to_string(),
                h.state().unwrap().as_str().to_string(),
                h.reason().map(|r| r.as_str().to_string()),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn the_seeded_zone_and_record_read_back_as_route53_lists_them() {
    let sim = seeded().await;
    let r53 = sim.route53(SOURCE);
    let zones = r53.list_hosted_zones().send().await.unwrap();
    assert_eq!(zones.hosted_zones().len(), 1);
    let zone = &zones.hosted_zones()[0];
    assert_eq!(zone.id(), format!("/hostedzone/{ZONE}"));
    assert_eq!(zone.name(), "payments.example.com.");
    assert_eq!(zone.resource_record_set_count(), Some(3));

    let got = r53.get_hosted_zone().id(ZONE).send().await.unwrap();
    assert_eq!(got.delegation_set().unwrap().name_servers().len(), 4);

    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(ZONE)
        .send()
        .await
        .unwrap();
    let listed: Vec<_> = sets
        .resource_record_sets()
        .iter()
        .map(|s| (s.name(), s.r#type().as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("payments.example.com.", "NS"),
            ("payments.example.com.", "SOA"),
            (RECORD, "A")
        ]
    );
    assert!(!sets.is_truncated());
    // The record points at the A1 instances of the "app" wave.
    let a1 = a1_instances(&sim).await;
    let mut values = a_values(&r53, RECORD).await;
    values.sort();
    let mut expected = vec![a1[1].1.clone(), a1[2].1.clone()];
    expected.sort();
    assert_eq!(values, expected);

    // Paging: one item per page, continuing from NextRecordName/NextRecordType.
    let first = r53
        .list_resource_record_sets()
        .hosted_zone_id(ZONE)
        .max_items(1)
        .send()
        .await
        .unwrap();
    assert!(first.is_truncated());
    assert_eq!(first.next_record_name(), Some("payments.example.com."));
    assert_eq!(first.next_record_type().map(|t| t.as_str()), Some("SOA"));

    // Another account sees no zone, and an unknown zone is NoSuchHostedZone.
    assert!(
        sim.route53("333333333333")
            .list_hosted_zones()
            .send()
            .await
            .unwrap()
            .hosted_zones()
            .is_empty()
    );
    let err = r53
        .get_hosted_zone()
        .id("Z0NOSUCHZONE")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_no_such_hosted_zone(), "{err:?}");
}

#[tokio::test]
async fn an_upsert_is_pending_then_insync_after_propagation() {
    let sim = seeded().await;
    let r53 = sim.route53(SOURCE);
    let out = r53
        .change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(batch(
            ChangeAction::Upsert,
            a_record(RECORD, 30, &["10.200.0.1"]),
        ))
        .send()
        .await
        .unwrap();
    let info = out.change_info().unwrap();
    assert!(info.id().starts_with("/change/C"), "{}", info.id());
    assert_eq!(info.status(), &ChangeStatus::Pending);
    assert_eq!(a_values(&r53, RECORD).await, ["10.200.0.1"]);

    let change_id = info.id().to_string();
    let pending = r53.get_change().id(&change_id).send().await.unwrap();
    assert_eq!(
        pending.change_info().unwrap().status(),
        &ChangeStatus::Pending
    );
    sim.skip(61.0).await;
    let insync = r53.get_change().id(&change_id).send().await.unwrap();
    assert_eq!(
        insync.change_info().unwrap().status(),
        &ChangeStatus::Insync
    );

    let stats = sim.get("/_sim/stats").await;
    let mutation = stats["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["operation"] == "ChangeResourceRecordSets")
        .expect("the change is recorded as a mutation");
    assert_eq!(mutation["account"], SOURCE);
    assert_eq!(mutation["params"]["changes"][0]["action"], "UPSERT");
}

#[tokio::test]
async fn invalid_change_batches_are_refused_whole_with_the_aws_wording() {
    let sim = seeded().await;
    let r53 = sim.route53(SOURCE);
    let before = a_values(&r53, RECORD).await;
    let create = r53
        .change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(batch(
            ChangeAction::Create,
            a_record(RECORD, 60, &["10.9.9.9"]),
        ))
        .send()
        .await
        .unwrap_err();
    let request_id = aws_sdk_route53::operation::RequestId::request_id(&create).map(str::to_string);
    let err = create.into_service_error();
    assert!(err.is_invalid_change_batch(), "{err:?}");
    let message = aws_sdk_route53::error::ProvideErrorMetadata::message(&err)
        .unwrap()
        .to_string();
    assert!(
        message.contains("Tried to create resource record set [name='api.payments.example.com.', type='A'] but it already exists"),
        "{message}"
    );
    assert!(request_id.is_some_and(|id| !id.is_empty()));

    let delete = r53
        .change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(batch(
            ChangeAction::Delete,
            a_record(RECORD, 60, &["10.9.9.9"]),
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let message = aws_sdk_route53::error::ProvideErrorMetadata::message(&delete)
        .unwrap()
        .to_string();
    assert!(
        message.contains("but the values provided do not match the current values"),
        "{message}"
    );
    let missing = r53
        .change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(batch(
            ChangeAction::Delete,
            a_record("www.payments.example.com.", 60, &["10.9.9.9"]),
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let message = aws_sdk_route53::error::ProvideErrorMetadata::message(&missing)
        .unwrap()
        .to_string();
    assert!(
        message.contains("Tried to delete resource record set [name='www.payments.example.com.', type='A'] but it was not found"),
        "{message}"
    );
    assert_eq!(
        a_values(&r53, RECORD).await,
        before,
        "a refused batch changes nothing"
    );

    let no_zone = r53
        .change_resource_record_sets()
        .hosted_zone_id("Z0NOSUCHZONE")
        .change_batch(batch(
            ChangeAction::Upsert,
            a_record(RECORD, 60, &["10.9.9.9"]),
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(no_zone.is_no_such_hosted_zone(), "{no_zone:?}");
}

#[tokio::test]
async fn dns_never_insync_keeps_the_zone_changes_pending() {
    let sim = seeded().await;
    sim.faults(json!([{"kind": "dns_never_insync", "hosted_zone_id": ZONE}]))
        .await;
    let r53 = sim.route53(SOURCE);
    let out = r53
        .change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(batch(
            ChangeAction::Upsert,
            a_record(RECORD, 60, &["10.200.0.2"]),
        ))
        .send()
        .await
        .unwrap();
    let change_id = out.change_info().unwrap().id().to_string();
    sim.skip(3600.0).await;
    let still = r53.get_change().id(&change_id).send().await.unwrap();
    assert_eq!(
        still.change_info().unwrap().status(),
        &ChangeStatus::Pending
    );
}

#[tokio::test]
async fn seeded_target_groups_sit_behind_load_balancers() {
    let sim = seeded().await;
    let a1 = a1_instances(&sim).await;
    let source = sim.elbv2(SOURCE, "us-east-1");
    let lbs = source.describe_load_balancers().send().await.unwrap();
    let lb = &lbs.load_balancers()[0];
    assert!(
        lb.dns_name()
            .unwrap()
            .ends_with(".us-east-1.elb.amazonaws.com")
    );
    assert_eq!(lb.canonical_hosted_zone_id(), Some("Z35SXDOTRQ7X7K"));
    let lb_arn = lb.load_balancer_arn().unwrap();

    let by_lb = source
        .describe_target_groups()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_lb.target_groups()[0].target_group_arn(),
        Some(FAILBACK_TG)
    );
    let by_name = source
        .describe_target_groups()
        .names("payments")
        .send()
        .await
        .unwrap();
    assert_eq!(by_name.target_groups()[0].port(), Some(443));

    // The failback group carries the app wave's A1 instances, healthy at once.
    let mut expected = vec![
        (a1[1].0.clone(), "healthy".to_string(), None),
        (a1[2].0.clone(), "healthy".to_string(), None),
    ];
    expected.sort();
    assert_eq!(health(&source, FAILBACK_TG).await, expected);
    // The failover group (target account and region) is empty, as in a pilot-light setup.
    let target = sim.elbv2("222222222222", "us-west-2");
    assert!(health(&target, FAILOVER_TG).await.is_empty());

    let err = target
        .describe_target_groups()
        .target_group_arns(FAILBACK_TG)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_target_group_not_found_exception(), "{err:?}");
}

#[tokio::test]
async fn registered_targets_turn_healthy_and_deregistered_ones_drain_then_go() {
    let sim = seeded().await;
    let a1 = a1_instances(&sim).await;
    let db = a1[0].0.clone();
    let elb = sim.elbv2(SOURCE, "us-east-1");
    elb.register_targets()
        .target_group_arn(FAILBACK_TG)
        .targets(target(&db))
        .send()
        .await
        .unwrap();
    let state_of = |rows: Vec<(String, String, Option<String>)>, id: &str| {
        rows.into_iter().find(|r| r.0 == id).map(|r| (r.1, r.2))
    };
    assert_eq!(
        state_of(health(&elb, FAILBACK_TG).await, &db),
        Some(("initial".into(), Some("Elb.RegistrationInProgress".into())))
    );
    sim.skip(31.0).await;
    assert_eq!(
        state_of(health(&elb, FAILBACK_TG).await, &db),
        Some(("healthy".into(), None))
    );

    elb.deregister_targets()
        .target_group_arn(FAILBACK_TG)
        .targets(target(&db))
        .send()
        .await
        .unwrap();
    assert_eq!(
        state_of(health(&elb, FAILBACK_TG).await, &db),
        Some((
            "draining".into(),
            Some("Target.DeregistrationInProgress".into())
        ))
    );
    sim.skip(31.0).await;
    assert_eq!(state_of(health(&elb, FAILBACK_TG).await, &db), None);
    // Asked for by name, a target that is gone is "unused": not registered.
    let asked = elb
        .describe_target_health()
        .target_group_arn(FAILBACK_TG)
        .targets(target(&db))
        .send()
        .await
        .unwrap();
    let h = asked.target_health_descriptions()[0]
        .target_health()
        .unwrap();
    assert_eq!(h.state(), Some(&TargetHealthStateEnum::Unused));

    let mutations: Vec<Value> = sim.get("/_sim/stats").await["mutations"]
        .as_array()
        .unwrap()
        .clone();
    let ops: Vec<&str> = mutations
        .iter()
        .filter(|m| m["service"] == "elbv2")
        .map(|m| m["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["RegisterTargets", "DeregisterTargets"]);
}

#[tokio::test]
async fn bad_targets_are_refused_with_invalid_target() {
    let sim = seeded().await;
    let elb = sim.elbv2(SOURCE, "us-east-1");
    let err = elb
        .register_targets()
        .target_group_arn(FAILBACK_TG)
        .targets(target("i-0000000000000dead"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_target_exception(), "{err:?}");
    let unknown = elb
        .register_targets()
        .target_group_arn(FAILBACK_TG.replace("fedcba9876543210", "0000000000000000"))
        .targets(target("i-0000000000000dead"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(unknown.is_target_group_not_found_exception(), "{unknown:?}");
}

#[tokio::test]
async fn the_unhealthy_target_fault_fails_health_checks() {
    let sim = seeded().await;
    let a1 = a1_instances(&sim).await;
    sim.faults(json!([{"kind": "unhealthy_target", "target_id": a1[1].0}]))
        .await;
    let elb = sim.elbv2(SOURCE, "us-east-1");
    let rows = health(&elb, FAILBACK_TG).await;
    let faulted = rows.iter().find(|r| r.0 == a1[1].0).unwrap();
    assert_eq!(
        (faulted.1.as_str(), faulted.2.as_deref()),
        ("unhealthy", Some("Target.FailedHealthChecks"))
    );
    let other = rows.iter().find(|r| r.0 == a1[2].0).unwrap();
    assert_eq!(other.1, "healthy");
}

#[tokio::test]
async fn throttling_faults_are_retried_by_the_sdks() {
    let sim = seeded().await;
    sim.faults(json!([
        {"kind": "api_error", "service": "route53", "operation": "ListResourceRecordSets", "error": "Throttling", "count": 2},
        {"kind": "api_error", "service": "elbv2", "operation": "DescribeTargetHealth", "error": "Throttling", "count": 2}
    ]))
    .await;
    let r53 = sim.route53(SOURCE);
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(ZONE)
        .send()
        .await
        .unwrap();
    assert_eq!(sets.resource_record_sets().len(), 3);
    let elb = sim.elbv2(SOURCE, "us-east-1");
    assert_eq!(health(&elb, FAILBACK_TG).await.len(), 2);
    assert_eq!(sim.calls("route53:ListResourceRecordSets").await, 3);
    assert_eq!(sim.calls("elbv2:DescribeTargetHealth").await, 3);
}
