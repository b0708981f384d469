//! Basalt chunkserver: the data node. One process per disk.
//!
//! Layers (bottom up):
//! - I/O backends and poller threads (`O_DIRECT` through io_uring, sync pread/pwrite, or SPDK),
//! - the chunk store (chunk files taken from a pre-formatted pool) behind [`chunk_api::ChunkStore`],
//! - the shared WAL (one append stream per disk, group commit) behind [`group_log::GroupLog`],
//! - copysets: one openraft group per copyset, whose log lives in the shared WAL and whose
//!   state machine writes chunks,
//! - services on the transport (chunk I/O, copyset administration, raft traffic) and the
//!   heartbeat client to the MDS.
//!
//! [`group_log`] and [`chunk_api`] are the seams between the storage layer and the raft
//! layer, so each can be tested against an in-memory twin of the other.

pub mod chunk_api;
pub mod error;
pub mod group_log;

pub use error::ChunkServerError;
