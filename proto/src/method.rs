//! The method table: every RPC and one-way message of the system has a number here, and
//! every request type is tied to its reply type through [`Rpc`].

use serde::{de::DeserializeOwned, Deserialize, Serialize};

macro_rules! methods {
    ($($(#[$doc:meta])* $name:ident = $num:literal,)*) => {
        /// A method number as carried in the frame header.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Method {
            $($(#[$doc])* $name = $num,)*
        }

        impl Method {
            /// Every method, in table order.
            pub const ALL: &'static [Method] = &[$(Method::$name,)*];

            /// Look a method up by number.
            pub fn from_u16(v: u16) -> Option<Method> {
                match v {
                    $($num => Some(Method::$name),)*
                    _ => None,
                }
            }

            /// The method's name, for logs and metrics.
            pub fn name(self) -> &'static str {
                match self {
                    $(Method::$name => stringify!($name),)*
                }
            }
        }
    };
}

methods! {
    // --- transport (1..99) ---
    /// Connection hello: version, features, identity, UCX worker address.
    Hello = 1,
    /// Liveness / UCX endpoint confirmation.
    Ping = 2,
    /// Echo the request header and payload back (diagnostics, benchmarks, conformance).
    Echo = 3,
    /// A side announces it is moving traffic off UCX back to TCP (one-way).
    UcxFallback = 4,
    /// Third hello frame when both sides authenticate: the dialler's proof of the
    /// cluster secret over both nonces (see [`crate::hello::HelloProof`]).
    HelloProof = 5,

    // --- chunk service (100..199) ---
    /// Write a range of a chunk.
    WriteChunk = 100,
    /// Read a range of a chunk.
    ReadChunk = 101,
    /// Delete a chunk (returns its file to the pool).
    DeleteChunk = 102,
    /// Who leads a copyset.
    GetLeader = 103,
    /// Size and sequence of a chunk.
    ChunkInfo = 104,
    /// Create a copyset on this chunkserver.
    CreateCopyset = 105,
    /// Delete a copyset from this chunkserver.
    DeleteCopyset = 106,
    /// State of a copyset on this chunkserver.
    CopysetStatus = 107,
    /// Add a peer to a copyset (leader only).
    AddPeer = 108,
    /// Remove a peer from a copyset (leader only).
    RemovePeer = 109,
    /// Replace one peer with another (leader only).
    ChangePeer = 110,
    /// Move leadership of a copyset to another peer.
    TransferLeader = 111,
    /// Force the membership of a copyset that lost its majority (on one surviving
    /// replica; unsafe, operator only).
    ResetPeers = 120,

    // --- raft between chunkservers (200..299); the group id is in the frame ---
    /// openraft AppendEntries.
    RaftAppend = 200,
    /// openraft Vote.
    RaftVote = 201,
    /// openraft PreVote.
    RaftPreVote = 202,
    /// openraft full snapshot (metadata; chunk files follow by `RaftSnapshotChunk`).
    RaftSnapshot = 203,
    /// openraft TransferLeader broadcast.
    RaftTransferLeader = 204,
    /// Pull a piece of a chunk file during snapshot install.
    RaftSnapshotChunk = 205,
    /// Heartbeats of many groups between one pair of chunkservers, coalesced.
    RaftHeartbeatBatch = 206,

    // --- MDS (300..399) ---
    /// Chunkserver registration.
    RegisterChunkServer = 300,
    /// Chunkserver heartbeat; the reply carries operators.
    ChunkServerHeartbeat = 301,
    /// Create a volume.
    CreateVolume = 302,
    /// Open a volume with a session.
    OpenVolume = 303,
    /// Close a volume's session.
    CloseVolume = 304,
    /// Refresh a session lease.
    RefreshSession = 305,
    /// Describe a volume.
    StatVolume = 306,
    /// List volumes.
    ListVolumes = 307,
    /// Grow a volume.
    ExtendVolume = 308,
    /// Rename a volume.
    RenameVolume = 309,
    /// Delete a volume (to the recycle area).
    DeleteVolume = 310,
    /// Map of a segment, allocating it if asked and absent.
    GetSegment = 311,
    /// Peers, leader hint and epoch of copysets.
    GetCopysets = 312,
    /// Cluster health summary.
    ClusterStatus = 313,
    /// List chunkservers.
    ListChunkServers = 314,
    /// Apply a cluster map (topology).
    ApplyTopology = 315,
    /// Read the topology.
    GetTopology = 316,
    /// Ask the MDS to move a copyset's leader.
    MdsTransferLeader = 317,
    /// Ask the MDS to remove a peer from a copyset.
    MdsRemovePeer = 318,
    /// List pending operators.
    ListOperators = 319,
    /// Which MDS is active (answered by standbys too).
    GetMdsLeader = 320,
    /// List copysets of a logical pool.
    ListCopysets = 321,
    /// A single-use nonce for a volume-access proof (`mds::GetAuthNonce`).
    GetAuthNonce = 350,
    /// Register a volume owner (admin).
    CreateOwner = 351,
    /// Replace an owner's key.
    SetOwnerKey = 352,
    /// Remove a volume owner (admin).
    DeleteOwner = 353,
    /// List volume owners.
    ListOwners = 354,
    /// Mark a chunkserver draining (or back in service).
    DrainChunkServer = 330,
    /// Drain progress of every draining chunkserver.
    ListDrains = 331,
    /// List logical pools.
    ListPools = 332,
    /// What applying a cluster map would change, without changing anything.
    ApplyTopologyDryRun = 333,
    /// Purge deleted volumes from the recycle area (`mds::PurgeVolume`).
    PurgeVolume = 360,
}

/// A request type and the reply type it gets.
pub trait Rpc: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Its method number.
    const METHOD: Method;
    /// What the handler answers.
    type Reply: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// Why a request was not handled at all. Sent as the encoded header of a response frame
/// with [`crate::FrameFlags::ERROR`] set, in place of the method's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    /// The receiver has no handler for this method.
    #[error("no handler for method {method}")]
    NoHandler {
        /// The method number.
        method: u16,
    },
    /// The request's encoded header did not decode as the method's request type.
    #[error("bad request for method {method}: {reason}")]
    BadRequest {
        /// The method number.
        method: u16,
        /// Decoder's explanation.
        reason: String,
    },
    /// The receiver is shutting down.
    #[error("peer shutting down")]
    ShuttingDown,
    /// The handler failed without a typed answer (a bug on the receiver).
    #[error("handler failed: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn numbers_are_unique_and_round_trip() {
        let mut seen = HashSet::new();
        for m in Method::ALL {
            assert!(seen.insert(*m as u16), "duplicate number for {m:?}");
            assert_eq!(Method::from_u16(*m as u16), Some(*m));
            assert!(!m.name().is_empty());
        }
        assert_eq!(Method::from_u16(0), None);
        assert_eq!(Method::from_u16(u16::MAX), None);
    }
}
