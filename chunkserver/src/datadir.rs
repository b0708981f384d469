//! The data directory: its layout, its `meta` file (format version, disk identity, cluster
//! identity) and the `format` operation that pre-creates the chunk file pool and the WAL
//! segments.
//!
//! Layout:
//! ```text
//! <data-dir>/meta                    identity, checksummed, replaced atomically
//! <data-dir>/pool/<n>.chunk          free chunk files (header page + zero-filled data)
//! <data-dir>/chunks/<group>/<chunk>  chunk files in use
//! <data-dir>/recycle/                deleted chunk files being zeroed before going back
//! <data-dir>/wal/free-<n>            preallocated, unused WAL segments
//! <data-dir>/wal/seg-<seq>           WAL segments in use (hex sequence number)
//! ```
//! Every file is created under a `.tmp` name, filled, fsynced, then renamed into place and
//! its directory fsynced, so an interrupted `format` leaves only complete files behind and
//! can simply be run again.

use crate::chunk_header::{ChunkHeader, HEADER_SIZE};
use crate::error::{ChunkServerError, Result};
use basalt_proto::ids::ChunkServerId;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Data-directory format version written and accepted by this build. 2: raft log
/// entries and snapshots carry client request ids and the dedupe table (version 1 data
/// dirs cannot be read; re-format them).
pub const FORMAT_VERSION: u32 = 2;
/// Default chunk data size (16 MiB).
pub const DEFAULT_CHUNK_SIZE: u64 = 16 << 20;
/// Default WAL segment size (64 MiB).
pub const DEFAULT_WAL_SEGMENT_SIZE: u64 = 64 << 20;

/// Space `format` leaves free beyond the pools: the daemon still needs room for its
/// meta file, logs and snapshots metadata on a disk the pools otherwise fill.
pub const FORMAT_SPACE_RESERVE: u64 = 64 << 20;
const META_MAGIC: &[u8; 8] = b"BSLTMETA";
const ZERO_BLOCK: usize = 1 << 20;

/// The contents of the `meta` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskMeta {
    /// Data-directory format version.
    pub format_version: u32,
    /// Random id of this disk, chosen at format time.
    pub disk_uuid: String,
    /// Chunk data size in bytes.
    pub chunk_size: u64,
    /// WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// False while `format` is still filling the pools.
    pub formatted: bool,
    /// Id assigned by the MDS at registration.
    pub chunkserver_id: Option<ChunkServerId>,
    /// Token assigned by the MDS at registration.
    pub token: Option<String>,
    /// The cluster this disk belongs to (set at registration).
    pub cluster_id: Option<String>,
}

/// What `format` should create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatOptions {
    /// Number of chunk files in the pool (counting chunks already in use).
    pub pool_size: u64,
    /// Number of preallocated WAL segments (counting segments in use).
    pub wal_segments: u64,
    /// Chunk data size (a multiple of 4 KiB); only used for a new data dir.
    pub chunk_size: u64,
    /// WAL segment size (a multiple of 4 KiB); only used for a new data dir.
    pub wal_segment_size: u64,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            pool_size: 0,
            wal_segments: 4,
            chunk_size: DEFAULT_CHUNK_SIZE,
            wal_segment_size: DEFAULT_WAL_SEGMENT_SIZE,
        }
    }
}

/// Progress of `format`: bytes written so far out of the bytes this run has to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatProgress {
    /// Bytes written.
    pub done: u64,
    /// Bytes to write in this run (complete files from an earlier run are not counted).
    pub total: u64,
}

/// An opened, formatted data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    meta: DiskMeta,
}

fn disk_err(op: &'static str) -> impl FnOnce(std::io::Error) -> ChunkServerError {
    move |source| ChunkServerError::Disk { op, source }
}

/// fsync a directory so renames and creations in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(disk_err("fsync directory"))
}

/// Encode a meta file: magic, crc32c of the body, body length, JSON body.
pub fn encode_meta(meta: &DiskMeta) -> Vec<u8> {
    let body = serde_json::to_vec(meta).expect("DiskMeta serializes");
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(META_MAGIC);
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decode and verify a meta file (checksum first, then the version).
pub fn decode_meta(path: &Path, bytes: &[u8]) -> Result<DiskMeta> {
    let corrupt = |reason| ChunkServerError::MetaCorrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 16 || &bytes[0..8] != META_MAGIC {
        return Err(corrupt("bad magic"));
    }
    let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let body = bytes.get(16..16 + len).ok_or(corrupt("truncated"))?;
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    // Read the version alone first so a future layout is reported as a version mismatch.
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let v: Version = serde_json::from_slice(body).map_err(|_| corrupt("undecodable body"))?;
    if v.format_version != FORMAT_VERSION {
        return Err(ChunkServerError::FormatVersion {
            found: v.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let meta: DiskMeta = serde_json::from_slice(body).map_err(|_| corrupt("undecodable body"))?;
    // Sizes `format` would never write: the WAL and the store compute offsets from them
    // (a segment smaller than its header page would underflow).
    let sized = |v: u64| v > 0 && v % 4096 == 0;
    if !sized(meta.chunk_size) {
        return Err(corrupt("chunk size is not a positive multiple of 4096"));
    }
    if !sized(meta.wal_segment_size) {
        return Err(corrupt(
            "WAL segment size is not a positive multiple of 4096",
        ));
    }
    Ok(meta)
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(disk_err("create temp file"))?;
        f.write_all(bytes).map_err(disk_err("write temp file"))?;
        f.sync_all().map_err(disk_err("fsync temp file"))?;
    }
    fs::rename(&tmp, path).map_err(disk_err("rename temp file"))?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Create `final_path` of `size` bytes, zero-filled except `head` at offset 0, via a temp
/// file that is fsynced before the rename (so only complete files ever carry the final name).
pub fn create_zero_file(
    final_path: &Path,
    size: u64,
    head: &[u8],
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let tmp = final_path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(disk_err("create pool file"))?;
    let zeros = vec![0u8; ZERO_BLOCK];
    let mut written = 0u64;
    if !head.is_empty() {
        f.write_all(head).map_err(disk_err("write pool file"))?;
        written = head.len() as u64;
        progress(written);
    }
    while written < size {
        let n = (size - written).min(ZERO_BLOCK as u64) as usize;
        f.write_all(&zeros[..n])
            .map_err(disk_err("write pool file"))?;
        written += n as u64;
        progress(n as u64);
    }
    f.sync_all().map_err(disk_err("fsync pool file"))?;
    drop(f);
    fs::rename(&tmp, final_path).map_err(disk_err("rename pool file"))
}

fn count_files(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<u64> {
    let mut n = 0;
    if !dir.exists() {
        return Ok(0);
    }
    for e in fs::read_dir(dir).map_err(disk_err("list directory"))? {
        let e = e.map_err(disk_err("list directory"))?;
        if e.file_type().map_err(disk_err("stat"))?.is_dir() {
            n += count_files(&e.path(), keep)?;
        } else if keep(&e.file_name().to_string_lossy()) {
            n += 1;
        }
    }
    Ok(n)
}

fn remove_tmp_files(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).map_err(disk_err("list directory"))? {
        let e = e.map_err(disk_err("list directory"))?;
        if e.file_name().to_string_lossy().ends_with(".tmp") {
            fs::remove_file(e.path()).map_err(disk_err("remove temp file"))?;
        }
    }
    Ok(())
}

/// Next unused number for `<prefix><n><suffix>` names in `dir`.
pub fn next_free_number(dir: &Path, prefix: &str, suffix: &str) -> Result<u64> {
    let mut next = 0;
    for e in fs::read_dir(dir).map_err(disk_err("list directory"))? {
        let e = e.map_err(disk_err("list directory"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|r| r.parse::<u64>().ok())
        {
            next = next.max(n + 1);
        }
    }
    Ok(next)
}

impl DataDir {
    /// Open a formatted data directory. Refuses (touching nothing) a missing or corrupt
    /// meta file, another format version, an unfinished format, or, when `expected_cluster`
    /// is given and the disk is registered, another cluster id.
    pub fn open(root: impl Into<PathBuf>, expected_cluster: Option<&str>) -> Result<DataDir> {
        let root = root.into();
        let meta = Self::read_meta(&root)?;
        if !meta.formatted {
            return Err(ChunkServerError::NotFormatted { path: root });
        }
        if let (Some(expected), Some(found)) = (expected_cluster, meta.cluster_id.as_deref()) {
            if expected != found {
                return Err(ChunkServerError::ClusterMismatch {
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        Ok(DataDir { root, meta })
    }

    /// Read and verify the meta file of `root` without any other check.
    pub fn read_meta(root: &Path) -> Result<DiskMeta> {
        let path = root.join("meta");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ChunkServerError::NotFormatted {
                    path: root.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(ChunkServerError::Disk {
                    op: "read meta",
                    source,
                })
            }
        };
        decode_meta(&path, &bytes)
    }

    /// Format (or finish formatting) `root`: write the meta file, then fill the chunk pool
    /// and the WAL segment pool up to the asked sizes. Files left complete by an interrupted
    /// run are kept; half-written `.tmp` files are discarded. An existing meta keeps its disk
    /// uuid, sizes and registration.
    pub fn format(
        root: impl Into<PathBuf>,
        opts: &FormatOptions,
        progress: &mut dyn FnMut(FormatProgress),
    ) -> Result<DataDir> {
        let root = root.into();
        for (field, v) in [
            ("chunk-size", opts.chunk_size),
            ("wal-segment-size", opts.wal_segment_size),
        ] {
            if v == 0 || v % 4096 != 0 {
                return Err(ChunkServerError::Config {
                    field,
                    reason: format!("{v} is not a positive multiple of 4096"),
                });
            }
        }
        fs::create_dir_all(&root).map_err(disk_err("create data dir"))?;
        let meta = match Self::read_meta(&root) {
            Ok(m) => m,
            Err(ChunkServerError::NotFormatted { .. }) => DiskMeta {
                format_version: FORMAT_VERSION,
                disk_uuid: uuid::Uuid::new_v4().to_string(),
                chunk_size: opts.chunk_size,
                wal_segment_size: opts.wal_segment_size,
                formatted: false,
                chunkserver_id: None,
                token: None,
                cluster_id: None,
            },
            Err(e) => return Err(e),
        };
        let mut dir = DataDir { root, meta };
        for d in [
            dir.pool_dir(),
            dir.chunks_dir(),
            dir.recycle_dir(),
            dir.wal_dir(),
        ] {
            fs::create_dir_all(&d).map_err(disk_err("create directory"))?;
        }
        dir.store_meta()?;
        remove_tmp_files(&dir.pool_dir())?;
        remove_tmp_files(&dir.wal_dir())?;

        let file_size = HEADER_SIZE as u64 + dir.meta.chunk_size;
        let have_chunks = count_files(&dir.pool_dir(), &|n| n.ends_with(".chunk"))?
            + count_files(&dir.chunks_dir(), &|_| true)?
            + count_files(&dir.recycle_dir(), &|_| true)?;
        let have_segs = count_files(&dir.wal_dir(), &|n| {
            n.starts_with("free-") || n.starts_with("seg-")
        })?;
        let want_chunks = opts.pool_size.saturating_sub(have_chunks);
        let want_segs = opts.wal_segments.saturating_sub(have_segs);
        let total = want_chunks * file_size + want_segs * dir.meta.wal_segment_size;
        if total > 0 {
            let available = crate::fs_space::available_bytes(&dir.root)
                .map_err(disk_err("statvfs data dir"))?;
            let need = total.saturating_add(FORMAT_SPACE_RESERVE);
            if available < need {
                return Err(ChunkServerError::FormatNoSpace {
                    path: dir.root.clone(),
                    need,
                    available,
                });
            }
        }
        let mut done = 0u64;
        progress(FormatProgress { done, total });
        let header = ChunkHeader::free(dir.meta.chunk_size).encode();
        let first = next_free_number(&dir.pool_dir(), "", ".chunk")?;
        for next in first..first + want_chunks {
            let path = dir.pool_dir().join(format!("{next:08}.chunk"));
            create_zero_file(&path, file_size, &header, &mut |n| {
                done += n;
                progress(FormatProgress { done, total });
            })?;
        }
        let first = next_free_number(&dir.wal_dir(), "free-", "")?;
        for next in first..first + want_segs {
            let path = dir.wal_dir().join(format!("free-{next:08}"));
            create_zero_file(&path, dir.meta.wal_segment_size, &[], &mut |n| {
                done += n;
                progress(FormatProgress { done, total });
            })?;
        }
        fsync_dir(&dir.pool_dir())?;
        fsync_dir(&dir.wal_dir())?;
        dir.meta.formatted = true;
        dir.store_meta()?;
        Ok(dir)
    }

    /// Record the registration (chunkserver id, token, cluster id) durably.
    pub fn set_identity(
        &mut self,
        id: ChunkServerId,
        token: String,
        cluster: String,
    ) -> Result<()> {
        let mut meta = self.meta.clone();
        meta.chunkserver_id = Some(id);
        meta.token = Some(token);
        meta.cluster_id = Some(cluster);
        write_atomic(&self.meta_path(), &encode_meta(&meta))?;
        self.meta = meta;
        Ok(())
    }

    fn store_meta(&self) -> Result<()> {
        write_atomic(&self.meta_path(), &encode_meta(&self.meta))
    }

    /// The meta file's contents.
    pub fn meta(&self) -> &DiskMeta {
        &self.meta
    }
    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Path of the meta file.
    pub fn meta_path(&self) -> PathBuf {
        self.root.join("meta")
    }
    /// Directory of free chunk files.
    pub fn pool_dir(&self) -> PathBuf {
        self.root.join("pool")
    }
    /// Directory of chunk files in use.
    pub fn chunks_dir(&self) -> PathBuf {
        self.root.join("chunks")
    }
    /// Directory of deleted chunk files being zeroed.
    pub fn recycle_dir(&self) -> PathBuf {
        self.root.join("recycle")
    }
    /// Directory of WAL segments.
    pub fn wal_dir(&self) -> PathBuf {
        self.root.join("wal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_roundtrip_and_corruption() {
        let m = DiskMeta {
            format_version: FORMAT_VERSION,
            disk_uuid: "u".into(),
            chunk_size: 4096,
            wal_segment_size: 8192,
            formatted: true,
            chunkserver_id: Some(ChunkServerId(3)),
            token: None,
            cluster_id: Some("c".into()),
        };
        let p = Path::new("meta");
        let bytes = encode_meta(&m);
        assert_eq!(decode_meta(p, &bytes).unwrap(), m);
        let mut bad = bytes.clone();
        let last = bad.len() - 3;
        bad[last] ^= 0x20;
        assert!(matches!(
            decode_meta(p, &bad),
            Err(ChunkServerError::MetaCorrupt { .. })
        ));
        assert!(matches!(
            decode_meta(p, &bytes[..bytes.len() - 1]),
            Err(ChunkServerError::MetaCorrupt { .. })
        ));
        // Checksummed but with sizes format never writes (the WAL would underflow on them).
        for (chunk, seg) in [(0, 8192), (4096, 100), (4096, 0), (5000, 8192)] {
            let odd = encode_meta(&DiskMeta {
                chunk_size: chunk,
                wal_segment_size: seg,
                ..m.clone()
            });
            assert!(
                matches!(
                    decode_meta(p, &odd),
                    Err(ChunkServerError::MetaCorrupt { .. })
                ),
                "chunk {chunk} segment {seg}"
            );
        }
    }
}
