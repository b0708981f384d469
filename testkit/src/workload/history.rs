//! The recorded history of a workload: one [`Op`] per block read or write, with invoke
//! and complete times relative to the workload's start.

use super::block::{Observed, Tag};
use std::time::Duration;

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Wrote the block tagged `Tag`.
    Write(Tag),
    /// Read the block; `None` when the read failed (nothing observed).
    Read(Option<Observed>),
}

/// One block operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Worker that issued it (the final read-back uses [`READBACK_WORKER`]).
    pub worker: u32,
    /// Block index (volume offset / 4096).
    pub block: u64,
    /// When it was issued.
    pub invoke: Duration,
    /// When it returned (success, error or timeout).
    pub complete: Duration,
    /// What it did.
    pub action: Action,
    /// The error it returned, if any (a write that failed may or may not have happened).
    pub error: Option<String>,
}

/// Worker id of the final read-back pass.
pub const READBACK_WORKER: u32 = u32::MAX;

impl Op {
    /// Completed without error.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// An acknowledged write's tag.
    pub fn acked_write(&self) -> Option<Tag> {
        match self.action {
            Action::Write(t) if self.ok() => Some(t),
            _ => None,
        }
    }

    /// Latency.
    pub fn latency(&self) -> Duration {
        self.complete.saturating_sub(self.invoke)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = if self.worker == READBACK_WORKER {
            "readback".to_string()
        } else {
            format!("worker {}", self.worker)
        };
        write!(
            f,
            "[{:>10.3} .. {:>10.3} ms] {who:<10} block {:<5} ",
            ms(self.invoke),
            ms(self.complete),
            self.block
        )?;
        match &self.action {
            Action::Write(t) => write!(f, "write {t}")?,
            Action::Read(Some(o)) => write!(f, "read -> {o}")?,
            Action::Read(None) => write!(f, "read")?,
        }
        if let Some(e) = &self.error {
            write!(f, "  ERROR: {e}")?;
        }
        Ok(())
    }
}

/// A whole workload's operations, in no particular order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The operations.
    pub ops: Vec<Op>,
}

impl History {
    /// Acknowledged writes.
    pub fn acked_writes(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| o.acked_write().is_some())
            .count()
    }

    /// Successful reads.
    pub fn ok_reads(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| o.ok() && matches!(o.action, Action::Read(_)))
            .count()
    }

    /// Operations that returned an error (the caller saw an I/O error).
    pub fn errors(&self) -> Vec<&Op> {
        self.ops.iter().filter(|o| !o.ok()).collect()
    }

    /// The operations on `block`, by invoke time.
    pub fn of_block(&self, block: u64) -> Vec<&Op> {
        let mut v: Vec<&Op> = self.ops.iter().filter(|o| o.block == block).collect();
        v.sort_by_key(|o| (o.invoke, o.complete));
        v
    }
}
