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
use std::future::Future;
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

/// The running replica every running member of `g` names as leader, confirmed by it.
async fn leader_of(nodes: &[Node], g: GroupId) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut agreed = None;
        let mut disagree = false;
        for n in nodes.iter().filter(|n| n.server.is_some()) {
            let Ok(st) = n.reg.status(g) else { continue };
            if st.role == RaftRole::Learner {
                continue;
            }
            match (st.leader, agreed) {
                (None, _) => disagree = true,
                (Some(l), Some(a)) if l != a => disagree = true,
                (Some(l), _) => agreed = Some(l),
            }
        }
        let found = agreed.filter(|_| !disagree).and_then(|l| {
            nodes.iter().position(|n| {
                n.addr.id == l
                    && n.server.is_some()
                    && n.reg.status(g).is_ok_and(|s| s.role == RaftRole::Leader)
            })
        });
        if let Some(i) = found {
            return i;
        }
        assert!(Instant::now() < deadline, "no agreed leader of {g}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Run `op` on the current leader of `g`, looking it up again and retrying while the
/// answer is a redirect or `Unavailable` (leadership moving), for at most [`WAIT`].
async fn at_leader<T, F, Fut>(nodes: &[Node], g: GroupId, what: &str, mut op: F) -> T
where
    F: FnMut(Copysets) -> Fut,
    Fut: Future<Output = Result<T, ChunkError>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let l = leader_of(nodes, g).await;
        match op(nodes[l].reg.clone()).await {
            Ok(v) => return v,
            Err(e @ (ChunkError::Redirect { .. } | ChunkError::Unavailable))
                if Instant::now() < deadline =>
            {
                tracing::debug!(what, error = ?e, "leadership moved; retrying");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
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

    // 1 MiB writes: bodies beyond a few hundred KiB travel in the frame payload.
    let ws: Vec<(ChunkId, u64, Bytes)> = (0..30u64)
        .map(|i| {
            let len = if i % 10 == 0 { 1024 * 1024 } else { 4096 };
            let data = Bytes::from(vec![(i + 1) as u8; len]);
            (ChunkId(i % 4), (i % 7) * 1024 * 1024, data)
        })
        .collect();
    let mut last = 0;
    for (c, o, d) in &ws {
        // Leadership may move on a loaded machine: follow it as a client does.
        last = at_leader(&nodes, g, "write", |r| {
            let d = d.clone();
            async move { r.write(g, *c, *o, d).await }
        })
        .await
        .index;
    }
    // Every replica snapshots and purges its log behind the snapshot.
    for n in &nodes[..3] {
        let cs = n.reg.get(g).unwrap();
        cs.raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(last), "applied")
            .await
            .unwrap();
        cs.raft()
            .wait(Some(WAIT))
            .metrics(|m| m.purged.is_some(), "replica purged its log")
            .await
            .unwrap();
    }

    // A new peer: its replica is created, then added; the log it needs is gone, so it
    // installs a snapshot, pulling the chunks over TCP.
    let all: Vec<PeerAddr> = nodes.iter().map(|n| n.addr).collect();
    nodes[3].reg.create(g, &all).await.unwrap();
    let new_peer = nodes[3].addr;
    at_leader(&nodes, g, "add peer", |r| async move {
        let st = r.status(g)?;
        if st.peers.contains(&new_peer) {
            // Added by an attempt whose answer was lost to a leader change.
            return Ok(());
        }
        r.add_peer(g, st.epoch, new_peer).await.map(|_| ())
    })
    .await;
    let cs4 = nodes[3].reg.get(g).unwrap();
    cs4.raft()
        .wait(Some(WAIT))
        .applied_index_at_least(Some(last), "new peer applied")
        .await
        .unwrap();
    // Later writes win over earlier ones at the same place: compare with a replica that
    // had applied them all before the new peer came.
    for (c, o, d) in &ws {
        let want = nodes[0]
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
    let l = leader_of(&nodes, g).await;
    let server = nodes[l].server.take().unwrap();
    server.shutdown().await;
    nodes[l].reg.shutdown().await;
    let started = Instant::now();
    let l2 = leader_of(&nodes, g).await;
    assert_ne!(l2, l);
    tracing::info!("new leader after {:?}", started.elapsed());
    for (c, o, d) in &ws {
        let got = at_leader(&nodes, g, "read", |r| async move {
            r.read(g, *c, *o, d.len() as u64).await
        })
        .await
        .expect("chunk exists");
        let want = nodes[0]
            .store
            .read(g, *c, *o, d.len() as u64)
            .await
            .unwrap()
            .unwrap();
        assert!(got == want, "{c} @ {o} differs after failover");
    }
    let last_write = &ws[29];
    let got = at_leader(&nodes, g, "read", |r| async move {
        r.read(g, last_write.0, last_write.1, 4096).await
    })
    .await
    .unwrap();
    assert!(got == last_write.2);
    at_leader(&nodes, g, "write", |r| async move {
        r.write(g, ChunkId(50), 0, Bytes::from(vec![9; 4096])).await
    })
    .await;

    for n in &mut nodes {
        if let Some(s) = n.server.take() {
            s.shutdown().await;
        }
        n.reg.shutdown().await;
    }
}
