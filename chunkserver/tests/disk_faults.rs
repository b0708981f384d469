//! Disk errors injected with failpoints (cargo feature `failpoints`): three in-process
//! chunkservers on real data dirs (chunk store + shared WAL on disk, raft over the
//! in-memory network). Each test makes one disk fail one kind of I/O with `EIO` while a
//! client-like loop writes and reads through the leader, then checks that:
//!
//! - the failing chunkserver fenced itself off the disk: its replica stopped, and every
//!   request for it is answered `DiskError` (no stale read, no acknowledgement);
//! - the two others keep serving (a new leader if the failed one led), and every
//!   acknowledged write is readable, on both of them;
//! - nothing panicked.
//!
//! Run with `cargo nextest run -p basalt-chunkserver --features failpoints --test disk_faults`.
#![cfg(feature = "failpoints")]

use basalt_chunkserver::backend::spdk::SpdkOptions;
use basalt_chunkserver::backend::{BackendChoice, BackendFactory};
use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::copyset::testing::MemNet;
use basalt_chunkserver::copyset::{CopysetConfig, Copysets, CopysetsParams};
use basalt_chunkserver::datadir::{DataDir, FormatOptions};
use basalt_chunkserver::failpoints;
use basalt_chunkserver::poller::{PollerOptions, Pollers};
use basalt_chunkserver::store::{FileChunkStore, StoreOptions};
use basalt_chunkserver::wal::Wal;
use basalt_proto::chunk::RaftRole;
use basalt_proto::ids::{ChunkId, ChunkServerId, CopysetId, GroupId, LogicalPoolId};
use basalt_proto::status::{ChunkError, PeerAddr};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
const CHUNK: u64 = 1 << 20;
const G: GroupId = GroupId::of(LogicalPoolId(1), CopysetId(1));

/// Panics anywhere in the process (raft tasks included) since the hook was installed.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

fn addr(id: u64) -> PeerAddr {
    PeerAddr {
        id: ChunkServerId(id as u32),
        addr: format!("127.0.0.1:{}", 7100 + id).parse().unwrap(),
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
    store: Arc<FileChunkStore>,
    reg: Copysets,
}

struct Cluster {
    _root: tempfile::TempDir,
    nodes: Vec<Node>,
}

/// Format `<root>/cs<id>` and open its chunk store and WAL (sharing the disk's fence).
fn open_node(root: &Path, id: u64) -> (Arc<FileChunkStore>, Arc<Wal>) {
    let dir = root.join(format!("cs{id}"));
    let opts = FormatOptions {
        pool_size: 8,
        wal_segments: 4,
        chunk_size: CHUNK,
        wal_segment_size: 1 << 20,
    };
    let dir = DataDir::format(&dir, &opts, &mut |_| {}).unwrap();
    let factory = BackendFactory::probe(BackendChoice::Sync, &SpdkOptions::default()).unwrap();
    let pollers = Arc::new(
        Pollers::start(
            PollerOptions {
                threads: 1,
                ..PollerOptions::default()
            },
            &factory,
        )
        .unwrap(),
    );
    let store =
        Arc::new(FileChunkStore::open(dir.clone(), pollers, StoreOptions::default()).unwrap());
    let wal = Arc::new(Wal::open_fenced(&dir, store.fence().clone()).unwrap());
    (store, wal)
}

impl Cluster {
    async fn new(config: CopysetConfig) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let net = MemNet::new();
        let mut nodes = Vec::new();
        for id in 1..=3 {
            let (store, wal) = open_node(root.path(), id);
            let reg = Copysets::open(CopysetsParams {
                local: addr(id),
                log: wal,
                store: store.clone(),
                net: net.endpoint(id),
                config: config.clone(),
            })
            .await
            .unwrap();
            net.register(id, reg.clone());
            nodes.push(Node { store, reg });
        }
        let peers = [addr(1), addr(2), addr(3)];
        for n in nodes.iter().rev() {
            n.reg.create(G, &peers).await.unwrap();
        }
        Cluster { _root: root, nodes }
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn fenced(&self, id: u64) -> bool {
        self.node(id).store.fence().is_tripped()
    }

    /// The leader the healthy replicas agree on, confirmed by itself (fenced replicas are
    /// left out: their last view is stale by design).
    async fn leader(&self) -> u64 {
        wait_for("an agreed leader", WAIT, || async {
            let mut agreed = None;
            for id in (1..=3).filter(|&id| !self.fenced(id)) {
                let st = self.node(id).reg.status(G).ok()?;
                let l = st.leader?.0 as u64;
                if agreed.is_some_and(|a| a != l) {
                    return None;
                }
                agreed = Some(l);
            }
            let l = agreed.filter(|&l| !self.fenced(l))?;
            let st = self.node(l).reg.status(G).ok()?;
            (st.role == RaftRole::Leader).then_some(l)
        })
        .await
    }

    /// Write through the leader as a client does: a redirect, `Unavailable` or
    /// `DiskError` (the leader's disk failed) sends it to the leader of the moment.
    /// Returns the index it committed at.
    async fn write(&self, chunk: ChunkId, offset: u64, data: &Bytes) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let l = self.leader().await;
            match self.node(l).reg.write(G, chunk, offset, data.clone()).await {
                Ok(ok) => return ok.index,
                Err(
                    ChunkError::Redirect { .. }
                    | ChunkError::Unavailable
                    | ChunkError::DiskError { .. },
                ) if Instant::now() < deadline => {}
                Err(e) => panic!("write {chunk} @ {offset}: {e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Read through the leader, following it the same way.
    async fn read(&self, chunk: ChunkId, offset: u64, len: u64) -> Option<Bytes> {
        let deadline = Instant::now() + WAIT;
        loop {
            let l = self.leader().await;
            match self.node(l).reg.read(G, chunk, offset, len).await {
                Ok(d) => return d,
                Err(
                    ChunkError::Redirect { .. }
                    | ChunkError::Unavailable
                    | ChunkError::DiskError { .. },
                ) if Instant::now() < deadline => {}
                Err(e) => panic!("read {chunk} @ {offset}: {e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn shutdown(&self) {
        for n in &self.nodes {
            n.reg.shutdown().await;
        }
    }
}

fn data(i: u64) -> Bytes {
    (0..4096u64)
        .map(|b| (b.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// Where write `i` goes: 3 chunks, 4 KiB slots, some overwritten by later writes.
fn place(i: u64) -> (ChunkId, u64) {
    (ChunkId(10 + i % 3), (i % 20) * 4096)
}

/// Write number `i` through the leader and read it back; its place, data and index.
async fn write_and_read(c: &Cluster, i: u64) -> ((ChunkId, u64), Bytes, u64) {
    let (chunk, offset) = place(i);
    let d = data(i);
    let index = c.write(chunk, offset, &d).await;
    let got = c.read(chunk, offset, 4096).await;
    assert_eq!(
        got.as_ref(),
        Some(&d),
        "{chunk} @ {offset}: read after write"
    );
    ((chunk, offset), d, index)
}

/// Which replica's disk fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Leader,
    Follower,
}

/// The scenario every test runs: healthy writes, then `point` fails on the victim's disk
/// while writes (each read back) go on until the victim fenced and more writes were
/// acknowledged by the two others; then every check of the module doc.
async fn disk_fault(point: &'static str, victim: Victim, config: CopysetConfig) {
    let scenario = fail::FailScenario::setup();
    count_panics();
    let c = Cluster::new(config).await;
    // What each place should hold: the last acknowledged write there.
    let mut want: BTreeMap<(ChunkId, u64), Bytes> = BTreeMap::new();
    let mut i = 0u64;
    for _ in 0..10 {
        let (k, d, _) = write_and_read(&c, i).await;
        want.insert(k, d);
        i += 1;
    }

    let leader = c.leader().await;
    let v = match victim {
        Victim::Leader => leader,
        Victim::Follower => (1..=3).find(|&i| i != leader).unwrap(),
    };
    fail::cfg(point, &format!("return(cs{v})")).unwrap();
    let failed_at = Instant::now();
    let mut after_fence = 0;
    let mut last = 0;
    while after_fence < 10 {
        assert!(
            failed_at.elapsed() < WAIT * 2,
            "cs{v} never fenced (failpoint {point})"
        );
        let (k, d, index) = write_and_read(&c, i).await;
        i += 1;
        want.insert(k, d);
        last = index;
        if c.fenced(v) {
            after_fence += 1;
        }
    }
    let cause = c.node(v).store.fence().cause().expect("fenced");
    assert_eq!(
        cause.errno,
        libc::EIO,
        "fenced by the injected EIO ({cause:?})"
    );
    for id in (1..=3).filter(|&id| id != v) {
        assert!(!c.fenced(id), "cs{id} did not fail");
    }

    // The fenced replica stopped and refuses everything with DiskError.
    let bad = c.node(v);
    wait_for("the fenced replica to stop", WAIT, || async {
        (bad.reg.status(G).ok()?.role == RaftRole::Shutdown).then_some(())
    })
    .await;
    let (chunk, offset) = place(0);
    assert!(matches!(
        bad.reg.read(G, chunk, offset, 4096).await,
        Err(ChunkError::DiskError { errno: libc::EIO })
    ));
    assert!(matches!(
        bad.reg.write(G, chunk, offset, data(0)).await,
        Err(ChunkError::DiskError { .. })
    ));
    assert!(matches!(
        bad.reg.leader(G),
        Err(ChunkError::DiskError { .. })
    ));
    assert!(matches!(
        bad.store.read(G, chunk, offset, 4096).await,
        Err(basalt_chunkserver::ChunkServerError::Fenced)
    ));

    // The two others serve every acknowledged write, and both hold all of it.
    let l = c.leader().await;
    assert_ne!(l, v);
    for ((chunk, offset), d) in &want {
        let got = c.read(*chunk, *offset, 4096).await;
        assert_eq!(got.as_ref(), Some(d), "{chunk} @ {offset} after the fault");
    }
    for id in (1..=3).filter(|&id| id != v) {
        let n = c.node(id);
        n.reg
            .get(G)
            .unwrap()
            .raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(last), "applied")
            .await
            .unwrap();
        for ((chunk, offset), d) in &want {
            let got = n.store.read(G, *chunk, *offset, 4096).await.unwrap();
            assert_eq!(got.as_ref(), Some(d), "cs{id}: {chunk} @ {offset}");
        }
    }
    c.shutdown().await;
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_write_eio_on_the_leader() {
    disk_fault(
        failpoints::CHUNK_WRITE,
        Victim::Leader,
        CopysetConfig::fast_for_tests(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_write_eio_on_a_follower() {
    disk_fault(
        failpoints::CHUNK_WRITE,
        Victim::Follower,
        CopysetConfig::fast_for_tests(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_read_eio_on_the_leader() {
    disk_fault(
        failpoints::CHUNK_READ,
        Victim::Leader,
        CopysetConfig::fast_for_tests(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_sync_eio_on_the_leader_during_a_snapshot() {
    // Snapshots (which sync the chunks) every few entries.
    let config = CopysetConfig {
        snapshot_after_entries: 5,
        ..CopysetConfig::fast_for_tests()
    };
    disk_fault(failpoints::CHUNK_SYNC, Victim::Leader, config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_write_eio_on_the_leader() {
    disk_fault(
        failpoints::WAL_WRITE,
        Victim::Leader,
        CopysetConfig::fast_for_tests(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_fdatasync_eio_on_the_leader() {
    disk_fault(
        failpoints::WAL_FDATASYNC,
        Victim::Leader,
        CopysetConfig::fast_for_tests(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_fdatasync_eio_on_a_follower() {
    disk_fault(
        failpoints::WAL_FDATASYNC,
        Victim::Follower,
        CopysetConfig::fast_for_tests(),
    )
    .await;
}
