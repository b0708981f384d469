//! Purge state transitions over the in-memory store: which volumes a purge selects,
//! which chunks it must delete, records removed only by `finish_purge`, resumption by a
//! fresh MDS (reload) after a purge died half-way, typed refusals with state unchanged,
//! and chunk ids never reused.

use basalt_mds::recycle::PurgeRunner;
use basalt_mds::state::{MdsState, StateConfig};
use basalt_mds::store::mem::MemStore;
use basalt_mds::store::MetaStore;
use basalt_mds::topology::clustermap::ClusterMap;
use basalt_mds::Result;
use basalt_proto::heartbeat::DiskStats;
use basalt_proto::ids::{ChunkId, LogicalPoolId, VolumeId, SEGMENT_SIZE};
use basalt_proto::mds::{
    CreateVolume, DeleteVolume, GetSegment, OpenVolume, PurgeVolume, Purged, RegisterChunkServer,
};
use basalt_proto::status::MdsError;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

mod common;

const T: Duration = Duration::from_secs(30);

async fn cluster(store: Arc<dyn MetaStore>) -> MdsState {
    let st = MdsState::load(store, StateConfig::default(), 0)
        .await
        .unwrap();
    let map = ClusterMap::parse(&common::three_zone_map(4)).unwrap();
    st.apply_cluster_map(&map).await.unwrap();
    for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
        st.register(
            &RegisterChunkServer {
                server: (*h).into(),
                disk_uuid: "d".into(),
                addr: format!("127.0.0.1:{}", 9100 + i).parse().unwrap(),
                existing: None,
                disk: DiskStats {
                    total_bytes: 1000,
                    used_bytes: 0,
                    ..Default::default()
                },
            },
            1,
        )
        .await
        .unwrap();
    }
    st.create_copysets(LogicalPoolId(1), 3).await.unwrap();
    st
}

/// Create `name` with `segs` segments, allocate all of them; returns the chunk ids.
async fn volume_with_segments(st: &MdsState, name: &str, segs: u64) -> (VolumeId, Vec<ChunkId>) {
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
    let o = st
        .open_volume(
            &OpenVolume {
                name: name.into(),
                owner: "o".into(),
                shared: false,
                client: "c".into(),
                auth: None,
            },
            1_000,
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for index in 0..segs {
        let seg = st
            .get_segment(
                &GetSegment {
                    volume: o.volume.id,
                    session: o.session.id.clone(),
                    index,
                    allocate: true,
                },
                1_000,
            )
            .await
            .unwrap()
            .unwrap();
        ids.extend(seg.chunks.iter().map(|c| c.1));
    }
    st.close_volume(o.volume.id, &o.session.id).await.unwrap();
    (o.volume.id, ids)
}

fn purge(name: &str) -> PurgeVolume {
    PurgeVolume {
        name: name.into(),
        auth: None,
    }
}

async fn delete(st: &MdsState, name: &str, now_ms: u64) {
    st.delete_volume(
        &DeleteVolume {
            name: name.into(),
            auth: None,
        },
        now_ms,
    )
    .await
    .unwrap();
}

async fn resumable_purge() {
    let store: Arc<dyn MetaStore> = Arc::new(MemStore::new());
    let st = cluster(store.clone()).await;
    let (id, chunks) = volume_with_segments(&st, "v", 2).await;
    let (_, keep) = volume_with_segments(&st, "w", 1).await;
    // Bad input: a live volume, an unknown one; nothing changes.
    assert_eq!(
        st.purge_candidates(&purge("v"), 2_000)
            .await
            .unwrap_err()
            .to_wire(),
        MdsError::VolumeNotDeleted { volume: id }
    );
    assert_eq!(
        st.purge_candidates(&purge("nope"), 2_000)
            .await
            .unwrap_err()
            .to_wire(),
        MdsError::VolumeNotFound
    );
    assert_eq!(
        st.purge_targets(id).await.unwrap_err().to_wire(),
        MdsError::VolumeNotFound,
        "a live volume has no purge targets"
    );
    assert_eq!(st.list_volumes().await.len(), 2);
    delete(&st, "v", 5_000).await;
    assert_eq!(st.purge_candidates(&purge("v"), 6_000).await.unwrap(), [id]);
    // Retention: due only once old enough.
    assert!(st.due_purges(5 + 99, 100).await.is_empty());
    assert_eq!(st.due_purges(5 + 100, 100).await, [id]);
    assert_eq!(st.due_purges(5, 0).await, [id]);
    let targets = st.purge_targets(id).await.unwrap();
    let got: BTreeSet<ChunkId> = targets.iter().map(|t| t.chunk).collect();
    assert_eq!(got, chunks.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(targets.len(), 128);
    assert!(targets.iter().all(|t| t.peers.len() == 3));
    // The MDS "dies" after deleting chunks, before removing records: a fresh load
    // finds the same work.
    drop(st);
    let st = MdsState::load(store.clone(), StateConfig::default(), 0)
        .await
        .unwrap();
    assert_eq!(st.purge_targets(id).await.unwrap(), targets);
    assert_eq!(st.due_purges(5, 0).await, [id], "deletion time persisted");
    st.finish_purge(id).await.unwrap();
    st.finish_purge(id).await.unwrap(); // idempotent
    assert_eq!(
        st.purge_candidates(&purge("v"), 7_000)
            .await
            .unwrap_err()
            .to_wire(),
        MdsError::VolumeNotFound
    );
    drop(st);
    let st = MdsState::load(store.clone(), StateConfig::default(), 0)
        .await
        .unwrap();
    assert!(st.purge_targets(id).await.is_err());
    assert!(st.due_purges(u64::MAX, 0).await.is_empty());
    // Other volumes untouched.
    assert_eq!(st.stat_volume("w").await.unwrap().size, SEGMENT_SIZE);
    // Chunk ids are never reused: a new volume gets fresh ones.
    let (_, fresh) = volume_with_segments(&st, "x", 1).await;
    let old: BTreeSet<ChunkId> = chunks.iter().chain(&keep).copied().collect();
    assert!(fresh.iter().all(|c| !old.contains(c)));
}

#[tokio::test]
async fn purge_is_resumable_and_refuses_bad_input() {
    tokio::time::timeout(T, resumable_purge())
        .await
        .expect("timed out");
}

/// A runner that "deletes" by recording the targets, then removes the records.
#[derive(Debug, Default)]
struct Recording {
    seen: parking_lot::Mutex<Vec<ChunkId>>,
}

impl PurgeRunner for Recording {
    fn purge<'a>(
        &'a self,
        state: &'a MdsState,
        volumes: &'a [VolumeId],
    ) -> futures::future::BoxFuture<'a, Result<Purged>> {
        Box::pin(async move {
            let mut chunks = 0;
            for v in volumes {
                let t = state.purge_targets(*v).await?;
                chunks += t.len() as u64;
                self.seen.lock().extend(t.iter().map(|t| t.chunk));
                state.finish_purge(*v).await?;
            }
            Ok(Purged {
                volumes: volumes.to_vec(),
                chunks,
            })
        })
    }
}

async fn purge_by_name() {
    let st = cluster(Arc::new(MemStore::new())).await;
    // No purger yet (a standby's state): refused, typed.
    let (a, _) = volume_with_segments(&st, "v", 1).await;
    delete(&st, "v", 2_000).await;
    assert_eq!(
        st.purge_volume(&purge("v"), 3_000)
            .await
            .unwrap_err()
            .to_wire(),
        MdsError::StoreUnavailable
    );
    // Same name again: both recycled volumes of that name are purged.
    let (b, _) = volume_with_segments(&st, "v", 1).await;
    delete(&st, "v", 2_000).await;
    let runner = Arc::new(Recording::default());
    st.set_purger(runner.clone());
    let out = st.purge_volume(&purge("v"), 3_000).await.unwrap();
    assert_eq!(out.volumes, [a, b]);
    assert_eq!(out.chunks, 128);
    assert_eq!(runner.seen.lock().len(), 128);
    assert_eq!(
        st.purge_volume(&purge("v"), 3_000)
            .await
            .unwrap_err()
            .to_wire(),
        MdsError::VolumeNotFound
    );
}

#[tokio::test]
async fn purge_by_name_uses_the_runner() {
    tokio::time::timeout(T, purge_by_name())
        .await
        .expect("timed out");
}

/// A fake chunkserver for DeleteChunk: the leader records deletes (a second delete of a
/// chunk answers `ChunkNotFound`); the others redirect to it.
struct FakeCs {
    leader: Option<basalt_proto::status::PeerAddr>,
    deleted: parking_lot::Mutex<BTreeSet<ChunkId>>,
}

fn fake_router(fake: Arc<FakeCs>) -> basalt_transport::Router {
    use basalt_proto::chunk::DeleteChunk;
    use basalt_proto::status::ChunkError;
    basalt_transport::Router::new().route::<DeleteChunk, _, _>(move |req, _p, _g, _cx| {
        let fake = fake.clone();
        async move {
            let r = match fake.leader {
                Some(l) => Err(ChunkError::Redirect {
                    group: req.group,
                    leader: Some(l),
                }),
                None if fake.deleted.lock().insert(req.chunk) => Ok(()),
                None => Err(ChunkError::ChunkNotFound { chunk: req.chunk }),
            };
            (r, bytes::Bytes::new())
        }
    })
}

async fn purger_over_fakes() {
    use basalt_mds::recycle::{PurgeConfig, Purger};
    use basalt_proto::hello::{Identity, Role};
    use basalt_transport::{ConnectionPool, MemNetwork, TransportOptions};
    use std::net::SocketAddr;
    let ident = |name: &str, role| Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    };
    let st = Arc::new(cluster(Arc::new(MemStore::new())).await);
    let topo = st.topology().await;
    let addrs: Vec<SocketAddr> = topo.chunkservers.values().map(|c| c.addr).collect();
    let leader = basalt_proto::status::PeerAddr {
        id: *topo.chunkservers.keys().last().unwrap(),
        addr: addrs[2],
    };
    let (id, chunks) = volume_with_segments(&st, "v", 1).await;
    delete(&st, "v", 1_000).await;
    let net = MemNetwork::new();
    let mut servers = Vec::new();
    let fakes: Vec<Arc<FakeCs>> = (0..3)
        .map(|i| {
            Arc::new(FakeCs {
                leader: (i < 2).then_some(leader),
                deleted: parking_lot::Mutex::new(BTreeSet::new()),
            })
        })
        .collect();
    // The two followers serve; the leader does not yet.
    for i in 0..2 {
        let ep = net
            .endpoint(
                &format!("cs{i}"),
                TransportOptions::new(ident("cs", Role::ChunkServer)),
            )
            .unwrap();
        servers.push(
            ep.serve(&addrs[i].to_string(), fake_router(fakes[i].clone()))
                .await
                .unwrap(),
        );
    }
    let mds_ep = net
        .endpoint("mds", TransportOptions::new(ident("mds", Role::Mds)))
        .unwrap();
    let purger = Arc::new(Purger::new(
        Arc::new(ConnectionPool::new(mds_ep)),
        Arc::new(|a: SocketAddr| a.to_string()),
        PurgeConfig {
            recycle_retention_secs: 0,
            interval_ms: 20,
            rpc_timeout_ms: 500,
            attempts: 3,
            concurrency: 8,
        },
    ));
    st.set_purger(purger.clone());
    // Leader unreachable: incomplete, every record kept.
    let err = st
        .purge_volume(&purge("v"), 2_000)
        .await
        .unwrap_err()
        .to_wire();
    assert_eq!(
        err,
        MdsError::PurgeIncomplete {
            volume: id,
            failed: 64
        }
    );
    assert_eq!(st.purge_targets(id).await.unwrap().len(), 64);
    // The leader comes up; the background task (retention 0) finishes the purge.
    let ep = net
        .endpoint("cs2", TransportOptions::new(ident("cs", Role::ChunkServer)))
        .unwrap();
    servers.push(
        ep.serve(&addrs[2].to_string(), fake_router(fakes[2].clone()))
            .await
            .unwrap(),
    );
    let task = tokio::spawn(
        purger
            .clone()
            .run(st.clone(), Arc::new(basalt_mds::service::system_now_ms)),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while st.purge_targets(id).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "background purge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert_eq!(
        *fakes[2].deleted.lock(),
        chunks.iter().copied().collect::<BTreeSet<_>>()
    );
    assert!(fakes[0].deleted.lock().is_empty());
    // A repeated delete of a gone chunk counts as deleted: purge again from scratch.
    let (id2, chunks2) = volume_with_segments(&st, "w", 1).await;
    delete(&st, "w", 1_000).await;
    fakes[2].deleted.lock().extend(chunks2.iter().take(10));
    let out = purger.purge(&st, &[id2]).await.unwrap();
    assert_eq!(out.chunks, 64);
    assert_eq!(fakes[2].deleted.lock().len(), 128);
    drop(servers);
}

#[tokio::test]
async fn purger_follows_redirects_and_resumes_in_the_background() {
    tokio::time::timeout(T, purger_over_fakes())
        .await
        .expect("timed out");
}
