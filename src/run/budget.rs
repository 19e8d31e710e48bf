//! The DRS job quotas, shared by every wave of a run: at most `max_jobs` jobs in progress and
//! `max_servers` servers in active jobs (defaults 20 and 500, overridable). A batch acquires its
//! share before StartRecovery and gives it back when its job has completed.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::Semaphore;

pub struct JobBudget {
    jobs: Semaphore,
    servers: Semaphore,
    /// What each job holds, so that a release after a resume (which acquired nothing) is a no-op.
    held: Mutex<HashMap<String, u32>>,
    pub max_jobs: u32,
    pub max_servers: u32,
}

impl JobBudget {
    pub fn new(max_jobs: u32, max_servers: u32) -> Self {
        JobBudget {
            jobs: Semaphore::new(max_jobs as usize),
            servers: Semaphore::new(max_servers as usize),
            held: Mutex::new(HashMap::new()),
            max_jobs,
            max_servers,
        }
    }

    /// Waits until a job of `servers` servers fits, and holds the share until
    /// [`JobBudget::bind`] names the job.
    pub async fn acquire(&self, servers: u32) -> Reservation<'_> {
        let servers = servers.min(self.max_servers);
        let jobs = self
            .jobs
            .acquire()
            .await
            .expect("the budget is never closed");
        let held = self
            .servers
            .acquire_many(servers)
            .await
            .expect("the budget is never closed");
        jobs.forget();
        held.forget();
        Reservation {
            budget: self,
            servers,
            bound: false,
        }
    }

    /// Gives back what the job holds (when it completed).
    pub fn release(&self, job_id: &str) {
        let servers = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(job_id);
        if let Some(servers) = servers {
            self.jobs.add_permits(1);
            self.servers.add_permits(servers as usize);
        }
    }
}

/// A share of the budget not yet bound to a job: dropped unbound (the call failed), it goes back.
pub struct Reservation<'a> {
    budget: &'a JobBudget,
    servers: u32,
    bound: bool,
}

impl Reservation<'_> {
    /// The job was created: it holds this share until [`JobBudget::release`].
    pub fn bind(mut self, job_id: &str) {
        self.budget
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job_id.to_string(), self.servers);
        self.bound = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.bound {
            self.budget.jobs.add_permits(1);
            self.budget.servers.add_permits(self.servers as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_beyond_the_quota_wait_for_a_release() {
        let budget = JobBudget::new(2, 500);
        budget.acquire(100).await.bind("j1");
        budget.acquire(100).await.bind("j2");
        let third =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.acquire(10)).await;
        assert!(third.is_err(), "a third job waits while two are active");
        budget.release("j1");
        let third =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.acquire(10)).await;
        assert!(third.is_ok());
    }

    #[tokio::test]
    async fn servers_in_active_jobs_are_bounded_and_unbound_reservations_return() {
        let budget = JobBudget::new(20, 150);
        budget.acquire(100).await.bind("j1");
        drop(budget.acquire(50).await); // the call failed: the share goes back
        budget.acquire(50).await.bind("j2");
        let more =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.acquire(1)).await;
        assert!(more.is_err());
        budget.release("unknown-job"); // a no-op
        budget.release("j2");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.acquire(50))
                .await
                .is_ok()
        );
    }
}
