//! One JSON shape per noun (DESIGN section 7): a run carries `run_id` at its top wherever it is
//! printed, a step is the same object everywhere, every document carries `schema_version`, and
//! an error under `--output json` is one `{"error": ...}` document with the command's exit code.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{CliRun, drs_runbook};

const RUNBOOK: &str = "runbooks/reporting-drill.toml";

fn keys(object: &Value) -> BTreeSet<String> {
    object
        .as_object()
        .unwrap_or_else(|| panic!("an object: {object}"))
        .keys()
        .cloned()
        .collect()
}

/// The one JSON document on stdout, after checking its `schema_version`.
fn document(run: &CliRun) -> Value {
    let value = run.json();
    assert_eq!(value["schema_version"], 1, "{run:#?}");
    value
}

#[test]
fn every_document_names_the_run_by_run_id_and_shows_the_same_steps() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let drill = drs_runbook(
        &db,
        None,
        &["--sim", "--output", "json", "drill", RUNBOOK, "--yes"],
    );
    assert_eq!(drill.code, 0, "{drill:#?}");
    let result = document(&drill);
    let run_id = result["run_id"].as_str().expect("run_id").to_string();

    let show = document(&drs_runbook(
        &db,
        None,
        &["--output", "json", "show", &run_id],
    ));
    let status = document(&drs_runbook(
        &db,
        None,
        &["--output", "json", "status", &run_id],
    ));
    let history = document(&drs_runbook(&db, None, &["--output", "json", "history"]));
    let report_run = drs_runbook(&db, None, &["report", &run_id, "--format", "json"]);
    assert_eq!(report_run.code, 0, "{report_run:#?}");
    let report = document(&report_run);

    // The same run, named the same way at the top of each document.
    assert_eq!(show["run_id"], run_id.as_str());
    assert_eq!(status["run_id"], run_id.as_str());
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(report["run"]["run_id"], run_id.as_str());
    let listed = history["runs"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{history}");
    assert_eq!(listed[0]["run_id"], run_id.as_str());
    for run in [&show, &status, &listed[0]] {
        assert!(run.get("id").is_none(), "no second name for the run: {run}");
        assert_eq!(run["status"], "succeeded");
        assert_eq!(run["operation"], "drill");
    }

    // The same step objects: the same keys, and the same values, in all four documents.
    let steps_of = |doc: &Value| doc["steps"].as_array().unwrap().clone();
    let reference = steps_of(&result);
    assert!(reference.len() >= 4, "{result}");
    let first_keys = keys(&reference[0]);
    for expected in [
        "key", "kind", "wave", "status", "attempts", "output", "error",
    ] {
        assert!(
            first_keys.contains(expected),
            "{expected} in {first_keys:?}"
        );
    }
    for doc in [&show, &status, &report] {
        let steps = steps_of(doc);
        assert_eq!(steps.len(), reference.len());
        for (step, expected) in steps.iter().zip(&reference) {
            assert_eq!(keys(step), keys(expected), "{step} vs {expected}");
            assert_eq!(step, expected);
        }
    }
}

#[test]
fn an_error_under_output_json_is_one_error_document_with_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");

    // An unknown run: invalid input, exit 2.
    let unknown = drs_runbook(
        &db,
        None,
        &[
            "--output",
            "json",
            "show",
            "00000000-0000-4000-8000-000000000000",
        ],
    );
    assert_eq!(unknown.code, 2, "{unknown:#?}");
    let error = document(&unknown);
    assert_eq!(error["error"]["exit_code"], 2);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("00000000-0000-4000-8000-000000000000"),
        "{message}"
    );
    assert!(!error["error"]["hint"].as_str().unwrap().is_empty());
    // The sentence stays on stderr for the person watching.
    assert!(unknown.stderr.contains("error: "), "{unknown:#?}");

    // A command line clap refuses (a missing argument) is an error document too.
    let usage = drs_runbook(&db, None, &["--output", "json", "failover"]);
    assert_eq!(usage.code, 2, "{usage:#?}");
    let error = document(&usage);
    assert_eq!(error["error"]["exit_code"], 2);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RUNBOOK"),
        "{error}"
    );

    // A command that printed its own document before failing prints no second one.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "name = \"broken\"\n[[wave]]\nname = 3\n").unwrap();
    let validate = drs_runbook(
        &db,
        None,
        &["--output", "json", "validate", broken.to_str().unwrap()],
    );
    assert_eq!(validate.code, 2, "{validate:#?}");
    let report = document(&validate);
    assert_eq!(report["runbooks"][0]["valid"], false, "{report}");
}
