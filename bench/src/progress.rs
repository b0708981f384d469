//! The progress line on stderr: rewritten in place on a terminal, one line per finished
//! measurement otherwise (CI logs).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Progress of one measurement.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: Duration,
    started: Instant,
    last: Instant,
    tty: bool,
    quiet: bool,
}

/// Minimum time between two redraws.
const REDRAW: Duration = Duration::from_millis(250);

impl Progress {
    /// Start reporting on `label`, expected to take `total` (warm-up included).
    pub fn start(label: &str, total: Duration, quiet: bool) -> Self {
        let now = Instant::now();
        let p = Progress {
            label: label.to_string(),
            total,
            started: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
            quiet,
        };
        if !p.quiet && p.tty {
            eprint!("\r\x1b[2K{} ...", p.label);
        }
        p
    }

    /// Maybe redraw with the operations so far and a figure (e.g. the running p50).
    pub fn tick(&mut self, ops: u64, figure: impl FnOnce() -> String) {
        if self.quiet || !self.tty || self.last.elapsed() < REDRAW {
            return;
        }
        self.last = Instant::now();
        let el = self.started.elapsed();
        eprint!(
            "\r\x1b[2K{}  {:.1}/{:.1}s  {} ops  {}",
            self.label,
            el.as_secs_f64(),
            self.total.as_secs_f64(),
            ops,
            figure()
        );
        let _ = std::io::stderr().flush();
    }

    /// Final line of the measurement.
    pub fn finish(self, summary: &str) {
        if self.quiet {
            return;
        }
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!(
            "{}: {} ({:.1}s)",
            self.label,
            summary,
            self.started.elapsed().as_secs_f64()
        );
    }
}
