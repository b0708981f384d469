//! Chunkservers and MDS instances are named by socket address on the wire; a transport
//! may dial something else (the in-memory transport dials names). This maps one to the other.

use std::net::SocketAddr;

/// A transport address that can be made from a socket address.
pub trait FromSocketAddr: Sized {
    /// The transport address for `addr`.
    fn from_socket_addr(addr: SocketAddr) -> Self;
}

impl FromSocketAddr for SocketAddr {
    fn from_socket_addr(addr: SocketAddr) -> Self {
        addr
    }
}

/// In-memory transports name endpoints by string: we use the socket address's text.
impl FromSocketAddr for String {
    fn from_socket_addr(addr: SocketAddr) -> Self {
        addr.to_string()
    }
}
