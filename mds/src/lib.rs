//! Basalt's metadata server (MDS) as a library.
//!
//! - [`store`]: the [`store::MetaStore`] trait (etcd 3.4 semantics), its etcd and
//!   in-memory implementations, id counters and fenced writes.
//! - [`keys`]: the key schema and value encoding.
//! - [`election`]: leader election with lease, keepalive, observer and step-down.
//! - [`topology`]: the cluster model, cluster map files, chunkserver registration and
//!   liveness.
//! - [`placement`]: copyset creation (one replica per zone, scatter-width balanced).
//! - [`namespace`]: volumes, sessions and segments; [`access`]: volume owners, keys and
//!   the admin credential.
//! - [`recycle`]: purging deleted volumes (chunks on the chunkservers, then records).
//! - [`heartbeat`]: chunkserver heartbeat handling and copyset reconciliation by epoch.
//! - [`scheduler`]: recovery and balancing operators.
//! - [`state`]: [`state::MdsState`], everything above persisted through a fenced store.
//! - [`copyset_sync`] / [`copyset_creator`]: telling chunkservers to create the replicas
//!   placement assigned them (sans-IO decisions + a transport shell).
//! - [`metrics`]: Prometheus metrics; [`service`]: the RPC handlers; [`daemon`]: the
//!   process's life.
//!
//! The logic modules are sans-IO: pure functions over state and a time passed in.

pub mod access;
pub mod admin;
pub mod config;
pub mod copyset_creator;
pub mod copyset_sync;
pub mod daemon;
pub mod election;
pub mod error;
pub mod heartbeat;
pub mod keys;
pub mod metrics;
pub mod namespace;
pub mod placement;
pub mod recycle;
pub mod scheduler;
pub mod service;
pub mod state;
pub mod store;
pub mod topology;

pub use error::{Error, Result};
