//! Prints the encodings pinned by `tests/golden.rs` (run after an intended wire change,
//! review the diff by eye, then update the test and bump PROTOCOL_VERSION).
use basalt_proto::{chunk::*, codec, hello::*, ids::*, status::*, FrameHeader, FrameKind};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let mut h = FrameHeader::new(
        FrameKind::Request,
        100,
        0x0102_0304_0506_0708,
        GroupId::of(LogicalPoolId(1), CopysetId(2)),
    );
    h.header_len = 12;
    h.payload_len = 4096;
    println!("frame   {}", hex(&h.encode()));
    let w = WriteChunk {
        group: GroupId(0x1_0000_0002),
        chunk: ChunkId(77),
        epoch: Epoch(3),
        offset: 8192,
        len: 4096,
        crc32c: 0xdeadbeef,
        req: RequestId {
            client: 0x0102_0304_0506_0708,
            seq: 300,
            done_below: 299,
        },
    };
    println!("write   {}", hex(&codec::encode(&w).unwrap()));
    let r: Result<WriteChunkOk, ChunkError> = Err(ChunkError::Redirect {
        group: GroupId(5),
        leader: Some(PeerAddr {
            id: ChunkServerId(2),
            addr: "127.0.0.1:7001".parse().unwrap(),
        }),
    });
    println!("redir   {}", hex(&codec::encode(&r).unwrap()));
    let hello = Hello {
        version: 1,
        features: Features::UCX,
        identity: Identity {
            role: Role::Client,
            chunkserver: None,
            name: "c".into(),
            cluster: "".into(),
        },
        ucx: Some(UcxOffer {
            worker: vec![0xaa, 0xbb],
            conn: 7,
        }),
    };
    println!("hello   {}", hex(&codec::encode(&hello).unwrap()));
}
