//! The disk fence: after the first I/O error on the data disk the chunkserver stops using
//! that disk.
//!
//! Why: after a failed write or fsync the kernel may have dropped the dirty pages, and the
//! file's content is unknown (the "fsyncgate" lesson). Retrying could acknowledge data that
//! never reached the disk, and reading could serve whatever the page cache kept. So the
//! first error on a chunk read, chunk write, chunk fsync, WAL write or WAL fdatasync trips
//! the fence for good (until the process restarts on a repaired disk): the chunk store and
//! the WAL refuse all further I/O with [`ChunkServerError::Fenced`], and the copysets of
//! the disk hand their leadership over, stop, and answer `DiskError` (see
//! [`crate::copyset::Copysets`]), so the other replicas take over.
//!
//! One fence per disk, shared by its chunk store and WAL.

use crate::error::{ChunkServerError, Result};
use std::sync::Arc;
use tokio::sync::watch;

/// What tripped the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceCause {
    /// The operation that failed.
    pub op: &'static str,
    /// The OS error number (`EIO` when the error had none).
    pub errno: i32,
}

/// The fence of one disk. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct DiskFence {
    cause: watch::Sender<Option<FenceCause>>,
}

impl Default for DiskFence {
    fn default() -> Self {
        DiskFence {
            cause: watch::Sender::new(None),
        }
    }
}

impl DiskFence {
    /// An untripped fence.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Trip the fence (the first cause is kept; later ones are ignored).
    pub fn trip(&self, op: &'static str, errno: i32) {
        let tripped = self.cause.send_if_modified(|c| {
            if c.is_some() {
                return false;
            }
            *c = Some(FenceCause { op, errno });
            true
        });
        if tripped {
            tracing::error!(
                op,
                errno,
                "disk I/O error: fencing the disk (no more I/O to it; its copysets stop)"
            );
        }
    }

    /// Trip the fence if `r` failed with a disk error; pass `r` on.
    pub fn note<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(ChunkServerError::Disk { op, source }) = &r {
            self.trip(op, source.raw_os_error().unwrap_or(libc::EIO));
        }
        r
    }

    /// Why the fence tripped, if it did.
    pub fn cause(&self) -> Option<FenceCause> {
        *self.cause.borrow()
    }

    /// Whether the fence tripped.
    pub fn is_tripped(&self) -> bool {
        self.cause.borrow().is_some()
    }

    /// `Err(Fenced)` once the fence tripped.
    pub fn check(&self) -> Result<()> {
        if self.is_tripped() {
            Err(ChunkServerError::Fenced)
        } else {
            Ok(())
        }
    }

    /// Completes when the fence trips (at once if it has).
    pub async fn tripped(&self) -> FenceCause {
        let mut rx = self.cause.subscribe();
        // The sender lives in `self`, so the wait cannot end without a cause.
        let cause = rx.wait_for(Option::is_some).await.ok().and_then(|c| *c);
        cause.unwrap_or(FenceCause {
            op: "unknown",
            errno: libc::EIO,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_cause_wins_and_waiters_wake() {
        let f = DiskFence::new();
        assert!(f.check().is_ok());
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.tripped().await }
        });
        let ok: Result<()> = f.note(Err(ChunkServerError::BadRange { offset: 1, len: 1 }));
        assert!(ok.is_err());
        assert!(!f.is_tripped(), "only disk errors trip the fence");
        let _ = f.note::<()>(Err(ChunkServerError::Disk {
            op: "write",
            source: std::io::Error::from_raw_os_error(libc::EIO),
        }));
        f.trip("fdatasync WAL", libc::ENOSPC);
        let want = FenceCause {
            op: "write",
            errno: libc::EIO,
        };
        assert_eq!(f.cause(), Some(want));
        assert!(matches!(f.check(), Err(ChunkServerError::Fenced)));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("waiter woke")
            .unwrap();
        assert_eq!(got, want);
        assert_eq!(f.tripped().await, want);
    }
}
