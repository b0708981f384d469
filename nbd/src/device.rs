//! What an export serves: a block device with async I/O. Basalt volumes implement it
//! through the client library; [`crate::mem_device::MemDevice`] is the in-memory twin for
//! protocol tests.

use bytes::Bytes;
use futures::future::BoxFuture;
use std::io;

/// A block device behind an export. Ranges are already validated against its size.
pub trait BlockDevice: Send + Sync + 'static {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Read `len` bytes at `offset`.
    fn read(&self, offset: u64, len: u32) -> BoxFuture<'_, io::Result<Bytes>>;
    /// Write `data` at `offset`; with `fua`, durable before returning.
    fn write(&self, offset: u64, data: Bytes, fua: bool) -> BoxFuture<'_, io::Result<()>>;
    /// Make every completed write durable.
    fn flush(&self) -> BoxFuture<'_, io::Result<()>>;
    /// Discard a range (reads of it return zeros afterwards).
    fn trim(&self, offset: u64, len: u32) -> BoxFuture<'_, io::Result<()>>;
    /// Zero a range; `no_hole`: keep it allocated.
    fn write_zeroes(&self, offset: u64, len: u32, no_hole: bool) -> BoxFuture<'_, io::Result<()>>;
    /// Allocation of a range as `(length, NBD state flags)` extents covering a prefix of
    /// it (at least one extent). The default says "all allocated, data".
    fn block_status(&self, _offset: u64, len: u32) -> BoxFuture<'_, io::Result<Vec<(u32, u32)>>> {
        Box::pin(async move { Ok(vec![(len, 0)]) })
    }
}

/// The NBD error value for an I/O error.
pub fn errno_of(e: &io::Error) -> u32 {
    use crate::consts::errno;
    match e.raw_os_error() {
        Some(28) => errno::ENOSPC,
        Some(1) | Some(13) => errno::EPERM,
        Some(22) => errno::EINVAL,
        Some(95) => errno::ENOTSUP,
        Some(108) => errno::ESHUTDOWN,
        _ => match e.kind() {
            io::ErrorKind::InvalidInput => errno::EINVAL,
            io::ErrorKind::PermissionDenied => errno::EPERM,
            io::ErrorKind::Unsupported => errno::ENOTSUP,
            _ => errno::EIO,
        },
    }
}
