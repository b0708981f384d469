//! The scheduler: a pure function from a topology snapshot, the pending operators and
//! the time to new operators.
//!
//! Rules, in priority order (each copyset gets at most one operator at a time, and each
//! chunkserver takes part in at most one operator at a time — as the executing leader or
//! as the peer being added):
//! 1. **Recovery**: a copyset with an offline peer gets `ChangePeer { remove: offline, add }`
//!    where `add` is an online chunkserver of the same physical pool, in the lost peer's
//!    zone or in a zone the copyset does not use yet, with the fewest copysets. Skipped
//!    when more than `failure_tolerance` chunkservers of the lost peer's server are
//!    offline at once (a server-wide outage: better wait than move a whole host), when
//!    offline peers are not a minority, or when the leader is unknown or not online.
//! 2. **Replica count**: too few peers → `AddPeer`; too many → `RemovePeer` (an offline
//!    one first, else the most loaded non-leader).
//!    Drain (rule 2b): a copyset at its replica count with a draining peer and every
//!    other peer online first moves the leadership off a draining leader
//!    (`TransferLeader` to the least-leading fresh peer), then gets `ChangePeer { remove:
//!    draining, add }` with a target picked as for recovery (same zone first, one replica
//!    per zone). The draining chunkserver counts as involved, so it takes part in one
//!    operator at a time; one that goes offline is recovered by rule 1. Draining
//!    chunkservers are never a target (recovery, replica count, balance, leader balance),
//!    and an extra peer to remove is a draining one first.
//! 3. **Copyset balance** (only when 1–2 produced nothing): when the most and least loaded
//!    online chunkservers of a pool differ by more than `balance_slack` copysets, move
//!    one copyset with `ChangePeer`, keeping one replica per zone.
//! 4. **Leader balance**: a chunkserver leading more than `mean + 1` copysets transfers
//!    one leadership to a peer leading fewer than the mean.
//!
//! Operators complete when a later heartbeat shows the copyset past the operator's epoch
//! (or, for a leader transfer, the new leader), and expire after a per-kind timeout.

use crate::topology::{CopysetRecord, OnlineState, Topology};
use basalt_proto::heartbeat::{Operator, OperatorKind};
use basalt_proto::ids::{ChunkServerId, GroupId, PhysicalPoolId};
use basalt_proto::mds::OperatorState;
use basalt_proto::status::PeerAddr;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Scheduler settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// No recovery when more chunkservers than this on one server are offline.
    pub failure_tolerance: usize,
    /// Allowed copyset-count spread between chunkservers of a pool.
    pub balance_slack: usize,
    /// Balance leaders.
    pub leader_balance: bool,
    /// A chunkserver counts as fresh for leader balancing when its last heartbeat is at
    /// most this old, ms.
    pub leader_balance_fresh_ms: u64,
    /// Timeout of a leader transfer, ms.
    pub transfer_timeout_ms: u64,
    /// Timeout of add/remove peer, ms.
    pub add_remove_timeout_ms: u64,
    /// Timeout of change peer, ms.
    pub change_timeout_ms: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            failure_tolerance: 3,
            balance_slack: 2,
            leader_balance: true,
            leader_balance_fresh_ms: 5_000,
            transfer_timeout_ms: 60_000,
            add_remove_timeout_ms: 300_000,
            change_timeout_ms: 1_800_000,
        }
    }
}

impl SchedulerConfig {
    fn timeout_of(&self, k: &OperatorKind) -> u64 {
        match k {
            OperatorKind::TransferLeader(_) => self.transfer_timeout_ms,
            OperatorKind::AddPeer(_) | OperatorKind::RemovePeer(_) => self.add_remove_timeout_ms,
            OperatorKind::ChangePeer { .. } => self.change_timeout_ms,
        }
    }
}

/// An operator in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOp {
    /// The operator.
    pub op: Operator,
    /// When it was issued, ms.
    pub issued_ms: u64,
    /// Chunkservers it occupies (leader, added peer).
    pub involved: Vec<ChunkServerId>,
}

/// Operators in flight, one per copyset.
#[derive(Debug, Clone, Default)]
pub struct OperatorSet {
    ops: BTreeMap<GroupId, PendingOp>,
}

/// Result of [`OperatorSet::reconcile`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Copysets whose operator finished.
    pub completed: Vec<GroupId>,
    /// Copysets whose operator timed out.
    pub timed_out: Vec<GroupId>,
}

impl OperatorSet {
    /// Number in flight.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// None in flight.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The pending operator of a copyset.
    pub fn get(&self, g: GroupId) -> Option<&PendingOp> {
        self.ops.get(&g)
    }

    /// Chunkservers busy with an operator.
    pub fn busy(&self) -> BTreeSet<ChunkServerId> {
        self.ops
            .values()
            .flat_map(|p| p.involved.iter().copied())
            .collect()
    }

    /// Add operators (from [`schedule`]).
    pub fn extend(&mut self, ops: impl IntoIterator<Item = PendingOp>) {
        for p in ops {
            self.ops.insert(p.op.group, p);
        }
    }

    /// Operators for the copysets `leader` currently leads.
    pub fn for_leader(&self, topo: &Topology, leader: ChunkServerId) -> Vec<Operator> {
        self.ops
            .values()
            .filter(|p| topo.copysets.get(&p.op.group).and_then(|c| c.leader) == Some(leader))
            .map(|p| p.op)
            .collect()
    }

    /// Whether an operator is adding `cs` to `group` (its replica is not a stray).
    pub fn adds(&self, group: GroupId, cs: ChunkServerId) -> bool {
        self.ops.get(&group).is_some_and(|p| match p.op.kind {
            OperatorKind::AddPeer(a) | OperatorKind::ChangePeer { add: a, .. } => a.id == cs,
            _ => false,
        })
    }

    /// Drop finished and expired operators.
    pub fn reconcile(&mut self, topo: &Topology, now_ms: u64, cfg: &SchedulerConfig) -> Reconciled {
        let mut r = Reconciled::default();
        self.ops.retain(|g, p| {
            let Some(rec) = topo.copysets.get(g) else {
                r.completed.push(*g);
                return false;
            };
            let done = rec.epoch > p.op.epoch
                || matches!(p.op.kind, OperatorKind::TransferLeader(t) if rec.leader == Some(t));
            if done {
                r.completed.push(*g);
                return false;
            }
            if now_ms.saturating_sub(p.issued_ms) > cfg.timeout_of(&p.op.kind) {
                tracing::warn!(group = %g, op = ?p.op.kind, "operator timed out");
                r.timed_out.push(*g);
                return false;
            }
            true
        });
        r
    }

    /// For `operator ls`.
    pub fn list(&self, now_ms: u64) -> Vec<OperatorState> {
        self.ops
            .values()
            .map(|p| OperatorState {
                op: p.op,
                age_ms: now_ms.saturating_sub(p.issued_ms),
            })
            .collect()
    }
}

struct Ctx<'a> {
    topo: &'a Topology,
    cfg: &'a SchedulerConfig,
    now_ms: u64,
    busy: BTreeSet<ChunkServerId>,
    counts: BTreeMap<ChunkServerId, usize>,
    out: Vec<PendingOp>,
}

impl Ctx<'_> {
    fn online(&self, c: ChunkServerId) -> bool {
        self.topo
            .chunkservers
            .get(&c)
            .is_some_and(|c| c.state == OnlineState::Online && !c.disk.disk_failed)
    }

    /// Online and heard from recently: `Online` alone lags a dead process by up to
    /// `unstable_after_ms`, far too long to hand it a copyset's leadership.
    fn fresh(&self, c: ChunkServerId) -> bool {
        self.online(c)
            && self.topo.chunkservers.get(&c).is_some_and(|x| {
                self.now_ms.saturating_sub(x.last_seen_ms) <= self.cfg.leader_balance_fresh_ms
            })
    }

    /// May receive a replica or a leadership: online and not being retired.
    fn eligible(&self, c: ChunkServerId) -> bool {
        self.online(c) && !self.topo.is_draining(c)
    }

    fn offline(&self, c: ChunkServerId) -> bool {
        self.topo
            .chunkservers
            .get(&c)
            .is_none_or(|c| c.state == OnlineState::Offline || c.disk.disk_failed)
    }

    fn addr(&self, c: ChunkServerId) -> Option<PeerAddr> {
        self.topo.chunkservers.get(&c).map(|x| PeerAddr {
            id: c,
            addr: x.addr,
        })
    }

    /// Best new peer for a copyset of `pool` with `peers`, replacing `lost` (if any).
    fn pick_target(
        &self,
        pool: PhysicalPoolId,
        peers: &[ChunkServerId],
        lost: Option<ChunkServerId>,
    ) -> Option<ChunkServerId> {
        let lost_zone = lost.and_then(|l| self.topo.zone_of(l));
        let used: BTreeSet<_> = peers
            .iter()
            .filter(|p| Some(**p) != lost)
            .filter_map(|p| self.topo.zone_of(*p))
            .collect();
        self.topo
            .chunkservers_in(pool)
            .into_iter()
            .filter(|c| !peers.contains(c) && self.eligible(*c) && !self.busy.contains(c))
            .filter_map(|c| {
                let z = self.topo.zone_of(c)?;
                if used.contains(&z) {
                    return None;
                }
                let other_zone = usize::from(Some(z) != lost_zone);
                Some((
                    (other_zone, self.counts.get(&c).copied().unwrap_or(0), c),
                    c,
                ))
            })
            .min_by_key(|(k, _)| *k)
            .map(|(_, c)| c)
    }

    /// Copysets `c` leads (latest heartbeats), counting leaderships moved this round.
    fn leads(&self, c: ChunkServerId) -> usize {
        let moved_in = self
            .out
            .iter()
            .filter(|p| p.op.kind == OperatorKind::TransferLeader(c))
            .count();
        self.topo
            .copysets
            .values()
            .filter(|r| r.leader == Some(c))
            .count()
            + moved_in
    }

    fn emit(&mut self, op: Operator, involved: Vec<ChunkServerId>) {
        for c in &involved {
            self.busy.insert(*c);
        }
        if let OperatorKind::AddPeer(a) | OperatorKind::ChangePeer { add: a, .. } = op.kind {
            *self.counts.entry(a.id).or_default() += 1;
        }
        if let OperatorKind::RemovePeer(r) | OperatorKind::ChangePeer { remove: r, .. } = op.kind {
            if let Some(n) = self.counts.get_mut(&r) {
                *n = n.saturating_sub(1);
            }
        }
        tracing::info!(group = %op.group, kind = ?op.kind, "operator issued");
        self.out.push(PendingOp {
            op,
            issued_ms: self.now_ms,
            involved,
        });
    }
}

/// New operators for this round.
pub fn schedule(
    topo: &Topology,
    pending: &OperatorSet,
    now_ms: u64,
    cfg: &SchedulerConfig,
) -> Vec<PendingOp> {
    let mut cx = Ctx {
        topo,
        cfg,
        now_ms,
        busy: pending.busy(),
        counts: topo.copyset_counts(),
        out: Vec::new(),
    };
    // Offline chunkservers per server, for the mass-failure guard.
    let mut offline_per_server: BTreeMap<_, usize> = BTreeMap::new();
    for c in topo.chunkservers.values() {
        if c.state == OnlineState::Offline {
            *offline_per_server.entry(c.server).or_default() += 1;
        }
    }
    for rec in topo.copysets.values() {
        if pending.get(rec.group).is_some() {
            continue;
        }
        let Some(lpool) = topo.lpools.get(&rec.group.pool()) else {
            continue;
        };
        let Some(leader) = rec
            .leader
            .filter(|l| rec.peers.contains(l) && cx.online(*l))
        else {
            continue;
        };
        if cx.busy.contains(&leader) {
            continue;
        }
        let epoch = rec.epoch;
        let offline: Vec<ChunkServerId> = rec
            .peers
            .iter()
            .copied()
            .filter(|p| cx.offline(*p))
            .collect();
        let replicas = usize::from(lpool.replicas);
        // 1. recovery
        if let Some(&lost) = offline.first() {
            if offline.len() * 2 >= rec.peers.len() {
                continue;
            }
            let server = topo.chunkservers.get(&lost).map(|c| c.server);
            if server.is_some_and(|s| {
                offline_per_server.get(&s).copied().unwrap_or(0) > cfg.failure_tolerance
            }) {
                continue;
            }
            if rec.peers.len() > replicas {
                // Too many peers anyway: just drop the offline one.
                cx.emit(
                    Operator {
                        group: rec.group,
                        epoch,
                        kind: OperatorKind::RemovePeer(lost),
                    },
                    vec![leader],
                );
                continue;
            }
            if let Some(t) = cx.pick_target(lpool.physical, &rec.peers, Some(lost)) {
                if let Some(add) = cx.addr(t) {
                    cx.emit(
                        Operator {
                            group: rec.group,
                            epoch,
                            kind: OperatorKind::ChangePeer { remove: lost, add },
                        },
                        vec![leader, t],
                    );
                }
            }
            continue;
        }
        // 2. replica count
        if rec.peers.len() < replicas {
            if let Some(add) = cx
                .pick_target(lpool.physical, &rec.peers, None)
                .and_then(|t| cx.addr(t))
            {
                cx.emit(
                    Operator {
                        group: rec.group,
                        epoch,
                        kind: OperatorKind::AddPeer(add),
                    },
                    vec![leader, add.id],
                );
            }
            continue;
        }
        if rec.peers.len() > replicas {
            let victim = rec
                .peers
                .iter()
                .copied()
                .filter(|p| *p != leader)
                .max_by_key(|p| {
                    (
                        topo.is_draining(*p),
                        cx.counts.get(p).copied().unwrap_or(0),
                        *p,
                    )
                });
            if let Some(v) = victim {
                cx.emit(
                    Operator {
                        group: rec.group,
                        epoch,
                        kind: OperatorKind::RemovePeer(v),
                    },
                    vec![leader],
                );
            }
            continue;
        }
        // 2b. drain
        drain_copyset(&mut cx, rec, lpool.physical, leader);
    }
    if cx.out.is_empty() {
        balance_copysets(&mut cx, pending);
    }
    if cfg.leader_balance {
        balance_leaders(&mut cx, pending);
    }
    cx.out
}

/// Rule 2b for one copyset whose leader is online and not busy.
fn drain_copyset(
    cx: &mut Ctx<'_>,
    rec: &CopysetRecord,
    pool: PhysicalPoolId,
    leader: ChunkServerId,
) {
    let Some(d) = rec
        .peers
        .iter()
        .copied()
        .find(|p| cx.topo.is_draining(*p) && !cx.busy.contains(p))
    else {
        return;
    };
    // Moving a replica while another peer is silent could cost the copyset its quorum:
    // recovery (or the peer's return) comes first.
    if !rec.peers.iter().all(|p| cx.online(*p)) {
        return;
    }
    if d == leader {
        let to = rec
            .peers
            .iter()
            .copied()
            .filter(|p| *p != d && cx.fresh(*p) && !cx.busy.contains(p))
            .filter(|p| !cx.topo.is_draining(*p))
            .min_by_key(|p| (cx.leads(*p), *p));
        if let Some(to) = to {
            cx.emit(
                Operator {
                    group: rec.group,
                    epoch: rec.epoch,
                    kind: OperatorKind::TransferLeader(to),
                },
                vec![d, to],
            );
        }
        return;
    }
    if let Some(add) = cx
        .pick_target(pool, &rec.peers, Some(d))
        .and_then(|t| cx.addr(t))
    {
        cx.emit(
            Operator {
                group: rec.group,
                epoch: rec.epoch,
                kind: OperatorKind::ChangePeer { remove: d, add },
            },
            vec![leader, add.id, d],
        );
    }
}

/// Progress of retiring a chunkserver, for `chunkserver drain` and `ls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainProgress {
    /// Copysets it is still a voter of.
    pub copysets: usize,
    /// Copysets it still leads.
    pub leaders: usize,
    /// Of `copysets`, those for which no other chunkserver could take the replica now
    /// (no online, non-draining chunkserver in a zone the copyset can use).
    pub blocked: usize,
    /// Operators in flight that involve it.
    pub operators: usize,
}

impl DrainProgress {
    /// Nothing left on it: safe to stop and remove.
    pub fn drained(&self) -> bool {
        self.copysets == 0 && self.operators == 0
    }
}

/// How far retiring `cs` has come (meaningful whether or not it is marked draining).
pub fn drain_progress(topo: &Topology, pending: &OperatorSet, cs: ChunkServerId) -> DrainProgress {
    let cx = Ctx {
        topo,
        cfg: &SchedulerConfig::default(),
        now_ms: 0,
        busy: BTreeSet::new(),
        counts: BTreeMap::new(),
        out: Vec::new(),
    };
    let mut p = DrainProgress::default();
    for rec in topo.copysets.values().filter(|r| r.peers.contains(&cs)) {
        p.copysets += 1;
        if rec.leader == Some(cs) {
            p.leaders += 1;
        }
        let pool = topo.lpools.get(&rec.group.pool()).map(|l| l.physical);
        if pool
            .and_then(|pool| cx.pick_target(pool, &rec.peers, Some(cs)))
            .is_none()
        {
            p.blocked += 1;
        }
    }
    p.operators = pending
        .ops
        .values()
        .filter(|o| {
            o.involved.contains(&cs)
                || matches!(o.op.kind,
                    OperatorKind::ChangePeer { remove, .. } | OperatorKind::RemovePeer(remove)
                        if remove == cs)
        })
        .count();
    p
}

fn balance_copysets(cx: &mut Ctx<'_>, pending: &OperatorSet) {
    for (ppool, _) in cx.topo.ppools.iter() {
        let members: Vec<ChunkServerId> = cx
            .topo
            .chunkservers_in(*ppool)
            .into_iter()
            .filter(|c| cx.eligible(*c))
            .collect();
        let load = |cx: &Ctx<'_>, c: &ChunkServerId| cx.counts.get(c).copied().unwrap_or(0);
        let Some(&dst) = members
            .iter()
            .filter(|c| !cx.busy.contains(c))
            .min_by_key(|c| (load(cx, c), **c))
        else {
            continue;
        };
        let dst_zone = cx.topo.zone_of(dst);
        let mut sources = members.clone();
        sources.sort_by_key(|c| std::cmp::Reverse((load(cx, c), *c)));
        for src in sources {
            if load(cx, &src) <= load(cx, &dst) + cx.cfg.balance_slack {
                break;
            }
            let src_zone = cx.topo.zone_of(src);
            let candidate = cx.topo.copysets.values().find(|rec| {
                pending.get(rec.group).is_none()
                    && rec.peers.contains(&src)
                    && !rec.peers.contains(&dst)
                    && rec
                        .leader
                        .is_some_and(|l| l != src && cx.online(l) && !cx.busy.contains(&l))
                    && (dst_zone == src_zone
                        || !rec
                            .peers
                            .iter()
                            .any(|p| *p != src && cx.topo.zone_of(*p) == dst_zone))
            });
            if let (Some(rec), Some(add)) = (candidate, cx.addr(dst)) {
                let (group, epoch, leader) = (rec.group, rec.epoch, rec.leader.unwrap_or(src));
                cx.emit(
                    Operator {
                        group,
                        epoch,
                        kind: OperatorKind::ChangePeer { remove: src, add },
                    },
                    vec![leader, dst],
                );
                break;
            }
        }
    }
}

fn balance_leaders(cx: &mut Ctx<'_>, pending: &OperatorSet) {
    let mut leaders: BTreeMap<ChunkServerId, usize> = BTreeMap::new();
    for c in cx.topo.chunkservers.keys() {
        if cx.eligible(*c) {
            leaders.insert(*c, 0);
        }
    }
    for rec in cx.topo.copysets.values() {
        if let Some(l) = rec.leader {
            if let Some(n) = leaders.get_mut(&l) {
                *n += 1;
            }
        }
    }
    if leaders.is_empty() {
        return;
    }
    let total: usize = leaders.values().sum();
    let mean = total as f64 / leaders.len() as f64;
    let recs: Vec<_> = cx.topo.copysets.values().collect();
    for rec in recs {
        let Some(l) = rec.leader else { continue };
        if pending.get(rec.group).is_some() || cx.out.iter().any(|p| p.op.group == rec.group) {
            continue;
        }
        if cx.busy.contains(&l) || (leaders.get(&l).copied().unwrap_or(0) as f64) <= mean + 1.0 {
            continue;
        }
        // Balancing is for healthy copysets only: moving the leadership of a copyset with a
        // silent peer risks handing it to a dead process.
        if !rec.peers.iter().all(|p| cx.fresh(*p)) {
            continue;
        }
        let target = rec
            .peers
            .iter()
            .copied()
            .filter(|p| *p != l && cx.fresh(*p) && !cx.busy.contains(p))
            .filter(|p| !cx.topo.is_draining(*p))
            .filter(|p| (leaders.get(p).copied().unwrap_or(0) as f64) < mean)
            .min_by_key(|p| (leaders.get(p).copied().unwrap_or(0), *p));
        if let Some(t) = target {
            *leaders.entry(l).or_default() -= 1;
            *leaders.entry(t).or_default() += 1;
            cx.emit(
                Operator {
                    group: rec.group,
                    epoch: rec.epoch,
                    kind: OperatorKind::TransferLeader(t),
                },
                vec![l, t],
            );
        }
    }
}

#[cfg(test)]
mod tests;
