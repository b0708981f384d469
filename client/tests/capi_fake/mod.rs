//! A fake cluster over real TCP for the C ABI tests: one MDS and one chunkserver that
//! serve the client's RPCs from memory, on loopback ports picked by the OS, on their own
//! runtime (the C ABI's blocking calls must run outside any runtime).
//!
//! Replication and failover are not what is under test here (`fake_cluster.rs` and the
//! dev-cluster tests cover them); the C ABI's argument checks, completions and data path
//! are.

#![allow(dead_code)] // each test binary uses a different part

use basalt_proto::chunk::*;
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::*;
use basalt_proto::mds::*;
use basalt_proto::status::{ChunkError, InvalidReason, MdsError, PeerAddr};
use basalt_transport::{Router, ServerHandle, TcpTransport, TransportOptions};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const POOL: LogicalPoolId = LogicalPoolId(1);
const CS: ChunkServerId = ChunkServerId(1);

#[derive(Default)]
struct Store {
    chunks: Mutex<HashMap<ChunkId, Vec<u8>>>,
    volumes: Mutex<HashMap<String, VolumeInfo>>,
    segments: Mutex<HashMap<(VolumeId, u64), SegmentInfo>>,
    next_chunk: AtomicU64,
    /// Chunk writes served (tests wait on it).
    pub writes: AtomicU64,
}

/// The running fake.
pub struct FakeCluster {
    rt: tokio::runtime::Runtime,
    store: Arc<Store>,
    servers: Vec<ServerHandle<SocketAddr>>,
    /// The MDS address to give the client.
    pub mds: SocketAddr,
}

fn transport(name: &str, role: Role) -> TcpTransport {
    TcpTransport::new(TransportOptions::new(Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    }))
    .expect("TCP transport")
}

fn chunkserver_router(st: Arc<Store>) -> Router {
    let (s1, s2, s3) = (st.clone(), st.clone(), st);
    Router::new()
        .route::<WriteChunk, _, _>(move |req, payload, _g, _cx| {
            let st = s1.clone();
            async move {
                if crc32c::crc32c(&payload) != req.crc32c {
                    let reason = InvalidReason::Checksum;
                    return (Err(ChunkError::InvalidRequest { reason }), Bytes::new());
                }
                let mut chunks = st.chunks.lock();
                let c = chunks
                    .entry(req.chunk)
                    .or_insert_with(|| vec![0u8; CHUNK_SIZE as usize]);
                c[req.offset as usize..(req.offset + req.len) as usize].copy_from_slice(&payload);
                let n = st.writes.fetch_add(1, Ordering::SeqCst);
                (Ok(WriteChunkOk { index: n }), Bytes::new())
            }
        })
        .route::<ReadChunk, _, _>(move |req, _p, _g, _cx| {
            let st = s2.clone();
            async move {
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
                        let crc = crc32c::crc32c(&data);
                        (Ok(ReadChunkOk { crc32c: crc }), data)
                    }
                }
            }
        })
        .route::<DeleteChunk, _, _>(move |req, _p, _g, _cx| {
            let st = s3.clone();
            async move {
                st.chunks.lock().remove(&req.chunk);
                (Ok(()), Bytes::new())
            }
        })
}

fn mds_router(st: Arc<Store>, cs: SocketAddr) -> Router {
    let (m1, m2, m3, m4, m5) = (st.clone(), st.clone(), st.clone(), st.clone(), st);
    Router::new()
        .route::<OpenVolume, _, _>(move |req, _p, _g, _cx| {
            let m = m1.clone();
            async move {
                match m.volumes.lock().get(&req.name) {
                    None => (Err(MdsError::VolumeNotFound), Bytes::new()),
                    Some(v) => (
                        Ok(Opened {
                            volume: v.clone(),
                            session: Session {
                                id: format!("session-{}", v.id),
                                lease_ms: 5000,
                            },
                        }),
                        Bytes::new(),
                    ),
                }
            }
        })
        .route::<StatVolume, _, _>(move |req, _p, _g, _cx| {
            let m = m2.clone();
            async move {
                let v = m.volumes.lock().get(&req.name).cloned();
                (v.ok_or(MdsError::VolumeNotFound), Bytes::new())
            }
        })
        .route::<GetSegment, _, _>(move |req, _p, _g, _cx| {
            let m = m3.clone();
            async move {
                let mut segs = m.segments.lock();
                if let Some(s) = segs.get(&(req.volume, req.index)) {
                    return (Ok(Some(s.clone())), Bytes::new());
                }
                if !req.allocate {
                    return (Ok(None), Bytes::new());
                }
                let chunks = (0..CHUNKS_PER_SEGMENT)
                    .map(|_| {
                        let id = m.next_chunk.fetch_add(1, Ordering::SeqCst) + 1;
                        (CopysetId(1), ChunkId(id))
                    })
                    .collect();
                let s = SegmentInfo { pool: POOL, chunks };
                segs.insert((req.volume, req.index), s.clone());
                (Ok(Some(s)), Bytes::new())
            }
        })
        .route::<GetCopysets, _, _>(move |req, _p, _g, _cx| async move {
            let infos = req
                .groups
                .iter()
                .map(|g| CopysetInfo {
                    group: *g,
                    epoch: Epoch(1),
                    peers: vec![PeerAddr { id: CS, addr: cs }],
                    leader: Some(CS),
                })
                .collect();
            (Ok(infos), Bytes::new())
        })
        .route::<RefreshSession, _, _>(move |req, _p, _g, _cx| {
            let m = m4.clone();
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
            let _m = m5.clone();
            async move { (Ok(()), Bytes::new()) }
        })
}

impl FakeCluster {
    /// Start the MDS and the chunkserver on loopback.
    pub fn start() -> FakeCluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("fake cluster runtime");
        let store = Arc::new(Store::default());
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (servers, mds) = rt.block_on(async {
            let cs = transport("fake-cs", Role::ChunkServer)
                .serve(any, chunkserver_router(store.clone()))
                .await
                .expect("serve the chunkserver");
            let cs_addr = cs.local_addr();
            let mds = transport("fake-mds", Role::Mds)
                .serve(any, mds_router(store.clone(), cs_addr))
                .await
                .expect("serve the MDS");
            let mds_addr = mds.local_addr();
            (vec![cs, mds], mds_addr)
        });
        FakeCluster {
            rt,
            store,
            servers,
            mds,
        }
    }

    /// Create volume `name` of `segments` segments.
    pub fn create_volume(&self, name: &str, segments: u64) -> u64 {
        let mut v = self.store.volumes.lock();
        let size = segments * SEGMENT_SIZE;
        let id = VolumeId(v.len() as u64 + 1);
        v.insert(
            name.into(),
            VolumeInfo {
                id,
                name: name.into(),
                size,
                owner: "basalt".into(),
                pool: POOL,
                ctime: 0,
            },
        );
        size
    }

    /// Chunk writes served so far.
    pub fn writes(&self) -> u64 {
        self.store.writes.load(Ordering::SeqCst)
    }

    /// The bytes stored at `offset` of volume `name` (zeros where never written).
    pub fn stored(&self, name: &str, offset: u64, len: usize) -> Vec<u8> {
        let id = self.store.volumes.lock()[name].id;
        let segs = self.store.segments.lock();
        let chunks = self.store.chunks.lock();
        (0..len as u64)
            .map(|i| {
                let at = offset + i;
                let seg = segs.get(&(id, at / SEGMENT_SIZE));
                let chunk = seg.map(|s| s.chunks[((at % SEGMENT_SIZE) / CHUNK_SIZE) as usize].1);
                chunk
                    .and_then(|c| chunks.get(&c))
                    .map_or(0, |c| c[(at % CHUNK_SIZE) as usize])
            })
            .collect()
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        let servers = std::mem::take(&mut self.servers);
        self.rt.block_on(async {
            for s in servers {
                s.shutdown().await;
            }
        });
    }
}
