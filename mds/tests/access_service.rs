//! Volume access control through the real RPC path (service router over the in-memory
//! transport, the client library's MDS client and `Cluster`): owners, keys, the admin
//! credential, refusals, replays and key rotation.

use basalt_client::mds_client::{MdsCallError, MdsClient};
use basalt_client::{ClientConfig, ClientError, Cluster, OpenOptions};
use basalt_mds::service::MdsService;
use basalt_mds::state::{MdsState, StateConfig};
use basalt_mds::store::mem::MemStore;
use basalt_mds::store::MetaStore;
use basalt_mds::topology::clustermap::ClusterMap;
use basalt_proto::credential::{AuthOp, OwnerKey, ADMIN, SALT_LEN};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{LogicalPoolId, SEGMENT_SIZE};
use basalt_proto::mds::{
    CloseVolume, CreateOwner, CreateVolume, DeleteOwner, DeleteVolume, ExtendVolume, ListOwners,
    OpenVolume, SetOwnerKey,
};
use basalt_proto::status::{AccessRefusal, MdsError};
use basalt_transport::{ConnectionPool, MemNetwork, MemTransport, TransportOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MDS: &str = "10.0.0.1:8100";

fn id(name: &str, role: Role) -> Identity {
    Identity {
        role,
        chunkserver: None,
        name: name.into(),
        cluster: String::new(),
    }
}

fn key(b: u8) -> OwnerKey {
    OwnerKey::from_bytes([b; 32])
}

fn mds_addr() -> SocketAddr {
    MDS.parse().unwrap()
}

/// An active MDS enforcing access with admin key 1, serving on the network; its store.
async fn active_mds(net: &MemNetwork) -> (Arc<MdsService>, Arc<MemStore>) {
    let store = Arc::new(MemStore::new());
    let state = MdsState::load(store.clone(), StateConfig::default(), 0)
        .await
        .unwrap()
        .with_admin_verifier(Some(key(1).verifier([1; SALT_LEN])));
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
    let svc = MdsService::new(Some(mds_addr()), Arc::new(|| 1_000));
    svc.activate(Arc::new(state), Arc::new(|| true));
    let server = net
        .endpoint(MDS, TransportOptions::new(id("mds", Role::Mds)))
        .unwrap();
    let handle = server.serve(MDS, svc.router()).await.unwrap();
    std::mem::forget(handle);
    (svc, store)
}

fn mds_client(net: &MemNetwork, name: &str) -> MdsClient<MemTransport> {
    let t = net
        .endpoint(name, TransportOptions::new(id(name, Role::Client)))
        .unwrap();
    MdsClient::new(
        Arc::new(ConnectionPool::new(t)),
        vec![mds_addr()],
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
}

fn denied(volume: &str, reason: AccessRefusal) -> MdsCallError {
    MdsCallError::Mds(MdsError::VolumeAccessDenied {
        volume: volume.into(),
        reason,
    })
}

async fn open_as(
    c: &MdsClient<MemTransport>,
    who: Option<(&str, &OwnerKey)>,
    name: &str,
) -> Result<basalt_proto::mds::Opened, MdsCallError> {
    c.call_authed(who, &AuthOp::OpenVolume { name }, |auth| OpenVolume {
        name: name.into(),
        owner: who.map_or("nobody", |w| w.0).into(),
        shared: true,
        client: "test".into(),
        auth,
    })
    .await
}

async fn create_owner(c: &MdsClient<MemTransport>, name: &str, k: &OwnerKey) {
    let verifier = k.verifier([k.to_hex().as_bytes()[0]; SALT_LEN]);
    let op = AuthOp::CreateOwner {
        name,
        verifier: &verifier,
    };
    c.call_authed(Some((ADMIN, &key(1))), &op, |auth| CreateOwner {
        name: name.into(),
        verifier: verifier.clone(),
        auth,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn owners_keys_and_admin_over_rpc() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let net = MemNetwork::new();
        let (_svc, store) = active_mds(&net).await;
        let c = mds_client(&net, "client-1");
        let admin = key(1);
        let (alice, bob) = (key(2), key(3));
        create_owner(&c, "alice", &alice).await;
        create_owner(&c, "bob", &bob).await;
        // Only a verifier reached etcd, never the key.
        let stored = store.get(b"/basalt/v1/owner/alice").await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&stored.value);
        assert!(!text.contains(&alice.to_hex()), "{text}");

        // alice creates her volume; bob may not create one for her.
        let op = AuthOp::CreateVolume {
            name: "a-vol",
            size: SEGMENT_SIZE,
            owner: "alice",
        };
        let create = |auth| CreateVolume {
            name: "a-vol".into(),
            size: SEGMENT_SIZE,
            owner: "alice".into(),
            auth,
        };
        assert_eq!(
            c.call_authed(Some(("bob", &bob)), &op, create).await,
            Err(denied("a-vol", AccessRefusal::NotOwner))
        );
        c.call_authed(Some(("alice", &alice)), &op, create)
            .await
            .unwrap();

        // Refusals: another owner, no key, a wrong key, a replayed credential.
        assert_eq!(
            open_as(&c, Some(("bob", &bob)), "a-vol").await.unwrap_err(),
            denied("a-vol", AccessRefusal::NotOwner)
        );
        assert_eq!(
            open_as(&c, None, "a-vol").await.unwrap_err(),
            denied("a-vol", AccessRefusal::NoCredential)
        );
        assert_eq!(
            open_as(&c, Some(("alice", &bob)), "a-vol")
                .await
                .unwrap_err(),
            denied("a-vol", AccessRefusal::BadProof)
        );
        let cred = c
            .credential(
                Some(("alice", &alice)),
                &AuthOp::OpenVolume { name: "a-vol" },
            )
            .await
            .unwrap();
        let req = OpenVolume {
            name: "a-vol".into(),
            owner: "alice".into(),
            shared: true,
            client: "replay".into(),
            auth: cred,
        };
        let first = c.call(&req).await.unwrap();
        assert_eq!(
            c.call(&req).await.unwrap_err(),
            denied("a-vol", AccessRefusal::UnknownNonce)
        );
        // A proof for opening does not delete.
        let cred = c
            .credential(
                Some(("alice", &alice)),
                &AuthOp::OpenVolume { name: "a-vol" },
            )
            .await
            .unwrap();
        assert_eq!(
            c.call(&DeleteVolume {
                name: "a-vol".into(),
                auth: cred
            })
            .await
            .unwrap_err(),
            denied("a-vol", AccessRefusal::BadProof)
        );

        // The owner and the admin are allowed.
        open_as(&c, Some(("alice", &alice)), "a-vol").await.unwrap();
        open_as(&c, Some((ADMIN, &admin)), "a-vol").await.unwrap();
        let op = AuthOp::ExtendVolume {
            name: "a-vol",
            size: 2 * SEGMENT_SIZE,
        };
        let grown = c
            .call_authed(Some((ADMIN, &admin)), &op, |auth| ExtendVolume {
                name: "a-vol".into(),
                size: 2 * SEGMENT_SIZE,
                auth,
            })
            .await
            .unwrap();
        assert_eq!(
            (grown.size, grown.owner.as_str()),
            (2 * SEGMENT_SIZE, "alice")
        );

        // Owners cannot manage owners; alice rotates her own key.
        let v = key(9).verifier([9; SALT_LEN]);
        let op = AuthOp::CreateOwner {
            name: "mallory",
            verifier: &v,
        };
        assert_eq!(
            c.call_authed(Some(("alice", &alice)), &op, |auth| CreateOwner {
                name: "mallory".into(),
                verifier: v.clone(),
                auth,
            })
            .await,
            Err(MdsCallError::Mds(MdsError::OwnerAccessDenied {
                owner: "mallory".into(),
                reason: AccessRefusal::AdminRequired
            }))
        );
        let new_alice = key(4);
        let v = new_alice.verifier([4; SALT_LEN]);
        let op = AuthOp::SetOwnerKey {
            name: "alice",
            verifier: &v,
        };
        c.call_authed(Some(("alice", &alice)), &op, |auth| SetOwnerKey {
            name: "alice".into(),
            verifier: v.clone(),
            auth,
        })
        .await
        .unwrap();
        assert_eq!(
            open_as(&c, Some(("alice", &alice)), "a-vol")
                .await
                .unwrap_err(),
            denied("a-vol", AccessRefusal::BadProof)
        );
        open_as(&c, Some(("alice", &new_alice)), "a-vol")
            .await
            .unwrap();

        // An owner with volumes cannot be removed; bob (none) can.
        let admin_ref = &admin;
        let del = |name: &'static str| {
            let c = &c;
            async move {
                c.call_authed(
                    Some((ADMIN, admin_ref)),
                    &AuthOp::DeleteOwner { name },
                    |auth| DeleteOwner {
                        name: name.into(),
                        auth,
                    },
                )
                .await
            }
        };
        assert_eq!(
            del("alice").await,
            Err(MdsCallError::Mds(MdsError::OwnerHasVolumes {
                owner: "alice".into(),
                volumes: 1
            }))
        );
        del("bob").await.unwrap();
        let owners = c.call(&ListOwners {}).await.unwrap();
        assert_eq!(
            owners.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            ["alice"]
        );
        // Owners live in the store: a new active MDS loads them with the rotated key.
        let reloaded = MdsState::load(store.clone(), StateConfig::default(), 0)
            .await
            .unwrap();
        assert_eq!(reloaded.list_owners().await, owners);
        c.call(&CloseVolume {
            volume: first.volume.id,
            session: first.session.id,
        })
        .await
        .unwrap();
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn the_client_library_surfaces_a_refusal_at_once_and_opens_with_the_key() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let net = MemNetwork::new();
        let _mds = active_mds(&net).await;
        let admin = mds_client(&net, "admin");
        create_owner(&admin, "alice", &key(2)).await;
        create_owner(&admin, "bob", &key(3)).await;
        let cluster = |name: &str, owner: &str, k: Option<OwnerKey>| {
            let t = net
                .endpoint(name, TransportOptions::new(id(name, Role::Client)))
                .unwrap();
            let mut cfg = ClientConfig::new(vec![mds_addr()]);
            cfg.owner = owner.into();
            cfg.key = k;
            cfg.mds_retry_for = Duration::from_secs(20);
            Cluster::new(t, cfg)
        };
        let alice = cluster("alice", "alice", Some(key(2)));
        alice.create_volume("db", SEGMENT_SIZE).await.unwrap();

        for (name, owner, k, reason) in [
            ("bob", "bob", Some(key(3)), AccessRefusal::NotOwner),
            ("anon", "alice", None, AccessRefusal::NoCredential),
            ("thief", "alice", Some(key(3)), AccessRefusal::BadProof),
        ] {
            let c = cluster(name, owner, k);
            let t0 = Instant::now();
            let e = c.open("db", OpenOptions::default()).await.err().unwrap();
            assert_eq!(
                e,
                ClientError::Mds(MdsError::VolumeAccessDenied {
                    volume: "db".into(),
                    reason
                }),
                "{name}"
            );
            // Permanent: returned without waiting out the MDS retry window.
            assert!(t0.elapsed() < Duration::from_secs(10), "{name}: retried");
            assert!(matches!(
                c.delete_volume("db").await,
                Err(ClientError::Mds(MdsError::VolumeAccessDenied { .. }))
            ));
        }
        let vol = alice.open("db", OpenOptions::default()).await.unwrap();
        assert_eq!(vol.size(), SEGMENT_SIZE);
        vol.close().await.unwrap();
        let root = cluster("root", ADMIN, Some(key(1)));
        root.rename_volume("db", "db2").await.unwrap();
        root.delete_volume("db2").await.unwrap();
    })
    .await
    .expect("test timed out");
}
