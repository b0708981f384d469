//! Drain marks, pool listing and the cluster map dry run on `MdsState`: the mark survives
//! a reload (in-memory store and a real etcd), a deposed MDS cannot set it, placement
//! skips a draining chunkserver, and a dry run writes nothing.

use basalt_mds::state::{MdsState, StateConfig};
use basalt_mds::store::etcd::EtcdStore;
use basalt_mds::store::fence::{Fence, FencedStore};
use basalt_mds::store::mem::MemStore;
use basalt_mds::store::MetaStore;
use basalt_mds::topology::clustermap::ClusterMap;
use basalt_mds::Error;
use basalt_proto::heartbeat::DiskStats;
use basalt_proto::ids::{ChunkServerId, LogicalPoolId};
use basalt_proto::mds::{DrainChunkServer, DrainState, RegisterChunkServer, TopologyChange};
use basalt_proto::status::MdsError;
use basalt_testkit::EtcdProcess;
use std::sync::Arc;
use std::time::Duration;

mod common;

const T: Duration = Duration::from_secs(60);

fn reg(server: &str, disk: &str, port: u16) -> RegisterChunkServer {
    RegisterChunkServer {
        server: server.into(),
        disk_uuid: disk.into(),
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        existing: None,
        disk: DiskStats {
            total_bytes: 1000,
            used_bytes: 100,
            ..Default::default()
        },
    }
}

/// Three zones, two chunkservers each (h1 has ids 1, 2; h2 3, 4; h3 5, 6).
async fn cluster(st: &MdsState) {
    let map = ClusterMap::parse(&common::three_zone_map(2)).unwrap();
    st.apply_cluster_map(&map).await.unwrap();
    for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
        for d in 0..2 {
            st.register(&reg(h, &format!("disk{d}"), 9000 + (i * 2 + d) as u16), 1)
                .await
                .unwrap();
        }
    }
}

fn drain(id: u32, undo: bool) -> DrainChunkServer {
    DrainChunkServer {
        id: ChunkServerId(id),
        undo,
    }
}

async fn marks_persist(store: Arc<dyn MetaStore>) {
    let st = MdsState::load(store.clone(), StateConfig::default(), 0)
        .await
        .unwrap();
    cluster(&st).await;
    let s = st.drain_chunkserver(&drain(2, false), 10).await.unwrap();
    // Nothing placed yet: marked and already empty.
    assert_eq!((s.state, s.copysets), (DrainState::Drained, 0));
    assert_eq!(
        st.drain_chunkserver(&drain(9, false), 10)
            .await
            .unwrap_err()
            .to_wire(),
        MdsError::UnknownChunkServer {
            id: ChunkServerId(9)
        }
    );
    // Placement leaves the draining chunkserver out.
    let n = st.create_copysets(LogicalPoolId(1), 7).await.unwrap();
    assert!(n > 0);
    let topo = st.topology().await;
    assert!(topo
        .copysets
        .values()
        .all(|c| !c.peers.contains(&ChunkServerId(2))));
    assert!(topo
        .copysets
        .values()
        .any(|c| c.peers.contains(&ChunkServerId(1))));
    // A reload (a new active MDS) keeps the mark; undo clears it for good.
    let st = MdsState::load(store.clone(), StateConfig::default(), 0)
        .await
        .unwrap();
    let l = st.list_drains().await;
    assert_eq!(l.len(), 1);
    assert_eq!(
        (l[0].id, l[0].state),
        (ChunkServerId(2), DrainState::Drained)
    );
    let s = st.drain_chunkserver(&drain(2, true), 20).await.unwrap();
    assert_eq!(s.state, DrainState::InService);
    let st = MdsState::load(store, StateConfig::default(), 0)
        .await
        .unwrap();
    assert!(st.list_drains().await.is_empty());
    // Pools are listed with the ids the MDS gave them.
    let pools = st.list_pools().await;
    assert_eq!(pools.len(), 1);
    assert_eq!(
        (pools[0].id, pools[0].name.as_str()),
        (LogicalPoolId(1), "blocks")
    );
    assert_eq!(pools[0].copysets as usize, n);
    assert_eq!(pools[0].total_bytes, 6000);
}

#[tokio::test]
async fn drain_marks_persist_mem() {
    tokio::time::timeout(T, marks_persist(Arc::new(MemStore::new())))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_marks_persist_etcd() {
    let etcd = EtcdProcess::start().expect("etcd");
    let store: Arc<dyn MetaStore> = Arc::new(EtcdStore::connect(&[etcd.endpoint()]).await.unwrap());
    tokio::time::timeout(T, marks_persist(store)).await.unwrap();
}

#[tokio::test]
async fn a_deposed_mds_cannot_mark_a_drain() {
    let inner: Arc<dyn MetaStore> = Arc::new(MemStore::new());
    let key = b"/basalt/v1/mds/leader/1";
    let rev = inner.put(key, b"a").await.unwrap();
    let fenced: Arc<dyn MetaStore> = Arc::new(FencedStore::new(
        inner.clone(),
        Fence {
            key: key.to_vec(),
            create_revision: rev,
        },
    ));
    let st = MdsState::load(fenced, StateConfig::default(), 0)
        .await
        .unwrap();
    cluster(&st).await;
    inner.delete(key).await.unwrap();
    inner.put(key, b"b").await.unwrap();
    let r = st.drain_chunkserver(&drain(1, false), 5).await;
    assert!(matches!(r, Err(Error::Fenced)), "{r:?}");
    assert!(st.list_drains().await.is_empty(), "memory untouched");
    let fresh = MdsState::load(inner, StateConfig::default(), 0)
        .await
        .unwrap();
    assert!(fresh.list_drains().await.is_empty());
}

#[tokio::test]
async fn a_dry_run_reports_without_writing() {
    let store: Arc<dyn MetaStore> = Arc::new(MemStore::new());
    let st = MdsState::load(store.clone(), StateConfig::default(), 0)
        .await
        .unwrap();
    cluster(&st).await;
    let before = st.topology().await;
    let text = common::three_zone_map(2).replace(
        "name = \"h3\"\nzone = \"z3\"",
        "name = \"h3\"\nzone = \"z1\"",
    ) + "[[server]]\nname = \"h4\"\nzone = \"z2\"\n";
    let p = st.plan_topology(&text).await.unwrap();
    let of = |c| {
        p.entries
            .iter()
            .filter(|e| e.change == c)
            .map(|e| (e.name.as_str(), e.id))
            .collect::<Vec<_>>()
    };
    assert_eq!(of(TopologyChange::Add), vec![("h4", 4)]);
    assert_eq!(of(TopologyChange::Conflict), vec![("h3", 3)]);
    assert_eq!(st.topology().await, before, "memory untouched");
    let fresh = MdsState::load(store, StateConfig::default(), 0)
        .await
        .unwrap();
    assert_eq!(
        fresh.topology().await.servers,
        before.servers,
        "store untouched"
    );
    // What the dry run calls a conflict, apply refuses.
    assert!(st.apply_topology(&text).await.is_err());
    // A map that does not parse is refused as apply refuses it.
    assert_eq!(
        st.plan_topology("[[zone]]\nname = \"z9\"\nphysical-pool = \"nowhere\"\n")
            .await
            .unwrap_err()
            .to_wire(),
        st.apply_topology("[[zone]]\nname = \"z9\"\nphysical-pool = \"nowhere\"\n")
            .await
            .unwrap_err()
            .to_wire()
    );
}
