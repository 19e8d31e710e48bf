//! Benchmark: a failover of N servers in W dependent waves against `drs-runbook sim serve`.
//!
//! ```text
//! cargo run --release --example bench_failover -- [--servers 300] [--waves 6] [--speed 60]
//! ```
//!
//! Prints the wall time, the simulator's own critical path (per wave: from its first job's
//! creation to its last job's end, i.e. the slowest server; plus the simulated target-health and
//! DNS propagation delays), their ratio (target <= 1.02), calls by operation, polling calls per
//! job-minute, and the peak memory (VmHWM) of the `drs-runbook failover` process.
//! The binaries are the ones built beside this example (`target/<profile>/drs-runbook`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Target health (initial -> healthy) and DNS propagation in the simulator, simulated seconds.
const TARGET_HEALTH_SECONDS: f64 = 30.0;
const DNS_PROPAGATION_SECONDS: f64 = 60.0;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the example knows its path");
    // target/<profile>/examples/bench_failover -> target/<profile>/drs-runbook
    exe.parent()
        .and_then(|p| p.parent())
        .expect("examples live under the profile dir")
        .join("drs-runbook")
}

fn runbook(servers: usize, waves: usize) -> String {
    let mut text = String::from(
        "name = \"bench\"\ndescription = \"benchmark\"\n\n[objectives]\nrto = \"4h\"\nrpo = \"15m\"\n\n\
         [source]\naccount_id = \"111111111111\"\nregion = \"us-east-1\"\n\n\
         [target]\naccount_id = \"222222222222\"\nregion = \"us-west-2\"\n",
    );
    let per_wave = servers.div_ceil(waves);
    for w in 0..waves {
        let ids: Vec<String> = (w * per_wave..((w + 1) * per_wave).min(servers))
            .map(|i| format!("\"s-{i:017x}\""))
            .collect();
        text.push_str(&format!("\n[[wave]]\nname = \"w{w}\"\n"));
        if w > 0 {
            text.push_str(&format!("after = [\"w{}\"]\n", w - 1));
        }
        text.push_str(&format!("servers = [{}]\n", ids.join(", ")));
    }
    let last = waves - 1;
    text.push_str(&format!(
        "\n[[load_balancer]]\nwave = \"w{last}\"\ntarget_group_arn = \"arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/bench/0123456789abcdef\"\nport = 443\n\n\
         [[dns]]\nhosted_zone_id = \"Z0123456789ABCDEFGHIJ\"\naccount = \"source\"\nname = \"api.bench.example.com.\"\ntype = \"A\"\nttl = 60\npoints_to = {{ wave = \"w{last}\" }}\n"
    ));
    text
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn time(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("DRS timestamps parse")
        .with_timezone(&chrono::Utc)
}

#[tokio::main]
async fn main() {
    let servers = arg("--servers", 300.0) as usize;
    let waves = arg("--waves", 6.0) as usize;
    let speed = arg("--speed", 60.0);
    let dir = tempfile::tempdir().expect("a temp dir");
    let runbook_path = dir.path().join("bench.toml");
    std::fs::write(&runbook_path, runbook(servers, waves)).expect("the runbook is written");

    let mut sim = Command::new(binary())
        .args([
            "sim",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            &speed.to_string(),
            "--seed",
        ])
        .arg(&runbook_path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("sim serve starts (build it first: cargo build --release)");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("sim serve prints its address");
    let endpoint = line.trim().trim_start_matches("listening on ").to_string();

    let started = Instant::now();
    let mut failover = Command::new(binary())
        .arg("--db")
        .arg(dir.path().join("runs.db"))
        .args(["--endpoint-url", &endpoint, "--output", "json", "failover"])
        .arg(&runbook_path)
        .arg("--yes")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the failover starts");
    let pid = failover.id();
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = failover.try_wait().expect("the failover can be waited for") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    let mut report = String::new();
    std::io::Read::read_to_string(&mut failover.stdout.take().unwrap(), &mut report).unwrap();
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap_or_default();

    let http = reqwest::Client::new();
    let stats: serde_json::Value = http
        .get(format!("{endpoint}/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let drs = aws_sdk_drs::Client::from_conf(
        aws_sdk_drs::Config::builder()
            .behavior_version(aws_sdk_drs::config::BehaviorVersion::latest())
            .region(aws_sdk_drs::config::Region::new("us-west-2"))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_drs::config::Credentials::new(
                "222222222222",
                "x",
                None,
                None,
                "bench",
            ))
            .build(),
    );
    let jobs = drs
        .describe_jobs()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("jobs are listed");
    let _ = sim.kill();
    let _ = sim.wait();

    // Per wave: its jobs are the ones tagged with its step.
    let mut critical = 0.0;
    let mut job_minutes = 0.0;
    for w in 0..waves {
        let step = format!("recovery_job:w{w}");
        let wave_jobs: Vec<_> = jobs
            .iter()
            .filter(|j| {
                j.tags()
                    .and_then(|t| t.get("drs-runbook:step"))
                    .map(String::as_str)
                    == Some(step.as_str())
            })
            .collect();
        let start = wave_jobs
            .iter()
            .filter_map(|j| j.creation_date_time())
            .map(time)
            .min();
        let end = wave_jobs
            .iter()
            .filter_map(|j| j.end_date_time())
            .map(time)
            .max();
        if let (Some(s), Some(e)) = (start, end) {
            critical += (e - s).num_milliseconds() as f64 / 1000.0;
        }
        for j in &wave_jobs {
            if let (Some(s), Some(e)) = (j.creation_date_time(), j.end_date_time()) {
                job_minutes += (time(e) - time(s)).num_milliseconds() as f64 / 60_000.0;
            }
        }
    }
    critical += TARGET_HEALTH_SECONDS + DNS_PROPAGATION_SECONDS;
    let wall_simulated = wall.as_secs_f64() * speed;
    let calls = stats["calls"].as_object().cloned().unwrap_or_default();
    let polls: u64 = ["drs:DescribeJobs", "drs:DescribeJobLogItems"]
        .iter()
        .filter_map(|k| calls.get(*k))
        .filter_map(|v| v.as_u64())
        .sum();

    println!("failover of {servers} servers in {waves} waves against sim serve at speed {speed}");
    println!("  exit status            {}", status.code().unwrap_or(-1));
    println!(
        "  run status             {}",
        report["status"].as_str().unwrap_or("?")
    );
    println!("  jobs                   {}", jobs.len());
    println!(
        "  wall time              {:.1} s real = {:.0} s simulated",
        wall.as_secs_f64(),
        wall_simulated
    );
    println!(
        "  simulator critical path {:.0} s simulated (waves' slowest servers + {TARGET_HEALTH_SECONDS} s target health + {DNS_PROPAGATION_SECONDS} s DNS)",
        critical
    );
    println!(
        "  ratio                  {:.3} (target <= 1.02)",
        wall_simulated / critical
    );
    println!(
        "  polling calls          {polls} = {:.2} per job-minute",
        polls as f64 / job_minutes.max(1e-9)
    );
    println!(
        "  peak memory (VmHWM)    {:.1} MiB (target <= 64 MiB)",
        peak_kib as f64 / 1024.0
    );
    println!("  calls by operation:");
    for (op, n) in &calls {
        println!("    {op:<40} {n}");
    }
}
