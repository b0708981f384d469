//! Basalt volume client.
//!
//! This crate turns volume I/O into chunk requests. Its intricate parts are sans-IO and
//! tested without sockets:
//! - [`split`]: volume ranges → per-chunk pieces (one request per chunk piece, no needless
//!   splitting below the chunk),
//! - [`cache`]: segment → chunk placement and copyset → peers/leader maps, refreshed on
//!   redirects and epoch errors,
//! - [`request_id`]: the id every write and delete carries, the same on each retry, so
//!   a copyset applies it at most once,
//! - [`retry`]: what to do after each chunk-request outcome (retry at the hinted leader,
//!   ask peers or the MDS for the leader, back off on overload, fail only on permanent
//!   errors), and per-chunkserver health (unstable after repeated timeouts).
//!
//! [`Cluster`] and [`Volume`] are the async shell over these, on any `basalt-transport`
//! transport (TCP/UCX in production, the in-memory one in tests).
//!
//! [`capi`] is the C ABI over them (`libbasalt_client.so`, header
//! `include/basalt_client.h`).

pub mod addr;
pub mod cache;
pub mod capi;
mod chunk_io;
pub mod config;
pub mod config_file;
pub mod error;
pub mod mds_client;
pub mod request_id;
pub mod retry;
pub mod split;
mod volume;

pub use config::ClientConfig;
pub use config_file::ClientFile;
pub use error::ClientError;
pub use volume::{Cluster, OpenOptions, Volume};
