//! The heartbeat loop: every interval, report the disk and every copyset replica to the
//! active MDS and act on the reply (operators, strays).
//!
//! The loop never blocks on an operator (they run in the [`Executor`]'s tasks) and keeps
//! going while no MDS answers; the chunk service is independent of it.

use crate::copyset::Copysets;
use crate::datadir::DataDir;
use crate::mds_link::client::MdsClient;
use crate::mds_link::operators::{decide, Executor, LocalReplica};
use crate::store::FileChunkStore;
use basalt_proto::chunk::RaftRole;
use basalt_proto::heartbeat::{CopysetReport, DiskStats, Heartbeat};
use basalt_proto::ids::{ChunkServerId, GroupId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Capacity of the filesystem holding `dir` and chunk counts of its store.
// statvfs field types differ between platforms (u32 / u64).
#[allow(clippy::unnecessary_cast)]
pub fn disk_stats(dir: &DataDir, store: Option<&FileChunkStore>) -> DiskStats {
    let mut s = DiskStats::default();
    if let Ok(path) = std::ffi::CString::new(dir.root().as_os_str().as_encoded_bytes()) {
        // SAFETY: `path` is a valid NUL-terminated string and `vfs` a writable statvfs
        // that the call fills in; both outlive the call.
        let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::statvfs(path.as_ptr(), &mut vfs) } == 0 {
            let unit = vfs.f_frsize as u64;
            s.total_bytes = vfs.f_blocks as u64 * unit;
            s.used_bytes = (vfs.f_blocks as u64).saturating_sub(vfs.f_bfree as u64) * unit;
        }
    }
    if let Some(store) = store {
        s.pool_free_chunks = store.free_chunks() as u64;
        // The MDS moves replicas off a failed disk and places nothing new on it.
        s.disk_failed = store.fence().is_tripped();
    }
    // Chunk files in use: chunks/<group>/<chunk>.
    if let Ok(groups) = std::fs::read_dir(dir.chunks_dir()) {
        s.used_chunks = groups
            .flatten()
            .filter_map(|g| std::fs::read_dir(g.path()).ok())
            .map(|files| files.count() as u64)
            .sum();
    }
    s
}

/// One report per replica hosted here, and the decision inputs for the reply.
pub fn reports(
    copysets: &Copysets,
    exec: &Executor,
) -> (Vec<CopysetReport>, BTreeMap<GroupId, LocalReplica>) {
    let mut reports = Vec::new();
    let mut local = BTreeMap::new();
    for group in copysets.groups() {
        let Ok(st) = copysets.status(group) else {
            continue; // deleted meanwhile
        };
        let leader = st.role == RaftRole::Leader;
        local.insert(
            group,
            LocalReplica {
                epoch: st.epoch,
                leader,
            },
        );
        reports.push(CopysetReport {
            group,
            epoch: st.epoch,
            leader: st.leader,
            peers: st.peers.iter().map(|p| p.id).collect(),
            conf_change: if leader {
                exec.conf_change(group)
            } else {
                None
            },
        });
    }
    (reports, local)
}

/// What the loop needs.
pub struct HeartbeatParams {
    /// Client of the MDS group.
    pub client: Arc<MdsClient>,
    /// Registered id and token.
    pub id: ChunkServerId,
    /// Registration token.
    pub token: String,
    /// Advertised service address.
    pub addr: SocketAddr,
    /// This chunkserver's copysets.
    pub copysets: Copysets,
    /// Runs operators.
    pub exec: Executor,
    /// The data dir (disk stats).
    pub dir: DataDir,
    /// The chunk store (pool counts).
    pub store: Arc<FileChunkStore>,
    /// Period.
    pub interval: Duration,
}

/// Send heartbeats forever (abort the task to stop).
pub async fn run(p: HeartbeatParams) {
    let mut tick = tokio::time::interval(p.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stray_seen = BTreeMap::new();
    let mut failing = false;
    loop {
        tick.tick().await;
        let (dir, store) = (p.dir.clone(), p.store.clone());
        let disk = tokio::task::spawn_blocking(move || disk_stats(&dir, Some(&store)))
            .await
            .unwrap_or_default();
        let (copysets, local) = reports(&p.copysets, &p.exec);
        let hb = Heartbeat {
            id: p.id,
            token: p.token.clone(),
            addr: p.addr,
            disk,
            copysets,
        };
        match p.client.call(&hb).await {
            Ok(reply) => {
                if failing {
                    tracing::info!(mds = ?p.client.current(), "heartbeats answered again");
                    failing = false;
                }
                let d = decide(&reply, &local, &p.exec.running(), &mut stray_seen);
                p.exec.apply(&d);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "heartbeat not answered; still serving, will retry");
                    failing = true;
                } else {
                    tracing::debug!(error = %e, "heartbeat not answered");
                }
            }
        }
    }
}
