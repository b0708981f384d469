//! Fast-path upgrade and every fallback case, over TCP with the fake provider.

use basalt_proto::hello::{Echo, EchoReply};
use basalt_transport::testing::conformance::{options, wait_until};
use basalt_transport::testing::FakeFastPath;
use basalt_transport::{
    FallbackReason, FastPathMode, PathKind, Router, ServerHandle, TcpTransport, TransportError,
    TransportMetrics,
};
use bytes::Bytes;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(30);

fn transport(name: &str, provider: Option<Arc<FakeFastPath>>, mode: FastPathMode) -> TcpTransport {
    transport_with_ping(name, provider, mode, 5_000)
}

fn transport_with_ping(
    name: &str,
    provider: Option<Arc<FakeFastPath>>,
    mode: FastPathMode,
    ping_timeout_ms: u64,
) -> TcpTransport {
    let opts = options(name);
    let mut config = base_config();
    config.fast_path = mode;
    config.fast_path_ping_timeout_ms = ping_timeout_ms;
    let mut opts = opts.config(config);
    if let Some(p) = provider {
        opts = opts.fast_path(p);
    }
    TcpTransport::new(opts).unwrap()
}

fn base_config() -> basalt_transport::TransportConfig {
    basalt_transport::TransportConfig {
        call_timeout_ms: 10_000,
        hello_timeout_ms: 5_000,
        ..Default::default()
    }
}

/// Serve echo, recording the path each request arrived on.
async fn serve(t: &TcpTransport) -> (ServerHandle<SocketAddr>, Arc<Mutex<Vec<PathKind>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let router = Router::new().route::<Echo, _, _>(move |req, payload, _g, cx| {
        rec.lock().push(cx.path);
        async move {
            if req.delay_us > 0 {
                tokio::time::sleep(Duration::from_micros(req.delay_us as u64)).await;
            }
            (EchoReply { tag: req.tag }, payload)
        }
    });
    let srv = t
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)), router)
        .await
        .unwrap();
    (srv, seen)
}

fn echo(tag: u64, delay_us: u32) -> Echo {
    Echo { tag, delay_us }
}

async fn wait_fallback(m: &TransportMetrics, reason: FallbackReason) {
    assert!(
        wait_until(Duration::from_secs(5), || m.fallbacks(reason) >= 1).await,
        "no {reason:?} fallback counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_upgrade_and_traffic_moves() {
    tokio::time::timeout(BOUND, async {
        let fake = FakeFastPath::new();
        let st = transport("server", Some(fake.clone()), FastPathMode::Auto);
        let ct = transport("client", Some(fake.clone()), FastPathMode::Auto);
        let (srv, seen) = serve(&st).await;
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::FastPath("fake"));
        assert!(conn.features().contains(basalt_proto::hello::Features::UCX));
        // the acceptor upgrades in the background
        assert!(
            wait_until(Duration::from_secs(5), || st.metrics().fast_path_upgrades()
                == 1)
            .await
        );
        let before = fake.frames_carried();
        for i in 0..50 {
            let (r, p) = conn
                .call(&echo(i, 0), Bytes::from(vec![1; 100]))
                .await
                .unwrap();
            assert_eq!(r.tag, i);
            assert_eq!(p.len(), 100);
        }
        // requests and replies both crossed the link
        assert!(fake.frames_carried() >= before + 100);
        assert!(seen.lock().iter().all(|p| *p == PathKind::FastPath("fake")));
        assert_eq!(ct.metrics().fast_path_upgrades(), 1);
        assert!(
            wait_until(Duration::from_secs(5), || st.metrics().fast_path_upgrades()
                == 1)
            .await
        );
        for r in [
            FallbackReason::Absent,
            FallbackReason::Declined,
            FallbackReason::Connect,
            FallbackReason::PingTimeout,
            FallbackReason::LinkFailed,
        ] {
            assert_eq!(ct.metrics().fallbacks(r), 0, "{r:?}");
        }
        drop(conn);
        assert!(wait_until(Duration::from_secs(5), || fake.open_links() == 0).await);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_absent_stays_on_tcp() {
    tokio::time::timeout(BOUND, async {
        let fake = FakeFastPath::new();
        let st = transport("server", Some(fake.clone()), FastPathMode::Auto);
        let ct = transport("client", None, FastPathMode::Auto);
        let (srv, seen) = serve(&st).await;
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::Tcp);
        assert_eq!(ct.metrics().fallbacks(FallbackReason::Absent), 1);
        wait_fallback(st.metrics(), FallbackReason::Declined).await;
        conn.call(&echo(1, 0), Bytes::new()).await.unwrap();
        assert_eq!(seen.lock().as_slice(), &[PathKind::Tcp]);
        assert_eq!(fake.frames_carried(), 0);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failing_to_listen_stays_on_tcp() {
    tokio::time::timeout(BOUND, async {
        let client_fake = FakeFastPath::new();
        client_fake.set_refuse_listen(true);
        let st = transport("server", Some(FakeFastPath::new()), FastPathMode::Auto);
        let ct = transport("client", Some(client_fake.clone()), FastPathMode::Auto);
        let (srv, _) = serve(&st).await;
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::Tcp);
        assert_eq!(ct.metrics().fallbacks(FallbackReason::Unavailable), 1);
        conn.call(&echo(1, 0), Bytes::new()).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_declining_stays_on_tcp() {
    tokio::time::timeout(BOUND, async {
        let fake = FakeFastPath::new();
        let st = transport("server", Some(fake.clone()), FastPathMode::Off);
        let ct = transport("client", Some(fake.clone()), FastPathMode::Auto);
        let (srv, seen) = serve(&st).await;
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::Tcp);
        assert_eq!(ct.metrics().fallbacks(FallbackReason::Declined), 1);
        assert!(!conn.features().contains(basalt_proto::hello::Features::UCX));
        conn.call(&echo(1, 0), Bytes::new()).await.unwrap();
        assert_eq!(seen.lock().as_slice(), &[PathKind::Tcp]);
        assert_eq!(fake.open_links(), 0);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_skips_an_unworthy_provider_and_force_does_not() {
    tokio::time::timeout(BOUND, async {
        let fake = FakeFastPath::new();
        fake.set_worthwhile(false);
        let st = transport("server", Some(fake.clone()), FastPathMode::Force);
        let (srv, _) = serve(&st).await;
        let auto = transport("auto", Some(fake.clone()), FastPathMode::Auto);
        let conn = auto.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::Tcp);
        assert_eq!(auto.metrics().fallbacks(FallbackReason::NotWorthwhile), 1);
        let force = transport("force", Some(fake.clone()), FastPathMode::Force);
        let conn = force.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::FastPath("fake"));
        conn.call(&echo(1, 0), Bytes::new()).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_falls_back_on_both_sides() {
    tokio::time::timeout(BOUND, async {
        let client_fake = FakeFastPath::new();
        client_fake.set_fail_connect(true);
        let st = transport("server", Some(FakeFastPath::new()), FastPathMode::Auto);
        let ct = transport("client", Some(client_fake), FastPathMode::Auto);
        let (srv, seen) = serve(&st).await;
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::Tcp);
        assert_eq!(ct.metrics().fallbacks(FallbackReason::Connect), 1);
        // the server is told and leaves its (working) link too
        assert!(
            wait_until(Duration::from_secs(5), || {
                st.metrics().fallbacks(FallbackReason::PeerFellBack)
                    + st.metrics().fallbacks(FallbackReason::LinkFailed)
                    >= 1
            })
            .await
        );
        conn.call(&echo(1, 0), Bytes::new()).await.unwrap();
        assert_eq!(seen.lock().as_slice(), &[PathKind::Tcp]);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_timeout_falls_back() {
    tokio::time::timeout(BOUND, async {
        let client_fake = FakeFastPath::new();
        client_fake.set_drop_pings(true);
        let st = transport("server", Some(FakeFastPath::new()), FastPathMode::Auto);
        let ct = transport_with_ping("client", Some(client_fake), FastPathMode::Auto, 300);
        let (srv, _) = serve(&st).await;
        let start = tokio::time::Instant::now();
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        // bounded by the configured 300 ms ping deadline (plus slack)
        assert!(start.elapsed() < Duration::from_secs(3));
        assert_eq!(conn.path(), PathKind::Tcp);
        assert_eq!(ct.metrics().fallbacks(FallbackReason::PingTimeout), 1);
        assert_eq!(ct.metrics().fast_path_upgrades(), 0);
        conn.call(&echo(1, 0), Bytes::new()).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_failure_mid_stream_fails_pending_calls_and_returns_to_tcp() {
    tokio::time::timeout(BOUND, async {
        let fake = FakeFastPath::new();
        let st = transport("server", Some(fake.clone()), FastPathMode::Auto);
        let ct = transport("client", Some(fake.clone()), FastPathMode::Auto);
        let (srv, seen) = serve(&st).await;
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::FastPath("fake"));
        assert!(
            wait_until(Duration::from_secs(5), || st.metrics().fast_path_upgrades()
                == 1)
            .await
        );
        let calls: Vec<_> = (0..20)
            .map(|i| tokio::spawn(conn.call(&echo(i, 500_000), Bytes::new())))
            .collect();
        assert!(wait_until(Duration::from_secs(5), || seen.lock().len() == 20).await);
        fake.break_links();
        let mut lost = 0;
        for c in calls {
            match c.await.unwrap() {
                Ok(_) => {}
                Err(e @ TransportError::PathLost { .. }) => {
                    assert!(e.is_retryable());
                    lost += 1;
                }
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(lost, 20, "calls pending on a lost link fail as PathLost");
        assert_eq!(conn.path(), PathKind::Tcp);
        assert!(!conn.is_closed());
        // Both links break at once: the client learns it from its own link error or, first,
        // from the server's fallback notice; either way it counts one fallback.
        assert!(
            ct.metrics().fallbacks(FallbackReason::LinkFailed)
                + ct.metrics().fallbacks(FallbackReason::PeerFellBack)
                >= 1
        );
        seen.lock().clear();
        let (r, _) = conn.call(&echo(99, 0), Bytes::new()).await.unwrap();
        assert_eq!(r.tag, 99);
        assert_eq!(seen.lock().as_slice(), &[PathKind::Tcp]);
        // the server side left the link as well: its replies come over TCP
        assert!(
            wait_until(Duration::from_secs(5), || {
                st.metrics().fallbacks(FallbackReason::LinkFailed)
                    + st.metrics().fallbacks(FallbackReason::PeerFellBack)
                    >= 1
            })
            .await
        );
        let carried = fake.frames_carried();
        conn.call(&echo(100, 0), Bytes::new()).await.unwrap();
        assert_eq!(fake.frames_carried(), carried);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mem_transport_upgrades_and_falls_back_too() {
    tokio::time::timeout(BOUND, async {
        let fake = FakeFastPath::new();
        let net = basalt_transport::MemNetwork::new();
        let mk = |name: &str| {
            let mut c = base_config();
            c.fast_path = FastPathMode::Force;
            net.endpoint(name, options(name).config(c).fast_path(fake.clone()))
                .unwrap()
        };
        let server = mk("s");
        let client = mk("c");
        let _srv = server.serve("s", Router::new().echo()).await.unwrap();
        let conn = client.connect("s").await.unwrap();
        assert_eq!(conn.path(), PathKind::FastPath("fake"));
        conn.call(&echo(1, 0), Bytes::new()).await.unwrap();
        fake.break_links();
        assert_eq!(conn.path(), PathKind::Mem);
        conn.call(&echo(2, 0), Bytes::new()).await.unwrap();
    })
    .await
    .unwrap();
}
