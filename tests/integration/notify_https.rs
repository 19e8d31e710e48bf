//! `--notify https://...`: the report reaches a local TLS server whose certificate is trusted
//! through `SSL_CERT_FILE`, an untrusted certificate is a warning that says why, and a webhook
//! that never answers delays the exit by no more than the timeout.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{ChildGuard, certificates, drs_runbook_async};

const HTTPS_SERVER: &str = r#"
import http.server, os, ssl, sys
received, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = os.path.join(received, "%d.json" % len(os.listdir(received)))
        with open(path + ".tmp", "wb") as f:
            f.write(body)
        os.rename(path + ".tmp", path)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A Python https server with `<name>.pem`; returns it and its URL. Bodies land in `received/`.
async fn https_webhook(dir: &Path, name: &str) -> (ChildGuard, String) {
    use tokio::io::AsyncBufReadExt;
    std::fs::create_dir_all(dir.join("received")).unwrap();
    let mut child = tokio::process::Command::new("python3")
        .current_dir(dir)
        .args(["-c", HTTPS_SERVER, "received"])
        .arg(format!("{name}.pem"))
        .arg(format!("{name}.key"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().unwrap();
    let mut port = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::BufReader::new(stdout).read_line(&mut port),
    )
    .await
    .expect("the https server starts")
    .unwrap();
    let url = format!("https://127.0.0.1:{}/hook", port.trim());
    (ChildGuard(child), url)
}

fn received(dir: &Path) -> Vec<serde_json::Value> {
    let mut bodies: Vec<_> = std::fs::read_dir(dir.join("received"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    bodies.sort();
    bodies
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// The exit code the run's own report implies: a notification never changes it. (A drill that
/// succeeded can still exit 1 by missing its RTO on a heavily loaded machine.)
fn exit_code_of_the_run(run: &crate::support::CliRun) -> i32 {
    let report = run.json();
    assert_eq!(report["status"], "succeeded", "{run:#?}");
    let met = report["objectives"]["rto_met"] != false && report["objectives"]["rpo_met"] != false;
    if met { 0 } else { 1 }
}

/// A drill of the reporting runbook in the embedded simulator, notifying `url`.
async fn drill_notifying(dir: &Path, url: &str, env: &[(&str, &str)]) -> crate::support::CliRun {
    drs_runbook_async(
        &dir.join("runs.db"),
        None,
        &[
            "--sim",
            "--output",
            "json",
            "drill",
            "runbooks/reporting-drill.toml",
            "--yes",
            "--notify",
            url,
        ],
        env,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_notification_reaches_a_server_trusted_through_ssl_cert_file() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), "hook");
    let (_server, url) = https_webhook(dir.path(), "hook").await;
    let ca = dir.path().join("hook-ca.pem");
    let run = drill_notifying(dir.path(), &url, &[("SSL_CERT_FILE", ca.to_str().unwrap())]).await;
    assert_eq!(run.code, exit_code_of_the_run(&run), "{run:#?}");
    assert!(
        !run.stderr.contains("warning: the notification"),
        "{}",
        run.stderr
    );
    let bodies = received(dir.path());
    assert_eq!(bodies.len(), 1, "one notification, at the end of the run");
    assert_eq!(
        bodies[0],
        run.json(),
        "the body is the report the run printed"
    );
    assert_eq!(bodies[0]["status"], "succeeded");
    assert_eq!(bodies[0]["operation"], "drill");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_an_untrusted_ca_is_a_warning_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), "hook");
    certificates(dir.path(), "other");
    let (_server, url) = https_webhook(dir.path(), "hook").await;
    // The trust store holds another CA only: the server's certificate must be refused.
    let other_ca = dir.path().join("other-ca.pem");
    let run = drill_notifying(
        dir.path(),
        &url,
        &[("SSL_CERT_FILE", other_ca.to_str().unwrap())],
    )
    .await;
    assert_eq!(
        run.code,
        exit_code_of_the_run(&run),
        "a failed notification never fails the run: {run:#?}"
    );
    let warning = format!("warning: the notification to {url} failed");
    assert!(run.stderr.contains(&warning), "{}", run.stderr);
    assert!(
        run.stderr.contains("certificate"),
        "the warning names the certificate problem: {}",
        run.stderr
    );
    assert!(received(dir.path()).is_empty(), "nothing was delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_that_never_answers_delays_the_exit_by_no_more_than_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    // Accepts the connection, reads nothing, answers nothing, and remembers when it accepted.
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let seen = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            seen.lock().unwrap().get_or_insert_with(Instant::now);
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let run = drill_notifying(dir.path(), &url, &[("DRS_RUNBOOK_NOTIFY_TIMEOUT", "2s")]).await;
    let exited = Instant::now();
    assert_eq!(run.code, exit_code_of_the_run(&run), "{run:#?}");
    let accepted = accepted
        .lock()
        .unwrap()
        .expect("the run connected to the webhook");
    let delay = exited - accepted;
    assert!(
        delay >= Duration::from_millis(1_900),
        "the run waited for the answer: {delay:?}"
    );
    assert!(
        delay < Duration::from_secs(5),
        "a hanging webhook delays the exit by the 2 s timeout, not {delay:?}"
    );
    assert!(
        run.stderr.contains("no answer within 2s"),
        "the warning says it timed out: {}",
        run.stderr
    );
}
