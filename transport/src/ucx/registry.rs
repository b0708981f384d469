//! Inbound slots: which sink receives the frames tagged with a connection token.
//!
//! Shared by the provider (listen/unlisten on tokio threads) and the I/O threads (AM
//! callbacks look sinks up here). Failure reports are latched per slot, so a sink hears
//! `link_failed` at most once however many paths (endpoint error, close notice, send
//! timeout, shutdown) notice the same broken link.

use crate::fastpath::{FastPathError, FrameSink, RawFrame};
use basalt_proto::Limits;
use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

struct Slot {
    sink: Arc<dyn FrameSink>,
    thread: usize,
    failed: AtomicBool,
}

/// Token → sink table.
pub(crate) struct Registry {
    slots: RwLock<HashMap<u64, Arc<Slot>>>,
    /// Limits applied to inbound frame headers.
    pub(crate) limits: Limits,
    /// Counters of inbound traffic.
    pub(crate) stats: Counters,
}

/// Inbound counters, bumped by the I/O threads. Prometheus counters (shared atomics), so
/// registering them exports the live values (see `UcxProvider::register_metrics`).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) eager: Counter,
    pub(crate) rendezvous: Counter,
    pub(crate) unknown_token: Counter,
    pub(crate) malformed: Counter,
}

impl Counters {
    pub(crate) fn bump(counter: &Counter) {
        counter.inc();
    }

    /// Register the counters under `basalt_transport_ucx`.
    pub(crate) fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        let r = registry.sub_registry_with_prefix("basalt_transport_ucx");
        r.register(
            "eager_frames",
            "Inbound UCX frames whose data arrived inline (eager protocol)",
            self.eager.clone(),
        );
        r.register(
            "rendezvous_frames",
            "Inbound UCX frames whose data was fetched with the rendezvous protocol",
            self.rendezvous.clone(),
        );
        r.register(
            "unknown_token_frames",
            "Inbound UCX frames dropped because no connection had their token",
            self.unknown_token.clone(),
        );
        r.register(
            "malformed_messages",
            "Inbound UCX messages refused as malformed",
            self.malformed.clone(),
        );
    }
}

/// A snapshot of a provider's inbound counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UcxStats {
    /// Frames whose data arrived inline (eager protocol).
    pub eager_frames: u64,
    /// Frames whose data was fetched with the rendezvous protocol.
    pub rendezvous_frames: u64,
    /// Frames dropped because no slot had their token.
    pub unknown_token: u64,
    /// Messages refused as malformed.
    pub malformed: u64,
}

impl Registry {
    pub(crate) fn new(limits: Limits) -> Self {
        Registry {
            slots: RwLock::new(HashMap::new()),
            limits,
            stats: Counters::default(),
        }
    }

    pub(crate) fn snapshot(&self) -> UcxStats {
        let get = |c: &Counter| c.get();
        UcxStats {
            eager_frames: get(&self.stats.eager),
            rendezvous_frames: get(&self.stats.rendezvous),
            unknown_token: get(&self.stats.unknown_token),
            malformed: get(&self.stats.malformed),
        }
    }

    pub(crate) fn insert(&self, token: u64, sink: Arc<dyn FrameSink>, thread: usize) {
        self.slots.write().insert(
            token,
            Arc::new(Slot {
                sink,
                thread,
                failed: AtomicBool::new(false),
            }),
        );
    }

    pub(crate) fn remove(&self, token: u64) {
        self.slots.write().remove(&token);
    }

    fn slot(&self, token: u64) -> Option<Arc<Slot>> {
        self.slots.read().get(&token).cloned()
    }

    pub(crate) fn contains(&self, token: u64) -> bool {
        self.slots.read().contains_key(&token)
    }

    /// The I/O thread whose worker address the slot was offered with.
    pub(crate) fn thread_of(&self, token: u64) -> Option<usize> {
        self.slot(token).map(|s| s.thread)
    }

    /// Hand a frame to the slot's sink (dropped if the slot is gone or has failed).
    pub(crate) fn deliver(&self, token: u64, frame: RawFrame) -> bool {
        match self.slot(token) {
            Some(slot) if !slot.failed.load(Ordering::Acquire) => {
                slot.sink.deliver(frame);
                true
            }
            _ => false,
        }
    }

    /// Report a link failure to the slot's sink, once.
    pub(crate) fn fail(&self, token: u64, error: FastPathError) {
        if let Some(slot) = self.slot(token) {
            if !slot.failed.swap(true, Ordering::AcqRel) {
                tracing::debug!(token, %error, "UCX link failed");
                slot.sink.link_failed(error);
            }
        }
    }
}
