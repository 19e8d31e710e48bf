//! Launch configuration templates: a region's default launch settings for the source servers
//! DRS adds there (CreateLaunchConfigurationTemplate, DescribeLaunchConfigurationTemplates).
//! A seeded region has none: every default is off, "launch into source instance" included
//! (real-aws-gaps.md 4: the prerequisite check of [`check_launch_into_source`] applies once a
//! user turns it on).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::model::{LaunchConfigurationTemplate, SourceServer};
use super::views::region;
use super::{Ctx, Done, DrsError, Scope, hex_id, input};
use crate::sim::World;

/// The members of CreateLaunchConfigurationTemplateRequest (botocore `drs`), each with its
/// JSON type; `tags` is kept apart.
const MEMBERS: &[(&str, &str)] = &[
    ("copyPrivateIp", "boolean"),
    ("copyTags", "boolean"),
    ("exportBucketArn", "string"),
    ("launchDisposition", "string"),
    ("launchIntoSourceInstance", "boolean"),
    ("licensing", "object"),
    ("postLaunchEnabled", "boolean"),
    ("targetInstanceTypeRightSizingMethod", "string"),
];

/// The tag an instance carries when DRS may launch into it (DRS user guide, "Default DRS launch
/// settings", launch into source instance).
pub(super) const LAUNCH_INTO_TAG: (&str, &str) = ("AWSDRS", "AllowLaunchingIntoThisInstance");

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Number(_) => "number",
        Value::Null => "null",
    }
}

fn template_json(scope: &Scope, t: &LaunchConfigurationTemplate) -> Value {
    let mut out = Value::Object(t.settings.clone());
    out["launchConfigurationTemplateID"] = json!(t.id);
    out["arn"] = json!(scope.arn("launch-configuration-template", &t.id));
    out
}

/// CreateLaunchConfigurationTemplate: every member checked for its type (the enums for their
/// values), stored, and answered back with its ID (`lct-` + 17 hex digits) and ARN.
pub(super) fn create(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let Value::Object(members) = &body else {
        return Err(DrsError::field("body", "must be a JSON object"));
    };
    let mut settings = Map::new();
    for (key, value) in members {
        if key == "tags" {
            continue;
        }
        let Some((_, kind)) = MEMBERS.iter().find(|(name, _)| name == key) else {
            return Err(DrsError::field(
                key,
                format!("{key} is not a member of CreateLaunchConfigurationTemplateRequest"),
            ));
        };
        if json_type(value) != *kind {
            return Err(DrsError::field(key, format!("must be a {kind}")));
        }
        let allowed: &[&str] = match key.as_str() {
            "launchDisposition" => &["STOPPED", "STARTED"],
            "targetInstanceTypeRightSizingMethod" => &["NONE", "BASIC", "IN_AWS"],
            _ => &[],
        };
        if !allowed.is_empty() && !allowed.iter().any(|a| value == a) {
            return Err(DrsError::field(
                key,
                format!("{value} is not one of {}", allowed.join(", ")),
            ));
        }
        settings.insert(key.clone(), value.clone());
    }
    let drs = ctx.world.drs.entry(scope.key.clone()).or_default();
    let count = drs.launch_configuration_templates.len().to_string();
    let id = format!(
        "lct-{}",
        hex_id(&[&scope.key, &count, &ctx.now.to_rfc3339()], 17)
    );
    let template = LaunchConfigurationTemplate { id, settings };
    let reply = json!({ "launchConfigurationTemplate": template_json(scope, &template) });
    drs.launch_configuration_templates.push(template);
    Ok(Done::mutated(201, Some(reply), body))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DescribeInput {
    #[serde(rename = "launchConfigurationTemplateIDs")]
    launch_configuration_template_ids: Option<Vec<String>>,
}

/// DescribeLaunchConfigurationTemplates: all of the region's, or those named.
pub(super) fn describe(ctx: &mut Ctx<'_>, scope: &Scope, body: Value) -> Result<Done, DrsError> {
    let ids = input::<DescribeInput>(&body)?
        .launch_configuration_template_ids
        .unwrap_or_default();
    let items: Vec<Value> = region(ctx.world, scope)
        .map(|r| r.launch_configuration_templates.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|t| ids.is_empty() || ids.contains(&t.id))
        .map(|t| template_json(scope, t))
        .collect();
    Ok(Done::read(json!({ "items": items })))
}

/// A new failback server (A2) would launch into the instance its data came from (A1) when the
/// origin's default launch settings say "launch into source instance": DRS user guide,
/// "Default DRS launch settings": the instance must carry the tag
/// `AWSDRS=AllowLaunchingIntoThisInstance`, and "Copy private IP" and "Transfer server tags"
/// must be off (the same OS and boot mode are given in the simulator). Refused otherwise, as
/// ReverseReplication fails in AWS (real-aws-gaps.md 4).
pub(super) fn check_launch_into_source(
    world: &World,
    origin: &Scope,
    b1: &SourceServer,
) -> Result<(), DrsError> {
    let Some(defaults) = region(world, origin)
        .and_then(|r| r.launch_configuration_templates.first())
        .map(|t| &t.settings)
    else {
        return Ok(());
    };
    let on = |key: &str| defaults.get(key) == Some(&Value::Bool(true));
    if !on("launchIntoSourceInstance") {
        return Ok(());
    }
    let a1 = &b1.origin.instance_id;
    let refuse = |why: String| {
        Err(DrsError::conflict(
            "SOURCE_SERVER",
            &b1.id,
            format!(
                "Cannot reverse replication of source server {}: the default launch settings of account {} region {} launch into the source instance {a1}, but {why}",
                b1.id, origin.account, origin.region
            ),
        ))
    };
    if on("copyPrivateIp") || on("copyTags") {
        return refuse(
            "launching into an instance requires copyPrivateIp and copyTags to be off in the default launch settings".to_string(),
        );
    }
    let tagged = world.ec2.get(a1).is_some_and(|i| {
        i.account == origin.account
            && i.region == origin.region
            && i.tags.get(LAUNCH_INTO_TAG.0).map(String::as_str) == Some(LAUNCH_INTO_TAG.1)
    });
    if !tagged {
        return refuse(format!(
            "{a1} does not carry the tag {}={}",
            LAUNCH_INTO_TAG.0, LAUNCH_INTO_TAG.1
        ));
    }
    Ok(())
}
