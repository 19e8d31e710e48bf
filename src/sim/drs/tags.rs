//! TagResource (`POST /tags/{arn}`), UntagResource (`DELETE /tags/{arn}?tagKeys=…`) and
//! ListTagsForResource (`GET /tags/{arn}`) on jobs, source servers, recovery instances and
//! recovery plans.
//! The ARN names the account and region, so these work wherever the resource lives, and they
//! do not require InitializeService (they do not model UninitializedAccountException).

use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

use super::{Ctx, Done, DrsError, parse_arn, parse_body};
use crate::sim::{SimRequest, World, scope_key};

const MAX_TAGS: usize = 50;

/// The tags of the resource an ARN names.
fn tags_mut<'w>(
    world: &'w mut World,
    arn: &str,
) -> Result<&'w mut BTreeMap<String, String>, DrsError> {
    let not_found = || {
        DrsError::not_found(
            "RESOURCE",
            arn,
            format!("No Elastic Disaster Recovery resource has the ARN {arn}"),
        )
    };
    let Some((account, region, kind, id)) = parse_arn(arn) else {
        return Err(DrsError::field(
            "resourceArn",
            format!(
                "{arn:?} is not a DRS ARN such as arn:aws:drs:us-east-1:111111111111:source-server/s-1234567890abcdef0"
            ),
        ));
    };
    let drs = world
        .drs
        .get_mut(&scope_key(&account, &region))
        .ok_or_else(not_found)?;
    let tags = match kind.as_str() {
        "source-server" => drs.source_servers.get_mut(&id).map(|s| &mut s.tags),
        "recovery-instance" => drs.recovery_instances.get_mut(&id).map(|r| &mut r.tags),
        "job" => drs.job_mut(&id).map(|j| &mut j.tags),
        "recovery-plan" => drs
            .recovery_plans
            .iter_mut()
            .find(|p| p.id == id)
            .map(|p| &mut p.tags),
        _ => None,
    };
    tags.ok_or_else(not_found)
}

#[derive(Deserialize)]
struct TagInput {
    tags: Option<BTreeMap<String, String>>,
}

pub(super) fn handle(
    ctx: &mut Ctx<'_>,
    operation: &str,
    req: &SimRequest,
) -> Result<Done, DrsError> {
    let raw = req.path.trim_start_matches("/tags/");
    let arn = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| DrsError::field("resourceArn", "is not valid percent-encoded UTF-8"))?
        .into_owned();
    match operation {
        "ListTagsForResource" => {
            let tags = tags_mut(ctx.world, &arn)?;
            Ok(Done::read(json!({ "tags": tags })))
        }
        "TagResource" => {
            let body = parse_body(req)?;
            let input: TagInput = super::input(&body)?;
            let new = input
                .tags
                .ok_or_else(|| DrsError::field("tags", "is required"))?;
            if let Some(k) = new.keys().find(|k| k.len() > 256) {
                return Err(DrsError::field(
                    "tags",
                    format!("the key {k:?} is longer than 256 characters"),
                ));
            }
            let tags = tags_mut(ctx.world, &arn)?;
            let total = tags
                .keys()
                .chain(new.keys().filter(|k| !tags.contains_key(*k)))
                .count();
            if total > MAX_TAGS {
                return Err(DrsError::field(
                    "tags",
                    format!("the resource would have {total} tags; the maximum is {MAX_TAGS}"),
                ));
            }
            tags.extend(new);
            Ok(Done::mutated(
                200,
                None,
                json!({ "resourceArn": arn, "tags": body["tags"] }),
            ))
        }
        _ => {
            let keys: Vec<String> = req
                .query_pairs()
                .into_iter()
                .filter(|(k, _)| k == "tagKeys")
                .map(|(_, v)| v)
                .collect();
            if keys.is_empty() {
                return Err(DrsError::field(
                    "tagKeys",
                    "is required (repeat tagKeys=KEY in the query)",
                ));
            }
            let tags = tags_mut(ctx.world, &arn)?;
            for key in &keys {
                tags.remove(key);
            }
            Ok(Done::mutated(
                200,
                None,
                json!({ "resourceArn": arn, "tagKeys": keys }),
            ))
        }
    }
}
