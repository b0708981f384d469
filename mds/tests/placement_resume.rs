//! A pool's copysets are written in batches; an MDS that dies half-way leaves a partial
//! pool. Its successor resumes from the stored placement plan and ends with exactly the
//! copysets an uninterrupted creation writes (in memory and, after a reload, in the store).

use async_trait::async_trait;
use basalt_mds::state::{MdsState, StateConfig};
use basalt_mds::store::etcd::EtcdStore;
use basalt_mds::store::mem::MemStore;
use basalt_mds::store::{KeyValue, MetaStore, Page, Txn, TxnOutcome};
use basalt_mds::topology::clustermap::ClusterMap;
use basalt_mds::topology::CopysetRecord;
use basalt_mds::Error;
use basalt_proto::heartbeat::DiskStats;
use basalt_proto::ids::{GroupId, LogicalPoolId};
use basalt_proto::mds::RegisterChunkServer;
use basalt_testkit::EtcdProcess;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

const T: Duration = Duration::from_secs(60);
const POOL: LogicalPoolId = LogicalPoolId(1);

/// A store whose transactions fail once `budget` of them went through (a crash).
struct Crashing {
    inner: Arc<dyn MetaStore>,
    budget: AtomicUsize,
}

#[async_trait]
impl MetaStore for Crashing {
    async fn get(&self, key: &[u8]) -> basalt_mds::Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn range(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> basalt_mds::Result<Page> {
        self.inner.range(prefix, after, limit).await
    }
    async fn put(&self, key: &[u8], value: &[u8]) -> basalt_mds::Result<i64> {
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &[u8]) -> basalt_mds::Result<bool> {
        self.inner.delete(key).await
    }
    async fn txn(&self, txn: Txn) -> basalt_mds::Result<TxnOutcome> {
        let left = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1));
        if left.is_err() {
            return Err(Error::Io {
                op: "txn",
                source: std::io::Error::other("injected crash"),
            });
        }
        self.inner.txn(txn).await
    }
}

/// Cluster map, six chunkservers (two per zone), 100 copysets each: 200 copysets, four
/// batches of 64.
async fn setup(store: Arc<dyn MetaStore>) {
    let st = MdsState::load(store, StateConfig::default(), 0)
        .await
        .unwrap();
    let map = ClusterMap::parse(&common::three_zone_map(100)).unwrap();
    st.apply_cluster_map(&map).await.unwrap();
    for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
        for d in 0..2u16 {
            st.register(
                &RegisterChunkServer {
                    server: h.to_string(),
                    disk_uuid: format!("disk{d}"),
                    addr: format!("127.0.0.1:{}", 9000 + i as u16 * 2 + d)
                        .parse()
                        .unwrap(),
                    existing: None,
                    disk: DiskStats::default(),
                },
                1,
            )
            .await
            .unwrap();
        }
    }
}

async fn copysets(st: &MdsState) -> BTreeMap<GroupId, CopysetRecord> {
    st.topology().await.copysets
}

async fn scenario(fresh: impl Fn() -> Arc<dyn MetaStore>) {
    // What an uninterrupted creation writes.
    let reference = fresh();
    setup(reference.clone()).await;
    let st = MdsState::load(reference, StateConfig::default(), 1)
        .await
        .unwrap();
    assert_eq!(st.pools_to_place(3).await, [POOL]);
    assert_eq!(st.create_copysets(POOL, 7).await.unwrap(), 200);
    let want = copysets(&st).await;

    // The first MDS stores the plan and one batch, then dies.
    let store = fresh();
    setup(store.clone()).await;
    let crashing = Arc::new(Crashing {
        inner: store.clone(),
        budget: AtomicUsize::new(usize::MAX),
    });
    let first = MdsState::load(crashing.clone(), StateConfig::default(), 1)
        .await
        .unwrap();
    crashing.budget.store(2, Ordering::SeqCst);
    let r = first.create_copysets(POOL, 7).await;
    assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
    assert_eq!(copysets(&first).await.len(), 64, "memory follows the store");
    drop(first);

    // Its successor finds a partial pool with a plan, and resumes whatever the
    // chunkservers' state (min-online out of reach) and whatever seed it passes.
    let second = MdsState::load(store.clone(), StateConfig::default(), 1)
        .await
        .unwrap();
    assert_eq!(copysets(&second).await.len(), 64);
    let plan = second.placement_plan(POOL).await.expect("plan stored");
    assert_eq!((plan.seed, plan.copysets, plan.members.len()), (7, 200, 6));
    assert_eq!(second.pools_to_place(usize::MAX).await, [POOL]);
    assert_eq!(second.create_copysets(POOL, 12345).await.unwrap(), 136);
    assert_eq!(copysets(&second).await, want);
    assert!(second.pools_to_place(1).await.is_empty());
    assert_eq!(
        second.create_copysets(POOL, 7).await.unwrap(),
        0,
        "idempotent"
    );

    // And the store holds exactly that.
    let third = MdsState::load(store, StateConfig::default(), 1)
        .await
        .unwrap();
    assert_eq!(copysets(&third).await, want);
    assert!(third.pools_to_place(1).await.is_empty());
}

#[tokio::test]
async fn interrupted_copyset_creation_resumes_mem() {
    tokio::time::timeout(
        T,
        scenario(|| -> Arc<dyn MetaStore> { Arc::new(MemStore::new()) }),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_copyset_creation_resumes_etcd() {
    // The reference and the interrupted cluster need separate key spaces: two etcds.
    let (e1, e2) = (
        EtcdProcess::start().expect("etcd"),
        EtcdProcess::start().expect("etcd"),
    );
    let s1: Arc<dyn MetaStore> = Arc::new(EtcdStore::connect(&[e1.endpoint()]).await.unwrap());
    let s2: Arc<dyn MetaStore> = Arc::new(EtcdStore::connect(&[e2.endpoint()]).await.unwrap());
    let stores = std::sync::Mutex::new(vec![s2, s1]);
    tokio::time::timeout(
        T,
        scenario(|| stores.lock().unwrap().pop().expect("two stores")),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unreachable_scatter_width_refuses_the_pool_and_writes_nothing() {
    let store: Arc<dyn MetaStore> = Arc::new(MemStore::new());
    let st = MdsState::load(store.clone(), StateConfig::default(), 0)
        .await
        .unwrap();
    // One copyset per chunkserver over zones of 1, 1 and 5 chunkservers: 3 copysets, so
    // h1's chunkserver shares copysets with at most 4 others; 6 are asked for.
    let map = common::three_zone_map(1) + "scatter-width = 6\n";
    st.apply_cluster_map(&ClusterMap::parse(&map).unwrap())
        .await
        .unwrap();
    for (h, disks) in [("h1", 1u16), ("h2", 1), ("h3", 5)] {
        for d in 0..disks {
            st.register(
                &RegisterChunkServer {
                    server: h.into(),
                    disk_uuid: format!("disk{d}"),
                    addr: format!("127.0.0.1:{}", 9100 + d).parse().unwrap(),
                    existing: None,
                    disk: DiskStats::default(),
                },
                1,
            )
            .await
            .unwrap();
        }
    }
    let before = basalt_mds::store::list_all(&*store, b"/basalt/v1/", 100)
        .await
        .unwrap();
    match st.create_copysets(POOL, 7).await {
        Err(Error::Request(basalt_proto::status::MdsError::InvalidTopology { reason })) => {
            assert!(reason.contains("scatter width 6"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(copysets(&st).await.is_empty());
    assert_eq!(st.placement_plan(POOL).await, None);
    let after = basalt_mds::store::list_all(&*store, b"/basalt/v1/", 100)
        .await
        .unwrap();
    assert_eq!(after, before, "nothing written");
}
