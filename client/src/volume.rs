//! The async volume API: [`Cluster`] (MDS connection, volume administration) and
//! [`Volume`] (an open volume: read, write, write_zeroes, discard, flush, close).

use crate::addr::FromSocketAddr;
use crate::cache::MetaCache;
use crate::chunk_io::PieceOp;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::mds_client::{MdsCallError, MdsClient};
use crate::request_id::RequestIds;
use crate::retry::PeerHealth;
use crate::split::{split, Piece};
use basalt_proto::credential::AuthOp;
use basalt_proto::ids::{VolumeId, CHUNK_SIZE};
use basalt_proto::mds::{
    CloseVolume, CreateVolume, DeleteVolume, ExtendVolume, ListVolumes, OpenVolume, RefreshSession,
    RenameVolume, StatVolume, VolumeInfo,
};
use basalt_proto::status::MdsError;
use basalt_transport::{ConnectionPool, Transport};
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// State shared by a cluster handle and its open volumes.
pub(crate) struct Shared<T: Transport> {
    pub(crate) cfg: ClientConfig,
    pub(crate) pool: Arc<ConnectionPool<T>>,
    pub(crate) mds: MdsClient<T>,
    pub(crate) cache: Mutex<MetaCache>,
    pub(crate) health: Mutex<PeerHealth>,
    /// Ids of this client's writes and deletes (one random client id per cluster handle).
    pub(crate) ids: Mutex<RequestIds>,
    closed: Mutex<HashSet<VolumeId>>,
}

impl<T: Transport> Shared<T> {
    pub(crate) fn is_closed(&self, volume: VolumeId) -> bool {
        self.closed.lock().contains(&volume)
    }
}

fn from_mds(e: MdsCallError) -> ClientError {
    match e {
        MdsCallError::Mds(e) => ClientError::Mds(e),
        MdsCallError::Unavailable => ClientError::MdsUnavailable,
    }
}

/// A handle on a cluster: talks to its MDS, opens volumes.
pub struct Cluster<T: Transport> {
    shared: Arc<Shared<T>>,
}

impl<T: Transport> Clone for Cluster<T> {
    fn clone(&self) -> Self {
        Cluster {
            shared: self.shared.clone(),
        }
    }
}

/// How to open a volume.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Share the volume with other openers instead of opening it exclusively.
    pub shared: bool,
}

impl<T: Transport> Cluster<T>
where
    T::Addr: FromSocketAddr,
{
    /// A cluster handle dialling with `transport`. Connections are made on first use.
    pub fn new(transport: T, cfg: ClientConfig) -> Self {
        let pool = Arc::new(ConnectionPool::new(transport));
        let mds = MdsClient::new(
            pool.clone(),
            cfg.mds.clone(),
            cfg.mds_call_timeout,
            cfg.mds_retry_for,
        );
        let health = PeerHealth::new(cfg.unstable_after);
        Cluster {
            shared: Arc::new(Shared {
                cfg,
                pool,
                mds,
                cache: Mutex::new(MetaCache::default()),
                health: Mutex::new(health),
                ids: Mutex::new(RequestIds::random()),
                closed: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Create a volume of `size` bytes (a multiple of the segment size), owned by the
    /// configured owner.
    pub async fn create_volume(&self, name: &str, size: u64) -> Result<VolumeInfo, ClientError> {
        let owner = self.shared.cfg.owner.clone();
        self.create_volume_for(name, size, &owner).await
    }

    /// Create a volume owned by `owner` (another owner than the configured one needs the
    /// admin credential when the MDS enforces access control).
    pub async fn create_volume_for(
        &self,
        name: &str,
        size: u64,
        owner: &str,
    ) -> Result<VolumeInfo, ClientError> {
        let op = AuthOp::CreateVolume { name, size, owner };
        self.shared
            .mds
            .call_authed(self.shared.cfg.principal(), &op, |auth| CreateVolume {
                name: name.into(),
                size,
                owner: owner.into(),
                auth,
            })
            .await
            .map_err(from_mds)
    }

    /// Rename a volume (refused while it is open).
    pub async fn rename_volume(&self, from: &str, to: &str) -> Result<VolumeInfo, ClientError> {
        let op = AuthOp::RenameVolume { from, to };
        self.shared
            .mds
            .call_authed(self.shared.cfg.principal(), &op, |auth| RenameVolume {
                from: from.into(),
                to: to.into(),
                auth,
            })
            .await
            .map_err(from_mds)
    }

    /// Describe a volume.
    pub async fn stat_volume(&self, name: &str) -> Result<VolumeInfo, ClientError> {
        self.shared
            .mds
            .call(&StatVolume { name: name.into() })
            .await
            .map_err(from_mds)
    }

    /// List volumes.
    pub async fn list_volumes(&self) -> Result<Vec<VolumeInfo>, ClientError> {
        self.shared
            .mds
            .call(&ListVolumes {})
            .await
            .map_err(from_mds)
    }

    /// Grow a volume.
    pub async fn extend_volume(&self, name: &str, size: u64) -> Result<VolumeInfo, ClientError> {
        let op = AuthOp::ExtendVolume { name, size };
        self.shared
            .mds
            .call_authed(self.shared.cfg.principal(), &op, |auth| ExtendVolume {
                name: name.into(),
                size,
                auth,
            })
            .await
            .map_err(from_mds)
    }

    /// Delete a volume (to the recycle area).
    pub async fn delete_volume(&self, name: &str) -> Result<(), ClientError> {
        let op = AuthOp::DeleteVolume { name };
        self.shared
            .mds
            .call_authed(self.shared.cfg.principal(), &op, |auth| DeleteVolume {
                name: name.into(),
                auth,
            })
            .await
            .map_err(from_mds)
    }

    /// Open a volume with a session that is refreshed in the background.
    pub async fn open(&self, name: &str, opts: OpenOptions) -> Result<Volume<T>, ClientError> {
        let op = AuthOp::OpenVolume { name };
        let opened = self
            .shared
            .mds
            .call_authed(self.shared.cfg.principal(), &op, |auth| OpenVolume {
                name: name.into(),
                owner: self.shared.cfg.owner.clone(),
                shared: opts.shared,
                client: format!("basalt-client pid {}", std::process::id()),
                auth,
            })
            .await
            .map_err(from_mds)?;
        let id = opened.volume.id;
        self.shared.closed.lock().remove(&id);
        let info = Arc::new(Mutex::new(opened.volume));
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refresher = tokio::spawn(refresh_loop(
            self.shared.clone(),
            id,
            opened.session.id.clone(),
            Duration::from_millis(opened.session.lease_ms.max(400) as u64 / 4),
            info.clone(),
            gone.clone(),
        ));
        Ok(Volume {
            shared: self.shared.clone(),
            id,
            session: opened.session.id,
            info,
            gone,
            inflight: Arc::new(Semaphore::new(self.shared.cfg.max_inflight.max(1))),
            refresher,
        })
    }
}

/// Keep the session alive. A failed refresh does not stop I/O (the MDS may be down and
/// the maps are cached); only the volume's deletion does.
async fn refresh_loop<T: Transport>(
    shared: Arc<Shared<T>>,
    id: VolumeId,
    session: String,
    every: Duration,
    info: Arc<Mutex<VolumeInfo>>,
    gone: Arc<std::sync::atomic::AtomicBool>,
) where
    T::Addr: FromSocketAddr,
{
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let req = RefreshSession {
            volume: id,
            session: session.clone(),
        };
        match shared.mds.call(&req).await {
            Ok(v) => *info.lock() = v,
            Err(MdsCallError::Mds(MdsError::VolumeNotFound)) => {
                tracing::warn!(volume = %id, "volume deleted while open");
                gone.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Err(e) => {
                tracing::debug!(volume = %id, error = ?e, "session refresh failed; I/O continues")
            }
        }
    }
}

/// An open volume. Many I/Os may run at once; each is split at chunk boundaries and the
/// pieces run concurrently, bounded by the in-flight limit.
pub struct Volume<T: Transport> {
    shared: Arc<Shared<T>>,
    id: VolumeId,
    session: String,
    info: Arc<Mutex<VolumeInfo>>,
    gone: Arc<std::sync::atomic::AtomicBool>,
    inflight: Arc<Semaphore>,
    refresher: tokio::task::JoinHandle<()>,
}

impl<T: Transport> Drop for Volume<T> {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl<T: Transport> Volume<T>
where
    T::Addr: FromSocketAddr,
{
    /// The volume's id.
    pub fn id(&self) -> VolumeId {
        self.id
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.info.lock().size
    }

    fn check(&self, offset: u64, len: u64) -> Result<Vec<Piece>, ClientError> {
        if self.gone.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ClientError::VolumeGone { volume: self.id });
        }
        if self.shared.is_closed(self.id) {
            return Err(ClientError::Closed);
        }
        split(offset, len, self.size(), self.shared.cfg.sector)
    }

    async fn run(&self, piece: Piece, op: PieceOp) -> Result<Bytes, ClientError> {
        let _permit = self
            .inflight
            .acquire()
            .await
            .map_err(|_| ClientError::Closed)?;
        self.shared
            .run_piece(self.id, &self.session, piece, op)
            .await
    }

    /// Read `len` bytes at `offset`. Never-written ranges read as zeros.
    pub async fn read(&self, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        let pieces = self.check(offset, len)?;
        if pieces.len() == 1 {
            return self.run(pieces[0], PieceOp::Read).await;
        }
        let parts =
            futures::future::try_join_all(pieces.iter().map(|p| self.run(*p, PieceOp::Read)))
                .await?;
        let mut out = BytesMut::with_capacity(len as usize);
        for p in parts {
            out.extend_from_slice(&p);
        }
        Ok(out.freeze())
    }

    /// Write `data` at `offset`. Returns once every piece is durable on a majority of its
    /// copyset.
    pub async fn write(&self, offset: u64, data: Bytes) -> Result<(), ClientError> {
        let pieces = self.check(offset, data.len() as u64)?;
        futures::future::try_join_all(pieces.iter().map(|p| {
            let slice = data.slice(p.buf_offset..p.buf_offset + p.len as usize);
            self.run(*p, PieceOp::Write(slice))
        }))
        .await?;
        Ok(())
    }

    /// Zero a range: whole chunks are deleted (they read as zeros), partial chunks get
    /// zeros written.
    pub async fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), ClientError> {
        let pieces = self.check(offset, len)?;
        futures::future::try_join_all(pieces.iter().map(|p| {
            let op = if p.len as u64 == CHUNK_SIZE {
                PieceOp::Delete
            } else {
                PieceOp::Write(Bytes::from(vec![0u8; p.len as usize]))
            };
            self.run(*p, op)
        }))
        .await?;
        Ok(())
    }

    /// Discard a range; it reads as zeros afterwards.
    pub async fn discard(&self, offset: u64, len: u64) -> Result<(), ClientError> {
        self.write_zeroes(offset, len).await
    }

    /// Every completed write is already durable on a majority: nothing to do but report
    /// a volume that has gone.
    pub async fn flush(&self) -> Result<(), ClientError> {
        self.check(0, self.shared.cfg.sector).map(|_| ())
    }

    /// Close the session. Pending I/O fails with `Closed`.
    pub async fn close(self) -> Result<(), ClientError> {
        self.shared.closed.lock().insert(self.id);
        self.refresher.abort();
        self.shared.cache.lock().forget_volume(self.id);
        let req = CloseVolume {
            volume: self.id,
            session: self.session.clone(),
        };
        self.shared.mds.call(&req).await.map_err(from_mds)
    }
}
