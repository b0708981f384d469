//! The hello exchange over a fresh base channel (I/O shell over [`crate::negotiate`] and
//! [`crate::auth::proof`]).

use crate::auth::proof::{self, Side, Transcript};
use crate::auth::secret::ClusterSecret;
use crate::conn::{make_frame, Endpoint, FastSetup, LinkSink};
use crate::error::{AuthFailure, TransportError};
use crate::fastpath::{FrameSink, RawFrame};
use crate::negotiate::{self, AcceptPolicy, OfferDecision};
use basalt_proto::codec;
use basalt_proto::hello::{
    AuthAnswer, AuthChallenge, Features, Hello, HelloProof, HelloRefusal, HelloReply, HelloVerdict,
    Identity,
};
use basalt_proto::ids::GroupId;
use basalt_proto::method::RemoteError;
use basalt_proto::{FrameFlags, FrameKind, Method};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;

/// Correlation id of the hello request (the first frame of every connection).
const HELLO_CORR: u64 = 0;
/// Correlation id of the dialler's authentication proof (third hello frame).
const PROOF_CORR: u64 = 1;

/// A base channel before the connection exists.
pub(crate) trait FrameIo: Send {
    fn send(&mut self, frame: RawFrame) -> impl Future<Output = Result<(), TransportError>> + Send;
    fn recv(&mut self) -> impl Future<Output = Result<RawFrame, TransportError>> + Send;
}

/// What a successful hello produced.
pub(crate) struct Negotiated {
    pub peer: Identity,
    pub features: Features,
    pub fast: Option<FastSetup>,
}

/// Reserve a fast-path slot if this side offers one; count the reason if it does not.
fn prepare_offer(ep: &Endpoint) -> Option<FastSetup> {
    let opts = &ep.opts;
    match negotiate::offer_decision(opts.config.fast_path, opts.fast_path.as_ref()) {
        OfferDecision::Skip => None,
        OfferDecision::Fallback(reason) => {
            opts.metrics.fallback(reason);
            tracing::debug!(reason = reason.as_str(), "no fast-path offer");
            None
        }
        OfferDecision::Offer(provider) => {
            let sink = LinkSink::new();
            match provider.listen(sink.clone() as Arc<dyn FrameSink>) {
                Ok(offer) => Some(FastSetup {
                    provider,
                    token: offer.conn,
                    sink,
                    remote: Some(offer),
                }),
                Err(e) => {
                    opts.metrics
                        .fallback(crate::metrics::FallbackReason::Unavailable);
                    tracing::warn!(error = %e, "fast path unavailable, staying on TCP");
                    None
                }
            }
        }
    }
}

/// Release a reserved slot on a failed handshake.
struct SlotGuard(Option<FastSetup>);

impl SlotGuard {
    fn take(&mut self) -> Option<FastSetup> {
        self.0.take()
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f.provider.unlisten(f.token);
        }
    }
}

/// Dialler side: send the hello, interpret the reply.
pub(crate) async fn dial<I: FrameIo>(
    ep: &Endpoint,
    io: &mut I,
) -> Result<Negotiated, TransportError> {
    let opts = &ep.opts;
    let mut slot = SlotGuard(prepare_offer(ep));
    // in `slot.remote` we carry our own offer until the reply tells us the peer's
    let our_offer = slot.0.as_mut().and_then(|f| f.remote.take());
    let mut features = opts.features;
    if our_offer.is_some() {
        features |= Features::UCX;
    }
    let challenge = opts.secret.as_ref().map(|_| AuthChallenge {
        nonce: proof::nonce(),
    });
    if challenge.is_some() {
        features |= Features::AUTH;
    }
    let mut hello = Hello {
        version: ep.version(),
        features,
        identity: opts.identity.clone(),
        ucx: our_offer,
    };
    if let Some(hook) = &opts.hook {
        hook.prepare(&mut hello);
    }
    let hello_head: Bytes = codec::encode(&hello)?.into();
    let auth_payload: Bytes = match &challenge {
        Some(c) => codec::encode(c)?.into(),
        None => Bytes::new(),
    };
    let frame = make_frame(
        ep.version(),
        FrameKind::Request,
        Method::Hello as u16,
        HELLO_CORR,
        GroupId::NONE,
        FrameFlags::empty(),
        hello_head.clone(),
        auth_payload,
    )?;
    io.send(frame).await?;
    let reply_frame = io.recv().await?;
    let reply = &reply_frame;
    let h = reply.header;
    if h.kind != FrameKind::Response
        || h.method != Method::Hello as u16
        || h.correlation_id != HELLO_CORR
    {
        return Err(TransportError::Protocol {
            reason: format!(
                "expected a hello reply, got kind {:?} method {} corr {}",
                h.kind, h.method, h.correlation_id
            ),
        });
    }
    if h.flags.contains(FrameFlags::ERROR) {
        let e: RemoteError = codec::decode(&reply.head)?;
        return Err(TransportError::Remote(e));
    }
    let reply: HelloReply = match codec::decode(&reply.head) {
        Ok(r) => r,
        // a peer of another version may encode its reply differently
        Err(_) if h.version != ep.version() => {
            return Err(TransportError::VersionMismatch {
                ours: ep.version(),
                theirs: h.version,
            })
        }
        Err(e) => return Err(e.into()),
    };
    let refused = matches!(reply, HelloReply::Refused(_));
    let accepted = negotiate::interpret_reply(ep.version(), reply).inspect_err(|_| {
        if refused {
            opts.metrics.hello_refused.inc();
        }
    })?;
    if let Some(hook) = &opts.hook {
        hook.check_reply(&accepted.identity)
            .map_err(TransportError::Refused)?;
    }
    if let (Some(secret), Some(challenge)) = (&opts.secret, &challenge) {
        let session = DialAuth {
            secret,
            hello_head: &hello_head,
            challenge,
            reply: &reply_frame,
            peer: &accepted.identity,
        };
        session.run(ep, io).await?;
    }
    let fast = match (slot.take(), accepted.ucx) {
        (Some(mut f), Some(remote)) => {
            f.remote = Some(remote);
            Some(f)
        }
        (Some(f), None) => {
            opts.metrics
                .fallback(crate::metrics::FallbackReason::Declined);
            tracing::debug!("peer declined the fast path");
            f.provider.unlisten(f.token);
            None
        }
        (None, _) => None,
    };
    let mut features = negotiate::agreed_features(opts.features, accepted.features, fast.is_some());
    if challenge.is_some() {
        features |= Features::AUTH;
    }
    opts.metrics.connections_dialled.inc();
    Ok(Negotiated {
        peer: accepted.identity,
        features,
        fast,
    })
}

/// Acceptor side: read the hello, answer it. A refused hello is answered, then the
/// caller closes the channel.
pub(crate) async fn accept<I: FrameIo>(
    ep: &Endpoint,
    io: &mut I,
) -> Result<Negotiated, TransportError> {
    let opts = &ep.opts;
    let frame = io.recv().await?;
    let h = frame.header;
    if h.kind != FrameKind::Request || h.method != Method::Hello as u16 {
        return Err(TransportError::Protocol {
            reason: format!(
                "first frame is not a hello (kind {:?}, method {})",
                h.kind, h.method
            ),
        });
    }
    if let Some(refusal) = negotiate::version_refusal(ep.version(), h.version) {
        return Err(refuse(ep, io, h.correlation_id, refusal).await);
    }
    let hello: Hello = codec::decode(&frame.head)?;
    let policy = AcceptPolicy {
        version: ep.version(),
        identity: &opts.identity,
        accepted_roles: opts.accepted_roles.as_deref(),
        hook: opts.hook.as_deref(),
    };
    if let Err(refusal) = negotiate::check_hello(&policy, &hello) {
        return Err(refuse(ep, io, h.correlation_id, refusal).await);
    }
    // with a secret, the dialler must open the challenge–response
    let challenge = match &opts.secret {
        None => None,
        Some(_) => match read_challenge(&hello, &frame.payload) {
            Ok(c) => Some(c),
            Err(reason) => {
                count_auth_failure(ep, &hello.identity, reason, "dialler");
                return Err(refuse(ep, io, h.correlation_id, HelloRefusal::AuthFailed).await);
            }
        },
    };
    let mut slot = SlotGuard(match hello.ucx {
        Some(_) => prepare_offer(ep),
        None => {
            // the dialler did not offer; count it only if we would have
            if let OfferDecision::Offer(_) =
                negotiate::offer_decision(opts.config.fast_path, opts.fast_path.as_ref())
            {
                opts.metrics
                    .fallback(crate::metrics::FallbackReason::Declined);
            }
            None
        }
    });
    let our_offer = slot.0.as_ref().and_then(|f| f.remote.clone());
    let both = our_offer.is_some();
    let mut features = negotiate::agreed_features(opts.features, hello.features, both);
    if challenge.is_some() {
        features |= Features::AUTH;
    }
    let reply = HelloReply::Accepted {
        features,
        identity: opts.identity.clone(),
        ucx: our_offer,
    };
    let reply_head: Bytes = codec::encode(&reply)?.into();
    let acceptor_nonce = proof::nonce();
    let transcript = challenge.as_ref().map(|c| Transcript {
        version: ep.version(),
        hello: &frame.head,
        dialler_nonce: &c.nonce,
        reply: &reply_head,
        acceptor_nonce: &acceptor_nonce,
    });
    let auth_payload: Bytes = match (&opts.secret, &transcript) {
        (Some(secret), Some(t)) => codec::encode(&AuthAnswer {
            nonce: acceptor_nonce,
            proof: proof::prove(secret, Side::Acceptor, t),
        })?
        .into(),
        _ => Bytes::new(),
    };
    let out = make_frame(
        ep.version(),
        FrameKind::Response,
        Method::Hello as u16,
        h.correlation_id,
        GroupId::NONE,
        FrameFlags::empty(),
        reply_head.clone(),
        auth_payload,
    )?;
    io.send(out).await?;
    if let (Some(secret), Some(t)) = (&opts.secret, &transcript) {
        check_dialler_proof(ep, io, secret, t, &hello.identity).await?;
    }
    let fast = slot.take().map(|mut f| {
        f.remote = hello.ucx;
        f
    });
    opts.metrics.connections_accepted.inc();
    Ok(Negotiated {
        peer: hello.identity,
        features,
        fast,
    })
}

/// The dialler's half of the challenge–response, after an accepting reply.
struct DialAuth<'a> {
    secret: &'a ClusterSecret,
    hello_head: &'a [u8],
    challenge: &'a AuthChallenge,
    reply: &'a RawFrame,
    peer: &'a Identity,
}

impl DialAuth<'_> {
    /// Check the acceptor's proof (an impostor learns nothing from us), send ours, and
    /// wait for the verdict.
    async fn run<I: FrameIo>(&self, ep: &Endpoint, io: &mut I) -> Result<(), TransportError> {
        let fail = |reason: AuthFailure| {
            count_auth_failure(ep, self.peer, reason, "acceptor");
            TransportError::PeerNotAuthenticated {
                peer: self.peer.name.clone(),
                reason,
            }
        };
        if self.reply.payload.is_empty() {
            return Err(fail(AuthFailure::NotOffered));
        }
        let answer: AuthAnswer =
            codec::decode(&self.reply.payload).map_err(|_| fail(AuthFailure::Malformed))?;
        let t = Transcript {
            version: ep.version(),
            hello: self.hello_head,
            dialler_nonce: &self.challenge.nonce,
            reply: &self.reply.head,
            acceptor_nonce: &answer.nonce,
        };
        if !proof::verify(self.secret, Side::Acceptor, &t, &answer.proof) {
            return Err(fail(AuthFailure::BadProof));
        }
        let ours = HelloProof {
            proof: proof::prove(self.secret, Side::Dialler, &t),
        };
        io.send(make_frame(
            ep.version(),
            FrameKind::Request,
            Method::HelloProof as u16,
            PROOF_CORR,
            GroupId::NONE,
            FrameFlags::empty(),
            codec::encode(&ours)?.into(),
            Bytes::new(),
        )?)
        .await?;
        let v = io.recv().await?;
        let h = v.header;
        if h.kind != FrameKind::Response
            || h.method != Method::HelloProof as u16
            || h.correlation_id != PROOF_CORR
        {
            return Err(TransportError::Protocol {
                reason: format!(
                    "expected an authentication verdict, got kind {:?} method {} corr {}",
                    h.kind, h.method, h.correlation_id
                ),
            });
        }
        match codec::decode::<HelloVerdict>(&v.head)? {
            HelloVerdict::Accepted => Ok(()),
            HelloVerdict::Refused(r) => {
                ep.opts.metrics.hello_refused.inc();
                Err(TransportError::Refused(r))
            }
        }
    }
}

/// The acceptor's view of the dialler's first authentication message.
fn read_challenge(hello: &Hello, payload: &[u8]) -> Result<AuthChallenge, AuthFailure> {
    if !hello.features.contains(Features::AUTH) || payload.is_empty() {
        return Err(AuthFailure::NotOffered);
    }
    codec::decode(payload).map_err(|_| AuthFailure::Malformed)
}

/// Acceptor: read the dialler's proof and answer the verdict. Nothing is served on the
/// connection before this returns `Ok`.
async fn check_dialler_proof<I: FrameIo>(
    ep: &Endpoint,
    io: &mut I,
    secret: &ClusterSecret,
    t: &Transcript<'_>,
    peer: &Identity,
) -> Result<(), TransportError> {
    let f = match io.recv().await {
        Ok(f) => f,
        Err(e) => {
            // a dialler with another secret hangs up here after checking our proof
            count_auth_failure(ep, peer, AuthFailure::Abandoned, "dialler");
            tracing::debug!(error = %e, "dialler left before proving the cluster secret");
            return Err(e);
        }
    };
    let h = f.header;
    let verdict = if h.kind != FrameKind::Request || h.method != Method::HelloProof as u16 {
        Err(AuthFailure::Malformed)
    } else {
        match codec::decode::<HelloProof>(&f.head) {
            Err(_) => Err(AuthFailure::Malformed),
            Ok(p) if proof::verify(secret, Side::Dialler, t, &p.proof) => Ok(()),
            Ok(_) => Err(AuthFailure::BadProof),
        }
    };
    let answer = match verdict {
        Ok(()) => HelloVerdict::Accepted,
        Err(reason) => {
            count_auth_failure(ep, peer, reason, "dialler");
            ep.opts.metrics.hello_refused.inc();
            HelloVerdict::Refused(HelloRefusal::AuthFailed)
        }
    };
    let out = make_frame(
        ep.version(),
        FrameKind::Response,
        Method::HelloProof as u16,
        h.correlation_id,
        GroupId::NONE,
        FrameFlags::empty(),
        codec::encode(&answer)?.into(),
        Bytes::new(),
    )?;
    match (verdict, io.send(out).await) {
        (Err(reason), _) => Err(TransportError::PeerNotAuthenticated {
            peer: peer.name.clone(),
            reason,
        }),
        (Ok(()), sent) => sent,
    }
}

fn count_auth_failure(ep: &Endpoint, peer: &Identity, reason: AuthFailure, side: &'static str) {
    ep.opts.metrics.auth_failures.inc();
    tracing::warn!(
        peer = %peer.name,
        role = ?peer.role,
        side,
        %reason,
        "peer failed cluster authentication, closing"
    );
}

/// Answer a refused hello; the error the acceptor reports for it.
async fn refuse<I: FrameIo>(
    ep: &Endpoint,
    io: &mut I,
    corr: u64,
    refusal: HelloRefusal,
) -> TransportError {
    ep.opts.metrics.hello_refused.inc();
    tracing::info!(%refusal, "hello refused");
    let reply = HelloReply::Refused(refusal.clone());
    if let Ok(head) = codec::encode(&reply) {
        if let Ok(f) = make_frame(
            ep.version(),
            FrameKind::Response,
            Method::Hello as u16,
            corr,
            GroupId::NONE,
            FrameFlags::empty(),
            head.into(),
            Bytes::new(),
        ) {
            let _ = io.send(f).await;
        }
    }
    match refusal {
        HelloRefusal::VersionMismatch { ours, theirs } => {
            TransportError::VersionMismatch { ours, theirs }
        }
        r => TransportError::Refused(r),
    }
}
