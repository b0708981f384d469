//! kill -9 of two chunkservers at once, chosen so that no copyset holds both: the leader
//! of one workload's copyset and a chunkserver of another workload's copyset (its leader
//! when it leads one) that shares no copyset with the first. Six chunkservers, two per
//! zone; with one replica per zone, two chunkservers of a zone never share a copyset, so
//! every copyset keeps a majority. Two verified workloads (one per copyset) must go on
//! without an error; both histories are checked for per-block linearizability and the
//! summary line reports the longer pause and the higher p99 of the two.
//!
//! Needs `basalt-mds`, `basalt-chunkserver` built in the target dir and `etcd` on PATH.

use basalt_proto::ids::{ChunkServerId, GroupId, CHUNK_SIZE, SEGMENT_SIZE};
use basalt_proto::mds::CopysetInfo;
use basalt_testkit::cluster::wait::poll_until;
use basalt_testkit::faults::{
    copysets_of, group_of, process_at, publish, settled_leader, PROGRESS_BOUND,
};
use basalt_testkit::rig::Rig;
use basalt_testkit::workload::{verify, Workload, WorkloadSpec};
use std::collections::BTreeSet;
use std::time::Duration;

/// 4 KiB blocks per chunk.
const CHUNK_BLOCKS: u64 = CHUNK_SIZE / 4096;

fn holds(c: &CopysetInfo, cs: ChunkServerId) -> bool {
    c.peers.iter().any(|p| p.id == cs)
}

#[test]
fn kill_two_chunkservers_that_share_no_copyset() {
    let rig = Rig::up_shaped(8, |s| {
        s.chunkservers = 6;
        s.copysets_per_chunkserver = 2;
    })
    .unwrap();
    let volume = rig
        .create_volume(&rig.client, "fault-two", SEGMENT_SIZE)
        .unwrap();
    let id = volume.id();
    let a = Workload::start(rig.rt.handle(), volume.clone(), WorkloadSpec::new(2, 0, 64));
    a.wait_for_ops(50, PROGRESS_BOUND).unwrap();

    // The first write allocated the whole segment: every chunk has its copyset now.
    let mds = rig.cluster.active_mds().expect("an active MDS");
    let secret = rig.cluster.secret();
    let group_a = poll_until(
        "the first chunk's copyset",
        PROGRESS_BOUND,
        Duration::from_millis(100),
        || Ok(group_of(mds, secret, id, 0)),
    )
    .unwrap();
    let leader_a = settled_leader(&rig.cluster, group_a).unwrap();
    let map = poll_until(
        "the pool's copysets",
        PROGRESS_BOUND,
        Duration::from_millis(100),
        || Ok(copysets_of(mds, secret, group_a.pool())),
    )
    .unwrap();
    let addr_of = |cs: ChunkServerId| {
        map.iter()
            .flat_map(|c| c.peers.iter())
            .find(|p| p.id == cs)
            .map(|p| p.addr)
    };
    let a_id = map
        .iter()
        .flat_map(|c| c.peers.iter())
        .find(|p| process_at(&rig.cluster, p.addr).as_deref() == Some(leader_a.as_str()))
        .map(|p| p.id)
        .expect("the leader is a voter of its copyset");

    // Chunkservers that share no copyset with the first victim.
    let all: BTreeSet<ChunkServerId> = map
        .iter()
        .flat_map(|c| c.peers.iter().map(|p| p.id))
        .collect();
    let apart: BTreeSet<ChunkServerId> = all
        .into_iter()
        .filter(|&cs| cs != a_id && !map.iter().any(|c| holds(c, a_id) && holds(c, cs)))
        .collect();
    assert!(
        !apart.is_empty(),
        "with two chunkservers per zone some chunkserver shares no copyset with {a_id}: {map:?}"
    );

    // The second workload's chunk: in a copyset holding one of them, one they lead first.
    let groups: Vec<(u64, GroupId)> = (1..SEGMENT_SIZE / CHUNK_SIZE)
        .filter_map(|c| group_of(mds, secret, id, c * CHUNK_SIZE).map(|g| (c, g)))
        .filter(|(_, g)| *g != group_a)
        .collect();
    let info = |g: GroupId| map.iter().find(|c| c.group == g);
    let (chunk_b, group_b, b_id) = groups
        .iter()
        .filter_map(|&(c, g)| {
            let i = info(g)?;
            let victim = i.peers.iter().map(|p| p.id).find(|p| apart.contains(p))?;
            Some((c, g, victim, i.leader == Some(victim)))
        })
        .max_by_key(|&(_, _, _, leads)| leads)
        .map(|(c, g, v, _)| (c, g, v))
        .expect("a chunk of the segment in a copyset with a chunkserver apart from the first");
    let victim_b = process_at(&rig.cluster, addr_of(b_id).expect("address of the second"))
        .expect("the second victim is running");

    let mut spec_b = WorkloadSpec::new(2, chunk_b * CHUNK_BLOCKS, 64);
    spec_b.seed ^= 0xb;
    let b = Workload::start(rig.rt.handle(), volume, spec_b);
    b.wait_for_ops(50, PROGRESS_BOUND).unwrap();
    println!(
        "killing {leader_a} (leads {group_a:?}) and {victim_b} (in {group_b:?}, no copyset shared)"
    );

    let mut rig = rig;
    let (from_a, from_b) = (a.now(), b.now());
    rig.cluster.kill(&leader_a).unwrap();
    rig.cluster.kill(&victim_b).unwrap();
    a.wait_for_ops(200, PROGRESS_BOUND)
        .expect("I/O on the first copyset resumes");
    b.wait_for_ops(200, PROGRESS_BOUND)
        .expect("I/O on the second copyset resumes");
    rig.cluster.restart(&leader_a).unwrap();
    rig.cluster.restart(&victim_b).unwrap();
    a.wait_for_ops(100, PROGRESS_BOUND).unwrap();
    b.wait_for_ops(100, PROGRESS_BOUND).unwrap();

    let (to_a, to_b) = (a.now(), b.now());
    let history_a = rig.rt.block_on(a.stop());
    let history_b = rig.rt.block_on(b.stop());
    let ra = verify(&history_a, from_a, to_a).unwrap();
    let rb = verify(&history_b, from_b, to_b).unwrap();
    assert!(ra.check.writes_verified > 0 && rb.check.writes_verified > 0);
    assert!(ra.check.reads_checked > 0 && rb.check.reads_checked > 0);
    publish(&format!(
        "fault=chunkserver-kill-two-apart longest_pause_ms={} p99_ms={} writes_verified={} lost=0",
        ra.stats
            .longest_pause
            .max(rb.stats.longest_pause)
            .as_millis(),
        ra.stats.p99.max(rb.stats.p99).as_millis(),
        ra.check.writes_verified + rb.check.writes_verified
    ));
}
