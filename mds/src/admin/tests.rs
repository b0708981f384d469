use super::*;
use crate::topology::{ChunkServer, LogicalPool, PhysicalPool, Server, Zone};
use basalt_proto::heartbeat::DiskStats;
use basalt_proto::ids::{CopysetId, Epoch, PhysicalPoolId, ServerId, ZoneId};

fn cs(i: u32) -> ChunkServerId {
    ChunkServerId(i)
}

fn g(i: u32) -> GroupId {
    GroupId::of(LogicalPoolId(1), CopysetId(i))
}

/// 3 zones, one server and chunkserver each (cs1..cs3) plus cs4 in zone 1; copysets:
/// g1 = {1,2,3} led by 1, g2 = {2,3,4} led by 2, g3 = {1,2,3} with no leader.
fn topo() -> Topology {
    let mut t = Topology::default();
    t.ppools.insert(
        PhysicalPoolId(1),
        PhysicalPool {
            id: PhysicalPoolId(1),
            name: "p".into(),
        },
    );
    for z in 1..=3 {
        t.zones.insert(
            ZoneId(z),
            Zone {
                id: ZoneId(z),
                name: format!("z{z}"),
                pool: PhysicalPoolId(1),
            },
        );
        t.servers.insert(
            ServerId(z),
            Server {
                id: ServerId(z),
                name: format!("h{z}"),
                zone: ZoneId(z),
            },
        );
    }
    for i in 1..=4 {
        t.chunkservers.insert(
            cs(i),
            ChunkServer {
                id: cs(i),
                server: ServerId(if i == 4 { 1 } else { i }),
                disk_uuid: format!("d{i}"),
                token: "t".into(),
                addr: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                disk: DiskStats {
                    total_bytes: 1000,
                    used_bytes: 10 * u64::from(i),
                    ..Default::default()
                },
                last_seen_ms: 100 * u64::from(i),
                state: OnlineState::Online,
            },
        );
    }
    t.lpools.insert(
        LogicalPoolId(1),
        LogicalPool {
            id: LogicalPoolId(1),
            name: "blocks".into(),
            physical: PhysicalPoolId(1),
            replicas: 3,
            copysets_per_chunkserver: 7,
            scatter_width: 0,
        },
    );
    for (i, peers, leader) in [
        (1, [1, 2, 3], Some(1)),
        (2, [2, 3, 4], Some(2)),
        (3, [1, 2, 3], None),
    ] {
        t.copysets.insert(
            g(i),
            CopysetRecord {
                group: g(i),
                epoch: Epoch(3),
                peers: peers.iter().map(|p| cs(*p)).collect(),
                leader: leader.map(cs),
            },
        );
    }
    t
}

#[test]
fn health_follows_leader_and_peer_states() {
    let mut t = topo();
    assert_eq!(
        copyset_health(&t, &t.copysets[&g(1)]),
        CopysetHealth::Healthy
    );
    assert_eq!(
        copyset_health(&t, &t.copysets[&g(3)]),
        CopysetHealth::Leaderless
    );
    t.chunkservers.get_mut(&cs(3)).unwrap().state = OnlineState::Unstable;
    assert_eq!(
        copyset_health(&t, &t.copysets[&g(1)]),
        CopysetHealth::Degraded
    );
    t.chunkservers.get_mut(&cs(3)).unwrap().state = OnlineState::Online;
    t.chunkservers.get_mut(&cs(2)).unwrap().disk.disk_failed = true;
    assert_eq!(
        copyset_health(&t, &t.copysets[&g(1)]),
        CopysetHealth::Degraded
    );
    assert_eq!(
        copyset_health(&t, &t.copysets[&g(2)]),
        CopysetHealth::Leaderless,
        "a failed leader is no leader"
    );
    // A leader hint that is not a peer is ignored.
    t.copysets.get_mut(&g(1)).unwrap().leader = Some(cs(4));
    assert_eq!(
        copyset_health(&t, &t.copysets[&g(1)]),
        CopysetHealth::Leaderless
    );
}

#[test]
fn observation_and_status_count_everything() {
    let mut t = topo();
    t.chunkservers.get_mut(&cs(4)).unwrap().state = OnlineState::Offline;
    let o = observe(&t, 2, 1_000);
    assert_eq!(
        o.heartbeat_lag_ms,
        vec![(cs(1), 900), (cs(2), 800), (cs(3), 700), (cs(4), 600)]
    );
    assert_eq!(
        o.chunkservers,
        vec![
            (ChunkServerState::Online, 3),
            (ChunkServerState::Unstable, 0),
            (ChunkServerState::Offline, 1)
        ]
    );
    assert_eq!(
        o.copysets,
        vec![
            (CopysetHealth::Healthy, 1),
            (CopysetHealth::Degraded, 1),
            (CopysetHealth::Leaderless, 1)
        ]
    );
    assert_eq!(o.operators_pending, 2);
    let addr: SocketAddr = "10.0.0.1:8100".parse().unwrap();
    let s = cluster_status(&t, 2, Some(addr));
    assert_eq!(
        s,
        ClusterStatusReply {
            active_mds: Some(addr),
            chunkservers_online: 3,
            chunkservers_unstable: 0,
            chunkservers_offline: 1,
            copysets_healthy: 1,
            copysets_degraded: 1,
            copysets_leaderless: 1,
            used_bytes: 100,
            total_bytes: 4000,
            operators_pending: 2,
        }
    );
}

#[test]
fn chunkserver_and_copyset_listings() {
    let t = topo();
    let l = list_chunkservers(&t);
    assert_eq!(l.len(), 4);
    let c4 = &l[3];
    assert_eq!(
        (
            c4.id,
            c4.server.as_str(),
            c4.zone.as_str(),
            c4.copysets,
            c4.leaders
        ),
        (cs(4), "h1", "z1", 1, 0)
    );
    assert_eq!((l[0].copysets, l[0].leaders), (2, 1));
    assert_eq!((l[1].copysets, l[1].leaders), (3, 1));
    assert_eq!(l[1].disk.used_bytes, 20);
    assert_eq!(l[1].state, ChunkServerState::Online);
    let cps = list_copysets(&t, LogicalPoolId(1)).unwrap();
    assert_eq!(
        cps.iter().map(|c| (c.group, c.health)).collect::<Vec<_>>(),
        vec![
            (g(1), CopysetHealth::Healthy),
            (g(2), CopysetHealth::Healthy),
            (g(3), CopysetHealth::Leaderless)
        ]
    );
    assert_eq!(cps[1].peers, vec![cs(2), cs(3), cs(4)]);
    assert_eq!(cps[1].leader, Some(cs(2)));
    assert_eq!(
        list_copysets(&t, LogicalPoolId(9)),
        Err(MdsError::PoolNotFound {
            pool: LogicalPoolId(9)
        })
    );
}

#[test]
fn topology_renders_to_a_map_that_changes_nothing() {
    let t = topo();
    let text = render_cluster_map(&to_cluster_map(&t));
    let map = ClusterMap::parse(&text).unwrap();
    assert_eq!(map.server.len(), 3);
    assert_eq!(map.logical_pool[0].copysets_per_chunkserver, 7);
    let d = crate::topology::clustermap::diff(&map, &t).unwrap();
    assert!(d.is_empty(), "{text}");
    // An empty topology renders to an empty (valid) map.
    let empty = render_cluster_map(&to_cluster_map(&Topology::default()));
    assert_eq!(ClusterMap::parse(&empty).unwrap(), ClusterMap::default());
}

#[test]
fn transfer_leader_rules() {
    let mut t = topo();
    let ops = OperatorSet::default();
    let p = plan_transfer_leader(&t, &ops, g(1), cs(2), 5).unwrap();
    assert_eq!(
        p.op,
        Operator {
            group: g(1),
            epoch: Epoch(3),
            kind: OperatorKind::TransferLeader(cs(2))
        }
    );
    assert_eq!((p.involved.clone(), p.issued_ms), (vec![cs(1), cs(2)], 5));
    let mut busy = OperatorSet::default();
    busy.extend([p]);
    // One operator per copyset, one per chunkserver.
    assert_eq!(
        plan_transfer_leader(&t, &busy, g(1), cs(3), 5),
        Err(MdsError::OperatorPending { group: g(1) })
    );
    assert_eq!(
        plan_transfer_leader(&t, &busy, g(2), cs(3), 5),
        Err(MdsError::ChunkServerBusy { id: cs(2) })
    );
    assert_eq!(
        plan_transfer_leader(&t, &ops, g(1), cs(4), 5),
        Err(MdsError::NotAPeer {
            group: g(1),
            chunkserver: cs(4)
        })
    );
    assert_eq!(
        plan_transfer_leader(&t, &ops, g(1), cs(1), 5),
        Err(MdsError::OperatorRefused {
            group: g(1),
            reason: OperatorRefusal::AlreadyLeader
        })
    );
    assert_eq!(
        plan_transfer_leader(&t, &ops, g(3), cs(1), 5),
        Err(MdsError::LeaderUnknown { group: g(3) })
    );
    assert_eq!(
        plan_transfer_leader(&t, &ops, g(9), cs(1), 5),
        Err(MdsError::CopysetNotFound { group: g(9) })
    );
    t.chunkservers.get_mut(&cs(3)).unwrap().state = OnlineState::Offline;
    assert_eq!(
        plan_transfer_leader(&t, &ops, g(1), cs(3), 5),
        Err(MdsError::OperatorRefused {
            group: g(1),
            reason: OperatorRefusal::TargetNotOnline
        })
    );
}

#[test]
fn remove_peer_rules() {
    let mut t = topo();
    let ops = OperatorSet::default();
    let p = plan_remove_peer(&t, &ops, g(2), cs(4), 7).unwrap();
    assert_eq!(p.op.kind, OperatorKind::RemovePeer(cs(4)));
    assert_eq!(p.involved, vec![cs(2)]);
    assert_eq!(
        plan_remove_peer(&t, &ops, g(2), cs(2), 7),
        Err(MdsError::OperatorRefused {
            group: g(2),
            reason: OperatorRefusal::RemoveLeader
        })
    );
    assert_eq!(
        plan_remove_peer(&t, &ops, g(2), cs(1), 7),
        Err(MdsError::NotAPeer {
            group: g(2),
            chunkserver: cs(1)
        })
    );
    // The leader of g1 (cs1) is busy with a transfer elsewhere → refused.
    let mut busy = OperatorSet::default();
    busy.extend([PendingOp {
        op: Operator {
            group: g(3),
            epoch: Epoch(3),
            kind: OperatorKind::TransferLeader(cs(1)),
        },
        issued_ms: 0,
        involved: vec![cs(1)],
    }]);
    assert_eq!(
        plan_remove_peer(&t, &busy, g(1), cs(3), 7),
        Err(MdsError::ChunkServerBusy { id: cs(1) })
    );
    let rec = t.copysets.get_mut(&g(1)).unwrap();
    rec.peers = vec![cs(1)];
    assert_eq!(
        plan_remove_peer(&t, &ops, g(1), cs(1), 7),
        Err(MdsError::OperatorRefused {
            group: g(1),
            reason: OperatorRefusal::LastPeer
        })
    );
}

#[test]
fn drain_status_tracks_what_is_left() {
    let mut t = topo();
    let ops = OperatorSet::default();
    // Not marked: in service, whatever it holds.
    let s = drain_status(&t, &ops, cs(4));
    assert_eq!((s.state, s.copysets), (DrainState::InService, 1));
    assert!(list_drains(&t, &ops).is_empty());
    // cs4 (zone 1) holds g2 = {2,3,4}: cs1 in zone 1 can take it.
    t.draining.insert(cs(4));
    let s = drain_status(&t, &ops, cs(4));
    assert_eq!(
        (s.state, s.copysets, s.leaders, s.blocked),
        (DrainState::Draining, 1, 0, 0)
    );
    // cs2 (zone 2, alone there) cannot hand its copysets to anyone.
    t.draining.insert(cs(2));
    let s = drain_status(&t, &ops, cs(2));
    assert_eq!((s.copysets, s.leaders, s.blocked), (3, 1, 3));
    assert_eq!(
        list_drains(&t, &ops)
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        vec![cs(2), cs(4)]
    );
    // Once the copyset moved, cs4 is drained.
    t.copysets.get_mut(&g(2)).unwrap().peers = vec![cs(2), cs(3), cs(1)];
    let s = drain_status(&t, &ops, cs(4));
    assert_eq!((s.state, s.copysets), (DrainState::Drained, 0));
}

#[test]
fn drain_requests_are_checked() {
    let mut t = topo();
    let req = |id, undo| DrainChunkServer { id: cs(id), undo };
    assert_eq!(
        check_drain(&t, &req(9, false)),
        Err(MdsError::UnknownChunkServer { id: cs(9) })
    );
    assert_eq!(check_drain(&t, &req(1, false)), Ok(true));
    assert_eq!(
        check_drain(&t, &req(1, true)),
        Ok(false),
        "undo: nothing to do"
    );
    t.draining.insert(cs(1));
    assert_eq!(
        check_drain(&t, &req(1, false)),
        Ok(false),
        "already draining"
    );
    assert_eq!(check_drain(&t, &req(1, true)), Ok(true));
}

#[test]
fn pools_are_listed_with_their_ids_and_space() {
    let mut t = topo();
    t.lpools.insert(
        LogicalPoolId(5),
        LogicalPool {
            id: LogicalPoolId(5),
            name: "cold".into(),
            physical: PhysicalPoolId(1),
            replicas: 2,
            copysets_per_chunkserver: 3,
            scatter_width: 2,
        },
    );
    let l = list_pools(&t, 85);
    assert_eq!(l.len(), 2);
    assert_eq!(
        (l[0].id, l[0].name.as_str(), l[0].copysets),
        (LogicalPoolId(1), "blocks", 3)
    );
    assert_eq!(
        (l[1].id, l[1].replicas, l[1].copysets),
        (LogicalPoolId(5), 2, 0)
    );
    assert_eq!(l[1].scatter_width, 2);
    assert_eq!(l[0].physical_pool, "p");
    assert_eq!((l[0].used_bytes, l[0].total_bytes), (100, 4000));
    assert_eq!(l[0].usage_limit_percent, 85);
}
