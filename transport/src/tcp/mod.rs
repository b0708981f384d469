//! The TCP transport (tokio): every connection starts here and falls back here.
//!
//! Per connection: a reader task (bounded frame reads, dispatch) and a writer task that
//! drains the bounded send queue into vectored writes, coalescing whatever is queued.

mod framing;
/// Entry points for the fuzz targets in `fuzz/` (not API).
#[doc(hidden)]
pub mod fuzzing;

use crate::config::TransportOptions;
use crate::conn::{BaseTx, ConnInner, ConnParts, Connection, Endpoint, Side};
use crate::error::TransportError;
use crate::fastpath::RawFrame;
use crate::handshake::{self, FrameIo};
use crate::metrics::TransportMetrics;
use crate::path::PathKind;
use crate::router::Router;
use crate::server::{ServerHandle, ServerShared};
use crate::transport::Transport;
use basalt_proto::Limits;
use framing::{read_frame, ReadError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Read buffer per connection.
const READ_BUFFER: usize = 64 * 1024;

/// The TCP transport of a process. Cheap to clone.
#[derive(Clone)]
pub struct TcpTransport {
    ep: Arc<Endpoint>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("options", &self.ep.opts)
            .finish()
    }
}

struct HandshakeIo<'a> {
    stream: &'a mut TcpStream,
    limits: Limits,
    metrics: &'a TransportMetrics,
    peer: SocketAddr,
}

impl FrameIo for HandshakeIo<'_> {
    async fn send(&mut self, frame: RawFrame) -> Result<(), TransportError> {
        framing::write_frame(self.stream, frame)
            .await
            .map_err(|e| TransportError::peer_gone(format!("hello write failed: {e}")))
    }

    async fn recv(&mut self) -> Result<RawFrame, TransportError> {
        // unbuffered: nothing past the hello may be consumed before the reader task exists
        match read_frame(self.stream, &self.limits).await {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(TransportError::peer_gone("closed during the hello")),
            Err(ReadError::Io(e)) => {
                Err(TransportError::peer_gone(format!("hello read failed: {e}")))
            }
            Err(ReadError::Bad(e)) => {
                bad_frame(self.metrics, &self.peer.to_string(), &e);
                Err(TransportError::Proto(e))
            }
        }
    }
}

fn bad_frame(metrics: &TransportMetrics, peer: &str, e: &basalt_proto::ProtoError) {
    metrics.bad_frames.inc();
    tracing::warn!(peer, error = %e, "closing connection: bad frame");
}

impl TcpTransport {
    /// A transport with these options (validated here).
    pub fn new(opts: TransportOptions) -> Result<Self, TransportError> {
        Ok(TcpTransport {
            ep: Endpoint::new(opts)?,
        })
    }

    /// The counters of this transport.
    pub fn metrics(&self) -> &TransportMetrics {
        &self.ep.opts.metrics
    }

    /// Dial `addr`, exchange the hello, try the fast path (bounded by the fast-path
    /// connect and ping timeouts). Requests the peer might send on this connection are
    /// answered `NoHandler`.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Connection, TransportError> {
        let ep = self.ep.clone();
        let hello_timeout = ep.opts.config.hello_timeout();
        let dial = async {
            let mut stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => TransportError::Unreachable {
                    addr: addr.to_string(),
                },
                _ => TransportError::io("connect", &e),
            })?;
            stream
                .set_nodelay(true)
                .map_err(|e| TransportError::io("set TCP_NODELAY", &e))?;
            set_keepalive(&stream, ep.opts.config.tcp_keepalive())
                .map_err(|e| TransportError::io("set TCP keepalive", &e))?;
            let mut io = HandshakeIo {
                stream: &mut stream,
                limits: ep.opts.config.limits(),
                metrics: &ep.opts.metrics,
                peer: addr,
            };
            let negotiated = handshake::dial(&ep, &mut io).await?;
            Ok::<_, TransportError>((stream, negotiated))
        };
        let (stream, negotiated) =
            tokio::time::timeout(hello_timeout, dial)
                .await
                .map_err(|_| TransportError::Timeout {
                    elapsed_ms: hello_timeout.as_millis() as u64,
                })??;
        let inner = start_connection(&ep, stream, addr, Side::Dialler, negotiated, None, None);
        // the handle first: if this future is dropped during the upgrade, the
        // connection closes instead of lingering without an owner
        let conn = Connection::new(inner.clone());
        inner.upgrade().await;
        Ok(conn)
    }

    /// Bind `addr` and serve `router` on it.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        router: Router,
    ) -> Result<ServerHandle<SocketAddr>, TransportError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| TransportError::io("bind", &e))?;
        self.serve_listener(listener, router)
    }

    /// Serve `router` on an already bound listener.
    pub fn serve_listener(
        &self,
        listener: TcpListener,
        router: Router,
    ) -> Result<ServerHandle<SocketAddr>, TransportError> {
        let local = listener
            .local_addr()
            .map_err(|e| TransportError::io("local_addr", &e))?;
        let shared = ServerShared::new();
        let router = Arc::new(router);
        let ep = self.ep.clone();
        let task_shared = shared.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        // EMFILE and friends: transient, back off instead of spinning
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let ep = ep.clone();
                let router = router.clone();
                let shared = task_shared.clone();
                tokio::spawn(async move {
                    accept_one(ep, stream, peer, router, shared).await;
                });
            }
        });
        Ok(ServerHandle::new(
            local,
            shared,
            accept_task,
            None,
            self.ep.opts.config.shutdown_grace(),
        ))
    }
}

async fn accept_one(
    ep: Arc<Endpoint>,
    mut stream: TcpStream,
    peer: SocketAddr,
    router: Arc<Router>,
    shared: Arc<ServerShared>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set TCP_NODELAY failed");
    }
    if let Err(e) = set_keepalive(&stream, ep.opts.config.tcp_keepalive()) {
        tracing::debug!(%peer, error = %e, "set TCP keepalive failed");
    }
    let hello_timeout = ep.opts.config.hello_timeout();
    let mut io = HandshakeIo {
        stream: &mut stream,
        limits: ep.opts.config.limits(),
        metrics: &ep.opts.metrics,
        peer,
    };
    let negotiated =
        match tokio::time::timeout(hello_timeout, handshake::accept(&ep, &mut io)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "hello failed, closing");
                let _ = stream.shutdown().await;
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no hello in time, closing");
                return;
            }
        };
    let inner = start_connection(
        &ep,
        stream,
        peer,
        Side::Acceptor,
        negotiated,
        Some(router),
        Some(shared),
    );
    let task = tokio::spawn(inner.clone().upgrade());
    inner.add_task(task);
}

/// Probe a quiet connection after `idle` (then every 10 s, 3 probes): a peer host that
/// vanished without a FIN or RST is noticed. `None` leaves keepalive off.
fn set_keepalive(stream: &TcpStream, idle: Option<Duration>) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(stream);
    match idle {
        None => sock.set_keepalive(false),
        Some(idle) => sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(Duration::from_secs(10))
                .with_retries(3),
        ),
    }
}

fn start_connection(
    ep: &Arc<Endpoint>,
    stream: TcpStream,
    peer: SocketAddr,
    side: Side,
    negotiated: handshake::Negotiated,
    router: Option<Arc<Router>>,
    server: Option<Arc<ServerShared>>,
) -> Arc<ConnInner> {
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(ep.opts.config.send_queue_frames);
    let inner = ConnInner::new(ConnParts {
        ep: ep.clone(),
        side,
        base_kind: PathKind::Tcp,
        base: BaseTx::Tcp(tx),
        peer: negotiated.peer,
        peer_addr: peer.to_string(),
        features: negotiated.features,
        router,
        server,
        fast: negotiated.fast,
    });
    let limits = ep.opts.config.limits();
    inner.add_task(tokio::spawn(reader_loop(inner.clone(), rd, limits)));
    if let Some(idle) = ep.opts.config.idle_timeout() {
        inner.add_task(tokio::spawn(inner.clone().idle_watchdog(idle)));
    }
    inner.set_writer(tokio::spawn(writer_loop(inner.clone(), wr, rx)));
    inner
}

async fn reader_loop(inner: Arc<ConnInner>, rd: OwnedReadHalf, limits: Limits) {
    let mut rd = BufReader::with_capacity(READ_BUFFER, rd);
    loop {
        match read_frame(&mut rd, &limits).await {
            Ok(Some(frame)) => {
                inner.on_inbound(frame, PathKind::Tcp).await;
                if inner.is_closed() {
                    return;
                }
            }
            Ok(None) => {
                inner.close("peer closed the connection");
                return;
            }
            Err(ReadError::Io(e)) => {
                inner.close(&format!("read failed: {e}"));
                return;
            }
            Err(ReadError::Bad(e)) => {
                bad_frame(inner.metrics(), &inner.peer_addr, &e);
                inner.close(&format!("bad frame: {e}"));
                return;
            }
        }
    }
}

async fn writer_loop(
    inner: Arc<ConnInner>,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<RawFrame>,
) {
    let mut batch: Vec<RawFrame> = Vec::with_capacity(framing::MAX_BATCH_FRAMES);
    loop {
        if !next_batch(&mut rx, &mut batch).await {
            let _ = wr.shutdown().await;
            return;
        }
        inner.metrics().write_batches.inc();
        if let Err(e) = framing::write_frames(&mut wr, &batch).await {
            inner.close(&format!("write failed: {e}"));
            return;
        }
        batch.clear();
    }
}

/// Wait for one frame, then take whatever else is queued (up to the batch limits) so
/// it goes out in the same vectored write. False when the queue is closed and empty.
async fn next_batch(rx: &mut mpsc::Receiver<RawFrame>, batch: &mut Vec<RawFrame>) -> bool {
    let Some(first) = rx.recv().await else {
        return false;
    };
    let mut bytes = first.head.len() + first.payload.len();
    batch.push(first);
    while batch.len() < framing::MAX_BATCH_FRAMES && bytes < framing::MAX_BATCH_BYTES {
        match rx.try_recv() {
            Ok(f) => {
                bytes += f.head.len() + f.payload.len();
                batch.push(f);
            }
            Err(_) => break,
        }
    }
    true
}

impl Transport for TcpTransport {
    type Addr = SocketAddr;

    async fn connect(&self, addr: &SocketAddr) -> Result<Connection, TransportError> {
        TcpTransport::connect(self, *addr).await
    }

    async fn serve(
        &self,
        addr: &SocketAddr,
        router: Router,
    ) -> Result<ServerHandle<SocketAddr>, TransportError> {
        TcpTransport::serve(self, *addr, router).await
    }

    fn metrics(&self) -> &TransportMetrics {
        TcpTransport::metrics(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::GroupId;
    use basalt_proto::{FrameHeader, FrameKind};
    use bytes::Bytes;

    fn frame(payload: usize) -> RawFrame {
        let mut header = FrameHeader::new(FrameKind::OneWay, 3, 0, GroupId::NONE);
        header.payload_len = payload as u32;
        RawFrame {
            header,
            head: Bytes::new(),
            payload: Bytes::from(vec![0; payload]),
        }
    }

    #[tokio::test]
    async fn keepalive_is_set_as_configured() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        set_keepalive(&stream, Some(Duration::from_secs(31))).unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(31));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
        set_keepalive(&stream, None).unwrap();
        assert!(!sock.keepalive().unwrap());
        // the default configuration turns it on
        assert_eq!(
            crate::TransportConfig::default().tcp_keepalive(),
            Some(Duration::from_secs(30))
        );
    }

    #[tokio::test]
    async fn queued_frames_coalesce_into_bounded_batches() {
        let (tx, mut rx) = mpsc::channel(1024);
        for _ in 0..300 {
            tx.send(frame(10)).await.unwrap();
        }
        let mut batch = Vec::new();
        assert!(next_batch(&mut rx, &mut batch).await);
        assert_eq!(batch.len(), framing::MAX_BATCH_FRAMES);
        batch.clear();
        assert!(next_batch(&mut rx, &mut batch).await);
        assert_eq!(batch.len(), 300 - framing::MAX_BATCH_FRAMES);
        batch.clear();
        // by bytes: 3 MiB frames, the batch closes once it holds 4 MiB or more
        for _ in 0..3 {
            tx.send(frame(3 << 20)).await.unwrap();
        }
        assert!(next_batch(&mut rx, &mut batch).await);
        assert_eq!(batch.len(), 2);
        batch.clear();
        assert!(next_batch(&mut rx, &mut batch).await);
        assert_eq!(batch.len(), 1);
        batch.clear();
        drop(tx);
        assert!(!next_batch(&mut rx, &mut batch).await);
    }
}
