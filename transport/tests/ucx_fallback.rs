//! Fast-path negotiation and fallback with the real UCX provider (each side its own
//! provider, as two processes would have): upgrade, UCX absent or broken on one side,
//! UCX only over tcp in `auto` mode, and UCX dying mid-stream.
#![cfg(feature = "ucx")]

use basalt_proto::hello::{Echo, EchoReply};
use basalt_transport::fastpath::FastPathProvider;
use basalt_transport::testing::conformance::{options, wait_until};
use basalt_transport::ucx::{UcxConfig, UcxProvider};
use basalt_transport::{
    FallbackReason, FastPathMode, PathKind, Router, ServerHandle, TcpTransport, TransportConfig,
    TransportError,
};
use bytes::Bytes;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(30);
const UCX: PathKind = PathKind::FastPath("ucx");

fn sm() -> UcxConfig {
    UcxConfig {
        mm_error_handling: true,
        ..UcxConfig::loopback("sm,tcp")
    }
}

fn provider(cfg: UcxConfig) -> Arc<UcxProvider> {
    Arc::new(UcxProvider::new(cfg).expect("UCX provider"))
}

fn transport(name: &str, provider: Option<Arc<UcxProvider>>, mode: FastPathMode) -> TcpTransport {
    let config = TransportConfig {
        call_timeout_ms: 10_000,
        hello_timeout_ms: 5_000,
        fast_path: mode,
        fast_path_ping_timeout_ms: 5_000,
        ..TransportConfig::default()
    };
    let mut opts = options(name).config(config);
    if let Some(p) = provider {
        opts = opts.fast_path(p as Arc<dyn FastPathProvider>);
    }
    TcpTransport::new(opts).unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_memory_upgrade_in_auto_mode_carries_traffic() {
    tokio::time::timeout(BOUND, async {
        let st = transport("server", Some(provider(sm())), FastPathMode::Auto);
        let ct = transport("client", Some(provider(sm())), FastPathMode::Auto);
        let (srv, seen) = serve(&st).await;
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), UCX);
        for (i, len) in [0usize, 100, 4096, 1 << 20, 8 << 20]
            .into_iter()
            .enumerate()
        {
            let body = Bytes::from((0..len).map(|x| (x % 251) as u8).collect::<Vec<_>>());
            let (r, p) = conn.call(&echo(i as u64, 0), body.clone()).await.unwrap();
            assert_eq!(r.tag, i as u64);
            assert!(p == body, "payload {len} intact");
        }
        assert!(seen.lock().iter().all(|p| *p == UCX), "{:?}", seen.lock());
        assert_eq!(ct.metrics().fast_path_upgrades(), 1);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucx_disabled_on_one_side_stays_on_tcp() {
    tokio::time::timeout(BOUND, async {
        // server without UCX, client with it
        let st = transport("server", None, FastPathMode::Off);
        let ct = transport("client", Some(provider(sm())), FastPathMode::Auto);
        let (srv, seen) = serve(&st).await;
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::Tcp);
        assert_eq!(ct.metrics().fallbacks(FallbackReason::Declined), 1);
        conn.call(&echo(1, 0), Bytes::from_static(b"x"))
            .await
            .unwrap();
        // and the other way round
        let st2 = transport("server2", Some(provider(sm())), FastPathMode::Auto);
        let ct2 = transport("client2", None, FastPathMode::Off);
        let (srv2, seen2) = serve(&st2).await;
        let conn2 = ct2.connect(srv2.local_addr()).await.unwrap();
        assert_eq!(conn2.path(), PathKind::Tcp);
        conn2.call(&echo(2, 0), Bytes::new()).await.unwrap();
        assert_eq!(seen.lock().as_slice(), &[PathKind::Tcp]);
        assert_eq!(seen2.lock().as_slice(), &[PathKind::Tcp]);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_transports_leave_the_process_on_tcp() {
    tokio::time::timeout(BOUND, async {
        // What a daemon does: try UCX once, run TCP only when it cannot start.
        let client_provider = match UcxProvider::new(UcxConfig::loopback("bogus")) {
            Ok(_) => panic!("tls=bogus must not start"),
            Err(e) => {
                assert!(matches!(e, TransportError::UcxInit { .. }), "{e:?}");
                None
            }
        };
        let st = transport("server", Some(provider(sm())), FastPathMode::Auto);
        let ct = transport("client", client_provider, FastPathMode::Auto);
        let (srv, seen) = serve(&st).await;
        let conn = ct.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::Tcp);
        assert_eq!(ct.metrics().fallbacks(FallbackReason::Absent), 1);
        conn.call(&echo(1, 0), Bytes::new()).await.unwrap();
        assert_eq!(seen.lock().as_slice(), &[PathKind::Tcp]);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucx_over_tcp_only_is_skipped_in_auto_and_used_in_force() {
    tokio::time::timeout(BOUND, async {
        let tcp = || provider(UcxConfig::loopback("tcp"));
        let st = transport("server", Some(tcp()), FastPathMode::Force);
        let (srv, _) = serve(&st).await;
        let auto = transport("auto", Some(tcp()), FastPathMode::Auto);
        let conn = auto.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), PathKind::Tcp);
        assert_eq!(auto.metrics().fallbacks(FallbackReason::NotWorthwhile), 1);
        let force = transport("force", Some(tcp()), FastPathMode::Force);
        let conn = force.connect(srv.local_addr()).await.unwrap();
        assert_eq!(conn.path(), UCX);
        conn.call(&echo(1, 0), Bytes::new()).await.unwrap();
    })
    .await
    .unwrap();
}

async fn ucx_dies_mid_stream(cfg: UcxConfig, kill_server_side: bool) {
    let sp = provider(cfg.clone());
    let cp = provider(cfg);
    let st = transport("server", Some(sp.clone()), FastPathMode::Force);
    let ct = transport("client", Some(cp.clone()), FastPathMode::Force);
    let (srv, seen) = serve(&st).await;
    let conn = ct.connect(srv.local_addr()).await.unwrap();
    assert_eq!(conn.path(), UCX);
    assert!(
        wait_until(Duration::from_secs(5), || st.metrics().fast_path_upgrades()
            == 1)
        .await
    );
    let calls: Vec<_> = (0..20)
        .map(|i| tokio::spawn(conn.call(&echo(i, 300_000), Bytes::from(vec![7u8; 10_000]))))
        .collect();
    assert!(wait_until(Duration::from_secs(5), || seen.lock().len() == 20).await);
    // UCX goes away on one side while the calls are pending (endpoints force-closed,
    // no notice: the peer learns from its endpoint error).
    if kill_server_side {
        sp.shutdown();
    } else {
        cp.shutdown();
    }
    for c in calls {
        match c.await.unwrap() {
            Ok((r, p)) => assert_eq!(p.len(), 10_000, "reply {}", r.tag),
            Err(e @ TransportError::PathLost { .. }) => assert!(e.is_retryable()),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || conn.path() == PathKind::Tcp).await,
        "client returned to TCP"
    );
    assert!(!conn.is_closed());
    seen.lock().clear();
    for i in 0..10 {
        let (r, p) = conn
            .call(&echo(100 + i, 0), Bytes::from(vec![1u8; 5000]))
            .await
            .unwrap();
        assert_eq!((r.tag, p.len()), (100 + i, 5000));
    }
    assert!(
        seen.lock().iter().all(|p| *p == PathKind::Tcp),
        "{:?}",
        seen.lock()
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let fell_back = |m: &basalt_transport::TransportMetrics| {
                m.fallbacks(FallbackReason::LinkFailed) + m.fallbacks(FallbackReason::PeerFellBack)
            };
            fell_back(ct.metrics()) >= 1 && fell_back(st.metrics()) >= 1
        })
        .await,
        "both sides counted the fallback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_ucx_killed_mid_stream_traffic_continues_over_tcp() {
    tokio::time::timeout(BOUND, ucx_dies_mid_stream(UcxConfig::loopback("tcp"), true))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ucx_killed_mid_stream_traffic_continues_over_tcp() {
    tokio::time::timeout(BOUND, ucx_dies_mid_stream(sm(), false))
        .await
        .unwrap();
}
