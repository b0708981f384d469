//! The seam between a copyset's state machine and the chunk store.
//!
//! Chunks are grouped per copyset so a snapshot is "the chunk list of a group" and a peer
//! installing one copies exactly those files.

use crate::error::Result;
use basalt_proto::ids::{ChunkId, GroupId};
use bytes::Bytes;
use futures::future::BoxFuture;

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
}
