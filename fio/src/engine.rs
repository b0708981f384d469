//! Per-job engine state: the async runtime, the ops in flight and the completion queue.
//!
//! fio's calling pattern (one job thread): `queue` many times, `getevents(min, max,
//! timeout)` to reap, then `event(i)` for each reaped index. [`Engine::submit`] starts
//! each op as a task at once (real queue depth); tasks push their [`Completion`] onto a
//! shared queue that [`Engine::getevents`] waits on.

use crate::backend::EngineBackend;
use crate::error::FioError;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One I/O as fio asked for it.
#[derive(Debug, Clone)]
pub enum Op {
    /// Read `len` bytes at `offset`.
    Read {
        /// Byte offset.
        offset: u64,
        /// Byte count.
        len: usize,
    },
    /// Write `data` at `offset`.
    Write {
        /// Byte offset.
        offset: u64,
        /// The bytes (copied out of fio's buffer at queue time).
        data: Bytes,
    },
    /// Discard `len` bytes at `offset`.
    Trim {
        /// Byte offset.
        offset: u64,
        /// Byte count.
        len: u64,
    },
    /// Make completed writes durable (fio's sync and datasync).
    Flush,
}

impl Op {
    /// Bytes fio asked to transfer (the `resid` of a failed op).
    pub fn len(&self) -> u64 {
        match self {
            Op::Read { len, .. } => *len as u64,
            Op::Write { data, .. } => data.len() as u64,
            Op::Trim { len, .. } => *len,
            Op::Flush => 0,
        }
    }

    /// Whether the op transfers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A finished op, as `event(i)` hands it back to fio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The caller's tag (the io_u's address).
    pub tag: usize,
    /// 0, or the positive errno of the failure.
    pub errno: u32,
    /// Bytes not transferred (all of them on failure).
    pub resid: u64,
    /// Data of a successful read, to copy into the io_u's buffer.
    pub data: Option<Bytes>,
}

#[derive(Default)]
struct Done {
    queue: Mutex<VecDeque<Completion>>,
    ready: Condvar,
}

/// One fio job's engine.
pub struct Engine {
    runtime: tokio::runtime::Runtime,
    backend: Arc<dyn EngineBackend>,
    done: Arc<Done>,
    reaped: Vec<Completion>,
    in_flight: usize,
    depth: usize,
    busy_poll: bool,
}

/// Bound of closing the backend when the job ends (an MDS that does not answer must not
/// hang fio's cleanup; the session then simply expires).
const CLOSE_BOUND: Duration = Duration::from_secs(5);

impl Drop for Engine {
    fn drop(&mut self) {
        let backend = self.backend.clone();
        let closed = self
            .runtime
            .block_on(async move { tokio::time::timeout(CLOSE_BOUND, backend.close()).await });
        match closed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("fio: basalt: closing the volume failed: {e}"),
            Err(_) => {
                eprintln!("fio: basalt: closing the volume timed out; its session will expire")
            }
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("in_flight", &self.in_flight)
            .field("depth", &self.depth)
            .field("busy_poll", &self.busy_poll)
            .finish()
    }
}

impl Engine {
    /// Start the job's runtime (`threads` workers) for at most `depth` ops in flight.
    pub fn new(
        backend: Arc<dyn EngineBackend>,
        depth: usize,
        threads: usize,
        busy_poll: bool,
    ) -> Result<Self, FioError> {
        Self::open(|_| Ok(backend), depth, threads, busy_poll)
    }

    /// Start the job's runtime, then open the backend on it (the client backend connects
    /// asynchronously).
    pub fn open(
        open: impl FnOnce(&tokio::runtime::Handle) -> Result<Arc<dyn EngineBackend>, FioError>,
        depth: usize,
        threads: usize,
        busy_poll: bool,
    ) -> Result<Self, FioError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("basalt-fio")
            .enable_all()
            .build()
            .map_err(|e| FioError::Runtime {
                message: e.to_string(),
            })?;
        let backend = open(runtime.handle())?;
        Ok(Engine {
            runtime,
            backend,
            done: Arc::new(Done::default()),
            reaped: Vec::new(),
            in_flight: 0,
            depth: depth.max(1),
            busy_poll,
        })
    }

    /// Ops started and not yet reaped by [`Self::getevents`].
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Start `op`; its completion carries `tag`. Refused (nothing started) when `depth`
    /// ops are already in flight.
    pub fn submit(&mut self, tag: usize, op: Op) -> Result<(), FioError> {
        if self.in_flight >= self.depth {
            return Err(FioError::QueueFull { depth: self.depth });
        }
        self.in_flight += 1;
        let backend = self.backend.clone();
        let done = self.done.clone();
        self.runtime.spawn(async move {
            let want = op.len();
            let result = match op {
                Op::Read { offset, len } => backend.read(offset, len).await.map(Some),
                Op::Write { offset, data } => backend.write(offset, data).await.map(|()| None),
                Op::Trim { offset, len } => backend.trim(offset, len).await.map(|()| None),
                Op::Flush => backend.flush().await.map(|()| None),
            };
            let completion = match result {
                Ok(data) => Completion {
                    tag,
                    errno: 0,
                    // a short read leaves the rest untransferred; other ops move it all
                    resid: data
                        .as_ref()
                        .map_or(0, |d| want - (d.len() as u64).min(want)),
                    data,
                },
                Err(e) => Completion {
                    tag,
                    errno: e.errno(),
                    resid: want,
                    data: None,
                },
            };
            done.queue.lock().push_back(completion);
            done.ready.notify_one();
        });
        Ok(())
    }

    /// Wait until at least `min` ops have completed (or `timeout` passes), then take up to
    /// `max` of them; they stay readable through [`Self::event`] until the next call.
    pub fn getevents(&mut self, min: usize, max: usize, timeout: Option<Duration>) -> usize {
        self.reaped.clear();
        let deadline = timeout.map(|t| Instant::now() + t);
        // Never wait for more than can complete (fio does not ask; this keeps a stray
        // call from blocking forever).
        let min = min.min(max).min(self.in_flight);
        let mut queue = self.done.queue.lock();
        while queue.len() < min {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if self.busy_poll {
                drop(queue);
                std::hint::spin_loop();
                queue = self.done.queue.lock();
            } else {
                match deadline {
                    Some(d) => {
                        self.done.ready.wait_until(&mut queue, d);
                    }
                    None => self.done.ready.wait(&mut queue),
                }
            }
        }
        let n = queue.len().min(max);
        self.reaped.extend(queue.drain(..n));
        drop(queue);
        self.in_flight -= n;
        n
    }

    /// The `i`th completion of the last [`Self::getevents`].
    pub fn event(&self, i: usize) -> Option<&Completion> {
        self.reaped.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemVolume;

    const T: Option<Duration> = Some(Duration::from_secs(10));

    fn engine(depth: usize, busy_poll: bool) -> Engine {
        Engine::new(Arc::new(MemVolume::new(1 << 20)), depth, 1, busy_poll).unwrap()
    }

    /// Counts `close` calls; everything else is a no-op.
    #[derive(Default)]
    struct CloseCounter(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl EngineBackend for CloseCounter {
        fn size(&self) -> u64 {
            1 << 20
        }
        async fn read(&self, _: u64, len: usize) -> Result<Bytes, FioError> {
            Ok(Bytes::from(vec![0; len]))
        }
        async fn write(&self, _: u64, _: Bytes) -> Result<(), FioError> {
            Ok(())
        }
        async fn trim(&self, _: u64, _: u64) -> Result<(), FioError> {
            Ok(())
        }
        async fn flush(&self) -> Result<(), FioError> {
            Ok(())
        }
        async fn close(&self) -> Result<(), FioError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn dropping_the_engine_closes_the_backend_once() {
        let b = Arc::new(CloseCounter::default());
        let e = Engine::new(b.clone(), 4, 1, false).unwrap();
        assert_eq!(b.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(e);
        assert_eq!(b.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn write_then_read_back_with_many_in_flight() {
        for busy in [false, true] {
            let mut e = engine(32, busy);
            for i in 0..32u64 {
                let data = Bytes::from(vec![i as u8 + 1; 4096]);
                e.submit(
                    i as usize,
                    Op::Write {
                        offset: i * 4096,
                        data,
                    },
                )
                .unwrap();
            }
            assert_eq!(e.in_flight(), 32);
            let mut tags = Vec::new();
            while tags.len() < 32 {
                let n = e.getevents(1, 32, T);
                assert!(n > 0);
                for i in 0..n {
                    let c = e.event(i).unwrap();
                    assert_eq!((c.errno, c.resid), (0, 0));
                    tags.push(c.tag);
                }
            }
            tags.sort();
            assert_eq!(tags, (0..32).collect::<Vec<_>>());
            e.submit(
                99,
                Op::Read {
                    offset: 5 * 4096,
                    len: 4096,
                },
            )
            .unwrap();
            assert_eq!(e.getevents(1, 1, T), 1);
            let c = e.event(0).unwrap();
            assert_eq!(c.tag, 99);
            assert_eq!(c.data.as_deref(), Some(&[6u8; 4096][..]));
        }
    }

    #[test]
    fn failures_carry_errno_and_full_resid() {
        let mut e = engine(4, false);
        e.submit(
            1,
            Op::Read {
                offset: (1 << 20) - 10,
                len: 4096,
            },
        )
        .unwrap();
        assert_eq!(e.getevents(1, 4, T), 1);
        let c = e.event(0).unwrap();
        assert_eq!((c.tag, c.errno, c.resid), (1, 22, 4096));
        assert!(c.data.is_none());
    }

    #[test]
    fn depth_is_enforced_and_timeouts_return_what_is_there() {
        let mut e = engine(2, false);
        e.submit(1, Op::Flush).unwrap();
        e.submit(
            2,
            Op::Trim {
                offset: 0,
                len: 4096,
            },
        )
        .unwrap();
        assert_eq!(
            e.submit(3, Op::Flush),
            Err(FioError::QueueFull { depth: 2 })
        );
        // both complete; with nothing left in flight a later call returns 0 at once
        let n = e.getevents(2, 8, Some(Duration::from_millis(200)));
        assert_eq!(n, 2);
        assert_eq!(e.getevents(1, 8, Some(Duration::from_millis(20))), 0);
        assert!(e.event(0).is_none());
        // nothing in flight: no wait even without a timeout
        assert_eq!(e.getevents(1, 8, None), 0);
    }
}
