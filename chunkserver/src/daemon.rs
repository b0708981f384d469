//! The `serve` daemon: opens the disk, starts the copysets and serves the chunk service,
//! the raft traffic and the Prometheus metrics until SIGTERM/SIGINT.
//!
//! Start-up order matters: the data dir is checked before anything is started; the
//! service port is bound next, so the advertised address (the bound port when configured
//! with port 0) is known to the MDS registration (when `mds-addrs` is set) and to raft;
//! the address files are written last, so a test that sees them can connect (a managed
//! chunkserver has registered by then). Heartbeats start once the service is up.
//!
//! Shutdown: stop accepting and answer new requests `ShuttingDown`, wait for in-flight
//! handlers (transport grace period), shut every raft down, then close the WAL (its writer
//! thread drains and stops) and the pollers.

use anyhow::{bail, Context, Result};
use basalt_chunkserver::backend::spdk::SpdkOptions;
use basalt_chunkserver::backend::BackendFactory;
use basalt_chunkserver::chunk_api::ChunkStore;
use basalt_chunkserver::config::ChunkServerConfig;
use basalt_chunkserver::copyset::{raft_routes, Copysets, CopysetsParams, TransportRaftNet};
use basalt_chunkserver::datadir::{write_atomic, DataDir};
use basalt_chunkserver::group_log::GroupLog;
use basalt_chunkserver::mds_link::client::MdsClient;
use basalt_chunkserver::mds_link::heartbeat::{disk_stats, HeartbeatParams};
use basalt_chunkserver::mds_link::operators::Executor;
use basalt_chunkserver::mds_link::{hostname, register, MdsLink};
use basalt_chunkserver::poller::Pollers;
use basalt_chunkserver::service::metrics::{ServiceMetrics, StateCollector};
use basalt_chunkserver::service::{ChunkService, ChunkServiceParams};
use basalt_chunkserver::store::{FileChunkStore, StoreOptions};
use basalt_chunkserver::wal::Wal;
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{ChunkServerId, CHUNK_SIZE};
use basalt_proto::status::PeerAddr;
use basalt_transport::metrics_http::MetricsServer;
use basalt_transport::{Router, TcpTransport, TransportMetrics, TransportOptions};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// File in the data dir holding the bound service address (`ip:port\n`).
pub const LISTEN_ADDR_FILE: &str = "listen-addr";
/// File in the data dir holding the bound metrics address (`ip:port\n`).
pub const METRICS_ADDR_FILE: &str = "metrics-addr";

/// The chunkserver id: the one recorded at MDS registration, else the configured one.
fn chunkserver_id(dir: &DataDir, cfg: &ChunkServerConfig) -> Result<ChunkServerId> {
    match (dir.meta().chunkserver_id, cfg.server.chunkserver_id()) {
        (Some(a), Some(b)) if a != b => bail!(
            "data dir {} is registered as {a}, config says {b}",
            dir.root().display()
        ),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => bail!(
            "no chunkserver id: the data dir is not registered with an MDS; set \
             server.chunkserver-id (or --chunkserver-id)"
        ),
    }
}

/// The address peers and clients dial.
fn advertised(cfg: &ChunkServerConfig, bound: SocketAddr) -> Result<SocketAddr> {
    if let Some(a) = &cfg.server.advertise {
        return a.parse().context("server.advertise");
    }
    if bound.ip().is_unspecified() {
        bail!("listening on {bound}: set server.advertise to the address peers should dial");
    }
    Ok(bound)
}

fn write_addr(root: &Path, name: &str, addr: SocketAddr) -> Result<PathBuf> {
    let path = root.join(name);
    write_atomic(&path, format!("{addr}\n").as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

#[cfg(feature = "ucx")]
fn with_fast_path(opts: TransportOptions, cfg: &ChunkServerConfig) -> TransportOptions {
    use basalt_transport::FastPathMode;
    if cfg.transport.fast_path == FastPathMode::Off {
        return opts;
    }
    match basalt_transport::ucx::UcxProvider::with_limits(cfg.ucx.clone(), cfg.transport.limits()) {
        Ok(p) => opts.fast_path(Arc::new(p)),
        Err(e) => {
            tracing::warn!(error = %e, "UCX provider unavailable; serving TCP only");
            opts
        }
    }
}

#[cfg(not(feature = "ucx"))]
fn with_fast_path(opts: TransportOptions, _cfg: &ChunkServerConfig) -> TransportOptions {
    opts
}

/// Register with the MDS (retrying until one answers); the identity is persisted in `dir`.
async fn register_with_mds(
    cfg: &ChunkServerConfig,
    dir: &mut DataDir,
    addr: SocketAddr,
) -> Result<()> {
    let server = match cfg.server.server_name.clone().or_else(hostname) {
        Some(s) => s,
        None => bail!("no host name: set server.server-name"),
    };
    let transport = TcpTransport::new(
        TransportOptions::new(Identity {
            role: Role::ChunkServer,
            chunkserver: None,
            name: format!("unregistered@{addr}:{}", std::process::id()),
            cluster: cfg
                .cluster_id
                .clone()
                .or_else(|| dir.meta().cluster_id.clone())
                .unwrap_or_default(),
        })
        .config(cfg.transport.clone()),
    )
    .context("transport")?;
    let client = MdsClient::new(
        transport,
        cfg.server.mds_socket_addrs(),
        Duration::from_millis(cfg.server.mds_timeout_ms),
    );
    let d = dir.clone();
    let disk = tokio::task::spawn_blocking(move || disk_stats(&d, None))
        .await
        .unwrap_or_default();
    let req = register::request(dir.meta(), &server, addr, disk);
    register::register(&client, dir, cfg.cluster_id.as_deref(), &req)
        .await
        .with_context(|| format!("register with the MDS as server {server:?}"))?;
    Ok(())
}

/// Run the daemon until `stop` completes (a signal in `main`).
pub async fn serve(cfg: ChunkServerConfig, stop: impl Future<Output = ()>) -> Result<()> {
    tokio::pin!(stop);
    let mut dir = DataDir::open(&cfg.data_dir, cfg.cluster_id.as_deref())
        .with_context(|| format!("open data dir {}", cfg.data_dir.display()))?;
    let managed = !cfg.server.mds_addrs.is_empty();

    // The service port first: registration and raft need our address.
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
        .await
        .with_context(|| format!("bind {}", cfg.server.listen))?;
    let bound = listener.local_addr().context("listen address")?;
    let advertise = advertised(&cfg, bound)?;
    if managed {
        tokio::select! {
            r = register_with_mds(&cfg, &mut dir, advertise) => r?,
            _ = &mut stop => {
                tracing::info!("stopped before the MDS answered the registration");
                return Ok(());
            }
        }
    }
    let id = chunkserver_id(&dir, &cfg)?;
    let chunk_size = dir.meta().chunk_size;
    if chunk_size != CHUNK_SIZE {
        // Copysets copy whole protocol-size chunks during a snapshot install.
        bail!(
            "data dir {} has {chunk_size}-byte chunks; serve needs the protocol's {CHUNK_SIZE}",
            dir.root().display()
        );
    }
    let cluster = cfg
        .cluster_id
        .clone()
        .or_else(|| dir.meta().cluster_id.clone())
        .unwrap_or_default();

    // storage
    let factory = BackendFactory::probe(
        cfg.io.backend,
        &SpdkOptions {
            transport_id: cfg.io.spdk_transport_id.clone(),
            nsid: cfg.io.spdk_nsid,
        },
    )
    .context("I/O backend")?;
    let pollers = Arc::new(Pollers::start(cfg.io.poller_options(), &factory).context("pollers")?);
    let store = Arc::new(
        FileChunkStore::open(
            dir.clone(),
            pollers.clone(),
            StoreOptions {
                direct_io: cfg.io.direct_io,
                io_unit: None,
            },
        )
        .context("chunk store")?,
    );
    // One fence for the disk: an I/O error in the chunk store or the WAL stops both.
    let wal = Arc::new(Wal::open_fenced(&dir, store.fence().clone()).context("WAL")?);

    let local = PeerAddr {
        id,
        addr: advertise,
    };

    let mut registry = Registry::default();
    let transport_metrics = TransportMetrics::new();
    transport_metrics.register(&mut registry);
    let service_metrics = ServiceMetrics::new();
    service_metrics.register(&mut registry);

    let identity = Identity {
        role: Role::ChunkServer,
        chunkserver: Some(id),
        name: format!("{id}@{}:{}", local.addr, std::process::id()),
        cluster,
    };
    let opts = TransportOptions::new(identity)
        .config(cfg.transport.clone())
        .metrics(transport_metrics);
    let transport = TcpTransport::new(with_fast_path(opts, &cfg)).context("transport")?;

    let copysets = Copysets::open(CopysetsParams {
        local,
        log: wal.clone() as Arc<dyn GroupLog>,
        store: store.clone() as Arc<dyn ChunkStore>,
        net: TransportRaftNet::new(transport.clone()),
        config: cfg.copyset.clone(),
    })
    .await
    .context("restart copysets")?;

    let service = ChunkService::new(ChunkServiceParams {
        copysets: copysets.clone(),
        store: store.clone(),
        chunk_size,
        max_inflight_data: cfg.server.max_inflight_data,
        metrics: service_metrics,
    });
    let router = service.routes(raft_routes(Router::new(), copysets.clone()));
    let server = transport
        .serve_listener(listener, router)
        .context("serve")?;

    let wal_for_metrics = wal.clone();
    registry.register_collector(Box::new(StateCollector::new(copysets.clone(), move || {
        StateCollector::wal_counters(wal_for_metrics.metrics())
    })));
    let metrics_addr: SocketAddr = cfg
        .server
        .metrics_listen
        .parse()
        .context("server.metrics-listen")?;
    let metrics = MetricsServer::bind(metrics_addr, Arc::new(registry))
        .await
        .context("bind metrics listener")?;

    let addr_files = [
        write_addr(dir.root(), LISTEN_ADDR_FILE, bound)?,
        write_addr(dir.root(), METRICS_ADDR_FILE, metrics.local_addr())?,
    ];
    let link = managed.then(|| {
        MdsLink::start(HeartbeatParams {
            client: Arc::new(MdsClient::new(
                transport.clone(),
                cfg.server.mds_socket_addrs(),
                Duration::from_millis(cfg.server.mds_timeout_ms),
            )),
            id,
            token: dir.meta().token.clone().unwrap_or_default(),
            addr: local.addr,
            copysets: copysets.clone(),
            exec: Executor::new(
                copysets.clone(),
                transport.clone(),
                Duration::from_millis(cfg.server.mds_timeout_ms),
            ),
            dir: dir.clone(),
            store: store.clone(),
            interval: Duration::from_millis(cfg.server.heartbeat_interval_ms),
        })
    });
    tracing::info!(
        %id,
        managed,
        listen = %bound,
        advertise = %local.addr,
        metrics = %metrics.local_addr(),
        backend = pollers.backend().name(),
        copysets = copysets.groups().len(),
        "chunkserver serving"
    );

    stop.await;

    tracing::info!("shutting down: draining requests");
    if let Some(link) = link {
        link.shutdown();
    }
    server.shutdown().await;
    metrics.shutdown();
    copysets.shutdown().await;
    drop(service);
    drop(copysets);
    for f in addr_files {
        let _ = std::fs::remove_file(f);
    }
    // Last references: the WAL's writer thread and the pollers stop when dropped.
    drop(wal);
    drop(store);
    drop(pollers);
    tracing::info!("chunkserver stopped");
    Ok(())
}

/// SIGTERM and SIGINT, registered before start-up so an early signal is not lost.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Install the handlers (inside the runtime).
    pub fn register() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
        })
    }

    /// Completes on the first SIGTERM or SIGINT.
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM"),
            _ = self.int.recv() => tracing::info!("SIGINT"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_needs_an_advertised_address() {
        let mut cfg = ChunkServerConfig::default();
        let wild: SocketAddr = "0.0.0.0:8200".parse().unwrap();
        assert!(advertised(&cfg, wild).is_err());
        let lo: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(advertised(&cfg, lo).unwrap(), lo);
        cfg.server.advertise = Some("10.0.0.5:8200".into());
        assert_eq!(
            advertised(&cfg, wild).unwrap(),
            "10.0.0.5:8200".parse::<SocketAddr>().unwrap()
        );
    }
}
