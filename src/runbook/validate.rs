//! From the raw model to the validated [`Runbook`]: every check of DESIGN section 4, each
//! problem recorded with its span, none stopping the others.
//!
//! Checks that refer across sections (a wave named by `after`, a load balancer or a DNS record)
//! are skipped when the section they refer to could not be read, so the report lists causes,
//! not their echoes.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use super::document::{did_you_mean, quoted_list};
use super::duration::parse_duration;
use super::formats::{
    check_account_id, check_dns_name, check_external_id, check_hosted_zone_id, check_instance_type,
    check_kms_key, check_name, check_region, check_role_name, check_security_group_id,
    check_source_server_id, check_subnet_id, parse_role_arn, parse_target_group_arn,
};
use super::model::{
    Account, Action, ActionRun, ActionWhen, Approvals, Cleanup, ClusterEndpoint, Credentials,
    DnsRecord, DoctorSettings, LoadBalancer, Objectives, PointsTo, RecordType, Recovery,
    RoutingControl, Runbook, Select, Side, SourceInstances, SsmParameter, StepKind, Wave,
};
use super::order::topological_order;
use super::problem::Problems;
use super::raw::{
    Element, RawActionRun, RawDnsRecord, RawDoctor, RawLoadBalancer, RawRoutingControl, RawRunbook,
    RawSide, RawWave, ReadStatus, Text,
};
use crate::store::Operation;

/// Where a problem about something absent is reported: the top of the file.
const FILE_START: Range<usize> = 0..0;

/// Validates the raw runbook; `None` when any problem was found (all of them recorded).
pub(super) fn validate(raw: RawRunbook, problems: &mut Problems<'_>) -> Option<Runbook> {
    let status = &raw.status;
    let name = runbook_name(raw.name.as_ref(), status, problems);
    let description = raw.description.map(|d| d.into_inner());
    let objectives = objectives(raw.objectives, problems);
    let source = side("source", raw.source.as_ref(), status, problems);
    let target = side("target", raw.target.as_ref(), status, problems);
    let waves = waves(&raw.waves, status, problems);
    let wave_order = wave_order(&raw.waves, status, problems);
    let wave_names = WaveNames::new(&raw.waves, status);
    let load_balancers = raw
        .load_balancers
        .iter()
        .map(|lb| load_balancer(lb, &wave_names, source.as_ref(), target.as_ref(), problems))
        .collect();
    let dns = dns_records(&raw.dns, &wave_names, problems);
    let routing_controls = routing_controls(&raw.routing_controls, problems);
    let approvals = approvals(raw.approvals.as_ref(), problems);
    let cleanup = cleanup_settings(raw.cleanup.as_ref(), problems);
    let recovery = Recovery {
        convert_ahead: raw
            .recovery
            .and_then(|r| r.convert_ahead)
            .unwrap_or(Recovery::default().convert_ahead),
    };
    let doctor = doctor_settings(raw.doctor.as_ref(), problems);
    let failover = failover_settings(raw.failover.as_ref(), problems);
    let failback = failback_settings(raw.failback.as_ref(), problems);
    if !problems.is_empty() {
        return None;
    }
    Some(Runbook {
        name: name?,
        description,
        objectives,
        source: source?,
        target: target?,
        waves,
        load_balancers,
        dns,
        routing_controls,
        approvals,
        cleanup,
        recovery,
        doctor,
        failover,
        failback,
        wave_order: wave_order?,
    })
}

/// `[doctor]`: every key optional; the defaults are the standard DRS cross-account names.
fn doctor_settings(raw: Option<&RawDoctor>, problems: &mut Problems<'_>) -> DoctorSettings {
    let mut settings = DoctorSettings::default();
    let Some(raw) = raw else {
        return settings;
    };
    let mut text = |key: &str,
                    value: &Option<Text>,
                    check_value: fn(&str) -> Result<(), String>,
                    slot: &mut String| {
        if let Some(value) = value {
            check(
                problems,
                &format!("doctor.{key}"),
                value,
                check_value(value.get_ref()),
            );
            *slot = value.get_ref().clone();
        }
    };
    text(
        "source_kms_key",
        &raw.source_kms_key,
        check_kms_key,
        &mut settings.source_kms_key,
    );
    text(
        "target_kms_key",
        &raw.target_kms_key,
        check_kms_key,
        &mut settings.target_kms_key,
    );
    text(
        "staging_role",
        &raw.staging_role,
        check_role_name,
        &mut settings.staging_role,
    );
    text(
        "replication_role",
        &raw.replication_role,
        check_role_name,
        &mut settings.replication_role,
    );
    text(
        "agent_role",
        &raw.agent_role,
        check_role_name,
        &mut settings.agent_role,
    );
    text(
        "agent_authorized_role",
        &raw.agent_authorized_role,
        check_role_name,
        &mut settings.agent_authorized_role,
    );
    if let Some(failback) = raw.failback {
        settings.failback = failback;
    }
    if let Some(within) = &raw.agent_seen_within {
        match parse_duration(within.get_ref()) {
            Ok(duration) => settings.agent_seen_within = duration,
            Err(error) => problems.at(
                &within.span(),
                "doctor.agent_seen_within",
                format!("{:?}: {error}", within.get_ref()),
            ),
        }
    }
    settings
}

/// A duration key (`"20m"`, `"2h"`): its value, or `None` when absent or wrong (the problem
/// recorded, naming the key). A deadline longer than `max` is a mistake, not a wish.
fn duration_key(
    problems: &mut Problems<'_>,
    key: &str,
    text: Option<&Text>,
    max: std::time::Duration,
) -> Option<std::time::Duration> {
    let text = text?;
    match parse_duration(text.get_ref()) {
        Ok(d) if d > max => {
            problems.at(
                &text.span(),
                key,
                format!(
                    "{:?} is longer than {} hours (a deadline is minutes or hours, e.g. \"20m\", \"2h\")",
                    text.get_ref(),
                    max.as_secs() / 3600
                ),
            );
            None
        }
        Ok(d) => Some(d),
        Err(error) => {
            problems.at(&text.span(), key, format!("{:?}: {error}", text.get_ref()));
            None
        }
    }
}

/// `[cleanup]`: every key optional (stop A1 and re-protect by default).
fn cleanup_settings(raw: Option<&super::raw::RawCleanup>, problems: &mut Problems<'_>) -> Cleanup {
    let mut settings = Cleanup::default();
    let Some(raw) = raw else {
        return settings;
    };
    settings.terminate_recovery_instances = raw.terminate_recovery_instances;
    settings.stop_source_replication = raw.stop_source_replication;
    if let Some(reprotect) = raw.reprotect {
        settings.reprotect = reprotect;
    }
    if let Some(value) = &raw.source_instances {
        match SourceInstances::ALL
            .into_iter()
            .find(|s| s.as_str() == value.get_ref())
        {
            Some(chosen) => settings.source_instances = chosen,
            None => problems.at(
                &value.span(),
                "cleanup.source_instances",
                format!(
                    "`{}` is not one of \"stop\", \"terminate\", \"keep\"",
                    value.get_ref()
                ),
            ),
        }
    }
    settings
}

/// `[failover]`: both keys optional (fence the source, within 30 minutes, by default).
fn failover_settings(
    raw: Option<&super::raw::RawFailover>,
    problems: &mut Problems<'_>,
) -> super::model::FailoverSettings {
    let mut settings = super::model::FailoverSettings::default();
    let Some(raw) = raw else {
        return settings;
    };
    if let Some(fence) = raw.fence_source {
        settings.fence_source = fence;
    }
    let day = std::time::Duration::from_secs(24 * 3600);
    if let Some(d) = duration_key(
        problems,
        "failover.fence_timeout",
        raw.fence_timeout.as_ref(),
        day,
    ) {
        settings.fence_timeout = d;
    }
    settings
}

/// `[failback]`: every key optional; each one checked for its EC2 format.
fn failback_settings(
    raw: Option<&super::raw::RawFailback>,
    problems: &mut Problems<'_>,
) -> super::model::FailbackSettings {
    let Some(raw) = raw else {
        return Default::default();
    };
    let mut text = |key: &str, value: &Text, check_value: fn(&str) -> Result<(), String>| {
        check(
            problems,
            &format!("failback.{key}"),
            value,
            check_value(value.get_ref()),
        );
        value.get_ref().clone()
    };
    super::model::FailbackSettings {
        subnet_id: raw
            .subnet_id
            .as_ref()
            .map(|v| text("subnet_id", v, check_subnet_id)),
        security_group_ids: raw.security_group_ids.as_ref().map(|groups| {
            groups
                .iter()
                .map(|v| text("security_group_ids", v, check_security_group_id))
                .collect()
        }),
        instance_type: raw
            .instance_type
            .as_ref()
            .map(|v| text("instance_type", v, check_instance_type)),
    }
}

/// Records the problem of a value that failed a format check.
fn check(problems: &mut Problems<'_>, key: &str, value: &Text, result: Result<(), String>) {
    if let Err(message) = result {
        problems.at(&value.span(), key, message);
    }
}

fn runbook_name(
    name: Option<&Text>,
    status: &ReadStatus,
    problems: &mut Problems<'_>,
) -> Option<String> {
    let Some(name) = name else {
        if status.is_complete("name") {
            problems.at(
                &FILE_START,
                "name",
                "missing key `name`: the runbook needs a name (e.g. name = \"payments\")",
            );
        }
        return None;
    };
    check(
        problems,
        "name",
        name,
        check_name(name.get_ref(), "runbook"),
    );
    Some(name.get_ref().clone())
}

/// The longest RTO or RPO a runbook may state: 30 days (beyond that, a typo).
const MAX_OBJECTIVE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

fn objectives(raw: Option<super::raw::RawObjectives>, problems: &mut Problems<'_>) -> Objectives {
    let Some(raw) = raw else {
        return Objectives::default();
    };
    let mut duration = |key: &str, text: Option<Text>| {
        let text = text?;
        match parse_duration(text.get_ref()) {
            Ok(duration) if duration > MAX_OBJECTIVE => {
                problems.at(
                    &text.span(),
                    key,
                    format!(
                        "{:?} is longer than 30 days, which no recovery objective is (expected e.g. \"30m\" or \"4h\")",
                        text.get_ref()
                    ),
                );
                None
            }
            Ok(duration) => Some(duration),
            Err(error) => {
                problems.at(&text.span(), key, format!("{:?}: {error}", text.get_ref()));
                None
            }
        }
    };
    Objectives {
        rto: duration("objectives.rto", raw.rto),
        rpo: duration("objectives.rpo", raw.rpo),
    }
}

fn side(
    which: &str,
    raw: Option<&RawSide>,
    status: &ReadStatus,
    problems: &mut Problems<'_>,
) -> Option<Side> {
    let Some(raw) = raw else {
        if status.is_complete(which) {
            let role = if which == "source" {
                "where the servers run and where failback lands"
            } else {
                "the recovery account and region where DRS replicates"
            };
            problems.at(
                &FILE_START,
                which,
                format!(
                    "missing the [{which}] section: {role} (e.g. [{which}] account_id = \"111111111111\" region = \"us-east-1\")"
                ),
            );
        }
        return None;
    };
    let key = |field: &str| format!("{which}.{field}");
    check(
        problems,
        &key("account_id"),
        &raw.account_id,
        check_account_id(raw.account_id.get_ref()),
    );
    check(
        problems,
        &key("region"),
        &raw.region,
        check_region(raw.region.get_ref()),
    );
    let credentials = match (&raw.profile, &raw.role_arn) {
        (Some(_), Some(role_arn)) => {
            problems.at(
                &role_arn.span(),
                key("role_arn"),
                format!(
                    "[{which}] sets both `profile` and `role_arn`: keep one (a profile can itself assume a role with role_arn in ~/.aws/config)"
                ),
            );
            None
        }
        (Some(profile), None) => {
            if profile.get_ref().trim().is_empty() {
                problems.at(&profile.span(), key("profile"), "the profile name is empty (expected a profile of ~/.aws/config, e.g. \"payments-dr\")");
            }
            Some(Credentials::Profile(profile.get_ref().clone()))
        }
        (None, Some(role_arn)) => {
            match parse_role_arn(role_arn.get_ref()) {
                Ok(account)
                    if account != *raw.account_id.get_ref()
                        && check_account_id(raw.account_id.get_ref()).is_ok() =>
                {
                    problems.at(
                        &role_arn.span(),
                        key("role_arn"),
                        format!(
                            "the role is in account {account} but [{which}] is account {} (the role must be in the account it acts in)",
                            raw.account_id.get_ref()
                        ),
                    );
                }
                Ok(_) => {}
                Err(message) => problems.at(&role_arn.span(), key("role_arn"), message),
            }
            Some(Credentials::AssumeRole {
                role_arn: role_arn.get_ref().clone(),
                external_id: raw.external_id.as_ref().map(|e| e.get_ref().clone()),
            })
        }
        (None, None) => Some(Credentials::DefaultChain),
    };
    if let Some(external_id) = &raw.external_id {
        if raw.role_arn.is_none() {
            problems.at(
                &external_id.span(),
                key("external_id"),
                "`external_id` applies only when assuming a role: add `role_arn` or remove it",
            );
        } else {
            check(
                problems,
                &key("external_id"),
                external_id,
                check_external_id(external_id.get_ref()),
            );
        }
    }
    Some(Side {
        account_id: raw.account_id.get_ref().clone(),
        region: raw.region.get_ref().clone(),
        credentials: credentials?,
    })
}

/// The names of the readable waves, for cross-references; `None` when some wave could not be
/// read, in which case references are not checked.
struct WaveNames(Option<Vec<String>>);

impl WaveNames {
    fn new(waves: &[Element<RawWave>], status: &ReadStatus) -> Self {
        WaveNames(status.is_complete("wave").then(|| {
            waves
                .iter()
                .map(|w| w.value.name.get_ref().clone())
                .collect()
        }))
    }

    /// Records a problem when `reference` names no wave.
    fn check(&self, problems: &mut Problems<'_>, key: &str, reference: &Text, what: &str) {
        let Some(names) = &self.0 else {
            return;
        };
        let name = reference.get_ref();
        if names.iter().any(|n| n == name) {
            return;
        }
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        let expected = if known.is_empty() {
            "there are no [[wave]] sections".to_string()
        } else {
            format!("expected one of {}", quoted_list(&known))
        };
        problems.at(
            &reference.span(),
            key,
            format!(
                "{what} names the unknown wave {name:?}{} ({expected})",
                did_you_mean(name, &known)
            ),
        );
    }
}

fn waves(raw: &[Element<RawWave>], status: &ReadStatus, problems: &mut Problems<'_>) -> Vec<Wave> {
    if raw.is_empty() && status.is_complete("wave") {
        problems.at(
            &FILE_START,
            "wave",
            "no [[wave]] section: a runbook recovers at least one wave (e.g. [[wave]] name = \"db\" servers = [\"s-1234567890abcdef0\"])",
        );
    }
    // Where each wave name and each server was first seen, to report duplicates with a pointer.
    let mut first_wave: HashMap<&str, usize> = HashMap::new();
    let mut first_server: HashMap<&str, &str> = HashMap::new();
    let mut waves = Vec::new();
    for element in raw {
        let wave = &element.value;
        let prefix = format!("wave[{}]", element.index);
        let name = wave.name.get_ref().as_str();
        check(
            problems,
            &format!("{prefix}.name"),
            &wave.name,
            check_name(name, "wave"),
        );
        if let Some(first) = first_wave.insert(name, element.index) {
            problems.at(
                &wave.name.span(),
                format!("{prefix}.name"),
                format!("duplicate wave name {name:?} (wave[{first}] has it already; wave names must be unique)"),
            );
            first_wave.insert(name, first);
        }
        wave_servers(element, &mut first_server, problems);
        wave_contents(element, status, problems);
        let day = std::time::Duration::from_secs(24 * 3600);
        let timeout = |problems: &mut Problems<'_>, key: &str, text: &Option<Text>, default| {
            duration_key(problems, &format!("{prefix}.{key}"), text.as_ref(), day)
                .unwrap_or(default)
        };
        let boot_timeout = timeout(
            problems,
            "boot_timeout",
            &wave.boot_timeout,
            super::model::DEFAULT_BOOT_TIMEOUT,
        );
        let conversion_timeout = timeout(
            problems,
            "conversion_timeout",
            &wave.conversion_timeout,
            super::model::DEFAULT_JOB_TIMEOUT,
        );
        let launch_timeout = timeout(
            problems,
            "launch_timeout",
            &wave.launch_timeout,
            super::model::DEFAULT_JOB_TIMEOUT,
        );
        let actions = wave_actions(element, status, problems);
        waves.push(Wave {
            name: name.to_string(),
            after: wave.after.iter().map(|a| a.get_ref().clone()).collect(),
            servers: wave.servers.iter().map(|s| s.get_ref().clone()).collect(),
            select: wave.select.as_ref().map(|s| Select {
                tags: s.get_ref().tags.get_ref().clone(),
            }),
            optional: wave.optional.iter().map(|s| s.get_ref().clone()).collect(),
            boot_timeout,
            conversion_timeout,
            launch_timeout,
            actions,
        });
    }
    waves
}

/// `[[wave.action]]`: names unique in the wave, a known `when`, exactly one run kind with only
/// its own settings, known operations.
fn wave_actions(
    element: &Element<RawWave>,
    status: &ReadStatus,
    problems: &mut Problems<'_>,
) -> Vec<Action> {
    let mut first_name: HashMap<&str, usize> = HashMap::new();
    let mut actions = Vec::new();
    for (index, raw) in element.value.action.iter().enumerate() {
        let prefix = format!("wave[{}].action[{index}]", element.index);
        let name = raw.name.get_ref().as_str();
        check(
            problems,
            &format!("{prefix}.name"),
            &raw.name,
            check_name(name, "action"),
        );
        if let Some(first) = first_name.insert(name, index) {
            problems.at(
                &raw.name.span(),
                format!("{prefix}.name"),
                format!("duplicate action name {name:?} (action[{first}] of this wave has it already; action names must be unique in their wave)"),
            );
            first_name.insert(name, first);
        }
        let when = ActionWhen::ALL
            .into_iter()
            .find(|w| w.as_str() == raw.when.get_ref());
        if when.is_none() {
            let known = ActionWhen::ALL.map(ActionWhen::as_str);
            problems.at(
                &raw.when.span(),
                format!("{prefix}.when"),
                format!(
                    "`{}` is not a moment of the wave{} (expected one of {})",
                    raw.when.get_ref(),
                    did_you_mean(raw.when.get_ref(), &known),
                    quoted_list(&known)
                ),
            );
        }
        let run = action_run(&prefix, &raw.run, status, problems);
        let ssm = matches!(run, Some(ActionRun::SsmDocument { .. }));
        let operations = match &raw.operations {
            // DRS launches a wave's recovery instances in a failover or a drill only.
            None if ssm => vec![Operation::Failover, Operation::Drill],
            None => Action::DEFAULT_OPERATIONS.to_vec(),
            Some(list) => action_operations(&prefix, list, problems),
        };
        if ssm {
            ssm_placement(&prefix, raw, when, &operations, problems);
        }
        if let (Some(when), Some(run)) = (when, run) {
            actions.push(Action {
                name: name.to_string(),
                when,
                run,
                optional: raw.optional,
                idempotent: raw.idempotent,
                operations,
            });
        }
    }
    actions
}

/// An `ssm_document` action runs on the instances DRS launches for the wave: it reads its
/// result after the wave booted (`after_boot` or later), in a failover or a drill.
fn ssm_placement(
    prefix: &str,
    raw: &super::raw::RawAction,
    when: Option<ActionWhen>,
    operations: &[Operation],
    problems: &mut Problems<'_>,
) {
    if when == Some(ActionWhen::BeforeRecovery) {
        problems.at(
            &raw.when.span(),
            format!("{prefix}.when"),
            "an ssm_document action runs on the wave's recovered instances, after their launch: `when` must be after_boot, before_traffic or after_traffic",
        );
    }
    if let Some(other) = operations
        .iter()
        .find(|o| !matches!(o, Operation::Failover | Operation::Drill))
    {
        problems.at(
            &raw.operations.as_ref().map(|o| o.span()).unwrap_or_default(),
            format!("{prefix}.operations"),
            format!(
                "an ssm_document action runs in the recovery jobs of a failover or a drill, not in a {} (expected some of \"failover\", \"drill\")",
                other.as_str()
            ),
        );
    }
}

/// An action's `operations`: a non-empty list of operation names.
fn action_operations(
    prefix: &str,
    list: &serde_spanned::Spanned<Vec<Text>>,
    problems: &mut Problems<'_>,
) -> Vec<Operation> {
    let known: Vec<&str> = Operation::ALL.iter().map(|o| o.as_str()).collect();
    if list.get_ref().is_empty() {
        problems.at(
            &list.span(),
            format!("{prefix}.operations"),
            format!(
                "`operations` is empty, so the action would never run (expected some of {}, or no `operations` for all but rollback)",
                quoted_list(&known)
            ),
        );
    }
    let mut operations = Vec::new();
    for (i, text) in list.get_ref().iter().enumerate() {
        match text.get_ref().parse::<Operation>() {
            Ok(operation) => operations.push(operation),
            Err(_) => problems.at(
                &text.span(),
                format!("{prefix}.operations[{i}]"),
                format!(
                    "`{}` is not an operation{} (expected one of {})",
                    text.get_ref(),
                    did_you_mean(text.get_ref(), &known),
                    quoted_list(&known)
                ),
            ),
        }
    }
    operations
}

/// A setting of an action's `run`: its key, where it is written, and the kinds that take it.
type RunSetting = (&'static str, Option<Range<usize>>, &'static [&'static str]);

/// An action's `run`: exactly one of the kinds of [`ActionRun::KINDS`], with only the settings
/// that kind takes.
fn action_run(
    prefix: &str,
    run: &serde_spanned::Spanned<RawActionRun>,
    status: &ReadStatus,
    problems: &mut Problems<'_>,
) -> Option<ActionRun> {
    let raw = run.get_ref();
    let key = |field: &str| format!("{prefix}.run.{field}");
    let kinds: Vec<&str> = [
        raw.command.as_ref().map(|_| "command"),
        raw.http.as_ref().map(|_| "http"),
        raw.manual.as_ref().map(|_| "manual"),
        raw.ssm_document.as_ref().map(|_| "ssm_document"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match kinds.as_slice() {
        [] => {
            // An unknown kind (a typo, or a kind this version does not run) was reported as
            // an unknown key already.
            let dropped = status
                .dropped_keys
                .iter()
                .any(|k| k.starts_with(&format!("{prefix}.run.")));
            if !dropped {
                problems.at(
                    &run.span(),
                    format!("{prefix}.run"),
                    format!(
                        "`run` names no action kind (expected one of {}, e.g. run = {{ command = [\"./scripts/promote.sh\"] }})",
                        quoted_list(&ActionRun::KINDS)
                    ),
                );
            }
            return None;
        }
        [_] => {}
        several => {
            problems.at(
                &run.span(),
                format!("{prefix}.run"),
                format!(
                    "`run` names {}: an action runs one thing (split it into several actions)",
                    quoted_list(several)
                ),
            );
            return None;
        }
    }
    let kind = kinds[0];
    // A setting that the kind does not take is a mistake, not something to ignore.
    let settings: [RunSetting; 6] = [
        (
            "timeout",
            raw.timeout.as_ref().map(|t| t.span()),
            &["command", "http", "ssm_document"],
        ),
        (
            "parameters",
            raw.parameters.as_ref().map(|t| t.span()),
            &["ssm_document"],
        ),
        (
            "version",
            raw.version.as_ref().map(|t| t.span()),
            &["ssm_document"],
        ),
        (
            "keep",
            raw.keep.as_ref().map(|t| t.span()),
            &["ssm_document"],
        ),
        (
            "expect_status",
            raw.expect_status.as_ref().map(|t| t.span()),
            &["http"],
        ),
        (
            "expect_body",
            raw.expect_body.as_ref().map(|t| t.span()),
            &["http"],
        ),
    ];
    for (setting, span, kinds) in settings {
        if let Some(span) = span
            && !kinds.contains(&kind)
        {
            problems.at(
                &span,
                key(setting),
                format!(
                    "a {kind} action takes no `{setting}` (it applies to {})",
                    quoted_list(kinds)
                ),
            );
        }
    }
    let day = std::time::Duration::from_secs(24 * 3600);
    let timeout = duration_key(problems, &key("timeout"), raw.timeout.as_ref(), day)
        .unwrap_or(ActionRun::DEFAULT_TIMEOUT);
    if let Some(argv) = &raw.command {
        let argv: Vec<String> = argv.get_ref().iter().map(|a| a.get_ref().clone()).collect();
        if argv.first().is_none_or(|program| program.trim().is_empty()) {
            problems.at(
                &raw.command.as_ref().map(|c| c.span()).unwrap_or_default(),
                key("command"),
                "`command` needs a program first (e.g. command = [\"./scripts/promote.sh\", \"--force\"]; no shell runs it unless you name one, e.g. [\"sh\", \"-c\", \"...\"])",
            );
            return None;
        }
        return Some(ActionRun::Command { argv, timeout });
    }
    if let Some(url) = &raw.http {
        let parsed = url::Url::parse(url.get_ref());
        let ok = parsed
            .as_ref()
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !ok {
            problems.at(
                &url.span(),
                key("http"),
                format!(
                    "{:?} is not an http:// or https:// URL (e.g. \"https://app.internal.example.org/health\")",
                    url.get_ref()
                ),
            );
            return None;
        }
        let expect_status = match &raw.expect_status {
            Some(status) if !(100..=599).contains(status.get_ref()) => {
                problems.at(
                    &status.span(),
                    key("expect_status"),
                    format!(
                        "{} is not an HTTP status (expected 100 to 599, e.g. 200)",
                        status.get_ref()
                    ),
                );
                return None;
            }
            Some(status) => *status.get_ref(),
            None => 200,
        };
        return Some(ActionRun::Http {
            url: url.get_ref().clone(),
            expect_status,
            expect_body: raw.expect_body.as_ref().map(|b| b.get_ref().clone()),
            timeout,
        });
    }
    if let Some(document) = &raw.ssm_document {
        return ssm_document(&key, raw, document, timeout, problems);
    }
    let manual = raw.manual.as_ref()?;
    if manual.get_ref().trim().is_empty() {
        problems.at(
            &manual.span(),
            key("manual"),
            "the instructions are empty (say what the operator does before approving, e.g. manual = \"Promote the read replica (wiki DR-42), then approve.\")",
        );
        return None;
    }
    Some(ActionRun::Manual {
        instructions: manual.get_ref().clone(),
    })
}

/// An `ssm_document` action's settings, checked as DRS checks a launch action (botocore `drs`
/// PutLaunchActionRequest): the document name `([A-Za-z0-9-/:])+`, the version `$DEFAULT`,
/// `$LATEST` or a number, at most 20 parameters whose values are names.
fn ssm_document(
    key: &dyn Fn(&str) -> String,
    raw: &RawActionRun,
    document: &Text,
    timeout: std::time::Duration,
    problems: &mut Problems<'_>,
) -> Option<ActionRun> {
    let name = document.get_ref();
    let name_ok = (1..=1011).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/:".contains(c));
    if !name_ok {
        problems.at(
            &document.span(),
            key("ssm_document"),
            format!(
                "{name:?} is not an SSM document name DRS accepts (letters, digits, `-`, `/`, `:`; e.g. \"AWS-RunShellScript\")"
            ),
        );
        return None;
    }
    let version = raw
        .version
        .as_ref()
        .map(|v| v.get_ref().clone())
        .unwrap_or_else(|| "$DEFAULT".to_string());
    let version_ok = version.len() <= 10
        && (version == "$DEFAULT"
            || version == "$LATEST"
            || (!version.is_empty() && version.chars().all(|c| c.is_ascii_digit())));
    if !version_ok {
        problems.at(
            &raw.version.as_ref().map(|v| v.span()).unwrap_or_default(),
            key("version"),
            format!("{version:?} is not a document version (expected \"$DEFAULT\", \"$LATEST\" or a number)"),
        );
        return None;
    }
    let mut parameters = std::collections::BTreeMap::new();
    if let Some(map) = &raw.parameters {
        if map.get_ref().len() > 20 {
            problems.at(
                &map.span(),
                key("parameters"),
                format!(
                    "{} parameters: DRS takes at most 20 for a launch action",
                    map.get_ref().len()
                ),
            );
            return None;
        }
        for (name, value) in map.get_ref() {
            match ssm_parameter(name, value.get_ref()) {
                Ok(parameter) => {
                    parameters.insert(name.clone(), parameter);
                }
                Err(message) => {
                    problems.at(&value.span(), key(&format!("parameters.{name}")), message)
                }
            }
        }
        if parameters.len() != map.get_ref().len() {
            return None;
        }
    }
    Some(ActionRun::SsmDocument {
        document: name.clone(),
        version,
        parameters,
        keep: raw.keep.as_ref().is_some_and(|k| *k.get_ref()),
        timeout,
    })
}

/// One parameter of an `ssm_document` action: `{ ssm_store = "<name>" }` or
/// `{ dynamic = "<value>" }`. DRS takes a parameter only as a name matching `[A-Za-z0-9.-]+`
/// (botocore `drs` LaunchActionParameterValue): a literal value (commands with spaces, a list)
/// goes in a Parameter Store parameter that the action names.
fn ssm_parameter(name: &str, value: &toml::Value) -> Result<SsmParameter, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the parameter name {name:?} is not one DRS accepts (letters and digits only)"
        ));
    }
    let literal = || {
        format!(
            "DRS takes a launch action's parameter only as a name, not as its value: put the value in a Parameter Store parameter and name it, e.g. {name} = {{ ssm_store = \"dr-{name}\" }} (or {{ dynamic = \"...\" }})"
        )
    };
    let toml::Value::Table(table) = value else {
        return Err(literal());
    };
    let (kind, text) = match table.iter().collect::<Vec<_>>().as_slice() {
        [(kind, toml::Value::String(text))] if *kind == "ssm_store" || *kind == "dynamic" => {
            (kind.as_str(), text.clone())
        }
        _ => return Err(literal()),
    };
    let ok = (1..=1011).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
    if !ok {
        return Err(format!(
            "{text:?} is not a name DRS accepts for a parameter (letters, digits, `.` and `-`, at most 1011 characters; {})",
            literal()
        ));
    }
    Ok(if kind == "ssm_store" {
        SsmParameter::SsmStore(text)
    } else {
        SsmParameter::Dynamic(text)
    })
}

/// Server IDs, servers in two waves, optional servers outside the wave.
fn wave_servers<'r>(
    element: &'r Element<RawWave>,
    first_server: &mut HashMap<&'r str, &'r str>,
    problems: &mut Problems<'_>,
) {
    let wave = &element.value;
    let prefix = format!("wave[{}]", element.index);
    for (i, server) in wave.servers.iter().enumerate() {
        let key = format!("{prefix}.servers[{i}]");
        let id = server.get_ref().as_str();
        if let Err(message) = check_source_server_id(id) {
            problems.at(&server.span(), key, message);
            continue;
        }
        if let Some(other) = first_server.insert(id, wave.name.get_ref()) {
            let message = if other == wave.name.get_ref() {
                format!("{id:?} is listed twice in wave {other:?}")
            } else {
                format!("{id:?} is already in wave {other:?}: a server belongs to one wave only")
            };
            problems.at(&server.span(), key, message);
            first_server.insert(id, other);
        }
    }
    for (i, server) in wave.optional.iter().enumerate() {
        let key = format!("{prefix}.optional[{i}]");
        let id = server.get_ref().as_str();
        if let Err(message) = check_source_server_id(id) {
            problems.at(&server.span(), key, message);
        } else if !wave.servers.iter().any(|s| s.get_ref() == id) {
            problems.at(
                &server.span(),
                key,
                format!("{id:?} is optional but not among this wave's servers (add it to `servers` too, or remove it here)"),
            );
        }
    }
}

/// A wave recovers something: servers listed or selected by tags.
fn wave_contents(element: &Element<RawWave>, status: &ReadStatus, problems: &mut Problems<'_>) {
    let wave = &element.value;
    let prefix = format!("wave[{}]", element.index);
    if let Some(select) = &wave.select {
        let tags = &select.get_ref().tags;
        if tags.get_ref().is_empty() {
            problems.at(
                &tags.span(),
                format!("{prefix}.select.tags"),
                "`select.tags` is empty, which would select nothing (e.g. select = { tags = { App = \"payments\", Tier = \"db\" } })",
            );
        }
        for key in tags.get_ref().keys().filter(|k| k.is_empty()) {
            problems.at(
                &tags.span(),
                format!("{prefix}.select.tags"),
                format!("tag key {key:?} is empty"),
            );
        }
    }
    // A wave with an unreadable key (a typo such as `server`) is not judged on its contents:
    // the unknown key is the cause, already reported.
    let dropped = status
        .dropped_keys
        .iter()
        .any(|key| key.starts_with(&format!("{prefix}.")));
    if wave.servers.is_empty() && wave.select.is_none() && !dropped {
        problems.at(
            &wave.name.span(),
            prefix,
            format!(
                "wave {:?} has neither `servers` nor `select` (e.g. servers = [\"s-1234567890abcdef0\"] or select = {{ tags = {{ App = \"payments\" }} }})",
                wave.name.get_ref()
            ),
        );
    }
}

/// The waves in dependency order; unknown `after` names and cycles are problems.
fn wave_order(
    raw: &[Element<RawWave>],
    status: &ReadStatus,
    problems: &mut Problems<'_>,
) -> Option<Vec<usize>> {
    if !status.is_complete("wave") {
        return None;
    }
    let names = WaveNames::new(raw, status);
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    for (position, element) in raw.iter().enumerate() {
        index_of
            .entry(element.value.name.get_ref())
            .or_insert(position);
    }
    let mut depends_on = Vec::new();
    for element in raw {
        let mut dependencies = Vec::new();
        for (i, after) in element.value.after.iter().enumerate() {
            let key = format!("wave[{}].after[{i}]", element.index);
            match index_of.get(after.get_ref().as_str()) {
                Some(&index) => dependencies.push(index),
                None => names.check(problems, &key, after, "`after`"),
            }
        }
        depends_on.push(dependencies);
    }
    match topological_order(&depends_on) {
        Ok(order) => Some(order),
        Err(cycles) => {
            for cycle in cycles {
                report_cycle(raw, &cycle, problems);
            }
            None
        }
    }
}

fn report_cycle(raw: &[Element<RawWave>], cycle: &[usize], problems: &mut Problems<'_>) {
    let name = |position: usize| raw[position].value.name.get_ref().as_str();
    // Reported at the wave of the cycle written first in the file, on its `after` entry that
    // closes the cycle: that entry most often points forward by mistake.
    let k = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
    let wave = cycle[k];
    let before = cycle[(k + cycle.len() - 1) % cycle.len()];
    let element = &raw[wave];
    let entry = element
        .value
        .after
        .iter()
        .enumerate()
        .find(|(_, a)| a.get_ref() == name(before));
    let (span, key) = match entry {
        Some((i, after)) => (after.span(), format!("wave[{}].after[{i}]", element.index)),
        None => (
            element.value.name.span(),
            format!("wave[{}]", element.index),
        ),
    };
    let message = if cycle.len() == 1 {
        format!(
            "wave {:?} names itself in `after`: a wave cannot wait for itself",
            name(wave)
        )
    } else {
        let mut chain: Vec<&str> = cycle.iter().map(|&p| name(p)).collect();
        chain.push(name(cycle[0]));
        format!(
            "the waves wait for each other in a cycle: {} (`a -> b`: b is after a); remove one of these `after` entries",
            chain.join(" -> ")
        )
    };
    problems.at(&span, key, message);
}

fn load_balancer(
    element: &Element<RawLoadBalancer>,
    waves: &WaveNames,
    source: Option<&Side>,
    target: Option<&Side>,
    problems: &mut Problems<'_>,
) -> LoadBalancer {
    let lb = &element.value;
    let prefix = format!("load_balancer[{}]", element.index);
    waves.check(
        problems,
        &format!("{prefix}.wave"),
        &lb.wave,
        "this load balancer",
    );
    target_group(
        problems,
        &format!("{prefix}.target_group_arn"),
        &lb.target_group_arn,
        target,
        Account::Target,
    );
    if let Some(failback) = &lb.failback_target_group_arn {
        target_group(
            problems,
            &format!("{prefix}.failback_target_group_arn"),
            failback,
            source,
            Account::Source,
        );
    }
    if let Some(drill) = &lb.drill_target_group_arn {
        target_group(
            problems,
            &format!("{prefix}.drill_target_group_arn"),
            drill,
            target,
            Account::Target,
        );
        if drill.get_ref() == lb.target_group_arn.get_ref() {
            problems.at(
                &drill.span(),
                format!("{prefix}.drill_target_group_arn"),
                "the drill target group is the failover target group: a drill would add its instances to production traffic; use a separate, empty target group for drills",
            );
        }
    }
    if let Some(port) = &lb.port
        && *port.get_ref() == 0
    {
        problems.at(
            &port.span(),
            format!("{prefix}.port"),
            "port 0 is not a port (expected 1 to 65535, e.g. 443)",
        );
    }
    LoadBalancer {
        wave: lb.wave.get_ref().clone(),
        target_group_arn: lb.target_group_arn.get_ref().clone(),
        failback_target_group_arn: lb
            .failback_target_group_arn
            .as_ref()
            .map(|a| a.get_ref().clone()),
        drill_target_group_arn: lb
            .drill_target_group_arn
            .as_ref()
            .map(|a| a.get_ref().clone()),
        port: lb.port.as_ref().map(|p| *p.get_ref()),
    }
}

/// A target group ARN, which must be in the account and region of its side.
fn target_group(
    problems: &mut Problems<'_>,
    key: &str,
    arn: &Text,
    side: Option<&Side>,
    account: Account,
) {
    let parsed = match parse_target_group_arn(arn.get_ref()) {
        Ok(parsed) => parsed,
        Err(message) => {
            problems.at(&arn.span(), key, message);
            return;
        }
    };
    let Some(side) = side else {
        return;
    };
    let side_is_valid =
        check_account_id(&side.account_id).is_ok() && check_region(&side.region).is_ok();
    if side_is_valid && (parsed.region != side.region || parsed.account_id != side.account_id) {
        let which = account.as_str();
        let field = key.rsplit('.').next().unwrap_or(key);
        problems.at(
            &arn.span(),
            key,
            format!(
                "the target group is in {} (account {}) but `{field}` belongs to the {which} side, {} (account {}): use a target group of [{which}]",
                parsed.region, parsed.account_id, side.region, side.account_id
            ),
        );
    }
}

fn dns_records(
    raw: &[Element<RawDnsRecord>],
    waves: &WaveNames,
    problems: &mut Problems<'_>,
) -> Vec<DnsRecord> {
    let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut records = Vec::new();
    for element in raw {
        let record = &element.value;
        let prefix = format!("dns[{}]", element.index);
        let key = |field: &str| format!("{prefix}.{field}");
        check(
            problems,
            &key("hosted_zone_id"),
            &record.hosted_zone_id,
            check_hosted_zone_id(record.hosted_zone_id.get_ref()),
        );
        check(
            problems,
            &key("name"),
            &record.name,
            check_dns_name(record.name.get_ref()),
        );
        let account = match record.account.get_ref().as_str() {
            "source" => Some(Account::Source),
            "target" => Some(Account::Target),
            other => {
                problems.at(
                    &record.account.span(),
                    key("account"),
                    format!("{other:?} is not a side (expected \"source\" or \"target\": whose credentials own the hosted zone)"),
                );
                None
            }
        };
        // Route 53 takes a TTL of 0 to 2147483647 seconds (RFC 2181 section 8).
        if let Some(ttl) = record.ttl
            && ttl > i32::MAX as u32
        {
            problems.at(
                &record.name.span(),
                key("ttl"),
                format!("a TTL of {ttl} seconds is above Route 53's maximum of 2147483647 (expected e.g. 60)"),
            );
        }
        let record_type = RecordType::from_name(record.record_type.get_ref());
        if record_type.is_none() {
            problems.at(
                &record.record_type.span(),
                key("type"),
                format!(
                    "{:?} is not a record type a cutover can write (expected \"A\", \"AAAA\" or \"CNAME\")",
                    record.record_type.get_ref()
                ),
            );
        }
        let points_to = points_to(record, &prefix, record_type, waves, problems);
        let weights = weights(record, &prefix, problems);
        if let Some(id) = &record.set_identifier
            && !(1..=128).contains(&id.get_ref().chars().count())
        {
            problems.at(
                &id.span(),
                key("set_identifier"),
                "a set identifier has 1 to 128 characters (Route 53's SetIdentifier), e.g. \"dr\"",
            );
        }
        let identity = (
            record.hosted_zone_id.get_ref().clone(),
            record
                .name
                .get_ref()
                .trim_end_matches('.')
                .to_ascii_lowercase(),
            record.record_type.get_ref().clone(),
        );
        if let Some(first) = seen.insert(identity, element.index) {
            problems.at(
                &record.name.span(),
                key("name"),
                format!("dns[{first}] already cuts over this record (same zone, name and type): keep one"),
            );
        }
        if let (Some(account), Some(record_type), Some(points_to)) =
            (account, record_type, points_to)
        {
            records.push(DnsRecord {
                hosted_zone_id: record.hosted_zone_id.get_ref().clone(),
                account,
                name: record.name.get_ref().clone(),
                record_type,
                ttl: record.ttl,
                points_to,
                set_identifier: record.set_identifier.as_ref().map(|s| s.get_ref().clone()),
                weights,
            });
        }
    }
    records
}

/// `[[routing_control]]`: an ARC routing control ARN, a side, `On` or `Off`, and at least one
/// cluster endpoint (URL and region), each ARN once.
fn routing_controls(
    raw: &[Element<RawRoutingControl>],
    problems: &mut Problems<'_>,
) -> Vec<RoutingControl> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut controls = Vec::new();
    for element in raw {
        let control = &element.value;
        let key = |field: &str| format!("routing_control[{}].{field}", element.index);
        let arn = control.arn.get_ref();
        let parts: Vec<&str> = arn.split(':').collect();
        let arn_ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "route53-recovery-control"
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && parts[5].starts_with("controlpanel/")
            && parts[5].contains("/routingcontrol/");
        if !arn_ok {
            problems.at(
                &control.arn.span(),
                key("arn"),
                format!("{arn:?} is not a routing control ARN (expected arn:aws:route53-recovery-control::111111111111:controlpanel/<id>/routingcontrol/<id>)"),
            );
        }
        if let Some(first) = seen.insert(arn.clone(), element.index) {
            problems.at(
                &control.arn.span(),
                key("arn"),
                format!("routing_control[{first}] already sets this routing control: keep one"),
            );
        }
        let account = match control.account.get_ref().as_str() {
            "source" => Some(Account::Source),
            "target" => Some(Account::Target),
            other => {
                problems.at(
                    &control.account.span(),
                    key("account"),
                    format!("{other:?} is not a side (expected \"source\" or \"target\": whose credentials change the routing control)"),
                );
                None
            }
        };
        let state = control.state.get_ref();
        if state != "On" && state != "Off" {
            problems.at(
                &control.state.span(),
                key("state"),
                format!("{state:?} is not a routing control state (expected \"On\" or \"Off\": its state after the cutover)"),
            );
        }
        if control.endpoints.get_ref().is_empty() {
            problems.at(
                &control.endpoints.span(),
                key("endpoints"),
                "list the cluster's endpoints (e.g. endpoints = [{ url = \"https://host-aaaaaa.us-east-1.example.com/v1\", region = \"us-east-1\" }]): the cutover tries each in turn",
            );
        }
        for endpoint in control.endpoints.get_ref() {
            let url = endpoint.url.get_ref();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                problems.at(
                    &endpoint.url.span(),
                    key("endpoints.url"),
                    format!("{url:?} is not an endpoint URL (expected https://..., as ListClusters gives it)"),
                );
            }
            if endpoint.region.get_ref().is_empty() {
                problems.at(
                    &endpoint.region.span(),
                    key("endpoints.region"),
                    "the endpoint's region (e.g. \"us-west-2\"): calls are signed for it",
                );
            }
        }
        if let Some(account) = account {
            controls.push(RoutingControl {
                arn: arn.clone(),
                account,
                state: state.clone(),
                endpoints: control
                    .endpoints
                    .get_ref()
                    .iter()
                    .map(|e| ClusterEndpoint {
                        url: e.url.get_ref().clone(),
                        region: e.region.get_ref().clone(),
                    })
                    .collect(),
            });
        }
    }
    controls
}

/// `weights`: only with `set_identifier`, naming it, each 0 to 255 (Route 53's Weight).
fn weights(
    record: &RawDnsRecord,
    prefix: &str,
    problems: &mut Problems<'_>,
) -> BTreeMap<String, u8> {
    let Some(raw) = &record.weights else {
        return BTreeMap::new();
    };
    let key = format!("{prefix}.weights");
    let mut weights = BTreeMap::new();
    for (id, weight) in raw.get_ref() {
        match u8::try_from(*weight) {
            Ok(weight) => {
                weights.insert(id.clone(), weight);
            }
            Err(_) => problems.at(
                &raw.span(),
                format!("{key}.{id}"),
                format!("a weight is 0 to 255 (Route 53's Weight), not {weight}"),
            ),
        }
    }
    match &record.set_identifier {
        None => problems.at(
            &raw.span(),
            key,
            "`weights` applies to a weighted group: set `set_identifier` to the set the cutover writes (e.g. set_identifier = \"dr\")",
        ),
        Some(id) if !raw.get_ref().contains_key(id.get_ref()) => problems.at(
            &raw.span(),
            key,
            format!(
                "`weights` has no weight for the set written, {:?}: add it (e.g. weights = {{ {} = 100, primary = 0 }})",
                id.get_ref(),
                id.get_ref()
            ),
        ),
        Some(_) => {}
    }
    weights
}

/// `points_to`: exactly one of a wave and a load balancer (with its zone).
fn points_to(
    record: &RawDnsRecord,
    prefix: &str,
    record_type: Option<RecordType>,
    waves: &WaveNames,
    problems: &mut Problems<'_>,
) -> Option<PointsTo> {
    let target = record.points_to.get_ref();
    let span = record.points_to.span();
    let key = format!("{prefix}.points_to");
    match (&target.wave, &target.load_balancer) {
        (Some(_), Some(_)) | (None, None) => {
            problems.at(
                &span,
                key,
                "set exactly one of `wave` and `load_balancer` (e.g. points_to = { wave = \"app\" } or points_to = { load_balancer = \"my-alb-123.us-west-2.elb.amazonaws.com\", zone = \"Z1H1FL5HABSF5\" })",
            );
            None
        }
        (Some(wave), None) => {
            waves.check(problems, &format!("{key}.wave"), wave, "this record");
            if let Some(zone) = &target.zone {
                problems.at(&zone.span(), format!("{key}.zone"), "`zone` applies only with `load_balancer` (the load balancer's hosted zone): remove it");
            }
            if record_type == Some(RecordType::Cname) {
                problems.at(
                    &record.record_type.span(),
                    format!("{prefix}.type"),
                    "a CNAME cannot point at a wave's instances (they are IP addresses): use type \"A\"",
                );
            }
            Some(PointsTo::Wave(wave.get_ref().clone()))
        }
        (None, Some(dns_name)) => {
            check(
                problems,
                &format!("{key}.load_balancer"),
                dns_name,
                check_dns_name(dns_name.get_ref()),
            );
            let Some(zone) = &target.zone else {
                problems.at(
                    &span,
                    key,
                    "`load_balancer` needs `zone`, the load balancer's canonical hosted zone ID (e.g. zone = \"Z1H1FL5HABSF5\")",
                );
                return None;
            };
            check(
                problems,
                &format!("{key}.zone"),
                zone,
                check_hosted_zone_id(zone.get_ref()),
            );
            Some(PointsTo::LoadBalancer {
                dns_name: dns_name.get_ref().clone(),
                zone: zone.get_ref().clone(),
            })
        }
    }
}

fn approvals(raw: Option<&super::raw::RawApprovals>, problems: &mut Problems<'_>) -> Approvals {
    let mut before = Vec::new();
    let known: Vec<&str> = StepKind::ALL.iter().map(|k| k.as_str()).collect();
    for (i, name) in raw
        .map(|a| a.before.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match StepKind::from_name(name.get_ref()) {
            Some(kind) if !before.contains(&kind) => before.push(kind),
            Some(_) => {}
            None => problems.at(
                &name.span(),
                format!("approvals.before[{i}]"),
                format!(
                    "{:?} is not a step kind{} (expected one of {})",
                    name.get_ref(),
                    did_you_mean(name.get_ref(), &known),
                    quoted_list(&known)
                ),
            ),
        }
    }
    Approvals { before }
}
