//! The signals that stop a run at a safe point (DESIGN section 6 rule 9), and what a closed
//! stdout does to the process.
//!
//! SIGINT (Ctrl-C), SIGTERM (systemd stop, `kill`) and SIGHUP (a closed SSH session) are one
//! event for the driver: stop at the next safe point, release the lease, leave the run
//! `interrupted`. Which one arrived last is kept for the exit code (`128 + signal`: 130, 143,
//! 129), because the exit code is computed far from the loop that received it; one process
//! drives one run, so a process-wide value is exact.
//!
//! Handlers are installed only while a driver listens ([`Interrupts::new`]): installed earlier,
//! a SIGTERM during a read-only command would be swallowed instead of ending the process.

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::signal::unix::{Signal, SignalKind, signal};

/// `128 + n` of the last stopping signal received (0: none yet).
static LAST: AtomicU8 = AtomicU8::new(0);

/// The exit code of an interrupted run: that of the signal that stopped it (130 when unknown).
pub fn interrupted_exit_code() -> u8 {
    match LAST.load(Ordering::Relaxed) {
        0 => 130,
        code => code,
    }
}

/// The stopping signals, listened to together.
pub struct Interrupts {
    int: Option<Signal>,
    term: Option<Signal>,
    hup: Option<Signal>,
}

impl Interrupts {
    /// Installs the handlers (a signal whose handler cannot be installed is left to its default).
    pub fn new() -> Interrupts {
        Interrupts {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// Waits for the next stopping signal and returns its name (for the progress line).
    pub async fn recv(&mut self) -> &'static str {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let (name, code) = tokio::select! {
            _ = next(&mut self.int) => ("Ctrl-C", 130),
            _ = next(&mut self.term) => ("SIGTERM", 143),
            _ = next(&mut self.hup) => ("SIGHUP", 129),
        };
        LAST.store(code, Ordering::Relaxed);
        name
    }
}

impl Default for Interrupts {
    fn default() -> Self {
        Interrupts::new()
    }
}

/// Ends the process quietly when stdout is a closed pipe (`drs-runbook history | head -1`):
/// `println!` panics on `EPIPE` (Rust ignores SIGPIPE), which would print a panic and exit 101.
/// Exits 141 (`128 + SIGPIPE`, as a process killed by it would). A failed print after a
/// stopping signal (the terminal of a closed SSH session answers EIO) exits with that signal's
/// code. Every other panic keeps the default report.
pub fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        // A terminal closed by SIGHUP answers EIO: the run already stopped as `interrupted`.
        if message.starts_with("failed printing to std") && LAST.load(Ordering::Relaxed) != 0 {
            std::process::exit(i32::from(interrupted_exit_code()));
        }
        default(info);
    }));
}
