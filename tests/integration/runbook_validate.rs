//! `drs-runbook validate` as a user runs it: the built binary on the malformed runbooks of
//! `tests/fixtures/runbooks/` and on the examples of `runbooks/`.
//!
//! Every malformed fixture marks each offending line with `# expect: <key>[, <key>]`; the test
//! requires exactly those problems (file, line and key), so a missing report and a spurious one
//! both fail. The database must never appear: validate touches nothing.

use crate::support::binary;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/runbooks")
}

/// Runs `drs-runbook <args>` with every database location pointed into `state`.
fn drs_runbook(state: &Path, args: &[&str]) -> Output {
    binary()
        .arg("--db")
        .arg(state.join("db/runs.db"))
        .args(args)
        .env("DRS_RUNBOOK_DB", state.join("env/runs.db"))
        .env("XDG_STATE_HOME", state.join("xdg"))
        .env("HOME", state.join("home"))
        .env_remove("AWS_PROFILE")
        .output()
        .expect("drs-runbook runs")
}

/// Every file or directory under `dir`: validate must leave the state directory empty.
fn everything_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("state dir is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(everything_under(&path));
        }
        found.push(path);
    }
    found
}

/// The `(line, key)` pairs a fixture declares with `# expect:` markers.
fn expected_problems(text: &str) -> Vec<(usize, String)> {
    let mut expected = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some((_, keys)) = line.split_once("# expect: ") {
            for key in keys.split(", ") {
                expected.push((index + 1, key.trim().to_string()));
            }
        }
    }
    expected
}

/// The problem lines of stderr for `file`: `(line, key, whole line)`.
fn reported_problems(stderr: &str, file: &str) -> Vec<(usize, String, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(file)?.strip_prefix(':')?;
            let mut parts = rest.splitn(4, ": ");
            let position = parts.next()?;
            let key = parts.next()?.to_string();
            let (line_number, _column) = position.split_once(':')?;
            Some((line_number.parse().ok()?, key, line.to_string()))
        })
        .collect()
}

#[test]
fn every_malformed_fixture_is_rejected_with_its_file_line_and_key() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures exist")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("valid")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 12,
        "a dozen malformed fixtures at least, found {}",
        files.len()
    );
    for path in files {
        let state = tempfile::tempdir().unwrap();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = expected_problems(&text);
        assert!(
            !expected.is_empty(),
            "{file} declares no `# expect:` marker"
        );

        let output = drs_runbook(state.path(), &["validate", &file]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}:\n{stderr}");
        assert!(
            output.stdout.is_empty(),
            "{file}: nothing on stdout for an invalid file"
        );

        let reported = reported_problems(&stderr, &file);
        let mut reported_pairs: Vec<(usize, String)> =
            reported.iter().map(|(l, k, _)| (*l, k.clone())).collect();
        reported_pairs.sort();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(
            reported_pairs, expected_sorted,
            "{file}: problems differ from the markers:\n{stderr}"
        );
        assert!(
            stderr.contains("hint:"),
            "{file}: a hint says what to do next:\n{stderr}"
        );
        assert!(
            everything_under(state.path()).is_empty(),
            "{file}: validate created {:?}",
            everything_under(state.path())
        );
    }
}

#[test]
fn several_problems_in_one_file_are_all_reported_in_one_run() {
    let state = tempfile::tempdir().unwrap();
    let path = fixtures().join("several-problems.toml");
    let file = path.display().to_string();
    let output = drs_runbook(state.path(), &["validate", &file]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let reported = reported_problems(&stderr, &file);
    assert_eq!(reported.len(), 10, "{stderr}");
    let keys: Vec<&str> = reported.iter().map(|(_, k, _)| k.as_str()).collect();
    for key in [
        "objectives.rpo",
        "source.account_id",
        "target.region",
        "wave[0].colour",
        "wave[1].after[0]",
        "wave[1].optional[0]",
        "load_balancer[0].port",
        "dns[0].account",
        "dns[0].type",
        "approvals.before[0]",
    ] {
        assert!(keys.contains(&key), "{key} not reported:\n{stderr}");
    }
    // In file order, and each says what a valid value looks like.
    let lines: Vec<usize> = reported.iter().map(|(l, _, _)| *l).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    let account = reported
        .iter()
        .find(|(_, k, _)| k == "source.account_id")
        .unwrap();
    assert!(
        account
            .2
            .ends_with("(expected 12 digits, e.g. \"111111111111\")"),
        "{}",
        account.2
    );
    assert!(everything_under(state.path()).is_empty());
}

#[test]
fn a_bad_server_id_reads_as_documented() {
    let state = tempfile::tempdir().unwrap();
    let path = fixtures().join("server-id.toml");
    let file = path.display().to_string();
    let output = drs_runbook(state.path(), &["validate", &file]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{file}:26:3: wave[1].servers[0]: \"s-123\" is not a DRS source server ID (expected s- and 17 letters or digits, e.g. s-1234567890abcdef0)"
        )),
        "{stderr}"
    );
}

#[test]
fn the_examples_and_the_valid_fixture_pass() {
    let state = tempfile::tempdir().unwrap();
    let files = [
        repo().join("runbooks/payments.toml"),
        repo().join("runbooks/reporting-drill.toml"),
        fixtures().join("valid-orders.toml"),
    ];
    let args: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let mut command = vec!["validate"];
    command.extend(args.iter().map(String::as_str));
    let output = drs_runbook(state.path(), &command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    for (file, name) in args.iter().zip(["payments", "reporting", "orders"]) {
        assert!(stdout.contains(&format!("{file}: ok ({name}:")), "{stdout}");
    }
    assert!(everything_under(state.path()).is_empty());
}

#[test]
fn json_output_reports_each_file_and_its_problems() {
    let state = tempfile::tempdir().unwrap();
    let valid = repo().join("runbooks/payments.toml").display().to_string();
    let invalid = fixtures().join("cycle.toml").display().to_string();
    let missing = state.path().join("absent.toml").display().to_string();
    let output = drs_runbook(
        state.path(),
        &["--output", "json", "validate", &valid, &invalid, &missing],
    );
    assert_eq!(output.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    let runbooks = report["runbooks"].as_array().expect("runbooks array");
    assert_eq!(runbooks.len(), 3);

    assert_eq!(runbooks[0]["file"], valid.as_str());
    assert_eq!(runbooks[0]["valid"], true);
    assert_eq!(runbooks[0]["name"], "payments");
    assert_eq!(runbooks[0]["problems"], serde_json::json!([]));

    assert_eq!(runbooks[1]["file"], invalid.as_str());
    assert_eq!(runbooks[1]["valid"], false);
    let problems = runbooks[1]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["line"], 20);
    assert_eq!(problems[0]["column"], 10);
    assert_eq!(problems[0]["key"], "wave[0].after[0]");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("app -> db -> app")
    );

    assert_eq!(runbooks[2]["valid"], false);
    assert_eq!(runbooks[2]["problems"][0]["line"], Value::Null);
    assert!(
        runbooks[2]["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("failed to read")
    );
    // The state directory holds only what the test put there: nothing.
    assert!(everything_under(state.path()).is_empty());
}
