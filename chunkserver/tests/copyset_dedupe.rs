//! Request ids end to end on three in-process replicas (in-memory raft network, WAL and
//! chunk store twins): a write whose retry commits after another client's write to the
//! same block is applied once, on every replica, across a leader change, after a snapshot
//! and a restart of every replica, and on a replica that was rebuilt from a snapshot.

use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::copyset::testing::{MemChunkStore, MemGroupLog, MemNet};
use basalt_chunkserver::copyset::{CopysetConfig, Copysets, CopysetsParams};
use basalt_proto::chunk::{RaftRole, RequestId, WriteChunkOk};
use basalt_proto::ids::{ChunkId, ChunkServerId, CopysetId, GroupId, LogicalPoolId};
use basalt_proto::status::{ChunkError, InvalidReason, PeerAddr};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
const BLOCK: u64 = 4096;

fn group(n: u32) -> GroupId {
    GroupId::of(LogicalPoolId(1), CopysetId(n))
}

fn addr(id: u64) -> PeerAddr {
    PeerAddr {
        id: ChunkServerId(id as u32),
        addr: format!("127.0.0.1:{}", 7100 + id).parse().unwrap(),
    }
}

fn id(client: u64, seq: u64, done_below: u64) -> RequestId {
    RequestId {
        client,
        seq,
        done_below,
    }
}

fn block(byte: u8) -> Bytes {
    Bytes::from(vec![byte; BLOCK as usize])
}

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
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
    async fn new(config: CopysetConfig) -> Cluster {
        let mut c = Cluster {
            net: MemNet::new(),
            config,
            nodes: (1..=3)
                .map(|_| Node {
                    log: MemGroupLog::new(),
                    store: MemChunkStore::new(),
                    reg: None,
                })
                .collect(),
        };
        for id in 1..=3 {
            c.start(id).await;
        }
        c
    }

    fn reg(&self, id: u64) -> &Copysets {
        self.nodes[(id - 1) as usize]
            .reg
            .as_ref()
            .expect("node is running")
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

    async fn leader(&self, g: GroupId) -> u64 {
        wait_for("a leader", || async {
            (1..=3u64).find(|&i| {
                self.nodes[(i - 1) as usize].reg.as_ref().is_some_and(|r| {
                    r.status(g)
                        .is_ok_and(|s| s.role == RaftRole::Leader && s.leader == Some(addr(i).id))
                })
            })
        })
        .await
    }

    /// Send the client write `req` of block 0 of chunk 1 to whoever leads.
    async fn write(
        &self,
        g: GroupId,
        req: RequestId,
        data: Bytes,
    ) -> Result<WriteChunkOk, ChunkError> {
        self.write_to(g, ChunkId(1), req, data).await
    }

    /// Send the client write `req` to whoever leads, following leadership changes.
    async fn write_to(
        &self,
        g: GroupId,
        chunk: ChunkId,
        req: RequestId,
        data: Bytes,
    ) -> Result<WriteChunkOk, ChunkError> {
        let deadline = Instant::now() + WAIT;
        loop {
            let l = self.leader(g).await;
            match self
                .reg(l)
                .write_with_id(g, chunk, 0, data.clone(), req)
                .await
            {
                Err(ChunkError::Redirect { .. } | ChunkError::Unavailable)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                other => return other,
            }
        }
    }

    /// Wait until every running replica applied `index`, then check all hold `byte`.
    async fn check_everywhere(&self, g: GroupId, index: u64, byte: u8) {
        for n in self.nodes.iter().filter(|n| n.reg.is_some()) {
            let cs = n.reg.as_ref().unwrap().get(g).expect("replica exists");
            cs.raft()
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), "applied")
                .await
                .unwrap();
            let got = n.store.read(g, ChunkId(1), 0, BLOCK).await.unwrap();
            // The distinct bytes of the block (one, `byte`, unless torn or stale).
            let mut seen: Vec<u8> = got.as_deref().unwrap_or_default().to_vec();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen, vec![byte], "replica store after index {index}");
        }
    }

    /// Wait until every running replica has snapshotted and purged its log.
    async fn purged_everywhere(&self, g: GroupId, past: u64) {
        for n in self.nodes.iter().filter(|n| n.reg.is_some()) {
            let cs = n.reg.as_ref().unwrap().get(g).unwrap();
            cs.raft()
                .wait(Some(WAIT))
                .metrics(
                    |m| m.purged.is_some_and(|p| p.index >= past),
                    "snapshot and purge",
                )
                .await
                .unwrap();
        }
    }
}

/// Client A's write (A, 1) and its retry commit around client B's acknowledged write
/// (B, 1): the retry answers success and the block keeps B's value, here and after a
/// leader change, a snapshot, a restart of every replica, and on a replica rebuilt from a
/// snapshot that then leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_is_applied_once_everywhere() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let config = CopysetConfig {
            snapshot_after_entries: 10,
            keep_after_snapshot: 0,
            snapshot_piece_bytes: 1024 * 1024,
            ..CopysetConfig::fast_for_tests()
        };
        let mut c = Cluster::new(config).await;
        let g = group(1);
        let peers: Vec<PeerAddr> = (1..=3).map(addr).collect();
        for i in (1..=3).rev() {
            c.reg(i).create(g, &peers).await.unwrap();
        }
        let (a1, b1) = (id(0xa, 1, 1), id(0xb, 1, 1));
        c.write(g, a1, block(0xaa)).await.unwrap();
        c.write(g, b1, block(0xbb)).await.unwrap();
        // The retry of A's write, after B's was acknowledged.
        let retry = c.write(g, a1, block(0xaa)).await.unwrap();
        c.check_everywhere(g, retry.index, 0xbb).await;

        // A new leader remembers it too.
        let old = c.leader(g).await;
        let to = if old == 1 { 2 } else { 1 };
        c.reg(old)
            .transfer_leader(g, addr(to).id)
            .await
            .expect("leader transferred");
        let retry = c.write(g, a1, block(0xaa)).await.unwrap();
        c.check_everywhere(g, retry.index, 0xbb).await;

        // Client C fills the log so every replica snapshots and purges behind A's and B's
        // writes, then every replica restarts from its snapshot and log.
        let mut last = retry.index;
        for s in 1..=25 {
            last = c
                .write_to(g, ChunkId(2), id(0xc, s, s), block(s as u8))
                .await
                .unwrap()
                .index;
        }
        c.purged_everywhere(g, retry.index).await;
        for i in 1..=3 {
            c.stop(i).await;
        }
        for i in 1..=3 {
            c.start(i).await;
        }
        let retry = c.write(g, a1, block(0xaa)).await.unwrap();
        assert!(retry.index > last);
        c.check_everywhere(g, retry.index, 0xbb).await;

        // A replica rebuilt from a snapshot (its disk wiped) learns the table with it.
        // (Not node 1: the lowest id initializes a group it is created on.)
        let victim = if c.leader(g).await == 3 { 2 } else { 3 };
        c.stop(victim).await;
        c.nodes[(victim - 1) as usize].log = MemGroupLog::new();
        c.nodes[(victim - 1) as usize].store = MemChunkStore::new();
        // (Its peers' logs are purged: it can only catch up from a snapshot.)
        c.write(g, id(0xb, 2, 2), block(0xb2)).await.unwrap();
        let back = c.write(g, id(0xb, 3, 3), block(0xb3)).await.unwrap();
        // A fresh leader, whose replication to the victim starts from nothing (the old
        // leader remembers the victim's wiped log as matched).
        let l = c.leader(g).await;
        let other = (1..=3).find(|&i| i != l && i != victim).unwrap();
        c.reg(l)
            .transfer_leader(g, addr(other).id)
            .await
            .expect("leader transferred");
        c.start(victim).await;
        c.reg(victim).create(g, &peers).await.unwrap();
        c.check_everywhere(g, back.index, 0xb3).await;
        let snap = c
            .reg(victim)
            .get(g)
            .unwrap()
            .raft()
            .wait(Some(WAIT))
            .metrics(|m| m.snapshot.is_some(), "snapshot installed")
            .await
            .unwrap();
        assert!(snap.snapshot.is_some());
        let l = c.leader(g).await;
        if l != victim {
            c.reg(l)
                .transfer_leader(g, addr(victim).id)
                .await
                .expect("leadership to the rebuilt replica");
        }
        assert_eq!(c.leader(g).await, victim);
        // The log behind A's first write is purged everywhere: only the snapshot's table
        // can tell the rebuilt leader that a retry of it is a duplicate.
        let retry = c.write(g, a1, block(0xaa)).await.unwrap();
        c.check_everywhere(g, retry.index, 0xb3).await;
        // B's request 3 is its latest; a late retry of it must not undo anything.
        let write4 = c.write(g, id(0xa, 2, 2), block(0xa2)).await.unwrap();
        let retry = c.write(g, id(0xb, 3, 3), block(0xb3)).await.unwrap();
        assert!(retry.index > write4.index);
        c.check_everywhere(g, retry.index, 0xa2).await;

        // A request below its client's watermark is refused, not applied.
        let stale = c.write(g, id(0xa, 1, 1), block(0xaa)).await;
        assert_eq!(
            stale,
            Err(ChunkError::InvalidRequest {
                reason: InvalidReason::StaleRequest
            })
        );
        let now = c.reg(c.leader(g).await).status(g).unwrap().last_index;
        c.check_everywhere(g, now, 0xa2).await;
    })
    .await
    .expect("test bounded");
}
