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
//! refuses them: those cases, and any doubt, are left to the election timeout. If the
//! successor's log is behind the other survivor's, its campaign is refused and the normal
//! election follows; safety never depends on this path, only the speed of failover.
//!
//! [`watched_leaders`] and [`handoffs`] are the pure decisions; the registry runs the loop.

use basalt_proto::ids::GroupId;
use std::collections::BTreeSet;

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
