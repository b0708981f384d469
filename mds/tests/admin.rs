//! Admin RPCs (cluster status, chunkserver and copyset lists, topology get/apply, leader
//! transfer and peer removal) and the metrics endpoint, through the service on the
//! in-memory transport, with the in-memory store and with a real etcd.

use basalt_mds::metrics::MdsMetrics;
use basalt_mds::service::MdsService;
use basalt_mds::state::{MdsState, StateConfig};
use basalt_mds::store::etcd::EtcdStore;
use basalt_mds::store::mem::MemStore;
use basalt_mds::store::MetaStore;
use basalt_proto::heartbeat::{CopysetReport, DiskStats, Heartbeat, OperatorKind};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{ChunkServerId, GroupId, LogicalPoolId};
use basalt_proto::mds::{
    ApplyTopology, ChunkServerState, ClusterStatus, CopysetHealth, GetTopology, ListChunkServers,
    ListCopysets, ListOperators, MdsRemovePeer, MdsTransferLeader, RegisterChunkServer, Registered,
    TopologyChanges,
};
use basalt_proto::status::{MdsError, OperatorRefusal};
use basalt_testkit::EtcdProcess;
use basalt_transport::metrics_http::MetricsServer;
use basalt_transport::{Connection, MemNetwork, TransportOptions};
use bytes::Bytes;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

mod common;

fn map() -> String {
    common::three_zone_map(2)
}

const OWN: &str = "10.0.0.1:8100";

fn ident(name: &str, role: Role) -> Identity {
    Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    }
}

struct Fixture {
    state: Arc<MdsState>,
    svc: Arc<MdsService>,
    conn: Connection,
    metrics: MdsMetrics,
    _server: basalt_transport::ServerHandle<String>,
}

async fn fixture(store: Arc<dyn MetaStore>) -> Fixture {
    let metrics = MdsMetrics::new();
    let state = Arc::new(
        MdsState::load(store, StateConfig::default(), 0)
            .await
            .unwrap()
            .with_metrics(metrics.clone()),
    );
    let net = MemNetwork::new();
    let server = net
        .endpoint("mds", TransportOptions::new(ident("mds", Role::Mds)))
        .unwrap();
    let cli = net
        .endpoint("cli", TransportOptions::new(ident("cli", Role::Cli)))
        .unwrap();
    let svc = MdsService::with_metrics(
        Some(OWN.parse().unwrap()),
        Arc::new(|| 1_000),
        metrics.clone(),
    );
    let handle = server.serve("mds", svc.router()).await.unwrap();
    svc.activate(state.clone(), Arc::new(|| true));
    let conn = cli.connect("mds").await.unwrap();
    Fixture {
        state,
        svc,
        conn,
        metrics,
        _server: handle,
    }
}

async fn call<R: basalt_proto::Rpc>(conn: &Connection, req: &R) -> R::Reply {
    conn.call(req, Bytes::new()).await.unwrap().0
}

async fn apply(conn: &Connection, toml: &str) -> Result<TopologyChanges, MdsError> {
    call(conn, &ApplyTopology { toml: toml.into() }).await
}

async fn register_three(st: &MdsState) -> Vec<Registered> {
    let mut out = Vec::new();
    for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
        let req = RegisterChunkServer {
            server: h.to_string(),
            disk_uuid: format!("d{i}"),
            addr: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
            existing: None,
            disk: DiskStats {
                total_bytes: 1000,
                used_bytes: 100,
                ..Default::default()
            },
        };
        out.push(st.register(&req, 0).await.unwrap());
    }
    out
}

fn hb(reg: &Registered, reports: Vec<CopysetReport>) -> Heartbeat {
    Heartbeat {
        id: reg.id,
        token: reg.token.clone(),
        addr: format!("127.0.0.1:{}", 9000 + reg.id.0 - 1)
            .parse()
            .unwrap(),
        disk: DiskStats {
            total_bytes: 1000,
            used_bytes: 100,
            ..Default::default()
        },
        copysets: reports,
    }
}

fn lead(group: GroupId, leader: ChunkServerId) -> CopysetReport {
    CopysetReport {
        group,
        epoch: basalt_mds::copyset_sync::INITIAL_EPOCH,
        leader: Some(leader),
        peers: vec![],
        conf_change: None,
    }
}

/// Topology apply/get: idempotent, reports changes, refuses bad maps without a change.
async fn topology_round_trip(f: &Fixture) {
    let c = &f.conn;
    let first = apply(c, &map()).await.unwrap();
    assert_eq!(first.physical_pools, vec!["p1"]);
    assert_eq!(first.zones, vec!["z1", "z2", "z3"]);
    assert_eq!(first.servers, vec!["h1", "h2", "h3"]);
    assert_eq!(first.logical_pools, vec!["blocks"]);
    assert_eq!(apply(c, &map()).await.unwrap(), TopologyChanges::default());
    let before = call(c, &GetTopology {}).await.unwrap().toml;
    // Re-applying what GetTopology returns changes nothing.
    assert_eq!(apply(c, &before).await.unwrap(), TopologyChanges::default());

    let bad_parent = format!("{}\n[[server]]\nname = \"h9\"\nzone = \"nowhere\"\n", map());
    match apply(c, &bad_parent).await {
        Err(MdsError::InvalidTopology { reason }) => {
            assert!(
                reason.contains("h9") && reason.contains("nowhere"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let moved = map().replace(
        "name = \"h1\"\nzone = \"z1\"",
        "name = \"h1\"\nzone = \"z2\"",
    );
    match apply(c, &moved).await {
        Err(MdsError::InvalidTopology { reason }) => assert!(reason.contains("h1"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        apply(c, "[[[ not toml").await,
        Err(MdsError::InvalidTopology { .. })
    ));
    // A map that is valid but adds something and conflicts elsewhere: nothing applied.
    let partial = format!("{moved}\n[[server]]\nname = \"h4\"\nzone = \"z1\"\n");
    assert!(apply(c, &partial).await.is_err());
    assert_eq!(call(c, &GetTopology {}).await.unwrap().toml, before);

    let bigger = format!("{}\n[[server]]\nname = \"h4\"\nzone = \"z1\"\n", map());
    let d = apply(c, &bigger).await.unwrap();
    assert_eq!(
        d,
        TopologyChanges {
            servers: vec!["h4".into()],
            ..Default::default()
        }
    );
    let after = call(c, &GetTopology {}).await.unwrap().toml;
    assert!(after.contains("h4") && after.len() > before.len());
}

#[tokio::test]
async fn admin_rpcs_in_memory() {
    tokio::time::timeout(T, async {
        let f = fixture(Arc::new(MemStore::new())).await;
        let c = &f.conn;
        topology_round_trip(&f).await;
        let regs = register_three(&f.state).await;
        let n = f.state.create_copysets(LogicalPoolId(1), 3).await.unwrap();
        assert_eq!(n, 2);

        // No heartbeats yet: every copyset leaderless.
        let cps = call(
            c,
            &ListCopysets {
                pool: LogicalPoolId(1),
            },
        )
        .await
        .unwrap();
        assert_eq!(cps.len(), 2);
        assert!(cps.iter().all(|c| c.health == CopysetHealth::Leaderless));
        assert_eq!(
            call(
                c,
                &ListCopysets {
                    pool: LogicalPoolId(7)
                }
            )
            .await,
            Err(MdsError::PoolNotFound {
                pool: LogicalPoolId(7)
            })
        );
        // Each copyset's lowest peer reports leading it.
        let (g1, g2) = (cps[0].group, cps[1].group);
        for r in &regs {
            let reports = cps
                .iter()
                .filter(|c| c.peers[0] == r.id)
                .map(|c| lead(c.group, r.id))
                .collect();
            f.state.heartbeat(&hb(r, reports), 1_000).await.unwrap();
        }
        let cps = call(
            c,
            &ListCopysets {
                pool: LogicalPoolId(1),
            },
        )
        .await
        .unwrap();
        assert!(
            cps.iter().all(|c| c.health == CopysetHealth::Healthy),
            "{cps:?}"
        );
        let leader = cps[0].leader.unwrap();
        assert_eq!(leader, cps[0].peers[0]);

        let st = call(c, &ClusterStatus {}).await.unwrap();
        assert_eq!(st.active_mds, Some(OWN.parse::<SocketAddr>().unwrap()));
        assert_eq!(
            (
                st.chunkservers_online,
                st.chunkservers_unstable,
                st.chunkservers_offline
            ),
            (3, 0, 0)
        );
        assert_eq!(
            (
                st.copysets_healthy,
                st.copysets_degraded,
                st.copysets_leaderless
            ),
            (2, 0, 0)
        );
        assert_eq!((st.used_bytes, st.total_bytes), (300, 3000));

        let list = call(c, &ListChunkServers {}).await.unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(
            list.iter().map(|c| c.server.as_str()).collect::<Vec<_>>(),
            vec!["h1", "h2", "h3"]
        );
        assert!(list.iter().all(|c| c.state == ChunkServerState::Online));
        assert_eq!(list.iter().map(|c| c.copysets).sum::<u32>(), 6);
        assert_eq!(list.iter().map(|c| c.leaders).sum::<u32>(), 2);

        // Transfer leader: queued, reaches the leader in its heartbeat reply.
        let target = cps[0].peers[1];
        let op = call(
            c,
            &MdsTransferLeader {
                group: g1,
                to: target,
            },
        )
        .await
        .unwrap();
        assert_eq!(op.kind, OperatorKind::TransferLeader(target));
        let lreg = regs.iter().find(|r| r.id == leader).unwrap();
        let reply = f
            .state
            .heartbeat(&hb(lreg, vec![lead(g1, leader)]), 1_100)
            .await
            .unwrap();
        assert_eq!(reply.operators, vec![op]);
        // The target is busy now: a second operator involving it is refused.
        let g2_other = cps[1]
            .peers
            .iter()
            .copied()
            .find(|p| Some(*p) != cps[1].leader)
            .unwrap();
        let second = call(
            c,
            &MdsTransferLeader {
                group: g2,
                to: g2_other,
            },
        )
        .await;
        let busy_ids = [leader, target];
        match second {
            Err(MdsError::ChunkServerBusy { id }) => assert!(busy_ids.contains(&id)),
            Ok(op) => {
                // g2's leader and target are both outside the first operator.
                assert!(
                    !busy_ids.contains(&g2_other) && !busy_ids.contains(&cps[1].leader.unwrap()),
                    "{op:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            call(
                c,
                &MdsTransferLeader {
                    group: g1,
                    to: target
                }
            )
            .await,
            Err(MdsError::OperatorPending { group: g1 })
        );
        let pending = call(c, &ListOperators {}).await.unwrap();
        assert!(pending.iter().any(|p| p.op == op));
        // The target reports leading g1: the operator is done, g1 is free again.
        let treg = regs.iter().find(|r| r.id == target).unwrap();
        f.state
            .heartbeat(&hb(treg, vec![lead(g1, target)]), 1_200)
            .await
            .unwrap();
        let pending = call(c, &ListOperators {}).await.unwrap();
        assert!(pending.iter().all(|p| p.op.group != g1), "{pending:?}");

        // Remove peer: refused for the leader, queued for a follower.
        assert_eq!(
            call(
                c,
                &MdsRemovePeer {
                    group: g1,
                    peer: target
                }
            )
            .await,
            Err(MdsError::OperatorRefused {
                group: g1,
                reason: OperatorRefusal::RemoveLeader
            })
        );
        let victim = cps[0].peers.iter().copied().find(|p| *p != target).unwrap();
        let op = call(
            c,
            &MdsRemovePeer {
                group: g1,
                peer: victim,
            },
        )
        .await
        .unwrap();
        assert_eq!(op.kind, OperatorKind::RemovePeer(victim));
        let reply = f
            .state
            .heartbeat(&hb(treg, vec![lead(g1, target)]), 1_300)
            .await
            .unwrap();
        assert!(reply.operators.contains(&op));

        // Metrics counted requests and operators.
        let count = |m: &'static str| {
            f.metrics
                .rpcs
                .get_or_create(&basalt_mds::metrics::MethodLabel { method: m })
                .get()
        };
        assert_eq!(count("ClusterStatus"), 1);
        assert_eq!(count("MdsRemovePeer"), 2);
        let ev = |e| {
            f.metrics
                .operators
                .get_or_create(&basalt_mds::metrics::EventLabel { event: e })
                .get()
        };
        use basalt_mds::metrics::OperatorEvent;
        assert!(ev(OperatorEvent::issued) >= 2);
        assert_eq!(ev(OperatorEvent::completed), 1);

        // Standby: admin RPCs refused with NotLeader.
        f.svc.deactivate();
        assert!(matches!(
            call(c, &ClusterStatus {}).await,
            Err(MdsError::NotLeader { .. })
        ));
    })
    .await
    .unwrap();
}

async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.0 200"), "{out}");
    out
}

#[tokio::test]
async fn metrics_endpoint_reports_leadership_and_cluster() {
    tokio::time::timeout(T, async {
        let f = fixture(Arc::new(MemStore::new())).await;
        let mut registry = Registry::default();
        f.metrics.register(&mut registry);
        let srv = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), Arc::new(registry))
            .await
            .unwrap();
        apply(&f.conn, &map()).await.unwrap();
        let regs = register_three(&f.state).await;
        f.state.create_copysets(LogicalPoolId(1), 3).await.unwrap();
        f.state.heartbeat(&hb(&regs[0], vec![]), 500).await.unwrap();
        f.metrics.observe(&f.state.observe(2_500).await);
        let text = scrape(srv.local_addr()).await;
        for want in [
            "basalt_mds_leader 1",
            "basalt_mds_chunkservers{state=\"online\"} 3",
            "basalt_mds_chunkservers{state=\"offline\"} 0",
            "basalt_mds_copysets{health=\"leaderless\"} 2",
            "basalt_mds_copysets{health=\"healthy\"} 0",
            "basalt_mds_operators_pending 0",
            "basalt_mds_chunkserver_heartbeat_lag_seconds{chunkserver=\"cs1\"} 2.0",
            "basalt_mds_chunkserver_heartbeat_lag_seconds{chunkserver=\"cs2\"} 2.5",
            "basalt_mds_rpc_requests_total{method=\"ApplyTopology\"} 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        f.svc.deactivate();
        let text = scrape(srv.local_addr()).await;
        assert!(text.contains("basalt_mds_leader 0"), "{text}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_apply_persists_in_etcd() {
    let etcd = EtcdProcess::start().expect("etcd");
    let store: Arc<dyn MetaStore> = Arc::new(EtcdStore::connect(&[etcd.endpoint()]).await.unwrap());
    tokio::time::timeout(T, async {
        let f = fixture(store.clone()).await;
        topology_round_trip(&f).await;
        let regs = register_three(&f.state).await;
        f.state.create_copysets(LogicalPoolId(1), 3).await.unwrap();
        let text = call(&f.conn, &GetTopology {}).await.unwrap().toml;
        // A fresh MDS loading from etcd sees the same topology, chunkservers and copysets.
        let g = fixture(store).await;
        assert_eq!(call(&g.conn, &GetTopology {}).await.unwrap().toml, text);
        let list = call(&g.conn, &ListChunkServers {}).await.unwrap();
        assert_eq!(
            list.iter().map(|c| c.id).collect::<Vec<_>>(),
            regs.iter().map(|r| r.id).collect::<Vec<_>>()
        );
        let cps = call(
            &g.conn,
            &ListCopysets {
                pool: LogicalPoolId(1),
            },
        )
        .await
        .unwrap();
        assert_eq!(cps.len(), 2);
        assert_eq!(
            apply(&g.conn, &map()).await.unwrap(),
            TopologyChanges::default()
        );
    })
    .await
    .unwrap();
}
