//! The seam between a copyset's state machine and the chunk store.
//!
//! Chunks are grouped per copyset so a snapshot is "the chunk list of a group" and a peer
//! installing one copies exactly those files.

use crate::disk_fence::DiskFence;
use crate::error::Result;
use basalt_proto::ids::{ChunkId, GroupId};
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;

/// Space held for a chunk a write in flight may create: taken by
/// [`ChunkStore::reserve_chunk`] before the write is proposed, released when dropped.
#[must_use = "the space is released when the reservation is dropped"]
pub struct SpaceReservation {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl SpaceReservation {
    /// Nothing held (the chunk exists, or the store does not count space).
    pub fn none() -> Self {
        SpaceReservation { release: None }
    }

    /// Held until dropped; `release` gives the space back.
    pub fn held(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        SpaceReservation {
            release: Some(Box::new(release)),
        }
    }
}

impl std::fmt::Debug for SpaceReservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceReservation")
            .field("held", &self.release.is_some())
            .finish()
    }
}

impl Drop for SpaceReservation {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// Chunk storage of one disk, used by the state machines of all copysets on it.
pub trait ChunkStore: Send + Sync + 'static {
    /// Write `data` at `offset` (512-byte aligned, within the chunk), creating the chunk
    /// from the pool on first write. Not synced: see [`ChunkStore::sync_group`].
    fn write(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        data: Bytes,
    ) -> BoxFuture<'_, Result<()>>;
    /// Read `len` bytes at `offset`; `None` when the chunk does not exist.
    /// Never-written ranges of an existing chunk read as zeros.
    fn read(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'_, Result<Option<Bytes>>>;
    /// Delete a chunk (its file goes back to the pool). Deleting a missing chunk succeeds.
    fn delete(&self, group: GroupId, chunk: ChunkId) -> BoxFuture<'_, Result<()>>;
    /// Chunks of a group.
    fn list(&self, group: GroupId) -> Result<Vec<ChunkId>>;
    /// Make every write to the group's chunks so far durable (before the WAL behind a
    /// snapshot is purged).
    fn sync_group(&self, group: GroupId) -> BoxFuture<'_, Result<()>>;
    /// Remove every chunk of a group (copyset deleted, or replaced by a snapshot install).
    fn remove_group(&self, group: GroupId) -> BoxFuture<'_, Result<()>>;
    /// The fence of the disk holding the chunks, if the store has one: the copysets stop
    /// serving when it trips.
    fn disk_fence(&self) -> Option<Arc<DiskFence>> {
        None
    }
    /// Before a leader proposes a write: make sure the chunk exists or a free chunk file is
    /// left for it, counting the other writes in flight that will create chunks
    /// ([`crate::error::ChunkServerError::NoSpace`] otherwise), and hold that file until the
    /// reservation is dropped. So a full pool refuses the write up front instead of failing
    /// its apply (which would stop the replica). The default counts nothing.
    fn reserve_chunk(&self, group: GroupId, chunk: ChunkId) -> Result<SpaceReservation> {
        let _ = (group, chunk);
        Ok(SpaceReservation::none())
    }
}
