//! Prometheus metrics of the chunkserver: per-operation latency and errors, data requests
//! in flight (updated by the service), and a scrape-time collector for the WAL counters
//! and the number of copysets led here.

use crate::copyset::Copysets;
use crate::wal::WalMetrics;
use basalt_proto::chunk::RaftRole;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// The operations of the chunk service, one metric label value each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// WriteChunk.
    Write,
    /// ReadChunk.
    Read,
    /// DeleteChunk.
    Delete,
    /// GetLeader.
    GetLeader,
    /// ChunkInfo.
    ChunkInfo,
    /// CreateCopyset.
    CreateCopyset,
    /// DeleteCopyset.
    DeleteCopyset,
    /// CopysetStatus.
    CopysetStatus,
    /// AddPeer.
    AddPeer,
    /// RemovePeer.
    RemovePeer,
    /// ChangePeer.
    ChangePeer,
    /// TransferLeader.
    TransferLeader,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 12] = [
        Op::Write,
        Op::Read,
        Op::Delete,
        Op::GetLeader,
        Op::ChunkInfo,
        Op::CreateCopyset,
        Op::DeleteCopyset,
        Op::CopysetStatus,
        Op::AddPeer,
        Op::RemovePeer,
        Op::ChangePeer,
        Op::TransferLeader,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Read => "read",
            Op::Delete => "delete",
            Op::GetLeader => "get_leader",
            Op::ChunkInfo => "chunk_info",
            Op::CreateCopyset => "create_copyset",
            Op::DeleteCopyset => "delete_copyset",
            Op::CopysetStatus => "copyset_status",
            Op::AddPeer => "add_peer",
            Op::RemovePeer => "remove_peer",
            Op::ChangePeer => "change_peer",
            Op::TransferLeader => "transfer_leader",
        }
    }
}

type Labels = Vec<(String, String)>;

fn labels(op: Op) -> Labels {
    vec![("op".to_string(), op.name().to_string())]
}

/// Counters the service updates per request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    latency_family: Family<Labels, Histogram, fn() -> Histogram>,
    errors_family: Family<Labels, Counter>,
    /// Per [`Op::ALL`] index: handles resolved once so a request never hashes labels.
    latency: Arc<[Histogram]>,
    errors: Arc<[Counter]>,
    inflight: Gauge,
}

fn latency_histogram() -> Histogram {
    // 10 µs .. ~40 s
    Histogram::new(exponential_buckets(1e-5, 2.0, 22))
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceMetrics {
    /// Fresh, unregistered metrics.
    pub fn new() -> Self {
        let latency_family: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let errors_family = Family::<Labels, Counter>::default();
        let latency = Op::ALL
            .iter()
            .map(|&op| latency_family.get_or_create(&labels(op)).clone())
            .collect();
        let errors = Op::ALL
            .iter()
            .map(|&op| errors_family.get_or_create(&labels(op)).clone())
            .collect();
        ServiceMetrics {
            latency_family,
            errors_family,
            latency,
            errors,
            inflight: Gauge::default(),
        }
    }

    /// Register under the prefix `basalt_chunkserver`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("basalt_chunkserver");
        r.register(
            "request_seconds",
            "Chunk service request latency by operation",
            self.latency_family.clone(),
        );
        r.register(
            "request_errors",
            "Chunk service requests answered with an error, by operation",
            self.errors_family.clone(),
        );
        r.register(
            "data_inflight",
            "Data requests (write, read, delete) being handled",
            self.inflight.clone(),
        );
    }

    fn index(op: Op) -> usize {
        Op::ALL.iter().position(|&o| o == op).unwrap_or(0)
    }

    /// Record one finished request.
    pub fn observe(&self, op: Op, took: Duration, failed: bool) {
        let i = Self::index(op);
        self.latency[i].observe(took.as_secs_f64());
        if failed {
            self.errors[i].inc();
        }
    }

    /// Set the data requests in flight.
    pub fn set_inflight(&self, n: u32) {
        self.inflight.set(i64::from(n));
    }

    /// Errors counted for `op` (tests).
    pub fn errors(&self, op: Op) -> u64 {
        self.errors[Self::index(op)].get()
    }
}

/// Scrape-time values: WAL counters and copysets led here.
pub struct StateCollector {
    wal: Arc<dyn Fn() -> (u64, u64, u64) + Send + Sync>,
    copysets: Copysets,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

impl StateCollector {
    /// Report `copysets`, and the WAL counters read by `wal` (fsyncs, records, batches).
    pub fn new<W>(copysets: Copysets, wal: W) -> Self
    where
        W: Fn() -> (u64, u64, u64) + Send + Sync + 'static,
    {
        StateCollector {
            wal: Arc::new(wal),
            copysets,
        }
    }

    /// Report the counters of a [`crate::wal::Wal`].
    pub fn wal_counters(m: &WalMetrics) -> (u64, u64, u64) {
        (m.fsyncs(), m.records(), m.batches())
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge<T>(enc: &mut DescriptorEncoder, name: &str, help: &str, v: T) -> std::fmt::Result
where
    ConstGauge<T>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for StateCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        {
            let (fsyncs, records, batches) = (self.wal)();
            counter(
                &mut enc,
                "basalt_chunkserver_wal_fsyncs",
                "WAL fdatasync calls",
                fsyncs,
            )?;
            counter(
                &mut enc,
                "basalt_chunkserver_wal_records",
                "WAL records written",
                records,
            )?;
            counter(
                &mut enc,
                "basalt_chunkserver_wal_batches",
                "WAL group-commit batches written",
                batches,
            )?;
            gauge(
                &mut enc,
                "basalt_chunkserver_wal_records_per_fsync",
                "WAL records made durable per fsync since start",
                records as f64 / fsyncs.max(1) as f64,
            )?;
        }
        let groups = self.copysets.groups();
        let leaders = groups
            .iter()
            .filter(|&&g| {
                self.copysets
                    .status(g)
                    .is_ok_and(|s| s.role == RaftRole::Leader)
            })
            .count();
        gauge(
            &mut enc,
            "basalt_chunkserver_copysets",
            "Copysets hosted here",
            groups.len() as i64,
        )?;
        gauge(
            &mut enc,
            "basalt_chunkserver_raft_leaders",
            "Copysets led by this chunkserver",
            leaders as i64,
        )
    }
}
