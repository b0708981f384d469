//! Purging the recycle area: deleted volumes' chunks are deleted on the chunkservers,
//! then their segment records and recycle record.
//!
//! Order makes a purge resumable: chunks first, records last. An MDS that dies (or is
//! deposed) half-way leaves the recycle record and the segment records in place, so a
//! later purge by any MDS deletes the same chunks again (a chunk already gone counts as
//! deleted) and then removes the records. Chunk ids are never reused: the id counter
//! only grows, whatever is purged.
//!
//! The decisions (which volumes, which chunks, what a chunkserver's answer means) are
//! sans-IO functions; [`Purger`] is the thin transport shell.

use crate::error::{Error, Result};
use crate::state::MdsState;
use basalt_proto::chunk::{DeleteChunk, RequestId};
use basalt_proto::ids::{ChunkId, Epoch, GroupId, VolumeId};
use basalt_proto::mds::{Purged, VolumeInfo};
use basalt_proto::status::{ChunkError, MdsError};
use basalt_transport::{CallOptions, ConnectionPool, Transport};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The stored recycle record: the volume as it was, and when it was deleted. Records
/// written before `deleted-s` existed decode with 0 (due for the automatic purge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecycledVolume {
    /// The volume as it was when deleted.
    #[serde(flatten)]
    pub volume: VolumeInfo,
    /// Deletion time, seconds since the Unix epoch.
    #[serde(default)]
    pub deleted_s: u64,
}

/// Purge settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct PurgeConfig {
    /// Deleted volumes older than this are purged automatically (0: soon after delete).
    pub recycle_retention_secs: u64,
    /// How often the active MDS looks for volumes due for purge.
    pub interval_ms: u64,
    /// Deadline of one DeleteChunk call.
    pub rpc_timeout_ms: u64,
    /// Calls per chunk before the purge of its volume is reported incomplete.
    pub attempts: u32,
    /// Chunk deletes in flight at once.
    pub concurrency: usize,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        Self {
            recycle_retention_secs: 86_400,
            interval_ms: 10_000,
            rpc_timeout_ms: 3_000,
            attempts: 8,
            concurrency: 16,
        }
    }
}

/// One chunk to delete, with where to send the delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkTarget {
    /// Copyset group.
    pub group: GroupId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Copyset epoch the MDS knows.
    pub epoch: Epoch,
    /// Leader hint first, then the other peers.
    pub peers: Vec<SocketAddr>,
}

/// Recycled volumes a purge of `name` selects: every recycled volume of that name. A
/// live volume of that name and no recycled one is [`MdsError::VolumeNotDeleted`];
/// neither is [`MdsError::VolumeNotFound`].
pub fn select_by_name(
    recycled: &[RecycledVolume],
    live: Option<&VolumeInfo>,
    name: &str,
) -> std::result::Result<Vec<VolumeInfo>, MdsError> {
    let hits: Vec<VolumeInfo> = recycled
        .iter()
        .filter(|r| r.volume.name == name)
        .map(|r| r.volume.clone())
        .collect();
    match (hits.is_empty(), live) {
        (false, _) => Ok(hits),
        (true, Some(v)) => Err(MdsError::VolumeNotDeleted { volume: v.id }),
        (true, None) => Err(MdsError::VolumeNotFound),
    }
}

/// Recycled volumes deleted at least `retention_s` ago at `now_s`.
pub fn due(recycled: &[RecycledVolume], now_s: u64, retention_s: u64) -> Vec<VolumeId> {
    recycled
        .iter()
        .filter(|r| now_s.saturating_sub(r.deleted_s) >= retention_s)
        .map(|r| r.volume.id)
        .collect()
}

/// What to do after one DeleteChunk answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The chunk is gone.
    Done,
    /// Send to this address next (a leader hint).
    To(SocketAddr),
    /// Retry with this epoch (the copyset's configuration changed).
    Epoch(Epoch),
    /// Try the next peer after a pause.
    NextPeer,
}

/// Fold a DeleteChunk answer (`None`: no answer / transport failure).
pub fn next_step(reply: Option<&std::result::Result<(), ChunkError>>) -> Next {
    match reply {
        Some(Ok(())) | Some(Err(ChunkError::ChunkNotFound { .. })) => Next::Done,
        Some(Err(ChunkError::Redirect {
            leader: Some(l), ..
        })) => Next::To(l.addr),
        Some(Err(ChunkError::EpochTooOld { current, .. })) => Next::Epoch(*current),
        _ => Next::NextPeer,
    }
}

/// The transport shell: sends the deletes and drives [`MdsState`]'s record removal.
pub struct Purger<T: Transport> {
    pool: Arc<ConnectionPool<T>>,
    addr_of: crate::copyset_creator::AddrMap<T>,
    cfg: PurgeConfig,
    /// One purge at a time (RPC-triggered and background ones would only duplicate work).
    running: tokio::sync::Mutex<()>,
}

impl<T: Transport> std::fmt::Debug for Purger<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Purger")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Purger<T> {
    /// A purger dialling through `pool`.
    pub fn new(
        pool: Arc<ConnectionPool<T>>,
        addr_of: crate::copyset_creator::AddrMap<T>,
        cfg: PurgeConfig,
    ) -> Self {
        Self {
            pool,
            addr_of,
            cfg,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &PurgeConfig {
        &self.cfg
    }

    async fn call(&self, addr: SocketAddr, req: &DeleteChunk) -> Option<ChunkReply> {
        let addr = (self.addr_of)(addr);
        let timeout = Duration::from_millis(self.cfg.rpc_timeout_ms.max(1));
        let fut = async {
            let conn = self.pool.get(&addr).await?;
            let opts = CallOptions {
                group: req.group,
                deadline: Some(tokio::time::Instant::now() + timeout),
            };
            conn.call_with(req, Bytes::new(), opts).await
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok((reply, _))) => Some(reply),
            _ => {
                self.pool.invalidate(&addr);
                None
            }
        }
    }

    /// Delete one chunk: leader first, following hints; bounded attempts.
    async fn delete(&self, t: &ChunkTarget) -> bool {
        if t.peers.is_empty() {
            return false;
        }
        let mut epoch = t.epoch;
        let mut hint: Option<SocketAddr> = None;
        let mut next_peer = 0usize;
        for attempt in 0..self.cfg.attempts.max(1) {
            let addr = hint.take().unwrap_or_else(|| {
                let a = t.peers[next_peer % t.peers.len()];
                next_peer += 1;
                a
            });
            let req = DeleteChunk {
                group: t.group,
                chunk: t.chunk,
                epoch,
                req: RequestId::NONE,
            };
            let reply = self.call(addr, &req).await;
            match next_step(reply.as_ref()) {
                Next::Done => return true,
                Next::To(a) => hint = Some(a),
                Next::Epoch(e) => {
                    epoch = e;
                    hint = Some(addr);
                }
                Next::NextPeer => {
                    let ms = 50u64 << attempt.min(5);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
        tracing::warn!(group = %t.group, chunk = %t.chunk, "chunk delete gave up");
        false
    }

    /// Purge one recycled volume: every chunk, then its records. An incomplete chunk
    /// pass leaves every record (retry later).
    async fn purge_one(&self, state: &MdsState, volume: VolumeId) -> Result<u64> {
        let targets = state.purge_targets(volume).await?;
        let n = targets.len() as u64;
        let calls: Vec<_> = targets.iter().map(|t| self.delete(t)).collect();
        let done: Vec<bool> = futures::stream::iter(calls)
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        let failed = done.iter().filter(|ok| !**ok).count() as u64;
        if failed > 0 {
            return Err(Error::Request(MdsError::PurgeIncomplete { volume, failed }));
        }
        state.finish_purge(volume).await?;
        tracing::info!(%volume, chunks = n, "volume purged");
        Ok(n)
    }

    /// Purge these recycled volumes in turn.
    pub async fn purge(&self, state: &MdsState, volumes: &[VolumeId]) -> Result<Purged> {
        let _one = self.running.lock().await;
        let mut out = Purged {
            volumes: Vec::new(),
            chunks: 0,
        };
        for v in volumes {
            out.chunks += self.purge_one(state, *v).await?;
            out.volumes.push(*v);
        }
        Ok(out)
    }

    /// Every `interval-ms`, purge the volumes past their retention, until aborted.
    pub async fn run(
        self: Arc<Self>,
        state: Arc<MdsState>,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now_s = clock() / 1000;
            let due = state
                .due_purges(now_s, self.cfg.recycle_retention_secs)
                .await;
            if due.is_empty() {
                continue;
            }
            if let Err(e) = self.purge(&state, &due).await {
                tracing::warn!(error = %e, "automatic purge incomplete; will retry");
            }
        }
    }
}

type ChunkReply = std::result::Result<(), ChunkError>;

/// A purger as the state sees it (no transport type).
pub trait PurgeRunner: Send + Sync + std::fmt::Debug {
    /// Purge these recycled volumes (see [`Purger::purge`]).
    fn purge<'a>(
        &'a self,
        state: &'a MdsState,
        volumes: &'a [VolumeId],
    ) -> futures::future::BoxFuture<'a, Result<Purged>>;
}

impl<T: Transport> PurgeRunner for Purger<T> {
    fn purge<'a>(
        &'a self,
        state: &'a MdsState,
        volumes: &'a [VolumeId],
    ) -> futures::future::BoxFuture<'a, Result<Purged>> {
        Box::pin(Purger::purge(self, state, volumes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::{ChunkServerId, LogicalPoolId};
    use basalt_proto::status::PeerAddr;

    fn rv(id: u64, name: &str, deleted_s: u64) -> RecycledVolume {
        RecycledVolume {
            volume: VolumeInfo {
                id: VolumeId(id),
                name: name.into(),
                size: 1 << 30,
                owner: "o".into(),
                pool: LogicalPoolId(1),
                ctime: 1,
            },
            deleted_s,
        }
    }

    #[test]
    fn selection_by_name() {
        let r = [rv(1, "a", 10), rv(2, "b", 10), rv(3, "a", 20)];
        let ids: Vec<_> = select_by_name(&r, None, "a")
            .unwrap()
            .iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(ids, vec![VolumeId(1), VolumeId(3)]);
        assert_eq!(select_by_name(&r, None, "c"), Err(MdsError::VolumeNotFound));
        let live = rv(9, "c", 0).volume;
        assert_eq!(
            select_by_name(&r, Some(&live), "c"),
            Err(MdsError::VolumeNotDeleted {
                volume: VolumeId(9)
            })
        );
    }

    #[test]
    fn due_by_retention() {
        let r = [rv(1, "a", 100), rv(2, "b", 150), rv(3, "c", 0)];
        assert_eq!(due(&r, 200, 100), vec![VolumeId(1), VolumeId(3)]);
        assert_eq!(due(&r, 150, 0), vec![VolumeId(1), VolumeId(2), VolumeId(3)]);
        assert_eq!(due(&r, 50, 100), Vec::<VolumeId>::new());
    }

    #[test]
    fn replies_fold() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let g = GroupId(7);
        assert_eq!(next_step(Some(&Ok(()))), Next::Done);
        assert_eq!(
            next_step(Some(&Err(ChunkError::ChunkNotFound { chunk: ChunkId(1) }))),
            Next::Done
        );
        assert_eq!(
            next_step(Some(&Err(ChunkError::Redirect {
                group: g,
                leader: Some(PeerAddr {
                    id: ChunkServerId(2),
                    addr: a
                })
            }))),
            Next::To(a)
        );
        assert_eq!(
            next_step(Some(&Err(ChunkError::Redirect {
                group: g,
                leader: None
            }))),
            Next::NextPeer
        );
        assert_eq!(
            next_step(Some(&Err(ChunkError::EpochTooOld {
                group: g,
                sent: Epoch(1),
                current: Epoch(3)
            }))),
            Next::Epoch(Epoch(3))
        );
        assert_eq!(next_step(Some(&Err(ChunkError::NoSpace))), Next::NextPeer);
        assert_eq!(next_step(None), Next::NextPeer);
    }

    #[test]
    fn old_records_decode_without_deletion_time() {
        let v = rv(4, "x", 0).volume;
        let bytes = serde_json::to_vec(&v).unwrap();
        let r: RecycledVolume = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(r, rv(4, "x", 0));
        let new = serde_json::to_vec(&rv(4, "x", 77)).unwrap();
        let back: RecycledVolume = serde_json::from_slice(&new).unwrap();
        assert_eq!(back.deleted_s, 77);
    }
}
