//! Typed errors carried in replies. Ids are fields, never formatted into strings.

use crate::ids::{ChunkId, ChunkServerId, Epoch, GroupId, LogicalPoolId, VolumeId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Where to find a peer: its id and its transport address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerAddr {
    /// Chunkserver id.
    pub id: ChunkServerId,
    /// TCP address of its service port (UCX is negotiated from there).
    pub addr: SocketAddr,
}

/// Why a chunk-service request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ChunkError {
    /// This peer is not the leader; retry at the hinted leader if any.
    #[error("{group}: not leader (hint {leader:?})")]
    Redirect {
        /// The group.
        group: GroupId,
        /// The leader as this peer knows it.
        leader: Option<PeerAddr>,
    },
    /// Too many requests in flight; back off and retry.
    #[error("overloaded: {inflight} requests in flight")]
    Overload {
        /// Current in-flight count.
        inflight: u32,
    },
    /// The client's copyset map is older than the copyset's configuration.
    #[error("{group}: epoch {sent} older than {current}")]
    EpochTooOld {
        /// The group.
        group: GroupId,
        /// Epoch the client sent.
        sent: Epoch,
        /// Epoch the copyset has.
        current: Epoch,
    },
    /// No such copyset on this chunkserver.
    #[error("{group}: copyset not found")]
    CopysetNotFound {
        /// The group.
        group: GroupId,
    },
    /// The chunk does not exist (reads of it return zeros at the client).
    #[error("{chunk}: chunk not found")]
    ChunkNotFound {
        /// The chunk.
        chunk: ChunkId,
    },
    /// The disk failed an I/O; the chunkserver has fenced itself off it.
    #[error("disk error: {errno}")]
    DiskError {
        /// OS error number.
        errno: i32,
    },
    /// The chunk file pool or the WAL is out of space.
    #[error("no space left")]
    NoSpace,
    /// The request is malformed (misaligned, beyond the chunk, payload length mismatch).
    #[error("invalid request: {reason:?}")]
    InvalidRequest {
        /// What is wrong.
        reason: InvalidReason,
    },
    /// The copyset already exists (create) with other peers.
    #[error("{group}: copyset exists with other peers")]
    CopysetExists {
        /// The group.
        group: GroupId,
    },
    /// A membership change is already running for this copyset.
    #[error("{group}: configuration change in progress")]
    ConfChangeInProgress {
        /// The group.
        group: GroupId,
    },
    /// The chunkserver is starting or stopping.
    #[error("chunkserver unavailable")]
    Unavailable,
}

/// Why a request is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvalidReason {
    /// Offset or length not a multiple of 512 bytes.
    Misaligned,
    /// Range extends beyond the chunk.
    OutOfRange,
    /// The payload length differs from the length in the request.
    PayloadLength,
    /// The payload checksum differs from the one in the request.
    Checksum,
    /// A zero-length I/O.
    Empty,
    /// Peer lists that are empty, duplicated or otherwise unusable.
    BadPeers,
    /// A request id below what the copyset remembers of its client (a retry of a request
    /// the client had already abandoned, or one evicted from a full dedupe table): it was
    /// not applied now, and may or may not have been applied before.
    StaleRequest,
}

/// Why an MDS request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MdsError {
    /// This MDS is not the active one; the active one's address if known.
    #[error("not the active MDS (leader {leader:?})")]
    NotLeader {
        /// Address of the active MDS.
        leader: Option<SocketAddr>,
    },
    /// No such volume.
    #[error("volume not found")]
    VolumeNotFound,
    /// A volume with that name exists.
    #[error("volume exists")]
    VolumeExists,
    /// The volume is open elsewhere (exclusive open).
    #[error("volume {volume} busy: open by another client")]
    VolumeBusy {
        /// The volume.
        volume: VolumeId,
    },
    /// The session is unknown or expired; reopen.
    #[error("session expired")]
    SessionExpired,
    /// Names: 1..=128 bytes of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
    #[error("invalid volume name")]
    InvalidName,
    /// Size zero, not a multiple of the segment size, or smaller than the current size.
    #[error("invalid size {size}")]
    InvalidSize {
        /// The size asked for.
        size: u64,
    },
    /// Offset beyond the volume's end.
    #[error("offset {offset} beyond volume size {size}")]
    OutOfRange {
        /// Offset asked for.
        offset: u64,
        /// Volume size.
        size: u64,
    },
    /// The pool is too full to allocate.
    #[error("no space: pool usage above limit")]
    NoSpace,
    /// No healthy copysets to allocate from.
    #[error("no healthy copysets")]
    NoCopysets,
    /// Heartbeat or request from a chunkserver the MDS does not know.
    #[error("unknown chunkserver {id}")]
    UnknownChunkServer {
        /// The id it claimed.
        id: ChunkServerId,
    },
    /// A chunkserver presented the wrong token.
    #[error("token mismatch for chunkserver {id}")]
    TokenMismatch {
        /// The id it claimed.
        id: ChunkServerId,
    },
    /// The caller may not do this (owner or key mismatch).
    #[error("permission denied")]
    PermissionDenied,
    /// No such copyset.
    #[error("{group}: copyset not found")]
    CopysetNotFound {
        /// The group.
        group: GroupId,
    },
    /// A topology / cluster map that does not validate.
    #[error("invalid topology: {reason}")]
    InvalidTopology {
        /// What is wrong (names the offending entry).
        reason: String,
    },
    /// The metadata store is unreachable; retry.
    #[error("metadata store unavailable")]
    StoreUnavailable,
    /// An operator conflicts with one already running.
    #[error("{group}: operator already pending")]
    OperatorPending {
        /// The group.
        group: GroupId,
    },
    /// No such logical pool.
    #[error("logical pool {pool} not found")]
    PoolNotFound {
        /// The pool asked for.
        pool: LogicalPoolId,
    },
    /// The chunkserver is not a voter of the copyset (transfer target, peer to remove).
    #[error("{group}: {chunkserver} is not a peer")]
    NotAPeer {
        /// The group.
        group: GroupId,
        /// The chunkserver named.
        chunkserver: ChunkServerId,
    },
    /// The copyset has no known online leader to carry out an operator.
    #[error("{group}: no online leader known")]
    LeaderUnknown {
        /// The group.
        group: GroupId,
    },
    /// The chunkserver already takes part in another operator (one at a time).
    #[error("chunkserver {id} busy with another operator")]
    ChunkServerBusy {
        /// The chunkserver.
        id: ChunkServerId,
    },
    /// The request would leave the copyset without voters or is otherwise unusable.
    #[error("{group}: refused: {reason:?}")]
    OperatorRefused {
        /// The group.
        group: GroupId,
        /// Why.
        reason: OperatorRefusal,
    },
    /// Opening, growing, renaming or deleting a volume (or creating one for an owner)
    /// without that owner's key or the admin credential.
    #[error("volume {volume:?}: permission denied: {reason}")]
    VolumeAccessDenied {
        /// The volume name asked for.
        volume: String,
        /// Why.
        reason: AccessRefusal,
    },
    /// An owner operation without the admin credential (or, for a key rotation, the
    /// owner's own key).
    #[error("owner {owner:?}: permission denied: {reason}")]
    OwnerAccessDenied {
        /// The owner named.
        owner: String,
        /// Why.
        reason: AccessRefusal,
    },
    /// No such owner registered.
    #[error("owner {owner:?} not found")]
    OwnerNotFound {
        /// The name asked for.
        owner: String,
    },
    /// An owner of that name is registered already (or the name is reserved).
    #[error("owner {owner:?} exists")]
    OwnerExists {
        /// The name.
        owner: String,
    },
    /// The owner still owns volumes.
    #[error("owner {owner:?} still owns {volumes} volume(s)")]
    OwnerHasVolumes {
        /// The owner.
        owner: String,
        /// How many.
        volumes: u64,
    },
    /// An owner name outside the naming rules, or a malformed verifier.
    #[error("invalid owner {owner:?}: {reason}")]
    InvalidOwner {
        /// The name given.
        owner: String,
        /// What is wrong.
        reason: String,
    },
    /// A purge named a live volume: only deleted (recycled) volumes can be purged.
    #[error("volume {volume} is live; delete it before purging")]
    VolumeNotDeleted {
        /// The live volume.
        volume: VolumeId,
    },
    /// A purge could not delete every chunk of a recycled volume (chunkservers
    /// unreachable); its records are kept and a later purge resumes it.
    #[error("purge of volume {volume} incomplete: {failed} chunks not deleted")]
    PurgeIncomplete {
        /// The volume.
        volume: VolumeId,
        /// Chunks whose delete failed.
        failed: u64,
    },
}

/// Why a volume or owner operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AccessRefusal {
    /// The request carried no credential.
    #[error("no credential (set owner and key-file in the client config)")]
    NoCredential,
    /// The proof does not check: wrong key, unknown principal, or a proof made for
    /// another operation.
    #[error("bad credential (wrong key?)")]
    BadProof,
    /// The nonce is unknown to this MDS: expired, used already, or issued by another
    /// MDS before a failover. A client gets a fresh nonce and retries.
    #[error("unknown or expired nonce")]
    UnknownNonce,
    /// A valid credential of another owner.
    #[error("the volume belongs to another owner")]
    NotOwner,
    /// A valid owner credential where only the admin may act.
    #[error("admin credential required")]
    AdminRequired,
}

/// Why an admin operator request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorRefusal {
    /// The leader is already the transfer target.
    AlreadyLeader,
    /// Removing the peer would leave no voter.
    LastPeer,
    /// The peer to remove is the leader: transfer leadership first.
    RemoveLeader,
    /// The transfer target is not online.
    TargetNotOnline,
}
