//! The openraft type configuration of a copyset: node ids, node addresses, the chunk
//! operation carried in log entries and its result.

use basalt_proto::chunk::RequestId;
use basalt_proto::ids::ChunkId;
use basalt_proto::status::PeerAddr;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

openraft::declare_raft_types!(
    /// openraft types of a copyset. NodeId is the chunkserver id (widened to u64), Node
    /// is the chunkserver's transport address.
    pub CopysetTypes:
        D = ChunkOp,
        R = ChunkOpResult,
        NodeId = u64,
        Node = PeerAddr,
);

/// A state-machine operation replicated through the copyset's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkOp {
    /// Write `data` at `offset` of `chunk` (creating it on first write).
    Write {
        /// The chunk.
        chunk: ChunkId,
        /// Byte offset in the chunk.
        offset: u64,
        /// The bytes; shared, never copied on the way to the chunk store.
        #[serde(with = "bytes_serde")]
        data: Bytes,
        /// The client request (deduplicated by the state machine).
        req: RequestId,
    },
    /// Delete `chunk`.
    Delete {
        /// The chunk.
        chunk: ChunkId,
        /// The client request (deduplicated by the state machine).
        req: RequestId,
    },
}

impl ChunkOp {
    /// The id of the client request the operation carries.
    pub fn request_id(&self) -> RequestId {
        match self {
            ChunkOp::Write { req, .. } | ChunkOp::Delete { req, .. } => *req,
        }
    }
}

impl fmt::Display for ChunkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkOp::Write {
                chunk,
                offset,
                data,
                ..
            } => write!(f, "write {chunk}@{offset}+{}", data.len()),
            ChunkOp::Delete { chunk, .. } => write!(f, "delete {chunk}"),
        }
    }
}

/// What applying a [`ChunkOp`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkOpResult {
    /// A write was applied.
    Written,
    /// A delete was applied.
    Deleted,
    /// A blank or membership entry was applied.
    Noop,
    /// Not applied: the request's id is below what the copyset remembers of its client
    /// (see [`crate::copyset::sessions`]).
    Stale,
}

/// Serialize [`Bytes`] as a byte string (one `memcpy` out, one allocation in) instead of
/// serde's default element-by-element sequence.
mod bytes_serde {
    use bytes::Bytes;
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::copy_from_slice(v))
            }
            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// Aliases over openraft's generic types, instantiated for copysets.
pub mod alias {
    use super::CopysetTypes as C;
    /// A log id.
    pub type LogId = openraft::type_config::alias::LogIdOf<C>;
    /// A vote.
    pub type Vote = openraft::type_config::alias::VoteOf<C>;
    /// A log entry.
    pub type Entry = openraft::type_config::alias::EntryOf<C>;
    /// Membership as stored with its log id.
    pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<C>;
    /// Snapshot metadata.
    pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<C>;
}

/// The chunkserver id as an openraft node id.
pub fn node_id(id: basalt_proto::ids::ChunkServerId) -> u64 {
    u64::from(id.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_op_round_trips_through_bincode() {
        let op = ChunkOp::Write {
            chunk: ChunkId(9),
            offset: 4096,
            data: Bytes::from(vec![7u8; 1000]),
            req: RequestId {
                client: 3,
                seq: 4,
                done_below: 2,
            },
        };
        let enc = crate::copyset::codec::encode(&op).unwrap();
        // The data is a length-prefixed byte string, not 1000 varints.
        assert!(enc.len() < 1024, "{}", enc.len());
        let back: ChunkOp = crate::copyset::codec::decode(&enc).unwrap();
        assert_eq!(back, op);
    }
}
