//! The transport's one error type.

use basalt_proto::hello::HelloRefusal;
use basalt_proto::method::RemoteError;
use basalt_proto::ProtoError;
use std::path::PathBuf;

/// Why a peer failed cluster authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The peer sent no proof: it runs without a cluster secret.
    #[error("it does not authenticate (no cluster secret configured?)")]
    NotOffered,
    /// The peer's authentication message did not decode or came out of order.
    #[error("malformed authentication message")]
    Malformed,
    /// The dialler hung up after the acceptor's proof instead of sending its own (what a
    /// dialler with another secret does).
    #[error("hung up before proving (another cluster secret?)")]
    Abandoned,
    /// The proof did not verify: another secret, or a replayed hello.
    #[error("wrong proof (another cluster secret, or a replayed hello)")]
    BadProof,
}

/// What is wrong with a cluster secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    /// A character that is not a hex digit (whitespace around the whole is allowed).
    #[error("character {position} is not a hex digit")]
    NotHex {
        /// Its position in the trimmed text.
        position: usize,
    },
    /// An odd number of hex digits.
    #[error("odd number of hex digits")]
    OddLength,
    /// Fewer bytes than the minimum.
    #[error("{bytes} bytes, at least {min} needed (generate one with `basalt cluster init`)")]
    TooShort {
        /// Decoded length.
        bytes: usize,
        /// The minimum.
        min: usize,
    },
    /// More bytes than the maximum.
    #[error("{bytes} bytes, at most {max} accepted")]
    TooLong {
        /// Decoded length.
        bytes: usize,
        /// The maximum.
        max: usize,
    },
}

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
    /// The peer did not prove knowledge of the cluster secret in the hello (it has none,
    /// another one, or replayed an old hello). Raised by the dialler about an acceptor,
    /// and by an acceptor about a dialler (logged there; the dialler gets
    /// `Refused(AuthFailed)`).
    #[error("peer {peer:?} failed cluster authentication: {reason}")]
    PeerNotAuthenticated {
        /// The name the peer gave in its hello.
        peer: String,
        /// What was wrong.
        reason: AuthFailure,
    },
    /// The cluster secret file could not be read or written (missing, unreadable,
    /// already exists when creating one).
    #[error("cluster secret file {path:?}: {op}: {kind:?}: {message}")]
    AuthSecretIo {
        /// The file.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// The error kind.
        kind: std::io::ErrorKind,
        /// The OS message.
        message: String,
    },
    /// The cluster secret file may be read or written by other users.
    #[error("cluster secret file {path:?} has mode {mode:o}: other users can access it; run chmod 600 on it")]
    AuthSecretPermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The cluster secret is not hex, or too short or too long.
    #[error("cluster secret from {source_name}: {problem}")]
    AuthSecretInvalid {
        /// The file it came from (or `<memory>`).
        source_name: String,
        /// What is wrong with it.
        problem: SecretProblem,
    },
    // The `Ucx*` variants are raised only by the UCX provider (cargo feature `ucx`); they
    // exist without the feature so that matching on this enum never depends on features.
    // They never reach a caller as the result of a call: a connection sees its fast path
    // as unavailable (or lost) and stays on (or returns to) TCP.
    /// The UCX library found at run time is older than 1.13 (provider start-up).
    #[error("UCX {major}.{minor}.{release} is too old: 1.13 or newer is required")]
    UcxVersionTooOld {
        /// Major version of the loaded library.
        major: u32,
        /// Minor version.
        minor: u32,
        /// Release number.
        release: u32,
    },
    /// `ucp_init` failed at provider start-up, e.g. no usable transports or devices
    /// (`tls = "bogus"`, a missing network device).
    #[error("ucp_init failed: {message} ({status})")]
    UcxInit {
        /// UCS status code.
        status: i32,
        /// `ucs_status_string` of it.
        message: String,
    },
    /// Another UCP call failed: `ucp_config_read` at start-up, a worker call while setting
    /// up an I/O thread, or `ucp_ep_create` to a peer's (bad or foreign) worker address.
    #[error("{call} failed: {message} ({status})")]
    UcxCall {
        /// The UCP function that failed.
        call: &'static str,
        /// UCS status code.
        status: i32,
        /// `ucs_status_string` of it.
        message: String,
    },
    /// `ucp_config_modify` refused a setting at provider start-up (unknown name or
    /// unparsable value).
    #[error("UCX refused setting {name}={value}: {message} ({status})")]
    UcxSetting {
        /// Variable name without the `UCX_` prefix.
        name: &'static str,
        /// The value given.
        value: String,
        /// UCS status code.
        status: i32,
        /// `ucs_status_string` of it.
        message: String,
    },
    /// A peer's UCX worker address (from its hello) is damaged: wrong magic, length or
    /// checksum. It is never handed to UCX, which would crash on it.
    #[error("bad UCX worker address from peer ({len} bytes): {problem}")]
    UcxBadWorkerAddress {
        /// Bytes received.
        len: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// A peer's UCX worker address was packed by another UCX release.
    #[error(
        "peer's UCX worker address is from UCX {theirs_major}.{theirs_minor}, ours is \
         {ours_major}.{ours_minor}"
    )]
    UcxAddressVersion {
        /// Our UCX major version.
        ours_major: u32,
        /// Our UCX minor version.
        ours_minor: u32,
        /// The peer's UCX major version.
        theirs_major: u32,
        /// The peer's UCX minor version.
        theirs_minor: u32,
    },
    /// A UCX fast-path connect named a local token that `listen` never returned (or that
    /// was released).
    #[error("unknown local UCX connection token {token:#x}")]
    UcxUnknownToken {
        /// The token.
        token: u64,
    },
    /// A frame to send over UCX has lengths in its fixed header that do not match its parts.
    #[error(
        "frame lengths disagree: header says {header_len}+{payload_len}, parts are {head}+{payload}"
    )]
    UcxFrameLengths {
        /// `header_len` in the fixed header.
        header_len: u32,
        /// Bytes of encoded header given.
        head: usize,
        /// `payload_len` in the fixed header.
        payload_len: u32,
        /// Bytes of payload given.
        payload: usize,
    },
    /// An inbound UCX active message's header is shorter than token + fixed frame header.
    #[error("active message header of {len} bytes is too short")]
    UcxAmHeaderTruncated {
        /// Bytes received.
        len: usize,
    },
    /// An inbound UCX frame's fixed header is invalid (magic, checksum, kind, limits).
    #[error("bad frame header for UCX connection {token:#x}: {source}")]
    UcxBadFrameHeader {
        /// The connection token the message carried.
        token: u64,
        /// Why the header was refused.
        source: ProtoError,
    },
    /// An inbound UCX message's sizes do not match the lengths in its frame header.
    #[error(
        "message sizes for UCX connection {token:#x} do not match its frame header: \
         am header {am_header_len}, data {data_len}, frame says {header_len}+{payload_len}"
    )]
    UcxLengthMismatch {
        /// The connection token the message carried.
        token: u64,
        /// Bytes of active-message header received.
        am_header_len: usize,
        /// Bytes of active-message data announced.
        data_len: usize,
        /// `header_len` in the frame header.
        header_len: u32,
        /// `payload_len` in the frame header.
        payload_len: u32,
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
            | TransportError::Config { .. }
            | TransportError::PeerNotAuthenticated { .. }
            | TransportError::AuthSecretIo { .. }
            | TransportError::AuthSecretPermissions { .. }
            | TransportError::AuthSecretInvalid { .. } => false,
            TransportError::UcxVersionTooOld { .. }
            | TransportError::UcxInit { .. }
            | TransportError::UcxCall { .. }
            | TransportError::UcxSetting { .. }
            | TransportError::UcxBadWorkerAddress { .. }
            | TransportError::UcxAddressVersion { .. }
            | TransportError::UcxUnknownToken { .. }
            | TransportError::UcxFrameLengths { .. }
            | TransportError::UcxAmHeaderTruncated { .. }
            | TransportError::UcxBadFrameHeader { .. }
            | TransportError::UcxLengthMismatch { .. } => false,
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
