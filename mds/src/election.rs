//! MDS leader election on etcd's v3election service.
//!
//! Each MDS is a [`Candidate`]: it grants a lease (TTL 5 s by default), keeps it alive
//! every TTL/3 in its own task, and [`Candidate::campaign`]s, which blocks until it leads.
//! The returned [`Leadership`] carries the [`Fence`] for fenced writes and a step-down
//! signal raised when:
//! - a keepalive reply says the lease is gone (TTL <= 0) → [`StepDownReason::LeaseExpired`];
//! - keepalives keep failing for longer than the TTL → [`StepDownReason::KeepAliveFailed`];
//! - the observer (its own task: `observe` blocks until a leader exists) reports another
//!   leader key → [`StepDownReason::OtherLeader`], or its stream ends →
//!   [`StepDownReason::ObserveEnded`];
//! - our key disappears (checked every TTL/3: `observe` is silent until a new leader
//!   exists) → [`StepDownReason::KeyLost`].
//!
//! Independently of those tasks, [`Leadership::is_leader`] is false once the local lease
//! deadline (last successful keepalive + TTL) has passed, so a leader whose keepalive task
//! died stops serving on time. [`Leadership::resign`] resigns and revokes the lease, for a
//! hand-over of a few milliseconds.

use crate::error::{Error, Result};
use crate::store::fence::Fence;
use etcd_client::{Client, LeaderKey, ResignOptions};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a leader stepped down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDownReason {
    /// etcd reported the lease expired.
    LeaseExpired,
    /// Keepalives failed for longer than the TTL.
    KeepAliveFailed,
    /// Another candidate's key leads the election.
    OtherLeader,
    /// The observe stream ended or failed.
    ObserveEnded,
    /// Our election key is gone or was re-created (deleted by an operator, lease revoked).
    KeyLost,
    /// This MDS resigned.
    Resigned,
}

/// Election settings.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Election name (prefix of campaign keys).
    pub name: String,
    /// Lease TTL.
    pub ttl: Duration,
    /// Value proclaimed by this candidate (`<mds id>@<addr>`).
    pub value: String,
}

impl ElectionConfig {
    /// Default election name and TTL (5 s) for `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            name: crate::keys::LEADER.to_string(),
            ttl: Duration::from_secs(5),
            value: value.into(),
        }
    }
}

#[derive(Debug)]
struct Shared {
    /// Local lease deadline: last successful keepalive (or grant) + TTL.
    deadline: Mutex<Instant>,
    step_down: watch::Sender<Option<StepDownReason>>,
}

impl Shared {
    fn raise(&self, r: StepDownReason) {
        self.step_down.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(r);
                true
            } else {
                false
            }
        });
    }
}

/// One MDS taking part in the election.
pub struct Candidate {
    client: Client,
    cfg: ElectionConfig,
    lease: i64,
    shared: Arc<Shared>,
    keepalive: JoinHandle<()>,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("cfg", &self.cfg)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX)
}

impl Candidate {
    /// Grant a lease and start keeping it alive. `client` should be this MDS's own,
    /// connected with [`crate::store::etcd::connect_streaming`] (a per-request timeout
    /// would cut the keepalive and observe streams).
    pub async fn new(mut client: Client, cfg: ElectionConfig) -> Result<Self> {
        let granted = client
            .lease_grant(ttl_secs(cfg.ttl), None)
            .await
            .map_err(Error::etcd("lease_grant"))?;
        let lease = granted.id();
        let (tx, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            deadline: Mutex::new(Instant::now() + cfg.ttl),
            step_down: tx,
        });
        let keepalive = tokio::spawn(keepalive_loop(
            client.clone(),
            lease,
            cfg.ttl,
            shared.clone(),
        ));
        Ok(Self {
            client,
            cfg,
            lease,
            shared,
            keepalive,
        })
    }

    /// The lease id.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Fault injection for tests: stop keeping the lease alive, as if the process hung.
    pub fn abort_keepalive(&self) {
        self.keepalive.abort();
    }

    /// Block until this candidate leads.
    pub async fn campaign(&mut self) -> Result<Leadership> {
        let resp = self
            .client
            .campaign(self.cfg.name.clone(), self.cfg.value.clone(), self.lease)
            .await
            .map_err(Error::etcd("campaign"))?;
        let key = resp.leader().cloned().ok_or(Error::LeadershipLost {
            reason: StepDownReason::ObserveEnded,
        })?;
        let fence = Fence {
            key: key.key().to_vec(),
            create_revision: key.rev(),
        };
        let observer = tokio::spawn(observe_loop(
            self.client.clone(),
            self.cfg.name.clone(),
            fence.key.clone(),
            self.shared.clone(),
        ));
        let checker = tokio::spawn(key_check_loop(
            self.client.clone(),
            fence.clone(),
            self.cfg.ttl / 3,
            self.shared.clone(),
        ));
        tracing::info!(value = %self.cfg.value, rev = key.rev(), "elected MDS leader");
        Ok(Leadership {
            client: self.client.clone(),
            key,
            fence,
            lease: self.lease,
            shared: self.shared.clone(),
            observer,
            checker,
            ttl: self.cfg.ttl,
        })
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

async fn keepalive_loop(mut client: Client, lease: i64, ttl: Duration, shared: Arc<Shared>) {
    let every = ttl / 3;
    let mut last_ok = Instant::now();
    loop {
        if last_ok.elapsed() > ttl {
            shared.raise(StepDownReason::KeepAliveFailed);
            return;
        }
        match client.lease_keep_alive(lease).await {
            Ok((mut keeper, mut stream)) => loop {
                // The server renews the lease after we send, so counting the TTL from the
                // send time keeps the local deadline at or before etcd's.
                let sent_at = Instant::now();
                let sent = keeper.keep_alive().await;
                let got = match sent {
                    Ok(()) => tokio::time::timeout(every, stream.message()).await,
                    Err(_) => break,
                };
                match got {
                    Ok(Ok(Some(r))) if r.ttl() > 0 => {
                        last_ok = sent_at;
                        let granted = Duration::from_secs(u64::try_from(r.ttl()).unwrap_or(0));
                        *shared.deadline.lock() = sent_at + granted.min(ttl);
                    }
                    Ok(Ok(Some(_))) => {
                        shared.raise(StepDownReason::LeaseExpired);
                        return;
                    }
                    _ => break,
                }
                if last_ok.elapsed() > ttl {
                    shared.raise(StepDownReason::KeepAliveFailed);
                    return;
                }
                tokio::time::sleep(every.saturating_sub(last_ok.elapsed())).await;
            },
            Err(e) => tracing::warn!(error = %e, "lease keepalive stream failed"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Watch the `observe` stream: another leader key → step down; the stream ending or
/// failing → step down.
async fn observe_loop(mut client: Client, name: String, ours: Vec<u8>, shared: Arc<Shared>) {
    // `observe` returns only once a leader exists; if our key is already gone it waits,
    // and `key_check_loop` covers that case.
    let mut stream = match client.observe(name).await {
        Ok(s) => s,
        Err(_) => {
            shared.raise(StepDownReason::ObserveEnded);
            return;
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(r)) => {
                if r.kv().is_some_and(|kv| kv.key() != ours.as_slice()) {
                    shared.raise(StepDownReason::OtherLeader);
                    return;
                }
            }
            _ => {
                shared.raise(StepDownReason::ObserveEnded);
                return;
            }
        }
    }
}

/// `observe` says nothing when our key merely disappears: check every `every` that it
/// still exists with our create revision.
async fn key_check_loop(mut client: Client, fence: Fence, every: Duration, shared: Arc<Shared>) {
    let mut check = tokio::time::interval(every);
    loop {
        check.tick().await;
        // Failures here are the keepalive's business (it owns the TTL budget).
        if let Ok(Ok(r)) = tokio::time::timeout(every, client.get(fence.key.clone(), None)).await {
            let ours = r
                .kvs()
                .first()
                .is_some_and(|kv| kv.create_revision() == fence.create_revision);
            if !ours {
                shared.raise(StepDownReason::KeyLost);
                return;
            }
        }
    }
}

/// This MDS leads, until the step-down signal is raised.
pub struct Leadership {
    client: Client,
    key: LeaderKey,
    fence: Fence,
    lease: i64,
    shared: Arc<Shared>,
    observer: JoinHandle<()>,
    checker: JoinHandle<()>,
    ttl: Duration,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// The fence for writes made under this leadership.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Whether to keep serving: no step-down raised and the local lease deadline not passed.
    pub fn is_leader(&self) -> bool {
        self.shared.step_down.borrow().is_none() && Instant::now() < *self.shared.deadline.lock()
    }

    /// A cheap check equal to [`Leadership::is_leader`] that outlives `self` (for the
    /// RPC service).
    pub fn leader_check(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let shared = self.shared.clone();
        Arc::new(move || {
            shared.step_down.borrow().is_none() && Instant::now() < *shared.deadline.lock()
        })
    }

    /// Wait until leadership is lost; returns why.
    pub async fn stepped_down(&self) -> StepDownReason {
        let mut rx = self.shared.step_down.subscribe();
        loop {
            if let Some(r) = *rx.borrow_and_update() {
                return r;
            }
            let deadline = *self.shared.deadline.lock();
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return StepDownReason::KeepAliveFailed;
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if Instant::now() >= *self.shared.deadline.lock() {
                        self.shared.raise(StepDownReason::KeepAliveFailed);
                    }
                }
            }
        }
    }

    /// Graceful hand-over: resign the election key, then revoke the lease.
    pub async fn resign(mut self) -> Result<()> {
        self.shared.raise(StepDownReason::Resigned);
        self.observer.abort();
        self.checker.abort();
        // Bounded: the streaming client has no per-request timeout.
        let bound = self.ttl;
        let resign = self
            .client
            .resign(Some(ResignOptions::new().with_leader(self.key.clone())));
        match tokio::time::timeout(bound, resign).await {
            Ok(r) => r.map_err(Error::etcd("resign"))?,
            Err(_) => {
                return Err(Error::LeadershipLost {
                    reason: StepDownReason::Resigned,
                })
            }
        };
        match tokio::time::timeout(bound, self.client.lease_revoke(self.lease)).await {
            Ok(r) => r.map_err(Error::etcd("lease_revoke"))?,
            Err(_) => {
                return Err(Error::LeadershipLost {
                    reason: StepDownReason::Resigned,
                })
            }
        };
        Ok(())
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.observer.abort();
        self.checker.abort();
    }
}

/// The current leader's value, or `None` when nobody leads (etcd answers that case with
/// the error "election: no leader", which is mapped to `None` here).
pub async fn leader(client: &Client, name: &str) -> Result<Option<String>> {
    let mut c = client.clone();
    let r = tokio::time::timeout(crate::store::etcd::REQUEST_TIMEOUT, c.leader(name))
        .await
        .unwrap_or_else(|_| Err(etcd_client::Error::ElectError("leader: timed out".into())));
    match r {
        Ok(r) => Ok(r
            .kv()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())),
        Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("election: no leader") => {
            Ok(None)
        }
        Err(e) => Err(Error::Etcd {
            op: "leader",
            source: e,
        }),
    }
}

/// Keep `report`ing the election's leader value, for a standby's "not leader" hints: the
/// current value first, then each new leader as `observe` announces it (no polling lag).
/// `observe` is silent while nobody leads, so the last value stays until a successor is
/// elected. After the stream fails or ends, start over after `retry`. Runs until aborted:
/// spawn it in its own task, with a streaming client
/// ([`crate::store::etcd::connect_streaming`]).
pub async fn follow_leader(
    client: Client,
    name: String,
    retry: Duration,
    report: impl Fn(Option<String>) + Send,
) {
    let value = |kv: &etcd_client::KeyValue| String::from_utf8_lossy(kv.value()).into_owned();
    loop {
        if let Ok(v) = leader(&client, &name).await {
            report(v);
        }
        let mut c = client.clone();
        match c.observe(name.clone()).await {
            Ok(mut stream) => {
                while let Ok(Some(r)) = stream.message().await {
                    report(r.kv().map(value));
                }
            }
            Err(e) => tracing::debug!(error = %e, "observe failed; retrying"),
        }
        tokio::time::sleep(retry).await;
    }
}
