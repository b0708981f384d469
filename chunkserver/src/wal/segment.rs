//! WAL segment files: naming, the header page, and scanning a segment's records.
//!
//! A segment is a preallocated file. Its first 4 KiB hold a header (magic, version,
//! sequence number, crc32c); records follow back to back. In-use segments are named
//! `seg-<seq as 16 hex digits>`, free ones `free-<n>`. Sequence numbers only grow: a new
//! segment takes one more than the largest found in any header, free files included.

use super::record::{decode, RecordRef};
use std::path::{Path, PathBuf};

/// Bytes reserved for the segment header; records start here.
pub const SEGMENT_HEADER: u64 = 4096;
const MAGIC: &[u8; 8] = b"BSLTWALS";
const VERSION: u32 = 1;

/// Encode a segment header page.
pub fn encode_header(seq: u64) -> Vec<u8> {
    let mut page = vec![0u8; SEGMENT_HEADER as usize];
    page[0..8].copy_from_slice(MAGIC);
    page[8..12].copy_from_slice(&VERSION.to_le_bytes());
    page[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&page[0..24]);
    page[24..28].copy_from_slice(&crc.to_le_bytes());
    page
}

/// Decode a segment header; `None` when it is not a valid header.
pub fn decode_header(page: &[u8]) -> Option<u64> {
    if page.len() < 28 || &page[0..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(page[24..28].try_into().ok()?);
    if crc != crc32c::crc32c(&page[0..24]) {
        return None;
    }
    if u32::from_le_bytes(page[8..12].try_into().ok()?) != VERSION {
        return None;
    }
    Some(u64::from_le_bytes(page[16..24].try_into().ok()?))
}

/// Path of in-use segment `seq`.
pub fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("seg-{seq:016x}"))
}

/// Sequence number of an in-use segment file name.
pub fn parse_seg_name(name: &str) -> Option<u64> {
    u64::from_str_radix(name.strip_prefix("seg-")?, 16).ok()
}

/// Number of a free segment file name.
pub fn parse_free_name(name: &str) -> Option<u64> {
    name.strip_prefix("free-")?.parse().ok()
}

/// How a segment scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEnd {
    /// Offset just past the last valid record.
    pub end: u64,
    /// Why the scan stopped (`None`: the segment is full to the last byte).
    pub reason: Option<super::record::DecodeError>,
}

/// Scan the records of segment `seq` whose bytes are `data` (the whole file), calling
/// `f(record, offset)` for each valid one, stopping at the first invalid one.
pub fn scan(data: &[u8], seq: u64, mut f: impl FnMut(RecordRef<'_>, u64)) -> ScanEnd {
    let mut off = SEGMENT_HEADER as usize;
    while off < data.len() {
        match decode(&data[off..], seq) {
            Ok((rec, len)) => {
                f(rec, off as u64);
                off += len;
            }
            Err(e) => {
                return ScanEnd {
                    end: off as u64,
                    reason: Some(e),
                }
            }
        }
    }
    ScanEnd {
        end: off as u64,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_names() {
        assert_eq!(decode_header(&encode_header(9)), Some(9));
        let mut h = encode_header(9);
        h[17] ^= 1;
        assert_eq!(decode_header(&h), None);
        let p = seg_path(Path::new("/x"), 255);
        assert_eq!(
            parse_seg_name(p.file_name().unwrap().to_str().unwrap()),
            Some(255)
        );
        assert_eq!(parse_free_name("free-00000012"), Some(12));
    }
}
