//! Finding the process a fault test should hit: the chunkserver leading (or following
//! in) the copyset that holds a given volume offset, asked of the MDS (segment map) and
//! of the chunkservers themselves (current raft leader).

use crate::cluster::plan::Kind;
use crate::cluster::wait::block_on;
use crate::cluster::Liveness;
use crate::DevCluster;
use basalt_proto::chunk::GetLeader;
use basalt_proto::ids::{GroupId, LogicalPoolId, VolumeId, CHUNK_SIZE, SEGMENT_SIZE};
use basalt_proto::mds::{CopysetInfo, GetCopysets, GetSegment, ListCopysets};
use basalt_transport::{ClusterSecret, TcpTransport};
use std::net::SocketAddr;
use std::time::Duration;

/// How long one probe call may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A probe transport that authenticates with `secret` (the cluster's, see
/// [`DevCluster::secret`]).
fn transport(secret: Option<&ClusterSecret>) -> Option<TcpTransport> {
    TcpTransport::new(crate::cluster::wait::probe_options(
        "testkit-faults",
        secret,
    ))
    .ok()
}

/// The copyset holding byte `offset` of `volume`, from the MDS at `mds` (None when the
/// segment is not allocated yet or the MDS does not answer). `secret`: the cluster's.
pub fn group_of(
    mds: SocketAddr,
    secret: Option<&ClusterSecret>,
    volume: VolumeId,
    offset: u64,
) -> Option<GroupId> {
    let secret = secret.cloned();
    let req = GetSegment {
        volume,
        session: String::new(),
        index: offset / SEGMENT_SIZE,
        allocate: false,
    };
    let seg = block_on(async move {
        let t = transport(secret.as_ref())?;
        tokio::time::timeout(PROBE_TIMEOUT, async {
            let conn = t.connect(mds).await.ok()?;
            match conn.call(&req, bytes::Bytes::new()).await {
                Ok((Ok(Some(seg)), _)) => Some(seg),
                _ => None,
            }
        })
        .await
        .ok()
        .flatten()
    })?;
    let chunk = ((offset % SEGMENT_SIZE) / CHUNK_SIZE) as usize;
    let (copyset, _) = *seg.chunks.get(chunk)?;
    Some(GroupId::of(seg.pool, copyset))
}

/// The leader of `group` as chunkserver `addr` knows it.
fn leader_seen_by(
    addr: SocketAddr,
    secret: Option<&ClusterSecret>,
    group: GroupId,
) -> Option<SocketAddr> {
    let secret = secret.cloned();
    block_on(async move {
        let t = transport(secret.as_ref())?;
        tokio::time::timeout(PROBE_TIMEOUT, async {
            let conn = t.connect(addr).await.ok()?;
            match conn.call(&GetLeader { group }, bytes::Bytes::new()).await {
                Ok((Ok(info), _)) => info.leader.map(|p| p.addr),
                _ => None,
            }
        })
        .await
        .ok()
        .flatten()
    })
}

/// Running chunkservers: (process name, service address).
pub fn running_chunkservers(cluster: &DevCluster) -> Vec<(String, SocketAddr)> {
    cluster
        .status()
        .into_iter()
        .filter(|s| s.kind == Kind::Chunkserver && s.state == Liveness::Running)
        .map(|s| (s.name, s.addr))
        .collect()
}

/// Name of the chunkserver process leading `group`, when every running chunkserver that
/// knows a leader names the same one and that one is running.
pub fn leader_of(cluster: &DevCluster, group: GroupId) -> Option<String> {
    let running = running_chunkservers(cluster);
    let mut named = running
        .iter()
        .filter_map(|(_, a)| leader_seen_by(*a, cluster.secret(), group));
    let first = named.next()?;
    if named.any(|a| a != first) {
        return None;
    }
    running
        .into_iter()
        .find(|(_, a)| *a == first)
        .map(|(n, _)| n)
}

/// Names of the running chunkservers other than `leader` (the followers when every
/// chunkserver holds a replica, as in a 3-chunkserver, 3-replica cluster).
pub fn others(cluster: &DevCluster, leader: &str) -> Vec<String> {
    running_chunkservers(cluster)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != leader)
        .collect()
}

/// The leader of `group`, once the MDS has no operator in flight (a pending leader
/// transfer would move the leadership under the test) and two probes 300 ms apart agree
/// (bounded wait).
pub fn settled_leader(
    cluster: &DevCluster,
    group: GroupId,
) -> Result<String, crate::workload::WorkloadError> {
    let mds = cluster.mds_addrs().to_vec();
    Ok(crate::cluster::wait::poll_until(
        "a settled leader of the copyset",
        PROGRESS_BOUND,
        Duration::from_millis(100),
        || {
            let secret = cluster.secret();
            let settled = crate::cluster::wait::active_mds(&mds, secret)
                .and_then(|a| crate::cluster::wait::cluster_status(a, secret))
                .is_some_and(|s| s.operators_pending == 0);
            if !settled {
                return Ok(None);
            }
            let Some(first) = leader_of(cluster, group) else {
                return Ok(None);
            };
            std::thread::sleep(Duration::from_millis(300));
            Ok(leader_of(cluster, group).filter(|l| *l == first))
        },
    )?)
}

/// Every copyset of `pool` with its voters' addresses, from the MDS at `mds` (None when
/// it does not answer). `secret`: the cluster's.
pub fn copysets_of(
    mds: SocketAddr,
    secret: Option<&ClusterSecret>,
    pool: LogicalPoolId,
) -> Option<Vec<CopysetInfo>> {
    let secret = secret.cloned();
    block_on(async move {
        let t = transport(secret.as_ref())?;
        tokio::time::timeout(PROBE_TIMEOUT, async {
            let conn = t.connect(mds).await.ok()?;
            let groups = match conn.call(&ListCopysets { pool }, bytes::Bytes::new()).await {
                Ok((Ok(list), _)) => list.into_iter().map(|c| c.group).collect(),
                _ => return None,
            };
            match conn
                .call(&GetCopysets { groups }, bytes::Bytes::new())
                .await
            {
                Ok((Ok(infos), _)) => Some(infos),
                _ => None,
            }
        })
        .await
        .ok()
        .flatten()
    })
}

/// Name of the running chunkserver process serving at `addr`.
pub fn process_at(cluster: &DevCluster, addr: SocketAddr) -> Option<String> {
    running_chunkservers(cluster)
        .into_iter()
        .find(|(_, a)| *a == addr)
        .map(|(n, _)| n)
}

/// Environment variable naming a file the fault tests append their summary lines to
/// (for docs/reliability.md); unset: stdout only.
pub const REPORT_ENV: &str = "BASALT_FAULT_REPORT";

/// Bound of each wait for I/O progress.
pub const PROGRESS_BOUND: Duration = Duration::from_secs(30);

/// A fault test in progress: a small cluster, a 1-segment volume and a workload on its
/// first chunk's 64 blocks (so every I/O goes to one copyset, whose leader and
/// followers are then known).
pub struct FaultRun {
    /// The workload (first: it holds the volume).
    pub workload: crate::workload::Workload<TcpTransport>,
    /// The copyset every workload block lives in.
    pub group: GroupId,
    /// Cluster, client and runtime.
    pub rig: crate::rig::Rig,
}

impl FaultRun {
    /// Bring a cluster up, start 4 workers (half reads) and wait until 100 operations
    /// completed.
    pub fn start(name: &str) -> Result<FaultRun, crate::workload::WorkloadError> {
        Self::start_with(name, |_| {})
    }

    /// [`start`](Self::start) on a cluster whose spec `customize` adjusted first.
    pub fn start_with(
        name: &str,
        customize: impl FnOnce(&mut crate::ClusterSpec),
    ) -> Result<FaultRun, crate::workload::WorkloadError> {
        use crate::workload::{Workload, WorkloadSpec};
        let rig = crate::rig::Rig::up_shaped(4, customize)?;
        let volume = rig.create_volume(&rig.client, &format!("fault-{name}"), SEGMENT_SIZE)?;
        let id = volume.id();
        let workload = Workload::start(rig.rt.handle(), volume, WorkloadSpec::new(4, 0, 64));
        workload.wait_for_ops(100, PROGRESS_BOUND)?;
        // The first write allocated the segment.
        let group = crate::cluster::wait::poll_until(
            "the workload's copyset from the MDS",
            PROGRESS_BOUND,
            Duration::from_millis(100),
            || {
                let secret = rig.cluster.secret();
                Ok(rig
                    .cluster
                    .active_mds()
                    .and_then(|m| group_of(m, secret, id, 0)))
            },
        )?;
        Ok(FaultRun {
            workload,
            group,
            rig,
        })
    }

    /// The current leader of the workload's copyset (see [`settled_leader`]).
    pub fn leader(&self) -> Result<String, crate::workload::WorkloadError> {
        settled_leader(&self.rig.cluster, self.group)
    }

    /// Wait until `n` more operations complete.
    pub fn progress(&self, n: u64) -> Result<Duration, crate::workload::WorkloadError> {
        self.workload.wait_for_ops(n, PROGRESS_BOUND)
    }

    /// Stop the workload, check its history, measure `[from, now]`, print (and append to
    /// `$BASALT_FAULT_REPORT`) the summary line for fault `name`.
    pub fn finish(
        self,
        name: &str,
        from: Duration,
    ) -> Result<crate::workload::FaultReport, crate::workload::WorkloadError> {
        let to = self.workload.now();
        let history = self.rig.rt.block_on(self.workload.stop());
        let report = crate::workload::verify(&history, from, to)?;
        publish(&report.line(name));
        Ok(report)
    }
}

/// Print a fault summary line and append it to `$BASALT_FAULT_REPORT` when set.
pub fn publish(line: &str) {
    println!("{line}");
    if let Some(path) = std::env::var_os(REPORT_ENV) {
        use std::io::Write as _;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            eprintln!("cannot append to {}: {e}", path.to_string_lossy());
        }
    }
}
