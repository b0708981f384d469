//! Copysets on three (or four) in-process chunkservers over the in-memory raft network,
//! with the in-memory WAL and chunk store twins.

use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::copyset::testing::{MemChunkStore, MemGroupLog, MemNet};
use basalt_chunkserver::copyset::{CopysetConfig, Copysets, CopysetsParams, RaftMsgKind};
use basalt_proto::chunk::RaftRole;
use basalt_proto::ids::{ChunkId, ChunkServerId, CopysetId, Epoch, GroupId, LogicalPoolId};
use basalt_proto::raft::RaftError;
use basalt_proto::status::{ChunkError, PeerAddr};
use bytes::Bytes;
use openraft::async_runtime::watch::WatchReceiver;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

fn group(n: u32) -> GroupId {
    GroupId::of(LogicalPoolId(1), CopysetId(n))
}

fn addr(id: u64) -> PeerAddr {
    PeerAddr {
        id: ChunkServerId(id as u32),
        addr: format!("127.0.0.1:{}", 7000 + id).parse().unwrap(),
    }
}

/// Poll `f` until it yields `Some`, failing the test after `within`.
async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Node {
    log: Arc<MemGroupLog>,
    store: Arc<MemChunkStore>,
    reg: Option<Copysets>,
}

struct Cluster {
    net: MemNet,
    config: CopysetConfig,
    nodes: Vec<Node>,
}

impl Cluster {
    async fn new(n: u64, config: CopysetConfig) -> Cluster {
        let mut c = Cluster {
            net: MemNet::new(),
            config,
            nodes: (1..=n)
                .map(|_| Node {
                    log: MemGroupLog::new(),
                    store: MemChunkStore::new(),
                    reg: None,
                })
                .collect(),
        };
        for id in 1..=n {
            c.start(id).await;
        }
        c
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn reg(&self, id: u64) -> &Copysets {
        self.node(id).reg.as_ref().expect("node is running")
    }

    async fn start(&mut self, id: u64) {
        let n = &self.nodes[(id - 1) as usize];
        let reg = Copysets::open(CopysetsParams {
            local: addr(id),
            log: n.log.clone(),
            store: n.store.clone(),
            net: self.net.endpoint(id),
            config: self.config.clone(),
        })
        .await
        .unwrap();
        self.net.register(id, reg.clone());
        self.nodes[(id - 1) as usize].reg = Some(reg);
    }

    async fn stop(&mut self, id: u64) {
        self.net.unregister(id);
        if let Some(reg) = self.nodes[(id - 1) as usize].reg.take() {
            reg.shutdown().await;
        }
    }

    /// Replace a node's disk by an empty one (it must be stopped).
    fn wipe(&mut self, id: u64) {
        let n = &mut self.nodes[(id - 1) as usize];
        assert!(n.reg.is_none());
        n.log = MemGroupLog::new();
        n.store = MemChunkStore::new();
    }

    async fn create(&self, g: GroupId, members: &[u64]) {
        let peers: Vec<PeerAddr> = members.iter().map(|&id| addr(id)).collect();
        // Non-initializers first, as the MDS may reach them in any order.
        for &id in members.iter().rev() {
            self.reg(id).create(g, &peers).await.unwrap();
        }
    }

    fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.reg.is_some())
    }

    /// The leader every running member of `g` agrees on.
    async fn leader(&self, g: GroupId, within: Duration) -> u64 {
        wait_for("an agreed leader", within, || async {
            let mut agreed = None;
            for n in self.running() {
                let Some(cs) = n.reg.as_ref().unwrap().get(g) else {
                    continue;
                };
                let st = n.reg.as_ref().unwrap().status(cs.group()).ok()?;
                if st.role == RaftRole::Learner {
                    continue;
                }
                let l = st.leader?.0 as u64;
                if agreed.is_some_and(|a| a != l) {
                    return None;
                }
                agreed = Some(l);
            }
            let l = agreed?;
            let st = self.node(l).reg.as_ref()?.status(g).ok()?;
            (st.role == RaftRole::Leader).then_some(l)
        })
        .await
    }

    /// Wait until every running replica of `g` applied at least `index`.
    async fn applied_everywhere(&self, g: GroupId, index: u64) {
        for n in self.running() {
            let cs = n.reg.as_ref().unwrap().get(g).expect("replica exists");
            cs.raft()
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), "applied")
                .await
                .unwrap();
        }
    }
}

fn pattern(seed: u64, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 / 7)) as u8)
            .collect::<Vec<_>>(),
    )
}

/// The writes used by the tests: (chunk, offset, data).
fn writes(n: u64) -> Vec<(ChunkId, u64, Bytes)> {
    (0..n)
        .map(|i| {
            let chunk = ChunkId(100 + i % 3);
            let offset = (i * 4096) % (4 * 1024 * 1024) + (i % 3) * 2 * 1024 * 1024;
            (chunk, offset, pattern(i, 4096))
        })
        .collect()
}

async fn write_all(reg: &Copysets, g: GroupId, ws: &[(ChunkId, u64, Bytes)]) -> u64 {
    let mut last = 0;
    for (chunk, offset, data) in ws {
        last = reg
            .write(g, *chunk, *offset, data.clone())
            .await
            .unwrap()
            .index;
    }
    last
}

async fn check_reads(reg: &Copysets, g: GroupId, ws: &[(ChunkId, u64, Bytes)]) {
    for (chunk, offset, data) in ws {
        let got = reg
            .read(g, *chunk, *offset, data.len() as u64)
            .await
            .unwrap()
            .expect("chunk exists");
        assert!(got == *data, "{chunk} @ {offset}: content differs");
    }
}

async fn check_store(store: &MemChunkStore, g: GroupId, ws: &[(ChunkId, u64, Bytes)]) {
    for (chunk, offset, data) in ws {
        let got = store
            .read(g, *chunk, *offset, data.len() as u64)
            .await
            .unwrap()
            .expect("chunk exists");
        assert!(got == *data, "{chunk} @ {offset}: content differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_replicate_and_read_from_leader_only() {
    // A small byte budget per AppendEntries: batches go out in parts (partial successes).
    let config = CopysetConfig {
        max_append_bytes: 10_000,
        ..CopysetConfig::fast_for_tests()
    };
    let c = Cluster::new(3, config).await;
    let g = group(1);
    c.create(g, &[1, 2, 3]).await;
    let leader = c.leader(g, WAIT).await;
    let ws = writes(30);
    let last = write_all(c.reg(leader), g, &ws).await;
    check_reads(c.reg(leader), g, &ws).await;
    c.applied_everywhere(g, last).await;
    for n in &c.nodes {
        check_store(&n.store, g, &ws).await;
    }

    // A follower redirects to the leader, for reads and writes.
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let err = c
        .reg(follower)
        .read(g, ChunkId(100), 0, 4096)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ChunkError::Redirect {
            group: g,
            leader: Some(addr(leader))
        }
    );
    let err = c
        .reg(follower)
        .write(g, ChunkId(1), 0, Bytes::from(vec![1; 512]))
        .await
        .unwrap_err();
    assert!(matches!(err, ChunkError::Redirect { leader: Some(a), .. } if a == addr(leader)));

    // Reads of a missing chunk, unknown groups, deletes.
    assert_eq!(
        c.reg(leader).read(g, ChunkId(999), 0, 512).await.unwrap(),
        None
    );
    assert_eq!(
        c.reg(leader)
            .read(group(77), ChunkId(1), 0, 512)
            .await
            .unwrap_err(),
        ChunkError::CopysetNotFound { group: group(77) }
    );
    assert_eq!(
        c.reg(leader)
            .handle_raft(group(77), RaftMsgKind::Vote, b"junk")
            .await
            .unwrap_err(),
        RaftError::CopysetNotFound { group: group(77) }
    );
    assert!(matches!(
        c.reg(leader)
            .handle_raft(g, RaftMsgKind::Append, b"junk")
            .await,
        Err(RaftError::Raft { .. })
    ));
    c.reg(leader).delete_chunk(g, ChunkId(100)).await.unwrap();
    assert_eq!(
        c.reg(leader).read(g, ChunkId(100), 0, 512).await.unwrap(),
        None
    );

    let st = c.reg(leader).status(g).unwrap();
    assert_eq!(st.role, RaftRole::Leader);
    assert_eq!(st.peers, vec![addr(1), addr(2), addr(3)]);
    assert!(st.learners.is_empty());
    assert!(st.applied >= last && st.committed >= last && st.last_index >= last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_elects_a_new_leader_with_all_acknowledged_data() {
    let mut c = Cluster::new(3, CopysetConfig::fast_for_tests()).await;
    let g = group(2);
    c.create(g, &[1, 2, 3]).await;
    let old = c.leader(g, WAIT).await;
    let ws = writes(20);
    write_all(c.reg(old), g, &ws).await;

    c.stop(old).await;
    let started = Instant::now();
    let new = c.leader(g, c.config.election_bound()).await;
    assert_ne!(new, old);
    tracing::info!("new leader after {:?}", started.elapsed());
    check_reads(c.reg(new), g, &ws).await;

    // The group keeps working with two replicas, and the old leader catches up on return.
    let more = writes(25)[20..].to_vec();
    let last = write_all(c.reg(new), g, &more).await;
    c.start(old).await;
    c.applied_everywhere(g, last).await;
    check_store(&c.node(old).store, g, &ws).await;
    check_store(&c.node(old).store, g, &more).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_remove_change_peer_and_transfer_leader() {
    let c = Cluster::new(4, CopysetConfig::fast_for_tests()).await;
    let g = group(3);
    c.create(g, &[1, 2, 3]).await;
    // The MDS creates the replica on the new peer first (pristine: it never initializes).
    c.reg(4)
        .create(g, &[addr(1), addr(2), addr(3), addr(4)])
        .await
        .unwrap();
    let leader = c.leader(g, WAIT).await;
    let ws = writes(10);
    let last = write_all(c.reg(leader), g, &ws).await;
    let e0 = c.reg(leader).status(g).unwrap().epoch;

    // Add peer 4.
    let ok = c.reg(leader).add_peer(g, e0, addr(4)).await.unwrap();
    assert!(ok.epoch > e0);
    let st = c.reg(leader).status(g).unwrap();
    assert_eq!(st.peers.len(), 4);
    assert_eq!(st.epoch, ok.epoch);
    c.applied_everywhere(g, last).await;
    check_store(&c.node(4).store, g, &ws).await;

    // A stale epoch is refused.
    assert_eq!(
        c.reg(leader)
            .remove_peer(g, e0, ChunkServerId(4))
            .await
            .unwrap_err(),
        ChunkError::EpochTooOld {
            group: g,
            sent: e0,
            current: ok.epoch
        }
    );
    // A follower redirects membership changes.
    let follower = (1..=4).find(|&i| i != leader).unwrap();
    assert!(matches!(
        c.reg(follower)
            .remove_peer(g, ok.epoch, ChunkServerId(4))
            .await,
        Err(ChunkError::Redirect { .. })
    ));

    // Remove a follower other than 4.
    let victim = (1..=3).find(|&i| i != leader).unwrap();
    let ok2 = c
        .reg(leader)
        .remove_peer(g, ok.epoch, ChunkServerId(victim as u32))
        .await
        .unwrap();
    assert!(ok2.epoch > ok.epoch);
    let peers = c.reg(leader).status(g).unwrap().peers;
    assert_eq!(peers.len(), 3);
    assert!(!peers.contains(&addr(victim)));

    // Change peer: swap 4 back out for the removed one (its replica still exists).
    let ok3 = c
        .reg(leader)
        .change_peer(g, ok2.epoch, ChunkServerId(4), addr(victim))
        .await
        .unwrap();
    assert!(ok3.epoch > ok2.epoch);
    let mut peers = c.reg(leader).status(g).unwrap().peers;
    peers.sort_by_key(|p| p.id);
    assert_eq!(peers, vec![addr(1), addr(2), addr(3)]);
    // Peer 4 is a stray now: the MDS deletes its replica.
    c.reg(4).delete(g).await.unwrap();

    // Transfer leadership to a follower.
    let to = (1..=3).find(|&i| i != leader).unwrap();
    let info = c
        .reg(leader)
        .transfer_leader(g, ChunkServerId(to as u32))
        .await
        .unwrap();
    assert_eq!(info.leader, Some(addr(to)));
    assert_eq!(c.leader(g, WAIT).await, to);
    check_reads(c.reg(to), g, &ws).await;
    assert_eq!(c.reg(to).leader(g).unwrap().epoch, ok3.epoch);
    assert!(Epoch(0) < ok3.epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_peer_catches_up_by_snapshot_install() {
    let config = CopysetConfig {
        snapshot_after_entries: 10,
        keep_after_snapshot: 0,
        snapshot_piece_bytes: 1024 * 1024,
        ..CopysetConfig::fast_for_tests()
    };
    let mut c = Cluster::new(3, config).await;
    let g = group(4);
    c.create(g, &[1, 2, 3]).await;
    let leader = c.leader(g, WAIT).await;
    let victim = (1..=3).find(|&i| i != leader).unwrap();
    let ws = writes(40);
    let last = write_all(c.reg(leader), g, &ws).await;
    // The leader snapshotted and purged its log behind the snapshot.
    let cs = c.reg(leader).get(g).unwrap();
    cs.raft()
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some() && m.snapshot.is_some(), "purged")
        .await
        .unwrap();

    c.stop(victim).await;
    c.wipe(victim);
    c.start(victim).await;
    assert!(c.reg(victim).groups().is_empty());
    c.reg(victim)
        .create(g, &[addr(1), addr(2), addr(3)])
        .await
        .unwrap();
    c.applied_everywhere(g, last).await;
    check_store(&c.node(victim).store, g, &ws).await;
    assert_eq!(
        c.node(victim).store.chunk_count(g),
        c.node(leader).store.chunk_count(g)
    );
    let snap = c
        .reg(victim)
        .get(g)
        .unwrap()
        .raft()
        .metrics()
        .borrow_watched()
        .snapshot;
    assert!(snap.is_some(), "the victim installed a snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_all_replicas_preserves_data() {
    let config = CopysetConfig {
        snapshot_after_entries: 10,
        ..CopysetConfig::fast_for_tests()
    };
    let mut c = Cluster::new(3, config).await;
    let (g1, g2) = (group(5), group(6));
    c.create(g1, &[1, 2, 3]).await;
    c.create(g2, &[1, 2, 3]).await;
    let l1 = c.leader(g1, WAIT).await;
    let l2 = c.leader(g2, WAIT).await;
    let ws = writes(25);
    let last1 = write_all(c.reg(l1), g1, &ws).await;
    // g2: a few writes only, so it restarts from its log without a snapshot.
    let last2 = write_all(c.reg(l2), g2, &ws[..3]).await;
    c.applied_everywhere(g1, last1).await;
    c.applied_everywhere(g2, last2).await;

    for id in 1..=3 {
        c.stop(id).await;
    }
    for id in 1..=3 {
        c.start(id).await;
        assert_eq!(c.reg(id).groups(), vec![g1, g2], "rebuilt from the WAL");
    }
    let l1 = c.leader(g1, WAIT).await;
    let l2 = c.leader(g2, WAIT).await;
    check_reads(c.reg(l1), g1, &ws).await;
    check_reads(c.reg(l2), g2, &ws[..3]).await;
    // And they still take writes.
    let more = writes(30)[25..].to_vec();
    let last = write_all(c.reg(l1), g1, &more).await;
    c.applied_everywhere(g1, last).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_groups_on_three_nodes() {
    let c = Cluster::new(3, CopysetConfig::fast_for_tests()).await;
    let groups: Vec<GroupId> = (10..40).map(group).collect();
    for &g in &groups {
        c.create(g, &[1, 2, 3]).await;
    }
    for &g in &groups {
        let l = c.leader(g, WAIT).await;
        let data = pattern(g.0, 8192);
        c.reg(l)
            .write(g, ChunkId(g.0), 512, data.clone())
            .await
            .unwrap();
    }
    for &g in &groups {
        let l = c.leader(g, WAIT).await;
        let got = c.reg(l).read(g, ChunkId(g.0), 512, 8192).await.unwrap();
        assert_eq!(got, Some(pattern(g.0, 8192)));
        // No chunk of another group leaked in.
        assert_eq!(c.node(l).store.chunk_count(g), 1);
    }
    for id in 1..=3 {
        assert_eq!(c.reg(id).groups(), groups);
    }
    // Creating again is idempotent; bad peer lists are refused.
    c.create(groups[0], &[1, 2, 3]).await;
    assert!(matches!(
        c.reg(1).create(group(99), &[addr(2), addr(3)]).await,
        Err(ChunkError::InvalidRequest { .. })
    ));
    // Deleting a replica drops its state.
    c.reg(3).delete(groups[0]).await.unwrap();
    assert!(c.reg(3).get(groups[0]).is_none());
    assert_eq!(c.node(3).store.chunk_count(groups[0]), 0);
    assert_eq!(c.node(3).log.entry_count(groups[0]), 0);
    assert!(!basalt_chunkserver::group_log::GroupLog::groups(&*c.node(3).log).contains(&groups[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_is_replaced_and_rejoins_as_follower() {
    let c = Cluster::new(3, CopysetConfig::fast_for_tests()).await;
    let g = group(7);
    c.create(g, &[1, 2, 3]).await;
    let old = c.leader(g, WAIT).await;
    let ws = writes(10);
    write_all(c.reg(old), g, &ws).await;
    let old_term = c.reg(old).status(g).unwrap().term;

    c.net.set_isolated(old, true);
    // The other two elect a leader among themselves and keep taking writes.
    let new = wait_for(
        "a leader of the majority",
        c.config.election_bound() * 2,
        || async {
            (1..=3).filter(|&i| i != old).find(|&i| {
                c.reg(i)
                    .status(g)
                    .is_ok_and(|s| s.role == RaftRole::Leader && s.term > old_term)
            })
        },
    )
    .await;
    let more = writes(15)[10..].to_vec();
    let last = write_all(c.reg(new), g, &more).await;
    // The isolated leader's lease runs out: it cannot serve a linearizable read.
    assert!(c.reg(old).read(g, ws[0].0, ws[0].1, 4096).await.is_err());

    c.net.set_isolated(old, false);
    c.applied_everywhere(g, last).await;
    assert_eq!(c.leader(g, WAIT).await, new);
    check_store(&c.node(old).store, g, &more).await;
    assert!(matches!(
        c.reg(old).read(g, ws[0].0, ws[0].1, 4096).await,
        Err(ChunkError::Redirect { leader: Some(a), .. }) if a == addr(new)
    ));
}
