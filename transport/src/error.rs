//! The transport's one error type.

use basalt_proto::hello::HelloRefusal;
use basalt_proto::method::RemoteError;
use basalt_proto::ProtoError;

/// Everything a connection, a call or a server can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The peer refused the connection in its hello reply (wrong cluster, role, auth).
    #[error("connection refused by peer: {0}")]
    Refused(HelloRefusal),
    /// Nothing listens at the address (TCP connection refused, no such in-memory endpoint).
    #[error("nobody listens at {addr}")]
    Unreachable {
        /// The address dialled.
        addr: String,
    },
    /// The deadline of a call or of the hello passed before an answer arrived.
    #[error("deadline exceeded after {elapsed_ms} ms")]
    Timeout {
        /// How long the operation had been waiting.
        elapsed_ms: u64,
    },
    /// The peer speaks another protocol version (seen by the dialler in the hello reply).
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch {
        /// Our protocol version.
        ours: u16,
        /// The peer's protocol version.
        theirs: u16,
    },
    /// The connection closed (peer died, reset, bad frame, local close) while the call was
    /// pending or before it was sent.
    #[error("peer gone: {reason}")]
    PeerGone {
        /// What closed the connection.
        reason: String,
    },
    /// The fast path (UCX) carrying this call failed; the connection is back on TCP and the
    /// call may be retried on it.
    #[error("fast path lost while the call was pending: {reason}")]
    PathLost {
        /// What failed.
        reason: String,
    },
    /// The peer could not handle the request (no handler, undecodable request, shutting down).
    #[error("remote error: {0}")]
    Remote(RemoteError),
    /// A frame or message could not be encoded or decoded.
    #[error("protocol error: {0}")]
    Proto(#[from] ProtoError),
    /// The peer answered the hello with something that is not a hello reply, or broke the
    /// protocol in another way.
    #[error("protocol violation by peer: {reason}")]
    Protocol {
        /// What the peer did.
        reason: String,
    },
    /// An I/O error on a socket (connect, bind, accept).
    #[error("i/o error during {op}: {kind:?}: {message}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The error kind.
        kind: std::io::ErrorKind,
        /// The OS message.
        message: String,
    },
    /// The local transport or server is shutting down.
    #[error("transport shut down")]
    Shutdown,
    /// The configuration is invalid.
    #[error("invalid transport configuration: {field}: {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl TransportError {
    /// Whether the same call may succeed if retried (possibly on a new connection or
    /// another replica): timeouts, lost peers, lost fast paths, peers shutting down.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Timeout { .. }
            | TransportError::PeerGone { .. }
            | TransportError::PathLost { .. }
            | TransportError::Unreachable { .. } => true,
            TransportError::Remote(RemoteError::ShuttingDown) => true,
            TransportError::Io { .. } => true,
            TransportError::Refused(_)
            | TransportError::VersionMismatch { .. }
            | TransportError::Remote(_)
            | TransportError::Proto(_)
            | TransportError::Protocol { .. }
            | TransportError::Shutdown
            | TransportError::Config { .. } => false,
        }
    }

    pub(crate) fn io(op: &'static str, e: &std::io::Error) -> Self {
        TransportError::Io {
            op,
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    pub(crate) fn peer_gone(reason: impl Into<String>) -> Self {
        TransportError::PeerGone {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability() {
        assert!(TransportError::Timeout { elapsed_ms: 1 }.is_retryable());
        assert!(TransportError::peer_gone("x").is_retryable());
        assert!(TransportError::Remote(RemoteError::ShuttingDown).is_retryable());
        assert!(!TransportError::Remote(RemoteError::NoHandler { method: 9 }).is_retryable());
        assert!(!TransportError::VersionMismatch { ours: 1, theirs: 2 }.is_retryable());
        assert!(!TransportError::Refused(HelloRefusal::AuthFailed).is_retryable());
    }
}
