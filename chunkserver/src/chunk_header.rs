//! The 4 KiB header page at the start of every chunk file.
//!
//! Layout (little endian): magic `BSLTCHNK`, format version (u32), reserved (u32), group id
//! (u64), chunk id (u64), sequence number (u64), chunk data size (u64), crc32c of the
//! preceding 48 bytes (u32); the rest of the page is zero. A pool file carries group 0,
//! chunk 0. The chunk's data follows the page.

use basalt_proto::ids::{ChunkId, GroupId};

/// Size of the header page; chunk data starts at this file offset.
pub const HEADER_SIZE: usize = 4096;
/// Magic at the start of the header.
pub const CHUNK_MAGIC: &[u8; 8] = b"BSLTCHNK";
/// Header layout version.
pub const CHUNK_HEADER_VERSION: u32 = 1;

const CRC_AT: usize = 48;

/// A decoded chunk header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Owning copyset (`GroupId(0)` in the pool).
    pub group: GroupId,
    /// The chunk (`ChunkId(0)` in the pool).
    pub chunk: ChunkId,
    /// Sequence number (bumped each time the file is taken from the pool).
    pub sn: u64,
    /// Size of the data area in bytes.
    pub chunk_size: u64,
}

/// Why a header page is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The magic is wrong (not a chunk file, or never formatted).
    BadMagic,
    /// The checksum does not match.
    BadChecksum,
    /// An unknown header version.
    BadVersion,
}

impl HeaderError {
    /// Short description for error messages.
    pub fn reason(self) -> &'static str {
        match self {
            HeaderError::BadMagic => "bad magic",
            HeaderError::BadChecksum => "checksum mismatch",
            HeaderError::BadVersion => "unknown header version",
        }
    }
}

impl ChunkHeader {
    /// Header of a free pool file.
    pub fn free(chunk_size: u64) -> Self {
        ChunkHeader {
            group: GroupId(0),
            chunk: ChunkId(0),
            sn: 0,
            chunk_size,
        }
    }

    /// Encode into `page` (at least [`HEADER_SIZE`] bytes; the page is overwritten).
    pub fn encode_into(&self, page: &mut [u8]) {
        let page = &mut page[..HEADER_SIZE];
        page.fill(0);
        page[0..8].copy_from_slice(CHUNK_MAGIC);
        page[8..12].copy_from_slice(&CHUNK_HEADER_VERSION.to_le_bytes());
        page[16..24].copy_from_slice(&self.group.0.to_le_bytes());
        page[24..32].copy_from_slice(&self.chunk.0.to_le_bytes());
        page[32..40].copy_from_slice(&self.sn.to_le_bytes());
        page[40..48].copy_from_slice(&self.chunk_size.to_le_bytes());
        let crc = crc32c::crc32c(&page[..CRC_AT]);
        page[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }

    /// Encode into a fresh page.
    pub fn encode(&self) -> Vec<u8> {
        let mut page = vec![0u8; HEADER_SIZE];
        self.encode_into(&mut page);
        page
    }

    /// Decode and verify a header page.
    pub fn decode(page: &[u8]) -> Result<Self, HeaderError> {
        if page.len() < CRC_AT + 4 || &page[0..8] != CHUNK_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let crc = u32::from_le_bytes(page[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&page[..CRC_AT]) {
            return Err(HeaderError::BadChecksum);
        }
        if u32::from_le_bytes(page[8..12].try_into().expect("4 bytes")) != CHUNK_HEADER_VERSION {
            return Err(HeaderError::BadVersion);
        }
        let u64_at = |at: usize| u64::from_le_bytes(page[at..at + 8].try_into().expect("8 bytes"));
        Ok(ChunkHeader {
            group: GroupId(u64_at(16)),
            chunk: ChunkId(u64_at(24)),
            sn: u64_at(32),
            chunk_size: u64_at(40),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejections() {
        let h = ChunkHeader {
            group: GroupId(7),
            chunk: ChunkId(9),
            sn: 3,
            chunk_size: 1 << 24,
        };
        let page = h.encode();
        assert_eq!(ChunkHeader::decode(&page), Ok(h));
        let mut bad = page.clone();
        bad[20] ^= 1;
        assert_eq!(ChunkHeader::decode(&bad), Err(HeaderError::BadChecksum));
        assert_eq!(
            ChunkHeader::decode(&[0u8; HEADER_SIZE]),
            Err(HeaderError::BadMagic)
        );
    }
}
