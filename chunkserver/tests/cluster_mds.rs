//! Chunkservers managed by a real `basalt-mds` on a real etcd, all as processes: they
//! register (ids persisted in the data dir, kept across restarts, a wrong token refused),
//! their heartbeats tell the MDS who leads each copyset, I/O goes on while the MDS is
//! down, and the operators the MDS sends in heartbeat replies replace a dead chunkserver.
//!
//! The MDS binary is expected next to the chunkserver's (`cargo build -p basalt-mds`, or
//! build every binary of the workspace before the tests).

mod support;

use basalt_chunkserver::datadir::DataDir;
use basalt_proto::chunk::{CopysetStatus, CopysetStatusOk, CreateCopyset, RaftRole, WriteChunk};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{ChunkId, ChunkServerId, CopysetId, GroupId, LogicalPoolId};
use basalt_proto::mds::{CopysetInfo, GetCopysets, GetMdsLeader};
use basalt_proto::status::{ChunkError, MdsError};
use basalt_proto::Rpc;
use basalt_testkit::EtcdProcess;
use basalt_transport::{ConnectionPool, TcpTransport, TransportOptions};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{wait_for, BIN, CHUNK, WAIT};

/// Heartbeat period of the chunkservers under test.
const HEARTBEAT_MS: u64 = 300;

fn mds_bin() -> PathBuf {
    let p = Path::new(BIN).with_file_name("basalt-mds");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p basalt-mds` (same profile and target dir) first",
        p.display()
    );
    p
}

struct Proc {
    child: Option<Child>,
}

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
    }

    async fn term(&mut self) {
        let mut c = self.child.take().expect("running");
        // SAFETY: kill(2) on the pid of our own unreaped child; no memory is involved.
        let rc = unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let status = wait_for("exit after SIGTERM", WAIT, || {
            let s = c.try_wait().expect("try_wait");
            async move { s }
        })
        .await;
        assert!(status.success(), "exit status {status}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster map: zones z1..z3 (one server each, h1..h3) plus `extra` servers in z1.
fn cluster_map(extra: &[&str], copysets_per_cs: u32) -> String {
    let mut m = String::from("[[physical-pool]]\nname = \"p\"\n");
    for z in 1..=3 {
        m += &format!("[[zone]]\nname = \"z{z}\"\nphysical-pool = \"p\"\n");
        m += &format!("[[server]]\nname = \"h{z}\"\nzone = \"z{z}\"\n");
    }
    for s in extra {
        m += &format!("[[server]]\nname = \"{s}\"\nzone = \"z1\"\n");
    }
    m += &format!(
        "[[logical-pool]]\nname = \"blocks\"\nphysical-pool = \"p\"\nreplicas = 3\n\
         copysets-per-chunkserver = {copysets_per_cs}\n"
    );
    m
}

struct Env {
    root: tempfile::TempDir,
    etcd: EtcdProcess,
    mds: Proc,
    mds_addr: SocketAddr,
    mds_cfg: PathBuf,
    pool: ConnectionPool<TcpTransport>,
    /// Chunkservers by server name.
    cs: BTreeMap<String, Cs>,
}

struct Cs {
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    addr: Option<SocketAddr>,
    proc: Proc,
}

impl Env {
    async fn start(map: &str, min_chunkservers: usize, offline_after_ms: u64) -> Env {
        let root = tempfile::tempdir().unwrap();
        let etcd = EtcdProcess::start().expect("etcd");
        let map_path = root.path().join("cluster.toml");
        std::fs::write(&map_path, map).unwrap();
        let mds_cfg = root.path().join("mds.toml");
        std::fs::write(
            &mds_cfg,
            format!(
                "name = \"mds-1\"\nlisten = \"127.0.0.1:0\"\naddr-file = \"{}\"\n\
                 etcd = [\"{}\"]\nelection-ttl-ms = 2000\ncluster-map = \"{}\"\n\
                 tick-interval-ms = 100\ncopyset-min-chunkservers = {min_chunkservers}\n\
                 [state.liveness]\nunstable-after-ms = {}\noffline-after-ms = {offline_after_ms}\n",
                root.path().join("mds.addr").display(),
                etcd.endpoint(),
                map_path.display(),
                offline_after_ms / 2,
            ),
        )
        .unwrap();
        let transport = TcpTransport::new(TransportOptions::new(Identity {
            role: Role::Tool,
            chunkserver: None,
            name: "cluster-mds-test".into(),
            cluster: String::new(),
        }))
        .unwrap();
        let mut env = Env {
            root,
            etcd,
            mds: Proc { child: None },
            mds_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            mds_cfg,
            pool: ConnectionPool::new(transport),
            cs: BTreeMap::new(),
        };
        env.start_mds(None).await;
        env
    }

    /// Start the MDS (on `at` when restarting) and wait until it is active.
    async fn start_mds(&mut self, at: Option<SocketAddr>) {
        let addr_file = self.root.path().join("mds.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("mds.log"))
            .unwrap();
        let mut cmd = Command::new(mds_bin());
        cmd.arg("--config").arg(&self.mds_cfg);
        if let Some(a) = at {
            cmd.args(["--listen", &a.to_string()]);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn basalt-mds");
        self.mds.child = Some(child);
        let addr: SocketAddr = wait_for("MDS address", WAIT, || {
            let t = std::fs::read_to_string(&addr_file).ok();
            async move { t?.trim().parse().ok() }
        })
        .await;
        self.mds_addr = addr;
        wait_for("MDS to be active", WAIT, || async {
            let (r, _) = self.call(addr, &GetMdsLeader {}).await?;
            r.is_leader.then_some(())
        })
        .await;
    }

    async fn call<R: Rpc>(&self, addr: SocketAddr, req: &R) -> Option<(R::Reply, Bytes)> {
        self.call_with(addr, req, Bytes::new()).await
    }

    async fn call_with<R: Rpc>(
        &self,
        addr: SocketAddr,
        req: &R,
        payload: Bytes,
    ) -> Option<(R::Reply, Bytes)> {
        match tokio::time::timeout(Duration::from_secs(5), self.pool.call(&addr, req, payload))
            .await
        {
            Ok(Ok(r)) => Some(r),
            _ => {
                self.pool.invalidate(&addr);
                None
            }
        }
    }

    /// Format a data dir for server `name` and write its config.
    fn add_cs(&mut self, name: &str) {
        let dir = self.root.path().join(name);
        let out = Command::new(BIN)
            .args([
                "format",
                "--quiet",
                "--pool-size",
                "6",
                "--wal-segments",
                "4",
            ])
            .args(["--wal-segment-size", &(4u64 << 20).to_string()])
            .args(["--chunk-size", &CHUNK.to_string()])
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .expect("format");
        assert!(
            out.status.success(),
            "format: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = self.root.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nmds-addrs = [\"{}\"]\nserver-name = \"{name}\"\n\
                 heartbeat-interval-ms = {HEARTBEAT_MS}\nmds-timeout-ms = 1000\n\
                 [io]\npollers = 1\n\
                 [copyset]\nheartbeat-interval-ms = 50\nheartbeat-min-interval-ms = 50\n\
                 election-timeout-min-ms = 300\nelection-timeout-max-ms = 600\n\
                 unreachable-backoff-ms = 50\nrpc-timeout-ms = 2000\ncatch-up-timeout-ms = 15000\n\
                 [transport]\ncall-timeout-ms = 5000\nfast-path = \"off\"\nshutdown-grace-ms = 2000\n",
                self.mds_addr
            ),
        )
        .unwrap();
        self.cs.insert(
            name.to_string(),
            Cs {
                log: self.root.path().join(format!("{name}.log")),
                dir,
                config,
                addr: None,
                proc: Proc { child: None },
            },
        );
    }

    fn spawn_cs(&mut self, name: &str) {
        let c = self.cs.get_mut(name).unwrap();
        let _ = std::fs::remove_file(c.dir.join("listen-addr"));
        let listen = c.addr.map_or("127.0.0.1:0".to_string(), |a| a.to_string());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&c.log)
            .unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&c.config)
            .arg("serve")
            .arg("--data-dir")
            .arg(&c.dir)
            .args(["--listen", &listen, "--metrics-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn chunkserver");
        c.proc.child = Some(child);
    }

    /// Start `name` and wait until it serves (it has registered by then).
    async fn start_cs(&mut self, name: &str) {
        self.spawn_cs(name);
        let file = self.cs[name].dir.join("listen-addr");
        let text = wait_for(&format!("{name} to serve"), WAIT, || {
            let t = std::fs::read_to_string(&file).ok();
            async move { t }
        })
        .await;
        let addr: SocketAddr = text.trim().parse().unwrap();
        let c = self.cs.get_mut(name).unwrap();
        if let Some(old) = c.addr {
            assert_eq!(old, addr);
        }
        c.addr = Some(addr);
    }

    fn id_of(&self, name: &str) -> ChunkServerId {
        let meta = DataDir::read_meta(&self.cs[name].dir).unwrap();
        meta.chunkserver_id.expect("registered id in the data dir")
    }

    fn name_of(&self, id: ChunkServerId) -> String {
        self.cs
            .keys()
            .find(|n| self.id_of(n) == id)
            .cloned()
            .expect("known id")
    }

    async fn copysets(&self, groups: &[GroupId]) -> Option<Vec<CopysetInfo>> {
        let req = GetCopysets {
            groups: groups.to_vec(),
        };
        match self.call(self.mds_addr, &req).await? {
            (Ok(v), _) => Some(v),
            (Err(MdsError::CopysetNotFound { .. } | MdsError::NotLeader { .. }), _) => None,
            (Err(e), _) => panic!("GetCopysets: {e}"),
        }
    }

    async fn status(&self, name: &str, g: GroupId) -> Option<CopysetStatusOk> {
        let addr = self.cs[name].addr?;
        self.cs[name].proc.child.as_ref()?;
        match self.call(addr, &CopysetStatus { group: g }).await? {
            (Ok(s), _) => Some(s),
            _ => None,
        }
    }

    /// Every copyset has a leader that the MDS knows from heartbeats and that leads in
    /// fact; returns the leaders' names.
    async fn leaders_known_to_mds(&self, groups: &[GroupId]) -> Vec<String> {
        wait_for("the MDS to learn every leader", WAIT, || async {
            let infos = self.copysets(groups).await?;
            let mut out = Vec::new();
            for info in infos {
                let name = self.name_of(info.leader?);
                let st = self.status(&name, info.group).await?;
                if st.role != RaftRole::Leader || st.epoch != info.epoch {
                    return None;
                }
                out.push(name);
            }
            Some(out)
        })
        .await
    }

    /// Write 4 KiB to chunk 1 of `g` through its leader.
    async fn write(&self, g: GroupId, fill: u8) {
        let data = Bytes::from(vec![fill; 4096]);
        wait_for(&format!("a write to {g}"), WAIT, || async {
            for name in self.cs.keys() {
                let Some(st) = self.status(name, g).await else {
                    continue;
                };
                if st.role != RaftRole::Leader {
                    continue;
                }
                let req = WriteChunk {
                    group: g,
                    chunk: ChunkId(1),
                    epoch: st.epoch,
                    offset: 0,
                    len: data.len() as u32,
                    crc32c: crc32c::crc32c(&data),
                    req: basalt_proto::chunk::RequestId::NONE,
                };
                match self
                    .call_with(self.cs[name].addr?, &req, data.clone())
                    .await?
                {
                    (Ok(_), _) => return Some(()),
                    (Err(ChunkError::Redirect { .. } | ChunkError::Unavailable), _) => {}
                    (Err(ChunkError::EpochTooOld { .. }), _) => {}
                    (Err(e), _) => panic!("write {g}: {e}"),
                }
            }
            None
        })
        .await
    }

    /// The copysets of logical pool 1, as placed by the MDS; once placed, make sure every
    /// replica exists (CreateCopyset is idempotent, so this is harmless when the MDS's own
    /// reconciler already created them).
    async fn placed(&self, n: u32) -> (Vec<GroupId>, Vec<CopysetInfo>) {
        let groups: Vec<GroupId> = (1..=n)
            .map(|i| GroupId::of(LogicalPoolId(1), CopysetId(i)))
            .collect();
        let infos = wait_for("the MDS to place copysets", WAIT, || self.copysets(&groups)).await;
        for info in &infos {
            for p in &info.peers {
                let req = CreateCopyset {
                    group: info.group,
                    peers: info.peers.clone(),
                };
                wait_for("CreateCopyset", WAIT, || async {
                    match self.call(p.addr, &req).await? {
                        (Ok(()), _) => Some(()),
                        (Err(e), _) => panic!("create {} on {}: {e}", info.group, p.id),
                    }
                })
                .await;
            }
        }
        (groups, infos)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunkservers_register_heartbeat_and_survive_mds_restarts() {
    let mut env = Env::start(&cluster_map(&[], 2), 3, 300_000).await;
    for name in ["h1", "h2", "h3"] {
        env.add_cs(name);
        env.start_cs(name).await;
    }
    // Registered: distinct ids, token and cluster persisted in each data dir.
    let mut ids = Vec::new();
    for name in ["h1", "h2", "h3"] {
        let meta = DataDir::read_meta(&env.cs[name].dir).unwrap();
        assert!(meta.token.as_deref().is_some_and(|t| !t.is_empty()));
        assert!(meta.cluster_id.as_deref().is_some_and(|c| !c.is_empty()));
        ids.push(meta.chunkserver_id.expect("id"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct ids");

    // The MDS places 3 × 2 / 3 = 2 copysets on the three; the MDS learns every leader
    // from heartbeats.
    let (groups, infos) = env.placed(2).await;
    for info in &infos {
        let mut peers: Vec<_> = info.peers.iter().map(|p| p.id).collect();
        peers.sort();
        assert_eq!(peers, ids, "{}: one replica per zone", info.group);
    }
    env.leaders_known_to_mds(&groups).await;
    for g in &groups {
        env.write(*g, 1).await;
    }

    // A restart keeps the id.
    let before = env.id_of("h2");
    env.cs.get_mut("h2").unwrap().proc.term().await;
    env.start_cs("h2").await;
    assert_eq!(env.id_of("h2"), before);

    // A wrong token is refused: the chunkserver exits non-zero and says why.
    env.cs.get_mut("h3").unwrap().proc.term().await;
    let mut dir = DataDir::open(&env.cs["h3"].dir, None).unwrap();
    let (id, token, cluster) = {
        let m = dir.meta();
        (
            m.chunkserver_id.unwrap(),
            m.token.clone().unwrap(),
            m.cluster_id.clone().unwrap(),
        )
    };
    dir.set_identity(id, "not-the-token".into(), cluster.clone())
        .unwrap();
    env.spawn_cs("h3");
    let status = wait_for("h3 to give up", WAIT, || {
        let s = env
            .cs
            .get_mut("h3")
            .unwrap()
            .proc
            .child
            .as_mut()
            .unwrap()
            .try_wait()
            .unwrap();
        async move { s }
    })
    .await;
    env.cs.get_mut("h3").unwrap().proc.child = None;
    assert!(!status.success());
    let log = std::fs::read_to_string(&env.cs["h3"].log).unwrap();
    assert!(log.contains("token mismatch"), "{log}");
    dir.set_identity(id, token, cluster).unwrap();
    env.start_cs("h3").await;
    assert_eq!(env.id_of("h3"), id);

    // The MDS dies: chunkservers keep serving I/O; a new MDS learns the leaders again
    // (leader hints are not persisted, so only heartbeats can tell it).
    let mds_addr = env.mds_addr;
    env.mds.kill();
    for g in &groups {
        env.write(*g, 2).await;
    }
    wait_for("a chunkserver to notice the MDS is gone", WAIT, || {
        let log = std::fs::read_to_string(&env.cs["h1"].log).unwrap_or_default();
        async move { log.contains("heartbeat not answered").then_some(()) }
    })
    .await;
    env.start_mds(Some(mds_addr)).await;
    env.leaders_known_to_mds(&groups).await;
    let _ = &env.etcd;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_chunkserver_is_replaced_in_its_zone_by_mds_operators() {
    // z1 has two servers (h1, h4); 4 × 1 / 3 → 2 copysets, one replica per zone.
    let mut env = Env::start(&cluster_map(&["h4"], 1), 4, 3000).await;
    // Registration order gives ids: h4 = cs1, h1 = cs4. The victim is the z1 replica with
    // the lower id, so the spare joining in its place does not have the lowest id of its
    // copyset (a joiner that would cannot be prepared yet; see mds_link::operators).
    for name in ["h4", "h2", "h3", "h1"] {
        env.add_cs(name);
        env.start_cs(name).await;
    }
    let (groups, infos) = env.placed(2).await;
    env.leaders_known_to_mds(&groups).await;
    for g in &groups {
        env.write(*g, 7).await;
    }
    let (victim, spare) = (env.id_of("h4"), env.id_of("h1"));
    assert!(victim < spare);
    let (victim_name, spare_name) = (env.name_of(victim), env.name_of(spare));
    let affected: Vec<GroupId> = infos
        .iter()
        .filter(|i| i.peers.iter().any(|p| p.id == victim))
        .map(|i| i.group)
        .collect();
    assert!(!affected.is_empty(), "{victim} holds a replica");

    env.cs.get_mut(&victim_name).unwrap().proc.kill();

    // Offline after 3 s; the scheduler's ChangePeer {victim → spare} reaches each leader
    // in a heartbeat reply; the leader runs it; its next heartbeat shows the new epoch.
    wait_for(
        "the dead chunkserver's copysets to move to the spare",
        Duration::from_secs(60),
        || async {
            let infos = env.copysets(&affected).await?;
            for info in &infos {
                let ids: Vec<_> = info.peers.iter().map(|p| p.id).collect();
                if ids.len() != 3 || ids.contains(&victim) || !ids.contains(&spare) {
                    return None;
                }
                let st = env.status(&spare_name, info.group).await?;
                if !matches!(st.role, RaftRole::Follower | RaftRole::Leader)
                    || st.epoch < info.epoch
                {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    // Healthy again: every copyset has a leader the MDS knows, and takes writes.
    env.leaders_known_to_mds(&groups).await;
    for g in &groups {
        env.write(*g, 8).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_chunkserver_hands_its_copysets_to_the_spare_in_its_zone() {
    use basalt_proto::mds::{DrainChunkServer, DrainState, DrainStatus, ListDrains};
    // As above: z1 has h1 and h4; h4 registers first (cs1) and is drained, so the spare
    // joining (h1) never has the lowest id of its copyset.
    let mut env = Env::start(&cluster_map(&["h4"], 1), 4, 3000).await;
    for name in ["h4", "h2", "h3", "h1"] {
        env.add_cs(name);
        env.start_cs(name).await;
    }
    let (groups, _) = env.placed(2).await;
    env.leaders_known_to_mds(&groups).await;
    for g in &groups {
        env.write(*g, 7).await;
    }
    let (victim, spare) = (env.id_of("h4"), env.id_of("h1"));
    let spare_name = env.name_of(spare);
    let drain = |undo| DrainChunkServer { id: victim, undo };
    let (r, _) = env.call(env.mds_addr, &drain(false)).await.expect("drain");
    let s: DrainStatus = r.expect("drain accepted");
    assert_eq!(s.state, DrainState::Draining, "{s:?}");
    assert!(s.copysets > 0, "{victim} holds a replica: {s:?}");
    let moved: Vec<GroupId> = env
        .copysets(&groups)
        .await
        .expect("placement")
        .iter()
        .filter(|i| i.peers.iter().any(|p| p.id == victim))
        .map(|i| i.group)
        .collect();
    let zone = |name: &str| {
        if name == "h1" || name == "h4" {
            "z1".to_string()
        } else {
            format!("z{}", &name[1..])
        }
    };

    // The MDS moves leadership off it, then each replica to h1 (the spare in its zone).
    wait_for(
        "the drained chunkserver to hold no copyset",
        Duration::from_secs(60),
        || async {
            let (r, _) = env.call(env.mds_addr, &ListDrains {}).await?;
            let s = r.ok()?.into_iter().find(|d| d.id == victim)?;
            if s.state != DrainState::Drained {
                return None;
            }
            let infos = env.copysets(&groups).await?;
            for info in &infos {
                let names: Vec<String> = info.peers.iter().map(|p| env.name_of(p.id)).collect();
                let zones: std::collections::BTreeSet<String> =
                    names.iter().map(|n| zone(n)).collect();
                if names.len() != 3 || zones.len() != 3 || info.peers.iter().any(|p| p.id == victim)
                {
                    return None;
                }
                if info.peers.iter().any(|p| p.id == spare) {
                    let st = env.status(&spare_name, info.group).await?;
                    if !matches!(st.role, RaftRole::Follower | RaftRole::Leader)
                        || st.epoch < info.epoch
                    {
                        return None;
                    }
                }
            }
            Some(())
        },
    )
    .await;
    let infos = env.copysets(&moved).await.expect("placement");
    assert!(
        infos.iter().all(|i| i.peers.iter().any(|p| p.id == spare)),
        "the spare in z1 took every replica: {infos:?}"
    );
    // Every copyset still has a leader the MDS knows and takes writes; none is led by the
    // drained chunkserver.
    let leaders = env.leaders_known_to_mds(&groups).await;
    assert!(!leaders.contains(&"h4".to_string()), "{leaders:?}");
    for g in &groups {
        env.write(*g, 8).await;
    }
    // Undo returns it to service: no longer listed as draining.
    let (r, _) = env.call(env.mds_addr, &drain(true)).await.expect("undo");
    assert_eq!(r.expect("undo accepted").state, DrainState::InService);
    let (r, _) = env.call(env.mds_addr, &ListDrains {}).await.expect("list");
    assert!(r.unwrap().is_empty());
    // An unknown chunkserver is refused by name.
    let (r, _) = env
        .call(
            env.mds_addr,
            &DrainChunkServer {
                id: ChunkServerId(99),
                undo: false,
            },
        )
        .await
        .expect("answer");
    assert_eq!(
        r,
        Err(MdsError::UnknownChunkServer {
            id: ChunkServerId(99)
        })
    );
}
