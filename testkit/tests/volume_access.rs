//! Volume access control with real processes (etcd, 3 MDS, 3 chunkservers of a dev
//! cluster, whose MDSs enforce owner keys with the admin credential the dev cluster made):
//! the admin registers two owners; one owner's volume is refused to the other owner, to
//! a client without a key and to a client with the wrong key, and opens (and serves I/O)
//! with the owner's key and with the admin credential.
//!
//! Needs `basalt-mds` and `basalt-chunkserver` built in the target dir and `etcd` on PATH.

use basalt_client::config_file::write_key;
use basalt_client::mds_client::MdsClient;
use basalt_client::{ClientError, ClientFile, OpenOptions};
use basalt_proto::credential::{AuthOp, OwnerKey, ADMIN};
use basalt_proto::hello::Role;
use basalt_proto::ids::SEGMENT_SIZE;
use basalt_proto::mds::CreateOwner;
use basalt_proto::status::{AccessRefusal, MdsError};
use basalt_testkit::rig::Rig;
use basalt_transport::ConnectionPool;
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A client file like the dev cluster's, acting as `owner` with `key` (none: no key).
fn file_as(admin: &ClientFile, owner: &str, key: Option<&Path>) -> ClientFile {
    ClientFile {
        owner: owner.into(),
        key_file: key.map(Path::to_path_buf),
        ..admin.clone()
    }
}

#[test]
fn another_owners_volume_needs_its_key() {
    let rig = Rig::up(16).expect("cluster up");
    let admin_file = ClientFile::load(Some(&rig.cluster.client_configs()[0])).unwrap();
    assert_eq!(admin_file.owner, ADMIN, "the dev cluster acts as admin");
    let keys = tempfile::tempdir().unwrap();
    let alice_key = keys.path().join("alice.key");
    let bob_key = keys.path().join("bob.key");
    rig.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            // The admin registers alice and bob (keys made here, verifiers sent).
            let cfg = admin_file.client_config().unwrap();
            let transport = admin_file.transport(Role::Cli, "access-test").unwrap();
            let mds = MdsClient::new(
                Arc::new(ConnectionPool::new(transport)),
                cfg.mds.clone(),
                cfg.mds_call_timeout,
                cfg.mds_retry_for,
            );
            for (name, path) in [("alice", &alice_key), ("bob", &bob_key)] {
                let key = OwnerKey::from_bytes(rand::random());
                write_key(path, &key).unwrap();
                let verifier = key.verifier(rand::random());
                let op = AuthOp::CreateOwner {
                    name,
                    verifier: &verifier,
                };
                mds.call_authed(cfg.principal(), &op, |auth| CreateOwner {
                    name: name.into(),
                    verifier: verifier.clone(),
                    auth,
                })
                .await
                .unwrap();
            }

            let alice = file_as(&admin_file, "alice", Some(&alice_key))
                .cluster()
                .unwrap();
            alice
                .create_volume("alice-vol", SEGMENT_SIZE)
                .await
                .unwrap();
            let v = alice
                .open("alice-vol", OpenOptions::default())
                .await
                .unwrap();
            v.write(0, Bytes::from(vec![0xa1; 4096])).await.unwrap();
            v.close().await.unwrap();

            // Refused: bob with his own key, no key, alice's name with bob's key.
            for (who, file, reason) in [
                (
                    "bob",
                    file_as(&admin_file, "bob", Some(&bob_key)),
                    AccessRefusal::NotOwner,
                ),
                (
                    "no key",
                    file_as(&admin_file, "alice", None),
                    AccessRefusal::NoCredential,
                ),
                (
                    "wrong key",
                    file_as(&admin_file, "alice", Some(&bob_key)),
                    AccessRefusal::BadProof,
                ),
            ] {
                let c = file.cluster().unwrap();
                let e = c
                    .open("alice-vol", OpenOptions::default())
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{who}: opened another owner's volume"));
                assert_eq!(
                    e,
                    ClientError::Mds(MdsError::VolumeAccessDenied {
                        volume: "alice-vol".into(),
                        reason
                    }),
                    "{who}"
                );
                assert!(
                    matches!(
                        c.delete_volume("alice-vol").await,
                        Err(ClientError::Mds(MdsError::VolumeAccessDenied { .. }))
                    ),
                    "{who} deleted it"
                );
            }

            // Allowed: the owner with its key (data intact), then the admin.
            let v = alice
                .open("alice-vol", OpenOptions::default())
                .await
                .unwrap();
            assert_eq!(v.read(0, 4096).await.unwrap(), vec![0xa1; 4096]);
            v.close().await.unwrap();
            let v = rig
                .client
                .open("alice-vol", OpenOptions::default())
                .await
                .expect("the admin credential opens every volume");
            assert_eq!(v.read(0, 4096).await.unwrap(), vec![0xa1; 4096]);
            v.close().await.unwrap();
        })
        .await
        .expect("test timed out");
    });
}
