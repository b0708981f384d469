//! Per-connection limits: requests in flight and frame sizes.

use basalt_proto::hello::{Echo, EchoReply};
use basalt_transport::testing::conformance::options;
use basalt_transport::{Router, TcpTransport, TransportConfig, TransportError};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(30);

fn transport(name: &str, config: TransportConfig) -> TcpTransport {
    TcpTransport::new(options(name).config(config)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded_per_connection() {
    tokio::time::timeout(BOUND, async {
        let server = transport(
            "server",
            TransportConfig {
                max_inflight_requests: 3,
                ..TransportConfig::default()
            },
        );
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (n, p) = (now.clone(), peak.clone());
        let router = Router::new().route::<Echo, _, _>(move |req, payload, _g, _cx| {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(cur, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                (EchoReply { tag: req.tag }, payload)
            }
        });
        let srv = server
            .serve(SocketAddr::from(([127, 0, 0, 1], 0)), router)
            .await
            .unwrap();
        let client = transport("client", TransportConfig::default());
        let conn = client.connect(srv.local_addr()).await.unwrap();
        let calls: Vec<_> = (0..12)
            .map(|i| {
                conn.call(
                    &Echo {
                        tag: i,
                        delay_us: 0,
                    },
                    Bytes::new(),
                )
            })
            .collect();
        for (i, r) in futures::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(r.unwrap().0.tag, i as u64);
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            3,
            "limit not reached or exceeded"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_receivers_limit_closes_the_connection() {
    tokio::time::timeout(BOUND, async {
        let server = transport(
            "server",
            TransportConfig {
                max_payload_len: 1024 * 1024,
                ..TransportConfig::default()
            },
        );
        let srv = server
            .serve(SocketAddr::from(([127, 0, 0, 1], 0)), Router::new().echo())
            .await
            .unwrap();
        let client = transport("client", TransportConfig::default());
        let conn = client.connect(srv.local_addr()).await.unwrap();
        let ok = conn
            .call(
                &Echo {
                    tag: 1,
                    delay_us: 0,
                },
                Bytes::from(vec![0; 1024 * 1024]),
            )
            .await;
        assert!(ok.is_ok());
        let too_big = conn
            .call(
                &Echo {
                    tag: 2,
                    delay_us: 0,
                },
                Bytes::from(vec![0; 1024 * 1024 + 1]),
            )
            .await;
        assert!(
            matches!(too_big, Err(TransportError::PeerGone { .. })),
            "{too_big:?}"
        );
        assert_eq!(server.metrics().bad_frames(), 1);
        // a new connection works
        let conn = client.connect(srv.local_addr()).await.unwrap();
        conn.call(
            &Echo {
                tag: 3,
                delay_us: 0,
            },
            Bytes::new(),
        )
        .await
        .unwrap();
    })
    .await
    .unwrap();
}
