//! The client's I/O shell against a fake MDS and fake chunkservers on the in-memory
//! transport: routing, redirects, leader death, MDS outage, overload and permanent errors.
//! (The real cluster tests, with real processes, live with the cluster controller.)

use basalt_client::{ClientConfig, ClientError, Cluster, OpenOptions};
use basalt_proto::chunk::*;
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::*;
use basalt_proto::mds::*;
use basalt_proto::status::{ChunkError, MdsError, PeerAddr};
use basalt_transport::{MemNetwork, MemTransport, Router, ServerHandle, TransportOptions};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const POOL: LogicalPoolId = LogicalPoolId(1);
const VOL_SIZE: u64 = 2 * SEGMENT_SIZE;

fn opts(name: &str, role: Role) -> TransportOptions {
    TransportOptions::new(Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    })
}

fn cs_addr(id: u32) -> SocketAddr {
    format!("127.0.0.1:{}", 7000 + id).parse().unwrap()
}

fn peer(id: u32) -> PeerAddr {
    PeerAddr {
        id: ChunkServerId(id),
        addr: cs_addr(id),
    }
}

/// What the three fake chunkservers share: one copy of the data (replication is not
/// what is under test) and who leads.
#[derive(Default)]
struct Replicated {
    leader: AtomicU32,
    chunks: Mutex<HashMap<ChunkId, Vec<u8>>>,
    overloads_left: AtomicU32,
    no_space: AtomicBool,
    hide_hint: AtomicBool,
    writes_served: AtomicU64,
    redirects: AtomicU64,
}

impl Replicated {
    fn not_leader(&self, me: u32, group: GroupId) -> Option<ChunkError> {
        let leader = self.leader.load(Ordering::SeqCst);
        if leader == me {
            return None;
        }
        self.redirects.fetch_add(1, Ordering::SeqCst);
        let hint = (!self.hide_hint.load(Ordering::SeqCst)).then(|| peer(leader));
        Some(ChunkError::Redirect {
            group,
            leader: hint,
        })
    }
}

fn chunkserver_router(me: u32, st: Arc<Replicated>) -> Router {
    let (s1, s2, s3, s4) = (st.clone(), st.clone(), st.clone(), st);
    Router::new()
        .route::<WriteChunk, _, _>(move |req, payload, _g, _cx| {
            let st = s1.clone();
            async move {
                if let Some(e) = st.not_leader(me, req.group) {
                    return (Err(e), Bytes::new());
                }
                if st.overloads_left.load(Ordering::SeqCst) > 0 {
                    st.overloads_left.fetch_sub(1, Ordering::SeqCst);
                    return (Err(ChunkError::Overload { inflight: 99 }), Bytes::new());
                }
                if st.no_space.load(Ordering::SeqCst) {
                    return (Err(ChunkError::NoSpace), Bytes::new());
                }
                assert_eq!(crc32c::crc32c(&payload), req.crc32c);
                let mut chunks = st.chunks.lock();
                let c = chunks
                    .entry(req.chunk)
                    .or_insert_with(|| vec![0u8; CHUNK_SIZE as usize]);
                c[req.offset as usize..(req.offset + req.len) as usize].copy_from_slice(&payload);
                let n = st.writes_served.fetch_add(1, Ordering::SeqCst);
                (Ok(WriteChunkOk { index: n }), Bytes::new())
            }
        })
        .route::<ReadChunk, _, _>(move |req, _p, _g, _cx| {
            let st = s2.clone();
            async move {
                if let Some(e) = st.not_leader(me, req.group) {
                    return (Err(e), Bytes::new());
                }
                let chunks = st.chunks.lock();
                match chunks.get(&req.chunk) {
                    None => (
                        Err(ChunkError::ChunkNotFound { chunk: req.chunk }),
                        Bytes::new(),
                    ),
                    Some(c) => {
                        let data = Bytes::copy_from_slice(
                            &c[req.offset as usize..(req.offset + req.len) as usize],
                        );
                        (
                            Ok(ReadChunkOk {
                                crc32c: crc32c::crc32c(&data),
                            }),
                            data,
                        )
                    }
                }
            }
        })
        .route::<DeleteChunk, _, _>(move |req, _p, _g, _cx| {
            let st = s3.clone();
            async move {
                if let Some(e) = st.not_leader(me, req.group) {
                    return (Err(e), Bytes::new());
                }
                st.chunks.lock().remove(&req.chunk);
                (Ok(()), Bytes::new())
            }
        })
        .route::<GetLeader, _, _>(move |_req, _p, _g, _cx| {
            let st = s4.clone();
            async move {
                let leader = Some(peer(st.leader.load(Ordering::SeqCst)));
                (
                    Ok(LeaderInfo {
                        leader,
                        epoch: Epoch(1),
                    }),
                    Bytes::new(),
                )
            }
        })
}

#[derive(Default)]
struct FakeMds {
    volumes: Mutex<HashMap<String, VolumeInfo>>,
    segments: Mutex<HashMap<(VolumeId, u64), SegmentInfo>>,
    next_chunk: AtomicU64,
    get_segment_calls: AtomicU64,
    leader_hint: Mutex<Option<u32>>,
}

fn mds_router(mds: Arc<FakeMds>) -> Router {
    let (m1, m2, m3, m4, m5, m6) = (
        mds.clone(),
        mds.clone(),
        mds.clone(),
        mds.clone(),
        mds.clone(),
        mds,
    );
    Router::new()
        .route::<CreateVolume, _, _>(move |req, _p, _g, _cx| {
            let m = m1.clone();
            async move {
                let mut v = m.volumes.lock();
                if v.contains_key(&req.name) {
                    return (Err(MdsError::VolumeExists), Bytes::new());
                }
                let info = VolumeInfo {
                    id: VolumeId(v.len() as u64 + 1),
                    name: req.name.clone(),
                    size: req.size,
                    owner: req.owner,
                    pool: POOL,
                    ctime: 0,
                };
                v.insert(req.name, info.clone());
                (Ok(info), Bytes::new())
            }
        })
        .route::<OpenVolume, _, _>(move |req, _p, _g, _cx| {
            let m = m2.clone();
            async move {
                match m.volumes.lock().get(&req.name) {
                    None => (Err(MdsError::VolumeNotFound), Bytes::new()),
                    Some(v) => (
                        Ok(Opened {
                            volume: v.clone(),
                            session: Session {
                                id: "s1".into(),
                                lease_ms: 5000,
                            },
                        }),
                        Bytes::new(),
                    ),
                }
            }
        })
        .route::<GetSegment, _, _>(move |req, _p, _g, _cx| {
            let m = m3.clone();
            async move {
                m.get_segment_calls.fetch_add(1, Ordering::SeqCst);
                let mut segs = m.segments.lock();
                if let Some(s) = segs.get(&(req.volume, req.index)) {
                    return (Ok(Some(s.clone())), Bytes::new());
                }
                if !req.allocate {
                    return (Ok(None), Bytes::new());
                }
                let chunks = (0..CHUNKS_PER_SEGMENT)
                    .map(|_| {
                        (
                            CopysetId(1),
                            ChunkId(m.next_chunk.fetch_add(1, Ordering::SeqCst) + 1),
                        )
                    })
                    .collect();
                let s = SegmentInfo { pool: POOL, chunks };
                segs.insert((req.volume, req.index), s.clone());
                (Ok(Some(s)), Bytes::new())
            }
        })
        .route::<GetCopysets, _, _>(move |req, _p, _g, _cx| {
            let m = m4.clone();
            async move {
                let leader = m.leader_hint.lock().map(ChunkServerId);
                let infos = req
                    .groups
                    .iter()
                    .map(|g| CopysetInfo {
                        group: *g,
                        epoch: Epoch(1),
                        peers: vec![peer(1), peer(2), peer(3)],
                        leader,
                    })
                    .collect();
                (Ok(infos), Bytes::new())
            }
        })
        .route::<RefreshSession, _, _>(move |req, _p, _g, _cx| {
            let m = m5.clone();
            async move {
                let v = m
                    .volumes
                    .lock()
                    .values()
                    .find(|v| v.id == req.volume)
                    .cloned();
                (v.ok_or(MdsError::VolumeNotFound), Bytes::new())
            }
        })
        .route::<CloseVolume, _, _>(move |_req, _p, _g, _cx| {
            let _m = m6.clone();
            async move { (Ok(()), Bytes::new()) }
        })
}

struct Fixture {
    net: MemNetwork,
    st: Arc<Replicated>,
    mds: Arc<FakeMds>,
    cluster: Cluster<MemTransport>,
    _servers: Vec<ServerHandle<String>>,
}

const MDS_ADDR: &str = "127.0.0.1:6000";

async fn fixture() -> Fixture {
    let net = MemNetwork::new();
    let st = Arc::new(Replicated::default());
    st.leader.store(2, Ordering::SeqCst);
    let mds = Arc::new(FakeMds::default());
    let mut servers = vec![];
    let t = net.endpoint(MDS_ADDR, opts("mds", Role::Mds)).unwrap();
    servers.push(t.serve(MDS_ADDR, mds_router(mds.clone())).await.unwrap());
    for id in 1..=3 {
        let name = cs_addr(id).to_string();
        let t = net.endpoint(&name, opts(&name, Role::ChunkServer)).unwrap();
        servers.push(
            t.serve(&name, chunkserver_router(id, st.clone()))
                .await
                .unwrap(),
        );
    }
    let client_t = net
        .endpoint("client", opts("client", Role::Client))
        .unwrap();
    let mut cfg = ClientConfig::new(vec![MDS_ADDR.parse().unwrap()]);
    cfg.retry.rpc_timeout = Duration::from_millis(300);
    cfg.mds_retry_for = Duration::from_secs(2);
    let cluster = Cluster::new(client_t, cfg);
    cluster.create_volume("v", VOL_SIZE).await.unwrap();
    Fixture {
        net,
        st,
        mds,
        cluster,
        _servers: servers,
    }
}

fn pattern(seed: u8, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| seed.wrapping_add((i / 512) as u8))
            .collect::<Vec<_>>(),
    )
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("bounded test step timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_across_chunk_and_segment_boundaries() {
    let fx = fixture().await;
    let vol = fx.cluster.open("v", OpenOptions::default()).await.unwrap();
    assert_eq!(vol.size(), VOL_SIZE);
    // unallocated reads: zeros, one GetSegment lookup, no allocation
    let z = bounded(vol.read(SEGMENT_SIZE + 4096, 8192)).await.unwrap();
    assert!(z.iter().all(|b| *b == 0));
    assert!(fx.mds.segments.lock().is_empty());
    let mut learnt: Option<u64> = None;
    for (off, len, seed) in [
        (CHUNK_SIZE - 4096, 8192usize, 1u8), // across a chunk boundary
        (SEGMENT_SIZE - 512, 1024, 2),       // across a segment boundary
        (3 * CHUNK_SIZE, CHUNK_SIZE as usize + 4096, 3), // 16 MiB + 4 KiB: 2 pieces
        (512, 512, 4),                       // one sector
    ] {
        let data = pattern(seed, len);
        bounded(vol.write(off, data.clone())).await.unwrap();
        assert_eq!(
            bounded(vol.read(off, len as u64)).await.unwrap(),
            data,
            "offset {off}"
        );
        // The first write's pieces learn the leader by redirect (concurrently, so up to
        // one each); after that the cached leader is used.
        let r = fx.st.redirects.load(Ordering::SeqCst);
        assert!((1..=2).contains(&r), "{r} redirects");
        assert_eq!(
            *learnt.get_or_insert(r),
            r,
            "leader is cached after the first write"
        );
    }
    assert_eq!(
        fx.mds.segments.lock().len(),
        2,
        "both segments allocated once"
    );
    // rejections
    assert!(matches!(
        vol.write(100, pattern(0, 512)).await,
        Err(ClientError::Misaligned { .. })
    ));
    assert!(matches!(
        vol.read(0, 100).await,
        Err(ClientError::Misaligned { .. })
    ));
    assert!(matches!(
        vol.read(VOL_SIZE - 512, 1024).await,
        Err(ClientError::OutOfRange { .. })
    ));
    // discard whole chunk + partial: zeros afterwards
    bounded(vol.discard(3 * CHUNK_SIZE, CHUNK_SIZE + 4096))
        .await
        .unwrap();
    let z = bounded(vol.read(3 * CHUNK_SIZE, CHUNK_SIZE + 4096))
        .await
        .unwrap();
    assert!(z.iter().all(|b| *b == 0));
    vol.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_without_hint_asks_the_peers() {
    let fx = fixture().await;
    fx.st.hide_hint.store(true, Ordering::SeqCst);
    let vol = fx.cluster.open("v", OpenOptions::default()).await.unwrap();
    let data = pattern(9, 4096);
    bounded(vol.write(0, data.clone())).await.unwrap();
    assert_eq!(bounded(vol.read(0, 4096)).await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_death_during_writes_is_invisible_to_the_caller() {
    let fx = fixture().await;
    let vol = Arc::new(fx.cluster.open("v", OpenOptions::default()).await.unwrap());
    let writer = {
        let vol = vol.clone();
        tokio::spawn(async move {
            for i in 0..200u64 {
                vol.write(i * 4096, pattern(i as u8, 4096)).await?;
            }
            Ok::<_, ClientError>(())
        })
    };
    // wait until some writes went through, then kill the leader and elect another
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fx.st.writes_served.load(Ordering::SeqCst) < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes never started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    fx.net.kill(&cs_addr(2).to_string());
    fx.st.leader.store(3, Ordering::SeqCst);
    bounded(writer)
        .await
        .unwrap()
        .expect("no error reaches the caller");
    for i in 0..200u64 {
        assert_eq!(
            bounded(vol.read(i * 4096, 4096)).await.unwrap(),
            pattern(i as u8, 4096),
            "block {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_continues_from_cached_maps_while_the_mds_is_down() {
    let fx = fixture().await;
    let vol = fx.cluster.open("v", OpenOptions::default()).await.unwrap();
    bounded(vol.write(0, pattern(1, 4096))).await.unwrap();
    let calls = fx.mds.get_segment_calls.load(Ordering::SeqCst);
    fx.net.kill(MDS_ADDR);
    for i in 1..50u64 {
        bounded(vol.write(i * 8192, pattern(i as u8, 8192)))
            .await
            .unwrap();
        assert_eq!(
            bounded(vol.read(i * 8192, 8192)).await.unwrap(),
            pattern(i as u8, 8192)
        );
    }
    assert_eq!(fx.mds.get_segment_calls.load(Ordering::SeqCst), calls);
    // administrative calls do report the outage
    assert_eq!(
        fx.cluster.stat_volume("v").await.unwrap_err(),
        ClientError::MdsUnavailable
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_retried_and_no_space_is_permanent() {
    let fx = fixture().await;
    let vol = fx.cluster.open("v", OpenOptions::default()).await.unwrap();
    fx.st.overloads_left.store(5, Ordering::SeqCst);
    bounded(vol.write(0, pattern(5, 4096))).await.unwrap();
    assert_eq!(fx.st.overloads_left.load(Ordering::SeqCst), 0);
    fx.st.no_space.store(true, Ordering::SeqCst);
    assert_eq!(
        bounded(vol.write(4096, pattern(6, 4096)))
            .await
            .unwrap_err(),
        ClientError::NoSpace
    );
    // and a volume that does not exist is a clear error
    assert!(matches!(
        fx.cluster.open("nope", OpenOptions::default()).await,
        Err(ClientError::Mds(MdsError::VolumeNotFound))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writers_in_flight_share_one_volume() {
    let fx = fixture().await;
    let vol = Arc::new(fx.cluster.open("v", OpenOptions::default()).await.unwrap());
    let tasks: Vec<_> = (0..64u64)
        .map(|i| {
            let vol = vol.clone();
            tokio::spawn(
                async move { vol.write(i * CHUNK_SIZE / 4, pattern(i as u8, 65536)).await },
            )
        })
        .collect();
    for t in tasks {
        bounded(t).await.unwrap().unwrap();
    }
    for i in 0..64u64 {
        assert_eq!(
            bounded(vol.read(i * CHUNK_SIZE / 4, 65536)).await.unwrap(),
            pattern(i as u8, 65536)
        );
    }
}
