//! The backends under test and the server/client pair each runs on: the server on its
//! own tokio runtime (one worker thread), the client on the caller's runtime, both in this
//! process, connected over loopback.

use crate::error::BenchError;
use basalt_proto::chunk::{WriteChunk, WriteChunkOk};
use basalt_proto::hello::{Identity, Role};
use basalt_transport::{
    Connection, FastPathMode, PathKind, Router, ServerHandle, TcpTransport, TransportConfig,
    TransportOptions,
};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;

/// A way of carrying Basalt RPCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Native TCP (tokio), no fast path.
    Tcp,
    /// TCP hello, then UCX active messages over these `UCX_TLS` transports.
    #[cfg(feature = "ucx")]
    Ucx {
        /// `UCX_TLS`.
        tls: String,
    },
}

impl Backend {
    /// Short name for tables and measurement names.
    pub fn label(&self) -> String {
        match self {
            Backend::Tcp => "tcp".into(),
            #[cfg(feature = "ucx")]
            Backend::Ucx { tls } => format!("ucx[{tls}]"),
        }
    }

    fn options(&self, name: &str, spin_us: u64) -> Result<TransportOptions, BenchError> {
        let _ = spin_us;
        let identity = Identity {
            role: Role::Tool,
            chunkserver: None,
            name: format!("basalt-bench-{name}:{}", std::process::id()),
            cluster: String::new(),
        };
        let mut config = TransportConfig::default();
        match self {
            Backend::Tcp => {
                config.fast_path = FastPathMode::Off;
                Ok(TransportOptions::new(identity).config(config))
            }
            #[cfg(feature = "ucx")]
            Backend::Ucx { tls } => {
                use basalt_transport::ucx::{UcxConfig, UcxProvider};
                // Benchmarks measure UCX even where the transport would not pick it
                // (tcp-only UCX is not "worthwhile" in production).
                config.fast_path = FastPathMode::Force;
                let ucx = UcxConfig {
                    spin_us,
                    ..UcxConfig::loopback(tls)
                };
                let provider = UcxProvider::new(ucx).map_err(|e| BenchError::Transport {
                    backend: self.label(),
                    source: basalt_transport::TransportError::Protocol {
                        reason: format!("UCX provider: {e}"),
                    },
                })?;
                Ok(TransportOptions::new(identity)
                    .config(config)
                    .fast_path(std::sync::Arc::new(provider)))
            }
        }
    }
}

/// A connected server/client pair.
pub struct Pair {
    /// The client's connection to the server.
    pub conn: Connection,
    server_rt: Option<tokio::runtime::Runtime>,
    server: Option<ServerHandle<SocketAddr>>,
    _client: TcpTransport,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

/// The server's routes: `Echo` (payload back, for latency) and `WriteChunk` (payload in,
/// small reply out, for one-way streaming).
fn router() -> Router {
    Router::new()
        .echo()
        .route::<WriteChunk, _, _>(|req, _payload, _group, _cx| async move {
            (
                Ok(WriteChunkOk {
                    index: req.offset as u64,
                }),
                Bytes::new(),
            )
        })
}

impl Pair {
    /// Start a server for `backend` on its own runtime and connect a client to it from
    /// the current runtime. Fails when the connection did not end up on the backend's
    /// path (e.g. UCX fell back to TCP).
    pub async fn start(backend: &Backend, spin_us: u64) -> Result<Pair, BenchError> {
        let terr = |source| BenchError::Transport {
            backend: backend.label(),
            source,
        };
        let server_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-server")
            .enable_all()
            .build()
            .map_err(BenchError::io("start the server runtime"))?;
        let server_transport =
            TcpTransport::new(backend.options("server", spin_us)?).map_err(terr)?;
        let server = {
            let t = server_transport.clone();
            server_rt
                .spawn(async move {
                    t.serve("127.0.0.1:0".parse().expect("literal"), router())
                        .await
                })
                .await
                .map_err(|e| BenchError::Io {
                    what: "server start".into(),
                    source: std::io::Error::other(e.to_string()),
                })?
                .map_err(terr)?
        };
        let addr = server.local_addr();
        let client = TcpTransport::new(backend.options("client", spin_us)?).map_err(terr)?;
        let conn = client.connect(addr).await.map_err(terr)?;
        let mut pair = Pair {
            conn,
            server_rt: Some(server_rt),
            server: Some(server),
            _client: client,
        };
        let want = match backend {
            Backend::Tcp => PathKind::Tcp,
            #[cfg(feature = "ucx")]
            Backend::Ucx { .. } => PathKind::FastPath("ucx"),
        };
        if pair.conn.path() != want {
            let got = pair.conn.path();
            pair.stop().await;
            return Err(BenchError::Transport {
                backend: backend.label(),
                source: basalt_transport::TransportError::Protocol {
                    reason: format!(
                        "connection runs on {got}, not {want} (fast path refused or failed)"
                    ),
                },
            });
        }
        Ok(pair)
    }

    /// Close the connection and stop the server and its runtime.
    pub async fn stop(&mut self) {
        self.conn.close();
        if let (Some(rt), Some(server)) = (self.server_rt.take(), self.server.take()) {
            let _ = rt.spawn(server.shutdown()).await;
            // Dropping a runtime blocks; do it off the async thread.
            let _ =
                tokio::task::spawn_blocking(move || rt.shutdown_timeout(Duration::from_secs(5)))
                    .await;
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Without `stop` (an error path): don't block, just let the runtime go.
        if let Some(rt) = self.server_rt.take() {
            rt.shutdown_background();
        }
    }
}
