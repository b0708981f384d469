//! `MdsClient` with three MDS addresses where the first is dead and the second is a
//! standby whose leader hint still names the dead one (the moment after a failover): the
//! client must not bounce between those two but find the third, the new active.

use basalt_client::mds_client::MdsClient;
use basalt_proto::hello::{Identity, Role};
use basalt_proto::mds::ListVolumes;
use basalt_proto::status::MdsError;
use basalt_transport::{ConnectionPool, MemNetwork, Router, TransportOptions};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn opts(name: &str, role: Role) -> TransportOptions {
    TransportOptions::new(Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    })
}

#[tokio::test]
async fn a_stale_hint_to_a_dead_mds_does_not_hide_the_new_active() {
    let (dead, standby, active): (SocketAddr, SocketAddr, SocketAddr) = (
        "127.0.0.1:6001".parse().unwrap(),
        "127.0.0.1:6002".parse().unwrap(),
        "127.0.0.1:6003".parse().unwrap(),
    );
    let net = MemNetwork::new();
    // Nothing serves at `dead`.
    let stale = Router::new().route::<ListVolumes, _, _>(move |_, _, _, _| async move {
        (
            Err(MdsError::NotLeader { leader: Some(dead) }),
            Bytes::new(),
        )
    });
    let live = Router::new()
        .route::<ListVolumes, _, _>(|_, _, _, _| async { (Ok(Vec::new()), Bytes::new()) });
    let mut servers = Vec::new();
    for (addr, router) in [(standby, stale), (active, live)] {
        let name = addr.to_string();
        let t = net.endpoint(&name, opts(&name, Role::Mds)).unwrap();
        servers.push(t.serve(&name, router).await.unwrap());
    }
    let client_t = net
        .endpoint("client", opts("client", Role::Client))
        .unwrap();
    let mds = MdsClient::new(
        Arc::new(ConnectionPool::new(client_t)),
        vec![dead, standby, active],
        Duration::from_millis(200),
        Duration::from_secs(3),
    );
    let got = tokio::time::timeout(Duration::from_secs(10), mds.call(&ListVolumes {}))
        .await
        .expect("bounded");
    assert_eq!(got, Ok(Vec::new()));
    assert_eq!(mds.current(), Some(active));
}
