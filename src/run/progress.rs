//! Live progress on stderr. Every event is a plain timestamped line
//! (`2026-11-27T03:04:05Z launch:app  1/2 launched`), which reads well in a pipe, a CI log and a
//! terminal alike. On a terminal, a status line at the bottom is redrawn in place with the steps
//! running now and the time since the run started, so a long wait never looks like a hang.
//! Lines are also sent to tracing at info level.

use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

/// Cheap to clone; clones share one display.
#[derive(Clone)]
pub struct Progress {
    quiet: bool,
    tty: bool,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    last: Option<(String, String)>,
    running: BTreeSet<String>,
    started: Option<DateTime<Utc>>,
    status_shown: bool,
}

impl Progress {
    /// Progress on stderr; the status line only when stderr is a terminal.
    pub fn new(quiet: bool) -> Self {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Prints one progress line for a step, skipping an exact repeat of that step's last line.
    pub fn line(&self, at: DateTime<Utc>, step: &str, message: &str) {
        tracing::info!(step, "{message}");
        if self.quiet {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.started.get_or_insert(at);
        match message {
            "started" | "resumed" => {
                state.running.insert(step.to_string());
            }
            m if m == "succeeded" || m.starts_with("FAILED") || m.starts_with("stopped") => {
                state.running.remove(step);
            }
            _ => {}
        }
        let entry = (step.to_string(), message.to_string());
        if state.last.as_ref() == Some(&entry) {
            return;
        }
        state.last = Some(entry);
        let mut err = std::io::stderr().lock();
        if self.tty && state.status_shown {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(
            err,
            "{} {step:<26} {message}",
            at.format("%Y-%m-%dT%H:%M:%SZ")
        );
        if self.tty && !state.running.is_empty() {
            let elapsed = (at - state.started.unwrap_or(at)).num_seconds().max(0);
            let running: Vec<&str> = state.running.iter().map(String::as_str).collect();
            let _ = write!(
                err,
                "\x1b[1m[{:02}:{:02}:{:02}] running: {}\x1b[0m",
                elapsed / 3600,
                (elapsed % 3600) / 60,
                elapsed % 60,
                running.join(", ")
            );
            state.status_shown = true;
        } else {
            state.status_shown = false;
        }
        let _ = err.flush();
    }

    /// A run-level line.
    pub fn run_line(&self, at: DateTime<Utc>, message: &str) {
        self.line(at, "run", message);
    }
}
