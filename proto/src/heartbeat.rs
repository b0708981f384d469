//! Chunkserver → MDS heartbeats, and the operators the MDS sends back in the reply.

use crate::ids::{ChunkServerId, Epoch, GroupId};
use crate::method::{Method, Rpc};
use crate::status::{MdsError, PeerAddr};
use serde::{Deserialize, Serialize};

/// Capacity of a chunkserver's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskStats {
    /// Bytes of the filesystem.
    pub total_bytes: u64,
    /// Bytes used on the filesystem.
    pub used_bytes: u64,
    /// Chunk files in the pool (formatted, unused).
    pub pool_free_chunks: u64,
    /// Chunk files in use.
    pub used_chunks: u64,
    /// The chunkserver fenced itself off its disk after an I/O error.
    pub disk_failed: bool,
}

/// A membership change a copyset is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    /// Adding this peer.
    Adding(ChunkServerId),
    /// Removing this peer.
    Removing(ChunkServerId),
    /// Replacing `remove` with `add`.
    Changing {
        /// Leaving.
        remove: ChunkServerId,
        /// Joining.
        add: ChunkServerId,
    },
    /// Transferring leadership to this peer.
    TransferringLeader(ChunkServerId),
}

/// One copyset as a chunkserver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopysetReport {
    /// The copyset.
    pub group: GroupId,
    /// Its epoch on this replica.
    pub epoch: Epoch,
    /// Leader as known here.
    pub leader: Option<ChunkServerId>,
    /// Voters as known here.
    pub peers: Vec<ChunkServerId>,
    /// A change in progress (reported by the leader).
    pub conf_change: Option<ConfChange>,
}

/// The heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sender.
    pub id: ChunkServerId,
    /// Token from registration.
    pub token: String,
    /// Service address (may change across restarts).
    pub addr: std::net::SocketAddr,
    /// Disk capacity.
    pub disk: DiskStats,
    /// Every copyset replica on the chunkserver.
    pub copysets: Vec<CopysetReport>,
}

/// What the MDS asks a copyset's leader to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorKind {
    /// Add a peer.
    AddPeer(PeerAddr),
    /// Remove a peer.
    RemovePeer(ChunkServerId),
    /// Replace `remove` with `add`.
    ChangePeer {
        /// Leaving.
        remove: ChunkServerId,
        /// Joining.
        add: PeerAddr,
    },
    /// Move leadership.
    TransferLeader(ChunkServerId),
}

/// An operator for one copyset, valid only at `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// The copyset.
    pub group: GroupId,
    /// Epoch the operator was computed against; a leader at another epoch ignores it.
    pub epoch: Epoch,
    /// What to do.
    pub kind: OperatorKind,
}

/// The MDS's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Operators for copysets this chunkserver leads.
    pub operators: Vec<Operator>,
    /// Copysets this chunkserver holds that the MDS no longer places on it (strays to delete).
    pub strays: Vec<GroupId>,
}

impl Rpc for Heartbeat {
    const METHOD: Method = Method::ChunkServerHeartbeat;
    type Reply = Result<HeartbeatReply, MdsError>;
}
