//! Data I/O backends. Each poller thread owns one [`IoBackend`] instance; requests are
//! submitted without blocking and their completions reaped by the same thread.
//!
//! - [`sync`]: `pread`/`pwrite`/`fdatasync` performed at submission (portable fallback),
//! - [`uring`]: one io_uring ring per instance, completions reaped by the owning poller,
//! - [`spdk`]: NVMe queue pairs through a system SPDK (cargo feature `spdk`),
//! - [`probe`]: picks the best backend that works here, once, and builds instances.
//!
//! Requests must be 512-byte aligned in offset and length ([`IO_ALIGN`]); buffers are
//! [`AlignedBuf`]s, always 4 KiB aligned in memory, so they suit `O_DIRECT`.

pub mod aligned;
pub mod probe;
pub mod spdk;
#[cfg(feature = "spdk")]
pub mod spdk_ffi;
pub mod sync;
pub mod uring;

pub use aligned::AlignedBuf;
pub use probe::{BackendChoice, BackendFactory};

use crate::error::{ChunkServerError, Result};
use std::fs::File;
use std::sync::Arc;

/// Smallest I/O unit accepted by every backend (offset and length).
pub const IO_ALIGN: u64 = 512;

/// The kind of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Synchronous `pread`/`pwrite`.
    Sync,
    /// io_uring.
    Uring,
    /// SPDK NVMe queue pairs.
    Spdk,
}

impl BackendKind {
    /// Lower-case name (as in the configuration).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Sync => "sync",
            BackendKind::Uring => "uring",
            BackendKind::Spdk => "spdk",
        }
    }
}

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    /// Read `buf.len()` bytes at `offset` into `buf`.
    Read,
    /// Write `buf` at `offset`.
    Write,
    /// `fdatasync` the file (`offset` and `buf` ignored).
    Sync,
}

/// One I/O request.
#[derive(Debug)]
pub struct IoRequest {
    /// The operation.
    pub op: IoOp,
    /// The file (opened with `O_DIRECT` by the chunk store).
    pub file: Arc<File>,
    /// Byte offset in the file.
    pub offset: u64,
    /// Data to write, or room to read into.
    pub buf: AlignedBuf,
    /// Caller's tag, returned in the completion.
    pub user_data: u64,
}

/// The outcome of a request.
#[derive(Debug)]
pub struct IoCompletion {
    /// The request's tag.
    pub user_data: u64,
    /// Bytes transferred (0 for `Sync`), or the error.
    pub result: Result<usize>,
    /// The request's buffer, handed back.
    pub buf: AlignedBuf,
}

/// A data I/O engine owned by one thread.
pub trait IoBackend: Send {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Queue a request. Never blocks on the disk; every request yields exactly one
    /// completion (errors included) through [`IoBackend::reap`].
    fn submit(&mut self, req: IoRequest);
    /// Push finished requests onto `out`. With `wait`, block until at least one
    /// completion is available (only when something is in flight).
    fn reap(&mut self, out: &mut Vec<IoCompletion>, wait: bool);
    /// Requests submitted and not yet reaped.
    fn in_flight(&self) -> usize;
}

/// Check a request's alignment; `Err` carries the completion to deliver instead.
pub(crate) fn check_request(req: IoRequest) -> std::result::Result<IoRequest, IoCompletion> {
    let len = req.buf.len() as u64;
    let bad =
        req.op != IoOp::Sync && (req.offset % IO_ALIGN != 0 || len % IO_ALIGN != 0 || len == 0);
    if bad {
        return Err(IoCompletion {
            user_data: req.user_data,
            result: Err(ChunkServerError::BadRange {
                offset: req.offset,
                len,
            }),
            buf: req.buf,
        });
    }
    Ok(req)
}

/// Map an OS error of a data operation.
pub(crate) fn io_error(op: IoOp, source: std::io::Error) -> ChunkServerError {
    ChunkServerError::Disk {
        op: match op {
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Sync => "fdatasync",
        },
        source,
    }
}
