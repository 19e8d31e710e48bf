//! The runbook file (TOML, DESIGN section 4): its model, its parsing and its validation.
//!
//! # Layout
//!
//! - [`model`]: the validated runbook the engine uses ([`Runbook`] and its parts, [`StepKind`]).
//! - `raw`: the file as written, serde types with spans (`deny_unknown_fields`).
//! - `document`: TOML -> raw, recovering from each error so every problem is reported at once.
//! - `validate`: raw -> model, every check of DESIGN section 4.
//! - [`formats`]: the shapes of AWS identifiers; [`duration`]: `"1h30m"`; `order`: wave order.
//! - [`schema`]: the JSON Schema of the file (`drs-runbook schema`), checked against `raw`.
//!
//! Invariant: a [`Runbook`] exists only after validation found no problem, so the engine never
//! re-checks what this module checked.

pub mod duration;
pub mod formats;
pub mod model;
pub mod schema;

mod document;
mod order;
mod problem;
mod raw;
mod validate;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub use duration::{DurationError, format_duration, parse_duration};
pub use model::{
    Account, Approvals, Cleanup, ClusterEndpoint, Credentials, DnsRecord, DoctorSettings,
    LoadBalancer, Objectives, PointsTo, RecordType, Recovery, RoutingControl, Runbook, Select,
    ServerRef, Side, SourceInstances, StepKind, Wave,
};
pub use problem::{Problem, line_col};

/// A runbook read from a file: the validated model, the text as read, and its SHA-256, which the
/// store keeps with every run so that resume and audit use exactly what was run.
#[derive(Debug, Clone)]
pub struct LoadedRunbook {
    pub path: PathBuf,
    pub runbook: Runbook,
    pub text: String,
    /// Lower-case hex SHA-256 of `text`.
    pub sha256: String,
}

impl LoadedRunbook {
    /// A runbook from text already in hand, e.g. the copy stored with a run, which `resume`
    /// uses instead of the file (that may have changed since). `file` names it in problems.
    pub fn from_text(text: String, file: &str) -> Result<LoadedRunbook, RunbookError> {
        let runbook = parse(&text, file)?;
        Ok(LoadedRunbook {
            path: PathBuf::from(file),
            runbook,
            sha256: sha256_hex(&text),
            text,
        })
    }
}

/// A runbook that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    #[error(
        "failed to read the runbook {path}: {source}\nhint: check the path and that the file is readable"
    )]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refused the runbook {path}: it is {what}\nhint: a runbook is a regular TOML file of at most 1 MiB ({MAX_RUNBOOK_BYTES} bytes)"
    )]
    Refused { path: String, what: String },
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

impl RunbookError {
    /// The problems of an invalid runbook (none for a file that could not be read).
    pub fn problems(&self) -> &[Problem] {
        match self {
            RunbookError::Read { .. } | RunbookError::Refused { .. } => &[],
            RunbookError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    let mut text = String::new();
    for problem in problems {
        text.push_str(&problem.to_string());
        text.push('\n');
    }
    // Past the limit, the last "problem" counts the others (see `Problems::into_sorted`).
    let omitted = problems
        .last()
        .filter(|p| p.key.is_empty() && p.message.contains(problem::OMITTED))
        .and_then(|p| p.message.split(' ').next()?.parse::<usize>().ok());
    let count = match omitted {
        Some(more) => problems.len() - 1 + more,
        None => problems.len(),
    };
    let plural = if count == 1 { "" } else { "s" };
    text.push_str(&format!(
        "hint: {count} problem{plural} in {file}; fix the lines named above, then check again with `drs-runbook validate {file}`"
    ));
    text
}

/// Parses and validates a runbook's text. `file` names it in problems.
pub fn parse(text: &str, file: &str) -> Result<Runbook, RunbookError> {
    let mut problems = problem::Problems::new(file, text);
    let runbook =
        document::read(text, &mut problems).and_then(|raw| validate::validate(raw, &mut problems));
    match runbook {
        Some(runbook) if problems.is_empty() => Ok(runbook),
        _ => Err(RunbookError::Invalid {
            file: file.to_string(),
            problems: problems.into_sorted(),
        }),
    }
}

/// Reads, parses and validates a runbook file. Reads only: no AWS call, no database.
pub fn load(path: impl AsRef<Path>) -> Result<LoadedRunbook, RunbookError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let text = read_bounded(path, &file)?;
    let mut loaded = LoadedRunbook::from_text(text, &file)?;
    loaded.path = path.to_path_buf();
    Ok(loaded)
}

/// The largest runbook file read (1 MiB): far above any real runbook, small enough that a
/// mistaken path (a log, an image, `/dev/zero`) is refused at once instead of filling memory.
pub const MAX_RUNBOOK_BYTES: u64 = 1024 * 1024;

/// Reads a regular file of at most [`MAX_RUNBOOK_BYTES`]. A FIFO would block and a device
/// never end: anything but a regular file is refused before it is opened for reading, and the
/// read itself stops past the limit (a file can grow after the check).
fn read_bounded(path: &Path, file: &str) -> Result<String, RunbookError> {
    use std::io::Read;
    let read_error = |source| RunbookError::Read {
        path: file.to_string(),
        source,
    };
    let refused = |what: String| RunbookError::Refused {
        path: file.to_string(),
        what,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    let kind = metadata.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(refused(what.to_string()));
    }
    if metadata.len() > MAX_RUNBOOK_BYTES {
        return Err(refused(format!("{} bytes, over the limit", metadata.len())));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_RUNBOOK_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_RUNBOOK_BYTES {
        return Err(refused("over the limit (it grew while read)".to_string()));
    }
    String::from_utf8(bytes)
        .map_err(|e| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Lower-case hex SHA-256 of a runbook's text.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PAYMENTS: &str = include_str!("../../runbooks/payments.toml");
    const REPORTING: &str = include_str!("../../runbooks/reporting-drill.toml");

    fn problems_of(text: &str) -> Vec<Problem> {
        match parse(text, "t.toml") {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(error) => error.problems().to_vec(),
        }
    }

    /// Replaces `from` (which must occur) in the payments example.
    fn payments_with(from: &str, to: &str) -> String {
        assert!(PAYMENTS.contains(from), "{from}");
        PAYMENTS.replacen(from, to, 1)
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).expect(needle) + 1
    }

    #[test]
    fn the_examples_are_valid_and_modelled() {
        let payments = parse(PAYMENTS, "payments.toml").unwrap();
        assert_eq!(payments.name, "payments");
        assert_eq!(payments.rto(), Some(Duration::from_secs(30 * 60)));
        assert_eq!(payments.rpo(), Some(Duration::from_secs(15 * 60)));
        assert_eq!(payments.side(Account::Target).region, "us-west-2");
        assert_eq!(
            payments.source.credentials,
            Credentials::Profile("payments-source".into())
        );
        let order: Vec<&str> = payments.waves_in_order().map(|w| w.name.as_str()).collect();
        assert_eq!(order, ["db", "app"]);
        assert!(payments.approval_required(StepKind::DnsCutover));
        assert!(payments.approval_required(StepKind::Cleanup));
        assert!(!payments.approval_required(StepKind::LbSwitch));
        assert_eq!(payments.dns[0].record_type, RecordType::A);
        assert_eq!(payments.dns[0].points_to, PointsTo::Wave("app".into()));
        let servers = payments.servers();
        assert_eq!(servers.len(), 3);
        assert_eq!(servers[0].wave, "db");
        assert!(
            servers
                .iter()
                .any(|s| s.source_server_id == "s-34567890abcdef012" && s.optional)
        );
        assert!(!servers[0].optional);
        assert_eq!(payments.wave("app").unwrap().after, ["db"]);
        assert!(payments.wave("web").is_none());
        assert_eq!(payments.load_balancers_of("app").count(), 1);

        let reporting = parse(REPORTING, "reporting-drill.toml").unwrap();
        assert_eq!(reporting.source.credentials, Credentials::DefaultChain);
        assert!(reporting.dns.is_empty() && reporting.load_balancers.is_empty());
        assert!(!reporting.approval_required(StepKind::Cleanup));
    }

    #[test]
    fn the_doctor_table_is_optional_and_checked() {
        let defaults = parse(PAYMENTS, "payments.toml").unwrap().doctor;
        assert_eq!(defaults, DoctorSettings::default());
        assert_eq!(defaults.target_kms_key, "alias/drs-target-key");
        assert!(defaults.failback);

        let text = format!(
            "{PAYMENTS}\n[doctor]\ntarget_kms_key = \"arn:aws:kms:us-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab\"\nagent_role = \"DrAgent_{{peer}}\"\nfailback = false\nagent_seen_within = \"2m\"\n"
        );
        let doctor = parse(&text, "t.toml").unwrap().doctor;
        assert!(
            doctor
                .target_kms_key
                .ends_with("key/1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert_eq!(doctor.source_kms_key, "alias/drs-source-key");
        assert_eq!(doctor.agent_role, "DrAgent_{peer}");
        assert!(!doctor.failback);
        assert_eq!(doctor.agent_seen_within, Duration::from_secs(120));

        let bad = format!(
            "{PAYMENTS}\n[doctor]\nsource_kms_key = \"key one\"\nstaging_role = \"service-role/X\"\nagent_seen_within = \"soon\"\nkms = \"x\"\n"
        );
        let keys: Vec<String> = problems_of(&bad).iter().map(|p| p.key.clone()).collect();
        for key in [
            "doctor.source_kms_key",
            "doctor.staging_role",
            "doctor.agent_seen_within",
            "doctor.kms",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
        }
    }

    #[test]
    fn waves_come_in_dependency_order_and_file_order_otherwise() {
        let text = r#"
name = "x"
[source]
account_id = "111111111111"
region = "us-east-1"
[target]
account_id = "222222222222"
region = "us-west-2"
[[wave]]
name = "web"
after = ["app"]
servers = ["s-00000000000000001"]
[[wave]]
name = "app"
after = ["db"]
servers = ["s-00000000000000002"]
[[wave]]
name = "batch"
servers = ["s-00000000000000003"]
[[wave]]
name = "db"
servers = ["s-00000000000000004"]
"#;
        let runbook = parse(text, "t.toml").unwrap();
        let order: Vec<&str> = runbook.waves_in_order().map(|w| w.name.as_str()).collect();
        assert_eq!(order, ["batch", "db", "app", "web"]);
    }

    #[test]
    fn a_bad_server_id_names_line_column_key_and_a_valid_example() {
        let text = payments_with("\"s-234567890abcdef01\", ", "\"s-123\", ");
        let problems = problems_of(&text);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert_eq!(p.line, line_of(&text, "\"s-123\""));
        assert_eq!(
            p.column,
            text.lines()
                .nth(p.line - 1)
                .unwrap()
                .find("\"s-123\"")
                .unwrap()
                + 1
        );
        assert_eq!(p.key, "wave[1].servers[0]");
        assert_eq!(
            p.to_string(),
            format!(
                "t.toml:{}:{}: wave[1].servers[0]: \"s-123\" is not a DRS source server ID (expected s- and 17 letters or digits, e.g. s-1234567890abcdef0)",
                p.line, p.column
            )
        );
    }

    #[test]
    fn every_unknown_key_and_type_error_is_reported_at_once() {
        let text = payments_with("region = \"us-east-1\"", "regoin = \"us-east-1\"\nzone = 1");
        let text = text.replacen("port = 443", "port = \"443\"\ncolour = \"blue\"", 1);
        let text = text.replacen("ttl = 60", "ttl = -5", 1);
        let problems = problems_of(&text);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "source.regoin",
            "source.zone",
            "load_balancer[0].port",
            "load_balancer[0].colour",
            "dns[0].ttl",
        ] {
            assert!(keys.contains(&key), "{key} missing from {problems:#?}");
        }
        let regoin = problems.iter().find(|p| p.key == "source.regoin").unwrap();
        assert!(
            regoin.message.contains("did you mean `region`"),
            "{}",
            regoin.message
        );
        assert_eq!(regoin.line, line_of(&text, "regoin"));
        // The renamed key leaves `region` missing: said once, at the [source] header.
        let missing: Vec<&Problem> = problems
            .iter()
            .filter(|p| p.key == "source.region")
            .collect();
        assert_eq!(missing.len(), 1, "{problems:#?}");
        assert_eq!(missing[0].line, line_of(&text, "[source]"));
        assert!(missing[0].message.contains("missing key `region`"));
    }

    #[test]
    fn cycles_and_unknown_waves_are_reported() {
        let text = payments_with("name = \"db\"\n", "name = \"db\"\nafter = [\"app\"]\n");
        let problems = problems_of(&text);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, "wave[0].after[0]");
        assert!(
            problems[0].message.contains("app -> db -> app"),
            "{}",
            problems[0].message
        );

        let text = payments_with("after = [\"db\"]", "after = [\"dbs\"]");
        let problems = problems_of(&text);
        assert_eq!(problems[0].key, "wave[1].after[0]");
        assert!(
            problems[0].message.contains("did you mean `db`"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn target_groups_must_be_on_their_side() {
        let text = payments_with(
            "target_group_arn = \"arn:aws:elasticloadbalancing:us-west-2:222222222222",
            "target_group_arn = \"arn:aws:elasticloadbalancing:us-east-1:111111111111",
        );
        let problems = problems_of(&text);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, "load_balancer[0].target_group_arn");
        assert!(
            problems[0].message.contains("target side, us-west-2"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn failback_launch_settings_are_optional_and_each_checked_for_its_ec2_format() {
        let payments = parse(PAYMENTS, "payments.toml").unwrap();
        assert_eq!(payments.failback, Default::default());
        let set = format!(
            "{PAYMENTS}\n[failback]\nsubnet_id = \"subnet-0123456789abcdef0\"\nsecurity_group_ids = [\"sg-01234567\"]\ninstance_type = \"m5.large\"\n"
        );
        let failback = parse(&set, "t.toml").unwrap().failback;
        assert_eq!(
            failback.subnet_id.as_deref(),
            Some("subnet-0123456789abcdef0")
        );
        assert_eq!(
            failback.security_group_ids,
            Some(vec!["sg-01234567".to_string()])
        );
        assert_eq!(failback.instance_type.as_deref(), Some("m5.large"));
        let wrong = set
            .replace("subnet-0123456789abcdef0", "subnet-xyz")
            .replace("\"sg-01234567\"", "\"sg-1\"")
            .replace("m5.large", "large");
        let problems = problems_of(&wrong);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "failback.subnet_id",
                "failback.security_group_ids",
                "failback.instance_type"
            ],
            "{problems:#?}"
        );
        assert_eq!(problems[0].line, line_of(&wrong, "subnet-xyz"));
        assert!(
            problems[0].message.contains("not a subnet ID"),
            "{problems:#?}"
        );
        let unknown = format!("{PAYMENTS}\n[failback]\nsubnet = \"subnet-01234567\"\n");
        assert_eq!(problems_of(&unknown).len(), 1);
    }

    #[test]
    fn a_drill_target_group_is_optional_and_checked_like_the_failover_one() {
        const DRILL_LINE: &str = "drill_target_group_arn = \"arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments-drill/0123456789abcd01\"\n";
        let payments = parse(PAYMENTS, "payments.toml").unwrap();
        assert_eq!(
            payments.load_balancers[0].drill_target_group_arn.as_deref(),
            Some(
                "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments-drill/0123456789abcd01"
            )
        );
        // A runbook written before the key existed stays valid, without a drill group.
        let older = parse(&payments_with(DRILL_LINE, ""), "t.toml").unwrap();
        assert_eq!(older.load_balancers[0].drill_target_group_arn, None);
        assert_eq!(
            older.load_balancers[0].target_group_arn,
            payments.load_balancers[0].target_group_arn
        );

        let malformed = payments_with("payments-drill/0123456789abcd01", "payments-drill/xyz");
        let problems = problems_of(&malformed);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, "load_balancer[0].drill_target_group_arn");
        assert_eq!(problems[0].line, line_of(&malformed, "payments-drill/xyz"));
        assert!(
            problems[0].message.contains("16 hex digits"),
            "{}",
            problems[0].message
        );

        let source_side = payments_with(
            "elasticloadbalancing:us-west-2:222222222222:targetgroup/payments-drill",
            "elasticloadbalancing:us-east-1:111111111111:targetgroup/payments-drill",
        );
        let problems = problems_of(&source_side);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, "load_balancer[0].drill_target_group_arn");
        assert!(
            problems[0].message.contains("target side, us-west-2"),
            "{}",
            problems[0].message
        );

        let production = payments_with(
            "targetgroup/payments-drill/0123456789abcd01",
            "targetgroup/payments/0123456789abcdef",
        );
        let problems = problems_of(&production);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].key, "load_balancer[0].drill_target_group_arn");
        assert!(
            problems[0].message.contains("separate, empty target group"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let text = payments_with("rto = \"30m\"", "rto = \"30m");
        let problems = problems_of(&text);
        assert_eq!(problems[0].line, line_of(&text, "rto = \"30m"));
        assert!(
            problems[0].message.starts_with("TOML syntax error"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn loading_keeps_the_text_and_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payments.toml");
        std::fs::write(&path, PAYMENTS).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.text, PAYMENTS);
        assert_eq!(loaded.sha256, sha256_hex(PAYMENTS));
        assert_eq!(loaded.sha256.len(), 64);
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let stored = LoadedRunbook::from_text(loaded.text.clone(), "run 42").unwrap();
        assert_eq!(
            (stored.sha256, stored.runbook),
            (loaded.sha256, loaded.runbook)
        );
        let error = load(dir.path().join("missing.toml")).unwrap_err();
        assert!(error.to_string().contains("hint:"), "{error}");
    }

    #[test]
    fn the_error_lists_problems_then_a_hint() {
        let text = payments_with("account_id = \"111111111111\"", "account_id = \"1111\"");
        let error = parse(&text, "t.toml").unwrap_err().to_string();
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 2, "{error}");
        assert!(
            lines[0]
                .starts_with("t.toml:12:14: source.account_id: \"1111\" is not an AWS account ID"),
            "{error}"
        );
        assert!(lines[1].starts_with("hint: 1 problem in t.toml"), "{error}");
    }

    #[test]
    fn actions_are_modelled_and_every_mistake_in_them_named_with_its_key() {
        let with = |action: &str| {
            payments_with(
                "servers = [\"s-1234567890abcdef0\"]\n",
                &format!("servers = [\"s-1234567890abcdef0\"]\n[[wave.action]]\n{action}\n"),
            )
        };
        let good = with(
            "name = \"promote\"\nwhen = \"after_boot\"\nrun = { command = [\"./promote.sh\", \"--force\"], timeout = \"5m\" }\nidempotent = true\noperations = [\"failover\", \"rollback\"]",
        );
        let runbook = parse(&good, "t.toml").unwrap();
        let action = runbook.action("db", "promote").unwrap();
        assert_eq!(action.when, model::ActionWhen::AfterBoot);
        assert_eq!(
            action.run,
            model::ActionRun::Command {
                argv: vec!["./promote.sh".into(), "--force".into()],
                timeout: Duration::from_secs(300),
            }
        );
        assert!(action.idempotent && !action.optional);
        assert!(action.runs_in(crate::store::Operation::Rollback));
        assert!(!action.runs_in(crate::store::Operation::Drill));
        let http = parse(
            &with("name = \"smoke\"\nwhen = \"after_traffic\"\nrun = { http = \"https://app.example.org/health\" }"),
            "t.toml",
        )
        .unwrap();
        let smoke = http.action("db", "smoke").unwrap();
        assert_eq!(
            smoke.run,
            model::ActionRun::Http {
                url: "https://app.example.org/health".into(),
                expect_status: 200,
                expect_body: None,
                timeout: model::ActionRun::DEFAULT_TIMEOUT,
            }
        );
        assert_eq!(smoke.operations, model::Action::DEFAULT_OPERATIONS);

        let problem = |action: &str| -> Vec<(String, String)> {
            problems_of(&with(action))
                .into_iter()
                .map(|p| (p.key, p.message))
                .collect()
        };
        // A kind this version does not run is an unknown key of `run`, listing the kinds.
        let lambda = problem("name = \"a\"\nwhen = \"after_boot\"\nrun = { lambda = \"promote\" }");
        assert_eq!(lambda.len(), 1, "{lambda:?}");
        assert_eq!(lambda[0].0, "wave[0].action[0].run.lambda");
        assert!(
            lambda[0].1.contains("unknown key `lambda`")
                && lambda[0]
                    .1
                    .contains("`command`, `http`, `manual`, `ssm_document`"),
            "{}",
            lambda[0].1
        );
        // An SSM document: DRS takes parameters only as names, in a failover or a drill.
        let ssm = parse(
            &with(
                "name = \"check\"\nwhen = \"after_boot\"\nrun = { ssm_document = \"AWS-RunShellScript\", parameters = { commands = { ssm_store = \"app-check\" } } }",
            ),
            "t.toml",
        )
        .unwrap();
        let action = &ssm.waves[0].actions[0];
        assert_eq!(
            action.run,
            model::ActionRun::SsmDocument {
                document: "AWS-RunShellScript".into(),
                version: "$DEFAULT".into(),
                parameters: [(
                    "commands".to_string(),
                    model::SsmParameter::SsmStore("app-check".into())
                )]
                .into(),
                keep: false,
                timeout: model::ActionRun::DEFAULT_TIMEOUT,
            }
        );
        assert_eq!(
            action.operations,
            [
                crate::store::Operation::Failover,
                crate::store::Operation::Drill
            ]
        );
        let literal = problem(
            "name = \"a\"\nwhen = \"after_boot\"\nrun = { ssm_document = \"AWS-RunShellScript\", parameters = { commands = [\"systemctl is-active app\"] } }",
        );
        assert_eq!(literal[0].0, "wave[0].action[0].run.parameters.commands");
        assert!(literal[0].1.contains("Parameter Store"), "{literal:?}");
        let two = problem(
            "name = \"a\"\nwhen = \"after_boot\"\nrun = { command = [\"x\"], manual = \"y\" }",
        );
        assert_eq!(two[0].0, "wave[0].action[0].run");
        assert!(two[0].1.contains("an action runs one thing"), "{two:?}");
        let many = problem(
            "name = \"a b\"\nwhen = \"afterboot\"\nrun = { manual = \"go\", timeout = \"5m\" }\noperations = [\"dril\"]",
        );
        let keys: Vec<&str> = many.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "wave[0].action[0].name",
                "wave[0].action[0].when",
                "wave[0].action[0].run.timeout",
                "wave[0].action[0].operations[0]"
            ],
            "{many:?}"
        );
        assert!(many[1].1.contains("did you mean `after_boot`"), "{many:?}");
        assert!(many[3].1.contains("did you mean `drill`"), "{many:?}");
        let duplicate = problem(
            "name = \"a\"\nwhen = \"after_boot\"\nrun = { http = \"ftp://x\" }\n[[wave.action]]\nname = \"a\"\nwhen = \"after_boot\"\nrun = { command = [] }",
        );
        let keys: Vec<&str> = duplicate.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "wave[0].action[0].run.http",
                "wave[0].action[1].name",
                "wave[0].action[1].run.command"
            ],
            "{duplicate:?}"
        );
    }
}
