//! The etcd key schema and value encoding. Every key the MDS writes is built here.
//!
//! All keys live under the versioned root `/basalt/v1/`. Ids are appended as fixed-width
//! big-endian bytes, so a prefix scan returns them in numeric order.
//!
//! ```text
//! /basalt/v1/mds/leader                       election name; campaign keys are
//!                                             /basalt/v1/mds/leader/<lease hex>
//! /basalt/v1/cluster                          ClusterRecord (cluster id)
//! /basalt/v1/id/<name>                        id counters (decimal text, CAS on mod revision):
//!                                             chunk, volume
//! /basalt/v1/topo/ppool/<BE u32>              PhysicalPool
//! /basalt/v1/topo/zone/<BE u32>               Zone
//! /basalt/v1/topo/server/<BE u32>             Server
//! /basalt/v1/topo/cs/<BE u32>                 ChunkServer
//! /basalt/v1/topo/lpool/<BE u32>              LogicalPool
//! /basalt/v1/topo/copyset/<BE u64 group id>   CopysetRecord (pool << 32 | copyset)
//! /basalt/v1/topo/placement/<BE u32 lpool>     PlacementPlan (written before the
//!                                             pool's copysets; lets a successor resume)
//! /basalt/v1/topo/drain/<BE u32>              DrainRecord: the chunkserver is being
//!                                             retired (absent: in service)
//! /basalt/v1/ns/vol/<BE u64 volume id>        VolumeRecord
//! /basalt/v1/ns/seg/<BE u64 vol><BE u64 idx>  SegmentInfo
//! /basalt/v1/ns/recycle/<BE u64 volume id>    VolumeRecord of a deleted volume
//! /basalt/v1/owner/<name>                     OwnerRecord (salt + stored key, never a key)
//! ```
//!
//! Names are not keys: the name → id index is rebuilt in memory when the state loads, so
//! a rename is one write. Sessions are not stored (see `namespace`).
//!
//! Values are one format-version byte ([`VALUE_VERSION`]) followed by the record as JSON
//! (serde_json): readable with `etcdctl get`, tolerant of added optional fields, and far
//! below etcd's 1.5 MiB request limit (a segment map is ~2 KiB).

use crate::error::{Error, Result};
use basalt_proto::ids::{
    ChunkServerId, GroupId, LogicalPoolId, PhysicalPoolId, ServerId, VolumeId, ZoneId,
};
use serde::{de::DeserializeOwned, Serialize};

/// Root of every key.
pub const ROOT: &str = "/basalt/v1/";
/// Election name (campaign keys are created under it by etcd).
pub const LEADER: &str = "/basalt/v1/mds/leader";
/// Cluster record.
pub const CLUSTER: &str = "/basalt/v1/cluster";
/// Chunk id counter.
pub const ID_CHUNK: &str = "/basalt/v1/id/chunk";
/// Volume id counter.
pub const ID_VOLUME: &str = "/basalt/v1/id/volume";

/// Prefix of physical pools.
pub const PPOOL: &str = "/basalt/v1/topo/ppool/";
/// Prefix of zones.
pub const ZONE: &str = "/basalt/v1/topo/zone/";
/// Prefix of servers.
pub const SERVER: &str = "/basalt/v1/topo/server/";
/// Prefix of chunkservers.
pub const CHUNKSERVER: &str = "/basalt/v1/topo/cs/";
/// Prefix of logical pools.
pub const LPOOL: &str = "/basalt/v1/topo/lpool/";
/// Prefix of copysets.
pub const COPYSET: &str = "/basalt/v1/topo/copyset/";
/// Prefix of logical pools' placement plans.
pub const PLACEMENT: &str = "/basalt/v1/topo/placement/";
/// Prefix of drain marks of chunkservers.
pub const DRAIN: &str = "/basalt/v1/topo/drain/";
/// Prefix of volumes.
pub const VOLUME: &str = "/basalt/v1/ns/vol/";
/// Prefix of segments.
pub const SEGMENT: &str = "/basalt/v1/ns/seg/";
/// Prefix of recycled (deleted) volumes.
pub const RECYCLE: &str = "/basalt/v1/ns/recycle/";

/// Prefix of volume owners.
pub const OWNER: &str = "/basalt/v1/owner/";

/// Current value format version.
pub const VALUE_VERSION: u8 = 1;

fn with_be(prefix: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Physical pool key.
pub fn ppool(id: PhysicalPoolId) -> Vec<u8> {
    with_be(PPOOL, &[&id.0.to_be_bytes()])
}
/// Zone key.
pub fn zone(id: ZoneId) -> Vec<u8> {
    with_be(ZONE, &[&id.0.to_be_bytes()])
}
/// Server key.
pub fn server(id: ServerId) -> Vec<u8> {
    with_be(SERVER, &[&id.0.to_be_bytes()])
}
/// Chunkserver key.
pub fn chunkserver(id: ChunkServerId) -> Vec<u8> {
    with_be(CHUNKSERVER, &[&id.0.to_be_bytes()])
}
/// Logical pool key.
pub fn lpool(id: LogicalPoolId) -> Vec<u8> {
    with_be(LPOOL, &[&id.0.to_be_bytes()])
}
/// Copyset key.
pub fn copyset(g: GroupId) -> Vec<u8> {
    with_be(COPYSET, &[&g.0.to_be_bytes()])
}
/// Placement plan key of a logical pool.
pub fn placement(id: LogicalPoolId) -> Vec<u8> {
    with_be(PLACEMENT, &[&id.0.to_be_bytes()])
}
/// Drain mark key of a chunkserver.
pub fn drain(id: ChunkServerId) -> Vec<u8> {
    with_be(DRAIN, &[&id.0.to_be_bytes()])
}
/// Volume key.
pub fn volume(id: VolumeId) -> Vec<u8> {
    with_be(VOLUME, &[&id.0.to_be_bytes()])
}
/// Recycled volume key.
pub fn recycled(id: VolumeId) -> Vec<u8> {
    with_be(RECYCLE, &[&id.0.to_be_bytes()])
}
/// Prefix of one volume's segments.
pub fn segments_of(id: VolumeId) -> Vec<u8> {
    with_be(SEGMENT, &[&id.0.to_be_bytes()])
}
/// Segment key.
pub fn segment(id: VolumeId, index: u64) -> Vec<u8> {
    with_be(SEGMENT, &[&id.0.to_be_bytes(), &index.to_be_bytes()])
}

/// Owner key (names are `[A-Za-z0-9._-]`, so they need no escaping).
pub fn owner(name: &str) -> Vec<u8> {
    with_be(OWNER, &[name.as_bytes()])
}

/// Parse the `(volume, index)` out of a segment key.
pub fn parse_segment(key: &[u8]) -> Option<(VolumeId, u64)> {
    let rest = key.strip_prefix(SEGMENT.as_bytes())?;
    if rest.len() != 16 {
        return None;
    }
    let v = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let i = u64::from_be_bytes(rest[8..].try_into().ok()?);
    Some((VolumeId(v), i))
}

/// Encode a value: version byte + JSON.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![VALUE_VERSION];
    // Serializing our own plain records cannot fail (no maps with non-string keys).
    serde_json::to_writer(&mut out, v).unwrap_or_else(|e| {
        tracing::error!(error = %e, "value encoding failed");
    });
    out
}

/// Decode a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    let corrupt = |reason: String| Error::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&VALUE_VERSION, rest)) => {
            serde_json::from_slice(rest).map_err(|e| corrupt(e.to_string()))
        }
        Some((v, _)) => Err(corrupt(format!("unknown value version {v}"))),
        None => Err(corrupt("empty value".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_numerically() {
        let a = volume(VolumeId(2));
        let b = volume(VolumeId(256));
        assert!(a < b);
        assert!(segment(VolumeId(1), 3) < segment(VolumeId(1), 300));
        assert!(segment(VolumeId(1), u64::MAX) < segment(VolumeId(2), 0));
        assert!(segment(VolumeId(7), 9).starts_with(&segments_of(VolumeId(7))));
    }

    #[test]
    fn segment_key_round_trips() {
        let k = segment(VolumeId(42), 17);
        assert_eq!(parse_segment(&k), Some((VolumeId(42), 17)));
        assert_eq!(parse_segment(b"/basalt/v1/ns/seg/short"), None);
    }

    #[test]
    fn values_carry_a_version_byte() {
        let v = encode(&vec![1u32, 2]);
        assert_eq!(v[0], VALUE_VERSION);
        assert_eq!(decode::<Vec<u32>>(b"k", &v).unwrap(), vec![1, 2]);
        let mut bad = v.clone();
        bad[0] = 9;
        assert!(matches!(
            decode::<Vec<u32>>(b"k", &bad),
            Err(Error::Corrupt { .. })
        ));
        assert!(decode::<Vec<u32>>(b"k", &[]).is_err());
        assert!(decode::<Vec<u32>>(b"k", &[VALUE_VERSION, b'{']).is_err());
    }
}
