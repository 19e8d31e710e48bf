//! Polling DRS jobs per run, not per job (issue 11 item 6, first part): the steps that wait for
//! recovery jobs (`launch:W` of every wave, converted ahead at once) ask the run's [`JobWatch`]
//! rather than DescribeJobs each. One DescribeJobs lists every job any step of the run is
//! waiting for; an answer younger than [`FRESH`] (engine clock) is shared, so waves polling at
//! the same time cost one call, not one each.
//!
//! Single flight: the watch is locked while it asks DRS, so a step that asks meanwhile waits
//! for that answer instead of sending its own.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::aws::drs::Job;
use crate::aws::{AwsError, SideClients};

/// How long an answer is shared: half a tick of the polling grid ([`super::poll`]), so steps
/// that look on the same tick share one answer, and no step is given the previous tick's.
pub const FRESH: Duration = Duration::from_millis(super::poll::DENSEST.as_millis() as u64 / 2);

/// The run's jobs as DRS last described them.
#[derive(Default)]
pub struct JobWatch {
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The jobs some step waits for (an ended one stays until its waiter has seen it end).
    watched: BTreeSet<String>,
    /// The last answer: when (engine clock), for which side, and the jobs by ID.
    last: Option<(DateTime<Utc>, String, BTreeMap<String, Job>)>,
}

/// When the latest of `jobs` was created (DRS's `creationDateTime`): the start of the phases
/// their steps wait for ([`super::poll::CONVERSION`], [`super::poll::JOB`]).
pub fn latest_created(jobs: &[Job]) -> Option<DateTime<Utc>> {
    jobs.iter()
        .filter_map(|j| j.created.as_deref().and_then(crate::aws::parse_time))
        .max()
}

impl JobWatch {
    /// The jobs `ids` as DRS describes them, at most [`FRESH`] old at `now`. A job DRS no longer
    /// returns is absent from the answer, as with DescribeJobs.
    pub async fn describe(
        &self,
        side: &SideClients,
        now: DateTime<Utc>,
        ids: &[String],
    ) -> Result<Vec<Job>, AwsError> {
        let scope = format!("{}/{}", side.account_id, side.region);
        let mut state = self.state.lock().await;
        state.watched.extend(ids.iter().cloned());
        let fresh = state.last.as_ref().is_some_and(|(at, of, jobs)| {
            of == &scope
                && (now - *at).to_std().unwrap_or_default() < FRESH
                && ids.iter().all(|id| jobs.contains_key(id))
        });
        if !fresh {
            let watched: Vec<String> = state.watched.iter().cloned().collect();
            let jobs = side.describe_jobs(&watched).await?;
            let jobs: BTreeMap<String, Job> = jobs.into_iter().map(|j| (j.id.clone(), j)).collect();
            state.last = Some((now, scope, jobs));
        }
        let (_, _, jobs) = state.last.as_ref().expect("described above");
        let answer: Vec<Job> = ids.iter().filter_map(|id| jobs.get(id).cloned()).collect();
        // A waiter that saw its jobs end stops waiting: they leave the next calls.
        for job in answer.iter().filter(|j| j.is_completed()) {
            state.watched.remove(&job.id);
        }
        Ok(answer)
    }
}
