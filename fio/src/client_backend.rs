//! The real backend: a Basalt volume through the client library.

use crate::backend::EngineBackend;
use crate::error::FioError;
use crate::options::{EngineOptions, TransportChoice};
use basalt_client::config_file::{parse_addrs, ClientFile};
use basalt_client::{ClientError, Cluster, OpenOptions, Volume};
use basalt_transport::{FastPathMode, TcpTransport};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// How long opening a volume may wait for an MDS before the job fails.
const OPEN_RETRY_FOR: Duration = Duration::from_secs(3);

fn open_error(volume: &str, e: ClientError) -> FioError {
    FioError::ClientOpen {
        volume: volume.to_string(),
        reason: e.to_string(),
    }
}

fn io_error(e: ClientError) -> FioError {
    let errno = match &e {
        ClientError::Misaligned { .. }
        | ClientError::OutOfRange { .. }
        | ClientError::InvalidRequest { .. } => 22,
        ClientError::NoSpace => 28,
        ClientError::Closed => 108,
        _ => 5,
    };
    FioError::Client {
        errno,
        reason: e.to_string(),
    }
}

/// The cluster the options (and the client configuration file) point at.
fn cluster(
    opts: &EngineOptions,
    volume: &str,
    fast_path: bool,
) -> Result<Cluster<TcpTransport>, FioError> {
    let mut file = ClientFile::load(None).map_err(|e| open_error(volume, e))?;
    if !opts.mds.is_empty() {
        file.mds = parse_addrs(&opts.mds.join(",")).map_err(|e| open_error(volume, e))?;
    }
    file.transport.fast_path = match (fast_path, opts.transport) {
        (false, _) | (true, TransportChoice::Tcp) => FastPathMode::Off,
        (true, TransportChoice::Ucx) => FastPathMode::Force,
        (true, TransportChoice::Auto) => FastPathMode::Auto,
    };
    if !fast_path {
        file.ucx = None;
    }
    let mut cfg = file.client_config().map_err(|e| open_error(volume, e))?;
    cfg.mds_retry_for = OPEN_RETRY_FOR;
    let name = format!("fio-{}", std::process::id());
    let transport = file
        .transport(basalt_proto::hello::Role::Client, &name)
        .map_err(|e| open_error(volume, e))?;
    Ok(Cluster::new(transport, cfg))
}

/// The volume's size, asked of the MDS on a throw-away single-thread runtime: fio calls
/// this in its parent process before forking jobs, so nothing may outlive the call
/// (no threads, no UCX).
pub fn probe_size(opts: &EngineOptions, volume: &str) -> Result<u64, FioError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FioError::Runtime {
            message: e.to_string(),
        })?;
    let size = rt.block_on(async {
        let c = cluster(opts, volume, false)?;
        c.stat_volume(volume)
            .await
            .map(|v| v.size)
            .map_err(|e| open_error(volume, e))
    });
    drop(rt);
    size
}

/// An open volume. Every I/O holds a clone of the `Arc` while it runs; `close` takes the
/// volume out and, once no I/O holds it any more, ends its MDS session.
pub struct ClientVolume {
    volume: parking_lot::Mutex<Option<Arc<Volume<TcpTransport>>>>,
    size: u64,
}

impl ClientVolume {
    fn get(&self) -> Result<Arc<Volume<TcpTransport>>, FioError> {
        self.volume.lock().clone().ok_or(FioError::Closed)
    }
}

impl ClientVolume {
    /// Open `volume` (in the job process, on the job's runtime).
    pub async fn open(opts: &EngineOptions, volume: &str) -> Result<Self, FioError> {
        let c = cluster(opts, volume, true)?;
        // fio jobs may share a volume (numjobs > 1), so open shared.
        let volume_handle = c
            .open(volume, OpenOptions { shared: true })
            .await
            .map_err(|e| open_error(volume, e))?;
        Ok(ClientVolume {
            size: volume_handle.size(),
            volume: parking_lot::Mutex::new(Some(Arc::new(volume_handle))),
        })
    }
}

#[async_trait::async_trait]
impl EngineBackend for ClientVolume {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read(&self, offset: u64, len: usize) -> Result<Bytes, FioError> {
        self.get()?.read(offset, len as u64).await.map_err(io_error)
    }

    async fn write(&self, offset: u64, data: Bytes) -> Result<(), FioError> {
        self.get()?.write(offset, data).await.map_err(io_error)
    }

    async fn trim(&self, offset: u64, len: u64) -> Result<(), FioError> {
        self.get()?.discard(offset, len).await.map_err(io_error)
    }

    async fn flush(&self) -> Result<(), FioError> {
        self.get()?.flush().await.map_err(io_error)
    }

    async fn close(&self) -> Result<(), FioError> {
        let Some(mut v) = self.volume.lock().take() else {
            return Ok(());
        };
        // I/O still running holds clones; the engine closes after the last completion,
        // so this normally succeeds at once.
        let volume = loop {
            match Arc::try_unwrap(v) {
                Ok(volume) => break volume,
                Err(shared) => {
                    v = shared;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        };
        volume.close().await.map_err(io_error)
    }
}
