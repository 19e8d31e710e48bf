//! Issue 18, item 1: the DRS job budget belongs to jobs. A share goes back when its job ends,
//! batches wait in one fair queue across waves, and a run that cannot make progress fails
//! naming the quota (20 jobs in progress, 500 servers in active jobs per account and region).

use serde_json::{Value, json};

use crate::support::{TestSim, mutations, step};

/// A runbook of waves of `sizes` servers, all independent of each other.
fn runbook(sizes: &[usize]) -> String {
    let mut text = String::from(
        "name = \"budget\"\ndescription = \"waves beyond the DRS job quotas\"\n\n\
         [objectives]\nrto = \"24h\"\nrpo = \"1h\"\n\n\
         [source]\naccount_id = \"111111111111\"\nregion = \"us-east-1\"\n\n\
         [target]\naccount_id = \"222222222222\"\nregion = \"us-west-2\"\n",
    );
    let mut n = 0;
    for (w, size) in sizes.iter().enumerate() {
        let servers: Vec<String> = (0..*size)
            .map(|_| {
                n += 1;
                format!("\"{}\"", server(n))
            })
            .collect();
        text.push_str(&format!(
            "\n[[wave]]\nname = \"w{w}\"\nservers = [{}]\n",
            servers.join(", ")
        ));
    }
    text
}

fn server(n: usize) -> String {
    format!("s-{n:017x}")
}

async fn failover(sim: &TestSim, text: &str) -> (crate::support::CliRun, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let run = sim.failover_text(dir.path(), text).await;
    (run, dir)
}

fn batch_sizes(starts: &[Value]) -> Vec<usize> {
    starts
        .iter()
        .map(|m| m["params"]["sourceServers"].as_array().unwrap().len())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_independent_400_server_waves_both_finish_within_the_job_quotas() {
    let sim = TestSim::start(600.0).await;
    let text = runbook(&[400, 400]);
    sim.seed(&text).await;
    let (run, _dir) = failover(&sim, &text).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.json()["status"], "succeeded");
    let stats = sim.get("/_sim/stats").await;
    let starts = mutations(&stats, "StartRecovery");
    assert_eq!(
        starts.len(),
        8,
        "four batches of 100 per wave: {:?}",
        batch_sizes(&starts)
    );
    assert!(batch_sizes(&starts).iter().all(|s| *s == 100));
    // Every server was launched, once.
    let mut recovered: Vec<String> = starts
        .iter()
        .flat_map(|m| m["params"]["sourceServers"].as_array().unwrap().clone())
        .map(|s| s["sourceServerID"].as_str().unwrap().to_string())
        .collect();
    recovered.sort();
    recovered.dedup();
    assert_eq!(recovered.len(), 800);
    assert!(
        run.stderr.contains("waiting for the DRS job quota"),
        "800 servers exceed 500 in active jobs: some batch waited: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_501_server_wave_finishes_its_sixth_batch_after_a_job_ends() {
    let sim = TestSim::start(600.0).await;
    let text = runbook(&[501]);
    sim.seed(&text).await;
    let (run, _dir) = failover(&sim, &text).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.json()["status"], "succeeded");
    let stats = sim.get("/_sim/stats").await;
    let starts = mutations(&stats, "StartRecovery");
    assert_eq!(batch_sizes(&starts), [100, 100, 100, 100, 100, 1]);
    assert!(
        run.stderr
            .contains("their share of the DRS job quota is free"),
        "the waiting batch itself saw a job end: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_that_is_never_freed_fails_the_step_naming_the_quota_and_the_jobs() {
    let sim = TestSim::start(600.0).await;
    let text = runbook(&[501]);
    sim.seed(&text).await;
    // One server of each of the first five batches never leaves its phase: their jobs never
    // end, so they hold 500 servers in active jobs and the sixth batch can never start.
    let faults: Vec<Value> = (0..5)
        .map(|b| json!({"kind": "stuck_job", "source_server_id": server(b * 100 + 1)}))
        .collect();
    sim.faults(json!(faults)).await;
    let (run, _dir) = failover(&sim, &text).await;
    assert_eq!(run.code, 1, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "failed");
    let step = step(&report, "recovery_job:w0");
    assert_eq!(step["status"], "failed", "{step:#?}");
    let quota = "at most 20 jobs in progress and 500 servers in active jobs per account and region";
    assert!(run.stderr.contains(quota), "{}", run.stderr);
    assert!(run.stderr.contains("no progress for 3 h"), "{}", run.stderr);
    let stats = sim.get("/_sim/stats").await;
    let starts = mutations(&stats, "StartRecovery");
    assert_eq!(starts.len(), 5, "the sixth batch was never sent");
    // The message names every job holding the quota.
    let drs = sim.drs("222222222222", "us-west-2");
    let jobs = drs.describe_jobs().send().await.unwrap();
    assert_eq!(jobs.items().len(), 5);
    for job in jobs.items() {
        assert!(
            run.stderr
                .contains(&format!("{} (100 servers)", job.job_id())),
            "{} named: {}",
            job.job_id(),
            run.stderr
        );
    }
}
