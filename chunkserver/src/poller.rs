//! Poller threads: a fixed set of named threads (`basalt-poll-N`), each owning one
//! [`IoBackend`] instance (its own io_uring ring) and serving the requests of the groups
//! sharded to it (`group id % threads`). A request comes in through the thread's channel,
//! is submitted to the backend, and its completion is reaped by the same thread and sent
//! back on a oneshot channel.
//!
//! Idle behaviour is a configuration switch: [`PollMode::Busy`] spins for a bounded number
//! of empty rounds before parking (pays on dedicated cores), [`PollMode::Park`] parks at
//! once: on the channel when nothing is in flight, on the backend otherwise.

use crate::backend::{
    AlignedBuf, BackendFactory, BackendKind, IoBackend, IoCompletion, IoOp, IoRequest,
};
use crate::error::{ChunkServerError, Result};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// What a poller does when it has nothing to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PollMode {
    /// Spin for `spin-rounds` empty rounds, then park.
    Busy,
    /// Park at once.
    #[default]
    Park,
}

/// Poller settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerOptions {
    /// Number of threads.
    pub threads: usize,
    /// Idle behaviour.
    pub mode: PollMode,
    /// Empty rounds spun before parking in busy mode.
    pub spin_rounds: u32,
}

impl Default for PollerOptions {
    fn default() -> Self {
        PollerOptions {
            threads: 2,
            mode: PollMode::Park,
            spin_rounds: 10_000,
        }
    }
}

struct Job {
    op: IoOp,
    file: Arc<File>,
    offset: u64,
    buf: AlignedBuf,
    reply: oneshot::Sender<IoCompletion>,
}

/// The running poller threads.
pub struct Pollers {
    senders: Vec<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
    kind: BackendKind,
}

impl std::fmt::Debug for Pollers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pollers")
            .field("threads", &self.senders.len())
            .field("backend", &self.kind)
            .finish()
    }
}

impl Pollers {
    /// Start `opts.threads` pollers, each with a backend instance from `factory` (created
    /// on its own thread). Fails if any instance cannot be created.
    pub fn start(opts: PollerOptions, factory: &BackendFactory) -> Result<Pollers> {
        let threads = opts.threads.max(1);
        let mut senders = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
            let factory = factory.clone();
            let handle = std::thread::Builder::new()
                .name(format!("basalt-poll-{i}"))
                .spawn(move || match factory.create() {
                    Ok(backend) => {
                        let _ = ready_tx.send(Ok(()));
                        run(backend, rx, opts);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                })
                .map_err(|source| ChunkServerError::Disk {
                    op: "spawn poller thread",
                    source,
                })?;
            let ready = ready_rx
                .recv()
                .unwrap_or(Err(ChunkServerError::ThreadGone { thread: "poller" }));
            senders.push(tx);
            handles.push(handle);
            if let Err(e) = ready {
                // Dropping `senders` stops the pollers already started.
                drop(senders);
                for h in handles {
                    let _ = h.join();
                }
                return Err(e);
            }
        }
        Ok(Pollers {
            senders,
            handles,
            kind: factory.kind(),
        })
    }

    /// Number of poller threads.
    pub fn threads(&self) -> usize {
        self.senders.len()
    }

    /// The backend the pollers run.
    pub fn backend(&self) -> BackendKind {
        self.kind
    }

    /// Run one request on the poller serving `shard` (e.g. a group id); returns the bytes
    /// transferred and the buffer.
    pub async fn submit(
        &self,
        shard: u64,
        op: IoOp,
        file: Arc<File>,
        offset: u64,
        buf: AlignedBuf,
    ) -> Result<(usize, AlignedBuf)> {
        let (reply, rx) = oneshot::channel();
        let tx = &self.senders[(shard % self.senders.len() as u64) as usize];
        tx.send(Job {
            op,
            file,
            offset,
            buf,
            reply,
        })
        .map_err(|_| ChunkServerError::ThreadGone { thread: "poller" })?;
        let c = rx
            .await
            .map_err(|_| ChunkServerError::ThreadGone { thread: "poller" })?;
        c.result.map(|n| (n, c.buf))
    }
}

impl Drop for Pollers {
    fn drop(&mut self) {
        self.senders.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Reply channels of in-flight requests, indexed by `user_data`.
#[derive(Default)]
struct Slots {
    replies: Vec<Option<oneshot::Sender<IoCompletion>>>,
    free: Vec<usize>,
}

impl Slots {
    fn submit(&mut self, backend: &mut dyn IoBackend, job: Job) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.replies.push(None);
            self.replies.len() - 1
        });
        self.replies[slot] = Some(job.reply);
        backend.submit(IoRequest {
            op: job.op,
            file: job.file,
            offset: job.offset,
            buf: job.buf,
            user_data: slot as u64,
        });
    }

    fn deliver(&mut self, done: &mut Vec<IoCompletion>) {
        for c in done.drain(..) {
            let slot = c.user_data as usize;
            if let Some(reply) = self.replies.get_mut(slot).and_then(Option::take) {
                self.free.push(slot);
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send(c);
            }
        }
    }
}

fn run(mut backend: Box<dyn IoBackend>, rx: Receiver<Job>, opts: PollerOptions) {
    let mut slots = Slots::default();
    let mut done = Vec::new();
    let mut closed = false;
    let mut idle_rounds = 0u32;
    loop {
        let mut progressed = false;
        while !closed {
            match rx.try_recv() {
                Ok(job) => {
                    slots.submit(backend.as_mut(), job);
                    progressed = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => closed = true,
            }
        }
        backend.reap(&mut done, false);
        progressed |= !done.is_empty();
        slots.deliver(&mut done);
        if closed && backend.in_flight() == 0 {
            return;
        }
        if progressed {
            idle_rounds = 0;
            continue;
        }
        idle_rounds = idle_rounds.saturating_add(1);
        if opts.mode == PollMode::Busy && idle_rounds < opts.spin_rounds {
            std::hint::spin_loop();
            continue;
        }
        if backend.in_flight() > 0 {
            backend.reap(&mut done, true);
            slots.deliver(&mut done);
        } else if !closed {
            match rx.recv() {
                Ok(job) => slots.submit(backend.as_mut(), job),
                Err(_) => closed = true,
            }
        }
    }
}
