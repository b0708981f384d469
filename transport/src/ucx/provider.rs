//! The UCX [`FastPathProvider`]: one UCP context, a few I/O threads, links as endpoints.

use super::config::UcxConfig;
use super::ffi::{self, Context, UcpConfig, Worker};
use super::io_thread::{self, Command, ThreadHandle};
use super::registry::{Registry, UcxStats};
use crate::error::TransportError;
use crate::fastpath::{FastPathError, FastPathLink, FastPathProvider, FrameSink, RawFrame};
use basalt_proto::hello::UcxOffer;
use basalt_proto::Limits;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// UCX active messages as a fast path. Build one per process (or per test node) with
/// [`UcxProvider::new`] and hand it to the transport as `Arc<dyn FastPathProvider>`.
/// Dropping it closes every endpoint (peers see link failures) and joins its threads.
pub struct UcxProvider {
    threads: Vec<Arc<ThreadHandle>>,
    joins: Mutex<Vec<std::thread::JoinHandle<()>>>,
    registry: Arc<Registry>,
    next_token: AtomicU64,
    next_ep: AtomicU64,
    round_robin: AtomicUsize,
    transports: Vec<String>,
    worthwhile: bool,
    config: UcxConfig,
    stopped: AtomicBool,
}

impl std::fmt::Debug for UcxProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UcxProvider")
            .field("config", &self.config)
            .field("transports", &self.transports)
            .field("worthwhile", &self.worthwhile)
            .finish_non_exhaustive()
    }
}

/// Transport names (`tcp`, `posix`, `sysv`, `cma`, `rc_mlx5`, ...) in the resource lines
/// of `ucp_context_print_info`, e.g. `#   resource 0  :  md 0  dev 0  flags -- tcp/lo`.
pub(crate) fn parse_transports(info: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in info.lines().filter(|l| l.contains("resource")) {
        if let Some(tl) = line
            .split_whitespace()
            .last()
            .filter(|w| w.contains('/'))
            .and_then(|w| w.split('/').next())
        {
            if !out.iter().any(|t| t == tl) {
                out.push(tl.to_string());
            }
        }
    }
    out
}

/// Whether the available transports offer anything beyond UCX's own tcp.
fn beats_tcp(config: &UcxConfig, transports: &[String]) -> bool {
    !config.tls_is_tcp_only()
        && transports
            .iter()
            .any(|t| !matches!(t.as_str(), "tcp" | "self"))
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Distinct per process and per provider, so a stale message from an earlier
    // connection (or provider) is unlikely to match a live token.
    (nanos ^ (u64::from(std::process::id()) << 40)).rotate_left(17) | 1
}

impl UcxProvider {
    /// Start the provider: check the library version, apply `config` to a fresh UCP
    /// configuration, create the context and one worker per I/O thread, register the AM
    /// handlers and start the threads. Any failure (e.g. `tls = "bogus"`) is returned as
    /// a typed error and leaves nothing running: the transport then runs TCP only.
    pub fn new(config: UcxConfig) -> Result<Self, TransportError> {
        Self::with_limits(config, Limits::DEFAULT)
    }

    /// As [`UcxProvider::new`], with the frame limits inbound frames are checked against.
    pub fn with_limits(config: UcxConfig, limits: Limits) -> Result<Self, TransportError> {
        config.validate()?;
        ffi::check_version()?;
        let context = {
            let mut ucp_config = UcpConfig::read()?;
            for (name, value) in config.ucx_settings() {
                ucp_config.modify(name, &value)?;
            }
            Context::new(&ucp_config)?
        };
        let transports = parse_transports(&context.info());
        let worthwhile = beats_tcp(&config, &transports);
        let workers = (0..config.threads)
            .map(|_| Worker::new(&context))
            .collect::<Result<Vec<_>, _>>()?;
        drop(context); // the workers hold it
        let registry = Arc::new(Registry::new(limits));
        let provider = UcxProvider {
            threads: Vec::new(),
            joins: Mutex::new(Vec::new()),
            registry: registry.clone(),
            next_token: AtomicU64::new(seed()),
            next_ep: AtomicU64::new(1),
            round_robin: AtomicUsize::new(0),
            transports,
            worthwhile,
            config: config.clone(),
            stopped: AtomicBool::new(false),
        };
        let mut provider = provider;
        for (index, worker) in workers.into_iter().enumerate() {
            // On error, dropping `provider` stops the threads started so far.
            let (handle, join) = io_thread::spawn(index, worker, registry.clone(), config.spin())?;
            provider.threads.push(handle);
            provider.joins.lock().push(join);
        }
        let (major, minor, release) = ffi::version();
        tracing::info!(
            ucx = %format!("{major}.{minor}.{release}"),
            tls = %config.tls,
            transports = ?provider.transports,
            worthwhile,
            threads = config.threads,
            "UCX fast path ready"
        );
        Ok(provider)
    }

    /// Close every endpoint (without a close notice: peers see endpoint errors, local
    /// sinks a link failure), stop the I/O threads and wait for them. Idempotent; also
    /// done on drop. Afterwards `listen` and `connect` fail with `Unavailable`/`Connect`.
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        for t in &self.threads {
            t.stop();
        }
        let current = std::thread::current().id();
        let joins: Vec<_> = self.joins.lock().drain(..).collect();
        for join in joins {
            // Never join ourselves (the last reference dropped inside an I/O thread).
            if join.thread().id() != current {
                let _ = join.join();
            }
        }
    }

    /// Inbound counters (eager/rendezvous frames, drops), e.g. for metrics.
    pub fn stats(&self) -> UcxStats {
        self.registry.snapshot()
    }

    /// Register the provider's inbound counters (the live values behind [`Self::stats`])
    /// into a prometheus registry, as `basalt_transport_ucx_*_total`. Call once per
    /// provider, next to [`crate::TransportMetrics::register`].
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.registry.stats.register(registry);
    }

    /// Transports UCX found usable with this configuration (e.g. `["self", "tcp"]`).
    pub fn transports(&self) -> &[String] {
        &self.transports
    }

    /// The configuration the provider runs with.
    pub fn config(&self) -> &UcxConfig {
        &self.config
    }

    /// As [`FastPathProvider::connect`], returning the concrete link type.
    pub fn connect_link(
        &self,
        local: u64,
        remote: &UcxOffer,
    ) -> BoxFuture<'static, Result<Arc<UcxLink>, FastPathError>> {
        let Some(thread) = self.registry.thread_of(local) else {
            let e = TransportError::UcxUnknownToken { token: local };
            return futures::future::ready(Err(FastPathError::Connect {
                reason: e.to_string(),
            }))
            .boxed();
        };
        let handle = self.threads[thread].clone();
        let ep_id = self.next_ep.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let submitted = handle.submit(Command::Connect {
            ep_id,
            local,
            remote: remote.conn,
            address: remote.worker.clone(),
            reply,
        });
        let timeout = self.config.connect_timeout();
        let link = UcxLink {
            ep_id,
            local,
            thread: handle,
            registry: self.registry.clone(),
            send_timeout: self.config.send_timeout(),
            closed: AtomicBool::new(false),
        };
        async move {
            submitted.map_err(|e| FastPathError::Connect {
                reason: e.to_string(),
            })?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(Ok(()))) => Ok(Arc::new(link)),
                Ok(Ok(Err(e))) => {
                    // Never created: nothing to close.
                    link.closed.store(true, Ordering::Release);
                    Err(FastPathError::Connect {
                        reason: e.to_string(),
                    })
                }
                Ok(Err(_)) => {
                    link.closed.store(true, Ordering::Release);
                    Err(FastPathError::Connect {
                        reason: TransportError::Shutdown.to_string(),
                    })
                }
                // Dropping `link` closes the endpoint if it was created after all.
                Err(_) => Err(FastPathError::Connect {
                    reason: format!("endpoint creation took over {} ms", timeout.as_millis()),
                }),
            }
        }
        .boxed()
    }
}

impl FastPathProvider for UcxProvider {
    fn name(&self) -> &'static str {
        "ucx"
    }

    fn worthwhile(&self) -> bool {
        self.worthwhile
    }

    fn listen(&self, sink: Arc<dyn FrameSink>) -> Result<UcxOffer, FastPathError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(super::unavailable(TransportError::Shutdown));
        }
        let thread = self.round_robin.fetch_add(1, Ordering::Relaxed) % self.threads.len();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.registry.insert(token, sink, thread);
        Ok(UcxOffer {
            worker: self.threads[thread].address().to_vec(),
            conn: token,
        })
    }

    fn connect(
        &self,
        local: u64,
        remote: &UcxOffer,
    ) -> BoxFuture<'static, Result<Arc<dyn FastPathLink>, FastPathError>> {
        let fut = self.connect_link(local, remote);
        async move { fut.await.map(|l| l as Arc<dyn FastPathLink>) }.boxed()
    }

    fn unlisten(&self, local: u64) {
        self.registry.remove(local);
    }
}

impl Drop for UcxProvider {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An outbound UCX link (one endpoint). Dropping it closes it.
pub struct UcxLink {
    ep_id: u64,
    local: u64,
    thread: Arc<ThreadHandle>,
    registry: Arc<Registry>,
    send_timeout: Duration,
    closed: AtomicBool,
}

impl std::fmt::Debug for UcxLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UcxLink")
            .field("ep_id", &self.ep_id)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl UcxLink {
    /// `ucp_ep_print_info` of the endpoint: its lanes and the transports they use (None
    /// when the endpoint is gone). UCX 1.13 cannot report lanes any other way.
    pub fn describe(&self) -> BoxFuture<'static, Option<String>> {
        let (reply, rx) = oneshot::channel();
        let submitted = self.thread.submit(Command::Describe {
            ep_id: self.ep_id,
            reply,
        });
        async move {
            submitted.ok()?;
            tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .ok()?
                .ok()?
        }
        .boxed()
    }
}

impl FastPathLink for UcxLink {
    fn send(&self, frame: RawFrame) -> BoxFuture<'static, Result<(), FastPathError>> {
        if self.closed.load(Ordering::Acquire) {
            return futures::future::ready(Err(FastPathError::Closed)).boxed();
        }
        let (reply, rx) = oneshot::channel();
        if self
            .thread
            .submit(Command::Send {
                ep_id: self.ep_id,
                frame,
                reply,
            })
            .is_err()
        {
            return futures::future::ready(Err(FastPathError::Link {
                reason: TransportError::Shutdown.to_string(),
            }))
            .boxed();
        }
        let timeout = self.send_timeout;
        let (thread, registry, ep_id, local) = (
            self.thread.clone(),
            self.registry.clone(),
            self.ep_id,
            self.local,
        );
        async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(FastPathError::Link {
                    reason: TransportError::Shutdown.to_string(),
                }),
                Err(_) => {
                    // A send that cannot complete means a broken link (a silent peer is
                    // otherwise only noticed by UCX keepalive, 20 s by default).
                    let error = FastPathError::Link {
                        reason: format!("UCX send took over {} ms", timeout.as_millis()),
                    };
                    registry.fail(local, error.clone());
                    let _ = thread.submit(Command::Close { ep_id });
                    Err(error)
                }
            }
        }
        .boxed()
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = self.thread.submit(Command::Close { ep_id: self.ep_id });
        }
    }
}

impl Drop for UcxLink {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_read_from_resource_lines() {
        let info = "#\n# UCP context\n#\n#     md 0  :  self\n#     md 1  :  tcp\n\
                    #     resource 0  :  md 0  dev 0  flags -- self/memory\n\
                    #     resource 1  :  md 1  dev 1  flags -- tcp/lo\n\
                    #     resource 2  :  md 2  dev 2  flags -- posix/memory\n\
                    #     resource 3  :  md 1  dev 3  flags -- tcp/eth0\n";
        assert_eq!(parse_transports(info), vec!["self", "tcp", "posix"]);
        assert!(parse_transports("").is_empty());
    }

    #[test]
    fn worthwhile_needs_more_than_tcp() {
        let tcp = UcxConfig::loopback("tcp");
        let sm = UcxConfig::loopback("sm,tcp");
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!beats_tcp(&tcp, &names(&["self", "tcp"])));
        assert!(!beats_tcp(&sm, &names(&["self", "tcp"])));
        assert!(beats_tcp(&sm, &names(&["self", "tcp", "posix"])));
        assert!(!beats_tcp(&tcp, &names(&["posix"])));
    }
}
