//! The DRS job quotas, shared by every wave of a run: at most `max_jobs` jobs in progress and
//! `max_servers` servers in active jobs per account and region (DRS: 20 and 500). A batch
//! takes its share before StartRecovery; the share belongs to the job and goes back when the
//! job ends (seen by the step waiting for budget, by DescribeJobs, or by the wave's launch step).
//!
//! Batches wait in one first-come, first-served queue across waves, so a large batch is not
//! starved by smaller ones behind it. Jobs found in the journal on resume are *adopted*: they
//! hold their share again until they are seen ended.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

pub struct JobBudget {
    state: Mutex<State>,
    pub max_jobs: u32,
    pub max_servers: u32,
}

#[derive(Default)]
struct State {
    /// Jobs holding a share, with their servers.
    held: BTreeMap<String, u32>,
    /// Shares taken but not yet bound to a job (a StartRecovery in flight).
    pending_jobs: u32,
    pending_servers: u32,
    /// Tickets waiting, first come first served.
    queue: VecDeque<u64>,
    next_ticket: u64,
    /// Bumped on every take and release: a waiter that sees it move is making progress.
    progress: u64,
}

impl State {
    fn jobs_in_use(&self) -> u64 {
        self.held.len() as u64 + u64::from(self.pending_jobs)
    }

    fn servers_in_use(&self) -> u64 {
        self.held.values().map(|s| u64::from(*s)).sum::<u64>() + u64::from(self.pending_servers)
    }
}

impl JobBudget {
    pub fn new(max_jobs: u32, max_servers: u32) -> Self {
        JobBudget {
            state: Mutex::new(State::default()),
            max_jobs: max_jobs.max(1),
            max_servers: max_servers.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the queue for a job of `servers` servers.
    pub fn enqueue(&self, servers: u32) -> Ticket<'_> {
        let mut state = self.lock();
        let id = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push_back(id);
        Ticket {
            budget: self,
            id,
            servers: servers.clamp(1, self.max_servers),
        }
    }

    /// A job found on resume (or by a reconciliation) holds its share again; a no-op when it
    /// already does. The budget may be over its limits afterwards: nothing new fits until
    /// enough jobs have ended.
    pub fn adopt(&self, job_id: &str, servers: u32) {
        self.lock()
            .held
            .entry(job_id.to_string())
            .or_insert(servers);
    }

    /// Gives back what the job holds (it ended). Returns whether it held anything.
    pub fn release(&self, job_id: &str) -> bool {
        let mut state = self.lock();
        let released = state.held.remove(job_id).is_some();
        if released {
            state.progress += 1;
        }
        released
    }

    /// The jobs holding a share, with their servers.
    pub fn holders(&self) -> Vec<(String, u32)> {
        self.lock()
            .held
            .iter()
            .map(|(j, s)| (j.clone(), *s))
            .collect()
    }

    /// Jobs and servers in use (held or being started).
    pub fn in_use(&self) -> (u64, u64) {
        let state = self.lock();
        (state.jobs_in_use(), state.servers_in_use())
    }

    /// A counter that moves on every take and release.
    pub fn progress(&self) -> u64 {
        self.lock().progress
    }
}

/// A place in the queue; dropped (the step stopped or failed), it leaves the queue.
pub struct Ticket<'a> {
    budget: &'a JobBudget,
    id: u64,
    servers: u32,
}

impl<'a> Ticket<'a> {
    /// The share, when this ticket is first in the queue and the job fits.
    pub fn try_take(&self) -> Option<Reservation<'a>> {
        let mut state = self.budget.lock();
        if state.queue.front() != Some(&self.id) {
            return None;
        }
        let fits = state.jobs_in_use() < u64::from(self.budget.max_jobs)
            && state.servers_in_use() + u64::from(self.servers)
                <= u64::from(self.budget.max_servers);
        if !fits {
            return None;
        }
        state.queue.pop_front();
        state.pending_jobs += 1;
        state.pending_servers += self.servers;
        state.progress += 1;
        Some(Reservation {
            budget: self.budget,
            servers: self.servers,
            bound: false,
        })
    }

    /// Whether no other batch waits ahead of this one.
    pub fn is_first(&self) -> bool {
        self.budget.lock().queue.front() == Some(&self.id)
    }

    /// How many batches wait ahead of this one.
    pub fn ahead(&self) -> usize {
        let state = self.budget.lock();
        state
            .queue
            .iter()
            .position(|t| *t == self.id)
            .unwrap_or_default()
    }

    pub fn servers(&self) -> u32 {
        self.servers
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        state.queue.retain(|t| *t != self.id);
    }
}

/// A share of the budget not yet bound to a job: dropped unbound (the call failed), it goes back.
pub struct Reservation<'a> {
    budget: &'a JobBudget,
    servers: u32,
    bound: bool,
}

impl Reservation<'_> {
    /// The job exists: it holds this share until [`JobBudget::release`] (or already held one,
    /// adopted on resume, and keeps that one).
    pub fn bind(mut self, job_id: &str) {
        let mut state = self.budget.lock();
        state.pending_jobs -= 1;
        state.pending_servers -= self.servers;
        state.held.entry(job_id.to_string()).or_insert(self.servers);
        self.bound = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.bound {
            let mut state = self.budget.lock();
            state.pending_jobs -= 1;
            state.pending_servers -= self.servers;
            state.progress += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(budget: &JobBudget, servers: u32, job: &str) {
        budget.enqueue(servers).try_take().expect("fits").bind(job);
    }

    #[test]
    fn jobs_beyond_the_quota_wait_for_a_release() {
        let budget = JobBudget::new(2, 500);
        take(&budget, 100, "j1");
        take(&budget, 100, "j2");
        let third = budget.enqueue(10);
        assert!(
            third.try_take().is_none(),
            "a third job waits while two are active"
        );
        assert!(budget.release("j1"));
        let taken = third.try_take().expect("fits after the release");
        assert_eq!(budget.in_use(), (2, 110), "a share being started counts");
        taken.bind("j3");
        assert_eq!(budget.in_use(), (2, 110));
    }

    #[test]
    fn servers_in_active_jobs_are_bounded_and_unbound_reservations_return() {
        let budget = JobBudget::new(20, 150);
        take(&budget, 100, "j1");
        drop(budget.enqueue(50).try_take().unwrap()); // the call failed: the share goes back
        take(&budget, 50, "j2");
        let more = budget.enqueue(1);
        assert!(more.try_take().is_none());
        assert!(!budget.release("unknown-job"), "a no-op");
        budget.release("j2");
        assert!(more.try_take().is_some());
    }

    #[test]
    fn waiters_are_served_first_come_first_served_across_waves() {
        let budget = JobBudget::new(20, 500);
        take(&budget, 100, "a0");
        take(&budget, 100, "a1");
        take(&budget, 100, "a2");
        take(&budget, 100, "a3");
        take(&budget, 50, "b0");
        // 450 in use: a 100-server batch waits, and a 10-server batch behind it waits too,
        // although it would fit, so the large batch is not starved.
        let big = budget.enqueue(100);
        let small = budget.enqueue(10);
        assert!(big.try_take().is_none());
        assert!(
            small.try_take().is_none(),
            "the smaller batch does not overtake"
        );
        assert!(big.is_first() && !small.is_first());
        assert_eq!(small.ahead(), 1);
        budget.release("b0");
        assert!(small.try_take().is_none(), "still behind the first");
        big.try_take().expect("fits now").bind("a4");
        assert!(small.is_first());
        assert!(small.try_take().is_none(), "500 in use");
        budget.release("a0");
        assert!(small.try_take().is_some());
    }

    #[test]
    fn a_ticket_dropped_while_waiting_leaves_the_queue() {
        let budget = JobBudget::new(1, 500);
        take(&budget, 1, "j1");
        let first = budget.enqueue(1);
        let second = budget.enqueue(1);
        drop(first); // its step stopped
        assert!(second.is_first());
        budget.release("j1");
        assert!(second.try_take().is_some());
    }

    #[test]
    fn adopted_jobs_hold_their_share_until_released_and_are_not_counted_twice() {
        let budget = JobBudget::new(20, 500);
        budget.adopt("j1", 300);
        budget.adopt("j1", 300);
        budget.adopt("j2", 200);
        assert_eq!(budget.in_use(), (2, 500));
        let next = budget.enqueue(100);
        assert!(next.try_take().is_none());
        // A reconciliation binds a found job that was adopted already: one share, not two.
        budget.release("j2");
        let r = next.try_take().expect("fits");
        r.bind("j1");
        assert_eq!(budget.in_use(), (1, 300));
        assert_eq!(budget.holders(), vec![("j1".to_string(), 300)]);
    }

    #[test]
    fn a_job_larger_than_the_server_quota_is_capped_so_it_can_run_alone() {
        let budget = JobBudget::new(20, 50);
        let t = budget.enqueue(100);
        assert_eq!(t.servers(), 50);
        assert!(t.try_take().is_some());
    }
}
