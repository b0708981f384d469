//! The shared WAL: one append stream of preallocated segments per disk holding the raft
//! logs (and small metadata) of every copyset on it, behind [`GroupLog`].
//!
//! - [`record`]: checksummed record framing; [`segment`]: segment files and scanning;
//! - [`index`]: the in-memory per-group index (pure); [`recovery`]: rebuilding it on open;
//! - [`writer`]: the group-commit writer thread (`basalt-wal`).
//!
//! Callers update the index and queue the record under one lock, so the on-disk order of a
//! group's records is the order of its index changes. Appended entries stay in memory until
//! written, so they can be read at once. `truncate_after`, `save_meta` and `remove_group`
//! wait for their record's fsync; `purge_upto` does not (a lost purge record only keeps
//! purged entries around, which a later purge removes again).
//!
//! Errors: the first failed write or fdatasync trips the disk's [`DiskFence`]: the batch's
//! callers get the error, and every later append, truncate, purge or meta write is refused
//! with [`ChunkServerError::Fenced`]. Nothing in the batch is reported durable.
//!
//! Space: a segment is recycled when no live entry or meta value is in it. At each segment
//! switch, meta values and the live entries of groups with few of them in segments older
//! than the previous one are rewritten forward, so one idle copyset cannot pin the WAL; a
//! group with many unpurged entries keeps its segments until it purges.

pub mod index;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod writer;

use crate::datadir::DataDir;
use crate::disk_fence::DiskFence;
use crate::error::{ChunkServerError, Result};
use crate::group_log::{Durable, GroupLog, LogRecord, MetaKey};
use basalt_proto::ids::GroupId;
use bytes::Bytes;
use crossbeam_channel::Sender;
use index::{Index, Loc, MetaSlot, Slot};
use parking_lot::{Mutex, RwLock};
use record::{decode, encoded_len, meta_code, RecordKind};
use segment::SEGMENT_HEADER;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Counters of the WAL (plain atomics; exported to prometheus by the daemon).
#[derive(Debug, Default)]
pub struct WalMetrics {
    fsyncs: AtomicU64,
    records: AtomicU64,
    batches: AtomicU64,
}

impl WalMetrics {
    /// `fdatasync` calls made (batches, segment switches).
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }
    /// Records written.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
    /// Group-commit batches written.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
    /// Average records made durable per fsync.
    pub fn records_per_fsync(&self) -> f64 {
        self.records() as f64 / self.fsyncs().max(1) as f64
    }
}

pub(crate) struct Rec {
    kind: RecordKind,
    group: GroupId,
    index: u64,
    payload: Bytes,
    op: u64,
    key: Option<MetaKey>,
}

pub(crate) struct Item {
    recs: Vec<Rec>,
    done: Durable,
}

pub(crate) struct State {
    index: Index,
    tx: Option<Sender<Item>>,
}

pub(crate) struct Shared {
    dir: PathBuf,
    seg_size: u64,
    state: Mutex<State>,
    segments: RwLock<BTreeMap<u64, Arc<File>>>,
    fence: Arc<DiskFence>,
    metrics: WalMetrics,
}

/// The shared WAL of one disk.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .finish()
    }
}

fn disk(op: &'static str) -> impl FnOnce(std::io::Error) -> ChunkServerError {
    move |source| ChunkServerError::Disk { op, source }
}

impl Wal {
    /// Open the WAL of a formatted data dir: recover the index from the segments, start a
    /// fresh segment, recycle segments nothing needs, and start the writer thread.
    pub fn open(dir: &DataDir) -> Result<Wal> {
        Self::open_fenced(dir, DiskFence::new())
    }

    /// [`Wal::open`] with the disk's fence (shared with its chunk store).
    pub fn open_fenced(dir: &DataDir, fence: Arc<DiskFence>) -> Result<Wal> {
        Self::open_at_fenced(dir.wal_dir(), dir.meta().wal_segment_size, fence)
    }

    /// Open the WAL in directory `wal_dir` with segments of `seg_size` bytes.
    pub fn open_at(wal_dir: PathBuf, seg_size: u64) -> Result<Wal> {
        Self::open_at_fenced(wal_dir, seg_size, DiskFence::new())
    }

    /// [`Wal::open_at`] with the disk's fence.
    pub fn open_at_fenced(wal_dir: PathBuf, seg_size: u64, fence: Arc<DiskFence>) -> Result<Wal> {
        fence.check()?;
        let rec = recovery::recover(&wal_dir)?;
        let mut next_free_no = rec.max_free_no.map_or(0, |n| n + 1);
        let mut free = rec.free;
        for bad in rec.bad_headers {
            let to = wal_dir.join(format!("free-{next_free_no:08}"));
            next_free_no += 1;
            std::fs::rename(&bad, &to).map_err(disk("recycle WAL segment"))?;
            free.push(to);
        }
        let mut segments = BTreeMap::new();
        for (seq, path) in &rec.segments {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(disk("open WAL segment"))?;
            segments.insert(*seq, Arc::new(f));
        }
        if let Some(last) = rec.scans.last() {
            if let Some(stop) = last.stop {
                tracing::info!(seq = last.seq, end = last.end, ?stop, "WAL tail");
            }
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            dir: wal_dir,
            seg_size,
            state: Mutex::new(State {
                index: rec.index,
                tx: Some(tx),
            }),
            segments: RwLock::new(segments),
            fence,
            metrics: WalMetrics::default(),
        });
        let mut w = writer::Writer::new(shared.clone(), rec.max_seq, free, next_free_no);
        // Never append to a recovered segment: a torn record must stay the end of its segment.
        shared.fence.note(w.roll().and_then(|()| w.commit()))?;
        let handle = std::thread::Builder::new()
            .name("basalt-wal".into())
            .spawn(move || w.run(rx))
            .map_err(disk("spawn WAL writer"))?;
        let groups = shared.state.lock().index.groups().len();
        tracing::info!(
            groups,
            segments = shared.segments.read().len(),
            "WAL opened"
        );
        Ok(Wal {
            shared,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// The WAL's counters.
    pub fn metrics(&self) -> &WalMetrics {
        &self.shared.metrics
    }

    /// The disk fence this WAL trips on a write or fdatasync error and obeys.
    pub fn fence(&self) -> &Arc<DiskFence> {
        &self.shared.fence
    }

    /// Segments in use.
    pub fn segments_in_use(&self) -> usize {
        self.shared.segments.read().len()
    }

    fn max_payload(&self) -> usize {
        (self.shared.seg_size - SEGMENT_HEADER) as usize - encoded_len(0)
    }

    /// Queue `recs` (index already updated by the caller, under the same lock).
    fn send(state: &State, recs: Vec<Rec>, done: Durable) {
        match &state.tx {
            Some(tx) => {
                if let Err(e) = tx.send(Item { recs, done }) {
                    (e.into_inner().done)(Err(ChunkServerError::ThreadGone {
                        thread: "WAL writer",
                    }));
                }
            }
            None => done(Err(ChunkServerError::ThreadGone {
                thread: "WAL writer",
            })),
        }
    }

    /// Run `f` under the lock to queue one record, then wait for its fsync.
    fn durable(&self, f: impl FnOnce(&mut Index) -> Rec) -> Result<()> {
        self.shared.fence.check()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        {
            let mut st = self.shared.state.lock();
            let rec = f(&mut st.index);
            Self::send(
                &st,
                vec![rec],
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
        }
        rx.recv().unwrap_or(Err(ChunkServerError::ThreadGone {
            thread: "WAL writer",
        }))
    }

    fn read_disk(&self, group: GroupId, index: u64, seg: u64, off: u64, len: u32) -> Option<Bytes> {
        let f = self.shared.segments.read().get(&seg).cloned()?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, off).ok()?;
        let (r, _) = decode(&buf, seg).ok()?;
        (r.kind == RecordKind::Entry && r.group == group && r.index == index)
            .then(|| Bytes::copy_from_slice(r.payload))
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shared.state.lock().tx = None;
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }
}

impl GroupLog for Wal {
    fn append(&self, group: GroupId, records: Vec<LogRecord>, done: Durable) {
        if let Err(e) = self.shared.fence.check() {
            return done(Err(e));
        }
        let max = self.max_payload();
        if let Some(big) = records.iter().find(|r| r.data.len() > max) {
            return done(Err(ChunkServerError::RecordTooLarge {
                len: encoded_len(big.data.len()) as u64,
                max: (self.shared.seg_size - SEGMENT_HEADER),
            }));
        }
        let mut st = self.shared.state.lock();
        if let Some(first) = records.first() {
            if let Err(e) = st.index.check_append(group, first.index) {
                drop(st);
                return done(Err(e));
            }
            for w in records.windows(2) {
                if w[1].index != w[0].index + 1 {
                    drop(st);
                    return done(Err(ChunkServerError::LogGap {
                        group,
                        last: w[0].index,
                        got: w[1].index,
                    }));
                }
            }
        }
        let mut recs = Vec::with_capacity(records.len());
        for r in records {
            let op = st.index.next_op();
            st.index.put_entry(
                group,
                r.index,
                Slot {
                    op,
                    loc: Loc::Pending(r.data.clone()),
                },
            );
            recs.push(Rec {
                kind: RecordKind::Entry,
                group,
                index: r.index,
                payload: r.data,
                op,
                key: None,
            });
        }
        Self::send(&st, recs, done);
    }

    fn read(&self, group: GroupId, from: u64, to: u64) -> Result<Vec<LogRecord>> {
        // A location may go stale if the writer moves the entry forward and recycles its
        // segment between the lookup and the read; look up again then.
        for _ in 0..3 {
            let slots: Vec<(u64, Slot)> = {
                let st = self.shared.state.lock();
                match st.index.group(group) {
                    Some(g) if from < to => g
                        .entries
                        .range(from..to)
                        .map(|(&i, s)| (i, s.clone()))
                        .collect(),
                    _ => return Ok(Vec::new()),
                }
            };
            let mut out = Vec::with_capacity(slots.len());
            let mut stale = false;
            for (index, slot) in slots {
                let data = match slot.loc {
                    Loc::Pending(d) => d,
                    Loc::Disk { seg, off, len } => {
                        match self.read_disk(group, index, seg, off, len) {
                            Some(d) => d,
                            None => {
                                stale = true;
                                break;
                            }
                        }
                    }
                };
                out.push(LogRecord { index, data });
            }
            if !stale {
                return Ok(out);
            }
        }
        Err(ChunkServerError::LogIndexMissing { group, index: from })
    }

    fn bounds(&self, group: GroupId) -> Option<(u64, u64)> {
        self.shared.state.lock().index.bounds(group)
    }

    fn truncate_after(&self, group: GroupId, after: Option<u64>) -> Result<()> {
        let first_removed = after.map_or(0, |a| a.saturating_add(1));
        self.durable(|ix| {
            ix.truncate_from(group, first_removed);
            Rec {
                kind: RecordKind::Truncate,
                group,
                index: first_removed,
                payload: Bytes::new(),
                op: ix.next_op(),
                key: None,
            }
        })
    }

    fn purge_upto(&self, group: GroupId, upto: u64) -> Result<()> {
        self.shared.fence.check()?;
        let mut st = self.shared.state.lock();
        st.index.purge_upto(group, upto);
        let op = st.index.next_op();
        let rec = Rec {
            kind: RecordKind::Purge,
            group,
            index: upto,
            payload: Bytes::new(),
            op,
            key: None,
        };
        Self::send(&st, vec![rec], Box::new(|_| {}));
        Ok(())
    }

    fn save_meta(&self, group: GroupId, key: MetaKey, value: Bytes) -> Result<()> {
        if value.len() > self.max_payload() {
            return Err(ChunkServerError::RecordTooLarge {
                len: encoded_len(value.len()) as u64,
                max: self.shared.seg_size - SEGMENT_HEADER,
            });
        }
        self.durable(|ix| {
            let op = ix.next_op();
            ix.put_meta(
                group,
                key,
                MetaSlot {
                    op,
                    value: value.clone(),
                    seg: None,
                },
            );
            Rec {
                kind: RecordKind::Meta,
                group,
                index: meta_code(key),
                payload: value,
                op,
                key: Some(key),
            }
        })
    }

    fn load_meta(&self, group: GroupId, key: MetaKey) -> Result<Option<Bytes>> {
        Ok(self
            .shared
            .state
            .lock()
            .index
            .group(group)
            .and_then(|g| g.meta.get(&key))
            .map(|m| m.value.clone()))
    }

    fn groups(&self) -> Vec<GroupId> {
        self.shared.state.lock().index.groups()
    }

    fn remove_group(&self, group: GroupId) -> Result<()> {
        self.durable(|ix| {
            ix.remove_group(group);
            Rec {
                kind: RecordKind::RemoveGroup,
                group,
                index: 0,
                payload: Bytes::new(),
                op: ix.next_op(),
                key: None,
            }
        })
    }

    fn disk_fence(&self) -> Option<Arc<DiskFence>> {
        Some(self.shared.fence.clone())
    }
}
