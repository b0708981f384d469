//! The raw disk at a queue depth above one: `depth` threads, each doing blocking
//! `O_DIRECT` 4 KiB I/O at random offsets of one pre-written file (fio's `psync` engine
//! with `numjobs=depth`). Writes are each followed by `fdatasync`, as in the QD1 baseline
//! of [`crate::baseline::disk`]; concurrent `fdatasync`s may share a journal commit, which
//! is what the filesystem gives any program for free.

use crate::cpu::CpuTimes;
use crate::error::BenchError;
use crate::histogram::Recorder;
use crate::progress::Progress;
use crate::report::{Kind, Measurement};
use crate::runner::{Run, Timing};
use basalt_chunkserver::backend::AlignedBuf;
use rand::Rng;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// I/O size.
pub const BLOCK: u64 = 4096;

/// Name of the QD-`depth` write+fdatasync baseline.
pub fn write_name(depth: usize) -> String {
    format!("disk/write-fdatasync/4KiB/qd{depth}")
}

/// Name of the QD-`depth` random read baseline.
pub fn read_name(depth: usize) -> String {
    format!("disk/rand-read/4KiB/qd{depth}")
}

fn open_direct(path: &Path) -> Result<File, BenchError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(BenchError::io(format!(
            "open {} with O_DIRECT",
            path.display()
        )))
}

/// Run `op(thread)` back to back on `depth` threads: a warm-up, then the measured
/// interval; per-op latencies of all threads merged.
pub fn threaded<F>(timing: Timing, label: &str, depth: usize, op: F) -> Result<Run, BenchError>
where
    F: Fn(usize) -> Result<(), BenchError> + Sync,
{
    let depth = depth.max(1);
    let progress = Progress::start(label, timing.warmup + timing.duration, timing.quiet);
    let warm_end = Instant::now() + timing.warmup;
    let total = Mutex::new((Recorder::new()?, 0u64));
    let mut cpu0 = None;
    let mut start = Instant::now();
    let barrier = std::sync::Barrier::new(depth + 1);
    let measure_start = Mutex::new(None::<Instant>);
    let result: Result<(), BenchError> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..depth)
            .map(|t| {
                let (op, barrier, total, measure_start) = (&op, &barrier, &total, &measure_start);
                s.spawn(move || -> Result<(), BenchError> {
                    let mut first_err = None;
                    while Instant::now() < warm_end {
                        if let Err(e) = op(t) {
                            first_err = Some(e);
                            break;
                        }
                    }
                    barrier.wait();
                    if let Some(e) = first_err {
                        return Err(e);
                    }
                    let end = measure_start
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .unwrap_or_else(Instant::now)
                        + timing.duration;
                    let mut rec = Recorder::new()?;
                    let mut ops = 0u64;
                    loop {
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        op(t)?;
                        rec.record(t0.elapsed());
                        ops += 1;
                    }
                    let mut tot = total.lock().unwrap_or_else(|e| e.into_inner());
                    tot.0.merge(&rec)?;
                    tot.1 += ops;
                    Ok(())
                })
            })
            .collect();
        // Every thread has finished its warm-up when the barrier opens.
        cpu0 = CpuTimes::of_self().ok();
        start = Instant::now();
        *measure_start.lock().unwrap_or_else(|e| e.into_inner()) = Some(start);
        barrier.wait();
        let mut r = Ok(());
        for h in handles {
            let joined = h.join().unwrap_or_else(|_| {
                Err(BenchError::Io {
                    what: "benchmark thread".into(),
                    source: std::io::Error::other("panicked"),
                })
            });
            if r.is_ok() {
                r = joined;
            }
        }
        r
    });
    result?;
    let elapsed = start.elapsed();
    let cpu = match (CpuTimes::of_self().ok(), cpu0) {
        (Some(now), Some(then)) => Some(now.since(&then).own),
        _ => None,
    };
    let (recorder, ops) = total.into_inner().unwrap_or_else(|e| e.into_inner());
    progress.finish(&format!("{ops} ops"));
    Ok(Run {
        recorder,
        ops,
        elapsed,
        cpu,
    })
}

/// The pre-written test file the QD-N baselines run on.
struct QdFile {
    tmp: tempfile::NamedTempFile,
    file: File,
    file_size: u64,
    blocks: u64,
    backend: String,
}

impl QdFile {
    /// A `file_size` file (rounded to whole MiB) in `dir`, written with O_DIRECT and
    /// synced, so reads hit the disk.
    fn create(dir: &Path, file_size: u64) -> Result<QdFile, BenchError> {
        let file_size = (file_size / (1 << 20)).max(1) << 20;
        let tmp = tempfile::Builder::new()
            .prefix("basalt-bench-qd")
            .tempfile_in(dir)
            .map_err(BenchError::io(format!(
                "create a file in {}",
                dir.display()
            )))?;
        let file = open_direct(tmp.path())?;
        let fill = AlignedBuf::from_slice(&vec![0x5a; 1 << 20]);
        let mut off = 0;
        while off < file_size {
            file.write_all_at(fill.as_slice(), off)
                .map_err(BenchError::io("fill the QD test file"))?;
            off += 1 << 20;
        }
        file.sync_data().map_err(BenchError::io("fdatasync"))?;
        Ok(QdFile {
            tmp,
            file,
            file_size,
            blocks: file_size / BLOCK,
            backend: format!("O_DIRECT {}", dir.display()),
        })
    }

    fn write_fdatasync(&self, depth: usize, timing: Timing) -> Result<Measurement, BenchError> {
        let wbuf = AlignedBuf::from_slice(&[0x3c; BLOCK as usize]);
        let run = threaded(
            timing,
            &format!("disk 4 KiB write+fdatasync qd{depth}"),
            depth,
            |_| {
                let off = rand::thread_rng().gen_range(0..self.blocks) * BLOCK;
                self.file
                    .write_all_at(wbuf.as_slice(), off)
                    .map_err(BenchError::io("O_DIRECT write"))?;
                self.file.sync_data().map_err(BenchError::io("fdatasync"))
            },
        )?;
        let mut w = Measurement::new(
            write_name(depth),
            &format!("disk 4K write+fdatasync qd{depth}"),
            &self.backend,
            Kind::Throughput,
            BLOCK,
        )
        .with_run(run.ops, run.elapsed, run.cpu);
        w.latency = run.recorder.summary();
        w.note = Some(format!(
            "{depth} threads, each: O_DIRECT pwrite at a random offset, then fdatasync"
        ));
        Ok(w)
    }

    fn rand_read(&self, depth: usize, timing: Timing) -> Result<Measurement, BenchError> {
        let run = threaded(
            timing,
            &format!("disk 4 KiB random read qd{depth}"),
            depth,
            |_| {
                let mut buf = AlignedBuf::zeroed(BLOCK as usize);
                let off = rand::thread_rng().gen_range(0..self.blocks) * BLOCK;
                self.file
                    .read_exact_at(buf.as_mut_slice(), off)
                    .map_err(BenchError::io("O_DIRECT read"))
            },
        )?;
        let mut r = Measurement::new(
            read_name(depth),
            &format!("disk 4K random read qd{depth}"),
            &self.backend,
            Kind::Throughput,
            BLOCK,
        )
        .with_run(run.ops, run.elapsed, run.cpu);
        r.latency = run.recorder.summary();
        r.note = Some(format!(
            "{depth} threads, O_DIRECT pread at random offsets of a {} MiB file",
            self.file_size >> 20
        ));
        Ok(r)
    }

    fn remove(self) -> Result<(), BenchError> {
        drop(self.file);
        self.tmp
            .close()
            .map_err(BenchError::io("remove the QD test file"))
    }
}

/// Raw 4 KiB random write+fdatasync and random read at queue depth `depth` on a temporary
/// `file_size` file in `dir`.
pub fn run(
    dir: &Path,
    file_size: u64,
    depth: usize,
    timing: Timing,
) -> Result<Vec<Measurement>, BenchError> {
    let f = QdFile::create(dir, file_size)?;
    let w = f.write_fdatasync(depth, timing)?;
    let r = f.rand_read(depth, timing)?;
    f.remove()?;
    Ok(vec![w, r])
}

/// Raw 4 KiB random read alone at queue depth `depth` (the volume benchmark's deep-read
/// baseline) on a temporary `file_size` file in `dir`.
pub fn rand_read(
    dir: &Path,
    file_size: u64,
    depth: usize,
    timing: Timing,
) -> Result<Measurement, BenchError> {
    let f = QdFile::create(dir, file_size)?;
    let r = f.rand_read(depth, timing)?;
    f.remove()?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    fn quick() -> Timing {
        Timing {
            warmup: Duration::from_millis(10),
            duration: Duration::from_millis(100),
            quiet: true,
        }
    }

    #[test]
    fn threaded_runs_every_thread_and_counts_measured_ops() {
        let calls = AtomicU64::new(0);
        let seen = Mutex::new(std::collections::BTreeSet::new());
        let run = threaded(quick(), "t", 4, |t| {
            calls.fetch_add(1, Ordering::Relaxed);
            seen.lock().unwrap().insert(t);
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap();
        assert!(run.ops > 0);
        assert_eq!(run.recorder.len(), run.ops);
        assert!(
            calls.load(Ordering::Relaxed) > run.ops,
            "warm-up not counted"
        );
        assert_eq!(seen.lock().unwrap().len(), 4);
        assert!(run.elapsed >= Duration::from_millis(100));
    }

    #[test]
    fn deep_reads_run_or_report_missing_o_direct() {
        let dir = tempfile::tempdir().unwrap();
        match rand_read(dir.path(), 1 << 20, 4, quick()) {
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

    #[test]
    fn threaded_reports_the_first_error() {
        let r = threaded(quick(), "t", 3, |_| {
            Err(BenchError::BadSize {
                input: "boom".into(),
            })
        });
        assert!(matches!(r, Err(BenchError::BadSize { .. })));
    }
}
