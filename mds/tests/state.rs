//! `MdsState` persisted through the in-memory store and a real etcd: everything survives a
//! reload (and, for etcd, a SIGKILL + restart of etcd itself); fenced writes of a deposed
//! MDS are refused without touching memory.

use basalt_mds::state::{MdsState, StateConfig};
use basalt_mds::store::etcd::EtcdStore;
use basalt_mds::store::fence::{Fence, FencedStore};
use basalt_mds::store::mem::MemStore;
use basalt_mds::store::MetaStore;
use basalt_mds::topology::clustermap::ClusterMap;
use basalt_mds::topology::OnlineState;
use basalt_mds::Error;
use basalt_proto::heartbeat::{CopysetReport, DiskStats, Heartbeat, OperatorKind};
use basalt_proto::ids::{ChunkServerId, Epoch, LogicalPoolId, SEGMENT_SIZE};
use basalt_proto::mds::{
    CreateVolume, DeleteVolume, ExtendVolume, GetSegment, OpenVolume, RegisterChunkServer,
    RenameVolume,
};
use basalt_proto::status::MdsError;
use basalt_testkit::EtcdProcess;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn delete(name: &str) -> DeleteVolume {
    DeleteVolume {
        name: name.into(),
        auth: None,
    }
}

mod common;

const T: Duration = Duration::from_secs(60);

fn cfg() -> StateConfig {
    StateConfig {
        chunk_id_batch: 100,
        load_page: 7,
        ..Default::default()
    }
}

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

/// Build a cluster with volumes and segments; returns tokens by chunkserver.
async fn populate(st: &MdsState) -> BTreeMap<ChunkServerId, String> {
    let map = ClusterMap::parse(&common::three_zone_map(10)).unwrap();
    let d = st.apply_cluster_map(&map).await.unwrap();
    assert_eq!(d.servers.len(), 3);
    assert!(
        st.apply_cluster_map(&map).await.unwrap().is_empty(),
        "idempotent"
    );
    let mut tokens = BTreeMap::new();
    for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
        for d in 0..2 {
            let r = st
                .register(&reg(h, &format!("disk{d}"), 9000 + (i * 2 + d) as u16), 1)
                .await
                .unwrap();
            tokens.insert(r.id, r.token);
        }
    }
    assert_eq!(tokens.len(), 6);
    assert_eq!(
        st.create_volume(
            &CreateVolume {
                name: "v".into(),
                size: SEGMENT_SIZE,
                owner: "o".into(),
                auth: None,
            },
            0
        )
        .await
        .unwrap_err()
        .to_wire(),
        MdsError::NoCopysets
    );
    assert_eq!(st.create_copysets(LogicalPoolId(1), 7).await.unwrap(), 20);
    assert_eq!(
        st.create_copysets(LogicalPoolId(1), 7).await.unwrap(),
        0,
        "idempotent"
    );
    for (name, segs) in [("alpha", 3u64), ("beta", 2), ("gamma", 1)] {
        st.create_volume(
            &CreateVolume {
                name: name.into(),
                size: segs * SEGMENT_SIZE,
                owner: "o".into(),
                auth: None,
            },
            1_000,
        )
        .await
        .unwrap();
    }
    let dup = st
        .create_volume(
            &CreateVolume {
                name: "alpha".into(),
                size: SEGMENT_SIZE,
                owner: "o".into(),
                auth: None,
            },
            1_000,
        )
        .await;
    assert_eq!(dup.unwrap_err().to_wire(), MdsError::VolumeExists);
    let open = |name: &str| OpenVolume {
        name: name.into(),
        owner: "o".into(),
        shared: false,
        client: "c".into(),
        auth: None,
    };
    let a = st.open_volume(&open("alpha"), 1_000).await.unwrap();
    assert_eq!(
        st.open_volume(&open("alpha"), 1_100)
            .await
            .unwrap_err()
            .to_wire(),
        MdsError::VolumeBusy {
            volume: a.volume.id
        }
    );
    for index in [0, 2] {
        let seg = st
            .get_segment(
                &GetSegment {
                    volume: a.volume.id,
                    session: a.session.id.clone(),
                    index,
                    allocate: true,
                },
                1_200,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seg.chunks.len(), 64);
    }
    // Not allocated without `allocate`; out of range refused; bad session refused.
    let get = |index, allocate, session: &str| GetSegment {
        volume: a.volume.id,
        session: session.into(),
        index,
        allocate,
    };
    assert_eq!(
        st.get_segment(&get(1, false, &a.session.id), 1_300)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        st.get_segment(&get(3, true, &a.session.id), 1_300)
            .await
            .unwrap_err()
            .to_wire(),
        MdsError::OutOfRange { .. }
    ));
    assert_eq!(
        st.get_segment(&get(1, true, "nope"), 1_300)
            .await
            .unwrap_err()
            .to_wire(),
        MdsError::SessionExpired
    );
    // Chunk ids are unique across segments (batches of 100 span two fetches).
    let s0 = st
        .get_segment(&get(0, false, ""), 1_300)
        .await
        .unwrap()
        .unwrap();
    let s2 = st
        .get_segment(&get(2, false, ""), 1_300)
        .await
        .unwrap()
        .unwrap();
    let mut ids: Vec<_> = s0.chunks.iter().chain(&s2.chunks).map(|c| c.1).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 128);
    st.close_volume(a.volume.id, &a.session.id).await.unwrap();
    st.extend_volume(
        &ExtendVolume {
            name: "beta".into(),
            size: 4 * SEGMENT_SIZE,
            auth: None,
        },
        2_000,
    )
    .await
    .unwrap();
    st.rename_volume(
        &RenameVolume {
            from: "beta".into(),
            to: "beta2".into(),
            auth: None,
        },
        2_000,
    )
    .await
    .unwrap();
    st.delete_volume(&delete("gamma"), 2_000).await.unwrap();
    assert_eq!(
        st.stat_volume("gamma").await.unwrap_err().to_wire(),
        MdsError::VolumeNotFound
    );
    tokens
}

async fn snapshot(
    st: &MdsState,
) -> (
    Vec<basalt_proto::mds::VolumeInfo>,
    Vec<Option<basalt_proto::mds::SegmentInfo>>,
) {
    let vols = st.list_volumes().await;
    let mut segs = Vec::new();
    for v in &vols {
        for i in 0..v.size / SEGMENT_SIZE {
            segs.push(
                st.get_segment(
                    &GetSegment {
                        volume: v.id,
                        session: String::new(),
                        index: i,
                        allocate: false,
                    },
                    0,
                )
                .await
                .unwrap(),
            );
        }
    }
    (vols, segs)
}

async fn heartbeat_and_schedule(st: &MdsState, tokens: &BTreeMap<ChunkServerId, String>) {
    let topo = st.topology().await;
    let (g, rec) = topo
        .copysets
        .iter()
        .next()
        .map(|(g, r)| (*g, r.clone()))
        .unwrap();
    let leader = rec.peers[0];
    let hb = |id: ChunkServerId, reports: Vec<CopysetReport>| Heartbeat {
        id,
        token: tokens[&id].clone(),
        addr: topo.chunkservers[&id].addr,
        disk: DiskStats::default(),
        copysets: reports,
    };
    let unknown = Heartbeat {
        id: ChunkServerId(99),
        ..hb(leader, vec![])
    };
    assert_eq!(
        st.heartbeat(&unknown, 10).await.unwrap_err().to_wire(),
        MdsError::UnknownChunkServer {
            id: ChunkServerId(99)
        }
    );
    // The leader reports a membership change at a higher epoch: persisted.
    let report = CopysetReport {
        group: g,
        epoch: Epoch(2),
        leader: Some(leader),
        peers: rec.peers.clone(),
        conf_change: None,
    };
    st.heartbeat(&hb(leader, vec![report]), 10).await.unwrap();
    assert_eq!(st.topology().await.copysets[&g].epoch, Epoch(2));
    // Every chunkserver but one keeps heartbeating; the silent one goes offline.
    let silent = *tokens
        .keys()
        .find(|c| **c != leader && rec.peers.contains(c))
        .unwrap();
    let offline_at = 10 + cfg().liveness.offline_after_ms;
    for id in tokens.keys().filter(|c| **c != silent) {
        st.heartbeat(&hb(*id, vec![]), offline_at).await.unwrap();
    }
    let ops = st.tick(offline_at).await;
    assert!(!ops.is_empty());
    assert_eq!(
        st.topology().await.chunkservers[&silent].state,
        OnlineState::Offline
    );
    let mine: Vec<_> = ops.iter().filter(|o| o.group == g).collect();
    assert_eq!(mine.len(), 1, "{ops:?}");
    assert!(matches!(mine[0].kind, OperatorKind::ChangePeer { remove, .. } if remove == silent));
    // The leader gets its operator in the heartbeat reply.
    let report = CopysetReport {
        group: g,
        epoch: Epoch(2),
        leader: Some(leader),
        peers: rec.peers.clone(),
        conf_change: None,
    };
    let reply = st
        .heartbeat(&hb(leader, vec![report]), offline_at + 1)
        .await
        .unwrap();
    assert!(reply.operators.iter().any(|o| o.group == g));
    assert!(!st.list_operators(offline_at + 1).await.is_empty());
}

async fn scenario(store: Arc<dyn MetaStore>) -> BTreeMap<ChunkServerId, String> {
    let st = MdsState::load(store.clone(), cfg(), 0).await.unwrap();
    let tokens = populate(&st).await;
    heartbeat_and_schedule(&st, &tokens).await;
    let before = snapshot(&st).await;
    let topo_before = st.topology().await;
    let cluster = st.cluster_id().await;
    drop(st);
    let again = MdsState::load(store, cfg(), 0).await.unwrap();
    assert_eq!(
        snapshot(&again).await,
        before,
        "volumes and segments survive a reload"
    );
    let topo = again.topology().await;
    assert_eq!(topo.copysets.len(), topo_before.copysets.len());
    for (g, c) in &topo.copysets {
        assert_eq!(
            (c.epoch, &c.peers),
            (
                topo_before.copysets[g].epoch,
                &topo_before.copysets[g].peers
            )
        );
    }
    assert_eq!(
        topo.chunkservers.keys().collect::<Vec<_>>(),
        topo_before.chunkservers.keys().collect::<Vec<_>>()
    );
    assert_eq!(again.cluster_id().await, cluster);
    assert_eq!(
        again.stat_volume("beta2").await.unwrap().size,
        4 * SEGMENT_SIZE
    );
    // A known disk re-registering keeps its id.
    let r = again.register(&reg("h1", "disk0", 9000), 5).await.unwrap();
    assert_eq!(r.token, tokens[&r.id]);
    tokens
}

#[tokio::test]
async fn state_survives_reload_mem() {
    tokio::time::timeout(T, scenario(Arc::new(MemStore::new())))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_reload_and_etcd_restart() {
    let mut etcd = EtcdProcess::start().expect("etcd");
    let store: Arc<dyn MetaStore> = Arc::new(EtcdStore::connect(&[etcd.endpoint()]).await.unwrap());
    tokio::time::timeout(T, scenario(store.clone()))
        .await
        .unwrap();
    let before = {
        let st = MdsState::load(store.clone(), cfg(), 0).await.unwrap();
        snapshot(&st).await
    };
    etcd.kill();
    etcd.restart().expect("etcd restart");
    let store: Arc<dyn MetaStore> = Arc::new(EtcdStore::connect(&[etcd.endpoint()]).await.unwrap());
    let st = tokio::time::timeout(T, MdsState::load(store, cfg(), 0))
        .await
        .unwrap()
        .unwrap();
    let after = snapshot(&st).await;
    assert_eq!(
        after, before,
        "every volume and segment kept across an etcd SIGKILL + restart"
    );
    assert_eq!(after.0.len(), 2);
    assert_eq!(after.1.iter().filter(|s| s.is_some()).count(), 2);
}

async fn deposed(inner: Arc<dyn MetaStore>) {
    let rev = inner.put(b"/basalt/v1/mds/leader/1", b"a").await.unwrap();
    let fenced: Arc<dyn MetaStore> = Arc::new(FencedStore::new(
        inner.clone(),
        Fence {
            key: b"/basalt/v1/mds/leader/1".to_vec(),
            create_revision: rev,
        },
    ));
    let st = MdsState::load(fenced, cfg(), 0).await.unwrap();
    populate(&st).await;
    // Another MDS takes over: our key is gone and re-created by someone else.
    inner.delete(b"/basalt/v1/mds/leader/1").await.unwrap();
    inner.put(b"/basalt/v1/mds/leader/1", b"b").await.unwrap();
    let r = st
        .create_volume(
            &CreateVolume {
                name: "late".into(),
                size: SEGMENT_SIZE,
                owner: "o".into(),
                auth: None,
            },
            5_000,
        )
        .await;
    assert!(matches!(r, Err(Error::Fenced)), "{r:?}");
    assert!(matches!(
        st.delete_volume(&delete("alpha"), 5_000).await,
        Err(Error::Fenced)
    ));
    assert_eq!(
        st.stat_volume("late").await.unwrap_err().to_wire(),
        MdsError::VolumeNotFound,
        "memory untouched"
    );
    assert!(st.stat_volume("alpha").await.is_ok());
    let fresh = MdsState::load(inner, cfg(), 0).await.unwrap();
    assert!(fresh.stat_volume("late").await.is_err());
    assert!(fresh.stat_volume("alpha").await.is_ok());
}

#[tokio::test]
async fn deposed_mds_cannot_write_mem() {
    tokio::time::timeout(T, deposed(Arc::new(MemStore::new())))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposed_mds_cannot_write_etcd() {
    let etcd = EtcdProcess::start().expect("etcd");
    let store: Arc<dyn MetaStore> = Arc::new(EtcdStore::connect(&[etcd.endpoint()]).await.unwrap());
    tokio::time::timeout(T, deposed(store)).await.unwrap();
}
