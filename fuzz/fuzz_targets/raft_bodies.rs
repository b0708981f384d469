//! Raft bodies between chunkservers, decoded by the chunkserver's codec into openraft types
//! (the `handle_raft` side: AppendEntries, Vote, PreVote, TransferLeader, the snapshot
//! offer, a chunk piece request; the dialler side: their responses and chunk pieces) and
//! what the WAL holds for openraft (log entries, votes, purge records).
//!
//! The first byte picks the type. openraft's types have no `PartialEq`, so the round trip
//! is checked on encodings: encode(decode(encode(decode(b)))) == encode(decode(b)).
#![no_main]

use basalt_chunkserver::copyset::codec;
use basalt_chunkserver::copyset::log_store::PurgeRecord;
use basalt_chunkserver::copyset::network::{decode_piece, ChunkPieceRequest, SnapshotOffer};
use basalt_chunkserver::copyset::types::alias::{Entry, Vote};
use basalt_chunkserver::copyset::types::{ChunkOp, CopysetTypes as C};
use basalt_proto::ids::GroupId;
use libfuzzer_sys::fuzz_target;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    VoteRequest, VoteResponse,
};
use serde::{de::DeserializeOwned, Serialize};

fn roundtrip<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    let Ok(v) = codec::decode::<T>(bytes) else {
        return;
    };
    let once = codec::encode(&v).expect("a decoded body encodes");
    let back: T = codec::decode(&once).expect("an encoded body decodes");
    assert_eq!(
        codec::encode(&back).expect("encodes"),
        once,
        "re-encoding differs"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 13 {
        0 => roundtrip::<AppendEntriesRequest<C>>(body),
        1 => roundtrip::<VoteRequest<C>>(body),
        2 => roundtrip::<TransferLeaderRequest<C>>(body),
        3 => roundtrip::<SnapshotOffer>(body),
        4 => {
            if let Ok(r) = codec::decode::<ChunkPieceRequest>(body) {
                let enc = codec::encode(&r).expect("encodes");
                assert_eq!(codec::decode::<ChunkPieceRequest>(&enc).ok(), Some(r));
            }
        }
        5 => roundtrip::<AppendEntriesResponse<C>>(body),
        6 => roundtrip::<VoteResponse<C>>(body),
        7 => roundtrip::<SnapshotResponse<C>>(body),
        8 => {
            let piece = decode_piece(GroupId(1), bytes::Bytes::copy_from_slice(body));
            if let Ok(p) = piece {
                let enc = basalt_chunkserver::copyset::network::encode_piece(p.as_deref());
                assert_eq!(&enc[..], body, "a chunk piece re-encodes to its bytes");
            }
        }
        9 => roundtrip::<Entry>(body),
        10 => roundtrip::<Vote>(body),
        11 => roundtrip::<PurgeRecord>(body),
        _ => {
            if let Ok(op) = codec::decode::<ChunkOp>(body) {
                let enc = codec::encode(&op).expect("encodes");
                assert_eq!(codec::decode::<ChunkOp>(&enc).ok(), Some(op));
            }
        }
    }
});
