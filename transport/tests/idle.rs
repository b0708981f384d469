//! The idle timeout: a peer that goes silent, or stalls in the middle of a frame, loses
//! its connection; a connection waiting on a slow handler or carrying traffic does not.

use basalt_proto::hello::{Echo, Features, Hello, HelloReply, Identity, Role};
use basalt_proto::ids::GroupId;
use basalt_proto::{codec, FrameHeader, FrameKind, Limits, Method, FRAME_HEADER_LEN};
use basalt_transport::{Router, TcpTransport, TransportConfig, TransportOptions};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOUND: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_millis(500);

fn opts(name: &str, idle: Duration) -> TransportOptions {
    TransportOptions::new(Identity {
        role: Role::Tool,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    })
    .config(TransportConfig {
        idle_timeout_ms: idle.as_millis() as u64,
        ..TransportConfig::default()
    })
}

async fn server() -> (TcpTransport, basalt_transport::ServerHandle<SocketAddr>) {
    let t = TcpTransport::new(opts("server", IDLE)).unwrap();
    let srv = t
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)), Router::new().echo())
        .await
        .unwrap();
    (t, srv)
}

fn hello_frame() -> Vec<u8> {
    let hello = Hello {
        version: basalt_proto::PROTOCOL_VERSION,
        features: Features::empty(),
        identity: Identity {
            role: Role::Tool,
            chunkserver: None,
            name: "raw".into(),
            cluster: String::new(),
        },
        ucx: None,
    };
    let head = codec::encode(&hello).unwrap();
    let mut h = FrameHeader::new(FrameKind::Request, Method::Hello as u16, 0, GroupId::NONE);
    h.header_len = head.len() as u32;
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&head);
    out
}

/// Seconds until the server closes `s` (panics after 5 s).
async fn time_to_close(s: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the server kept an idle connection open");
    start.elapsed()
}

#[tokio::test]
async fn a_peer_stalled_mid_frame_is_disconnected() {
    tokio::time::timeout(BOUND, async {
        let (st, srv) = server().await;
        let mut s = TcpStream::connect(srv.local_addr()).await.unwrap();
        s.write_all(&hello_frame()).await.unwrap();
        let mut fixed = [0u8; FRAME_HEADER_LEN];
        s.read_exact(&mut fixed).await.unwrap();
        let h = FrameHeader::decode(&fixed, &Limits::DEFAULT).unwrap();
        let mut head = vec![0u8; h.header_len as usize];
        s.read_exact(&mut head).await.unwrap();
        assert!(matches!(
            codec::decode::<HelloReply>(&head).unwrap(),
            HelloReply::Accepted { .. }
        ));
        // half a request header, then silence
        let req = FrameHeader::new(FrameKind::Request, Method::Echo as u16, 1, GroupId::NONE);
        s.write_all(&req.encode()[..20]).await.unwrap();
        let waited = time_to_close(&mut s).await;
        assert!(
            waited >= IDLE / 2,
            "closed before the idle timeout: {waited:?}"
        );
        let m = st.metrics().clone();
        let deadline = Instant::now() + Duration::from_secs(5);
        while m.connections_open() != 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(m.connections_open(), 0);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn busy_connections_and_slow_handlers_stay_open() {
    tokio::time::timeout(BOUND, async {
        let (_st, srv) = server().await;
        // the client has an idle timeout too: a pending call keeps its side open
        let c = TcpTransport::new(opts("client", IDLE)).unwrap();
        let conn = c.connect(srv.local_addr()).await.unwrap();
        // a handler that takes three idle periods: neither side closes meanwhile
        let slow = Echo {
            tag: 1,
            delay_us: (IDLE * 3).as_micros() as u32,
        };
        let (reply, _) = conn.call(&slow, Bytes::new()).await.unwrap();
        assert_eq!(reply.tag, 1);
        // steady traffic at a fifth of the idle period, for three periods
        let start = Instant::now();
        let mut tag = 2;
        while start.elapsed() < IDLE * 3 {
            conn.call(&Echo { tag, delay_us: 0 }, Bytes::new())
                .await
                .unwrap();
            tag += 1;
            tokio::time::sleep(IDLE / 5).await;
        }
        assert!(!conn.is_closed());
        // then silence: the connection goes away by itself
        let deadline = Instant::now() + Duration::from_secs(5);
        while !conn.is_closed() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(conn.is_closed(), "an idle connection stayed open");
    })
    .await
    .unwrap();
}
