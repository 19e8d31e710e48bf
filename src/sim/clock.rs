//! The simulated clock: real elapsed time multiplied by `speed`, from an anchor.

use chrono::{DateTime, Duration, Utc};
use std::time::Instant;

/// A clock that runs `speed` times faster than real time.
#[derive(Debug, Clone)]
pub struct SimClock {
    speed: f64,
    anchor_real: Instant,
    anchor_sim: DateTime<Utc>,
}

impl SimClock {
    pub fn new(start: DateTime<Utc>, speed: f64) -> Self {
        SimClock {
            speed,
            anchor_real: Instant::now(),
            anchor_sim: start,
        }
    }

    /// The simulated time now.
    pub fn now(&self) -> DateTime<Utc> {
        let real = self.anchor_real.elapsed().as_secs_f64();
        let micros = (real * self.speed * 1_000_000.0) as i64;
        self.anchor_sim + Duration::microseconds(micros)
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Changes the speed from now on (simulated time does not jump).
    pub fn set_speed(&mut self, speed: f64) {
        let now = self.now();
        self.anchor_sim = now;
        self.anchor_real = Instant::now();
        self.speed = speed;
    }

    /// Moves simulated time forward by `by` at once (tests and rehearsals).
    pub fn skip(&mut self, by: Duration) {
        let now = self.now();
        self.anchor_sim = now + by;
        self.anchor_real = Instant::now();
    }
}
