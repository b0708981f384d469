//! The cluster model held by the MDS (in memory; persisted record by record).

use basalt_proto::heartbeat::DiskStats;
use basalt_proto::ids::{
    ChunkServerId, Epoch, GroupId, LogicalPoolId, PhysicalPoolId, ServerId, ZoneId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// A physical pool: a set of zones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalPool {
    /// Id.
    pub id: PhysicalPoolId,
    /// Name from the cluster map.
    pub name: String,
}

/// A zone (failure domain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    /// Id.
    pub id: ZoneId,
    /// Name.
    pub name: String,
    /// Physical pool.
    pub pool: PhysicalPoolId,
}

/// A server (host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// Id.
    pub id: ServerId,
    /// Name (chunkservers register with it).
    pub name: String,
    /// Zone.
    pub zone: ZoneId,
}

/// Liveness of a chunkserver, derived from heartbeat age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnlineState {
    /// Heartbeats arrive.
    Online,
    /// Heartbeats missed for a while; no new placement, no recovery yet.
    Unstable,
    /// Gone long enough to recover its copysets elsewhere.
    Offline,
}

/// A chunkserver (one disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkServer {
    /// Id.
    pub id: ChunkServerId,
    /// Server.
    pub server: ServerId,
    /// Disk uuid (identity across restarts).
    pub disk_uuid: String,
    /// Secret token presented in heartbeats.
    pub token: String,
    /// Service address.
    pub addr: SocketAddr,
    /// Latest disk stats.
    pub disk: DiskStats,
    /// Time of the latest heartbeat or registration, ms (not persisted meaningfully:
    /// reset to the load time after a failover so nothing looks offline at once).
    pub last_seen_ms: u64,
    /// Derived liveness.
    pub state: OnlineState,
}

/// A logical pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalPool {
    /// Id.
    pub id: LogicalPoolId,
    /// Name.
    pub name: String,
    /// Physical pool it places on.
    pub physical: PhysicalPoolId,
    /// Replicas per copyset.
    pub replicas: u8,
    /// Copysets per chunkserver (about).
    pub copysets_per_chunkserver: u32,
    /// Minimum distinct peers each chunkserver shares copysets with (0: no minimum),
    /// checked when the pool's copysets are placed.
    pub scatter_width: u32,
}

/// A copyset as the MDS knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopysetRecord {
    /// Group id.
    pub group: GroupId,
    /// Configuration epoch.
    pub epoch: Epoch,
    /// Voters.
    pub peers: Vec<ChunkServerId>,
    /// Leader from the latest heartbeat (hint; not persisted on every change).
    pub leader: Option<ChunkServerId>,
}

/// The whole topology.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Physical pools.
    pub ppools: BTreeMap<PhysicalPoolId, PhysicalPool>,
    /// Zones.
    pub zones: BTreeMap<ZoneId, Zone>,
    /// Servers.
    pub servers: BTreeMap<ServerId, Server>,
    /// Chunkservers.
    pub chunkservers: BTreeMap<ChunkServerId, ChunkServer>,
    /// Logical pools.
    pub lpools: BTreeMap<LogicalPoolId, LogicalPool>,
    /// Copysets.
    pub copysets: BTreeMap<GroupId, CopysetRecord>,
    /// Chunkservers an operator is retiring: placement never picks them and the
    /// scheduler moves their copysets away (persisted apart from the chunkserver record,
    /// see `keys::DRAIN`).
    pub draining: BTreeSet<ChunkServerId>,
}

impl Topology {
    /// Zone of a chunkserver.
    pub fn zone_of(&self, cs: ChunkServerId) -> Option<ZoneId> {
        let c = self.chunkservers.get(&cs)?;
        Some(self.servers.get(&c.server)?.zone)
    }

    /// Whether an operator is retiring this chunkserver.
    pub fn is_draining(&self, cs: ChunkServerId) -> bool {
        self.draining.contains(&cs)
    }

    /// Physical pool of a chunkserver.
    pub fn ppool_of(&self, cs: ChunkServerId) -> Option<PhysicalPoolId> {
        Some(self.zones.get(&self.zone_of(cs)?)?.pool)
    }

    /// Chunkservers placed in a physical pool.
    pub fn chunkservers_in(&self, pool: PhysicalPoolId) -> Vec<ChunkServerId> {
        self.chunkservers
            .keys()
            .copied()
            .filter(|&c| self.ppool_of(c) == Some(pool))
            .collect()
    }

    /// Copysets of a logical pool.
    pub fn copysets_of(&self, pool: LogicalPoolId) -> impl Iterator<Item = &CopysetRecord> {
        self.copysets
            .values()
            .filter(move |c| c.group.pool() == pool)
    }

    /// Copyset count per chunkserver (chunkservers with none included as 0).
    pub fn copyset_counts(&self) -> BTreeMap<ChunkServerId, usize> {
        let mut m: BTreeMap<_, _> = self.chunkservers.keys().map(|&c| (c, 0)).collect();
        for cs in self.copysets.values() {
            for p in &cs.peers {
                *m.entry(*p).or_default() += 1;
            }
        }
        m
    }

    /// Usage of the disks of a physical pool, in percent (0 when no capacity is known).
    pub fn usage_percent(&self, pool: PhysicalPoolId) -> u64 {
        let (mut used, mut total) = (0u64, 0u64);
        for c in self.chunkservers_in(pool) {
            let d = &self.chunkservers[&c].disk;
            used = used.saturating_add(d.used_bytes);
            total = total.saturating_add(d.total_bytes);
        }
        used.saturating_mul(100).checked_div(total).unwrap_or(0)
    }
}
