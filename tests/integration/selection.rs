//! Issue 18, item 2: a wave whose `select` matches no source server fails preflight, showing
//! the selection, instead of "recovering" 0 of 0.

use crate::support::{TestSim, drs_runbook, mutations};

const RUNBOOK: &str = "name = \"selection\"\ndescription = \"empty selection\"\n\n\
[objectives]\nrto = \"24h\"\nrpo = \"1h\"\n\n\
[source]\naccount_id = \"111111111111\"\nregion = \"us-east-1\"\n\n\
[target]\naccount_id = \"222222222222\"\nregion = \"us-west-2\"\n\n\
[[wave]]\nname = \"web\"\nservers = [\"s-00000000000000000\", \"s-00000000000000001\"]\n\n\
[[wave]]\nname = \"db\"\nselect = { tags = { App = \"x\" } }\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_wave_whose_select_matches_no_server_fails_preflight_showing_the_selection() {
    let sim = TestSim::start(600.0).await;
    sim.seed(RUNBOOK).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runbook.toml");
    std::fs::write(&path, RUNBOOK).unwrap();
    let db = dir.path().join("runs.db");
    let endpoint = sim.endpoint.clone();
    let run = tokio::task::spawn_blocking(move || {
        drs_runbook(
            &db,
            Some(&endpoint),
            &[
                "--output",
                "json",
                "failover",
                path.to_str().unwrap(),
                "--yes",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.json()["status"], "failed");
    let message = "wave db: select tags {App=x} matched no source server in 222222222222/us-west-2";
    assert!(run.stderr.contains(message), "{run:#?}");
    let stats = sim.get("/_sim/stats").await;
    assert!(
        mutations(&stats, "StartRecovery").is_empty(),
        "nothing recovered"
    );
}
