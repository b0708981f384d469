//! One chunk piece, driven to completion: resolve where it goes (cache, MDS), send it,
//! and act on the retry core's decision until it is done or permanently failed.

use crate::addr::FromSocketAddr;
use crate::cache::Lookup;
use crate::error::ClientError;
use crate::mds_client::MdsCallError;
use crate::retry::{decide, rpc_timeout, Action, Attempts, OpKind, Outcome, Target};
use crate::split::Piece;
use crate::volume::Shared;
use basalt_proto::chunk::{DeleteChunk, GetLeader, ReadChunk, RequestId, WriteChunk};
use basalt_proto::ids::{ChunkId, Epoch, GroupId, VolumeId};
use basalt_proto::mds::{GetCopysets, GetSegment};
use basalt_proto::status::{ChunkError, MdsError, PeerAddr};
use basalt_proto::Rpc;
use basalt_transport::{Transport, TransportError};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// What to do with a piece.
#[derive(Debug, Clone)]
pub(crate) enum PieceOp {
    Read,
    Write(Bytes),
    Delete,
}

impl PieceOp {
    fn kind(&self) -> OpKind {
        match self {
            PieceOp::Read => OpKind::Read,
            PieceOp::Write(_) => OpKind::Write,
            PieceOp::Delete => OpKind::Delete,
        }
    }
}

fn outcome_of(e: &TransportError) -> Result<Outcome, ClientError> {
    match e {
        TransportError::Timeout { .. } => Ok(Outcome::Timeout),
        TransportError::Remote(basalt_proto::method::RemoteError::BadRequest {
            reason, ..
        }) => Err(ClientError::InvalidRequest {
            reason: reason.clone(),
        }),
        _ => Ok(Outcome::Unreachable),
    }
}

/// A write or delete in flight: its sequence number, released when the piece is done
/// (or its future dropped), which lets the copysets forget it.
struct InflightRequest<'a> {
    ids: &'a parking_lot::Mutex<crate::request_id::RequestIds>,
    seq: u64,
}

impl<'a> InflightRequest<'a> {
    fn begin(ids: &'a parking_lot::Mutex<crate::request_id::RequestIds>) -> Self {
        let seq = ids.lock().begin();
        InflightRequest { ids, seq }
    }

    /// The id for the next attempt, to `group` (same sequence number on every retry).
    fn id(&self, group: GroupId) -> RequestId {
        self.ids.lock().id(self.seq, group)
    }
}

impl Drop for InflightRequest<'_> {
    fn drop(&mut self) {
        self.ids.lock().end(self.seq);
    }
}

fn mds_error(volume: VolumeId, e: MdsError) -> ClientError {
    match e {
        MdsError::VolumeNotFound | MdsError::SessionExpired => ClientError::VolumeGone { volume },
        MdsError::NoSpace | MdsError::NoCopysets => ClientError::NoSpace,
        e => ClientError::Mds(e),
    }
}

impl<T: Transport> Shared<T>
where
    T::Addr: FromSocketAddr,
{
    /// Drive one piece; reads return the piece's bytes.
    pub(crate) async fn run_piece(
        &self,
        volume: VolumeId,
        session: &str,
        piece: Piece,
        op: PieceOp,
    ) -> Result<Bytes, ClientError> {
        let started = Instant::now();
        let mut attempts = Attempts::default();
        let mut pinned: Option<PeerAddr> = None;
        let zeros = || Bytes::from(vec![0u8; piece.len as usize]);
        // One id for the logical request, kept by every retry below (whatever the
        // target), so the copyset applies it at most once.
        let request = match op {
            PieceOp::Read => None,
            PieceOp::Write(_) | PieceOp::Delete => Some(InflightRequest::begin(&self.ids)),
        };
        loop {
            if self.is_closed(volume) {
                return Err(ClientError::Closed);
            }
            let lookup = self.cache.lock().lookup(volume, piece.segment, piece.chunk);
            let (group, chunk, epoch, target) = match lookup {
                Lookup::Unallocated => match op {
                    PieceOp::Read | PieceOp::Delete => return Ok(zeros()),
                    PieceOp::Write(_) => {
                        self.fetch_segment(volume, session, piece.segment, true, started)
                            .await?;
                        continue;
                    }
                },
                Lookup::SegmentUnknown => {
                    let allocate = matches!(op, PieceOp::Write(_));
                    self.fetch_segment(volume, session, piece.segment, allocate, started)
                        .await?;
                    continue;
                }
                Lookup::CopysetUnknown(loc) => {
                    self.refresh_copyset(loc.group, volume, started).await?;
                    continue;
                }
                Lookup::Ready {
                    loc, epoch, target, ..
                } => (loc.group, loc.chunk, epoch, pinned.take().unwrap_or(target)),
            };
            let timeout = rpc_timeout(&self.cfg.retry, &attempts);
            let req = request.as_ref().map_or(RequestId::NONE, |r| r.id(group));
            let (outcome, data) = self
                .send(group, chunk, epoch, &piece, &op, req, target, timeout)
                .await?;
            match &outcome {
                Outcome::Timeout => {
                    if self.health.lock().on_timeout(target.id) {
                        tracing::warn!(chunkserver = %target.id, addr = %target.addr, "chunkserver marked unstable after repeated timeouts");
                    }
                }
                Outcome::Unreachable => {}
                _ => self.health.lock().on_answer(target.id),
            }
            let jitter: f64 = rand::random();
            match decide(
                &self.cfg.retry,
                &mut attempts,
                op.kind(),
                &outcome,
                started.elapsed(),
                jitter,
            ) {
                Action::Done => return Ok(data),
                Action::ReturnZeros => return Ok(zeros()),
                Action::Fail(e) => return Err(e),
                Action::Retry { to, after, .. } => {
                    if !after.is_zero() {
                        tokio::time::sleep(after).await;
                    }
                    match to {
                        Target::Same => pinned = Some(target),
                        Target::Peer(p) => {
                            if !self.cache.lock().set_leader(group, p) {
                                pinned = Some(p);
                            }
                        }
                        Target::AskLeader => {
                            self.cache.lock().clear_leader(group);
                            self.find_leader(group, volume, started).await?;
                        }
                        Target::RefreshCopyset => {
                            self.refresh_copyset(group, volume, started).await?
                        }
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        group: GroupId,
        chunk: ChunkId,
        epoch: Epoch,
        piece: &Piece,
        op: &PieceOp,
        req: RequestId,
        target: PeerAddr,
        timeout: Duration,
    ) -> Result<(Outcome, Bytes), ClientError> {
        let addr = <T::Addr as FromSocketAddr>::from_socket_addr(target.addr);
        fn fold<X>(
            r: Result<(Result<X, ChunkError>, Bytes), TransportError>,
        ) -> Result<(Outcome, Bytes), ClientError> {
            match r {
                Ok((Ok(_), payload)) => Ok((Outcome::Ok, payload)),
                Ok((Err(e), _)) => Ok((Outcome::Chunk(e), Bytes::new())),
                Err(e) => Ok((outcome_of(&e)?, Bytes::new())),
            }
        }
        match op {
            PieceOp::Write(data) => {
                let req = WriteChunk {
                    group,
                    chunk,
                    epoch,
                    offset: piece.chunk_offset,
                    len: piece.len,
                    crc32c: crc32c::crc32c(data),
                    req,
                };
                fold(
                    self.call_chunk(&addr, &req, data.clone(), group, timeout)
                        .await,
                )
            }
            PieceOp::Read => {
                let req = ReadChunk {
                    group,
                    chunk,
                    epoch,
                    offset: piece.chunk_offset,
                    len: piece.len,
                };
                let r = self
                    .call_chunk(&addr, &req, Bytes::new(), group, timeout)
                    .await;
                if let Ok((Ok(ok), payload)) = &r {
                    if payload.len() != piece.len as usize || crc32c::crc32c(payload) != ok.crc32c {
                        tracing::warn!(%group, %chunk, "read reply failed its checksum; retrying");
                        return Ok((Outcome::Unreachable, Bytes::new()));
                    }
                }
                fold(r)
            }
            PieceOp::Delete => {
                let req = DeleteChunk {
                    group,
                    chunk,
                    epoch,
                    req,
                };
                fold(
                    self.call_chunk(&addr, &req, Bytes::new(), group, timeout)
                        .await,
                )
            }
        }
    }

    async fn call_chunk<R: Rpc>(
        &self,
        addr: &T::Addr,
        req: &R,
        payload: Bytes,
        group: GroupId,
        timeout: Duration,
    ) -> Result<(R::Reply, Bytes), TransportError> {
        let fut = async {
            let conn = self.pool.get(addr).await?;
            let opts = basalt_transport::CallOptions {
                group,
                deadline: Some(tokio::time::Instant::now() + timeout),
            };
            conn.call_with(req, payload, opts).await
        };
        let r = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout {
                elapsed_ms: timeout.as_millis() as u64,
            }),
        };
        if matches!(
            r,
            Err(TransportError::PeerGone { .. }) | Err(TransportError::Unreachable { .. })
        ) {
            self.pool.invalidate(addr);
        }
        r
    }

    /// Wait for the MDS, bounded by the I/O give-up bound (unbounded by default).
    async fn mds_pause(&self, started: Instant) -> Result<(), ClientError> {
        if let Some(limit) = self.cfg.retry.give_up_after {
            if started.elapsed() >= limit {
                return Err(ClientError::GaveUp { attempts: 0 });
            }
        }
        tokio::time::sleep(self.cfg.retry.max_retry_pause).await;
        Ok(())
    }

    async fn fetch_segment(
        &self,
        volume: VolumeId,
        session: &str,
        index: u64,
        allocate: bool,
        started: Instant,
    ) -> Result<(), ClientError> {
        let req = GetSegment {
            volume,
            session: session.to_string(),
            index,
            allocate,
        };
        match self.mds.call(&req).await {
            Ok(info) => {
                self.cache.lock().insert_segment(volume, index, info);
                Ok(())
            }
            Err(MdsCallError::Mds(e)) => Err(mds_error(volume, e)),
            Err(MdsCallError::Unavailable) => self.mds_pause(started).await,
        }
    }

    async fn refresh_copyset(
        &self,
        group: GroupId,
        volume: VolumeId,
        started: Instant,
    ) -> Result<(), ClientError> {
        match self
            .mds
            .call(&GetCopysets {
                groups: vec![group],
            })
            .await
        {
            Ok(infos) => {
                let mut cache = self.cache.lock();
                for info in infos {
                    cache.update_copyset(info);
                }
                Ok(())
            }
            Err(MdsCallError::Mds(MdsError::CopysetNotFound { .. })) => {
                tracing::warn!(%group, "MDS does not know a copyset a segment maps to");
                self.mds_pause(started).await
            }
            Err(MdsCallError::Mds(e)) => Err(mds_error(volume, e)),
            Err(MdsCallError::Unavailable) => self.mds_pause(started).await,
        }
    }

    /// Ask the copyset's peers who leads; fall back to the MDS's view.
    async fn find_leader(
        &self,
        group: GroupId,
        volume: VolumeId,
        started: Instant,
    ) -> Result<(), ClientError> {
        let peers = self.cache.lock().peers(group);
        let timeout = self.cfg.retry.rpc_timeout.min(Duration::from_millis(500));
        let asks = peers
            .iter()
            .filter(|p| !self.health.lock().is_unstable(p.id))
            .map(|p| {
                let addr = <T::Addr as FromSocketAddr>::from_socket_addr(p.addr);
                async move {
                    self.call_chunk(&addr, &GetLeader { group }, Bytes::new(), group, timeout)
                        .await
                }
            });
        for r in futures::future::join_all(asks).await {
            if let Ok((Ok(info), _)) = r {
                if let Some(leader) = info.leader {
                    self.cache.lock().set_leader(group, leader);
                    return Ok(());
                }
            }
        }
        self.refresh_copyset(group, volume, started).await
    }
}
