//! Runbook actions (issue 15): a command sees its wave's recovered instances, a failing
//! critical command fails the run with its stderr (an optional one is passed over), an HTTP
//! check passes once its server answers as expected, a manual action pauses the run until
//! `approve`, and a command killed mid-run is never re-run silently: in doubt, it pauses the run
//! unless it is idempotent. A rollback runs only the actions that name `rollback`, after its
//! undos; a command past its timeout is killed with its whole process group.
//!
//! The runbook is the reporting drill (one wave, two servers) with an action added, written
//! into a temporary directory: actions run in the runbook's directory, where they leave files
//! the tests read.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{
    ChildGuard, CliRun, TestSim, certificates, cli_child, drs_runbook_async, mutations, step,
    step_fields, step_output, time_of,
};

const REPORTING: &str = include_str!("../../runbooks/reporting-drill.toml");
const TARGET: (&str, &str) = ("444444444444", "eu-central-1");
const STEP: &str = "action:reporting:check";

/// A simulator seeded with the reporting runbook, and a directory holding that runbook with
/// one action (`check`) added to its wave.
struct World {
    sim: TestSim,
    dir: tempfile::TempDir,
    runbook: PathBuf,
}

impl World {
    async fn new(action: &str) -> World {
        let sim = TestSim::start(600.0).await;
        sim.seed(REPORTING).await;
        let dir = tempfile::tempdir().unwrap();
        let runbook = dir.path().join("reporting.toml");
        // The drill's 20-minute RTO objective is widened: these tests are about the actions,
        // and a loaded machine (or a test's own waits, minutes at speed 600) can miss it.
        let text = REPORTING.replacen("rto = \"20m\"", "rto = \"12h\"", 1);
        assert_ne!(text, REPORTING);
        let text = format!("{text}\n[[wave.action]]\nname = \"check\"\n{action}\n");
        std::fs::write(&runbook, text).unwrap();
        World { sim, dir, runbook }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("runs.db")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn cli(&self, args: &[&str]) -> CliRun {
        self.sim.cli(&self.db(), args).await
    }

    /// `drill <runbook>` with `extra` arguments, as JSON.
    async fn drill(&self, extra: &[&str]) -> CliRun {
        self.drill_with(extra, &[]).await
    }

    async fn drill_with(&self, extra: &[&str], env: &[(&str, &str)]) -> CliRun {
        let mut args = vec!["--output", "json", "drill", self.runbook.to_str().unwrap()];
        args.extend(extra);
        drs_runbook_async(&self.db(), Some(&self.sim.endpoint), &args, env).await
    }

    async fn show(&self, run_id: &str) -> Value {
        let shown = self.cli(&["--output", "json", "show", run_id]).await;
        assert_eq!(shown.code, 0, "{shown:#?}");
        shown.json()
    }
}

fn status_of(report: &Value, key: &str) -> String {
    step(report, key)["status"].as_str().unwrap().to_string()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_action_sees_its_waves_recovered_instances_and_ips() {
    let world = World::new(
        r#"when = "after_boot"
run = { command = ["sh", "-c", "printf '%s\n' \"$DRS_RUNBOOK_INSTANCE_IDS\" \"$DRS_RUNBOOK_PRIVATE_IPS\" \"$DRS_RUNBOOK_WAVE\" \"$DRS_RUNBOOK_OPERATION\" \"$DRS_RUNBOOK_DRILL\" \"$DRS_RUNBOOK_RUN_ID\" \"$PWD\" > env.txt; echo wrote env.txt"] }"#,
    )
    .await;
    let planned = world
        .cli(&[
            "--output",
            "json",
            "plan",
            world.runbook.to_str().unwrap(),
            "--operation",
            "drill",
        ])
        .await;
    assert_eq!(planned.code, 0, "{planned:#?}");
    assert!(
        planned.stdout.contains(STEP),
        "plan shows the action: {}",
        planned.stdout
    );

    let run = world.drill(&["--yes", "--keep"]).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let report = run.json();
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(status_of(&report, STEP), "succeeded");

    // What DRS and EC2 say the drill launched.
    let drs = world.sim.drs(TARGET.0, TARGET.1);
    let recovered = drs.describe_recovery_instances().send().await.unwrap();
    let mut instances: Vec<String> = recovered
        .items()
        .iter()
        .filter_map(|i| i.ec2_instance_id().map(str::to_string))
        .collect();
    instances.sort();
    assert_eq!(instances.len(), 2, "{recovered:?}");
    let ec2 = world.sim.ec2(TARGET.0, TARGET.1);
    let described = ec2
        .describe_instances()
        .set_instance_ids(Some(instances.clone()))
        .send()
        .await
        .unwrap();
    let mut ips: Vec<String> = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.private_ip_address().map(str::to_string))
        .collect();
    ips.sort();
    assert_eq!(ips.len(), 2);

    let env = lines(&world.file("env.txt"));
    assert_eq!(env.len(), 7, "{env:?}");
    let mut seen_instances: Vec<String> = env[0].split(' ').map(str::to_string).collect();
    seen_instances.sort();
    let mut seen_ips: Vec<String> = env[1].split(' ').map(str::to_string).collect();
    seen_ips.sort();
    assert_eq!(seen_instances, instances);
    assert_eq!(seen_ips, ips);
    assert_eq!(&env[2..6], ["reporting", "drill", "true", run_id]);
    let dir = std::fs::canonicalize(world.dir.path()).unwrap();
    assert_eq!(
        env[6],
        dir.display().to_string(),
        "it runs in the runbook's directory"
    );

    // Its output is the step's, in `show` and in the reports.
    let output = step_output(&world.show(run_id).await, STEP);
    assert_eq!(output["kind"], "command");
    assert_eq!(output["exit_status"], 0);
    assert_eq!(output["stdout"], "wrote env.txt\n");
    let markdown = world.cli(&["report", run_id, "--format", "md"]).await;
    assert_eq!(markdown.code, 0, "{markdown:#?}");
    assert!(
        markdown.stdout.contains("## Actions"),
        "{}",
        markdown.stdout
    );
    assert!(markdown.stdout.contains("wrote env.txt"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_critical_command_fails_the_run_with_its_stderr_and_an_optional_one_is_passed_over()
 {
    let failing = r#"when = "after_boot"
run = { command = ["sh", "-c", "echo '<b>replica lag too high</b>' >&2; exit 7"] }"#;
    let world = World::new(failing).await;
    let run = world.drill(&["--yes"]).await;
    assert_eq!(run.code, 1, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "failed");
    assert_eq!(status_of(&report, STEP), "failed");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("exited with status 7") && error.contains("replica lag too high"),
        "{error}"
    );
    assert_eq!(
        status_of(&report, "cleanup"),
        "pending",
        "nothing after a failed critical action"
    );

    let world = World::new(&format!("{failing}\noptional = true")).await;
    let run = world.drill(&["--yes"]).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let report = run.json();
    assert_eq!(status_of(&report, STEP), "succeeded");
    assert_eq!(status_of(&report, "cleanup"), "succeeded");
    let run_id = report["run_id"].as_str().unwrap();
    let output = step_output(&world.show(run_id).await, STEP);
    assert_eq!(output["passed_over"], true);
    assert_eq!(output["exit_status"], 7);
    // The HTML report shows the captured stderr escaped.
    let html = world.cli(&["report", run_id, "--format", "html"]).await;
    assert_eq!(html.code, 0, "{html:#?}");
    assert!(
        html.stdout
            .contains("&lt;b&gt;replica lag too high&lt;/b&gt;"),
        "the stderr, escaped"
    );
    assert!(!html.stdout.contains("<b>replica lag"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_check_passes_on_the_third_answer_after_two_503s() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                match counter.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting"),
                    _ => (axum::http::StatusCode::OK, "app ok"),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let world = World::new(&format!(
        // After the traffic: the check's real seconds are minutes of the simulator's clock at
        // speed 600, which would count against the drill's RTO objective before it.
        "when = \"after_traffic\"\nrun = {{ http = \"http://{address}/health\", expect_status = 200, expect_body = \"ok\", timeout = \"1m\" }}"
    ))
    .await;
    let run = world.drill(&["--yes"]).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let output = step_output(&world.show(&run_id).await, STEP);
    assert_eq!(output["http_status"], 200);
    assert_eq!(output["attempt_count"], 3);
    let statuses: Vec<Value> = output["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(503), json!(503), json!(200)]);
    assert_eq!(output["stdout"], "app ok");
}

const HTTPS_HEALTH: &str = r#"
import http.server, ssl, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"secure ok")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Health)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_https_check_trusts_the_platform_roots_and_refuses_an_unknown_certificate() {
    use tokio::io::AsyncBufReadExt;
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path(), "health");
    let mut server = tokio::process::Command::new("python3")
        .current_dir(certs.path())
        .args(["-c", HTTPS_HEALTH, "health.pem", "health.key"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut port = String::new();
    tokio::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .await
        .unwrap();
    let _server = ChildGuard(server);
    let world = World::new(&format!(
        "when = \"after_traffic\"\nrun = {{ http = \"https://127.0.0.1:{}/health\", timeout = \"3s\" }}\noptional = true",
        port.trim()
    ))
    .await;
    let ca = certs.path().join("health-ca.pem");
    let run = world
        .drill_with(&["--yes"], &[("SSL_CERT_FILE", ca.to_str().unwrap())])
        .await;
    assert_eq!(run.code, 0, "{run:#?}");
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    let output = step_output(&world.show(&run_id).await, STEP);
    assert_eq!(output["http_status"], 200, "{output}");
    assert_eq!(output["stdout"], "secure ok");
    assert_eq!(output["passed_over"], Value::Null);

    // Without the CA in the trust store the certificate is refused, and the attempt says so.
    let untrusted = world.drill(&["--yes"]).await;
    assert_eq!(untrusted.code, 0, "optional: {untrusted:#?}");
    let run_id = untrusted.json()["run_id"].as_str().unwrap().to_string();
    let output = step_output(&world.show(&run_id).await, STEP);
    assert_eq!(output["passed_over"], true, "{output}");
    let error = output["attempts"][0]["error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_action_pauses_with_its_instructions_until_approved() {
    let world = World::new(
        r#"when = "before_traffic"
run = { manual = "Promote the read replica (wiki DR-42), then approve." }"#,
    )
    .await;
    let run = world.drill(&[]).await;
    assert_eq!(run.code, 3, "{run:#?}");
    let report = run.json();
    assert_eq!(report["status"], "paused");
    assert_eq!(report["waiting_for"], STEP);
    assert_eq!(report["approvals"][0]["step"], STEP);
    assert_eq!(
        report["approvals"][0]["changes"][0]["resource"],
        "Promote the read replica (wiki DR-42), then approve."
    );
    assert!(
        run.stderr.contains("Promote the read replica"),
        "{}",
        run.stderr
    );
    assert_eq!(status_of(&report, "validate:reporting"), "pending");

    // A plain `approve <run>` approves the gate the run waits at and continues it.
    let run_id = report["run_id"].as_str().unwrap();
    let approved = world
        .cli(&[
            "--output",
            "json",
            "approve",
            run_id,
            "--comment",
            "replica promoted",
        ])
        .await;
    assert_eq!(approved.code, 0, "{approved:#?}");
    let report = approved.json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(status_of(&report, STEP), "succeeded");
    let step = step(&report, STEP);
    assert_eq!(step["approved_by"], "test-operator");
}

/// Starts a drill whose action records each run in `runs.log` and then hangs while `hang`
/// exists; kills the CLI (SIGKILL) once the action has started. Returns the run ID.
async fn kill_during_the_action(world: &World) -> String {
    std::fs::write(world.file("hang"), "").unwrap();
    let mut child = cli_child(
        &world.db(),
        &world.sim.endpoint,
        &["drill", world.runbook.to_str().unwrap(), "--yes"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while lines(&world.file("runs.log")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the action never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    child.kill().unwrap(); // SIGKILL: no safe point, the intent stays open
    let output = child.wait_with_output().unwrap();
    std::fs::remove_file(world.file("hang")).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .map(|id| id.trim().to_string())
        .unwrap_or_else(|| panic!("no run line: {stderr}"))
}

const HANGING: &str = r#"when = "before_recovery"
run = { command = ["sh", "-c", "echo ran >> runs.log; while [ -e hang ]; do sleep 0.2; done"] }"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_command_killed_mid_run_pauses_the_resumed_run_and_runs_again_only_on_retry() {
    let world = World::new(HANGING).await;
    let run_id = kill_during_the_action(&world).await;

    let resumed = world.cli(&["--output", "json", "resume", &run_id]).await;
    assert_eq!(resumed.code, 3, "paused for an operator: {resumed:#?}");
    let report = resumed.json();
    assert_eq!(report["status"], "paused");
    assert_eq!(report["waiting_for"], STEP);
    assert_eq!(status_of(&report, STEP), "failed");
    assert!(
        report["approvals"][0]["changes"][0]["resource"]
            .as_str()
            .unwrap()
            .contains("in doubt"),
        "{report}"
    );
    assert_eq!(lines(&world.file("runs.log")).len(), 1, "not run again");
    assert_eq!(
        status_of(&report, "recovery_job:reporting"),
        "pending",
        "nothing went past it"
    );
    // Resuming again decides nothing by itself.
    let again = world.cli(&["--output", "json", "resume", &run_id]).await;
    assert_eq!(again.code, 3, "{again:#?}");
    assert_eq!(lines(&world.file("runs.log")).len(), 1);

    // The operator's retry runs it once more, and the run goes on.
    let retried = world
        .cli(&["--output", "json", "retry", &run_id, "--step", STEP])
        .await;
    assert_eq!(retried.code, 0, "{retried:#?}");
    assert_eq!(retried.json()["status"], "succeeded");
    assert_eq!(lines(&world.file("runs.log")).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_command_killed_mid_run_runs_again_once_on_resume() {
    let world = World::new(&format!("{HANGING}\nidempotent = true")).await;
    let run_id = kill_during_the_action(&world).await;

    let resumed = world.cli(&["--output", "json", "resume", &run_id]).await;
    assert_eq!(resumed.code, 0, "{resumed:#?}");
    assert_eq!(resumed.json()["status"], "succeeded");
    assert_eq!(lines(&world.file("runs.log")).len(), 2, "run again once");
    let output = step_output(&world.show(&run_id).await, STEP);
    assert_eq!(output["exit_status"], 0);
}

/// Prints how many TerminateRecoveryInstances calls the simulator (its endpoint in the file
/// `sim`) has seen: run by an action, it tells what the rollback had undone by then.
const TERMINATED_SO_FAR: &str = r#"
import json, urllib.request
endpoint = open("sim").read().strip()
stats = json.load(urllib.request.urlopen(endpoint + "/_sim/stats"))
print(sum(m["operation"] == "TerminateRecoveryInstances" for m in stats["mutations"]))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_runs_only_the_actions_naming_it_once_after_every_undo() {
    // `check` names rollback (and drill); `forward` has the default operations.
    let world = World::new(
        r#"when = "after_boot"
operations = ["drill", "rollback"]
run = { command = ["sh", "-c", 'echo "check $DRS_RUNBOOK_OPERATION drill=$DRS_RUNBOOK_DRILL $DRS_RUNBOOK_RUN_ID $DRS_RUNBOOK_WAVE [$DRS_RUNBOOK_INSTANCE_IDS] $(python3 terminated.py)" >> actions.log; echo check ran'] }

[[wave.action]]
name = "forward"
when = "after_boot"
run = { command = ["sh", "-c", 'echo "forward $DRS_RUNBOOK_OPERATION" >> actions.log'] }"#,
    )
    .await;
    std::fs::write(world.file("sim"), &world.sim.endpoint).unwrap();
    std::fs::write(world.file("terminated.py"), TERMINATED_SO_FAR).unwrap();

    // The drill runs both (and keeps its instances for the rollback to terminate).
    let drill = world.drill(&["--yes", "--keep"]).await;
    assert_eq!(drill.code, 0, "{drill:#?}");
    let drill_id = drill.json()["run_id"].as_str().unwrap().to_string();
    let log = lines(&world.file("actions.log"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log.contains(&"forward drill".to_string()), "{log:?}");
    let drill_line = log.iter().find(|l| l.starts_with("check ")).unwrap();
    assert!(
        drill_line.starts_with(&format!("check drill drill=true {drill_id} reporting [i-")),
        "{drill_line}"
    );
    assert!(
        drill_line.ends_with("] 0"),
        "nothing terminated yet: {drill_line}"
    );

    let rollback = world.sim.run(&world.db(), "rollback", &drill_id).await;
    assert_eq!(rollback.code, 0, "{rollback:#?}");
    let report = rollback.json();
    let rollback_id = report["run_id"].as_str().unwrap().to_string();
    assert_eq!(report["status"], "succeeded");
    let keys = step_fields(&report, "key");
    assert_eq!(keys.last(), Some(&STEP), "the action comes last: {keys:?}");
    assert!(!keys.contains(&"action:reporting:forward"), "{keys:?}");
    let undos: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| k.starts_with("undo:"))
        .collect();
    assert_eq!(
        undos.len(),
        keys.len() - 1,
        "undos, then the action: {keys:?}"
    );

    // It ran once, in the rollback's environment, once DRS had every termination: the count
    // it read is the final one.
    let stats = world.sim.get("/_sim/stats").await;
    let terminations = mutations(&stats, "TerminateRecoveryInstances").len();
    assert!(
        terminations > 0,
        "the rollback terminated the drill's instances"
    );
    let log = lines(&world.file("actions.log"));
    assert_eq!(log.len(), 3, "only `check` ran again: {log:?}");
    // The rollback of a drill is told it undoes a drill, as the drill's own actions were.
    assert_eq!(
        log[2],
        format!("check rollback drill=true {rollback_id} reporting [] {terminations}")
    );
    // The engine's own timings agree: every undo had finished when the action started.
    let shown = world.show(&rollback_id).await;
    let started = time_of(&step(&shown, STEP)["started_at"]);
    for undo in &undos {
        let finished = time_of(&step(&shown, undo)["finished_at"]);
        assert!(
            finished <= started,
            "{undo} finished after the action started"
        );
    }
    let output = step_output(&shown, STEP);
    assert_eq!(output["kind"], "command");
    assert_eq!(output["exit_status"], 0);
    assert_eq!(output["stdout"], "check ran\n");
    let markdown = world.cli(&["report", &rollback_id, "--format", "md"]).await;
    assert_eq!(markdown.code, 0, "{markdown:#?}");
    assert!(markdown.stdout.contains(STEP), "{}", markdown.stdout);
    assert!(markdown.stdout.contains("check ran"), "{}", markdown.stdout);

    // A finished rollback is not driven again: resuming it runs nothing.
    let resumed = world.sim.run(&world.db(), "resume", &rollback_id).await;
    assert_eq!(resumed.code, 2, "{resumed:#?}");
    assert_eq!(lines(&world.file("actions.log")).len(), 3);
}

/// Whether process `pid` still runs (a zombie waiting for its reaper does not).
fn runs(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) state ...`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (up to 10 s) until `pid` no longer runs; whether it stopped.
async fn stops(pid: &str) -> bool {
    for _ in 0..100 {
        if !runs(pid) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// A command that, while the file `slow` exists, leaves a grandchild `sleep 30` (its pid in
/// `pidfile`) and waits for it, far past its 2-second timeout.
const SLOW: &str = r#"when = "after_boot"
run = { command = ["sh", "-c", 'echo ran >> runs.log; if [ -e slow ]; then sleep 30 & echo $! > pidfile; wait; fi; echo done'], timeout = "2s" }"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_command_past_its_timeout_is_killed_with_its_process_group() {
    let world = World::new(SLOW).await;
    std::fs::write(world.file("slow"), "").unwrap();
    let started = std::time::Instant::now();
    let run = world.drill(&["--yes"]).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the 30-second sleep was not waited for"
    );
    assert_eq!(run.code, 1, "{run:#?}");
    let report = run.json();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    assert_eq!(report["status"], "failed");
    assert_eq!(status_of(&report, STEP), "failed");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("timed out after 2s") && error.contains("process group was killed"),
        "{error}"
    );
    assert_eq!(status_of(&report, "cleanup"), "pending");
    let grandchild = std::fs::read_to_string(world.file("pidfile")).unwrap();
    assert!(
        stops(grandchild.trim()).await,
        "the grandchild {grandchild} still runs"
    );
    let output = step_output(&world.show(&run_id).await, STEP);
    assert_eq!(output["timed_out"], true, "{output}");
    assert_eq!(output["exit_status"], Value::Null, "killed: no exit status");

    // `retry` runs it again: a new process group, killed at the timeout again.
    let retried = world
        .cli(&["--output", "json", "retry", &run_id, "--step", STEP])
        .await;
    assert_eq!(retried.code, 1, "{retried:#?}");
    let error = retried.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("timed out after 2s"), "{error}");
    assert_eq!(lines(&world.file("runs.log")).len(), 2);
    let output = step_output(&world.show(&run_id).await, STEP);
    assert_eq!(output["durable_call"], "command-retry-2", "{output}");
    let second = std::fs::read_to_string(world.file("pidfile")).unwrap();
    assert_ne!(second, grandchild);
    assert!(
        stops(second.trim()).await,
        "the grandchild {second} still runs"
    );

    // `skip --reason` passes over it, and the drill goes on to its cleanup.
    let skipped = world
        .cli(&[
            "--output",
            "json",
            "skip",
            &run_id,
            "--step",
            STEP,
            "--reason",
            "app checked by hand",
        ])
        .await;
    assert_eq!(skipped.code, 0, "{skipped:#?}");
    let report = skipped.json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(status_of(&report, STEP), "skipped");
    assert_eq!(status_of(&report, "cleanup"), "succeeded");
    assert_eq!(lines(&world.file("runs.log")).len(), 2, "skip runs nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_optional_command_past_its_timeout_is_passed_over_and_the_wave_goes_on() {
    let world = World::new(&format!("{SLOW}\noptional = true")).await;
    std::fs::write(world.file("slow"), "").unwrap();
    let run = world.drill(&["--yes"]).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let report = run.json();
    assert_eq!(status_of(&report, STEP), "succeeded");
    assert_eq!(status_of(&report, "validate:reporting"), "succeeded");
    assert_eq!(status_of(&report, "cleanup"), "succeeded");
    let grandchild = std::fs::read_to_string(world.file("pidfile")).unwrap();
    assert!(
        stops(grandchild.trim()).await,
        "the grandchild {grandchild} still runs"
    );
    let run_id = report["run_id"].as_str().unwrap();
    let output = step_output(&world.show(run_id).await, STEP);
    assert_eq!(output["passed_over"], true, "{output}");
    assert_eq!(output["timed_out"], true);
    assert!(
        output["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 2s"),
        "{output}"
    );
}
