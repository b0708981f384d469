//! [`RaftNet`] over `basalt-transport`, and the server-side raft routes.
//!
//! Each raft message is one of the `basalt_proto::raft` envelopes, with the group id in
//! the frame header. The encoded openraft body travels in the frame *payload* (the
//! envelope's `body` field stays empty), so log entries carrying chunk data are never
//! copied into the bounded message header and go by `writev` / rendezvous; replies come
//! back the same way. Each lane (data, heartbeat, snapshot) has its own connection pool,
//! so one multiplexed connection per peer chunkserver and lane: heartbeats never queue
//! behind bulk appends or chunk copies.

use crate::copyset::network::{Lane, RaftMsgKind, RaftNet};
use crate::copyset::registry::Copysets;
use crate::copyset::types::node_id;
use crate::error::ChunkServerError;
use basalt_proto::ids::GroupId;
use basalt_proto::raft::{
    RaftAppend, RaftError, RaftPreVote, RaftSnapshot, RaftSnapshotChunk, RaftTransferLeader,
    RaftVote,
};
use basalt_proto::status::PeerAddr;
use basalt_proto::Rpc;
use basalt_transport::{CallOptions, ConnectionPool, Router, Transport, TransportError};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Raft traffic of this chunkserver over a transport (TCP, with UCX when negotiated).
pub struct TransportRaftNet<T: Transport> {
    data: Arc<ConnectionPool<T>>,
    heartbeat: Arc<ConnectionPool<T>>,
    snapshot: Arc<ConnectionPool<T>>,
    addrs: RwLock<HashMap<u64, SocketAddr>>,
}

impl<T> TransportRaftNet<T>
where
    T: Transport,
    T::Addr: From<SocketAddr>,
{
    /// A net dialling peers with `transport`.
    pub fn new(transport: T) -> Arc<Self> {
        Arc::new(TransportRaftNet {
            data: Arc::new(ConnectionPool::new(transport.clone())),
            heartbeat: Arc::new(ConnectionPool::new(transport.clone())),
            snapshot: Arc::new(ConnectionPool::new(transport)),
            addrs: RwLock::new(HashMap::new()),
        })
    }

    fn pool(&self, lane: Lane) -> Arc<ConnectionPool<T>> {
        match lane {
            Lane::Data => self.data.clone(),
            Lane::Heartbeat => self.heartbeat.clone(),
            Lane::Snapshot => self.snapshot.clone(),
        }
    }
}

async fn call_envelope<R, T>(
    pool: &ConnectionPool<T>,
    addr: &T::Addr,
    req: R,
    payload: Bytes,
    opts: CallOptions,
) -> Result<(R::Reply, Bytes), TransportError>
where
    R: Rpc,
    T: Transport,
{
    let conn = pool.get(addr).await?;
    let r = conn.call_with(&req, payload, opts).await;
    if matches!(r, Err(TransportError::PeerGone { .. })) {
        pool.invalidate(addr);
    }
    r
}

impl<T> RaftNet for TransportRaftNet<T>
where
    T: Transport,
    T::Addr: From<SocketAddr>,
{
    fn learn(&self, peer: &PeerAddr) {
        let id = node_id(peer.id);
        if self.addrs.read().get(&id) != Some(&peer.addr) {
            self.addrs.write().insert(id, peer.addr);
        }
    }

    fn call(
        &self,
        target: u64,
        group: GroupId,
        kind: RaftMsgKind,
        lane: Lane,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, ChunkServerError>> {
        let addr = self.addrs.read().get(&target).copied();
        let pool = self.pool(lane);
        async move {
            let Some(addr) = addr else {
                return Err(ChunkServerError::PeerUnreachable {
                    peer: target,
                    reason: "address not known".into(),
                });
            };
            let addr = T::Addr::from(addr);
            let opts = CallOptions {
                group,
                deadline: Some(tokio::time::Instant::now() + timeout),
            };
            let p = &*pool;
            let res = match kind {
                RaftMsgKind::Append => {
                    call_envelope(p, &addr, RaftAppend { body: vec![] }, body, opts).await
                }
                RaftMsgKind::Vote => {
                    call_envelope(p, &addr, RaftVote { body: vec![] }, body, opts).await
                }
                RaftMsgKind::PreVote => {
                    call_envelope(p, &addr, RaftPreVote { body: vec![] }, body, opts).await
                }
                RaftMsgKind::Snapshot => {
                    call_envelope(p, &addr, RaftSnapshot { body: vec![] }, body, opts).await
                }
                RaftMsgKind::TransferLeader => {
                    let req = RaftTransferLeader { body: vec![] };
                    call_envelope(p, &addr, req, body, opts).await
                }
                RaftMsgKind::SnapshotChunk => {
                    let req = RaftSnapshotChunk { body: vec![] };
                    call_envelope(p, &addr, req, body, opts).await
                }
            };
            match res {
                Ok((Ok(_), reply)) => Ok(reply),
                Ok((Err(error), _)) => Err(ChunkServerError::PeerRefused {
                    peer: target,
                    error,
                }),
                Err(TransportError::Timeout { .. }) => {
                    Err(ChunkServerError::PeerTimeout { peer: target })
                }
                Err(e) => Err(ChunkServerError::PeerUnreachable {
                    peer: target,
                    reason: e.to_string(),
                }),
            }
        }
        .boxed()
    }

    fn gone(&self, target: u64) -> BoxFuture<'static, ()> {
        let addr = self.addrs.read().get(&target).copied();
        // A connection of its own, outside the pools: the pools' re-dial back-off would
        // answer a probe with a cached error, and a probe must see the dial's own result.
        let transport = self.data.transport().clone();
        async move {
            let Some(addr) = addr else {
                return std::future::pending().await;
            };
            let addr = T::Addr::from(addr);
            let mut pause = WATCH_MIN_PAUSE;
            loop {
                let t0 = tokio::time::Instant::now();
                match tokio::time::timeout(WATCH_DIAL_BOUND, transport.connect(&addr)).await {
                    Ok(Ok(conn)) => {
                        conn.closed().await;
                        tracing::debug!(peer = target, "watch connection closed, probing");
                        // Re-dial at once unless the connection died young (a peer that
                        // accepts and drops must not make this spin).
                        if t0.elapsed() > WATCH_MAX_PAUSE {
                            pause = WATCH_MIN_PAUSE;
                            continue;
                        }
                    }
                    Ok(Err(TransportError::Unreachable { .. })) => {
                        tracing::info!(peer = target, "dial refused: peer process is gone");
                        return;
                    }
                    // Timeouts and other errors prove nothing: a hung peer looks like this.
                    Ok(Err(_)) | Err(_) => {}
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(WATCH_MAX_PAUSE);
            }
        }
        .boxed()
    }
}

/// Bound of one watch dial (hello included).
const WATCH_DIAL_BOUND: Duration = Duration::from_secs(2);
/// First pause between watch dials that failed without proving the peer gone.
const WATCH_MIN_PAUSE: Duration = Duration::from_millis(50);
/// Ceiling of that pause.
const WATCH_MAX_PAUSE: Duration = Duration::from_secs(2);

async fn serve(
    copysets: Copysets,
    group: GroupId,
    kind: RaftMsgKind,
    payload: Bytes,
) -> (Result<Vec<u8>, RaftError>, Bytes) {
    match copysets.handle_raft(group, kind, &payload).await {
        Ok(reply) => (Ok(Vec::new()), reply),
        Err(e) => (Err(e), Bytes::new()),
    }
}

/// Add the raft methods (`RaftAppend`, `RaftVote`, `RaftPreVote`, `RaftSnapshot`,
/// `RaftTransferLeader`, `RaftSnapshotChunk`) served by `copysets` to `router`.
pub fn raft_routes(router: Router, copysets: Copysets) -> Router {
    let (c1, c2, c3, c4, c5, c6) = (
        copysets.clone(),
        copysets.clone(),
        copysets.clone(),
        copysets.clone(),
        copysets.clone(),
        copysets,
    );
    router
        .route::<RaftAppend, _, _>(move |_, p, g, _| serve(c1.clone(), g, RaftMsgKind::Append, p))
        .route::<RaftVote, _, _>(move |_, p, g, _| serve(c2.clone(), g, RaftMsgKind::Vote, p))
        .route::<RaftPreVote, _, _>(move |_, p, g, _| serve(c3.clone(), g, RaftMsgKind::PreVote, p))
        .route::<RaftSnapshot, _, _>(move |_, p, g, _| {
            serve(c4.clone(), g, RaftMsgKind::Snapshot, p)
        })
        .route::<RaftTransferLeader, _, _>(move |_, p, g, _| {
            serve(c5.clone(), g, RaftMsgKind::TransferLeader, p)
        })
        .route::<RaftSnapshotChunk, _, _>(move |_, p, g, _| {
            serve(c6.clone(), g, RaftMsgKind::SnapshotChunk, p)
        })
}
