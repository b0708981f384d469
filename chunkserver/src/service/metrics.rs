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
    /// ResetPeers.
    ResetPeers,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 13] = [
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
        Op::ResetPeers,
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
            Op::ResetPeers => "reset_peers",
        }
    }
}

/// Stages of a data request timed inside its handler (`basalt-bench volume --breakdown`
/// reads them to say where a request's time goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// ReadChunk: range check, admission and the epoch check.
    ReadAdmit,
    /// ReadChunk: the linearizable read through the copyset (lease, chunk store read).
    ReadCopyset,
    /// ReadChunk: CRC32C of the data read.
    ReadCrc,
    /// WriteChunk: payload check, admission and the epoch check.
    WriteAdmit,
    /// WriteChunk: replication through raft until applied on this leader.
    WriteCopyset,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 5] = [
        Stage::ReadAdmit,
        Stage::ReadCopyset,
        Stage::ReadCrc,
        Stage::WriteAdmit,
        Stage::WriteCopyset,
    ];

    /// The `op` and `stage` label values.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Stage::ReadAdmit => ("read", "admit"),
            Stage::ReadCopyset => ("read", "copyset"),
            Stage::ReadCrc => ("read", "crc"),
            Stage::WriteAdmit => ("write", "admit"),
            Stage::WriteCopyset => ("write", "copyset"),
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
    stage_family: Family<Labels, Histogram, fn() -> Histogram>,
    /// Per [`Stage::ALL`] index.
    stages: Arc<[Histogram]>,
}

fn latency_histogram() -> Histogram {
    // 10 µs .. ~40 s
    Histogram::new(exponential_buckets(1e-5, 2.0, 22))
}

fn stage_histogram() -> Histogram {
    // 1 µs .. ~4 s: stages are shorter than requests.
    Histogram::new(exponential_buckets(1e-6, 2.0, 22))
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
        let stage_family: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(stage_histogram);
        let stages = Stage::ALL
            .iter()
            .map(|s| {
                let (op, stage) = s.labels();
                let l = vec![
                    ("op".to_string(), op.to_string()),
                    ("stage".to_string(), stage.to_string()),
                ];
                stage_family.get_or_create(&l).clone()
            })
            .collect();
        ServiceMetrics {
            latency_family,
            errors_family,
            latency,
            errors,
            inflight: Gauge::default(),
            stage_family,
            stages,
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
        r.register(
            "stage_seconds",
            "Time of each stage of a data request inside its handler",
            self.stage_family.clone(),
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

    /// Record one stage of a data request.
    pub fn observe_stage(&self, stage: Stage, took: Duration) {
        let i = Stage::ALL.iter().position(|&s| s == stage).unwrap_or(0);
        self.stages[i].observe(took.as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_exported_with_op_and_stage_labels() {
        let m = ServiceMetrics::new();
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.observe_stage(Stage::ReadCopyset, Duration::from_micros(30));
        m.observe_stage(Stage::ReadCopyset, Duration::from_micros(50));
        m.observe_stage(Stage::WriteAdmit, Duration::from_micros(3));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let line = |series: &str| {
            text.lines()
                .find(|l| l.starts_with(series))
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
                .to_string()
        };
        let count = line("basalt_chunkserver_stage_seconds_count{op=\"read\",stage=\"copyset\"}");
        assert!(count.ends_with(" 2"), "{count}");
        let sum = line("basalt_chunkserver_stage_seconds_sum{op=\"read\",stage=\"copyset\"}");
        let v: f64 = sum.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((v - 80e-6).abs() < 1e-9, "{sum}");
        let w = line("basalt_chunkserver_stage_seconds_count{op=\"write\",stage=\"admit\"}");
        assert!(w.ends_with(" 1"), "{w}");
        let untouched = line("basalt_chunkserver_stage_seconds_count{op=\"read\",stage=\"crc\"}");
        assert!(untouched.ends_with(" 0"), "{untouched}");
    }
}
