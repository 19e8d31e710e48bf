//! Route 53 calls: read record sets, change them, follow the change to INSYNC.

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, GeoLocation, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, ResourceRecordSetRegion, RrType,
};
use serde::{Deserialize, Serialize};

use super::drs::Called;
use super::error::classify;
use super::{AwsError, SideClients, with_throttle_retry};

/// A record set, captured completely enough to restore it byte for byte: its routing policy
/// (weight, failover role, latency region, location, multivalue answer), set identifier,
/// health check, TTL, values or alias target.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordSet {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// `PRIMARY` or `SECONDARY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
    /// The region of a latency set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_value_answer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_id: Option<String>,
    /// Set when the set uses a routing field this tool cannot write back (CIDR, geoproximity,
    /// traffic policy): what it is. A cutover refuses to touch such a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrestorable: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
}

/// The location of a geolocation set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Location {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdivision_code: Option<String>,
}

impl RecordSet {
    /// The routing policy as a person names it (`weighted`, `failover`, ...; `simple`).
    pub fn policy(&self) -> &'static str {
        if self.weight.is_some() {
            "weighted"
        } else if self.failover.is_some() {
            "failover"
        } else if self.region.is_some() {
            "latency"
        } else if self.geo_location.is_some() {
            "geolocation"
        } else if self.multi_value_answer.is_some() {
            "multivalue"
        } else {
            "simple"
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Alias {
    pub dns_name: String,
    pub hosted_zone_id: String,
    pub evaluate_target_health: bool,
}

/// A record change to send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordChange {
    /// `CREATE`, `UPSERT` or `DELETE`.
    pub action: String,
    pub record: RecordSet,
}

fn record_from(r: &ResourceRecordSet) -> RecordSet {
    RecordSet {
        name: r.name().to_string(),
        record_type: r.r#type().as_str().to_string(),
        set_identifier: r.set_identifier().map(str::to_string),
        weight: r.weight(),
        failover: r.failover().map(|f| f.as_str().to_string()),
        region: r.region().map(|f| f.as_str().to_string()),
        geo_location: r.geo_location().map(|g| Location {
            continent_code: g.continent_code().map(str::to_string),
            country_code: g.country_code().map(str::to_string),
            subdivision_code: g.subdivision_code().map(str::to_string),
        }),
        multi_value_answer: r.multi_value_answer(),
        health_check_id: r.health_check_id().map(str::to_string),
        unrestorable: if r.cidr_routing_config().is_some() {
            Some("CIDR routing".to_string())
        } else if r.geo_proximity_location().is_some() {
            Some("geoproximity routing".to_string())
        } else {
            r.traffic_policy_instance_id()
                .map(|id| format!("traffic policy instance {id}"))
        },
        ttl: r.ttl(),
        values: r
            .resource_records()
            .iter()
            .map(|v| v.value().to_string())
            .collect(),
        alias: r.alias_target().map(|a| Alias {
            dns_name: a.dns_name().to_string(),
            hosted_zone_id: a.hosted_zone_id().to_string(),
            evaluate_target_health: a.evaluate_target_health(),
        }),
    }
}

fn record_to(r: &RecordSet) -> ResourceRecordSet {
    let mut b = ResourceRecordSet::builder()
        .name(&r.name)
        .r#type(RrType::from(r.record_type.as_str()))
        .set_set_identifier(r.set_identifier.clone())
        .set_weight(r.weight)
        .set_failover(r.failover.as_deref().map(ResourceRecordSetFailover::from))
        .set_region(r.region.as_deref().map(ResourceRecordSetRegion::from))
        .set_geo_location(r.geo_location.as_ref().map(|g| {
            GeoLocation::builder()
                .set_continent_code(g.continent_code.clone())
                .set_country_code(g.country_code.clone())
                .set_subdivision_code(g.subdivision_code.clone())
                .build()
        }))
        .set_multi_value_answer(r.multi_value_answer)
        .set_health_check_id(r.health_check_id.clone())
        .set_ttl(r.ttl);
    if let Some(alias) = &r.alias {
        b = b.alias_target(
            AliasTarget::builder()
                .dns_name(&alias.dns_name)
                .hosted_zone_id(&alias.hosted_zone_id)
                .evaluate_target_health(alias.evaluate_target_health)
                .build()
                .expect("alias fields are set"),
        );
    } else {
        b = b.set_resource_records(Some(
            r.values
                .iter()
                .map(|v| {
                    ResourceRecord::builder()
                        .value(v)
                        .build()
                        .expect("value is set")
                })
                .collect(),
        ));
    }
    b.build().expect("name and type are set")
}

/// Route 53 zone IDs may come as `Z...` or `/hostedzone/Z...`.
pub fn bare_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

impl SideClients {
    /// The record sets with exactly this name and type (all set identifiers).
    pub async fn record_sets(
        &self,
        zone_id: &str,
        name: &str,
        record_type: &str,
    ) -> Result<Vec<RecordSet>, AwsError> {
        let resource = format!("{name} {record_type} in zone {zone_id}");
        let site = self.site("route53:ListResourceRecordSets", &resource);
        let output = self
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(bare_zone_id(zone_id))
            .start_record_name(name)
            .start_record_type(RrType::from(record_type))
            .max_items(100)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        let wanted = name.trim_end_matches('.').to_ascii_lowercase();
        Ok(output
            .resource_record_sets()
            .iter()
            .filter(|r| {
                r.name().trim_end_matches('.').to_ascii_lowercase() == wanted
                    && r.r#type().as_str() == record_type
            })
            .map(record_from)
            .collect())
    }

    /// ChangeResourceRecordSets in one atomic batch; returns the change ID.
    pub async fn change_record_sets(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<Called<String>, AwsError> {
        let resource = format!(
            "{} in zone {zone_id}",
            changes
                .iter()
                .map(|c| format!("{} {} {}", c.action, c.record.name, c.record.record_type))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let site = self.site("route53:ChangeResourceRecordSets", &resource);
        let batch = ChangeBatch::builder()
            .comment(comment)
            .set_changes(Some(
                changes
                    .iter()
                    .map(|c| {
                        Change::builder()
                            .action(ChangeAction::from(c.action.as_str()))
                            .resource_record_set(record_to(&c.record))
                            .build()
                            .expect("action and record are set")
                    })
                    .collect(),
            ))
            .build()
            .expect("changes are set");
        with_throttle_retry(|| async {
            let output = self
                .route53
                .change_resource_record_sets()
                .hosted_zone_id(bare_zone_id(zone_id))
                .change_batch(batch.clone())
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_route53::operation::RequestId;
            let request_id = output.request_id().map(str::to_string);
            let id = output
                .change_info()
                .map(|c| c.id().to_string())
                .unwrap_or_default();
            Ok(Called {
                value: id,
                request_id,
            })
        })
        .await
    }

    /// GetChange: `PENDING` or `INSYNC`.
    pub async fn change_status(&self, change_id: &str) -> Result<String, AwsError> {
        let site = self.site("route53:GetChange", change_id);
        let output = self
            .route53
            .get_change()
            .id(change_id.trim_start_matches("/change/"))
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(output
            .change_info()
            .map(|c| c.status().as_str().to_string())
            .unwrap_or_default())
    }

    /// GetHealthCheck: whether the check is inverted.
    pub async fn health_check_inverted(&self, id: &str) -> Result<bool, AwsError> {
        let site = self.site("route53:GetHealthCheck", id);
        let output = self
            .route53
            .get_health_check()
            .health_check_id(id)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(output
            .health_check()
            .and_then(|c| c.health_check_config())
            .and_then(|c| c.inverted())
            .unwrap_or(false))
    }

    /// GetHealthCheckStatus: whether Route 53 reports the check healthy (its checkers report
    /// `Success`; Route 53 counts a check healthy when more than 18% of them do, and the
    /// checkers of one check agree here, so one is enough).
    pub async fn health_check_reports_healthy(&self, id: &str) -> Result<bool, AwsError> {
        let site = self.site("route53:GetHealthCheckStatus", id);
        let output = self
            .route53
            .get_health_check_status()
            .health_check_id(id)
            .send()
            .await
            .map_err(|e| classify(&site, &e))?;
        Ok(output.health_check_observations().iter().any(|o| {
            o.status_report()
                .and_then(|r| r.status())
                .is_some_and(|s| s.starts_with("Success"))
        }))
    }

    /// UpdateHealthCheck with `Inverted` only.
    pub async fn set_health_check_inverted(
        &self,
        id: &str,
        inverted: bool,
    ) -> Result<Called<()>, AwsError> {
        let site = self.site("route53:UpdateHealthCheck", id);
        with_throttle_retry(|| async {
            let output = self
                .route53
                .update_health_check()
                .health_check_id(id)
                .inverted(inverted)
                .customize()
                .config_override(single_attempt())
                .send()
                .await
                .map_err(|e| classify(&site, &e))?;
            use aws_sdk_route53::operation::RequestId;
            Ok(Called {
                value: (),
                request_id: output.request_id().map(str::to_string),
            })
        })
        .await
    }

    /// Whether the hosted zone exists (preflight).
    pub async fn hosted_zone_exists(&self, zone_id: &str) -> Result<bool, AwsError> {
        let site = self.site("route53:GetHostedZone", zone_id);
        match self
            .route53
            .get_hosted_zone()
            .id(bare_zone_id(zone_id))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = classify(&site, &e);
                if err.code.as_deref() == Some("NoSuchHostedZone") {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }
}

/// Mutating calls are sent once by the SDK (a DELETE retried after a timeout that took effect
/// would fail "not found"): throttling is retried by [`super::with_throttle_retry`], anything
/// ambiguous is reconciled by the step.
fn single_attempt() -> aws_sdk_route53::config::Builder {
    aws_sdk_route53::config::Builder::default()
        .retry_config(aws_sdk_route53::config::retry::RetryConfig::disabled())
}
