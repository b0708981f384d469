//! What the TCP and in-memory transports have in common, for code generic over both
//! (the connection pool, the conformance suite, simulations).

use crate::conn::Connection;
use crate::error::TransportError;
use crate::metrics::TransportMetrics;
use crate::router::Router;
use crate::server::ServerHandle;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;

/// A way to dial and serve.
pub trait Transport: Clone + Send + Sync + 'static {
    /// An address to dial or bind.
    type Addr: Clone + Eq + Hash + Debug + Display + Send + Sync + 'static;

    /// Dial, exchange the hello, try the fast path.
    fn connect(
        &self,
        addr: &Self::Addr,
    ) -> impl Future<Output = Result<Connection, TransportError>> + Send;

    /// Serve `router` at `addr` (TCP: port 0 picks a free port, see `local_addr`).
    fn serve(
        &self,
        addr: &Self::Addr,
        router: Router,
    ) -> impl Future<Output = Result<ServerHandle<Self::Addr>, TransportError>> + Send;

    /// This transport's counters.
    fn metrics(&self) -> &TransportMetrics;
}
