//! The chunkserver's error type. Variants carry ids as fields.

use basalt_proto::ids::{ChunkId, GroupId};

/// Everything the chunkserver library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ChunkServerError {
    /// An I/O error on the data disk (the chunkserver fences itself off the disk).
    #[error("disk I/O error during {op}: {source}")]
    Disk {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The chunk file pool or the WAL segment pool is exhausted.
    #[error("no space left in the {pool} pool")]
    NoSpace {
        /// Which pool ("chunk" or "wal").
        pool: &'static str,
    },
    /// A chunk that does not exist was asked for.
    #[error("{group}/{chunk}: chunk not found")]
    ChunkNotFound {
        /// The copyset.
        group: GroupId,
        /// The chunk.
        chunk: ChunkId,
    },
    /// An I/O range that is misaligned or beyond the chunk.
    #[error("bad I/O range: offset {offset}, len {len}")]
    BadRange {
        /// Offset asked for.
        offset: u64,
        /// Length asked for.
        len: u64,
    },
    /// A log entry that is not there (purged or never written).
    #[error("{group}: log index {index} not available")]
    LogIndexMissing {
        /// The group.
        group: GroupId,
        /// The index.
        index: u64,
    },
    /// Appended entries do not follow on from the log (a bug in the caller).
    #[error("{group}: append at {got} does not follow last index {last}")]
    LogGap {
        /// The group.
        group: GroupId,
        /// Last index in the log.
        last: u64,
        /// First index appended.
        got: u64,
    },
    /// The disk was fenced after an earlier I/O error; nothing more is written to it.
    #[error("disk fenced after an earlier I/O error")]
    Fenced,
}

/// Result alias.
pub type Result<T, E = ChunkServerError> = std::result::Result<T, E>;
