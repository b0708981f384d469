//! Basalt's wire protocol.
//!
//! Every byte that crosses a Basalt connection is described here, and nothing here does
//! I/O. A message on the wire is a [`frame::FrameHeader`] (fixed 40 bytes, checksummed),
//! followed by an encoded header (one message struct, bincode 2, bounded by
//! [`frame::Limits`]) and an optional bulk payload that travels beside it: chunk data is
//! never copied into the encoded header, so a transport can hand it to `writev` or to a
//! registered RDMA buffer.
//!
//! Modules:
//! - [`ids`]: identifier newtypes (chunkserver, copyset, group, chunk, volume, ...).
//! - [`frame`]: the fixed frame header, its limits and checksum.
//! - [`codec`]: bounded encode/decode of message structs.
//! - [`method`]: the method table and the [`method::Rpc`] trait tying a request to its reply.
//! - [`hello`]: the connection hello (version, features, identity, UCX address).
//! - [`status`]: status codes carried in replies.
//! - [`credential`]: owner keys, their verifiers and volume-access proofs (no I/O).
//! - [`chunk`], [`raft`], [`mds`], [`heartbeat`]: the message types per service.
//!
//! Changing the encoding of any type here is a protocol change: the golden-byte tests in
//! `tests/golden.rs` pin it, and [`frame::PROTOCOL_VERSION`] must move with it.

pub mod chunk;
pub mod codec;
pub mod credential;
pub mod error;
pub mod frame;
pub mod heartbeat;
pub mod hello;
pub mod ids;
pub mod mds;
pub mod method;
pub mod raft;
pub mod status;

pub use error::ProtoError;
pub use frame::{FrameFlags, FrameHeader, FrameKind, Limits, FRAME_HEADER_LEN, PROTOCOL_VERSION};
pub use method::{Method, Rpc};
