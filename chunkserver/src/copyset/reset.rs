//! Forcing the membership of a copyset that lost its majority (`ResetPeers`, Curve's
//! reset-peer).
//!
//! openraft has no API for this, so the registry stops the replica's raft node, this
//! module rewrites its durable state, and the registry starts the node again:
//!
//! 1. the vote is bumped to a term above every term in the vote and the log, for this
//!    replica, not committed (as if it had started a campaign);
//! 2. one membership entry with the forced voters is appended after the last log entry,
//!    under that term and this replica's leader id.
//!
//! On restart openraft takes the last membership entry of the log as the effective one,
//! so the replica is a voter of the forced membership; with itself as the only voter it
//! elects itself and commits everything in its log, the forced entry included. The epoch
//! (the membership entry's log index) is one past the old last index, above every epoch
//! the copyset had. A crash between the two writes leaves only a bumped vote (a failed
//! campaign): harmless, and the reset can be asked again.
//!
//! The checks are pure functions ([`check_peers`], [`live_leader`], [`plan`]); only
//! [`write`] touches storage.

use crate::copyset::codec;
use crate::copyset::types::alias::{Entry, LogId, Vote};
use crate::error::ChunkServerError;
use crate::group_log::{GroupLog, LogRecord, MetaKey};
use basalt_proto::chunk::ResetPeersError;
use basalt_proto::ids::{ChunkServerId, Epoch, GroupId};
use basalt_proto::status::PeerAddr;
use bytes::Bytes;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::{EntryPayload, Membership, ServerState};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Check the requested voters against the replica's membership: not empty, no
/// duplicates, naming this replica, every one known (with its address) to the current
/// membership. Returns the forced voters with their addresses.
pub fn check_peers(
    group: GroupId,
    local: ChunkServerId,
    requested: &[ChunkServerId],
    known: &BTreeMap<u64, PeerAddr>,
) -> Result<BTreeMap<u64, PeerAddr>, ResetPeersError> {
    if requested.is_empty() {
        return Err(ResetPeersError::EmptyPeers { group });
    }
    let mut out = BTreeMap::new();
    for &peer in requested {
        let id = u64::from(peer.0);
        if out.contains_key(&id) {
            return Err(ResetPeersError::DuplicatePeer { group, peer });
        }
        let addr = known
            .get(&id)
            .copied()
            .ok_or(ResetPeersError::UnknownPeer { group, peer })?;
        out.insert(id, addr);
    }
    if !out.contains_key(&u64::from(local.0)) {
        return Err(ResetPeersError::MissingSelf { group, local });
    }
    Ok(out)
}

/// What the replica knows about its leader's liveness.
#[derive(Debug, Clone, Copy)]
pub struct LeaderView {
    /// This replica.
    pub local: u64,
    /// Its raft role.
    pub state: ServerState,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// As leader: time since a majority last acknowledged it.
    pub since_quorum_ack: Option<Duration>,
    /// As follower: time since the leader's last accepted append or heartbeat.
    pub since_leader_contact: Option<Duration>,
}

/// The leader that is alive, if any: this replica leading with a majority acknowledging
/// it within `bound`, or the leader it follows having reached it within `bound`. A
/// follower's vote keeps naming a dead leader (pre-vote never changes it) and an isolated
/// leader never steps down, so the role alone proves nothing.
pub fn live_leader(v: &LeaderView, bound: Duration) -> Option<u64> {
    let fresh = |d: Option<Duration>| d.is_some_and(|d| d <= bound);
    match v.state {
        ServerState::Leader => fresh(v.since_quorum_ack).then_some(v.local),
        _ => v
            .leader
            .filter(|&l| l != v.local && fresh(v.since_leader_contact)),
    }
}

/// The durable writes of a reset.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetPlan {
    /// The vote to save first.
    pub vote: Vote,
    /// The membership entry to append after the last log entry.
    pub entry: Entry,
}

impl ResetPlan {
    /// The epoch of the forced membership.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.entry.log_id.index)
    }
}

/// Plan the writes for forcing `voters` on replica `local`, whose stored vote is `vote`
/// and last log id (or purge point) is `last`. `None` for `last`: nothing to start from.
pub fn plan(
    group: GroupId,
    local: u64,
    vote: Option<Vote>,
    last: Option<LogId>,
    voters: &BTreeMap<u64, PeerAddr>,
) -> Result<ResetPlan, ResetPeersError> {
    let last = last.ok_or(ResetPeersError::NotInitialized { group })?;
    let term = vote
        .map(|v| v.leader_id.term)
        .unwrap_or(0)
        .max(last.leader_id.term)
        .saturating_add(1);
    let ids: BTreeSet<u64> = voters.keys().copied().collect();
    // Every voter has its node: construction cannot fail; map it anyway, never panic.
    let membership = Membership::new(vec![ids], voters.clone())
        .map_err(|_| ResetPeersError::EmptyPeers { group })?;
    Ok(ResetPlan {
        vote: Vote::new(term, local),
        entry: Entry {
            log_id: LogId {
                leader_id: LeaderId {
                    term,
                    node_id: local,
                },
                index: last.index.saturating_add(1),
            },
            payload: EntryPayload::Membership(membership),
        },
    })
}

/// Make `plan` durable in the group's log (the raft node must be stopped): the vote,
/// then the entry.
pub async fn write(
    log: &dyn GroupLog,
    group: GroupId,
    plan: &ResetPlan,
) -> Result<(), ChunkServerError> {
    let codec_err = |source| ChunkServerError::RaftCodec { group, source };
    let vote = codec::encode(&plan.vote).map_err(codec_err)?;
    log.save_meta(group, MetaKey::Vote, Bytes::from(vote))?;
    let data = codec::encode(&plan.entry).map_err(codec_err)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    log.append(
        group,
        vec![LogRecord {
            index: plan.entry.log_id.index,
            data: Bytes::from(data),
        }],
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    // A dropped callback means the WAL went away: not durable.
    rx.await.unwrap_or(Err(ChunkServerError::Fenced))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copyset::log_store::{GroupLogStore, GroupMeta};
    use crate::copyset::testing::MemGroupLog;
    use crate::copyset::types::ChunkOp;
    use basalt_proto::ids::ChunkId;
    use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
    use openraft::vote::RaftLeaderId;

    fn peer(i: u32) -> PeerAddr {
        PeerAddr {
            id: ChunkServerId(i),
            addr: format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
        }
    }

    fn known() -> BTreeMap<u64, PeerAddr> {
        (1..=3).map(|i| (u64::from(i), peer(i))).collect()
    }

    fn cs(ids: &[u32]) -> Vec<ChunkServerId> {
        ids.iter().copied().map(ChunkServerId).collect()
    }

    #[test]
    fn peer_lists_are_checked() {
        let g = GroupId(9);
        let me = ChunkServerId(2);
        let check = |ids: &[u32]| check_peers(g, me, &cs(ids), &known());
        assert_eq!(check(&[]), Err(ResetPeersError::EmptyPeers { group: g }));
        assert_eq!(
            check(&[2, 2]),
            Err(ResetPeersError::DuplicatePeer { group: g, peer: me })
        );
        assert_eq!(
            check(&[1, 3]),
            Err(ResetPeersError::MissingSelf {
                group: g,
                local: me
            })
        );
        assert_eq!(
            check(&[2, 4]),
            Err(ResetPeersError::UnknownPeer {
                group: g,
                peer: ChunkServerId(4)
            })
        );
        let ok = check(&[3, 2]).unwrap();
        assert_eq!(ok.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(ok[&3], peer(3));
    }

    #[test]
    fn only_fresh_contact_makes_a_leader_alive() {
        let bound = Duration::from_secs(1);
        let ms = |m| Some(Duration::from_millis(m));
        let v = |state, leader, quorum, contact| LeaderView {
            local: 2,
            state,
            leader,
            since_quorum_ack: quorum,
            since_leader_contact: contact,
        };
        // A leader with a recent majority: alive; an isolated one: not.
        assert_eq!(
            live_leader(&v(ServerState::Leader, Some(2), ms(100), None), bound),
            Some(2)
        );
        assert_eq!(
            live_leader(&v(ServerState::Leader, Some(2), ms(5000), None), bound),
            None
        );
        assert_eq!(
            live_leader(&v(ServerState::Leader, Some(2), None, None), bound),
            None
        );
        // A follower whose leader reached it lately: alive; a stale vote: not.
        assert_eq!(
            live_leader(&v(ServerState::Follower, Some(1), None, ms(50)), bound),
            Some(1)
        );
        assert_eq!(
            live_leader(&v(ServerState::Follower, Some(1), None, ms(3000)), bound),
            None
        );
        assert_eq!(
            live_leader(&v(ServerState::Follower, Some(1), None, None), bound),
            None
        );
        assert_eq!(
            live_leader(&v(ServerState::Candidate, None, None, ms(10)), bound),
            None
        );
    }

    fn log_id(term: u64, node: u64, index: u64) -> LogId {
        LogId {
            leader_id: LeaderId::<u64, u64>::new(term, node).to_committed(),
            index,
        }
    }

    #[test]
    fn plan_bumps_the_term_past_vote_and_log() {
        let g = GroupId(9);
        let voters: BTreeMap<u64, PeerAddr> = [(2, peer(2))].into();
        assert_eq!(
            plan(g, 2, None, None, &voters),
            Err(ResetPeersError::NotInitialized { group: g })
        );
        let p = plan(g, 2, Some(Vote::new(4, 1)), Some(log_id(3, 1, 40)), &voters).unwrap();
        assert_eq!(p.vote, Vote::new(5, 2));
        assert!(!p.vote.committed);
        assert_eq!(p.entry.log_id, log_id(5, 2, 41));
        assert_eq!(p.epoch(), Epoch(41));
        let EntryPayload::Membership(m) = &p.entry.payload else {
            panic!("not a membership entry");
        };
        assert_eq!(m.voter_ids().collect::<Vec<_>>(), vec![2]);
        // A log term above the vote's (vote lost, entries kept) still wins.
        let p = plan(g, 2, Some(Vote::new(1, 1)), Some(log_id(7, 3, 9)), &voters).unwrap();
        assert_eq!(p.vote, Vote::new(8, 2));
    }

    #[tokio::test]
    async fn written_plan_is_what_the_log_store_restarts_from() {
        let g = GroupId(9);
        let log = MemGroupLog::new();
        let meta = GroupMeta::load(log.clone(), g).unwrap();
        let mut s = GroupLogStore::new(log.clone(), g, meta);
        s.blocking_append((1..=5).map(|i| Entry {
            log_id: log_id(2, 1, i),
            payload: EntryPayload::Normal(ChunkOp::Delete {
                chunk: ChunkId(i),
                req: basalt_proto::chunk::RequestId::NONE,
            }),
        }))
        .await
        .unwrap();
        s.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        let voters: BTreeMap<u64, PeerAddr> = [(2, peer(2))].into();
        let vote = s.read_vote().await.unwrap();
        let last = s.get_log_state().await.unwrap().last_log_id;
        let p = plan(g, 2, vote, last, &voters).unwrap();
        write(&*log, g, &p).await.unwrap();
        assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(3, 2, 6))
        );
        let back = s.try_get_log_entries(6..7).await.unwrap();
        assert_eq!(back, vec![p.entry]);
    }
}
