//! openraft log storage of one copyset on top of the shared WAL ([`GroupLog`]).
//!
//! Entries are bincode-encoded openraft entries, one [`LogRecord`] per entry. The vote lives
//! under [`MetaKey::Vote`]; [`MetaKey::Purged`] holds a [`PurgeRecord`]: the last purged log
//! id together with the snapshot that made purging legal (the state machine writes the
//! snapshot half, see [`GroupMeta`]). `committed` is deliberately not persisted: it would cost
//! a durable metadata write per commit, and a restarted replica re-learns it from the leader
//! (reads wait for the leader's read index, so nothing stale is served).

use crate::copyset::codec;
use crate::copyset::sessions::Sessions;
use crate::copyset::types::alias::{Entry, LogId, SnapshotMeta, Vote};
use crate::copyset::types::CopysetTypes;
use crate::error::ChunkServerError;
use crate::group_log::{GroupLog, LogRecord, MetaKey};
use basalt_proto::ids::GroupId;
use bytes::Bytes;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

fn io_err(e: ChunkServerError) -> io::Error {
    io::Error::other(e)
}

fn codec_err(group: GroupId, source: codec::CodecError) -> io::Error {
    io_err(ChunkServerError::RaftCodec { group, source })
}

/// What [`MetaKey::Purged`] holds for a copyset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PurgeRecord {
    /// Last log id removed from the log.
    pub purged: Option<LogId>,
    /// The last snapshot built or installed (chunks synced up to it).
    pub snapshot: Option<SnapshotMeta>,
    /// The state machine's dedupe table at that snapshot (in the same record, so a crash
    /// never leaves one without the other).
    pub sessions: Sessions,
}

/// The per-group durable record shared by the log store and the state machine.
pub struct GroupMeta {
    group: GroupId,
    log: Arc<dyn GroupLog>,
    record: Mutex<PurgeRecord>,
}

impl GroupMeta {
    /// Load the group's record (empty for a new group).
    pub fn load(log: Arc<dyn GroupLog>, group: GroupId) -> Result<Arc<Self>, ChunkServerError> {
        let record = match log.load_meta(group, MetaKey::Purged)? {
            Some(b) => {
                codec::decode(&b).map_err(|source| ChunkServerError::RaftCodec { group, source })?
            }
            None => PurgeRecord::default(),
        };
        Ok(Arc::new(GroupMeta {
            group,
            log,
            record: Mutex::new(record),
        }))
    }

    /// Last purged log id.
    pub fn purged(&self) -> Option<LogId> {
        self.record.lock().purged
    }

    /// Meta of the last snapshot.
    pub fn snapshot(&self) -> Option<SnapshotMeta> {
        self.record.lock().snapshot.clone()
    }

    /// Meta of the last snapshot with the dedupe table recorded with it.
    pub fn snapshot_with_sessions(&self) -> Option<(SnapshotMeta, Sessions)> {
        let rec = self.record.lock();
        rec.snapshot.clone().map(|m| (m, rec.sessions.clone()))
    }

    fn update(&self, f: impl FnOnce(&mut PurgeRecord)) -> io::Result<()> {
        let mut rec = self.record.lock();
        let mut next = rec.clone();
        f(&mut next);
        let bytes = codec::encode(&next).map_err(|e| codec_err(self.group, e))?;
        self.log
            .save_meta(self.group, MetaKey::Purged, Bytes::from(bytes))
            .map_err(io_err)?;
        *rec = next;
        Ok(())
    }

    /// Durably record a purge.
    pub fn set_purged(&self, id: LogId) -> io::Result<()> {
        self.update(|r| r.purged = Some(id))
    }

    /// Durably record a snapshot (its chunks are synced). An older snapshot than the one
    /// recorded is ignored: a build that started before a newer snapshot was installed
    /// must not move the restart point back behind the purged log.
    pub fn set_snapshot(&self, meta: SnapshotMeta, sessions: Sessions) -> io::Result<()> {
        let current = self
            .record
            .lock()
            .snapshot
            .as_ref()
            .and_then(|m| m.last_log_id);
        if meta.last_log_id <= current {
            return Ok(());
        }
        self.update(|r| {
            r.snapshot = Some(meta);
            r.sessions = sessions;
        })
    }
}

/// openraft log storage (and reader) of one copyset.
#[derive(Clone)]
pub struct GroupLogStore {
    group: GroupId,
    log: Arc<dyn GroupLog>,
    meta: Arc<GroupMeta>,
}

impl GroupLogStore {
    /// Log storage of `group` in `log`, sharing `meta` with the state machine.
    pub fn new(log: Arc<dyn GroupLog>, group: GroupId, meta: Arc<GroupMeta>) -> Self {
        GroupLogStore { group, log, meta }
    }

    fn decode_entry(&self, rec: &LogRecord) -> io::Result<Entry> {
        let e: Entry = codec::decode(&rec.data).map_err(|e| codec_err(self.group, e))?;
        if e.log_id.index != rec.index {
            return Err(io_err(ChunkServerError::LogIndexMissing {
                group: self.group,
                index: rec.index,
            }));
        }
        Ok(e)
    }
}

/// Persist the initial vote of a new replica so the group is found by
/// [`GroupLog::groups`] after a restart even before it received any entry.
pub fn save_initial_vote(
    log: &dyn GroupLog,
    group: GroupId,
    local: u64,
) -> Result<(), ChunkServerError> {
    if log.load_meta(group, MetaKey::Vote)?.is_some() {
        return Ok(());
    }
    let vote = Vote::new(0, local);
    let bytes =
        codec::encode(&vote).map_err(|source| ChunkServerError::RaftCodec { group, source })?;
    log.save_meta(group, MetaKey::Vote, Bytes::from(bytes))
}

impl RaftLogReader<CopysetTypes> for GroupLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        if from >= to {
            return Ok(Vec::new());
        }
        let recs = self.log.read(self.group, from, to).map_err(io_err)?;
        recs.iter().map(|r| self.decode_entry(r)).collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        match self
            .log
            .load_meta(self.group, MetaKey::Vote)
            .map_err(io_err)?
        {
            Some(b) => Ok(Some(
                codec::decode(&b).map_err(|e| codec_err(self.group, e))?,
            )),
            None => Ok(None),
        }
    }
}

impl RaftLogStorage<CopysetTypes> for GroupLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<CopysetTypes>, io::Error> {
        let purged = self.meta.purged();
        let last = match self.log.bounds(self.group) {
            Some((_, last)) => {
                let recs = self
                    .log
                    .read(self.group, last, last.saturating_add(1))
                    .map_err(io_err)?;
                match recs.first() {
                    Some(r) => Some(self.decode_entry(r)?.log_id),
                    None => purged,
                }
            }
            None => purged,
        };
        // Entries at or below the purge point may linger (purging is lazy on disk).
        let last = if last < purged { purged } else { last };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = codec::encode(vote).map_err(|e| codec_err(self.group, e))?;
        self.log
            .save_meta(self.group, MetaKey::Vote, Bytes::from(bytes))
            .map_err(io_err)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<CopysetTypes>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut records = Vec::new();
        for e in entries {
            let data = codec::encode(&e).map_err(|err| codec_err(self.group, err))?;
            records.push(LogRecord {
                index: e.log_id.index,
                data: Bytes::from(data),
            });
        }
        if records.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        self.log.append(
            self.group,
            records,
            Box::new(move |r| callback.io_completed(r.map_err(io_err))),
        );
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.log
            .truncate_after(self.group, last_log_id.map(|l| l.index))
            .map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Record first: a crash in between leaves entries the record already says are gone,
        // which readers never ask for.
        self.meta.set_purged(log_id)?;
        self.log
            .purge_upto(self.group, log_id.index)
            .map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copyset::testing::MemGroupLog;
    use crate::copyset::types::ChunkOp;
    use basalt_proto::ids::ChunkId;
    use openraft::storage::RaftLogStorageExt;
    use openraft::vote::RaftLeaderId;
    use openraft::EntryPayload;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId {
            leader_id: openraft::impls::leader_id_adv::LeaderId::<u64, u64>::new(term, 1)
                .to_committed(),
            index,
        }
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(ChunkOp::Delete {
                chunk: ChunkId(index),
                req: basalt_proto::chunk::RequestId::NONE,
            }),
        }
    }

    fn store(log: Arc<MemGroupLog>) -> GroupLogStore {
        let g = GroupId(7);
        let meta = GroupMeta::load(log.clone(), g).unwrap();
        GroupLogStore::new(log, g, meta)
    }

    #[tokio::test]
    async fn append_read_truncate_purge_and_reload() {
        let log = MemGroupLog::new();
        let mut s = store(log.clone());
        let st = s.get_log_state().await.unwrap();
        assert_eq!((st.last_purged_log_id, st.last_log_id), (None, None));

        s.blocking_append((1..=10).map(|i| entry(1, i)))
            .await
            .unwrap();
        let got = s.try_get_log_entries(3..6).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(got[0], entry(1, 3));
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 10))
        );

        s.truncate_after(Some(log_id(1, 7))).await.unwrap();
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 7))
        );
        s.purge(log_id(1, 4)).await.unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 4)));
        assert_eq!(st.last_log_id, Some(log_id(1, 7)));
        assert!(s.try_get_log_entries(0..5).await.unwrap().is_empty());

        let vote = Vote::new(3, 2);
        s.save_vote(&vote).await.unwrap();

        // A new store over the same log sees the same state.
        let mut s2 = store(log.clone());
        assert_eq!(s2.read_vote().await.unwrap(), Some(vote));
        let st = s2.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 4)));
        assert_eq!(st.last_log_id, Some(log_id(1, 7)));

        // Purging everything leaves the purge point as the last log id.
        s2.purge(log_id(1, 7)).await.unwrap();
        let st = s2.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(1, 7)));
    }

    #[test]
    fn recorded_snapshot_never_moves_back() {
        let log = MemGroupLog::new();
        let g = GroupId(7);
        let meta = GroupMeta::load(log.clone(), g).unwrap();
        let snap = |i| SnapshotMeta {
            last_log_id: Some(log_id(1, i)),
            last_membership: Default::default(),
        };
        meta.set_snapshot(snap(50), Sessions::default()).unwrap();
        meta.set_snapshot(snap(20), Sessions::default()).unwrap();
        meta.set_purged(log_id(1, 40)).unwrap();
        let reloaded = GroupMeta::load(log, g).unwrap();
        assert_eq!(
            reloaded.snapshot().unwrap().last_log_id,
            Some(log_id(1, 50))
        );
        assert_eq!(reloaded.purged(), Some(log_id(1, 40)));
    }

    #[tokio::test]
    async fn corrupt_entries_and_records_are_errors() {
        let log = MemGroupLog::new();
        let g = GroupId(7);
        log.save_meta(g, MetaKey::Purged, Bytes::from_static(b"\xff\xff"))
            .unwrap();
        assert!(matches!(
            GroupMeta::load(log.clone(), g),
            Err(ChunkServerError::RaftCodec { .. })
        ));

        let log = MemGroupLog::new();
        let mut s = store(log.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        log.append(
            g,
            vec![LogRecord {
                index: 1,
                data: Bytes::from_static(b"not an entry"),
            }],
            Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            }),
        );
        assert!(rx.await.unwrap());
        assert!(s.try_get_log_entries(0..5).await.is_err());
        assert!(s.get_log_state().await.is_err());
    }
}
