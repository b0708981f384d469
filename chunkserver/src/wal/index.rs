//! The WAL's in-memory index (pure state, no I/O): per group, where each live entry is
//! (still in memory waiting for the writer, or at a segment offset), the metadata values
//! and the purge point. The same operations serve live calls and crash recovery replay,
//! so both produce the same state.

use crate::error::{ChunkServerError, Result};
use crate::group_log::MetaKey;
use basalt_proto::ids::GroupId;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};

/// Where an entry lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// Queued for the writer; the data is kept here so reads work at once.
    Pending(Bytes),
    /// Written: record at `off` (length `len`) in segment `seg`.
    Disk {
        /// Segment sequence number.
        seg: u64,
        /// Record offset in the segment.
        off: u64,
        /// Record length.
        len: u32,
    },
}

/// One live entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Id of the operation that created it (to match the writer's confirmation).
    pub op: u64,
    /// Where it is.
    pub loc: Loc,
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSlot {
    /// Id of the operation that wrote it.
    pub op: u64,
    /// The value.
    pub value: Bytes,
    /// Segment holding its record, once written.
    pub seg: Option<u64>,
}

/// State of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    /// Live entries by index.
    pub entries: BTreeMap<u64, Slot>,
    /// Metadata values.
    pub meta: BTreeMap<MetaKey, MetaSlot>,
    /// Highest purged index.
    pub purged: Option<u64>,
}

/// An entry or meta value to copy forward so an old segment can be recycled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Entry `index` of `group`, currently in `seg` at `off`/`len`.
    Entry {
        /// Group.
        group: GroupId,
        /// Index.
        index: u64,
        /// Operation id of the slot (unchanged by the move).
        op: u64,
        /// Segment.
        seg: u64,
        /// Offset.
        off: u64,
        /// Length.
        len: u32,
    },
    /// Meta value of `group`.
    Meta {
        /// Group.
        group: GroupId,
        /// Key.
        key: MetaKey,
        /// Operation id.
        op: u64,
        /// Value.
        value: Bytes,
    },
}

/// The index of all groups.
#[derive(Debug, Default)]
pub struct Index {
    groups: HashMap<GroupId, GroupState>,
    next_op: u64,
}

impl Index {
    /// A fresh operation id.
    pub fn next_op(&mut self) -> u64 {
        self.next_op += 1;
        self.next_op
    }

    /// State of a group.
    pub fn group(&self, group: GroupId) -> Option<&GroupState> {
        self.groups.get(&group)
    }

    /// Groups with entries or metadata.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut v: Vec<_> = self.groups.keys().copied().collect();
        v.sort();
        v
    }

    /// First and last live index.
    pub fn bounds(&self, group: GroupId) -> Option<(u64, u64)> {
        let g = self.groups.get(&group)?;
        Some((*g.entries.keys().next()?, *g.entries.keys().next_back()?))
    }

    /// Check that `first` may be appended to `group` (follows the last entry, or the purge
    /// point of an empty log).
    pub fn check_append(&self, group: GroupId, first: u64) -> Result<()> {
        let Some(g) = self.groups.get(&group) else {
            return Ok(());
        };
        let last = match g.entries.keys().next_back() {
            Some(&l) => l,
            None => match g.purged {
                Some(p) if first <= p => p,
                _ => return Ok(()),
            },
        };
        // A checksummed record may claim index u64::MAX: never overflow on it (found by
        // the wal_segment fuzz target).
        if last.checked_add(1) != Some(first) {
            return Err(ChunkServerError::LogGap {
                group,
                last,
                got: first,
            });
        }
        Ok(())
    }

    /// Insert (or replace) an entry.
    pub fn put_entry(&mut self, group: GroupId, index: u64, slot: Slot) {
        let g = self.groups.entry(group).or_default();
        if g.purged.is_some_and(|p| index <= p) {
            return;
        }
        g.entries.insert(index, slot);
    }

    /// Remove entries with index >= `first_removed`.
    pub fn truncate_from(&mut self, group: GroupId, first_removed: u64) {
        if let Some(g) = self.groups.get_mut(&group) {
            g.entries.split_off(&first_removed);
        }
    }

    /// Remove entries with index <= `upto` and remember the purge point.
    pub fn purge_upto(&mut self, group: GroupId, upto: u64) {
        let g = self.groups.entry(group).or_default();
        g.entries = g.entries.split_off(&upto.saturating_add(1));
        if upto == u64::MAX {
            g.entries.clear();
        }
        g.purged = Some(g.purged.map_or(upto, |p| p.max(upto)));
    }

    /// Set a metadata value.
    pub fn put_meta(&mut self, group: GroupId, key: MetaKey, slot: MetaSlot) {
        self.groups.entry(group).or_default().meta.insert(key, slot);
    }

    /// Forget a group.
    pub fn remove_group(&mut self, group: GroupId) {
        self.groups.remove(&group);
    }

    /// The writer wrote entry `index` (created by `op`) at `seg`/`off`/`len`.
    pub fn confirm_entry(
        &mut self,
        group: GroupId,
        index: u64,
        op: u64,
        seg: u64,
        off: u64,
        len: u32,
    ) {
        if let Some(slot) = self
            .groups
            .get_mut(&group)
            .and_then(|g| g.entries.get_mut(&index))
        {
            if slot.op == op {
                slot.loc = Loc::Disk { seg, off, len };
            }
        }
    }

    /// The writer wrote meta `key` (written by `op`) into `seg`.
    pub fn confirm_meta(&mut self, group: GroupId, key: MetaKey, op: u64, seg: u64) {
        if let Some(slot) = self
            .groups
            .get_mut(&group)
            .and_then(|g| g.meta.get_mut(&key))
        {
            if slot.op == op {
                slot.seg = Some(seg);
            }
        }
    }

    /// Oldest segment still holding a live entry or meta value.
    pub fn oldest_needed(&self) -> Option<u64> {
        let mut min: Option<u64> = None;
        let mut see = |s: u64| min = Some(min.map_or(s, |m: u64| m.min(s)));
        for g in self.groups.values() {
            for slot in g.entries.values() {
                if let Loc::Disk { seg, .. } = slot.loc {
                    see(seg);
                }
            }
            for m in g.meta.values() {
                if let Some(seg) = m.seg {
                    see(seg);
                }
            }
        }
        min
    }

    /// What to copy forward so that no segment before `before` is needed: every meta value
    /// there, and the entries there of groups with at most `max_entries` of them (a group
    /// with more is lagging legitimately and keeps its segments).
    pub fn rewrites(&self, before: u64, max_entries: usize) -> Vec<Rewrite> {
        let mut out = Vec::new();
        let mut groups: Vec<_> = self.groups.iter().collect();
        groups.sort_by_key(|(g, _)| **g);
        for (&group, g) in groups {
            let old: Vec<_> = g
                .entries
                .iter()
                .filter_map(|(&index, s)| match s.loc {
                    Loc::Disk { seg, off, len } if seg < before => Some(Rewrite::Entry {
                        group,
                        index,
                        op: s.op,
                        seg,
                        off,
                        len,
                    }),
                    _ => None,
                })
                .collect();
            if old.len() <= max_entries {
                out.extend(old);
            }
            for (&key, m) in &g.meta {
                if m.seg.is_some_and(|s| s < before) {
                    out.push(Rewrite::Meta {
                        group,
                        key,
                        op: m.op,
                        value: m.value.clone(),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(seg: u64) -> Loc {
        Loc::Disk {
            seg,
            off: 0,
            len: 1,
        }
    }

    #[test]
    fn append_truncate_purge() {
        let g = GroupId(1);
        let mut ix = Index::default();
        for i in 1..=10 {
            ix.check_append(g, i).unwrap();
            let op = ix.next_op();
            ix.put_entry(g, i, Slot { op, loc: disk(1) });
        }
        assert!(matches!(
            ix.check_append(g, 12),
            Err(ChunkServerError::LogGap {
                last: 10,
                got: 12,
                ..
            })
        ));
        ix.truncate_from(g, 8);
        assert_eq!(ix.bounds(g), Some((1, 7)));
        ix.purge_upto(g, 3);
        assert_eq!(ix.bounds(g), Some((4, 7)));
        ix.purge_upto(g, 20);
        assert_eq!(ix.bounds(g), None);
        assert!(ix.check_append(g, 5).is_err());
        ix.check_append(g, 21).unwrap();
        // A replayed entry at or below the purge point is dropped.
        ix.put_entry(
            g,
            15,
            Slot {
                op: 99,
                loc: disk(1),
            },
        );
        assert_eq!(ix.bounds(g), None);
    }

    /// A record at the largest index (a checksummed record can claim one) makes every
    /// further append a gap, never an arithmetic overflow.
    #[test]
    fn an_entry_or_purge_point_at_u64_max_is_a_gap_not_an_overflow() {
        let g = GroupId(3);
        let mut ix = Index::default();
        ix.put_entry(
            g,
            u64::MAX,
            Slot {
                op: 1,
                loc: disk(1),
            },
        );
        assert!(matches!(
            ix.check_append(g, 1),
            Err(ChunkServerError::LogGap {
                last: u64::MAX,
                got: 1,
                ..
            })
        ));
        let h = GroupId(4);
        ix.purge_upto(h, u64::MAX);
        assert!(ix.check_append(h, 1).is_err());
    }

    #[test]
    fn oldest_and_rewrites() {
        let mut ix = Index::default();
        ix.put_entry(
            GroupId(1),
            1,
            Slot {
                op: 1,
                loc: disk(3),
            },
        );
        ix.put_entry(
            GroupId(2),
            1,
            Slot {
                op: 2,
                loc: disk(5),
            },
        );
        ix.put_meta(
            GroupId(2),
            MetaKey::Vote,
            MetaSlot {
                op: 3,
                value: Bytes::from_static(b"v"),
                seg: Some(2),
            },
        );
        assert_eq!(ix.oldest_needed(), Some(2));
        let rw = ix.rewrites(5, 10);
        assert_eq!(rw.len(), 2);
        assert!(ix
            .rewrites(5, 0)
            .iter()
            .all(|r| matches!(r, Rewrite::Meta { .. })));
        ix.confirm_entry(GroupId(1), 1, 1, 6, 0, 1);
        ix.confirm_meta(GroupId(2), MetaKey::Vote, 3, 6);
        assert_eq!(ix.oldest_needed(), Some(5));
    }
}
