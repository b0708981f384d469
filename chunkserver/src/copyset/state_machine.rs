//! openraft state machine of one copyset: applies chunk operations to the [`ChunkStore`].
//!
//! Applying writes a chunk without fsync; durability comes from the log. A snapshot is
//! lightweight: building one syncs the group's chunks (so the WAL behind it may be purged)
//! and records its meta; its data is the chunk list. Installing a snapshot from another
//! peer copies the listed chunks' content from that peer in pieces, then the log replays
//! on top (writes are idempotent, so content newer than the snapshot does no harm).
//! After a restart the recorded snapshot is "installed" locally: the chunks are already
//! here, only the applied position and membership are restored.

use crate::chunk_api::ChunkStore;
use crate::copyset::log_store::GroupMeta;
use crate::copyset::network::{ChunkFetcher, ChunkPieceRequest, SnapshotData};
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
        }
    }

    async fn apply_op(&self, op: ChunkOp) -> io::Result<ChunkOpResult> {
        match op {
            ChunkOp::Write {
                chunk,
                offset,
                data,
            } => {
                self.store
                    .write(self.group, chunk, offset, data)
                    .await
                    .map_err(io_err)?;
                Ok(ChunkOpResult::Written)
            }
            ChunkOp::Delete { chunk } => {
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
        self.meta.set_snapshot(meta.clone())?;
        let chunks = self.store.list(self.group).map_err(io_err)?;
        tracing::debug!(group = %self.group, last = ?self.last, chunks = chunks.len(), "snapshot built");
        Ok(SnapshotOf::<C, SnapshotData> {
            meta,
            snapshot: SnapshotData {
                source: None,
                chunks,
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
                EntryPayload::Normal(op) => self.apply_op(op).await?,
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
            self.meta.set_snapshot(meta.clone())?;
        }
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<C, SnapshotData>>, io::Error> {
        let Some(meta) = self.meta.snapshot() else {
            return Ok(None);
        };
        let chunks = self.store.list(self.group).map_err(io_err)?;
        Ok(Some(SnapshotOf::<C, SnapshotData> {
            meta,
            snapshot: SnapshotData {
                source: None,
                chunks,
            },
        }))
    }
}
