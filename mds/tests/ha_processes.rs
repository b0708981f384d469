//! MDS high availability at process level: a real etcd and three real `basalt-mds`
//! processes.
//!
//! - SIGKILL of the active: another serves a real RPC within the lease TTL (+ slack).
//! - SIGTERM of the active: it resigns and revokes its lease, a standby serves within
//!   milliseconds (the TTL here is 10 s, so a hand-over well under it cannot be expiry).
//! - Standbys answer `NotLeader` with the active's address; `basalt-client`'s `MdsClient`
//!   given all three addresses follows the active, before and after a failover.
//! - SIGSTOP of the active past its TTL, a takeover, SIGCONT: the deposed MDS answers
//!   nothing with success (a request queued while it was stopped included), exits with
//!   code 2, and etcd holds exactly what the new leader wrote.
//! - SIGKILL of every MDS and a fresh start: every volume and segment is still there.
//!
//! Measured times are printed (`--nocapture`); bounds are generous (CPU-starved CI), the
//! figures are in docs/mds.md.

mod common;

use basalt_client::mds_client::{MdsCallError, MdsClient};
use basalt_mds::store::etcd::EtcdStore;
use basalt_mds::store::{list_all, KeyValue};
use basalt_proto::heartbeat::DiskStats;
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{LogicalPoolId, VolumeId, SEGMENT_SIZE};
use basalt_proto::mds::{
    ClusterStatus, CreateVolume, GetSegment, ListCopysets, ListVolumes, OpenVolume,
    RegisterChunkServer, SegmentInfo, StatVolume, VolumeInfo,
};
use basalt_proto::status::MdsError;
use basalt_proto::Rpc;
use basalt_testkit::EtcdProcess;
use basalt_transport::{ConnectionPool, TcpTransport, TransportOptions};
use bytes::Bytes;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every wait in these tests ends by this bound.
const BOUND: Duration = Duration::from_secs(20);
/// One RPC to one MDS (a stopped process never answers).
const CALL: Duration = Duration::from_millis(500);

/// One `basalt-mds` child process.
struct Mds {
    name: String,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Mds {
    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory effects; the pid is our own unreaped child, so it
        // cannot have been recycled for another process.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// Wait (bounded) for the process to exit.
    async fn exited(&mut self) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(t0.elapsed() < BOUND, "{} did not exit", self.name);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// An etcd and the MDS processes on it; kills everything on drop, printing the MDS logs
/// when a test failed.
struct Group {
    etcd: EtcdProcess,
    dir: tempfile::TempDir,
    map: PathBuf,
    ttl_ms: u64,
    mds: Vec<Mds>,
    pool: Arc<ConnectionPool<TcpTransport>>,
    spawned: usize,
}

impl Drop for Group {
    fn drop(&mut self) {
        for m in &mut self.mds {
            let _ = m.child.kill();
            let _ = m.child.wait();
            if std::thread::panicking() {
                let log = std::fs::read_to_string(&m.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("---- {} log tail ----", m.name);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Group {
    async fn start(ttl_ms: u64, n: usize) -> Group {
        let etcd = EtcdProcess::start().expect("etcd");
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("cluster.toml");
        std::fs::write(&map, common::three_zone_map(10)).unwrap();
        let transport = TcpTransport::new(TransportOptions::new(Identity {
            role: Role::Cli,
            chunkserver: None,
            name: "ha-test".into(),
            cluster: String::new(),
        }))
        .unwrap();
        let mut g = Group {
            etcd,
            dir,
            map,
            ttl_ms,
            mds: Vec::new(),
            pool: Arc::new(ConnectionPool::new(transport)),
            spawned: 0,
        };
        for _ in 0..n {
            g.spawn().await;
        }
        g
    }

    /// Start one more MDS and wait for its listen address.
    async fn spawn(&mut self) {
        self.spawned += 1;
        let name = format!("mds-{}", self.spawned);
        let dir = self.dir.path();
        let addr_file = dir.join(format!("{name}.addr"));
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "name = \"{name}\"\nlisten = \"127.0.0.1:0\"\naddr-file = \"{}\"\n\
                 etcd = [\"{}\"]\nelection-ttl-ms = {}\ncluster-map = \"{}\"\n\
                 tick-interval-ms = 100\n[copyset-create]\ninterval-ms = 200\n",
                addr_file.display(),
                self.etcd.endpoint(),
                self.ttl_ms,
                self.map.display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_basalt-mds"))
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn basalt-mds");
        let addr = wait_for("addr file", || {
            let f = addr_file.clone();
            async move { std::fs::read_to_string(&f).ok()?.trim().parse().ok() }
        })
        .await;
        self.mds.push(Mds {
            name,
            child,
            addr,
            log,
        });
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.mds.iter().map(|m| m.addr).collect()
    }

    /// One bounded call; `None` when the MDS did not answer (down, stopped, refused).
    async fn call<R: Rpc>(&self, addr: SocketAddr, req: &R) -> Option<R::Reply> {
        match tokio::time::timeout(CALL, self.pool.call(&addr, req, Bytes::new())).await {
            Ok(Ok((reply, _))) => Some(reply),
            Ok(Err(_)) => None,
            Err(_) => {
                self.pool.invalidate(&addr);
                None
            }
        }
    }

    /// Whether the MDS at `addr` serves: answers `ClusterStatus` with success.
    async fn serves(&self, addr: SocketAddr) -> bool {
        matches!(self.call(addr, &ClusterStatus {}).await, Some(Ok(_)))
    }

    /// The index of the MDS serving, among `among`, waiting for one.
    async fn active_among(&self, among: &[usize]) -> usize {
        wait_for("an active MDS", || async move {
            for &i in among {
                if self.serves(self.mds[i].addr).await {
                    return Some(i);
                }
            }
            None
        })
        .await
    }

    async fn active(&self) -> usize {
        let all: Vec<usize> = (0..self.mds.len()).collect();
        self.active_among(&all).await
    }

    /// Time from `t0` until one of `among` serves, polling them back to back.
    async fn serving_after(&self, t0: Instant, among: &[usize]) -> (usize, Duration) {
        loop {
            for &i in among {
                if self.serves(self.mds[i].addr).await {
                    return (i, t0.elapsed());
                }
            }
            assert!(t0.elapsed() < BOUND, "no MDS of {among:?} took over");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn mds_client(&self, addrs: Vec<SocketAddr>) -> MdsClient<TcpTransport> {
        MdsClient::new(self.pool.clone(), addrs, CALL, BOUND)
    }

    /// Everything the MDS stored, except the election keys (leases come and go).
    async fn etcd_content(&self) -> Vec<KeyValue> {
        let store = EtcdStore::connect(&[self.etcd.endpoint()]).await.unwrap();
        let all = list_all(&store, b"/basalt/v1/", 500).await.unwrap();
        all.into_iter()
            .filter(|kv| !kv.key.starts_with(basalt_mds::keys::LEADER.as_bytes()))
            .collect()
    }
}

async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t0.elapsed() < BOUND, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn create(name: &str, segments: u64) -> CreateVolume {
    CreateVolume {
        name: name.into(),
        size: segments * SEGMENT_SIZE,
        owner: "ha".into(),
        auth: None,
    }
}

fn others(n: usize, but: usize) -> Vec<usize> {
    (0..n).filter(|i| *i != but).collect()
}

/// Every standby refuses with the active's address (its hint follows the election).
async fn standbys_point_at(g: &Group, active: usize) {
    let want = g.mds[active].addr;
    for i in others(g.mds.len(), active) {
        let addr = g.mds[i].addr;
        wait_for("standby hint", || async move {
            match g.call(addr, &create("nope", 1)).await? {
                Err(MdsError::NotLeader { leader }) => (leader == Some(want)).then_some(()),
                other => panic!("standby {addr} answered {other:?}"),
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_active_fails_over_and_clients_follow() {
    let ttl = Duration::from_secs(2);
    let mut g = Group::start(2_000, 3).await;
    register_chunkservers(&g.mds_client(g.addrs())).await;
    let a = g.active().await;
    standbys_point_at(&g, a).await;

    // A client given every address, the active last, finds it.
    let mut addrs = g.addrs();
    addrs.swap(a, 2);
    let client = g.mds_client(addrs);
    let v = client.call(&create("vol-a", 2)).await.unwrap();
    assert_eq!(client.current(), Some(g.mds[a].addr));

    // Only one active.
    for i in others(3, a) {
        assert!(!g.serves(g.mds[i].addr).await, "two active MDS");
    }

    let t0 = Instant::now();
    g.mds[a].child.kill().unwrap();
    let (b, failover) = g.serving_after(t0, &others(3, a)).await;
    println!("failover after SIGKILL of the active MDS: {failover:?} (lease ttl {ttl:?})");
    // The target is TTL + 1 s; bounded loosely so a starved CI machine does not fail it.
    assert!(failover < ttl * 3, "{failover:?}");
    g.mds[a].exited().await;

    // The same client follows the new active and sees the volume.
    let stat = client
        .call(&StatVolume {
            name: "vol-a".into(),
        })
        .await
        .unwrap();
    assert_eq!(stat, v);
    assert_eq!(client.current(), Some(g.mds[b].addr));
    let c = others(3, a).into_iter().find(|i| *i != b).unwrap();
    assert!(!g.serves(g.mds[c].addr).await, "two active MDS");
    let addr_c = g.mds[c].addr;
    let want = g.mds[b].addr;
    let g = &g;
    wait_for(
        "remaining standby points at the new active",
        || async move {
            match g.call(addr_c, &ListVolumes {}).await? {
                Err(MdsError::NotLeader { leader }) => (leader == Some(want)).then_some(()),
                other => panic!("standby answered {other:?}"),
            }
        },
    )
    .await;
    let listed = client.call(&ListVolumes {}).await.unwrap();
    assert_eq!(listed, vec![v]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_over_in_milliseconds() {
    // A 10 s TTL: a hand-over far below it can only be the resign + revoke.
    let mut g = Group::start(10_000, 3).await;
    register_chunkservers(&g.mds_client(g.addrs())).await;
    let first = g.active().await;
    let v = match g.call(g.mds[first].addr, &create("vol-t", 1)).await {
        Some(Ok(v)) => v,
        other => panic!("create: {other:?}"),
    };
    let mut active = first;
    let mut alive: Vec<usize> = (0..3).collect();
    let mut figures = Vec::new();
    for _ in 0..2 {
        alive.retain(|i| *i != active);
        let t0 = Instant::now();
        g.mds[active].signal(libc::SIGTERM);
        let (next, handover) = g.serving_after(t0, &alive).await;
        println!(
            "graceful hand-over {} -> {}: {handover:?}",
            g.mds[active].name, g.mds[next].name
        );
        figures.push(handover);
        assert!(handover < Duration::from_secs(3), "{handover:?}");
        let status = g.mds[active].exited().await;
        assert_eq!(status.code(), Some(0), "a requested stop exits 0");
        match g
            .call(
                g.mds[next].addr,
                &StatVolume {
                    name: "vol-t".into(),
                },
            )
            .await
        {
            Some(Ok(s)) => assert_eq!(s, v),
            other => panic!("stat on the new active: {other:?}"),
        }
        active = next;
    }
    println!("graceful hand-overs (ttl 10 s): {figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposed_mds_writes_nothing_and_exits() {
    let mut g = Group::start(2_000, 3).await;
    register_chunkservers(&g.mds_client(g.addrs())).await;
    let a = g.active().await;
    let addr_a = g.mds[a].addr;
    match g.call(addr_a, &create("before", 1)).await {
        Some(Ok(_)) => {}
        other => panic!("create: {other:?}"),
    }
    // Connect now: a stopped process still completes TCP handshakes from its backlog, but
    // the hello would hang.
    let conn = g.pool.get(&addr_a).await.unwrap();

    let t0 = Instant::now();
    g.mds[a].signal(libc::SIGSTOP);
    // A write sent while it is frozen: handled (if at all) only after it wakes up.
    let queued = tokio::spawn(async move {
        tokio::time::timeout(BOUND, conn.call(&create("stale-queued", 1), Bytes::new())).await
    });
    let (b, takeover) = g.serving_after(t0, &others(3, a)).await;
    println!("takeover from a SIGSTOPped active: {takeover:?} (lease ttl 2 s)");
    let addr_b = g.mds[b].addr;
    match g.call(addr_b, &create("after", 1)).await {
        Some(Ok(_)) => {}
        other => panic!("create on the new active: {other:?}"),
    }
    let before = g.etcd_content().await;

    g.mds[a].signal(libc::SIGCONT);
    match queued.await.unwrap() {
        Ok(Ok((Err(MdsError::NotLeader { .. }), _))) | Ok(Err(_)) => {}
        other => panic!("the deposed MDS answered the queued write with {other:?}"),
    }
    // Fresh requests are refused too, until it exits.
    let t1 = Instant::now();
    loop {
        match g.call(addr_a, &create("stale-fresh", 1)).await {
            None => break,
            Some(Err(MdsError::NotLeader { .. })) => {}
            Some(other) => panic!("the deposed MDS answered {other:?}"),
        }
        if g.mds[a].child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(t1.elapsed() < BOUND, "the deposed MDS keeps running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = g.mds[a].exited().await;
    println!(
        "deposed MDS exited {:?} after {:?}",
        status.code(),
        t1.elapsed()
    );
    assert_eq!(status.code(), Some(2), "losing leadership exits 2");

    // etcd: exactly what the new leader left (same keys, values and revisions).
    assert_eq!(g.etcd_content().await, before);
    let names: Vec<String> = match g.call(addr_b, &ListVolumes {}).await {
        Some(Ok(v)) => v.into_iter().map(|v| v.name).collect(),
        other => panic!("list: {other:?}"),
    };
    assert_eq!(names, ["before", "after"]);
    assert!(g.serves(addr_b).await, "the new active was not disturbed");
}

/// Register three (absent) chunkservers, one per zone, and wait for the pool's copysets.
async fn register_chunkservers(client: &MdsClient<TcpTransport>) {
    for (i, host) in ["h1", "h2", "h3"].iter().enumerate() {
        // Nothing listens there: copyset-create calls fail and are retried, harmlessly.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let req = RegisterChunkServer {
            server: host.to_string(),
            disk_uuid: format!("disk-{i}"),
            addr,
            existing: None,
            disk: DiskStats {
                total_bytes: 1 << 40,
                ..Default::default()
            },
        };
        client.call(&req).await.unwrap();
    }
    wait_for("copysets", || async move {
        let l = client
            .call(&ListCopysets {
                pool: LogicalPoolId(1),
            })
            .await
            .ok()?;
        (!l.is_empty()).then_some(())
    })
    .await;
}

async fn segments_of(
    client: &MdsClient<TcpTransport>,
    v: &VolumeInfo,
) -> Vec<(u64, Option<SegmentInfo>)> {
    let mut out = Vec::new();
    for index in 0..v.size / SEGMENT_SIZE {
        let s = client
            .call(&GetSegment {
                volume: v.id,
                session: String::new(),
                index,
                allocate: false,
            })
            .await
            .unwrap();
        out.push((index, s));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_every_mds_keeps_volumes_and_segments() {
    let mut g = Group::start(2_000, 3).await;
    let client = g.mds_client(g.addrs());
    register_chunkservers(&client).await;
    let mut vols = Vec::new();
    for (name, segments) in [("r1", 3u64), ("r2", 2)] {
        let v = client.call(&create(name, segments)).await.unwrap();
        let opened = client
            .call(&OpenVolume {
                name: name.into(),
                owner: "ha".into(),
                shared: false,
                client: "ha-test".into(),
                auth: None,
            })
            .await
            .unwrap();
        // Allocate every other segment.
        for index in (0..segments).step_by(2) {
            let s = client
                .call(&GetSegment {
                    volume: v.id,
                    session: opened.session.id.clone(),
                    index,
                    allocate: true,
                })
                .await
                .unwrap();
            assert!(s.is_some());
        }
        vols.push(v);
    }
    let mut before = Vec::new();
    for v in &vols {
        before.push(segments_of(&client, v).await);
    }
    let allocated = before.iter().flatten().filter(|(_, s)| s.is_some()).count();
    assert_eq!(allocated, 3);

    for m in &mut g.mds {
        m.child.kill().unwrap();
    }
    for m in &mut g.mds {
        m.exited().await;
    }
    for _ in 0..3 {
        g.spawn().await;
    }
    let fresh: Vec<SocketAddr> = g.addrs()[3..].to_vec();
    let client = g.mds_client(fresh);
    let listed = client.call(&ListVolumes {}).await.unwrap();
    assert_eq!(listed, vols);
    for (v, want) in vols.iter().zip(&before) {
        assert_eq!(&segments_of(&client, v).await, want, "{}", v.name);
    }
    // An unknown volume stays unknown (the state is etcd's, not a default).
    assert_eq!(
        client
            .call(&GetSegment {
                volume: VolumeId(999),
                session: String::new(),
                index: 0,
                allocate: false,
            })
            .await,
        Err(MdsCallError::Mds(MdsError::VolumeNotFound))
    );
}

/// etcd goes away: the active MDS steps down (it cannot keep a lease without etcd) and
/// exits 2 for its supervisor, but a standby stays up, retrying, and takes over once etcd
/// is back — an outage must not leave a cluster with no MDS process at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_outlives_an_etcd_outage_and_takes_over() {
    let mut g = Group::start(2000, 2).await;
    let first = g.active().await;
    let standby = 1 - first;
    g.etcd.kill();
    let status = g.mds[first].exited().await;
    assert_eq!(status.code(), Some(2), "the active steps down with exit 2");
    let log = g.mds[standby].log.clone();
    wait_for("the standby to retry its campaign", || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("failed; retrying").then_some(())
        }
    })
    .await;
    assert!(
        g.mds[standby].child.try_wait().unwrap().is_none(),
        "the standby exited during the outage"
    );
    g.etcd.restart().expect("restart etcd");
    let t0 = Instant::now();
    let (now, took) = g.serving_after(t0, &[standby]).await;
    assert_eq!(now, standby);
    eprintln!("standby active {took:?} after etcd came back");
}
