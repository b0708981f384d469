//! The chunk store: [`ChunkStore`] over chunk files taken from the pre-formatted pool.
//!
//! A chunk is born on its first write by renaming a free pool file to
//! `chunks/<group>/<chunk>` and rewriting its header page; it dies by being renamed to
//! `recycle/`, zeroed, fsynced and renamed back into the pool. Data I/O goes through the
//! poller threads with `O_DIRECT`, sharded by group id.
//!
//! Disk errors: the first I/O error trips the disk's [`DiskFence`]; from then on every
//! operation is refused with [`ChunkServerError::Fenced`] (nothing stale is read, nothing
//! more is written).
//!
//! Granularity: requests are 512-byte aligned. When the filesystem's direct-I/O unit is
//! larger (4 KiB logical blocks), requests not aligned to it are done as read-modify-write
//! of the covering aligned range under the chunk's exclusive lock; aligned writes share
//! the lock, so they never interleave with a read-modify-write.

use crate::backend::{AlignedBuf, IoOp, IO_ALIGN};
use crate::chunk_api::{ChunkStore, SpaceReservation};
use crate::chunk_header::{ChunkHeader, HEADER_SIZE};
use crate::datadir::{fsync_dir, next_free_number, DataDir};
use crate::disk_fence::DiskFence;
use crate::error::{ChunkServerError, Result};
use crate::failpoints;
use crate::poller::Pollers;
use basalt_proto::ids::{ChunkId, GroupId};
use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Chunk store settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Open chunk files with `O_DIRECT` (falls back to buffered I/O, with a warning, where
    /// the filesystem refuses it).
    pub direct_io: bool,
    /// Force the direct-I/O unit (512 or 4096); `None` probes the filesystem.
    pub io_unit: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            direct_io: true,
            io_unit: None,
        }
    }
}

struct Chunk {
    path: Mutex<PathBuf>,
    file: Arc<File>,
    /// Shared for aligned I/O, exclusive for read-modify-write and deletion.
    lock: tokio::sync::RwLock<bool>,
}

/// Chunk files of one disk, served through the poller threads.
pub struct FileChunkStore {
    dir: DataDir,
    chunk_size: u64,
    pollers: Arc<Pollers>,
    direct: bool,
    unit: u64,
    free: Mutex<Vec<PathBuf>>,
    /// Chunks that writes in flight will create, with the number of such writes: each
    /// holds one free file (see [`ChunkStore::reserve_chunk`]).
    reserved: Arc<Mutex<HashMap<(GroupId, ChunkId), u32>>>,
    chunks: Mutex<HashMap<GroupId, BTreeMap<ChunkId, Arc<Chunk>>>>,
    next_pool_no: AtomicU64,
    sn: AtomicU64,
    fence: Arc<DiskFence>,
}

impl std::fmt::Debug for FileChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileChunkStore")
            .field("root", &self.dir.root())
            .field("direct", &self.direct)
            .field("unit", &self.unit)
            .finish()
    }
}

fn disk(op: &'static str) -> impl FnOnce(std::io::Error) -> ChunkServerError {
    move |source| ChunkServerError::Disk { op, source }
}

fn open_file(path: &Path, direct: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

/// Find the smallest direct-I/O unit the filesystem accepts for `path` (512 or 4096);
/// `None` when `O_DIRECT` is refused altogether.
pub fn probe_direct_unit(path: &Path) -> Option<u64> {
    let f = open_file(path, true).ok()?;
    for unit in [512usize, 4096] {
        let mut buf = AlignedBuf::zeroed(unit);
        if f.read_at(buf.as_mut_slice(), unit as u64).is_ok() {
            return Some(unit as u64);
        }
    }
    None
}

/// Write zeros over a chunk file's data, a free header, and fsync it.
fn zero_chunk_file(path: &Path, chunk_size: u64) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(disk("open recycled chunk"))?;
    f.write_all(&ChunkHeader::free(chunk_size).encode())
        .map_err(disk("zero recycled chunk"))?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = chunk_size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])
            .map_err(disk("zero recycled chunk"))?;
        left -= n as u64;
    }
    f.sync_all().map_err(disk("fsync recycled chunk"))
}

impl FileChunkStore {
    /// Open the chunk store of a formatted data dir: index the pool and the chunks in use,
    /// finish recycling files a crash left in `recycle/`, and probe direct I/O.
    pub fn open(dir: DataDir, pollers: Arc<Pollers>, opts: StoreOptions) -> Result<Self> {
        let chunk_size = dir.meta().chunk_size;
        let pool_dir = dir.pool_dir();
        let mut next = next_free_number(&pool_dir, "", ".chunk")?;
        for e in fs::read_dir(dir.recycle_dir()).map_err(disk("list recycle dir"))? {
            let p = e.map_err(disk("list recycle dir"))?.path();
            zero_chunk_file(&p, chunk_size)?;
            fs::rename(&p, pool_dir.join(format!("{next:08}.chunk")))
                .map_err(disk("return chunk to pool"))?;
            next += 1;
        }
        let mut free = Vec::new();
        for e in fs::read_dir(&pool_dir).map_err(disk("list pool"))? {
            let p = e.map_err(disk("list pool"))?.path();
            if p.extension().is_some_and(|x| x == "chunk") {
                free.push(p);
            }
        }
        free.sort();
        free.reverse(); // pop() takes the lowest number first
        let (direct, unit) = match (opts.direct_io, free.last()) {
            (false, _) => (false, IO_ALIGN),
            (true, probe_path) => {
                let probed = probe_path.and_then(|p| probe_direct_unit(p));
                match (probed, opts.io_unit) {
                    (Some(p), Some(forced)) => (true, forced.max(p)),
                    (Some(p), None) => (true, p),
                    (None, _) if probe_path.is_none() => (true, opts.io_unit.unwrap_or(4096)),
                    (None, _) => {
                        tracing::warn!("O_DIRECT refused by the filesystem, using buffered I/O");
                        (false, IO_ALIGN)
                    }
                }
            }
        };
        let mut chunks: HashMap<GroupId, BTreeMap<ChunkId, Arc<Chunk>>> = HashMap::new();
        let mut max_sn = 0;
        for g in fs::read_dir(dir.chunks_dir()).map_err(disk("list chunks"))? {
            let g = g.map_err(disk("list chunks"))?;
            let Ok(group) = g.file_name().to_string_lossy().parse::<u64>() else {
                continue;
            };
            for c in fs::read_dir(g.path()).map_err(disk("list chunks"))? {
                let c = c.map_err(disk("list chunks"))?;
                let Ok(chunk) = c.file_name().to_string_lossy().parse::<u64>() else {
                    continue;
                };
                let path = c.path();
                let file = open_file(&path, direct).map_err(disk("open chunk"))?;
                let mut page = AlignedBuf::zeroed(HEADER_SIZE);
                if file.read_at(page.as_mut_slice(), 0).is_ok() {
                    if let Ok(h) = ChunkHeader::decode(page.as_slice()) {
                        max_sn = max_sn.max(h.sn);
                    }
                }
                chunks.entry(GroupId(group)).or_default().insert(
                    ChunkId(chunk),
                    Arc::new(Chunk {
                        path: Mutex::new(path),
                        file: Arc::new(file),
                        lock: tokio::sync::RwLock::new(true),
                    }),
                );
            }
        }
        tracing::info!(
            root = %dir.root().display(),
            free = free.len(),
            direct,
            unit,
            backend = pollers.backend().name(),
            "chunk store opened"
        );
        Ok(FileChunkStore {
            dir,
            chunk_size,
            pollers,
            direct,
            unit,
            free: Mutex::new(free),
            reserved: Arc::new(Mutex::new(HashMap::new())),
            chunks: Mutex::new(chunks),
            next_pool_no: AtomicU64::new(next),
            sn: AtomicU64::new(max_sn + 1),
            fence: DiskFence::new(),
        })
    }

    /// Use `fence` (the disk's, shared with its WAL) instead of the store's own.
    pub fn with_fence(mut self, fence: Arc<DiskFence>) -> Self {
        self.fence = fence;
        self
    }

    /// The disk fence this store trips on an I/O error and obeys.
    pub fn fence(&self) -> &Arc<DiskFence> {
        &self.fence
    }

    /// Free chunk files left in the pool.
    pub fn free_chunks(&self) -> usize {
        self.free.lock().len()
    }

    /// The direct-I/O unit in use (512 or 4096).
    pub fn io_unit(&self) -> u64 {
        self.unit
    }

    /// Whether chunk files are opened with `O_DIRECT`.
    pub fn direct_io(&self) -> bool {
        self.direct
    }

    /// Chunk data size.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        let bad = offset % IO_ALIGN != 0
            || len % IO_ALIGN != 0
            || len == 0
            || offset
                .checked_add(len)
                .is_none_or(|end| end > self.chunk_size);
        if bad {
            Err(ChunkServerError::BadRange { offset, len })
        } else {
            Ok(())
        }
    }

    fn get(&self, group: GroupId, chunk: ChunkId) -> Option<Arc<Chunk>> {
        self.chunks.lock().get(&group)?.get(&chunk).cloned()
    }

    fn get_or_create(&self, group: GroupId, chunk: ChunkId) -> Result<Arc<Chunk>> {
        let mut chunks = self.chunks.lock();
        if let Some(c) = chunks.get(&group).and_then(|m| m.get(&chunk)) {
            return Ok(c.clone());
        }
        let src = self
            .free
            .lock()
            .pop()
            .ok_or(ChunkServerError::NoSpace { pool: "chunk" })?;
        let gdir = self.dir.chunks_dir().join(group.0.to_string());
        let dst = gdir.join(chunk.0.to_string());
        let taken = (|| {
            fs::create_dir_all(&gdir).map_err(disk("create group dir"))?;
            fs::rename(&src, &dst).map_err(disk("take chunk from pool"))?;
            let header = ChunkHeader {
                group,
                chunk,
                sn: self.sn.fetch_add(1, Ordering::Relaxed),
                chunk_size: self.chunk_size,
            };
            let file = open_file(&dst, self.direct).map_err(disk("open chunk"))?;
            let page = AlignedBuf::from_slice(&header.encode());
            file.write_all_at(page.as_slice(), 0)
                .map_err(disk("write chunk header"))?;
            Ok(file)
        })();
        let file = match taken {
            Ok(f) => f,
            Err(e) => {
                if src.exists() {
                    self.free.lock().push(src);
                }
                return Err(e);
            }
        };
        let c = Arc::new(Chunk {
            path: Mutex::new(dst),
            file: Arc::new(file),
            lock: tokio::sync::RwLock::new(true),
        });
        chunks.entry(group).or_default().insert(chunk, c.clone());
        Ok(c)
    }

    async fn io(
        &self,
        group: GroupId,
        op: IoOp,
        c: &Chunk,
        off: u64,
        buf: AlignedBuf,
    ) -> Result<AlignedBuf> {
        let want = buf.len();
        let point = match op {
            IoOp::Read => failpoints::CHUNK_READ,
            IoOp::Write => failpoints::CHUNK_WRITE,
            IoOp::Sync => failpoints::CHUNK_SYNC,
        };
        failpoints::disk(point, self.dir.root()).map_err(|e| crate::backend::io_error(op, e))?;
        let (n, buf) = self
            .pollers
            .submit(group.0, op, c.file.clone(), HEADER_SIZE as u64 + off, buf)
            .await?;
        if op != IoOp::Sync && n != want {
            return Err(ChunkServerError::Disk {
                op: "short chunk I/O",
                source: std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            });
        }
        Ok(buf)
    }

    /// The aligned range covering `[offset, offset+len)`.
    fn cover(&self, offset: u64, len: u64) -> (u64, u64) {
        let start = offset / self.unit * self.unit;
        let end = (offset + len).div_ceil(self.unit) * self.unit;
        (start, end.min(self.chunk_size))
    }

    async fn write_impl(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        data: Bytes,
    ) -> Result<()> {
        let len = data.len() as u64;
        self.check_range(offset, len)?;
        let c = self.get_or_create(group, chunk)?;
        if offset % self.unit == 0 && len % self.unit == 0 {
            let alive = c.lock.read().await;
            if !*alive {
                return Err(ChunkServerError::ChunkNotFound { group, chunk });
            }
            self.io(
                group,
                IoOp::Write,
                &c,
                offset,
                AlignedBuf::from_slice(&data),
            )
            .await?;
            return Ok(());
        }
        let alive = c.lock.write().await;
        if !*alive {
            return Err(ChunkServerError::ChunkNotFound { group, chunk });
        }
        let (start, end) = self.cover(offset, len);
        let buf = AlignedBuf::zeroed((end - start) as usize);
        let mut buf = self.io(group, IoOp::Read, &c, start, buf).await?;
        let at = (offset - start) as usize;
        buf.as_mut_slice()[at..at + data.len()].copy_from_slice(&data);
        self.io(group, IoOp::Write, &c, start, buf).await?;
        Ok(())
    }

    async fn read_impl(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>> {
        self.check_range(offset, len)?;
        let Some(c) = self.get(group, chunk) else {
            return Ok(None);
        };
        let alive = c.lock.read().await;
        if !*alive {
            return Ok(None);
        }
        let (start, end) = self.cover(offset, len);
        let buf = self
            .io(
                group,
                IoOp::Read,
                &c,
                start,
                AlignedBuf::zeroed((end - start) as usize),
            )
            .await?;
        let at = (offset - start) as usize;
        Ok(Some(Bytes::copy_from_slice(
            &buf.as_slice()[at..at + len as usize],
        )))
    }

    async fn delete_impl(&self, group: GroupId, chunk: ChunkId) -> Result<()> {
        let c = {
            let mut chunks = self.chunks.lock();
            let Some(m) = chunks.get_mut(&group) else {
                return Ok(());
            };
            let Some(c) = m.remove(&chunk) else {
                return Ok(());
            };
            if m.is_empty() {
                chunks.remove(&group);
            }
            c
        };
        // Wait for in-flight I/O on the chunk, and make late users see it gone.
        let mut alive = c.lock.write().await;
        *alive = false;
        let n = self.next_pool_no.fetch_add(1, Ordering::Relaxed);
        let recycled = self.dir.recycle_dir().join(format!("{n:08}"));
        let path = c.path.lock().clone();
        fs::rename(&path, &recycled).map_err(disk("move chunk to recycle"))?;
        let pooled = self.dir.pool_dir().join(format!("{n:08}.chunk"));
        let chunk_size = self.chunk_size;
        let pooled2 = pooled.clone();
        tokio::task::spawn_blocking(move || {
            zero_chunk_file(&recycled, chunk_size)?;
            fs::rename(&recycled, &pooled2).map_err(disk("return chunk to pool"))
        })
        .await
        .map_err(|_| ChunkServerError::ThreadGone { thread: "blocking" })??;
        self.free.lock().push(pooled);
        Ok(())
    }

    async fn sync_impl(&self, group: GroupId) -> Result<()> {
        let list: Vec<Arc<Chunk>> = self
            .chunks
            .lock()
            .get(&group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let syncs = list
            .iter()
            .map(|c| self.io(group, IoOp::Sync, c, 0, AlignedBuf::zeroed(0)));
        for r in futures::future::join_all(syncs).await {
            r?;
        }
        let gdir = self.dir.chunks_dir().join(group.0.to_string());
        if gdir.exists() {
            fsync_dir(&gdir)?;
        }
        fsync_dir(&self.dir.chunks_dir())?;
        fsync_dir(&self.dir.pool_dir())
    }

    async fn remove_group_impl(&self, group: GroupId) -> Result<()> {
        let ids: Vec<ChunkId> = self.list(group)?;
        for id in ids {
            self.delete_impl(group, id).await?;
        }
        let gdir = self.dir.chunks_dir().join(group.0.to_string());
        match fs::remove_dir(&gdir) {
            Ok(()) => fsync_dir(&self.dir.chunks_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ChunkServerError::Disk {
                op: "remove group dir",
                source,
            }),
        }
    }
}

impl ChunkStore for FileChunkStore {
    fn write(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        data: Bytes,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.fence.check()?;
            self.fence
                .note(self.write_impl(group, chunk, offset, data).await)
        })
    }

    fn read(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'_, Result<Option<Bytes>>> {
        Box::pin(async move {
            self.fence.check()?;
            self.fence
                .note(self.read_impl(group, chunk, offset, len).await)
        })
    }

    fn delete(&self, group: GroupId, chunk: ChunkId) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.fence.check()?;
            self.fence.note(self.delete_impl(group, chunk).await)
        })
    }

    fn list(&self, group: GroupId) -> Result<Vec<ChunkId>> {
        Ok(self
            .chunks
            .lock()
            .get(&group)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default())
    }

    fn sync_group(&self, group: GroupId) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.fence.check()?;
            self.fence.note(self.sync_impl(group).await)
        })
    }

    fn remove_group(&self, group: GroupId) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.fence.check()?;
            self.fence.note(self.remove_group_impl(group).await)
        })
    }

    fn disk_fence(&self) -> Option<Arc<DiskFence>> {
        Some(self.fence.clone())
    }

    fn reserve_chunk(&self, group: GroupId, chunk: ChunkId) -> Result<SpaceReservation> {
        self.fence.check()?;
        // Lock order as in get_or_create: chunks, then free, then reserved.
        let chunks = self.chunks.lock();
        if chunks.get(&group).is_some_and(|m| m.contains_key(&chunk)) {
            return Ok(SpaceReservation::none());
        }
        let free = self.free.lock().len();
        let mut reserved = self.reserved.lock();
        let key = (group, chunk);
        let held = reserved.len();
        match reserved.get_mut(&key) {
            Some(n) => *n += 1,
            None if held < free => {
                reserved.insert(key, 1);
            }
            None => {
                tracing::debug!(%group, %chunk, free, reserved = reserved.len(), "chunk pool full");
                return Err(ChunkServerError::NoSpace { pool: "chunk" });
            }
        }
        let map = self.reserved.clone();
        Ok(SpaceReservation::held(move || {
            let mut m = map.lock();
            if let Some(n) = m.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&key);
                }
            }
        }))
    }
}
