//! One chunkserver storage engine without raft or network: a formatted data dir, the
//! poller threads of one I/O backend, the chunk store and the shared WAL, driven the way
//! the write path drives them.
//!
//! A write is what a replica does for a replicated 4 KiB write: append the log entry (the
//! payload plus an entry header) to the shared WAL and wait until it is durable (group
//! commit: one `fdatasync` covers every append queued meanwhile), then write the chunk
//! through the poller (no sync; dirty chunks are synced only before the WAL is purged
//! behind a snapshot, which this engine also does every [`PURGE_EVERY`] entries).

use crate::error::BenchError;
use basalt_chunkserver::backend::spdk::SpdkOptions;
use basalt_chunkserver::backend::{BackendChoice, BackendFactory, BackendKind};
use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::datadir::{DataDir, FormatOptions};
use basalt_chunkserver::group_log::{GroupLog, LogRecord};
use basalt_chunkserver::poller::{PollerOptions, Pollers};
use basalt_chunkserver::store::{FileChunkStore, StoreOptions};
use basalt_chunkserver::wal::Wal;
use basalt_chunkserver::ChunkServerError;
use basalt_proto::ids::{ChunkId, CopysetId, GroupId, LogicalPoolId};
use bytes::{Bytes, BytesMut};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes a raft log entry adds around a write's payload (entry header, log id, op); an
/// estimate of openraft's encoded `Entry<ChunkOp::Write>`.
pub const ENTRY_OVERHEAD: usize = 64;
/// Purge (after syncing the group's chunks) once this many entries are behind.
pub const PURGE_EVERY: u64 = 20_000;
/// Entries kept behind a purge (as the copysets' `keep-after-snapshot`).
pub const KEEP_AFTER_PURGE: u64 = 1_000;

/// The data dir geometry of an engine.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Chunk data size.
    pub chunk_size: u64,
    /// Chunks per group (all written once at set-up, so reads hit allocated chunks).
    pub chunks_per_group: u64,
    /// Groups (copysets) sharing the WAL; each has its own log.
    pub groups: u64,
    /// WAL segment size.
    pub wal_segment_size: u64,
}

impl Geometry {
    /// Group id of group `i`.
    pub fn group(i: u64) -> GroupId {
        GroupId::of(LogicalPoolId(1), CopysetId(i as u32 + 1))
    }
}

struct GroupLogState {
    next: u64,
    purged: u64,
}

/// The storage engine of one data dir on one backend.
pub struct Engine {
    /// The backend the pollers use.
    pub backend: BackendKind,
    /// The chunk store.
    pub store: Arc<FileChunkStore>,
    /// The shared WAL.
    pub wal: Arc<Wal>,
    geometry: Geometry,
    logs: Vec<Mutex<GroupLogState>>,
    purging: AtomicBool,
    _pollers: Arc<Pollers>,
}

fn cs(what: &str) -> impl FnOnce(ChunkServerError) -> BenchError + '_ {
    move |source| BenchError::ChunkServer {
        what: what.to_string(),
        source,
    }
}

/// Format a data dir under `root` for `g` (no-op for the parts already there).
pub fn format(root: &Path, g: &Geometry) -> Result<DataDir, BenchError> {
    DataDir::format(
        root,
        &FormatOptions {
            pool_size: g.groups * g.chunks_per_group,
            wal_segments: 4,
            chunk_size: g.chunk_size,
            wal_segment_size: g.wal_segment_size,
        },
        &mut |_| {},
    )
    .map_err(cs("format the data dir"))
}

/// Probe `choice`; `Err` when the backend cannot run here.
pub fn probe(choice: BackendChoice) -> Result<BackendFactory, BenchError> {
    BackendFactory::probe(choice, &SpdkOptions::default()).map_err(cs("probe the I/O backend"))
}

impl Engine {
    /// Open the store and the WAL of `dir` on `factory`'s backend. The chunk files are
    /// allocated by a first write by [`Engine::allocate`].
    pub fn open(dir: &DataDir, factory: &BackendFactory, g: Geometry) -> Result<Self, BenchError> {
        let pollers = Arc::new(
            Pollers::start(PollerOptions::default(), factory).map_err(cs("start the pollers"))?,
        );
        let store = Arc::new(
            FileChunkStore::open(dir.clone(), pollers.clone(), StoreOptions::default())
                .map_err(cs("open the chunk store"))?,
        );
        let wal = Arc::new(Wal::open(dir).map_err(cs("open the WAL"))?);
        let logs = (0..g.groups)
            .map(|i| {
                let last = wal.bounds(Geometry::group(i)).map_or(0, |(_, l)| l);
                Mutex::new(GroupLogState {
                    next: last + 1,
                    purged: last,
                })
            })
            .collect();
        Ok(Engine {
            backend: pollers.backend(),
            store,
            wal,
            geometry: g,
            logs,
            purging: AtomicBool::new(false),
            _pollers: pollers,
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Write every chunk once (chunk creation is a rename and a header write; not what
    /// the measurement is about).
    pub async fn allocate(&self) -> Result<(), BenchError> {
        let g = self.geometry;
        let block = Bytes::from(vec![0xa5u8; 4096]);
        for i in 0..g.groups {
            for c in 0..g.chunks_per_group {
                self.store
                    .write(Geometry::group(i), ChunkId(c), 0, block.clone())
                    .await
                    .map_err(cs("allocate a chunk"))?;
            }
        }
        Ok(())
    }

    /// The write path of one replica: WAL append (durable), then the chunk write.
    pub async fn write(
        &self,
        group_no: u64,
        chunk: ChunkId,
        offset: u64,
        data: Bytes,
    ) -> Result<(), BenchError> {
        let group = Geometry::group(group_no);
        let mut entry = BytesMut::with_capacity(ENTRY_OVERHEAD + data.len());
        entry.extend_from_slice(&[0u8; ENTRY_OVERHEAD]);
        entry.extend_from_slice(&data);
        let entry = entry.freeze();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let index = {
            // The lock keeps a group's appends in index order (the WAL checks contiguity).
            let mut st = self.logs[group_no as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let index = st.next;
            st.next += 1;
            self.wal.append(
                group,
                vec![LogRecord { index, data: entry }],
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            index
        };
        rx.await
            .map_err(|_| BenchError::ChunkServer {
                what: "WAL append".into(),
                source: ChunkServerError::ThreadGone {
                    thread: "WAL writer",
                },
            })?
            .map_err(cs("WAL append"))?;
        self.store
            .write(group, chunk, offset, data)
            .await
            .map_err(cs("chunk write"))?;
        self.maybe_purge(group_no, index).await
    }

    /// What a snapshot does to the log: sync the group's chunks, purge the WAL behind.
    async fn maybe_purge(&self, group_no: u64, index: u64) -> Result<(), BenchError> {
        let purged = self.logs[group_no as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .purged;
        if index < purged + PURGE_EVERY + KEEP_AFTER_PURGE
            || self.purging.swap(true, Ordering::AcqRel)
        {
            return Ok(());
        }
        let group = Geometry::group(group_no);
        let upto = index - KEEP_AFTER_PURGE;
        let r = async {
            self.store
                .sync_group(group)
                .await
                .map_err(cs("sync the group's chunks"))?;
            self.wal.purge_upto(group, upto).map_err(cs("WAL purge"))
        }
        .await;
        if r.is_ok() {
            self.logs[group_no as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .purged = upto;
        }
        self.purging.store(false, Ordering::Release);
        r
    }

    /// A 4 KiB (or any aligned) chunk read.
    pub async fn read(
        &self,
        group_no: u64,
        chunk: ChunkId,
        offset: u64,
        len: u64,
    ) -> Result<(), BenchError> {
        let group = Geometry::group(group_no);
        match self
            .store
            .read(group, chunk, offset, len)
            .await
            .map_err(cs("chunk read"))?
        {
            Some(_) => Ok(()),
            None => Err(BenchError::ChunkServer {
                what: "chunk read".into(),
                source: ChunkServerError::ChunkNotFound { group, chunk },
            }),
        }
    }
}
