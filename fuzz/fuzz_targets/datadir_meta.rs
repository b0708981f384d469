//! The data directory's `meta` file (magic, crc32c, length, JSON body), as
//! `DataDir::open` reads it: any bytes are refused with a typed error or decoded; what
//! decodes re-encodes to bytes that decode equal.
#![no_main]

use basalt_chunkserver::datadir::{decode_meta, encode_meta};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("/fuzz/meta");
    let Ok(meta) = decode_meta(path, bytes) else {
        return;
    };
    let enc = encode_meta(&meta);
    assert_eq!(decode_meta(path, &enc).ok(), Some(meta));
});
