//! Calls to the MDS: any of several addresses, following the active one.
//!
//! A standby answers `NotLeader` with the active MDS's address; an unreachable MDS is
//! skipped. Calls retry for a bounded time, then report the MDS as unavailable — the I/O
//! path keeps working from cached maps meanwhile.

use crate::addr::FromSocketAddr;
use basalt_proto::credential::{AuthOp, OwnerKey};
use basalt_proto::mds::{Credential, GetAuthNonce};
use basalt_proto::status::{AccessRefusal, MdsError};
use basalt_proto::Rpc;
use basalt_transport::{ConnectionPool, Transport, TransportError};
use bytes::Bytes;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why an MDS call did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdsCallError {
    /// The active MDS answered with an error.
    Mds(MdsError),
    /// No MDS answered within the retry window.
    Unavailable,
}

/// A client of the MDS group.
pub struct MdsClient<T: Transport> {
    pool: Arc<ConnectionPool<T>>,
    addrs: Mutex<Vec<SocketAddr>>,
    current: Mutex<usize>,
    call_timeout: Duration,
    retry_for: Duration,
}

impl<T: Transport> MdsClient<T>
where
    T::Addr: FromSocketAddr,
{
    /// A client of the MDS instances at `addrs` (any order; the active one is found).
    pub fn new(
        pool: Arc<ConnectionPool<T>>,
        addrs: Vec<SocketAddr>,
        call_timeout: Duration,
        retry_for: Duration,
    ) -> Self {
        MdsClient {
            pool,
            addrs: Mutex::new(addrs),
            current: Mutex::new(0),
            call_timeout,
            retry_for,
        }
    }

    /// The address calls go to first.
    pub fn current(&self) -> Option<SocketAddr> {
        let addrs = self.addrs.lock();
        addrs
            .get(*self.current.lock() % addrs.len().max(1))
            .copied()
    }

    fn follow(&self, leader: SocketAddr) {
        let mut addrs = self.addrs.lock();
        let idx = match addrs.iter().position(|a| *a == leader) {
            Some(i) => i,
            None => {
                addrs.push(leader);
                addrs.len() - 1
            }
        };
        *self.current.lock() = idx;
    }

    fn advance(&self, from: usize) {
        let n = self.addrs.lock().len().max(1);
        let mut cur = self.current.lock();
        if *cur == from {
            *cur = (from + 1) % n;
        }
    }

    /// A credential for `op` proving `who`'s key (`None` without a key: the MDS then
    /// allows the request only when it enforces no access control).
    pub async fn credential(
        &self,
        who: Option<(&str, &OwnerKey)>,
        op: &AuthOp<'_>,
    ) -> Result<Option<Credential>, MdsCallError> {
        let Some((principal, key)) = who else {
            return Ok(None);
        };
        let n = self
            .call(&GetAuthNonce {
                principal: principal.to_string(),
            })
            .await?;
        Ok(Some(Credential {
            principal: principal.to_string(),
            proof: key.prove(&n.salt, principal, &n.nonce, op),
            nonce: n.nonce,
        }))
    }

    /// Call the active MDS with a credential for `op` made by `make`. A nonce the MDS no
    /// longer knows (a failover between getting it and using it) is replaced and the call
    /// repeated, twice at most; every other refusal is returned at once.
    pub async fn call_authed<R, X>(
        &self,
        who: Option<(&str, &OwnerKey)>,
        op: &AuthOp<'_>,
        make: impl Fn(Option<Credential>) -> R,
    ) -> Result<X, MdsCallError>
    where
        R: Rpc<Reply = Result<X, MdsError>>,
    {
        let mut attempt = 0;
        loop {
            let cred = self.credential(who, op).await?;
            match self.call(&make(cred)).await {
                Err(MdsCallError::Mds(
                    MdsError::VolumeAccessDenied {
                        reason: AccessRefusal::UnknownNonce,
                        ..
                    }
                    | MdsError::OwnerAccessDenied {
                        reason: AccessRefusal::UnknownNonce,
                        ..
                    },
                )) if attempt < 2 => attempt += 1,
                r => return r,
            }
        }
    }

    /// Call the active MDS.
    pub async fn call<R, X>(&self, req: &R) -> Result<X, MdsCallError>
    where
        R: Rpc<Reply = Result<X, MdsError>>,
    {
        let start = Instant::now();
        let mut pause = Duration::from_millis(20);
        // Addresses that did not answer during this call: a standby's hint naming one of
        // them is stale (the election has not caught up yet) and is not followed, or the
        // client would bounce between the dead MDS and that standby.
        let mut unanswered: Vec<SocketAddr> = Vec::new();
        loop {
            let (idx, addr) = {
                let addrs = self.addrs.lock();
                if addrs.is_empty() {
                    return Err(MdsCallError::Unavailable);
                }
                let idx = *self.current.lock() % addrs.len();
                (idx, addrs[idx])
            };
            let target = <T::Addr as FromSocketAddr>::from_socket_addr(addr);
            let answer = match tokio::time::timeout(
                self.call_timeout,
                self.pool.call(&target, req, Bytes::new()),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(TransportError::Timeout {
                    elapsed_ms: self.call_timeout.as_millis() as u64,
                }),
            };
            let wait = match answer {
                Ok((Ok(x), _)) => return Ok(x),
                Ok((Err(MdsError::NotLeader { leader: Some(l) }), _))
                    if l != addr && !unanswered.contains(&l) =>
                {
                    self.follow(l);
                    Duration::ZERO
                }
                Ok((Err(MdsError::NotLeader { .. }), _)) => {
                    // An election is running: try the others, slowly.
                    self.advance(idx);
                    pause
                }
                Ok((Err(MdsError::StoreUnavailable), _)) => pause,
                Ok((Err(e), _)) => return Err(MdsCallError::Mds(e)),
                Err(e) => {
                    tracing::debug!(mds = %addr, error = %e, "MDS call failed, trying the next");
                    if !unanswered.contains(&addr) {
                        unanswered.push(addr);
                    }
                    self.pool.invalidate(&target);
                    self.advance(idx);
                    if idx + 1 >= self.addrs.lock().len() {
                        pause
                    } else {
                        Duration::ZERO
                    }
                }
            };
            if start.elapsed() + wait >= self.retry_for {
                return Err(MdsCallError::Unavailable);
            }
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }
}
