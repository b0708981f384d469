//! A connection's core: correlation table, send path (base channel or fast-path link),
//! inbound dispatch, close. Shared by the TCP and in-memory transports, which only provide
//! the base channel and its reader. The fast path lives in [`fast`], the public handle in
//! [`handle`].

mod endpoint;
mod fast;
mod handle;

pub(crate) use endpoint::{make_frame, wire_len, Endpoint};
pub(crate) use fast::{FastSetup, LinkSink};
use fast::{FastState, Phase};
pub use handle::{CallOptions, Connection};

use crate::error::TransportError;
use crate::fastpath::{FastPathProvider, RawFrame};
use crate::mem::MemTx;
use crate::metrics::FallbackReason;
use crate::path::PathKind;
use crate::router::{HandlerResult, RequestContext, Route, Router};
use crate::server::ServerShared;
use basalt_proto::codec;
use basalt_proto::hello::{Features, Identity, Ping, Pong, UcxFallback, UcxOffer};
use basalt_proto::ids::GroupId;
use basalt_proto::method::RemoteError;
use basalt_proto::{FrameFlags, FrameHeader, FrameKind, Method};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The channel every connection starts on and falls back to.
#[derive(Clone)]
pub(crate) enum BaseTx {
    /// Frames for the socket writer task.
    Tcp(mpsc::Sender<RawFrame>),
    /// Frames for the in-memory peer, through the network's fault filter.
    Mem(MemTx),
}

impl BaseTx {
    async fn send(&self, frame: RawFrame) -> Result<(), ()> {
        match self {
            BaseTx::Tcp(tx) => tx.send(frame).await.map_err(|_| ()),
            BaseTx::Mem(tx) => tx.send(frame).await,
        }
    }
}

type Waiter = oneshot::Sender<Result<RawFrame, TransportError>>;

struct PendingTable {
    map: HashMap<u64, Waiter>,
    closed: Option<TransportError>,
}

/// Which side of the hello a connection was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Dialler,
    Acceptor,
}

pub(crate) struct ConnParts {
    pub ep: Arc<Endpoint>,
    pub side: Side,
    pub base_kind: PathKind,
    pub base: BaseTx,
    pub peer: Identity,
    pub peer_addr: String,
    pub features: Features,
    pub router: Option<Arc<Router>>,
    pub server: Option<Arc<ServerShared>>,
    pub fast: Option<FastSetup>,
}

pub(crate) struct ConnInner {
    pub(crate) id: u64,
    ep: Arc<Endpoint>,
    side: Side,
    base_kind: PathKind,
    pub(crate) peer: Arc<Identity>,
    pub(crate) peer_addr: Arc<str>,
    features: Features,
    router: Option<Arc<Router>>,
    server: Option<Arc<ServerShared>>,
    next_corr: AtomicU64,
    pending: Mutex<PendingTable>,
    base: Mutex<Option<BaseTx>>,
    fast: Mutex<FastState>,
    fast_slot: Mutex<Option<(Arc<dyn FastPathProvider>, u64)>>,
    fast_remote: Mutex<Option<UcxOffer>>,
    inflight: Arc<Semaphore>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The runtime the connection was made on: fast-path providers call the sink from
    /// their own threads, outside any runtime.
    rt: tokio::runtime::Handle,
    closed_tx: watch::Sender<bool>,
    /// When the connection started; `last_inbound_ms` counts from here.
    created: tokio::time::Instant,
    /// Milliseconds after `created` when the last whole frame arrived (any path).
    last_inbound_ms: AtomicU64,
}

/// How long a graceful close lets the writer flush queued frames.
const FLUSH_ON_CLOSE: std::time::Duration = std::time::Duration::from_secs(2);

impl ConnInner {
    pub(crate) fn new(parts: ConnParts) -> Arc<Self> {
        let ConnParts {
            ep,
            side,
            base_kind,
            base,
            peer,
            peer_addr,
            features,
            router,
            server,
            fast,
        } = parts;
        let (name, slot, remote, sink) = match fast {
            Some(f) => (
                f.provider.name(),
                Some((f.provider, f.token)),
                f.remote,
                Some(f.sink),
            ),
            None => ("", None, None, None),
        };
        let inflight = Arc::new(Semaphore::new(ep.opts.config.max_inflight_requests));
        ep.opts.metrics.connections_open.inc();
        let inner = Arc::new(ConnInner {
            id: ep.next_conn_id(),
            ep,
            side,
            base_kind,
            peer: Arc::new(peer),
            peer_addr: peer_addr.into(),
            features,
            router,
            server,
            next_corr: AtomicU64::new(1),
            pending: Mutex::new(PendingTable {
                map: HashMap::new(),
                closed: None,
            }),
            base: Mutex::new(Some(base)),
            fast: Mutex::new(FastState {
                phase: Phase::None,
                name,
                link: None,
            }),
            fast_slot: Mutex::new(slot),
            fast_remote: Mutex::new(remote),
            inflight,
            tasks: Mutex::new(Vec::new()),
            writer: Mutex::new(None),
            rt: tokio::runtime::Handle::current(),
            closed_tx: watch::channel(false).0,
            created: tokio::time::Instant::now(),
            last_inbound_ms: AtomicU64::new(0),
        });
        if let Some(sink) = sink {
            sink.bind(&inner);
        }
        if let Some(server) = &inner.server {
            if !server.register(&inner) {
                inner.close("server shut down");
            }
        }
        inner
    }

    /// How long nothing has arrived while nothing was outstanding: `None` while calls of
    /// ours are pending or requests of the peer are being handled (then the peer owes us
    /// nothing, or we owe it the answer).
    fn idle_for(&self) -> Option<std::time::Duration> {
        let max = self.ep.opts.config.max_inflight_requests;
        if self.pending_len() > 0 || self.inflight.available_permits() < max {
            return None;
        }
        let last = std::time::Duration::from_millis(self.last_inbound_ms.load(Ordering::Relaxed));
        Some(self.created.elapsed().saturating_sub(last))
    }

    /// Close the connection once it has been idle (see [`Self::idle_for`]) for `idle`:
    /// a peer that went silent, or stalled in the middle of a frame, does not hold the
    /// connection forever. Checks four times per period.
    pub(crate) async fn idle_watchdog(self: Arc<Self>, idle: std::time::Duration) {
        let tick = (idle / 4).max(std::time::Duration::from_millis(5));
        loop {
            tokio::time::sleep(tick).await;
            if self.is_closed() {
                return;
            }
            if self.idle_for().is_some_and(|d| d >= idle) {
                tracing::debug!(
                    conn = self.id,
                    peer = %self.peer_addr,
                    idle_ms = idle.as_millis() as u64,
                    "closing idle connection"
                );
                self.close("idle timeout");
                return;
            }
        }
    }

    /// Keep a background task of this connection; aborted on close.
    pub(crate) fn add_task(&self, task: JoinHandle<()>) {
        if self.is_closed() {
            task.abort();
            return;
        }
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    pub(crate) fn metrics(&self) -> &crate::metrics::TransportMetrics {
        &self.ep.opts.metrics
    }

    /// The socket writer task: on a graceful close it may finish what is queued.
    pub(crate) fn set_writer(&self, task: JoinHandle<()>) {
        if self.is_closed() {
            task.abort();
            return;
        }
        *self.writer.lock() = Some(task);
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closed_tx.borrow()
    }

    fn closed_error(&self) -> TransportError {
        self.pending
            .lock()
            .closed
            .clone()
            .unwrap_or_else(|| TransportError::peer_gone("connection closed"))
    }

    /// Close the connection: every pending call fails with `PeerGone(reason)`.
    pub(crate) fn close(&self, reason: &str) {
        self.close_inner(reason, false);
    }

    /// Close after the frames already queued (replies of finished requests) are written,
    /// for a bounded time.
    pub(crate) fn close_flushing(&self, reason: &str) {
        self.close_inner(reason, true);
    }

    fn close_inner(&self, reason: &str, flush: bool) {
        let waiters = {
            let mut p = self.pending.lock();
            if p.closed.is_some() {
                return;
            }
            p.closed = Some(TransportError::peer_gone(reason));
            std::mem::take(&mut p.map)
        };
        for (_, w) in waiters {
            let _ = w.send(Err(TransportError::peer_gone(reason)));
        }
        self.closed_tx.send_replace(true);
        self.base.lock().take();
        let link = {
            let mut f = self.fast.lock();
            f.phase = Phase::Down;
            f.link.take()
        };
        if let Some(link) = link {
            link.close();
        }
        if let Some((provider, token)) = self.fast_slot.lock().take() {
            provider.unlisten(token);
        }
        if let Some(server) = &self.server {
            server.unregister(self.id);
        }
        self.ep.opts.metrics.connections_open.dec();
        tracing::debug!(conn = self.id, peer = %self.peer_addr, reason, "connection closed");
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            t.abort();
        }
        // the writer ends by itself once the queue drains (its sender is gone)
        if let Some(mut writer) = self.writer.lock().take() {
            if flush {
                self.rt.spawn(async move {
                    if tokio::time::timeout(FLUSH_ON_CLOSE, &mut writer)
                        .await
                        .is_err()
                    {
                        writer.abort();
                    }
                });
            } else {
                writer.abort();
            }
        }
    }

    pub(crate) fn path(&self) -> PathKind {
        let f = self.fast.lock();
        if f.phase == Phase::Active {
            PathKind::FastPath(f.name)
        } else {
            self.base_kind
        }
    }

    fn context(&self, via: PathKind) -> RequestContext {
        RequestContext {
            peer: self.peer.clone(),
            peer_addr: self.peer_addr.clone(),
            path: via,
            conn_id: self.id,
        }
    }

    // ---------------------------------------------------------------- sending

    /// Send a frame on the current path. A failed link send falls back to the base
    /// channel: requests then fail with `PathLost` (the caller decides about retrying;
    /// the request may have reached the peer), responses and one-way messages are re-sent.
    async fn send_frame(self: &Arc<Self>, frame: RawFrame) -> Result<(), TransportError> {
        let len = wire_len(&frame);
        let link = {
            let f = self.fast.lock();
            (f.phase == Phase::Active).then(|| f.link.clone()).flatten()
        };
        if let Some(link) = link {
            let is_request = frame.header.kind == FrameKind::Request;
            match link.send(frame.clone()).await {
                Ok(()) => {
                    self.count_sent(len);
                    return Ok(());
                }
                Err(e) => {
                    self.fallback(FallbackReason::LinkFailed, &e.to_string(), true);
                    if is_request {
                        return Err(TransportError::PathLost {
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        self.send_base(frame).await?;
        self.count_sent(len);
        Ok(())
    }

    async fn send_base(&self, frame: RawFrame) -> Result<(), TransportError> {
        let base = self.base.lock().clone();
        let Some(base) = base else {
            return Err(self.closed_error());
        };
        base.send(frame).await.map_err(|()| self.closed_error())
    }

    fn count_sent(&self, len: u64) {
        let m = &self.ep.opts.metrics;
        m.frames_sent.inc();
        m.bytes_sent.inc_by(len);
    }

    /// Send a request and wait for its response frame until `deadline`.
    pub(crate) async fn call_raw(
        self: &Arc<Self>,
        method: Method,
        group: GroupId,
        head: Vec<u8>,
        payload: Bytes,
        deadline: Instant,
    ) -> Result<RawFrame, TransportError> {
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let frame = make_frame(
            self.ep.version(),
            FrameKind::Request,
            method as u16,
            corr,
            group,
            FrameFlags::empty(),
            head.into(),
            payload,
        )?;
        let rx = self.register(corr)?;
        let _guard = PendingGuard { inner: self, corr };
        let start = Instant::now();
        let exchange = async {
            self.send_frame(frame).await?;
            rx.await
                .unwrap_or_else(|_| Err(TransportError::peer_gone("connection dropped")))
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(r) => r,
            Err(_) => {
                self.ep.opts.metrics.calls_timed_out.inc();
                Err(TransportError::Timeout {
                    elapsed_ms: start.elapsed().as_millis() as u64,
                })
            }
        }
    }

    fn register(
        &self,
        corr: u64,
    ) -> Result<oneshot::Receiver<Result<RawFrame, TransportError>>, TransportError> {
        let (tx, rx) = oneshot::channel();
        let mut p = self.pending.lock();
        if let Some(e) = &p.closed {
            return Err(e.clone());
        }
        p.map.insert(corr, tx);
        Ok(rx)
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.pending.lock().map.len()
    }

    pub(crate) async fn send_oneway_raw(
        self: &Arc<Self>,
        method: Method,
        group: GroupId,
        head: Vec<u8>,
        payload: Bytes,
    ) -> Result<(), TransportError> {
        let frame = make_frame(
            self.ep.version(),
            FrameKind::OneWay,
            method as u16,
            0,
            group,
            FrameFlags::empty(),
            head.into(),
            payload,
        )?;
        self.send_frame(frame).await
    }

    // ---------------------------------------------------------------- receiving

    /// Checks common to every inbound frame. False when the connection was closed.
    fn admit(&self, frame: &RawFrame) -> bool {
        let m = &self.ep.opts.metrics;
        self.last_inbound_ms
            .store(self.created.elapsed().as_millis() as u64, Ordering::Relaxed);
        m.frames_received.inc();
        m.bytes_received.inc_by(wire_len(frame));
        if frame.header.version != self.ep.version() {
            tracing::warn!(
                conn = self.id,
                peer = %self.peer_addr,
                version = frame.header.version,
                "closing connection: frame of another protocol version"
            );
            m.bad_frames.inc();
            self.close("frame of another protocol version");
            return false;
        }
        true
    }

    /// An inbound frame from a reader task: waits for a request slot (back-pressure on the
    /// peer) before dispatching a request.
    pub(crate) async fn on_inbound(self: &Arc<Self>, frame: RawFrame, via: PathKind) {
        if !self.admit(&frame) {
            return;
        }
        match frame.header.kind {
            FrameKind::Response => self.complete(frame),
            FrameKind::Request | FrameKind::OneWay => {
                if self.handle_internal(&frame, via) {
                    return;
                }
                let Ok(permit) = self.inflight.clone().acquire_owned().await else {
                    return;
                };
                self.spawn_dispatch(frame, via, Some(permit));
            }
        }
    }

    /// An inbound frame from a fast-path link (must not block).
    pub(crate) fn on_inbound_nonblocking(self: &Arc<Self>, frame: RawFrame, via: PathKind) {
        if !self.admit(&frame) {
            return;
        }
        match frame.header.kind {
            FrameKind::Response => self.complete(frame),
            FrameKind::Request | FrameKind::OneWay => {
                if self.handle_internal(&frame, via) {
                    return;
                }
                let permit = self.inflight.clone().try_acquire_owned().ok();
                self.spawn_dispatch(frame, via, permit);
            }
        }
    }

    fn complete(&self, frame: RawFrame) {
        let waiter = self.pending.lock().map.remove(&frame.header.correlation_id);
        match waiter {
            Some(w) => {
                let _ = w.send(Ok(frame));
            }
            None => tracing::trace!(
                conn = self.id,
                corr = frame.header.correlation_id,
                "late or unknown response discarded"
            ),
        }
    }

    /// Transport-level methods answered whatever the router holds. True when handled.
    fn handle_internal(self: &Arc<Self>, frame: &RawFrame, via: PathKind) -> bool {
        match (Method::from_u16(frame.header.method), frame.header.kind) {
            (Some(Method::Ping), FrameKind::Request) => {
                let inner = self.clone();
                let h = frame.header;
                let result = codec::decode::<Ping>(&frame.head)
                    .map_err(|e| RemoteError::BadRequest {
                        method: h.method,
                        reason: e.to_string(),
                    })
                    .and_then(|p| {
                        codec::encode(&Pong { nonce: p.nonce })
                            .map(|head| (head, Bytes::new()))
                            .map_err(|e| RemoteError::Internal {
                                reason: e.to_string(),
                            })
                    });
                self.rt.spawn(async move { inner.respond(h, result).await });
                true
            }
            (Some(Method::UcxFallback), FrameKind::OneWay) => {
                let reason = codec::decode::<UcxFallback>(&frame.head)
                    .map(|f| f.reason)
                    .unwrap_or_else(|e| format!("undecodable notice: {e}"));
                tracing::debug!(conn = self.id, via = %via, "peer left the fast path");
                self.fallback(FallbackReason::PeerFellBack, &reason, false);
                true
            }
            _ => false,
        }
    }

    fn spawn_dispatch(
        self: &Arc<Self>,
        frame: RawFrame,
        via: PathKind,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        let inner = self.clone();
        let active = self.server.as_ref().map(|s| s.begin_request());
        self.rt.spawn(async move {
            let _active = active;
            let _permit = match permit {
                Some(p) => Some(p),
                None => inner.inflight.clone().acquire_owned().await.ok(),
            };
            let h = frame.header;
            let route = inner.router.as_ref().and_then(|r| r.get(h.method)).cloned();
            let draining = inner.server.as_ref().is_some_and(|s| s.is_draining());
            let cx = inner.context(via);
            match h.kind {
                FrameKind::Request => {
                    let result = match route {
                        _ if draining => Err(RemoteError::ShuttingDown),
                        Some(Route::Rpc(f)) => f(frame.head, frame.payload, h.group, cx).await,
                        _ => Err(RemoteError::NoHandler { method: h.method }),
                    };
                    inner.respond(h, result).await;
                }
                _ => match route {
                    Some(Route::OneWay(f)) if !draining => {
                        f(frame.head, frame.payload, h.group, cx).await
                    }
                    _ => tracing::debug!(
                        conn = inner.id,
                        method = h.method,
                        "one-way message without handler dropped"
                    ),
                },
            }
        });
    }

    async fn respond(self: &Arc<Self>, req: FrameHeader, result: HandlerResult) {
        let (flags, head, payload) = match result {
            Ok((head, payload)) => (FrameFlags::empty(), head, payload),
            Err(e) => (
                FrameFlags::ERROR,
                codec::encode(&e).unwrap_or_default(),
                Bytes::new(),
            ),
        };
        let frame = match make_frame(
            self.ep.version(),
            FrameKind::Response,
            req.method,
            req.correlation_id,
            req.group,
            flags,
            head.into(),
            payload,
        ) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(conn = self.id, error = %e, "reply does not fit a frame");
                let head = codec::encode(&RemoteError::Internal {
                    reason: e.to_string(),
                })
                .unwrap_or_default();
                match make_frame(
                    self.ep.version(),
                    FrameKind::Response,
                    req.method,
                    req.correlation_id,
                    req.group,
                    FrameFlags::ERROR,
                    head.into(),
                    Bytes::new(),
                ) {
                    Ok(f) => f,
                    Err(_) => return,
                }
            }
        };
        if let Err(e) = self.send_frame(frame).await {
            tracing::debug!(conn = self.id, error = %e, "reply not sent");
        }
    }
}

struct PendingGuard<'a> {
    inner: &'a ConnInner,
    corr: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.pending.lock().map.remove(&self.corr);
    }
}
