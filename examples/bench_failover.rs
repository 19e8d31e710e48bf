//! Benchmark: a failover of N servers in W chained waves against `drs-runbook sim serve`, and in
//! the same run the customer's documented procedure (reference `drs-cross-account-setup.md`,
//! "Failover") scripted sequentially against a fresh simulator: its step 1 ("Configure launch
//! settings": one GetLaunchConfiguration per server, before the first StartRecovery, its reads
//! reported apart), then per wave StartRecovery, then
//! DescribeJobs every 30 s until the job completes; then RegisterTargets and DescribeTargetHealth
//! every 15 s; then the UPSERT and GetChange every 30 s (simulated seconds).
//!
//! ```text
//! cargo run --release --example bench_failover -- [--servers 300] [--waves 6] [--speed 60]
//! ```
//!
//! Prints, for both: the span from the first StartRecovery to the DNS change (the UPSERT, on the
//! simulator's clock) and their ratio (target <= 0.6), DRS and EC2 read calls (target: no more
//! than the procedure), and for the engine the wall time, the consistency figure (snapshot
//! spread), the peak memory (VmHWM, target <= 64 MiB) and its calls by operation. The binaries
//! are the ones built beside this example (`target/<profile>/drs-runbook`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// A process's memory as Linux counts it (KiB): the peak resident set (`VmHWM`), and now its
/// anonymous pages (heap, stacks: `RssAnon`) and the file pages it maps (its binary's code and
/// data as far as it ran them: `RssFile`).
struct Memory {
    peak: u64,
    anon: u64,
    file: u64,
}

fn memory_kib(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some(Memory {
        peak: field("VmHWM:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
    })
}

fn time(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("DRS timestamps parse")
        .with_timezone(&chrono::Utc)
}

/// A `drs-runbook sim serve` child seeded with the runbook, and its endpoint.
fn serve(runbook_path: &std::path::Path, speed: f64) -> (std::process::Child, String) {
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
        .arg(runbook_path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("sim serve starts (build it first: cargo build --release)");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("sim serve prints its address");
    (
        sim,
        line.trim().trim_start_matches("listening on ").to_string(),
    )
}

async fn stats(endpoint: &str) -> serde_json::Value {
    reqwest::get(format!("{endpoint}/_sim/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// From the first StartRecovery to the DNS change (the UPSERT), on the simulator's clock.
fn span(stats: &serde_json::Value) -> f64 {
    let at = |operation: &str, last: bool| {
        let times = stats["mutations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["operation"] == operation)
            .filter_map(|m| m["at"].as_str())
            .map(time);
        if last { times.max() } else { times.min() }
    };
    match (
        at("StartRecovery", false),
        at("ChangeResourceRecordSets", true),
    ) {
        (Some(first), Some(dns)) => (dns - first).num_milliseconds() as f64 / 1000.0,
        _ => f64::NAN,
    }
}

/// DRS reads (Describe*, Get*, List*) and EC2 reads (Describe*) in a simulator's stats.
fn reads(stats: &serde_json::Value) -> (u64, u64, u64) {
    let calls = stats["calls"].as_object().cloned().unwrap_or_default();
    let count = |pred: &dyn Fn(&str, &str) -> bool| -> u64 {
        calls
            .iter()
            .filter(|(k, _)| k.split_once(':').is_some_and(|(s, o)| pred(s, o)))
            .filter_map(|(_, v)| v.as_u64())
            .sum()
    };
    let drs =
        count(&|s, o| s == "drs" && ["Describe", "Get", "List"].iter().any(|p| o.starts_with(p)));
    let launch_configurations = count(&|s, o| s == "drs" && o == "GetLaunchConfiguration");
    let ec2 = count(&|s, o| s == "ec2" && o.starts_with("Describe"));
    (drs, launch_configurations, ec2)
}

fn credentials(account: &str) -> aws_sdk_drs::config::Credentials {
    aws_sdk_drs::config::Credentials::new(account, "x", None, None, "bench")
}

/// The documented procedure, scripted: wave after wave, with the documented poll intervals.
async fn documented_procedure(endpoint: &str, servers: usize, waves: usize, speed: f64) {
    let pause = |seconds: f64| tokio::time::sleep(Duration::from_secs_f64(seconds / speed));
    let drs = aws_sdk_drs::Client::from_conf(
        aws_sdk_drs::Config::builder()
            .behavior_version(aws_sdk_drs::config::BehaviorVersion::latest())
            .region(aws_sdk_drs::config::Region::new("us-west-2"))
            .endpoint_url(endpoint)
            .credentials_provider(credentials("222222222222"))
            .build(),
    );
    let per_wave = servers.div_ceil(waves);
    // Step 1 of the documented procedure, "Configure launch settings (instance type, subnet,
    // security groups)": each server's launch settings looked at (one GetLaunchConfiguration
    // each: DRS has no batch read), all before the first StartRecovery so the span does not
    // count them. Reported apart: the issue's script of the procedure leaves this step out.
    for i in 0..servers {
        drs.get_launch_configuration()
            .source_server_id(format!("s-{i:017x}"))
            .send()
            .await
            .expect("GetLaunchConfiguration");
    }
    let mut last_wave = Vec::new();
    for w in 0..waves {
        let ids: Vec<String> = (w * per_wave..((w + 1) * per_wave).min(servers))
            .map(|i| format!("s-{i:017x}"))
            .collect();
        let mut jobs = Vec::new();
        for chunk in ids.chunks(100) {
            let started = drs
                .start_recovery()
                .set_source_servers(Some(
                    chunk
                        .iter()
                        .map(|id| {
                            aws_sdk_drs::types::StartRecoveryRequestSourceServer::builder()
                                .source_server_id(id)
                                .build()
                                .unwrap()
                        })
                        .collect(),
                ))
                .send()
                .await
                .expect("StartRecovery");
            jobs.push(started.job().unwrap().job_id().to_string());
        }
        loop {
            pause(30.0).await;
            let described = drs
                .describe_jobs()
                .filters(
                    aws_sdk_drs::types::DescribeJobsRequestFilters::builder()
                        .set_job_ids(Some(jobs.clone()))
                        .build(),
                )
                .send()
                .await
                .expect("DescribeJobs");
            if described
                .items()
                .iter()
                .all(|j| j.status().map(|s| s.as_str()) == Some("COMPLETED"))
            {
                break;
            }
        }
        last_wave = ids;
    }
    // The last wave's instances behind its target group, then DNS to their IPs.
    let instances = drs
        .describe_recovery_instances()
        .filters(
            aws_sdk_drs::types::DescribeRecoveryInstancesRequestFilters::builder()
                .set_source_server_ids(Some(last_wave))
                .build(),
        )
        .send()
        .await
        .expect("DescribeRecoveryInstances");
    let (ec2_ids, ips): (Vec<String>, Vec<String>) = instances
        .items()
        .iter()
        .filter_map(|i| {
            let ip = i
                .recovery_instance_properties()?
                .network_interfaces()
                .first()?
                .ips()
                .first()?
                .clone();
            Some((i.ec2_instance_id()?.to_string(), ip))
        })
        .unzip();
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::from_conf(
        aws_sdk_elasticloadbalancingv2::Config::builder()
            .behavior_version(aws_sdk_elasticloadbalancingv2::config::BehaviorVersion::latest())
            .region(aws_sdk_elasticloadbalancingv2::config::Region::new(
                "us-west-2",
            ))
            .endpoint_url(endpoint)
            .credentials_provider(credentials("222222222222"))
            .build(),
    );
    elbv2
        .register_targets()
        .target_group_arn(TARGET_GROUP)
        .set_targets(Some(
            ec2_ids
                .iter()
                .map(|id| {
                    aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                        .id(id)
                        .port(443)
                        .build()
                })
                .collect(),
        ))
        .send()
        .await
        .expect("RegisterTargets");
    loop {
        pause(15.0).await;
        let health = elbv2
            .describe_target_health()
            .target_group_arn(TARGET_GROUP)
            .send()
            .await
            .expect("DescribeTargetHealth");
        let healthy = health
            .target_health_descriptions()
            .iter()
            .filter(|d| {
                d.target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str())
                    == Some("healthy")
            })
            .count();
        if healthy >= ec2_ids.len() {
            break;
        }
    }
    let route53 = aws_sdk_route53::Client::from_conf(
        aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(aws_sdk_route53::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(credentials("111111111111"))
            .build(),
    );
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let record = ResourceRecordSet::builder()
        .name("api.bench.example.com.")
        .r#type(RrType::A)
        .ttl(60)
        .set_resource_records(Some(
            ips.iter()
                .map(|ip| ResourceRecord::builder().value(ip).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap();
    let change = route53
        .change_resource_record_sets()
        .hosted_zone_id("Z0123456789ABCDEFGHIJ")
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(record)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("ChangeResourceRecordSets");
    let id = change.change_info().unwrap().id().to_string();
    loop {
        pause(30.0).await;
        let got = route53
            .get_change()
            .id(&id)
            .send()
            .await
            .expect("GetChange");
        if got.change_info().map(|c| c.status().as_str()) == Some("INSYNC") {
            break;
        }
    }
}

const TARGET_GROUP: &str =
    "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/bench/0123456789abcdef";

#[tokio::main]
async fn main() {
    let servers = arg("--servers", 300.0) as usize;
    let waves = arg("--waves", 6.0) as usize;
    let speed = arg("--speed", 60.0);
    let dir = tempfile::tempdir().expect("a temp dir");
    let runbook_path = dir.path().join("bench.toml");
    std::fs::write(&runbook_path, runbook(servers, waves)).expect("the runbook is written");

    // The engine: convert ahead, boot in order.
    let (mut sim, endpoint) = serve(&runbook_path, speed);
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
    // Drained while the run goes: a report of hundreds of servers is larger than a pipe holds.
    let mut stdout = failover.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut report = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut report).map(|_| report)
    });
    let (mut peak_kib, mut peak_anon_kib, mut peak_file_kib) = (0, 0, 0);
    let status = loop {
        if let Some(memory) = memory_kib(pid) {
            peak_kib = peak_kib.max(memory.peak);
            peak_anon_kib = peak_anon_kib.max(memory.anon);
            peak_file_kib = peak_file_kib.max(memory.file);
        }
        if let Some(status) = failover.try_wait().expect("the failover can be waited for") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    let report = reader
        .join()
        .expect("the report reader ends")
        .expect("the report is read");
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap_or_default();
    let engine = stats(&endpoint).await;
    let _ = sim.kill();
    let _ = sim.wait();

    // The documented procedure on a fresh simulator.
    let (mut sim, endpoint) = serve(&runbook_path, speed);
    let procedure_started = Instant::now();
    documented_procedure(&endpoint, servers, waves, speed).await;
    let procedure_wall = procedure_started.elapsed();
    let procedure = stats(&endpoint).await;
    let _ = sim.kill();
    let _ = sim.wait();

    let (engine_span, procedure_span) = (span(&engine), span(&procedure));
    let (engine_drs, engine_lc, engine_ec2) = reads(&engine);
    let (procedure_drs, procedure_lc, procedure_ec2) = reads(&procedure);
    // The issue's script of the procedure, which leaves step 1's reads out, is what the target
    // compares with.
    let procedure_drs = procedure_drs - procedure_lc;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "failover of {servers} servers in {waves} chained waves, sim serve at speed {speed} ({profile} build)"
    );
    println!(
        "  engine: exit {}, run {}, {} job(s), wall {:.1} s real",
        status.code().unwrap_or(-1),
        report["status"].as_str().unwrap_or("?"),
        engine["calls"]["drs:StartRecovery"],
        wall.as_secs_f64()
    );
    if let Some(error) = report["error"].as_str() {
        println!("  engine error: {error}");
    }
    println!(
        "  documented procedure: wall {:.1} s real",
        procedure_wall.as_secs_f64()
    );
    println!("  span, first StartRecovery -> DNS change (simulated s):");
    println!("    engine                {engine_span:.0}");
    println!("    documented procedure  {procedure_span:.0}");
    println!(
        "    ratio                 {:.3} (target <= 0.6)",
        engine_span / procedure_span
    );
    println!(
        "  consistency figure      snapshots within {} s (the run's snapshot_spread_seconds)",
        report["snapshot_spread_seconds"]
    );
    println!("  read calls (target: engine no more than the procedure):");
    println!(
        "    DRS  engine {engine_drs} (of which GetLaunchConfiguration {engine_lc}: preflight's launch settings, one a server), procedure {procedure_drs}"
    );
    println!("    EC2  engine {engine_ec2}, procedure {procedure_ec2}");
    println!(
        "    both engine {}, procedure {}; the engine without preflight's GetLaunchConfiguration {}",
        engine_drs + engine_ec2,
        procedure_drs + procedure_ec2,
        engine_drs + engine_ec2 - engine_lc
    );
    println!(
        "    with the documented step 1 (\"Configure launch settings\": GetLaunchConfiguration {procedure_lc}, one a server) the procedure reads {}",
        procedure_drs + procedure_ec2 + procedure_lc
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "  peak memory (VmHWM)     {:.1} MiB (target <= 64 MiB): at most {:.1} MiB heap and stacks (RssAnon), {:.1} MiB the binary's mapped pages (RssFile)",
        mib(peak_kib),
        mib(peak_anon_kib),
        mib(peak_file_kib)
    );
    println!("  engine calls by operation:");
    for (op, n) in engine["calls"].as_object().cloned().unwrap_or_default() {
        println!("    {op:<40} {n}");
    }
    println!("  procedure calls by operation:");
    for (op, n) in procedure["calls"].as_object().cloned().unwrap_or_default() {
        println!("    {op:<40} {n}");
    }
}
