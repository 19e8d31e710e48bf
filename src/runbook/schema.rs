//! `drs-runbook schema`: a JSON Schema (draft 2020-12) of the runbook file, for editors (taplo,
//! VS Code's Even Better TOML) and CI linters.
//!
//! It is built here from one table per section. It cannot drift from the parser: the unit test
//! `every_section_lists_exactly_the_keys_the_parser_accepts` asks each serde type of `raw` which
//! keys it accepts (through its own `deny_unknown_fields` error) and compares them with the
//! schema's, and the value lists (step kinds, record types, accounts) come from the model's own
//! constants. The schema says what a file may contain; `drs-runbook validate` remains the
//! authority on what it means (wave references, ARNs against their account, ...).

use serde_json::{Map, Value, json};

use super::model::{ActionWhen, RecordType, StepKind};

/// The `$id` of the schema (its version follows the runbook format's).
pub const SCHEMA_ID: &str = "https://drs-runbook.dev/schema/runbook-1.json";

/// One key of a section.
struct Key {
    name: &'static str,
    required: bool,
    schema: Value,
    description: &'static str,
}

fn key(name: &'static str, schema: Value, description: &'static str) -> Key {
    Key {
        name,
        required: false,
        schema,
        description,
    }
}

fn required(name: &'static str, schema: Value, description: &'static str) -> Key {
    Key {
        required: true,
        ..key(name, schema, description)
    }
}

fn string() -> Value {
    json!({ "type": "string", "minLength": 1 })
}

fn pattern(pattern: &str, example: &str) -> Value {
    json!({ "type": "string", "pattern": pattern, "examples": [example] })
}

fn duration() -> Value {
    pattern(r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$", "1h30m")
}

fn strings(item: Value) -> Value {
    json!({ "type": "array", "items": item })
}

fn one_of_strings(values: impl IntoIterator<Item = &'static str>) -> Value {
    json!({ "type": "string", "enum": values.into_iter().collect::<Vec<_>>() })
}

fn account_id() -> Value {
    pattern("^[0-9]{12}$", "111111111111")
}

fn server_id() -> Value {
    pattern("^s-[0-9a-f]{17}$", "s-1234567890abcdef0")
}

fn target_group_arn() -> Value {
    pattern(
        "^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/.+$",
        "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123456789abcdef",
    )
}

/// An object with exactly these keys.
fn object(description: &str, keys: Vec<Key>) -> Value {
    let mut properties = Map::new();
    let mut needed = Vec::new();
    for k in keys {
        let mut schema = k.schema;
        if let Value::Object(map) = &mut schema {
            map.insert("description".into(), Value::from(k.description));
        }
        properties.insert(k.name.to_string(), schema);
        if k.required {
            needed.push(k.name);
        }
    }
    let mut object = json!({
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": false,
    });
    if !needed.is_empty() {
        object["required"] = json!(needed);
    }
    object
}

/// `[[wave.action]]`: one action and its `run` (one kind key and that kind's settings).
fn action() -> Value {
    let run = object(
        "What the action runs: exactly one of command, http, manual, ssm_document, with that kind's settings.",
        vec![
            key(
                "command",
                json!({ "type": "array", "minItems": 1, "items": { "type": "string" } }),
                "A local process (no shell), run in the runbook's directory; its exit status decides.",
            ),
            key(
                "http",
                pattern("^https?://.+$", "https://app.internal.example.org/health"),
                "GET this URL until it answers expect_status (and contains expect_body) or the timeout.",
            ),
            key(
                "manual",
                string(),
                "Instructions for the operator: the action is an approval gate that shows them.",
            ),
            key(
                "ssm_document",
                pattern("^[A-Za-z0-9/:-]{1,1011}$", "AWS-RunShellScript"),
                "A DRS post-launch action of the wave's source servers: DRS runs this SSM document on each recovered instance (failover and drill; when after_boot or later).",
            ),
            key(
                "parameters",
                json!({
                    "type": "object",
                    "maxProperties": 20,
                    "propertyNames": { "pattern": "^[A-Za-z0-9]+$" },
                    "additionalProperties": {
                        "type": "object",
                        "minProperties": 1,
                        "maxProperties": 1,
                        "additionalProperties": false,
                        "properties": {
                            "ssm_store": pattern("^[A-Za-z0-9.-]{1,1011}$", "dr-app-check"),
                            "dynamic": pattern("^[A-Za-z0-9.-]{1,1011}$", "value"),
                        },
                    },
                }),
                "ssm_document: the document's parameters, each a name DRS resolves: { ssm_store = \"<Parameter Store parameter>\" } or { dynamic = \"...\" }.",
            ),
            key(
                "version",
                pattern("^(\\$DEFAULT|\\$LATEST|[0-9]{1,10})$", "$DEFAULT"),
                "ssm_document: the document version (default $DEFAULT).",
            ),
            key(
                "keep",
                json!({ "type": "boolean" }),
                "ssm_document: leave the launch action on the servers after the run (default false: removed).",
            ),
            key(
                "timeout",
                duration(),
                "command, http and ssm_document: how long it may take (default 10m).",
            ),
            key(
                "expect_status",
                json!({ "type": "integer", "minimum": 100, "maximum": 599 }),
                "http: the status that passes (default 200).",
            ),
            key(
                "expect_body",
                string(),
                "http: a substring the body must contain to pass.",
            ),
        ],
    );
    object(
        "A runbook action of the wave.",
        vec![
            required(
                "name",
                string(),
                "Unique in the wave; the step is action:<wave>:<name>.",
            ),
            required(
                "when",
                one_of_strings(ActionWhen::ALL.map(ActionWhen::as_str)),
                "Where it runs among the wave's steps.",
            ),
            required("run", run, "What it runs."),
            key(
                "optional",
                json!({ "type": "boolean" }),
                "A failed optional action is reported and passed over (default false).",
            ),
            key(
                "idempotent",
                json!({ "type": "boolean" }),
                "Whether it may run again after a crash left it in doubt (default false: the run waits for an operator).",
            ),
            key(
                "operations",
                json!({ "type": "array", "minItems": 1, "items": { "type": "string", "enum": ["failover", "drill", "failback", "rollback"] } }),
                "The operations that run it (default: failover, drill, failback).",
            ),
        ],
    )
}

/// Every section with its keys, by the name serde reads it under in `raw`.
fn sections() -> Vec<(&'static str, Value)> {
    let side = |role: &'static str| {
        object(
            role,
            vec![
                required("account_id", account_id(), "The AWS account ID."),
                required(
                    "region",
                    pattern("^[a-z]{2}(-[a-z]+)+-[0-9]+$", "us-east-1"),
                    "The AWS region.",
                ),
                key("profile", string(), "The AWS profile to use for this side."),
                key(
                    "role_arn",
                    pattern(
                        "^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$",
                        "arn:aws:iam::222222222222:role/DrsRunbook",
                    ),
                    "A role to assume in this account.",
                ),
                key(
                    "external_id",
                    string(),
                    "The external ID of the role assumption.",
                ),
            ],
        )
    };
    let accounts = ["source", "target"];
    vec![
        (
            "objectives",
            object(
                "The objectives a run is measured against.",
                vec![
                    key(
                        "rto",
                        duration(),
                        "Recovery time objective: run start -> traffic served by recovered servers.",
                    ),
                    key(
                        "rpo",
                        duration(),
                        "Recovery point objective: declared disaster time - data timestamp of the snapshot used.",
                    ),
                ],
            ),
        ),
        (
            "source",
            side("Where production (A1) runs and where failback lands."),
        ),
        (
            "target",
            side("The recovery account and region where DRS replicates (B1)."),
        ),
        (
            "wave",
            object(
                "A group of source servers recovered together, after the waves it names.",
                vec![
                    required("name", string(), "The wave's name, unique in the runbook."),
                    key(
                        "after",
                        strings(string()),
                        "Waves that must be recovered first.",
                    ),
                    key("servers", strings(server_id()), "DRS source server IDs."),
                    key(
                        "select",
                        object(
                            "Source servers selected by their tags.",
                            vec![required(
                                "tags",
                                json!({ "type": "object", "minProperties": 1, "additionalProperties": { "type": "string" } }),
                                "Every tag must match.",
                            )],
                        ),
                        "Select source servers by tags instead of (or besides) listing them.",
                    ),
                    key(
                        "optional",
                        strings(server_id()),
                        "Servers whose failure does not fail the wave.",
                    ),
                    key(
                        "boot_timeout",
                        duration(),
                        "How long the wave's critical instances have to run and pass both EC2 status checks (default 20m).",
                    ),
                    key(
                        "conversion_timeout",
                        duration(),
                        "How long snapshot_conversion waits for the wave's jobs' snapshots and conversions before it fails as stuck (default 2h).",
                    ),
                    key(
                        "launch_timeout",
                        duration(),
                        "How long launch waits for the wave's jobs to end before it fails as stuck (default 2h).",
                    ),
                    key(
                        "action",
                        json!({ "type": "array", "items": action() }),
                        "The wave's actions ([[wave.action]]): steps action:<wave>:<name> of the plan.",
                    ),
                ],
            ),
        ),
        (
            "load_balancer",
            object(
                "A target group the wave's recovered instances are registered in.",
                vec![
                    required("wave", string(), "The wave whose instances it serves."),
                    required(
                        "target_group_arn",
                        target_group_arn(),
                        "The production target group in the target account and region.",
                    ),
                    key(
                        "failback_target_group_arn",
                        target_group_arn(),
                        "The target group in the source account used at failback.",
                    ),
                    key(
                        "drill_target_group_arn",
                        target_group_arn(),
                        "The target group drills register drill instances in (never production).",
                    ),
                    key(
                        "port",
                        json!({ "type": "integer", "minimum": 1, "maximum": 65535 }),
                        "The port targets are registered on.",
                    ),
                ],
            ),
        ),
        (
            "dns",
            object(
                "A Route 53 record cut over to the recovered servers.",
                vec![
                    required(
                        "hosted_zone_id",
                        pattern("^Z[0-9A-Z]+$", "Z0123456789ABCDEFGHIJ"),
                        "The hosted zone.",
                    ),
                    required(
                        "account",
                        one_of_strings(accounts),
                        "Whose credentials own the zone.",
                    ),
                    required(
                        "name",
                        string(),
                        "The record name (a trailing dot is optional).",
                    ),
                    required(
                        "type",
                        one_of_strings(RecordType::ALL.iter().map(|t| t.as_str())),
                        "The record type.",
                    ),
                    key(
                        "ttl",
                        json!({ "type": "integer", "minimum": 0, "maximum": 2_147_483_647 }),
                        "The TTL in seconds.",
                    ),
                    required(
                        "points_to",
                        object(
                            "Exactly one of `wave` and `load_balancer` (with `zone`).",
                            vec![
                                key(
                                    "wave",
                                    string(),
                                    "The wave whose recovered instances' IPs the record gets.",
                                ),
                                key(
                                    "load_balancer",
                                    string(),
                                    "A load balancer DNS name (an alias target).",
                                ),
                                key("zone", string(), "The load balancer's hosted zone ID."),
                            ],
                        ),
                        "What the record points to after the cutover.",
                    ),
                    key(
                        "set_identifier",
                        json!({ "type": "string", "minLength": 1, "maxLength": 128 }),
                        "The set of a policy group (weighted, failover, latency, ...) to write; its routing fields are kept as found.",
                    ),
                    key(
                        "weights",
                        json!({ "type": "object", "additionalProperties": { "type": "integer", "minimum": 0, "maximum": 255 } }),
                        "Weighted groups: the weight of each set (by set identifier) at cutover, restored on rollback.",
                    ),
                ],
            ),
        ),
        (
            "routing_control",
            object(
                "A Route 53 ARC routing control the cutover sets through the cluster's data plane.",
                vec![
                    required("arn", string(), "The routing control ARN."),
                    required(
                        "account",
                        one_of_strings(accounts),
                        "Whose credentials change it.",
                    ),
                    required(
                        "state",
                        one_of_strings(["On", "Off"].into_iter()),
                        "Its state after the cutover (a failback sets the other one).",
                    ),
                    required(
                        "endpoints",
                        json!({ "type": "array", "minItems": 1, "items": {
                            "type": "object", "additionalProperties": false,
                            "required": ["url", "region"],
                            "properties": {
                                "url": { "type": "string", "description": "The cluster endpoint URL." },
                                "region": { "type": "string", "description": "The endpoint's region (calls are signed for it)." }
                            }
                        } }),
                        "The cluster's endpoints, tried in turn.",
                    ),
                ],
            ),
        ),
        (
            "approvals",
            object(
                "Steps that wait for an operator.",
                vec![key(
                    "before",
                    strings(one_of_strings(StepKind::ALL.iter().map(|k| k.as_str()))),
                    "Step kinds that wait for an operator (skipped with --yes).",
                )],
            ),
        ),
        (
            "cleanup",
            object(
                "What failback cleans up.",
                vec![
                    key(
                        "terminate_recovery_instances",
                        json!({ "type": "boolean" }),
                        "Terminate the recovery instances after a successful failback.",
                    ),
                    key(
                        "stop_source_replication",
                        json!({ "type": "boolean" }),
                        "Stop the old source's replication (refused at preflight while reprotect is on: it would stop B1 protecting A4).",
                    ),
                    key(
                        "source_instances",
                        one_of_strings(
                            crate::runbook::SourceInstances::ALL
                                .iter()
                                .map(|s| s.as_str()),
                        ),
                        "What a failback does to the original source instances (A1): stop (default), terminate, or keep (refused at preflight while reprotect is on).",
                    ),
                    key(
                        "reprotect",
                        json!({ "type": "boolean" }),
                        "After the cutback, ReverseReplication on each A3 so that B1 protects A4 instead of A1 (default true; not in failback drills).",
                    ),
                ],
            ),
        ),
        (
            "failover",
            object(
                "How a planned failover fences the source.",
                vec![
                    key(
                        "fence_source",
                        json!({ "type": "boolean" }),
                        "Stop the source instances (A1) and wait until replication has caught up before recovering, for zero data loss (default true; planned failovers only).",
                    ),
                    key(
                        "fence_timeout",
                        duration(),
                        "How long fence_source waits for the instances to stop and replication to catch up (default 30m).",
                    ),
                ],
            ),
        ),
        (
            "failback",
            object(
                "The launch settings a failback gives each A2 (a new source server in the origin) before it launches A3.",
                vec![
                    key(
                        "subnet_id",
                        pattern(
                            "^subnet-([0-9a-f]{8}|[0-9a-f]{17})$",
                            "subnet-0123456789abcdef0",
                        ),
                        "The subnet A4 launches in (default: the old source instance A1's); preflight checks it is in the VPC of the failback target groups.",
                    ),
                    key(
                        "security_group_ids",
                        strings(pattern(
                            "^sg-([0-9a-f]{8}|[0-9a-f]{17})$",
                            "sg-0123456789abcdef0",
                        )),
                        "The security groups of A4 (default: as in A2's launch template).",
                    ),
                    key(
                        "instance_type",
                        pattern("^[a-z][a-z0-9-]+\\.[a-z0-9]+$", "m5.large"),
                        "The instance type of A4 (default: as in A2's launch template); right-sizing is turned off so that it applies.",
                    ),
                ],
            ),
        ),
        (
            "recovery",
            object(
                "How a failover or drill orders its waves' recovery.",
                vec![key(
                    "convert_ahead",
                    json!({ "type": "boolean", "default": true }),
                    "Convert ahead, boot in order (default true): every wave's recovery job starts at once, waves with `after` launched STOPPED and started as their `after` waves pass the health gate. false: each wave's recovery starts after its `after` waves passed the gate.",
                )],
            ),
        ),
        (
            "doctor",
            object(
                "Which roles and keys `drs-runbook doctor` checks (the standard DRS names apply by default).",
                vec![
                    key(
                        "source_kms_key",
                        string(),
                        "The source account's EBS KMS key.",
                    ),
                    key(
                        "target_kms_key",
                        string(),
                        "The target account's EBS KMS key.",
                    ),
                    key("staging_role", string(), "The staging role name."),
                    key("replication_role", string(), "The replication role name."),
                    key("agent_role", string(), "The replication agent role name."),
                    key(
                        "agent_authorized_role",
                        string(),
                        "The agent-authorized role name.",
                    ),
                    key(
                        "failback",
                        json!({ "type": "boolean" }),
                        "Check the failback setup too.",
                    ),
                    key(
                        "agent_seen_within",
                        duration(),
                        "How recently every agent must have been seen.",
                    ),
                ],
            ),
        ),
    ]
}

/// The JSON Schema of a runbook file.
pub fn runbook_schema() -> Value {
    let mut properties = Map::new();
    properties.insert(
        "name".into(),
        json!({ "type": "string", "minLength": 1, "description": "The runbook's name." }),
    );
    properties.insert(
        "description".into(),
        json!({ "type": "string", "description": "What the runbook recovers." }),
    );
    for (name, schema) in sections() {
        let schema = match name {
            // Arrays of tables: [[wave]], [[load_balancer]], [[dns]].
            "wave" => json!({ "type": "array", "minItems": 1, "items": schema }),
            "load_balancer" | "dns" | "routing_control" => {
                json!({ "type": "array", "items": schema })
            }
            _ => schema,
        };
        properties.insert(name.to_string(), schema);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "drs-runbook runbook",
        "description": "A disaster-recovery runbook for drs-runbook (TOML). `drs-runbook validate` checks what the schema cannot: references between sections, ARNs against their account and region, wave order.",
        "type": "object",
        "required": ["name", "source", "target", "wave"],
        "properties": properties,
        "additionalProperties": false,
    })
}

/// The top-level keys the schema describes.
#[cfg(test)]
fn top_level_keys() -> Vec<String> {
    let mut keys: Vec<String> = runbook_schema()["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::super::raw;
    use super::*;
    use serde::de::DeserializeOwned;

    /// The keys a serde type of `raw` accepts, read from its own `deny_unknown_fields` error
    /// ("unknown field `...`, expected one of `a`, `b`").
    fn accepted_keys<T: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let error =
            toml::from_str::<T>("__not_a_key__ = 1").expect_err("an unknown key is refused");
        let message = error.message().to_string();
        let (_, expected) = message
            .split_once("expected")
            .unwrap_or_else(|| panic!("serde names the keys it expects: {message}"));
        let mut keys: Vec<String> = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    fn schema_keys(section: &Value) -> Vec<String> {
        let mut keys: Vec<String> = section["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn every_section_lists_exactly_the_keys_the_parser_accepts() {
        let sections: std::collections::BTreeMap<_, _> = sections().into_iter().collect();
        let accepted = [
            ("objectives", accepted_keys::<raw::RawObjectives>()),
            ("source", accepted_keys::<raw::RawSide>()),
            ("target", accepted_keys::<raw::RawSide>()),
            ("wave", accepted_keys::<raw::RawWave>()),
            ("load_balancer", accepted_keys::<raw::RawLoadBalancer>()),
            ("dns", accepted_keys::<raw::RawDnsRecord>()),
            ("routing_control", accepted_keys::<raw::RawRoutingControl>()),
            ("approvals", accepted_keys::<raw::RawApprovals>()),
            ("cleanup", accepted_keys::<raw::RawCleanup>()),
            ("recovery", accepted_keys::<raw::RawRecovery>()),
            ("doctor", accepted_keys::<raw::RawDoctor>()),
            ("failover", accepted_keys::<raw::RawFailover>()),
            ("failback", accepted_keys::<raw::RawFailback>()),
        ];
        for (name, keys) in &accepted {
            assert_eq!(
                &schema_keys(&sections[name]),
                keys,
                "the schema's [{name}] keys differ from what the parser accepts"
            );
        }
        assert_eq!(
            accepted.len(),
            sections.len(),
            "every schema section is checked"
        );
        let wave = &sections["wave"];
        assert_eq!(
            schema_keys(&wave["properties"]["select"]),
            accepted_keys::<raw::RawSelect>()
        );
        let action = &wave["properties"]["action"]["items"];
        assert_eq!(schema_keys(action), accepted_keys::<raw::RawAction>());
        assert_eq!(
            schema_keys(&action["properties"]["run"]),
            accepted_keys::<raw::RawActionRun>()
        );
        let operations = &action["properties"]["operations"]["items"]["enum"];
        let names: Vec<&str> = crate::store::Operation::ALL
            .iter()
            .map(|o| o.as_str())
            .collect();
        assert_eq!(operations, &json!(names));
        assert_eq!(
            schema_keys(&sections["dns"]["properties"]["points_to"]),
            accepted_keys::<raw::RawPointsTo>()
        );
        let mut top: Vec<String> = super::super::document::TOP_LEVEL_KEYS
            .iter()
            .map(|k| k.to_string())
            .collect();
        top.sort();
        assert_eq!(top_level_keys(), top);
    }

    #[test]
    fn value_lists_come_from_the_model() {
        let schema = runbook_schema();
        let before = &schema["properties"]["approvals"]["properties"]["before"]["items"]["enum"];
        assert_eq!(before.as_array().unwrap().len(), StepKind::ALL.len());
        assert!(before.as_array().unwrap().contains(&json!("dns_cutover")));
        let types = &schema["properties"]["dns"]["items"]["properties"]["type"]["enum"];
        assert_eq!(types, &json!(["A", "AAAA", "CNAME"]));
    }
}
