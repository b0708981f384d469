//! The 4 KiB header page of a chunk file, as the chunk store reads it at startup and the
//! offline check reads it: any bytes (any length) must be refused with a typed error or
//! decoded; what decodes re-encodes to a page that decodes equal. (Not byte-equal: the
//! decoder does not insist on zero reserved bytes, and the encoder writes zeros.)
#![no_main]

use basalt_chunkserver::chunk_header::{ChunkHeader, HEADER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|page: &[u8]| {
    let Ok(h) = ChunkHeader::decode(page) else {
        return;
    };
    let again = h.encode();
    assert_eq!(again.len(), HEADER_SIZE);
    assert_eq!(ChunkHeader::decode(&again), Ok(h));
});
