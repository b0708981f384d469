//! Splitting volume I/O at chunk boundaries.
//!
//! One request per chunk piece: a 1 MiB write inside one chunk is one request, a write
//! across a chunk boundary is two. Segments (1 GiB) are a multiple of chunks, so a piece
//! never crosses a segment either.

use crate::error::ClientError;
use basalt_proto::ids::{CHUNKS_PER_SEGMENT, CHUNK_SIZE, SEGMENT_SIZE};

/// One chunk's share of a volume I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Segment index in the volume.
    pub segment: u64,
    /// Chunk index within the segment.
    pub chunk: u32,
    /// Byte offset within the chunk.
    pub chunk_offset: u32,
    /// Bytes in this piece.
    pub len: u32,
    /// Offset of this piece within the caller's buffer.
    pub buf_offset: usize,
}

/// Check a volume range: aligned to `sector`, non-empty, inside `size`.
pub fn check_range(offset: u64, len: u64, size: u64, sector: u64) -> Result<(), ClientError> {
    if len == 0 || offset % sector != 0 || len % sector != 0 {
        return Err(ClientError::Misaligned {
            offset,
            len,
            sector,
        });
    }
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(ClientError::OutOfRange { offset, len, size }),
    }
}

/// Split a checked range into chunk pieces, in volume order.
pub fn split(offset: u64, len: u64, size: u64, sector: u64) -> Result<Vec<Piece>, ClientError> {
    check_range(offset, len, size, sector)?;
    let mut pieces = Vec::with_capacity((len / CHUNK_SIZE + 2) as usize);
    let mut pos = offset;
    let end = offset + len;
    while pos < end {
        let chunk_global = pos / CHUNK_SIZE;
        let chunk_offset = pos % CHUNK_SIZE;
        let piece_len = (CHUNK_SIZE - chunk_offset).min(end - pos);
        pieces.push(Piece {
            segment: pos / SEGMENT_SIZE,
            chunk: (chunk_global % CHUNKS_PER_SEGMENT) as u32,
            chunk_offset: chunk_offset as u32,
            len: piece_len as u32,
            buf_offset: (pos - offset) as usize,
        });
        pos += piece_len;
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VOL: u64 = 4 * SEGMENT_SIZE;

    #[test]
    fn inside_one_chunk_is_one_piece() {
        let p = split(CHUNK_SIZE + 4096, 1 << 20, VOL, 4096).unwrap();
        assert_eq!(
            p,
            vec![Piece {
                segment: 0,
                chunk: 1,
                chunk_offset: 4096,
                len: 1 << 20,
                buf_offset: 0
            }]
        );
    }

    #[test]
    fn crossing_a_segment_boundary() {
        let p = split(SEGMENT_SIZE - 4096, 8192, VOL, 512).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].segment, p[0].chunk, p[0].chunk_offset),
            (0, 63, (CHUNK_SIZE - 4096) as u32)
        );
        assert_eq!(
            (p[1].segment, p[1].chunk, p[1].chunk_offset, p[1].buf_offset),
            (1, 0, 0, 4096)
        );
    }

    #[test]
    fn whole_chunk_io_of_16_mib_is_one_piece() {
        let p = split(2 * CHUNK_SIZE, CHUNK_SIZE, VOL, 4096).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].len as u64, CHUNK_SIZE);
    }

    #[test]
    fn rejections() {
        assert!(matches!(
            split(1, 4096, VOL, 512),
            Err(ClientError::Misaligned { .. })
        ));
        assert!(matches!(
            split(0, 100, VOL, 512),
            Err(ClientError::Misaligned { .. })
        ));
        assert!(matches!(
            split(0, 0, VOL, 512),
            Err(ClientError::Misaligned { .. })
        ));
        assert!(matches!(
            split(512, 512, VOL, 4096),
            Err(ClientError::Misaligned { .. })
        ));
        assert!(matches!(
            split(VOL - 4096, 8192, VOL, 4096),
            Err(ClientError::OutOfRange { .. })
        ));
        assert!(matches!(
            split(u64::MAX - 511, 512, VOL, 512),
            Err(ClientError::OutOfRange { .. })
        ));
    }

    proptest! {
        #[test]
        fn pieces_tile_the_range_and_never_cross_chunks(
            start in 0u64..(VOL / 512), sectors in 1u64..(80 * 1024 * 1024 / 512)
        ) {
            let (offset, len) = (start * 512, sectors * 512);
            prop_assume!(offset + len <= VOL);
            let pieces = split(offset, len, VOL, 512).unwrap();
            let mut expect_buf = 0usize;
            for p in &pieces {
                prop_assert_eq!(p.buf_offset, expect_buf);
                prop_assert!(p.len > 0);
                prop_assert!(p.chunk_offset as u64 + p.len as u64 <= CHUNK_SIZE);
                prop_assert!((p.chunk as u64) < CHUNKS_PER_SEGMENT);
                let vol_pos = p.segment * SEGMENT_SIZE + p.chunk as u64 * CHUNK_SIZE + p.chunk_offset as u64;
                prop_assert_eq!(vol_pos, offset + p.buf_offset as u64);
                expect_buf += p.len as usize;
            }
            prop_assert_eq!(expect_buf as u64, len);
            // minimal: only the first and last piece may be partial chunks
            for p in pieces.iter().skip(1).take(pieces.len().saturating_sub(2)) {
                prop_assert_eq!(p.len as u64, CHUNK_SIZE);
            }
        }
    }
}
