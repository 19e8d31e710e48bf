//! The auditor's commands on real runs: the built binary fails over `payments`, drills
//! `reporting` twice and drills a runbook with a hostile description (paused at an approval,
//! approved with a hostile comment), all against an in-process simulator. Then, with no
//! simulator needed any more:
//! - `audit verify` on copies of the database whose events were edited, deleted or reordered
//!   with raw SQL names the right event (exit 1), and confirms the untouched copy (exit 0);
//! - `report --format json` of the failover is checked field by field against the database and
//!   the simulated cloud;
//! - the HTML reports are opened in headless Chromium (`--dump-dom`, `--screenshot`);
//! - `history` filters and `history --trend`.

use crate::support::binary;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use crate::support::{TestSim, repo_path, step_fields, time_of};

const OPERATOR: &str = "auditor-test";
const HOSTILE_RUNBOOK: &str = "tests/fixtures/runbooks/valid-hostile-description.toml";
const HOSTILE_COMMENT: &str = "ok <img src=x onerror=alert(2)> <script>alert(3)</script>";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The runs every test reads, made once.
struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    failover: String,
    drills: Vec<String>,
    hostile: String,
    /// What the simulated cloud says, read through the SDK while it still ran.
    truth: Truth,
}

struct Truth {
    /// DRS job ID -> the source servers it recovered (target account of payments).
    jobs: Vec<(String, BTreeSet<String>)>,
    dns_before: Vec<String>,
    dns_after: Vec<String>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fixture() -> &'static Fixture {
    // Made on its own thread and runtime: the simulator lives only while the runs are made,
    // whichever test gets here first.
    FIXTURE.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(make_runs())
        })
        .join()
        .expect("the runs are made")
    })
}

/// Runs the built binary from the repository root against `db` (and the simulator, if given).
async fn cli(db: &Path, endpoint: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::from(binary());
    command.current_dir(repo_path("")).arg("--db").arg(db);
    if let Some(endpoint) = endpoint {
        command.arg("--endpoint-url").arg(endpoint);
    }
    command
        .args(args)
        .env("DRS_RUNBOOK_OPERATOR", OPERATOR)
        .env_remove("AWS_PROFILE")
        .env_remove("DRS_RUNBOOK_DB")
        .output()
        .await
        .expect("drs-runbook runs")
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run_id_of(output: &Output) -> String {
    let value: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("JSON on stdout: {}", show(output)));
    value["run_id"].as_str().expect("run_id").to_owned()
}

async fn a_records(sim: &TestSim) -> Vec<String> {
    sim.a_record_values(
        "111111111111",
        "Z0123456789ABCDEFGHIJ",
        "api.payments.example.com.",
    )
    .await
}

async fn make_runs() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let sim = TestSim::start(600.0).await;
    sim.seed(include_str!("../../runbooks/payments.toml")).await;
    sim.seed(include_str!("../../runbooks/reporting-drill.toml"))
        .await;
    sim.seed(include_str!(
        "../fixtures/runbooks/valid-hostile-description.toml"
    ))
    .await;
    let ep = Some(sim.endpoint.as_str());
    let dns_before = a_records(&sim).await;

    let out = cli(
        &db,
        ep,
        &[
            "failover",
            "runbooks/payments.toml",
            "--yes",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let failover = run_id_of(&out);

    let mut drills = Vec::new();
    for _ in 0..2 {
        let out = cli(
            &db,
            ep,
            &[
                "drill",
                "runbooks/reporting-drill.toml",
                "--yes",
                "--output",
                "json",
            ],
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        drills.push(run_id_of(&out));
    }

    // No --yes and no terminal: the drill pauses before cleanup (exit 3) until approved.
    let out = cli(&db, ep, &["drill", HOSTILE_RUNBOOK, "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let hostile = run_id_of(&out);
    let out = cli(
        &db,
        ep,
        &[
            "approve",
            &hostile,
            "--comment",
            HOSTILE_COMMENT,
            "--output",
            "json",
        ],
    )
    .await;
    // The approval is recorded, then the run continues to its end.
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let approved = format!("approved cleanup of run {hostile}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&approved),
        "{}",
        show(&out)
    );

    let jobs = sim
        .drs("222222222222", "us-west-2")
        .describe_jobs()
        .send()
        .await
        .expect("jobs list")
        .items()
        .iter()
        .map(|j| {
            let servers = j
                .participating_servers()
                .iter()
                .filter_map(|s| s.source_server_id().map(str::to_owned))
                .collect();
            (j.job_id().to_owned(), servers)
        })
        .collect();
    let dns_after = a_records(&sim).await;
    Fixture {
        db,
        failover,
        drills,
        hostile,
        truth: Truth {
            jobs,
            dns_before,
            dns_after,
        },
        _dir: dir,
    }
}

/// Runs the binary on the fixture's database (or a copy), without a simulator.
fn offline(db: &Path, args: &[&str]) -> Output {
    binary()
        .current_dir(repo_path(""))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("DRS_RUNBOOK_DB")
        .output()
        .expect("drs-runbook runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("JSON on stdout: {}", show(output)))
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn connect(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .expect("database opens")
}

/// A consistent copy of the fixture's database (WAL included) in a new directory, with the
/// append-only triggers dropped as a tamperer would, and `statements` applied with raw SQL.
fn tampered_copy(statements: &[String]) -> (tempfile::TempDir, PathBuf) {
    let source = &fixture().db;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("runs.db");
    block_on(async {
        let mut conn = connect(source).await;
        sqlx::query("VACUUM INTO ?1")
            .bind(copy.display().to_string())
            .execute(&mut conn)
            .await
            .expect("copy");
        let mut conn = connect(&copy).await;
        sqlx::query("DROP TRIGGER events_no_update")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("DROP TRIGGER events_no_delete")
            .execute(&mut conn)
            .await
            .unwrap();
        for statement in statements {
            let done = sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect(statement);
            assert!(done.rows_affected() >= 1, "{statement} changed nothing");
        }
    });
    (dir, copy)
}

/// One column of a run's row in a database.
fn run_column(db: &Path, run_id: &str, column: &str) -> Option<String> {
    block_on(async {
        let mut conn = connect(db).await;
        sqlx::query_scalar(&format!(
            "SELECT CAST({column} AS TEXT) FROM runs WHERE id = ?1"
        ))
        .bind(run_id)
        .fetch_one(&mut conn)
        .await
        .unwrap()
    })
}

fn event_kind(db: &Path, run_id: &str, run_seq: i64) -> String {
    block_on(async {
        let mut conn = connect(db).await;
        sqlx::query_scalar("SELECT kind FROM events WHERE run_id = ?1 AND run_seq = ?2")
            .bind(run_id)
            .bind(run_seq)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    })
}

/// `audit verify <run> --output json` on `db`: exit 1 and the first break.
fn first_break(db: &Path, run_id: &str) -> Value {
    let out = offline(db, &["audit", "verify", run_id, "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let verdict = json_of(&out);
    assert_eq!(verdict["ok"], false);
    assert_eq!(verdict["first_break"]["run_id"], run_id);
    verdict["first_break"]["broken"].clone()
}

#[test]
fn audit_verify_confirms_untouched_chains_with_their_final_hash() {
    let f = fixture();
    let (_dir, copy) = tampered_copy(&[]);
    let out = offline(&copy, &["audit", "verify", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let verdict = json_of(&out);
    assert_eq!(verdict["ok"], true);
    let runs = verdict["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "every run is verified: {verdict}");
    for run in runs {
        let id = run["run_id"].as_str().unwrap();
        assert_eq!(run["ok"], true);
        // The head of the chain, which every append moves (see `events::append`).
        assert_eq!(
            run["final_hash"].as_str(),
            run_column(&copy, id, "last_event_hash").as_deref(),
            "{id}"
        );
        assert_eq!(
            run["events"].as_i64().unwrap().to_string(),
            run_column(&copy, id, "event_count").unwrap()
        );
    }
    let out = offline(&copy, &["audit", "verify", &f.failover]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = run_column(&copy, &f.failover, "last_event_hash").unwrap();
    assert!(text.contains("intact") && text.contains(&hash), "{text}");
}

#[test]
fn an_edited_event_is_named_by_audit_verify() {
    let f = fixture();
    let kind = event_kind(&f.db, &f.failover, 5);
    let (_dir, copy) = tampered_copy(&[format!(
        "UPDATE events SET data = json_set(data, '$.forged', 1) WHERE run_id = '{}' AND run_seq = 5",
        f.failover
    )]);
    let broken = first_break(&copy, &f.failover);
    assert_eq!(broken["event"], 5, "{broken}");
    assert_eq!(broken["reason"]["kind"], "altered", "{broken}");
    assert_eq!(
        broken["stored_kind"].as_str(),
        Some(kind.as_str()),
        "{broken}"
    );

    // Verifying every run fails too, names the tampered run, and still confirms the others.
    let out = offline(&copy, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "run {} (payments): BROKEN at event 5 ({kind}",
            f.failover
        )),
        "{text}"
    );
    for drill in &f.drills {
        assert!(
            text.contains(&format!("run {drill} (reporting): intact")),
            "{text}"
        );
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken at event 5"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_deleted_event_is_named_by_audit_verify() {
    let f = fixture();
    let (_dir, copy) = tampered_copy(&[format!(
        "DELETE FROM events WHERE run_id = '{}' AND run_seq = 7",
        f.failover
    )]);
    let broken = first_break(&copy, &f.failover);
    assert_eq!(broken["event"], 7, "{broken}");
    assert_eq!(
        broken["reason"],
        serde_json::json!({"kind": "missing", "next": 8}),
        "{broken}"
    );
    assert!(
        broken["stored_kind"].is_null(),
        "nothing is stored there any more: {broken}"
    );
}

#[test]
fn swapped_events_are_named_by_audit_verify() {
    let f = fixture();
    let drill = &f.drills[0];
    let swap = |from: i64, to: i64| {
        format!("UPDATE events SET run_seq = {to} WHERE run_id = '{drill}' AND run_seq = {from}")
    };
    let (_dir, copy) = tampered_copy(&[swap(3, 1000), swap(4, 3), swap(1000, 4)]);
    let broken = first_break(&copy, drill);
    assert_eq!(broken["event"], 3, "{broken}");
    assert_eq!(broken["reason"]["kind"], "altered", "{broken}");
    let out = offline(&copy, &["audit", "verify", drill]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BROKEN at event 3"),
        "{}",
        show(&out)
    );
    // The report of a tampered run says so and exits 1.
    let out = offline(&copy, &["report", drill, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json_of(&out);
    assert_eq!(report["audit"]["verified"], false);
    assert!(report["audit"]["final_hash"].is_null());
}

fn sorted_strings(value: &Value) -> Vec<String> {
    let mut list: Vec<String> = value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    list.sort();
    list
}

#[test]
fn the_json_report_of_a_failover_holds_every_figure() {
    let f = fixture();
    let out = offline(&f.db, &["report", &f.failover, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = json_of(&out);

    // The run, who ran it and from where, the runbook as it was.
    assert_eq!(r["run"]["run_id"], f.failover.as_str());
    assert_eq!(
        (r["run"]["operation"].as_str(), r["run"]["status"].as_str()),
        (Some("failover"), Some("succeeded"))
    );
    assert_eq!(r["run"]["operator"], OPERATOR);
    assert_eq!(
        r["run"]["host"].as_str(),
        run_column(&f.db, &f.failover, "host").as_deref()
    );
    assert!(!r["run"]["host"].as_str().unwrap().is_empty());
    let file = std::fs::read(repo_path("runbooks/payments.toml")).unwrap();
    assert_eq!(r["runbook"]["sha256"], hex::encode(Sha256::digest(&file)));
    assert_eq!(
        r["runbook"]["text"].as_str().unwrap().as_bytes(),
        file.as_slice()
    );

    // Every step, in plan order, with consistent timings.
    let keys = step_fields(&r, "key");
    assert_eq!(
        keys,
        [
            "preflight",
            "fence_source",
            "recovery_job:db",
            "snapshot_conversion:db",
            "launch:db",
            "recovery_job:app",
            "snapshot_conversion:app",
            "launch:app",
            "boot:app",
            "lb_switch:app",
            "dns_cutover"
        ]
    );
    for step in r["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "succeeded", "{step}");
        assert!(step["attempts"].as_i64().unwrap() >= 1, "{step}");
        let (start, end) = (time_of(&step["started_at"]), time_of(&step["finished_at"]));
        assert!(start <= end, "{step}");
        let duration = step["duration_seconds"].as_f64().unwrap();
        assert!(
            (duration - (end - start).num_milliseconds() as f64 / 1000.0).abs() < 0.01,
            "{step}"
        );
    }
    // --yes approved the DNS cutover up front: no operator action to record.
    assert_eq!(r["operator_actions"], serde_json::json!([]));

    // Per server: its job (as DRS knows it), data timestamp, RPO, launch and instance.
    let servers = r["servers"].as_array().unwrap();
    let waves: Vec<(&str, &str)> = servers
        .iter()
        .map(|s| {
            (
                s["source_server_id"].as_str().unwrap(),
                s["wave"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        waves,
        [
            ("s-1234567890abcdef0", "db"),
            ("s-234567890abcdef01", "app"),
            ("s-34567890abcdef012", "app")
        ]
    );
    let started = time_of(&r["run"]["declared_at"]);
    for s in servers {
        let job = s["job_id"].as_str().unwrap();
        let (_, job_servers) = f
            .truth
            .jobs
            .iter()
            .find(|(id, _)| id == job)
            .unwrap_or_else(|| panic!("DRS knows job {job}"));
        assert!(
            job_servers.contains(s["source_server_id"].as_str().unwrap()),
            "{s}"
        );
        assert_eq!(s["launch_status"], "LAUNCHED", "{s}");
        assert!(
            s["recovery_instance_id"]
                .as_str()
                .unwrap()
                .starts_with("i-"),
            "{s}"
        );
        assert!(
            s["ec2_instance_id"].as_str().unwrap().starts_with("i-"),
            "{s}"
        );
        let rpo = s["rpo_seconds"].as_f64().unwrap();
        let expected =
            ((started - time_of(&s["data_timestamp"])).num_milliseconds() as f64 / 1000.0).max(0.0);
        assert!((rpo - expected).abs() < 0.01, "{s}");
        assert!(
            time_of(&s["started_at"]) <= time_of(&s["launched_at"]),
            "{s}"
        );
    }

    // DRS jobs: the ones DRS has, each with the request ID of the call that made it and a log.
    let jobs = r["jobs"].as_array().unwrap();
    let ids: BTreeSet<&str> = jobs.iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    let truth: BTreeSet<&str> = f.truth.jobs.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, truth);
    let effects = effect_rows(&f.db, &f.failover);
    for job in jobs {
        let request = job["aws_request_id"].as_str().unwrap();
        assert!(
            effects
                .iter()
                .any(|(op, id)| op == "drs:StartRecovery" && id.as_deref() == Some(request)),
            "{job}"
        );
        let events: Vec<&str> = job["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(events.first(), Some(&"JOB_START"), "{job}");
        assert_eq!(events.last(), Some(&"JOB_END"), "{job}");
        let servers = job["servers"].as_array().unwrap().len();
        assert_eq!(
            events.iter().filter(|e| **e == "CONVERSION_END").count(),
            servers,
            "{job}"
        );
        // The log is DRS's own (kept by the launch step after JOB_END): one LAUNCH_START and
        // one LAUNCH_END per server, as real DRS logs them (LAUNCH_END is not in botocore's
        // enum: the report keeps events it does not know).
        assert_eq!(
            events.iter().filter(|e| **e == "LAUNCH_START").count(),
            servers,
            "{job}"
        );
        assert_eq!(
            events.iter().filter(|e| **e == "LAUNCH_END").count(),
            servers,
            "{job}"
        );
    }

    // DNS before and after, as Route 53 had them.
    let dns = r["dns"].as_array().unwrap();
    assert_eq!(dns.len(), 1);
    assert_eq!(dns[0]["hosted_zone_id"], "Z0123456789ABCDEFGHIJ");
    assert_eq!(
        sorted_strings(&dns[0]["before"][0]["values"]),
        f.truth.dns_before
    );
    assert_eq!(
        sorted_strings(&dns[0]["after"][0]["values"]),
        f.truth.dns_after
    );
    assert_ne!(f.truth.dns_before, f.truth.dns_after);
    let mut app_ips: Vec<String> = servers
        .iter()
        .filter(|s| s["wave"] == "app")
        .flat_map(|s| sorted_strings(&s["private_ips"]))
        .collect();
    app_ips.sort();
    assert_eq!(
        app_ips, f.truth.dns_after,
        "the record points at the app wave's recovered servers"
    );

    // RTO and RPO against the runbook's objectives (30m, 15m).
    let (rto, rpo) = measured(&f.db, &f.failover);
    assert_eq!(r["objectives"]["rto"]["objective_seconds"], 1800.0);
    assert_eq!(r["objectives"]["rto"]["measured_seconds"], rto);
    assert_eq!(
        r["objectives"]["rto"]["verdict"],
        if rto <= 1800.0 { "pass" } else { "fail" }
    );
    assert_eq!(r["objectives"]["rpo"]["objective_seconds"], 900.0);
    assert_eq!(r["objectives"]["rpo"]["measured_seconds"], rpo);
    assert_eq!(
        r["objectives"]["rpo"]["verdict"],
        if rpo <= 900.0 { "pass" } else { "fail" }
    );
    let worst = servers
        .iter()
        .map(|s| s["rpo_seconds"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        (worst - rpo).abs() < 0.01,
        "the run's RPO is its worst server's"
    );

    // Every AWS request ID the effects hold, and the final hash of the chain.
    let reported: Vec<(String, Option<String>)> = r["aws_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["operation"].as_str().unwrap().to_owned(),
                a["aws_request_id"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(reported, effects);
    assert!(
        reported.iter().all(|(_, id)| id.is_some()),
        "every completed call has its request ID"
    );
    assert!(
        reported
            .iter()
            .any(|(op, _)| op == "route53:ChangeResourceRecordSets"),
        "{reported:?}"
    );
    assert!(r["cleanup"].is_null(), "a failover has no drill cleanup");
    let verify = json_of(&offline(
        &f.db,
        &["audit", "verify", &f.failover, "--output", "json"],
    ));
    assert_eq!(r["audit"]["verified"], true);
    assert_eq!(r["audit"]["final_hash"], verify["runs"][0]["final_hash"]);
    assert_eq!(
        r["audit"]["final_hash"].as_str(),
        run_column(&f.db, &f.failover, "last_event_hash").as_deref()
    );
    assert_eq!(
        r["audit"]["recorded_final_hash"].as_str(),
        run_column(&f.db, &f.failover, "final_hash").as_deref()
    );
    assert!(r["trend"].as_array().unwrap().is_empty());
}

/// The RTO and RPO a run recorded.
fn measured(db: &Path, run_id: &str) -> (f64, f64) {
    block_on(async {
        let mut conn = connect(db).await;
        sqlx::query_as("SELECT rto_seconds, rpo_seconds FROM runs WHERE id = ?1")
            .bind(run_id)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    })
}

/// (operation, request ID) of every effect of a run, in order.
fn effect_rows(db: &Path, run_id: &str) -> Vec<(String, Option<String>)> {
    block_on(async {
        let mut conn = connect(db).await;
        sqlx::query_as(
            "SELECT operation, aws_request_id FROM effects WHERE run_id = ?1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&mut conn)
        .await
        .unwrap()
    })
}

#[test]
fn the_json_report_of_a_drill_holds_its_cleanup_inventory_and_trend() {
    let f = fixture();
    let r = json_of(&offline(
        &f.db,
        &["report", &f.drills[1], "--format", "json"],
    ));
    let launched: BTreeSet<&str> = r["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["recovery_instance_id"].as_str().unwrap())
        .collect();
    let cleanup = &r["cleanup"];
    let created: BTreeSet<&str> = cleanup["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let terminated: BTreeSet<&str> = cleanup["terminated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(launched.len(), 2);
    assert_eq!(
        created, launched,
        "every drill instance is in the inventory"
    );
    assert_eq!(terminated, launched, "and was terminated");
    assert_eq!(cleanup["remaining"], serde_json::json!([]));
    assert_eq!(cleanup["complete"], true);
    let trend: Vec<&str> = r["trend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        trend,
        [f.drills[0].as_str(), f.drills[1].as_str()],
        "the last drills, oldest first"
    );
}

#[test]
fn history_filters_runs_and_shows_the_drill_trend() {
    let f = fixture();
    let listed = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["history", "--output", "json"];
        all.extend_from_slice(args);
        let out = offline(&f.db, &all);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        json_of(&out)["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        listed(&[]),
        [
            f.hostile.clone(),
            f.drills[1].clone(),
            f.drills[0].clone(),
            f.failover.clone()
        ],
        "newest first"
    );
    assert_eq!(
        listed(&["--runbook", "reporting"]),
        [f.drills[1].clone(), f.drills[0].clone()]
    );
    assert_eq!(
        listed(&["--operation", "failover"]),
        std::slice::from_ref(&f.failover)
    );
    assert_eq!(
        listed(&["--operation", "drill", "--limit", "1"]),
        std::slice::from_ref(&f.hostile)
    );
    assert_eq!(listed(&["--status", "failed"]), Vec::<String>::new());
    assert_eq!(listed(&["--since", "2999-01-01"]), Vec::<String>::new());
    assert_eq!(listed(&["--since", "2000-01-01"]).len(), 4);

    let out = offline(&f.db, &["history", "--operation", "failbak"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failover, drill, failback, rollback"),
        "{}",
        show(&out)
    );

    let trend = json_of(&offline(
        &f.db,
        &["history", "--trend", "reporting", "--output", "json"],
    ));
    let drills = trend["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 2);
    for (point, id) in drills.iter().zip(&f.drills) {
        assert_eq!(point["run_id"], id.as_str());
        assert_eq!(point["rto"]["objective_seconds"], 1200.0);
        assert_eq!(point["rpo"]["objective_seconds"], 1800.0);
        let rto = point["rto"]["measured_seconds"].as_f64().unwrap();
        assert_eq!(
            point["rto"]["verdict"],
            if rto <= 1200.0 { "pass" } else { "fail" }
        );
    }
    let out = offline(&f.db, &["history", "--trend", "reporting"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&f.drills[0]) && text.contains("20m00s") && text.contains("2 drill(s)"),
        "{text}"
    );
}

/// Chromium, or a failure that says how to install it.
fn chromium() -> &'static str {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the HTML report is checked in headless Chromium; install it with `apt-get update && apt-get install -y chromium` (bash .ci/run does)"
    );
    CHROMIUM
}

/// Runs headless Chromium on `page` with `extra` flags (no network, a private profile).
fn headless(page: &Path, extra: &[String]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "{}", show(&out));
    out
}

fn html_report(run_id: &str, dir: &Path) -> PathBuf {
    let path = dir.join(format!("{run_id}.html"));
    let out = offline(
        &fixture().db,
        &[
            "report",
            run_id,
            "--format",
            "html",
            "-o",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    path
}

#[test]
fn the_html_report_renders_its_timeline_in_chromium() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let page = html_report(&f.failover, dir.path());
    let dom = String::from_utf8(headless(&page, &["--dump-dom".to_owned()]).stdout).unwrap();
    let report = json_of(&offline(
        &f.db,
        &["report", &f.failover, "--format", "json"],
    ));
    let steps = report["steps"].as_array().unwrap();
    assert!(
        dom.contains(r#"<svg class="timeline""#),
        "the timeline is in the DOM"
    );
    assert_eq!(
        dom.matches(r#"<rect class="step step-succeeded""#).count(),
        steps.len(),
        "one bar per step"
    );
    for step in steps {
        assert!(
            dom.contains(&format!(r#"data-step="{}""#, step["key"].as_str().unwrap())),
            "{step}"
        );
    }
    for wave in ["db", "app"] {
        assert!(
            dom.contains(&format!(r#"<rect class="wave" data-wave="{wave}""#)),
            "wave {wave}"
        );
    }
    assert!(dom.contains(report["audit"]["final_hash"].as_str().unwrap()));

    let screenshot = dir.path().join("failover.png");
    headless(
        &page,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,2400".to_owned(),
        ],
    );
    let png = std::fs::read(&screenshot).expect("the screenshot is saved");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 50_000,
        "a rendered page, not a blank one: {} bytes",
        png.len()
    );
    // Kept for a person to look at (`target/` is not committed).
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("audit-report-failover.png");
    std::fs::copy(&screenshot, keep).unwrap();

    // A drill's report also charts the trend of the last drills.
    let page = html_report(&f.drills[1], dir.path());
    let dom = String::from_utf8(headless(&page, &["--dump-dom".to_owned()]).stdout).unwrap();
    assert!(
        dom.contains(r#"<svg class="trend""#),
        "the drill trend chart"
    );
    assert_eq!(
        dom.matches(r#"<rect class="trend-rto"#).count(),
        2,
        "one RTO bar per drill"
    );
    assert!(dom.contains("Cleanup inventory"));
    let screenshot = dir.path().join("drill.png");
    headless(
        &page,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,2400".to_owned(),
        ],
    );
    std::fs::copy(
        &screenshot,
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("audit-report-drill.png"),
    )
    .unwrap();
}

#[test]
fn a_hostile_description_and_comment_neither_run_nor_load_anything() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let page = html_report(&f.hostile, dir.path());
    let html = std::fs::read_to_string(&page).unwrap();
    for raw in [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<img src=x onerror=alert(2)>",
        "<script>alert(3)</script>",
    ] {
        assert!(!html.contains(raw), "{raw} is in the report unescaped");
    }
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the description is shown, escaped"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "the approval comment is shown, escaped"
    );
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "no script or image element at all"
    );
    let lower = html.to_lowercase();
    for reference in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "src=http",
        "href=http",
        "url(",
        "@import",
    ] {
        assert!(!lower.contains(reference), "external reference {reference}");
    }

    let dom = String::from_utf8(headless(&page, &["--dump-dom".to_owned()]).stdout).unwrap();
    assert!(!dom.contains("<script"), "no script element in the DOM");
    assert!(!dom.contains("<img"), "no img element in the DOM");
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the text survives as text"
    );

    // The approval and its comment are in the JSON report too.
    let r = json_of(&offline(&f.db, &["report", &f.hostile, "--format", "json"]));
    let actions = r["operator_actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(
        (
            actions[0]["step_key"].as_str(),
            actions[0]["action"].as_str()
        ),
        (Some("cleanup"), Some("approved"))
    );
    assert_eq!(actions[0]["by"], OPERATOR);
    assert_eq!(actions[0]["comment"], HOSTILE_COMMENT);

    // Markdown keeps them out of its prose as well.
    let md = String::from_utf8(offline(&f.db, &["report", &f.hostile, "--format", "md"]).stdout)
        .unwrap();
    let (prose, _) = md.split_once("## Runbook as run").unwrap();
    assert!(
        !prose.contains("<script") && !prose.contains("<img"),
        "{prose}"
    );
}
