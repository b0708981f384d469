//! Fast failover when a leader's *process* dies.
//!
//! Raft alone notices a dead leader only when its election timeout runs out (2.5–4 s by
//! default, kept long so a leader is never deposed because I/O saturated the CPU). Yet a
//! crashed or SIGKILLed chunkserver is visible at once: the kernel closes its sockets, and
//! a new dial to its address is refused. Each chunkserver keeps one watch connection to
//! every chunkserver that leads a group it follows; when that connection closes and a
//! fresh dial is *refused* (nothing listens there any more), the leader is gone, and the
//! followers of each of its groups hand the group over among themselves without waiting
//! for the timeout:
//!
//! - every surviving voter drops its leader lease for that leader (so it will grant a vote
//!   at once), and
//! - the successor — the lowest surviving voter id, the same choice on every follower with
//!   no messages exchanged — campaigns as if the dead leader had transferred leadership
//!   to it (openraft's transfer-leader path, which voters grant despite the lease).
//!
//! A hung (SIGSTOPped) or partitioned leader still accepts or times out dials, never
//! refuses them. If the successor's log is behind the other survivor's, its campaign is
//! refused and the normal election follows; safety never depends on this path, only the
//! speed of failover.
//!
//! A *silent* leader (hung, partitioned) is handled by a nudge instead: a voter that has
//! heard nothing from its leader (no append, no heartbeat) for longer than the leader's
//! lease (the election timeout maximum) plus one heartbeat interval starts a pre-vote at
//! once ([`leader_silent`]). openraft followers refuse to pre-vote while that lease runs
//! and their randomized election timer fires only later, so without the nudge a hung
//! leader is replaced up to one more election timeout after its lease ran out. The nudge
//! cannot disturb a live leader: pre-vote changes no term, and a voter that still hears
//! the leader, or whose own lease is still valid, refuses it.
//!
//! [`watched_leaders`], [`handoffs`] and [`leader_silent`] are the pure decisions; the
//! registry runs the loop.

use basalt_proto::ids::GroupId;
use std::collections::BTreeSet;
use std::time::Duration;

/// Whether a replica should start a pre-vote now: it is a voter following a leader that
/// has sent it nothing for longer than `lease` plus `slack`. `silent_for`: time since the
/// leader's last append or heartbeat reached this replica (None: none since it started,
/// left to the election timer).
pub fn leader_silent(
    voting_follower: bool,
    silent_for: Option<Duration>,
    lease: Duration,
    slack: Duration,
) -> bool {
    voting_follower && silent_for.is_some_and(|s| s > lease + slack)
}

/// What the watch needs to know about one local replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// The group.
    pub group: GroupId,
    /// The leader this replica follows (None: none known).
    pub leader: Option<u64>,
    /// Voter node ids of the group's membership.
    pub voters: Vec<u64>,
}

/// One group to hand over after its leader died: `to` is the agreed successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    /// The group.
    pub group: GroupId,
    /// The successor (may be this node).
    pub to: u64,
}

/// Leaders (other than `local`) of the groups `local` votes in: the nodes to watch.
pub fn watched_leaders(local: u64, views: &[GroupView]) -> BTreeSet<u64> {
    views
        .iter()
        .filter(|v| v.voters.contains(&local))
        .filter_map(|v| v.leader)
        .filter(|&l| l != local)
        .collect()
}

/// The successor of `dead` among `voters`: the lowest other voter id.
pub fn successor(voters: &[u64], dead: u64) -> Option<u64> {
    voters.iter().copied().filter(|&v| v != dead).min()
}

/// The groups led by `dead` in which `local` is a voter, each with its successor.
pub fn handoffs(local: u64, dead: u64, views: &[GroupView]) -> Vec<Handoff> {
    views
        .iter()
        .filter(|v| v.leader == Some(dead) && dead != local && v.voters.contains(&local))
        .filter_map(|v| successor(&v.voters, dead).map(|to| Handoff { group: v.group, to }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_voting_follower_past_the_lease_is_nudged() {
        let ms = Duration::from_millis;
        let (lease, slack) = (ms(2000), ms(100));
        assert!(leader_silent(true, Some(ms(2101)), lease, slack));
        assert!(!leader_silent(true, Some(ms(2100)), lease, slack));
        assert!(!leader_silent(true, Some(ms(50)), lease, slack));
        // Never heard from a leader since start: the election timer decides.
        assert!(!leader_silent(true, None, lease, slack));
        // Leaders, candidates and learners are never nudged.
        assert!(!leader_silent(false, Some(ms(10_000)), lease, slack));
    }

    fn view(g: u64, leader: Option<u64>, voters: &[u64]) -> GroupView {
        GroupView {
            group: GroupId(g),
            leader,
            voters: voters.to_vec(),
        }
    }

    #[test]
    fn watches_the_leaders_of_groups_it_votes_in_but_not_itself() {
        let views = [
            view(1, Some(2), &[1, 2, 3]),
            view(2, Some(1), &[1, 2, 3]),
            view(3, Some(3), &[1, 2, 3]),
            view(4, None, &[1, 2, 3]),
            // A learner here: not its business.
            view(5, Some(4), &[2, 3, 4]),
        ];
        assert_eq!(watched_leaders(1, &views), BTreeSet::from([2, 3]));
    }

    #[test]
    fn every_survivor_picks_the_same_successor() {
        let views = [view(7, Some(2), &[5, 2, 9]), view(8, Some(5), &[5, 2, 9])];
        for local in [5, 9] {
            assert_eq!(
                handoffs(local, 2, &views),
                vec![Handoff {
                    group: GroupId(7),
                    to: 5
                }]
            );
        }
        // The dead node itself and nodes outside the group do nothing.
        assert!(handoffs(2, 2, &views).is_empty());
        assert!(handoffs(4, 2, &views).is_empty());
    }

    #[test]
    fn only_groups_led_by_the_dead_node_are_handed_over() {
        let views = [
            view(1, Some(3), &[1, 2, 3]),
            view(2, Some(2), &[1, 2, 3]),
            view(3, None, &[1, 2, 3]),
            view(4, Some(3), &[1, 3]),
        ];
        assert_eq!(
            handoffs(1, 3, &views),
            vec![
                Handoff {
                    group: GroupId(1),
                    to: 1
                },
                Handoff {
                    group: GroupId(4),
                    to: 1
                }
            ]
        );
        assert_eq!(successor(&[3], 3), None);
    }
}
