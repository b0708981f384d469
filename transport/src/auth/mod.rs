//! Cluster authentication: every connection proves, in its hello, that both sides hold
//! the cluster secret (HMAC-SHA256 challenge–response over fresh nonces from both sides,
//! bound to the hello transcript). The secret never travels. See `docs/security.md`.
//!
//! [`secret`] loads, checks, generates and writes the secret file; [`proof`] is the
//! sans-IO core (nonces, transcript, proofs); `handshake` carries the messages.

pub(crate) mod proof;
pub(crate) mod secret;
