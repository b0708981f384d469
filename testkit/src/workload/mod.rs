//! The fault suite's workload and checker.
//!
//! - [`block`]: the self-describing 4 KiB block (writer, sequence, index, checksum),
//! - [`history`]: the recorded operations,
//! - [`checker`]: per-block register linearizability over a history (pure, unit-tested),
//! - [`stats`]: the longest I/O pause and the p99 latency of a fault window,
//! - [`driver`]: concurrent workers on a real volume that produce the history.
//!
//! A fault test starts a [`Workload`], injects its fault, waits for progress, stops the
//! workload, then calls [`verify`] which checks the history and renders the one-line
//! summary the suite prints (`fault=<name> longest_pause_ms=.. p99_ms=.. writes_verified=.. lost=0`).

pub mod block;
pub mod checker;
pub mod driver;
pub mod history;
pub mod stats;

pub use checker::{check, CheckSummary, Violation};
pub use driver::{Workload, WorkloadSpec};
pub use history::History;
pub use stats::FaultStats;

use std::time::Duration;

/// Why a workload run failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// Fewer operations completed than waited for within the bound (I/O stalled).
    #[error("I/O stalled: {got} of {wanted} operations completed in {waited:?}")]
    Stalled {
        /// Operations waited for.
        wanted: u64,
        /// Operations that completed.
        got: u64,
        /// How long it waited.
        waited: Duration,
    },
    /// The history breaks the register model (lost, stale, torn or phantom data).
    #[error("{0}")]
    Violation(Box<Violation>),
    /// The cluster could not be started or faulted.
    #[error("cluster: {0}")]
    Cluster(#[from] crate::ClusterError),
    /// The client refused a setup call (create, open, configuration).
    #[error("client: {0}")]
    Client(#[from] basalt_client::ClientError),
    /// A temp dir or runtime could not be made.
    #[error("test setup: {0}")]
    Setup(std::io::Error),
    /// Operations returned errors to the caller (transient faults must not surface).
    #[error("{count} operations returned errors to the caller; first: {first}")]
    Errors {
        /// How many.
        count: usize,
        /// The first of them, rendered.
        first: String,
    },
}

/// A verified fault run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultReport {
    /// What the checker covered.
    pub check: CheckSummary,
    /// Pause and latency in the fault window.
    pub stats: FaultStats,
}

impl FaultReport {
    /// The suite's one-line summary for fault `name`.
    pub fn line(&self, name: &str) -> String {
        format!(
            "fault={name} longest_pause_ms={} p99_ms={} writes_verified={} lost=0",
            self.stats.longest_pause.as_millis(),
            self.stats.p99.as_millis(),
            self.check.writes_verified
        )
    }
}

/// Check `h` (no errors surfaced to the caller, linearizable per block) and measure the
/// fault window `[from, to]`.
pub fn verify(h: &History, from: Duration, to: Duration) -> Result<FaultReport, WorkloadError> {
    // Data first: a violation matters more than an error, and failed writes are
    // checked as indeterminate.
    let check = check(h).map_err(WorkloadError::Violation)?;
    let errors = h.errors();
    if let Some(first) = errors.first() {
        return Err(WorkloadError::Errors {
            count: errors.len(),
            first: first.to_string(),
        });
    }
    Ok(FaultReport {
        check,
        stats: stats::fault_stats(h, from, to),
    })
}
