//! The I/O shell of copyset creation: every round, ask [`crate::copyset_sync::plan`]
//! which replicas are missing and send them `CreateCopyset` over a [`ConnectionPool`].
//!
//! Runs in the active MDS only. Calls run concurrently (bounded), each with a deadline;
//! every outcome is recorded in the tracker (back-off) and counted in the metrics, and a
//! failure is logged with the copyset, chunkserver and error.

use crate::copyset_sync::{CreateConfig, CreateTask, CreateTracker};
use crate::metrics::MdsMetrics;
use crate::state::MdsState;
use basalt_proto::chunk::CreateCopyset;
use basalt_transport::{ConnectionPool, Transport};
use bytes::Bytes;
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Maps a chunkserver's registered address to the transport's address type.
pub type AddrMap<T> = Arc<dyn Fn(SocketAddr) -> <T as Transport>::Addr + Send + Sync>;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Creates accepted by their chunkserver.
    pub ok: usize,
    /// Creates that failed.
    pub failed: usize,
    /// Replicas still missing (including those backing off).
    pub missing: usize,
}

/// The reconciler.
pub struct CopysetCreator<T: Transport> {
    pool: Arc<ConnectionPool<T>>,
    addr_of: AddrMap<T>,
    cfg: CreateConfig,
    metrics: MdsMetrics,
    tracker: CreateTracker,
}

impl<T: Transport> std::fmt::Debug for CopysetCreator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopysetCreator")
            .field("cfg", &self.cfg)
            .field("tracked", &self.tracker.len())
            .finish_non_exhaustive()
    }
}

impl<T: Transport> CopysetCreator<T> {
    /// A reconciler dialling through `pool`; `addr_of` turns a registered address into
    /// one the transport dials.
    pub fn new(
        pool: Arc<ConnectionPool<T>>,
        addr_of: AddrMap<T>,
        cfg: CreateConfig,
        metrics: MdsMetrics,
    ) -> Self {
        Self {
            pool,
            addr_of,
            cfg,
            metrics,
            tracker: CreateTracker::default(),
        }
    }

    async fn create(&self, task: &CreateTask) -> Result<(), String> {
        let addr = (self.addr_of)(task.addr);
        let req = CreateCopyset {
            group: task.group,
            peers: task.peers.clone(),
        };
        let timeout = Duration::from_millis(self.cfg.rpc_timeout_ms);
        match tokio::time::timeout(timeout, self.pool.call(&addr, &req, Bytes::new())).await {
            Err(_) => {
                // The connection may be stuck; dial afresh next time.
                self.pool.invalidate(&addr);
                Err(format!("no answer within {} ms", self.cfg.rpc_timeout_ms))
            }
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok((Err(e), _))) => Err(e.to_string()),
            Ok(Ok((Ok(()), _))) => Ok(()),
        }
    }

    /// One round at `now_ms`.
    pub async fn run_once(&mut self, state: &MdsState, now_ms: u64) -> Round {
        let plan = state.plan_creates(&self.tracker, now_ms, &self.cfg).await;
        self.tracker.retain(&plan.missing);
        let this = &*self;
        let results: Vec<(CreateTask, Result<(), String>)> = futures::stream::iter(plan.due)
            .map(|task| async move {
                let r = this.create(&task).await;
                (task, r)
            })
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        let mut round = Round {
            missing: plan.missing.len(),
            ..Round::default()
        };
        for (task, r) in results {
            let ok = r.is_ok();
            self.metrics.copyset_create(ok);
            self.tracker.record(task.group, task.target, now_ms, ok);
            match r {
                Ok(()) => {
                    round.ok += 1;
                    tracing::debug!(group = %task.group, cs = %task.target, "copyset create sent");
                }
                Err(error) => {
                    round.failed += 1;
                    let failures = self
                        .tracker
                        .get(task.group, task.target)
                        .map_or(0, |a| a.failures);
                    tracing::warn!(group = %task.group, cs = %task.target, addr = %task.addr,
                        failures, %error, "copyset create failed; will retry");
                }
            }
        }
        round
    }

    /// Run rounds every `interval-ms` until the task is dropped or aborted.
    pub async fn run(mut self, state: Arc<MdsState>, clock: Arc<dyn Fn() -> u64 + Send + Sync>) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let r = self.run_once(&state, clock()).await;
            if r.ok + r.failed > 0 {
                tracing::debug!(?r, "copyset creation round");
            }
        }
    }
}
