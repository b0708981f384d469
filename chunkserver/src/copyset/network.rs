//! Raft traffic between chunkservers: the [`RaftNet`] seam, openraft's client side on top
//! of it ([`Router`], an `openraft_multi::GroupRouter`) and the wire shapes of the bodies.
//!
//! One `RaftNet` per process carries the messages of every copyset: the group id travels
//! beside the body, so a transport-backed implementation keeps one multiplexed connection
//! per peer chunkserver. Heartbeats and snapshot traffic are tagged with their own
//! [`Lane`] so an implementation can keep them off the data connection's queue.

use crate::copyset::codec;
use crate::copyset::sessions::Sessions;
use crate::copyset::types::alias::{SnapshotMeta, Vote};
use crate::copyset::types::{ChunkOp, CopysetTypes as C};
use crate::error::ChunkServerError;
use basalt_proto::ids::{ChunkId, GroupId};
use basalt_proto::status::PeerAddr;
use bytes::Bytes;
use futures::future::BoxFuture;
use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::SnapshotOf;
use openraft::RaftNetworkFactory;
use openraft_multi::{GroupNetworkAdapter, GroupRouter};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Which raft message a body is (one proto method each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RaftMsgKind {
    /// `AppendEntriesRequest` (also heartbeats).
    Append,
    /// `VoteRequest`.
    Vote,
    /// Pre-vote `VoteRequest`.
    PreVote,
    /// [`SnapshotOffer`]: the leader's snapshot meta and chunk list.
    Snapshot,
    /// `TransferLeaderRequest`.
    TransferLeader,
    /// [`ChunkPieceRequest`]: part of a chunk, pulled while installing a snapshot.
    SnapshotChunk,
}

/// Which connection lane a message should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Log replication and votes.
    Data,
    /// Heartbeats: must not queue behind bulk data (Curve's leader flapping under load).
    Heartbeat,
    /// Snapshot offers and chunk pulls.
    Snapshot,
}

/// Sends one encoded raft message of a group to a peer chunkserver and returns the
/// encoded reply. Implemented over `basalt-transport` by the daemon and in memory by
/// [`crate::copyset::testing::MemNet`].
pub trait RaftNet: Send + Sync + 'static {
    /// A peer's address became known (from the membership); called before calls to it.
    fn learn(&self, peer: &PeerAddr);
    /// Send `body` to chunkserver `target` for `group`; the reply body, or why there is none.
    fn call(
        &self,
        target: u64,
        group: GroupId,
        kind: RaftMsgKind,
        lane: Lane,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, ChunkServerError>>;
    /// Resolves once chunkserver `target`'s process is known to be gone: a connection to
    /// it closed and a fresh dial was refused (nothing listens at its address). Never
    /// resolves for a peer that is alive, hung or cut off (those are left to the election
    /// timeout). See [`crate::copyset::leader_watch`]. The default never resolves.
    fn gone(&self, target: u64) -> BoxFuture<'static, ()> {
        let _ = target;
        Box::pin(std::future::pending())
    }
}

/// A snapshot offered by the leader: the receiver pulls the listed chunks from `source`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotOffer {
    /// The leader's vote.
    pub vote: Vote,
    /// Snapshot meta (last log id, membership).
    pub meta: SnapshotMeta,
    /// Chunks of the group on the leader.
    pub chunks: Vec<ChunkId>,
    /// The chunkserver to pull the chunks from (the leader).
    pub source: PeerAddr,
    /// The state machine's dedupe table at the snapshot.
    pub sessions: Sessions,
}

/// A request for part of a chunk during snapshot install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPieceRequest {
    /// The chunk.
    pub chunk: ChunkId,
    /// Byte offset.
    pub offset: u64,
    /// Bytes wanted.
    pub len: u64,
}

/// Reply to a [`ChunkPieceRequest`]: `None` if the chunk no longer exists on the source.
pub type ChunkPieceReply = Option<Bytes>;

/// Encode a piece reply: a tag byte (0 = no such chunk, 1 = data) and the raw bytes, so
/// chunk data never goes through the serializer element by element.
pub fn encode_piece(piece: Option<&[u8]>) -> Bytes {
    match piece {
        None => Bytes::from_static(&[0]),
        Some(data) => {
            let mut v = Vec::with_capacity(data.len() + 1);
            v.push(1);
            v.extend_from_slice(data);
            Bytes::from(v)
        }
    }
}

/// Decode a piece reply (zero copy).
pub fn decode_piece(group: GroupId, mut b: Bytes) -> Result<ChunkPieceReply, ChunkServerError> {
    let bad = |reason: &str| ChunkServerError::RaftCodec {
        group,
        source: codec::CodecError {
            what: "chunk piece",
            reason: reason.into(),
        },
    };
    match b.first() {
        Some(0) if b.len() == 1 => Ok(None),
        Some(1) => Ok(Some(b.split_off(1))),
        Some(_) => Err(bad("bad tag")),
        None => Err(bad("empty")),
    }
}

/// What a copyset's state machine uses to reach the snapshot's source.
#[derive(Clone)]
pub struct ChunkFetcher {
    /// The network.
    pub net: Arc<dyn RaftNet>,
    /// Timeout per piece.
    pub timeout: Duration,
    /// Pause before retrying a failed pull.
    pub retry_after: Duration,
    /// Give up retrying after this long (the replica then stops: a snapshot that cannot
    /// be installed leaves it unusable).
    pub give_up_after: Duration,
}

impl ChunkFetcher {
    /// Pull a piece from `source`, retrying failures until [`Self::give_up_after`].
    pub async fn fetch_retrying(
        &self,
        source: u64,
        group: GroupId,
        req: ChunkPieceRequest,
    ) -> Result<ChunkPieceReply, ChunkServerError> {
        let deadline = tokio::time::Instant::now() + self.give_up_after;
        loop {
            match self.fetch(source, group, req).await {
                Ok(r) => return Ok(r),
                Err(e) if tokio::time::Instant::now() + self.retry_after < deadline => {
                    tracing::warn!(%group, source, chunk = %req.chunk, error = %e,
                        "snapshot chunk pull failed; retrying");
                    tokio::time::sleep(self.retry_after).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Pull `len` bytes at `offset` of `chunk` of `group` from `source`.
    pub async fn fetch(
        &self,
        source: u64,
        group: GroupId,
        req: ChunkPieceRequest,
    ) -> Result<ChunkPieceReply, ChunkServerError> {
        let body =
            codec::encode(&req).map_err(|source| ChunkServerError::RaftCodec { group, source })?;
        let reply = self
            .net
            .call(
                source,
                group,
                RaftMsgKind::SnapshotChunk,
                Lane::Snapshot,
                Bytes::from(body),
                self.timeout,
            )
            .await?;
        decode_piece(group, reply)
    }
}

/// The snapshot data of a copyset: the chunk list, and where to copy the chunks from when
/// it came from another peer (`None`: the chunks are local, e.g. restoring after restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotData {
    /// The chunkserver to pull chunks from.
    pub source: Option<PeerAddr>,
    /// Chunks of the group.
    pub chunks: Vec<ChunkId>,
    /// The state machine's dedupe table at the snapshot.
    pub sessions: Sessions,
}

/// openraft's client side for all copysets of a process (`openraft_multi::GroupRouter`).
#[derive(Clone)]
pub struct Router {
    local: PeerAddr,
    net: Arc<dyn RaftNet>,
    lane: Lane,
    backoff: Duration,
    max_append_bytes: usize,
}

impl Router {
    /// A router for chunkserver `local`, backing off `backoff` after an unreachable peer
    /// and sending at most about `max_append_bytes` of entries per AppendEntries.
    pub fn new(
        local: PeerAddr,
        net: Arc<dyn RaftNet>,
        backoff: Duration,
        max_append_bytes: usize,
    ) -> Self {
        Router {
            local,
            net,
            lane: Lane::Data,
            backoff,
            max_append_bytes,
        }
    }

    fn on_lane(&self, lane: Lane) -> Self {
        let mut r = self.clone();
        r.lane = lane;
        r
    }

    fn rpc<Req: Serialize, Resp: DeserializeOwned + Send + 'static>(
        &self,
        target: u64,
        group: GroupId,
        kind: RaftMsgKind,
        req: &Req,
        option: &RPCOption,
    ) -> impl Future<Output = Result<Resp, RPCError<C>>> + Send + 'static {
        let net = self.net.clone();
        let lane = self.lane;
        let local = crate::copyset::types::node_id(self.local.id);
        let ttl = option.hard_ttl();
        let body = codec::encode(req);
        async move {
            let body = Bytes::from(body.map_err(|e| RPCError::Network(NetworkError::new(&e)))?);
            let reply = net
                .call(target, group, kind, lane, body, ttl)
                .await
                .map_err(|e| net_to_rpc(e, kind, local, target, ttl))?;
            codec::decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))
        }
    }
}

/// Rough encoded size of an entry (its chunk data plus a fixed allowance).
fn entry_size(e: &crate::copyset::types::alias::Entry) -> usize {
    match &e.payload {
        openraft::EntryPayload::Normal(ChunkOp::Write { data, .. }) => data.len() + 64,
        openraft::EntryPayload::Membership(_) => 1024,
        _ => 64,
    }
}

/// How many leading entries fit in `budget` bytes (always at least one).
pub fn entries_within(entries: &[crate::copyset::types::alias::Entry], budget: usize) -> usize {
    let mut used = 0;
    for (i, e) in entries.iter().enumerate() {
        used += entry_size(e);
        if used > budget && i > 0 {
            return i;
        }
    }
    entries.len()
}

fn rpc_type(kind: RaftMsgKind) -> RPCTypes {
    match kind {
        RaftMsgKind::Append => RPCTypes::AppendEntries,
        RaftMsgKind::Vote | RaftMsgKind::PreVote => RPCTypes::Vote,
        RaftMsgKind::TransferLeader => RPCTypes::TransferLeader,
        RaftMsgKind::Snapshot | RaftMsgKind::SnapshotChunk => RPCTypes::InstallSnapshot,
    }
}

fn net_to_rpc(
    e: ChunkServerError,
    kind: RaftMsgKind,
    local: u64,
    target: u64,
    ttl: Duration,
) -> RPCError<C> {
    match e {
        ChunkServerError::PeerTimeout { .. } => RPCError::Timeout(Timeout {
            action: rpc_type(kind),
            id: local,
            target,
            timeout: ttl,
        }),
        other => RPCError::Unreachable(Unreachable::new(&other)),
    }
}

fn rpc_to_streaming(e: RPCError<C>) -> StreamingError<C> {
    match e {
        RPCError::Timeout(t) => StreamingError::Timeout(t),
        RPCError::Unreachable(u) => StreamingError::Unreachable(u),
        RPCError::Network(n) => StreamingError::Network(n),
        RPCError::RemoteError(r) => StreamingError::Network(NetworkError::new(&r)),
    }
}

impl GroupRouter<C, GroupId> for Router {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &self,
        target: u64,
        group_id: GroupId,
        mut rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        // openraft bounds entries per message, not bytes: send a prefix that fits the frame
        // and report a partial success; openraft sends the rest next.
        let keep = entries_within(&rpc.entries, self.max_append_bytes);
        if keep == rpc.entries.len() {
            return self
                .rpc(target, group_id, RaftMsgKind::Append, &rpc, &option)
                .await;
        }
        rpc.entries.truncate(keep);
        let last = rpc.entries.last().map(|e| e.log_id);
        let resp: AppendEntriesResponse<C> = self
            .rpc(target, group_id, RaftMsgKind::Append, &rpc, &option)
            .await?;
        Ok(match resp {
            AppendEntriesResponse::Success => AppendEntriesResponse::PartialSuccess(last),
            other => other,
        })
    }

    async fn vote(
        &self,
        target: u64,
        group_id: GroupId,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.rpc(target, group_id, RaftMsgKind::Vote, &rpc, &option)
            .await
    }

    async fn pre_vote(
        &self,
        target: u64,
        group_id: GroupId,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.rpc(target, group_id, RaftMsgKind::PreVote, &rpc, &option)
            .await
    }

    async fn full_snapshot(
        &self,
        target: u64,
        group_id: GroupId,
        vote: Vote,
        snapshot: SnapshotOf<C, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let offer = SnapshotOffer {
            vote,
            meta: snapshot.meta,
            chunks: snapshot.snapshot.chunks,
            source: self.local,
            sessions: snapshot.snapshot.sessions,
        };
        let send = self.on_lane(Lane::Snapshot).rpc(
            target,
            group_id,
            RaftMsgKind::Snapshot,
            &offer,
            &option,
        );
        tokio::select! {
            r = send => r.map_err(rpc_to_streaming),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &self,
        target: u64,
        group_id: GroupId,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        self.rpc(target, group_id, RaftMsgKind::TransferLeader, &req, &option)
            .await
    }

    fn backoff(&self) -> Option<Backoff> {
        Some(Backoff::new(std::iter::repeat(self.backoff)))
    }
}

/// openraft network factory of one copyset: adapters over the shared [`Router`], with
/// heartbeats and snapshots on their own lanes.
#[derive(Clone)]
pub struct CopysetNetwork {
    router: Router,
    group: GroupId,
}

impl CopysetNetwork {
    /// The factory of `group`.
    pub fn new(router: Router, group: GroupId) -> Self {
        CopysetNetwork { router, group }
    }
}

impl RaftNetworkFactory<C> for CopysetNetwork {
    type Network = GroupNetworkAdapter<C, GroupId, Router>;

    async fn new_client(&mut self, target: u64, node: &PeerAddr) -> Self::Network {
        self.router.net.learn(node);
        GroupNetworkAdapter::new(self.router.on_lane(Lane::Data), target, self.group)
    }

    async fn new_heartbeat_client(&mut self, target: u64, node: &PeerAddr) -> Self::Network {
        self.router.net.learn(node);
        GroupNetworkAdapter::new(self.router.on_lane(Lane::Heartbeat), target, self.group)
    }

    async fn new_snapshot_client(&mut self, target: u64, node: &PeerAddr) -> Self::Network {
        self.router.net.learn(node);
        GroupNetworkAdapter::new(self.router.on_lane(Lane::Snapshot), target, self.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(index: u64, len: usize) -> crate::copyset::types::alias::Entry {
        use openraft::vote::RaftLeaderId;
        openraft::Entry {
            log_id: openraft::LogId {
                leader_id: openraft::impls::leader_id_adv::LeaderId::<u64, u64>::new(1, 1)
                    .to_committed(),
                index,
            },
            payload: openraft::EntryPayload::Normal(ChunkOp::Write {
                chunk: ChunkId(1),
                offset: 0,
                data: Bytes::from(vec![0u8; len]),
                req: basalt_proto::chunk::RequestId::NONE,
            }),
        }
    }

    #[test]
    fn large_appends_are_cut_to_the_byte_budget() {
        let mib = 1024 * 1024;
        let es: Vec<_> = (1..=10).map(|i| write(i, 4 * mib)).collect();
        assert_eq!(entries_within(&es, 32 * mib), 7);
        assert_eq!(entries_within(&es[..3], 32 * mib), 3);
        // One entry over the budget still goes alone.
        assert_eq!(
            entries_within(&[write(1, 40 * mib), write(2, 1)], 32 * mib),
            1
        );
        assert_eq!(entries_within(&[], 32 * mib), 0);
    }

    #[test]
    fn piece_replies_round_trip_and_reject_garbage() {
        let g = GroupId(3);
        let data = vec![7u8; 4096];
        let enc = encode_piece(Some(&data));
        assert_eq!(decode_piece(g, enc).unwrap().unwrap(), Bytes::from(data));
        assert_eq!(decode_piece(g, encode_piece(None)).unwrap(), None);
        for bad in [&b""[..], &[0, 1][..], &[2, 0][..]] {
            assert!(matches!(
                decode_piece(g, Bytes::copy_from_slice(bad)),
                Err(ChunkServerError::RaftCodec { .. })
            ));
        }
    }
}
