//! Transport counters (prometheus-client). One [`TransportMetrics`] per process, shared by
//! its transports (cheap to clone) and registered once into the caller's registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Why a connection is (or went back) on TCP instead of the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackReason {
    /// No provider configured although the mode asked for one.
    Absent,
    /// The provider failed to reserve a slot (`listen` failed).
    Unavailable,
    /// `auto` mode and the provider says it does not beat TCP here.
    NotWorthwhile,
    /// The peer did not offer or accept a fast path.
    Declined,
    /// Creating the endpoint to the peer failed or timed out.
    Connect,
    /// The confirming ping over the fresh link did not come back in time.
    PingTimeout,
    /// The established link failed (send error, endpoint error).
    LinkFailed,
    /// The peer announced it fell back.
    PeerFellBack,
}

impl FallbackReason {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::Absent => "absent",
            FallbackReason::Unavailable => "unavailable",
            FallbackReason::NotWorthwhile => "not_worthwhile",
            FallbackReason::Declined => "declined",
            FallbackReason::Connect => "connect",
            FallbackReason::PingTimeout => "ping_timeout",
            FallbackReason::LinkFailed => "link_failed",
            FallbackReason::PeerFellBack => "peer_fell_back",
        }
    }
}

/// The transport's counters.
#[derive(Debug, Clone, Default)]
pub struct TransportMetrics {
    pub(crate) connections_dialled: Counter,
    pub(crate) connections_accepted: Counter,
    pub(crate) connections_open: Gauge,
    pub(crate) hello_refused: Counter,
    pub(crate) auth_failures: Counter,
    pub(crate) fast_path_upgrades: Counter,
    pub(crate) fallbacks: Family<Labels, Counter>,
    pub(crate) bad_frames: Counter,
    pub(crate) frames_sent: Counter,
    pub(crate) frames_received: Counter,
    pub(crate) bytes_sent: Counter,
    pub(crate) bytes_received: Counter,
    pub(crate) calls_timed_out: Counter,
    pub(crate) write_batches: Counter,
}

impl TransportMetrics {
    /// Fresh, unregistered counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register every counter under the prefix `basalt_transport`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("basalt_transport");
        r.register(
            "connections_dialled",
            "Connections dialled (hello completed)",
            self.connections_dialled.clone(),
        );
        r.register(
            "connections_accepted",
            "Connections accepted (hello completed)",
            self.connections_accepted.clone(),
        );
        r.register(
            "connections_open",
            "Connections currently open",
            self.connections_open.clone(),
        );
        r.register(
            "hello_refused",
            "Hellos refused (either side)",
            self.hello_refused.clone(),
        );
        r.register(
            "auth_failures",
            "Peers that failed cluster authentication (missing, malformed or wrong proof; either side)",
            self.auth_failures.clone(),
        );
        r.register(
            "fast_path_upgrades",
            "Connections whose outbound traffic moved to the fast path",
            self.fast_path_upgrades.clone(),
        );
        r.register(
            "fast_path_fallbacks",
            "Connections that stayed on or returned to TCP, by reason",
            self.fallbacks.clone(),
        );
        r.register(
            "bad_frames",
            "Connections closed because of a malformed frame",
            self.bad_frames.clone(),
        );
        r.register("frames_sent", "Frames sent", self.frames_sent.clone());
        r.register(
            "frames_received",
            "Frames received",
            self.frames_received.clone(),
        );
        r.register(
            "bytes_sent",
            "Bytes sent (frame headers included)",
            self.bytes_sent.clone(),
        );
        r.register(
            "bytes_received",
            "Bytes received (frame headers included)",
            self.bytes_received.clone(),
        );
        r.register(
            "tcp_write_batches",
            "Vectored socket writes (frames_sent / this = coalescing)",
            self.write_batches.clone(),
        );
        r.register(
            "calls_timed_out",
            "Calls that passed their deadline",
            self.calls_timed_out.clone(),
        );
    }

    pub(crate) fn fallback(&self, reason: FallbackReason) {
        self.fallbacks
            .get_or_create(&vec![("reason".to_string(), reason.as_str().to_string())])
            .inc();
    }

    /// Fallbacks counted for `reason` so far.
    pub fn fallbacks(&self, reason: FallbackReason) -> u64 {
        self.fallbacks
            .get_or_create(&vec![("reason".to_string(), reason.as_str().to_string())])
            .get()
    }

    /// Connections closed because of a malformed frame so far.
    pub fn bad_frames(&self) -> u64 {
        self.bad_frames.get()
    }

    /// Fast-path upgrades so far.
    pub fn fast_path_upgrades(&self) -> u64 {
        self.fast_path_upgrades.get()
    }

    /// Connections currently open.
    pub fn connections_open(&self) -> i64 {
        self.connections_open.get()
    }

    /// Hellos refused so far.
    pub fn hello_refused(&self) -> u64 {
        self.hello_refused.get()
    }

    /// Connections whose hello completed on the accepting side.
    pub fn connections_accepted(&self) -> u64 {
        self.connections_accepted.get()
    }

    /// Connections whose hello completed on the dialling side.
    pub fn connections_dialled(&self) -> u64 {
        self.connections_dialled.get()
    }

    /// Peers that failed cluster authentication so far (either side).
    pub fn auth_failures(&self) -> u64 {
        self.auth_failures.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_are_encoded() {
        let m = TransportMetrics::new();
        let mut reg = Registry::default();
        m.register(&mut reg);
        m.fallback(FallbackReason::PingTimeout);
        m.bad_frames.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains("basalt_transport_fast_path_fallbacks_total{reason=\"ping_timeout\"} 1"),
            "{out}"
        );
        assert!(out.contains("basalt_transport_bad_frames_total 1"), "{out}");
        assert_eq!(m.fallbacks(FallbackReason::PingTimeout), 1);
        assert_eq!(m.fallbacks(FallbackReason::Connect), 0);
    }
}
