//! Volumes, sessions and segments (sans-IO).
//!
//! Changes that must be persisted are split in two: a `plan_*` method validates against
//! the current state and returns the new record without changing anything; the caller
//! stores it (one fenced transaction) and then calls the matching `commit_*` method.
//! Sessions are kept in memory only: after an MDS failover a refresh of a session the new
//! MDS does not know re-creates it, unless another live session conflicts with it, so IO
//! keeps going across a failover and exclusivity still holds for live sessions.

use crate::recycle::RecycledVolume;
use basalt_proto::ids::{
    ChunkId, CopysetId, LogicalPoolId, VolumeId, CHUNKS_PER_SEGMENT, SEGMENT_SIZE,
};
use basalt_proto::mds::{CreateVolume, Opened, SegmentInfo, Session, VolumeInfo};
use basalt_proto::status::MdsError;
use rand::Rng;
use std::collections::{BTreeMap, HashMap};

/// Largest volume: 256 TiB.
pub const MAX_VOLUME_SIZE: u64 = 256 << 40;
/// Default session lease.
pub const DEFAULT_LEASE_MS: u64 = 5_000;

/// Check a volume name: 1..=128 bytes of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
pub fn validate_name(name: &str) -> Result<(), MdsError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(MdsError::InvalidName)
    }
}

/// Check a volume size: a positive multiple of the segment size, at most [`MAX_VOLUME_SIZE`].
pub fn validate_size(size: u64) -> Result<(), MdsError> {
    if size == 0 || size % SEGMENT_SIZE != 0 || size > MAX_VOLUME_SIZE {
        Err(MdsError::InvalidSize { size })
    } else {
        Ok(())
    }
}

/// An open session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRec {
    /// Session id.
    pub id: String,
    /// Client description.
    pub client: String,
    /// Opened shared.
    pub shared: bool,
    /// Lease end, ms.
    pub expires_ms: u64,
}

/// The namespace.
#[derive(Debug, Clone)]
pub struct Namespace {
    volumes: BTreeMap<VolumeId, VolumeInfo>,
    by_name: BTreeMap<String, VolumeId>,
    segments: BTreeMap<(VolumeId, u64), SegmentInfo>,
    recycled: BTreeMap<VolumeId, RecycledVolume>,
    sessions: HashMap<VolumeId, Vec<SessionRec>>,
    cursor: HashMap<LogicalPoolId, usize>,
    lease_ms: u64,
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new(DEFAULT_LEASE_MS)
    }
}

impl Namespace {
    /// Empty, with the given session lease.
    pub fn new(lease_ms: u64) -> Self {
        Self {
            volumes: BTreeMap::new(),
            by_name: BTreeMap::new(),
            segments: BTreeMap::new(),
            recycled: BTreeMap::new(),
            sessions: HashMap::new(),
            cursor: HashMap::new(),
            lease_ms,
        }
    }

    /// Session lease in ms.
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    // ---- queries ----

    /// A volume by name.
    pub fn stat(&self, name: &str) -> Result<&VolumeInfo, MdsError> {
        self.by_name
            .get(name)
            .and_then(|id| self.volumes.get(id))
            .ok_or(MdsError::VolumeNotFound)
    }

    /// A volume by id.
    pub fn volume(&self, id: VolumeId) -> Result<&VolumeInfo, MdsError> {
        self.volumes.get(&id).ok_or(MdsError::VolumeNotFound)
    }

    /// Every volume, by id.
    pub fn list(&self) -> Vec<VolumeInfo> {
        self.volumes.values().cloned().collect()
    }

    /// Deleted volumes kept in the recycle area.
    pub fn recycled(&self) -> Vec<VolumeInfo> {
        self.recycled.values().map(|r| r.volume.clone()).collect()
    }

    /// Recycle records (volume and deletion time).
    pub fn recycle_records(&self) -> Vec<RecycledVolume> {
        self.recycled.values().cloned().collect()
    }

    /// A recycled volume by id.
    pub fn recycled_volume(&self, id: VolumeId) -> Option<&RecycledVolume> {
        self.recycled.get(&id)
    }

    /// Allocated segments of a volume (live or recycled), by index.
    pub fn segments_of(&self, volume: VolumeId) -> Vec<(u64, &SegmentInfo)> {
        self.segments
            .range((volume, 0)..=(volume, u64::MAX))
            .map(|((_, i), s)| (*i, s))
            .collect()
    }

    /// A segment map if allocated.
    pub fn segment(&self, volume: VolumeId, index: u64) -> Option<&SegmentInfo> {
        self.segments.get(&(volume, index))
    }

    /// Number of allocated segments (all volumes).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Live sessions of a volume at `now_ms`.
    pub fn sessions(&self, volume: VolumeId, now_ms: u64) -> Vec<SessionRec> {
        self.sessions
            .get(&volume)
            .map(|v| {
                v.iter()
                    .filter(|s| s.expires_ms > now_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    // ---- plans (no change) ----

    /// Validate a create; the caller supplies the new id, pool and time.
    pub fn plan_create(
        &self,
        req: &CreateVolume,
        id: VolumeId,
        pool: LogicalPoolId,
        now_s: u64,
    ) -> Result<VolumeInfo, MdsError> {
        validate_name(&req.name)?;
        validate_size(req.size)?;
        if self.by_name.contains_key(&req.name) {
            return Err(MdsError::VolumeExists);
        }
        Ok(VolumeInfo {
            id,
            name: req.name.clone(),
            size: req.size,
            owner: req.owner.clone(),
            pool,
            ctime: now_s,
        })
    }

    /// Validate an extend: a larger valid size.
    pub fn plan_extend(&self, name: &str, size: u64) -> Result<VolumeInfo, MdsError> {
        let v = self.stat(name)?;
        validate_size(size)?;
        if size <= v.size {
            return Err(MdsError::InvalidSize { size });
        }
        Ok(VolumeInfo { size, ..v.clone() })
    }

    /// Validate a rename.
    pub fn plan_rename(&self, from: &str, to: &str) -> Result<VolumeInfo, MdsError> {
        validate_name(to)?;
        let v = self.stat(from)?;
        if self.by_name.contains_key(to) {
            return Err(MdsError::VolumeExists);
        }
        Ok(VolumeInfo {
            name: to.to_string(),
            ..v.clone()
        })
    }

    /// Validate a delete: the volume must not be open.
    pub fn plan_delete(&self, name: &str, now_ms: u64) -> Result<VolumeInfo, MdsError> {
        let v = self.stat(name)?;
        if !self.sessions(v.id, now_ms).is_empty() {
            return Err(MdsError::VolumeBusy { volume: v.id });
        }
        Ok(v.clone())
    }

    /// Check a session is live for `volume`.
    pub fn check_session(
        &self,
        volume: VolumeId,
        session: &str,
        now_ms: u64,
    ) -> Result<(), MdsError> {
        self.volume(volume)?;
        let live = self
            .sessions
            .get(&volume)
            .is_some_and(|v| v.iter().any(|s| s.id == session && s.expires_ms > now_ms));
        if live {
            Ok(())
        } else {
            Err(MdsError::SessionExpired)
        }
    }

    /// Plan the allocation of segment `index`: `chunk_ids` must hold at least
    /// [`CHUNKS_PER_SEGMENT`] fresh ids (consumed from the front on success);
    /// `copysets` are the pool's healthy copysets; allocation is refused when the pool's
    /// usage is above `usage_limit_percent`.
    pub fn plan_segment(
        &self,
        volume: VolumeId,
        index: u64,
        copysets: &[CopysetId],
        chunk_ids: &[ChunkId],
        usage_percent: u64,
        usage_limit_percent: u64,
    ) -> Result<SegmentInfo, MdsError> {
        let v = self.volume(volume)?;
        let offset = index.saturating_mul(SEGMENT_SIZE);
        if offset >= v.size {
            return Err(MdsError::OutOfRange {
                offset,
                size: v.size,
            });
        }
        if usage_percent > usage_limit_percent {
            return Err(MdsError::NoSpace);
        }
        if copysets.is_empty() {
            return Err(MdsError::NoCopysets);
        }
        let n = CHUNKS_PER_SEGMENT as usize;
        if chunk_ids.len() < n {
            return Err(MdsError::StoreUnavailable);
        }
        let start = self.cursor.get(&v.pool).copied().unwrap_or(0);
        let chunks = (0..n)
            .map(|i| (copysets[(start + i) % copysets.len()], chunk_ids[i]))
            .collect();
        Ok(SegmentInfo {
            pool: v.pool,
            chunks,
        })
    }

    // ---- commits (after the store accepted the write) ----

    /// Insert or replace a volume (create, extend, rename, load).
    pub fn commit_volume(&mut self, v: VolumeInfo) {
        if let Some(old) = self.volumes.get(&v.id) {
            if old.name != v.name {
                self.by_name.remove(&old.name);
            }
        }
        self.by_name.insert(v.name.clone(), v.id);
        self.volumes.insert(v.id, v);
    }

    /// Move a volume to the recycle area at `now_s` (its segments stay until purged).
    pub fn commit_delete(&mut self, id: VolumeId, now_s: u64) {
        if let Some(v) = self.volumes.remove(&id) {
            self.by_name.remove(&v.name);
            self.sessions.remove(&id);
            self.recycled.insert(
                id,
                RecycledVolume {
                    volume: v,
                    deleted_s: now_s,
                },
            );
        }
    }

    /// Record a recycled volume (load).
    pub fn commit_recycled(&mut self, r: RecycledVolume) {
        self.recycled.insert(r.volume.id, r);
    }

    /// Forget segment `index` of a recycled volume (its record was removed).
    pub fn commit_purged_segment(&mut self, volume: VolumeId, index: u64) {
        self.segments.remove(&(volume, index));
    }

    /// Forget a purged volume: its recycle record and any segment left.
    pub fn commit_purged(&mut self, volume: VolumeId) {
        self.recycled.remove(&volume);
        self.segments.retain(|(v, _), _| *v != volume);
    }

    /// Record an allocated segment; advances the pool's round-robin cursor.
    pub fn commit_segment(
        &mut self,
        volume: VolumeId,
        index: u64,
        seg: SegmentInfo,
        copysets: usize,
    ) {
        if copysets > 0 {
            let c = self.cursor.entry(seg.pool).or_default();
            *c = (*c + seg.chunks.len()) % copysets;
        }
        self.segments.insert((volume, index), seg);
    }

    // ---- sessions (memory only) ----

    fn expire(&mut self, volume: VolumeId, now_ms: u64) {
        if let Some(v) = self.sessions.get_mut(&volume) {
            v.retain(|s| s.expires_ms > now_ms);
        }
    }

    /// Open with a session. Exclusive unless `shared`; an exclusive open is refused while
    /// any live session exists, a shared one while a live exclusive session exists.
    pub fn open(
        &mut self,
        name: &str,
        shared: bool,
        client: &str,
        now_ms: u64,
        rng: &mut impl Rng,
    ) -> Result<Opened, MdsError> {
        let v = self.stat(name)?.clone();
        self.expire(v.id, now_ms);
        let live = self.sessions.entry(v.id).or_default();
        if live.iter().any(|s| !shared || !s.shared) {
            return Err(MdsError::VolumeBusy { volume: v.id });
        }
        let id = format!("{:032x}", rng.gen::<u128>());
        live.push(SessionRec {
            id: id.clone(),
            client: client.to_string(),
            shared,
            expires_ms: now_ms + self.lease_ms,
        });
        Ok(Opened {
            volume: v,
            session: Session {
                id,
                lease_ms: u32::try_from(self.lease_ms).unwrap_or(u32::MAX),
            },
        })
    }

    /// Refresh a session's lease; returns the volume as it is now. An unknown session
    /// (e.g. after an MDS failover) is adopted as exclusive when nothing conflicts.
    pub fn refresh(
        &mut self,
        volume: VolumeId,
        session: &str,
        now_ms: u64,
    ) -> Result<VolumeInfo, MdsError> {
        let v = self.volume(volume)?.clone();
        self.expire(volume, now_ms);
        let lease = self.lease_ms;
        let live = self.sessions.entry(volume).or_default();
        if let Some(s) = live.iter_mut().find(|s| s.id == session) {
            s.expires_ms = now_ms + lease;
            return Ok(v);
        }
        if !live.is_empty() {
            return Err(MdsError::SessionExpired);
        }
        live.push(SessionRec {
            id: session.to_string(),
            client: String::new(),
            shared: false,
            expires_ms: now_ms + lease,
        });
        Ok(v)
    }

    /// Close a session (idempotent).
    pub fn close(&mut self, volume: VolumeId, session: &str) -> Result<(), MdsError> {
        self.volume(volume)?;
        if let Some(v) = self.sessions.get_mut(&volume) {
            v.retain(|s| s.id != session);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const G: u64 = SEGMENT_SIZE;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(9)
    }

    fn ns_with(name: &str, size: u64) -> (Namespace, VolumeId) {
        let mut ns = Namespace::new(5_000);
        let req = CreateVolume {
            name: name.into(),
            size,
            owner: "alice".into(),
            auth: None,
        };
        let v = ns
            .plan_create(&req, VolumeId(1), LogicalPoolId(1), 100)
            .unwrap();
        ns.commit_volume(v);
        (ns, VolumeId(1))
    }

    #[test]
    fn names() {
        for ok in ["a", "vol-1", "A.b_c", "0", &"x".repeat(128)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(129),
            "a\0",
        ] {
            assert_eq!(validate_name(bad), Err(MdsError::InvalidName), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert!(validate_size(G).is_ok());
        assert!(validate_size(10 * G).is_ok());
        for bad in [0, 1, G - 1, G + 512, MAX_VOLUME_SIZE + G] {
            assert_eq!(validate_size(bad), Err(MdsError::InvalidSize { size: bad }));
        }
    }

    #[test]
    fn create_stat_list_extend_rename_delete() {
        let (mut ns, id) = ns_with("v1", 2 * G);
        let dup = CreateVolume {
            name: "v1".into(),
            size: G,
            owner: "bob".into(),
            auth: None,
        };
        assert_eq!(
            ns.plan_create(&dup, VolumeId(2), LogicalPoolId(1), 0),
            Err(MdsError::VolumeExists)
        );
        assert_eq!(ns.stat("v1").unwrap().size, 2 * G);
        assert_eq!(ns.stat("nope"), Err(MdsError::VolumeNotFound));
        assert_eq!(
            ns.plan_extend("v1", G),
            Err(MdsError::InvalidSize { size: G })
        );
        assert_eq!(
            ns.plan_extend("v1", 2 * G),
            Err(MdsError::InvalidSize { size: 2 * G })
        );
        let grown = ns.plan_extend("v1", 4 * G).unwrap();
        ns.commit_volume(grown);
        assert_eq!(ns.stat("v1").unwrap().size, 4 * G);
        assert_eq!(ns.plan_rename("v1", "bad/name"), Err(MdsError::InvalidName));
        let renamed = ns.plan_rename("v1", "v2").unwrap();
        ns.commit_volume(renamed);
        assert_eq!(ns.stat("v1"), Err(MdsError::VolumeNotFound));
        assert_eq!(ns.stat("v2").unwrap().id, id);
        assert_eq!(ns.list().len(), 1);
        let v = ns.plan_delete("v2", 0).unwrap();
        ns.commit_delete(v.id, 42);
        assert!(ns.list().is_empty());
        assert_eq!(ns.recycled().len(), 1);
        assert_eq!(ns.recycle_records()[0].deleted_s, 42);
        assert_eq!(ns.stat("v2"), Err(MdsError::VolumeNotFound));
    }

    #[test]
    fn purge_forgets_segments_and_record() {
        let (mut ns, id) = ns_with("v", 2 * G);
        let (_, other) = ns_with("w", G);
        assert_eq!(other, id);
        let cs = [CopysetId(1), CopysetId(2)];
        let ids: Vec<ChunkId> = (1..=64).map(ChunkId).collect();
        let ids2: Vec<ChunkId> = (65..=128).map(ChunkId).collect();
        let s0 = ns.plan_segment(id, 0, &cs, &ids, 0, 85).unwrap();
        ns.commit_segment(id, 0, s0, cs.len());
        let s1 = ns.plan_segment(id, 1, &cs, &ids2, 0, 85).unwrap();
        ns.commit_segment(id, 1, s1, cs.len());
        assert_eq!(ns.segments_of(id).len(), 2);
        assert!(ns.segments_of(VolumeId(2)).is_empty());
        ns.commit_delete(id, 5);
        // Segments stay in the recycle area until purged.
        assert_eq!(ns.segments_of(id).len(), 2);
        assert_eq!(ns.recycled_volume(id).unwrap().deleted_s, 5);
        ns.commit_purged_segment(id, 0);
        assert_eq!(ns.segments_of(id).len(), 1);
        ns.commit_purged(id);
        assert!(ns.segments_of(id).is_empty());
        assert!(ns.recycled_volume(id).is_none());
        assert_eq!(ns.segment_count(), 0);
    }

    #[test]
    fn exclusive_open_and_leases() {
        let (mut ns, id) = ns_with("v", G);
        let mut r = rng();
        let a = ns.open("v", false, "c1", 0, &mut r).unwrap();
        assert_eq!(a.session.lease_ms, 5_000);
        assert_eq!(
            ns.open("v", false, "c2", 1_000, &mut r),
            Err(MdsError::VolumeBusy { volume: id })
        );
        assert_eq!(
            ns.open("v", true, "c2", 1_000, &mut r),
            Err(MdsError::VolumeBusy { volume: id })
        );
        // Refresh keeps it alive past the first lease.
        ns.refresh(id, &a.session.id, 4_000).unwrap();
        assert!(ns.open("v", false, "c2", 8_000, &mut r).is_err());
        assert_eq!(
            ns.plan_delete("v", 8_000),
            Err(MdsError::VolumeBusy { volume: id })
        );
        // Lease lapses: another client may open; the old session is gone.
        let b = ns.open("v", false, "c2", 9_001, &mut r).unwrap();
        assert_eq!(
            ns.refresh(id, &a.session.id, 9_002),
            Err(MdsError::SessionExpired)
        );
        assert_eq!(
            ns.check_session(id, &a.session.id, 9_002),
            Err(MdsError::SessionExpired)
        );
        ns.check_session(id, &b.session.id, 9_002).unwrap();
        ns.close(id, &b.session.id).unwrap();
        assert!(ns.sessions(id, 9_003).is_empty());
    }

    #[test]
    fn shared_opens_coexist_and_unknown_sessions_are_adopted() {
        let (mut ns, id) = ns_with("v", G);
        let mut r = rng();
        ns.open("v", true, "c1", 0, &mut r).unwrap();
        ns.open("v", true, "c2", 0, &mut r).unwrap();
        assert!(ns.open("v", false, "c3", 0, &mut r).is_err());
        assert_eq!(ns.sessions(id, 1).len(), 2);
        // A fresh MDS (after failover) adopts a refresh of a session it does not know.
        let (mut fresh, id2) = ns_with("w", G);
        fresh.refresh(id2, "abc", 10).unwrap();
        fresh.check_session(id2, "abc", 11).unwrap();
        assert_eq!(
            fresh.refresh(id2, "other", 12),
            Err(MdsError::SessionExpired)
        );
    }

    #[test]
    fn segments_round_robin_and_limits() {
        let (mut ns, id) = ns_with("v", 2 * G);
        let cs = [CopysetId(1), CopysetId(2), CopysetId(3)];
        let ids: Vec<ChunkId> = (1..=64).map(ChunkId).collect();
        let seg = ns.plan_segment(id, 0, &cs, &ids, 10, 85).unwrap();
        assert_eq!(seg.chunks.len(), 64);
        assert_eq!(seg.chunks[0], (CopysetId(1), ChunkId(1)));
        assert_eq!(seg.chunks[4], (CopysetId(2), ChunkId(5)));
        ns.commit_segment(id, 0, seg, cs.len());
        // The cursor continues where the last segment stopped (64 % 3 == 1).
        let ids2: Vec<ChunkId> = (65..=128).map(ChunkId).collect();
        let seg2 = ns.plan_segment(id, 1, &cs, &ids2, 10, 85).unwrap();
        assert_eq!(seg2.chunks[0].0, CopysetId(2));
        let mut per = HashMap::new();
        for (c, _) in &seg2.chunks {
            *per.entry(*c).or_insert(0) += 1;
        }
        assert!(per.values().all(|&n| n == 21 || n == 22));
        assert_eq!(
            ns.plan_segment(id, 2, &cs, &ids2, 10, 85),
            Err(MdsError::OutOfRange {
                offset: 2 * G,
                size: 2 * G
            })
        );
        assert_eq!(
            ns.plan_segment(id, 1, &cs, &ids2, 86, 85),
            Err(MdsError::NoSpace)
        );
        assert_eq!(
            ns.plan_segment(id, 1, &[], &ids2, 0, 85),
            Err(MdsError::NoCopysets)
        );
        assert_eq!(
            ns.plan_segment(VolumeId(9), 0, &cs, &ids2, 0, 85),
            Err(MdsError::VolumeNotFound)
        );
    }
}
