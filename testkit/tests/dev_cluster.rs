//! The dev cluster end to end with real processes: etcd + 3 MDS + 3 chunkservers come up
//! through `DevCluster::up`, `status` shows them alive, the MDS answers `GetMdsLeader`
//! over TCP and counts the 3 registered chunkservers online, killing the active MDS hands over to a standby, stop/cont/restart act on
//! one process, and `down` leaves no process behind.
//!
//! Needs `basalt-mds` and `basalt-chunkserver` built (`cargo build --bins`) in the target
//! dir, or `BASALT_BIN_DIR`, and `etcd` on `PATH`.

use basalt_testkit::cluster::{process, wait, Liveness};
use basalt_testkit::{ClusterSpec, DevCluster};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(30);

fn alive_pids(c: &DevCluster) -> Vec<u32> {
    c.status()
        .iter()
        .filter(|s| s.state != Liveness::Dead)
        .filter_map(|s| s.pid)
        .collect()
}

#[test]
fn dev_cluster_up_failover_and_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(dir.path().join("state"));
    spec.ready_timeout = BOUND;
    // Small data dirs: formatting zero-fills every chunk file.
    spec.pool_chunks = 4;
    let mut c = DevCluster::up(spec).expect("dev cluster up");

    // Every process alive, on its own loopback address.
    let st = c.status();
    assert_eq!(st.len(), 7, "{st:?}");
    assert!(st.iter().all(|s| s.state == Liveness::Running), "{st:?}");
    let pids = alive_pids(&c);
    assert_eq!(pids.len(), 7);

    // The client configuration names the three MDSs.
    let client = &c.client_configs()[0];
    let file = basalt_client::ClientFile::load(Some(client)).unwrap();
    assert_eq!(file.mds, c.mds_addrs());
    // ... and the cluster secret every connection authenticates with (0600).
    let secret_file = c.secret_file().expect("the dev cluster authenticates");
    assert_eq!(file.transport.auth_secret_file.as_ref(), Some(&secret_file));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", secret_file.display());

    // Every MDS answers GetMdsLeader, and they agree on one active.
    let active = c.active_mds().expect("an active MDS");
    for &a in c.mds_addrs() {
        let r = wait::mds_leader(a, c.secret()).expect("MDS answers");
        assert_eq!(r.leader, Some(active), "{a} names the active MDS");
    }

    // Every chunkserver registered with the active MDS (by its server name in the map).
    let st = wait::cluster_status(active, c.secret()).expect("cluster status from the active MDS");
    assert_eq!(st.chunkservers_online, 3, "{st:?}");
    assert_eq!(st.active_mds, Some(active));

    // A state file is enough to find the cluster again (as a second CLI call does).
    let other = DevCluster::attach(c.state_dir()).unwrap();
    assert_eq!(other.status(), c.status());
    assert_eq!(
        other.secret(),
        c.secret(),
        "attach loads the cluster secret"
    );
    // ... and its probes authenticate with it (bounded: a probe may time out under load)
    let found = wait::poll_until(
        "the attached handle finds the active MDS",
        BOUND,
        Duration::from_millis(100),
        || Ok(other.active_mds()),
    )
    .unwrap();
    assert_eq!(found, active);
    drop(other); // attached handles do not stop anything
    assert_eq!(alive_pids(&c).len(), 7);

    // SIGSTOP / SIGCONT one chunkserver.
    c.stop("cs-2").unwrap();
    wait::poll_until("cs-2 stopped", BOUND, Duration::from_millis(20), || {
        Ok(c.status()
            .iter()
            .any(|s| s.name == "cs-2" && s.state == Liveness::Stopped)
            .then_some(()))
    })
    .unwrap();
    c.cont("cs-2").unwrap();
    wait::poll_until("cs-2 running", BOUND, Duration::from_millis(20), || {
        Ok(c.status()
            .iter()
            .any(|s| s.name == "cs-2" && s.state == Liveness::Running)
            .then_some(()))
    })
    .unwrap();

    // Kill the active MDS: a standby takes over.
    let name = c.active_mds_name().expect("active MDS name");
    c.kill(&name).unwrap();
    assert!(c
        .status()
        .iter()
        .any(|s| s.name == name && s.state == Liveness::Dead));
    let new_active = wait::poll_until(
        "a new active MDS",
        BOUND,
        Duration::from_millis(100),
        || Ok(c.active_mds().filter(|&a| a != active)),
    )
    .unwrap();
    assert_ne!(new_active, active);

    // Restart the killed MDS with its old arguments: it serves again (as a standby).
    c.restart(&name).unwrap();
    let r = wait::poll_until(
        "restarted MDS answers",
        BOUND,
        Duration::from_millis(100),
        || Ok(wait::mds_leader(active, c.secret())),
    )
    .unwrap();
    assert!(!r.is_leader);
    assert_eq!(r.leader, Some(new_active));

    // down: every recorded pid is gone.
    let before = alive_pids(&c);
    c.down().unwrap();
    assert!(alive_pids(&c).is_empty());
    for pid in before {
        assert!(
            !process::alive(pid, None),
            "pid {pid} still alive after down"
        );
    }
    assert!(c.status().iter().all(|s| s.pid.is_none()));
}
