//! The dev cluster authenticates every connection with its cluster secret: on a real
//! cluster (etcd, 1 MDS, 1 chunkserver), a client without the secret is refused at hello
//! on the MDS port and on the chunkserver port, one with another secret fails to
//! authenticate the daemon (and is not served either), and one with the cluster's secret
//! is served on both.
//!
//! Needs `basalt-mds` and `basalt-chunkserver` built (`cargo build --bins`) in the target
//! dir, or `BASALT_BIN_DIR`, and `etcd` on `PATH`.

use basalt_proto::hello::HelloRefusal;
use basalt_testkit::cluster::plan::Kind;
use basalt_testkit::cluster::{wait, ChunkserverIds};
use basalt_testkit::{ClusterSpec, DevCluster};
use basalt_transport::{AuthFailure, ClusterSecret, TcpTransport, TransportError};
use std::net::SocketAddr;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(10);

/// Connect to `addr` holding `secret` and ping; the error when that fails.
async fn ping_with(addr: SocketAddr, secret: Option<&ClusterSecret>) -> Result<(), TransportError> {
    let t = TcpTransport::new(wait::probe_options("auth-test", secret))?;
    let conn = t.connect(addr).await?;
    conn.ping().await.map(drop)
}

#[test]
fn only_clients_with_the_cluster_secret_get_past_hello() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(dir.path().join("state"));
    spec.mds = 1;
    spec.chunkservers = 1;
    spec.zones = 1;
    spec.chunkserver_ids = ChunkserverIds::Static;
    spec.pool_chunks = 4;
    spec.ready_timeout = Duration::from_secs(30);
    let c = DevCluster::up(spec).expect("dev cluster up");

    let secret = c.secret().expect("the dev cluster authenticates").clone();
    let file = c.secret_file().expect("a secret file");
    assert_eq!(ClusterSecret::load(&file).unwrap(), secret);
    let mds = c.mds_addrs()[0];
    let cs = c
        .status()
        .into_iter()
        .find(|s| s.kind == Kind::Chunkserver)
        .expect("a chunkserver")
        .addr;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wrong = ClusterSecret::generate();
    for (port, addr) in [("MDS", mds), ("chunkserver", cs)] {
        let outcome = |s: Option<&ClusterSecret>| {
            rt.block_on(async {
                tokio::time::timeout(BOUND, ping_with(addr, s))
                    .await
                    .unwrap_or_else(|_| panic!("{port} {addr}: no answer in {BOUND:?}"))
            })
        };
        match outcome(None) {
            Err(TransportError::Refused(HelloRefusal::AuthFailed)) => {}
            other => panic!("{port} {addr}: without the secret: {other:?}"),
        }
        match outcome(Some(&wrong)) {
            Err(TransportError::PeerNotAuthenticated {
                reason: AuthFailure::BadProof,
                ..
            }) => {}
            other => panic!("{port} {addr}: with another secret: {other:?}"),
        }
        outcome(Some(&secret))
            .unwrap_or_else(|e| panic!("{port} {addr}: with the cluster secret: {e}"));
    }

    // The probes too: refused without the secret, answered with it.
    assert!(wait::mds_leader(mds, None).is_none());
    assert!(wait::mds_leader(mds, Some(&wrong)).is_none());
    let leader = wait::mds_leader(mds, Some(&secret)).expect("the MDS answers");
    assert_eq!(leader.leader, Some(mds));
}
