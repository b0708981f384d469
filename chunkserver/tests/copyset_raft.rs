//! Copysets on three (or four) in-process chunkservers over the in-memory raft network,
//! with the in-memory WAL and chunk store twins.

use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::copyset::testing::{MemChunkStore, MemGroupLog, MemNet};
use basalt_chunkserver::copyset::{CopysetConfig, Copysets, CopysetsParams, RaftMsgKind};
use basalt_proto::chunk::{ConfChangeOk, RaftRole};
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

    /// Run `op` on the registry of the current leader of `g`, as a client does: while the
    /// answer says leadership moved (a redirect) or no leader can answer yet
    /// (`Unavailable`), look the leader up again and retry, for at most [`WAIT`]. Any
    /// other answer is returned.
    async fn at_leader<T, F, Fut>(&self, g: GroupId, what: &str, mut op: F) -> Result<T, ChunkError>
    where
        F: FnMut(Copysets) -> Fut,
        Fut: Future<Output = Result<T, ChunkError>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            let l = self.leader(g, WAIT).await;
            match op(self.reg(l).clone()).await {
                Err(e @ (ChunkError::Redirect { .. } | ChunkError::Unavailable)) => {
                    assert!(
                        Instant::now() < deadline,
                        "{what}: still {e:?} after {WAIT:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
    }

    /// Write through the current leader; the committed index.
    async fn write(&self, g: GroupId, chunk: ChunkId, offset: u64, data: &Bytes) -> u64 {
        self.at_leader(g, "write", |r| {
            let data = data.clone();
            async move { r.write(g, chunk, offset, data).await }
        })
        .await
        .unwrap_or_else(|e| panic!("write {g}/{chunk} @ {offset}: {e:?}"))
        .index
    }

    /// A linearizable read through the current leader (`None`: no such chunk).
    async fn read(&self, g: GroupId, chunk: ChunkId, offset: u64, len: u64) -> Option<Bytes> {
        self.at_leader(
            g,
            "read",
            |r| async move { r.read(g, chunk, offset, len).await },
        )
        .await
        .unwrap_or_else(|e| panic!("read {g}/{chunk} @ {offset}: {e:?}"))
    }

    /// Voter ids of `g` as its current leader sees them, with its epoch.
    async fn voters(&self, g: GroupId) -> (Vec<u64>, Epoch) {
        wait_for("the leader's membership", WAIT, || async {
            let l = self.leader(g, WAIT).await;
            let st = self.reg(l).status(g).ok()?;
            let mut ids: Vec<u64> = st.peers.iter().map(|p| p.id.0 as u64).collect();
            ids.sort();
            Some((ids, st.epoch))
        })
        .await
    }

    /// Change the voters of `g` to `want` by `op(leader, epoch)` at the current leader,
    /// following leadership. A change that raced with a leader change may have been made
    /// already (its answer lost): the membership is checked before each attempt, so it is
    /// never asked for twice. Returns the epoch of the membership with voters `want`.
    async fn change_voters<F, Fut>(&self, g: GroupId, want: &[u64], mut op: F) -> Epoch
    where
        F: FnMut(Copysets, Epoch) -> Fut,
        Fut: Future<Output = Result<ConfChangeOk, ChunkError>>,
    {
        let mut want = want.to_vec();
        want.sort();
        let deadline = Instant::now() + WAIT;
        loop {
            let (voters, epoch) = self.voters(g).await;
            if voters == want {
                return epoch;
            }
            let l = self.leader(g, WAIT).await;
            match op(self.reg(l).clone(), epoch).await {
                Ok(ok) => return ok.epoch,
                Err(
                    e @ (ChunkError::Redirect { .. }
                    | ChunkError::Unavailable
                    | ChunkError::EpochTooOld { .. }
                    | ChunkError::ConfChangeInProgress { .. }),
                ) => {
                    assert!(
                        Instant::now() < deadline,
                        "membership change of {g} to {want:?}: still {e:?} after {WAIT:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("membership change of {g} to {want:?}: {e:?}"),
            }
        }
    }

    /// Move leadership of `g` to `to` (asked of the current leader, again if leadership
    /// moved elsewhere meanwhile) and wait until every replica agrees `to` leads.
    async fn transfer(&self, g: GroupId, to: u64) {
        wait_for(&format!("cs{to} to lead {g}"), WAIT, || async {
            let l = self.leader(g, WAIT).await;
            if l == to {
                return Some(());
            }
            match self
                .reg(l)
                .transfer_leader(g, ChunkServerId(to as u32))
                .await
            {
                Ok(info) => assert_eq!(info.leader, Some(addr(to)), "transfer answer"),
                // Not the leader any more, or `to` not fresh enough yet: ask again.
                Err(ChunkError::Redirect { .. } | ChunkError::Unavailable) => {}
                Err(e) => panic!("transfer {g} to cs{to}: {e:?}"),
            }
            None
        })
        .await
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

/// Write `ws` through the leader (following it); the last committed index.
async fn write_all(c: &Cluster, g: GroupId, ws: &[(ChunkId, u64, Bytes)]) -> u64 {
    let mut last = 0;
    for (chunk, offset, data) in ws {
        last = c.write(g, *chunk, *offset, data).await;
    }
    last
}

/// Read `ws` back through the leader (following it) and compare.
async fn check_reads(c: &Cluster, g: GroupId, ws: &[(ChunkId, u64, Bytes)]) {
    for (chunk, offset, data) in ws {
        let got = c
            .read(g, *chunk, *offset, data.len() as u64)
            .await
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
    let ws = writes(30);
    let last = write_all(&c, g, &ws).await;
    check_reads(&c, g, &ws).await;
    c.applied_everywhere(g, last).await;
    for n in &c.nodes {
        check_store(&n.store, g, &ws).await;
    }

    // A follower redirects to the leader, for reads and writes. (When leadership moves
    // between the lookup and the requests, the "follower" may lead or point at the old
    // leader: look again.)
    wait_for("a follower redirecting to the leader", WAIT, || async {
        let leader = c.leader(g, WAIT).await;
        let follower = (1..=3).find(|&i| i != leader).unwrap();
        let want = ChunkError::Redirect {
            group: g,
            leader: Some(addr(leader)),
        };
        let read = c.reg(follower).read(g, ChunkId(100), 0, 4096).await;
        let write = c
            .reg(follower)
            .write(g, ChunkId(1), 0, Bytes::from(vec![1; 512]))
            .await;
        (read.err() == Some(want.clone()) && write.err() == Some(want)).then_some(())
    })
    .await;

    // Reads of a missing chunk, unknown groups, deletes.
    assert_eq!(c.read(g, ChunkId(999), 0, 512).await, None);
    for id in 1..=3 {
        assert_eq!(
            c.reg(id)
                .read(group(77), ChunkId(1), 0, 512)
                .await
                .unwrap_err(),
            ChunkError::CopysetNotFound { group: group(77) }
        );
        assert_eq!(
            c.reg(id)
                .handle_raft(group(77), RaftMsgKind::Vote, b"junk")
                .await
                .unwrap_err(),
            RaftError::CopysetNotFound { group: group(77) }
        );
        assert!(matches!(
            c.reg(id).handle_raft(g, RaftMsgKind::Append, b"junk").await,
            Err(RaftError::Raft { .. })
        ));
    }
    c.at_leader(g, "delete", |r| async move {
        r.delete_chunk(g, ChunkId(100)).await
    })
    .await
    .unwrap();
    assert_eq!(c.read(g, ChunkId(100), 0, 512).await, None);

    let st = wait_for("the leader's status", WAIT, || async {
        let l = c.leader(g, WAIT).await;
        c.reg(l)
            .status(g)
            .ok()
            .filter(|st| st.role == RaftRole::Leader)
    })
    .await;
    assert_eq!(st.peers, vec![addr(1), addr(2), addr(3)]);
    assert!(st.learners.is_empty());
    assert!(st.applied >= last && st.committed >= last && st.last_index >= last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_elects_a_new_leader_with_all_acknowledged_data() {
    let mut c = Cluster::new(3, CopysetConfig::fast_for_tests()).await;
    let g = group(2);
    c.create(g, &[1, 2, 3]).await;
    let ws = writes(20);
    write_all(&c, g, &ws).await;

    let old = c.leader(g, WAIT).await;
    c.stop(old).await;
    let started = Instant::now();
    let new = c.leader(g, WAIT).await;
    assert_ne!(new, old);
    tracing::info!("new leader after {:?}", started.elapsed());
    check_reads(&c, g, &ws).await;

    // The group keeps working with two replicas, and the old leader catches up on return.
    let more = writes(25)[20..].to_vec();
    let last = write_all(&c, g, &more).await;
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
    let ws = writes(10);
    let last = write_all(&c, g, &ws).await;
    let (_, e0) = c.voters(g).await;

    // Add peer 4.
    let e1 = c
        .change_voters(g, &[1, 2, 3, 4], |r, e| async move {
            r.add_peer(g, e, addr(4)).await
        })
        .await;
    assert!(e1 > e0);
    assert_eq!(c.voters(g).await, (vec![1, 2, 3, 4], e1));
    c.applied_everywhere(g, last).await;
    check_store(&c.node(4).store, g, &ws).await;

    // A stale epoch is refused.
    assert_eq!(
        c.at_leader(g, "stale remove", |r| async move {
            r.remove_peer(g, e0, ChunkServerId(4)).await
        })
        .await
        .unwrap_err(),
        ChunkError::EpochTooOld {
            group: g,
            sent: e0,
            current: e1
        }
    );
    // A follower redirects membership changes before looking at the epoch. (The stale
    // epoch makes sure nothing changes should the "follower" have become the leader
    // meanwhile: that answers EpochTooOld, and the check is made again.)
    wait_for(
        "a follower redirecting a membership change",
        WAIT,
        || async {
            let leader = c.leader(g, WAIT).await;
            let follower = (1..=4).find(|&i| i != leader).unwrap();
            let r = c.reg(follower).remove_peer(g, e0, ChunkServerId(4)).await;
            matches!(r, Err(ChunkError::Redirect { .. })).then_some(())
        },
    )
    .await;

    // Remove a follower other than 4.
    let leader = c.leader(g, WAIT).await;
    let victim = (1..=3).find(|&i| i != leader).unwrap();
    let keep: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|&i| i != victim).collect();
    let e2 = c
        .change_voters(g, &keep, |r, e| async move {
            r.remove_peer(g, e, ChunkServerId(victim as u32)).await
        })
        .await;
    assert!(e2 > e1);
    assert_eq!(c.voters(g).await, (keep, e2));

    // Change peer: swap 4 back out for the removed one (its replica still exists).
    let e3 = c
        .change_voters(g, &[1, 2, 3], |r, e| async move {
            r.change_peer(g, e, ChunkServerId(4), addr(victim)).await
        })
        .await;
    assert!(e3 > e2);
    assert_eq!(c.voters(g).await, (vec![1, 2, 3], e3));
    let peers = c.reg(c.leader(g, WAIT).await).status(g).unwrap().peers;
    let mut peers = peers;
    peers.sort_by_key(|p| p.id);
    assert_eq!(peers, vec![addr(1), addr(2), addr(3)]);
    // Peer 4 is a stray now: the MDS deletes its replica.
    c.reg(4).delete(g).await.unwrap();

    // Transfer leadership to a follower.
    let leader = c.leader(g, WAIT).await;
    let to = (1..=3).find(|&i| i != leader).unwrap();
    c.transfer(g, to).await;
    check_reads(&c, g, &ws).await;
    assert_eq!(c.reg(to).leader(g).unwrap().epoch, e3);
    assert!(Epoch(0) < e3);
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
    let ws = writes(40);
    let last = write_all(&c, g, &ws).await;
    // Every replica snapshots and purges its log behind the snapshot (followers too), so
    // whichever leads when the victim returns cannot send it the log.
    c.applied_everywhere(g, last).await;
    for id in 1..=3 {
        c.reg(id)
            .get(g)
            .unwrap()
            .raft()
            .wait(Some(WAIT))
            .metrics(|m| m.purged.is_some() && m.snapshot.is_some(), "purged")
            .await
            .unwrap();
    }

    let victim = 3;
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
        c.node(1).store.chunk_count(g)
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
    let ws = writes(25);
    let last1 = write_all(&c, g1, &ws).await;
    // g2: a few writes only, so it restarts from its log without a snapshot.
    let last2 = write_all(&c, g2, &ws[..3]).await;
    c.applied_everywhere(g1, last1).await;
    c.applied_everywhere(g2, last2).await;

    for id in 1..=3 {
        c.stop(id).await;
    }
    for id in 1..=3 {
        c.start(id).await;
        assert_eq!(c.reg(id).groups(), vec![g1, g2], "rebuilt from the WAL");
    }
    check_reads(&c, g1, &ws).await;
    check_reads(&c, g2, &ws[..3]).await;
    // And they still take writes.
    let more = writes(30)[25..].to_vec();
    let last = write_all(&c, g1, &more).await;
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
        let index = c.write(g, ChunkId(g.0), 512, &pattern(g.0, 8192)).await;
        c.applied_everywhere(g, index).await;
    }
    for &g in &groups {
        let got = c.read(g, ChunkId(g.0), 512, 8192).await;
        assert_eq!(got, Some(pattern(g.0, 8192)));
        // No chunk of another group leaked in.
        for n in &c.nodes {
            assert_eq!(n.store.chunk_count(g), 1);
        }
    }
    for id in 1..=3 {
        assert_eq!(c.reg(id).groups(), groups);
    }
    // Creating again is idempotent; bad peer lists are refused.
    c.create(groups[0], &[1, 2, 3]).await;
    assert!(matches!(
        c.reg(1).create(group(99), &[addr(1), addr(1)]).await,
        Err(ChunkError::InvalidRequest { .. })
    ));
    assert!(matches!(
        c.reg(1).create(group(99), &[]).await,
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
    let ws = writes(10);
    write_all(&c, g, &ws).await;
    let old = c.leader(g, WAIT).await;
    let old_term = c.reg(old).status(g).unwrap().term;

    c.net.set_isolated(old, true);
    // The other two elect a leader among themselves and keep taking writes.
    let new_leader = || async {
        (1..=3).filter(|&i| i != old).find(|&i| {
            c.reg(i)
                .status(g)
                .is_ok_and(|s| s.role == RaftRole::Leader && s.term > old_term)
        })
    };
    wait_for("a leader of the majority", WAIT, new_leader).await;
    let more = writes(15)[10..].to_vec();
    let mut last = 0;
    for (chunk, offset, data) in &more {
        last = wait_for("a write to the majority", WAIT, || async {
            let l = new_leader().await?;
            c.reg(l).write(g, *chunk, *offset, data.clone()).await.ok()
        })
        .await
        .index;
    }
    // The isolated leader's lease runs out: it cannot serve a linearizable read.
    assert!(c.reg(old).read(g, ws[0].0, ws[0].1, 4096).await.is_err());

    c.net.set_isolated(old, false);
    c.applied_everywhere(g, last).await;
    check_store(&c.node(old).store, g, &more).await;
    // The old leader rejoined as a follower of a newer term, and redirects to its leader.
    wait_for(
        "the old leader to redirect to the current one",
        WAIT,
        || async {
            let l = c.leader(g, WAIT).await;
            let st = c.reg(old).status(g).ok()?;
            let r = c.reg(old).read(g, ws[0].0, ws[0].1, 4096).await;
            let redirected =
                matches!(r, Err(ChunkError::Redirect { leader: Some(a), .. }) if a == addr(l));
            (l != old && st.role == RaftRole::Follower && st.term > old_term && redirected)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_only_create_adds_a_peer_with_an_id_below_every_voter() {
    let c = Cluster::new(4, CopysetConfig::fast_for_tests()).await;
    let g = group(8);
    c.create(g, &[2, 3, 4]).await;
    let ws = writes(10);
    let last = write_all(&c, g, &ws).await;
    let (_, e0) = c.voters(g).await;

    // Join-only: the current voters, without node 1 (a list naming node 1 would make it,
    // the lowest id, initialize a group of its own). Idempotent.
    let voters = [addr(2), addr(3), addr(4)];
    c.reg(1).create(g, &voters).await.unwrap();
    c.reg(1).create(g, &voters).await.unwrap();
    let st = c.reg(1).status(g).unwrap();
    assert!(st.peers.is_empty(), "pristine: no membership of its own");
    assert_ne!(st.role, RaftRole::Leader);
    assert_eq!(
        c.voters(g).await,
        (vec![2, 3, 4], e0),
        "nothing changed yet"
    );

    // Learner, then voter.
    let e1 = c
        .change_voters(g, &[1, 2, 3, 4], |r, e| async move {
            r.add_peer(g, e, addr(1)).await
        })
        .await;
    assert!(e1 > e0);
    c.applied_everywhere(g, last).await;
    check_store(&c.node(1).store, g, &ws).await;
    let st = c.reg(1).status(g).unwrap();
    assert_eq!(st.peers.len(), 4);
    assert_eq!(st.epoch, e1);

    // A full voter: it can lead, and serves everything.
    c.transfer(g, 1).await;
    check_reads(&c, g, &ws).await;
    let more = writes(15)[10..].to_vec();
    write_all(&c, g, &more).await;
    check_reads(&c, g, &more).await;
}
