//! Call counters and the ordered list of mutating calls, as `GET /_sim/stats` returns them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One call that changed the world.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mutation {
    pub at: DateTime<Utc>,
    pub service: String,
    pub operation: String,
    pub account: String,
    pub region: String,
    pub params: serde_json::Value,
}

/// Every call counted by `"service:Operation"` (errors included), and the mutations in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub calls: BTreeMap<String, u64>,
    pub mutations: Vec<Mutation>,
    /// Every call counted by `"<account>/<region>"` of its signature (refused ones included):
    /// whether a run called a region that is down.
    #[serde(default)]
    pub scopes: BTreeMap<String, u64>,
}

impl Stats {
    pub fn count(&mut self, service: &str, operation: &str) {
        *self
            .calls
            .entry(format!("{service}:{operation}"))
            .or_default() += 1;
    }

    pub fn count_scope(&mut self, account: &str, region: &str) {
        *self
            .scopes
            .entry(format!("{account}/{region}"))
            .or_default() += 1;
    }

    pub fn record_mutation(&mut self, mutation: Mutation) {
        self.mutations.push(mutation);
    }
}
