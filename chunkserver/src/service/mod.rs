//! The chunk service: the chunkserver's RPC handlers for `basalt_proto::chunk`, mapped
//! onto the copysets ([`crate::copyset::Copysets`]).
//!
//! - [`validate`]: request checks (range, payload length, CRC32C), pure functions.
//! - [`inflight`]: the limit on data requests in flight (`Overload` beyond it).
//! - [`metrics`]: per-operation latency, errors, in-flight; WAL and leader collectors.
//!
//! Every handler answers a typed [`ChunkError`]; bad input never panics. Data requests
//! (write, read, delete) are checked against the copyset's epoch: a client whose map is
//! older than the copyset's membership gets `EpochTooOld` and refetches it.

pub mod inflight;
pub mod metrics;
pub mod validate;

use crate::chunk_api::ChunkStore;
use crate::copyset::registry::chunk_error;
use crate::copyset::Copysets;
use basalt_proto::chunk::{
    AddPeer, ChangePeer, ChunkInfo, ChunkInfoOk, ConfChangeOk, CopysetStatus, CopysetStatusOk,
    CreateCopyset, DeleteChunk, DeleteCopyset, GetLeader, LeaderInfo, ReadChunk, ReadChunkOk,
    RemovePeer, ResetPeers, ResetPeersError, TransferLeader, WriteChunk, WriteChunkOk,
};
use basalt_proto::ids::{Epoch, GroupId};
use basalt_proto::status::ChunkError;
use basalt_proto::Rpc;
use basalt_transport::{RequestContext, Router};
use bytes::Bytes;
use inflight::{InflightLimit, InflightSlot};
use metrics::{Op, ServiceMetrics, Stage};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// What the chunk service is built from.
pub struct ChunkServiceParams {
    /// The copysets of this chunkserver.
    pub copysets: Copysets,
    /// The disk's chunk store (chunk info).
    pub store: Arc<dyn ChunkStore>,
    /// Chunk data size of the disk (range checks).
    pub chunk_size: u64,
    /// Data requests handled at once.
    pub max_inflight_data: u32,
    /// Where to count.
    pub metrics: ServiceMetrics,
}

/// The chunk service. Handlers are methods, so tests call them without a transport;
/// [`ChunkService::routes`] puts them on a [`Router`].
pub struct ChunkService {
    copysets: Copysets,
    store: Arc<dyn ChunkStore>,
    chunk_size: u64,
    inflight: InflightLimit,
    metrics: ServiceMetrics,
}

impl ChunkService {
    /// A service over `p.copysets`.
    pub fn new(p: ChunkServiceParams) -> Arc<Self> {
        Arc::new(ChunkService {
            copysets: p.copysets,
            store: p.store,
            chunk_size: p.chunk_size,
            inflight: InflightLimit::new(p.max_inflight_data),
            metrics: p.metrics,
        })
    }

    /// The copysets served.
    pub fn copysets(&self) -> &Copysets {
        &self.copysets
    }

    /// Data requests in flight now.
    pub fn inflight(&self) -> u32 {
        self.inflight.current()
    }

    fn admit(&self) -> Result<InflightSlot, ChunkError> {
        let slot = self.inflight.acquire()?;
        self.metrics.set_inflight(self.inflight.current());
        Ok(slot)
    }

    fn release(&self, slot: InflightSlot) {
        drop(slot);
        self.metrics.set_inflight(self.inflight.current());
    }

    /// Refuse a client whose copyset map is older than the copyset's membership.
    fn check_epoch(&self, group: GroupId, sent: Epoch) -> Result<(), ChunkError> {
        let current = self.copysets.leader(group)?.epoch;
        if sent < current {
            return Err(ChunkError::EpochTooOld {
                group,
                sent,
                current,
            });
        }
        Ok(())
    }

    /// WriteChunk: validate, then replicate through the copyset's leader.
    pub async fn write_chunk(
        &self,
        req: WriteChunk,
        payload: Bytes,
    ) -> Result<WriteChunkOk, ChunkError> {
        let t0 = Instant::now();
        validate::check_write(&req, &payload, self.chunk_size)?;
        let slot = self.admit()?;
        let r = async {
            self.check_epoch(req.group, req.epoch)?;
            let t1 = Instant::now();
            self.metrics.observe_stage(Stage::WriteAdmit, t1 - t0);
            let r = self
                .copysets
                .write_with_id(
                    req.group,
                    req.chunk,
                    u64::from(req.offset),
                    payload,
                    req.req,
                )
                .await;
            self.metrics
                .observe_stage(Stage::WriteCopyset, t1.elapsed());
            r
        }
        .await;
        self.release(slot);
        r
    }

    /// ReadChunk: a linearizable read on the leader; the data with its CRC32C.
    pub async fn read_chunk(&self, req: ReadChunk) -> Result<(ReadChunkOk, Bytes), ChunkError> {
        let t0 = Instant::now();
        validate::check_read(&req, self.chunk_size)?;
        let slot = self.admit()?;
        let r = async {
            self.check_epoch(req.group, req.epoch)?;
            let t1 = Instant::now();
            self.metrics.observe_stage(Stage::ReadAdmit, t1 - t0);
            let data = self
                .copysets
                .read(
                    req.group,
                    req.chunk,
                    u64::from(req.offset),
                    u64::from(req.len),
                )
                .await?
                .ok_or(ChunkError::ChunkNotFound { chunk: req.chunk })?;
            if data.len() as u64 != u64::from(req.len) {
                // The store answers exactly what was asked; anything else is a disk fault.
                tracing::error!(group = %req.group, chunk = %req.chunk, got = data.len(), want = req.len, "short chunk read");
                return Err(ChunkError::DiskError { errno: libc::EIO });
            }
            let t2 = Instant::now();
            self.metrics.observe_stage(Stage::ReadCopyset, t2 - t1);
            let crc32c = crc32c::crc32c(&data);
            self.metrics.observe_stage(Stage::ReadCrc, t2.elapsed());
            Ok((ReadChunkOk { crc32c }, data))
        }
        .await;
        self.release(slot);
        r
    }

    /// DeleteChunk: replicate the delete (deleting a missing chunk succeeds).
    pub async fn delete_chunk(&self, req: DeleteChunk) -> Result<(), ChunkError> {
        let slot = self.admit()?;
        let r = async {
            self.check_epoch(req.group, req.epoch)?;
            self.copysets
                .delete_chunk_with_id(req.group, req.chunk, req.req)
                .await
        }
        .await;
        self.release(slot);
        r
    }

    /// GetLeader: the leader as this replica knows it.
    pub fn get_leader(&self, req: GetLeader) -> Result<LeaderInfo, ChunkError> {
        self.copysets.leader(req.group)
    }

    /// ChunkInfo: whether this replica holds the chunk. The sequence number is 0 until
    /// volume snapshots exist.
    pub fn chunk_info(&self, req: ChunkInfo) -> Result<ChunkInfoOk, ChunkError> {
        if self.copysets.get(req.group).is_none() {
            return Err(ChunkError::CopysetNotFound { group: req.group });
        }
        let chunks = self.store.list(req.group).map_err(chunk_error)?;
        Ok(ChunkInfoOk {
            exists: chunks.contains(&req.chunk),
            sequence: 0,
        })
    }

    /// CreateCopyset.
    pub async fn create_copyset(&self, req: CreateCopyset) -> Result<(), ChunkError> {
        self.copysets.create(req.group, &req.peers).await
    }

    /// DeleteCopyset.
    pub async fn delete_copyset(&self, req: DeleteCopyset) -> Result<(), ChunkError> {
        self.copysets.delete(req.group).await
    }

    /// CopysetStatus.
    pub fn copyset_status(&self, req: CopysetStatus) -> Result<CopysetStatusOk, ChunkError> {
        self.copysets.status(req.group)
    }

    /// AddPeer (leader only).
    pub async fn add_peer(&self, req: AddPeer) -> Result<ConfChangeOk, ChunkError> {
        self.copysets.add_peer(req.group, req.epoch, req.peer).await
    }

    /// RemovePeer (leader only).
    pub async fn remove_peer(&self, req: RemovePeer) -> Result<ConfChangeOk, ChunkError> {
        self.copysets
            .remove_peer(req.group, req.epoch, req.peer)
            .await
    }

    /// ChangePeer (leader only).
    pub async fn change_peer(&self, req: ChangePeer) -> Result<ConfChangeOk, ChunkError> {
        self.copysets
            .change_peer(req.group, req.epoch, req.remove, req.add)
            .await
    }

    /// TransferLeader (leader only).
    pub async fn transfer_leader(&self, req: TransferLeader) -> Result<LeaderInfo, ChunkError> {
        self.copysets.transfer_leader(req.group, req.to).await
    }

    /// ResetPeers: force the membership of a copyset that lost its majority on this
    /// replica (see [`crate::copyset::reset`]).
    pub async fn reset_peers(&self, req: ResetPeers) -> Result<ConfChangeOk, ResetPeersError> {
        let start = Instant::now();
        let r = self
            .copysets
            .reset_peers(req.group, &req.peers, req.ignore_leader)
            .await;
        self.metrics
            .observe(Op::ResetPeers, start.elapsed(), r.is_err());
        if let Err(e) = &r {
            tracing::warn!(group = %req.group, peers = ?req.peers, error = %e, "reset peers refused");
        }
        r
    }

    /// Run one handler, timing it into the metrics.
    async fn timed<T, Fut>(&self, op: Op, f: Fut) -> (Result<T, ChunkError>, Bytes)
    where
        Fut: Future<Output = Result<(T, Bytes), ChunkError>>,
    {
        let start = Instant::now();
        let r = f.await;
        self.metrics.observe(op, start.elapsed(), r.is_err());
        match r {
            Ok((v, payload)) => (Ok(v), payload),
            Err(e) => {
                tracing::debug!(op = op.name(), error = %e, "chunk request refused");
                (Err(e), Bytes::new())
            }
        }
    }

    /// Add every chunk-service method to `router`.
    pub fn routes(self: &Arc<Self>, router: Router) -> Router {
        fn no_payload<T>(r: Result<T, ChunkError>) -> Result<(T, Bytes), ChunkError> {
            r.map(|v| (v, Bytes::new()))
        }
        let router = route::<WriteChunk, _, _>(router, self, |s, req, payload| async move {
            s.timed(Op::Write, async {
                no_payload(s.write_chunk(req, payload).await)
            })
            .await
        });
        let router = route::<ReadChunk, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::Read, s.read_chunk(req)).await
        });
        let router = route::<DeleteChunk, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::Delete, async { no_payload(s.delete_chunk(req).await) })
                .await
        });
        let router = route::<GetLeader, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::GetLeader, async { no_payload(s.get_leader(req)) })
                .await
        });
        let router = route::<ChunkInfo, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::ChunkInfo, async { no_payload(s.chunk_info(req)) })
                .await
        });
        let router = route::<CreateCopyset, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::CreateCopyset, async {
                no_payload(s.create_copyset(req).await)
            })
            .await
        });
        let router = route::<DeleteCopyset, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::DeleteCopyset, async {
                no_payload(s.delete_copyset(req).await)
            })
            .await
        });
        let router = route::<CopysetStatus, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::CopysetStatus, async {
                no_payload(s.copyset_status(req))
            })
            .await
        });
        let router = route::<AddPeer, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::AddPeer, async { no_payload(s.add_peer(req).await) })
                .await
        });
        let router = route::<RemovePeer, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::RemovePeer, async {
                no_payload(s.remove_peer(req).await)
            })
            .await
        });
        let router = route::<ChangePeer, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::ChangePeer, async {
                no_payload(s.change_peer(req).await)
            })
            .await
        });
        let router = route::<TransferLeader, _, _>(router, self, |s, req, _| async move {
            s.timed(Op::TransferLeader, async {
                no_payload(s.transfer_leader(req).await)
            })
            .await
        });
        route::<ResetPeers, _, _>(router, self, |s, req, _| async move {
            (s.reset_peers(req).await, Bytes::new())
        })
    }
}

/// Register one handler that gets the service, the request and its payload.
fn route<R, F, Fut>(router: Router, svc: &Arc<ChunkService>, f: F) -> Router
where
    R: Rpc,
    F: Fn(Arc<ChunkService>, R, Bytes) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = (R::Reply, Bytes)> + Send + 'static,
{
    let svc = svc.clone();
    router.route::<R, _, _>(move |req, payload, _group, _cx: RequestContext| {
        f(svc.clone(), req, payload)
    })
}
