//! The transport conformance suite: the same cases against every backend.
//!
//! A backend implements [`Backend`]; a test file expands every case into a test with
//! [`crate::conformance_suite!`]:
//!
//! ```text
//! // tests/conformance_ucx.rs (needs the `testing` feature of basalt-transport)
//! basalt_transport::conformance_suite!(
//!     basalt_transport::testing::conformance::TcpBackend::with_fast_path(
//!         std::sync::Arc::new(my_provider()),
//!         basalt_transport::PathKind::FastPath("ucx"),
//!     )
//! );
//! ```
//!
//! The "peer killed" case needs a server that can die abruptly. TCP backends run it in a
//! child process: the test binary re-executes itself with [`CHILD_ENV`] set, running only
//! the generated `conformance_child_process_entry` test, which serves the echo router
//! (built by the same backend expression) and prints its address; the parent kills it
//! with SIGKILL.

use crate::config::{TransportConfig, TransportOptions};
use crate::error::TransportError;
use crate::fastpath::FastPathProvider;
use crate::mem::MemNetwork;
use crate::path::PathKind;
use crate::router::{OneWay, Router};
use crate::transport::Transport;
use crate::{CallOptions, ConnectionPool, FastPathMode};
use basalt_proto::codec;
use basalt_proto::hello::{Echo, EchoReply, Features, Hello, HelloReply, Identity, Role};
use basalt_proto::ids::GroupId;
use basalt_proto::method::RemoteError;
use basalt_proto::{FrameFlags, FrameHeader, FrameKind, Limits, Method, FRAME_HEADER_LEN};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Environment variable that turns a re-executed test binary into a child echo server.
pub const CHILD_ENV: &str = "BASALT_TRANSPORT_CONFORMANCE_CHILD";
/// Line prefix with which the child announces its address on stdout.
pub const CHILD_ADDR_PREFIX: &str = "BASALT_CHILD_ADDR=";
/// Upper bound of every case.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Address type of a backend.
pub type AddrOf<B> = <<B as Backend>::T as Transport>::Addr;

/// A server that can be killed abruptly.
pub struct KillableServer<A> {
    /// Where it serves the echo router.
    pub addr: A,
    kill: Option<Box<dyn FnOnce() + Send>>,
}

impl<A> KillableServer<A> {
    /// A server killed by `kill`.
    pub fn new(addr: A, kill: Box<dyn FnOnce() + Send>) -> Self {
        KillableServer {
            addr,
            kill: Some(kill),
        }
    }

    /// Kill it now.
    pub fn kill(mut self) {
        if let Some(k) = self.kill.take() {
            k();
        }
    }
}

impl<A> Drop for KillableServer<A> {
    fn drop(&mut self) {
        if let Some(k) = self.kill.take() {
            k();
        }
    }
}

/// A transport under test.
pub trait Backend: Send + Sync + 'static {
    /// The transport type.
    type T: Transport;
    /// A transport for a (simulated) process named `node` with these options; the backend
    /// adds its fast-path provider.
    fn transport(&self, node: &str, opts: TransportOptions) -> Self::T;
    /// A fresh address to serve on.
    fn bind_addr(&self) -> AddrOf<Self>;
    /// The path a connection between two of this backend's transports ends up on.
    fn expected_path(&self) -> PathKind;
    /// The TCP address behind `addr`, for the raw-socket cases (None: skipped).
    fn raw_tcp(&self, addr: &AddrOf<Self>) -> Option<SocketAddr>;
    /// Start an echo server that [`KillableServer::kill`] kills abruptly. `child_test` is
    /// the full name of the generated child entry test (for child processes).
    fn spawn_killable_server(
        &self,
        child_test: &str,
    ) -> BoxFuture<'_, KillableServer<AddrOf<Self>>>;
}

/// The identity used by the suite's transports.
pub fn identity(name: &str) -> Identity {
    Identity {
        role: Role::Tool,
        chunkserver: None,
        name: name.into(),
        cluster: "conformance".into(),
    }
}

/// Options used by the suite (short timeouts so failures are quick).
pub fn options(name: &str) -> TransportOptions {
    TransportOptions::new(identity(name)).config(TransportConfig {
        call_timeout_ms: 20_000,
        hello_timeout_ms: 5_000,
        shutdown_grace_ms: 3_000,
        fast_path_ping_timeout_ms: 5_000,
        ..TransportConfig::default()
    })
}

/// The echo router every case serves, plus a one-way sink.
pub fn echo_router(notes: Option<tokio::sync::mpsc::UnboundedSender<u64>>) -> Router {
    let r = Router::new().echo();
    match notes {
        Some(tx) => r.oneway::<Note, _, _>(move |n, _payload, _group, _cx| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(n.seq);
            }
        }),
        None => r,
    }
}

/// A one-way message for the suite (borrows a method number no transport test serves).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Note {
    /// Sequence number.
    pub seq: u64,
}

impl OneWay for Note {
    const METHOD: Method = Method::ClusterStatus;
}

/// Poll `cond` until it holds or `within` passes.
pub async fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn serve<B: Backend>(b: &B, node: &str) -> (B::T, crate::ServerHandle<AddrOf<B>>) {
    let t = b.transport(node, options(node));
    let srv = t
        .serve(&b.bind_addr(), echo_router(None))
        .await
        .expect("serve");
    (t, srv)
}

async fn client<B: Backend>(b: &B, addr: &AddrOf<B>) -> crate::Connection {
    let t = b.transport("client", options("client"));
    t.connect(addr).await.expect("connect")
}

fn echo(tag: u64, delay_us: u32) -> Echo {
    Echo { tag, delay_us }
}

// ------------------------------------------------------------------------- cases

/// Echo round trip, identity and path, NoHandler and BadRequest answers.
pub async fn echo_round_trip<B: Backend>(b: &B, _child: &str) {
    let (_st, srv) = serve(b, "server").await;
    let conn = client(b, &srv.local_addr()).await;
    assert_eq!(conn.path(), b.expected_path());
    assert_eq!(conn.peer().name, "server");
    assert!(conn.is_dialler());
    conn.ping().await.unwrap();
    let (reply, payload) = conn
        .call(&echo(7, 0), Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(reply, EchoReply { tag: 7 });
    assert_eq!(&payload[..], b"hello");
    // group ids travel
    let (reply, _) = conn
        .call_with(
            &echo(8, 0),
            Bytes::new(),
            CallOptions {
                group: GroupId(42),
                deadline: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.tag, 8);
    // no handler for Hello after the hello
    let hello = Hello {
        version: basalt_proto::PROTOCOL_VERSION,
        features: Features::empty(),
        identity: identity("x"),
        ucx: None,
    };
    match conn.call(&hello, Bytes::new()).await {
        Err(TransportError::Remote(RemoteError::NoHandler { method })) => {
            assert_eq!(method, Method::Hello as u16)
        }
        other => panic!("expected NoHandler, got {other:?}"),
    }
    // an undecodable request header
    let frame = conn
        .call_raw(
            Method::Echo,
            vec![0xff; 3],
            Bytes::new(),
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(frame.header.flags.contains(FrameFlags::ERROR));
    let err: RemoteError = codec::decode(&frame.head).unwrap();
    assert!(
        matches!(err, RemoteError::BadRequest { method, .. } if method == Method::Echo as u16),
        "{err:?}"
    );
    // the connection still works
    assert_eq!(conn.call(&echo(9, 0), Bytes::new()).await.unwrap().0.tag, 9);
}

/// A slow request started first completes after a fast one started later.
pub async fn out_of_order_replies<B: Backend>(b: &B, _child: &str) {
    let (_st, srv) = serve(b, "server").await;
    let conn = client(b, &srv.local_addr()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let slow = {
        let (conn, tx) = (conn.clone(), tx.clone());
        tokio::spawn(async move {
            let r = conn.call(&echo(1, 400_000), Bytes::new()).await.unwrap();
            tx.send(r.0.tag).unwrap();
        })
    };
    // make sure the slow one is on the wire first
    assert!(wait_until(Duration::from_secs(5), || conn.pending_calls() == 1).await);
    let fast = {
        let conn = conn.clone();
        tokio::spawn(async move {
            let r = conn.call(&echo(2, 0), Bytes::new()).await.unwrap();
            tx.send(r.0.tag).unwrap();
        })
    };
    assert_eq!(rx.recv().await, Some(2));
    assert_eq!(rx.recv().await, Some(1));
    slow.await.unwrap();
    fast.await.unwrap();
}

/// 10 000 requests in flight on one connection, completing in shuffled order.
pub async fn ten_thousand_in_flight<B: Backend>(b: &B, _child: &str) {
    let (_st, srv) = serve(b, "server").await;
    let conn = client(b, &srv.local_addr()).await;
    let mut calls = FuturesUnordered::new();
    for i in 0..10_000u64 {
        let conn = conn.clone();
        calls.push(async move {
            let delay = ((i * 7919) % 2000) as u32;
            let payload = Bytes::copy_from_slice(&i.to_le_bytes());
            let (reply, back) = conn.call(&echo(i, delay), payload).await?;
            Ok::<_, TransportError>((i, reply.tag, back))
        });
    }
    let mut seen = 0u64;
    let mut out_of_order = false;
    let mut last = None;
    while let Some(r) = calls.next().await {
        let (i, tag, back) = r.expect("call");
        assert_eq!(i, tag);
        assert_eq!(&back[..], &i.to_le_bytes());
        if last.is_some_and(|l| l > i) {
            out_of_order = true;
        }
        last = Some(i);
        seen += 1;
    }
    assert_eq!(seen, 10_000);
    assert!(out_of_order, "delays should have shuffled completions");
    assert_eq!(conn.pending_calls(), 0);
}

/// 16 MiB payloads both ways.
pub async fn large_payloads<B: Backend>(b: &B, _child: &str) {
    let (_st, srv) = serve(b, "server").await;
    let conn = client(b, &srv.local_addr()).await;
    let big: Bytes = (0..16 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into();
    let (a, b2) = futures::join!(
        conn.call(&echo(1, 0), big.clone()),
        conn.call(&echo(2, 0), big.slice(1..))
    );
    let (ra, pa) = a.unwrap();
    let (rb, pb) = b2.unwrap();
    assert_eq!((ra.tag, rb.tag), (1, 2));
    assert!(pa == big, "16 MiB payload came back different");
    assert!(pb == big.slice(1..), "payload came back different");
}

/// Deadlines are enforced; a dropped call forgets its entry; late replies are discarded.
pub async fn deadlines_and_dropped_calls<B: Backend>(b: &B, _child: &str) {
    let (_st, srv) = serve(b, "server").await;
    let conn = client(b, &srv.local_addr()).await;
    let start = Instant::now();
    let r = conn
        .call_with_deadline(
            &echo(1, 1_500_000),
            Bytes::new(),
            Instant::now() + Duration::from_millis(100),
        )
        .await;
    match r {
        Err(e @ TransportError::Timeout { .. }) => assert!(e.is_retryable()),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_millis(1_400));
    assert_eq!(conn.pending_calls(), 0);
    // a dropped call future
    let call = conn.call(&echo(2, 300_000), Bytes::new());
    let dropped = tokio::time::timeout(Duration::from_millis(50), call).await;
    assert!(dropped.is_err());
    assert_eq!(conn.pending_calls(), 0);
    // the late replies arrive and are discarded; the connection keeps working
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(conn.call(&echo(3, 0), Bytes::new()).await.unwrap().0.tag, 3);
    assert_eq!(conn.pending_calls(), 0);
}

/// One-way messages reach the handler.
pub async fn one_way_messages<B: Backend>(b: &B, _child: &str) {
    let t = b.transport("server", options("server"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let srv = t
        .serve(&b.bind_addr(), echo_router(Some(tx)))
        .await
        .unwrap();
    let conn = client(b, &srv.local_addr()).await;
    for seq in 0..10 {
        conn.send_oneway(&Note { seq }, Bytes::new()).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 10 {
        let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("one-way message lost")
            .unwrap();
        got.push(n);
    }
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

/// A peer that dies mid-request fails the pending call promptly with a retryable error.
pub async fn peer_killed_mid_request<B: Backend>(b: &B, child: &str) {
    let victim = b.spawn_killable_server(child).await;
    let conn = client(b, &victim.addr).await;
    assert_eq!(conn.call(&echo(1, 0), Bytes::new()).await.unwrap().0.tag, 1);
    let pending = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.call(&echo(2, 10_000_000), Bytes::new()).await })
    };
    assert!(wait_until(Duration::from_secs(5), || conn.pending_calls() == 1).await);
    let killed_at = Instant::now();
    victim.kill();
    let r = tokio::time::timeout(Duration::from_secs(8), pending)
        .await
        .expect("call hung after the peer died")
        .unwrap();
    match r {
        Err(e) => assert!(e.is_retryable(), "{e:?}"),
        Ok(_) => panic!("a killed peer answered"),
    }
    assert!(killed_at.elapsed() < Duration::from_secs(8));
    assert!(wait_until(Duration::from_secs(5), || conn.is_closed()).await);
    let again = conn.call(&echo(3, 0), Bytes::new()).await;
    assert!(
        matches!(again, Err(TransportError::PeerGone { .. })),
        "{again:?}"
    );
}

/// A dialler of another protocol version gets a typed error; the server keeps serving.
pub async fn version_mismatch<B: Backend>(b: &B, _child: &str) {
    let (st, srv) = serve(b, "server").await;
    let odd = b.transport("odd", options("odd").protocol_version(99));
    match odd.connect(&srv.local_addr()).await {
        Err(TransportError::VersionMismatch { ours, theirs }) => {
            assert_eq!(ours, 99);
            assert_eq!(theirs, basalt_proto::PROTOCOL_VERSION);
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    assert!(st.metrics().hello_refused() >= 1);
    let conn = client(b, &srv.local_addr()).await;
    assert_eq!(conn.call(&echo(1, 0), Bytes::new()).await.unwrap().0.tag, 1);
}

/// A server's graceful shutdown lets in-flight requests finish, then closes.
pub async fn graceful_shutdown<B: Backend>(b: &B, _child: &str) {
    let (_st, srv) = serve(b, "server").await;
    let addr = srv.local_addr();
    let conn = client(b, &addr).await;
    let inflight = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.call(&echo(1, 200_000), Bytes::new()).await })
    };
    assert!(wait_until(Duration::from_secs(5), || conn.pending_calls() == 1).await);
    // give the request time to reach its handler
    tokio::time::sleep(Duration::from_millis(50)).await;
    srv.shutdown().await;
    let r = inflight.await.unwrap();
    assert_eq!(r.unwrap().0.tag, 1, "in-flight request was cut off");
    assert!(wait_until(Duration::from_secs(5), || conn.is_closed()).await);
    let t = b.transport("late", options("late"));
    assert!(t.connect(&addr).await.is_err());
}

/// The pool reuses one connection per peer and re-dials after a failure.
pub async fn pool_reconnects<B: Backend>(b: &B, _child: &str) {
    let (_st, srv) = serve(b, "server").await;
    let addr = srv.local_addr();
    let pool = ConnectionPool::new(b.transport("pooler", options("pooler")));
    let c1 = pool.get(&addr).await.unwrap();
    let c2 = pool.get(&addr).await.unwrap();
    assert_eq!(c1.id(), c2.id());
    let (r, _) = pool.call(&addr, &echo(5, 0), Bytes::new()).await.unwrap();
    assert_eq!(r.tag, 5);
    c1.close();
    let c3 = pool.get(&addr).await.unwrap();
    assert_ne!(c3.id(), c1.id());
    assert!(!c3.is_closed());
    assert_eq!(pool.connected(), vec![addr]);
}

/// Process RSS stays roughly flat across ten times more requests (payloads would show).
pub async fn rss_stays_flat<B: Backend>(b: &B, _child: &str) {
    let (_st, srv) = serve(b, "server").await;
    let conn = client(b, &srv.local_addr()).await;
    let payload = Bytes::from(vec![0x5a; 16 * 1024]);
    let run = |n: usize| {
        let conn = conn.clone();
        let payload = payload.clone();
        async move {
            for chunk in 0..n / 100 {
                let mut batch = FuturesUnordered::new();
                for i in 0..100 {
                    batch.push(conn.call(&echo((chunk * 100 + i) as u64, 0), payload.clone()));
                }
                while let Some(r) = batch.next().await {
                    r.expect("call");
                }
            }
        }
    };
    run(1_000).await;
    let before = rss_bytes();
    run(10_000).await;
    let after = rss_bytes();
    // 10 000 leaked request+reply payloads would be ~320 MiB
    let bound = 64 * 1024 * 1024;
    assert!(
        after <= before + bound,
        "RSS grew from {before} to {after} bytes over 10 000 requests"
    );
    assert_eq!(conn.pending_calls(), 0);
}

/// Resident set size of this process.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm resident field");
    pages * 4096
}

// ----------------------------------------------------------------- raw socket cases

async fn expect_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept a bad connection open");
}

fn hello_frame(version: u16) -> Vec<u8> {
    let hello = Hello {
        version,
        features: Features::empty(),
        identity: identity("raw"),
        ucx: None,
    };
    let head = codec::encode(&hello).unwrap();
    let mut h = FrameHeader::new(FrameKind::Request, Method::Hello as u16, 0, GroupId::NONE);
    h.version = version;
    h.header_len = head.len() as u32;
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&head);
    out
}

async fn read_raw_frame(s: &mut TcpStream) -> (FrameHeader, Vec<u8>) {
    let mut fixed = [0u8; FRAME_HEADER_LEN];
    s.read_exact(&mut fixed).await.unwrap();
    let h = FrameHeader::decode(&fixed, &Limits::DEFAULT).unwrap();
    let mut head = vec![0u8; h.header_len as usize];
    s.read_exact(&mut head).await.unwrap();
    let mut payload = vec![0u8; h.payload_len as usize];
    s.read_exact(&mut payload).await.unwrap();
    (h, head)
}

/// Garbage, truncated frames, oversized lengths and bad checksums close the connection
/// (counted); the server keeps serving new clients. Skipped for non-TCP backends.
pub async fn bad_frames_close_the_connection<B: Backend>(b: &B, _child: &str) {
    let (st, srv) = serve(b, "server").await;
    let Some(raw) = b.raw_tcp(&srv.local_addr()) else {
        return;
    };
    let metrics = st.metrics().clone();
    let mut expected_bad = 0;
    let bad_grew = |expected: u64| {
        let m = metrics.clone();
        async move {
            assert!(
                wait_until(Duration::from_secs(5), || m.bad_frames() >= expected).await,
                "bad frame not counted"
            );
        }
    };

    // garbage instead of a hello
    let mut s = TcpStream::connect(raw).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
        .await
        .unwrap();
    expect_closed(&mut s).await;
    expected_bad += 1;
    bad_grew(expected_bad).await;

    // a truncated hello: the header announces more than arrives before EOF
    let mut s = TcpStream::connect(raw).await.unwrap();
    let hello = hello_frame(basalt_proto::PROTOCOL_VERSION);
    s.write_all(&hello[..hello.len() - 3]).await.unwrap();
    s.shutdown().await.unwrap();
    expect_closed(&mut s).await;
    expected_bad += 1;
    bad_grew(expected_bad).await;

    // oversized length fields: refused from the header alone
    for (header_len, payload_len) in [(u32::MAX, 0), (0, u32::MAX)] {
        let mut s = TcpStream::connect(raw).await.unwrap();
        let mut h = FrameHeader::new(FrameKind::Request, Method::Hello as u16, 0, GroupId::NONE);
        h.header_len = header_len;
        h.payload_len = payload_len;
        s.write_all(&h.encode()).await.unwrap();
        expect_closed(&mut s).await;
        expected_bad += 1;
        bad_grew(expected_bad).await;
    }

    // a bad checksum after a valid hello
    let mut s = TcpStream::connect(raw).await.unwrap();
    s.write_all(&hello_frame(basalt_proto::PROTOCOL_VERSION))
        .await
        .unwrap();
    let (h, head) = read_raw_frame(&mut s).await;
    assert_eq!(h.kind, FrameKind::Response);
    let reply: HelloReply = codec::decode(&head).unwrap();
    assert!(matches!(reply, HelloReply::Accepted { .. }), "{reply:?}");
    let mut bad =
        FrameHeader::new(FrameKind::Request, Method::Echo as u16, 5, GroupId::NONE).encode();
    bad[37] ^= 0x40;
    s.write_all(&bad).await.unwrap();
    expect_closed(&mut s).await;
    expected_bad += 1;
    bad_grew(expected_bad).await;

    // a raw hello of another version is answered with a typed refusal
    let mut s = TcpStream::connect(raw).await.unwrap();
    s.write_all(&hello_frame(99)).await.unwrap();
    let (_, head) = read_raw_frame(&mut s).await;
    let reply: HelloReply = codec::decode(&head).unwrap();
    assert!(
        matches!(
            reply,
            HelloReply::Refused(basalt_proto::hello::HelloRefusal::VersionMismatch {
                theirs: 99,
                ..
            })
        ),
        "{reply:?}"
    );
    expect_closed(&mut s).await;

    // the server still serves
    let conn = client(b, &srv.local_addr()).await;
    assert_eq!(conn.call(&echo(1, 0), Bytes::new()).await.unwrap().0.tag, 1);
}

// ----------------------------------------------------------------- backends

static NEXT_NAME: AtomicU64 = AtomicU64::new(1);

/// TCP on loopback, optionally with a fast-path provider.
#[derive(Clone)]
pub struct TcpBackend {
    fast_path: Option<Arc<dyn FastPathProvider>>,
    expected: PathKind,
    mode: FastPathMode,
    secret: Option<crate::ClusterSecret>,
}

impl TcpBackend {
    /// Plain TCP.
    pub fn plain() -> Self {
        TcpBackend {
            fast_path: None,
            expected: PathKind::Tcp,
            mode: FastPathMode::Off,
            secret: None,
        }
    }

    /// Plain TCP with every endpoint authenticating with `secret`. The raw-socket cases
    /// are skipped (they send unauthenticated hellos; `tests/auth.rs` covers raw sockets
    /// against an authenticating server).
    pub fn with_auth(secret: crate::ClusterSecret) -> Self {
        TcpBackend {
            secret: Some(secret),
            ..Self::plain()
        }
    }

    /// TCP with `provider` in `force` mode; connections are expected on `expected`.
    pub fn with_fast_path(provider: Arc<dyn FastPathProvider>, expected: PathKind) -> Self {
        TcpBackend {
            fast_path: Some(provider),
            expected,
            mode: FastPathMode::Force,
            secret: None,
        }
    }
}

impl Backend for TcpBackend {
    type T = crate::TcpTransport;

    fn transport(&self, _node: &str, opts: TransportOptions) -> crate::TcpTransport {
        let mut config = opts.config.clone();
        config.fast_path = self.mode;
        let mut opts = opts.config(config);
        if let Some(p) = &self.fast_path {
            opts = opts.fast_path(p.clone());
        }
        if let Some(s) = &self.secret {
            opts = opts.cluster_secret(s.clone());
        }
        crate::TcpTransport::new(opts).expect("tcp transport")
    }

    fn bind_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    fn expected_path(&self) -> PathKind {
        self.expected
    }

    fn raw_tcp(&self, addr: &SocketAddr) -> Option<SocketAddr> {
        self.secret.is_none().then_some(*addr)
    }

    fn spawn_killable_server(&self, child_test: &str) -> BoxFuture<'_, KillableServer<SocketAddr>> {
        let child_test = child_test.to_string();
        async move { spawn_child_process(&child_test).await }.boxed()
    }
}

/// The in-memory transport, optionally with a fast-path provider.
#[derive(Clone)]
pub struct MemBackend {
    net: MemNetwork,
    fast_path: Option<Arc<dyn FastPathProvider>>,
    expected: PathKind,
}

impl MemBackend {
    /// A fresh network without fast path.
    pub fn plain() -> Self {
        MemBackend {
            net: MemNetwork::new(),
            fast_path: None,
            expected: PathKind::Mem,
        }
    }

    /// A fresh network whose endpoints use `provider` (forced).
    pub fn with_fast_path(provider: Arc<dyn FastPathProvider>, expected: PathKind) -> Self {
        MemBackend {
            net: MemNetwork::new(),
            fast_path: Some(provider),
            expected,
        }
    }
}

impl Backend for MemBackend {
    type T = crate::MemTransport;

    fn transport(&self, node: &str, opts: TransportOptions) -> crate::MemTransport {
        let mut config = opts.config.clone();
        let mut opts = opts;
        config.fast_path = FastPathMode::Off;
        if let Some(p) = &self.fast_path {
            config.fast_path = FastPathMode::Force;
            opts = opts.fast_path(p.clone());
        }
        let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
        self.net
            .endpoint(&format!("{node}-{n}"), opts.config(config))
            .expect("mem endpoint")
    }

    fn bind_addr(&self) -> String {
        format!("srv-{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed))
    }

    fn expected_path(&self) -> PathKind {
        self.expected
    }

    fn raw_tcp(&self, _addr: &String) -> Option<SocketAddr> {
        None
    }

    fn spawn_killable_server(&self, _child_test: &str) -> BoxFuture<'_, KillableServer<String>> {
        async move {
            let t = self.transport("victim", options("victim"));
            let node = t.node().to_string();
            let addr = self.bind_addr();
            let srv = t.serve(&addr, echo_router(None)).await.expect("serve");
            let net = self.net.clone();
            KillableServer::new(
                addr,
                Box::new(move || {
                    net.kill(&node);
                    drop(srv);
                }),
            )
        }
        .boxed()
    }
}

// ----------------------------------------------------------------- child process

/// Start this test binary again as an echo server (see the module docs) and wait for its
/// address. Killing sends SIGKILL.
pub async fn spawn_child_process<A>(child_test: &str) -> KillableServer<A>
where
    A: std::str::FromStr + Send + 'static,
    A::Err: std::fmt::Debug,
{
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = std::process::Command::new(exe)
        .args([child_test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let line = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            lines.find_map(|l| {
                // libtest prints "test <name> ... " on the same line first
                l.ok()?
                    .split_once(CHILD_ADDR_PREFIX)
                    .map(|(_, a)| a.to_string())
            })
        }),
    )
    .await;
    let addr = match line {
        Ok(Ok(Some(a))) => a,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child server did not announce its address: {other:?}");
        }
    };
    let addr: A = addr.trim().parse().expect("child address");
    KillableServer::new(
        addr,
        Box::new(move || {
            // std's kill sends SIGKILL
            let _ = child.kill();
            let _ = child.wait();
        }),
    )
}

/// Body of the generated child entry test: when [`CHILD_ENV`] is set, serve the echo
/// router with `backend` and print the address; the parent kills the process. Without
/// the variable it returns at once.
pub fn child_entry<B: Backend>(make: impl FnOnce() -> B) {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let b = make();
        let t = b.transport("child", options("child"));
        let srv = t
            .serve(&b.bind_addr(), echo_router(None))
            .await
            .expect("child serve");
        println!("{CHILD_ADDR_PREFIX}{}", srv.local_addr());
        // the parent kills us; never outlive it by much if it does not
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(srv);
    });
    std::process::exit(0);
}

/// Full test name of the child entry generated in module `module_path` (as given by
/// `module_path!()` inside the test crate).
pub fn child_test_name(module_path: &str) -> String {
    match module_path.split_once("::") {
        Some((_, rest)) => format!("{rest}::conformance_child_process_entry"),
        None => "conformance_child_process_entry".to_string(),
    }
}

/// Expand every conformance case into a `#[tokio::test]` for the backend built by
/// `$backend` (evaluated once per test, and once in the child process).
#[macro_export]
macro_rules! conformance_suite {
    ($backend:expr) => {
        $crate::conformance_suite!(@cases $backend;
            echo_round_trip,
            out_of_order_replies,
            ten_thousand_in_flight,
            large_payloads,
            deadlines_and_dropped_calls,
            one_way_messages,
            peer_killed_mid_request,
            version_mismatch,
            graceful_shutdown,
            pool_reconnects,
            rss_stays_flat,
            bad_frames_close_the_connection,
        );

        /// Not a test: the entry point of the child server process of
        /// `peer_killed_mid_request` (returns at once unless re-executed as the child).
        #[test]
        fn conformance_child_process_entry() {
            $crate::testing::conformance::child_entry(|| $backend);
        }
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $backend;
                let child = $crate::testing::conformance::child_test_name(module_path!());
                ::tokio::time::timeout(
                    $crate::testing::conformance::CASE_TIMEOUT,
                    $crate::testing::conformance::$case(&backend, &child),
                )
                .await
                .expect(concat!(stringify!($case), " timed out"));
            }
        )*
    };
}
