//! Chunkservers managed by a real `basalt-mds` on a real etcd, all as processes (the
//! harness of `cluster_reset_peer`'s MDS test; `cluster_mds` has its own, older copy).
//! Servers are named `h1`, `h2`, ...; ids are what the MDS hands out at registration.
//!
//! The MDS binary is expected next to the chunkserver's (`cargo build -p basalt-mds`).

use crate::support::{wait_for, BIN, CHUNK, WAIT};
use basalt_chunkserver::datadir::DataDir;
use basalt_proto::chunk::{
    CopysetStatus, CopysetStatusOk, CreateCopyset, RaftRole, ReadChunk, RequestId, WriteChunk,
};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{ChunkId, ChunkServerId, CopysetId, GroupId, LogicalPoolId};
use basalt_proto::mds::{
    ChunkServerState, CopysetInfo, GetCopysets, GetMdsLeader, ListChunkServers,
};
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

/// Heartbeat period of the chunkservers.
pub const HEARTBEAT_MS: u64 = 300;

fn mds_bin() -> PathBuf {
    let p = Path::new(BIN).with_file_name("basalt-mds");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p basalt-mds` (same profile and target dir) first",
        p.display()
    );
    p
}

/// A child process, SIGKILLed when dropped.
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster map: zones z1..z3, `per_zone` servers in each (zone `z` holds `h{z}`,
/// `h{z+3}`, ...), one logical pool of 3 replicas.
pub fn cluster_map(per_zone: u32, copysets_per_cs: u32) -> String {
    let mut m = String::from("[[physical-pool]]\nname = \"p\"\n");
    for z in 1..=3 {
        m += &format!("[[zone]]\nname = \"z{z}\"\nphysical-pool = \"p\"\n");
    }
    for k in 0..per_zone {
        for z in 1..=3 {
            m += &format!("[[server]]\nname = \"h{}\"\nzone = \"z{z}\"\n", z + 3 * k);
        }
    }
    m += &format!(
        "[[logical-pool]]\nname = \"blocks\"\nphysical-pool = \"p\"\nreplicas = 3\n\
         copysets-per-chunkserver = {copysets_per_cs}\n"
    );
    m
}

/// One chunkserver of the environment.
pub struct Cs {
    dir: PathBuf,
    log: PathBuf,
    /// Its address once it served.
    pub addr: Option<SocketAddr>,
    /// Its process.
    pub proc: Proc,
}

/// etcd, one MDS and chunkservers.
pub struct Env {
    pub root: tempfile::TempDir,
    _etcd: EtcdProcess,
    mds: Proc,
    pub mds_addr: SocketAddr,
    pool: ConnectionPool<TcpTransport>,
    /// Chunkservers by server name.
    pub cs: BTreeMap<String, Cs>,
}

impl Env {
    /// etcd and an active MDS applying `map`, placing copysets once `min_chunkservers`
    /// registered, declaring a silent chunkserver offline after `offline_after_ms`.
    pub async fn start(map: &str, min_chunkservers: usize, offline_after_ms: u64) -> Env {
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
            name: "mds-env-test".into(),
            cluster: String::new(),
        }))
        .unwrap();
        let addr_file = root.path().join("mds.addr");
        let log = std::fs::File::create(root.path().join("mds.log")).unwrap();
        let child = Command::new(mds_bin())
            .arg("--config")
            .arg(&mds_cfg)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn basalt-mds");
        let mut env = Env {
            root,
            _etcd: etcd,
            mds: Proc { child: Some(child) },
            mds_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pool: ConnectionPool::new(transport),
            cs: BTreeMap::new(),
        };
        let addr: SocketAddr = wait_for("MDS address", WAIT, || {
            let t = std::fs::read_to_string(&addr_file).ok();
            async move { t?.trim().parse().ok() }
        })
        .await;
        env.mds_addr = addr;
        wait_for("MDS to be active", WAIT, || async {
            let (r, _) = env.call(addr, &GetMdsLeader {}).await?;
            r.is_leader.then_some(())
        })
        .await;
        env
    }

    /// One call, bounded; `None` when it failed.
    pub async fn call<R: Rpc>(&self, addr: SocketAddr, req: &R) -> Option<(R::Reply, Bytes)> {
        self.call_with(addr, req, Bytes::new()).await
    }

    /// [`Env::call`] with a payload.
    pub async fn call_with<R: Rpc>(
        &self,
        addr: SocketAddr,
        req: &R,
        payload: Bytes,
    ) -> Option<(R::Reply, Bytes)> {
        match tokio::time::timeout(Duration::from_secs(10), self.pool.call(&addr, req, payload))
            .await
        {
            Ok(Ok(r)) => Some(r),
            _ => {
                self.pool.invalidate(&addr);
                None
            }
        }
    }

    /// Format a data dir for server `name`, write its config and start it; wait until it
    /// serves.
    pub async fn add_cs(&mut self, name: &str) {
        let dir = self.root.path().join(name);
        let out = Command::new(BIN)
            .args(["format", "--quiet", "--pool-size", "6"])
            .args(["--wal-segments", "4"])
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
        let log = self.root.path().join(format!("{name}.log"));
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn chunkserver");
        let file = dir.join("listen-addr");
        let text = wait_for(&format!("{name} to serve"), WAIT, || {
            let t = std::fs::read_to_string(&file).ok();
            async move { t }
        })
        .await;
        self.cs.insert(
            name.to_string(),
            Cs {
                dir,
                log,
                addr: Some(text.trim().parse().unwrap()),
                proc: Proc { child: Some(child) },
            },
        );
    }

    /// The id the MDS gave server `name`.
    pub fn id_of(&self, name: &str) -> ChunkServerId {
        let meta = DataDir::read_meta(&self.cs[name].dir).unwrap();
        meta.chunkserver_id.expect("registered id in the data dir")
    }

    /// The server name of chunkserver `id`.
    pub fn name_of(&self, id: ChunkServerId) -> String {
        self.cs
            .keys()
            .find(|n| self.id_of(n) == id)
            .cloned()
            .expect("known id")
    }

    /// The MDS's placement of `groups` (`None` while it has none).
    pub async fn copysets(&self, groups: &[GroupId]) -> Option<Vec<CopysetInfo>> {
        let req = GetCopysets {
            groups: groups.to_vec(),
        };
        match self.call(self.mds_addr, &req).await? {
            (Ok(v), _) => Some(v),
            (Err(MdsError::CopysetNotFound { .. } | MdsError::NotLeader { .. }), _) => None,
            (Err(e), _) => panic!("GetCopysets: {e}"),
        }
    }

    /// Wait until the MDS calls chunkserver `id` `state`.
    pub async fn wait_state(&self, id: ChunkServerId, state: ChunkServerState) {
        wait_for(&format!("the MDS to call {id} {state:?}"), WAIT, || async {
            let (r, _) = self.call(self.mds_addr, &ListChunkServers {}).await?;
            r.ok()?
                .iter()
                .any(|c| c.id == id && c.state == state)
                .then_some(())
        })
        .await
    }

    /// The replica of `g` on server `name` (`None`: down or no replica).
    pub async fn status(&self, name: &str, g: GroupId) -> Option<CopysetStatusOk> {
        let addr = self.cs[name].addr?;
        self.cs[name].proc.child.as_ref()?;
        match self.call(addr, &CopysetStatus { group: g }).await? {
            (Ok(s), _) => Some(s),
            _ => None,
        }
    }

    /// The server whose replica of `g` leads now.
    pub async fn leader_of(&self, g: GroupId) -> String {
        wait_for(&format!("a leader of {g}"), WAIT, || async {
            for name in self.cs.keys() {
                if self
                    .status(name, g)
                    .await
                    .is_some_and(|s| s.role == RaftRole::Leader)
                {
                    return Some(name.clone());
                }
            }
            None
        })
        .await
    }

    /// Every copyset has a leader that the MDS knows from heartbeats and that leads in
    /// fact, at the MDS's epoch.
    pub async fn leaders_known_to_mds(&self, groups: &[GroupId]) {
        wait_for("the MDS to learn every leader", WAIT, || async {
            for info in self.copysets(groups).await? {
                let name = self.name_of(info.leader?);
                let st = self.status(&name, info.group).await?;
                if st.role != RaftRole::Leader || st.epoch != info.epoch {
                    return None;
                }
            }
            Some(())
        })
        .await
    }

    /// Write 4 KiB of `fill` to chunk 1 of `g` through its leader.
    pub async fn write(&self, g: GroupId, fill: u8) {
        let data = Bytes::from(vec![fill; 4096]);
        wait_for(&format!("a write to {g}"), WAIT, || async {
            let name = self.leader_of(g).await;
            let st = self.status(&name, g).await?;
            let req = WriteChunk {
                group: g,
                chunk: ChunkId(1),
                epoch: st.epoch,
                offset: 0,
                len: data.len() as u32,
                crc32c: crc32c::crc32c(&data),
                req: RequestId::NONE,
            };
            match self
                .call_with(self.cs[&name].addr?, &req, data.clone())
                .await?
            {
                (Ok(_), _) => Some(()),
                (Err(ChunkError::Redirect { .. } | ChunkError::Unavailable), _) => None,
                (Err(ChunkError::EpochTooOld { .. }), _) => None,
                (Err(e), _) => panic!("write {g}: {e}"),
            }
        })
        .await
    }

    /// The first 4 KiB of chunk 1 of `g`, read through its leader.
    pub async fn read(&self, g: GroupId) -> Bytes {
        wait_for(&format!("a read of {g}"), WAIT, || async {
            let name = self.leader_of(g).await;
            let st = self.status(&name, g).await?;
            let req = ReadChunk {
                group: g,
                chunk: ChunkId(1),
                epoch: st.epoch,
                offset: 0,
                len: 4096,
            };
            match self.call(self.cs[&name].addr?, &req).await? {
                (Ok(_), data) => Some(data),
                (Err(ChunkError::Redirect { .. } | ChunkError::Unavailable), _) => None,
                (Err(ChunkError::EpochTooOld { .. }), _) => None,
                (Err(e), _) => panic!("read {g}: {e}"),
            }
        })
        .await
    }

    /// The copysets of logical pool 1 (`1..=n`) once placed, every replica created
    /// (CreateCopyset is idempotent, so this is harmless when the MDS did it already).
    pub async fn placed(&self, n: u32) -> (Vec<GroupId>, Vec<CopysetInfo>) {
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

    /// MDS and chunkserver logs (tails), for failure messages.
    pub fn logs(&self) -> String {
        let mut files = vec![("mds".to_string(), self.root.path().join("mds.log"))];
        files.extend(self.cs.iter().map(|(n, c)| (n.clone(), c.log.clone())));
        files
            .iter()
            .map(|(n, p)| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(25)..].join("\n");
                format!("--- {n} ---\n{tail}\n")
            })
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for c in self.cs.values_mut() {
            c.proc.kill();
        }
        self.mds.kill();
    }
}
