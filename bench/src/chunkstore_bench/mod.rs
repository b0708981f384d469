//! `basalt-bench chunkstore`: the chunkserver's storage engine alone (no raft, no
//! network), per I/O backend that runs here (`uring`, `sync`): 4 KiB random writes through
//! the replica write path (WAL append with group commit, then the chunk write; see
//! [`engine`]) and 4 KiB random chunk reads, at queue depth 1 and `--depth`, next to the
//! raw disk measured in the same run on the same filesystem (`O_DIRECT` write+fdatasync
//! and random read at QD1 from [`crate::baseline::disk`], at `--depth` from
//! [`crate::baseline::disk_qd`]).
//!
//! Extra figures per write measurement: `fsyncs_per_write` (WAL `fdatasync`s ÷ writes,
//! from the WAL's counters, warm-up included) and `mean_ratio` (mean ÷ baseline mean).

pub mod engine;

use crate::baseline::disk;
use crate::baseline::disk_qd;
use crate::error::BenchError;
use crate::report::{Kind, Measurement};
use crate::runner::{latency_async, throughput_async, Run, Timing};
use crate::transport_bench::Skipped;
use basalt_chunkserver::backend::BackendChoice;
use basalt_proto::ids::ChunkId;
use bytes::Bytes;
use engine::{Engine, Geometry};
use rand::Rng;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// I/O size.
pub const BLOCK: u64 = 4096;
/// Name of the QD1 write+fdatasync baseline ([`crate::baseline::disk`]).
pub const DISK_WRITE_QD1: &str = "disk/write-fdatasync/4KiB";
/// Name of the QD1 random read baseline ([`crate::baseline::disk`]).
pub const DISK_READ_QD1: &str = "disk/rand-read/4KiB";
/// Largest chunk (the protocol's chunk size).
const MAX_CHUNK: u64 = 16 << 20;

/// Settings of a chunkstore run.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkstoreSettings {
    /// Directory on the filesystem to measure (temporary files and data dir made there).
    pub dir: PathBuf,
    /// Bytes of chunk data (and of the raw baseline's file).
    pub file_size: u64,
    /// Queue depth of the deep measurements.
    pub depth: usize,
    /// Copysets sharing the WAL (each its own log and chunks; shards the pollers).
    pub groups: u64,
    /// WAL segment size.
    pub wal_segment_size: u64,
    /// Backends to measure (`uring`, `sync`).
    pub backends: Vec<String>,
    /// Measure the raw-disk baselines too (ratios need them).
    pub baselines: bool,
}

/// Chunk geometry for `file_size` bytes over `groups` groups: chunks of at most 16 MiB
/// (at least 1 MiB, 4 KiB multiples), at least one per group.
pub fn geometry(file_size: u64, groups: u64, wal_segment_size: u64) -> Geometry {
    let groups = groups.max(1);
    let per_group = (file_size / groups).max(1 << 20);
    let chunk_size = (per_group.min(MAX_CHUNK) / BLOCK).max(1) * BLOCK;
    Geometry {
        chunk_size,
        chunks_per_group: (per_group / chunk_size).max(1),
        groups,
        wal_segment_size,
    }
}

/// Parse a backend name.
pub fn backend_choice(name: &str) -> Option<BackendChoice> {
    match name {
        "uring" => Some(BackendChoice::Uring),
        "sync" => Some(BackendChoice::Sync),
        _ => None,
    }
}

/// Set `extra["mean_ratio"]` (mean ÷ baseline mean) of every latency measurement whose
/// baseline is present with a latency.
pub fn add_mean_ratios(all: &mut [Measurement]) {
    let means: Vec<(String, f64)> = all
        .iter()
        .filter_map(|m| Some((m.name.clone(), m.latency.as_ref()?.mean_ns)))
        .collect();
    for m in all.iter_mut().filter(|m| m.kind == Kind::Latency) {
        let (Some(base), Some(l)) = (&m.baseline, &m.latency) else {
            continue;
        };
        if let Some((_, b)) = means.iter().find(|(n, _)| n == base) {
            if *b > 0.0 {
                let r = l.mean_ns / b;
                m.extra.insert("mean_ratio".into(), r);
            }
        }
    }
}

/// `part ÷ whole`, `None` when nothing happened.
pub fn per_op(part: u64, ops: u64) -> Option<f64> {
    (ops > 0).then(|| part as f64 / ops as f64)
}

fn measurement(
    name: String,
    subject: &str,
    backend: &str,
    kind: Kind,
    run: &Run,
    baseline: Option<String>,
) -> Measurement {
    let mut m = Measurement::new(name, subject, backend, kind, BLOCK).with_run(
        run.ops,
        run.elapsed,
        run.cpu,
    );
    m.latency = run.recorder.summary();
    m.baseline = baseline;
    m
}

/// Run everything; a backend that cannot run here is skipped with the reason.
pub fn run(
    s: &ChunkstoreSettings,
    timing: Timing,
    skipped: &mut Skipped,
) -> Result<Vec<Measurement>, BenchError> {
    let mut out = Vec::new();
    let depth = s.depth.max(1);
    if s.baselines {
        match disk::run(&s.dir, s.file_size, timing) {
            Ok(ms) => out.extend(ms),
            Err(e) => skipped.baselines.push(format!("disk qd1: {e}")),
        }
        match disk_qd::run(&s.dir, s.file_size, depth, timing) {
            Ok(ms) => out.extend(ms),
            Err(e) => skipped.baselines.push(format!("disk qd{depth}: {e}")),
        }
    }
    let has = |name: &str| s.baselines && out.iter().any(|m: &Measurement| m.name == name);
    let bases = [
        has(DISK_WRITE_QD1).then(|| DISK_WRITE_QD1.to_string()),
        has(&disk_qd::write_name(depth)).then(|| disk_qd::write_name(depth)),
        has(DISK_READ_QD1).then(|| DISK_READ_QD1.to_string()),
        has(&disk_qd::read_name(depth)).then(|| disk_qd::read_name(depth)),
    ];
    let root = tempfile::Builder::new()
        .prefix("basalt-bench-chunkstore")
        .tempdir_in(&s.dir)
        .map_err(BenchError::io(format!(
            "create a data dir in {}",
            s.dir.display()
        )))?;
    let g = geometry(s.file_size, s.groups, s.wal_segment_size);
    let dir = engine::format(root.path(), &g)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-chunkstore")
        .enable_all()
        .build()
        .map_err(BenchError::io("start the runtime"))?;
    for name in &s.backends {
        let Some(choice) = backend_choice(name) else {
            skipped
                .backends
                .push(format!("{name}: unknown backend (uring, sync)"));
            continue;
        };
        let factory = match engine::probe(choice) {
            Ok(f) => f,
            Err(e) => {
                skipped.backends.push(format!("{name}: {e}"));
                continue;
            }
        };
        let engine = Arc::new(Engine::open(&dir, &factory, g)?);
        let r = rt.block_on(measure(engine.clone(), depth, timing, &bases));
        // The WAL's writer thread and the pollers stop when the engine goes.
        drop(engine);
        match r {
            Ok(ms) => out.extend(ms),
            Err(e) => skipped
                .backends
                .push(format!("{name} (stopped part-way): {e}")),
        }
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    drop(dir);
    root.close()
        .map_err(BenchError::io("remove the chunkstore data dir"))?;
    Ok(out)
}

fn pick(g: &Geometry) -> (u64, ChunkId, u64) {
    let mut rng = rand::thread_rng();
    let group = rng.gen_range(0..g.groups);
    let chunk = ChunkId(rng.gen_range(0..g.chunks_per_group));
    let offset = rng.gen_range(0..g.chunk_size / BLOCK) * BLOCK;
    (group, chunk, offset)
}

async fn measure(
    engine: Arc<Engine>,
    depth: usize,
    timing: Timing,
    bases: &[Option<String>; 4],
) -> Result<Vec<Measurement>, BenchError> {
    engine.allocate().await?;
    let b = engine.backend.name();
    let g = engine.geometry();
    let data = Bytes::from(vec![0x3cu8; BLOCK as usize]);
    let mut out = Vec::new();
    let note_w = |d: usize| {
        format!(
            "WAL append ({} B entry) awaited durable (group commit fdatasync), then O_DIRECT \
             chunk write, no sync; {} groups, {d} in flight",
            BLOCK as usize + engine::ENTRY_OVERHEAD,
            g.groups
        )
    };

    for (d, base) in [(1, &bases[0]), (depth, &bases[1])] {
        let writes = Arc::new(AtomicU64::new(0));
        let fsyncs0 = engine.wal.metrics().fsyncs();
        let op = {
            let (engine, data, writes) = (engine.clone(), data.clone(), writes.clone());
            move || {
                let (grp, chunk, off) = pick(&g);
                let (engine, data, writes) = (engine.clone(), data.clone(), writes.clone());
                async move {
                    engine.write(grp, chunk, off, data).await?;
                    writes.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            }
        };
        let label = format!("chunkstore {b} 4 KiB write qd{d}");
        let (run, kind) = if d == 1 {
            (latency_async(timing, &label, op).await?, Kind::Latency)
        } else {
            (
                throughput_async(timing, &label, d, op).await?,
                Kind::Throughput,
            )
        };
        let fsyncs = engine.wal.metrics().fsyncs() - fsyncs0;
        let mut m = measurement(
            format!("chunkstore/{b}/write/4KiB/qd{d}"),
            &format!("chunkstore write qd{d}"),
            b,
            kind,
            &run,
            base.clone(),
        );
        if let Some(f) = per_op(fsyncs, writes.load(Ordering::Relaxed)) {
            m.extra.insert("fsyncs_per_write".into(), f);
        }
        m.note = Some(note_w(d));
        out.push(m);
    }

    for (d, base) in [(1, &bases[2]), (depth, &bases[3])] {
        let op = {
            let engine = engine.clone();
            move || {
                let (grp, chunk, off) = pick(&g);
                let engine = engine.clone();
                async move { engine.read(grp, chunk, off, BLOCK).await }
            }
        };
        let label = format!("chunkstore {b} 4 KiB read qd{d}");
        let (run, kind) = if d == 1 {
            (latency_async(timing, &label, op).await?, Kind::Latency)
        } else {
            (
                throughput_async(timing, &label, d, op).await?,
                Kind::Throughput,
            )
        };
        let mut m = measurement(
            format!("chunkstore/{b}/read/4KiB/qd{d}"),
            &format!("chunkstore read qd{d}"),
            b,
            kind,
            &run,
            base.clone(),
        );
        m.note = Some(format!(
            "O_DIRECT chunk read through the poller at random offsets of {} x {} MiB chunks; {d} in flight",
            g.groups * g.chunks_per_group,
            g.chunk_size >> 20
        ));
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Recorder;
    use std::time::Duration;

    #[test]
    fn geometry_splits_the_size_over_groups() {
        let g = geometry(256 << 20, 8, 64 << 20);
        assert_eq!(
            (g.chunk_size, g.chunks_per_group, g.groups),
            (16 << 20, 2, 8)
        );
        let g = geometry(256 << 20, 64, 64 << 20);
        assert_eq!((g.chunk_size, g.chunks_per_group), (4 << 20, 1));
        // Small sizes still give every group a chunk of at least 1 MiB.
        let g = geometry(1 << 20, 4, 4 << 20);
        assert_eq!(
            (g.chunk_size, g.chunks_per_group, g.groups),
            (1 << 20, 1, 4)
        );
        let g = geometry(0, 0, 4 << 20);
        assert_eq!(g.groups, 1);
        assert_eq!(g.chunk_size % BLOCK, 0);
    }

    #[test]
    fn backend_names() {
        assert_eq!(backend_choice("uring"), Some(BackendChoice::Uring));
        assert_eq!(backend_choice("sync"), Some(BackendChoice::Sync));
        assert_eq!(backend_choice("spdk"), None);
    }

    #[test]
    fn per_op_needs_ops() {
        assert_eq!(per_op(1, 4), Some(0.25));
        assert_eq!(per_op(3, 0), None);
    }

    #[test]
    fn mean_ratio_uses_the_named_baseline() {
        let lat = |us: u64| {
            let mut r = Recorder::new().unwrap();
            r.record(Duration::from_micros(us));
            r.summary()
        };
        let mut base = Measurement::new("b", "disk", "x", Kind::Latency, 4096);
        base.latency = lat(100);
        let mut m = Measurement::new("m", "store", "x", Kind::Latency, 4096);
        m.latency = lat(250);
        m.baseline = Some("b".into());
        let mut orphan = Measurement::new("o", "store", "x", Kind::Latency, 4096);
        orphan.latency = lat(50);
        orphan.baseline = Some("missing".into());
        let mut all = vec![base, m, orphan];
        add_mean_ratios(&mut all);
        let r = all[1].extra["mean_ratio"];
        assert!((r - 2.5).abs() < 0.01, "{r}");
        assert!(all[0].extra.is_empty() && all[2].extra.is_empty());
    }
}
