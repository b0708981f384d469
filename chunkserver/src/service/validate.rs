//! Checks of chunk-service requests before they reach a copyset: pure functions over the
//! request, its payload and the chunk size, so every refusal is tested without sockets.

use crate::backend::IO_ALIGN;
use basalt_proto::chunk::{ReadChunk, WriteChunk};
use basalt_proto::status::{ChunkError, InvalidReason};

fn invalid(reason: InvalidReason) -> ChunkError {
    ChunkError::InvalidRequest { reason }
}

/// Check an I/O range: non-empty, 512-byte aligned, inside a chunk of `chunk_size` bytes.
pub fn check_range(offset: u32, len: u32, chunk_size: u64) -> Result<(), ChunkError> {
    if len == 0 {
        return Err(invalid(InvalidReason::Empty));
    }
    if u64::from(offset) % IO_ALIGN != 0 || u64::from(len) % IO_ALIGN != 0 {
        return Err(invalid(InvalidReason::Misaligned));
    }
    if u64::from(offset) + u64::from(len) > chunk_size {
        return Err(invalid(InvalidReason::OutOfRange));
    }
    Ok(())
}

/// Check a write: the range, then that the payload is exactly `len` bytes, then (last,
/// as it reads every byte) that its CRC32C matches the request's.
pub fn check_write(req: &WriteChunk, payload: &[u8], chunk_size: u64) -> Result<(), ChunkError> {
    if payload.len() as u64 != u64::from(req.len) {
        return Err(invalid(InvalidReason::PayloadLength));
    }
    check_range(req.offset, req.len, chunk_size)?;
    if crc32c::crc32c(payload) != req.crc32c {
        return Err(invalid(InvalidReason::Checksum));
    }
    Ok(())
}

/// Check a read: the range only (reads carry no payload; one sent anyway is ignored).
pub fn check_read(req: &ReadChunk, chunk_size: u64) -> Result<(), ChunkError> {
    check_range(req.offset, req.len, chunk_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::{ChunkId, Epoch, GroupId};

    const CHUNK: u64 = 1 << 20;

    fn write(offset: u32, data: &[u8]) -> WriteChunk {
        WriteChunk {
            group: GroupId(1),
            chunk: ChunkId(2),
            epoch: Epoch(0),
            offset,
            len: data.len() as u32,
            crc32c: crc32c::crc32c(data),
            req: basalt_proto::chunk::RequestId::NONE,
        }
    }

    fn reason(r: Result<(), ChunkError>) -> InvalidReason {
        match r {
            Err(ChunkError::InvalidRequest { reason }) => reason,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn good_write_passes() {
        let data = vec![7u8; 4096];
        check_write(&write(8192, &data), &data, CHUNK).unwrap();
        // the last sector of the chunk is writable
        let tail = vec![1u8; 512];
        check_write(&write((CHUNK - 512) as u32, &tail), &tail, CHUNK).unwrap();
    }

    #[test]
    fn payload_length_mismatch_is_refused() {
        let data = vec![7u8; 4096];
        let mut req = write(0, &data);
        req.len = 8192;
        assert_eq!(
            reason(check_write(&req, &data, CHUNK)),
            InvalidReason::PayloadLength
        );
        assert_eq!(
            reason(check_write(&write(0, &data), &data[..4095], CHUNK)),
            InvalidReason::PayloadLength
        );
    }

    #[test]
    fn checksum_mismatch_is_refused() {
        let data = vec![7u8; 4096];
        let mut req = write(0, &data);
        req.crc32c ^= 1;
        assert_eq!(
            reason(check_write(&req, &data, CHUNK)),
            InvalidReason::Checksum
        );
        // one flipped payload bit
        let mut bad = data.clone();
        bad[100] ^= 0x10;
        assert_eq!(
            reason(check_write(&write(0, &data), &bad, CHUNK)),
            InvalidReason::Checksum
        );
    }

    #[test]
    fn misaligned_empty_and_out_of_range_are_refused() {
        assert_eq!(
            reason(check_range(100, 512, CHUNK)),
            InvalidReason::Misaligned
        );
        assert_eq!(
            reason(check_range(0, 1000, CHUNK)),
            InvalidReason::Misaligned
        );
        assert_eq!(reason(check_range(0, 0, CHUNK)), InvalidReason::Empty);
        assert_eq!(
            reason(check_range(CHUNK as u32, 512, CHUNK)),
            InvalidReason::OutOfRange
        );
        assert_eq!(
            reason(check_range((CHUNK - 512) as u32, 1024, CHUNK)),
            InvalidReason::OutOfRange
        );
        // u32 offset + len cannot overflow the check
        assert_eq!(
            reason(check_range(u32::MAX - 511, u32::MAX - 511, CHUNK)),
            InvalidReason::OutOfRange
        );
    }

    #[test]
    fn read_checks_the_range() {
        let req = ReadChunk {
            group: GroupId(1),
            chunk: ChunkId(2),
            epoch: Epoch(0),
            offset: 512,
            len: 0,
        };
        assert_eq!(reason(check_read(&req, CHUNK)), InvalidReason::Empty);
        check_read(&ReadChunk { len: 4096, ..req }, CHUNK).unwrap();
    }
}
