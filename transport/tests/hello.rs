//! Hello checks over TCP: cluster, role, the authentication hook, identities, features,
//! and the metrics of it all served over HTTP.

use basalt_proto::hello::{Features, Hello, HelloRefusal, Identity, Role};
use basalt_proto::ids::ChunkServerId;
use basalt_transport::metrics_http::MetricsServer;
use basalt_transport::{
    HelloHook, Router, TcpTransport, TransportError, TransportMetrics, TransportOptions,
};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOUND: Duration = Duration::from_secs(30);

fn id(role: Role, cluster: &str, name: &str) -> Identity {
    Identity {
        role,
        chunkserver: (role == Role::ChunkServer).then_some(ChunkServerId(7)),
        name: name.into(),
        cluster: cluster.into(),
    }
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn cluster_and_role_checks() {
    tokio::time::timeout(BOUND, async {
        let server = TcpTransport::new(
            TransportOptions::new(id(Role::Mds, "prod", "mds-1"))
                .accept_roles(vec![Role::ChunkServer, Role::Client]),
        )
        .unwrap();
        let srv = server
            .serve(any_port(), Router::new().echo())
            .await
            .unwrap();
        let addr = srv.local_addr();

        let wrong =
            TcpTransport::new(TransportOptions::new(id(Role::Client, "test", "c"))).unwrap();
        match wrong.connect(addr).await {
            Err(e @ TransportError::Refused(HelloRefusal::WrongCluster { .. })) => {
                assert!(!e.is_retryable())
            }
            other => panic!("expected WrongCluster, got {other:?}"),
        }
        let cli = TcpTransport::new(TransportOptions::new(id(Role::Cli, "prod", "cli"))).unwrap();
        assert!(matches!(
            cli.connect(addr).await,
            Err(TransportError::Refused(HelloRefusal::RoleNotAccepted {
                role: Role::Cli
            }))
        ));
        assert_eq!(server.metrics().hello_refused(), 2);

        // an unregistered chunkserver (empty cluster) is let in; identities are exposed
        let cs = TcpTransport::new(
            TransportOptions::new(id(Role::ChunkServer, "", "cs-7"))
                .features(Features::COALESCED_HEARTBEATS),
        )
        .unwrap();
        let conn = cs.connect(addr).await.unwrap();
        assert_eq!(conn.peer().role, Role::Mds);
        assert_eq!(conn.peer().name, "mds-1");
        assert_eq!(conn.peer().cluster, "prod");
        assert_eq!(conn.peer_addr(), addr.to_string());
        assert_eq!(conn.features(), Features::COALESCED_HEARTBEATS);
    })
    .await
    .unwrap();
}

/// Refuses dialers that did not set `Features::AUTH` (stands in for issue 8).
struct RequireAuthFlag;

impl HelloHook for RequireAuthFlag {
    fn check_hello(&self, hello: &Hello) -> Result<(), HelloRefusal> {
        if hello.features.contains(Features::AUTH) {
            Ok(())
        } else {
            Err(HelloRefusal::AuthFailed)
        }
    }
}

/// Sets `Features::AUTH` on outgoing hellos.
struct SetAuthFlag;

impl HelloHook for SetAuthFlag {
    fn prepare(&self, hello: &mut Hello) {
        hello.features |= Features::AUTH;
    }
    fn check_hello(&self, _: &Hello) -> Result<(), HelloRefusal> {
        Ok(())
    }
}

#[tokio::test]
async fn hello_hook_decides() {
    tokio::time::timeout(BOUND, async {
        let server = TcpTransport::new(
            TransportOptions::new(id(Role::ChunkServer, "c", "cs"))
                .hello_hook(Arc::new(RequireAuthFlag)),
        )
        .unwrap();
        let srv = server
            .serve(any_port(), Router::new().echo())
            .await
            .unwrap();
        let plain = TcpTransport::new(TransportOptions::new(id(Role::Client, "c", "x"))).unwrap();
        assert!(matches!(
            plain.connect(srv.local_addr()).await,
            Err(TransportError::Refused(HelloRefusal::AuthFailed))
        ));
        let signed = TcpTransport::new(
            TransportOptions::new(id(Role::Client, "c", "y")).hello_hook(Arc::new(SetAuthFlag)),
        )
        .unwrap();
        signed.connect(srv.local_addr()).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn metrics_are_registered_and_served() {
    tokio::time::timeout(BOUND, async {
        let metrics = TransportMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let server = TcpTransport::new(
            TransportOptions::new(id(Role::Mds, "", "m")).metrics(metrics.clone()),
        )
        .unwrap();
        let client = TcpTransport::new(
            TransportOptions::new(id(Role::Client, "", "c")).metrics(metrics.clone()),
        )
        .unwrap();
        let srv = server
            .serve(any_port(), Router::new().echo())
            .await
            .unwrap();
        let conn = client.connect(srv.local_addr()).await.unwrap();
        conn.call(
            &basalt_proto::hello::Echo {
                tag: 1,
                delay_us: 0,
            },
            bytes::Bytes::from_static(b"abc"),
        )
        .await
        .unwrap();
        let http = MetricsServer::bind(any_port(), Arc::new(registry))
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(http.local_addr())
            .await
            .unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(
            body.contains("basalt_transport_connections_dialled_total 1"),
            "{body}"
        );
        assert!(
            body.contains("basalt_transport_connections_accepted_total 1"),
            "{body}"
        );
        assert!(
            body.contains("basalt_transport_connections_open 2"),
            "{body}"
        );
        assert!(
            body.contains("basalt_transport_frames_sent_total"),
            "{body}"
        );
        drop(conn);
        assert!(
            basalt_transport::testing::conformance::wait_until(Duration::from_secs(5), || {
                metrics.connections_open() == 0
            })
            .await
        );
    })
    .await
    .unwrap();
}
