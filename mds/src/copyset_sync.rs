//! Which copyset replicas still have to be created on their chunkservers (sans-IO).
//!
//! Placement only writes copysets into the MDS's state; every peer must then be told with
//! `basalt_proto::chunk::CreateCopyset { group, peers }` (idempotent on the chunkserver).
//! [`plan`] decides, from the topology, the copysets each chunkserver reported in its
//! latest heartbeat and the time of the previous attempts, which (group, chunkserver)
//! pairs need a create now. The I/O shell is [`crate::copyset_creator`].
//!
//! Rules:
//! - Only copysets still at [`INITIAL_EPOCH`]: a copyset whose membership changed has been
//!   formed by raft, and a member that lost its replica later is the scheduler's business
//!   (re-creating it at the initial configuration could re-initialise the group).
//! - Only online chunkservers that have sent a heartbeat since this MDS loaded its state
//!   (before that, what they hold is unknown) and whose latest heartbeat lacks the copyset.
//! - Back-off per pair: the next attempt is due `retry_min_ms × 2^failures` (capped at
//!   `retry_max_ms`) after the previous one; an accepted create is retried after
//!   `retry_min_ms` if heartbeats still do not show the replica.

use crate::topology::{OnlineState, Topology};
use basalt_proto::ids::{ChunkServerId, Epoch, GroupId};
use basalt_proto::status::PeerAddr;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// Epoch of a copyset as placement creates it. A chunkserver's epoch is the raft log index
/// of the membership entry in force, and a new group's first membership entry is at index
/// 0, so a freshly created copyset reports epoch 0.
pub const INITIAL_EPOCH: Epoch = Epoch(0);

/// Copysets each chunkserver reported in its latest heartbeat since the MDS loaded.
pub type Reported = BTreeMap<ChunkServerId, BTreeSet<GroupId>>;

/// Settings of the copyset-creation reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct CreateConfig {
    /// How often the reconciler looks, ms.
    pub interval_ms: u64,
    /// Wait after an attempt before the next one for the same replica, ms.
    pub retry_min_ms: u64,
    /// Longest back-off after repeated failures, ms.
    pub retry_max_ms: u64,
    /// Deadline of one `CreateCopyset` call, ms.
    pub rpc_timeout_ms: u64,
    /// Calls in flight at once.
    pub concurrency: usize,
}

impl Default for CreateConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1_000,
            retry_min_ms: 2_000,
            retry_max_ms: 60_000,
            rpc_timeout_ms: 10_000,
            concurrency: 16,
        }
    }
}

impl CreateConfig {
    /// Back-off before the attempt following `failures` consecutive failures.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let shift = failures.min(20);
        self.retry_min_ms
            .saturating_mul(1u64 << shift)
            .min(self.retry_max_ms.max(self.retry_min_ms))
    }
}

/// The previous attempt for one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// When it was made, ms.
    pub at_ms: u64,
    /// Consecutive failures so far (0 after an accepted create).
    pub failures: u32,
}

/// Attempts per (group, chunkserver).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateTracker {
    attempts: BTreeMap<(GroupId, ChunkServerId), Attempt>,
}

impl CreateTracker {
    /// The previous attempt for a replica.
    pub fn get(&self, group: GroupId, cs: ChunkServerId) -> Option<Attempt> {
        self.attempts.get(&(group, cs)).copied()
    }

    /// Record the result of an attempt made at `at_ms`.
    pub fn record(&mut self, group: GroupId, cs: ChunkServerId, at_ms: u64, ok: bool) {
        let prev = self.attempts.get(&(group, cs)).map_or(0, |a| a.failures);
        let failures = if ok { 0 } else { prev.saturating_add(1) };
        self.attempts
            .insert((group, cs), Attempt { at_ms, failures });
    }

    /// Forget every replica not in `wanted` (created, or no longer needed).
    pub fn retain(&mut self, wanted: &BTreeSet<(GroupId, ChunkServerId)>) {
        self.attempts.retain(|k, _| wanted.contains(k));
    }

    /// Replicas tracked.
    pub fn len(&self) -> usize {
        self.attempts.len()
    }

    /// Nothing tracked.
    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }
}

/// One `CreateCopyset` to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTask {
    /// The copyset.
    pub group: GroupId,
    /// The chunkserver to create it on.
    pub target: ChunkServerId,
    /// Its service address.
    pub addr: SocketAddr,
    /// The copyset's voters with addresses.
    pub peers: Vec<PeerAddr>,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Creates due now.
    pub due: Vec<CreateTask>,
    /// Every replica still missing (due now or backing off); the tracker keeps only these.
    pub missing: BTreeSet<(GroupId, ChunkServerId)>,
}

/// Decide which replicas need a `CreateCopyset` at `now_ms`.
pub fn plan(
    topo: &Topology,
    reported: &Reported,
    tracker: &CreateTracker,
    now_ms: u64,
    cfg: &CreateConfig,
) -> Plan {
    let mut out = Plan::default();
    for rec in topo.copysets.values() {
        if rec.epoch != INITIAL_EPOCH {
            continue;
        }
        let peers: Option<Vec<PeerAddr>> = rec
            .peers
            .iter()
            .map(|p| {
                topo.chunkservers.get(p).map(|c| PeerAddr {
                    id: *p,
                    addr: c.addr,
                })
            })
            .collect();
        let Some(peers) = peers else {
            // A peer the topology does not know: nothing sensible to send.
            continue;
        };
        for peer in &peers {
            let Some(groups) = reported.get(&peer.id) else {
                continue;
            };
            if groups.contains(&rec.group) {
                continue;
            }
            if topo
                .chunkservers
                .get(&peer.id)
                .is_none_or(|c| c.state != OnlineState::Online || c.disk.disk_failed)
            {
                continue;
            }
            out.missing.insert((rec.group, peer.id));
            let due = tracker.get(rec.group, peer.id).is_none_or(|a| {
                now_ms >= a.at_ms.saturating_add(cfg.backoff_ms(a.failures)) || now_ms < a.at_ms
                // the clock went back: don't wait forever
            });
            if due {
                out.due.push(CreateTask {
                    group: rec.group,
                    target: peer.id,
                    addr: peer.addr,
                    peers: peers.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{ChunkServer, CopysetRecord};
    use basalt_proto::heartbeat::DiskStats;
    use basalt_proto::ids::{CopysetId, LogicalPoolId, ServerId};

    fn cs(i: u32) -> ChunkServerId {
        ChunkServerId(i)
    }

    fn g(i: u32) -> GroupId {
        GroupId::of(LogicalPoolId(1), CopysetId(i))
    }

    fn topo() -> Topology {
        let mut t = Topology::default();
        for i in 1..=4 {
            t.chunkservers.insert(
                cs(i),
                ChunkServer {
                    id: cs(i),
                    server: ServerId(i),
                    disk_uuid: format!("d{i}"),
                    token: "t".into(),
                    addr: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                    disk: DiskStats::default(),
                    last_seen_ms: 0,
                    state: OnlineState::Online,
                },
            );
        }
        for (i, peers) in [(1, [1, 2, 3]), (2, [2, 3, 4])] {
            t.copysets.insert(
                g(i),
                CopysetRecord {
                    group: g(i),
                    epoch: INITIAL_EPOCH,
                    peers: peers.iter().map(|p| cs(*p)).collect(),
                    leader: None,
                },
            );
        }
        t
    }

    fn reported(entries: &[(u32, &[u32])]) -> Reported {
        entries
            .iter()
            .map(|(c, gs)| (cs(*c), gs.iter().map(|x| g(*x)).collect()))
            .collect()
    }

    fn pairs(p: &Plan) -> Vec<(GroupId, ChunkServerId)> {
        p.due.iter().map(|t| (t.group, t.target)).collect()
    }

    const CFG: CreateConfig = CreateConfig {
        interval_ms: 100,
        retry_min_ms: 1_000,
        retry_max_ms: 5_000,
        rpc_timeout_ms: 1_000,
        concurrency: 4,
    };

    #[test]
    fn missing_replicas_of_reporting_chunkservers_are_due() {
        let t = topo();
        // cs1 holds g1; cs2 holds nothing; cs3 holds g2 only; cs4 has not reported.
        let r = reported(&[(1, &[1]), (2, &[]), (3, &[2])]);
        let p = plan(&t, &r, &CreateTracker::default(), 10, &CFG);
        assert_eq!(pairs(&p), vec![(g(1), cs(2)), (g(1), cs(3)), (g(2), cs(2))]);
        let task = &p.due[0];
        assert_eq!(task.addr, t.chunkservers[&cs(2)].addr);
        assert_eq!(
            task.peers.iter().map(|x| x.id).collect::<Vec<_>>(),
            vec![cs(1), cs(2), cs(3)]
        );
        assert_eq!(p.missing.len(), 3);
        // Everyone reports everything: nothing to do.
        let all = reported(&[(1, &[1]), (2, &[1, 2]), (3, &[1, 2]), (4, &[2])]);
        let p = plan(&t, &all, &CreateTracker::default(), 10, &CFG);
        assert!(p.due.is_empty() && p.missing.is_empty());
    }

    #[test]
    fn offline_failed_and_changed_copysets_are_skipped() {
        let mut t = topo();
        let r = reported(&[(1, &[]), (2, &[]), (3, &[]), (4, &[])]);
        t.chunkservers.get_mut(&cs(2)).unwrap().state = OnlineState::Unstable;
        t.chunkservers.get_mut(&cs(3)).unwrap().disk.disk_failed = true;
        t.copysets.get_mut(&g(2)).unwrap().epoch = Epoch(2);
        let p = plan(&t, &r, &CreateTracker::default(), 10, &CFG);
        assert_eq!(pairs(&p), vec![(g(1), cs(1))]);
        // A peer unknown to the topology: the copyset is left alone.
        t.copysets.get_mut(&g(1)).unwrap().peers.push(cs(9));
        assert!(plan(&t, &r, &CreateTracker::default(), 10, &CFG)
            .due
            .is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_on_success() {
        let t = topo();
        let r = reported(&[(1, &[1]), (2, &[1, 2]), (3, &[2])]);
        let mut tr = CreateTracker::default();
        let due_at =
            |tr: &CreateTracker, now| pairs(&plan(&t, &r, tr, now, &CFG)) == vec![(g(1), cs(3))];
        assert!(due_at(&tr, 0));
        tr.record(g(1), cs(3), 0, false); // 1 failure → 2 s
        assert!(!due_at(&tr, 1_999));
        assert!(due_at(&tr, 2_000));
        tr.record(g(1), cs(3), 2_000, false); // 2 failures → 4 s
        assert!(!due_at(&tr, 5_999));
        assert!(due_at(&tr, 6_000));
        for i in 0..10 {
            tr.record(g(1), cs(3), 6_000, false);
            assert!(tr.get(g(1), cs(3)).unwrap().failures >= 3 + i);
        }
        assert!(!due_at(&tr, 10_999), "capped at retry-max-ms");
        assert!(due_at(&tr, 11_000));
        tr.record(g(1), cs(3), 11_000, true); // accepted → retry-min-ms
        assert_eq!(tr.get(g(1), cs(3)).unwrap().failures, 0);
        assert!(!due_at(&tr, 11_999));
        assert!(due_at(&tr, 12_000));
        // The clock went back: due at once.
        assert!(due_at(&tr, 5));
        assert_eq!(CFG.backoff_ms(u32::MAX), 5_000);
    }

    #[test]
    fn tracker_forgets_what_is_no_longer_missing() {
        let t = topo();
        let mut tr = CreateTracker::default();
        tr.record(g(1), cs(3), 0, false);
        tr.record(g(2), cs(4), 0, false);
        let r = reported(&[(3, &[]), (4, &[2])]);
        let p = plan(&t, &r, &tr, 0, &CFG);
        tr.retain(&p.missing);
        assert_eq!(tr.len(), 1);
        assert!(tr.get(g(1), cs(3)).is_some());
    }
}
