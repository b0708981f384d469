//! Fault filters of the in-memory transport.

use basalt_proto::hello::Echo;
use basalt_proto::Method;
use basalt_transport::mem::{FaultAction, FaultRule};
use basalt_transport::testing::conformance::{options, wait_until};
use basalt_transport::{MemNetwork, MemTransport, Router, TransportConfig, TransportError};
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

const BOUND: Duration = Duration::from_secs(30);

fn endpoint(net: &MemNetwork, name: &str) -> MemTransport {
    let config = TransportConfig {
        call_timeout_ms: 300,
        hello_timeout_ms: 300,
        ..TransportConfig::default()
    };
    net.endpoint(name, options(name).config(config)).unwrap()
}

fn echo(tag: u64) -> Echo {
    Echo { tag, delay_us: 0 }
}

#[tokio::test]
async fn drop_delay_partition_isolate_and_heal() {
    tokio::time::timeout(BOUND, async {
        let net = MemNetwork::new();
        let a = endpoint(&net, "a");
        let b = endpoint(&net, "b");
        let c = endpoint(&net, "c");
        let _sa = a.serve("a", Router::new().echo()).await.unwrap();
        let _sb = b.serve("b", Router::new().echo()).await.unwrap();
        let c_to_a = c.connect("a").await.unwrap();
        let c_to_b = c.connect("b").await.unwrap();
        c_to_a.call(&echo(1), Bytes::new()).await.unwrap();

        // drop one method only, one direction only
        let f = net.add_fault(FaultRule {
            from: Some("c".into()),
            to: Some("a".into()),
            method: Some(Method::Echo),
            action: FaultAction::Drop,
        });
        let r = c_to_a.call(&echo(2), Bytes::new()).await;
        assert!(matches!(r, Err(TransportError::Timeout { .. })), "{r:?}");
        c_to_b.call(&echo(3), Bytes::new()).await.unwrap();
        net.remove_faults(f);
        c_to_a.call(&echo(4), Bytes::new()).await.unwrap();

        // delay
        let f = net.add_fault(FaultRule {
            from: None,
            to: Some("c".into()),
            method: None,
            action: FaultAction::Delay(Duration::from_millis(100)),
        });
        let start = Instant::now();
        c_to_a.call(&echo(5), Bytes::new()).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(100));
        net.remove_faults(f);

        // partition c|a: b still reachable; new connections to a time out
        let p = net.partition("c", "a");
        assert!(c_to_a.call(&echo(6), Bytes::new()).await.is_err());
        c_to_b.call(&echo(7), Bytes::new()).await.unwrap();
        assert!(matches!(
            c.connect("a").await,
            Err(TransportError::Timeout { .. })
        ));
        net.remove_faults(p);
        c_to_a.call(&echo(8), Bytes::new()).await.unwrap();

        // isolate c
        let i = net.isolate("c");
        assert!(c_to_a.call(&echo(9), Bytes::new()).await.is_err());
        assert!(c_to_b.call(&echo(10), Bytes::new()).await.is_err());
        net.clear_faults();
        let _ = i;
        c_to_b.call(&echo(11), Bytes::new()).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn killing_an_endpoint_fails_its_peers_promptly() {
    tokio::time::timeout(BOUND, async {
        let net = MemNetwork::new();
        let a = endpoint(&net, "a");
        let c = endpoint(&net, "c");
        let _sa = a.serve("a", Router::new().echo()).await.unwrap();
        let conn = c.connect("a").await.unwrap();
        let slow = tokio::spawn(conn.call_with_deadline(
            &Echo {
                tag: 1,
                delay_us: 5_000_000,
            },
            Bytes::new(),
            Instant::now() + Duration::from_secs(10),
        ));
        assert!(wait_until(Duration::from_secs(5), || conn.pending_calls() == 1).await);
        net.kill("a");
        let r = slow.await.unwrap();
        assert!(matches!(r, Err(TransportError::PeerGone { .. })), "{r:?}");
        assert!(matches!(
            c.connect("a").await,
            Err(TransportError::Unreachable { .. })
        ));
        assert!(matches!(
            a.connect("c").await,
            Err(TransportError::Shutdown)
        ));
    })
    .await
    .unwrap();
}
