//! The hello's decisions as pure functions (sans-IO): whether to offer a fast path, whether
//! to accept a dialler, which features both sides use, what a reply means to the dialler.

use crate::config::FastPathMode;
use crate::error::TransportError;
use crate::fastpath::FastPathProvider;
use crate::hello_hook::HelloHook;
use crate::metrics::FallbackReason;
use basalt_proto::hello::{Features, Hello, HelloRefusal, HelloReply, Identity, Role, UcxOffer};
use std::sync::Arc;

/// Whether this side offers (or accepts) a fast path on a new connection.
#[derive(Clone)]
pub(crate) enum OfferDecision {
    /// Mode `off`: no offer, nothing to count.
    Skip,
    /// No offer, counted as a fallback for this reason.
    Fallback(FallbackReason),
    /// Offer with this provider.
    Offer(Arc<dyn FastPathProvider>),
}

pub(crate) fn offer_decision(
    mode: FastPathMode,
    provider: Option<&Arc<dyn FastPathProvider>>,
) -> OfferDecision {
    match (mode, provider) {
        (FastPathMode::Off, _) => OfferDecision::Skip,
        (_, None) => OfferDecision::Fallback(FallbackReason::Absent),
        (FastPathMode::Auto, Some(p)) if !p.worthwhile() => {
            OfferDecision::Fallback(FallbackReason::NotWorthwhile)
        }
        (_, Some(p)) => OfferDecision::Offer(p.clone()),
    }
}

/// The acceptor's view of what it accepts.
pub(crate) struct AcceptPolicy<'a> {
    pub version: u16,
    pub identity: &'a Identity,
    pub accepted_roles: Option<&'a [Role]>,
    pub hook: Option<&'a dyn HelloHook>,
}

/// Decide on a dialler's hello. `frame_version` is the version in the hello's frame header;
/// it is checked before the hello is decoded (a peer of another version may encode it
/// differently), so call [`version_refusal`] first when the frame could not be decoded.
pub(crate) fn check_hello(policy: &AcceptPolicy<'_>, hello: &Hello) -> Result<(), HelloRefusal> {
    if hello.version != policy.version {
        return Err(HelloRefusal::VersionMismatch {
            ours: policy.version,
            theirs: hello.version,
        });
    }
    let ours = &policy.identity.cluster;
    let theirs = &hello.identity.cluster;
    // an empty cluster name means "not registered yet" and is accepted either way
    if !ours.is_empty() && !theirs.is_empty() && ours != theirs {
        return Err(HelloRefusal::WrongCluster {
            ours: ours.clone(),
            theirs: theirs.clone(),
        });
    }
    if let Some(roles) = policy.accepted_roles {
        if !roles.contains(&hello.identity.role) {
            return Err(HelloRefusal::RoleNotAccepted {
                role: hello.identity.role,
            });
        }
    }
    if let Some(hook) = policy.hook {
        hook.check_hello(hello)?;
    }
    Ok(())
}

/// The refusal for a hello frame of another protocol version, if it is one.
pub(crate) fn version_refusal(ours: u16, frame_version: u16) -> Option<HelloRefusal> {
    (frame_version != ours).then_some(HelloRefusal::VersionMismatch {
        ours,
        theirs: frame_version,
    })
}

/// Features both sides use: the intersection, with `UCX` only when both offered one
/// (`AUTH` is added by the handshake when both authenticate).
pub(crate) fn agreed_features(ours: Features, theirs: Features, both_offer_ucx: bool) -> Features {
    let mut f = (ours & theirs) - Features::UCX - Features::AUTH;
    if both_offer_ucx {
        f |= Features::UCX;
    }
    f
}

/// What the dialler learned from an accepted hello.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub features: Features,
    pub identity: Identity,
    pub ucx: Option<UcxOffer>,
}

/// Interpret the acceptor's reply on the dialler.
pub(crate) fn interpret_reply(
    our_version: u16,
    reply: HelloReply,
) -> Result<Accepted, TransportError> {
    match reply {
        HelloReply::Accepted {
            features,
            identity,
            ucx,
        } => Ok(Accepted {
            features,
            identity,
            ucx,
        }),
        HelloReply::Refused(HelloRefusal::VersionMismatch { ours, .. }) => {
            Err(TransportError::VersionMismatch {
                ours: our_version,
                theirs: ours,
            })
        }
        HelloReply::Refused(r) => Err(TransportError::Refused(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeFastPath;

    fn ident(cluster: &str, role: Role) -> Identity {
        Identity {
            role,
            chunkserver: None,
            name: "t".into(),
            cluster: cluster.into(),
        }
    }

    fn hello(version: u16, cluster: &str, role: Role) -> Hello {
        Hello {
            version,
            features: Features::empty(),
            identity: ident(cluster, role),
            ucx: None,
        }
    }

    #[test]
    fn offer_decisions() {
        let fake = FakeFastPath::new();
        let p: Arc<dyn FastPathProvider> = fake.clone();
        assert!(matches!(
            offer_decision(FastPathMode::Off, Some(&p)),
            OfferDecision::Skip
        ));
        assert!(matches!(
            offer_decision(FastPathMode::Auto, None),
            OfferDecision::Fallback(FallbackReason::Absent)
        ));
        assert!(matches!(
            offer_decision(FastPathMode::Auto, Some(&p)),
            OfferDecision::Offer(_)
        ));
        fake.set_worthwhile(false);
        assert!(matches!(
            offer_decision(FastPathMode::Auto, Some(&p)),
            OfferDecision::Fallback(FallbackReason::NotWorthwhile)
        ));
        assert!(matches!(
            offer_decision(FastPathMode::Force, Some(&p)),
            OfferDecision::Offer(_)
        ));
    }

    #[test]
    fn hello_checks() {
        let me = ident("prod", Role::Mds);
        let roles = [Role::ChunkServer];
        let policy = AcceptPolicy {
            version: 1,
            identity: &me,
            accepted_roles: Some(&roles),
            hook: None,
        };
        assert_eq!(
            check_hello(&policy, &hello(1, "prod", Role::ChunkServer)),
            Ok(())
        );
        assert_eq!(
            check_hello(&policy, &hello(1, "", Role::ChunkServer)),
            Ok(())
        );
        assert_eq!(
            check_hello(&policy, &hello(2, "prod", Role::ChunkServer)),
            Err(HelloRefusal::VersionMismatch { ours: 1, theirs: 2 })
        );
        assert!(matches!(
            check_hello(&policy, &hello(1, "test", Role::ChunkServer)),
            Err(HelloRefusal::WrongCluster { .. })
        ));
        assert_eq!(
            check_hello(&policy, &hello(1, "prod", Role::Client)),
            Err(HelloRefusal::RoleNotAccepted { role: Role::Client })
        );
        assert_eq!(version_refusal(1, 1), None);
        assert!(version_refusal(1, 7).is_some());
    }

    #[test]
    fn hook_can_refuse() {
        struct Deny;
        impl HelloHook for Deny {
            fn check_hello(&self, _: &Hello) -> Result<(), HelloRefusal> {
                Err(HelloRefusal::AuthFailed)
            }
        }
        let me = ident("", Role::Mds);
        let policy = AcceptPolicy {
            version: 1,
            identity: &me,
            accepted_roles: None,
            hook: Some(&Deny),
        };
        assert_eq!(
            check_hello(&policy, &hello(1, "", Role::Client)),
            Err(HelloRefusal::AuthFailed)
        );
    }

    #[test]
    fn features_and_replies() {
        let both = Features::UCX | Features::COALESCED_HEARTBEATS;
        assert_eq!(
            agreed_features(both, both, false),
            Features::COALESCED_HEARTBEATS
        );
        assert_eq!(agreed_features(both, Features::UCX, true), Features::UCX);
        let err = interpret_reply(
            1,
            HelloReply::Refused(HelloRefusal::VersionMismatch { ours: 3, theirs: 1 }),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            TransportError::VersionMismatch { ours: 1, theirs: 3 }
        ));
        assert!(matches!(
            interpret_reply(1, HelloReply::Refused(HelloRefusal::AuthFailed)),
            Err(TransportError::Refused(HelloRefusal::AuthFailed))
        ));
    }
}
