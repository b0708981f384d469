//! Operators and strays from a heartbeat reply: which to run now, which to skip (pure
//! [`decide`]), and running them in background tasks ([`Executor`]).
//!
//! The MDS repeats an operator in every reply until a heartbeat shows it done, so the
//! decision must be idempotent: an operator whose copyset already runs one is skipped, as is
//! one computed at another epoch than the copyset's (stale, or already applied). Strays are
//! deleted conservatively: never a replica that leads, or that runs a change, and only
//! after the MDS named it in [`STRAY_CONFIRMATIONS`] replies in a row.
//!
//! A peer being added needs an (empty) replica to receive the log and snapshot: before
//! `AddPeer`/`ChangePeer` the leader sends it a join-only `CreateCopyset`: the current
//! voters, without the joiner ([`joiner_peers`]), so it never initializes a group of its
//! own whatever its id (see `Copysets::create`).

use crate::copyset::Copysets;
use basalt_proto::chunk::CreateCopyset;
use basalt_proto::heartbeat::{ConfChange, HeartbeatReply, Operator, OperatorKind};
use basalt_proto::ids::{Epoch, GroupId};
use basalt_proto::status::{ChunkError, PeerAddr};
use basalt_transport::{ConnectionPool, TcpTransport};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Consecutive replies naming a replica a stray before it is deleted.
pub const STRAY_CONFIRMATIONS: u32 = 3;

/// What decisions need to know of a local replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalReplica {
    /// Its epoch.
    pub epoch: Epoch,
    /// This replica leads the copyset.
    pub leader: bool,
}

/// Why an operator or a stray is not acted on now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The copyset is not hosted here.
    NotHosted,
    /// This replica does not lead the copyset (the MDS's leader hint is stale).
    NotLeader,
    /// The operator was computed at another epoch than the copyset's.
    EpochMismatch {
        /// The copyset's epoch here.
        ours: Epoch,
        /// The operator's.
        op: Epoch,
    },
    /// An operator already runs on the copyset (this one or another).
    Running,
    /// A second operator for the same copyset in one reply.
    Duplicate,
    /// A stray that leads its copyset here: kept.
    StrayLeads,
    /// A stray not yet confirmed by enough replies.
    StrayUnconfirmed,
}

/// The outcome of one reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Operators to start now.
    pub run: Vec<Operator>,
    /// Operators not started, and why.
    pub skipped: Vec<(Operator, Skip)>,
    /// Replicas to delete.
    pub delete: Vec<GroupId>,
    /// Strays kept, and why.
    pub kept: Vec<(GroupId, Skip)>,
}

/// Decide on one heartbeat reply. `local`: the replicas hosted here; `running`: copysets
/// with an operator in flight; `stray_seen`: consecutive replies that named each stray
/// (updated here: a group absent from this reply's strays is forgotten).
pub fn decide(
    reply: &HeartbeatReply,
    local: &BTreeMap<GroupId, LocalReplica>,
    running: &BTreeSet<GroupId>,
    stray_seen: &mut BTreeMap<GroupId, u32>,
) -> Decision {
    let mut d = Decision::default();
    let mut taken = BTreeSet::new();
    for op in &reply.operators {
        let skip = match local.get(&op.group) {
            None => Some(Skip::NotHosted),
            Some(_) if running.contains(&op.group) => Some(Skip::Running),
            Some(_) if taken.contains(&op.group) => Some(Skip::Duplicate),
            Some(r) if !r.leader => Some(Skip::NotLeader),
            Some(r) if r.epoch != op.epoch => Some(Skip::EpochMismatch {
                ours: r.epoch,
                op: op.epoch,
            }),
            Some(_) => None,
        };
        match skip {
            Some(s) => d.skipped.push((*op, s)),
            None => {
                taken.insert(op.group);
                d.run.push(*op);
            }
        }
    }
    let named: BTreeSet<GroupId> = reply.strays.iter().copied().collect();
    stray_seen.retain(|g, _| named.contains(g));
    for &g in &named {
        let seen = stray_seen.entry(g).or_insert(0);
        *seen += 1;
        let skip = match local.get(&g) {
            None => Some(Skip::NotHosted),
            Some(r) if r.leader => Some(Skip::StrayLeads),
            Some(_) if running.contains(&g) || taken.contains(&g) => Some(Skip::Running),
            Some(_) if *seen < STRAY_CONFIRMATIONS => Some(Skip::StrayUnconfirmed),
            Some(_) => None,
        };
        match skip {
            Some(s) => d.kept.push((g, s)),
            None => d.delete.push(g),
        }
    }
    // A deleted replica is gone: its count starts over if it ever comes back.
    for g in &d.delete {
        stray_seen.remove(g);
    }
    d
}

/// The peer list of a join-only create of a joining replica: the voters without the
/// joiner (a list that does not name the receiver never initializes a group); `None` when
/// there is no other voter.
pub fn joiner_peers(voters: &[PeerAddr], joiner: PeerAddr) -> Option<Vec<PeerAddr>> {
    let peers: Vec<PeerAddr> = voters
        .iter()
        .copied()
        .filter(|v| v.id != joiner.id)
        .collect();
    (!peers.is_empty()).then_some(peers)
}

/// The change a running operator makes, as reported in heartbeats.
pub fn conf_change_of(kind: &OperatorKind) -> ConfChange {
    match *kind {
        OperatorKind::AddPeer(p) => ConfChange::Adding(p.id),
        OperatorKind::RemovePeer(id) => ConfChange::Removing(id),
        OperatorKind::ChangePeer { remove, add } => ConfChange::Changing {
            remove,
            add: add.id,
        },
        OperatorKind::TransferLeader(id) => ConfChange::TransferringLeader(id),
    }
}

/// Runs operators and deletes strays in background tasks, at most one per copyset.
#[derive(Clone)]
pub struct Executor {
    copysets: Copysets,
    /// Connections to peers being added (their replica is created first).
    pool: Arc<ConnectionPool<TcpTransport>>,
    /// Bound of the create call to a joining peer.
    create_timeout: Duration,
    running: Arc<Mutex<HashMap<GroupId, OperatorKind>>>,
    tasks: Arc<Mutex<tokio::task::JoinSet<()>>>,
}

impl Executor {
    /// An executor over this chunkserver's copysets; joining peers are dialled through
    /// `transport`.
    pub fn new(copysets: Copysets, transport: TcpTransport, create_timeout: Duration) -> Self {
        Executor {
            copysets,
            pool: Arc::new(ConnectionPool::new(transport)),
            create_timeout,
            running: Arc::default(),
            tasks: Arc::default(),
        }
    }

    /// Copysets with an operator (or a stray deletion) in flight.
    pub fn running(&self) -> BTreeSet<GroupId> {
        self.running.lock().keys().copied().collect()
    }

    /// The change in flight on `group`, for its heartbeat report.
    pub fn conf_change(&self, group: GroupId) -> Option<ConfChange> {
        self.running.lock().get(&group).map(conf_change_of)
    }

    /// Start what `d` decided.
    pub fn apply(&self, d: &Decision) {
        for (op, why) in &d.skipped {
            tracing::debug!(group = %op.group, kind = ?op.kind, ?why, "operator skipped");
        }
        for (g, why) in &d.kept {
            tracing::debug!(group = %g, ?why, "stray kept");
        }
        let mut tasks = self.tasks.lock();
        // Reap finished tasks so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
        for op in d.run.iter().copied() {
            if self.running.lock().insert(op.group, op.kind).is_some() {
                continue;
            }
            let this = self.clone();
            tasks.spawn(async move {
                this.run(op).await;
                this.running.lock().remove(&op.group);
            });
        }
        for g in d.delete.iter().copied() {
            // Marked as a removal of ourselves while it runs, so nothing else starts on it.
            let me = OperatorKind::RemovePeer(self.copysets.local().id);
            if self.running.lock().insert(g, me).is_some() {
                continue;
            }
            let this = self.clone();
            tasks.spawn(async move {
                tracing::info!(group = %g, "deleting stray replica (the MDS no longer places it here)");
                if let Err(e) = this.copysets.delete(g).await {
                    tracing::warn!(group = %g, error = %e, "stray delete failed");
                }
                this.running.lock().remove(&g);
            });
        }
    }

    /// Create the (empty) replica of `group` on a joining peer.
    async fn prepare_joiner(&self, group: GroupId, joiner: PeerAddr) -> Result<(), String> {
        let voters = self
            .copysets
            .status(group)
            .map_err(|e| e.to_string())?
            .peers;
        let Some(peers) = joiner_peers(&voters, joiner) else {
            return Err(format!("no voter other than the joiner {}", joiner.id));
        };
        let req = CreateCopyset { group, peers };
        let call = self.pool.call(&joiner.addr, &req, Bytes::new());
        match tokio::time::timeout(self.create_timeout, call).await {
            Ok(Ok((Ok(()), _))) => Ok(()),
            Ok(Ok((Err(e), _))) => Err(format!("create refused: {e}")),
            Ok(Err(e)) => {
                self.pool.invalidate(&joiner.addr);
                Err(format!("create not delivered: {e}"))
            }
            Err(_) => {
                self.pool.invalidate(&joiner.addr);
                Err("create timed out".into())
            }
        }
    }

    async fn run(&self, op: Operator) {
        let (g, e, cs) = (op.group, op.epoch, &self.copysets);
        tracing::info!(group = %g, epoch = %e, kind = ?op.kind, "running operator");
        let joiner = match op.kind {
            OperatorKind::AddPeer(p) | OperatorKind::ChangePeer { add: p, .. } => Some(p),
            _ => None,
        };
        if let Some(p) = joiner {
            if let Err(reason) = self.prepare_joiner(g, p).await {
                tracing::warn!(group = %g, peer = %p.id, %reason, "cannot create the joining replica; operator not run");
                return;
            }
        }
        let result: Result<Epoch, ChunkError> = match op.kind {
            OperatorKind::AddPeer(p) => cs.add_peer(g, e, p).await.map(|r| r.epoch),
            OperatorKind::RemovePeer(id) => cs.remove_peer(g, e, id).await.map(|r| r.epoch),
            OperatorKind::ChangePeer { remove, add } => {
                cs.change_peer(g, e, remove, add).await.map(|r| r.epoch)
            }
            OperatorKind::TransferLeader(to) => cs.transfer_leader(g, to).await.map(|r| r.epoch),
        };
        match result {
            Ok(epoch) => tracing::info!(group = %g, %epoch, kind = ?op.kind, "operator done"),
            Err(err) => {
                tracing::warn!(group = %g, kind = ?op.kind, error = %err, "operator failed")
            }
        }
    }

    /// Abort every task in flight (shutdown).
    pub fn shutdown(&self) {
        self.tasks.lock().abort_all();
        self.running.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::{ChunkServerId, CopysetId, LogicalPoolId};

    fn g(n: u32) -> GroupId {
        GroupId::of(LogicalPoolId(1), CopysetId(n))
    }

    fn op(n: u32, epoch: u64, kind: OperatorKind) -> Operator {
        Operator {
            group: g(n),
            epoch: Epoch(epoch),
            kind,
        }
    }

    fn peer(id: u32) -> PeerAddr {
        PeerAddr {
            id: ChunkServerId(id),
            addr: SocketAddr::from(([127, 0, 0, 1], 8200 + id as u16)),
        }
    }

    use std::net::SocketAddr;

    fn local(entries: &[(u32, u64, bool)]) -> BTreeMap<GroupId, LocalReplica> {
        entries
            .iter()
            .map(|&(n, e, leader)| {
                (
                    g(n),
                    LocalReplica {
                        epoch: Epoch(e),
                        leader,
                    },
                )
            })
            .collect()
    }

    fn reply(operators: Vec<Operator>, strays: Vec<GroupId>) -> HeartbeatReply {
        HeartbeatReply { operators, strays }
    }

    #[test]
    fn runs_operators_for_led_copysets_at_their_epoch() {
        let add = op(1, 5, OperatorKind::AddPeer(peer(4)));
        let change = op(
            2,
            7,
            OperatorKind::ChangePeer {
                remove: ChunkServerId(3),
                add: peer(4),
            },
        );
        let d = decide(
            &reply(vec![add, change], vec![]),
            &local(&[(1, 5, true), (2, 7, true)]),
            &BTreeSet::new(),
            &mut BTreeMap::new(),
        );
        assert_eq!(d.run, vec![add, change]);
        assert!(d.skipped.is_empty() && d.delete.is_empty());
    }

    #[test]
    fn skips_stale_foreign_running_and_duplicate_operators() {
        let stale = op(1, 4, OperatorKind::RemovePeer(ChunkServerId(2)));
        let follower = op(2, 1, OperatorKind::TransferLeader(ChunkServerId(2)));
        let busy = op(3, 1, OperatorKind::AddPeer(peer(5)));
        let unknown = op(9, 1, OperatorKind::AddPeer(peer(5)));
        let first = op(4, 2, OperatorKind::TransferLeader(ChunkServerId(2)));
        let second = op(4, 2, OperatorKind::TransferLeader(ChunkServerId(3)));
        let d = decide(
            &reply(vec![stale, follower, busy, unknown, first, second], vec![]),
            &local(&[(1, 5, true), (2, 1, false), (3, 1, true), (4, 2, true)]),
            &BTreeSet::from([g(3)]),
            &mut BTreeMap::new(),
        );
        assert_eq!(d.run, vec![first]);
        assert_eq!(
            d.skipped,
            vec![
                (
                    stale,
                    Skip::EpochMismatch {
                        ours: Epoch(5),
                        op: Epoch(4)
                    }
                ),
                (follower, Skip::NotLeader),
                (busy, Skip::Running),
                (unknown, Skip::NotHosted),
                (second, Skip::Duplicate),
            ]
        );
    }

    #[test]
    fn an_operator_repeated_by_the_mds_runs_once() {
        let add = op(1, 5, OperatorKind::AddPeer(peer(4)));
        let l = local(&[(1, 5, true)]);
        let mut seen = BTreeMap::new();
        let d1 = decide(&reply(vec![add], vec![]), &l, &BTreeSet::new(), &mut seen);
        assert_eq!(d1.run, vec![add]);
        // Next heartbeat: still running here.
        let d2 = decide(
            &reply(vec![add], vec![]),
            &l,
            &BTreeSet::from([g(1)]),
            &mut seen,
        );
        assert!(d2.run.is_empty());
        // Done: the epoch moved, the MDS's repeat (until it sees the report) is stale.
        let d3 = decide(
            &reply(vec![add], vec![]),
            &local(&[(1, 6, true)]),
            &BTreeSet::new(),
            &mut seen,
        );
        assert!(d3.run.is_empty());
        assert!(matches!(d3.skipped[0].1, Skip::EpochMismatch { .. }));
    }

    #[test]
    fn strays_are_deleted_only_when_confirmed_and_not_leading() {
        let l = local(&[(1, 3, false), (2, 3, true), (3, 3, false)]);
        let strays = vec![g(1), g(2), g(3), g(9)];
        let running = BTreeSet::from([g(3)]);
        let mut seen = BTreeMap::new();
        for _ in 1..STRAY_CONFIRMATIONS {
            let d = decide(&reply(vec![], strays.clone()), &l, &running, &mut seen);
            assert!(d.delete.is_empty());
            assert!(d.kept.contains(&(g(1), Skip::StrayUnconfirmed)));
        }
        let d = decide(&reply(vec![], strays.clone()), &l, &running, &mut seen);
        assert_eq!(d.delete, vec![g(1)]);
        assert_eq!(
            d.kept,
            vec![
                (g(2), Skip::StrayLeads),
                (g(3), Skip::Running),
                (g(9), Skip::NotHosted)
            ]
        );
        assert!(!seen.contains_key(&g(1)));
    }

    #[test]
    fn a_stray_missing_from_one_reply_starts_over() {
        let l = local(&[(1, 3, false)]);
        let mut seen = BTreeMap::new();
        let none = BTreeSet::new();
        for _ in 1..STRAY_CONFIRMATIONS {
            decide(&reply(vec![], vec![g(1)]), &l, &none, &mut seen);
        }
        decide(&reply(vec![], vec![]), &l, &none, &mut seen);
        assert!(seen.is_empty());
        let d = decide(&reply(vec![], vec![g(1)]), &l, &none, &mut seen);
        assert!(d.delete.is_empty());
    }

    #[test]
    fn joiners_are_created_join_only() {
        let voters = [peer(2), peer(3), peer(5)];
        // The voters, never the joiner: the create is join-only whatever its id.
        assert_eq!(joiner_peers(&voters, peer(4)).unwrap(), voters.to_vec());
        assert_eq!(joiner_peers(&voters, peer(1)).unwrap(), voters.to_vec());
        assert_eq!(joiner_peers(&[], peer(4)), None);
        assert_eq!(joiner_peers(&[peer(4)], peer(4)), None);
        // Already a voter: left out.
        assert_eq!(
            joiner_peers(&voters, peer(3)).unwrap(),
            vec![peer(2), peer(5)]
        );
    }

    #[test]
    fn reported_changes_match_operators() {
        let k = OperatorKind::ChangePeer {
            remove: ChunkServerId(3),
            add: peer(4),
        };
        assert_eq!(
            conf_change_of(&k),
            ConfChange::Changing {
                remove: ChunkServerId(3),
                add: ChunkServerId(4)
            }
        );
        assert_eq!(
            conf_change_of(&OperatorKind::TransferLeader(ChunkServerId(2))),
            ConfChange::TransferringLeader(ChunkServerId(2))
        );
    }
}
