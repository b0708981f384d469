//! The RPC service over the in-memory transport: standby answers, active answers, and a
//! leader whose lease check fails stops serving at once.

use basalt_mds::service::MdsService;
use basalt_mds::state::{MdsState, StateConfig};
use basalt_mds::store::mem::MemStore;
use basalt_mds::topology::clustermap::ClusterMap;
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{LogicalPoolId, SEGMENT_SIZE};
use basalt_proto::mds::{CreateVolume, GetMdsLeader, ListVolumes, OpenVolume, StatVolume};
use basalt_proto::status::MdsError;
use basalt_transport::{MemNetwork, TransportOptions};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn id(name: &str, role: Role) -> Identity {
    Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    }
}

#[tokio::test]
async fn standby_active_and_deposed_answers() {
    let net = MemNetwork::new();
    let server = net
        .endpoint("mds", TransportOptions::new(id("mds", Role::Mds)))
        .unwrap();
    let client = net
        .endpoint("cli", TransportOptions::new(id("cli", Role::Cli)))
        .unwrap();
    let own: std::net::SocketAddr = "10.0.0.1:8100".parse().unwrap();
    let other: std::net::SocketAddr = "10.0.0.2:8100".parse().unwrap();
    let svc = MdsService::new(Some(own), Arc::new(|| 1_000));
    let _h = server.serve("mds", svc.router()).await.unwrap();
    let conn = client.connect("mds").await.unwrap();

    // Standby.
    svc.set_leader_hint(Some(other));
    let (r, _) = conn.call(&ListVolumes {}, Bytes::new()).await.unwrap();
    assert_eq!(
        r,
        Err(MdsError::NotLeader {
            leader: Some(other)
        })
    );
    let (l, _) = conn.call(&GetMdsLeader {}, Bytes::new()).await.unwrap();
    assert_eq!((l.leader, l.is_leader), (Some(other), false));

    // Active.
    let state = Arc::new(
        MdsState::load(Arc::new(MemStore::new()), StateConfig::default(), 0)
            .await
            .unwrap(),
    );
    let map = ClusterMap::parse(
        "[[physical-pool]]\nname='p'\n[[zone]]\nname='z1'\nphysical-pool='p'\n[[zone]]\nname='z2'\nphysical-pool='p'\n\
         [[zone]]\nname='z3'\nphysical-pool='p'\n[[server]]\nname='h1'\nzone='z1'\n[[server]]\nname='h2'\nzone='z2'\n\
         [[server]]\nname='h3'\nzone='z3'\n[[logical-pool]]\nname='l'\nphysical-pool='p'\nreplicas=3\ncopysets-per-chunkserver=3\n",
    )
    .unwrap();
    state.apply_cluster_map(&map).await.unwrap();
    for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
        let req = basalt_proto::mds::RegisterChunkServer {
            server: h.to_string(),
            disk_uuid: format!("d{i}"),
            addr: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
            existing: None,
            disk: Default::default(),
        };
        state.register(&req, 0).await.unwrap();
    }
    state.create_copysets(LogicalPoolId(1), 1).await.unwrap();
    let leading = Arc::new(AtomicBool::new(true));
    let check = leading.clone();
    svc.activate(state, Arc::new(move || check.load(Ordering::SeqCst)));
    let (l, _) = conn.call(&GetMdsLeader {}, Bytes::new()).await.unwrap();
    assert_eq!((l.leader, l.is_leader), (Some(own), true));
    let create = CreateVolume {
        name: "v".into(),
        size: SEGMENT_SIZE,
        owner: "o".into(),
        auth: None,
    };
    let (v, _) = conn.call(&create, Bytes::new()).await.unwrap();
    let v = v.unwrap();
    let (again, _) = conn.call(&create, Bytes::new()).await.unwrap();
    assert_eq!(again, Err(MdsError::VolumeExists));
    let (bad, _) = conn
        .call(
            &CreateVolume {
                name: ".x".into(),
                size: SEGMENT_SIZE,
                owner: "o".into(),
                auth: None,
            },
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(bad, Err(MdsError::InvalidName));
    let open = OpenVolume {
        name: "v".into(),
        owner: "o".into(),
        shared: false,
        client: "c".into(),
        auth: None,
    };
    let (o, _) = conn.call(&open, Bytes::new()).await.unwrap();
    assert_eq!(o.unwrap().volume, v);
    let (busy, _) = conn.call(&open, Bytes::new()).await.unwrap();
    assert_eq!(busy, Err(MdsError::VolumeBusy { volume: v.id }));

    // Lease lost: NotLeader at once, no state served.
    leading.store(false, Ordering::SeqCst);
    let (r, _) = conn
        .call(&StatVolume { name: "v".into() }, Bytes::new())
        .await
        .unwrap();
    assert!(matches!(r, Err(MdsError::NotLeader { .. })), "{r:?}");
}
