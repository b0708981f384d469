//! UCX active messages as the connection fast path (cargo feature `ucx`).
//!
//! [`UcxProvider`] implements [`crate::fastpath::FastPathProvider`] over the system UCX
//! (>= 1.13, bound by `ucx-sys`):
//! - one UCP context per provider (features AM + WAKEUP), configured from [`UcxConfig`]
//!   through `ucp_config_modify` (no environment variables), so one process can hold
//!   providers with different settings;
//! - `threads` I/O threads, each owning one single-threaded worker and its endpoints
//!   (`io_thread`); tokio tasks hand work over through a queue + `ucp_worker_signal`;
//! - endpoints are created from the peer's worker address exchanged in the TCP hello
//!   (no UCX listener is ever opened), in peer error mode; endpoint errors, a peer's close
//!   notice and send deadlines reach the connection's sink as `link_failed`;
//! - one active message per frame (`wire`): token + fixed frame header (+ the encoded
//!   header when small) in the AM header, the payload as AM data (iov; UCX switches to
//!   rendezvous above its threshold and the receiver fetches the data with
//!   `ucp_am_recv_data_nbx`).
//!
//! [`worthwhile`](crate::fastpath::FastPathProvider::worthwhile) is false when UCX would
//! only use its own tcp transport (no faster than native TCP, slower to connect).

mod config;
mod ffi;
mod io_thread;
mod provider;
mod registry;
mod wire;

use crate::error::TransportError;
use crate::fastpath::FastPathError;

pub use config::{UcxConfig, MAX_SPIN_US, MAX_THREADS};
pub use provider::{UcxLink, UcxProvider};
pub use registry::UcxStats;

/// The fast-path error a connection sees for a provider failure: UCX errors (the
/// `TransportError::Ucx*` variants) never reach a caller, the connection stays on TCP.
pub fn unavailable(error: TransportError) -> FastPathError {
    FastPathError::Unavailable {
        reason: error.to_string(),
    }
}

/// The loaded UCX library's version `(major, minor, release)`.
pub fn ucx_version() -> (u32, u32, u32) {
    ffi::version()
}
