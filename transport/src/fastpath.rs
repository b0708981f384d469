//! The seam between a connection and an optional faster data path (UCX).
//!
//! Every connection starts over TCP. When both sides offer a fast path in the hello, each
//! side [`FastPathProvider::listen`]s (reserving an inbound slot tagged with a token),
//! exchanges the resulting [`UcxOffer`] in the hello, [`FastPathProvider::connect`]s to the
//! peer's offer, confirms the link with a ping, and from then on sends frames over the
//! link. Frames arriving on the link are handed to the connection's [`FrameSink`], the
//! same dispatch as TCP frames. Any failure is reported to the sink
//! ([`FrameSink::link_failed`]) and the connection returns to TCP by itself.
//!
//! The connection logic (negotiation, confirmation, fallback) lives with the connection and
//! is tested against an in-memory provider with fault switches; the UCX provider implements
//! these traits over UCX active messages.

use basalt_proto::hello::UcxOffer;
use basalt_proto::FrameHeader;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;

/// One frame as it travels: the fixed header, the encoded message header, the payload.
/// The payload is never copied into the encoded header.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// Fixed frame header (lengths must match `head` and `payload`).
    pub header: FrameHeader,
    /// Encoded message header.
    pub head: Bytes,
    /// Bulk payload (may be empty).
    pub payload: Bytes,
}

/// Why a fast path failed. Never fatal to a connection: it falls back to TCP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FastPathError {
    /// The provider could not start (e.g. `UCX_TLS=bogus`: no usable transports).
    #[error("fast path unavailable: {reason}")]
    Unavailable {
        /// The provider's explanation.
        reason: String,
    },
    /// Creating the endpoint to the peer failed.
    #[error("fast path connect failed: {reason}")]
    Connect {
        /// The provider's explanation.
        reason: String,
    },
    /// A send failed or the endpoint reported an error (peer gone, reset).
    #[error("fast path link failed: {reason}")]
    Link {
        /// The provider's explanation.
        reason: String,
    },
    /// The link was closed locally.
    #[error("fast path link closed")]
    Closed,
}

/// Receives what arrives on a fast-path link for one connection.
pub trait FrameSink: Send + Sync + 'static {
    /// A frame arrived. Called from the provider's I/O thread: must not block.
    fn deliver(&self, frame: RawFrame);
    /// The link failed (endpoint error, peer gone). Called at most once per link.
    fn link_failed(&self, error: FastPathError);
}

/// An established outbound link to one peer connection.
pub trait FastPathLink: Send + Sync + 'static {
    /// Send one frame; resolves when the buffers may be released (sent or failed).
    fn send(&self, frame: RawFrame) -> BoxFuture<'static, Result<(), FastPathError>>;
    /// Close the link (idempotent). The peer sees a link failure.
    fn close(&self);
}

/// A process-wide fast-path implementation (one UCX context and its worker threads).
pub trait FastPathProvider: Send + Sync + 'static {
    /// Short name for logs and metrics, e.g. `"ucx"`.
    fn name(&self) -> &'static str;
    /// Whether the fast path beats native TCP here. False when UCX would only use its
    /// own tcp transport (no faster, slower to connect); callers in `auto` mode then
    /// stay on TCP.
    fn worthwhile(&self) -> bool;
    /// Reserve an inbound slot: frames the peer sends tagged with the returned offer's
    /// `conn` token are delivered to `sink`.
    fn listen(&self, sink: Arc<dyn FrameSink>) -> Result<UcxOffer, FastPathError>;
    /// Connect to the peer's offer. `local` is the token our own `listen` returned for
    /// this connection, so endpoint errors reach our sink too.
    fn connect(
        &self,
        local: u64,
        remote: &UcxOffer,
    ) -> BoxFuture<'static, Result<Arc<dyn FastPathLink>, FastPathError>>;
    /// Release an inbound slot (connection closed or fell back).
    fn unlisten(&self, local: u64);
}
