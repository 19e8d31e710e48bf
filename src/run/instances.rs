//! Polling EC2 status checks per run, not per wave (issue 11 item 6): the health gates of the
//! run (`launch:W`, `boot:W`, drill `validate:W`) ask the run's [`InstanceWatch`] rather than
//! DescribeInstanceStatus each. One round lists every instance any gate of the run is waiting
//! for, 100 IDs a call (EC2's limit); an answer younger than [`super::jobs::FRESH`] (engine
//! clock) is shared, so gates polling on the same tick of the polling grid
//! ([`super::poll`]) cost one round, not one each.
//!
//! Single flight: the watch is locked while it asks EC2, so a gate that asks meanwhile waits
//! for that answer instead of sending its own.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

use super::jobs::FRESH;
use crate::aws::ec2::InstanceStatus;
use crate::aws::{AwsError, SideClients};

/// The status checks of the run's booting instances as EC2 last described them.
#[derive(Default)]
pub struct InstanceWatch {
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The instances some gate waits for, by side (`account/region`).
    watched: BTreeMap<String, BTreeSet<String>>,
    /// The last round: when (engine clock), for which side, the instances asked for, and the
    /// statuses by instance ID.
    last: Option<Round>,
}

struct Round {
    at: DateTime<Utc>,
    scope: String,
    asked: BTreeSet<String>,
    statuses: BTreeMap<String, InstanceStatus>,
}

impl InstanceWatch {
    /// The statuses of `ids` as EC2 describes them, at most [`FRESH`] old at `now`. An instance
    /// EC2 does not answer for is absent, as with DescribeInstanceStatus.
    pub async fn status(
        &self,
        side: &SideClients,
        now: DateTime<Utc>,
        ids: &[String],
    ) -> Result<Vec<InstanceStatus>, AwsError> {
        let scope = format!("{}/{}", side.account_id, side.region);
        let mut state = self.state.lock().await;
        state
            .watched
            .entry(scope.clone())
            .or_default()
            .extend(ids.iter().cloned());
        let fresh = state.last.as_ref().is_some_and(|round| {
            round.scope == scope
                && (now - round.at).to_std().unwrap_or_default() < FRESH
                && ids.iter().all(|id| round.asked.contains(id))
        });
        if !fresh {
            let asked = state.watched[&scope].clone();
            let watched: Vec<String> = asked.iter().cloned().collect();
            let statuses = side
                .instance_status(&watched)
                .await?
                .into_iter()
                .map(|s| (s.instance_id.clone(), s))
                .collect();
            state.last = Some(Round {
                at: now,
                scope,
                asked,
                statuses,
            });
        }
        let round = state.last.as_ref().expect("asked above");
        Ok(ids
            .iter()
            .filter_map(|id| round.statuses.get(id).cloned())
            .collect())
    }

    /// The gate of `ids` has decided: they leave the next rounds.
    pub async fn forget(&self, side: &SideClients, ids: &[String]) {
        let scope = format!("{}/{}", side.account_id, side.region);
        let mut state = self.state.lock().await;
        if let Some(watched) = state.watched.get_mut(&scope) {
            for id in ids {
                watched.remove(id);
            }
        }
    }
}
