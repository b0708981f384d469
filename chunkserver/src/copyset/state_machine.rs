//! openraft state machine of one copyset: applies chunk operations to the [`ChunkStore`].
//!
//! Applying writes a chunk without fsync; durability comes from the log. A snapshot is
//! lightweight: building one syncs the group's chunks (so the WAL behind it may be purged)
//! and records its meta; its data is the chunk list. Installing a snapshot from another
//! peer copies the listed chunks' content from that peer in pieces, then the log replays
//! on top (writes are idempotent, so content newer than the snapshot does no harm).
//! After a restart the recorded snapshot is "installed" locally: the chunks are already
//! here, only the applied position and membership are restored.
//!
//! Every write and delete carries its client request id; the state machine applies each
//! id at most once ([`crate::copyset::sessions`]). The dedupe table is part of the
//! snapshot: recorded durably with its meta (one record, so the two never disagree) and
//! sent with it to a replica that installs it, which is what makes replaying the log on
//! top of a snapshot reach the same verdicts the first apply reached.

use crate::chunk_api::ChunkStore;
use crate::copyset::log_store::GroupMeta;
use crate::copyset::network::{ChunkFetcher, ChunkPieceRequest, SnapshotData};
use crate::copyset::sessions::{Sessions, Verdict};
use crate::copyset::types::alias::{LogId, SnapshotMeta, StoredMembership};
use crate::copyset::types::{node_id, ChunkOp, ChunkOpResult, CopysetTypes as C};
use crate::error::ChunkServerError;
use basalt_proto::ids::{GroupId, CHUNK_SIZE};
use basalt_proto::status::PeerAddr;
use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::SnapshotOf;
use openraft::EntryPayload;
use std::io;
use std::sync::Arc;

fn io_err(e: ChunkServerError) -> io::Error {
    io::Error::other(e)
}

/// The state machine of one copyset.
pub struct CopysetSm {
    group: GroupId,
    store: Arc<dyn ChunkStore>,
    meta: Arc<GroupMeta>,
    fetcher: ChunkFetcher,
    piece: u64,
    applied: Option<LogId>,
    membership: StoredMembership,
    sessions: Sessions,
}

impl CopysetSm {
    /// The state machine of `group`; `piece` is the size of one pull during snapshot install.
    pub fn new(
        group: GroupId,
        store: Arc<dyn ChunkStore>,
        meta: Arc<GroupMeta>,
        fetcher: ChunkFetcher,
        piece: u64,
    ) -> Self {
        CopysetSm {
            group,
            store,
            meta,
            fetcher,
            piece: piece.clamp(4096, CHUNK_SIZE),
            applied: None,
            membership: StoredMembership::default(),
            sessions: Sessions::default(),
        }
    }

    /// The dedupe table as applied so far (tests and diagnostics).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Apply `op` (the entry at log `index`) unless its request was applied before.
    async fn apply_once(&mut self, op: ChunkOp, index: u64) -> io::Result<ChunkOpResult> {
        let id = op.request_id();
        match self.sessions.admit(id, index) {
            Verdict::Apply => {
                let result = self.apply_op(op).await?;
                self.sessions.record(id, result);
                Ok(result)
            }
            Verdict::Duplicate(result) => {
                tracing::debug!(group = %self.group, index, client = id.client, seq = id.seq,
                    "duplicate request not applied again");
                Ok(result)
            }
            Verdict::Stale => {
                tracing::debug!(group = %self.group, index, client = id.client, seq = id.seq,
                    "stale request not applied");
                Ok(ChunkOpResult::Stale)
            }
        }
    }

    async fn apply_op(&self, op: ChunkOp) -> io::Result<ChunkOpResult> {
        match op {
            ChunkOp::Write {
                chunk,
                offset,
                data,
                ..
            } => {
                self.store
                    .write(self.group, chunk, offset, data)
                    .await
                    .map_err(io_err)?;
                Ok(ChunkOpResult::Written)
            }
            ChunkOp::Delete { chunk, .. } => {
                self.store.delete(self.group, chunk).await.map_err(io_err)?;
                Ok(ChunkOpResult::Deleted)
            }
        }
    }

    /// Replace the group's chunks with the source's.
    async fn copy_chunks(
        &self,
        source: PeerAddr,
        data: &SnapshotData,
    ) -> Result<(), ChunkServerError> {
        self.fetcher.net.learn(&source);
        let source = node_id(source.id);
        self.store.remove_group(self.group).await?;
        for &chunk in &data.chunks {
            let mut offset = 0;
            while offset < CHUNK_SIZE {
                let len = self.piece.min(CHUNK_SIZE - offset);
                let req = ChunkPieceRequest { chunk, offset, len };
                let Some(bytes) = self.fetcher.fetch_retrying(source, self.group, req).await?
                else {
                    // Deleted on the source since the offer; the log replays the delete.
                    break;
                };
                // Pool chunk files are zero-filled: skip zero pieces, but always write the
                // first one so the chunk exists.
                if offset == 0 || bytes.iter().any(|&b| b != 0) {
                    self.store.write(self.group, chunk, offset, bytes).await?;
                }
                offset += len;
            }
        }
        self.store.sync_group(self.group).await
    }
}

/// Builds a snapshot at the applied position captured when it was created.
pub struct CopysetSnapshotBuilder {
    group: GroupId,
    store: Arc<dyn ChunkStore>,
    meta: Arc<GroupMeta>,
    last: Option<LogId>,
    membership: StoredMembership,
    sessions: Sessions,
}

impl RaftSnapshotBuilder<C> for CopysetSnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, SnapshotData>, io::Error> {
        // Everything applied up to `last` is in the chunk files; make it durable before the
        // snapshot lets openraft purge the log behind it.
        self.store.sync_group(self.group).await.map_err(io_err)?;
        let meta = SnapshotMeta {
            last_log_id: self.last,
            last_membership: self.membership.clone(),
        };
        self.meta
            .set_snapshot(meta.clone(), self.sessions.clone())?;
        let chunks = self.store.list(self.group).map_err(io_err)?;
        tracing::debug!(group = %self.group, last = ?self.last, chunks = chunks.len(), "snapshot built");
        Ok(SnapshotOf::<C, SnapshotData> {
            meta,
            snapshot: SnapshotData {
                source: None,
                chunks,
                sessions: self.sessions.clone(),
            },
        })
    }
}

impl RaftStateMachine<C> for CopysetSm {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = CopysetSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + Send,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id;
            let result = match entry.payload {
                EntryPayload::Blank => ChunkOpResult::Noop,
                EntryPayload::Normal(op) => self.apply_once(op, log_id.index).await?,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m);
                    ChunkOpResult::Noop
                }
            };
            self.applied = Some(log_id);
            if let Some(r) = responder {
                r.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        CopysetSnapshotBuilder {
            group: self.group,
            store: self.store.clone(),
            meta: self.meta.clone(),
            last: self.applied,
            membership: self.membership.clone(),
            sessions: self.sessions.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        if let Some(source) = snapshot.source {
            tracing::info!(group = %self.group, source = %source.id, chunks = snapshot.chunks.len(),
                last = ?meta.last_log_id, "installing snapshot from peer");
            self.copy_chunks(source, &snapshot).await.map_err(io_err)?;
            self.meta
                .set_snapshot(meta.clone(), snapshot.sessions.clone())?;
        }
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.sessions = snapshot.sessions;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<C, SnapshotData>>, io::Error> {
        let Some((meta, sessions)) = self.meta.snapshot_with_sessions() else {
            return Ok(None);
        };
        let chunks = self.store.list(self.group).map_err(io_err)?;
        Ok(Some(SnapshotOf::<C, SnapshotData> {
            meta,
            snapshot: SnapshotData {
                source: None,
                chunks,
                sessions,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copyset::sessions::MAX_REQUESTS;
    use crate::copyset::testing::{MemChunkStore, MemGroupLog, MemNet};
    use crate::copyset::types::alias::Entry;
    use basalt_proto::chunk::RequestId;
    use basalt_proto::ids::ChunkId;
    use openraft::vote::RaftLeaderId;
    use std::time::Duration;

    const G: GroupId = GroupId(0x1_0000_0001);

    fn sm(store: Arc<MemChunkStore>, log: Arc<MemGroupLog>) -> CopysetSm {
        let meta = GroupMeta::load(log, G).unwrap();
        let fetcher = ChunkFetcher {
            net: MemNet::new().endpoint(1),
            timeout: Duration::from_secs(1),
            retry_after: Duration::from_millis(10),
            give_up_after: Duration::from_secs(1),
        };
        CopysetSm::new(G, store, meta, fetcher, 1 << 20)
    }

    fn log_id(index: u64) -> LogId {
        LogId {
            leader_id: openraft::impls::leader_id_adv::LeaderId::<u64, u64>::new(1, 1)
                .to_committed(),
            index,
        }
    }

    fn id(client: u64, seq: u64, done_below: u64) -> RequestId {
        RequestId {
            client,
            seq,
            done_below,
        }
    }

    fn write(index: u64, req: RequestId, byte: u8) -> Entry {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(ChunkOp::Write {
                chunk: ChunkId(1),
                offset: 0,
                data: Bytes::from(vec![byte; 4096]),
                req,
            }),
        }
    }

    async fn apply(sm: &mut CopysetSm, entries: Vec<Entry>) {
        let items: Vec<Result<EntryResponder<C>, io::Error>> =
            entries.into_iter().map(|e| Ok((e, None))).collect();
        sm.apply(futures::stream::iter(items)).await.unwrap();
    }

    async fn block(store: &MemChunkStore) -> u8 {
        let b = store.read(G, ChunkId(1), 0, 4096).await.unwrap().unwrap();
        assert!(b.iter().all(|&x| x == b[0]), "torn block");
        b[0]
    }

    use bytes::Bytes;

    #[tokio::test]
    async fn a_repeated_write_after_another_clients_write_keeps_the_later_value() {
        let store = MemChunkStore::new();
        let mut sm = sm(store.clone(), MemGroupLog::new());
        // Client A's write commits twice (a timed-out attempt and its retry), with client
        // B's acknowledged write in between.
        apply(
            &mut sm,
            vec![
                write(1, id(0xa, 1, 1), 0xaa),
                write(2, id(0xb, 1, 1), 0xbb),
                write(3, id(0xa, 1, 1), 0xaa),
            ],
        )
        .await;
        assert_eq!(block(&store).await, 0xbb);
        assert_eq!(sm.applied.map(|l| l.index), Some(3));
        // Without ids every attempt is applied (the anomaly the ids exist for).
        apply(
            &mut sm,
            vec![
                write(4, RequestId::NONE, 0x11),
                write(5, id(0xb, 2, 2), 0x22),
                write(6, RequestId::NONE, 0x11),
            ],
        )
        .await;
        assert_eq!(block(&store).await, 0x11);
    }

    #[tokio::test]
    async fn watermarks_prune_the_table_and_it_stays_bounded() {
        let store = MemChunkStore::new();
        let mut sm = sm(store.clone(), MemGroupLog::new());
        // Each request completes before the next starts: the table holds one of them.
        let n = 200u64;
        apply(
            &mut sm,
            (1..=n).map(|s| write(s, id(0xa, s, s), s as u8)).collect(),
        )
        .await;
        assert_eq!(sm.sessions().requests(), 1);
        // A late attempt of a finished request is refused, not applied.
        apply(&mut sm, vec![write(n + 1, id(0xa, 3, 3), 0xee)]).await;
        assert_eq!(block(&store).await, n as u8);
        // A client that never advances its watermark cannot grow the table past its bound.
        let m = MAX_REQUESTS as u64 + 10;
        apply(
            &mut sm,
            (1..=m)
                .map(|s| write(n + 1 + s, id(0xc, s, 1), 7))
                .collect(),
        )
        .await;
        assert!(sm.sessions().requests() <= MAX_REQUESTS);
    }

    #[tokio::test]
    async fn the_table_survives_a_snapshot_and_restart() {
        let store = MemChunkStore::new();
        let log = MemGroupLog::new();
        let mut first = sm(store.clone(), log.clone());
        apply(&mut first, vec![write(1, id(0xa, 1, 1), 0xaa)]).await;
        let mut builder = first.get_snapshot_builder().await;
        let snap = builder.build_snapshot().await.unwrap();
        assert_eq!(snap.snapshot.sessions.requests(), 1);
        apply(&mut first, vec![write(2, id(0xb, 1, 1), 0xbb)]).await;
        drop(first);

        // Restart: openraft installs the recorded snapshot, then replays the log after it,
        // including the late duplicate of A's write.
        let mut second = sm(store.clone(), log);
        let current = second.get_current_snapshot().await.unwrap().unwrap();
        second
            .install_snapshot(&current.meta, current.snapshot)
            .await
            .unwrap();
        assert_eq!(second.sessions().requests(), 1);
        apply(
            &mut second,
            vec![write(2, id(0xb, 1, 1), 0xbb), write(3, id(0xa, 1, 1), 0xaa)],
        )
        .await;
        assert_eq!(block(&store).await, 0xbb);
    }
}
