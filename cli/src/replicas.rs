//! Judging a copyset from its replicas' own answers (sans-IO): for `copyset status` and
//! `copyset check --deep`. The MDS's view comes from heartbeats; this one asks the peers.

use crate::admin::ProbeError;
use basalt_proto::chunk::{CopysetStatusOk, RaftRole};
use basalt_proto::ids::{ChunkServerId, Epoch};
use basalt_proto::mds::CopysetInfo;
use serde::Serialize;

/// A replica problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "problem")]
pub enum Problem {
    /// A peer did not answer or has no replica.
    PeerDown {
        /// The peer.
        peer: ChunkServerId,
        /// What happened.
        error: String,
    },
    /// No replica says it leads.
    NoLeader,
    /// More than one replica says it leads in the newest term.
    SplitLeadership {
        /// The replicas claiming leadership.
        leaders: Vec<ChunkServerId>,
    },
    /// Replicas disagree on who leads.
    LeaderDisagreement,
    /// A replica's configuration epoch differs from the MDS's.
    EpochMismatch {
        /// The peer.
        peer: ChunkServerId,
        /// Its epoch.
        replica: Epoch,
        /// The MDS's.
        mds: Epoch,
    },
    /// A replica's voters differ from the MDS's.
    PeersMismatch {
        /// The peer.
        peer: ChunkServerId,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::PeerDown { peer, error } => write!(f, "{peer}: {error}"),
            Problem::NoLeader => f.write_str("no replica leads"),
            Problem::SplitLeadership { leaders } => {
                let l: Vec<String> = leaders.iter().map(ToString::to_string).collect();
                write!(f, "several leaders: {}", l.join(", "))
            }
            Problem::LeaderDisagreement => f.write_str("replicas disagree on the leader"),
            Problem::EpochMismatch { peer, replica, mds } => {
                write!(f, "{peer}: epoch {} but the MDS has {}", replica.0, mds.0)
            }
            Problem::PeersMismatch { peer } => write!(f, "{peer}: voters differ from the MDS's"),
        }
    }
}

/// What is wrong with a copyset given the MDS's placement and each peer's answer
/// (`answers[i]` is from `info.peers[i]`). Empty: every replica is up, agrees with the MDS
/// and one leader is recognised by all.
pub fn judge(info: &CopysetInfo, answers: &[Result<CopysetStatusOk, ProbeError>]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut mds_peers: Vec<ChunkServerId> = info.peers.iter().map(|p| p.id).collect();
    mds_peers.sort();
    let mut ok = Vec::new();
    for (p, a) in info.peers.iter().zip(answers) {
        match a {
            Err(e) => out.push(Problem::PeerDown {
                peer: p.id,
                error: e.to_string(),
            }),
            Ok(s) => ok.push((p.id, s)),
        }
    }
    let newest = ok.iter().map(|(_, s)| s.term).max().unwrap_or(0);
    let leaders: Vec<ChunkServerId> = ok
        .iter()
        .filter(|(_, s)| s.role == RaftRole::Leader && s.term == newest)
        .map(|(id, _)| *id)
        .collect();
    match leaders.len() {
        0 if !ok.is_empty() => out.push(Problem::NoLeader),
        0 | 1 => {}
        _ => out.push(Problem::SplitLeadership {
            leaders: leaders.clone(),
        }),
    }
    if leaders.len() == 1 && ok.iter().any(|(_, s)| s.leader != Some(leaders[0])) {
        out.push(Problem::LeaderDisagreement);
    }
    for (id, s) in &ok {
        if s.epoch != info.epoch {
            out.push(Problem::EpochMismatch {
                peer: *id,
                replica: s.epoch,
                mds: info.epoch,
            });
        } else {
            let mut voters: Vec<ChunkServerId> = s.peers.iter().map(|p| p.id).collect();
            voters.sort();
            if voters != mds_peers {
                out.push(Problem::PeersMismatch { peer: *id });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::GroupId;
    use basalt_proto::status::PeerAddr;

    fn peer(i: u32) -> PeerAddr {
        PeerAddr {
            id: ChunkServerId(i),
            addr: format!("127.0.0.1:{}", 6800 + i).parse().unwrap(),
        }
    }

    fn info() -> CopysetInfo {
        CopysetInfo {
            group: GroupId(1 << 32 | 1),
            epoch: Epoch(2),
            peers: vec![peer(1), peer(2), peer(3)],
            leader: Some(ChunkServerId(1)),
        }
    }

    fn replica(role: RaftRole, term: u64, leader: u32) -> Result<CopysetStatusOk, ProbeError> {
        Ok(CopysetStatusOk {
            role,
            term,
            leader: Some(ChunkServerId(leader)),
            epoch: Epoch(2),
            peers: vec![peer(3), peer(2), peer(1)],
            learners: vec![],
            last_index: 10,
            committed: 10,
            applied: 10,
        })
    }

    #[test]
    fn a_healthy_copyset_has_no_problems() {
        let a = [
            replica(RaftRole::Leader, 3, 1),
            replica(RaftRole::Follower, 3, 1),
            replica(RaftRole::Follower, 3, 1),
        ];
        assert_eq!(judge(&info(), &a), vec![]);
    }

    #[test]
    fn problems_are_named() {
        let a = [
            replica(RaftRole::Leader, 3, 1),
            Err(ProbeError::Unreachable),
            replica(RaftRole::Follower, 3, 2),
        ];
        assert_eq!(
            judge(&info(), &a),
            vec![
                Problem::PeerDown {
                    peer: ChunkServerId(2),
                    error: "unreachable".into()
                },
                Problem::LeaderDisagreement
            ]
        );
        // A stale leader of an older term is not a second leader.
        let a = [
            replica(RaftRole::Leader, 3, 1),
            replica(RaftRole::Leader, 4, 2),
            replica(RaftRole::Follower, 4, 2),
        ];
        assert_eq!(judge(&info(), &a), vec![Problem::LeaderDisagreement]);
        let a = [
            replica(RaftRole::Leader, 4, 1),
            replica(RaftRole::Leader, 4, 2),
            replica(RaftRole::Candidate, 4, 2),
        ];
        assert!(matches!(
            judge(&info(), &a)[0],
            Problem::SplitLeadership { .. }
        ));
        let mut old = replica(RaftRole::Follower, 3, 1).unwrap();
        old.epoch = Epoch(1);
        let mut fewer = replica(RaftRole::Follower, 3, 1).unwrap();
        fewer.peers.pop();
        let a = [Ok(old), Ok(fewer), replica(RaftRole::Candidate, 3, 1)];
        let p = judge(&info(), &a);
        assert_eq!(p[0], Problem::NoLeader);
        assert!(p.contains(&Problem::PeersMismatch {
            peer: ChunkServerId(2)
        }));
        assert_eq!(p[1].to_string(), "cs1: epoch 1 but the MDS has 2");
        // Nobody answering is only peers down.
        let down = [
            Err(ProbeError::Unreachable),
            Err(ProbeError::Unreachable),
            Err(ProbeError::Unreachable),
        ];
        assert_eq!(judge(&info(), &down).len(), 3);
    }
}
