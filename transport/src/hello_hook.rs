//! A plug point for extra hello policy (e.g. which chunkserver ids may connect).
//!
//! Authentication itself is not a hook: with a cluster secret (`crate::ClusterSecret`)
//! the handshake runs the HMAC challenge–response, and a hook only sees hellos of peers
//! that have passed the acceptor's checks so far (the dialler's proof is checked after
//! the hook, over the whole transcript).

use basalt_proto::hello::{Hello, HelloRefusal, Identity};

/// Called during every hello, on the side named by each method.
pub trait HelloHook: Send + Sync + 'static {
    /// Dialler: amend the outgoing hello before it is encoded (and authenticated).
    fn prepare(&self, hello: &mut Hello) {
        let _ = hello;
    }
    /// Acceptor: accept or refuse an incoming hello (after version and cluster checks).
    fn check_hello(&self, hello: &Hello) -> Result<(), HelloRefusal>;
    /// Dialler: accept or refuse the acceptor's identity from its reply.
    fn check_reply(&self, peer: &Identity) -> Result<(), HelloRefusal> {
        let _ = peer;
        Ok(())
    }
}
