//! The terminal side of the engine's progress events and approvals.
//!
//! Every event is a plain timestamped line on stderr
//! (`2026-11-27T03:04:05Z launch:app  1/2 launched`), which reads well in a pipe, a CI log and a
//! terminal alike. On a terminal, a status line at the bottom is redrawn in place with the steps
//! running now and the time since the run started, so a long wait never looks like a hang.
//! Approvals are asked on the terminal when stdin and stderr are both TTYs.

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::engine::progress::{Approver, GatePreview, Observer, ProgressEvent, StepProgress};

/// Progress lines on stderr; the status line only when stderr is a terminal.
pub struct Lines {
    tty: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last: Option<(String, String)>,
    running: BTreeSet<String>,
    started: Option<DateTime<Utc>>,
    status_shown: bool,
}

impl Lines {
    pub fn new() -> Self {
        Lines {
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(State::default()),
        }
    }
}

impl Observer for Lines {
    /// Prints one line, skipping an exact repeat of that step's last line.
    fn event(&self, event: &ProgressEvent<'_>) {
        let (at, step) = (event.at, event.step);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.started.get_or_insert(at);
        match &event.progress {
            StepProgress::Started | StepProgress::Resumed => {
                state.running.insert(step.to_string());
            }
            StepProgress::Succeeded
            | StepProgress::Failed(_)
            | StepProgress::StoppedAtSafePoint => {
                state.running.remove(step);
            }
            StepProgress::Note(_) => {}
        }
        let message = event.progress.message();
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
            "{} {:<26} {}",
            at.format("%Y-%m-%dT%H:%M:%SZ"),
            crate::terminal::safe(step),
            crate::terminal::safe_lines(&message)
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
                crate::terminal::safe(&running.join(", "))
            );
            state.status_shown = true;
        } else {
            state.status_shown = false;
        }
        let _ = err.flush();
    }
}

/// Whether approvals can be asked on this terminal.
pub fn terminal_is_interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `question [y/N] ` on stderr and reads stdin; anything but `y`/`yes` declines.
pub async fn ask_yes_no(question: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let mut err = std::io::stderr();
        let _ = write!(err, "{question} [y/N] ");
        let _ = err.flush();
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() {
            return false;
        }
        matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    })
    .await
    .unwrap_or(false)
}

/// Approvals asked on the terminal, when there is one.
pub struct Prompt {
    pub interactive: bool,
}

impl Approver for Prompt {
    fn can_ask(&self) -> bool {
        self.interactive
    }

    fn approve<'a>(&'a self, preview: &'a GatePreview) -> BoxFuture<'a, bool> {
        let mut question = format!(
            "Step {} will make these changes:\n",
            crate::terminal::safe(&preview.step)
        );
        for line in preview.lines() {
            question.push_str(&format!("  {}\n", crate::terminal::safe(&line)));
        }
        question.push_str(&format!(
            "Approve step {}? This changes production traffic or resources.",
            crate::terminal::safe(&preview.step)
        ));
        Box::pin(ask_yes_no(question))
    }
}
