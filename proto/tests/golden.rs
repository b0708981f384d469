//! Golden bytes: these pin the wire encoding. A failure here means the protocol changed:
//! if that was intended, bump `PROTOCOL_VERSION`, regenerate with
//! `cargo run -p basalt-proto --example dump_golden`, and review the bytes by eye.

use basalt_proto::{
    chunk::*, codec, hello::*, ids::*, status::*, FrameHeader, FrameKind, Limits, Method,
};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn frame_header_bytes() {
    let mut h = FrameHeader::new(
        FrameKind::Request,
        100,
        0x0102_0304_0506_0708,
        GroupId::of(LogicalPoolId(1), CopysetId(2)),
    );
    h.header_len = 12;
    h.payload_len = 4096;
    let golden =
        unhex("42534c5402000100640000000c00000000100000080706050403020102000000010000005157d83b");
    assert_eq!(h.encode().to_vec(), golden);
    assert_eq!(FrameHeader::decode(&golden, &Limits::DEFAULT).unwrap(), h);
}

#[test]
fn write_chunk_bytes() {
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
    let golden =
        unhex("fd02000000010000004d03fb0020fb0010fcefbeaddefd0807060504030201fb2c01fb2b01");
    assert_eq!(codec::encode(&w).unwrap(), golden);
    assert_eq!(codec::decode::<WriteChunk>(&golden).unwrap(), w);
}

#[test]
fn redirect_reply_bytes() {
    let r: Result<WriteChunkOk, ChunkError> = Err(ChunkError::Redirect {
        group: GroupId(5),
        leader: Some(PeerAddr {
            id: ChunkServerId(2),
            addr: "127.0.0.1:7001".parse().unwrap(),
        }),
    });
    let golden = unhex("0100050102007f000001fb591b");
    assert_eq!(codec::encode(&r).unwrap(), golden);
    assert_eq!(
        codec::decode::<Result<WriteChunkOk, ChunkError>>(&golden).unwrap(),
        r
    );
}

#[test]
fn hello_bytes() {
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
    let golden = unhex("010100000163000102aabb07");
    assert_eq!(codec::encode(&hello).unwrap(), golden);
    assert_eq!(codec::decode::<Hello>(&golden).unwrap(), hello);
}

/// The cluster-authentication messages (added with the HMAC hello; `Hello` itself is
/// unchanged, its golden bytes above still hold).
#[test]
fn auth_bytes() {
    let challenge = AuthChallenge { nonce: [0x11; 32] };
    let golden = unhex(&"11".repeat(32));
    assert_eq!(codec::encode(&challenge).unwrap(), golden);
    assert_eq!(codec::decode::<AuthChallenge>(&golden).unwrap(), challenge);

    let answer = AuthAnswer {
        nonce: [0x22; 32],
        proof: [0x33; 32],
    };
    let golden = unhex(&format!("{}{}", "22".repeat(32), "33".repeat(32)));
    assert_eq!(codec::encode(&answer).unwrap(), golden);
    assert_eq!(codec::decode::<AuthAnswer>(&golden).unwrap(), answer);

    let proof = HelloProof { proof: [0x44; 32] };
    let golden = unhex(&"44".repeat(32));
    assert_eq!(codec::encode(&proof).unwrap(), golden);
    assert_eq!(codec::decode::<HelloProof>(&golden).unwrap(), proof);

    assert_eq!(codec::encode(&HelloVerdict::Accepted).unwrap(), unhex("00"));
    let refused = HelloVerdict::Refused(HelloRefusal::AuthFailed);
    assert_eq!(codec::encode(&refused).unwrap(), unhex("0103"));
    assert_eq!(
        codec::decode::<HelloVerdict>(&unhex("0103")).unwrap(),
        refused
    );
    assert_eq!(Method::HelloProof as u16, 5);
}
