//! Raw disk through the filesystem holding `--dir`: the floor under the chunk store.
//! `O_DIRECT` (no page cache) on one pre-written file: sequential 1 MiB writes for
//! bandwidth, then 4 KiB random writes each followed by `fdatasync` (queue depth 1), then
//! 4 KiB random reads (queue depth 1).

use crate::error::BenchError;
use crate::report::{Kind, Measurement};
use crate::runner::{latency_sync, Timing};
use rand::Rng;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

/// Block size of the random I/O.
pub const BLOCK: u64 = 4096;
/// Block size of the sequential write.
pub const SEQ_BLOCK: u64 = 1 << 20;
/// Alignment O_DIRECT needs (logical block size; 4 KiB covers every device here).
const ALIGN: usize = 4096;

/// A buffer aligned for O_DIRECT, carved out of a larger Vec (no unsafe allocation).
struct AlignedBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize, fill: u8) -> Self {
        let storage = vec![fill; len + ALIGN];
        let offset = storage.as_ptr().align_offset(ALIGN);
        AlignedBuf {
            storage,
            offset,
            len,
        }
    }
    fn as_slice(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

/// Open `path` with O_DIRECT; a filesystem without it (tmpfs) is reported as such.
fn open_direct(path: &Path) -> Result<File, BenchError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| {
            let what = if e.raw_os_error() == Some(libc::EINVAL) {
                format!(
                    "open {} with O_DIRECT (the filesystem does not support it)",
                    path.display()
                )
            } else {
                format!("open {} with O_DIRECT", path.display())
            };
            BenchError::Io { what, source: e }
        })
}

/// Run the three disk baselines on a temporary file of `file_size` bytes in `dir`.
pub fn run(dir: &Path, file_size: u64, timing: Timing) -> Result<Vec<Measurement>, BenchError> {
    let file_size = (file_size / SEQ_BLOCK).max(1) * SEQ_BLOCK;
    let tmp = tempfile::Builder::new()
        .prefix("basalt-bench-disk-")
        .tempfile_in(dir)
        .map_err(BenchError::io(format!(
            "create a file in {}",
            dir.display()
        )))?;
    let file = open_direct(tmp.path())?;
    let backend = format!("O_DIRECT {}", dir.display());
    let mut out = Vec::new();

    // Sequential 1 MiB writes over the whole file (this also allocates it), synced at the end.
    let buf = AlignedBuf::new(SEQ_BLOCK as usize, 0xa5);
    let progress = crate::progress::Progress::start(
        "disk sequential write 1 MiB",
        timing.duration,
        timing.quiet,
    );
    let mut rec = crate::histogram::Recorder::new()?;
    let cpu0 = crate::cpu::CpuTimes::of_self().ok();
    let start = Instant::now();
    let mut off = 0;
    while off < file_size {
        let t = Instant::now();
        file.write_all_at(buf.as_slice(), off)
            .map_err(BenchError::io("sequential O_DIRECT write"))?;
        rec.record(t.elapsed());
        off += SEQ_BLOCK;
    }
    file.sync_data().map_err(BenchError::io("fdatasync"))?;
    let elapsed = start.elapsed();
    let cpu = match (crate::cpu::CpuTimes::of_self().ok(), cpu0) {
        (Some(n), Some(t)) => Some(n.since(&t).own),
        _ => None,
    };
    let mut seq = Measurement::new(
        "disk/seq-write/1MiB",
        "disk sequential write",
        &backend,
        Kind::Throughput,
        SEQ_BLOCK,
    )
    .with_run(file_size / SEQ_BLOCK, elapsed, cpu);
    seq.latency = rec.summary();
    seq.note = Some(format!(
        "{} MiB file written once at queue depth 1, then fdatasync",
        file_size >> 20
    ));
    progress.finish(&seq.short());
    out.push(seq);

    let blocks = file_size / BLOCK;
    let mut rng = rand::thread_rng();

    // 4 KiB random writes, each made durable before the next (what a WAL append costs).
    let wbuf = AlignedBuf::new(BLOCK as usize, 0x3c);
    let run = latency_sync(timing, "disk 4 KiB write+fdatasync", || {
        let off = rng.gen_range(0..blocks) * BLOCK;
        file.write_all_at(wbuf.as_slice(), off)
            .map_err(BenchError::io("O_DIRECT write"))?;
        file.sync_data().map_err(BenchError::io("fdatasync"))
    })?;
    let mut w = Measurement::new(
        "disk/write-fdatasync/4KiB",
        "disk 4K write+fdatasync",
        &backend,
        Kind::Latency,
        BLOCK,
    )
    .with_run(run.ops, run.elapsed, run.cpu);
    w.latency = run.recorder.summary();
    w.note = Some("random offsets, queue depth 1".into());
    out.push(w);

    // 4 KiB random reads.
    let mut rbuf = AlignedBuf::new(BLOCK as usize, 0);
    let run = latency_sync(timing, "disk 4 KiB random read", || {
        let off = rng.gen_range(0..blocks) * BLOCK;
        file.read_exact_at(rbuf.as_mut_slice(), off)
            .map_err(BenchError::io("O_DIRECT read"))
    })?;
    let mut r = Measurement::new(
        "disk/rand-read/4KiB",
        "disk 4K random read",
        &backend,
        Kind::Latency,
        BLOCK,
    )
    .with_run(run.ops, run.elapsed, run.cpu);
    r.latency = run.recorder.summary();
    r.note = Some(format!(
        "random offsets in the {} MiB file, queue depth 1, no page cache",
        file_size >> 20
    ));
    out.push(r);
    drop(file);
    tmp.close()
        .map_err(BenchError::io("remove the disk test file"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn aligned_buffers_are_aligned() {
        for len in [4096, 1 << 20] {
            let b = AlignedBuf::new(len, 7);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.as_slice().len(), len);
            assert!(b.as_slice().iter().all(|&x| x == 7));
        }
    }

    #[test]
    fn disk_baselines_run_or_report_missing_o_direct() {
        // A temp dir on tmpfs would refuse O_DIRECT, which must come back as a typed error
        // naming the cause; on a disk filesystem all three figures are measured.
        let dir = tempfile::tempdir().unwrap();
        let timing = Timing {
            warmup: Duration::from_millis(10),
            duration: Duration::from_millis(100),
            quiet: true,
        };
        match run(dir.path(), 4 << 20, timing) {
            Ok(ms) => {
                assert_eq!(ms.len(), 3);
                assert_eq!(ms[0].ops, 4);
                assert!(ms[1].ops > 0 && ms[2].ops > 0);
                assert!(ms[2].latency.as_ref().unwrap().p50_ns > 0.0);
            }
            Err(BenchError::Io { what, .. }) => assert!(what.contains("O_DIRECT"), "{what}"),
            Err(e) => panic!("unexpected error {e}"),
        }
        // Nothing left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
