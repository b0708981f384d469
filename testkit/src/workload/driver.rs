//! The workload driver: concurrent workers reading and writing tagged 4 KiB blocks of a
//! volume region, recording every operation in a [`History`].
//!
//! Workers run on a tokio runtime; the test's own thread injects faults and watches
//! progress ([`Workload::completed`], [`Workload::wait_for_ops`]). [`Workload::stop`]
//! ends the workers and reads every block of the region once more (the read-back pass),
//! so a write lost at the very end is caught too.

use super::block::{decode, encode, SplitMix, Tag, BLOCK};
use super::history::{Action, History, Op, READBACK_WORKER};
use super::WorkloadError;
use basalt_client::addr::FromSocketAddr;
use basalt_client::Volume;
use basalt_transport::Transport;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// What the workload does.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// Concurrent workers (each one I/O at a time).
    pub workers: u32,
    /// First block of the region (volume offset / 4096).
    pub first_block: u64,
    /// Blocks in the region.
    pub blocks: u64,
    /// Share of reads, in percent.
    pub read_percent: u64,
    /// An operation still running after this is abandoned and recorded as failed.
    pub op_timeout: Duration,
    /// Seed of the workers' choices.
    pub seed: u64,
}

impl WorkloadSpec {
    /// `workers` workers over `blocks` blocks from `first_block`, half reads.
    pub fn new(workers: u32, first_block: u64, blocks: u64) -> Self {
        WorkloadSpec {
            workers,
            first_block,
            blocks,
            read_percent: 50,
            op_timeout: Duration::from_secs(20),
            seed: 0x5eed,
        }
    }
}

struct Shared {
    t0: Instant,
    stop: AtomicBool,
    completed: AtomicU64,
    ops: Mutex<Vec<Op>>,
}

impl Shared {
    fn record(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
        self.completed.fetch_add(1, Ordering::SeqCst);
    }
}

/// A running workload.
pub struct Workload<T: Transport> {
    volume: Arc<Volume<T>>,
    spec: WorkloadSpec,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// One read or write of `block`, bounded by `timeout`, as an [`Op`].
async fn one_op<T: Transport>(
    volume: &Volume<T>,
    t0: Instant,
    worker: u32,
    block: u64,
    write: Option<Tag>,
    timeout: Duration,
) -> Op
where
    T::Addr: FromSocketAddr,
{
    let offset = block * BLOCK as u64;
    let invoke = t0.elapsed();
    let (action, error) = match write {
        Some(tag) => {
            let data = Bytes::from(encode(tag, block));
            let r = tokio::time::timeout(timeout, volume.write(offset, data)).await;
            let error = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("timed out after {timeout:?}")),
            };
            (Action::Write(tag), error)
        }
        None => {
            let r = tokio::time::timeout(timeout, volume.read(offset, BLOCK as u64)).await;
            match r {
                Ok(Ok(b)) => (Action::Read(Some(decode(&b, block))), None),
                Ok(Err(e)) => (Action::Read(None), Some(e.to_string())),
                Err(_) => (
                    Action::Read(None),
                    Some(format!("timed out after {timeout:?}")),
                ),
            }
        }
    };
    Op {
        worker,
        block,
        invoke,
        complete: t0.elapsed(),
        action,
        error,
    }
}

impl<T: Transport> Workload<T>
where
    T::Addr: FromSocketAddr,
    Volume<T>: Send + Sync + 'static,
{
    /// Start the workers on `rt`.
    pub fn start(rt: &Handle, volume: Arc<Volume<T>>, spec: WorkloadSpec) -> Self {
        let shared = Arc::new(Shared {
            t0: Instant::now(),
            stop: AtomicBool::new(false),
            completed: AtomicU64::new(0),
            ops: Mutex::new(Vec::new()),
        });
        let tasks = (0..spec.workers)
            .map(|w| {
                let (volume, shared, spec) = (volume.clone(), shared.clone(), spec.clone());
                rt.spawn(async move {
                    let mut rng = SplitMix(spec.seed ^ (u64::from(w) << 32) ^ 0xa5a5);
                    let mut seq = 0;
                    while !shared.stop.load(Ordering::SeqCst) {
                        let block = spec.first_block + rng.below(spec.blocks.max(1));
                        let write = (rng.below(100) >= spec.read_percent).then(|| {
                            seq += 1;
                            Tag { writer: w, seq }
                        });
                        let op = one_op(&volume, shared.t0, w, block, write, spec.op_timeout).await;
                        let failed = !op.ok();
                        shared.record(op);
                        if failed {
                            // Errors are recorded (and fail the test); don't spin on them.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                })
            })
            .collect();
        Workload {
            volume,
            spec,
            shared,
            tasks,
        }
    }

    /// Time since the workload started (the history's clock).
    pub fn now(&self) -> Duration {
        self.shared.t0.elapsed()
    }

    /// Operations completed so far (any outcome).
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::SeqCst)
    }

    /// Operations that returned an error so far.
    pub fn errors(&self) -> usize {
        let ops = self.shared.ops.lock().unwrap_or_else(|e| e.into_inner());
        ops.iter().filter(|o| !o.ok()).count()
    }

    /// Block the calling (non-runtime) thread until `more` further operations have
    /// completed, at most `timeout`. Returns how long it took.
    pub fn wait_for_ops(&self, more: u64, timeout: Duration) -> Result<Duration, WorkloadError> {
        let t0 = Instant::now();
        let want = self.completed() + more;
        while self.completed() < want {
            if t0.elapsed() > timeout {
                return Err(WorkloadError::Stalled {
                    wanted: more,
                    got: more - (want - self.completed()),
                    waited: t0.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(t0.elapsed())
    }

    /// Stop the workers, wait for their last operations, read every block of the region
    /// once more, and return the full history.
    pub async fn stop(self) -> History {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            // A panicking worker loses only its in-flight op; the history shows the rest.
            let _ = t.await;
        }
        for b in self.spec.first_block..self.spec.first_block + self.spec.blocks {
            let op = one_op(
                &self.volume,
                self.shared.t0,
                READBACK_WORKER,
                b,
                None,
                self.spec.op_timeout,
            )
            .await;
            self.shared.record(op);
        }
        let ops = std::mem::take(&mut *self.shared.ops.lock().unwrap_or_else(|e| e.into_inner()));
        History { ops }
    }
}
