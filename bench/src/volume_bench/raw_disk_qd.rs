//! Raw disk 4 KiB random reads at queue depth N (N threads, each with one `O_DIRECT`
//! `pread` in flight) on the filesystem of the cluster's data dirs: the baseline of the
//! volume's deep random reads. The QD1 figures come from [`crate::baseline::disk`].

use super::targets::disk_read_qd_name;
use crate::cpu::CpuTimes;
use crate::error::BenchError;
use crate::histogram::Recorder;
use crate::progress::Progress;
use crate::report::{Kind, Measurement};
use crate::runner::Timing;
use rand::Rng;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

const BLOCK: usize = 4096;

/// A 4 KiB buffer aligned for O_DIRECT, carved out of a larger Vec.
struct Aligned {
    storage: Vec<u8>,
    offset: usize,
}

impl Aligned {
    fn new() -> Self {
        let storage = vec![0u8; 2 * BLOCK];
        let offset = storage.as_ptr().align_offset(BLOCK);
        Aligned { storage, offset }
    }
    fn get(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + BLOCK]
    }
}

/// Random 4 KiB reads with `qd` in flight over a `file_size` file created (and removed)
/// in `dir`.
pub fn rand_read(
    dir: &Path,
    file_size: u64,
    qd: usize,
    timing: Timing,
) -> Result<Measurement, BenchError> {
    let blocks = (file_size / BLOCK as u64).max(1);
    let tmp = tempfile::Builder::new()
        .prefix("basalt-bench-qd-")
        .tempfile_in(dir)
        .map_err(BenchError::io(format!(
            "create a file in {}",
            dir.display()
        )))?;
    {
        // Written through the page cache and synced: the O_DIRECT reads then hit the disk.
        let mut f = tmp.as_file();
        let chunk = vec![0xa5u8; 1 << 20];
        let mut left = blocks * BLOCK as u64;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])
                .map_err(BenchError::io("write the read test file"))?;
            left -= n as u64;
        }
        f.sync_all()
            .map_err(BenchError::io("fsync the read test file"))?;
    }
    let label = format!("disk 4 KiB random read QD{qd}");
    let progress = Progress::start(&label, timing.warmup + timing.duration, timing.quiet);
    let warm_end = Instant::now() + timing.warmup;
    let end = warm_end + timing.duration;
    let cpu0 = CpuTimes::of_self().ok();
    let results: Vec<Result<(Recorder, u64), BenchError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..qd.max(1))
            .map(|_| {
                s.spawn(|| -> Result<(Recorder, u64), BenchError> {
                    let file = OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_DIRECT)
                        .open(tmp.path())
                        .map_err(BenchError::io(format!(
                            "open {} with O_DIRECT",
                            tmp.path().display()
                        )))?;
                    let mut buf = Aligned::new();
                    let mut rng = rand::thread_rng();
                    let mut rec = Recorder::new()?;
                    let mut ops = 0u64;
                    loop {
                        let t = Instant::now();
                        if t >= end {
                            break;
                        }
                        let off = rng.gen_range(0..blocks) * BLOCK as u64;
                        file.read_exact_at(buf.get(), off)
                            .map_err(BenchError::io("O_DIRECT read"))?;
                        if t >= warm_end {
                            rec.record(t.elapsed());
                            ops += 1;
                        }
                    }
                    Ok((rec, ops))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(BenchError::Io {
                        what: "raw disk reader thread".into(),
                        source: std::io::Error::other("panicked"),
                    })
                })
            })
            .collect()
    });
    let mut total = Recorder::new()?;
    let mut ops = 0;
    for r in results {
        let (rec, n) = r?;
        total.merge(&rec)?;
        ops += n;
    }
    // The measured interval ends when the last reader stops; warm-up CPU is included in
    // the CPU figure, so scale it to the measured share of the run.
    let elapsed = Instant::now().saturating_duration_since(warm_end);
    let cpu = match (CpuTimes::of_self().ok(), cpu0) {
        (Some(now), Some(then)) => {
            let all = now.since(&then).own;
            let whole = (timing.warmup + elapsed).as_secs_f64();
            (whole > 0.0).then(|| all.mul_f64(elapsed.as_secs_f64() / whole))
        }
        _ => None,
    };
    let mut m = Measurement::new(
        disk_read_qd_name(qd),
        &format!("disk 4K random read QD{qd}"),
        &format!("O_DIRECT {}", dir.display()),
        Kind::Throughput,
        BLOCK as u64,
    )
    .with_run(ops, elapsed, cpu);
    m.latency = total.summary();
    m.note = Some(format!(
        "{qd} threads with one pread each in flight, random offsets in a {} MiB file",
        file_size >> 20
    ));
    progress.finish(&m.short());
    drop(tmp);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deep_reads_run_or_report_missing_o_direct() {
        let dir = tempfile::tempdir().unwrap();
        let timing = Timing {
            warmup: Duration::from_millis(10),
            duration: Duration::from_millis(100),
            quiet: true,
        };
        match rand_read(dir.path(), 1 << 20, 4, timing) {
            Ok(m) => {
                assert!(m.ops > 0);
                assert_eq!(m.name, "disk/rand-read/4KiB/qd4");
                assert_eq!(m.latency.as_ref().unwrap().samples, m.ops);
            }
            Err(BenchError::Io { what, .. }) => assert!(what.contains("O_DIRECT"), "{what}"),
            Err(e) => panic!("unexpected error {e}"),
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
