//! The daemon's life: serve as a standby, campaign, load and serve as the active MDS, tick
//! the scheduler, and step down (exit) when leadership is lost.
//!
//! A stepped-down MDS returns [`Exit::SteppedDown`]; the binary exits non-zero so a
//! supervisor restarts it as a fresh standby (its in-memory state may be stale).

use crate::config::MdsConfig;
use crate::copyset_creator::CopysetCreator;
use crate::election::{follow_leader, Candidate, ElectionConfig, StepDownReason};
use crate::error::{Error, Result};
use crate::metrics::MdsMetrics;
use crate::service::{system_now_ms, MdsService};
use crate::state::MdsState;
use crate::store::etcd::{connect, connect_streaming, EtcdStore};
use crate::store::fence::FencedStore;
use crate::store::MetaStore;
use crate::topology::clustermap::ClusterMap;
use basalt_proto::hello::{Identity, Role};
use basalt_transport::metrics_http::MetricsServer;
use basalt_transport::{ConnectionPool, TcpTransport, TransportOptions};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (signal); resigned if it was the leader.
    Shutdown,
    /// Lost leadership.
    SteppedDown(StepDownReason),
}

/// Parse `<name>@<addr>` election values.
pub fn parse_leader_value(v: &str) -> Option<SocketAddr> {
    v.rsplit_once('@')?.1.parse().ok()
}

/// Create (or resume) the copysets of every pool that needs them; a pool refused (say,
/// its scatter width is out of reach) does not hold up the others. Only a fence failure
/// is returned: this MDS was deposed.
async fn create_pending_copysets(state: &MdsState, min: usize) -> Result<()> {
    for pool in state.pools_to_place(min).await {
        match state.create_copysets(pool, u64::from(pool.0)).await {
            Ok(_) => {}
            Err(Error::Fenced) => return Err(Error::Fenced),
            Err(e) => tracing::warn!(%pool, error = %e, "copyset creation failed"),
        }
    }
    Ok(())
}

/// Run until `shutdown` resolves or leadership is lost.
pub async fn run(cfg: MdsConfig, shutdown: impl Future<Output = ()>) -> Result<Exit> {
    cfg.validate()?;
    tokio::pin!(shutdown);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| Error::Io { op: "bind", source })?;
    let bound = listener.local_addr().map_err(|source| Error::Io {
        op: "local_addr",
        source,
    })?;
    let advertise = cfg.advertise.unwrap_or(bound);
    let admin_verifier = cfg.admin_verifier()?;
    if admin_verifier.is_none() {
        tracing::warn!(
            "no admin-verifier-file: volume access control is off (any peer may open any volume)"
        );
    }
    let identity = Identity {
        role: Role::Mds,
        chunkserver: None,
        name: cfg.name.clone(),
        cluster: String::new(),
    };
    let transport =
        TcpTransport::new(TransportOptions::new(identity).config(cfg.transport.clone()))?;
    let metrics = MdsMetrics::new();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    transport.metrics().register(&mut registry);
    let _metrics_server = match cfg.metrics_listen {
        Some(addr) => {
            let m = MetricsServer::bind(addr, Arc::new(registry)).await?;
            tracing::info!(addr = %m.local_addr(), "serving metrics");
            Some(m)
        }
        None => None,
    };
    let service =
        MdsService::with_metrics(Some(advertise), Arc::new(system_now_ms), metrics.clone());
    let server = transport.serve_listener(listener, service.router())?;
    if let Some(f) = &cfg.addr_file {
        std::fs::write(f, bound.to_string()).map_err(|source| Error::Io {
            op: "write addr-file",
            source,
        })?;
    }
    tracing::info!(%bound, %advertise, name = %cfg.name, "MDS serving as standby");

    // Two clients: the store's has per-request timeouts, the election's streams must not.
    // A standby outlives etcd outages: connecting and campaigning are retried (an MDS that
    // exited whenever etcd blinked would leave nobody to take over once it is back).
    let mut backoff = EtcdBackoff::default();
    let (client, eclient) = loop {
        let attempt = async {
            Ok::<_, Error>((
                connect(&cfg.etcd).await?,
                connect_streaming(&cfg.etcd).await?,
            ))
        };
        tokio::select! {
            r = attempt => match r {
                Ok(c) => break c,
                Err(e) => {
                    if backoff.wait(&e, "connect to etcd", &mut shutdown).await {
                        server.shutdown().await;
                        return Ok(Exit::Shutdown);
                    }
                }
            },
            _ = &mut shutdown => {
                server.shutdown().await;
                return Ok(Exit::Shutdown);
            }
        }
    };
    let mut ecfg = ElectionConfig::new(format!("{}@{}", cfg.name, advertise));
    ecfg.ttl = Duration::from_millis(cfg.election_ttl_ms);
    // Standby: follow the election for NotLeader answers (updated as soon as a new
    // leader is elected).
    let hint_task = {
        let svc = service.clone();
        tokio::spawn(follow_leader(
            eclient.clone(),
            crate::keys::LEADER.to_string(),
            Duration::from_millis(500),
            move |v| svc.set_leader_hint(v.as_deref().and_then(parse_leader_value)),
        ))
    };
    let mut backoff = EtcdBackoff::default();
    // The candidate is kept for as long as this MDS leads: it keeps the lease alive.
    let (_candidate, leadership) = loop {
        let attempt = async {
            let mut candidate = Candidate::new(eclient.clone(), ecfg.clone()).await?;
            let leadership = candidate.campaign().await?;
            Ok::<_, Error>((candidate, leadership))
        };
        tokio::select! {
            r = attempt => match r {
                Ok(won) => break won,
                Err(e) => {
                    if backoff.wait(&e, "campaign", &mut shutdown).await {
                        hint_task.abort();
                        server.shutdown().await;
                        return Ok(Exit::Shutdown);
                    }
                }
            },
            _ = &mut shutdown => {
                hint_task.abort();
                server.shutdown().await;
                return Ok(Exit::Shutdown);
            }
        }
    };
    hint_task.abort();
    let store: Arc<dyn MetaStore> = Arc::new(FencedStore::new(
        Arc::new(EtcdStore::new(client)),
        leadership.fence(),
    ));
    let state = Arc::new(
        MdsState::load(store, cfg.state.clone(), system_now_ms())
            .await?
            .with_metrics(metrics.clone())
            .with_admin_verifier(admin_verifier),
    );
    if let Some(path) = &cfg.cluster_map {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            op: "read cluster-map",
            source,
        })?;
        let d = state.apply_cluster_map(&ClusterMap::parse(&text)?).await?;
        tracing::info!(?d, "cluster map applied");
    }
    service.activate(state.clone(), leadership.leader_check());
    tracing::info!("MDS active");
    let creator = CopysetCreator::new(
        Arc::new(ConnectionPool::new(transport.clone())),
        Arc::new(|a: SocketAddr| a),
        cfg.copyset_create,
        metrics.clone(),
    );
    let creator_task = tokio::spawn(creator.run(state.clone(), Arc::new(system_now_ms)));
    let purger = Arc::new(crate::recycle::Purger::new(
        Arc::new(ConnectionPool::new(transport.clone())),
        Arc::new(|a: SocketAddr| a),
        cfg.purge.clone(),
    ));
    state.set_purger(purger.clone());
    let purge_task = tokio::spawn(purger.run(state.clone(), Arc::new(system_now_ms)));
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.tick_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let exit = loop {
        tokio::select! {
            reason = leadership.stepped_down() => {
                tracing::error!(?reason, "MDS lost leadership; stepping down");
                service.deactivate();
                break Exit::SteppedDown(reason);
            }
            _ = &mut shutdown => {
                service.deactivate();
                if let Err(e) = leadership.resign().await {
                    tracing::warn!(error = %e, "resign failed; the lease will expire");
                }
                break Exit::Shutdown;
            }
            _ = tick.tick() => {
                if !leadership.is_leader() {
                    continue;
                }
                if let Err(e) = create_pending_copysets(&state, cfg.copyset_min_chunkservers).await {
                    tracing::warn!(error = %e, "copyset creation failed");
                    if matches!(e, Error::Fenced) {
                        service.deactivate();
                        break Exit::SteppedDown(StepDownReason::OtherLeader);
                    }
                }
                let now = system_now_ms();
                let ops = state.tick(now).await;
                if !ops.is_empty() {
                    tracing::debug!(n = ops.len(), "operators issued");
                }
                metrics.observe(&state.observe(now).await);
            }
        }
    };
    creator_task.abort();
    purge_task.abort();
    server.shutdown().await;
    Ok(exit)
}

/// Pause between attempts to reach etcd as a standby: 200 ms doubling to 5 s.
struct EtcdBackoff {
    next: Duration,
}

impl Default for EtcdBackoff {
    fn default() -> Self {
        EtcdBackoff {
            next: Duration::from_millis(200),
        }
    }
}

impl EtcdBackoff {
    /// Log `e`, then sleep; true when `shutdown` fired meanwhile.
    async fn wait(
        &mut self,
        e: &Error,
        what: &str,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        tracing::warn!(error = %e, retry_in_ms = self.next.as_millis() as u64, "{what} failed; retrying");
        let pause = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        tokio::select! {
            () = tokio::time::sleep(pause) => false,
            () = shutdown.as_mut() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_values() {
        assert_eq!(
            parse_leader_value("mds-1@127.0.0.1:8100"),
            Some("127.0.0.1:8100".parse().unwrap())
        );
        assert_eq!(
            parse_leader_value("a@b@10.0.0.1:1"),
            Some("10.0.0.1:1".parse().unwrap())
        );
        assert_eq!(parse_leader_value("garbage"), None);
        assert_eq!(parse_leader_value("x@notaddr"), None);
    }
}
