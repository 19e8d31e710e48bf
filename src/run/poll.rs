//! Poll intervals that follow the expected remaining time of a phase (issue 11 item 6): sparse
//! early, dense near the end. A wave's phase ends when its last server's does, and the last of
//! many servers ends close to the latest time the phase takes: that is where looking often pays.
//!
//! A phase is expected to end between `earliest` and `latest` after it began (the end taken as
//! uniform in between). `elapsed` into it, the next look comes after half the expected remaining
//! time, between [`DENSEST`] and [`SPARSEST`]; a phase past its `latest` is overdue and looked at
//! every [`OVERDUE`] (the documented procedure's 30 s). Every look lands on a tick of the run's
//! polling grid (nested ticks of 5, 10, 30 and 60 s on the engine clock, the largest no longer
//! than the interval), so steps polling the same shared watch
//! ([`super::jobs::JobWatch`], [`super::instances::InstanceWatch`]) at about the same time are
//! answered by one call.
//!
//! The phases, from the simulator's timings, which are modelled on AWS's documented ones (DRS
//! user guide: an average recovered Linux server "boots within 5 minutes"; EC2 status checks
//! `initializing` for a minute or two after `running`); a real job that takes longer (one
//! observed took 12 to 14 minutes, `reference/drs-api.md`) is polled every 30 s once overdue:
//! - [`CONVERSION`], from StartRecovery to the launch of a job's servers (job start 5-15 s,
//!   snapshot 20-40 s, conversion 2-6 min): 150 s to 420 s;
//! - [`JOB`], from StartRecovery to the job's end (then the launch, 2-5 min): 270 s to 720 s;
//! - [`BOOT`], from the last instance's boot start (StartInstances of a held wave, the end of the
//!   wave's jobs; else the health gate's start) to both status checks passed (`pending` up to
//!   20 s, then 60-150 s `initializing`): 60 s to 180 s.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The closest two looks come, and the tick of the run's polling grid.
pub const DENSEST: Duration = Duration::from_secs(5);
/// The longest interval while a phase is not overdue (the look then waits for the next minute
/// tick of the grid: less than two minutes in all).
pub const SPARSEST: Duration = Duration::from_secs(60);
/// How often an overdue phase is looked at: the documented procedure's interval.
pub const OVERDUE: Duration = Duration::from_secs(30);

/// The chance that the last of many phases ends before [`Phase::last_of`]'s earliest end.
const LATE_QUANTILE: f64 = 0.05;

/// A phase expected to end between `earliest` and `latest` after it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    pub earliest: Duration,
    pub latest: Duration,
}

/// From StartRecovery to the launch of the job's servers (snapshot and conversion done).
pub const CONVERSION: Phase = Phase {
    earliest: Duration::from_secs(150),
    latest: Duration::from_secs(420),
};

/// From StartRecovery to the job's end (every server launched, or failed).
pub const JOB: Phase = Phase {
    earliest: Duration::from_secs(270),
    latest: Duration::from_secs(720),
};

/// From the health gate's start to both EC2 status checks passed.
pub const BOOT: Phase = Phase {
    earliest: Duration::from_secs(60),
    latest: Duration::from_secs(180),
};

impl Phase {
    /// The expected remaining time `elapsed` into the phase (its end uniform between `earliest`
    /// and `latest`); none once it is overdue.
    pub fn expected_remaining(&self, elapsed: Duration) -> Option<Duration> {
        if elapsed >= self.latest {
            return None;
        }
        Some(if elapsed < self.earliest {
            (self.earliest + self.latest) / 2 - elapsed
        } else {
            (self.latest - elapsed) / 2
        })
    }

    /// The window in which the last of `n` such phases, begun together, ends: a wave's boot
    /// ends with its last instance's, a job's conversion with its last server's. Each end
    /// uniform in the window, the last of `n` comes before `t` with probability
    /// `((t - earliest) / (latest - earliest))^n`, so 19 times out of 20 it comes after
    /// `earliest + (latest - earliest) * 0.05^(1/n)`: for 50 servers, in the last 6% of the
    /// window. Looks before that would almost always find some still going.
    pub fn last_of(&self, n: usize) -> Phase {
        if n <= 1 {
            return *self;
        }
        let span = self.latest - self.earliest;
        Phase {
            earliest: self.earliest + span.mul_f64(LATE_QUANTILE.powf(1.0 / n as f64)),
            latest: self.latest,
        }
    }

    /// The interval before the next look, `elapsed` into the phase.
    pub fn interval(&self, elapsed: Duration) -> Duration {
        match self.expected_remaining(elapsed) {
            Some(remaining) => (remaining / 2).clamp(DENSEST, SPARSEST),
            None => OVERDUE,
        }
    }

    /// The pause from `now` to the next look at a phase that began at `began`: at least its
    /// [`interval`](Self::interval), ending on a tick of the polling grid.
    pub fn pause(&self, began: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
        let elapsed = (now - began).to_std().unwrap_or_default();
        until_tick(now, self.interval(elapsed))
    }
}

/// The ticks of the polling grid, nested (each a multiple of the one before): a look at least
/// one of them away lands on a multiple of the largest such, so steps on different schedules,
/// sparse ones especially, still look on the same ticks.
const TICKS: [Duration; 4] = [
    DENSEST,
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
];

/// The pause from `now` to the first tick of the polling grid (engine clock) at least
/// `interval` after the tick this look was due on: a look runs a little late (less than
/// [`FRESH`](super::jobs::FRESH), half the densest tick), which the next one does not add up.
pub fn until_tick(now: DateTime<Utc>, interval: Duration) -> Duration {
    let tick = TICKS
        .iter()
        .rev()
        .find(|t| **t <= interval)
        .unwrap_or(&DENSEST)
        .as_micros() as i64;
    let late = (DENSEST / 2).as_micros() as i64;
    let earliest = now.timestamp_micros() + interval.as_micros() as i64 - late;
    let wake = earliest.div_euclid(tick) * tick + if earliest % tick == 0 { 0 } else { tick };
    Duration::from_micros((wake - now.timestamp_micros()).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The looks a phase gets from its start to `until` (seconds into it), on a grid-aligned start.
    fn looks(phase: Phase, until: u64) -> Vec<u64> {
        let began = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut at = Vec::new();
        let mut now = began;
        while (now - began).num_seconds() < until as i64 {
            at.push((now - began).num_seconds() as u64);
            now += phase.pause(began, now);
        }
        at
    }

    #[test]
    fn sparse_early_dense_near_the_end_and_every_30_s_once_overdue() {
        let s = Duration::from_secs;
        // Before the earliest end: half the time to the middle of the window, at most 60 s.
        assert_eq!(BOOT.interval(s(0)), s(60));
        assert_eq!(JOB.interval(s(0)), s(60));
        // Within the window the interval shrinks towards the latest end, down to 5 s.
        assert_eq!(BOOT.interval(s(100)), s(20));
        assert_eq!(BOOT.interval(s(160)), s(5));
        assert!(JOB.interval(s(400)) > JOB.interval(s(600)));
        // Overdue: the documented procedure's 30 s.
        assert_eq!(BOOT.interval(s(180)), OVERDUE);
        assert_eq!(JOB.interval(s(3600)), OVERDUE);
        // Monotonic up to the latest end: never sparser later in the window.
        for phase in [CONVERSION, JOB, BOOT] {
            let intervals: Vec<Duration> = (0..phase.latest.as_secs())
                .map(|t| phase.interval(s(t)))
                .collect();
            assert!(intervals.windows(2).all(|w| w[1] <= w[0]), "{phase:?}");
        }
    }

    #[test]
    fn the_looks_crowd_towards_the_latest_end() {
        let boot = looks(BOOT, 180);
        assert_eq!(
            boot,
            [0, 60, 90, 110, 130, 140, 150, 155, 160, 165, 170, 175]
        );
        let early = boot.iter().filter(|t| **t < 90).count();
        let late = boot.iter().filter(|t| **t >= 90).count();
        assert!(late > early, "{boot:?}");
        // A 12-minute job is looked at about 20 times, not every 5 s (144) or 30 s (24).
        let job = looks(JOB, 720);
        assert!((15..=24).contains(&job.len()), "{job:?}");
    }

    #[test]
    fn the_last_of_many_is_looked_for_near_the_latest_end() {
        let s = Duration::from_secs;
        assert_eq!(BOOT.last_of(1), BOOT);
        assert_eq!(BOOT.last_of(0), BOOT);
        for phase in [CONVERSION, JOB, BOOT] {
            let mut before = phase.earliest;
            for n in [2, 6, 50, 300] {
                let last = phase.last_of(n);
                assert_eq!(last.latest, phase.latest);
                assert!(
                    last.earliest > before && last.earliest < phase.latest,
                    "{n}"
                );
                before = last.earliest;
            }
        }
        // 50 instances booting for 60 to 180 s: the last ends after about 173 s 19 times out
        // of 20 (0.05^(1/50) = 0.942), so the gate looks about three times, not twelve.
        let fifty = BOOT.last_of(50);
        assert!(
            fifty.earliest > s(172) && fifty.earliest < s(174),
            "{fifty:?}"
        );
        let began = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut now = began + chrono::Duration::from_std(fifty.earliest).unwrap();
        let mut gate_looks = 0;
        while now - began < chrono::Duration::seconds(180) {
            gate_looks += 1;
            now += fifty.pause(began, now);
        }
        assert!(gate_looks <= 3, "{gate_looks}");
        assert!(gate_looks < looks(BOOT, 180).len(), "{gate_looks}");
    }

    #[test]
    fn every_look_lands_on_a_tick_of_the_grid() {
        let at = |s: i64, ms: i64| {
            DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
                + chrono::Duration::milliseconds(ms)
        };
        let s = Duration::from_secs;
        // A look 0.3 s late on the 20 s tick, 10 s on: the 30 s tick, not 40 s.
        assert_eq!(until_tick(at(20, 300), s(10)), Duration::from_millis(9_700));
        // Densest: the next 5 s tick at least 5 s (less half a tick) on.
        assert_eq!(until_tick(at(3, 200), s(5)), Duration::from_millis(6_800));
        // Two steps on different schedules (40 s: the 30 s grid; 25 s: the 10 s grid) that
        // look 11.5 s apart wake on the same tick.
        let (a, b) = (at(21, 0), at(32, 500));
        let wake = |t: DateTime<Utc>, interval| {
            t + chrono::Duration::from_std(until_tick(t, interval)).unwrap()
        };
        assert_eq!(wake(a, s(40)), at(60, 0));
        assert_eq!(wake(b, s(25)), at(60, 0));
    }
}
