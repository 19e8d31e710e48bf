//! Issue 18, items 3 to 7, through the built binary and the embedded simulator (`--sim`):
//! tampering with what a report shows is detected and refused, SIGTERM leaves a resumable
//! `interrupted` run, a closed stdout ends output quietly, hostile strings print escaped, input
//! is bounded, and the smaller checks (TTL, partition, objectives, file modes, `-vv`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::support::{BINARY, binary, repo_path};

const RUNBOOK: &str = "runbooks/reporting-drill.toml";
const HOSTILE_OPERATOR: &str = "evil\u{1b}]0;pwned\u{7}\u{1b}[2Jname";

fn cli(db: &Path, args: &[&str]) -> Command {
    let mut command = binary();
    command
        .current_dir(repo_path(""))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("DRS_RUNBOOK_OPERATOR", "hardening-test")
        .env("DRS_RUNBOOK_SIM_SPEED", "3000")
        .env_remove("DRS_RUNBOOK_DB")
        .env_remove("DRS_RUNBOOK_LOG")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("drs-runbook runs")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A database in a fresh directory with one succeeded drill of `reporting`, by `operator`.
fn drilled(operator: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let output = run(cli(
        &db,
        &["--sim", "--output", "json", "drill", RUNBOOK, "--yes"],
    )
    .env("DRS_RUNBOOK_OPERATOR", operator));
    // Exit 1 too: on a loaded machine, at this speed, a drill can miss its RTO objective.
    let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    assert_eq!(value["status"], "succeeded", "{}", text(&output));
    let run_id = value["run_id"].as_str().unwrap().to_owned();
    (dir, db, run_id)
}

/// A copy of `db` (checkpointed first, so the copy holds everything) edited with `statement`.
async fn tampered(db: &Path, dir: &Path, name: &str, statement: &str) -> PathBuf {
    let copy = dir.join(format!("{name}.db"));
    {
        let options = SqliteConnectOptions::new().filename(db);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    std::fs::copy(db, &copy).unwrap();
    let options = SqliteConnectOptions::new().filename(&copy);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query(statement).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    copy
}

#[tokio::test]
async fn every_edit_of_what_the_report_shows_is_detected_and_acting_on_it_is_refused() {
    let (dir, db, run_id) = drilled("hardening-test");
    let intact = run(&mut cli(&db, &["audit", "verify", &run_id]));
    assert_eq!(intact.status.code(), Some(0), "{}", text(&intact));

    let edits = [
        ("rto", "UPDATE runs SET rto_seconds = 60", "table runs"),
        (
            "operator",
            "UPDATE runs SET operator = 'mallory'",
            "table runs",
        ),
        ("host", "UPDATE runs SET host = 'elsewhere'", "table runs"),
        ("mode", "UPDATE runs SET mode = 'unplanned'", "table runs"),
        (
            "step",
            "UPDATE steps SET status = 'skipped' WHERE key = 'preflight'",
            "table steps, row preflight",
        ),
        (
            "attempts",
            "UPDATE steps SET attempts = 9 WHERE key = 'preflight'",
            "table steps, row preflight",
        ),
        (
            "output",
            "UPDATE steps SET output = '{}' WHERE key = 'preflight'",
            "table steps, row preflight",
        ),
        (
            "request_id",
            "UPDATE effects SET aws_request_id = 'forged' WHERE id = (SELECT MIN(id) FROM effects)",
            "table effects, row",
        ),
        (
            "request",
            "UPDATE effects SET request = '{}' WHERE id = (SELECT MIN(id) FROM effects)",
            "table effects, row",
        ),
        (
            "response",
            "UPDATE effects SET response = '{}' WHERE id = (SELECT MIN(id) FROM effects)",
            "table effects, row",
        ),
        (
            "runbook",
            "UPDATE runs SET runbook_text = replace(runbook_text, 'reporting', 'rep0rting')",
            "runbook was edited",
        ),
        ("seal", "DELETE FROM seals", "seal of the run"),
    ];
    for (name, statement, says) in edits {
        let copy = tampered(&db, dir.path(), name, statement).await;
        let verify = run(&mut cli(&copy, &["audit", "verify", &run_id]));
        assert_eq!(verify.status.code(), Some(1), "{name}: {}", text(&verify));
        assert!(
            text(&verify).contains(says),
            "{name}: audit verify names {says:?}: {}",
            text(&verify)
        );

        let report_file = dir.path().join(format!("{name}.md"));
        let report = run(&mut cli(
            &copy,
            &[
                "report",
                &run_id,
                "--format",
                "md",
                "-o",
                report_file.to_str().unwrap(),
            ],
        ));
        assert_eq!(report.status.code(), Some(1), "{name}: {}", text(&report));
        let markdown = std::fs::read_to_string(&report_file).unwrap();
        let top: String = markdown.lines().take(4).collect::<Vec<_>>().join("\n");
        assert!(
            top.contains("The audit trail does not verify"),
            "{name}: the report says so at its top: {top}"
        );

        for args in [
            vec!["resume", run_id.as_str(), "--yes"],
            vec!["rollback", run_id.as_str(), "--yes"],
            vec!["retry", run_id.as_str(), "--step", "preflight"],
            vec![
                "skip",
                run_id.as_str(),
                "--step",
                "preflight",
                "--reason",
                "x",
            ],
        ] {
            let mut full = vec!["--sim"];
            full.extend(&args);
            let refused = run(&mut cli(&copy, &full));
            assert_eq!(
                refused.status.code(),
                Some(1),
                "{name} {args:?}: {}",
                text(&refused)
            );
            assert!(
                text(&refused).contains("refused to act on run"),
                "{name} {args:?}: {}",
                text(&refused)
            );
        }
    }
}

#[tokio::test]
async fn sigterm_leaves_a_resumable_interrupted_run_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let mut child = cli(
        &db,
        &["--sim", "--output", "json", "drill", RUNBOOK, "--yes"],
    )
    .env("DRS_RUNBOOK_SIM_SPEED", "20")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // Once a step runs, the run is stored and driven: then SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut run_id = None;
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if let Some(id) = line.strip_prefix("run ") {
            run_id.get_or_insert_with(|| id.to_owned());
        }
        if line.contains("recovery_job") {
            break;
        }
    }
    let run_id = run_id.expect("the run is announced");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(143), "exit 143 on SIGTERM: {rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("SIGTERM: stopping at a safe point")),
        "{rest:?}"
    );

    let shown = run(&mut cli(&db, &["--output", "json", "show", &run_id]));
    let value: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(value["status"], "interrupted", "{}", text(&shown));
    let resumed = run(&mut cli(
        &db,
        &["--sim", "--output", "json", "resume", &run_id, "--yes"],
    ));
    let value: Value = serde_json::from_slice(&resumed.stdout).unwrap_or_default();
    assert_eq!(value["status"], "succeeded", "{}", text(&resumed));
}

#[test]
fn a_closed_stdout_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    // The reader is gone before anything is written: every write is EPIPE.
    let mut child = cli(&db, &["history"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");

    // And as a shell runs it.
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --db {} history | head -1; echo \"status ${{PIPESTATUS:-}}\"",
            BINARY,
            db.display()
        ))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("panicked"));
}

#[test]
fn an_operator_name_with_escapes_prints_escaped() {
    let (_dir, db, run_id) = drilled(HOSTILE_OPERATOR);
    for args in [vec!["history"], vec!["show", run_id.as_str()]] {
        let output = run(&mut cli(&db, &args));
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !stdout.contains('\u{1b}'),
            "{args:?}: no raw escape: {stdout:?}"
        );
        assert!(
            !stdout.contains('\u{7}'),
            "{args:?}: no raw bell: {stdout:?}"
        );
        assert!(
            stdout.contains("evil\\u{1b}]0;pwned\\u{7}\\u{1b}[2Jname"),
            "{args:?}: shown escaped: {stdout}"
        );
    }
    // JSON keeps the exact name (serde escapes it).
    let json = run(&mut cli(&db, &["--output", "json", "show", &run_id]));
    let value: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["operator"], HOSTILE_OPERATOR);
}

#[test]
fn forty_thousand_junk_lines_validate_quickly_and_report_a_bounded_list() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.toml");
    let lines: String = (0..40_000)
        .map(|i| format!("junk line {i} ][ = =\n"))
        .collect();
    std::fs::write(&junk, lines).unwrap();
    let started = Instant::now();
    let output = run(&mut cli(
        &dir.path().join("runs.db"),
        &["validate", junk.to_str().unwrap()],
    ));
    let elapsed = started.elapsed();
    println!("validate of 40,000 junk lines: {elapsed:?}");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("more problem(s) not shown"), "{stderr}");
    assert!(stderr.lines().count() < 300, "a bounded list");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn non_regular_and_oversized_runbooks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let fifo = dir.path().join("fifo.toml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "#".repeat(1024 * 1024 + 1)).unwrap();
    for (path, says) in [
        (fifo.as_path(), "a FIFO"),
        (Path::new("/dev/zero"), "a device"),
        (big.as_path(), "over the limit"),
    ] {
        let output = run(&mut cli(&db, &["validate", path.to_str().unwrap()]));
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(text(&output).contains(says), "{}", text(&output));
        assert!(text(&output).contains("1 MiB"), "{}", text(&output));
    }
}

#[test]
fn ttl_partition_and_objectives_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo_path("runbooks/payments.toml")).unwrap();
    let cases = [
        (
            "ttl",
            base.replacen("ttl = 60", "ttl = 2147483648", 1),
            "2147483647",
        ),
        (
            "partition",
            base.replacen(
                "arn:aws:elasticloadbalancing:us-west-2",
                "arn:aws-cn:elasticloadbalancing:us-west-2",
                1,
            ),
            "partition",
        ),
        (
            "rto",
            base.replacen("rto = \"30m\"", "rto = \"99999d\"", 1),
            "30 days",
        ),
    ];
    for (name, runbook, says) in cases {
        assert_ne!(runbook, base, "{name}: the fixture changed");
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, runbook).unwrap();
        let output = run(&mut cli(
            &dir.path().join("runs.db"),
            &["validate", path.to_str().unwrap()],
        ));
        assert_eq!(output.status.code(), Some(2), "{name}: {}", text(&output));
        assert!(text(&output).contains(says), "{name}: {}", text(&output));
    }
}

#[test]
fn reports_and_the_simulated_world_are_private() {
    let (dir, db, run_id) = drilled("hardening-test");
    let world = dir.path().join("sim-world.json");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&world), 0o600, "the simulated world");
    for format in ["md", "html", "json"] {
        let out = dir.path().join(format!("report.{format}"));
        std::fs::write(&out, "old").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        let output = run(&mut cli(
            &db,
            &[
                "report",
                &run_id,
                "--format",
                format,
                "-o",
                out.to_str().unwrap(),
            ],
        ));
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert_eq!(mode(&out), 0o600, "the {format} report");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn very_verbose_logs_do_not_print_the_access_key_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = cli(
        &dir.path().join("runs.db"),
        &[
            "-vv",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "doctor",
            "runbooks/payments.toml",
        ],
    )
    .env("AWS_ACCESS_KEY_ID", "AKIAHARDENINGTEST123")
    .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    .env("AWS_REGION", "us-east-1")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The first calls (and their signing) happen within a second; the retries take longer.
    std::thread::sleep(Duration::from_secs(4));
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DEBUG"), "-vv logs at debug: {stderr}");
    assert!(!stderr.contains("AKIAHARDENINGTEST123"), "{stderr}");
}

#[test]
fn the_report_names_who_skipped_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let paused = run(&mut cli(
        &db,
        &[
            "--sim",
            "--output",
            "json",
            "failover",
            "runbooks/payments.toml",
        ],
    ));
    assert_eq!(
        paused.status.code(),
        Some(3),
        "paused at the DNS approval: {}",
        text(&paused)
    );
    let value: Value = serde_json::from_slice(&paused.stdout).unwrap();
    let run_id = value["run_id"].as_str().unwrap().to_owned();
    let step = value["waiting_for"]
        .as_str()
        .unwrap_or("dns_cutover")
        .to_owned();
    let skipped = run(cli(
        &db,
        &[
            "--sim",
            "skip",
            &run_id,
            "--step",
            &step,
            "--reason",
            "DNS moved by hand",
            "--yes",
        ],
    )
    .env("DRS_RUNBOOK_OPERATOR", "skipper-op"));
    assert!(skipped.status.code().is_some(), "{}", text(&skipped));
    let report = run(&mut cli(
        &db,
        &["--output", "json", "report", &run_id, "--format", "json"],
    ));
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));
    let value: Value = serde_json::from_slice(&report.stdout).unwrap();
    let action = value["operator_actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "skipped")
        .cloned()
        .unwrap_or_else(|| panic!("a skip in {value:#}"));
    assert_eq!(action["by"], "skipper-op", "{action}");
    assert_eq!(action["comment"], "DNS moved by hand");
}

#[test]
fn a_run_that_was_never_stored_gets_no_resume_hint() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    // Create the database, then make every run insert fail, as a read-only or full database does
    // (the tests run as root, for whom file modes do not make a file read-only).
    let created = run(&mut cli(&db, &["history"]));
    assert_eq!(created.status.code(), Some(0), "{}", text(&created));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let options = SqliteConnectOptions::new().filename(&db);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER no_runs BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'attempt to write a readonly database'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    });
    let output = run(&mut cli(&db, &["--sim", "drill", RUNBOOK, "--yes"]));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("resumable"), "{stderr}");
    assert!(stderr.contains("was not stored"), "{stderr}");
}
