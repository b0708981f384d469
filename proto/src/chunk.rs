//! Chunk service: client ↔ chunkserver data operations and copyset administration
//! (MDS/CLI/test harness ↔ chunkserver). Data travels in the frame payload.

use crate::ids::{ChunkId, ChunkServerId, Epoch, GroupId};
use crate::method::{Method, Rpc};
use crate::status::{ChunkError, PeerAddr};
use serde::{Deserialize, Serialize};

/// Identity of one logical mutating chunk request ([`WriteChunk`], [`DeleteChunk`]): the
/// same on every retry of it, so the copyset applies it at most once even when an attempt
/// that timed out at the client commits after all (see `docs/reliability.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId {
    /// The client process (random, chosen once per client); 0: no id, never deduplicated.
    pub client: u64,
    /// The client's sequence number of the request (from 1, increasing).
    pub seq: u64,
    /// The client's lowest sequence number still in flight when this attempt was sent
    /// (at most `seq`): every request of the client below it has completed or been
    /// abandoned and is never sent again, so a copyset may forget it.
    pub done_below: u64,
}

impl RequestId {
    /// No id: the request is applied however often it reaches the log.
    pub const NONE: RequestId = RequestId {
        client: 0,
        seq: 0,
        done_below: 0,
    };
}

/// Write `len` bytes at `offset` of a chunk; the payload carries the data.
/// The chunk is created (taken from the pool) on first write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteChunk {
    /// Copyset holding the chunk.
    pub group: GroupId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Copyset epoch the client's map has.
    pub epoch: Epoch,
    /// Byte offset within the chunk (multiple of 512).
    pub offset: u32,
    /// Bytes to write (multiple of 512, equals the payload length).
    pub len: u32,
    /// CRC32C of the payload.
    pub crc32c: u32,
    /// The request's id, the same on every retry.
    pub req: RequestId,
}

/// Success of [`WriteChunk`]: the write is durable on a majority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteChunkOk {
    /// Raft log index the write committed at.
    pub index: u64,
}

impl Rpc for WriteChunk {
    const METHOD: Method = Method::WriteChunk;
    type Reply = Result<WriteChunkOk, ChunkError>;
}

/// Read `len` bytes at `offset` of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadChunk {
    /// Copyset holding the chunk.
    pub group: GroupId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Copyset epoch the client's map has.
    pub epoch: Epoch,
    /// Byte offset within the chunk (multiple of 512).
    pub offset: u32,
    /// Bytes to read (multiple of 512).
    pub len: u32,
}

/// Success of [`ReadChunk`]; the payload carries `len` bytes (zeros where never written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadChunkOk {
    /// CRC32C of the payload.
    pub crc32c: u32,
}

impl Rpc for ReadChunk {
    const METHOD: Method = Method::ReadChunk;
    type Reply = Result<ReadChunkOk, ChunkError>;
}

/// Delete a chunk; its file returns to the pool. Deleting a missing chunk succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteChunk {
    /// Copyset holding the chunk.
    pub group: GroupId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Copyset epoch the client's map has.
    pub epoch: Epoch,
    /// The request's id, the same on every retry.
    pub req: RequestId,
}

impl Rpc for DeleteChunk {
    const METHOD: Method = Method::DeleteChunk;
    type Reply = Result<(), ChunkError>;
}

/// Who leads a copyset, as this chunkserver knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetLeader {
    /// The copyset.
    pub group: GroupId,
}

/// Answer to [`GetLeader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// The leader, if one is known.
    pub leader: Option<PeerAddr>,
    /// The copyset's epoch on this peer.
    pub epoch: Epoch,
}

impl Rpc for GetLeader {
    const METHOD: Method = Method::GetLeader;
    type Reply = Result<LeaderInfo, ChunkError>;
}

/// Describe a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// Copyset holding the chunk.
    pub group: GroupId,
    /// The chunk.
    pub chunk: ChunkId,
}

/// Answer to [`ChunkInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfoOk {
    /// Whether the chunk has been written.
    pub exists: bool,
    /// Sequence number in the chunk header (grows with snapshots of the volume).
    pub sequence: u64,
}

impl Rpc for ChunkInfo {
    const METHOD: Method = Method::ChunkInfo;
    type Reply = Result<ChunkInfoOk, ChunkError>;
}

/// Create a copyset replica on this chunkserver with the given initial peers.
/// Idempotent: creating an existing copyset with the same peers succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCopyset {
    /// The copyset.
    pub group: GroupId,
    /// Initial voters (this chunkserver among them) of a new copyset; or, for a replica
    /// about to be added to an existing copyset, its current voters without this
    /// chunkserver (join-only: the replica never initializes the group).
    pub peers: Vec<PeerAddr>,
}

impl Rpc for CreateCopyset {
    const METHOD: Method = Method::CreateCopyset;
    type Reply = Result<(), ChunkError>;
}

/// Delete a copyset replica from this chunkserver (a stray after a change-peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteCopyset {
    /// The copyset.
    pub group: GroupId,
}

impl Rpc for DeleteCopyset {
    const METHOD: Method = Method::DeleteCopyset;
    type Reply = Result<(), ChunkError>;
}

/// Raft role of a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftRole {
    /// Leads the group.
    Leader,
    /// Votes, follows.
    Follower,
    /// Campaigning.
    Candidate,
    /// Receives the log, does not vote.
    Learner,
    /// Shut down or not started.
    Shutdown,
}

/// State of a copyset replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopysetStatus {
    /// The copyset.
    pub group: GroupId,
}

/// Answer to [`CopysetStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopysetStatusOk {
    /// This replica's role.
    pub role: RaftRole,
    /// Current raft term.
    pub term: u64,
    /// Leader as known here.
    pub leader: Option<ChunkServerId>,
    /// Configuration epoch.
    pub epoch: Epoch,
    /// Voters.
    pub peers: Vec<PeerAddr>,
    /// Learners (catching up before becoming voters).
    pub learners: Vec<PeerAddr>,
    /// Last log index.
    pub last_index: u64,
    /// Committed index.
    pub committed: u64,
    /// Applied index.
    pub applied: u64,
}

impl Rpc for CopysetStatus {
    const METHOD: Method = Method::CopysetStatus;
    type Reply = Result<CopysetStatusOk, ChunkError>;
}

/// Success of a membership change: the new epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfChangeOk {
    /// Epoch after the change.
    pub epoch: Epoch,
}

/// Add a voter (learner first, then promoted once caught up). Sent to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPeer {
    /// The copyset.
    pub group: GroupId,
    /// Epoch the caller's view has.
    pub epoch: Epoch,
    /// The new peer.
    pub peer: PeerAddr,
}

impl Rpc for AddPeer {
    const METHOD: Method = Method::AddPeer;
    type Reply = Result<ConfChangeOk, ChunkError>;
}

/// Remove a voter. Sent to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovePeer {
    /// The copyset.
    pub group: GroupId,
    /// Epoch the caller's view has.
    pub epoch: Epoch,
    /// The peer to remove.
    pub peer: ChunkServerId,
}

impl Rpc for RemovePeer {
    const METHOD: Method = Method::RemovePeer;
    type Reply = Result<ConfChangeOk, ChunkError>;
}

/// Replace one voter with another in one joint change. Sent to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePeer {
    /// The copyset.
    pub group: GroupId,
    /// Epoch the caller's view has.
    pub epoch: Epoch,
    /// Peer leaving.
    pub remove: ChunkServerId,
    /// Peer joining.
    pub add: PeerAddr,
}

impl Rpc for ChangePeer {
    const METHOD: Method = Method::ChangePeer;
    type Reply = Result<ConfChangeOk, ChunkError>;
}

/// Move leadership to `to`. Sent to the leader; returns once `to` leads or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeader {
    /// The copyset.
    pub group: GroupId,
    /// The peer to lead.
    pub to: ChunkServerId,
}

impl Rpc for TransferLeader {
    const METHOD: Method = Method::TransferLeader;
    type Reply = Result<LeaderInfo, ChunkError>;
}

/// Force the membership of a copyset that lost its majority, on one surviving replica
/// (the receiver): its voters become `peers` (which must name the receiver and only
/// chunkservers its current membership knows), with a new epoch, and it campaigns at
/// once. Unsafe by nature: writes acknowledged only by the lost replicas are gone.
/// Refused while the copyset has a live leader unless `ignore_leader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPeers {
    /// The copyset.
    pub group: GroupId,
    /// The voters to force (the receiver first or anywhere; no duplicates).
    pub peers: Vec<ChunkServerId>,
    /// Reset even though a leader looks alive (the operator is sure it is not).
    pub ignore_leader: bool,
}

/// Why [`ResetPeers`] was refused; nothing was changed in every case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ResetPeersError {
    /// The request is not handled here at all (no such copyset, disk fenced, stopping).
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// The peer list is empty.
    #[error("{group}: the peer list is empty")]
    EmptyPeers {
        /// The group.
        group: GroupId,
    },
    /// A peer is named twice.
    #[error("{group}: {peer} named twice")]
    DuplicatePeer {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: ChunkServerId,
    },
    /// The peer list does not name the receiving replica.
    #[error("{group}: the peer list must include the receiving replica {local}")]
    MissingSelf {
        /// The group.
        group: GroupId,
        /// The receiving chunkserver.
        local: ChunkServerId,
    },
    /// A peer is not in the replica's current membership (its address is unknown here).
    #[error("{group}: {peer} is not in the replica's membership")]
    UnknownPeer {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: ChunkServerId,
    },
    /// The copyset has a leader that heard from a majority (or a follower heard from it)
    /// recently: use ordinary membership changes.
    #[error("{group}: {leader} leads it and is alive")]
    LeaderAlive {
        /// The group.
        group: GroupId,
        /// The live leader.
        leader: ChunkServerId,
    },
    /// The replica was never initialized (no membership to start from).
    #[error("{group}: the replica has no membership yet")]
    NotInitialized {
        /// The group.
        group: GroupId,
    },
}

impl Rpc for ResetPeers {
    const METHOD: Method = Method::ResetPeers;
    type Reply = Result<ConfChangeOk, ResetPeersError>;
}
