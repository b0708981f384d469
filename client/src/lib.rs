//! Basalt volume client.
//!
//! This crate turns volume I/O into chunk requests. Its intricate parts are sans-IO and
//! tested without sockets:
//! - [`split`]: volume ranges → per-chunk pieces (one request per chunk piece, no needless
//!   splitting below the chunk),
//! - [`cache`]: segment → chunk placement and copyset → peers/leader maps, refreshed on
//!   redirects and epoch errors,
//! - [`retry`]: what to do after each chunk-request outcome (retry at the hinted leader,
//!   ask peers or the MDS for the leader, back off on overload, fail only on permanent
//!   errors), and per-chunkserver health (unstable after repeated timeouts).
//!
//! The async `Volume` API and the C ABI are thin shells over these (issue: client library).

pub mod cache;
pub mod error;
pub mod retry;
pub mod split;

pub use error::ClientError;
