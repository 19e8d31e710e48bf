//! Traffic as DR teams route it (issue 13): a weighted pair flipped to the recovered set and
//! restored byte for byte, a failover pair whose PRIMARY's health check is inverted and put
//! back, a simple record refused beside policy records (by preflight, and by the simulated
//! Route 53 as Route 53 refuses it), an alias with the wrong canonical zone, no IPv4 address in
//! an AAAA record, and ARC routing controls switched through the cluster's data plane with its
//! first endpoint down. Real SDK clients and the AWS CLI against the simulator.

use aws_sdk_route53::types::{
    ChangeAction, HealthCheckConfig, HealthCheckType, ResourceRecordSet, ResourceRecordSetFailover,
};
use serde_json::{Value, json};

use crate::support::{CliRun, TestSim, a_record, aws, batch, mutations, step_output};

const THREE_WAVES: &str = include_str!("../fixtures/engine/three-waves.toml");
const TARGET: &str = "555555555555";
const ZONE: &str = "Z00000000000000SHOP1";
const WWW: &str = "www.shop.example.com.";

/// The three-wave runbook with its [[dns]] entry replaced, seeded into a fresh simulator.
struct Routed {
    sim: TestSim,
    dir: tempfile::TempDir,
}

impl Routed {
    /// `SIM_ENDPOINT` in `dns` becomes the simulator's URL.
    async fn new(dns: &str) -> Routed {
        let start = THREE_WAVES
            .find("[[dns]]")
            .expect("the fixture has [[dns]]");
        let end = THREE_WAVES
            .find("[approvals]")
            .expect("the fixture has [approvals]");
        let sim = TestSim::start(600.0).await;
        let dns = dns.replace("SIM_ENDPOINT", &sim.endpoint);
        let text = format!("{}{dns}\n\n{}", &THREE_WAVES[..start], &THREE_WAVES[end..]);
        sim.seed(&text).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shop.toml"), text).unwrap();
        Routed { sim, dir }
    }

    async fn cli(&self, args: &[&str]) -> CliRun {
        let db = self.dir.path().join("runs.db");
        let runbook = self.dir.path().join("shop.toml");
        let args: Vec<&str> = args
            .iter()
            .map(|a| {
                if *a == "RUNBOOK" {
                    runbook.to_str().unwrap()
                } else {
                    a
                }
            })
            .collect();
        self.sim.cli(&db, &args).await
    }

    /// `--output json <command> <target> --yes`; `RUNBOOK` stands for the runbook's path.
    async fn run(&self, command: &str, target: &str) -> CliRun {
        self.cli(&["--output", "json", command, target, "--yes"])
            .await
    }

    fn route53(&self) -> aws_sdk_route53::Client {
        self.sim.route53(TARGET)
    }

    /// CREATE sets in the zone (as a DR team set them up before any failover).
    async fn create(&self, sets: Vec<ResourceRecordSet>) {
        for set in sets {
            self.route53()
                .change_resource_record_sets()
                .hosted_zone_id(ZONE)
                .change_batch(batch(ChangeAction::Create, set))
                .send()
                .await
                .unwrap();
        }
    }

    /// `aws route53 list-resource-record-sets` of the zone, as the AWS CLI prints it.
    async fn listed(&self) -> Value {
        aws(
            &self.sim.endpoint,
            TARGET,
            "us-east-1",
            &[
                "route53",
                "list-resource-record-sets",
                "--hosted-zone-id",
                ZONE,
            ],
        )
        .await
    }

    /// A failover run to its end; returns its ID.
    async fn failover(&self) -> String {
        let run = self.run("failover", "RUNBOOK").await;
        assert_eq!(run.code, 0, "{run:#?}");
        run.json()["run_id"].as_str().unwrap().to_string()
    }

    /// The private IPs the launch of wave `web` recorded.
    async fn web_ips(&self, run_id: &str) -> Vec<String> {
        let shown = self.cli(&["--output", "json", "show", run_id]).await;
        let launch = step_output(&shown.json(), "launch:web");
        let mut ips: Vec<String> = launch["servers"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|s| s["private_ips"].as_array().unwrap().clone())
            .map(|ip| ip.as_str().unwrap().to_string())
            .collect();
        ips.sort();
        ips
    }

    async fn rollback(&self, run_id: &str) {
        let run = self.run("rollback", run_id).await;
        assert_eq!(run.code, 0, "{run:#?}");
    }
}

fn weighted(id: &str, weight: i64, ip: &str) -> ResourceRecordSet {
    let mut set = a_record(WWW, 60, &[ip]);
    set.set_identifier = Some(id.to_string());
    set.weight = Some(weight);
    set
}

fn failover_set(
    id: &str,
    role: ResourceRecordSetFailover,
    ip: &str,
    check: Option<&str>,
) -> ResourceRecordSet {
    let mut set = a_record(WWW, 60, &[ip]);
    set.set_identifier = Some(id.to_string());
    set.failover = Some(role);
    set.health_check_id = check.map(str::to_string);
    set
}

/// The set `id` of www, as the SDK reads it.
async fn set_of(r53: &aws_sdk_route53::Client, id: &str) -> ResourceRecordSet {
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(ZONE)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .find(|s| s.name() == WWW && s.set_identifier() == Some(id))
        .unwrap_or_else(|| panic!("no set {id}"))
        .clone()
}

fn values(set: &ResourceRecordSet) -> Vec<String> {
    let mut values: Vec<String> = set
        .resource_records()
        .iter()
        .map(|r| r.value().to_string())
        .collect();
    values.sort();
    values
}

/// The message of a refused change batch (code, message).
async fn refused(
    r53: &aws_sdk_route53::Client,
    action: ChangeAction,
    set: ResourceRecordSet,
) -> (String, String) {
    let err = r53
        .change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(batch(action, set))
        .send()
        .await
        .expect_err("Route 53 refuses this change")
        .into_service_error();
    use aws_sdk_route53::error::ProvideErrorMetadata;
    (
        err.code().unwrap_or_default().to_string(),
        err.message().unwrap_or_default().to_string(),
    )
}

const WEIGHTED_DNS: &str = r#"[[dns]]
hosted_zone_id = "Z00000000000000SHOP1"
account = "target"
name = "www.shop.example.com."
type = "A"
set_identifier = "dr"
points_to = { wave = "web" }
weights = { dr = 100, primary = 0 }"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_weighted_pair_flips_to_the_dr_set_and_rollback_restores_both_sets_byte_for_byte() {
    let world = Routed::new(WEIGHTED_DNS).await;
    world
        .create(vec![
            weighted("primary", 100, "10.9.0.1"),
            weighted("dr", 0, "10.9.0.2"),
        ])
        .await;
    let before = world.listed().await;

    let run_id = world.failover().await;
    let r53 = world.route53();
    let dr = set_of(&r53, "dr").await;
    assert_eq!(dr.weight(), Some(100));
    assert_eq!(
        values(&dr),
        world.web_ips(&run_id).await,
        "dr points at the recovered web instances"
    );
    let primary = set_of(&r53, "primary").await;
    assert_eq!(primary.weight(), Some(0));
    assert_eq!(
        values(&primary),
        ["10.9.0.1"],
        "the primary keeps its values"
    );

    world.rollback(&run_id).await;
    let after = world.listed().await;
    assert_eq!(
        after, before,
        "both sets byte for byte, Weight and SetIdentifier included"
    );
    let sets = after["ResourceRecordSets"].as_array().unwrap();
    assert!(
        sets.contains(&json!({
            "Name": WWW, "Type": "A", "SetIdentifier": "primary", "Weight": 100, "TTL": 60,
            "ResourceRecords": [{ "Value": "10.9.0.1" }]
        })),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failover_pair_gets_its_secondary_and_the_primary_health_check_is_inverted_then_restored()
{
    let world = Routed::new(
        &WEIGHTED_DNS
            .replace("set_identifier = \"dr\"", "set_identifier = \"secondary\"")
            .replace("\nweights = { dr = 100, primary = 0 }", ""),
    )
    .await;
    let r53 = world.route53();
    let check = r53
        .create_health_check()
        .caller_reference("www-primary")
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::Http)
                .ip_address("10.9.0.1")
                .port(80)
                .resource_path("/health")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let check_id = check.health_check().unwrap().id().to_string();
    world
        .create(vec![
            failover_set(
                "primary",
                ResourceRecordSetFailover::Primary,
                "10.9.0.1",
                Some(&check_id),
            ),
            failover_set(
                "secondary",
                ResourceRecordSetFailover::Secondary,
                "10.9.0.2",
                None,
            ),
        ])
        .await;
    let before = world.listed().await;
    let reports = async |r53: &aws_sdk_route53::Client| {
        let status = r53
            .get_health_check_status()
            .health_check_id(&check_id)
            .send()
            .await
            .unwrap();
        status.health_check_observations()[0]
            .status_report()
            .unwrap()
            .status()
            .unwrap()
            .to_string()
    };
    let inverted = async |r53: &aws_sdk_route53::Client| {
        let got = r53
            .get_health_check()
            .health_check_id(&check_id)
            .send()
            .await
            .unwrap();
        got.health_check()
            .unwrap()
            .health_check_config()
            .unwrap()
            .inverted()
    };
    assert!(reports(&r53).await.starts_with("Success"));

    let run_id = world.failover().await;
    let secondary = set_of(&r53, "secondary").await;
    assert_eq!(values(&secondary), world.web_ips(&run_id).await);
    assert_eq!(
        secondary.failover(),
        Some(&ResourceRecordSetFailover::Secondary)
    );
    let primary = set_of(&r53, "primary").await;
    assert_eq!(values(&primary), ["10.9.0.1"]);
    assert_eq!(inverted(&r53).await, Some(true));
    assert!(
        reports(&r53).await.starts_with("Failure"),
        "Route 53 now answers with the SECONDARY"
    );

    world.rollback(&run_id).await;
    assert_eq!(inverted(&r53).await, Some(false));
    assert!(reports(&r53).await.starts_with("Success"));
    assert_eq!(
        world.listed().await,
        before,
        "both sets byte for byte, HealthCheckId included"
    );
    let inversions = mutations(&world.sim.get("/_sim/stats").await, "UpdateHealthCheck");
    let inverted: Vec<&Value> = inversions
        .iter()
        .map(|m| &m["params"]["config"]["inverted"])
        .collect();
    assert_eq!(inverted, [&json!(true), &json!(false)], "{inversions:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_simple_record_over_policy_records_fails_preflight_with_the_fix_and_route53_refuses_it() {
    let world = Routed::new(
        &WEIGHTED_DNS
            .replace("set_identifier = \"dr\"\n", "")
            .replace("\nweights = { dr = 100, primary = 0 }", ""),
    )
    .await;
    let r53 = world.route53();
    // The seeded simple record is replaced by a weighted pair.
    let seeded = r53
        .list_resource_record_sets()
        .hosted_zone_id(ZONE)
        .start_record_name(WWW)
        .send()
        .await
        .unwrap()
        .resource_record_sets()[0]
        .clone();
    assert_eq!(seeded.set_identifier(), None);
    // Beside the simple record, Route 53 refuses a weighted set.
    let (code, message) = refused(
        &r53,
        ChangeAction::Create,
        weighted("primary", 100, "10.9.0.1"),
    )
    .await;
    assert_eq!(code, "InvalidChangeBatch");
    assert!(
        message
            .contains("cannot be created as a non-weighted set exists with the same name and type"),
        "{message}"
    );
    r53.change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(batch(ChangeAction::Delete, seeded))
        .send()
        .await
        .unwrap();
    world
        .create(vec![
            weighted("primary", 100, "10.9.0.1"),
            weighted("dr", 0, "10.9.0.2"),
        ])
        .await;
    let before = world.listed().await;

    // The mixed UPSERT the old cutover sent: InvalidChangeBatch, in Route 53's words.
    let (code, message) =
        refused(&r53, ChangeAction::Upsert, a_record(WWW, 60, &["10.9.0.3"])).await;
    assert_eq!(code, "InvalidChangeBatch");
    assert_eq!(
        message,
        format!(
            "[RRSet with DNS name {WWW} and type A cannot be created as other RRSets exist with the same name and type.]"
        )
    );
    // A second PRIMARY of a failover group, a latency set among weighted ones: refused too.
    let (code, message) = refused(
        &r53,
        ChangeAction::Create,
        failover_set(
            "third",
            ResourceRecordSetFailover::Primary,
            "10.9.0.4",
            None,
        ),
    )
    .await;
    assert_eq!(code, "InvalidChangeBatch");
    assert!(message.contains("non-failover set exists"), "{message}");

    let run = world.run("failover", "RUNBOOK").await;
    assert_eq!(run.code, 1, "{run:#?}");
    let said = format!("{}\n{}", run.stdout, run.stderr);
    for part in [
        "has policy records",
        "\"dr\" (weighted 0)",
        "\"primary\" (weighted 100)",
        "set `set_identifier` in the [[dns]] entry",
    ] {
        assert!(said.contains(part), "missing {part:?} in {said}");
    }
    assert!(mutations(&world.sim.get("/_sim/stats").await, "StartRecovery").is_empty());
    assert_eq!(world.listed().await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alias_with_a_wrong_canonical_zone_fails_preflight_naming_the_right_one() {
    // The seeded load balancer of the app wave (eu-central-1): its zone is not us-east-1's.
    let probe = TestSim::start(1.0).await;
    probe.seed(THREE_WAVES).await;
    let world_json = probe.get("/_sim/world").await;
    let lb = world_json["elbv2"][format!("{TARGET}/eu-central-1")]["load_balancers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    let (dns_name, canonical) = (
        lb["dns_name"].as_str().unwrap(),
        lb["canonical_hosted_zone_id"].as_str().unwrap(),
    );
    assert_ne!(canonical, "Z35SXDOTRQ7X7K");
    let world = Routed::new(&format!(
        r#"[[dns]]
hosted_zone_id = "Z00000000000000SHOP1"
account = "target"
name = "www.shop.example.com."
type = "A"
points_to = {{ load_balancer = "{dns_name}", zone = "Z35SXDOTRQ7X7K" }}"#
    ))
    .await;
    let run = world.run("failover", "RUNBOOK").await;
    assert_eq!(run.code, 1, "{run:#?}");
    let said = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        said.contains(&format!(
            "has canonical hosted zone {canonical}, not Z35SXDOTRQ7X7K"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("set zone = \\\"{canonical}\\\""))
            || said.contains(&format!("set zone = \"{canonical}\"")),
        "{said}"
    );
    // Route 53 refuses the alias too.
    let (code, message) = refused(
        &world.route53(),
        ChangeAction::Upsert,
        ResourceRecordSet::builder()
            .name(WWW)
            .r#type(aws_sdk_route53::types::RrType::A)
            .alias_target(
                aws_sdk_route53::types::AliasTarget::builder()
                    .dns_name(dns_name)
                    .hosted_zone_id("Z35SXDOTRQ7X7K")
                    .evaluate_target_health(true)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(code, "InvalidChangeBatch");
    assert!(
        message.contains("the alias target name does not lie within the target zone"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv4_never_reaches_an_aaaa_record() {
    let world = Routed::new(
        &WEIGHTED_DNS
            .replace("type = \"A\"", "type = \"AAAA\"")
            .replace("set_identifier = \"dr\"\n", "")
            .replace("\nweights = { dr = 100, primary = 0 }", ""),
    )
    .await;
    let r53 = world.route53();
    let mut aaaa = a_record(WWW, 60, &["10.9.0.1"]);
    aaaa.r#type = aws_sdk_route53::types::RrType::Aaaa;
    let (code, message) = refused(&r53, ChangeAction::Upsert, aaaa).await;
    assert_eq!(code, "InvalidChangeBatch");
    assert!(message.contains("AAAARRDATAIllegalIPv6Address (Value is not a valid IPv6 address) encountered with '10.9.0.1'"), "{message}");
    let (_, message) = refused(
        &r53,
        ChangeAction::Upsert,
        a_record(WWW, 60, &["2001:db8::1"]),
    )
    .await;
    assert!(message.contains("ARRDATAIllegalIPv4Address"), "{message}");

    // The recovered instances have IPv4 addresses only: the cutover writes no AAAA record.
    let run = world.run("failover", "RUNBOOK").await;
    assert_ne!(run.code, 0, "{run:#?}");
    let said = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        said.contains("no recovered instance of wave web has an IPv6 address"),
        "{said}"
    );
    let listed = world.listed().await;
    assert!(
        listed["ResourceRecordSets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["Type"] != "AAAA"),
        "{listed}"
    );
}

const PRIMARY_CONTROL: &str = "arn:aws:route53-recovery-control::555555555555:controlpanel/0123456789abcdef0123456789abcdef/routingcontrol/primary000000000";
const DR_CONTROL: &str = "arn:aws:route53-recovery-control::555555555555:controlpanel/0123456789abcdef0123456789abcdef/routingcontrol/dr00000000000000";

/// The state of a routing control, read through the simulator's cluster endpoint.
async fn control_state(sim: &TestSim, arn: &str) -> String {
    let config = aws_sdk_route53recoverycluster::Config::builder()
        .behavior_version(aws_sdk_route53recoverycluster::config::BehaviorVersion::latest())
        .region(aws_sdk_route53recoverycluster::config::Region::new(
            "us-west-2",
        ))
        .endpoint_url(&sim.endpoint)
        .credentials_provider(aws_sdk_route53recoverycluster::config::Credentials::new(
            TARGET, "x", None, None, "test",
        ))
        .build();
    aws_sdk_route53recoverycluster::Client::from_conf(config)
        .get_routing_control_state()
        .routing_control_arn(arn)
        .send()
        .await
        .unwrap()
        .routing_control_state()
        .as_str()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_controls_switch_through_the_data_plane_with_the_first_endpoint_down() {
    // Nothing listens on port 1: the first cluster endpoint is down.
    let endpoints = r#"endpoints = [
  { url = "http://127.0.0.1:1", region = "us-east-1" },
  { url = "SIM_ENDPOINT", region = "us-west-2" },
]"#;
    let world = Routed::new(&format!(
        r#"[[routing_control]]
arn = "{PRIMARY_CONTROL}"
account = "target"
state = "Off"
{endpoints}

[[routing_control]]
arn = "{DR_CONTROL}"
account = "target"
state = "On"
{endpoints}"#
    ))
    .await;
    assert_eq!(control_state(&world.sim, PRIMARY_CONTROL).await, "On");
    assert_eq!(control_state(&world.sim, DR_CONTROL).await, "Off");

    let run_id = world.failover().await;
    assert_eq!(control_state(&world.sim, PRIMARY_CONTROL).await, "Off");
    assert_eq!(control_state(&world.sim, DR_CONTROL).await, "On");
    let stats = world.sim.get("/_sim/stats").await;
    let switched = mutations(&stats, "UpdateRoutingControlStates");
    assert_eq!(switched.len(), 1, "both controls in one call: {switched:?}");
    assert_eq!(
        switched[0]["params"]["entries"],
        json!([{ "arn": PRIMARY_CONTROL, "state": "Off" }, { "arn": DR_CONTROL, "state": "On" }])
    );
    let shown = world.cli(&["--output", "json", "show", &run_id]).await;
    let cutover = step_output(&shown.json(), "dns_cutover");
    assert_eq!(
        cutover["routing_controls"][0]["controls"][0]["before"],
        "On"
    );

    world.rollback(&run_id).await;
    assert_eq!(control_state(&world.sim, PRIMARY_CONTROL).await, "On");
    assert_eq!(control_state(&world.sim, DR_CONTROL).await, "Off");
    let stats = world.sim.get("/_sim/stats").await;
    assert_eq!(mutations(&stats, "UpdateRoutingControlStates").len(), 2);
}
