//! Identifier newtypes. Ids are plain integers on the wire; the types keep them apart in code.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl From<$inner> for $name {
            fn from(v: $inner) -> Self {
                Self(v)
            }
        }
    };
}

id_type!(
    /// A chunkserver (one disk). Assigned by the MDS at registration.
    ChunkServerId(u32), "cs"
);
id_type!(
    /// A server (host) holding one or more chunkservers.
    ServerId(u32), "srv"
);
id_type!(
    /// A zone: the failure domain. A copyset has at most one replica per zone.
    ZoneId(u32), "zone"
);
id_type!(
    /// A physical pool: a set of zones.
    PhysicalPoolId(u32), "ppool"
);
id_type!(
    /// A logical pool: sits on a physical pool and owns copysets.
    LogicalPoolId(u32), "lpool"
);
id_type!(
    /// A copyset within its logical pool.
    CopysetId(u32), "copyset"
);
id_type!(
    /// A raft group on the wire: `(logical pool id << 32) | copyset id`.
    GroupId(u64), "group"
);
id_type!(
    /// A chunk (16 MiB), unique in the cluster; handed out by the MDS id generator.
    ChunkId(u64), "chunk"
);
id_type!(
    /// A volume (virtual disk).
    VolumeId(u64), "vol"
);
id_type!(
    /// A copyset's configuration epoch; grows with every membership change.
    Epoch(u64), "epoch"
);
id_type!(
    /// An MDS instance.
    MdsId(u32), "mds"
);

impl GroupId {
    /// The group id of a copyset: `(pool << 32) | copyset`.
    pub const fn of(pool: LogicalPoolId, copyset: CopysetId) -> Self {
        GroupId(((pool.0 as u64) << 32) | copyset.0 as u64)
    }

    /// The logical pool part.
    pub const fn pool(self) -> LogicalPoolId {
        LogicalPoolId((self.0 >> 32) as u32)
    }

    /// The copyset part.
    pub const fn copyset(self) -> CopysetId {
        CopysetId(self.0 as u32)
    }

    /// Group id 0 is reserved for frames that belong to no raft group.
    pub const NONE: GroupId = GroupId(0);
}

/// Size of a chunk: the unit of placement and of replication.
pub const CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// Size of a segment: the unit of allocation by the MDS.
pub const SEGMENT_SIZE: u64 = 1024 * 1024 * 1024;
/// Chunks per segment.
pub const CHUNKS_PER_SEGMENT: u64 = SEGMENT_SIZE / CHUNK_SIZE;
/// Smallest I/O unit accepted anywhere.
pub const SECTOR_SIZE: u64 = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_id_round_trips_pool_and_copyset() {
        let g = GroupId::of(LogicalPoolId(7), CopysetId(0xdead_beef));
        assert_eq!(g.0, (7u64 << 32) | 0xdead_beef);
        assert_eq!(g.pool(), LogicalPoolId(7));
        assert_eq!(g.copyset(), CopysetId(0xdead_beef));
        assert_eq!(g.to_string(), format!("group{}", g.0));
    }

    #[test]
    fn segment_holds_64_chunks() {
        assert_eq!(CHUNKS_PER_SEGMENT, 64);
    }
}
