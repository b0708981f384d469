//! The copyset registry: every raft group hosted by this chunkserver, keyed by
//! [`GroupId`], and the operations the services route to them.
//!
//! All operations answer with [`ChunkError`], the reply type of the chunk service, so a
//! service handler is a lookup plus a call.

use crate::chunk_api::ChunkStore;
use crate::copyset::codec;
use crate::copyset::config::CopysetConfig;
use crate::copyset::leader_watch::{self, GroupView};
use crate::copyset::log_store::{save_initial_vote, GroupLogStore, GroupMeta};
use crate::copyset::network::{
    encode_piece, ChunkFetcher, ChunkPieceRequest, CopysetNetwork, RaftMsgKind, RaftNet, Router,
    SnapshotData, SnapshotOffer,
};
use crate::copyset::reset::{self, LeaderView};
use crate::copyset::state_machine::CopysetSm;
use crate::copyset::types::{node_id, ChunkOp, ChunkOpResult, CopysetTypes as C};
use crate::disk_fence::DiskFence;
use crate::error::ChunkServerError;
use crate::group_log::GroupLog;
use basalt_proto::chunk::{
    ConfChangeOk, CopysetStatusOk, LeaderInfo, RaftRole, RequestId, ResetPeersError, WriteChunkOk,
};
use basalt_proto::ids::{ChunkId, ChunkServerId, Epoch, GroupId};
use basalt_proto::raft::RaftError as WireRaftError;
use basalt_proto::status::{ChunkError, InvalidReason, PeerAddr};
use bytes::Bytes;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::{ClientWriteError, ForwardToLeader, LinearizableReadError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, TransferLeaderRequest, VoteRequest,
};
use openraft::type_config::alias::SnapshotOf;
use openraft::{ChangeMembers, Raft, RaftMetrics, ReadPolicy, ServerState};
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// One copyset replica.
pub struct Copyset {
    group: GroupId,
    raft: Raft<C, CopysetSm>,
    /// Held during a membership change, so a second one is refused instead of queued.
    conf_change: tokio::sync::Mutex<()>,
    /// When a leader's append or heartbeat was last accepted here (a follower's evidence
    /// that its leader is alive; see [`reset::live_leader`]).
    leader_contact: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl Copyset {
    /// The group id.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The openraft handle (metrics, waits; tests and diagnostics).
    pub fn raft(&self) -> &Raft<C, CopysetSm> {
        &self.raft
    }

    fn metrics(&self) -> RaftMetrics<C> {
        self.raft.metrics().borrow_watched().clone()
    }
}

/// The epoch of a membership: the log index of the entry that set it. Grows with every
/// membership change and is the same on every replica.
pub fn epoch_of(m: &RaftMetrics<C>) -> Epoch {
    Epoch(m.membership_config.log_id().map(|l| l.index).unwrap_or(0))
}

/// What the registry needs from the chunkserver.
pub struct CopysetsParams {
    /// This chunkserver.
    pub local: PeerAddr,
    /// The disk's shared WAL.
    pub log: Arc<dyn GroupLog>,
    /// The disk's chunk store.
    pub store: Arc<dyn ChunkStore>,
    /// Raft traffic to other chunkservers.
    pub net: Arc<dyn RaftNet>,
    /// Raft settings.
    pub config: CopysetConfig,
}

struct Inner {
    local: PeerAddr,
    log: Arc<dyn GroupLog>,
    store: Arc<dyn ChunkStore>,
    net: Arc<dyn RaftNet>,
    config: CopysetConfig,
    raft_config: Arc<openraft::Config>,
    router: Router,
    groups: RwLock<HashMap<GroupId, Arc<Copyset>>>,
    /// Serialises create/delete so two creates of one group cannot both start a node.
    lifecycle: tokio::sync::Mutex<()>,
    /// The fences of the disk (the store's and the log's, one if they share it).
    fences: Vec<Arc<DiskFence>>,
}

/// Wait for the disk fence to trip, then fence the copysets off the disk.
async fn run_fence_watch(inner: std::sync::Weak<Inner>, fences: Vec<Arc<DiskFence>>) {
    if fences.is_empty() {
        return;
    }
    let trips = fences.iter().map(|f| Box::pin(f.tripped()));
    let (cause, _, _) = futures::future::select_all(trips).await;
    if let Some(inner) = inner.upgrade() {
        tracing::error!(
            op = cause.op,
            errno = cause.errno,
            "disk fenced: stopping its copysets"
        );
        Copysets { inner }.fence_off().await;
    }
}

/// The leader watch loop: watch the leaders of the groups this node votes in; when one's
/// process is gone, hand its groups over. Ends when the registry is dropped.
async fn run_leader_watch(inner: std::sync::Weak<Inner>) {
    let (gone_tx, mut gone_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut watching: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(LEADER_WATCH_SCAN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_scan = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(dead) = gone_rx.recv() => {
                let Some(inner) = inner.upgrade() else { break };
                watching.remove(&dead);
                Copysets { inner }.leader_gone(dead).await;
                continue;
            }
        }
        let Some(inner) = inner.upgrade() else { break };
        let me = Copysets { inner };
        // A scan long overdue means this process itself was stalled (stopped, starved):
        // the silence it measured is its own, not its leaders'. Nudge from the next scan.
        let stalled = last_scan.elapsed() > 4 * LEADER_WATCH_SCAN;
        last_scan = std::time::Instant::now();
        if !stalled {
            me.nudge_silent_groups().await;
        }
        let local = node_id(me.inner.local.id);
        let views = me.group_views();
        let leaders = leader_watch::watched_leaders(
            local,
            &views.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(),
        );
        watching.retain(|node, task| {
            let keep = leaders.contains(node) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for node in leaders {
            if watching.contains_key(&node) {
                continue;
            }
            // Followers need not have dialled their leader yet: tell the net its address.
            if let Some(addr) = views
                .iter()
                .find(|(v, _)| v.leader == Some(node))
                .and_then(|(_, a)| *a)
            {
                me.inner.net.learn(&addr);
            }
            let gone = me.inner.net.gone(node);
            let tx = gone_tx.clone();
            watching.insert(
                node,
                tokio::spawn(async move {
                    gone.await;
                    let _ = tx.send(node);
                }),
            );
        }
    }
    for (_, task) in watching {
        task.abort();
    }
}

/// How often the leader watch looks for new leaders to watch.
const LEADER_WATCH_SCAN: Duration = Duration::from_millis(250);

/// Whom a leader that must stop hands its group to: among the other voters, preferring
/// those that have acknowledged a heartbeat or an append, the one whose log matches the
/// most of the leader's, lowest id on ties. `None` when the metrics are not a leader's or
/// there is no other voter.
pub fn handover_target(m: &RaftMetrics<C>) -> Option<u64> {
    let replication = m.replication.as_ref()?;
    let fresh = |id: u64| {
        m.heartbeat
            .as_ref()
            .and_then(|h| h.get(&id))
            .and_then(|t| t.as_ref())
            .is_some()
    };
    m.membership_config
        .membership()
        .voter_ids()
        .filter(|&v| v != m.id)
        .map(|v| {
            let matched = replication.get(&v).cloned().flatten().map(|l| l.index);
            (fresh(v), matched, std::cmp::Reverse(v))
        })
        .max()
        .map(|(_, _, std::cmp::Reverse(v))| v)
}

/// Every copyset of this chunkserver. Cheap to clone.
#[derive(Clone)]
pub struct Copysets {
    inner: Arc<Inner>,
}

fn not_found(group: GroupId) -> ChunkError {
    ChunkError::CopysetNotFound { group }
}

/// Map a storage error to the chunk service's reply.
pub fn chunk_error(e: ChunkServerError) -> ChunkError {
    match e {
        ChunkServerError::ChunkNotFound { chunk, .. } => ChunkError::ChunkNotFound { chunk },
        ChunkServerError::BadRange { .. } => ChunkError::InvalidRequest {
            reason: InvalidReason::OutOfRange,
        },
        ChunkServerError::NoSpace { .. } => ChunkError::NoSpace,
        ChunkServerError::Disk { source, .. } => ChunkError::DiskError {
            errno: source.raw_os_error().unwrap_or(libc::EIO),
        },
        ChunkServerError::Fenced => ChunkError::DiskError { errno: libc::EIO },
        _ => ChunkError::Unavailable,
    }
}

impl Copysets {
    /// Open the registry and restart every copyset that has state in the WAL.
    pub async fn open(p: CopysetsParams) -> Result<Self, ChunkServerError> {
        let raft_config =
            Arc::new(
                p.config
                    .to_openraft()
                    .map_err(|e| ChunkServerError::RaftStart {
                        group: GroupId::NONE,
                        reason: e.to_string(),
                    })?,
            );
        let router = Router::new(
            p.local,
            p.net.clone(),
            Duration::from_millis(p.config.unreachable_backoff_ms),
            usize::try_from(p.config.max_append_bytes).unwrap_or(usize::MAX),
        );
        let mut fences: Vec<Arc<DiskFence>> = Vec::new();
        for f in [p.store.disk_fence(), p.log.disk_fence()]
            .into_iter()
            .flatten()
        {
            if !fences.iter().any(|g| Arc::ptr_eq(g, &f)) {
                fences.push(f);
            }
        }
        let me = Copysets {
            inner: Arc::new(Inner {
                local: p.local,
                log: p.log,
                store: p.store,
                net: p.net,
                config: p.config,
                raft_config,
                router,
                groups: RwLock::new(HashMap::new()),
                lifecycle: tokio::sync::Mutex::new(()),
                fences: fences.clone(),
            }),
        };
        let mut groups = me.inner.log.groups();
        groups.sort();
        for group in groups {
            let cs = me.start(group).await?;
            me.inner.groups.write().insert(group, cs);
        }
        tracing::info!(
            copysets = me.inner.groups.read().len(),
            "copysets restarted"
        );
        if me.inner.config.leader_watch {
            tokio::spawn(run_leader_watch(Arc::downgrade(&me.inner)));
        }
        tokio::spawn(run_fence_watch(Arc::downgrade(&me.inner), fences));
        Ok(me)
    }

    /// `DiskError` once the disk is fenced (an I/O error on it): nothing is served from it.
    pub fn fenced(&self) -> Option<ChunkError> {
        self.inner
            .fences
            .iter()
            .find_map(|f| f.cause())
            .map(|c| ChunkError::DiskError { errno: c.errno })
    }

    fn check_fence(&self) -> Result<(), ChunkError> {
        self.fenced().map_or(Ok(()), Err)
    }

    /// The disk failed: stop every raft of it (nothing more is appended, acknowledged,
    /// applied or voted here), then, for each group this replica led, tell the other
    /// voters to elect the most up-to-date of them at once instead of after an election
    /// timeout. The replicas stay registered: requests for them get `DiskError` (so a
    /// client asks another peer) and their status shows them shut down.
    async fn fence_off(&self) {
        let groups: Vec<Arc<Copyset>> = self.inner.groups.read().values().cloned().collect();
        let local = node_id(self.inner.local.id);
        let stops = groups.iter().map(|cs| async move {
            let m = cs.metrics();
            if let Err(e) = cs.raft.shutdown().await {
                tracing::debug!(group = %cs.group, error = %e, "raft already stopped");
            }
            (cs.group, m)
        });
        let led: Vec<(GroupId, RaftMetrics<C>)> = futures::future::join_all(stops)
            .await
            .into_iter()
            .filter(|(_, m)| m.current_leader == Some(local))
            .collect();
        let handovers = led.iter().map(|(group, m)| self.hand_over(*group, m));
        futures::future::join_all(handovers).await;
        tracing::warn!(
            copysets = groups.len(),
            handed_over = led.len(),
            "copysets fenced off the failed disk"
        );
    }

    /// Ask the other voters of `group` (led here, with last metrics `m`) to elect a
    /// successor now. Best effort: if it fails, they elect one after the timeout.
    async fn hand_over(&self, group: GroupId, m: &RaftMetrics<C>) {
        let Some(to) = handover_target(m) else {
            return;
        };
        let req = TransferLeaderRequest::<C>::new(m.vote, to, None);
        let Ok(body) = codec::encode(&req) else {
            return;
        };
        let body = Bytes::from(body);
        let voters: Vec<PeerAddr> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|&v| v != m.id)
            .filter_map(|v| m.membership_config.get_node(&v).copied())
            .collect();
        let sends = voters.iter().map(|peer| {
            self.inner.net.learn(peer);
            self.inner.net.call(
                node_id(peer.id),
                group,
                RaftMsgKind::TransferLeader,
                crate::copyset::network::Lane::Heartbeat,
                body.clone(),
                self.inner.config.rpc_timeout(),
            )
        });
        for (peer, r) in voters.iter().zip(futures::future::join_all(sends).await) {
            if let Err(e) = r {
                tracing::debug!(%group, peer = %peer.id, error = %e, "hand-over message not delivered");
            }
        }
        tracing::info!(%group, successor = to, "fenced leader handed the group over");
    }

    /// What the leader watch needs of every local replica.
    fn group_views(&self) -> Vec<(GroupView, Option<PeerAddr>)> {
        let groups: Vec<Arc<Copyset>> = self.inner.groups.read().values().cloned().collect();
        groups
            .iter()
            .map(|cs| {
                let m = cs.metrics();
                let mem = m.membership_config.membership();
                let leader_addr = m.current_leader.and_then(|l| mem.get_node(&l).copied());
                let view = GroupView {
                    group: cs.group,
                    leader: m.current_leader,
                    voters: mem.voter_ids().collect(),
                };
                (view, leader_addr)
            })
            .collect()
    }

    /// Start a pre-vote in every group whose leader has been silent past its lease (see
    /// [`leader_watch::leader_silent`]): a hung leader is replaced about one lease after
    /// it went silent instead of up to an election timeout later.
    async fn nudge_silent_groups(&self) {
        if self.fenced().is_some() {
            return;
        }
        let lease = Duration::from_millis(self.inner.config.election_timeout_max_ms);
        let slack = Duration::from_millis(self.inner.config.heartbeat_interval_ms);
        let groups: Vec<Arc<Copyset>> = self.inner.groups.read().values().cloned().collect();
        for cs in groups {
            let silent_for = cs.leader_contact.lock().map(|t| t.elapsed());
            let m = cs.metrics();
            let voting_follower = m.state == ServerState::Follower
                && m.current_leader.is_some_and(|l| l != m.id)
                && m.membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == m.id);
            if !leader_watch::leader_silent(voting_follower, silent_for, lease, slack) {
                continue;
            }
            tracing::info!(group = %cs.group, ?silent_for, "leader silent past its lease: starting a pre-vote");
            if let Err(e) = cs.raft.trigger().elect(true).await {
                tracing::warn!(group = %cs.group, error = %e, "pre-vote trigger failed");
            }
        }
    }

    /// Chunkserver `dead`'s process is gone: hand each group it led over to the agreed
    /// successor (see [`crate::copyset::leader_watch`]).
    async fn leader_gone(&self, dead: u64) {
        if self.fenced().is_some() {
            return;
        }
        let local = node_id(self.inner.local.id);
        let views: Vec<GroupView> = self.group_views().into_iter().map(|(v, _)| v).collect();
        for h in leader_watch::handoffs(local, dead, &views) {
            let Some(cs) = self.get(h.group) else {
                continue;
            };
            let m = cs.metrics();
            // Re-check on the live state: the group may have moved on meanwhile.
            if m.current_leader != Some(dead) {
                continue;
            }
            let req = TransferLeaderRequest::new(m.vote, h.to, None);
            match cs.raft.handle_transfer_leader(req).await {
                Ok(Ok(())) => tracing::info!(
                    group = %h.group, dead, successor = h.to,
                    "leader process gone: handing the group over"
                ),
                Ok(Err(e)) => tracing::debug!(group = %h.group, error = %e, "hand-over refused"),
                Err(e) => tracing::warn!(group = %h.group, error = %e, "hand-over failed"),
            }
        }
    }

    /// This chunkserver's address.
    pub fn local(&self) -> PeerAddr {
        self.inner.local
    }

    async fn start(&self, group: GroupId) -> Result<Arc<Copyset>, ChunkServerError> {
        let i = &self.inner;
        let meta = GroupMeta::load(i.log.clone(), group)?;
        let log_store = GroupLogStore::new(i.log.clone(), group, meta.clone());
        let fetcher = ChunkFetcher {
            net: i.net.clone(),
            timeout: i.config.rpc_timeout(),
            retry_after: Duration::from_millis(i.config.unreachable_backoff_ms),
            give_up_after: Duration::from_millis(i.config.snapshot_install_timeout_ms),
        };
        let sm = CopysetSm::new(
            group,
            i.store.clone(),
            meta,
            fetcher,
            i.config.snapshot_piece_bytes,
        );
        let net = CopysetNetwork::new(i.router.clone(), group);
        let raft = Raft::new(
            node_id(i.local.id),
            i.raft_config.clone(),
            net,
            log_store,
            sm,
        )
        .await
        .map_err(|e| ChunkServerError::RaftStart {
            group,
            reason: e.to_string(),
        })?;
        Ok(Arc::new(Copyset {
            group,
            raft,
            conf_change: tokio::sync::Mutex::new(()),
            leader_contact: parking_lot::Mutex::new(None),
        }))
    }

    /// Create a replica of `group`. Creating an existing copyset succeeds.
    ///
    /// - `peers` names this chunkserver: they are the initial voters of a new group. The
    ///   peer with the lowest id initializes it; the others wait to be contacted.
    /// - `peers` does not name it (join-only): they are the voters of an existing group
    ///   this replica is about to be added to (as a learner, then a voter). It never
    ///   initializes, whatever its id, and waits for the leader's log or snapshot.
    pub async fn create(&self, group: GroupId, peers: &[PeerAddr]) -> Result<(), ChunkError> {
        let bad = ChunkError::InvalidRequest {
            reason: InvalidReason::BadPeers,
        };
        let ids: BTreeSet<u64> = peers.iter().map(|p| node_id(p.id)).collect();
        if group == GroupId::NONE || peers.is_empty() || ids.len() != peers.len() {
            return Err(bad);
        }
        let joining = !ids.contains(&node_id(self.inner.local.id));
        self.check_fence()?;
        let _guard = self.inner.lifecycle.lock().await;
        if self.get(group).is_some() {
            return Ok(());
        }
        save_initial_vote(&*self.inner.log, group, node_id(self.inner.local.id))
            .map_err(chunk_error)?;
        let cs = self.start(group).await.map_err(|e| {
            tracing::warn!(%group, error = %e, "copyset start failed");
            chunk_error(e)
        })?;
        let initializer = !joining && ids.first().copied() == Some(node_id(self.inner.local.id));
        if initializer && !cs.raft.is_initialized().await.unwrap_or(true) {
            let members: BTreeMap<u64, PeerAddr> =
                peers.iter().map(|p| (node_id(p.id), *p)).collect();
            if let Err(e) = cs.raft.initialize(members).await {
                tracing::warn!(%group, error = %e, "copyset initialize refused");
            }
        }
        self.inner.groups.write().insert(group, cs);
        tracing::info!(%group, ?ids, initializer, joining, "copyset created");
        Ok(())
    }

    /// Delete the replica of `group` here: stop it and drop its log and chunks.
    pub async fn delete(&self, group: GroupId) -> Result<(), ChunkError> {
        let _guard = self.inner.lifecycle.lock().await;
        let cs = self.inner.groups.write().remove(&group);
        let Some(cs) = cs else {
            return Err(not_found(group));
        };
        if let Err(e) = cs.raft.shutdown().await {
            tracing::warn!(%group, error = %e, "raft shutdown failed");
        }
        self.inner.log.remove_group(group).map_err(chunk_error)?;
        self.inner
            .store
            .remove_group(group)
            .await
            .map_err(chunk_error)?;
        tracing::info!(%group, "copyset deleted");
        Ok(())
    }

    /// The replica of `group`, if hosted here.
    pub fn get(&self, group: GroupId) -> Option<Arc<Copyset>> {
        self.inner.groups.read().get(&group).cloned()
    }

    /// Groups hosted here.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut v: Vec<_> = self.inner.groups.read().keys().copied().collect();
        v.sort();
        v
    }

    /// The replica of `group`, ready to serve: `DiskError` once the disk is fenced.
    fn lookup(&self, group: GroupId) -> Result<Arc<Copyset>, ChunkError> {
        let cs = self.get(group).ok_or(not_found(group))?;
        self.check_fence()?;
        Ok(cs)
    }

    fn redirect(&self, cs: &Copyset, f: Option<&ForwardToLeader<C>>) -> ChunkError {
        let leader = match f {
            Some(f) => f.leader_node.or_else(|| {
                f.leader_id
                    .and_then(|id| cs.metrics().membership_config.get_node(&id).copied())
            }),
            None => self.leader_addr(&cs.metrics()),
        };
        ChunkError::Redirect {
            group: cs.group,
            leader,
        }
    }

    fn leader_addr(&self, m: &RaftMetrics<C>) -> Option<PeerAddr> {
        m.current_leader
            .and_then(|id| m.membership_config.get_node(&id).copied())
    }

    fn write_error(&self, cs: &Copyset, e: RaftError<C, ClientWriteError<C>>) -> ChunkError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f))
            | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                self.redirect(cs, Some(&f))
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(_)) => {
                ChunkError::ConfChangeInProgress { group: cs.group }
            }
            // A fenced disk stopped the raft (a failed WAL append or apply): say why.
            _ if self.fenced().is_some() => self.fenced().unwrap_or(ChunkError::Unavailable),
            other => {
                tracing::warn!(group = %cs.group, error = %other, "raft write failed");
                ChunkError::Unavailable
            }
        }
    }

    async fn propose(&self, group: GroupId, op: ChunkOp) -> Result<WriteChunkOk, ChunkError> {
        let cs = self.lookup(group)?;
        match cs.raft.client_write(op).await {
            // Not applied: the client had abandoned the request (or the dedupe table
            // forgot it), so it may not be acknowledged.
            Ok(resp) if resp.data == ChunkOpResult::Stale => Err(ChunkError::InvalidRequest {
                reason: InvalidReason::StaleRequest,
            }),
            Ok(resp) => Ok(WriteChunkOk {
                index: resp.log_id.index,
            }),
            Err(e) => Err(self.write_error(&cs, e)),
        }
    }

    /// Replicate a write that carries no request id (never deduplicated: a retry is
    /// applied again). Clients use [`Copysets::write_with_id`].
    pub async fn write(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        data: Bytes,
    ) -> Result<WriteChunkOk, ChunkError> {
        self.write_with_id(group, chunk, offset, data, RequestId::NONE)
            .await
    }

    /// Replicate the client write `req`; answers once it is committed and applied here
    /// (the leader). Applied at most once per id: a retry whose earlier attempt was
    /// applied answers success without writing again.
    /// A write that would create a chunk when the chunk pool is exhausted is refused with
    /// `NoSpace` before anything is proposed (see [`ChunkStore::reserve_chunk`]).
    pub async fn write_with_id(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        data: Bytes,
        req: RequestId,
    ) -> Result<WriteChunkOk, ChunkError> {
        let cs = self.lookup(group)?;
        let state = cs.raft.metrics().borrow_watched().state;
        if state != ServerState::Leader {
            // Never answer NoSpace for our disk when another replica leads.
            return Err(self.redirect(&cs, None));
        }
        let _space = self
            .inner
            .store
            .reserve_chunk(group, chunk)
            .map_err(chunk_error)?;
        self.propose(
            group,
            ChunkOp::Write {
                chunk,
                offset,
                data,
                req,
            },
        )
        .await
    }

    /// Replicate a chunk delete that carries no request id (never deduplicated).
    pub async fn delete_chunk(&self, group: GroupId, chunk: ChunkId) -> Result<(), ChunkError> {
        self.delete_chunk_with_id(group, chunk, RequestId::NONE)
            .await
    }

    /// Replicate the client's chunk delete `req` (applied at most once per id).
    pub async fn delete_chunk_with_id(
        &self,
        group: GroupId,
        chunk: ChunkId,
        req: RequestId,
    ) -> Result<(), ChunkError> {
        self.propose(group, ChunkOp::Delete { chunk, req })
            .await
            .map(|_| ())
    }

    /// A linearizable read on the leader: under its lease when valid, else after a
    /// read-index round; `Redirect` when this replica does not lead. `None`: no such chunk.
    pub async fn read(
        &self,
        group: GroupId,
        chunk: ChunkId,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>, ChunkError> {
        let cs = self.lookup(group)?;
        let lin = match cs.raft.get_read_linearizer(ReadPolicy::LeaseRead).await {
            Ok(l) => l,
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                return Err(self.redirect(&cs, Some(&f)))
            }
            Err(_) => match cs.raft.get_read_linearizer(ReadPolicy::ReadIndex).await {
                Ok(l) => l,
                Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                    return Err(self.redirect(&cs, Some(&f)))
                }
                Err(e) => {
                    tracing::debug!(%group, error = %e, "read index failed");
                    return Err(ChunkError::Unavailable);
                }
            },
        };
        match lin
            .try_await_ready(&cs.raft, Some(self.inner.config.rpc_timeout()))
            .await
        {
            Ok(Ok(_)) => {}
            _ => return Err(ChunkError::Unavailable),
        }
        self.inner
            .store
            .read(group, chunk, offset, len)
            .await
            .map_err(chunk_error)
    }

    /// Who leads `group`, as this replica knows it.
    pub fn leader(&self, group: GroupId) -> Result<LeaderInfo, ChunkError> {
        let cs = self.lookup(group)?;
        let m = cs.metrics();
        Ok(LeaderInfo {
            leader: self.leader_addr(&m),
            epoch: epoch_of(&m),
        })
    }

    /// The replica's raft state.
    /// Answered on a fenced disk too (the role shows the raft shut down).
    pub fn status(&self, group: GroupId) -> Result<CopysetStatusOk, ChunkError> {
        let cs = self.get(group).ok_or(not_found(group))?;
        let m = cs.metrics();
        let mem = m.membership_config.membership();
        let voters: BTreeSet<u64> = mem.voter_ids().collect();
        let role = match m.state {
            ServerState::Leader => RaftRole::Leader,
            ServerState::Candidate => RaftRole::Candidate,
            ServerState::Learner => RaftRole::Learner,
            ServerState::Follower if voters.contains(&m.id) => RaftRole::Follower,
            ServerState::Follower => RaftRole::Learner,
            ServerState::Shutdown => RaftRole::Shutdown,
        };
        let addr = |id: u64| mem.get_node(&id).copied();
        Ok(CopysetStatusOk {
            role,
            term: m.current_term,
            leader: m.current_leader.map(|l| ChunkServerId(l as u32)),
            epoch: epoch_of(&m),
            peers: voters.iter().filter_map(|&id| addr(id)).collect(),
            learners: mem.learner_ids().filter_map(addr).collect(),
            last_index: m.last_log_index.unwrap_or(0),
            committed: m.local_committed.map(|l| l.index).unwrap_or(0),
            applied: m.last_applied.map(|l| l.index).unwrap_or(0),
        })
    }

    /// Check the caller's epoch and leadership before a membership change.
    fn conf_precheck(&self, cs: &Copyset, sent: Epoch) -> Result<RaftMetrics<C>, ChunkError> {
        let m = cs.metrics();
        if m.state != ServerState::Leader {
            return Err(self.redirect(cs, None));
        }
        let current = epoch_of(&m);
        if sent < current {
            return Err(ChunkError::EpochTooOld {
                group: cs.group,
                sent,
                current,
            });
        }
        Ok(m)
    }

    /// Add `peer` as a learner and wait until it is within the catch-up margin of the
    /// leader's log (`add_learner(blocking)` alone only waits for the lag threshold).
    async fn add_caught_up_learner(&self, cs: &Copyset, peer: PeerAddr) -> Result<(), ChunkError> {
        let id = node_id(peer.id);
        cs.raft
            .add_learner(id, peer, true)
            .await
            .map_err(|e| self.write_error(cs, e))?;
        let margin = self.inner.config.catch_up_margin;
        let waited = cs
            .raft
            .wait(Some(self.inner.config.catch_up_timeout()))
            .metrics(
                |m| {
                    let last = m.last_log_index.unwrap_or(0);
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id).cloned().flatten())
                        .is_some_and(|matched| matched.index + margin >= last)
                },
                "learner caught up",
            )
            .await;
        if let Err(e) = waited {
            tracing::warn!(group = %cs.group, peer = id, error = %e, "learner did not catch up");
            return Err(ChunkError::Unavailable);
        }
        Ok(())
    }

    async fn change(
        &self,
        cs: &Copyset,
        change: ChangeMembers<u64, PeerAddr>,
    ) -> Result<ConfChangeOk, ChunkError> {
        let resp = cs
            .raft
            .change_membership(change, false)
            .await
            .map_err(|e| self.write_error(cs, e))?;
        Ok(ConfChangeOk {
            epoch: Epoch(resp.log_id.index),
        })
    }

    /// Add a voter: learner first, promoted once caught up. Sent to the leader.
    pub async fn add_peer(
        &self,
        group: GroupId,
        epoch: Epoch,
        peer: PeerAddr,
    ) -> Result<ConfChangeOk, ChunkError> {
        let cs = self.lookup(group)?;
        let _g = cs
            .conf_change
            .try_lock()
            .map_err(|_| ChunkError::ConfChangeInProgress { group })?;
        let m = self.conf_precheck(&cs, epoch)?;
        if m.membership_config
            .voter_ids()
            .any(|v| v == node_id(peer.id))
        {
            return Ok(ConfChangeOk {
                epoch: epoch_of(&m),
            });
        }
        self.add_caught_up_learner(&cs, peer).await?;
        self.change(
            &cs,
            ChangeMembers::AddVoterIds(BTreeSet::from([node_id(peer.id)])),
        )
        .await
    }

    /// Remove a voter. Sent to the leader.
    pub async fn remove_peer(
        &self,
        group: GroupId,
        epoch: Epoch,
        peer: ChunkServerId,
    ) -> Result<ConfChangeOk, ChunkError> {
        let cs = self.lookup(group)?;
        let _g = cs
            .conf_change
            .try_lock()
            .map_err(|_| ChunkError::ConfChangeInProgress { group })?;
        let m = self.conf_precheck(&cs, epoch)?;
        let voters: BTreeSet<u64> = m.membership_config.voter_ids().collect();
        if !voters.contains(&node_id(peer)) {
            return Ok(ConfChangeOk {
                epoch: epoch_of(&m),
            });
        }
        if voters.len() == 1 {
            return Err(ChunkError::InvalidRequest {
                reason: InvalidReason::BadPeers,
            });
        }
        self.change(
            &cs,
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id(peer)])),
        )
        .await
    }

    /// Replace voter `remove` by `add` (learner first, then one joint change). Sent to the
    /// leader.
    pub async fn change_peer(
        &self,
        group: GroupId,
        epoch: Epoch,
        remove: ChunkServerId,
        add: PeerAddr,
    ) -> Result<ConfChangeOk, ChunkError> {
        let cs = self.lookup(group)?;
        let _g = cs
            .conf_change
            .try_lock()
            .map_err(|_| ChunkError::ConfChangeInProgress { group })?;
        let m = self.conf_precheck(&cs, epoch)?;
        let mut voters: BTreeSet<u64> = m.membership_config.voter_ids().collect();
        if !voters.contains(&node_id(remove)) || voters.contains(&node_id(add.id)) {
            return Err(ChunkError::InvalidRequest {
                reason: InvalidReason::BadPeers,
            });
        }
        self.add_caught_up_learner(&cs, add).await?;
        voters.remove(&node_id(remove));
        voters.insert(node_id(add.id));
        self.change(&cs, ChangeMembers::ReplaceAllVoters(voters))
            .await
    }

    /// Force the voters of `group` on this replica to `peers` (the copyset lost its
    /// majority for good; see [`reset`]). Refused while a leader is alive unless
    /// `ignore_leader`. Stops the raft node, rewrites its vote and log, starts it again and
    /// makes it campaign; when it is the only voter, waits (within the election bound)
    /// until it leads. Returns the new epoch.
    pub async fn reset_peers(
        &self,
        group: GroupId,
        peers: &[ChunkServerId],
        ignore_leader: bool,
    ) -> Result<ConfChangeOk, ResetPeersError> {
        let _life = self.inner.lifecycle.lock().await;
        let cs = self.lookup(group)?;
        let _conf = cs
            .conf_change
            .try_lock()
            .map_err(|_| ChunkError::ConfChangeInProgress { group })?;
        let m = cs.metrics();
        let local = self.inner.local.id;
        let mem = m.membership_config.membership();
        let known: BTreeMap<u64, PeerAddr> = mem.nodes().map(|(id, n)| (*id, *n)).collect();
        let voters = reset::check_peers(group, local, peers, &known)?;
        if m.last_log_index.is_none() {
            return Err(ResetPeersError::NotInitialized { group });
        }
        let view = LeaderView {
            local: node_id(local),
            state: m.state,
            leader: m.current_leader,
            since_quorum_ack: m
                .last_quorum_acked
                .as_ref()
                .map(|t| openraft::Instant::elapsed(&**t)),
            since_leader_contact: cs.leader_contact.lock().map(|t| t.elapsed()),
        };
        if let Some(leader) = reset::live_leader(&view, self.inner.config.election_bound()) {
            let leader = ChunkServerId(u32::try_from(leader).unwrap_or(u32::MAX));
            if !ignore_leader {
                return Err(ResetPeersError::LeaderAlive { group, leader });
            }
            tracing::warn!(%group, %leader, "resetting peers although the leader looks alive (ignore-leader)");
        }
        let old: Vec<u64> = mem.voter_ids().collect();
        let new: Vec<u64> = voters.keys().copied().collect();
        tracing::warn!(
            %group, ?old, ?new, term = m.current_term, last_index = ?m.last_log_index,
            "forcing copyset membership: writes only the lost replicas had are gone"
        );
        if let Err(e) = cs.raft.shutdown().await {
            tracing::debug!(%group, error = %e, "raft already stopped");
        }
        self.inner.groups.write().remove(&group);
        let written = self.write_reset(group, &voters).await;
        // Start the replica again whatever happened: with the forced membership, or as it
        // was if nothing was written.
        let restarted = match self.start(group).await {
            Ok(cs) => cs,
            Err(e) => {
                tracing::error!(%group, error = %e, "copyset restart after reset failed");
                return Err(chunk_error(e).into());
            }
        };
        self.inner.groups.write().insert(group, restarted.clone());
        let plan = written?;
        if let Err(e) = restarted.raft.trigger().elect(false).await {
            tracing::warn!(%group, error = %e, "campaign after reset not started");
        }
        if voters.len() == 1 {
            let led = restarted
                .raft
                .wait(Some(self.inner.config.election_bound()))
                .state(ServerState::Leader, "reset replica leads")
                .await;
            if let Err(e) = led {
                tracing::warn!(%group, error = %e, "reset replica does not lead yet");
            }
        }
        tracing::warn!(%group, epoch = %plan.epoch(), ?new, "copyset membership forced");
        Ok(ConfChangeOk {
            epoch: plan.epoch(),
        })
    }

    /// Read the stopped replica's vote and last log id, plan the reset and write it.
    async fn write_reset(
        &self,
        group: GroupId,
        voters: &BTreeMap<u64, PeerAddr>,
    ) -> Result<reset::ResetPlan, ResetPeersError> {
        use openraft::storage::{RaftLogReader, RaftLogStorage};
        let i = &self.inner;
        let storage = |e: std::io::Error| {
            tracing::error!(%group, error = %e, "reading the replica's raft state failed");
            ResetPeersError::Chunk(ChunkError::Unavailable)
        };
        let meta = GroupMeta::load(i.log.clone(), group).map_err(chunk_error)?;
        let mut store = GroupLogStore::new(i.log.clone(), group, meta);
        let vote = store.read_vote().await.map_err(storage)?;
        let last = store.get_log_state().await.map_err(storage)?.last_log_id;
        let plan = reset::plan(group, node_id(i.local.id), vote, last, voters)?;
        reset::write(&*i.log, group, &plan)
            .await
            .map_err(chunk_error)?;
        Ok(plan)
    }

    /// Move leadership to `to`; returns once `to` leads (or the election bound passed).
    pub async fn transfer_leader(
        &self,
        group: GroupId,
        to: ChunkServerId,
    ) -> Result<LeaderInfo, ChunkError> {
        let cs = self.lookup(group)?;
        let m = cs.metrics();
        let to = node_id(to);
        if m.current_leader == Some(to) {
            return self.leader(group);
        }
        if m.state != ServerState::Leader {
            return Err(self.redirect(&cs, None));
        }
        if !m.membership_config.voter_ids().any(|v| v == to) {
            return Err(ChunkError::InvalidRequest {
                reason: InvalidReason::BadPeers,
            });
        }
        // A leader hands over by stepping down; if the target is dead or cut off it never
        // campaigns and the group stays leaderless until an election timeout (and a stream
        // of such operators keeps it so). Only hand over to a peer that acknowledged a
        // heartbeat or an append within a few heartbeat intervals.
        let fresh_within =
            std::time::Duration::from_millis(3 * self.inner.config.heartbeat_interval_ms);
        let acked_recently = m
            .heartbeat
            .as_ref()
            .and_then(|h| h.get(&to))
            .and_then(|t| t.as_ref())
            .is_some_and(|t| openraft::Instant::elapsed(&**t) <= fresh_within);
        if !acked_recently {
            return Err(ChunkError::Unavailable);
        }
        cs.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|_| ChunkError::Unavailable)?;
        cs.raft
            .wait(Some(self.inner.config.election_bound()))
            .current_leader(to, "leader transferred")
            .await
            .map_err(|_| ChunkError::Unavailable)?;
        self.leader(group)
    }

    /// Serve one raft message for `group` from another chunkserver (the server side of
    /// [`RaftNet`]); the body and reply are encoded with [`codec`].
    pub async fn handle_raft(
        &self,
        group: GroupId,
        kind: RaftMsgKind,
        body: &[u8],
    ) -> Result<Bytes, WireRaftError> {
        let cs = self
            .get(group)
            .ok_or(WireRaftError::CopysetNotFound { group })?;
        let bad = |e: codec::CodecError| WireRaftError::Raft {
            reason: e.to_string(),
        };
        let fatal = |e: &dyn std::fmt::Display| WireRaftError::Raft {
            reason: e.to_string(),
        };
        match kind {
            RaftMsgKind::Append => {
                let req: AppendEntriesRequest<C> = codec::decode(body).map_err(bad)?;
                let resp = cs.raft.append_entries(req).await.map_err(|e| fatal(&e))?;
                if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
                    *cs.leader_contact.lock() = Some(std::time::Instant::now());
                }
                codec::encode(&resp).map(Bytes::from).map_err(bad)
            }
            RaftMsgKind::Vote => {
                let req: VoteRequest<C> = codec::decode(body).map_err(bad)?;
                let resp = cs.raft.vote(req).await.map_err(|e| fatal(&e))?;
                codec::encode(&resp).map(Bytes::from).map_err(bad)
            }
            RaftMsgKind::PreVote => {
                let req: VoteRequest<C> = codec::decode(body).map_err(bad)?;
                let resp = cs.raft.pre_vote(req).await.map_err(|e| fatal(&e))?;
                codec::encode(&resp).map(Bytes::from).map_err(bad)
            }
            RaftMsgKind::TransferLeader => {
                let req: TransferLeaderRequest<C> = codec::decode(body).map_err(bad)?;
                let resp = cs
                    .raft
                    .handle_transfer_leader(req)
                    .await
                    .map_err(|e| fatal(&e))?;
                codec::encode(&resp).map(Bytes::from).map_err(bad)
            }
            RaftMsgKind::Snapshot => {
                let offer: SnapshotOffer = codec::decode(body).map_err(bad)?;
                let snapshot = SnapshotOf::<C, SnapshotData> {
                    meta: offer.meta,
                    snapshot: SnapshotData {
                        source: Some(offer.source),
                        chunks: offer.chunks,
                        sessions: offer.sessions,
                    },
                };
                let resp = cs
                    .raft
                    .install_full_snapshot(offer.vote, snapshot)
                    .await
                    .map_err(|e| fatal(&e))?;
                codec::encode(&resp).map(Bytes::from).map_err(bad)
            }
            RaftMsgKind::SnapshotChunk => {
                let req: ChunkPieceRequest = codec::decode(body).map_err(bad)?;
                let data = self
                    .inner
                    .store
                    .read(group, req.chunk, req.offset, req.len)
                    .await
                    .map_err(|e| fatal(&e))?;
                Ok(encode_piece(data.as_deref()))
            }
        }
    }

    /// Stop every copyset (the log and chunks stay).
    pub async fn shutdown(&self) {
        let all: Vec<_> = self.inner.groups.write().drain().map(|(_, v)| v).collect();
        for cs in all {
            if let Err(e) = cs.raft.shutdown().await {
                tracing::warn!(group = %cs.group, error = %e, "raft shutdown failed");
            }
        }
    }
}
