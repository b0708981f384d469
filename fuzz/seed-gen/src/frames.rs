//! Seeds of `frame_decoder`: valid frames (fixed header + encoded header + payload), so
//! the fuzzer starts from inputs that get past the magic and the checksum.

use basalt_proto::chunk::{WriteChunk, WriteChunkOk};
use basalt_proto::heartbeat::{CopysetReport, DiskStats, Heartbeat};
use basalt_proto::hello::{Echo, Features, Hello, HelloReply, Identity, Ping, Role, UcxOffer};
use basalt_proto::ids::{ChunkId, ChunkServerId, Epoch, GroupId};
use basalt_proto::method::RemoteError;
use basalt_proto::raft::RaftHeartbeatBatch;
use basalt_proto::{codec, FrameFlags, FrameHeader, FrameKind, Method, PROTOCOL_VERSION};

/// A whole frame: fixed header, encoded header, payload.
pub fn frame(
    kind: FrameKind,
    method: Method,
    corr: u64,
    header: Vec<u8>,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = FrameHeader::new(kind, method as u16, corr, GroupId::NONE);
    h.header_len = header.len() as u32;
    h.payload_len = payload.len() as u32;
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    out
}

/// Seeds of `frame_decoder`: valid frames of several methods.
pub fn seeds() -> Result<Vec<(&'static str, Vec<u8>)>, Box<dyn std::error::Error>> {
    let identity = Identity {
        role: Role::Tool,
        chunkserver: None,
        name: "seed:1".into(),
        cluster: "dev".into(),
    };
    let hello = Hello {
        version: PROTOCOL_VERSION,
        features: Features::UCX,
        identity: identity.clone(),
        ucx: Some(UcxOffer {
            worker: vec![1, 2, 3, 4, 5, 6, 7, 8],
            conn: 42,
        }),
    };
    let reply = HelloReply::Accepted {
        features: Features::UCX,
        identity,
        ucx: None,
    };
    let write = WriteChunk {
        group: GroupId(7 << 32 | 3),
        chunk: ChunkId(99),
        epoch: Epoch(2),
        offset: 4096,
        len: 512,
        crc32c: 0xdead_beef,
        req: basalt_proto::chunk::RequestId::NONE,
    };
    let write_ok: Result<WriteChunkOk, basalt_proto::status::ChunkError> =
        Ok(WriteChunkOk { index: 1234 });
    let heartbeat = Heartbeat {
        id: ChunkServerId(3),
        token: "t0k3n".into(),
        addr: "127.0.0.1:8200".parse()?,
        disk: DiskStats {
            total_bytes: 1 << 40,
            used_bytes: 1 << 30,
            pool_free_chunks: 100,
            used_chunks: 5,
            disk_failed: false,
        },
        copysets: vec![CopysetReport {
            group: GroupId(1 << 32 | 1),
            epoch: Epoch(1),
            leader: Some(ChunkServerId(3)),
            peers: vec![ChunkServerId(1), ChunkServerId(2), ChunkServerId(3)],
            conf_change: None,
        }],
    };
    let batch = RaftHeartbeatBatch {
        groups: vec![
            (GroupId(1 << 32 | 1), vec![0; 12]),
            (GroupId(1 << 32 | 2), vec![]),
        ],
    };

    let mut error_frame = frame(
        FrameKind::Response,
        Method::ReadChunk,
        9,
        codec::encode(&RemoteError::NoHandler { method: 101 })?,
        &[],
    );
    {
        // Same frame with the ERROR flag: rebuild the header so its checksum matches.
        let mut h = FrameHeader::decode(&error_frame, &Default::default())?;
        h.flags = FrameFlags::ERROR;
        error_frame[..40].copy_from_slice(&h.encode());
    }

    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "hello",
            frame(
                FrameKind::Request,
                Method::Hello,
                1,
                codec::encode(&hello)?,
                &[],
            ),
        ),
        (
            "hello-reply",
            frame(
                FrameKind::Response,
                Method::Hello,
                1,
                codec::encode(&reply)?,
                &[],
            ),
        ),
        (
            "ping",
            frame(
                FrameKind::Request,
                Method::Ping,
                2,
                codec::encode(&Ping { nonce: 5 })?,
                &[],
            ),
        ),
        (
            "echo",
            frame(
                FrameKind::Request,
                Method::Echo,
                3,
                codec::encode(&Echo {
                    tag: 1,
                    delay_us: 0,
                })?,
                b"payload",
            ),
        ),
        (
            "write-chunk",
            frame(
                FrameKind::Request,
                Method::WriteChunk,
                4,
                codec::encode(&write)?,
                &[0xab; 512],
            ),
        ),
        (
            "write-chunk-ok",
            frame(
                FrameKind::Response,
                Method::WriteChunk,
                4,
                codec::encode(&write_ok)?,
                &[],
            ),
        ),
        (
            "heartbeat",
            frame(
                FrameKind::Request,
                Method::ChunkServerHeartbeat,
                5,
                codec::encode(&heartbeat)?,
                &[],
            ),
        ),
        (
            "raft-heartbeat-batch",
            frame(
                FrameKind::Request,
                Method::RaftHeartbeatBatch,
                6,
                codec::encode(&batch)?,
                &[],
            ),
        ),
        ("remote-error", error_frame),
    ];
    Ok(seeds)
}
