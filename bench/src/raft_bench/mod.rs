//! `basalt-bench raft`: replicated 4 KiB writes on three chunkservers in this process
//! ([`cluster`]: real data dirs, shared WAL with group commit, chunk store, raft over the
//! TCP transport on loopback, the chunk service), driven by a client over TCP:
//!
//! - QD1 into one copyset (latency), compared with the floor measured in the same run:
//!   raw `O_DIRECT` write+fdatasync mean + 2 × raw TCP 4 KiB ping-pong mean
//!   (target: mean ≤ 1.5 × floor);
//! - `--depth` writes in flight spread over `--copysets` copysets (throughput), with the
//!   WAL fsyncs per write of the busiest replica (target ≤ 0.25: group commit) and IOPS
//!   ÷ raw write+fdatasync QD1 IOPS.
//!
//! Both report the raft elections seen during the measurement (target 0 under load).

pub mod cluster;
pub mod figures;

use crate::baseline::{disk, tcp};
use crate::chunkstore_bench::{backend_choice, DISK_WRITE_QD1};
use crate::error::BenchError;
use crate::report::{Kind, Measurement};
use crate::runner::{latency_async, throughput_async, Timing};
use crate::transport_bench::Skipped;
use basalt_chunkserver::copyset::CopysetConfig;
use bytes::Bytes;
use cluster::{Cluster, CHUNK_SIZE};
use rand::Rng;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// I/O size.
pub const BLOCK: u64 = 4096;
/// Size of the raw disk baseline's file.
const BASELINE_FILE: u64 = 64 << 20;

/// Settings of a raft run.
#[derive(Debug, Clone, Serialize)]
pub struct RaftSettings {
    /// Directory holding the three data dirs and the baseline file.
    pub dir: PathBuf,
    /// Copysets the deep measurement spreads its writes over.
    pub copysets: usize,
    /// Writes in flight in the deep measurement.
    pub depth: usize,
    /// I/O backend of the chunk stores (`uring`, `sync`).
    pub backend: String,
    /// Measure the baselines too (ratios need them).
    pub baselines: bool,
    /// Raft heartbeat interval, ms (the chunkserver's default unless given).
    pub heartbeat_interval_ms: u64,
    /// Raft election timeout range, ms.
    pub election_timeout_ms: (u64, u64),
}

impl RaftSettings {
    /// The copysets' raft settings: the chunkserver's defaults with the given timers.
    pub fn copyset_config(&self) -> CopysetConfig {
        CopysetConfig {
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            heartbeat_min_interval_ms: self.heartbeat_interval_ms,
            election_timeout_min_ms: self.election_timeout_ms.0,
            election_timeout_max_ms: self.election_timeout_ms.1,
            ..CopysetConfig::default()
        }
    }
}

/// Name of the QD1 measurement.
pub const QD1_NAME: &str = "raft/write/4KiB/qd1";

/// Name of the deep measurement.
pub fn deep_name(depth: usize, copysets: usize) -> String {
    format!("raft/write/4KiB/qd{depth}/{copysets}cs")
}

/// Run everything. Fails when the cluster cannot start (the figures would mean nothing).
pub fn run(
    s: &RaftSettings,
    timing: Timing,
    skipped: &mut Skipped,
) -> Result<Vec<Measurement>, BenchError> {
    let backend = backend_choice(&s.backend).ok_or_else(|| BenchError::BadBackend {
        name: s.backend.clone(),
    })?;
    let config = s.copyset_config();
    config.validate().map_err(|e| BenchError::BadSetting {
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    if s.baselines {
        out.push(tcp::ping_pong(BLOCK, timing)?);
        match disk::run(&s.dir, BASELINE_FILE, timing) {
            Ok(ms) => out.extend(ms),
            Err(e) => skipped.baselines.push(format!("disk: {e}")),
        }
    }
    let floor = {
        let mean = |name: &str| {
            out.iter()
                .find(|m| m.name == name)
                .and_then(|m| Some(m.latency.as_ref()?.mean_ns))
        };
        match (mean(DISK_WRITE_QD1), mean(&tcp::ping_pong_name(BLOCK))) {
            (Some(d), Some(r)) => Some(figures::write_floor_ns(d, r)),
            _ => None,
        }
    };
    let raw_write_iops = out
        .iter()
        .find(|m| m.name == DISK_WRITE_QD1)
        .map(|m| m.iops());

    let root = tempfile::Builder::new()
        .prefix("basalt-bench-raft")
        .tempdir_in(&s.dir)
        .map_err(BenchError::io(format!(
            "create data dirs in {}",
            s.dir.display()
        )))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-raft")
        .enable_all()
        .build()
        .map_err(BenchError::io("start the runtime"))?;
    let copysets = s.copysets.max(1);
    let depth = s.depth.max(1);
    let measured = rt.block_on(async {
        let cluster = Arc::new(Cluster::start(root.path(), copysets, backend, &config).await?);
        let r = measure(&cluster, depth, timing).await;
        if let Ok(c) = Arc::try_unwrap(cluster) {
            c.shutdown().await;
        }
        r
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    let (mut qd1, mut deep) = measured?;
    if s.baselines {
        qd1.baseline = Some(DISK_WRITE_QD1.into());
        if let (Some(floor), Some(l)) = (floor, &qd1.latency) {
            qd1.extra.insert("floor_mean_us".into(), floor / 1e3);
            if let Some(r) = figures::target_ratio(l.mean_ns, floor) {
                qd1.extra.insert("target_ratio".into(), r);
            }
        }
        if let Some(raw) = raw_write_iops.filter(|r| *r > 0.0) {
            deep.extra
                .insert("iops_vs_raw_write_qd1".into(), deep.iops() / raw);
        }
    }
    out.push(qd1);
    out.push(deep);
    root.close()
        .map_err(BenchError::io("remove the raft data dirs"))?;
    Ok(out)
}

async fn measure(
    c: &Arc<Cluster>,
    depth: usize,
    timing: Timing,
) -> Result<(Measurement, Measurement), BenchError> {
    let data = Bytes::from(vec![0x6bu8; BLOCK as usize]);
    let blocks = CHUNK_SIZE / BLOCK;
    let mut out = Vec::new();
    for (d, spread) in [(1usize, 1usize), (depth, c.copysets)] {
        let writes = Arc::new(AtomicU64::new(0));
        let terms0 = c.terms();
        let fsyncs0 = c.fsyncs();
        let op = {
            let (c, data, writes) = (c.clone(), data.clone(), writes.clone());
            move || {
                let (i, off) = {
                    let mut rng = rand::thread_rng();
                    (
                        rng.gen_range(0..spread),
                        (rng.gen_range(0..blocks) * BLOCK) as u32,
                    )
                };
                let (c, data, writes) = (c.clone(), data.clone(), writes.clone());
                async move {
                    c.write(i, off, data).await?;
                    writes.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            }
        };
        let label = format!("raft 4 KiB write qd{d} over {spread} copysets");
        let (run, kind, name) = if d == 1 {
            (
                latency_async(timing, &label, op).await?,
                Kind::Latency,
                QD1_NAME.to_string(),
            )
        } else {
            (
                throughput_async(timing, &label, d, op).await?,
                Kind::Throughput,
                deep_name(d, spread),
            )
        };
        let subject = format!("raft write qd{d}");
        let mut m = Measurement::new(name, &subject, "tcp", kind, BLOCK).with_run(
            run.ops,
            run.elapsed,
            run.cpu,
        );
        m.latency = run.recorder.summary();
        let n = writes.load(Ordering::Relaxed);
        if let Some((busiest, all)) = figures::fsyncs_per_write(&fsyncs0, &c.fsyncs(), n) {
            m.extra.insert("fsyncs_per_write".into(), busiest);
            m.extra.insert("fsyncs_per_write_all_replicas".into(), all);
        }
        m.extra.insert(
            "leader_elections".into(),
            figures::elections(&terms0, &c.terms()) as f64,
        );
        m.extra.insert("copysets".into(), spread as f64);
        m.note = Some(format!(
            "WriteChunk over TCP to the leader, 3 in-process chunkservers on loopback (one \
             process: cpu covers all), {d} in flight over {spread} copysets; fsyncs and \
             elections counted over warm-up + measurement"
        ));
        out.push(m);
    }
    let deep = out.pop().expect("two measurements");
    let qd1 = out.pop().expect("two measurements");
    Ok((qd1, deep))
}
