//! Offline verification of a data directory (`basalt-chunkserver check`): the meta file,
//! every chunk header (in use and in the pool) and every WAL record. Read-only.
//!
//! WAL segments end at their first invalid record; that is how every segment ends (a torn
//! write, zeroes, or records of the file's previous use), so a WAL tail is reported but is
//! not corruption. Corruption is: a bad meta file, a chunk header that fails its checksum
//! or names another chunk, a chunk file of the wrong size, or an unreadable file.

use crate::chunk_header::{ChunkHeader, HEADER_SIZE};
use crate::datadir::{DataDir, DiskMeta};
use crate::wal::recovery::{recover, SegmentScan};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What `check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The meta file, or why it is unusable.
    pub meta: Option<DiskMeta>,
    /// Problems, one line each (corruption).
    pub problems: Vec<String>,
    /// Notes that are not corruption.
    pub notes: Vec<String>,
    /// Chunk files in use with a good header.
    pub chunks_ok: u64,
    /// Free pool files with a good header.
    pub pool_ok: u64,
    /// WAL segment scans.
    pub wal_segments: Vec<SegmentScan>,
    /// Free WAL segments.
    pub wal_free: usize,
    /// Groups with a log or metadata in the WAL.
    pub wal_groups: usize,
}

impl CheckReport {
    /// True when something is corrupt.
    pub fn is_corrupt(&self) -> bool {
        !self.problems.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.meta {
            Some(m) => writeln!(
                f,
                "meta: ok (format v{}, disk {}, chunk size {}, chunkserver {:?}, cluster {:?})",
                m.format_version, m.disk_uuid, m.chunk_size, m.chunkserver_id, m.cluster_id
            )?,
            None => writeln!(f, "meta: UNUSABLE")?,
        }
        writeln!(
            f,
            "chunks: {} in use ok, {} free in pool ok",
            self.chunks_ok, self.pool_ok
        )?;
        let records: u64 = self.wal_segments.iter().map(|s| s.records).sum();
        writeln!(
            f,
            "wal: {} segments in use, {} free, {} records, {} groups",
            self.wal_segments.len(),
            self.wal_free,
            records,
            self.wal_groups
        )?;
        for s in &self.wal_segments {
            writeln!(
                f,
                "  seg {:#x}: {} records, ends at {} ({:?})",
                s.seq, s.records, s.end, s.stop
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        for p in &self.problems {
            writeln!(f, "CORRUPT: {p}")?;
        }
        write!(
            f,
            "{}",
            if self.is_corrupt() {
                "result: CORRUPT"
            } else {
                "result: ok"
            }
        )
    }
}

fn read_page(path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
    let mut f = fs::File::open(path)?;
    let size = f.metadata()?.len();
    let mut page = vec![0u8; HEADER_SIZE];
    let mut got = 0;
    while got < HEADER_SIZE {
        match f.read(&mut page[got..])? {
            0 => break,
            n => got += n,
        }
    }
    page.truncate(got);
    Ok((page, size))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Verify the data directory at `root`.
pub fn check_data_dir(root: &Path) -> CheckReport {
    let mut r = CheckReport::default();
    let dir = match DataDir::open(root, None) {
        Ok(d) => d,
        Err(e) => {
            r.problems.push(format!("meta: {e}"));
            return r;
        }
    };
    let meta = dir.meta().clone();
    let want_size = HEADER_SIZE as u64 + meta.chunk_size;
    let check_chunk = |r: &mut CheckReport, path: &Path, expect: Option<(u64, u64)>| {
        let (page, size) = match read_page(path) {
            Ok(x) => x,
            Err(e) => {
                return r
                    .problems
                    .push(format!("{}: unreadable: {e}", path.display()))
            }
        };
        if size != want_size {
            return r.problems.push(format!(
                "{}: size {size}, expected {want_size}",
                path.display()
            ));
        }
        match ChunkHeader::decode(&page) {
            Err(e) => r
                .problems
                .push(format!("{}: header {}", path.display(), e.reason())),
            Ok(h) if h.chunk_size != meta.chunk_size => r.problems.push(format!(
                "{}: header chunk size {}",
                path.display(),
                h.chunk_size
            )),
            Ok(h) => match expect {
                None => r.pool_ok += 1,
                Some((g, c)) if h.group.0 == g && h.chunk.0 == c => r.chunks_ok += 1,
                // Taken from the pool but the crash came before its header was rewritten.
                Some(_) if h.group.0 == 0 && h.chunk.0 == 0 => {
                    r.chunks_ok += 1;
                    r.notes
                        .push(format!("{}: header not yet rewritten", path.display()));
                }
                Some(_) => r.problems.push(format!(
                    "{}: header names group {} chunk {}",
                    path.display(),
                    h.group.0,
                    h.chunk.0
                )),
            },
        }
    };
    for p in files(&dir.pool_dir()) {
        if p.extension().is_some_and(|x| x == "chunk") {
            check_chunk(&mut r, &p, None);
        }
    }
    for g in files(&dir.chunks_dir()) {
        let Some(gid) = g
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
        else {
            r.notes
                .push(format!("{}: not a group directory", g.display()));
            continue;
        };
        for c in files(&g) {
            match c
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
            {
                Some(cid) => check_chunk(&mut r, &c, Some((gid, cid))),
                None => r.notes.push(format!("{}: not a chunk file", c.display())),
            }
        }
    }
    match recover(&dir.wal_dir()) {
        Ok(rec) => {
            r.wal_free = rec.free.len();
            r.wal_groups = rec.index.groups().len();
            for b in &rec.bad_headers {
                r.notes.push(format!(
                    "{}: segment header invalid (crash while starting it)",
                    b.display()
                ));
            }
            r.wal_segments = rec.scans;
        }
        Err(e) => r.problems.push(format!("wal: {e}")),
    }
    r.meta = Some(meta);
    r
}
