//! Prometheus metrics of the MDS (prometheus-client), served on `metrics-listen` by
//! `basalt_transport::metrics_http`. Standbys serve them too (with `basalt_mds_leader 0`).
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `basalt_mds_leader` | gauge | 1 while this MDS is the active one |
//! | `basalt_mds_chunkserver_heartbeat_lag_seconds` | gauge | `chunkserver` |
//! | `basalt_mds_chunkservers` | gauge | `state` = online, unstable, offline |
//! | `basalt_mds_copysets` | gauge | `health` = healthy, degraded, leaderless |
//! | `basalt_mds_operators_pending` | gauge | |
//! | `basalt_mds_operators_total` | counter | `event` = issued, completed, timed_out |
//! | `basalt_mds_rpc_requests_total` | counter | `method` |
//! | `basalt_mds_copyset_creates_total` | counter | `result` = ok, failed |
//!
//! Gauges about the cluster are refreshed by the active MDS every tick
//! ([`MdsMetrics::observe`]); a standby's stay empty.

use basalt_proto::mds::{ChunkServerState, CopysetHealth};
use basalt_proto::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

// Label-value enums below are written in lower case because the derive encodes the
// variant name as the label value (`state="online"`), hence `non_camel_case_types`.

/// Label: a chunkserver id (`cs7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ChunkServerLabel {
    /// The chunkserver.
    pub chunkserver: String,
}

/// Chunkserver liveness as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StateValue {
    /// Heartbeats arrive.
    online,
    /// Missed heartbeats for a while.
    unstable,
    /// Gone.
    offline,
}

impl From<ChunkServerState> for StateValue {
    fn from(s: ChunkServerState) -> Self {
        match s {
            ChunkServerState::Online => StateValue::online,
            ChunkServerState::Unstable => StateValue::unstable,
            ChunkServerState::Offline => StateValue::offline,
        }
    }
}

/// Label: chunkserver state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StateLabel {
    /// The state.
    pub state: StateValue,
}

/// Copyset health as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum HealthValue {
    /// Every peer online, leader known.
    healthy,
    /// A peer not online.
    degraded,
    /// No online leader known.
    leaderless,
}

impl From<CopysetHealth> for HealthValue {
    fn from(h: CopysetHealth) -> Self {
        match h {
            CopysetHealth::Healthy => HealthValue::healthy,
            CopysetHealth::Degraded => HealthValue::degraded,
            CopysetHealth::Leaderless => HealthValue::leaderless,
        }
    }
}

/// Label: copyset health.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HealthLabel {
    /// The health.
    pub health: HealthValue,
}

/// What happened to an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum OperatorEvent {
    /// Issued (by the scheduler or an admin request).
    issued,
    /// Seen done in a heartbeat.
    completed,
    /// Dropped after its timeout.
    timed_out,
}

/// Label: operator event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EventLabel {
    /// The event.
    pub event: OperatorEvent,
}

/// Label: RPC method name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MethodLabel {
    /// `Method::name()`.
    pub method: &'static str,
}

/// Outcome of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CallResult {
    /// Accepted.
    ok,
    /// Failed (transport error, timeout or refusal).
    failed,
}

/// Label: call outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabel {
    /// The outcome.
    pub result: CallResult,
}

/// A snapshot of the cluster for the gauges (see `MdsState::observe`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Per chunkserver: time since its last heartbeat, ms.
    pub heartbeat_lag_ms: Vec<(basalt_proto::ids::ChunkServerId, u64)>,
    /// Chunkservers by state.
    pub chunkservers: Vec<(ChunkServerState, u64)>,
    /// Copysets by health.
    pub copysets: Vec<(CopysetHealth, u64)>,
    /// Operators in flight.
    pub operators_pending: u64,
}

/// Every MDS metric; cheap to clone (the metrics are shared handles).
#[derive(Debug, Clone, Default)]
pub struct MdsMetrics {
    /// 1 while active.
    pub leader: Gauge,
    /// Seconds since each chunkserver's last heartbeat.
    pub heartbeat_lag: Family<ChunkServerLabel, Gauge<f64, AtomicU64>>,
    /// Chunkservers by state.
    pub chunkservers: Family<StateLabel, Gauge>,
    /// Copysets by health.
    pub copysets: Family<HealthLabel, Gauge>,
    /// Operators in flight.
    pub operators_pending: Gauge,
    /// Operators issued / completed / timed out.
    pub operators: Family<EventLabel, Counter>,
    /// RPC requests received, by method (standbys count too).
    pub rpcs: Family<MethodLabel, Counter>,
    /// `CreateCopyset` calls to chunkservers by outcome.
    pub copyset_creates: Family<ResultLabel, Counter>,
}

impl MdsMetrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register every metric in `registry` (prefix `basalt_mds_`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("basalt_mds");
        r.register(
            "leader",
            "1 while this MDS is the active one",
            self.leader.clone(),
        );
        r.register(
            "chunkserver_heartbeat_lag_seconds",
            "Time since the chunkserver's last heartbeat",
            self.heartbeat_lag.clone(),
        );
        r.register(
            "chunkservers",
            "Chunkservers by liveness state",
            self.chunkservers.clone(),
        );
        r.register("copysets", "Copysets by health", self.copysets.clone());
        r.register(
            "operators_pending",
            "Operators in flight",
            self.operators_pending.clone(),
        );
        r.register(
            "operators",
            "Operators issued, completed and timed out",
            self.operators.clone(),
        );
        r.register(
            "rpc_requests",
            "RPC requests received by method",
            self.rpcs.clone(),
        );
        r.register(
            "copyset_creates",
            "CreateCopyset calls to chunkservers by outcome",
            self.copyset_creates.clone(),
        );
    }

    /// Count an RPC request.
    pub fn rpc(&self, method: Method) {
        self.rpcs
            .get_or_create(&MethodLabel {
                method: method.name(),
            })
            .inc();
    }

    /// Count operator events.
    pub fn operators(&self, event: OperatorEvent, n: usize) {
        if n > 0 {
            self.operators
                .get_or_create(&EventLabel { event })
                .inc_by(n as u64);
        }
    }

    /// Count a `CreateCopyset` call.
    pub fn copyset_create(&self, ok: bool) {
        let result = if ok {
            CallResult::ok
        } else {
            CallResult::failed
        };
        self.copyset_creates
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Count of `CreateCopyset` calls with this outcome.
    pub fn copyset_creates(&self, ok: bool) -> u64 {
        let result = if ok {
            CallResult::ok
        } else {
            CallResult::failed
        };
        self.copyset_creates
            .get_or_create(&ResultLabel { result })
            .get()
    }

    /// Refresh the cluster gauges from an observation.
    pub fn observe(&self, o: &Observation) {
        self.heartbeat_lag.clear();
        for (cs, lag) in &o.heartbeat_lag_ms {
            self.heartbeat_lag
                .get_or_create(&ChunkServerLabel {
                    chunkserver: cs.to_string(),
                })
                .set(*lag as f64 / 1000.0);
        }
        for s in [
            ChunkServerState::Online,
            ChunkServerState::Unstable,
            ChunkServerState::Offline,
        ] {
            let n = o
                .chunkservers
                .iter()
                .find(|(x, _)| *x == s)
                .map_or(0, |(_, n)| *n);
            self.chunkservers
                .get_or_create(&StateLabel { state: s.into() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for h in [
            CopysetHealth::Healthy,
            CopysetHealth::Degraded,
            CopysetHealth::Leaderless,
        ] {
            let n = o
                .copysets
                .iter()
                .find(|(x, _)| *x == h)
                .map_or(0, |(_, n)| *n);
            self.copysets
                .get_or_create(&HealthLabel { health: h.into() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.operators_pending
            .set(i64::try_from(o.operators_pending).unwrap_or(i64::MAX));
    }
}
