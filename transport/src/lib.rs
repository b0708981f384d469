//! Basalt's transport: typed RPC over frames between every Basalt process.
//!
//! - [`TcpTransport`] (tokio) carries every network connection. Connections start with
//!   a hello (version, features, identity, cluster; with a [`ClusterSecret`], a mutual
//!   HMAC challenge–response; a [`HelloHook`] for extra policy), then may move their traffic onto a fast path (UCX, through a
//!   [`fastpath::FastPathProvider`]) confirmed by a ping, falling back to TCP on any
//!   failure.
//! - [`mem::MemNetwork`] is an in-process transport with the same API and fault filters.
//! - [`Connection::call`] sends a typed request ([`basalt_proto::Rpc`]) with a payload
//!   beside it; [`Router`] dispatches requests on the serving side, each as its own task.
//! - [`ConnectionPool`] keeps one connection per peer; [`TransportMetrics`] counts into a
//!   prometheus-client registry and [`metrics_http`] serves one.
//!
//! See `docs/transport.md` for the design, the fallback table and what is not tested.

mod auth;
mod backoff;
mod config;
mod conn;
mod error;
pub mod fastpath;
mod handshake;
mod hello_hook;
pub mod mem;
mod metrics;
pub mod metrics_http;
mod negotiate;
mod path;
mod pool;
mod router;
mod server;
mod tcp;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod transport;
#[cfg(feature = "ucx")]
pub mod ucx;

pub use auth::secret::ClusterSecret;
pub use backoff::RedialBackoff;
pub use config::{FastPathMode, TransportConfig, TransportOptions};
pub use conn::{CallOptions, Connection};
pub use error::{AuthFailure, SecretProblem, TransportError};
pub use hello_hook::HelloHook;
pub use mem::{MemNetwork, MemTransport};
pub use metrics::{FallbackReason, TransportMetrics};
pub use path::PathKind;
pub use pool::ConnectionPool;
pub use router::{OneWay, RequestContext, Router, MAX_ECHO_DELAY};
pub use server::ServerHandle;
#[doc(hidden)]
pub use tcp::fuzzing;
pub use tcp::TcpTransport;
pub use transport::Transport;
