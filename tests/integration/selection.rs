//! Waves that name their servers by tags (`select`): preflight resolves them once per run and
//! the run recovers exactly those, a resume uses the persisted resolution, a server in two waves
//! or claimed by another run is refused; a selection that matches nothing fails preflight (issue
//! 18, item 2) instead of "recovering" 0 of 0.

use crate::support::{TestSim, drs_runbook, drs_runbook_async, mutations, run_id_of, shown};

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
    let run = sim.failover_text(dir.path(), RUNBOOK).await;
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

// Waves selecting servers by tags (issue: a wave's `select` was never resolved into servers).
// The simulator seeds the servers a runbook lists; SEED lists five, the tests then tag them
// through DRS TagResource and run SELECTING, whose wave `db` names its servers only by tags.

const S0: &str = "s-00000000000000000";
const S1: &str = "s-00000000000000001";
const S2: &str = "s-00000000000000002";
const S3: &str = "s-00000000000000003";
const S4: &str = "s-00000000000000004";

const HEAD: &str = "description = \"select by tags\"\n\n\
[objectives]\nrto = \"24h\"\nrpo = \"1h\"\n\n\
[source]\naccount_id = \"111111111111\"\nregion = \"us-east-1\"\n\n\
[target]\naccount_id = \"222222222222\"\nregion = \"us-west-2\"\n\n";

fn seed_runbook() -> String {
    format!(
        "name = \"seed\"\n{HEAD}[[wave]]\nname = \"all\"\nservers = [\"{S0}\", \"{S1}\", \"{S2}\", \"{S3}\", \"{S4}\"]\n"
    )
}

/// `web` lists S0; `db` (after web) selects `App = "pay"`; `extra` waves are appended.
fn selecting_runbook(name: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\n{HEAD}[[wave]]\nname = \"web\"\nservers = [\"{S0}\"]\n\n\
[[wave]]\nname = \"db\"\nafter = [\"web\"]\nselect = {{ tags = {{ App = \"pay\" }} }}\n{extra}"
    )
}

/// Sets `tags` on `server` (DRS TagResource) and removes `untag` keys (UntagResource).
async fn retag(sim: &TestSim, server: &str, tags: &[(&str, &str)], untag: &[&str]) {
    let drs = sim.drs("222222222222", "us-west-2");
    let described = drs
        .describe_source_servers()
        .filters(
            aws_sdk_drs::types::DescribeSourceServersRequestFilters::builder()
                .source_server_ids(server)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = described.items()[0].arn().unwrap().to_string();
    if !tags.is_empty() {
        let mut request = drs.tag_resource().resource_arn(&arn);
        for (k, v) in tags {
            request = request.tags(*k, *v);
        }
        request.send().await.unwrap();
    }
    if !untag.is_empty() {
        let mut request = drs.untag_resource().resource_arn(&arn);
        for k in untag {
            request = request.tag_keys(*k);
        }
        request.send().await.unwrap();
    }
}

/// A simulator seeded with S0..S4, S2 and S3 tagged `App=pay`, S4 `App=other`.
async fn tagged_sim() -> TestSim {
    let sim = TestSim::start(600.0).await;
    sim.seed(&seed_runbook()).await;
    retag(&sim, S2, &[("App", "pay")], &[]).await;
    retag(&sim, S3, &[("App", "pay"), ("Tier", "db")], &[]).await;
    retag(&sim, S4, &[("App", "other")], &[]).await;
    sim
}

/// The servers of each StartRecovery, sorted, in call order.
fn recovered(stats: &serde_json::Value) -> Vec<Vec<String>> {
    mutations(stats, "StartRecovery")
        .iter()
        .map(|m| {
            let mut servers: Vec<String> = m["params"]["sourceServers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["sourceServerID"].as_str().unwrap().to_string())
                .collect();
            servers.sort();
            servers
        })
        .collect()
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failover_of_a_wave_selected_by_tags_recovers_exactly_the_matching_servers() {
    let sim = tagged_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let run = sim
        .failover_text(dir.path(), &selecting_runbook("sel", ""))
        .await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.json()["status"], "succeeded");
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(
        recovered(&stats),
        vec![vec![S0.to_string()], vec![S2.to_string(), S3.to_string()]],
        "web recovers its listed server, then db exactly the servers tagged App=pay"
    );
    // The resolution is persisted in preflight's output, and shown.
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    let shown = shown(&dir.path().join("runs.db"), &run_id);
    let selected = find(&shown, "selected").expect("preflight's output shows the resolution");
    assert_eq!(selected, &serde_json::json!({ "db": [S2, S3] }), "{shown}");
}

/// The first value under `key` anywhere in `value`.
fn find<'a>(value: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| find(v, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_after_a_kill_recovers_the_servers_preflight_resolved_even_if_tags_changed() {
    let sim = tagged_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "runbook.toml", &selecting_runbook("sel", ""));
    let db = dir.path().join("runs.db");
    // The first intent is web's StartRecovery: db's recovery (after web) has not planned yet.
    let killed = drs_runbook_async(
        &db,
        Some(&sim.endpoint),
        &["failover", &path, "--yes"],
        &[("DRS_RUNBOOK_CRASH_AFTER_INTENT", "1")],
    )
    .await;
    assert_ne!(killed.code, 0, "{killed:#?}");
    let run_id = run_id_of(&killed);
    assert!(
        mutations(&sim.get("/_sim/stats").await, "StartRecovery").is_empty(),
        "aborted before the first StartRecovery"
    );
    // Meanwhile the tags change: S3 leaves the selection, S4 joins it.
    retag(&sim, S3, &[], &["App"]).await;
    retag(&sim, S4, &[("App", "pay")], &[]).await;
    let resumed = sim.run(&db, "resume", &run_id).await;
    assert_eq!(resumed.code, 0, "{resumed:#?}");
    assert_eq!(resumed.json()["status"], "succeeded");
    let stats = sim.get("/_sim/stats").await;
    assert_eq!(
        recovered(&stats),
        vec![vec![S0.to_string()], vec![S2.to_string(), S3.to_string()]],
        "the resumed run recovers the servers resolved before the kill, not today's tags"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_waves_selecting_the_same_server_fail_preflight_naming_both() {
    let sim = tagged_sim().await;
    let dir = tempfile::tempdir().unwrap();
    // `ops` selects Tier=db: S3, which db's App=pay selects too.
    let extra = "\n[[wave]]\nname = \"ops\"\nselect = { tags = { Tier = \"db\" } }\n";
    let run = sim
        .failover_text(dir.path(), &selecting_runbook("sel", extra))
        .await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.json()["status"], "failed");
    let message = format!(
        "wave ops: select tags {{Tier=db}} matched server(s) of another wave: {S3} (wave db)"
    );
    assert!(run.stderr.contains(&message), "{run:#?}");
    assert!(
        mutations(&sim.get("/_sim/stats").await, "StartRecovery").is_empty(),
        "nothing recovered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wave_selecting_a_server_another_wave_lists_fails_preflight_naming_both() {
    let sim = tagged_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("\n[[wave]]\nname = \"cache\"\nservers = [\"{S2}\"]\n");
    let run = sim
        .failover_text(dir.path(), &selecting_runbook("sel", &extra))
        .await;
    assert_eq!(run.code, 1, "{run:#?}");
    let message = format!(
        "wave db: select tags {{App=pay}} matched server(s) of another wave: {S2} (wave cache)"
    );
    assert!(run.stderr.contains(&message), "{run:#?}");
    assert!(mutations(&sim.get("/_sim/stats").await, "StartRecovery").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_selected_server_claimed_by_another_run_is_refused_with_exit_4() {
    let sim = tagged_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    // Another runbook lists S2; its failover is killed at its first intent and holds S2.
    let other = format!("name = \"other\"\n{HEAD}[[wave]]\nname = \"one\"\nservers = [\"{S2}\"]\n");
    let other = write(dir.path(), "other.toml", &other);
    let holder = drs_runbook_async(
        &db,
        Some(&sim.endpoint),
        &["failover", &other, "--yes"],
        &[("DRS_RUNBOOK_CRASH_AFTER_INTENT", "1")],
    )
    .await;
    assert_ne!(holder.code, 0, "{holder:#?}");
    let holder_id = run_id_of(&holder);
    let path = write(dir.path(), "runbook.toml", &selecting_runbook("sel", ""));
    let run = sim.run(&db, "failover", &path).await;
    assert_eq!(run.code, 4, "{run:#?}");
    assert_eq!(run.json()["status"], "failed");
    assert!(
        run.stderr.contains(&format!(
            "222222222222/us-west-2/{S2} is claimed by run {holder_id}"
        )),
        "{run:#?}"
    );
    assert!(
        mutations(&sim.get("/_sim/stats").await, "StartRecovery").is_empty(),
        "the holder aborted before sending, and the refused run sent nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_a_selection_as_resolved_at_run_time_with_its_tags() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "runbook.toml", &selecting_runbook("sel", ""));
    let db = dir.path().join("runs.db");
    let (text, json) = tokio::task::spawn_blocking(move || {
        (
            drs_runbook(&db, None, &["plan", &path]),
            drs_runbook(&db, None, &["--output", "json", "plan", &path]),
        )
    })
    .await
    .unwrap();
    assert_eq!(text.code, 0, "{text:#?}");
    assert!(
        text.stdout.contains(
            "wave db: 0 listed server(s), plus those selected by tags {App=pay}: resolved at run time"
        ),
        "{text:#?}"
    );
    assert_eq!(json.code, 0, "{json:#?}");
    assert_eq!(
        json.json()["selections"],
        serde_json::json!([{ "wave": "db", "tags": { "App": "pay" }, "resolved": "at run time" }])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failback_after_a_failover_of_a_selected_wave_recovers_the_selected_servers_a2s() {
    let sim = tagged_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "runbook.toml", &selecting_runbook("sel", ""));
    let db = dir.path().join("runs.db");
    let failover = sim.run(&db, "failover", &path).await;
    assert_eq!(failover.code, 0, "{failover:#?}");
    let failback = sim.run(&db, "failback", &path).await;
    assert_eq!(failback.code, 0, "{failback:#?}");
    assert_eq!(failback.json()["status"], "succeeded");
    let stats = sim.get("/_sim/stats").await;
    // The B2s' (target side); the A3s' are the re-protect.
    let reversed: Vec<String> = mutations(&stats, "ReverseReplication")
        .iter()
        .filter(|m| m["region"] != "us-east-1")
        .map(|m| {
            m["params"]["recoveryInstanceID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        reversed.len(),
        3,
        "web's and db's B2s reversed: {reversed:?}"
    );
    let failback_jobs: Vec<Vec<String>> = recovered(&stats)[2..].to_vec();
    assert_eq!(
        failback_jobs.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1, 2],
        "web's A2, then db's two A2s: {failback_jobs:?}"
    );
}
