//! Multi-process test harness: formats data dirs, runs `basalt-chunkserver serve`
//! processes on loopback, and drives them over the chunk service like a client would
//! (CreateCopyset, GetLeader, WriteChunk, ...). Every wait is bounded.
//!
//! A node listens on port 0 the first time it starts; the harness reads the bound
//! address from `<data-dir>/listen-addr` and reuses it on every restart, since raft
//! memberships record peers by address.

#![allow(dead_code)] // each cluster_* test binary uses a different part of the harness

use basalt_proto::chunk::{
    ConfChangeOk, CopysetStatus, CopysetStatusOk, CreateCopyset, DeleteChunk, GetLeader, RaftRole,
    ReadChunk, TransferLeader, WriteChunk,
};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::{ChunkId, ChunkServerId, CopysetId, Epoch, GroupId, LogicalPoolId};
use basalt_proto::status::{ChunkError, PeerAddr};
use basalt_proto::Rpc;
use basalt_transport::{ConnectionPool, TcpTransport, TransportError, TransportOptions};
use bytes::Bytes;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The chunkserver binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_basalt-chunkserver");
/// Chunk size of the data dirs: the protocol's (serve refuses others).
pub const CHUNK: u64 = basalt_proto::ids::CHUNK_SIZE;
/// Default bound of every wait.
pub const WAIT: Duration = Duration::from_secs(20);
/// Election timeouts of the test config; a leader change must complete within
/// `2 * ELECTION_MAX_MS` (the copyset config's election bound).
pub const ELECTION_MAX_MS: u64 = 600;

/// Raft settings shared by every node: fast elections, snapshots after few entries so
/// snapshot installs happen within a short test.
fn config_text(snapshot_after: u64) -> String {
    config_text_with(snapshot_after, (300, ELECTION_MAX_MS), true)
}

/// [`config_text`] with other election timeouts (min, max ms) and leader watch setting.
pub fn config_text_with(snapshot_after: u64, election: (u64, u64), leader_watch: bool) -> String {
    let (emin, emax) = election;
    format!(
        r#"
[io]
pollers = 1

[copyset]
heartbeat-interval-ms = 50
heartbeat-min-interval-ms = 50
election-timeout-min-ms = {emin}
election-timeout-max-ms = {emax}
snapshot-after-entries = {snapshot_after}
keep-after-snapshot = 0
unreachable-backoff-ms = 50
rpc-timeout-ms = 2000
catch-up-timeout-ms = 15000
leader-watch = {leader_watch}

[transport]
call-timeout-ms = 5000
fast-path = "off"
shutdown-grace-ms = 2000
"#
    )
}

/// Poll `f` until it yields `Some`, failing after `within`.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One chunkserver: its data dir, config, address once known, and process when running.
pub struct Node {
    pub id: u32,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub addr: Option<SocketAddr>,
    /// The running process (behind a lock so a node can be killed while others are used).
    pub child: Mutex<Option<Child>>,
}

impl Node {
    pub fn peer(&self) -> PeerAddr {
        PeerAddr {
            id: ChunkServerId(self.id),
            addr: self.addr.expect("node started once"),
        }
    }

    pub fn running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }
}

/// A set of chunkserver processes and a client connected to them.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pool: ConnectionPool<TcpTransport>,
}

/// Chunk files in each node's pool: two copysets of one workload (3 chunks) each.
pub const POOL_CHUNKS: u64 = 6;

fn format_dir(dir: &Path) {
    let out = Command::new(BIN)
        .args([
            "format",
            "--quiet",
            "--pool-size",
            &POOL_CHUNKS.to_string(),
            "--wal-segments",
            "4",
        ])
        .args(["--wal-segment-size", &(4u64 << 20).to_string()])
        .args(["--chunk-size", &CHUNK.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run format");
    assert!(
        out.status.success(),
        "format {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// Format `n` data dirs and start a chunkserver on each (ids 1..=n).
    pub async fn start(n: u32, snapshot_after: u64) -> Cluster {
        Cluster::start_with_config(n, &config_text(snapshot_after)).await
    }

    /// [`Cluster::start`] with this config file text.
    pub async fn start_with_config(n: u32, config_text: &str) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let config = root.path().join("chunkserver.toml");
        std::fs::write(&config, config_text).unwrap();
        let transport = TcpTransport::new(TransportOptions::new(Identity {
            role: Role::Tool,
            chunkserver: None,
            name: "cluster-test".into(),
            cluster: String::new(),
        }))
        .unwrap();
        let mut c = Cluster {
            nodes: (1..=n)
                .map(|id| Node {
                    id,
                    dir: root.path().join(format!("cs{id}")),
                    config: config.clone(),
                    log: root.path().join(format!("cs{id}.log")),
                    addr: None,
                    child: Mutex::new(None),
                })
                .collect(),
            root,
            pool: ConnectionPool::new(transport),
        };
        for id in 1..=n {
            format_dir(&c.node(id).dir);
            c.spawn(id).await;
        }
        c
    }

    pub fn node(&self, id: u32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn peers(&self, ids: &[u32]) -> Vec<PeerAddr> {
        ids.iter().map(|&id| self.node(id).peer()).collect()
    }

    /// Start node `id` (on its earlier address if it ran before) and wait until it
    /// serves.
    pub async fn spawn(&mut self, id: u32) {
        let n = self.node_mut(id);
        assert!(!n.running(), "cs{id} already running");
        let addr_file = n.dir.join("listen-addr");
        let _ = std::fs::remove_file(&addr_file);
        let listen = n.addr.map_or("127.0.0.1:0".to_string(), |a| a.to_string());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&n.config)
            .arg("serve")
            .arg("--data-dir")
            .arg(&n.dir)
            .args(["--listen", &listen, "--metrics-listen", "127.0.0.1:0"])
            .args(["--chunkserver-id", &id.to_string()])
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn chunkserver");
        *n.child.lock().unwrap() = Some(child);
        let text = wait_for(&format!("cs{id} to serve"), WAIT, || {
            let text = std::fs::read_to_string(&addr_file).ok();
            async move { text }
        })
        .await;
        let bound: SocketAddr = text.trim().parse().expect("listen-addr holds an address");
        let n = self.node_mut(id);
        if let Some(old) = n.addr {
            assert_eq!(old, bound, "cs{id} came back on another address");
        }
        n.addr = Some(bound);
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&self, id: u32) {
        let n = self.node(id);
        let taken = n.child.lock().unwrap().take();
        let mut child = taken.expect("node running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        if let Some(a) = n.addr {
            self.pool.invalidate(&a);
        }
    }

    /// SIGTERM node `id` and wait (bounded) for a clean exit.
    pub async fn stop(&self, id: u32) {
        let n = self.node(id);
        let taken = n.child.lock().unwrap().take();
        let mut child = taken.expect("node running");
        // SAFETY: kill(2) on the pid of our own unreaped child; no memory is involved.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM cs{id}");
        let status = wait_for(&format!("cs{id} to exit"), WAIT, || {
            let s = child.try_wait().expect("try_wait");
            async move { s }
        })
        .await;
        assert!(status.success(), "cs{id} exited with {status}");
        if let Some(a) = n.addr {
            self.pool.invalidate(&a);
        }
    }

    /// Stop node `id` (SIGKILL), wipe and re-format its data dir: a replaced disk.
    pub fn wipe(&self, id: u32) {
        if self.node(id).running() {
            self.kill(id);
        }
        let dir = self.node(id).dir.clone();
        std::fs::remove_dir_all(&dir).unwrap();
        format_dir(&dir);
    }

    /// One call to node `id`; `None` when the node cannot be reached.
    pub async fn call<R: Rpc>(
        &self,
        id: u32,
        req: &R,
        payload: Bytes,
    ) -> Option<(R::Reply, Bytes)> {
        let addr = self.node(id).addr?;
        if !self.node(id).running() {
            return None;
        }
        let conn = match self.pool.get(&addr).await {
            Ok(c) => c,
            Err(_) => return None,
        };
        match conn.call(req, payload).await {
            Ok(r) => Some(r),
            Err(e) => {
                if matches!(e, TransportError::PeerGone { .. }) {
                    self.pool.invalidate(&addr);
                }
                None
            }
        }
    }

    /// Create `g` on each of `on`, with voters `peers`.
    pub async fn create(&self, g: GroupId, on: &[u32], peers: &[u32]) {
        let peers = self.peers(peers);
        for &id in on {
            let req = CreateCopyset {
                group: g,
                peers: peers.clone(),
            };
            let (r, _) = self.call(id, &req, Bytes::new()).await.expect("reach node");
            r.unwrap_or_else(|e| panic!("create {g} on cs{id}: {e}"));
        }
    }

    pub async fn status(&self, id: u32, g: GroupId) -> Option<CopysetStatusOk> {
        let (r, _) = self
            .call(id, &CopysetStatus { group: g }, Bytes::new())
            .await?;
        r.ok()
    }

    /// The leader every running replica that knows one agrees on, confirmed by the
    /// leader itself (replicas that know none yet, e.g. pristine ones, are skipped).
    pub async fn leader(&self, g: GroupId, within: Duration) -> u32 {
        wait_for(&format!("a leader of {g}"), within, || async {
            let mut agreed = None;
            for n in self.nodes.iter().filter(|n| n.running()) {
                let Some((Ok(info), _)) =
                    self.call(n.id, &GetLeader { group: g }, Bytes::new()).await
                else {
                    continue;
                };
                let Some(l) = info.leader.map(|p| p.id.0) else {
                    continue;
                };
                if agreed.is_some_and(|a| a != l) {
                    return None;
                }
                agreed = Some(l);
            }
            let l = agreed?;
            let st = self.status(l, g).await?;
            (st.role == RaftRole::Leader).then_some(l)
        })
        .await
    }

    pub async fn epoch(&self, g: GroupId) -> Epoch {
        let l = self.leader(g, WAIT).await;
        self.status(l, g).await.expect("leader status").epoch
    }

    /// Write through the leader, following redirects and retrying while there is none.
    /// Returns the log index the write committed at.
    pub async fn write(&self, g: GroupId, chunk: u64, offset: u32, data: &Bytes) -> u64 {
        self.try_write(g, chunk, offset, data)
            .await
            .unwrap_or_else(|e| panic!("write {g}/{chunk}@{offset}: {e}"))
    }

    /// [`Cluster::write`], with the leader's refusals other than "ask someone else"
    /// (redirect, unavailable, stale epoch: retried for at most [`WAIT`]) returned.
    pub async fn try_write(
        &self,
        g: GroupId,
        chunk: u64,
        offset: u32,
        data: &Bytes,
    ) -> Result<u64, ChunkError> {
        let req = |epoch| WriteChunk {
            group: g,
            chunk: ChunkId(chunk),
            epoch,
            offset,
            len: data.len() as u32,
            crc32c: crc32c::crc32c(data),
            req: basalt_proto::chunk::RequestId::NONE,
        };
        self.at_leader(&format!("write to {g}"), g, req, data)
            .await
            .map(|ok| ok.index)
    }

    /// Delete a chunk through the leader (following it like [`Cluster::write`]).
    pub async fn delete_chunk(&self, g: GroupId, chunk: u64) -> Result<(), ChunkError> {
        let req = |epoch| DeleteChunk {
            group: g,
            chunk: ChunkId(chunk),
            epoch,
            req: basalt_proto::chunk::RequestId::NONE,
        };
        self.at_leader(&format!("delete {g}/{chunk}"), g, req, &Bytes::new())
            .await
    }

    /// Send `req(epoch)` with `payload` to the leader of `g` at its epoch, retrying at the
    /// leader of the moment while the answer is a redirect, `Unavailable` or a stale epoch
    /// (for at most [`WAIT`]); any other answer is returned.
    async fn at_leader<R, T, F>(
        &self,
        what: &str,
        g: GroupId,
        req: F,
        payload: &Bytes,
    ) -> Result<T, ChunkError>
    where
        R: Rpc<Reply = Result<T, ChunkError>>,
        F: Fn(Epoch) -> R,
    {
        wait_for(what, WAIT, || async {
            let l = self.leader(g, WAIT).await;
            let epoch = self.status(l, g).await?.epoch;
            match self.call(l, &req(epoch), payload.clone()).await? {
                (
                    Err(
                        ChunkError::Redirect { .. }
                        | ChunkError::Unavailable
                        | ChunkError::EpochTooOld { .. },
                    ),
                    _,
                ) => None,
                (r, _) => Some(r),
            }
        })
        .await
    }

    /// Whether node `id`'s process is still running (not exited).
    pub fn alive(&self, id: u32) -> bool {
        let mut child = self.node(id).child.lock().unwrap();
        child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// Read from node `id` (which must lead); `Err` carries the refusal.
    pub async fn read_at(
        &self,
        id: u32,
        g: GroupId,
        chunk: u64,
        offset: u32,
        len: u32,
    ) -> Option<Result<Bytes, ChunkError>> {
        let epoch = self.status(id, g).await?.epoch;
        let req = ReadChunk {
            group: g,
            chunk: ChunkId(chunk),
            epoch,
            offset,
            len,
        };
        match self.call(id, &req, Bytes::new()).await? {
            (Ok(ok), data) => {
                assert_eq!(ok.crc32c, crc32c::crc32c(&data), "read reply checksum");
                Some(Ok(data))
            }
            (Err(e), _) => Some(Err(e)),
        }
    }

    /// Read through the current leader, retrying while leadership moves.
    pub async fn read(&self, g: GroupId, chunk: u64, offset: u32, len: u32) -> Bytes {
        wait_for(&format!("read {g}/{chunk}"), WAIT, || async {
            let l = self.leader(g, WAIT).await;
            match self.read_at(l, g, chunk, offset, len).await? {
                Ok(d) => Some(d),
                Err(ChunkError::Redirect { .. } | ChunkError::Unavailable) => None,
                Err(ChunkError::EpochTooOld { .. }) => None,
                Err(e) => panic!("read {g}/{chunk}@{offset}: {e}"),
            }
        })
        .await
    }

    /// Change the voters of `g` to `want` with the request `req(epoch)` sent to the current
    /// leader at its epoch, following leadership: a redirect, `Unavailable`, a stale epoch
    /// or a change in progress is retried at the leader of the moment (for at most
    /// [`WAIT`]). The membership is checked before every attempt, so a change whose answer
    /// was lost to a leader change is not asked for again. Returns the epoch of the
    /// membership with voters `want`.
    pub async fn change_members<R, F>(&self, g: GroupId, want: &[u32], req: F) -> Epoch
    where
        R: Rpc<Reply = Result<ConfChangeOk, ChunkError>>,
        F: Fn(Epoch) -> R,
    {
        let want: BTreeSet<u32> = want.iter().copied().collect();
        wait_for(
            &format!("voters of {g} to become {want:?}"),
            WAIT,
            || async {
                let l = self.leader(g, WAIT).await;
                let st = self.status(l, g).await?;
                if st.peers.iter().map(|p| p.id.0).collect::<BTreeSet<u32>>() == want {
                    return Some(st.epoch);
                }
                match self.call(l, &req(st.epoch), Bytes::new()).await? {
                    (Ok(ok), _) => Some(ok.epoch),
                    (
                        Err(
                            ChunkError::Redirect { .. }
                            | ChunkError::Unavailable
                            | ChunkError::EpochTooOld { .. }
                            | ChunkError::ConfChangeInProgress { .. },
                        ),
                        _,
                    ) => None,
                    (Err(e), _) => panic!("membership change of {g} to {want:?}: {e}"),
                }
            },
        )
        .await
    }

    /// Wait until node `id` applied `g` up to `index`.
    pub async fn applied(&self, id: u32, g: GroupId, index: u64) {
        wait_for(&format!("cs{id} to apply {g} to {index}"), WAIT, || async {
            let st = self.status(id, g).await?;
            (st.applied >= index).then_some(())
        })
        .await
    }

    /// Move leadership of `g` to `to` (asked of the current leader) and wait for it.
    pub async fn transfer(&self, g: GroupId, to: u32) {
        wait_for(&format!("cs{to} to lead {g}"), WAIT, || async {
            let l = self.leader(g, WAIT).await;
            if l == to {
                return Some(());
            }
            let req = TransferLeader {
                group: g,
                to: ChunkServerId(to),
            };
            let _ = self.call(l, &req, Bytes::new()).await;
            None
        })
        .await
    }

    /// `GET /metrics` of node `id` (address from `<data-dir>/metrics-addr`).
    pub async fn scrape(&self, id: u32) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = std::fs::read_to_string(self.node(id).dir.join("metrics-addr"))
            .expect("metrics-addr written");
        let mut s = tokio::net::TcpStream::connect(addr.trim()).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .expect("metrics answer in time")
            .unwrap();
        assert!(out.starts_with("HTTP/1.0 200"), "{out}");
        out
    }

    /// Node logs, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                // panics (with the line after: their message) first, then the tail
                let mut out: Vec<&str> = Vec::new();
                for (i, l) in lines.iter().enumerate() {
                    if l.contains("panicked at") {
                        out.extend(lines.iter().skip(i).take(2));
                    }
                }
                out.extend(lines.iter().skip(lines.len().saturating_sub(30)));
                format!("--- cs{} ---\n{}\n", n.id, out.join("\n"))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for n in &mut self.nodes {
            let taken = n.child.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut c) = taken {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A copyset id in pool 1.
pub fn group(n: u32) -> GroupId {
    GroupId::of(LogicalPoolId(1), CopysetId(n))
}

/// Distinct, position-dependent bytes.
pub fn pattern(len: usize, seed: u64) -> Bytes {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(97)) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// A write of the test workload: (chunk, offset, data).
pub type Write = (u64, u32, Bytes);

/// `n` (at most 48) writes of 4 KiB over 3 chunks. Each seed owns 16 slots per chunk
/// (seeds that differ mod 16 never overlap), so several workloads can be checked after
/// one another. Only the first 1 MiB of a chunk is ever written.
pub fn workload(n: u64, seed: u64) -> Vec<Write> {
    assert!(n <= 48 && seed % 16 != 15);
    (0..n)
        .map(|i| {
            let chunk = 100 + i % 3;
            let slot = (seed % 16) * 16 + i / 3;
            (chunk, (slot * 4096) as u32, pattern(4096, seed * 1000 + i))
        })
        .collect()
}

/// Write the workload; the last committed index.
pub async fn write_all(c: &Cluster, g: GroupId, ws: &[Write]) -> u64 {
    let mut last = 0;
    for (chunk, off, data) in ws {
        last = c.write(g, *chunk, *off, data).await;
    }
    last
}

/// Read every write of the workload back through the leader and compare.
pub async fn check_all(c: &Cluster, g: GroupId, ws: &[Write]) {
    for (chunk, off, data) in ws {
        let got = c.read(g, *chunk, *off, data.len() as u32).await;
        assert!(got == *data, "{g}/{chunk}@{off}: data differs");
    }
}

/// Bound a whole test.
pub async fn bounded<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .expect("test timed out")
}
