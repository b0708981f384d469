//! The copyset-creation reconciler against fake chunkservers on the in-memory transport:
//! every peer gets `CreateCopyset` with the copyset's peers, failures are retried with
//! back-off and counted, and the reconciler stops once heartbeats report every replica.

use basalt_mds::copyset_creator::CopysetCreator;
use basalt_mds::copyset_sync::CreateConfig;
use basalt_mds::metrics::MdsMetrics;
use basalt_mds::state::{MdsState, StateConfig};
use basalt_mds::store::mem::MemStore;
use basalt_mds::topology::clustermap::ClusterMap;
use basalt_proto::chunk::CreateCopyset;
use basalt_proto::heartbeat::{CopysetReport, DiskStats, Heartbeat};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{ChunkServerId, GroupId, LogicalPoolId};
use basalt_proto::mds::RegisterChunkServer;
use basalt_proto::status::ChunkError;
use basalt_transport::{ConnectionPool, MemNetwork, Router, TransportOptions};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const MAP: &str = "[[physical-pool]]\nname='p'\n[[zone]]\nname='z1'\nphysical-pool='p'\n[[zone]]\nname='z2'\nphysical-pool='p'\n\
[[zone]]\nname='z3'\nphysical-pool='p'\n[[server]]\nname='h1'\nzone='z1'\n[[server]]\nname='h2'\nzone='z2'\n\
[[server]]\nname='h3'\nzone='z3'\n[[logical-pool]]\nname='l'\nphysical-pool='p'\nreplicas=3\ncopysets-per-chunkserver=4\n";

fn ident(name: &str, role: Role) -> Identity {
    Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    }
}

/// A fake chunkserver: records every CreateCopyset; refuses the first `refuse` of them.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<CreateCopyset>>,
    held: Mutex<BTreeSet<GroupId>>,
    refuse: Mutex<usize>,
}

fn router(fake: Arc<Fake>) -> Router {
    Router::new().route::<CreateCopyset, _, _>(move |req, _p, _g, _cx| {
        let fake = fake.clone();
        async move {
            fake.calls.lock().push(req.clone());
            let mut refuse = fake.refuse.lock();
            if *refuse > 0 {
                *refuse -= 1;
                return (Err(ChunkError::Unavailable), Bytes::new());
            }
            fake.held.lock().insert(req.group);
            (Ok(()), Bytes::new())
        }
    })
}

async fn heartbeat(
    st: &MdsState,
    id: ChunkServerId,
    token: &str,
    addr: SocketAddr,
    held: &BTreeSet<GroupId>,
    now: u64,
) {
    let hb = Heartbeat {
        id,
        token: token.into(),
        addr,
        disk: DiskStats::default(),
        copysets: held
            .iter()
            .map(|g| CopysetReport {
                group: *g,
                epoch: basalt_mds::copyset_sync::INITIAL_EPOCH,
                leader: None,
                peers: vec![],
                conf_change: None,
            })
            .collect(),
    };
    st.heartbeat(&hb, now).await.unwrap();
}

#[tokio::test]
async fn creates_every_replica_with_retries_and_backoff() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let st = Arc::new(
            MdsState::load(Arc::new(MemStore::new()), StateConfig::default(), 0)
                .await
                .unwrap(),
        );
        st.apply_cluster_map(&ClusterMap::parse(MAP).unwrap())
            .await
            .unwrap();
        let net = MemNetwork::new();
        let mut nodes = Vec::new();
        for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
            let addr: SocketAddr = format!("127.0.0.1:{}", 9100 + i).parse().unwrap();
            let r = st
                .register(
                    &RegisterChunkServer {
                        server: h.to_string(),
                        disk_uuid: format!("d{i}"),
                        addr,
                        existing: None,
                        disk: DiskStats::default(),
                    },
                    0,
                )
                .await
                .unwrap();
            nodes.push((r.id, r.token, addr, Arc::new(Fake::default())));
        }
        let n = st.create_copysets(LogicalPoolId(1), 7).await.unwrap();
        assert_eq!(n, 4);
        let topo = st.topology().await;
        // cs2 refuses its first two creates; cs3 is not serving yet.
        *nodes[1].3.refuse.lock() = 2;
        let mut handles = Vec::new();
        for (id, _, addr, fake) in &nodes[..2] {
            let ep = net
                .endpoint(
                    &id.to_string(),
                    TransportOptions::new(ident("cs", Role::ChunkServer)),
                )
                .unwrap();
            handles.push(
                ep.serve(&addr.to_string(), router(fake.clone()))
                    .await
                    .unwrap(),
            );
        }
        let mds_ep = net
            .endpoint("mds", TransportOptions::new(ident("mds", Role::Mds)))
            .unwrap();
        let metrics = MdsMetrics::new();
        let cfg = CreateConfig {
            interval_ms: 10,
            retry_min_ms: 1_000,
            retry_max_ms: 4_000,
            rpc_timeout_ms: 2_000,
            concurrency: 4,
        };
        let mut creator = CopysetCreator::new(
            Arc::new(ConnectionPool::new(mds_ep)),
            Arc::new(|a: SocketAddr| a.to_string()),
            cfg,
            metrics.clone(),
        );

        // Before any heartbeat nothing is known about the chunkservers: no creates.
        let r = creator.run_once(&st, 10).await;
        assert_eq!((r.ok, r.failed, r.missing), (0, 0, 0));

        for (id, token, addr, fake) in &nodes {
            let held = fake.held.lock().clone();
            heartbeat(&st, *id, token, *addr, &held, 20).await;
        }
        let r = creator.run_once(&st, 30).await;
        // 4 copysets × 3 peers; cs2's 4 calls: 2 refused; cs3's 4 calls: unreachable.
        assert_eq!((r.ok, r.failed, r.missing), (6, 6, 12), "{r:?}");
        assert_eq!(metrics.copyset_creates(true), 6);
        assert_eq!(metrics.copyset_creates(false), 6);

        // Within the back-off window: nothing is re-sent.
        let calls_before: Vec<usize> = nodes.iter().map(|n| n.3.calls.lock().len()).collect();
        let r = creator.run_once(&st, 500).await;
        assert_eq!((r.ok, r.failed), (0, 0));
        let calls_after: Vec<usize> = nodes.iter().map(|n| n.3.calls.lock().len()).collect();
        assert_eq!(calls_before, calls_after);

        // cs3 comes up; heartbeats report what the fakes hold.
        let (id3, _, addr3, fake3) = &nodes[2];
        let ep = net
            .endpoint(
                &id3.to_string(),
                TransportOptions::new(ident("cs", Role::ChunkServer)),
            )
            .unwrap();
        handles.push(
            ep.serve(&addr3.to_string(), router(fake3.clone()))
                .await
                .unwrap(),
        );
        let mut now = 1_000;
        loop {
            for (id, token, addr, fake) in &nodes {
                let held = fake.held.lock().clone();
                heartbeat(&st, *id, token, *addr, &held, now).await;
            }
            let r = creator.run_once(&st, now).await;
            if r.missing == 0 {
                break;
            }
            now += 1_000;
            assert!(now < 60_000, "replicas still missing: {r:?}");
            // The pool backs off re-dials on the real clock (up to 1 s after failures).
            if r.failed > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Every peer got its copysets with the full peer list, and nothing else.
        for (id, _, _, fake) in &nodes {
            let want: BTreeMap<GroupId, Vec<ChunkServerId>> = topo
                .copysets
                .values()
                .filter(|c| c.peers.contains(id))
                .map(|c| (c.group, c.peers.clone()))
                .collect();
            let got: BTreeMap<GroupId, Vec<ChunkServerId>> = fake
                .calls
                .lock()
                .iter()
                .map(|c| (c.group, c.peers.iter().map(|p| p.id).collect()))
                .collect();
            assert_eq!(got, want, "{id}");
            assert_eq!(*fake.held.lock(), want.keys().copied().collect());
            for c in fake.calls.lock().iter() {
                for p in &c.peers {
                    assert_eq!(p.addr, topo.chunkservers[&p.id].addr);
                }
            }
        }
        // cs2 needed retries for exactly its 2 refusals; cs1 one call per copyset.
        assert_eq!(nodes[0].3.calls.lock().len(), 4);
        assert_eq!(nodes[1].3.calls.lock().len(), 6);
        assert_eq!(metrics.copyset_creates(true), 12);
        // All reported: a later round sends nothing.
        let r = creator.run_once(&st, now + 100_000).await;
        assert_eq!((r.ok, r.failed, r.missing), (0, 0, 0));
    })
    .await
    .unwrap();
}
