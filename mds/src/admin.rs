//! Administration (sans-IO): cluster views for the CLI and metrics, the topology as a
//! cluster map, and operators asked for by an administrator.
//!
//! Health of a copyset: **leaderless** when no online leader among its peers is known,
//! else **degraded** when a peer is not online (or its disk failed), else **healthy**.
//! Admin operators obey the scheduler's rules: one operator per copyset, each chunkserver
//! in at most one operator (as executing leader or transfer target), an online leader.

use crate::metrics::Observation;
use crate::scheduler::{drain_progress, OperatorSet, PendingOp};
use crate::topology::clustermap::{
    ClusterMap, LogicalPoolEntry, PoolEntry, ServerEntry, TopologyDiff, ZoneEntry,
};
use crate::topology::{CopysetRecord, OnlineState, Topology};
use basalt_proto::heartbeat::{Operator, OperatorKind};
use basalt_proto::ids::{ChunkServerId, GroupId, LogicalPoolId};
use basalt_proto::mds::{
    ChunkServerState, ChunkServerSummary, ClusterStatusReply, CopysetHealth, CopysetSummary,
    DrainChunkServer, DrainState, DrainStatus, PoolSummary, TopologyChanges,
};
use basalt_proto::status::{MdsError, OperatorRefusal};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Wire form of a liveness state.
pub fn wire_state(s: OnlineState) -> ChunkServerState {
    match s {
        OnlineState::Online => ChunkServerState::Online,
        OnlineState::Unstable => ChunkServerState::Unstable,
        OnlineState::Offline => ChunkServerState::Offline,
    }
}

fn usable(topo: &Topology, c: ChunkServerId) -> bool {
    topo.chunkservers
        .get(&c)
        .is_some_and(|c| c.state == OnlineState::Online && !c.disk.disk_failed)
}

/// The copyset's leader if it is known, a peer, and online.
pub fn live_leader(topo: &Topology, rec: &CopysetRecord) -> Option<ChunkServerId> {
    rec.leader
        .filter(|l| rec.peers.contains(l) && usable(topo, *l))
}

/// Health of a copyset.
pub fn copyset_health(topo: &Topology, rec: &CopysetRecord) -> CopysetHealth {
    if live_leader(topo, rec).is_none() {
        CopysetHealth::Leaderless
    } else if rec.peers.iter().any(|p| !usable(topo, *p)) {
        CopysetHealth::Degraded
    } else {
        CopysetHealth::Healthy
    }
}

fn count<K: Ord + Copy>(items: impl Iterator<Item = K>) -> BTreeMap<K, u64> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_default() += 1;
    }
    m
}

fn state_key(s: ChunkServerState) -> u8 {
    s as u8
}

fn health_key(h: CopysetHealth) -> u8 {
    h as u8
}

/// The gauges' snapshot.
pub fn observe(topo: &Topology, pending: usize, now_ms: u64) -> Observation {
    let states = count(
        topo.chunkservers
            .values()
            .map(|c| state_key(wire_state(c.state))),
    );
    let health = count(
        topo.copysets
            .values()
            .map(|r| health_key(copyset_health(topo, r))),
    );
    Observation {
        heartbeat_lag_ms: topo
            .chunkservers
            .values()
            .map(|c| (c.id, now_ms.saturating_sub(c.last_seen_ms)))
            .collect(),
        chunkservers: [
            ChunkServerState::Online,
            ChunkServerState::Unstable,
            ChunkServerState::Offline,
        ]
        .into_iter()
        .map(|s| (s, states.get(&state_key(s)).copied().unwrap_or(0)))
        .collect(),
        copysets: [
            CopysetHealth::Healthy,
            CopysetHealth::Degraded,
            CopysetHealth::Leaderless,
        ]
        .into_iter()
        .map(|h| (h, health.get(&health_key(h)).copied().unwrap_or(0)))
        .collect(),
        operators_pending: pending as u64,
    }
}

/// Cluster status as `ClusterStatus` answers it.
pub fn cluster_status(
    topo: &Topology,
    pending: usize,
    active_mds: Option<SocketAddr>,
) -> ClusterStatusReply {
    let o = observe(topo, pending, 0);
    let cs = |s| {
        o.chunkservers
            .iter()
            .find(|(x, _)| *x == s)
            .map_or(0, |(_, n)| u32::try_from(*n).unwrap_or(u32::MAX))
    };
    let cp = |h| {
        o.copysets
            .iter()
            .find(|(x, _)| *x == h)
            .map_or(0, |(_, n)| *n)
    };
    let (mut used, mut total) = (0u64, 0u64);
    for c in topo.chunkservers.values() {
        used = used.saturating_add(c.disk.used_bytes);
        total = total.saturating_add(c.disk.total_bytes);
    }
    ClusterStatusReply {
        active_mds,
        chunkservers_online: cs(ChunkServerState::Online),
        chunkservers_unstable: cs(ChunkServerState::Unstable),
        chunkservers_offline: cs(ChunkServerState::Offline),
        copysets_healthy: cp(CopysetHealth::Healthy),
        copysets_degraded: cp(CopysetHealth::Degraded),
        copysets_leaderless: cp(CopysetHealth::Leaderless),
        used_bytes: used,
        total_bytes: total,
        operators_pending: u32::try_from(pending).unwrap_or(u32::MAX),
    }
}

/// Every chunkserver with its placement and load, in id order.
pub fn list_chunkservers(topo: &Topology) -> Vec<ChunkServerSummary> {
    let counts = topo.copyset_counts();
    let leaders = count(topo.copysets.values().filter_map(|r| r.leader));
    topo.chunkservers
        .values()
        .map(|c| {
            let server = topo.servers.get(&c.server);
            let zone = server.and_then(|s| topo.zones.get(&s.zone));
            ChunkServerSummary {
                id: c.id,
                server: server.map(|s| s.name.clone()).unwrap_or_default(),
                zone: zone.map(|z| z.name.clone()).unwrap_or_default(),
                addr: c.addr,
                state: wire_state(c.state),
                copysets: u32::try_from(counts.get(&c.id).copied().unwrap_or(0))
                    .unwrap_or(u32::MAX),
                leaders: u32::try_from(leaders.get(&c.id).copied().unwrap_or(0))
                    .unwrap_or(u32::MAX),
                disk: c.disk,
            }
        })
        .collect()
}

/// The copysets of a logical pool, in group order.
pub fn list_copysets(
    topo: &Topology,
    pool: LogicalPoolId,
) -> Result<Vec<CopysetSummary>, MdsError> {
    if !topo.lpools.contains_key(&pool) {
        return Err(MdsError::PoolNotFound { pool });
    }
    Ok(topo
        .copysets_of(pool)
        .map(|r| CopysetSummary {
            group: r.group,
            epoch: r.epoch,
            peers: r.peers.clone(),
            leader: r.leader,
            health: copyset_health(topo, r),
        })
        .collect())
}

/// The topology as a cluster map (applying it again changes nothing).
pub fn to_cluster_map(topo: &Topology) -> ClusterMap {
    let pool_name = |id| {
        topo.ppools
            .get(&id)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    };
    ClusterMap {
        physical_pool: topo
            .ppools
            .values()
            .map(|p| PoolEntry {
                name: p.name.clone(),
            })
            .collect(),
        zone: topo
            .zones
            .values()
            .map(|z| ZoneEntry {
                name: z.name.clone(),
                physical_pool: pool_name(z.pool),
            })
            .collect(),
        server: topo
            .servers
            .values()
            .map(|s| ServerEntry {
                name: s.name.clone(),
                zone: topo
                    .zones
                    .get(&s.zone)
                    .map(|z| z.name.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        logical_pool: topo
            .lpools
            .values()
            .map(|l| LogicalPoolEntry {
                name: l.name.clone(),
                physical_pool: pool_name(l.physical),
                replicas: l.replicas,
                copysets_per_chunkserver: l.copysets_per_chunkserver,
                scatter_width: l.scatter_width,
            })
            .collect(),
    }
}

/// Render a cluster map as TOML.
pub fn render_cluster_map(map: &ClusterMap) -> String {
    // A struct of string/int fields and arrays of tables always serialises.
    toml::to_string(map).unwrap_or_default()
}

/// What a diff added, by name.
pub fn changes(d: &TopologyDiff) -> TopologyChanges {
    TopologyChanges {
        physical_pools: d.ppools.iter().map(|p| p.name.clone()).collect(),
        zones: d.zones.iter().map(|p| p.name.clone()).collect(),
        servers: d.servers.iter().map(|p| p.name.clone()).collect(),
        logical_pools: d.lpools.iter().map(|p| p.name.clone()).collect(),
    }
}

fn pending_checks<'a>(
    topo: &'a Topology,
    ops: &OperatorSet,
    group: GroupId,
) -> Result<(&'a CopysetRecord, ChunkServerId), MdsError> {
    let rec = topo
        .copysets
        .get(&group)
        .ok_or(MdsError::CopysetNotFound { group })?;
    if ops.get(group).is_some() {
        return Err(MdsError::OperatorPending { group });
    }
    let leader = live_leader(topo, rec).ok_or(MdsError::LeaderUnknown { group })?;
    Ok((rec, leader))
}

fn not_busy(ops: &OperatorSet, ids: &[ChunkServerId]) -> Result<(), MdsError> {
    let busy = ops.busy();
    match ids.iter().find(|c| busy.contains(c)) {
        Some(id) => Err(MdsError::ChunkServerBusy { id: *id }),
        None => Ok(()),
    }
}

/// A leader transfer of `group` to `to`, checked against the pending operators.
pub fn plan_transfer_leader(
    topo: &Topology,
    ops: &OperatorSet,
    group: GroupId,
    to: ChunkServerId,
    now_ms: u64,
) -> Result<PendingOp, MdsError> {
    let (rec, leader) = pending_checks(topo, ops, group)?;
    if !rec.peers.contains(&to) {
        return Err(MdsError::NotAPeer {
            group,
            chunkserver: to,
        });
    }
    let refused = |reason| MdsError::OperatorRefused { group, reason };
    if leader == to {
        return Err(refused(OperatorRefusal::AlreadyLeader));
    }
    if !usable(topo, to) {
        return Err(refused(OperatorRefusal::TargetNotOnline));
    }
    not_busy(ops, &[leader, to])?;
    Ok(PendingOp {
        op: Operator {
            group,
            epoch: rec.epoch,
            kind: OperatorKind::TransferLeader(to),
        },
        issued_ms: now_ms,
        involved: vec![leader, to],
    })
}

/// The removal of `peer` from `group`, checked against the pending operators.
pub fn plan_remove_peer(
    topo: &Topology,
    ops: &OperatorSet,
    group: GroupId,
    peer: ChunkServerId,
    now_ms: u64,
) -> Result<PendingOp, MdsError> {
    let (rec, leader) = pending_checks(topo, ops, group)?;
    if !rec.peers.contains(&peer) {
        return Err(MdsError::NotAPeer {
            group,
            chunkserver: peer,
        });
    }
    let refused = |reason| MdsError::OperatorRefused { group, reason };
    if rec.peers.len() <= 1 {
        return Err(refused(OperatorRefusal::LastPeer));
    }
    if peer == leader {
        return Err(refused(OperatorRefusal::RemoveLeader));
    }
    not_busy(ops, &[leader])?;
    Ok(PendingOp {
        op: Operator {
            group,
            epoch: rec.epoch,
            kind: OperatorKind::RemovePeer(peer),
        },
        issued_ms: now_ms,
        involved: vec![leader],
    })
}

/// Drain status of `cs` (which must exist).
pub fn drain_status(topo: &Topology, ops: &OperatorSet, cs: ChunkServerId) -> DrainStatus {
    let p = drain_progress(topo, ops, cs);
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    DrainStatus {
        id: cs,
        state: if !topo.is_draining(cs) {
            DrainState::InService
        } else if p.drained() {
            DrainState::Drained
        } else {
            DrainState::Draining
        },
        copysets: n(p.copysets),
        leaders: n(p.leaders),
        blocked: n(p.blocked),
        operators: n(p.operators),
    }
}

/// Drain status of every chunkserver marked draining, in id order.
pub fn list_drains(topo: &Topology, ops: &OperatorSet) -> Vec<DrainStatus> {
    topo.draining
        .iter()
        .filter(|c| topo.chunkservers.contains_key(c))
        .map(|c| drain_status(topo, ops, *c))
        .collect()
}

/// Check a drain request: the chunkserver must be known. Returns whether the topology's
/// drain set changes.
pub fn check_drain(topo: &Topology, req: &DrainChunkServer) -> Result<bool, MdsError> {
    if !topo.chunkservers.contains_key(&req.id) {
        return Err(MdsError::UnknownChunkServer { id: req.id });
    }
    Ok(topo.is_draining(req.id) == req.undo)
}

/// Every logical pool, in id order; `usage_limit_percent` is the MDS's allocation limit.
pub fn list_pools(topo: &Topology, usage_limit_percent: u64) -> Vec<PoolSummary> {
    topo.lpools
        .values()
        .map(|l| {
            let (mut used, mut total) = (0u64, 0u64);
            for c in topo.chunkservers_in(l.physical) {
                let d = &topo.chunkservers[&c].disk;
                used = used.saturating_add(d.used_bytes);
                total = total.saturating_add(d.total_bytes);
            }
            PoolSummary {
                id: l.id,
                name: l.name.clone(),
                physical_pool: topo
                    .ppools
                    .get(&l.physical)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                replicas: l.replicas,
                copysets_per_chunkserver: l.copysets_per_chunkserver,
                scatter_width: l.scatter_width,
                copysets: u32::try_from(topo.copysets_of(l.id).count()).unwrap_or(u32::MAX),
                used_bytes: used,
                total_bytes: total,
                usage_limit_percent,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
