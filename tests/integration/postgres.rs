//! The shared PostgreSQL store (issue 16), end to end through the CLI against the simulator:
//! a failover killed (SIGKILL) on one host and resumed from another once its lease expired;
//! two commanders on two hosts racing on one runbook; `db migrate-to` from a SQLite file with
//! the audit chains verified on arrival. Each test needs `DRS_RUNBOOK_TEST_PG` (see
//! [`postgres_server`]); `.ci/run` also runs the crash harness and the store's own tests on
//! PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    CliRun, TestSim, binary, drs_runbook_async, postgres_server, repo_path, scratch_postgres,
};

const THREE_WAVES: &str = include_str!("../fixtures/engine/three-waves.toml");
const SPEED: f64 = 600.0;

/// A seeded simulator, the three-wave runbook in a temp dir, and a fresh PostgreSQL database.
struct Team {
    sim: TestSim,
    dir: tempfile::TempDir,
    runbook: PathBuf,
    db: PathBuf,
}

impl Team {
    async fn new(server: &str) -> Team {
        let sim = TestSim::start(SPEED).await;
        sim.seed(THREE_WAVES).await;
        let dir = tempfile::tempdir().unwrap();
        let runbook = dir.path().join("shop.toml");
        std::fs::write(
            &runbook,
            THREE_WAVES.replace("rto = \"1h\"", "rto = \"48h\""),
        )
        .unwrap();
        let db = PathBuf::from(scratch_postgres(server).await);
        Team {
            sim,
            dir,
            runbook,
            db,
        }
    }

    /// The CLI on `db`, as a commander on `host`.
    async fn cli_on(&self, db: &Path, host: &str, args: &[&str]) -> CliRun {
        drs_runbook_async(
            db,
            Some(&self.sim.endpoint),
            args,
            &[("DRS_RUNBOOK_HOST", host)],
        )
        .await
    }

    async fn cli(&self, host: &str, args: &[&str]) -> CliRun {
        self.cli_on(&self.db, host, args).await
    }

    async fn start_recoveries(&self) -> usize {
        let stats = self.sim.get("/_sim/stats").await;
        stats["mutations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["operation"] == "StartRecovery")
            .count()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failover_killed_on_one_host_is_resumed_from_another_once_its_lease_expires() {
    let Some(server) = postgres_server() else {
        return;
    };
    let team = Team::new(&server).await;
    let runbook = team.runbook.to_str().unwrap();
    // Host A starts the failover and is killed (SIGKILL) once its first recovery has started.
    let mut child = binary()
        .current_dir(repo_path(""))
        .arg("--db")
        .arg(&team.db)
        .arg("--endpoint-url")
        .arg(&team.sim.endpoint)
        .args(["failover", runbook, "--yes"])
        .env_remove("DRS_RUNBOOK_DB")
        .env("DRS_RUNBOOK_HOST", "host-a")
        .env("DRS_RUNBOOK_OPERATOR", "alice")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while team.start_recoveries().await == 0 {
        assert!(Instant::now() < deadline, "host A started no recovery");
        assert!(child.try_wait().unwrap().is_none(), "host A ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = Instant::now();

    let history = team.cli("host-b", &["--output", "json", "history"]).await;
    assert_eq!(history.code, 0, "{history:#?}");
    let runs = history.json()["runs"].clone();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["host"], "host-a");

    // Host B cannot tell whether host A's process is gone: the lease holds until it expires.
    let early = team.cli("host-b", &["resume", &run_id, "--yes"]).await;
    assert_eq!(
        early.code, 4,
        "refused while host A's lease lives: {early:#?}"
    );
    assert!(
        early.stderr.contains("host-a"),
        "the refusal names the holder's host: {}",
        early.stderr
    );

    // After the lease's 30 s, host B takes it over (fence + 1) and finishes the run.
    let resumed = loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let run = team
            .cli("host-b", &["--output", "json", "resume", &run_id, "--yes"])
            .await;
        if run.code != 4 {
            break run;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(90),
            "the lease never expired: {run:#?}"
        );
    };
    assert_eq!(resumed.code, 0, "{resumed:#?}");
    assert!(
        killed_at.elapsed() >= Duration::from_secs(25),
        "taken over only after the lease expired"
    );
    let shown = team
        .cli("host-b", &["--output", "json", "show", &run_id])
        .await
        .json();
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(
        team.start_recoveries().await,
        3,
        "each wave's recovery started once, across both hosts"
    );
    let verified = team.cli("host-b", &["audit", "verify", &run_id]).await;
    assert_eq!(verified.code, 0, "{verified:#?}");
    assert!(verified.stdout.contains("intact"), "{}", verified.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_commanders_on_two_hosts_race_one_proceeds_the_other_exits_4_naming_the_holder() {
    let Some(server) = postgres_server() else {
        return;
    };
    let team = Team::new(&server).await;
    let runbook = team.runbook.to_str().unwrap();
    // The schema exists (two first opens racing on migrations is the migrator's lock's job).
    assert_eq!(team.cli("host-a", &["status"]).await.code, 0);
    let args = ["--output", "json", "failover", runbook, "--yes"];
    let (a, b) = tokio::join!(team.cli("host-a", &args), team.cli("host-b", &args));
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [0, 4], "exactly one proceeds: {a:#?} {b:#?}");
    let (winner, loser, winner_host) = if a.code == 0 {
        (a, b, "host-a")
    } else {
        (b, a, "host-b")
    };
    let winner_id = winner.json()["run_id"].as_str().unwrap().to_string();
    assert!(
        loser.stderr.contains(&winner_id) && loser.stderr.contains(&format!(" on {winner_host} ")),
        "the refusal names the holding run and its host: {}",
        loser.stderr
    );
    assert_eq!(team.start_recoveries().await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_to_copies_two_sqlite_stores_into_postgres_and_their_chains_verify_there() {
    let Some(server) = postgres_server() else {
        return;
    };
    let team = Team::new(&server).await;
    let file = team.dir.path().join("laptop.db");
    let runbook = team.runbook.to_str().unwrap();
    let failover = team
        .cli_on(
            &file,
            "laptop",
            &["--output", "json", "failover", runbook, "--yes"],
        )
        .await;
    assert_eq!(failover.code, 0, "{failover:#?}");
    let run_id = failover.json()["run_id"].as_str().unwrap().to_string();
    let url = team.db.to_str().unwrap();

    let migrated = team
        .cli_on(
            &file,
            "laptop",
            &["--output", "json", "db", "migrate-to", url],
        )
        .await;
    assert_eq!(migrated.code, 0, "{migrated:#?}");
    let report = migrated.json();
    assert_eq!(report["runs"], serde_json::json!([run_id]));
    assert_eq!(report["tables"]["runs"], 1);
    assert!(
        report["tables"]["events"].as_u64().unwrap() > 10,
        "{report}"
    );

    let verified = team
        .cli("host-b", &["--output", "json", "audit", "verify"])
        .await;
    assert_eq!(verified.code, 0, "{verified:#?}");
    assert_eq!(verified.json()["ok"], true);
    // Same commands, same JSON: the run reads back identically from either store.
    let show = |db: PathBuf| {
        let team = &team;
        let run_id = run_id.clone();
        async move {
            let shown: Value = team
                .cli_on(&db, "host-b", &["--output", "json", "show", &run_id])
                .await
                .json();
            shown
        }
    };
    assert_eq!(show(file.clone()).await, show(team.db.clone()).await);

    let again = team
        .cli_on(&file, "laptop", &["db", "migrate-to", url])
        .await;
    assert_ne!(
        again.code, 0,
        "a run already in the target is refused: {again:#?}"
    );
    assert!(
        again.stderr.contains(&run_id) && again.stderr.contains("nothing was copied"),
        "{}",
        again.stderr
    );

    // A second laptop's file (another world, the same effect and event IDs) joins the store.
    let other = Team::new(&server).await;
    let file_2 = other.dir.path().join("laptop-2.db");
    let failover_2 = other
        .cli_on(
            &file_2,
            "laptop-2",
            &[
                "--output",
                "json",
                "failover",
                other.runbook.to_str().unwrap(),
                "--yes",
            ],
        )
        .await;
    assert_eq!(failover_2.code, 0, "{failover_2:#?}");
    let run_id_2 = failover_2.json()["run_id"].as_str().unwrap().to_string();
    let migrated_2 = other
        .cli_on(
            &file_2,
            "laptop-2",
            &["--output", "json", "db", "migrate-to", url],
        )
        .await;
    assert_eq!(migrated_2.code, 0, "{migrated_2:#?}");
    assert_eq!(migrated_2.json()["runs"], serde_json::json!([run_id_2]));
    let verified = team
        .cli("host-b", &["--output", "json", "audit", "verify"])
        .await;
    assert_eq!(verified.code, 0, "{verified:#?}");
    assert_eq!(verified.json()["ok"], true);
    assert_eq!(verified.json()["runs"].as_array().unwrap().len(), 2);
    let history = team
        .cli("host-b", &["--output", "json", "history"])
        .await
        .json();
    let listed: Vec<&str> = history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["run_id"].as_str().unwrap())
        .collect();
    assert!(
        listed.len() == 2
            && listed.contains(&run_id.as_str())
            && listed.contains(&run_id_2.as_str()),
        "{listed:?}"
    );
    let second_file = other
        .cli_on(&file_2, "host-b", &["--output", "json", "show", &run_id_2])
        .await
        .json();
    assert_eq!(
        second_file,
        team.cli("host-b", &["--output", "json", "show", &run_id_2])
            .await
            .json()
    );
}

/// A TCP relay to the PostgreSQL server that the test cuts: every relayed connection closed
/// and the port refusing new ones, as when the database server stops or the network to it is
/// lost. The relay's task owns the listener and every link: aborting it drops them all.
struct Relay {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(server: &str) -> Relay {
        let url = url::Url::parse(server).unwrap();
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                links.spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await?;
                    tokio::io::copy_bidirectional(&mut client, &mut server).await
                });
            }
        });
        Relay { port, task }
    }

    /// `url` (a database on the relayed server) through the relay.
    fn url_of(&self, url: &Path) -> PathBuf {
        let mut url = url::Url::parse(url.to_str().unwrap()).unwrap();
        url.set_port(Some(self.port)).unwrap();
        PathBuf::from(url.to_string())
    }

    /// Cuts the database off: open connections closed, new ones refused.
    async fn cut(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The database goes away in the middle of a failover: the run stops at a safe point with
/// exit 75 and a message saying what to do; once the database answers again, another host
/// resumes the run to its end, with each mutating AWS call made once.
#[tokio::test(flavor = "multi_thread")]
async fn a_failover_whose_database_goes_away_stops_with_75_and_resumes_from_another_host() {
    let Some(server) = postgres_server() else {
        return;
    };
    let team = Team::new(&server).await;
    let runbook = team.runbook.to_str().unwrap();
    let relay = Relay::start(&server).await;
    let through_relay = relay.url_of(&team.db);
    let stderr_path = team.dir.path().join("host-a.stderr");
    let mut child = binary()
        .current_dir(repo_path(""))
        .arg("--db")
        .arg(&through_relay)
        .arg("--endpoint-url")
        .arg(&team.sim.endpoint)
        .args(["failover", runbook, "--yes"])
        .env_remove("DRS_RUNBOOK_DB")
        .env("DRS_RUNBOOK_HOST", "host-a")
        .env("DRS_RUNBOOK_OPERATOR", "alice")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while team.start_recoveries().await == 0 {
        assert!(Instant::now() < deadline, "host A started no recovery");
        assert!(child.try_wait().unwrap().is_none(), "host A ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.cut().await;
    let cut_at = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(120),
            "host A did not stop after losing its database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(75), "{stderr}");
    let run_id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .expect("the run's ID is printed first")
        .trim()
        .to_string();
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("an error line: {stderr}"));
    assert!(
        error.contains("lost the run database")
            && error.contains("stopped at a safe point")
            && error.contains("drs-runbook resume"),
        "{error}"
    );
    let recoveries_at_the_cut = team.start_recoveries().await;

    // The database answers again (host B reaches it directly): the run is as host A left it.
    let shown = team
        .cli("host-b", &["--output", "json", "show", &run_id])
        .await
        .json();
    assert_eq!(shown["status"], "running", "{shown}");

    let resumed = loop {
        let run = team
            .cli("host-b", &["--output", "json", "resume", &run_id, "--yes"])
            .await;
        if run.code != 4 {
            break run;
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(150),
            "host A's lease never expired: {run:#?}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    assert_eq!(resumed.code, 0, "{resumed:#?}");
    assert_eq!(resumed.json()["status"], "succeeded");
    assert_eq!(
        team.start_recoveries().await,
        3,
        "each wave's recovery started once across both hosts ({recoveries_at_the_cut} before the cut)"
    );
    let stats = team.sim.get("/_sim/stats").await;
    let mut seen = std::collections::BTreeSet::new();
    for mutation in stats["mutations"].as_array().unwrap() {
        let call = (
            mutation["operation"].to_string(),
            mutation["account"].to_string(),
            mutation["region"].to_string(),
            mutation["params"].to_string(),
        );
        assert!(seen.insert(call.clone()), "sent twice: {call:?}");
    }
    let verified = team.cli("host-b", &["audit", "verify", &run_id]).await;
    assert_eq!(verified.code, 0, "{verified:#?}");
}
