//! The engine's time: the real clock against AWS, or the simulator's clock when the endpoint
//! answers `GET /_sim/clock` (then RTO and RPO read as they would in reality, and polling
//! intervals, expressed in simulated seconds, are divided by the simulator's speed).

use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum EngineClock {
    Real,
    Simulated {
        speed: f64,
        anchor_sim: DateTime<Utc>,
        anchor_real: Instant,
    },
}

impl EngineClock {
    /// Asks the endpoint for its simulated clock; the real clock when it does not answer one.
    pub async fn detect(endpoint_url: Option<&str>) -> EngineClock {
        let Some(url) = endpoint_url else {
            return EngineClock::Real;
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("an HTTP client builds");
        let answer = client
            .get(format!("{}/_sim/clock", url.trim_end_matches('/')))
            .send()
            .await;
        let Ok(response) = answer else {
            return EngineClock::Real;
        };
        if !response.status().is_success() {
            return EngineClock::Real;
        }
        let Ok(body) = response.json::<serde_json::Value>().await else {
            return EngineClock::Real;
        };
        let speed = body["speed"].as_f64();
        let now = body["now"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        match (speed, now) {
            (Some(speed), Some(now)) if speed > 0.0 => EngineClock::Simulated {
                speed,
                anchor_sim: now.with_timezone(&Utc),
                anchor_real: Instant::now(),
            },
            _ => EngineClock::Real,
        }
    }

    pub fn is_simulated(&self) -> bool {
        matches!(self, EngineClock::Simulated { .. })
    }

    /// How many times faster than real time this clock runs.
    pub fn speed(&self) -> f64 {
        match self {
            EngineClock::Real => 1.0,
            EngineClock::Simulated { speed, .. } => *speed,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            EngineClock::Real => Utc::now(),
            EngineClock::Simulated {
                speed,
                anchor_sim,
                anchor_real,
            } => {
                let micros = (anchor_real.elapsed().as_secs_f64() * speed * 1e6) as i64;
                *anchor_sim + chrono::Duration::microseconds(micros)
            }
        }
    }

    /// The real duration of `simulated` seconds on this clock.
    pub fn real(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.speed())
    }

    /// Sleeps for a duration of this clock's time.
    pub async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(self.real(duration)).await;
    }
}

/// Polling that starts fast, backs off by half each time, and stays bounded.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { next: first, max }
    }

    /// The next interval (in the clock's time).
    pub fn next_interval(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next.mul_f64(1.5)).min(self.max);
        now
    }

    /// Progress was seen: poll fast again.
    pub fn reset(&mut self, first: Duration) {
        self.next = first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(10));
        let seq: Vec<u64> = (0..6)
            .map(|_| b.next_interval().as_millis() as u64)
            .collect();
        assert_eq!(seq, [2000, 3000, 4500, 6750, 10000, 10000]);
        b.reset(Duration::from_secs(2));
        assert_eq!(b.next_interval(), Duration::from_secs(2));
    }

    #[test]
    fn simulated_time_scales_sleeps() {
        let clock = EngineClock::Simulated {
            speed: 60.0,
            anchor_sim: Utc::now(),
            anchor_real: Instant::now(),
        };
        assert_eq!(clock.real(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(
            EngineClock::Real.real(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }
}
