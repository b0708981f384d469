//! Heartbeat handling (sans-IO): chunkserver liveness and stats, and copyset membership
//! reconciled by epoch.
//!
//! Only a copyset's leader is believed about membership: its report replaces the MDS's
//! record when its epoch is higher (a finished change), refreshes the leader hint when
//! equal, and is ignored when lower (stale: a deposed leader or a delayed heartbeat).
//! A replica of a copyset the MDS does not know, or of one that moved past it (higher
//! recorded epoch without it among the peers), is reported back as a stray.

use crate::topology::{CopysetRecord, OnlineState, Topology};
use basalt_proto::heartbeat::Heartbeat;
use basalt_proto::ids::GroupId;
use basalt_proto::status::MdsError;

/// What a heartbeat changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    /// Copysets whose membership (epoch) changed: persist these.
    pub changed: Vec<CopysetRecord>,
    /// Replicas the chunkserver should drop (candidates; the caller removes those an
    /// operator is adding).
    pub strays: Vec<GroupId>,
    /// The chunkserver's address changed: persist its record.
    pub addr_changed: bool,
}

/// Apply a heartbeat at `now_ms`.
pub fn handle(
    topo: &mut Topology,
    hb: &Heartbeat,
    now_ms: u64,
) -> Result<HeartbeatOutcome, MdsError> {
    let cs = topo
        .chunkservers
        .get_mut(&hb.id)
        .ok_or(MdsError::UnknownChunkServer { id: hb.id })?;
    if cs.token != hb.token {
        return Err(MdsError::TokenMismatch { id: hb.id });
    }
    let mut out = HeartbeatOutcome {
        addr_changed: cs.addr != hb.addr,
        ..Default::default()
    };
    cs.addr = hb.addr;
    cs.disk = hb.disk;
    cs.last_seen_ms = now_ms;
    cs.state = OnlineState::Online;
    for r in &hb.copysets {
        let Some(rec) = topo.copysets.get_mut(&r.group) else {
            out.strays.push(r.group);
            continue;
        };
        if r.leader == Some(hb.id) {
            if r.epoch > rec.epoch {
                tracing::info!(group = %r.group, from = %rec.epoch, to = %r.epoch, peers = ?r.peers, "copyset membership changed");
                rec.epoch = r.epoch;
                rec.peers = r.peers.clone();
                rec.leader = Some(hb.id);
                out.changed.push(rec.clone());
            } else if r.epoch == rec.epoch {
                rec.leader = Some(hb.id);
            }
        } else if rec.epoch > r.epoch && !rec.peers.contains(&hb.id) {
            out.strays.push(r.group);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{ChunkServer, Server, Zone};
    use basalt_proto::heartbeat::{CopysetReport, DiskStats};
    use basalt_proto::ids::{
        ChunkServerId, CopysetId, Epoch, LogicalPoolId, PhysicalPoolId, ServerId, ZoneId,
    };

    fn cs(id: u32) -> ChunkServerId {
        ChunkServerId(id)
    }

    fn topo() -> Topology {
        let mut t = Topology::default();
        t.zones.insert(
            ZoneId(1),
            Zone {
                id: ZoneId(1),
                name: "z".into(),
                pool: PhysicalPoolId(1),
            },
        );
        t.servers.insert(
            ServerId(1),
            Server {
                id: ServerId(1),
                name: "h".into(),
                zone: ZoneId(1),
            },
        );
        for i in 1..=4 {
            t.chunkservers.insert(
                cs(i),
                ChunkServer {
                    id: cs(i),
                    server: ServerId(1),
                    disk_uuid: format!("d{i}"),
                    token: format!("t{i}"),
                    addr: "127.0.0.1:1".parse().unwrap(),
                    disk: DiskStats::default(),
                    last_seen_ms: 0,
                    state: OnlineState::Unstable,
                },
            );
        }
        let g = GroupId::of(LogicalPoolId(1), CopysetId(1));
        t.copysets.insert(
            g,
            CopysetRecord {
                group: g,
                epoch: Epoch(5),
                peers: vec![cs(1), cs(2), cs(3)],
                leader: None,
            },
        );
        t
    }

    fn hb(id: u32, reports: Vec<CopysetReport>) -> Heartbeat {
        Heartbeat {
            id: cs(id),
            token: format!("t{id}"),
            addr: "127.0.0.1:2".parse().unwrap(),
            disk: DiskStats {
                total_bytes: 100,
                used_bytes: 10,
                ..Default::default()
            },
            copysets: reports,
        }
    }

    fn report(epoch: u64, leader: u32, peers: &[u32]) -> CopysetReport {
        CopysetReport {
            group: GroupId::of(LogicalPoolId(1), CopysetId(1)),
            epoch: Epoch(epoch),
            leader: Some(cs(leader)),
            peers: peers.iter().map(|&p| cs(p)).collect(),
            conf_change: None,
        }
    }

    #[test]
    fn unknown_and_bad_token_refused() {
        let mut t = topo();
        assert_eq!(
            handle(&mut t, &hb(9, vec![]), 1),
            Err(MdsError::UnknownChunkServer { id: cs(9) })
        );
        let mut bad = hb(1, vec![]);
        bad.token = "x".into();
        assert_eq!(
            handle(&mut t, &bad, 1),
            Err(MdsError::TokenMismatch { id: cs(1) })
        );
    }

    #[test]
    fn updates_liveness_and_stats() {
        let mut t = topo();
        let out = handle(&mut t, &hb(1, vec![]), 77).unwrap();
        assert!(out.addr_changed);
        let c = &t.chunkservers[&cs(1)];
        assert_eq!(
            (c.last_seen_ms, c.state, c.disk.used_bytes),
            (77, OnlineState::Online, 10)
        );
    }

    #[test]
    fn higher_epoch_from_leader_wins_stale_ignored() {
        let mut t = topo();
        let g = GroupId::of(LogicalPoolId(1), CopysetId(1));
        // Same epoch: leader hint only.
        let out = handle(&mut t, &hb(1, vec![report(5, 1, &[1, 2, 3])]), 1).unwrap();
        assert!(out.changed.is_empty());
        assert_eq!(t.copysets[&g].leader, Some(cs(1)));
        // Higher epoch from the leader: membership replaced.
        let out = handle(&mut t, &hb(2, vec![report(6, 2, &[1, 2, 4])]), 2).unwrap();
        assert_eq!(out.changed.len(), 1);
        assert_eq!(t.copysets[&g].peers, vec![cs(1), cs(2), cs(4)]);
        assert_eq!(t.copysets[&g].epoch, Epoch(6));
        // A stale report (old leader, old epoch) changes nothing.
        let out = handle(&mut t, &hb(1, vec![report(5, 1, &[1, 2, 3])]), 3).unwrap();
        assert!(out.changed.is_empty());
        assert_eq!(t.copysets[&g].epoch, Epoch(6));
        assert_eq!(t.copysets[&g].leader, Some(cs(2)));
        // A follower's higher epoch is not believed.
        let mut r = report(9, 2, &[1]);
        r.leader = Some(cs(2));
        handle(&mut t, &hb(1, vec![r]), 4).unwrap();
        assert_eq!(t.copysets[&g].epoch, Epoch(6));
    }

    #[test]
    fn strays_detected() {
        let mut t = topo();
        let g = GroupId::of(LogicalPoolId(1), CopysetId(1));
        handle(&mut t, &hb(2, vec![report(6, 2, &[1, 2, 4])]), 1).unwrap();
        // cs3 was removed at epoch 6 and still reports epoch 5 as a follower.
        let out = handle(&mut t, &hb(3, vec![report(5, 1, &[1, 2, 3])]), 2).unwrap();
        assert_eq!(out.strays, vec![g]);
        // An unknown copyset is a stray too.
        let mut unknown = report(1, 4, &[4]);
        unknown.group = GroupId::of(LogicalPoolId(1), CopysetId(99));
        let out = handle(&mut t, &hb(4, vec![unknown]), 3).unwrap();
        assert_eq!(
            out.strays,
            vec![GroupId::of(LogicalPoolId(1), CopysetId(99))]
        );
    }
}
