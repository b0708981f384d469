//! Bounded waits and the RPC probes used to decide that the cluster is ready.
//!
//! The probes authenticate with the cluster secret they are given (a dev cluster's is
//! [`DevCluster::secret`](super::DevCluster::secret)); without one, an authenticating
//! cluster refuses them at hello and they answer `None`.

use super::error::{ClusterError, Result};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::mds::{ClusterStatus, ClusterStatusReply, GetMdsLeader, MdsLeader};
use basalt_transport::{ClusterSecret, TcpTransport, TransportOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Poll `f` every `every` until it returns `Some`, at most `timeout`.
pub fn poll_until<T>(
    what: impl Into<String>,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if t0.elapsed() > timeout {
            return Err(ClusterError::Timeout {
                what: what.into(),
                waited: t0.elapsed(),
            });
        }
        std::thread::sleep(every);
    }
}

/// Run `fut` on a fresh current-thread runtime in its own thread, so the sync API works
/// from plain code and from inside an async runtime alike.
pub fn block_on<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
            .block_on(fut)
    })
    .join()
    .expect("probe thread")
}

/// Transport options of a testkit probe (role `cli`), authenticating with `secret`.
pub fn probe_options(name: &str, secret: Option<&ClusterSecret>) -> TransportOptions {
    let opts = TransportOptions::new(Identity {
        role: Role::Cli,
        chunkserver: None,
        name: format!("{name}-{}", std::process::id()),
        cluster: String::new(),
    });
    match secret {
        Some(s) => opts.cluster_secret(s.clone()),
        None => opts,
    }
}

fn transport(secret: Option<&ClusterSecret>) -> Option<TcpTransport> {
    TcpTransport::new(probe_options("testkit", secret)).ok()
}

/// How long one probe call may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Ask `addr` who the active MDS is. None when it does not answer in time (or refuses
/// the hello).
pub fn mds_leader(addr: SocketAddr, secret: Option<&ClusterSecret>) -> Option<MdsLeader> {
    let secret = secret.cloned();
    block_on(async move {
        let t = transport(secret.as_ref())?;
        tokio::time::timeout(PROBE_TIMEOUT, async {
            let conn = t.connect(addr).await.ok()?;
            conn.call(&GetMdsLeader {}, bytes::Bytes::new())
                .await
                .ok()
                .map(|(r, _)| r)
        })
        .await
        .ok()
        .flatten()
    })
}

/// The first of `addrs` that answers as the active MDS.
pub fn active_mds(addrs: &[SocketAddr], secret: Option<&ClusterSecret>) -> Option<SocketAddr> {
    addrs
        .iter()
        .copied()
        .find(|&a| mds_leader(a, secret).is_some_and(|r| r.is_leader))
}

/// Cluster health from the MDS at `addr` (the active one answers; others refuse).
pub fn cluster_status(
    addr: SocketAddr,
    secret: Option<&ClusterSecret>,
) -> Option<ClusterStatusReply> {
    let secret = secret.cloned();
    block_on(async move {
        let t = transport(secret.as_ref())?;
        tokio::time::timeout(PROBE_TIMEOUT, async {
            let conn = t.connect(addr).await.ok()?;
            match conn.call(&ClusterStatus {}, bytes::Bytes::new()).await {
                Ok((Ok(r), _)) => Some(r),
                _ => None,
            }
        })
        .await
        .ok()
        .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_until_returns_the_value_or_times_out() {
        let mut n = 0;
        let v = poll_until(
            "n",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                Ok((n == 3).then_some(n))
            },
        )
        .unwrap();
        assert_eq!(v, 3);
        let e = poll_until::<()>(
            "never",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || Ok(None),
        )
        .unwrap_err();
        assert!(matches!(e, ClusterError::Timeout { ref what, .. } if what == "never"));
    }

    #[test]
    fn probes_of_a_dead_address_say_none_in_time() {
        let port = crate::cluster::ports::free_ports(1).unwrap()[0];
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let t0 = Instant::now();
        let secret = ClusterSecret::generate();
        assert!(mds_leader(addr, None).is_none());
        assert!(active_mds(&[addr], Some(&secret)).is_none());
        assert!(cluster_status(addr, Some(&secret)).is_none());
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
}
