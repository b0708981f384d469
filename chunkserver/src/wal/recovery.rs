//! Reading a WAL directory back: classify segment files, scan every in-use segment in
//! sequence order up to its first invalid record, and replay the records into an
//! [`Index`]. Read-only (the offline `check` uses it as is).
//!
//! Why each segment is scanned to its own first invalid record and the scan goes on with
//! the next: the writer fsyncs a segment before it starts the next one, so anything after
//! the first invalid record of a segment that has a successor was never acknowledged.
//! A torn tail can only be in the newest segment; after recovery the writer always starts
//! a fresh segment, so a torn record is never followed by new data in its segment.

use super::index::{Index, Loc, MetaSlot, Slot};
use super::record::{meta_key, DecodeError, RecordKind, RecordRef};
use super::segment::{decode_header, parse_free_name, parse_seg_name, scan, SEGMENT_HEADER};
use crate::error::{ChunkServerError, Result};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The scan result of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// Sequence number.
    pub seq: u64,
    /// Valid records.
    pub records: u64,
    /// Offset past the last valid record.
    pub end: u64,
    /// Why the scan stopped (`None`: full).
    pub stop: Option<DecodeError>,
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The rebuilt index.
    pub index: Index,
    /// In-use segments with a valid header, by sequence number.
    pub segments: BTreeMap<u64, PathBuf>,
    /// Free segment files.
    pub free: Vec<PathBuf>,
    /// `seg-*` files whose header is invalid (a crash while starting a segment).
    pub bad_headers: Vec<PathBuf>,
    /// Largest sequence number found in any header (free files included).
    pub max_seq: u64,
    /// Largest free file number.
    pub max_free_no: Option<u64>,
    /// Per-segment scan results, in order.
    pub scans: Vec<SegmentScan>,
}

fn disk(op: &'static str) -> impl FnOnce(std::io::Error) -> ChunkServerError {
    move |source| ChunkServerError::Disk { op, source }
}

fn read_header(path: &Path) -> Result<Option<u64>> {
    let mut f = fs::File::open(path).map_err(disk("open WAL segment"))?;
    let mut page = vec![0u8; SEGMENT_HEADER as usize];
    let mut got = 0;
    while got < page.len() {
        match f.read(&mut page[got..]).map_err(disk("read WAL segment"))? {
            0 => break,
            n => got += n,
        }
    }
    Ok(decode_header(&page[..got]))
}

/// Apply one record to the index (shared by recovery and tests).
pub fn replay(index: &mut Index, rec: RecordRef<'_>, off: u64) {
    let op = index.next_op();
    match rec.kind {
        RecordKind::Entry => {
            let len = (super::record::RECORD_HEADER + rec.payload.len()) as u32;
            index.put_entry(
                rec.group,
                rec.index,
                Slot {
                    op,
                    loc: Loc::Disk {
                        seg: rec.seg,
                        off,
                        len,
                    },
                },
            );
        }
        RecordKind::Truncate => index.truncate_from(rec.group, rec.index),
        RecordKind::Purge => index.purge_upto(rec.group, rec.index),
        RecordKind::Meta => {
            if let Some(key) = meta_key(rec.index) {
                index.put_meta(
                    rec.group,
                    key,
                    MetaSlot {
                        op,
                        value: Bytes::copy_from_slice(rec.payload),
                        seg: Some(rec.seg),
                    },
                );
            }
        }
        RecordKind::RemoveGroup => index.remove_group(rec.group),
    }
}

/// Scan the WAL directory `dir` and rebuild the index.
pub fn recover(dir: &Path) -> Result<Recovered> {
    let mut out = Recovered::default();
    for e in fs::read_dir(dir).map_err(disk("list WAL dir"))? {
        let path = e.map_err(disk("list WAL dir"))?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(seq) = parse_seg_name(&name) {
            match read_header(&path)? {
                Some(h) if h == seq => {
                    out.max_seq = out.max_seq.max(seq);
                    out.segments.insert(seq, path);
                }
                _ => out.bad_headers.push(path),
            }
        } else if let Some(n) = parse_free_name(&name) {
            if let Some(h) = read_header(&path)? {
                out.max_seq = out.max_seq.max(h);
            }
            out.max_free_no = Some(out.max_free_no.map_or(n, |m| m.max(n)));
            out.free.push(path);
        }
    }
    out.free.sort();
    for (&seq, path) in &out.segments {
        let data = fs::read(path).map_err(disk("read WAL segment"))?;
        let mut records = 0;
        let end = scan(&data, seq, |rec, off| {
            records += 1;
            replay(&mut out.index, rec, off);
        });
        out.scans.push(SegmentScan {
            seq,
            records,
            end: end.end,
            stop: end.reason,
        });
    }
    Ok(out)
}
