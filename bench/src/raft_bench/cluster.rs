//! Three chunkservers in this process, each with its own data dir (chunk pool, shared
//! WAL), poller threads, TCP transport on loopback, copysets and chunk service, wired as
//! the `serve` daemon wires them; and a client that calls `WriteChunk` over TCP on the
//! leader of a copyset, following redirects.

use crate::error::BenchError;
use basalt_chunkserver::backend::spdk::SpdkOptions;
use basalt_chunkserver::backend::{BackendChoice, BackendFactory};
use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::copyset::{
    raft_routes, CopysetConfig, Copysets, CopysetsParams, TransportRaftNet,
};
use basalt_chunkserver::datadir::{DataDir, FormatOptions, DEFAULT_WAL_SEGMENT_SIZE};
use basalt_chunkserver::group_log::GroupLog;
use basalt_chunkserver::poller::{PollerOptions, Pollers};
use basalt_chunkserver::service::metrics::ServiceMetrics;
use basalt_chunkserver::service::{ChunkService, ChunkServiceParams};
use basalt_chunkserver::store::{FileChunkStore, StoreOptions};
use basalt_chunkserver::wal::Wal;
use basalt_chunkserver::ChunkServerError;
use basalt_proto::chunk::{RaftRole, WriteChunk};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{ChunkId, ChunkServerId, CopysetId, Epoch, GroupId, LogicalPoolId};
use basalt_proto::status::{ChunkError, PeerAddr};
use basalt_transport::{
    Connection, FastPathMode, Router, ServerHandle, TcpTransport, TransportConfig, TransportOptions,
};
use bytes::Bytes;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Replicas per copyset.
pub const REPLICAS: u32 = 3;
/// Chunk size of the benchmark's data dirs (writes stay inside one chunk per copyset).
pub const CHUNK_SIZE: u64 = 1 << 20;
/// How long set-up (elections) may take.
const SETUP_WAIT: Duration = Duration::from_secs(60);
/// How long one write may keep following redirects.
const WRITE_WAIT: Duration = Duration::from_secs(30);

fn cs(what: &str) -> impl FnOnce(ChunkServerError) -> BenchError + '_ {
    move |source| BenchError::ChunkServer {
        what: what.to_string(),
        source,
    }
}

fn transport_err(what: &str) -> impl FnOnce(basalt_transport::TransportError) -> BenchError + '_ {
    move |source| BenchError::Transport {
        backend: format!("tcp ({what})"),
        source,
    }
}

/// Group id of copyset `i` (0-based).
pub fn group(i: usize) -> GroupId {
    GroupId::of(LogicalPoolId(1), CopysetId(i as u32 + 1))
}

/// One in-process chunkserver.
pub struct Node {
    /// Its address.
    pub addr: PeerAddr,
    /// Its copysets.
    pub copysets: Copysets,
    /// Its shared WAL (fsync counters).
    pub wal: Arc<Wal>,
    /// In a mutex only to make the node `Sync` (the handle is `Send` only).
    server: std::sync::Mutex<Option<ServerHandle<SocketAddr>>>,
    _service: Arc<ChunkService>,
    _store: Arc<FileChunkStore>,
    _pollers: Arc<Pollers>,
    _transport: TcpTransport,
}

fn transport_options(role: Role, id: Option<u32>, name: String) -> TransportOptions {
    let config = TransportConfig {
        fast_path: FastPathMode::Off,
        ..TransportConfig::default()
    };
    TransportOptions::new(Identity {
        role,
        chunkserver: id.map(ChunkServerId),
        name,
        cluster: String::new(),
    })
    .config(config)
}

impl Node {
    async fn start(
        id: u32,
        root: &Path,
        copysets: usize,
        factory: &BackendFactory,
        config: &CopysetConfig,
    ) -> Result<Node, BenchError> {
        let dir = DataDir::format(
            root,
            &FormatOptions {
                pool_size: copysets as u64 + 1,
                wal_segments: 4,
                chunk_size: CHUNK_SIZE,
                wal_segment_size: DEFAULT_WAL_SEGMENT_SIZE,
            },
            &mut |_| {},
        )
        .map_err(cs("format a data dir"))?;
        let pollers = Arc::new(
            Pollers::start(PollerOptions::default(), factory).map_err(cs("start the pollers"))?,
        );
        let store = Arc::new(
            FileChunkStore::open(dir.clone(), pollers.clone(), StoreOptions::default())
                .map_err(cs("open the chunk store"))?,
        );
        let wal = Arc::new(Wal::open(&dir).map_err(cs("open the WAL"))?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(BenchError::io("bind 127.0.0.1:0"))?;
        let addr = PeerAddr {
            id: ChunkServerId(id),
            addr: listener
                .local_addr()
                .map_err(BenchError::io("local_addr"))?,
        };
        let transport = TcpTransport::new(transport_options(
            Role::ChunkServer,
            Some(id),
            format!("bench-cs{id}"),
        ))
        .map_err(transport_err("chunkserver transport"))?;
        let copysets = Copysets::open(CopysetsParams {
            local: addr,
            log: wal.clone() as Arc<dyn GroupLog>,
            store: store.clone() as Arc<dyn ChunkStore>,
            net: TransportRaftNet::new(transport.clone()),
            config: config.clone(),
        })
        .await
        .map_err(cs("open the copysets"))?;
        let service = ChunkService::new(ChunkServiceParams {
            copysets: copysets.clone(),
            store: store.clone(),
            chunk_size: CHUNK_SIZE,
            max_inflight_data: 4096,
            metrics: ServiceMetrics::new(),
        });
        let router = service.routes(raft_routes(Router::new(), copysets.clone()));
        let server = transport
            .serve_listener(listener, router)
            .map_err(transport_err("serve"))?;
        Ok(Node {
            addr,
            copysets,
            wal,
            server: std::sync::Mutex::new(Some(server)),
            _service: service,
            _store: store,
            _pollers: pollers,
            _transport: transport,
        })
    }

    /// Raft term of `g` here (0 when unknown).
    pub fn term(&self, g: GroupId) -> u64 {
        self.copysets.status(g).map_or(0, |s| s.term)
    }
}

/// The three chunkservers, the copysets and a client.
pub struct Cluster {
    /// The chunkservers.
    pub nodes: Vec<Node>,
    /// Copysets created (0-based numbers, see [`group`]).
    pub copysets: usize,
    conns: Vec<Connection>,
    leaders: Vec<AtomicUsize>,
    epochs: Vec<Epoch>,
    _client: TcpTransport,
}

impl Cluster {
    /// Start three chunkservers with data dirs under `root` on `backend`, create
    /// `copysets` copysets on all three, wait for their leaders and connect a client.
    pub async fn start(
        root: &Path,
        copysets: usize,
        backend: BackendChoice,
        config: &CopysetConfig,
    ) -> Result<Cluster, BenchError> {
        let factory = BackendFactory::probe(backend, &SpdkOptions::default())
            .map_err(cs("probe the I/O backend"))?;
        let mut nodes = Vec::new();
        for id in 1..=REPLICAS {
            let dir = root.join(format!("cs{id}"));
            nodes.push(Node::start(id, &dir, copysets, &factory, config).await?);
        }
        let peers: Vec<PeerAddr> = nodes.iter().map(|n| n.addr).collect();
        for i in 0..copysets {
            // Followers first: the initializer (lowest id) then finds them up.
            for n in nodes.iter().rev() {
                n.copysets.create(group(i), &peers).await.map_err(|error| {
                    BenchError::ChunkService {
                        what: format!("create copyset {}", group(i)),
                        error,
                    }
                })?;
            }
        }
        let client = TcpTransport::new(transport_options(
            Role::Tool,
            None,
            format!("basalt-bench-raft:{}", std::process::id()),
        ))
        .map_err(transport_err("client transport"))?;
        let mut conns = Vec::new();
        for n in &nodes {
            conns.push(
                client
                    .connect(n.addr.addr)
                    .await
                    .map_err(transport_err("connect"))?,
            );
        }
        let mut me = Cluster {
            nodes,
            copysets,
            conns,
            leaders: (0..copysets).map(|_| AtomicUsize::new(0)).collect(),
            epochs: vec![Epoch(0); copysets],
            _client: client,
        };
        for i in 0..copysets {
            let (l, epoch) = me.wait_leader(group(i)).await?;
            me.leaders[i].store(l, Ordering::Relaxed);
            me.epochs[i] = epoch;
        }
        Ok(me)
    }

    async fn wait_leader(&self, g: GroupId) -> Result<(usize, Epoch), BenchError> {
        let deadline = Instant::now() + SETUP_WAIT;
        loop {
            for (i, n) in self.nodes.iter().enumerate() {
                if let Ok(s) = n.copysets.status(g) {
                    // Leader with its membership committed everywhere it matters: the
                    // epoch is what clients send.
                    if s.role == RaftRole::Leader && s.committed > 0 {
                        return Ok((i, s.epoch));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: format!("a leader of copyset {g}"),
                    secs: SETUP_WAIT.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Highest raft term of every copyset over the replicas.
    pub fn terms(&self) -> Vec<u64> {
        (0..self.copysets)
            .map(|i| {
                self.nodes
                    .iter()
                    .map(|n| n.term(group(i)))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// WAL fsyncs of every replica so far.
    pub fn fsyncs(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| n.wal.metrics().fsyncs())
            .collect()
    }

    /// Replicated write of `data` at `offset` of copyset `i`'s chunk 1, through the chunk
    /// service of its leader; redirects are followed (the time counts).
    pub async fn write(&self, i: usize, offset: u32, data: Bytes) -> Result<(), BenchError> {
        let g = group(i);
        let req = WriteChunk {
            group: g,
            chunk: ChunkId(1),
            epoch: self.epochs[i],
            offset,
            len: data.len() as u32,
            crc32c: crc32c::crc32c(&data),
            req: basalt_proto::chunk::RequestId::NONE,
        };
        let deadline = Instant::now() + WRITE_WAIT;
        loop {
            let l = self.leaders[i].load(Ordering::Relaxed);
            let (reply, _) = self.conns[l]
                .call(&req, data.clone())
                .await
                .map_err(transport_err("WriteChunk"))?;
            let err = match reply {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let retry = matches!(
                err,
                ChunkError::Redirect { .. } | ChunkError::Unavailable | ChunkError::Overload { .. }
            );
            if !retry || Instant::now() >= deadline {
                return Err(BenchError::ChunkService {
                    what: format!("WriteChunk to copyset {g}"),
                    error: err,
                });
            }
            let hinted = match &err {
                ChunkError::Redirect {
                    leader: Some(p), ..
                } => self.nodes.iter().position(|n| n.addr.id == p.id),
                _ => None,
            };
            let next = match hinted {
                Some(n) => n,
                None => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    (l + 1) % self.nodes.len()
                }
            };
            self.leaders[i].store(next, Ordering::Relaxed);
        }
    }

    /// Stop the copysets and the servers (the WAL threads and pollers stop on drop).
    pub async fn shutdown(self) {
        for c in &self.conns {
            c.close();
        }
        // Raft first, so no replica campaigns against peers whose servers are gone.
        for n in &self.nodes {
            n.copysets.shutdown().await;
        }
        for n in &self.nodes {
            let server = n.server.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(s) = server {
                s.shutdown().await;
            }
        }
    }
}
