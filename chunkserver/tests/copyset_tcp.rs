//! Copysets of four chunkservers talking raft over the real TCP transport on loopback:
//! replication, a new peer filled by snapshot install (chunk pulls over TCP), failover.

use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::copyset::testing::{MemChunkStore, MemGroupLog};
use basalt_chunkserver::copyset::{
    raft_routes, CopysetConfig, Copysets, CopysetsParams, TransportRaftNet,
};
use basalt_proto::chunk::RaftRole;
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{ChunkId, ChunkServerId, CopysetId, GroupId, LogicalPoolId};
use basalt_proto::status::{ChunkError, PeerAddr};
use basalt_transport::{Router, ServerHandle, TcpTransport, TransportOptions};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

struct Node {
    addr: PeerAddr,
    store: Arc<MemChunkStore>,
    reg: Copysets,
    server: Option<ServerHandle<SocketAddr>>,
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn start(id: u32, config: &CopysetConfig) -> Node {
    let addr = PeerAddr {
        id: ChunkServerId(id),
        addr: free_addr(),
    };
    let transport = TcpTransport::new(TransportOptions::new(Identity {
        role: Role::ChunkServer,
        chunkserver: Some(ChunkServerId(id)),
        name: format!("cs{id}"),
        cluster: String::new(),
    }))
    .unwrap();
    let store = MemChunkStore::new();
    let reg = Copysets::open(CopysetsParams {
        local: addr,
        log: MemGroupLog::new(),
        store: store.clone(),
        net: TransportRaftNet::new(transport.clone()),
        config: config.clone(),
    })
    .await
    .unwrap();
    let server = transport
        .serve(addr.addr, raft_routes(Router::new(), reg.clone()))
        .await
        .unwrap();
    Node {
        addr,
        store,
        reg,
        server: Some(server),
    }
}

async fn leader_of(nodes: &[Node], g: GroupId) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        for (i, n) in nodes.iter().enumerate() {
            if n.server.is_some() && n.reg.status(g).is_ok_and(|s| s.role == RaftRole::Leader) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_snapshot_install_and_failover_over_tcp() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let config = CopysetConfig {
        snapshot_after_entries: 10,
        keep_after_snapshot: 0,
        snapshot_piece_bytes: 512 * 1024,
        ..CopysetConfig::fast_for_tests()
    };
    let mut nodes = Vec::new();
    for id in 1..=4 {
        nodes.push(start(id, &config).await);
    }
    let g = GroupId::of(LogicalPoolId(2), CopysetId(1));
    let peers: Vec<PeerAddr> = nodes[..3].iter().map(|n| n.addr).collect();
    for n in nodes[..3].iter().rev() {
        n.reg.create(g, &peers).await.unwrap();
    }
    let mut l = leader_of(&nodes, g).await;

    // 1 MiB writes: bodies beyond a few hundred KiB travel in the frame payload.
    let ws: Vec<(ChunkId, u64, Bytes)> = (0..30u64)
        .map(|i| {
            let len = if i % 10 == 0 { 1024 * 1024 } else { 4096 };
            let data = Bytes::from(vec![(i + 1) as u8; len]);
            (ChunkId(i % 4), (i % 7) * 1024 * 1024, data)
        })
        .collect();
    let mut last = 0;
    let deadline = Instant::now() + WAIT;
    for (c, o, d) in &ws {
        // Leadership may still move right after the first election on a loaded machine;
        // follow it as a client does.
        last = loop {
            match nodes[l].reg.write(g, *c, *o, d.clone()).await {
                Ok(ok) => break ok.index,
                Err(ChunkError::Redirect { .. }) if Instant::now() < deadline => {
                    l = leader_of(&nodes, g).await;
                }
                Err(e) => panic!("write failed: {e:?}"),
            }
        };
    }
    let leader_raft = nodes[l].reg.get(g).unwrap();
    leader_raft
        .raft()
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some(), "leader purged its log")
        .await
        .unwrap();

    // A new peer: its replica is created, then added; the log it needs is gone, so it
    // installs a snapshot, pulling the chunks over TCP.
    let all: Vec<PeerAddr> = nodes.iter().map(|n| n.addr).collect();
    nodes[3].reg.create(g, &all).await.unwrap();
    let epoch = nodes[l].reg.status(g).unwrap().epoch;
    nodes[l]
        .reg
        .add_peer(g, epoch, nodes[3].addr)
        .await
        .unwrap();
    let cs4 = nodes[3].reg.get(g).unwrap();
    cs4.raft()
        .wait(Some(WAIT))
        .applied_index_at_least(Some(last), "new peer applied")
        .await
        .unwrap();
    // Later writes win over earlier ones at the same place: compare with the leader.
    for (c, o, d) in &ws {
        let want = nodes[l]
            .store
            .read(g, *c, *o, d.len() as u64)
            .await
            .unwrap();
        let got = nodes[3]
            .store
            .read(g, *c, *o, d.len() as u64)
            .await
            .unwrap();
        assert!(want == got, "{c} @ {o} differs on the new peer");
    }

    // Leader down: a new one is elected and serves every acknowledged write.
    let server = nodes[l].server.take().unwrap();
    server.shutdown().await;
    nodes[l].reg.shutdown().await;
    let started = Instant::now();
    let l2 = leader_of(&nodes, g).await;
    assert_ne!(l2, l);
    assert!(started.elapsed() < config.election_bound() + Duration::from_secs(2));
    for (c, o, d) in &ws {
        let got = nodes[l2]
            .reg
            .read(g, *c, *o, d.len() as u64)
            .await
            .unwrap()
            .unwrap();
        let want = nodes[l2]
            .store
            .read(g, *c, *o, d.len() as u64)
            .await
            .unwrap()
            .unwrap();
        assert!(got == want);
    }
    let last_write = &ws[29];
    let got = nodes[l2]
        .reg
        .read(g, last_write.0, last_write.1, 4096)
        .await
        .unwrap()
        .unwrap();
    assert!(got == last_write.2);
    nodes[l2]
        .reg
        .write(g, ChunkId(50), 0, Bytes::from(vec![9; 4096]))
        .await
        .unwrap();

    for n in &mut nodes {
        if let Some(s) = n.server.take() {
            s.shutdown().await;
        }
        n.reg.shutdown().await;
    }
}
