//! The terminal side of the engine's progress events and approvals.
//!
//! Every event is a plain timestamped line on stderr
//! (`2026-11-27T03:04:05Z launch:app  1/2 launched`), which reads well in a pipe, a CI log and a
//! terminal alike. On a terminal, a status line at the bottom, drawn by `indicatif` (the library
//! cargo uses), shows a spinner, the steps running now and the run's time on the engine's clock,
//! so a long wait never looks like a hang; the lines print above it. Approvals are asked on the
//! terminal when stdin and stderr are both TTYs, with the status line put aside while asking.

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use crate::engine::progress::{Approver, GatePreview, Observer, ProgressEvent, StepProgress};

/// Progress lines on stderr; the status line only when stderr is a terminal.
pub struct Lines {
    /// The status line (`None` when stderr is not a terminal: plain lines only).
    status: Option<ProgressBar>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last: Option<(String, String)>,
    running: BTreeSet<String>,
    started: Option<DateTime<Utc>>,
}

impl Lines {
    pub fn new() -> Self {
        let status = std::io::stderr().is_terminal().then(status_line);
        Lines {
            status,
            state: Mutex::new(State::default()),
        }
    }

    /// The status line, for the prompt to put aside while it asks.
    pub fn status_line(&self) -> Option<ProgressBar> {
        self.status.clone()
    }
}

impl Default for Lines {
    fn default() -> Self {
        Self::new()
    }
}

/// The status line on stderr, idle (drawn empty) until a step runs.
fn status_line() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    show_idle(&bar);
    bar
}

/// A spinner and the running steps, redrawn 8 times a second.
fn show_running(bar: &ProgressBar, message: String) {
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .expect("a valid template")
            .tick_chars("|/-\\ "),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(125));
}

/// Nothing running (between steps, at the end of a run): an empty, still line, so the result
/// printed on stdout next is not drawn over.
fn show_idle(bar: &ProgressBar) {
    bar.disable_steady_tick();
    bar.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
    bar.set_message("");
}

impl Drop for Lines {
    fn drop(&mut self) {
        if let Some(status) = &self.status {
            status.finish_and_clear();
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
        let line = format!(
            "{} {:<26} {}",
            at.format("%Y-%m-%dT%H:%M:%SZ"),
            crate::terminal::safe(step),
            crate::terminal::safe_lines(&message)
        );
        let Some(status) = &self.status else {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
            let _ = err.flush();
            return;
        };
        status.println(line);
        if state.running.is_empty() {
            show_idle(status);
        } else {
            let elapsed = (at - state.started.unwrap_or(at)).num_seconds().max(0);
            let running: Vec<&str> = state.running.iter().map(String::as_str).collect();
            show_running(
                status,
                format!(
                    "\x1b[1m[{:02}:{:02}:{:02}] running: {}\x1b[0m",
                    elapsed / 3600,
                    (elapsed % 3600) / 60,
                    elapsed % 60,
                    crate::terminal::safe(&running.join(", "))
                ),
            );
        }
    }
}

/// Whether approvals can be asked on this terminal.
pub fn terminal_is_interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `question [y/N] ` on stderr and reads stdin; anything but `y`/`yes` declines.
pub async fn ask_yes_no(question: String) -> bool {
    ask_aside(question, None).await
}

/// [`ask_yes_no`] with the status line put aside (cleared, then drawn again) while asking.
async fn ask_aside(question: String, status: Option<ProgressBar>) -> bool {
    let ask = move || {
        let mut err = std::io::stderr();
        let _ = write!(err, "{question} [y/N] ");
        let _ = err.flush();
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() {
            return false;
        }
        matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    };
    tokio::task::spawn_blocking(move || match status {
        Some(status) => status.suspend(ask),
        None => ask(),
    })
    .await
    .unwrap_or(false)
}

/// Approvals asked on the terminal, when there is one.
pub struct Prompt {
    pub interactive: bool,
    /// The run's status line, put aside while asking.
    pub status: Option<ProgressBar>,
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
        Box::pin(ask_aside(question, self.status.clone()))
    }
}
