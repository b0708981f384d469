//! Entry points for the cargo-fuzz targets in `fuzz/` (not API: hidden from the docs and
//! free to change). They run the real hello code — frame reading off a byte stream,
//! the acceptor and dialler sides of the hello with or without a cluster
//! secret — over bytes a peer might send, with no socket and no runtime.

use super::framing::{read_frame, ReadError};
use crate::auth::secret::ClusterSecret;
use crate::config::TransportOptions;
use crate::conn::Endpoint;
use crate::error::TransportError;
use crate::fastpath::RawFrame;
use crate::handshake::{self, FrameIo};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::Limits;

/// The peer's side of the conversation: frames are read off `input`, what we send is
/// checked for consistent lengths and dropped.
struct ScriptedPeer<'a> {
    input: &'a [u8],
    limits: Limits,
}

impl FrameIo for ScriptedPeer<'_> {
    async fn send(&mut self, frame: RawFrame) -> Result<(), TransportError> {
        assert_eq!(frame.header.header_len as usize, frame.head.len());
        assert_eq!(frame.header.payload_len as usize, frame.payload.len());
        Ok(())
    }

    async fn recv(&mut self) -> Result<RawFrame, TransportError> {
        match read_frame(&mut self.input, &self.limits).await {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(TransportError::peer_gone("end of fuzz input")),
            Err(ReadError::Io(e)) => Err(TransportError::peer_gone(e.to_string())),
            Err(ReadError::Bad(e)) => Err(TransportError::Proto(e)),
        }
    }
}

fn endpoint(authenticate: bool) -> std::sync::Arc<Endpoint> {
    let identity = Identity {
        role: Role::ChunkServer,
        chunkserver: None,
        name: "fuzz:1".into(),
        cluster: "fuzz".into(),
    };
    let mut opts = TransportOptions::new(identity);
    if authenticate {
        opts = opts.cluster_secret(
            ClusterSecret::from_bytes(vec![0x5a; ClusterSecret::MIN_LEN])
                .expect("a key of the minimum length"),
        );
    }
    Endpoint::new(opts).expect("default options validate")
}

/// Accept a connection whose dialler sent `stream`. Returns whether the hello succeeded
/// (it may, with no secret); any panic is a bug.
#[doc(hidden)]
pub fn fuzz_hello_accept(stream: &[u8], authenticate: bool) -> bool {
    let ep = endpoint(authenticate);
    let mut peer = ScriptedPeer {
        input: stream,
        limits: ep.opts.config.limits(),
    };
    futures::executor::block_on(handshake::accept(&ep, &mut peer)).is_ok()
}

/// Dial a peer whose answers are `stream`. Returns whether the hello succeeded.
#[doc(hidden)]
pub fn fuzz_hello_dial(stream: &[u8], authenticate: bool) -> bool {
    let ep = endpoint(authenticate);
    let mut peer = ScriptedPeer {
        input: stream,
        limits: ep.opts.config.limits(),
    };
    futures::executor::block_on(handshake::dial(&ep, &mut peer)).is_ok()
}

/// Parse a cluster secret file's text.
#[doc(hidden)]
pub fn fuzz_secret_text(text: &str) -> bool {
    match ClusterSecret::from_hex(text) {
        Ok(s) => {
            // what parses writes back to text that parses to the same key
            let again = ClusterSecret::from_hex(&s.to_hex()).expect("to_hex output parses");
            assert_eq!(again.key(), s.key());
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_without_panics() {
        for auth in [false, true] {
            assert!(!fuzz_hello_accept(b"", auth));
            assert!(!fuzz_hello_accept(b"not a frame at all, just bytes", auth));
            assert!(!fuzz_hello_dial(&[0u8; 100], auth));
        }
        assert!(!fuzz_secret_text("zz"));
        assert!(fuzz_secret_text(&"ab".repeat(ClusterSecret::MIN_LEN)));
    }
}
