//! The WAL writer thread: group commit.
//!
//! It blocks for one queued item, then takes everything else queued, encodes it all into
//! one buffer, writes it with one `pwrite` and makes it durable with one `fdatasync`, then
//! records the locations in the index and runs every callback. When a segment fills it is
//! fsynced and the next one started (taken from the free files); live entries and meta
//! values still in old segments are copied forward then (see [`Index::rewrites`]), and once
//! those copies are durable every segment older than the oldest one still needed goes back
//! to the free files.

use super::index::{Index, Rewrite};
use super::record::{decode, encode, encoded_len, meta_code, RecordKind};
use super::segment::{encode_header, seg_path, SEGMENT_HEADER};
use super::{Item, Shared};
use crate::datadir::fsync_dir;
use crate::error::{ChunkServerError, Result};
use crate::failpoints;
use crate::group_log::MetaKey;
use basalt_proto::ids::GroupId;
use crossbeam_channel::Receiver;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most entries of one group copied forward at a segment switch; a group with more old
/// entries (a lagging log nobody purged) keeps its segments.
pub const REWRITE_MAX_ENTRIES: usize = 256;
/// Most items taken into one batch.
const MAX_BATCH_ITEMS: usize = 4096;

enum Confirm {
    Entry {
        group: GroupId,
        index: u64,
        op: u64,
        seg: u64,
        off: u64,
        len: u32,
    },
    Meta {
        group: GroupId,
        key: MetaKey,
        op: u64,
        seg: u64,
    },
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    file: Option<Arc<File>>,
    seq: u64,
    buf: Vec<u8>,
    buf_start: u64,
    free: Vec<PathBuf>,
    next_free_no: u64,
    confirms: Vec<Confirm>,
    in_rewrite: bool,
    /// Something may have freed a segment since the last look (a segment switch, or a
    /// purge / truncate / group removal); finding the oldest needed segment walks the
    /// whole index, so it is not done for every batch.
    recycle_due: bool,
}

fn disk(op: &'static str) -> impl FnOnce(std::io::Error) -> ChunkServerError {
    move |source| ChunkServerError::Disk { op, source }
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        last_seq: u64,
        free: Vec<PathBuf>,
        next_free_no: u64,
    ) -> Self {
        Writer {
            shared,
            file: None,
            seq: last_seq,
            buf: Vec::new(),
            buf_start: SEGMENT_HEADER,
            free,
            next_free_no,
            confirms: Vec::new(),
            in_rewrite: false,
            recycle_due: true,
        }
    }

    fn capacity(&self) -> u64 {
        self.shared.seg_size - SEGMENT_HEADER
    }

    /// The data dir (failpoint scope).
    fn root(&self) -> &std::path::Path {
        self.shared.dir.parent().unwrap_or(&self.shared.dir)
    }

    fn fdatasync(&self, f: &File) -> Result<()> {
        failpoints::disk(failpoints::WAL_FDATASYNC, self.root()).map_err(disk("fdatasync WAL"))?;
        f.sync_data().map_err(disk("fdatasync WAL"))?;
        self.shared.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        failpoints::disk(failpoints::WAL_WRITE, self.root()).map_err(disk("write WAL"))?;
        let f = self.file.as_ref().expect("segment open");
        f.write_all_at(&self.buf, self.buf_start)
            .map_err(disk("write WAL"))?;
        self.buf_start += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Start the next segment (the current one, if any, is flushed and fsynced first).
    pub(crate) fn roll(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(f) = self.file.take() {
            self.fdatasync(&f)?;
        }
        let old_seq = self.seq;
        let seq = self.seq + 1;
        let dir = self.shared.dir.clone();
        let path = seg_path(&dir, seq);
        if let Some(free) = self.free.pop() {
            fs::rename(&free, &path).map_err(disk("take WAL segment"))?;
        } else {
            tracing::warn!(seq, "WAL segment pool empty, creating a sparse segment");
            let f = File::create(&path).map_err(disk("create WAL segment"))?;
            f.set_len(self.shared.seg_size)
                .map_err(disk("create WAL segment"))?;
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(disk("open WAL segment"))?;
        f.write_all_at(&encode_header(seq), 0)
            .map_err(disk("write WAL segment header"))?;
        self.fdatasync(&f)?;
        fsync_dir(&dir)?;
        let f = Arc::new(f);
        self.shared.segments.write().insert(seq, f.clone());
        self.file = Some(f);
        self.seq = seq;
        self.recycle_due = true;
        self.buf_start = SEGMENT_HEADER;
        if old_seq > 0 && !self.in_rewrite {
            self.in_rewrite = true;
            let r = self.rewrite_before(old_seq);
            self.in_rewrite = false;
            r?;
        }
        Ok(())
    }

    /// Copy live data of segments older than `before` into the current segment.
    fn rewrite_before(&mut self, before: u64) -> Result<()> {
        let todo = self
            .shared
            .state
            .lock()
            .index
            .rewrites(before, REWRITE_MAX_ENTRIES);
        let mut budget = self.capacity() / 2;
        for rw in todo {
            match rw {
                Rewrite::Entry {
                    group,
                    index,
                    op,
                    seg,
                    off,
                    len,
                } => {
                    let Some(src) = self.shared.segments.read().get(&seg).cloned() else {
                        continue;
                    };
                    let mut rec = vec![0u8; len as usize];
                    src.read_exact_at(&mut rec, off)
                        .map_err(disk("read WAL for rewrite"))?;
                    let Ok((r, _)) = decode(&rec, seg) else {
                        continue;
                    };
                    if r.group != group || r.index != index || budget < len as u64 {
                        continue;
                    }
                    budget -= len as u64;
                    let payload = r.payload.to_vec();
                    self.add(RecordKind::Entry, group, index, &payload, op, None)?;
                }
                Rewrite::Meta {
                    group,
                    key,
                    op,
                    value,
                } => {
                    let len = encoded_len(value.len()) as u64;
                    if budget < len {
                        continue;
                    }
                    budget -= len;
                    self.add(
                        RecordKind::Meta,
                        group,
                        meta_code(key),
                        &value,
                        op,
                        Some(key),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Encode one record into the batch, switching segments when it does not fit.
    pub(crate) fn add(
        &mut self,
        kind: RecordKind,
        group: GroupId,
        index: u64,
        payload: &[u8],
        op: u64,
        key: Option<MetaKey>,
    ) -> Result<()> {
        let len = encoded_len(payload.len()) as u64;
        if len > self.capacity() {
            return Err(ChunkServerError::RecordTooLarge {
                len,
                max: self.capacity(),
            });
        }
        if self.file.is_none()
            || self.buf_start + self.buf.len() as u64 + len > self.shared.seg_size
        {
            self.roll()?;
        }
        let off = self.buf_start + self.buf.len() as u64;
        encode(&mut self.buf, self.seq, kind, group, index, payload);
        self.shared.metrics.records.fetch_add(1, Ordering::Relaxed);
        match (kind, key) {
            (RecordKind::Entry, _) => self.confirms.push(Confirm::Entry {
                group,
                index,
                op,
                seg: self.seq,
                off,
                len: len as u32,
            }),
            (RecordKind::Meta, Some(key)) => self.confirms.push(Confirm::Meta {
                group,
                key,
                op,
                seg: self.seq,
            }),
            _ => {}
        }
        Ok(())
    }

    /// Make the batch durable, publish locations, recycle unneeded segments.
    pub(crate) fn commit(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(f) = self.file.clone() {
            self.fdatasync(&f)?;
        }
        self.shared.metrics.batches.fetch_add(1, Ordering::Relaxed);
        let recycle = self.recycle_due && self.shared.segments.read().len() > 1;
        let oldest = {
            let mut st = self.shared.state.lock();
            apply_confirms(&mut st.index, self.confirms.drain(..));
            recycle.then(|| st.index.oldest_needed())
        };
        let Some(oldest) = oldest else {
            return Ok(());
        };
        self.recycle_due = false;
        self.recycle(oldest.unwrap_or(self.seq).min(self.seq))
    }

    fn recycle(&mut self, keep_from: u64) -> Result<()> {
        let old: Vec<u64> = self
            .shared
            .segments
            .read()
            .range(..keep_from)
            .map(|(&s, _)| s)
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        for seq in old {
            self.shared.segments.write().remove(&seq);
            let to = self
                .shared
                .dir
                .join(format!("free-{:08}", self.next_free_no));
            self.next_free_no += 1;
            fs::rename(seg_path(&self.shared.dir, seq), &to)
                .map_err(disk("recycle WAL segment"))?;
            tracing::debug!(seq, "WAL segment recycled");
            self.free.insert(0, to);
        }
        fsync_dir(&self.shared.dir)
    }

    /// The thread body.
    pub(crate) fn run(mut self, rx: Receiver<Item>) {
        while let Ok(first) = rx.recv() {
            let mut items = vec![first];
            while items.len() < MAX_BATCH_ITEMS {
                match rx.try_recv() {
                    Ok(i) => items.push(i),
                    Err(_) => break,
                }
            }
            if self.shared.fence.is_tripped() {
                for it in items {
                    (it.done)(Err(ChunkServerError::Fenced));
                }
                continue;
            }
            let mut result = Ok(());
            'items: for it in &items {
                for r in &it.recs {
                    if r.kind != RecordKind::Entry && r.kind != RecordKind::Meta {
                        self.recycle_due = true;
                    }
                    if let Err(e) = self.add(r.kind, r.group, r.index, &r.payload, r.op, r.key) {
                        result = Err(e);
                        break 'items;
                    }
                }
            }
            if result.is_ok() {
                result = self.commit();
            }
            match result {
                Ok(()) => {
                    for it in items {
                        (it.done)(Ok(()));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "WAL write failed, fencing the disk");
                    match &e {
                        ChunkServerError::Disk { op, source } => self
                            .shared
                            .fence
                            .trip(op, source.raw_os_error().unwrap_or(libc::EIO)),
                        _ => self.shared.fence.trip("WAL write", libc::EIO),
                    }
                    let mut first = Some(e);
                    for it in items {
                        (it.done)(Err(first.take().unwrap_or(ChunkServerError::Fenced)));
                    }
                }
            }
        }
    }
}

fn apply_confirms(index: &mut Index, confirms: impl Iterator<Item = Confirm>) {
    for c in confirms {
        match c {
            Confirm::Entry {
                group,
                index: i,
                op,
                seg,
                off,
                len,
            } => index.confirm_entry(group, i, op, seg, off, len),
            Confirm::Meta {
                group,
                key,
                op,
                seg,
            } => index.confirm_meta(group, key, op, seg),
        }
    }
}
