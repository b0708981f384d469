//! The seam between raft and the shared WAL: durable per-group log storage.
//!
//! All copysets on a disk share one WAL; this trait is what one copyset's openraft log
//! storage sees. The WAL implements it with group commit (one fdatasync covers the appends
//! of many groups); tests of the raft layer may use an in-memory implementation.

use crate::disk_fence::DiskFence;
use crate::error::Result;
use basalt_proto::ids::GroupId;
use bytes::Bytes;
use std::sync::Arc;

/// One log entry as the WAL stores it: the raft index and the entry, encoded by the raft layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Raft log index.
    pub index: u64,
    /// The encoded entry (openraft `Entry`), opaque to the WAL.
    pub data: Bytes,
}

/// Small per-group metadata kept durably beside the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetaKey {
    /// The raft vote.
    Vote,
    /// The committed log id.
    Committed,
    /// The last purged log id.
    Purged,
}

/// Called once when an append is durable (or failed).
pub type Durable = Box<dyn FnOnce(Result<()>) + Send + 'static>;

/// Durable raft log storage for many groups.
pub trait GroupLog: Send + Sync + 'static {
    /// Append entries of one group (indexes contiguous and following the group's last
    /// index). They are readable through [`GroupLog::read`] as soon as this returns;
    /// `done` runs once they are durable, possibly batched with other groups' appends.
    fn append(&self, group: GroupId, records: Vec<LogRecord>, done: Durable);
    /// Entries with `from <= index < to` that exist, in order.
    fn read(&self, group: GroupId, from: u64, to: u64) -> Result<Vec<LogRecord>>;
    /// First and last index present, if any.
    fn bounds(&self, group: GroupId) -> Option<(u64, u64)>;
    /// Delete every entry with index > `after` (`None`: all). Durable when it returns,
    /// so a crash cannot resurrect a truncated entry.
    fn truncate_after(&self, group: GroupId, after: Option<u64>) -> Result<()>;
    /// Delete every entry with index <= `upto` (behind a snapshot). May be lazy on disk.
    fn purge_upto(&self, group: GroupId, upto: u64) -> Result<()>;
    /// Store a metadata value; durable when it returns.
    fn save_meta(&self, group: GroupId, key: MetaKey, value: Bytes) -> Result<()>;
    /// Read a metadata value.
    fn load_meta(&self, group: GroupId, key: MetaKey) -> Result<Option<Bytes>>;
    /// Groups that have a log or metadata here (to rebuild the copyset registry on start).
    fn groups(&self) -> Vec<GroupId>;
    /// Forget a group entirely (copyset deleted). Durable when it returns.
    fn remove_group(&self, group: GroupId) -> Result<()>;
    /// The fence of the disk holding the log, if the log has one: the copysets stop
    /// serving when it trips.
    fn disk_fence(&self) -> Option<Arc<DiskFence>> {
        None
    }
}
