use super::*;
use crate::placement::{place, PlacementRequest};
use crate::topology::{ChunkServer, CopysetRecord, LogicalPool, PhysicalPool, Server, Zone};
use basalt_proto::heartbeat::DiskStats;
use basalt_proto::ids::{Epoch, LogicalPoolId, ServerId, ZoneId};
use proptest::prelude::*;
use std::collections::HashMap;

/// zones × servers × chunkservers; chunkserver id = zone*100 + server*10 + disk.
fn cluster(zones: u32, servers: u32, disks: u32, per_cs: u32) -> Topology {
    let mut t = Topology::default();
    t.ppools.insert(
        PhysicalPoolId(1),
        PhysicalPool {
            id: PhysicalPoolId(1),
            name: "p".into(),
        },
    );
    let mut members = Vec::new();
    for z in 1..=zones {
        t.zones.insert(
            ZoneId(z),
            Zone {
                id: ZoneId(z),
                name: format!("z{z}"),
                pool: PhysicalPoolId(1),
            },
        );
        for s in 1..=servers {
            let sid = ServerId(z * 100 + s);
            t.servers.insert(
                sid,
                Server {
                    id: sid,
                    name: format!("h{}", sid.0),
                    zone: ZoneId(z),
                },
            );
            for d in 1..=disks {
                let id = ChunkServerId(z * 100 + s * 10 + d);
                members.push((id, ZoneId(z)));
                t.chunkservers.insert(
                    id,
                    ChunkServer {
                        id,
                        server: sid,
                        disk_uuid: format!("d{}", id.0),
                        token: "t".into(),
                        addr: format!("127.0.0.1:{}", 10000 + id.0).parse().unwrap(),
                        disk: DiskStats::default(),
                        last_seen_ms: 0,
                        state: OnlineState::Online,
                    },
                );
            }
        }
    }
    t.lpools.insert(
        LogicalPoolId(1),
        LogicalPool {
            id: LogicalPoolId(1),
            name: "l".into(),
            physical: PhysicalPoolId(1),
            replicas: 3,
            copysets_per_chunkserver: per_cs,
            scatter_width: 0,
        },
    );
    let req = PlacementRequest {
        pool: LogicalPoolId(1),
        replicas: 3,
        copysets_per_chunkserver: per_cs,
        members,
        first_copyset: 1,
        seed: 1,
    };
    for (i, mut c) in place(&req).unwrap().into_iter().enumerate() {
        // Leaders spread round-robin over the peers.
        c.leader = Some(c.peers[i % c.peers.len()]);
        t.copysets.insert(c.group, c);
    }
    t
}

fn set_state(t: &mut Topology, c: ChunkServerId, s: OnlineState) {
    t.chunkservers.get_mut(&c).unwrap().state = s;
}

/// What raft does by itself: copysets whose leader went offline elect an online peer.
fn reelect(t: &mut Topology) {
    let online: BTreeSet<ChunkServerId> = t
        .chunkservers
        .values()
        .filter(|c| c.state == OnlineState::Online)
        .map(|c| c.id)
        .collect();
    for c in t.copysets.values_mut() {
        if c.leader.is_some_and(|l| !online.contains(&l)) {
            c.leader = c.peers.iter().copied().find(|p| online.contains(p));
        }
    }
}

fn no_balance() -> SchedulerConfig {
    SchedulerConfig {
        leader_balance: false,
        ..Default::default()
    }
}

/// Invariants every round must keep.
fn check_round(t: &Topology, pending: &OperatorSet, ops: &[PendingOp]) {
    let mut busy = pending.busy();
    let mut groups = BTreeSet::new();
    for p in ops {
        assert!(
            groups.insert(p.op.group),
            "two operators for {}",
            p.op.group
        );
        assert!(pending.get(p.op.group).is_none());
        for c in &p.involved {
            assert!(busy.insert(*c), "{c} in two operators");
        }
        let rec = &t.copysets[&p.op.group];
        assert_eq!(p.op.epoch, rec.epoch);
        let leader = rec.leader.unwrap();
        assert_eq!(
            t.chunkservers[&leader].state,
            OnlineState::Online,
            "leader must be online"
        );
        let mut after = rec.peers.clone();
        match p.op.kind {
            OperatorKind::ChangePeer { remove, add } => {
                assert!(rec.peers.contains(&remove));
                assert!(!rec.peers.contains(&add.id));
                assert_eq!(t.chunkservers[&add.id].state, OnlineState::Online);
                assert_eq!(t.chunkservers[&add.id].addr, add.addr);
                after.retain(|p| *p != remove);
                after.push(add.id);
            }
            OperatorKind::AddPeer(a) => after.push(a.id),
            OperatorKind::RemovePeer(r) => after.retain(|p| *p != r),
            OperatorKind::TransferLeader(to) => assert!(rec.peers.contains(&to) && to != leader),
        }
        let zones: BTreeSet<_> = after.iter().map(|p| t.zone_of(*p)).collect();
        assert_eq!(
            zones.len(),
            after.len(),
            "one replica per zone after {:?}",
            p.op
        );
    }
}

/// Pretend the leaders carried out the operators (as the next heartbeats would show).
fn execute(t: &mut Topology, ops: &[PendingOp]) {
    for p in ops {
        let rec = t.copysets.get_mut(&p.op.group).unwrap();
        match p.op.kind {
            OperatorKind::ChangePeer { remove, add } => {
                rec.peers.retain(|x| *x != remove);
                rec.peers.push(add.id);
                rec.epoch = Epoch(rec.epoch.0 + 1);
            }
            OperatorKind::AddPeer(a) => {
                rec.peers.push(a.id);
                rec.epoch = Epoch(rec.epoch.0 + 1);
            }
            OperatorKind::RemovePeer(r) => {
                rec.peers.retain(|x| *x != r);
                rec.epoch = Epoch(rec.epoch.0 + 1);
            }
            OperatorKind::TransferLeader(to) => rec.leader = Some(to),
        }
    }
}

#[test]
fn healthy_cluster_only_moves_leaders_and_settles() {
    let mut t = cluster(3, 2, 2, 20);
    let cfg = SchedulerConfig::default();
    let mut pending = OperatorSet::default();
    for _ in 0..50 {
        let ops = schedule(&t, &pending, 0, &cfg);
        check_round(&t, &pending, &ops);
        if ops.is_empty() {
            return;
        }
        assert!(ops
            .iter()
            .all(|p| matches!(p.op.kind, OperatorKind::TransferLeader(_))));
        pending.extend(ops.clone());
        execute(&mut t, &ops);
        pending.reconcile(&t, 0, &cfg);
    }
    panic!("scheduler did not settle");
}

#[test]
fn offline_peer_is_replaced_in_its_zone_until_recovered() {
    let mut t = cluster(3, 2, 2, 20);
    let lost = ChunkServerId(111);
    set_state(&mut t, lost, OnlineState::Offline);
    reelect(&mut t);
    let cfg = no_balance();
    let mut pending = OperatorSet::default();
    let mut now = 0;
    for round in 0..200 {
        let ops = schedule(&t, &pending, now, &cfg);
        check_round(&t, &pending, &ops);
        for p in &ops {
            match p.op.kind {
                OperatorKind::ChangePeer { remove, add } => {
                    assert_eq!(remove, lost);
                    assert_eq!(t.zone_of(add.id), t.zone_of(lost), "same zone preferred");
                }
                k => panic!("unexpected {k:?}"),
            }
        }
        pending.extend(ops.clone());
        execute(&mut t, &ops);
        now += 1000;
        pending.reconcile(&t, now, &cfg);
        assert!(pending.is_empty(), "executed operators complete");
        if t.copysets.values().all(|c| !c.peers.contains(&lost)) {
            assert!(round > 0);
            for c in t.copysets.values() {
                assert_eq!(c.peers.len(), 3);
            }
            return;
        }
    }
    panic!("recovery did not finish");
}

#[test]
fn unstable_peer_is_not_recovered() {
    let mut t = cluster(3, 2, 2, 10);
    set_state(&mut t, ChunkServerId(111), OnlineState::Unstable);
    assert!(schedule(&t, &OperatorSet::default(), 0, &no_balance()).is_empty());
}

#[test]
fn other_zone_used_when_lost_zone_has_no_spare() {
    // 4 zones, 1 chunkserver each: the lost zone has no other chunkserver.
    let mut t = cluster(4, 1, 1, 3);
    let lost = ChunkServerId(111);
    set_state(&mut t, lost, OnlineState::Offline);
    let ops = schedule(&t, &OperatorSet::default(), 0, &no_balance());
    assert!(!ops.is_empty());
    for p in &ops {
        let OperatorKind::ChangePeer { add, .. } = p.op.kind else {
            panic!()
        };
        assert_ne!(t.zone_of(add.id), t.zone_of(lost));
    }
    check_round(&t, &OperatorSet::default(), &ops);
}

#[test]
fn whole_server_down_beyond_tolerance_waits() {
    let mut t = cluster(3, 2, 4, 10);
    for d in 1..=4 {
        set_state(&mut t, ChunkServerId(110 + d), OnlineState::Offline);
    }
    let cfg = SchedulerConfig {
        failure_tolerance: 3,
        ..no_balance()
    };
    assert!(schedule(&t, &OperatorSet::default(), 0, &cfg).is_empty());
    // Within tolerance, recovery proceeds.
    set_state(&mut t, ChunkServerId(114), OnlineState::Online);
    assert!(!schedule(&t, &OperatorSet::default(), 0, &cfg).is_empty());
}

#[test]
fn majority_offline_or_leader_offline_is_skipped() {
    let mut t = cluster(3, 1, 1, 1);
    let g = *t.copysets.keys().next().unwrap();
    let peers = t.copysets[&g].peers.clone();
    t.copysets.get_mut(&g).unwrap().leader = Some(peers[0]);
    set_state(&mut t, peers[1], OnlineState::Offline);
    set_state(&mut t, peers[2], OnlineState::Offline);
    assert!(schedule(&t, &OperatorSet::default(), 0, &no_balance()).is_empty());
    set_state(&mut t, peers[2], OnlineState::Online);
    set_state(&mut t, peers[0], OnlineState::Offline);
    // Leader offline: nobody to execute.
    t.copysets.get_mut(&g).unwrap().leader = Some(peers[0]);
    assert!(schedule(&t, &OperatorSet::default(), 0, &no_balance()).is_empty());
}

#[test]
fn replica_count_restored() {
    let mut t = cluster(4, 1, 2, 3);
    let g = *t.copysets.keys().next().unwrap();
    let rec = t.copysets.get_mut(&g).unwrap();
    let leader = rec.peers[0];
    rec.leader = Some(leader);
    rec.peers.truncate(2);
    let ops = schedule(&t, &OperatorSet::default(), 0, &no_balance());
    let op = ops.iter().find(|p| p.op.group == g).expect("add peer");
    assert!(matches!(op.op.kind, OperatorKind::AddPeer(_)));
    check_round(&t, &OperatorSet::default(), &ops);
    // Too many peers: remove a non-leader.
    let mut t = cluster(4, 1, 2, 3);
    let extra = {
        let rec = &t.copysets[&g];
        let used: BTreeSet<_> = rec.peers.iter().map(|p| t.zone_of(*p)).collect();
        *t.chunkservers
            .keys()
            .find(|c| !used.contains(&t.zone_of(**c)))
            .unwrap()
    };
    let rec = t.copysets.get_mut(&g).unwrap();
    rec.peers.push(extra);
    let leader = rec.peers[0];
    rec.leader = Some(leader);
    let ops = schedule(&t, &OperatorSet::default(), 0, &no_balance());
    let op = ops.iter().find(|p| p.op.group == g).expect("remove peer");
    let OperatorKind::RemovePeer(v) = op.op.kind else {
        panic!("{op:?}")
    };
    assert_ne!(v, leader);
}

#[test]
fn new_empty_chunkserver_gets_copysets() {
    let mut t = cluster(3, 1, 2, 10);
    // A new disk joins zone 1 with no copysets.
    let mut new = t.chunkservers[&ChunkServerId(111)].clone();
    new.id = ChunkServerId(119);
    new.disk_uuid = "new".into();
    t.chunkservers.insert(new.id, new);
    let cfg = no_balance();
    let mut pending = OperatorSet::default();
    for _ in 0..100 {
        let ops = schedule(&t, &pending, 0, &cfg);
        check_round(&t, &pending, &ops);
        if ops.is_empty() {
            break;
        }
        pending.extend(ops.clone());
        execute(&mut t, &ops);
        pending.reconcile(&t, 0, &cfg);
    }
    let counts = t.copyset_counts();
    let zone1: Vec<usize> = counts
        .iter()
        .filter(|(c, _)| c.0 / 100 == 1)
        .map(|(_, n)| *n)
        .collect();
    let (min, max) = (zone1.iter().min().unwrap(), zone1.iter().max().unwrap());
    assert!(max - min <= cfg.balance_slack, "zone 1 counts {zone1:?}");
    assert!(counts[&ChunkServerId(119)] > 0);
}

#[test]
fn leaders_balanced() {
    let mut t = cluster(3, 1, 1, 12);
    let hog = ChunkServerId(111);
    for c in t.copysets.values_mut() {
        c.leader = Some(hog);
    }
    let cfg = SchedulerConfig::default();
    let mut pending = OperatorSet::default();
    for _ in 0..100 {
        let ops = schedule(&t, &pending, 0, &cfg);
        check_round(&t, &pending, &ops);
        assert!(ops
            .iter()
            .all(|p| matches!(p.op.kind, OperatorKind::TransferLeader(_))));
        if ops.is_empty() {
            break;
        }
        pending.extend(ops.clone());
        execute(&mut t, &ops);
        pending.reconcile(&t, 0, &cfg);
    }
    let mut leaders: HashMap<ChunkServerId, usize> = HashMap::new();
    for c in t.copysets.values() {
        *leaders.entry(c.leader.unwrap()).or_default() += 1;
    }
    let mean = 12.0 / 3.0;
    for (c, n) in leaders {
        assert!((n as f64) <= mean + 1.0, "{c} leads {n}");
    }
}

#[test]
fn leadership_is_never_balanced_towards_a_silent_chunkserver() {
    // Every copyset led by one chunkserver: balancing wants to move leaderships away.
    let mut t = cluster(3, 1, 1, 12);
    let hog = ChunkServerId(111);
    for c in t.copysets.values_mut() {
        c.leader = Some(hog);
    }
    let cfg = SchedulerConfig::default();
    let now = 60_000;
    for c in t.chunkservers.values_mut() {
        c.last_seen_ms = now;
    }
    // One peer died a moment ago: still `Online` (unstable only after 30 s), but silent
    // for longer than the freshness bound.
    let dead = *t.chunkservers.keys().find(|c| **c != hog).unwrap();
    t.chunkservers.get_mut(&dead).unwrap().last_seen_ms = now - cfg.leader_balance_fresh_ms - 1;
    let ops = schedule(&t, &OperatorSet::default(), now, &cfg);
    assert!(
        ops.iter()
            .all(|p| !matches!(p.op.kind, OperatorKind::TransferLeader(_))),
        "no balancing of copysets with a silent peer: {ops:?}"
    );
    // Once it is heard from again, balancing resumes.
    t.chunkservers.get_mut(&dead).unwrap().last_seen_ms = now;
    let ops = schedule(&t, &OperatorSet::default(), now, &cfg);
    assert!(ops
        .iter()
        .any(|p| matches!(p.op.kind, OperatorKind::TransferLeader(_))));
}

#[test]
fn operators_complete_by_epoch_and_time_out() {
    let mut t = cluster(3, 2, 1, 4);
    set_state(&mut t, ChunkServerId(111), OnlineState::Offline);
    let cfg = SchedulerConfig {
        change_timeout_ms: 1000,
        ..no_balance()
    };
    let mut pending = OperatorSet::default();
    let ops = schedule(&t, &pending, 0, &cfg);
    assert!(!ops.is_empty());
    pending.extend(ops.clone());
    // Pending operators occupy their chunkservers: nothing new for them.
    let again = schedule(&t, &pending, 10, &cfg);
    check_round(&t, &pending, &again);
    // A report at the same epoch does not complete it.
    assert!(pending.reconcile(&t, 500, &cfg).completed.is_empty());
    let leader = t.copysets[&ops[0].op.group].leader.unwrap();
    assert_eq!(
        pending.for_leader(&t, leader).len(),
        ops.iter().filter(|p| p.involved[0] == leader).count()
    );
    execute(&mut t, &ops[..1]);
    let r = pending.reconcile(&t, 600, &cfg);
    assert_eq!(r.completed, vec![ops[0].op.group]);
    let r = pending.reconcile(&t, 1_001 + 600, &cfg);
    assert_eq!(r.timed_out.len(), ops.len() - 1);
    assert!(pending.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn rounds_keep_invariants(
        offline in proptest::collection::btree_set(0usize..18, 0..5),
        leader_shift in 0usize..3,
        rounds in 1usize..6,
    ) {
        let mut t = cluster(3, 2, 3, 6);
        let ids: Vec<ChunkServerId> = t.chunkservers.keys().copied().collect();
        for i in &offline {
            set_state(&mut t, ids[*i], OnlineState::Offline);
        }
        for c in t.copysets.values_mut() {
            c.leader = Some(c.peers[leader_shift % c.peers.len()]);
        }
        if leader_shift == 0 {
            reelect(&mut t);
        }
        let cfg = SchedulerConfig::default();
        let mut pending = OperatorSet::default();
        for _ in 0..rounds {
            let ops = schedule(&t, &pending, 0, &cfg);
            check_round(&t, &pending, &ops);
            pending.extend(ops.clone());
            // Execute about half of them.
            let done: Vec<_> = ops.iter().step_by(2).cloned().collect();
            execute(&mut t, &done);
            pending.reconcile(&t, 0, &cfg);
        }
        for c in t.copysets.values() {
            let zones: BTreeSet<_> = c.peers.iter().map(|p| t.zone_of(*p)).collect();
            prop_assert_eq!(zones.len(), c.peers.len());
            prop_assert_eq!(c.peers.len(), 3);
        }
    }
}

#[test]
fn unknown_copyset_record_unused() {
    // A copyset of a pool that does not exist is left alone.
    let mut t = cluster(3, 1, 1, 1);
    let g = GroupId::of(LogicalPoolId(9), basalt_proto::ids::CopysetId(1));
    let peers: Vec<_> = t.chunkservers.keys().copied().collect();
    t.copysets.insert(
        g,
        CopysetRecord {
            group: g,
            epoch: Epoch(1),
            peers: peers.clone(),
            leader: Some(peers[0]),
        },
    );
    set_state(&mut t, peers[1], OnlineState::Offline);
    let ops = schedule(&t, &OperatorSet::default(), 0, &no_balance());
    assert!(ops.iter().all(|p| p.op.group != g));
}

// ---------------- drain ----------------

/// Whether an operator gives `c` a replica or a leadership.
fn targets(p: &PendingOp, c: ChunkServerId) -> bool {
    match p.op.kind {
        OperatorKind::ChangePeer { add, .. } | OperatorKind::AddPeer(add) => add.id == c,
        OperatorKind::TransferLeader(to) => to == c,
        OperatorKind::RemovePeer(_) => false,
    }
}

/// Run rounds (executing every operator) until nothing is issued; checks the round
/// invariants, that no draining chunkserver is ever a target, and that each draining
/// chunkserver takes part in at most one operator at a time. Returns every operator.
fn drive(t: &mut Topology, cfg: &SchedulerConfig, max_rounds: usize) -> Vec<PendingOp> {
    let mut pending = OperatorSet::default();
    let mut all = Vec::new();
    for _ in 0..max_rounds {
        let ops = schedule(t, &pending, 0, cfg);
        check_round(t, &pending, &ops);
        for d in &t.draining {
            assert!(ops.iter().all(|p| !targets(p, *d)), "{d} drained into");
            let touching = ops.iter().filter(|p| p.involved.contains(d)).count();
            assert!(touching <= 1, "{d} in {touching} operators at once");
        }
        if ops.is_empty() {
            return all;
        }
        pending.extend(ops.clone());
        execute(t, &ops);
        pending.reconcile(t, 0, cfg);
        all.extend(ops);
    }
    panic!("scheduler did not settle");
}

fn assert_spread(t: &Topology) {
    for c in t.copysets.values() {
        let zones: BTreeSet<_> = c.peers.iter().map(|p| t.zone_of(*p)).collect();
        assert_eq!((c.peers.len(), zones.len()), (3, 3), "{c:?}");
    }
}

#[test]
fn draining_moves_leadership_first_then_replicas_within_the_zone() {
    let mut t = cluster(3, 2, 1, 10);
    let d = ChunkServerId(111);
    let led = t.copysets.values().filter(|c| c.leader == Some(d)).count();
    assert!(led > 0);
    t.draining.insert(d);
    let before = drain_progress(&t, &OperatorSet::default(), d);
    assert_eq!((before.copysets > 0, before.blocked), (true, 0));
    assert!(!before.drained());
    let ops = drive(&mut t, &no_balance(), 200);
    let mut transfers = 0;
    for p in &ops {
        match p.op.kind {
            OperatorKind::TransferLeader(to) => {
                assert!(p.involved.contains(&d));
                assert_ne!(to, d);
                transfers += 1;
            }
            OperatorKind::ChangePeer { remove, add } => {
                assert_eq!(remove, d);
                assert_eq!(t.zone_of(add.id), t.zone_of(d), "same zone preferred");
                assert!(p.involved.contains(&d));
            }
            k => panic!("unexpected {k:?}"),
        }
    }
    assert_eq!(transfers, led, "each copyset it led moved leadership once");
    assert!(t.copysets.values().all(|c| !c.peers.contains(&d)));
    assert_spread(&t);
    let after = drain_progress(&t, &OperatorSet::default(), d);
    assert!(after.drained(), "{after:?}");
}

#[test]
fn a_change_peer_never_removes_the_leader() {
    // Every copyset led by the draining chunkserver: only transfers in the first round.
    let mut t = cluster(3, 2, 1, 6);
    let d = ChunkServerId(111);
    for c in t.copysets.values_mut() {
        if c.peers.contains(&d) {
            c.leader = Some(d);
        }
    }
    t.draining.insert(d);
    let ops = schedule(&t, &OperatorSet::default(), 0, &no_balance());
    assert_eq!(ops.len(), 1, "one operator at a time for {d}");
    assert!(matches!(ops[0].op.kind, OperatorKind::TransferLeader(_)));
}

#[test]
fn draining_and_offline_chunkservers_are_both_emptied() {
    let mut t = cluster(3, 3, 1, 10);
    let (d, lost) = (ChunkServerId(121), ChunkServerId(111));
    set_state(&mut t, lost, OnlineState::Offline);
    reelect(&mut t);
    t.draining.insert(d);
    drive(&mut t, &SchedulerConfig::default(), 400);
    for c in t.copysets.values() {
        assert!(!c.peers.contains(&d) && !c.peers.contains(&lost), "{c:?}");
    }
    assert_spread(&t);
}

#[test]
fn a_draining_chunkserver_that_goes_offline_is_recovered() {
    let mut t = cluster(3, 2, 1, 10);
    let d = ChunkServerId(111);
    t.draining.insert(d);
    set_state(&mut t, d, OnlineState::Offline);
    reelect(&mut t);
    let ops = drive(&mut t, &no_balance(), 200);
    assert!(ops.iter().all(|p| matches!(
        p.op.kind,
        OperatorKind::ChangePeer { remove, .. } if remove == d
    )));
    assert!(drain_progress(&t, &OperatorSet::default(), d).drained());
    assert_spread(&t);
}

#[test]
fn no_spare_in_the_zone_only_moves_leadership() {
    // 3 zones with one chunkserver each: the copysets cannot leave the drained one.
    let mut t = cluster(3, 1, 1, 5);
    let d = ChunkServerId(111);
    t.draining.insert(d);
    let ops = drive(&mut t, &no_balance(), 50);
    assert!(ops
        .iter()
        .all(|p| matches!(p.op.kind, OperatorKind::TransferLeader(_))));
    let p = drain_progress(&t, &OperatorSet::default(), d);
    assert_eq!(p.leaders, 0);
    assert!(p.copysets > 0);
    assert_eq!(p.blocked, p.copysets, "every copyset waits for a spare");
    assert!(!p.drained());
}

#[test]
fn other_zone_used_when_the_drained_zone_has_no_spare() {
    // 4 zones with one chunkserver each: the fourth zone takes the replicas.
    let mut t = cluster(4, 1, 1, 3);
    let d = ChunkServerId(111);
    t.draining.insert(d);
    drive(&mut t, &no_balance(), 100);
    assert!(t.copysets.values().all(|c| !c.peers.contains(&d)));
    assert_spread(&t);
}

#[test]
fn a_degraded_copyset_waits_for_recovery_before_draining() {
    let mut t = cluster(3, 2, 1, 10);
    let (d, sick) = (ChunkServerId(111), ChunkServerId(211));
    t.draining.insert(d);
    set_state(&mut t, sick, OnlineState::Unstable);
    let both: BTreeSet<GroupId> = t
        .copysets
        .values()
        .filter(|c| c.peers.contains(&d) && c.peers.contains(&sick))
        .map(|c| c.group)
        .collect();
    let only_d = t
        .copysets
        .values()
        .filter(|c| c.peers.contains(&d) && !c.peers.contains(&sick))
        .count();
    assert!(!both.is_empty() && only_d > 0);
    // While the peer is unstable, its copysets are left alone; the others drain.
    let mut pending = OperatorSet::default();
    for _ in 0..100 {
        let ops = schedule(&t, &pending, 0, &no_balance());
        check_round(&t, &pending, &ops);
        assert!(ops.iter().all(|p| !both.contains(&p.op.group)));
        if ops.is_empty() {
            break;
        }
        pending.extend(ops.clone());
        execute(&mut t, &ops);
        pending.reconcile(&t, 0, &no_balance());
    }
    let left: BTreeSet<GroupId> = t
        .copysets
        .values()
        .filter(|c| c.peers.contains(&d))
        .map(|c| c.group)
        .collect();
    assert_eq!(left, both);
    // Once it is offline, recovery replaces it (never with the draining one), then the
    // drain finishes.
    set_state(&mut t, sick, OnlineState::Offline);
    reelect(&mut t);
    drive(&mut t, &no_balance(), 200);
    for c in t.copysets.values() {
        assert!(!c.peers.contains(&d) && !c.peers.contains(&sick), "{c:?}");
    }
    assert_spread(&t);
}

#[test]
fn undo_stops_the_drain_midway() {
    let mut t = cluster(3, 2, 1, 10);
    let d = ChunkServerId(111);
    t.draining.insert(d);
    let cfg = no_balance();
    let mut pending = OperatorSet::default();
    for _ in 0..3 {
        let ops = schedule(&t, &pending, 0, &cfg);
        pending.extend(ops.clone());
        execute(&mut t, &ops);
        pending.reconcile(&t, 0, &cfg);
    }
    let left = drain_progress(&t, &pending, d).copysets;
    assert!(left > 0, "still midway");
    t.draining.remove(&d);
    // Back in service: nothing is moved off it any more, and the balancer may give it
    // copysets back.
    let ops = drive(&mut t, &SchedulerConfig::default(), 200);
    assert!(ops.iter().all(|p| !matches!(
        p.op.kind,
        OperatorKind::ChangePeer { remove, .. } if remove == d
    )));
    assert!(drain_progress(&t, &OperatorSet::default(), d).copysets >= left);
    assert_spread(&t);
}

#[test]
fn an_extra_replica_to_remove_is_the_draining_one() {
    let mut t = cluster(4, 1, 1, 3);
    let g = *t.copysets.keys().next().unwrap();
    let rec = t.copysets.get_mut(&g).unwrap();
    let spare = [111, 211, 311, 411]
        .map(ChunkServerId)
        .into_iter()
        .find(|c| !rec.peers.contains(c))
        .unwrap();
    rec.peers.push(spare);
    let leader = rec.leader.unwrap();
    let d = rec.peers.iter().copied().find(|p| *p != leader).unwrap();
    t.draining.insert(d);
    let ops = schedule(&t, &OperatorSet::default(), 0, &no_balance());
    let mine: Vec<_> = ops.iter().filter(|p| p.op.group == g).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].op.kind, OperatorKind::RemovePeer(d));
}

#[test]
fn balancing_never_feeds_a_draining_chunkserver() {
    // An empty chunkserver is drained: the copyset balancer would otherwise fill it.
    let mut t = cluster(3, 2, 1, 10);
    let d = ChunkServerId(121);
    for c in t.copysets.values_mut() {
        if let Some(i) = c.peers.iter().position(|p| *p == d) {
            c.peers[i] = ChunkServerId(111);
            if c.leader == Some(d) {
                c.leader = Some(ChunkServerId(111));
            }
        }
    }
    t.copysets.retain(|_, c| {
        let z: BTreeSet<_> = c.peers.iter().collect();
        z.len() == c.peers.len()
    });
    t.draining.insert(d);
    let ops = drive(&mut t, &SchedulerConfig::default(), 200);
    assert!(ops.iter().all(|p| !targets(p, d)));
    assert_eq!(drain_progress(&t, &OperatorSet::default(), d).copysets, 0);
}

#[test]
fn drain_operators_time_out_and_are_issued_again() {
    let mut t = cluster(3, 2, 1, 4);
    let d = ChunkServerId(111);
    for c in t.copysets.values_mut() {
        if c.leader == Some(d) {
            c.leader = c.peers.iter().copied().find(|p| *p != d);
        }
    }
    t.draining.insert(d);
    let cfg = no_balance();
    let mut pending = OperatorSet::default();
    let ops = schedule(&t, &pending, 0, &cfg);
    assert_eq!(ops.len(), 1);
    pending.extend(ops.clone());
    assert!(schedule(&t, &pending, 1, &cfg).is_empty(), "one at a time");
    assert_eq!(drain_progress(&t, &pending, d).operators, 1);
    let r = pending.reconcile(&t, cfg.change_timeout_ms + 1, &cfg);
    assert_eq!(r.timed_out, vec![ops[0].op.group]);
    let again = schedule(&t, &pending, cfg.change_timeout_ms + 1, &cfg);
    assert_eq!(again.len(), 1);
    assert!(matches!(again[0].op.kind, OperatorKind::ChangePeer { remove, .. } if remove == d));
}
