//! A drill with a drill target group (`drill_target_group_arn` in `[[load_balancer]]`): the
//! built binary drills `payments` against the simulator in process; `validate` registers the
//! drill instances in the drill group and waits until they are healthy, `cleanup` removes them
//! before terminating them (and so does a rollback of a drill that failed there); the
//! production target group and DNS are never touched.

use serde_json::{Value, json};

use crate::support::{TestSim, mutations, shown, step, target_ids};

const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
const DRILL_GROUP: &str = "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments-drill/0123456789abcd01";
const PRODUCTION_GROUP: &str =
    "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123456789abcdef";

/// The targets of a group with their states, read through the SDK.
async fn targets_in(sim: &TestSim, arn: &str) -> Vec<(String, String)> {
    let health = sim
        .elbv2("222222222222", "us-west-2")
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .unwrap();
    health
        .target_health_descriptions()
        .iter()
        .map(|d| {
            (
                d.target().unwrap().id().unwrap().to_string(),
                d.target_health()
                    .unwrap()
                    .state()
                    .unwrap()
                    .as_str()
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_checks_its_instances_healthy_in_the_drill_group_and_leaves_it_empty() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    assert!(
        targets_in(&sim, DRILL_GROUP).await.is_empty(),
        "the drill group is seeded empty"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.run(&db, "drill", "runbooks/payments.toml").await;
    assert_eq!(run.code, 0, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "succeeded");
    let run_id = report["run_id"].as_str().unwrap().to_string();

    // The app wave's drill instances (EC2 IDs from DRS) went into the drill group, and only there.
    let drs = sim.drs("222222222222", "us-west-2");
    let launched = sim.get("/_sim/stats").await;
    let registrations = mutations(&launched, "RegisterTargets");
    assert_eq!(registrations.len(), 1, "{registrations:#?}");
    assert_eq!(registrations[0]["params"]["target_group_arn"], DRILL_GROUP);
    assert!(
        registrations[0]["params"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["port"] == 443)
    );
    let registered = target_ids(&registrations[0]);
    assert_eq!(
        registered.len(),
        2,
        "both app servers launched: {registered:?}"
    );
    assert!(registered.iter().all(|id| id.starts_with("i-")));

    // validate recorded them healthy in the drill group.
    let shown = shown(&db, &run_id);
    let validate = step(&shown, "validate:app");
    let group = &validate["output"]["drill_groups"][0];
    assert_eq!(group["target_group_arn"], DRILL_GROUP);
    assert_eq!(group["registered_done"], true);
    assert!(group["healthy_at"].as_str().is_some(), "{validate:#}");
    let db_wave = step(&shown, "validate:db");
    assert!(
        db_wave["output"]["drill_groups"].is_null(),
        "the db wave has no load balancer: {db_wave:#}"
    );
    // Every ELBv2 mutation went intent -> call -> effect, each with its request ID.
    let effects = shown["effects"].as_array().unwrap();
    let elbv2: Vec<&Value> = effects
        .iter()
        .filter(|e| e["operation"].as_str().unwrap().starts_with("elbv2:"))
        .collect();
    assert_eq!(elbv2.len(), 2, "{elbv2:#?}");
    assert!(elbv2.iter().all(
        |e| e["state"] == "done" && e["aws_request_id"].as_str().is_some_and(|r| !r.is_empty())
    ));

    // cleanup deregistered exactly those, before terminating them, and the group is empty.
    let deregistrations = mutations(&launched, "DeregisterTargets");
    assert_eq!(deregistrations.len(), 1, "{deregistrations:#?}");
    assert_eq!(
        deregistrations[0]["params"]["target_group_arn"],
        DRILL_GROUP
    );
    assert_eq!(target_ids(&deregistrations[0]), registered);
    let order: Vec<&str> = launched["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["operation"].as_str().unwrap())
        .filter(|op| {
            matches!(
                *op,
                "RegisterTargets" | "DeregisterTargets" | "TerminateRecoveryInstances"
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "RegisterTargets",
            "DeregisterTargets",
            "TerminateRecoveryInstances"
        ]
    );
    assert_eq!(
        targets_in(&sim, DRILL_GROUP).await,
        Vec::<(String, String)>::new()
    );
    let left = drs.describe_recovery_instances().send().await.unwrap();
    assert!(
        left.items().is_empty(),
        "the drill left instances behind: {left:#?}"
    );

    // Production traffic never moved: the failover group is still empty, DNS unchanged.
    assert!(targets_in(&sim, PRODUCTION_GROUP).await.is_empty());
    assert!(mutations(&launched, "ChangeResourceRecordSets").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_drill_targets_fail_the_drill_naming_them_with_a_hint() {
    let sim = TestSim::start(600.0).await;
    sim.seed(PAYMENTS).await;
    sim.faults(json!([{"kind": "unhealthy_target", "target_group_arn": DRILL_GROUP}]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = sim.run(&db, "drill", "runbooks/payments.toml").await;
    assert_eq!(run.code, 1, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "failed");
    let error = report["error"].as_str().unwrap();
    let registered = target_ids(&mutations(&sim.get("/_sim/stats").await, "RegisterTargets")[0]);
    assert!(error.contains("validate:app"), "{error}");
    assert!(error.contains(DRILL_GROUP), "{error}");
    for id in &registered {
        assert!(
            error.contains(&format!("{id} is unhealthy (Target.FailedHealthChecks)")),
            "{id} in {error}"
        );
    }
    assert!(
        error.contains("hint:") && error.contains("health check"),
        "{error}"
    );
    assert!(error.contains("drs-runbook retry"), "{error}");
    // The drill stopped at validate: nothing was terminated and the production group is untouched.
    let stats = sim.get("/_sim/stats").await;
    assert!(mutations(&stats, "TerminateRecoveryInstances").is_empty());
    assert!(targets_in(&sim, PRODUCTION_GROUP).await.is_empty());
    assert_eq!(targets_in(&sim, DRILL_GROUP).await.len(), registered.len());

    // The rollback the hint names removes them from the drill group, then terminates them.
    let run_id = report["run_id"].as_str().unwrap().to_string();
    assert!(
        error.contains(&format!("drs-runbook rollback {run_id}")),
        "{error}"
    );
    let rollback = sim
        .cli(&db, &["--output", "json", "rollback", &run_id])
        .await;
    assert_eq!(
        rollback.code, 0,
        "a drill's rollback needs no confirmation: {rollback:#?}"
    );
    let stats = sim.get("/_sim/stats").await;
    let deregistrations = mutations(&stats, "DeregisterTargets");
    assert_eq!(deregistrations.len(), 1, "{deregistrations:#?}");
    assert_eq!(
        deregistrations[0]["params"]["target_group_arn"],
        DRILL_GROUP
    );
    assert_eq!(target_ids(&deregistrations[0]), registered);
    // One terminate per wave (undo:recovery_job:W), the app wave's after its drill targets left.
    let order: Vec<&str> = stats["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["operation"].as_str().unwrap())
        .filter(|op| matches!(*op, "DeregisterTargets" | "TerminateRecoveryInstances"))
        .collect();
    assert_eq!(
        order,
        [
            "DeregisterTargets",
            "TerminateRecoveryInstances",
            "TerminateRecoveryInstances"
        ]
    );
    assert_eq!(
        targets_in(&sim, DRILL_GROUP).await,
        Vec::<(String, String)>::new()
    );
    let left = sim
        .drs("222222222222", "us-west-2")
        .describe_recovery_instances()
        .send()
        .await
        .unwrap();
    assert!(left.items().is_empty(), "{left:#?}");
}
