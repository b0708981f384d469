//! Owner keys, the verifiers the MDS stores for them, and the proofs a client sends to
//! open or change a volume (see `docs/security.md`, "Volume access").
//!
//! The scheme is SCRAM's (RFC 5802) with a random 32-byte key instead of a password:
//!
//! ```text
//! ClientKey = HMAC-SHA256(key, "basalt-owner-key-v1" ‖ salt)
//! StoredKey = SHA256(ClientKey)                 ← what the MDS stores (with the salt)
//! M         = "basalt-volume-auth-v1" ‖ principal ‖ nonce ‖ operation   (length-prefixed)
//! proof     = ClientKey XOR HMAC-SHA256(StoredKey, M)
//! check:      SHA256(proof XOR HMAC-SHA256(StoredKey, M)) == StoredKey
//! ```
//!
//! The key never travels, a stored verifier does not let its reader authenticate, a proof
//! is bound to one MDS-issued single-use nonce and to the operation and its arguments.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes in an owner key.
pub const KEY_LEN: usize = 32;
/// Bytes in a verifier's salt.
pub const SALT_LEN: usize = 16;
/// Bytes in an MDS nonce.
pub const NONCE_LEN: usize = 32;
/// The principal of the admin credential (a reserved owner name).
pub const ADMIN: &str = "admin";

const KEY_LABEL: &[u8] = b"basalt-owner-key-v1";
const AUTH_LABEL: &[u8] = b"basalt-volume-auth-v1";
const VERIFIER_TAG: &str = "basalt-verifier-v1";

type HmacSha256 = Hmac<Sha256>;

/// Why a key or verifier text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The key text is not 64 hex digits.
    #[error("owner key must be {} hex digits", KEY_LEN * 2)]
    BadKey,
    /// The verifier text is not `basalt-verifier-v1 <salt hex> <stored key hex>`.
    #[error("verifier must read `{VERIFIER_TAG} <salt hex> <stored-key hex>`")]
    BadVerifier,
}

/// An owner's secret key (32 random bytes; hex in files).
#[derive(Clone, PartialEq, Eq)]
pub struct OwnerKey([u8; KEY_LEN]);

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerKey(..)")
    }
}

impl OwnerKey {
    /// A key from random bytes (the caller's OS generator).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        OwnerKey(bytes)
    }

    /// Parse hex text (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, CredentialError> {
        let b = from_hex(text.trim()).ok_or(CredentialError::BadKey)?;
        Ok(OwnerKey(b.try_into().map_err(|_| CredentialError::BadKey)?))
    }

    /// Hex text.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    fn client_key(&self, salt: &[u8]) -> [u8; 32] {
        let mut m = mac(&self.0);
        m.update(KEY_LABEL);
        m.update(salt);
        m.finalize().into_bytes().into()
    }

    /// The verifier the MDS stores for this key with `salt`.
    pub fn verifier(&self, salt: [u8; SALT_LEN]) -> Verifier {
        Verifier {
            salt: salt.to_vec(),
            stored_key: Sha256::digest(self.client_key(&salt)).to_vec(),
        }
    }

    /// The proof for `op` by `principal` under the MDS's `nonce` and the owner's `salt`.
    pub fn prove(&self, salt: &[u8], principal: &str, nonce: &[u8], op: &AuthOp<'_>) -> Vec<u8> {
        let client_key = self.client_key(salt);
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        let sig = signature(&stored, principal, nonce, op);
        client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect()
    }
}

/// What the MDS stores for an owner: the salt and `SHA256(ClientKey)`. Reading it does not
/// let anyone authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verifier {
    /// Random salt.
    pub salt: Vec<u8>,
    /// `SHA256(HMAC-SHA256(key, label ‖ salt))`.
    pub stored_key: Vec<u8>,
}

impl Verifier {
    /// Check a proof; constant time in the proof's bytes.
    pub fn check(&self, principal: &str, nonce: &[u8], op: &AuthOp<'_>, proof: &[u8]) -> bool {
        if proof.len() != 32 || self.stored_key.len() != 32 {
            return false;
        }
        let sig = signature(&self.stored_key, principal, nonce, op);
        let client_key: Vec<u8> = proof.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        ct_eq(&Sha256::digest(client_key), &self.stored_key)
    }

    /// Sizes as [`OwnerKey::verifier`] makes them.
    pub fn is_well_formed(&self) -> bool {
        self.salt.len() == SALT_LEN && self.stored_key.len() == 32
    }

    /// One line of text: `basalt-verifier-v1 <salt hex> <stored-key hex>`.
    pub fn to_text(&self) -> String {
        format!(
            "{VERIFIER_TAG} {} {}\n",
            to_hex(&self.salt),
            to_hex(&self.stored_key)
        )
    }

    /// Parse [`Verifier::to_text`]'s output.
    pub fn from_text(text: &str) -> Result<Self, CredentialError> {
        let mut it = text.split_whitespace();
        let (Some(VERIFIER_TAG), Some(salt), Some(stored), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(CredentialError::BadVerifier);
        };
        let v = Verifier {
            salt: from_hex(salt).ok_or(CredentialError::BadVerifier)?,
            stored_key: from_hex(stored).ok_or(CredentialError::BadVerifier)?,
        };
        if v.is_well_formed() {
            Ok(v)
        } else {
            Err(CredentialError::BadVerifier)
        }
    }
}

/// The operation a proof authorises, with the arguments it is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOp<'a> {
    /// Create volume `name` of `size` bytes for `owner`.
    CreateVolume {
        /// Name.
        name: &'a str,
        /// Size.
        size: u64,
        /// Owner of the new volume.
        owner: &'a str,
    },
    /// Open volume `name`.
    OpenVolume {
        /// Name.
        name: &'a str,
    },
    /// Grow volume `name` to `size`.
    ExtendVolume {
        /// Name.
        name: &'a str,
        /// New size.
        size: u64,
    },
    /// Rename `from` to `to`.
    RenameVolume {
        /// Current name.
        from: &'a str,
        /// New name.
        to: &'a str,
    },
    /// Delete volume `name`.
    DeleteVolume {
        /// Name.
        name: &'a str,
    },
    /// Register owner `name` with `verifier`.
    CreateOwner {
        /// Owner.
        name: &'a str,
        /// Its verifier.
        verifier: &'a Verifier,
    },
    /// Replace owner `name`'s verifier (key rotation).
    SetOwnerKey {
        /// Owner.
        name: &'a str,
        /// The new verifier.
        verifier: &'a Verifier,
    },
    /// Remove owner `name`.
    DeleteOwner {
        /// Owner.
        name: &'a str,
    },
    /// Purge recycled volume `name`.
    PurgeVolume {
        /// Name.
        name: &'a str,
    },
}

impl AuthOp<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        let (tag, parts): (&[u8], Vec<Vec<u8>>) = match *self {
            AuthOp::CreateVolume { name, size, owner } => (
                b"create-volume",
                vec![
                    name.into(),
                    size.to_be_bytes().to_vec(),
                    owner.as_bytes().to_vec(),
                ],
            ),
            AuthOp::OpenVolume { name } => (b"open-volume", vec![name.into()]),
            AuthOp::ExtendVolume { name, size } => (
                b"extend-volume",
                vec![name.into(), size.to_be_bytes().to_vec()],
            ),
            AuthOp::RenameVolume { from, to } => (b"rename-volume", vec![from.into(), to.into()]),
            AuthOp::DeleteVolume { name } => (b"delete-volume", vec![name.into()]),
            AuthOp::CreateOwner { name, verifier } => (
                b"create-owner",
                vec![
                    name.into(),
                    verifier.salt.clone(),
                    verifier.stored_key.clone(),
                ],
            ),
            AuthOp::SetOwnerKey { name, verifier } => (
                b"set-owner-key",
                vec![
                    name.into(),
                    verifier.salt.clone(),
                    verifier.stored_key.clone(),
                ],
            ),
            AuthOp::DeleteOwner { name } => (b"delete-owner", vec![name.into()]),
            AuthOp::PurgeVolume { name } => (b"purge-volume", vec![name.into()]),
        };
        put(out, tag);
        for p in &parts {
            put(out, p);
        }
    }
}

fn put(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_be_bytes());
    out.extend_from_slice(part);
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; the error case cannot happen.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("hmac key length"))
}

fn signature(stored_key: &[u8], principal: &str, nonce: &[u8], op: &AuthOp<'_>) -> [u8; 32] {
    let mut msg = Vec::with_capacity(128);
    put(&mut msg, AUTH_LABEL);
    put(&mut msg, principal.as_bytes());
    put(&mut msg, nonce);
    op.encode(&mut msg);
    let mut m = mac(stored_key);
    m.update(&msg);
    m.finalize().into_bytes().into()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> OwnerKey {
        OwnerKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn a_proof_checks_only_for_its_key_nonce_principal_and_operation() {
        let k = key(7);
        let v = k.verifier([3; SALT_LEN]);
        let op = AuthOp::OpenVolume { name: "db" };
        let p = k.prove(&v.salt, "alice", b"nonce-1", &op);
        assert!(v.check("alice", b"nonce-1", &op, &p));
        // Wrong key, nonce, principal, operation or argument: refused.
        let wrong = key(8).prove(&v.salt, "alice", b"nonce-1", &op);
        assert!(!v.check("alice", b"nonce-1", &op, &wrong));
        assert!(!v.check("alice", b"nonce-2", &op, &p));
        assert!(!v.check("bob", b"nonce-1", &op, &p));
        assert!(!v.check(
            "alice",
            b"nonce-1",
            &AuthOp::DeleteVolume { name: "db" },
            &p
        ));
        assert!(!v.check("alice", b"nonce-1", &AuthOp::OpenVolume { name: "dc" }, &p));
        assert!(!v.check("alice", b"nonce-1", &op, &p[..31]));
        assert!(!v.check("alice", b"nonce-1", &op, &[]));
        // The stored verifier is not the key's client key: using it as a "key" fails.
        let forged = OwnerKey::from_bytes(v.stored_key.clone().try_into().unwrap());
        assert!(!v.check(
            "alice",
            b"nonce-1",
            &op,
            &forged.prove(&v.salt, "alice", b"nonce-1", &op)
        ));
    }

    #[test]
    fn arguments_are_length_prefixed() {
        let k = key(1);
        let v = k.verifier([0; SALT_LEN]);
        let a = AuthOp::RenameVolume {
            from: "ab",
            to: "c",
        };
        let b = AuthOp::RenameVolume {
            from: "a",
            to: "bc",
        };
        let p = k.prove(&v.salt, "x", b"n", &a);
        assert!(!v.check("x", b"n", &b, &p));
    }

    #[test]
    fn text_forms_round_trip_and_garbage_is_refused() {
        let k = key(0xab);
        assert_eq!(
            OwnerKey::from_hex(&format!(" {}\n", k.to_hex())).unwrap(),
            k
        );
        for bad in ["", "zz", "abc", &"a".repeat(62), &"é".repeat(32)] {
            assert_eq!(
                OwnerKey::from_hex(bad),
                Err(CredentialError::BadKey),
                "{bad}"
            );
        }
        let v = k.verifier([9; SALT_LEN]);
        assert_eq!(Verifier::from_text(&v.to_text()).unwrap(), v);
        for bad in [
            "",
            "basalt-verifier-v1",
            "basalt-verifier-v1 00 11",
            "other 00000000000000000000000000000000 00",
        ] {
            assert_eq!(Verifier::from_text(bad), Err(CredentialError::BadVerifier));
        }
        assert!(!format!("{k:?}").contains(&k.to_hex()[..8]));
    }
}
