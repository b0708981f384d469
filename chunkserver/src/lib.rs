//! Basalt chunkserver: the data node. One process per disk.
//!
//! Layers (bottom up):
//! - I/O backends and poller threads (`O_DIRECT` through io_uring, sync pread/pwrite, or SPDK),
//! - the chunk store (chunk files taken from a pre-formatted pool) behind [`chunk_api::ChunkStore`],
//! - the shared WAL (one append stream per disk, group commit) behind [`group_log::GroupLog`],
//! - copysets: one openraft group per copyset, whose log lives in the shared WAL and whose
//!   state machine writes chunks,
//! - [`service`]: the chunk service on the transport (chunk I/O, copyset administration),
//!   beside the raft routes of [`copyset`]; the `serve` daemon (binary) wires it all up.
//! - [`mds_link`]: registration with the MDS, heartbeats, and the operators the MDS sends.
//!
//! [`group_log`] and [`chunk_api`] are the seams between the storage layer and the raft
//! layer, so each can be tested against an in-memory twin of the other.

pub mod backend;
pub mod check;
pub mod chunk_api;
pub mod chunk_header;
pub mod config;
pub mod copyset;
pub mod datadir;
pub mod disk_fence;
pub mod error;
pub mod failpoints;
pub mod fs_space;
pub mod group_log;
pub mod mds_link;
pub mod poller;
pub mod service;
pub mod store;
pub mod wal;

pub use error::ChunkServerError;
