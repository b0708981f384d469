//! The public connection handle.

use super::{ConnInner, Side};
use crate::error::TransportError;
use crate::path::PathKind;
use crate::router::OneWay;
use basalt_proto::codec;
use basalt_proto::hello::{Features, Identity};
use basalt_proto::ids::GroupId;
use basalt_proto::method::RemoteError;
use basalt_proto::{FrameFlags, Rpc};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;

/// Options of one call.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallOptions {
    /// Raft group carried in the frame ([`GroupId::NONE`] by default).
    pub group: GroupId,
    /// Deadline; the transport's `call-timeout-ms` from now when absent.
    pub deadline: Option<Instant>,
}

/// A connection to a peer. Cheap to clone; the connection closes when the last clone is
/// dropped or [`Connection::close`] is called.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ConnInner>,
    _owner: Arc<CloseOnDrop>,
}

struct CloseOnDrop(Arc<ConnInner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close("closed locally");
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .field("peer", &self.inner.peer_addr)
            .field("path", &self.inner.path())
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(inner: Arc<ConnInner>) -> Self {
        Connection {
            _owner: Arc::new(CloseOnDrop(inner.clone())),
            inner,
        }
    }

    /// Call `req` with `payload`; the deadline is the transport's `call-timeout-ms`.
    /// The request is encoded at once; the future borrows nothing (it can be stored or
    /// spawned) and keeps the connection open until it completes.
    pub fn call<R: Rpc>(
        &self,
        req: &R,
        payload: Bytes,
    ) -> impl Future<Output = Result<(R::Reply, Bytes), TransportError>> + Send + 'static {
        self.call_with(req, payload, CallOptions::default())
    }

    /// Call with an explicit deadline.
    pub fn call_with_deadline<R: Rpc>(
        &self,
        req: &R,
        payload: Bytes,
        deadline: Instant,
    ) -> impl Future<Output = Result<(R::Reply, Bytes), TransportError>> + Send + 'static {
        self.call_with(
            req,
            payload,
            CallOptions {
                deadline: Some(deadline),
                ..CallOptions::default()
            },
        )
    }

    /// Call with options (group id, deadline). Dropping the future forgets the call; a
    /// late reply is discarded.
    pub fn call_with<R: Rpc>(
        &self,
        req: &R,
        payload: Bytes,
        opts: CallOptions,
    ) -> impl Future<Output = Result<(R::Reply, Bytes), TransportError>> + Send + 'static {
        let conn = self.clone();
        let head = codec::encode(req);
        async move {
            let deadline = opts
                .deadline
                .unwrap_or_else(|| Instant::now() + conn.inner.ep.opts.config.call_timeout());
            let frame = conn
                .inner
                .call_raw(R::METHOD, opts.group, head?, payload, deadline)
                .await?;
            if frame.header.flags.contains(FrameFlags::ERROR) {
                let e: RemoteError = codec::decode(&frame.head)?;
                return Err(TransportError::Remote(e));
            }
            if frame.header.method != R::METHOD as u16 {
                return Err(TransportError::Protocol {
                    reason: format!(
                        "response for method {} to a request of method {}",
                        frame.header.method,
                        R::METHOD as u16
                    ),
                });
            }
            let reply = codec::decode::<R::Reply>(&frame.head)?;
            Ok((reply, frame.payload))
        }
    }

    /// Send a one-way message (no answer; delivery is not confirmed).
    pub async fn send_oneway<M: OneWay>(
        &self,
        msg: &M,
        payload: Bytes,
    ) -> Result<(), TransportError> {
        self.send_oneway_in(GroupId::NONE, msg, payload).await
    }

    /// Send a one-way message belonging to a raft group.
    pub async fn send_oneway_in<M: OneWay>(
        &self,
        group: GroupId,
        msg: &M,
        payload: Bytes,
    ) -> Result<(), TransportError> {
        let head = codec::encode(msg)?;
        self.inner
            .send_oneway_raw(M::METHOD, group, head, payload)
            .await
    }

    /// Round trip of a `Ping` (answered by the peer's transport itself, whatever its
    /// router holds), with the transport's call deadline.
    pub async fn ping(&self) -> Result<std::time::Duration, TransportError> {
        let start = Instant::now();
        let nonce = self.inner.id ^ start.elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15;
        let (pong, _) = self
            .call(&basalt_proto::hello::Ping { nonce }, Bytes::new())
            .await?;
        if pong.nonce != nonce {
            return Err(TransportError::Protocol {
                reason: format!("pong for nonce {} instead of {nonce}", pong.nonce),
            });
        }
        Ok(start.elapsed())
    }

    /// The path outbound frames take now.
    pub fn path(&self) -> PathKind {
        self.inner.path()
    }

    /// The peer's identity from the hello.
    pub fn peer(&self) -> &Identity {
        &self.inner.peer
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> &str {
        &self.inner.peer_addr
    }

    /// Features both sides agreed on.
    pub fn features(&self) -> Features {
        self.inner.features
    }

    /// Process-local connection id (for logs).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether the connection is closed (calls fail with `PeerGone`).
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Wait until the connection closes.
    pub async fn closed(&self) {
        let mut rx = self.inner.closed_tx.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Close now; pending calls fail with `PeerGone`.
    pub fn close(&self) {
        self.inner.close("closed locally");
    }

    /// Calls waiting for a response (for tests and diagnostics).
    pub fn pending_calls(&self) -> usize {
        self.inner.pending_len()
    }

    /// Send a request of any method with a raw encoded header and wait for the response
    /// frame (tests of malformed requests).
    #[cfg(any(test, feature = "testing"))]
    pub async fn call_raw(
        &self,
        method: basalt_proto::Method,
        head: Vec<u8>,
        payload: Bytes,
        deadline: Instant,
    ) -> Result<crate::fastpath::RawFrame, TransportError> {
        self.inner
            .call_raw(method, GroupId::NONE, head, payload, deadline)
            .await
    }

    /// Whether this side dialled the connection.
    pub fn is_dialler(&self) -> bool {
        self.inner.side == Side::Dialler
    }
}
