//! Arbitrary bytes as a Basalt frame: the fixed header decoder first, then, when it
//! parses, the encoded header as the message type its method and kind name (plus a few
//! types tried regardless of the method, so the codec sees every input). Nothing may
//! panic, and whatever decodes must re-encode stably.
#![no_main]

use basalt_proto::chunk::{ReadChunk, WriteChunk};
use basalt_proto::codec;
use basalt_proto::heartbeat::Heartbeat;
use basalt_proto::hello::{Echo, Hello, HelloReply, Ping, UcxFallback};
use basalt_proto::method::RemoteError;
use basalt_proto::raft::{RaftAppend, RaftHeartbeatBatch};
use basalt_proto::{FrameFlags, FrameHeader, FrameKind, Limits, Method, Rpc, FRAME_HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};

/// Decode `bytes` as `T`; if that works, encoding must work, and decoding the encoding
/// must give back the same encoding.
fn roundtrip<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    let Ok(msg) = codec::decode::<T>(bytes) else {
        return;
    };
    let once = codec::encode(&msg).expect("a decoded message encodes");
    let again: T = codec::decode(&once).expect("an encoded message decodes");
    let twice = codec::encode(&again).expect("a decoded message encodes");
    assert_eq!(once, twice, "re-encoding is not stable");
}

/// Request or reply type of `R`, by frame kind.
fn by_kind<R: Rpc>(kind: FrameKind, bytes: &[u8]) {
    match kind {
        FrameKind::Request | FrameKind::OneWay => roundtrip::<R>(bytes),
        FrameKind::Response => roundtrip::<R::Reply>(bytes),
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_header_len: 1 << 20,
        max_payload_len: 1 << 20,
    };
    let Ok(header) = FrameHeader::decode(data, &limits) else {
        return;
    };
    // What decodes must encode to something that decodes to the same header.
    assert_eq!(
        FrameHeader::decode(&header.encode(), &limits).ok(),
        Some(header)
    );
    let _ = header.check_version();

    let rest = &data[FRAME_HEADER_LEN..];
    let body = &rest[..rest.len().min(header.header_len as usize)];

    if header.kind == FrameKind::Response && header.flags.contains(FrameFlags::ERROR) {
        roundtrip::<RemoteError>(body);
        return;
    }
    match Method::from_u16(header.method) {
        Some(Method::Hello) => by_kind::<Hello>(header.kind, body),
        Some(Method::Ping) => by_kind::<Ping>(header.kind, body),
        Some(Method::Echo) => by_kind::<Echo>(header.kind, body),
        Some(Method::UcxFallback) => roundtrip::<UcxFallback>(body),
        Some(Method::WriteChunk) => by_kind::<WriteChunk>(header.kind, body),
        Some(Method::ReadChunk) => by_kind::<ReadChunk>(header.kind, body),
        Some(Method::ChunkServerHeartbeat) => by_kind::<Heartbeat>(header.kind, body),
        Some(Method::RaftAppend) => by_kind::<RaftAppend>(header.kind, body),
        Some(Method::RaftHeartbeatBatch) => by_kind::<RaftHeartbeatBatch>(header.kind, body),
        _ => {
            // Unknown or not singled out: still exercise the codec on the bytes.
            roundtrip::<Hello>(body);
            roundtrip::<HelloReply>(body);
            roundtrip::<Heartbeat>(body);
        }
    }
});
