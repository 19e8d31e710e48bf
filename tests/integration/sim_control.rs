//! The simulator's control API (`/_sim/`): clock, faults, stats, unknown endpoints.

use crate::support::TestSim;
use serde_json::json;

#[tokio::test]
async fn clock_reports_speed_and_skips_forward() {
    let sim = TestSim::start(60.0).await;
    let clock = sim.get("/_sim/clock").await;
    assert_eq!(clock["speed"], 60.0);
    let before = chrono::DateTime::parse_from_rfc3339(clock["now"].as_str().unwrap()).unwrap();
    sim.skip(3600.0).await;
    let after = sim.get("/_sim/clock").await;
    let after = chrono::DateTime::parse_from_rfc3339(after["now"].as_str().unwrap()).unwrap();
    assert!(after - before >= chrono::Duration::seconds(3600));
}

#[tokio::test]
async fn faults_are_added_listed_and_cleared() {
    let sim = TestSim::start(1.0).await;
    let (status, body) = sim
        .post(
            "/_sim/faults",
            &json!({"faults": [{"kind": "stuck_job", "source_server_id": "s-1234567890abcdef0"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["added"], 1);
    assert_eq!(
        sim.get("/_sim/faults").await["faults"][0]["kind"],
        "stuck_job"
    );
    let (status, _) = sim
        .post(
            "/_sim/faults",
            &json!({"faults": [{"kind": "no_such_fault"}]}),
        )
        .await;
    assert_eq!(status, 400);
    let response = reqwest::Client::new()
        .delete(format!("{}/_sim/faults", sim.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(sim.get("/_sim/faults").await["faults"], json!([]));
}

#[tokio::test]
async fn unknown_control_endpoints_say_what_exists() {
    let sim = TestSim::start(1.0).await;
    let body = sim.get("/_sim/nothing").await;
    assert!(body["hint"].as_str().unwrap().contains("/_sim/stats"));
}
