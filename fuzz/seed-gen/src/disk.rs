//! Seeds of the on-disk formats (`wal_segment`, `chunk_header`, `datadir_meta`) and of the
//! simple raft bodies (`raft_bodies`), from the layouts documented in
//! `chunkserver/src/wal/record.rs`, `wal/segment.rs`, `chunk_header.rs`, `datadir.rs`.

use crate::Seeds;

/// Segment sequence number the `wal_segment` target scans with.
const SEQ: u64 = 7;
const RECORD_HEADER: usize = 40;
const ENTRY: u8 = 1;
const TRUNCATE: u8 = 2;
const PURGE: u8 = 3;
const META: u8 = 4;
const REMOVE_GROUP: u8 = 5;

fn record(out: &mut Vec<u8>, seg: u64, kind: u8, group: u64, index: u64, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&((RECORD_HEADER + payload.len()) as u32).to_le_bytes());
    out.extend_from_slice(&seg.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&[0; 7]);
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

fn segment_header(seq: u64) -> Vec<u8> {
    let mut page = vec![0u8; 4096];
    page[0..8].copy_from_slice(b"BSLTWALS");
    page[8..12].copy_from_slice(&1u32.to_le_bytes());
    page[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&page[0..24]);
    page[24..28].copy_from_slice(&crc.to_le_bytes());
    page
}

/// Records of every kind for two groups, then a record left from the segment's previous
/// use; the same with broken checksums (repair mode); and with the segment's own header.
pub fn wal_seeds() -> Seeds {
    let g1 = 1 << 32 | 1;
    let g2 = 1 << 32 | 2;
    let mut recs = Vec::new();
    for i in 1..=4 {
        record(&mut recs, SEQ, ENTRY, g1, i, &[i as u8; 24]);
    }
    record(&mut recs, SEQ, ENTRY, g2, 1, b"entry of group 2");
    record(&mut recs, SEQ, META, g1, 0, &[1, 2, 3, 4]);
    record(&mut recs, SEQ, META, g1, 2, &[0, 0]);
    record(&mut recs, SEQ, TRUNCATE, g1, 4, &[]);
    record(&mut recs, SEQ, PURGE, g1, 1, &[]);
    record(&mut recs, SEQ, REMOVE_GROUP, g2, 0, &[]);
    record(&mut recs, SEQ - 1, ENTRY, g1, 9, b"stale");

    let mut plain = vec![0u8];
    plain.extend_from_slice(&recs);
    let mut repair = vec![1u8];
    repair.extend_from_slice(&recs);
    let mut at = 1;
    while at + RECORD_HEADER <= repair.len() {
        let len = u32::from_le_bytes(repair[at + 4..at + 8].try_into().unwrap()) as usize;
        repair[at] ^= 0xff; // break the checksum; the target repairs it
        at += len;
    }
    let mut own = vec![2u8];
    own.extend_from_slice(&segment_header(SEQ + 1));
    let mut tail = Vec::new();
    record(&mut tail, SEQ + 1, ENTRY, g1, 5, b"own header");
    own.extend_from_slice(&tail);
    own.extend_from_slice(&[0x5a; 13]); // a torn tail
    vec![("records", plain), ("repair", repair), ("own-header", own)]
}

fn chunk_header(group: u64, chunk: u64, sn: u64, size: u64) -> Vec<u8> {
    let mut page = vec![0u8; 64];
    page[0..8].copy_from_slice(b"BSLTCHNK");
    page[8..12].copy_from_slice(&1u32.to_le_bytes());
    page[16..24].copy_from_slice(&group.to_le_bytes());
    page[24..32].copy_from_slice(&chunk.to_le_bytes());
    page[32..40].copy_from_slice(&sn.to_le_bytes());
    page[40..48].copy_from_slice(&size.to_le_bytes());
    let crc = crc32c::crc32c(&page[0..48]);
    page[48..52].copy_from_slice(&crc.to_le_bytes());
    page
}

/// A pool file's header and a used chunk's.
pub fn chunk_header_seeds() -> Seeds {
    vec![
        ("pool", chunk_header(0, 0, 0, 16 << 20)),
        ("used", chunk_header(1 << 32 | 3, 77, 2, 16 << 20)),
    ]
}

fn meta(body: &str) -> Vec<u8> {
    let mut out = b"BSLTMETA".to_vec();
    out.extend_from_slice(&crc32c::crc32c(body.as_bytes()).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

/// A freshly formatted disk and a registered one.
pub fn meta_seeds() -> Seeds {
    vec![
        (
            "formatted",
            meta(
                r#"{"format_version":1,"disk_uuid":"d-1","chunk_size":16777216,"wal_segment_size":67108864,"formatted":true,"chunkserver_id":null,"token":null,"cluster_id":null}"#,
            ),
        ),
        (
            "registered",
            meta(
                r#"{"format_version":1,"disk_uuid":"d-2","chunk_size":16777216,"wal_segment_size":1048576,"formatted":true,"chunkserver_id":3,"token":"t0k3n","cluster_id":"c-1"}"#,
            ),
        ),
    ]
}

/// The bodies simple enough to write by hand (bincode, varint integers): a chunk piece
/// request, chunk piece replies, a write operation.
pub fn raft_seeds() -> Seeds {
    vec![
        ("piece-request", vec![4, 77, 0, 251, 0, 16]),
        ("piece-data", vec![8, 1, 0xde, 0xad, 0xbe, 0xef]),
        ("piece-missing", vec![8, 0]),
        ("chunk-op-write", vec![12, 0, 77, 251, 0, 16, 3, 1, 2, 3]),
        ("chunk-op-delete", vec![12, 1, 77]),
    ]
}
