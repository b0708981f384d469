//! The chunk service over real TCP on loopback, in one process: a single-replica copyset
//! on the in-memory log and chunk store. Covers the request checks (payload length,
//! checksum, alignment, range), the in-flight limit and the copyset administration calls.

use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::copyset::testing::{MemChunkStore, MemGroupLog, MemNet};
use basalt_chunkserver::copyset::{CopysetConfig, Copysets, CopysetsParams};
use basalt_chunkserver::error::Result as CsResult;
use basalt_chunkserver::service::metrics::{Op, ServiceMetrics};
use basalt_chunkserver::service::{ChunkService, ChunkServiceParams};
use basalt_proto::chunk::{
    AddPeer, ChunkInfo, CopysetStatus, CreateCopyset, DeleteChunk, DeleteCopyset, GetLeader,
    RaftRole, ReadChunk, RemovePeer, TransferLeader, WriteChunk,
};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{ChunkId, ChunkServerId, CopysetId, Epoch, GroupId, LogicalPoolId};
use basalt_proto::status::{ChunkError, InvalidReason, PeerAddr};
use basalt_proto::Rpc;
use basalt_transport::{Connection, Router, ServerHandle, TcpTransport, TransportOptions};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const WAIT: Duration = Duration::from_secs(15);
const CHUNK: u64 = 16 << 20;

fn group(n: u32) -> GroupId {
    GroupId::of(LogicalPoolId(1), CopysetId(n))
}

/// The in-memory store, whose reads can be held at a gate (to keep requests in flight).
struct GatedStore {
    inner: Arc<MemChunkStore>,
    gate: Arc<Semaphore>,
}

impl ChunkStore for GatedStore {
    fn write(&self, g: GroupId, c: ChunkId, off: u64, data: Bytes) -> BoxFuture<'_, CsResult<()>> {
        self.inner.write(g, c, off, data)
    }
    fn read(
        &self,
        g: GroupId,
        c: ChunkId,
        off: u64,
        len: u64,
    ) -> BoxFuture<'_, CsResult<Option<Bytes>>> {
        let gate = self.gate.clone();
        async move {
            let _permit = gate.acquire().await.expect("gate open");
            self.inner.read(g, c, off, len).await
        }
        .boxed()
    }
    fn delete(&self, g: GroupId, c: ChunkId) -> BoxFuture<'_, CsResult<()>> {
        self.inner.delete(g, c)
    }
    fn list(&self, g: GroupId) -> CsResult<Vec<ChunkId>> {
        self.inner.list(g)
    }
    fn sync_group(&self, g: GroupId) -> BoxFuture<'_, CsResult<()>> {
        self.inner.sync_group(g)
    }
    fn remove_group(&self, g: GroupId) -> BoxFuture<'_, CsResult<()>> {
        self.inner.remove_group(g)
    }
}

struct Harness {
    local: PeerAddr,
    net: MemNet,
    service: Arc<ChunkService>,
    metrics: ServiceMetrics,
    gate: Arc<Semaphore>,
    conn: Connection,
    _server: ServerHandle<SocketAddr>,
}

async fn start(max_inflight: u32) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = PeerAddr {
        id: ChunkServerId(1),
        addr: listener.local_addr().unwrap(),
    };
    let gate = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    let store = Arc::new(GatedStore {
        inner: MemChunkStore::new(),
        gate: gate.clone(),
    });
    let net = MemNet::new();
    let copysets = Copysets::open(CopysetsParams {
        local,
        log: MemGroupLog::new(),
        store: store.clone(),
        net: net.endpoint(1),
        config: CopysetConfig::fast_for_tests(),
    })
    .await
    .unwrap();
    net.register(1, copysets.clone());
    let metrics = ServiceMetrics::new();
    let service = ChunkService::new(ChunkServiceParams {
        copysets,
        store,
        chunk_size: CHUNK,
        max_inflight_data: max_inflight,
        metrics: metrics.clone(),
    });
    let identity = |role, name: &str| Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    };
    let server_side =
        TcpTransport::new(TransportOptions::new(identity(Role::ChunkServer, "cs1"))).unwrap();
    let server = server_side
        .serve_listener(listener, service.routes(Router::new()))
        .unwrap();
    let client = TcpTransport::new(TransportOptions::new(identity(Role::Tool, "test"))).unwrap();
    let conn = client.connect(local.addr).await.unwrap();
    Harness {
        local,
        net,
        service,
        metrics,
        gate,
        conn,
        _server: server,
    }
}

impl Harness {
    async fn call<R: Rpc>(&self, req: R, payload: Bytes) -> (R::Reply, Bytes) {
        self.conn.call(&req, payload).await.expect("transport call")
    }

    /// Create a single-replica copyset here and wait until it leads.
    async fn create_led(&self, g: GroupId) -> Epoch {
        let (r, _) = self
            .call(
                CreateCopyset {
                    group: g,
                    peers: vec![self.local],
                },
                Bytes::new(),
            )
            .await;
        r.unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let (r, _) = self.call(GetLeader { group: g }, Bytes::new()).await;
            if let Ok(info) = r {
                if info.leader == Some(self.local) {
                    return info.epoch;
                }
            }
            assert!(Instant::now() < deadline, "no leader for {g}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect::<Vec<_>>()
        .into()
}

fn write_req(g: GroupId, chunk: u64, epoch: Epoch, offset: u32, data: &[u8]) -> WriteChunk {
    WriteChunk {
        group: g,
        chunk: ChunkId(chunk),
        epoch,
        offset,
        len: data.len() as u32,
        crc32c: crc32c::crc32c(data),
        req: basalt_proto::chunk::RequestId::NONE,
    }
}

fn read_req(g: GroupId, chunk: u64, epoch: Epoch, offset: u32, len: u32) -> ReadChunk {
    ReadChunk {
        group: g,
        chunk: ChunkId(chunk),
        epoch,
        offset,
        len,
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_delete_round_trip() {
    bounded(async {
        let h = start(64).await;
        let g = group(1);
        let epoch = h.create_led(g).await;
        let data = pattern(8192, 3);
        let (r, _) = h
            .call(write_req(g, 7, epoch, 4096, &data), data.clone())
            .await;
        let first = r.unwrap().index;
        let (r, payload) = h
            .call(read_req(g, 7, epoch, 4096, 8192), Bytes::new())
            .await;
        assert_eq!(r.unwrap().crc32c, crc32c::crc32c(&payload));
        assert_eq!(payload, data);
        // never-written ranges of an existing chunk read as zeros
        let (r, payload) = h.call(read_req(g, 7, epoch, 0, 4096), Bytes::new()).await;
        r.unwrap();
        assert!(payload.iter().all(|&b| b == 0));
        // a second write commits at a later index
        let (r, _) = h
            .call(write_req(g, 7, epoch, 0, &data[..512]), data.slice(..512))
            .await;
        assert!(r.unwrap().index > first);

        let (r, _) = h
            .call(
                ChunkInfo {
                    group: g,
                    chunk: ChunkId(7),
                },
                Bytes::new(),
            )
            .await;
        assert!(r.unwrap().exists);
        let (r, _) = h
            .call(
                DeleteChunk {
                    group: g,
                    chunk: ChunkId(7),
                    epoch,
                    req: basalt_proto::chunk::RequestId::NONE,
                },
                Bytes::new(),
            )
            .await;
        r.unwrap();
        let (r, payload) = h.call(read_req(g, 7, epoch, 0, 512), Bytes::new()).await;
        assert_eq!(
            r.unwrap_err(),
            ChunkError::ChunkNotFound { chunk: ChunkId(7) }
        );
        assert!(payload.is_empty());
        assert_eq!(h.metrics.errors(Op::Write), 0);
        assert_eq!(h.metrics.errors(Op::Read), 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_writes_are_refused_with_typed_errors_and_write_nothing() {
    bounded(async {
        let h = start(64).await;
        let g = group(2);
        let epoch = h.create_led(g).await;
        let data = pattern(4096, 9);
        let invalid = |reason| ChunkError::InvalidRequest { reason };

        // payload shorter than announced
        let req = write_req(g, 1, epoch, 0, &data);
        let (r, _) = h.call(req, data.slice(..4000)).await;
        assert_eq!(r.unwrap_err(), invalid(InvalidReason::PayloadLength));
        // payload corrupted on the way
        let mut bad = data.to_vec();
        bad[17] ^= 0x40;
        let (r, _) = h.call(req, Bytes::from(bad)).await;
        assert_eq!(r.unwrap_err(), invalid(InvalidReason::Checksum));
        // misaligned offset / length
        let (r, _) = h
            .call(write_req(g, 1, epoch, 100, &data), data.clone())
            .await;
        assert_eq!(r.unwrap_err(), invalid(InvalidReason::Misaligned));
        let odd = data.slice(..1000);
        let (r, _) = h.call(write_req(g, 1, epoch, 0, &odd), odd.clone()).await;
        assert_eq!(r.unwrap_err(), invalid(InvalidReason::Misaligned));
        // beyond the chunk
        let at_end = (CHUNK - 2048) as u32;
        let (r, _) = h
            .call(write_req(g, 1, epoch, at_end, &data), data.clone())
            .await;
        assert_eq!(r.unwrap_err(), invalid(InvalidReason::OutOfRange));
        // empty
        let (r, _) = h.call(write_req(g, 1, epoch, 0, &[]), Bytes::new()).await;
        assert_eq!(r.unwrap_err(), invalid(InvalidReason::Empty));
        // reads: misaligned, out of range
        let (r, _) = h.call(read_req(g, 1, epoch, 0, 100), Bytes::new()).await;
        assert_eq!(r.unwrap_err(), invalid(InvalidReason::Misaligned));
        let (r, _) = h
            .call(read_req(g, 1, epoch, CHUNK as u32, 512), Bytes::new())
            .await;
        assert_eq!(r.unwrap_err(), invalid(InvalidReason::OutOfRange));

        // none of it reached the store
        let (r, _) = h
            .call(
                ChunkInfo {
                    group: g,
                    chunk: ChunkId(1),
                },
                Bytes::new(),
            )
            .await;
        assert!(!r.unwrap().exists);
        assert_eq!(h.metrics.errors(Op::Write), 6);

        // unknown copyset
        let other = group(99);
        let (r, _) = h
            .call(write_req(other, 1, epoch, 0, &data), data.clone())
            .await;
        assert_eq!(r.unwrap_err(), ChunkError::CopysetNotFound { group: other });
        let (r, _) = h.call(GetLeader { group: other }, Bytes::new()).await;
        assert_eq!(r.unwrap_err(), ChunkError::CopysetNotFound { group: other });
        let (r, _) = h
            .call(
                ChunkInfo {
                    group: other,
                    chunk: ChunkId(1),
                },
                Bytes::new(),
            )
            .await;
        assert_eq!(r.unwrap_err(), ChunkError::CopysetNotFound { group: other });
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_peer_moves_the_epoch_and_stale_epochs_are_refused() {
    bounded(async {
        let h = start(64).await;
        let g = group(3);
        let e0 = h.create_led(g).await;
        let data = pattern(512, 1);
        let (r, _) = h.call(write_req(g, 1, e0, 0, &data), data.clone()).await;
        r.unwrap();

        // a second chunkserver on the in-memory raft network, replica created pristine
        let peer2 = PeerAddr {
            id: ChunkServerId(2),
            addr: "127.0.0.1:9".parse().unwrap(),
        };
        let store2 = MemChunkStore::new();
        let cs2 = Copysets::open(CopysetsParams {
            local: peer2,
            log: MemGroupLog::new(),
            store: store2.clone(),
            net: h.net.endpoint(2),
            config: CopysetConfig::fast_for_tests(),
        })
        .await
        .unwrap();
        h.net.register(2, cs2.clone());
        cs2.create(g, &[h.local, peer2]).await.unwrap();

        let (r, _) = h
            .call(
                AddPeer {
                    group: g,
                    epoch: e0,
                    peer: peer2,
                },
                Bytes::new(),
            )
            .await;
        let e1 = r.unwrap().epoch;
        assert!(e1 > e0);
        let deadline = Instant::now() + WAIT;
        while store2.chunk_count(g) != 1 {
            assert!(Instant::now() < deadline, "the new peer never caught up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let (r, _) = h.call(write_req(g, 1, e0, 0, &data), data.clone()).await;
        assert_eq!(
            r.unwrap_err(),
            ChunkError::EpochTooOld {
                group: g,
                sent: e0,
                current: e1
            }
        );
        let (r, _) = h.call(read_req(g, 1, e0, 0, 512), Bytes::new()).await;
        assert!(matches!(r, Err(ChunkError::EpochTooOld { .. })));
        let (r, payload) = h.call(read_req(g, 1, e1, 0, 512), Bytes::new()).await;
        r.unwrap();
        assert_eq!(payload, data);
        // membership changes with a stale epoch are refused too
        let (r, _) = h
            .call(
                RemovePeer {
                    group: g,
                    epoch: e0,
                    peer: peer2.id,
                },
                Bytes::new(),
            )
            .await;
        assert!(matches!(r, Err(ChunkError::EpochTooOld { .. })));
        cs2.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_requests_beyond_the_inflight_limit_get_overload() {
    bounded(async {
        let h = start(2).await;
        let g = group(4);
        let epoch = h.create_led(g).await;
        let data = pattern(512, 5);
        let (r, _) = h.call(write_req(g, 1, epoch, 0, &data), data.clone()).await;
        r.unwrap();

        // hold two reads at the store's gate
        let permits = h.gate.available_permits();
        h.gate.forget_permits(permits);
        let held: Vec<_> = (0..2)
            .map(|_| {
                let conn = h.conn.clone();
                tokio::spawn(async move {
                    conn.call(&read_req(g, 1, epoch, 0, 512), Bytes::new())
                        .await
                })
            })
            .collect();
        let deadline = Instant::now() + WAIT;
        while h.service.inflight() < 2 {
            assert!(Instant::now() < deadline, "reads never reached the store");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (r, _) = h.call(write_req(g, 1, epoch, 0, &data), data.clone()).await;
        assert_eq!(r.unwrap_err(), ChunkError::Overload { inflight: 2 });
        // admin requests are not limited
        let (r, _) = h.call(CopysetStatus { group: g }, Bytes::new()).await;
        assert_eq!(r.unwrap().role, RaftRole::Leader);

        h.gate.add_permits(Semaphore::MAX_PERMITS / 2);
        for t in held {
            let (r, payload) = t.await.unwrap().unwrap();
            r.unwrap();
            assert_eq!(payload, data);
        }
        assert_eq!(h.service.inflight(), 0);
        let (r, _) = h.call(write_req(g, 1, epoch, 0, &data), data.clone()).await;
        r.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copyset_administration() {
    bounded(async {
        let h = start(64).await;
        let g = group(5);
        // bad peer lists
        let other = PeerAddr {
            id: ChunkServerId(2),
            addr: "127.0.0.1:9".parse().unwrap(),
        };
        for peers in [vec![], vec![h.local, h.local], vec![other, other]] {
            let (r, _) = h
                .call(CreateCopyset { group: g, peers }, Bytes::new())
                .await;
            assert_eq!(
                r.unwrap_err(),
                ChunkError::InvalidRequest {
                    reason: InvalidReason::BadPeers
                }
            );
        }
        // join-only (the list does not name this chunkserver): a pristine replica that
        // waits to be added, never a group of its own
        let joining = group(6);
        for _ in 0..2 {
            let (r, _) = h
                .call(
                    CreateCopyset {
                        group: joining,
                        peers: vec![other],
                    },
                    Bytes::new(),
                )
                .await;
            r.unwrap();
        }
        let (r, _) = h.call(CopysetStatus { group: joining }, Bytes::new()).await;
        let st = r.unwrap();
        assert_ne!(st.role, RaftRole::Leader);
        assert!(st.peers.is_empty());
        let (r, _) = h.call(DeleteCopyset { group: joining }, Bytes::new()).await;
        r.unwrap();
        let epoch = h.create_led(g).await;
        // idempotent create
        h.create_led(g).await;
        let (r, _) = h.call(CopysetStatus { group: g }, Bytes::new()).await;
        let st = r.unwrap();
        assert_eq!(st.role, RaftRole::Leader);
        assert_eq!(st.peers, vec![h.local]);
        assert_eq!(st.epoch, epoch);
        // the only voter cannot be removed; transfer to a non-member is refused
        let (r, _) = h
            .call(
                RemovePeer {
                    group: g,
                    epoch,
                    peer: h.local.id,
                },
                Bytes::new(),
            )
            .await;
        assert!(matches!(r, Err(ChunkError::InvalidRequest { .. })));
        let (r, _) = h
            .call(
                TransferLeader {
                    group: g,
                    to: ChunkServerId(2),
                },
                Bytes::new(),
            )
            .await;
        assert!(matches!(r, Err(ChunkError::InvalidRequest { .. })));
        // delete: gone afterwards
        let (r, _) = h.call(DeleteCopyset { group: g }, Bytes::new()).await;
        r.unwrap();
        let (r, _) = h.call(CopysetStatus { group: g }, Bytes::new()).await;
        assert_eq!(r.unwrap_err(), ChunkError::CopysetNotFound { group: g });
        let (r, _) = h.call(DeleteCopyset { group: g }, Bytes::new()).await;
        assert_eq!(r.unwrap_err(), ChunkError::CopysetNotFound { group: g });
    })
    .await
}
