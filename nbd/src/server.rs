//! The I/O shell: drives [`crate::handshake`] and [`crate::transmission`] over a socket.
//!
//! Per connection: the negotiation runs inline (bounded by a timeout, so an idle or slow
//! client cannot hold a slot forever); then a reader loop parses requests and starts each
//! as its own task (bounded by `max_inflight`, which back-pressures the client), and a
//! writer task sends replies in completion order — out of order with respect to requests,
//! keyed by the client's cookie.

use crate::device::{errno_of, BlockDevice};
use crate::error::NbdError;
use crate::handshake::{
    greeting, parse_option_header, BlockSizes, ExportInfo, Handshake, HandshakeConfig, Step,
    MAX_OPTION_DATA, MAX_SKIPPABLE_OPTION,
};
use crate::transmission::{
    block_status_reply, error_reply, parse_request, simple_reply, structured_read_header, validate,
    Command, Session, Verdict, REQUEST_LEN,
};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, Semaphore};

/// One export: its description and the device behind it.
#[derive(Clone)]
pub struct Export {
    /// Name, size, read-only, description.
    pub info: ExportInfo,
    /// The device.
    pub device: Arc<dyn BlockDevice>,
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Advertised block sizes (the maximum bounds write payloads).
    pub block_sizes: BlockSizes,
    /// Advertise CAN_MULTI_CONN.
    pub multi_conn: bool,
    /// Requests in flight per connection.
    pub max_inflight: usize,
    /// Time allowed for the whole negotiation.
    pub handshake_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            block_sizes: BlockSizes::default(),
            multi_conn: true,
            max_inflight: 128,
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

/// An NBD server for a fixed set of exports.
pub struct NbdServer {
    exports: Vec<Export>,
    cfg: ServerConfig,
}

impl NbdServer {
    /// A server for these exports.
    pub fn new(exports: Vec<Export>, cfg: ServerConfig) -> Arc<Self> {
        Arc::new(NbdServer { exports, cfg })
    }

    /// Names of the exports.
    pub fn export_names(&self) -> Vec<String> {
        self.exports.iter().map(|e| e.info.name.clone()).collect()
    }

    /// Accept TCP connections until the listener fails.
    pub async fn serve_tcp(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<()> {
        loop {
            let (stream, peer) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.handle(stream).await {
                    tracing::info!(%peer, error = %e, "nbd connection closed");
                }
            });
        }
    }

    /// Accept UNIX-socket connections until the listener fails.
    pub async fn serve_unix(
        self: Arc<Self>,
        listener: tokio::net::UnixListener,
    ) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.handle(stream).await {
                    tracing::info!(error = %e, "nbd connection closed");
                }
            });
        }
    }

    /// Serve one connection to the end.
    pub async fn handle<S>(&self, mut stream: S) -> Result<(), NbdError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let negotiated =
            match tokio::time::timeout(self.cfg.handshake_timeout, self.negotiate(&mut stream))
                .await
            {
                Ok(Ok(Some(n))) => n,
                Ok(Ok(None)) => return Ok(()), // client aborted cleanly
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(NbdError::Io("negotiation timed out".into())),
            };
        let export = self.exports[negotiated.export].clone();
        let session = Session::new(
            export.info.size,
            export.info.read_only,
            &negotiated,
            self.cfg.block_sizes,
        );
        self.transmit(stream, export.device, session).await
    }

    async fn negotiate<S>(
        &self,
        stream: &mut S,
    ) -> Result<Option<crate::handshake::Negotiated>, NbdError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut hs = Handshake::new(HandshakeConfig {
            exports: self.exports.iter().map(|e| e.info.clone()).collect(),
            block_sizes: self.cfg.block_sizes,
            multi_conn: self.cfg.multi_conn,
        });
        stream.write_all(&greeting()).await?;
        hs.client_flags(stream.read_u32().await?)?;
        loop {
            let mut h = [0u8; 16];
            stream.read_exact(&mut h).await?;
            let (option, len) = parse_option_header(&h)?;
            if len > MAX_OPTION_DATA {
                if len > MAX_SKIPPABLE_OPTION {
                    return Err(NbdError::OptionTooLarge { len });
                }
                skip(stream, len as u64).await?;
                stream.write_all(&hs.too_big(option)).await?;
                continue;
            }
            let mut data = vec![0u8; len as usize];
            stream.read_exact(&mut data).await?;
            match hs.option(option, &data) {
                Step::Reply(b) => stream.write_all(&b).await?,
                Step::Go(b, n) => {
                    stream.write_all(&b).await?;
                    stream.flush().await?;
                    return Ok(Some(n));
                }
                Step::Close(b, e) => {
                    stream.write_all(&b).await?;
                    stream.flush().await?;
                    return match e {
                        NbdError::Aborted => Ok(None),
                        e => Err(e),
                    };
                }
            }
        }
    }

    async fn transmit<S>(
        &self,
        stream: S,
        device: Arc<dyn BlockDevice>,
        session: Session,
    ) -> Result<(), NbdError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut rd, wr) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Bytes>>();
        let writer = tokio::spawn(async move {
            let mut wr = BufWriter::with_capacity(256 * 1024, wr);
            while let Some(parts) = rx.recv().await {
                for p in &parts {
                    wr.write_all(p).await?;
                }
                // Coalesce: only flush when no more replies are ready.
                while let Ok(parts) = rx.try_recv() {
                    for p in &parts {
                        wr.write_all(p).await?;
                    }
                }
                wr.flush().await?;
            }
            wr.shutdown().await
        });
        let inflight = Arc::new(Semaphore::new(self.cfg.max_inflight.max(1)));
        let result = loop {
            let mut h = [0u8; REQUEST_LEN];
            match rd.read_exact(&mut h).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
                Err(e) => break Err(e.into()),
            }
            let req = match parse_request(&h) {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            let is_data = matches!(
                req.kind,
                crate::consts::cmd::READ | crate::consts::cmd::BLOCK_STATUS
            );
            match validate(&req, &session) {
                Verdict::Close(e) => break Err(e),
                Verdict::Reject { errno, discard } => {
                    if let Err(e) = skip(&mut rd, discard as u64).await {
                        break Err(e.into());
                    }
                    let _ = tx.send(vec![Bytes::from(error_reply(
                        req.cookie,
                        is_data,
                        session.structured,
                        errno,
                    ))]);
                }
                Verdict::Run(Command::Disconnect) => break Ok(()),
                Verdict::Run(cmd) => {
                    let permit = inflight
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore never closed");
                    let payload = if let Command::Write { len, .. } = cmd {
                        let mut buf = BytesMut::zeroed(len as usize);
                        if let Err(e) = rd.read_exact(&mut buf).await {
                            break Err(e.into());
                        }
                        buf.freeze()
                    } else {
                        Bytes::new()
                    };
                    let (device, tx) = (device.clone(), tx.clone());
                    tokio::spawn(async move {
                        let reply =
                            execute(&*device, cmd, req.cookie, session.structured, payload).await;
                        let _ = tx.send(reply);
                        drop(permit);
                    });
                }
            }
        };
        // Let in-flight requests finish and their replies go out before closing.
        drop(tx);
        match writer.await {
            Ok(Ok(())) | Ok(Err(_)) => {}
            Err(e) => tracing::warn!(error = %e, "nbd writer task failed"),
        }
        result
    }
}

async fn skip<R: AsyncRead + Unpin>(rd: &mut R, mut n: u64) -> std::io::Result<()> {
    let mut buf = [0u8; 8192];
    while n > 0 {
        let k = (n as usize).min(buf.len());
        rd.read_exact(&mut buf[..k]).await?;
        n -= k as u64;
    }
    Ok(())
}

async fn execute(
    device: &dyn BlockDevice,
    cmd: Command,
    cookie: u64,
    structured: bool,
    payload: Bytes,
) -> Vec<Bytes> {
    let ok = || vec![Bytes::copy_from_slice(&simple_reply(cookie, 0))];
    let fail = |e: std::io::Error, is_data: bool| {
        vec![Bytes::from(error_reply(
            cookie,
            is_data,
            structured,
            errno_of(&e),
        ))]
    };
    match cmd {
        Command::Read { offset, len } => match device.read(offset, len).await {
            Ok(data) if structured => vec![
                Bytes::copy_from_slice(&structured_read_header(cookie, offset, len)),
                data,
            ],
            Ok(data) => vec![Bytes::copy_from_slice(&simple_reply(cookie, 0)), data],
            Err(e) => fail(e, true),
        },
        Command::Write { offset, fua, .. } => match device.write(offset, payload, fua).await {
            Ok(()) => ok(),
            Err(e) => fail(e, false),
        },
        Command::Flush => match device.flush().await {
            Ok(()) => ok(),
            Err(e) => fail(e, false),
        },
        Command::Trim { offset, len } => match device.trim(offset, len).await {
            Ok(()) => ok(),
            Err(e) => fail(e, false),
        },
        Command::WriteZeroes {
            offset,
            len,
            no_hole,
        } => match device.write_zeroes(offset, len, no_hole).await {
            Ok(()) => ok(),
            Err(e) => fail(e, false),
        },
        Command::BlockStatus {
            offset,
            len,
            req_one,
        } => match device.block_status(offset, len).await {
            Ok(mut extents) => {
                if extents.is_empty() {
                    extents.push((len, 0));
                }
                if req_one {
                    extents.truncate(1);
                }
                vec![Bytes::from(block_status_reply(cookie, &extents))]
            }
            Err(e) => fail(e, true),
        },
        Command::Disconnect => Vec::new(),
    }
}
