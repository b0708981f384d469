//! The challenge–response as pure functions.
//!
//! 1. The dialler sends its hello with [`Features::AUTH`](basalt_proto::hello::Features)
//!    and an [`AuthChallenge`](basalt_proto::hello::AuthChallenge) (nonce `Nd`) as payload.
//! 2. The acceptor answers with its reply and an
//!    [`AuthAnswer`](basalt_proto::hello::AuthAnswer): nonce `Na` and
//!    `HMAC(K, "acceptor" ‖ T)`.
//! 3. The dialler checks that proof (so it never proves anything to an impostor), then
//!    sends [`HelloProof`](basalt_proto::hello::HelloProof) `HMAC(K, "dialler" ‖ T)`; the
//!    acceptor checks it before serving anything and answers a verdict.
//!
//! `T` is the transcript: protocol version, the exact encoded hello (dialler identity and
//! role, features, UCX offer), `Nd`, the exact encoded reply (acceptor identity, agreed
//! features, UCX offer) and `Na`. Fresh `Na` makes a replayed step 3 useless; fresh `Nd`
//! does the same for a replayed step 2; the side labels stop a proof from being reflected.

use crate::auth::secret::ClusterSecret;
use basalt_proto::hello::AUTH_LEN;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation for this protocol and its version.
const LABEL: &[u8] = b"basalt cluster auth v1";

/// Which side a proof is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Dialler,
    Acceptor,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Dialler => b"dialler",
            Side::Acceptor => b"acceptor",
        }
    }
}

/// Everything both proofs cover.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transcript<'a> {
    pub version: u16,
    /// The encoded hello, exactly as sent.
    pub hello: &'a [u8],
    pub dialler_nonce: &'a [u8; AUTH_LEN],
    /// The encoded hello reply, exactly as sent.
    pub reply: &'a [u8],
    pub acceptor_nonce: &'a [u8; AUTH_LEN],
}

/// A fresh random nonce from the operating system's generator.
pub(crate) fn nonce() -> [u8; AUTH_LEN] {
    let mut n = [0u8; AUTH_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn mac(secret: &ClusterSecret, side: Side, t: &Transcript<'_>) -> HmacSha256 {
    // HMAC accepts keys of any length
    let mut m = HmacSha256::new_from_slice(secret.key()).expect("HMAC takes any key length");
    // every variable-length part is length-prefixed, so no two transcripts collide
    let mut part = |bytes: &[u8]| {
        m.update(&(bytes.len() as u64).to_le_bytes());
        m.update(bytes);
    };
    part(LABEL);
    part(side.label());
    part(&t.version.to_le_bytes());
    part(t.hello);
    part(t.dialler_nonce);
    part(t.reply);
    part(t.acceptor_nonce);
    m
}

/// This side's proof over the transcript.
pub(crate) fn prove(secret: &ClusterSecret, side: Side, t: &Transcript<'_>) -> [u8; AUTH_LEN] {
    mac(secret, side, t).finalize().into_bytes().into()
}

/// Whether `proof` is `side`'s proof over the transcript (constant-time comparison).
pub(crate) fn verify(
    secret: &ClusterSecret,
    side: Side,
    t: &Transcript<'_>,
    proof: &[u8; AUTH_LEN],
) -> bool {
    mac(secret, side, t).verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> ClusterSecret {
        ClusterSecret::from_bytes(vec![b; 32]).unwrap()
    }

    #[test]
    fn proofs_verify_only_with_the_same_secret_side_and_transcript() {
        let (nd, na) = (nonce(), nonce());
        assert_ne!(nd, na, "nonces repeat");
        let t = Transcript {
            version: 1,
            hello: b"hello",
            dialler_nonce: &nd,
            reply: b"reply",
            acceptor_nonce: &na,
        };
        let k = secret(1);
        let p = prove(&k, Side::Acceptor, &t);
        assert!(verify(&k, Side::Acceptor, &t, &p));
        // reflected to the other side
        assert!(!verify(&k, Side::Dialler, &t, &p));
        // another secret
        assert!(!verify(&secret(2), Side::Acceptor, &t, &p));
        // a fresh acceptor nonce (replay)
        let na2 = nonce();
        let replayed = Transcript {
            acceptor_nonce: &na2,
            ..t
        };
        assert!(!verify(&k, Side::Acceptor, &replayed, &p));
        // another version, hello or reply
        assert!(!verify(
            &k,
            Side::Acceptor,
            &Transcript { version: 2, ..t },
            &p
        ));
        assert!(!verify(
            &k,
            Side::Acceptor,
            &Transcript {
                hello: b"hellp",
                ..t
            },
            &p
        ));
        // length prefixes: moving a byte between adjacent parts changes the proof
        assert!(!verify(
            &k,
            Side::Acceptor,
            &Transcript {
                hello: b"hellor",
                reply: b"eply",
                ..t
            },
            &p
        ));
        // one flipped bit
        let mut bad = p;
        bad[31] ^= 1;
        assert!(!verify(&k, Side::Acceptor, &t, &bad));
    }

    #[test]
    fn known_answer() {
        // pins the transcript layout: any change to it must be deliberate (it breaks
        // authentication between old and new builds)
        let t = Transcript {
            version: 1,
            hello: &[1, 2, 3],
            dialler_nonce: &[0xd0; 32],
            reply: &[4, 5],
            acceptor_nonce: &[0xa0; 32],
        };
        let p = prove(&secret(7), Side::Dialler, &t);
        let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, KNOWN_DIALLER_PROOF);
    }

    /// Computed independently (Python `hmac`/`hashlib`) from the layout in `mac`.
    const KNOWN_DIALLER_PROOF: &str =
        "db83da881d5e0d7ea72ee40b18c4dc971e784116867a0391e14b15237f0203bf";
}
