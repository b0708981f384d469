//! Timed measurement loops: a warm-up that records nothing, then a measured interval
//! bounded by wall time. Closed-loop latency runs do one operation at a time; throughput
//! runs keep `depth` operations in flight.

use crate::cpu::CpuTimes;
use crate::error::BenchError;
use crate::histogram::Recorder;
use crate::progress::Progress;
use crate::units::fmt_us;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long to warm up and to measure.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Unrecorded time before the measurement.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// No progress output.
    pub quiet: bool,
}

/// What a loop measured.
#[derive(Debug)]
pub struct Run {
    /// Per-operation latencies of the measured interval.
    pub recorder: Recorder,
    /// Operations completed in the measured interval.
    pub ops: u64,
    /// Length of the measured interval.
    pub elapsed: Duration,
    /// This process's CPU time over the measured interval.
    pub cpu: Option<Duration>,
}

fn cpu_now() -> Option<CpuTimes> {
    CpuTimes::of_self().ok()
}

fn cpu_since(start: Option<CpuTimes>) -> Option<Duration> {
    Some(cpu_now()?.since(&start?).own)
}

/// The measured part of a closed loop, shared by [`latency_sync`] and
/// [`latency_async`]: the clock, the samples and the progress line.
struct Measured {
    progress: Progress,
    recorder: Recorder,
    cpu0: Option<CpuTimes>,
    start: Instant,
    end: Instant,
    ops: u64,
}

impl Measured {
    fn begin(progress: Progress, duration: Duration) -> Result<Self, BenchError> {
        let recorder = Recorder::new()?;
        let cpu0 = cpu_now();
        let start = Instant::now();
        Ok(Measured {
            progress,
            recorder,
            cpu0,
            start,
            end: start + duration,
            ops: 0,
        })
    }

    /// The start time of the next operation, or `None` once the interval is over.
    fn next(&self) -> Option<Instant> {
        let t = Instant::now();
        (t < self.end).then_some(t)
    }

    /// The operation started at `t` completed.
    fn done(&mut self, t: Instant) {
        self.recorder.record(t.elapsed());
        self.ops += 1;
        if self.ops % 256 == 0 {
            let recorder = &self.recorder;
            self.progress.tick(self.ops, || {
                format!("p50 {} µs", fmt_us(recorder.p50_ns() as f64))
            });
        }
    }

    fn finish(self) -> Run {
        let elapsed = self.start.elapsed();
        let cpu = cpu_since(self.cpu0);
        self.progress.finish(&format!("{} ops", self.ops));
        Run {
            recorder: self.recorder,
            ops: self.ops,
            elapsed,
            cpu,
        }
    }
}

/// Closed loop on this thread: `op` runs back to back; each call is one sample.
pub fn latency_sync(
    timing: Timing,
    label: &str,
    mut op: impl FnMut() -> Result<(), BenchError>,
) -> Result<Run, BenchError> {
    let progress = Progress::start(label, timing.warmup + timing.duration, timing.quiet);
    let warm_end = Instant::now() + timing.warmup;
    while Instant::now() < warm_end {
        op()?;
    }
    let mut m = Measured::begin(progress, timing.duration)?;
    while let Some(t) = m.next() {
        op()?;
        m.done(t);
    }
    Ok(m.finish())
}

/// Closed loop on the current task: `op()` is awaited back to back.
pub async fn latency_async<F, Fut>(
    timing: Timing,
    label: &str,
    mut op: F,
) -> Result<Run, BenchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), BenchError>>,
{
    let progress = Progress::start(label, timing.warmup + timing.duration, timing.quiet);
    let warm_end = Instant::now() + timing.warmup;
    while Instant::now() < warm_end {
        op().await?;
    }
    let mut m = Measured::begin(progress, timing.duration)?;
    while let Some(t) = m.next() {
        op().await?;
        m.done(t);
    }
    Ok(m.finish())
}

/// `depth` tasks on the current runtime, each awaiting `op()` back to back until the
/// interval ends; the interval closes when the last in-flight operation completes.
pub async fn throughput_async<F, Fut>(
    timing: Timing,
    label: &str,
    depth: usize,
    op: F,
) -> Result<Run, BenchError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BenchError>> + Send + 'static,
{
    let progress = Progress::start(label, timing.warmup + timing.duration, timing.quiet);
    let op = Arc::new(op);
    let warm_end = Instant::now() + timing.warmup;
    run_tasks(depth, warm_end, &op, false).await?;
    let cpu0 = cpu_now();
    let start = Instant::now();
    let (recorder, ops) = run_tasks(depth, start + timing.duration, &op, true).await?;
    let elapsed = start.elapsed();
    let cpu = cpu_since(cpu0);
    progress.finish(&format!("{ops} ops"));
    Ok(Run {
        recorder,
        ops,
        elapsed,
        cpu,
    })
}

async fn run_tasks<F, Fut>(
    depth: usize,
    end: Instant,
    op: &Arc<F>,
    record: bool,
) -> Result<(Recorder, u64), BenchError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BenchError>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..depth.max(1) {
        let op = op.clone();
        tasks.spawn(async move {
            let mut recorder = Recorder::new()?;
            let mut ops = 0u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                op().await?;
                if record {
                    recorder.record(t.elapsed());
                }
                ops += 1;
            }
            Ok::<_, BenchError>((recorder, ops))
        });
    }
    let mut total = Recorder::new()?;
    let mut ops = 0;
    while let Some(joined) = tasks.join_next().await {
        let (r, n) = joined.map_err(|e| BenchError::Io {
            what: "benchmark task".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
        total.merge(&r)?;
        ops += n;
    }
    Ok((total, ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Timing {
        Timing {
            warmup: Duration::from_millis(10),
            duration: Duration::from_millis(100),
            quiet: true,
        }
    }

    #[test]
    fn sync_loop_counts_every_measured_op() {
        let mut calls = 0u64;
        let run = latency_sync(quick(), "t", || {
            calls += 1;
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap();
        assert!(run.ops > 0);
        assert!(calls > run.ops, "warm-up calls are not counted");
        assert_eq!(run.recorder.len(), run.ops);
        assert!(run.elapsed >= Duration::from_millis(100));
        assert!(run.recorder.p50_ns() >= 1_000_000);
    }

    #[test]
    fn sync_loop_stops_at_the_first_error() {
        let r = latency_sync(quick(), "t", || {
            Err(BenchError::BadSize {
                input: "boom".into(),
            })
        });
        assert!(matches!(r, Err(BenchError::BadSize { .. })));
    }

    #[tokio::test]
    async fn async_loop_counts_every_measured_op() {
        let calls = std::cell::Cell::new(0u64);
        let run = latency_async(quick(), "t", || {
            calls.set(calls.get() + 1);
            async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(())
            }
        })
        .await
        .unwrap();
        assert!(run.ops > 0);
        assert!(calls.get() > run.ops, "warm-up calls are not counted");
        assert_eq!(run.recorder.len(), run.ops);
        assert!(run.elapsed >= Duration::from_millis(100));
        assert!(run.recorder.p50_ns() >= 1_000_000);
    }

    #[tokio::test]
    async fn throughput_runs_depth_tasks() {
        let inflight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (i, p) = (inflight.clone(), peak.clone());
        let run = throughput_async(quick(), "t", 4, move || {
            let (i, p) = (i.clone(), p.clone());
            async move {
                use std::sync::atomic::Ordering::SeqCst;
                let now = i.fetch_add(1, SeqCst) + 1;
                p.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                i.fetch_sub(1, SeqCst);
                Ok(())
            }
        })
        .await
        .unwrap();
        assert!(run.ops > 0);
        assert_eq!(run.recorder.len(), run.ops);
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 4);
    }
}
