//! WAL record framing (pure encode/decode).
//!
//! ```text
//! 0   crc32c  u32   over bytes 4..len
//! 4   len     u32   whole record, header included
//! 8   seg     u64   sequence number of the segment it was written to
//! 16  kind    u8    entry / truncate / purge / meta / remove-group
//! 17  -       [u8; 7]
//! 24  group   u64
//! 32  index   u64   entry: raft index; truncate: first index removed; purge: last index
//!                   removed; meta: key code; remove-group: 0
//! 40  payload       entry data or meta value
//! ```
//! The segment sequence number makes records left over from a segment's previous use
//! invalid, so a recycled segment never needs zeroing.

use crate::group_log::MetaKey;
use basalt_proto::ids::GroupId;

/// Size of the record header.
pub const RECORD_HEADER: usize = 40;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A log entry (also used for entries rewritten forward by segment recycling).
    Entry = 1,
    /// Entries with index >= `index` are gone.
    Truncate = 2,
    /// Entries with index <= `index` are gone.
    Purge = 3,
    /// A metadata value; `index` is the key code.
    Meta = 4,
    /// The group is gone.
    RemoveGroup = 5,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => RecordKind::Entry,
            2 => RecordKind::Truncate,
            3 => RecordKind::Purge,
            4 => RecordKind::Meta,
            5 => RecordKind::RemoveGroup,
            _ => return None,
        })
    }
}

/// Code of a meta key in a record.
pub fn meta_code(key: MetaKey) -> u64 {
    match key {
        MetaKey::Vote => 0,
        MetaKey::Committed => 1,
        MetaKey::Purged => 2,
    }
}

/// Meta key of a record code.
pub fn meta_key(code: u64) -> Option<MetaKey> {
    Some(match code {
        0 => MetaKey::Vote,
        1 => MetaKey::Committed,
        2 => MetaKey::Purged,
        _ => return None,
    })
}

/// A decoded record (payload borrowed from the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Segment sequence number.
    pub seg: u64,
    /// Kind.
    pub kind: RecordKind,
    /// Group.
    pub group: GroupId,
    /// Index or key code (see the module doc).
    pub index: u64,
    /// Payload.
    pub payload: &'a [u8],
}

/// Why decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or the announced length (torn write or end of data).
    Short,
    /// Length field below the header size (zeroed or garbage space).
    BadLength,
    /// Checksum mismatch (torn or corrupt).
    BadChecksum,
    /// Valid checksum but written to another use of this segment file (stale).
    StaleSegment,
    /// Unknown kind.
    BadKind,
}

/// Encoded length of a record with `payload_len` bytes of payload.
pub fn encoded_len(payload_len: usize) -> usize {
    RECORD_HEADER + payload_len
}

/// Append an encoded record to `out`.
pub fn encode(
    out: &mut Vec<u8>,
    seg: u64,
    kind: RecordKind,
    group: GroupId,
    index: u64,
    payload: &[u8],
) {
    let start = out.len();
    let len = encoded_len(payload.len()) as u32;
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seg.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&[0u8; 7]);
    out.extend_from_slice(&group.0.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Decode the record at the start of `buf`, which must belong to segment `seg`.
/// Returns the record and its encoded length.
pub fn decode(buf: &[u8], seg: u64) -> Result<(RecordRef<'_>, usize), DecodeError> {
    if buf.len() < RECORD_HEADER {
        return Err(DecodeError::Short);
    }
    let u32_at = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
    let len = u32_at(4) as usize;
    if len < RECORD_HEADER {
        return Err(DecodeError::BadLength);
    }
    if buf.len() < len {
        return Err(DecodeError::Short);
    }
    if crc32c::crc32c(&buf[4..len]) != u32_at(0) {
        return Err(DecodeError::BadChecksum);
    }
    if u64_at(8) != seg {
        return Err(DecodeError::StaleSegment);
    }
    let kind = RecordKind::from_u8(buf[16]).ok_or(DecodeError::BadKind)?;
    Ok((
        RecordRef {
            seg,
            kind,
            group: GroupId(u64_at(24)),
            index: u64_at(32),
            payload: &buf[RECORD_HEADER..len],
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejections() {
        let mut b = Vec::new();
        encode(&mut b, 7, RecordKind::Entry, GroupId(3), 42, b"hello");
        let (r, n) = decode(&b, 7).unwrap();
        assert_eq!(n, b.len());
        assert_eq!(
            (r.kind, r.group, r.index, r.payload),
            (RecordKind::Entry, GroupId(3), 42, &b"hello"[..])
        );
        assert_eq!(decode(&b, 8).unwrap_err(), DecodeError::StaleSegment);
        assert_eq!(
            decode(&b[..b.len() - 1], 7).unwrap_err(),
            DecodeError::Short
        );
        let mut bad = b.clone();
        bad[41] ^= 1;
        assert_eq!(decode(&bad, 7).unwrap_err(), DecodeError::BadChecksum);
        assert_eq!(decode(&[0u8; 64], 7).unwrap_err(), DecodeError::BadLength);
    }
}
