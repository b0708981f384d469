//! Volume access control (sans-IO): owners, the admin verifier, single-use nonces and the
//! decision whether a request may touch a volume or an owner.
//!
//! Access control is *enforced* when the MDS has an admin verifier (`admin-verifier-file`);
//! without one every request is allowed, as before owners existed (the daemon warns once).
//! When enforced:
//!
//! - opening, growing, renaming and deleting a volume needs a [`Credential`] of the
//!   volume's owner or of [`ADMIN`]; creating one needs the new owner's or the admin's;
//! - registering and removing owners needs the admin's; rotating a key the admin's or
//!   the owner's own;
//! - a credential is a proof over a nonce this MDS issued ([`Access::issue_nonce`]) for
//!   that principal less than [`NONCE_TTL_MS`] ago and not used since (see
//!   [`basalt_proto::credential`]). Nonces live in memory: after a failover the client gets
//!   a fresh one (`AccessRefusal::UnknownNonce`).
//!
//! Stat and list are not restricted (metadata only, see `docs/security.md`).

use crate::namespace::validate_name;
use basalt_proto::credential::{AuthOp, Verifier, ADMIN, NONCE_LEN};
use basalt_proto::mds::{AuthNonce, Credential, OwnerInfo};
use basalt_proto::status::{AccessRefusal, MdsError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// How long an issued nonce stays usable.
pub const NONCE_TTL_MS: u64 = 30_000;
/// Most nonces outstanding; the oldest are dropped beyond it.
pub const MAX_NONCES: usize = 65_536;

/// An owner as stored in etcd (`/basalt/v1/owner/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// Name.
    pub name: String,
    /// Salt and stored key of the owner's key (never the key).
    pub verifier: Verifier,
    /// Registration time, seconds since the epoch.
    pub ctime: u64,
    /// When the key was last set, seconds since the epoch.
    pub key_time: u64,
}

impl OwnerRecord {
    /// As listed.
    pub fn info(&self) -> OwnerInfo {
        OwnerInfo {
            name: self.name.clone(),
            ctime: self.ctime,
            key_time: self.key_time,
        }
    }
}

/// Who a checked credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Nothing is enforced; nobody was checked.
    Unchecked,
    /// The admin credential.
    Admin,
    /// A registered owner.
    Owner(String),
}

#[derive(Debug, Clone)]
struct Issued {
    principal: String,
    expires_ms: u64,
}

/// Owners, the admin verifier and outstanding nonces.
#[derive(Debug, Clone, Default)]
pub struct Access {
    admin: Option<Verifier>,
    owners: BTreeMap<String, OwnerRecord>,
    nonces: HashMap<Vec<u8>, Issued>,
    order: VecDeque<Vec<u8>>,
}

fn volume_denied(volume: &str, reason: AccessRefusal) -> MdsError {
    MdsError::VolumeAccessDenied {
        volume: volume.to_string(),
        reason,
    }
}

fn owner_denied(owner: &str, reason: AccessRefusal) -> MdsError {
    MdsError::OwnerAccessDenied {
        owner: owner.to_string(),
        reason,
    }
}

impl Access {
    /// Enforcing when `admin` is given.
    pub fn new(admin: Option<Verifier>) -> Self {
        Access {
            admin,
            ..Default::default()
        }
    }

    /// Set (or clear) the admin verifier.
    pub fn set_admin(&mut self, admin: Option<Verifier>) {
        self.admin = admin;
    }

    /// Whether requests are checked.
    pub fn enforced(&self) -> bool {
        self.admin.is_some()
    }

    /// A registered owner.
    pub fn owner(&self, name: &str) -> Option<&OwnerRecord> {
        self.owners.get(name)
    }

    /// Every owner, by name.
    pub fn owners(&self) -> Vec<OwnerInfo> {
        self.owners.values().map(OwnerRecord::info).collect()
    }

    /// Record an owner (load, create, key change).
    pub fn commit_owner(&mut self, rec: OwnerRecord) {
        self.owners.insert(rec.name.clone(), rec);
    }

    /// Forget an owner.
    pub fn commit_delete_owner(&mut self, name: &str) {
        self.owners.remove(name);
    }

    fn verifier_of(&self, principal: &str) -> Option<&Verifier> {
        if principal == ADMIN {
            self.admin.as_ref()
        } else {
            self.owners.get(principal).map(|o| &o.verifier)
        }
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some(front) = self.order.front() {
            let stale = self
                .nonces
                .get(front)
                .is_none_or(|i| i.expires_ms <= now_ms);
            if !stale && self.order.len() <= MAX_NONCES {
                break;
            }
            if let Some(n) = self.order.pop_front() {
                self.nonces.remove(&n);
            }
        }
    }

    /// A fresh nonce and `principal`'s salt. When enforced, an unknown principal is
    /// refused with `OwnerNotFound`.
    pub fn issue_nonce(
        &mut self,
        principal: &str,
        now_ms: u64,
        rng: &mut impl Rng,
    ) -> Result<AuthNonce, MdsError> {
        let salt = match self.verifier_of(principal) {
            Some(v) => v.salt.clone(),
            None if self.enforced() => {
                return Err(MdsError::OwnerNotFound {
                    owner: principal.to_string(),
                })
            }
            None => Vec::new(),
        };
        self.expire(now_ms);
        let mut nonce = vec![0u8; NONCE_LEN];
        rng.fill(&mut nonce[..]);
        self.nonces.insert(
            nonce.clone(),
            Issued {
                principal: principal.to_string(),
                expires_ms: now_ms.saturating_add(NONCE_TTL_MS),
            },
        );
        self.order.push_back(nonce.clone());
        self.expire(now_ms);
        Ok(AuthNonce { nonce, salt })
    }

    /// Check a credential for `op`; consumes its nonce whatever the outcome.
    pub fn authenticate(
        &mut self,
        cred: Option<&Credential>,
        op: &AuthOp<'_>,
        now_ms: u64,
    ) -> Result<Principal, AccessRefusal> {
        if !self.enforced() {
            return Ok(Principal::Unchecked);
        }
        let cred = cred.ok_or(AccessRefusal::NoCredential)?;
        let issued = self
            .nonces
            .remove(&cred.nonce)
            .ok_or(AccessRefusal::UnknownNonce)?;
        if issued.expires_ms <= now_ms || issued.principal != cred.principal {
            return Err(AccessRefusal::UnknownNonce);
        }
        let v = self
            .verifier_of(&cred.principal)
            .ok_or(AccessRefusal::BadProof)?;
        if !v.check(&cred.principal, &cred.nonce, op, &cred.proof) {
            return Err(AccessRefusal::BadProof);
        }
        Ok(if cred.principal == ADMIN {
            Principal::Admin
        } else {
            Principal::Owner(cred.principal.clone())
        })
    }

    /// May the caller do `op` on volume `volume` owned by `owner` (for a create: the
    /// owner the new volume would get)?
    pub fn authorize_volume(
        &mut self,
        volume: &str,
        owner: &str,
        cred: Option<&Credential>,
        op: &AuthOp<'_>,
        now_ms: u64,
    ) -> Result<Principal, MdsError> {
        let p = self
            .authenticate(cred, op, now_ms)
            .map_err(|r| volume_denied(volume, r))?;
        match &p {
            Principal::Owner(o) if o != owner => {
                Err(volume_denied(volume, AccessRefusal::NotOwner))
            }
            _ => Ok(p),
        }
    }

    /// May the caller do `op` on owner `owner`? Only the admin, or with `self_allowed`
    /// the owner itself.
    pub fn authorize_owner(
        &mut self,
        owner: &str,
        cred: Option<&Credential>,
        op: &AuthOp<'_>,
        self_allowed: bool,
        now_ms: u64,
    ) -> Result<Principal, MdsError> {
        let p = self
            .authenticate(cred, op, now_ms)
            .map_err(|r| owner_denied(owner, r))?;
        match &p {
            Principal::Owner(o) if !(self_allowed && o == owner) => {
                Err(owner_denied(owner, AccessRefusal::AdminRequired))
            }
            _ => Ok(p),
        }
    }

    fn check_verifier(name: &str, v: &Verifier) -> Result<(), MdsError> {
        if v.is_well_formed() {
            Ok(())
        } else {
            Err(MdsError::InvalidOwner {
                owner: name.to_string(),
                reason: "malformed verifier".into(),
            })
        }
    }

    /// Validate a new owner.
    pub fn plan_create_owner(
        &self,
        name: &str,
        verifier: &Verifier,
        now_s: u64,
    ) -> Result<OwnerRecord, MdsError> {
        validate_name(name).map_err(|_| MdsError::InvalidOwner {
            owner: name.to_string(),
            reason: "1..=128 of [A-Za-z0-9._-], not starting with '.' or '-'".into(),
        })?;
        Self::check_verifier(name, verifier)?;
        if name == ADMIN || self.owners.contains_key(name) {
            return Err(MdsError::OwnerExists {
                owner: name.to_string(),
            });
        }
        Ok(OwnerRecord {
            name: name.to_string(),
            verifier: verifier.clone(),
            ctime: now_s,
            key_time: now_s,
        })
    }

    /// Validate a key change.
    pub fn plan_set_key(
        &self,
        name: &str,
        verifier: &Verifier,
        now_s: u64,
    ) -> Result<OwnerRecord, MdsError> {
        Self::check_verifier(name, verifier)?;
        let cur = self
            .owners
            .get(name)
            .ok_or_else(|| MdsError::OwnerNotFound {
                owner: name.to_string(),
            })?;
        Ok(OwnerRecord {
            verifier: verifier.clone(),
            key_time: now_s,
            ..cur.clone()
        })
    }

    /// Outstanding nonces (for tests and metrics).
    pub fn nonces_outstanding(&self) -> usize {
        self.nonces.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::credential::{OwnerKey, SALT_LEN};
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(5)
    }

    fn key(b: u8) -> OwnerKey {
        OwnerKey::from_bytes([b; 32])
    }

    /// Enforcing, admin key 1, owner alice key 2, owner bob key 3.
    fn access() -> Access {
        let mut a = Access::new(Some(key(1).verifier([1; SALT_LEN])));
        for (name, k) in [("alice", 2), ("bob", 3)] {
            let rec = a
                .plan_create_owner(name, &key(k).verifier([k; SALT_LEN]), 10)
                .unwrap();
            a.commit_owner(rec);
        }
        a
    }

    fn cred(
        a: &mut Access,
        principal: &str,
        k: &OwnerKey,
        op: &AuthOp<'_>,
        now: u64,
        r: &mut impl Rng,
    ) -> Credential {
        let n = a.issue_nonce(principal, now, r).unwrap();
        Credential {
            principal: principal.into(),
            proof: k.prove(&n.salt, principal, &n.nonce, op),
            nonce: n.nonce,
        }
    }

    const OPEN: AuthOp<'static> = AuthOp::OpenVolume { name: "db" };

    #[test]
    fn owner_opens_own_volume_and_nobody_else_does_without_the_key() {
        let mut a = access();
        let mut r = rng();
        // The owner with its key.
        let c = cred(&mut a, "alice", &key(2), &OPEN, 0, &mut r);
        assert_eq!(
            a.authorize_volume("db", "alice", Some(&c), &OPEN, 1),
            Ok(Principal::Owner("alice".into()))
        );
        // No credential.
        assert_eq!(
            a.authorize_volume("db", "alice", None, &OPEN, 1),
            Err(volume_denied("db", AccessRefusal::NoCredential))
        );
        // Claiming to be alice with the wrong key.
        let c = cred(&mut a, "alice", &key(9), &OPEN, 0, &mut r);
        assert_eq!(
            a.authorize_volume("db", "alice", Some(&c), &OPEN, 1),
            Err(volume_denied("db", AccessRefusal::BadProof))
        );
        // Bob with his own (valid) key: another owner's volume.
        let c = cred(&mut a, "bob", &key(3), &OPEN, 0, &mut r);
        assert_eq!(
            a.authorize_volume("db", "alice", Some(&c), &OPEN, 1),
            Err(volume_denied("db", AccessRefusal::NotOwner))
        );
        // Bob holding alice's key can act as alice (that is what the key is for).
        let c = cred(&mut a, "alice", &key(2), &OPEN, 0, &mut r);
        assert!(a
            .authorize_volume("db", "alice", Some(&c), &OPEN, 1)
            .is_ok());
    }

    #[test]
    fn admin_may_touch_every_volume_and_owner() {
        let mut a = access();
        let mut r = rng();
        let c = cred(&mut a, ADMIN, &key(1), &OPEN, 0, &mut r);
        assert_eq!(
            a.authorize_volume("db", "alice", Some(&c), &OPEN, 1),
            Ok(Principal::Admin)
        );
        let del = AuthOp::DeleteOwner { name: "bob" };
        let c = cred(&mut a, ADMIN, &key(1), &del, 0, &mut r);
        assert_eq!(
            a.authorize_owner("bob", Some(&c), &del, false, 1),
            Ok(Principal::Admin)
        );
        // An owner may not manage owners, not even itself, unless allowed (rotation).
        let c = cred(&mut a, "bob", &key(3), &del, 0, &mut r);
        assert_eq!(
            a.authorize_owner("bob", Some(&c), &del, false, 1),
            Err(owner_denied("bob", AccessRefusal::AdminRequired))
        );
        let v = key(4).verifier([4; SALT_LEN]);
        let rot = AuthOp::SetOwnerKey {
            name: "bob",
            verifier: &v,
        };
        let c = cred(&mut a, "bob", &key(3), &rot, 0, &mut r);
        assert!(a.authorize_owner("bob", Some(&c), &rot, true, 1).is_ok());
        let c = cred(&mut a, "alice", &key(2), &rot, 0, &mut r);
        assert_eq!(
            a.authorize_owner("bob", Some(&c), &rot, true, 1),
            Err(owner_denied("bob", AccessRefusal::AdminRequired))
        );
    }

    #[test]
    fn nonces_are_single_use_bound_to_the_principal_and_expire() {
        let mut a = access();
        let mut r = rng();
        let c = cred(&mut a, "alice", &key(2), &OPEN, 0, &mut r);
        assert!(a
            .authorize_volume("db", "alice", Some(&c), &OPEN, 1)
            .is_ok());
        // Replayed.
        assert_eq!(
            a.authorize_volume("db", "alice", Some(&c), &OPEN, 2),
            Err(volume_denied("db", AccessRefusal::UnknownNonce))
        );
        // Expired.
        let c = cred(&mut a, "alice", &key(2), &OPEN, 0, &mut r);
        assert_eq!(
            a.authorize_volume("db", "alice", Some(&c), &OPEN, NONCE_TTL_MS),
            Err(volume_denied("db", AccessRefusal::UnknownNonce))
        );
        // Issued to bob, used by alice.
        let n = a.issue_nonce("bob", 0, &mut r).unwrap();
        let c = Credential {
            principal: "alice".into(),
            proof: key(2).prove(&[2; SALT_LEN], "alice", &n.nonce, &OPEN),
            nonce: n.nonce,
        };
        assert_eq!(
            a.authorize_volume("db", "alice", Some(&c), &OPEN, 1),
            Err(volume_denied("db", AccessRefusal::UnknownNonce))
        );
        // A proof for another operation does not carry over.
        let c = cred(&mut a, "alice", &key(2), &OPEN, 0, &mut r);
        let del = AuthOp::DeleteVolume { name: "db" };
        assert_eq!(
            a.authorize_volume("db", "alice", Some(&c), &del, 1),
            Err(volume_denied("db", AccessRefusal::BadProof))
        );
        // Unknown principals get no nonce; the table stays bounded.
        assert_eq!(
            a.issue_nonce("carol", 0, &mut r),
            Err(MdsError::OwnerNotFound {
                owner: "carol".into()
            })
        );
        for i in 0..(MAX_NONCES as u64 + 10) {
            a.issue_nonce("alice", i / 1000, &mut r).unwrap();
        }
        assert!(a.nonces_outstanding() <= MAX_NONCES);
        a.issue_nonce("alice", 10 * NONCE_TTL_MS, &mut r).unwrap();
        assert_eq!(a.nonces_outstanding(), 1);
    }

    #[test]
    fn key_rotation_retires_the_old_key() {
        let mut a = access();
        let mut r = rng();
        let rec = a
            .plan_set_key("alice", &key(7).verifier([7; SALT_LEN]), 20)
            .unwrap();
        assert_eq!((rec.ctime, rec.key_time), (10, 20));
        a.commit_owner(rec);
        let c = cred(&mut a, "alice", &key(2), &OPEN, 0, &mut r);
        assert_eq!(
            a.authorize_volume("db", "alice", Some(&c), &OPEN, 1),
            Err(volume_denied("db", AccessRefusal::BadProof))
        );
        let c = cred(&mut a, "alice", &key(7), &OPEN, 0, &mut r);
        assert!(a
            .authorize_volume("db", "alice", Some(&c), &OPEN, 1)
            .is_ok());
        assert!(matches!(
            a.plan_set_key("carol", &key(7).verifier([7; SALT_LEN]), 20),
            Err(MdsError::OwnerNotFound { .. })
        ));
    }

    #[test]
    fn owner_names_are_checked_and_admin_is_reserved() {
        let a = access();
        let v = key(5).verifier([5; SALT_LEN]);
        for bad in ["", "a/b", "-x"] {
            assert!(matches!(
                a.plan_create_owner(bad, &v, 0),
                Err(MdsError::InvalidOwner { .. })
            ));
        }
        for taken in [ADMIN, "alice"] {
            assert_eq!(
                a.plan_create_owner(taken, &v, 0),
                Err(MdsError::OwnerExists {
                    owner: taken.into()
                })
            );
        }
        let short = Verifier {
            salt: vec![1],
            stored_key: vec![2; 32],
        };
        assert!(matches!(
            a.plan_create_owner("carol", &short, 0),
            Err(MdsError::InvalidOwner { .. })
        ));
        assert_eq!(a.owners().len(), 2);
    }

    #[test]
    fn without_an_admin_verifier_nothing_is_enforced() {
        let mut a = Access::new(None);
        let mut r = rng();
        assert!(!a.enforced());
        assert_eq!(
            a.authorize_volume("db", "alice", None, &OPEN, 0),
            Ok(Principal::Unchecked)
        );
        // Nonces are still handed out (clients with a key configured keep working).
        assert!(a.issue_nonce("anyone", 0, &mut r).unwrap().salt.is_empty());
    }
}
