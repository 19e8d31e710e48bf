//! Live progress on stderr: plain timestamped lines (`2026-11-27T03:04:05Z launch:app 1/2
//! launched`), which read well on a terminal, in a pipe and in a CI log alike. Lines are also
//! sent to tracing at info level.

use chrono::{DateTime, Utc};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Cheap to clone; clones share the de-duplication of repeated lines.
#[derive(Clone)]
pub struct Progress {
    quiet: bool,
    last: Arc<Mutex<Option<(String, String)>>>,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress { quiet, last: Arc::new(Mutex::new(None)) }
    }

    /// Prints one progress line for a step, skipping an exact repeat of that step's last line.
    pub fn line(&self, at: DateTime<Utc>, step: &str, message: &str) {
        tracing::info!(step, "{message}");
        if self.quiet {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let entry = (step.to_string(), message.to_string());
        if last.as_ref() == Some(&entry) {
            return;
        }
        *last = Some(entry);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{} {step:<26} {message}", at.format("%Y-%m-%dT%H:%M:%SZ"));
    }

    /// A run-level line.
    pub fn run_line(&self, at: DateTime<Utc>, message: &str) {
        self.line(at, "run", message);
    }
}
