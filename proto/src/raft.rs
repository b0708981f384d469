//! Raft envelopes between chunkservers.
//!
//! The group id travels in the frame header; the body is the openraft message encoded by
//! the chunkserver with [`crate::codec`] (proto does not depend on openraft, so a version
//! bump of openraft touches one crate). Log entry data may travel in the frame payload.

use crate::ids::GroupId;
use crate::method::{Method, Rpc};
use serde::{Deserialize, Serialize};

/// Why a raft message was not delivered to its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RaftError {
    /// The receiver has no replica of this group (a stray, or not created yet).
    #[error("{group}: no such copyset here")]
    CopysetNotFound {
        /// The group.
        group: GroupId,
    },
    /// openraft refused the message (its error, rendered).
    #[error("raft: {reason}")]
    Raft {
        /// openraft's error text.
        reason: String,
    },
    /// The receiver is starting or shutting down.
    #[error("unavailable")]
    Unavailable,
}

macro_rules! raft_envelope {
    ($(#[$doc:meta])* $name:ident => $method:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            /// The encoded openraft request.
            pub body: Vec<u8>,
        }

        impl Rpc for $name {
            const METHOD: Method = Method::$method;
            /// The encoded openraft reply.
            type Reply = Result<Vec<u8>, RaftError>;
        }
    };
}

raft_envelope!(
    /// openraft `AppendEntriesRequest`.
    RaftAppend => RaftAppend
);
raft_envelope!(
    /// openraft `VoteRequest`.
    RaftVote => RaftVote
);
raft_envelope!(
    /// openraft pre-vote request.
    RaftPreVote => RaftPreVote
);
raft_envelope!(
    /// openraft full snapshot: vote + snapshot meta + the chunk list.
    RaftSnapshot => RaftSnapshot
);
raft_envelope!(
    /// openraft `TransferLeaderRequest`.
    RaftTransferLeader => RaftTransferLeader
);
raft_envelope!(
    /// Pull part of a chunk file from the leader during snapshot install; the reply's
    /// data travels in the payload.
    RaftSnapshotChunk => RaftSnapshotChunk
);

/// Heartbeats of many groups between one pair of chunkservers in one frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftHeartbeatBatch {
    /// Per group, the encoded openraft heartbeat (an empty AppendEntries).
    pub groups: Vec<(GroupId, Vec<u8>)>,
}

impl Rpc for RaftHeartbeatBatch {
    const METHOD: Method = Method::RaftHeartbeatBatch;
    type Reply = Vec<(GroupId, Result<Vec<u8>, RaftError>)>;
}
