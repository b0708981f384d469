//! The fast path of a connection: upgrade (connect, confirming ping), fallback, and the
//! sink receiving the peer's link frames.

use super::{make_frame, ConnInner, PendingGuard};
use crate::error::TransportError;
use crate::fastpath::{FastPathError, FastPathLink, FastPathProvider, FrameSink, RawFrame};
use crate::metrics::FallbackReason;
use crate::path::PathKind;
use basalt_proto::codec;
use basalt_proto::hello::{Ping, Pong, UcxFallback, UcxOffer};
use basalt_proto::ids::GroupId;
use basalt_proto::{FrameFlags, FrameKind, Method};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// No fast path on this connection.
    None,
    /// Connecting and confirming; `link` holds the candidate.
    Upgrading,
    /// Outbound frames go over `link`.
    Active,
    /// Fell back; stays on the base channel for the connection's life.
    Down,
}

pub(super) struct FastState {
    pub(super) phase: Phase,
    pub(super) name: &'static str,
    pub(super) link: Option<Arc<dyn FastPathLink>>,
}

/// The fast-path pieces a handshake set up for a connection.
pub(crate) struct FastSetup {
    pub provider: Arc<dyn FastPathProvider>,
    pub token: u64,
    pub sink: Arc<LinkSink>,
    /// The peer's offer; `None` when it declined (the slot is kept only until built).
    pub remote: Option<UcxOffer>,
}

impl ConnInner {
    /// Connect the fast path to the peer's offer and confirm it with a ping. On success
    /// outbound frames move to the link; on failure the connection stays on TCP.
    pub(crate) async fn upgrade(self: Arc<Self>) {
        let slot = self.fast_slot.lock().clone();
        let Some((provider, token)) = slot else {
            return;
        };
        let remote = {
            // under the phase lock, so a concurrent fallback sees either "not started"
            // (and cancels it) or "upgrading"
            let mut f = self.fast.lock();
            if f.phase != Phase::None {
                return;
            }
            let Some(remote) = self.fast_remote.lock().take() else {
                return;
            };
            f.phase = Phase::Upgrading;
            remote
        };
        let cfg = &self.ep.opts.config;
        let link = match tokio::time::timeout(
            cfg.fast_path_connect_timeout(),
            provider.connect(token, &remote),
        )
        .await
        {
            Ok(Ok(link)) => link,
            Ok(Err(e)) => {
                self.fallback(FallbackReason::Connect, &e.to_string(), true);
                return;
            }
            Err(_) => {
                self.fallback(FallbackReason::Connect, "connect timed out", true);
                return;
            }
        };
        {
            let mut f = self.fast.lock();
            if f.phase != Phase::Upgrading {
                drop(f);
                link.close();
                return;
            }
            f.link = Some(link.clone());
        }
        let nonce = self.id.rotate_left(32) ^ u64::from(std::process::id());
        let confirmed = self.ping_over(&link, nonce).await;
        match confirmed {
            Ok(()) => {
                let mut f = self.fast.lock();
                if f.phase == Phase::Upgrading {
                    f.phase = Phase::Active;
                    drop(f);
                    self.ep.opts.metrics.fast_path_upgrades.inc();
                    tracing::debug!(
                        conn = self.id,
                        peer = %self.peer_addr,
                        path = provider.name(),
                        "connection moved to the fast path"
                    );
                }
            }
            Err((reason, detail)) => self.fallback(reason, &detail, true),
        }
    }

    /// Wait (bounded by the ping timeout) until the peer has processed everything this
    /// side sent over the link so far: a ping behind it must come back. Used before a
    /// graceful close, so replies in flight on the link are not overtaken by the TCP close.
    pub(crate) async fn fast_path_barrier(self: &Arc<Self>) {
        let link = {
            let f = self.fast.lock();
            (f.phase == Phase::Active).then(|| f.link.clone()).flatten()
        };
        if let Some(link) = link {
            let nonce = self.id ^ 0x5bd1_e995_u64.rotate_left(17);
            if let Err((reason, detail)) = self.ping_over(&link, nonce).await {
                tracing::debug!(
                    conn = self.id,
                    reason = reason.as_str(),
                    detail,
                    "fast-path barrier before close failed"
                );
            }
        }
    }

    async fn ping_over(
        self: &Arc<Self>,
        link: &Arc<dyn FastPathLink>,
        nonce: u64,
    ) -> Result<(), (FallbackReason, String)> {
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let head =
            codec::encode(&Ping { nonce }).map_err(|e| (FallbackReason::Connect, e.to_string()))?;
        let frame = make_frame(
            self.ep.version(),
            FrameKind::Request,
            Method::Ping as u16,
            corr,
            GroupId::NONE,
            FrameFlags::empty(),
            head.into(),
            Bytes::new(),
        )
        .map_err(|e| (FallbackReason::Connect, e.to_string()))?;
        let rx = self
            .register(corr)
            .map_err(|e| (FallbackReason::LinkFailed, e.to_string()))?;
        let _guard = PendingGuard { inner: self, corr };
        let timeout = self.ep.opts.config.fast_path_ping_timeout();
        let exchange = async {
            link.send(frame)
                .await
                .map_err(|e| (FallbackReason::LinkFailed, e.to_string()))?;
            match rx.await {
                Ok(Ok(f)) => Ok(f),
                Ok(Err(e)) => Err((FallbackReason::LinkFailed, e.to_string())),
                Err(_) => Err((FallbackReason::LinkFailed, "connection dropped".into())),
            }
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| {
                (
                    FallbackReason::PingTimeout,
                    format!("no pong within {} ms", timeout.as_millis()),
                )
            })??;
        match codec::decode::<Pong>(&reply.head) {
            Ok(p) if p.nonce == nonce && !reply.header.flags.contains(FrameFlags::ERROR) => Ok(()),
            _ => Err((FallbackReason::PingTimeout, "bad pong".into())),
        }
    }

    /// Leave the fast path for good on this connection. Calls pending while it carried
    /// traffic fail with `PathLost` (retryable); new calls go over TCP.
    pub(crate) fn fallback(
        self: &Arc<Self>,
        reason: FallbackReason,
        detail: &str,
        notify_peer: bool,
    ) {
        let (link, was_active) = {
            let mut f = self.fast.lock();
            // Phase::None with the peer's offer still unused: the upgrade has not started
            // yet (acceptor), and must not start now
            let pending_upgrade = f.phase == Phase::None && self.fast_remote.lock().is_some();
            if !(pending_upgrade || matches!(f.phase, Phase::Upgrading | Phase::Active)) {
                return;
            }
            let was_active = f.phase == Phase::Active;
            f.phase = Phase::Down;
            (f.link.take(), was_active)
        };
        if let Some(link) = link {
            link.close();
        }
        self.ep.opts.metrics.fallback(reason);
        tracing::warn!(
            conn = self.id,
            peer = %self.peer_addr,
            reason = reason.as_str(),
            detail,
            "fast path abandoned, connection stays on TCP"
        );
        if was_active {
            let waiters = std::mem::take(&mut self.pending.lock().map);
            for (_, w) in waiters {
                let _ = w.send(Err(TransportError::PathLost {
                    reason: detail.to_string(),
                }));
            }
        }
        if notify_peer && !self.is_closed() {
            let inner = self.clone();
            let detail = detail.to_string();
            self.rt.spawn(async move {
                let Ok(head) = codec::encode(&UcxFallback { reason: detail }) else {
                    return;
                };
                if let Ok(frame) = make_frame(
                    inner.ep.version(),
                    FrameKind::OneWay,
                    Method::UcxFallback as u16,
                    0,
                    GroupId::NONE,
                    FrameFlags::empty(),
                    head.into(),
                    Bytes::new(),
                ) {
                    let _ = inner.send_base(frame).await;
                }
            });
        }
    }

    fn link_failed(self: &Arc<Self>, error: FastPathError) {
        self.fallback(FallbackReason::LinkFailed, &error.to_string(), true);
    }
}

/// Receives a connection's inbound fast-path frames; buffers what arrives before the
/// connection exists (the peer may ping before our side finished its hello).
pub(crate) struct LinkSink {
    state: Mutex<SinkState>,
}

enum SinkState {
    Early {
        frames: Vec<RawFrame>,
        failed: Option<FastPathError>,
    },
    Bound(Weak<ConnInner>),
}

/// Frames buffered before the connection is bound; beyond this they are dropped.
const EARLY_FRAMES: usize = 256;

impl LinkSink {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(LinkSink {
            state: Mutex::new(SinkState::Early {
                frames: Vec::new(),
                failed: None,
            }),
        })
    }

    pub(super) fn bind(&self, conn: &Arc<ConnInner>) {
        let early = std::mem::replace(
            &mut *self.state.lock(),
            SinkState::Bound(Arc::downgrade(conn)),
        );
        let path = PathKind::FastPath(conn.fast.lock().name);
        if let SinkState::Early { frames, failed } = early {
            for f in frames {
                conn.on_inbound_nonblocking(f, path);
            }
            if let Some(e) = failed {
                conn.link_failed(e);
            }
        }
    }

    fn conn(&self) -> Option<Arc<ConnInner>> {
        match &*self.state.lock() {
            SinkState::Bound(w) => w.upgrade(),
            SinkState::Early { .. } => None,
        }
    }
}

impl FrameSink for LinkSink {
    fn deliver(&self, frame: RawFrame) {
        if let Some(conn) = self.conn() {
            let path = PathKind::FastPath(conn.fast.lock().name);
            conn.on_inbound_nonblocking(frame, path);
            return;
        }
        let mut st = self.state.lock();
        if let SinkState::Early { frames, .. } = &mut *st {
            if frames.len() < EARLY_FRAMES {
                frames.push(frame);
            } else {
                tracing::warn!("fast-path frame before hello completion dropped");
            }
        }
    }

    fn link_failed(&self, error: FastPathError) {
        if let Some(conn) = self.conn() {
            conn.link_failed(error);
            return;
        }
        if let SinkState::Early { failed, .. } = &mut *self.state.lock() {
            *failed = Some(error);
        }
    }
}
