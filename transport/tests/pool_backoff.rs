//! The pool's re-dial back-off, on tokio's paused clock: dial attempts are counted by a
//! wrapping transport, and time only moves when the test advances it.

use basalt_proto::hello::{Echo, Identity, Role};
use basalt_transport::{
    Connection, ConnectionPool, MemNetwork, MemTransport, RedialBackoff, Router, ServerHandle,
    Transport, TransportError, TransportMetrics, TransportOptions,
};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Delegates to the in-memory transport, counting dials.
#[derive(Clone)]
struct Counting {
    inner: MemTransport,
    dials: Arc<AtomicU64>,
}

impl Transport for Counting {
    type Addr = String;

    async fn connect(&self, addr: &String) -> Result<Connection, TransportError> {
        self.dials.fetch_add(1, Ordering::SeqCst);
        self.inner.connect(addr).await
    }

    async fn serve(
        &self,
        addr: &String,
        router: Router,
    ) -> Result<ServerHandle<String>, TransportError> {
        self.inner.serve(addr, router).await
    }

    fn metrics(&self) -> &TransportMetrics {
        self.inner.metrics()
    }
}

fn opts(name: &str) -> TransportOptions {
    TransportOptions::new(Identity {
        role: Role::Tool,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    })
}

#[tokio::test(start_paused = true)]
async fn failed_dials_back_off_exponentially_and_reset_on_success() {
    let net = MemNetwork::new();
    let dials = Arc::new(AtomicU64::new(0));
    let client = Counting {
        inner: net.endpoint("client", opts("client")).unwrap(),
        dials: dials.clone(),
    };
    let pool = ConnectionPool::new(client).with_backoff(RedialBackoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
    });
    let peer = "server".to_string();
    let step = |ms| tokio::time::advance(Duration::from_millis(ms));

    // nobody serves: the first get dials and fails; gets inside the window do not dial
    assert!(pool.get(&peer).await.is_err());
    assert_eq!(dials.load(Ordering::SeqCst), 1);
    for _ in 0..50 {
        assert!(matches!(
            pool.get(&peer).await,
            Err(TransportError::Unreachable { .. })
        ));
    }
    assert_eq!(dials.load(Ordering::SeqCst), 1, "hammered a refusing peer");
    // windows of 100, 200, 400, 400 ms: one dial at the end of each, none before
    for (window, expected) in [(100, 2), (200, 3), (400, 4), (400, 5)] {
        step(window - 1).await;
        assert!(pool.get(&peer).await.is_err());
        assert_eq!(dials.load(Ordering::SeqCst), expected - 1, "dialled early");
        step(1).await;
        assert!(pool.get(&peer).await.is_err());
        assert_eq!(dials.load(Ordering::SeqCst), expected);
    }

    // the peer comes up: the next dial after the window succeeds and resets the back-off
    let server = net.endpoint("server", opts("server")).unwrap();
    let _srv = server.serve("server", Router::new().echo()).await.unwrap();
    step(400).await;
    let conn = pool.get(&peer).await.unwrap();
    assert_eq!(dials.load(Ordering::SeqCst), 6);
    conn.call(
        &Echo {
            tag: 1,
            delay_us: 0,
        },
        Bytes::new(),
    )
    .await
    .unwrap();
    // an open connection is reused, not re-dialled
    pool.get(&peer).await.unwrap();
    assert_eq!(dials.load(Ordering::SeqCst), 6);

    // after a success the first failure waits `initial` again, not the old 400 ms
    let dead = "nobody".to_string();
    assert!(pool.get(&dead).await.is_err());
    assert_eq!(dials.load(Ordering::SeqCst), 7);
    step(100).await;
    assert!(pool.get(&dead).await.is_err());
    assert_eq!(dials.load(Ordering::SeqCst), 8);
}
