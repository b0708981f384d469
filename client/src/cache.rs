//! The client's metadata cache: where each segment's chunks live and who serves each
//! copyset. Kept across MDS outages (I/O goes on from cached maps); entries are refreshed
//! when a chunkserver says the map is stale.

use basalt_proto::ids::{ChunkId, ChunkServerId, Epoch, GroupId, VolumeId};
use basalt_proto::mds::{CopysetInfo, SegmentInfo};
use basalt_proto::status::PeerAddr;
use std::collections::HashMap;

/// Where one chunk piece goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLocation {
    /// Copyset.
    pub group: GroupId,
    /// Chunk.
    pub chunk: ChunkId,
}

/// Result of looking a chunk up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The segment is not in the cache: ask the MDS (allocating for a write).
    SegmentUnknown,
    /// The segment is known to be unallocated (reads return zeros without a round trip).
    Unallocated,
    /// The chunk is known but its copyset is not: fetch it from the MDS.
    CopysetUnknown(ChunkLocation),
    /// Everything needed to send the request.
    Ready {
        /// The chunk.
        loc: ChunkLocation,
        /// Copyset epoch to send.
        epoch: Epoch,
        /// Where to send: the cached leader, else the first peer.
        target: PeerAddr,
        /// Whether `target` is a known leader or a guess.
        leader_known: bool,
    },
}

#[derive(Debug, Clone)]
struct CopysetEntry {
    info: CopysetInfo,
    leader: Option<ChunkServerId>,
}

/// The cache itself. Not thread-safe by itself: the I/O shell wraps it in a lock.
#[derive(Debug, Default)]
pub struct MetaCache {
    /// (volume, segment index) → its chunks, or `None` when known unallocated.
    segments: HashMap<(VolumeId, u64), Option<SegmentInfo>>,
    copysets: HashMap<GroupId, CopysetEntry>,
}

impl MetaCache {
    /// Look up chunk `chunk` of segment `segment` of `volume`.
    pub fn lookup(&self, volume: VolumeId, segment: u64, chunk: u32) -> Lookup {
        let seg = match self.segments.get(&(volume, segment)) {
            None => return Lookup::SegmentUnknown,
            Some(None) => return Lookup::Unallocated,
            Some(Some(seg)) => seg,
        };
        let Some(&(copyset, chunk_id)) = seg.chunks.get(chunk as usize) else {
            // A malformed segment map from the MDS: treat as unknown so it is refetched.
            return Lookup::SegmentUnknown;
        };
        let loc = ChunkLocation {
            group: GroupId::of(seg.pool, copyset),
            chunk: chunk_id,
        };
        let Some(entry) = self.copysets.get(&loc.group) else {
            return Lookup::CopysetUnknown(loc);
        };
        let leader = entry
            .leader
            .and_then(|id| entry.info.peers.iter().find(|p| p.id == id).copied());
        match leader.or_else(|| entry.info.peers.first().copied()) {
            Some(target) => Lookup::Ready {
                loc,
                epoch: entry.info.epoch,
                target,
                leader_known: leader.is_some(),
            },
            None => Lookup::CopysetUnknown(loc),
        }
    }

    /// Record a segment map from the MDS (`None`: not allocated).
    pub fn insert_segment(&mut self, volume: VolumeId, segment: u64, info: Option<SegmentInfo>) {
        // Never downgrade an allocated segment to "unallocated": a stale read-only answer
        // racing with our own allocation must not hide written data.
        if info.is_none() && matches!(self.segments.get(&(volume, segment)), Some(Some(_))) {
            return;
        }
        self.segments.insert((volume, segment), info);
    }

    /// Record a copyset map from the MDS. An older epoch than the cached one is ignored;
    /// a newer one replaces peers and forgets a leader that is no longer a peer.
    pub fn update_copyset(&mut self, info: CopysetInfo) {
        match self.copysets.get_mut(&info.group) {
            Some(entry) if entry.info.epoch > info.epoch => {}
            Some(entry) => {
                let leader = info.leader.or(entry.leader);
                entry.leader = leader.filter(|id| info.peers.iter().any(|p| p.id == *id));
                entry.info = info;
            }
            None => {
                let leader = info.leader;
                self.copysets
                    .insert(info.group, CopysetEntry { info, leader });
            }
        }
    }

    /// A chunkserver told us who leads (redirect hint or get-leader answer). A leader
    /// that is not among the cached peers means our peer list is stale: the peer is added
    /// so the request can go there, and the caller should refresh the copyset.
    /// Returns false when the copyset is unknown.
    pub fn set_leader(&mut self, group: GroupId, leader: PeerAddr) -> bool {
        let Some(entry) = self.copysets.get_mut(&group) else {
            return false;
        };
        match entry.info.peers.iter_mut().find(|p| p.id == leader.id) {
            Some(p) => p.addr = leader.addr,
            None => entry.info.peers.push(leader),
        }
        entry.leader = Some(leader.id);
        true
    }

    /// Forget who leads a copyset (after a timeout at the leader).
    pub fn clear_leader(&mut self, group: GroupId) {
        if let Some(entry) = self.copysets.get_mut(&group) {
            entry.leader = None;
        }
    }

    /// Peers of a copyset, to ask who leads.
    pub fn peers(&self, group: GroupId) -> Vec<PeerAddr> {
        self.copysets
            .get(&group)
            .map(|e| e.info.peers.clone())
            .unwrap_or_default()
    }

    /// Drop a copyset so the next lookup fetches it from the MDS (epoch too old,
    /// copyset not found on the peer).
    pub fn invalidate_copyset(&mut self, group: GroupId) {
        self.copysets.remove(&group);
    }

    /// Drop everything cached for a volume (closed or deleted).
    pub fn forget_volume(&mut self, volume: VolumeId) {
        self.segments.retain(|(v, _), _| *v != volume);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::{CopysetId, LogicalPoolId};

    fn peer(id: u32) -> PeerAddr {
        PeerAddr {
            id: ChunkServerId(id),
            addr: format!("127.0.0.1:{}", 7000 + id).parse().unwrap(),
        }
    }

    fn cs_info(epoch: u64, leader: Option<u32>) -> CopysetInfo {
        CopysetInfo {
            group: GroupId::of(LogicalPoolId(1), CopysetId(5)),
            epoch: Epoch(epoch),
            peers: vec![peer(1), peer(2), peer(3)],
            leader: leader.map(ChunkServerId),
        }
    }

    fn seg() -> SegmentInfo {
        SegmentInfo {
            pool: LogicalPoolId(1),
            chunks: (0..64).map(|i| (CopysetId(5), ChunkId(1000 + i))).collect(),
        }
    }

    #[test]
    fn lookup_walks_segment_then_copyset() {
        let mut c = MetaCache::default();
        let v = VolumeId(1);
        assert_eq!(c.lookup(v, 0, 3), Lookup::SegmentUnknown);
        c.insert_segment(v, 0, None);
        assert_eq!(c.lookup(v, 0, 3), Lookup::Unallocated);
        c.insert_segment(v, 0, Some(seg()));
        let loc = ChunkLocation {
            group: GroupId::of(LogicalPoolId(1), CopysetId(5)),
            chunk: ChunkId(1003),
        };
        assert_eq!(c.lookup(v, 0, 3), Lookup::CopysetUnknown(loc));
        c.update_copyset(cs_info(2, Some(2)));
        assert_eq!(
            c.lookup(v, 0, 3),
            Lookup::Ready {
                loc,
                epoch: Epoch(2),
                target: peer(2),
                leader_known: true
            }
        );
        // an allocated segment is never downgraded by a stale "unallocated" answer
        c.insert_segment(v, 0, None);
        assert!(matches!(c.lookup(v, 0, 3), Lookup::Ready { .. }));
        // malformed segment (too few chunks) is refetched rather than trusted
        assert_eq!(c.lookup(v, 0, 64), Lookup::SegmentUnknown);
    }

    #[test]
    fn older_epochs_are_ignored_and_leaders_follow_hints() {
        let mut c = MetaCache::default();
        let g = cs_info(5, None).group;
        c.update_copyset(cs_info(5, None));
        c.insert_segment(VolumeId(1), 0, Some(seg()));
        let Lookup::Ready {
            leader_known,
            target,
            ..
        } = c.lookup(VolumeId(1), 0, 0)
        else {
            panic!()
        };
        assert!(!leader_known);
        assert_eq!(target, peer(1));
        c.update_copyset(cs_info(4, Some(3)));
        assert!(matches!(
            c.lookup(VolumeId(1), 0, 0),
            Lookup::Ready {
                epoch: Epoch(5),
                leader_known: false,
                ..
            }
        ));
        // a hint naming a peer we do not know adds it
        let newcomer = peer(9);
        assert!(c.set_leader(g, newcomer));
        assert!(
            matches!(c.lookup(VolumeId(1), 0, 0), Lookup::Ready { target, leader_known: true, .. } if target == newcomer)
        );
        // a newer map without that peer forgets it as leader
        c.update_copyset(cs_info(6, None));
        assert!(matches!(
            c.lookup(VolumeId(1), 0, 0),
            Lookup::Ready {
                leader_known: false,
                ..
            }
        ));
        c.invalidate_copyset(g);
        assert!(matches!(
            c.lookup(VolumeId(1), 0, 0),
            Lookup::CopysetUnknown(_)
        ));
        assert!(!c.set_leader(g, peer(1)));
    }
}
