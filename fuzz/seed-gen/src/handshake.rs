//! Seeds of `hello_handshake`: a mode byte (bit 0: this side authenticates; bits 1..:
//! 0 acceptor, 1 dialler, 2 secret text) and the peer's frames.

use crate::frames::frame;
use crate::{Result, Seeds};
use basalt_proto::codec;
use basalt_proto::hello::{
    AuthAnswer, AuthChallenge, Features, Hello, HelloProof, HelloReply, HelloVerdict, Identity,
    Role, AUTH_LEN,
};
use basalt_proto::{FrameKind, Method, PROTOCOL_VERSION};

/// The hello a client of cluster `fuzz` sends.
pub fn hello(auth: bool) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        features: if auth {
            Features::COALESCED_HEARTBEATS | Features::AUTH
        } else {
            Features::COALESCED_HEARTBEATS
        },
        identity: Identity {
            role: Role::Client,
            chunkserver: None,
            name: "seed:1".into(),
            cluster: "fuzz".into(),
        },
        ucx: None,
    }
}

fn with_mode(mode: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![mode];
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

/// Streams for both sides, with and without authentication.
pub fn seeds() -> Result<Seeds> {
    let hello_plain = frame(
        FrameKind::Request,
        Method::Hello,
        0,
        codec::encode(&hello(false))?,
        &[],
    );
    let hello_auth = frame(
        FrameKind::Request,
        Method::Hello,
        0,
        codec::encode(&hello(true))?,
        &codec::encode(&AuthChallenge {
            nonce: [0x11; AUTH_LEN],
        })?,
    );
    let proof = frame(
        FrameKind::Request,
        Method::HelloProof,
        1,
        codec::encode(&HelloProof {
            proof: [0x22; AUTH_LEN],
        })?,
        &[],
    );
    let accepted = HelloReply::Accepted {
        features: Features::COALESCED_HEARTBEATS | Features::AUTH,
        identity: Identity {
            role: Role::ChunkServer,
            chunkserver: None,
            name: "acceptor:1".into(),
            cluster: "fuzz".into(),
        },
        ucx: None,
    };
    let reply_plain = frame(
        FrameKind::Response,
        Method::Hello,
        0,
        codec::encode(&accepted)?,
        &[],
    );
    let reply_auth = frame(
        FrameKind::Response,
        Method::Hello,
        0,
        codec::encode(&accepted)?,
        &codec::encode(&AuthAnswer {
            nonce: [0x33; AUTH_LEN],
            proof: [0x44; AUTH_LEN],
        })?,
    );
    let verdict = frame(
        FrameKind::Response,
        Method::HelloProof,
        1,
        codec::encode(&HelloVerdict::Accepted)?,
        &[],
    );
    let mut secret = vec![4u8];
    secret.extend_from_slice("5a".repeat(32).as_bytes());
    secret.push(b'\n');
    Ok(vec![
        ("accept-plain", with_mode(0, &[hello_plain])),
        ("accept-auth", with_mode(1, &[hello_auth, proof])),
        ("dial-plain", with_mode(2, &[reply_plain])),
        ("dial-auth", with_mode(3, &[reply_auth, verdict])),
        ("secret-text", secret),
    ])
}
