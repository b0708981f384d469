//! WAL recovery over arbitrary segment contents: the record scanner and the replay into
//! the index that `wal::recovery::recover` runs for every in-use segment, then what the
//! copyset log store does with the result (log entries and meta values decoded as openraft
//! types). Also the segment header page decoder.
//!
//! The first input byte is a mode: bit 0 repairs each record's checksum before the scan
//! (so the fuzzer gets past the crc32c and explores lengths, kinds, stale segments and
//! replay), bit 1 uses the input's own first page as the segment header instead of a valid
//! one. Asserts: no panic; the scan stops at or before the end; every entry the index
//! points at re-decodes from the bytes as that same entry; records re-encode to records that
//! decode equal.
#![no_main]

use basalt_chunkserver::copyset::codec;
use basalt_chunkserver::copyset::log_store::PurgeRecord;
use basalt_chunkserver::copyset::types::alias::{Entry, Vote};
use basalt_chunkserver::group_log::MetaKey;
use basalt_chunkserver::wal::index::{Index, Loc};
use basalt_chunkserver::wal::record::{self, RECORD_HEADER};
use basalt_chunkserver::wal::recovery::replay;
use basalt_chunkserver::wal::segment::{decode_header, encode_header, scan, SEGMENT_HEADER};
use libfuzzer_sys::fuzz_target;

const SEQ: u64 = 7;

/// Fix the checksum of every record whose length field fits, walking as the scanner does.
fn repair(data: &mut [u8]) {
    let mut off = SEGMENT_HEADER as usize;
    while off + RECORD_HEADER <= data.len() {
        let len = u32::from_le_bytes(data[off + 4..off + 8].try_into().unwrap()) as usize;
        if len < RECORD_HEADER || off + len > data.len() {
            return;
        }
        let crc = crc32c::crc32c(&data[off + 4..off + len]);
        data[off..off + 4].copy_from_slice(&crc.to_le_bytes());
        off += len;
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut data;
    let seq;
    if mode & 2 != 0 {
        // the input's own header page, as recovery reads it (a short file too)
        data = rest.to_vec();
        match decode_header(&data[..data.len().min(SEGMENT_HEADER as usize)]) {
            Some(s) => seq = s,
            None => return,
        }
    } else {
        seq = SEQ;
        data = encode_header(SEQ);
        assert_eq!(decode_header(&data), Some(SEQ));
        data.extend_from_slice(rest);
    }
    if mode & 1 != 0 {
        repair(&mut data);
    }

    let mut index = Index::default();
    let end = scan(&data, seq, |rec, off| {
        // encoding the decoded record gives a record of the same length that decodes
        // equal (not byte-equal: the decoder ignores the 7 padding bytes, the encoder
        // writes zeros)
        let mut again = Vec::new();
        record::encode(
            &mut again,
            rec.seg,
            rec.kind,
            rec.group,
            rec.index,
            rec.payload,
        );
        let (back, n) = record::decode(&again, seq).expect("an encoded record decodes");
        assert_eq!((back, n), (rec, again.len()));
        assert_eq!(
            &again[4..16],
            &data[off as usize + 4..off as usize + 16],
            "length or segment changed"
        );
        replay(&mut index, rec, off);
    });
    assert!(end.end as usize <= data.len().max(SEGMENT_HEADER as usize));

    // what the log store and recovery's users do with the index
    let _ = index.oldest_needed();
    let _ = index.rewrites(u64::MAX, usize::MAX);
    for group in index.groups() {
        let _ = index.bounds(group);
        let _ = index.check_append(group, 1);
        let g = index.group(group).expect("listed group");
        for (&i, slot) in &g.entries {
            let Loc::Disk { seg, off, len } = slot.loc else {
                panic!("recovered entry not on disk");
            };
            assert_eq!(seg, seq);
            let bytes = &data[off as usize..off as usize + len as usize];
            let (r, n) = record::decode(bytes, seq).expect("indexed record re-decodes");
            assert_eq!((n, r.group, r.index), (len as usize, group, i));
            let _ = codec::decode::<Entry>(r.payload);
        }
        for (key, m) in &g.meta {
            match key {
                MetaKey::Vote => {
                    let _ = codec::decode::<Vote>(&m.value);
                }
                MetaKey::Purged => {
                    // no PartialEq on openraft's types: compare encodings instead
                    if let Ok(p) = codec::decode::<PurgeRecord>(&m.value) {
                        let enc = codec::encode(&p).expect("a decoded record encodes");
                        let back: PurgeRecord = codec::decode(&enc).expect("and decodes");
                        assert_eq!(codec::encode(&back).expect("encodes"), enc);
                    }
                }
                // written by nothing yet
                MetaKey::Committed => {}
            }
        }
    }
});
