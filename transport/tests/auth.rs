//! Cluster authentication over real sockets: authenticated peers talk; clients and servers
//! without the secret or with another one are refused with typed errors before anything
//! is served; captured hellos replayed in either direction are refused; failures counted.

use basalt_proto::hello::{
    Echo, EchoReply, Features, HelloRefusal, HelloReply, HelloVerdict, Identity, Role,
};
use basalt_proto::{codec, FrameHeader, FrameKind, Limits, Method, FRAME_HEADER_LEN};
use basalt_transport::{
    AuthFailure, ClusterSecret, MemNetwork, Router, TcpTransport, TransportConfig, TransportError,
    TransportMetrics, TransportOptions,
};
use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(30);

fn id(role: Role, name: &str) -> Identity {
    Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: "prod".into(),
    }
}

fn secret(b: u8) -> ClusterSecret {
    ClusterSecret::from_bytes(vec![b; 32]).unwrap()
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// An echo router that counts how often its handler ran.
fn counting_router(calls: Arc<AtomicU64>) -> Router {
    Router::new().route::<Echo, _, _>(move |req, payload, _group, _cx| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { (EchoReply { tag: req.tag }, payload) }
    })
}

fn echo(tag: u64) -> Echo {
    Echo { tag, delay_us: 0 }
}

/// A server with `secret` (or none) serving the counting router.
async fn server(
    secret: Option<ClusterSecret>,
) -> (
    TcpTransport,
    basalt_transport::ServerHandle<SocketAddr>,
    Arc<AtomicU64>,
) {
    let mut opts = TransportOptions::new(id(Role::ChunkServer, "cs-1"));
    if let Some(s) = secret {
        opts = opts.cluster_secret(s);
    }
    let t = TcpTransport::new(opts).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let srv = t
        .serve(any_port(), counting_router(calls.clone()))
        .await
        .unwrap();
    (t, srv, calls)
}

fn client(secret: Option<ClusterSecret>) -> TcpTransport {
    let mut opts = TransportOptions::new(id(Role::Client, "client"));
    if let Some(s) = secret {
        opts = opts.cluster_secret(s);
    }
    TcpTransport::new(opts).unwrap()
}

async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

async fn read_frame(s: &mut TcpStream) -> Option<(FrameHeader, Vec<u8>, Vec<u8>)> {
    let mut fixed = [0u8; FRAME_HEADER_LEN];
    s.read_exact(&mut fixed).await.ok()?;
    let h = FrameHeader::decode(&fixed, &Limits::DEFAULT).unwrap();
    let mut head = vec![0u8; h.header_len as usize];
    s.read_exact(&mut head).await.ok()?;
    let mut payload = vec![0u8; h.payload_len as usize];
    s.read_exact(&mut payload).await.ok()?;
    Some((h, head, payload))
}

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
    assert!(
        closed.is_ok(),
        "server kept an unauthenticated connection open"
    );
}

#[tokio::test]
async fn authenticated_peers_connect_and_call() {
    tokio::time::timeout(BOUND, async {
        // the server turns auth on the way a daemon does: `auth-secret-file` in its config
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.secret");
        let s = ClusterSecret::generate();
        s.write_new(&path).unwrap();
        let metrics = TransportMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let opts = TransportOptions::new(id(Role::Mds, "mds-1"))
            .config(TransportConfig {
                auth_secret_file: Some(path.clone()),
                ..TransportConfig::default()
            })
            .metrics(metrics.clone());
        assert!(
            !opts.authenticates(),
            "the file is loaded when the transport is built"
        );
        let t = TcpTransport::new(opts).unwrap();
        let calls = Arc::new(AtomicU64::new(0));
        let srv = t
            .serve(any_port(), counting_router(calls.clone()))
            .await
            .unwrap();

        let c = client(Some(ClusterSecret::load(&path).unwrap()));
        let conn = c.connect(srv.local_addr()).await.unwrap();
        assert!(conn.features().contains(Features::AUTH));
        assert_eq!(conn.peer().name, "mds-1");
        let (reply, payload) = conn.call(&echo(9), Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(reply.tag, 9);
        assert_eq!(&payload[..], b"x");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // a second connection gets fresh nonces and works as well
        let conn2 = c.connect(srv.local_addr()).await.unwrap();
        conn2.call(&echo(10), Bytes::new()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(metrics.auth_failures(), 0);
        assert_eq!(c.metrics().auth_failures(), 0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("basalt_transport_auth_failures_total 0"),
            "{text}"
        );
        srv.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn clients_without_the_secret_are_refused_before_any_request() {
    tokio::time::timeout(BOUND, async {
        let (st, srv, calls) = server(Some(secret(1))).await;
        let addr = srv.local_addr();

        // no secret: the hello itself is refused
        match client(None).connect(addr).await {
            Err(e @ TransportError::Refused(HelloRefusal::AuthFailed)) => {
                assert!(!e.is_retryable())
            }
            other => panic!("expected Refused(AuthFailed), got {other:?}"),
        }
        assert_eq!(st.metrics().auth_failures(), 1);
        assert_eq!(st.metrics().hello_refused(), 1);

        // another secret: the client sees the server's proof fail and never proves
        // anything itself; the server counts the dialler that left without proving
        let wrong = client(Some(secret(2)));
        match wrong.connect(addr).await {
            Err(TransportError::PeerNotAuthenticated { peer, reason }) => {
                assert_eq!(peer, "cs-1");
                assert_eq!(reason, AuthFailure::BadProof);
            }
            other => panic!("expected PeerNotAuthenticated, got {other:?}"),
        }
        assert_eq!(wrong.metrics().auth_failures(), 1);
        let m = st.metrics().clone();
        assert!(wait_until(|| m.auth_failures() == 2).await);

        // a raw client pipelines requests right behind an unauthenticated hello: it
        // gets a typed refusal, the connection closes, and no request is served
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut bytes = raw_hello(Features::empty());
        bytes.extend_from_slice(&raw_echo(1, 77));
        bytes.extend_from_slice(&raw_echo(2, 78));
        s.write_all(&bytes).await.unwrap();
        let (h, head, _) = read_frame(&mut s).await.expect("a refusal");
        assert_eq!(h.method, Method::Hello as u16);
        assert_eq!(
            codec::decode::<HelloReply>(&head).unwrap(),
            HelloReply::Refused(HelloRefusal::AuthFailed)
        );
        expect_closed(&mut s).await;
        // claiming AUTH without a challenge is no better
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&raw_hello(Features::AUTH)).await.unwrap();
        let (_, head, _) = read_frame(&mut s).await.expect("a refusal");
        assert_eq!(
            codec::decode::<HelloReply>(&head).unwrap(),
            HelloReply::Refused(HelloRefusal::AuthFailed)
        );
        expect_closed(&mut s).await;
        assert_eq!(st.metrics().auth_failures(), 4);

        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "a handler ran unauthenticated"
        );
        assert_eq!(st.metrics().connections_accepted(), 0);
        // the right secret still gets in
        let ok = client(Some(secret(1)));
        ok.connect(addr)
            .await
            .unwrap()
            .call(&echo(3), Bytes::new())
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn clients_refuse_servers_without_the_secret() {
    tokio::time::timeout(BOUND, async {
        let c = client(Some(secret(1)));
        // a server with another secret
        let (_st, srv, calls) = server(Some(secret(3))).await;
        assert!(matches!(
            c.connect(srv.local_addr()).await,
            Err(TransportError::PeerNotAuthenticated {
                reason: AuthFailure::BadProof,
                ..
            })
        ));
        // a server that does not authenticate at all (an impostor accepting everyone)
        let (_st2, open, open_calls) = server(None).await;
        match c.connect(open.local_addr()).await {
            Err(e @ TransportError::PeerNotAuthenticated { .. }) => {
                assert!(!e.is_retryable());
                assert!(matches!(
                    e,
                    TransportError::PeerNotAuthenticated {
                        reason: AuthFailure::NotOffered,
                        ..
                    }
                ));
            }
            other => panic!("expected PeerNotAuthenticated, got {other:?}"),
        }
        assert_eq!(c.metrics().auth_failures(), 2);
        assert_eq!(c.metrics().connections_dialled(), 0);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(open_calls.load(Ordering::SeqCst), 0);
        // without secrets on either side nothing changes (auth is off)
        let plain = client(None);
        let conn = plain.connect(open.local_addr()).await.unwrap();
        assert!(!conn.features().contains(Features::AUTH));
        conn.call(&echo(1), Bytes::new()).await.unwrap();
    })
    .await
    .unwrap();
}

/// A TCP relay that records what each side sent.
struct Recorder {
    addr: SocketAddr,
    to_server: Arc<Mutex<Vec<u8>>>,
    to_client: Arc<Mutex<Vec<u8>>>,
}

async fn recorder(target: SocketAddr) -> Recorder {
    let listener = TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let to_server = Arc::new(Mutex::new(Vec::new()));
    let to_client = Arc::new(Mutex::new(Vec::new()));
    let (ts, tc) = (to_server.clone(), to_client.clone());
    tokio::spawn(async move {
        let (inbound, _) = listener.accept().await.unwrap();
        let outbound = TcpStream::connect(target).await.unwrap();
        let (ir, iw) = inbound.into_split();
        let (or, ow) = outbound.into_split();
        let pump = |mut r: tokio::net::tcp::OwnedReadHalf,
                    mut w: tokio::net::tcp::OwnedWriteHalf,
                    log: Arc<Mutex<Vec<u8>>>| async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        log.lock().extend_from_slice(&buf[..n]);
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = w.shutdown().await;
        };
        let a = tokio::spawn(pump(ir, ow, ts));
        let b = tokio::spawn(pump(or, iw, tc));
        let _ = (a.await, b.await);
    });
    Recorder {
        addr,
        to_server,
        to_client,
    }
}

#[tokio::test]
async fn replayed_hellos_are_refused_both_ways() {
    tokio::time::timeout(BOUND, async {
        let (st, srv, calls) = server(Some(secret(1))).await;
        let rec = recorder(srv.local_addr()).await;
        let c = client(Some(secret(1)));
        let conn = c.connect(rec.addr).await.unwrap();
        conn.call(&echo(5), Bytes::from_static(b"p")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(conn);
        let sent = rec.to_server.lock().clone();
        let answered = rec.to_client.lock().clone();
        assert!(!sent.is_empty() && !answered.is_empty());

        // the dialler's bytes (hello, proof, request) replayed on a fresh connection:
        // the server's fresh nonce makes the old proof worthless
        let mut s = TcpStream::connect(srv.local_addr()).await.unwrap();
        s.write_all(&sent).await.unwrap();
        let (h, head, _) = read_frame(&mut s).await.expect("the hello reply");
        assert_eq!(h.method, Method::Hello as u16);
        assert!(matches!(
            codec::decode::<HelloReply>(&head).unwrap(),
            HelloReply::Accepted { .. }
        ));
        let (h, head, _) = read_frame(&mut s).await.expect("the verdict");
        assert_eq!(h.method, Method::HelloProof as u16);
        assert_eq!(
            codec::decode::<HelloVerdict>(&head).unwrap(),
            HelloVerdict::Refused(HelloRefusal::AuthFailed)
        );
        expect_closed(&mut s).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the replayed request was served"
        );
        assert_eq!(st.metrics().auth_failures(), 1);

        // the acceptor's bytes replayed by an impostor server to a new dialler: the
        // dialler's fresh nonce makes the old proof worthless
        let impostor = TcpListener::bind(any_port()).await.unwrap();
        let impostor_addr = impostor.local_addr().unwrap();
        let replay = tokio::spawn(async move {
            let (mut s, _) = impostor.accept().await.unwrap();
            let _ = read_frame(&mut s).await; // the new dialler's hello
            let _ = s.write_all(&answered).await;
            // whatever the dialler sends next: it must not be a proof
            read_frame(&mut s).await.map(|(h, _, _)| h.method)
        });
        let fresh = client(Some(secret(1)));
        assert!(matches!(
            fresh.connect(impostor_addr).await,
            Err(TransportError::PeerNotAuthenticated {
                reason: AuthFailure::BadProof,
                ..
            })
        ));
        assert_eq!(
            replay.await.unwrap(),
            None,
            "the dialler kept talking to an impostor"
        );
        assert_eq!(fresh.metrics().auth_failures(), 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn in_memory_transport_authenticates_too() {
    tokio::time::timeout(BOUND, async {
        let net = MemNetwork::new();
        let calls = Arc::new(AtomicU64::new(0));
        let a = net
            .endpoint(
                "a",
                TransportOptions::new(id(Role::ChunkServer, "a")).cluster_secret(secret(1)),
            )
            .unwrap();
        let _srv = a.serve("a", counting_router(calls.clone())).await.unwrap();
        let b = net
            .endpoint(
                "b",
                TransportOptions::new(id(Role::Client, "b")).cluster_secret(secret(1)),
            )
            .unwrap();
        b.connect("a")
            .await
            .unwrap()
            .call(&echo(1), Bytes::new())
            .await
            .unwrap();
        let c = net
            .endpoint(
                "c",
                TransportOptions::new(id(Role::Client, "c")).cluster_secret(secret(2)),
            )
            .unwrap();
        assert!(matches!(
            c.connect("a").await,
            Err(TransportError::PeerNotAuthenticated { .. })
        ));
        let d = net
            .endpoint("d", TransportOptions::new(id(Role::Client, "d")))
            .unwrap();
        assert!(matches!(
            d.connect("a").await,
            Err(TransportError::Refused(HelloRefusal::AuthFailed))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    })
    .await
    .unwrap();
}

fn raw_frame(kind: FrameKind, method: Method, corr: u64, head: Vec<u8>) -> Vec<u8> {
    let mut h = FrameHeader::new(kind, method as u16, corr, basalt_proto::ids::GroupId::NONE);
    h.header_len = head.len() as u32;
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&head);
    out
}

fn raw_hello(features: Features) -> Vec<u8> {
    let hello = basalt_proto::hello::Hello {
        version: basalt_proto::PROTOCOL_VERSION,
        features,
        identity: id(Role::Client, "raw"),
        ucx: None,
    };
    raw_frame(
        FrameKind::Request,
        Method::Hello,
        0,
        codec::encode(&hello).unwrap(),
    )
}

fn raw_echo(corr: u64, tag: u64) -> Vec<u8> {
    raw_frame(
        FrameKind::Request,
        Method::Echo,
        corr,
        codec::encode(&echo(tag)).unwrap(),
    )
}
