//! TEST SUPPORT ONLY: in-memory twins of the storage seams and of the raft network, for
//! the copyset tests. Nothing here is durable or fast; the daemon never uses it.

use crate::chunk_api::ChunkStore;
use crate::copyset::network::{Lane, RaftMsgKind, RaftNet};
use crate::copyset::registry::Copysets;
use crate::error::{ChunkServerError, Result};
use crate::group_log::{Durable, GroupLog, LogRecord, MetaKey};
use basalt_proto::ids::{ChunkId, GroupId, CHUNK_SIZE};
use basalt_proto::status::PeerAddr;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct MemGroup {
    entries: BTreeMap<u64, Bytes>,
    meta: HashMap<MetaKey, Bytes>,
}

/// In-memory [`GroupLog`]: appends are "durable" at once (the callback runs on a spawned
/// task, as a WAL thread would run it).
#[derive(Default)]
pub struct MemGroupLog {
    groups: Mutex<HashMap<GroupId, MemGroup>>,
}

impl MemGroupLog {
    /// An empty log.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Entries held for a group (for purge assertions).
    pub fn entry_count(&self, group: GroupId) -> usize {
        self.groups
            .lock()
            .get(&group)
            .map_or(0, |g| g.entries.len())
    }
}

impl GroupLog for MemGroupLog {
    fn append(&self, group: GroupId, records: Vec<LogRecord>, done: Durable) {
        let res = {
            let mut gs = self.groups.lock();
            let g = gs.entry(group).or_default();
            let last = g.entries.keys().next_back().copied();
            match (last, records.first()) {
                (Some(last), Some(first)) if first.index != last + 1 => {
                    Err(ChunkServerError::LogGap {
                        group,
                        last,
                        got: first.index,
                    })
                }
                _ => {
                    for r in records {
                        g.entries.insert(r.index, r.data);
                    }
                    Ok(())
                }
            }
        };
        tokio::spawn(async move { done(res) });
    }

    fn read(&self, group: GroupId, from: u64, to: u64) -> Result<Vec<LogRecord>> {
        let gs = self.groups.lock();
        Ok(gs.get(&group).map_or_else(Vec::new, |g| {
            g.entries
                .range(from..to)
                .map(|(&index, data)| LogRecord {
                    index,
                    data: data.clone(),
                })
                .collect()
        }))
    }

    fn bounds(&self, group: GroupId) -> Option<(u64, u64)> {
        let gs = self.groups.lock();
        let g = gs.get(&group)?;
        Some((*g.entries.keys().next()?, *g.entries.keys().next_back()?))
    }

    fn truncate_after(&self, group: GroupId, after: Option<u64>) -> Result<()> {
        let mut gs = self.groups.lock();
        if let Some(g) = gs.get_mut(&group) {
            match after {
                Some(a) => {
                    g.entries.split_off(&(a + 1));
                }
                None => g.entries.clear(),
            }
        }
        Ok(())
    }

    fn purge_upto(&self, group: GroupId, upto: u64) -> Result<()> {
        let mut gs = self.groups.lock();
        if let Some(g) = gs.get_mut(&group) {
            g.entries = g.entries.split_off(&(upto + 1));
        }
        Ok(())
    }

    fn save_meta(&self, group: GroupId, key: MetaKey, value: Bytes) -> Result<()> {
        self.groups
            .lock()
            .entry(group)
            .or_default()
            .meta
            .insert(key, value);
        Ok(())
    }

    fn load_meta(&self, group: GroupId, key: MetaKey) -> Result<Option<Bytes>> {
        Ok(self
            .groups
            .lock()
            .get(&group)
            .and_then(|g| g.meta.get(&key).cloned()))
    }

    fn groups(&self) -> Vec<GroupId> {
        self.groups.lock().keys().copied().collect()
    }

    fn remove_group(&self, group: GroupId) -> Result<()> {
        self.groups.lock().remove(&group);
        Ok(())
    }
}

/// In-memory [`ChunkStore`]: a chunk is a byte vector grown to its highest written byte.
#[derive(Default)]
pub struct MemChunkStore {
    chunks: Mutex<HashMap<(GroupId, ChunkId), Vec<u8>>>,
}

impl MemChunkStore {
    /// An empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Number of chunks of a group.
    pub fn chunk_count(&self, group: GroupId) -> usize {
        self.chunks
            .lock()
            .keys()
            .filter(|(g, _)| *g == group)
            .count()
    }
}

fn check_range(offset: u64, len: u64) -> Result<()> {
    if offset % 512 != 0 || len % 512 != 0 || offset.saturating_add(len) > CHUNK_SIZE {
        return Err(ChunkServerError::BadRange { offset, len });
    }
    Ok(())
}

impl ChunkStore for MemChunkStore {
    fn write(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        data: Bytes,
    ) -> BoxFuture<'_, Result<()>> {
        let res = check_range(offset, data.len() as u64).map(|()| {
            let mut cs = self.chunks.lock();
            let v = cs.entry((group, chunk)).or_default();
            let end = offset as usize + data.len();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset as usize..end].copy_from_slice(&data);
        });
        async move { res }.boxed()
    }

    fn read(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'_, Result<Option<Bytes>>> {
        let res = check_range(offset, len).map(|()| {
            let cs = self.chunks.lock();
            cs.get(&(group, chunk)).map(|v| {
                let mut out = vec![0u8; len as usize];
                let start = (offset as usize).min(v.len());
                let end = (offset as usize + len as usize).min(v.len());
                out[..end - start].copy_from_slice(&v[start..end]);
                Bytes::from(out)
            })
        });
        async move { res }.boxed()
    }

    fn delete(&self, group: GroupId, chunk: ChunkId) -> BoxFuture<'_, Result<()>> {
        self.chunks.lock().remove(&(group, chunk));
        async { Ok(()) }.boxed()
    }

    fn list(&self, group: GroupId) -> Result<Vec<ChunkId>> {
        let mut v: Vec<_> = self
            .chunks
            .lock()
            .keys()
            .filter(|(g, _)| *g == group)
            .map(|(_, c)| *c)
            .collect();
        v.sort();
        Ok(v)
    }

    fn sync_group(&self, _group: GroupId) -> BoxFuture<'_, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn remove_group(&self, group: GroupId) -> BoxFuture<'_, Result<()>> {
        self.chunks.lock().retain(|(g, _), _| *g != group);
        async { Ok(()) }.boxed()
    }
}

#[derive(Default)]
struct Hub {
    nodes: HashMap<u64, Copysets>,
    down: HashSet<u64>,
}

/// In-memory raft network between registries of one test process. A node can be taken
/// down (its messages in and out fail as unreachable) and brought back.
#[derive(Default, Clone)]
pub struct MemNet {
    hub: Arc<Mutex<Hub>>,
}

impl MemNet {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// The [`RaftNet`] of chunkserver `local`.
    pub fn endpoint(&self, local: u64) -> Arc<dyn RaftNet> {
        Arc::new(MemEndpoint {
            hub: self.hub.clone(),
            local,
        })
    }

    /// Deliver messages for `id` to `registry`.
    pub fn register(&self, id: u64, registry: Copysets) {
        let mut h = self.hub.lock();
        h.nodes.insert(id, registry);
        h.down.remove(&id);
    }

    /// Cut `id` off (messages to and from it fail as unreachable) or reconnect it; its
    /// registry keeps running.
    pub fn set_isolated(&self, id: u64, isolated: bool) {
        let mut h = self.hub.lock();
        if isolated {
            h.down.insert(id);
        } else {
            h.down.remove(&id);
        }
    }

    /// Stop delivering to and from `id` (and forget its registry).
    pub fn unregister(&self, id: u64) {
        let mut h = self.hub.lock();
        h.nodes.remove(&id);
        h.down.insert(id);
    }
}

struct MemEndpoint {
    hub: Arc<Mutex<Hub>>,
    local: u64,
}

impl RaftNet for MemEndpoint {
    fn learn(&self, _peer: &PeerAddr) {}

    fn call(
        &self,
        target: u64,
        group: GroupId,
        kind: RaftMsgKind,
        _lane: Lane,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes>> {
        let dest = {
            let h = self.hub.lock();
            if h.down.contains(&self.local) || h.down.contains(&target) {
                None
            } else {
                h.nodes.get(&target).cloned()
            }
        };
        async move {
            let Some(dest) = dest else {
                return Err(ChunkServerError::PeerUnreachable {
                    peer: target,
                    reason: "down".into(),
                });
            };
            match tokio::time::timeout(timeout, dest.handle_raft(group, kind, &body)).await {
                Err(_) => Err(ChunkServerError::PeerTimeout { peer: target }),
                Ok(Err(error)) => Err(ChunkServerError::PeerRefused {
                    peer: target,
                    error,
                }),
                Ok(Ok(reply)) => Ok(reply),
            }
        }
        .boxed()
    }
}
