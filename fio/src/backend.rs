//! The I/O backend the engine drives: async block operations on one volume.

use crate::error::FioError;
use crate::mem::MemVolume;
use crate::options::{EngineOptions, VolumeSpec};
use bytes::Bytes;
use std::sync::Arc;

/// Async block I/O on one volume. Implementations must be cheap to share between the
/// tasks of one job (`Arc`); every method may run concurrently with the others.
///
/// Implemented by the Basalt client's volume ([`crate::client_backend::ClientVolume`])
/// and by the in-memory test volume ([`MemVolume`]).
#[async_trait::async_trait]
pub trait EngineBackend: Send + Sync + 'static {
    /// The volume size in bytes.
    fn size(&self) -> u64;
    /// Read `len` bytes at `offset`.
    async fn read(&self, offset: u64, len: usize) -> Result<Bytes, FioError>;
    /// Write `data` at `offset`.
    async fn write(&self, offset: u64, data: Bytes) -> Result<(), FioError>;
    /// Discard `len` bytes at `offset` (they read back as zeros).
    async fn trim(&self, offset: u64, len: u64) -> Result<(), FioError>;
    /// Make every completed write durable.
    async fn flush(&self) -> Result<(), FioError>;
    /// End the job's use of the volume (the client backend ends its MDS session, so
    /// another client can open it exclusively at once). I/O after this fails.
    async fn close(&self) -> Result<(), FioError> {
        Ok(())
    }
}

/// The size of the volume the options name, without starting anything (fio's `setup`
/// runs in the parent process before it forks the jobs).
pub fn probe_size(opts: &EngineOptions) -> Result<u64, FioError> {
    match &opts.volume {
        VolumeSpec::Mem { size } => Ok(*size),
        VolumeSpec::Named(volume) => crate::client_backend::probe_size(opts, volume),
    }
}

/// Open the backend the options name (in the job process, from `init`).
pub fn open_backend(
    opts: &EngineOptions,
    runtime: &tokio::runtime::Handle,
) -> Result<Arc<dyn EngineBackend>, FioError> {
    match &opts.volume {
        VolumeSpec::Mem { size } => Ok(Arc::new(MemVolume::new(*size))),
        VolumeSpec::Named(volume) => Ok(Arc::new(
            runtime.block_on(crate::client_backend::ClientVolume::open(opts, volume))?,
        )),
    }
}

/// Refuse an I/O that does not fit in a volume of `size` bytes.
pub fn check_range(offset: u64, len: u64, size: u64) -> Result<(), FioError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(FioError::OutOfRange { offset, len, size }),
    }
}
