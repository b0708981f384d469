//! Copysets: one openraft group per copyset, many groups per chunkserver.
//!
//! - [`types`]: the openraft type configuration (node = chunkserver, entry = chunk op).
//! - [`log_store`]: openraft log storage on the shared WAL ([`crate::group_log::GroupLog`]).
//! - [`sessions`]: the per-client dedupe table that applies each write at most once.
//! - [`state_machine`]: applies chunk ops to the [`crate::chunk_api::ChunkStore`];
//!   lightweight snapshots (chunk list), installed by pulling chunks from the leader.
//! - [`network`]: the [`network::RaftNet`] seam (encoded raft message for group G to
//!   chunkserver N) and openraft's client side on it (`openraft_multi::GroupRouter`).
//! - [`registry`]: [`registry::Copysets`], the groups of this chunkserver and the
//!   operations the chunk service routes to them (write, read, leader, status, membership).
//! - [`transport_net`]: [`network::RaftNet`] over `basalt-transport` and the server-side
//!   raft routes.
//! - [`leader_watch`]: fast failover when a leader's process dies (refused dials).
//! - [`reset`]: forcing the membership of a copyset that lost its majority.
//! - [`config`]: raft settings.
//! - [`testing`]: TEST SUPPORT ONLY, in-memory log, chunk store and network.
//!
//! openraft is wrapped here so its (alpha) API is visible in one module only.

pub mod codec;
pub mod config;
pub mod leader_watch;
pub mod log_store;
pub mod network;
pub mod registry;
pub mod reset;
pub mod sessions;
pub mod state_machine;
pub mod testing;
pub mod transport_net;
pub mod types;

pub use config::CopysetConfig;
pub use network::{Lane, RaftMsgKind, RaftNet};
pub use registry::{Copyset, Copysets, CopysetsParams};
pub use transport_net::{raft_routes, TransportRaftNet};
pub use types::{ChunkOp, ChunkOpResult, CopysetTypes};
