//! The plug point for hello authentication (issue 8: HMAC challenge–response).
//!
//! Nothing in this crate authenticates yet. A hook sees the hello on both sides and may
//! refuse it; the HMAC exchange will add its fields to the hello and implement this trait.

use basalt_proto::hello::{Hello, HelloRefusal, Identity};

/// Called during every hello, on the side named by each method.
pub trait HelloHook: Send + Sync + 'static {
    /// Dialler: amend the outgoing hello (e.g. set `Features::AUTH`, add a challenge).
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
