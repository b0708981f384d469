//! Which I/O comes next (pure): offsets inside the benchmark region, read or write for
//! mixed cases, and the self-describing data pattern `--verify` checks.

use super::case::{Case, Pattern};
use std::sync::atomic::{AtomicU64, Ordering};

/// One I/O to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Read `bs` bytes at the offset.
    Read(u64),
    /// Write `bs` bytes at the offset.
    Write(u64),
}

/// Where a case's I/Os land: `[0, region)` of the volume, in `bs` blocks. Sequential
/// jobs each own one slice of the region and wrap around inside it.
#[derive(Debug)]
pub struct Workload {
    case: Case,
    rwmix_read: u8,
    blocks: u64,
    slice_blocks: u64,
    cursors: Vec<AtomicU64>,
}

impl Workload {
    /// The workload of `case` over `region` bytes (at least one block is used).
    pub fn new(case: Case, region: u64, rwmix_read: u8) -> Self {
        let blocks = (region / case.bs).max(1);
        let slice_blocks = (blocks / case.jobs as u64).max(1);
        Workload {
            case,
            rwmix_read: rwmix_read.min(100),
            blocks,
            slice_blocks,
            cursors: (0..case.jobs).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The case.
    pub fn case(&self) -> Case {
        self.case
    }

    /// The next I/O of `job`. `random` is a fresh uniformly random number (the caller's
    /// RNG, so that this stays deterministic under test).
    pub fn next(&self, job: usize, random: u64) -> Io {
        let bs = self.case.bs;
        let block = if self.case.pattern.is_random() {
            random % self.blocks
        } else {
            let job = job % self.cursors.len();
            let n = self.cursors[job].fetch_add(1, Ordering::Relaxed);
            let first = job as u64 * self.slice_blocks;
            // The last slice may be shorter when the region does not divide evenly.
            let len = self
                .slice_blocks
                .min(self.blocks.saturating_sub(first))
                .max(1);
            (first + n % len).min(self.blocks - 1)
        };
        let offset = block * bs;
        match self.case.pattern {
            Pattern::Randwrite | Pattern::Write => Io::Write(offset),
            Pattern::Randread | Pattern::Read => Io::Read(offset),
            // The high bits decide read or write; the low bits chose the block.
            Pattern::Randrw => {
                if (random >> 40) % 100 < u64::from(self.rwmix_read) {
                    Io::Read(offset)
                } else {
                    Io::Write(offset)
                }
            }
        }
    }
}

/// Sector size of the verify pattern.
const STAMP: usize = 512;
/// Mixed into every stamp so that zeros never verify.
const SEED: u64 = 0xb45a_17b3_0c4e_d00d;

/// Fill `buf` with the data that belongs at volume offset `offset` (a multiple of 512):
/// each 512-byte sector starts with its sector number (xor a seed) and is padded with a
/// byte derived from it. Any write of this pattern leaves the volume verifiable whatever
/// the order of writes.
pub fn fill(offset: u64, buf: &mut [u8]) {
    for (i, sector) in buf.chunks_mut(STAMP).enumerate() {
        let n = offset / STAMP as u64 + i as u64;
        let stamp = (n ^ SEED).to_le_bytes();
        let pad = (n as u8) ^ 0x5a;
        for (j, b) in sector.iter_mut().enumerate() {
            *b = if j < 8 { stamp[j] } else { pad };
        }
    }
}

/// Index of the first byte of `data` (read at `offset`) that differs from [`fill`]'s.
pub fn first_mismatch(offset: u64, data: &[u8]) -> Option<usize> {
    let mut want = vec![0u8; STAMP];
    for (i, sector) in data.chunks(STAMP).enumerate() {
        let start = offset + (i * STAMP) as u64;
        fill(start, &mut want[..sector.len()]);
        if let Some(j) = sector.iter().zip(&want).position(|(a, b)| a != b) {
            return Some(i * STAMP + j);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(p: &str) -> Case {
        Case::parse(p).unwrap()
    }

    #[test]
    fn random_offsets_are_aligned_and_inside_the_region() {
        let w = Workload::new(case("randwrite:4K:8"), 1 << 20, 50);
        let mut seen = std::collections::HashSet::new();
        for r in 0..10_000u64 {
            let Io::Write(off) = w.next(0, r.wrapping_mul(0x9e37_79b9_7f4a_7c15)) else {
                panic!("randwrite issued a read");
            };
            assert_eq!(off % 4096, 0);
            assert!(off + 4096 <= 1 << 20);
            seen.insert(off);
        }
        assert_eq!(seen.len(), 256, "every block of the region is reachable");
    }

    #[test]
    fn sequential_jobs_walk_their_own_slice_and_wrap() {
        let w = Workload::new(case("write:1M:4:2"), 8 << 20, 0);
        let offs: Vec<u64> = (0..6)
            .map(|_| match w.next(0, 0) {
                Io::Write(o) => o >> 20,
                Io::Read(_) => panic!(),
            })
            .collect();
        assert_eq!(offs, [0, 1, 2, 3, 0, 1]);
        let Io::Write(o) = w.next(1, 0) else { panic!() };
        assert_eq!(o >> 20, 4, "job 1 starts at the second half");
        let r = Workload::new(case("read:1M:1"), 2 << 20, 0);
        assert_eq!(r.next(0, 7), Io::Read(0));
        assert_eq!(r.next(0, 7), Io::Read(1 << 20));
        assert_eq!(r.next(0, 7), Io::Read(0));
    }

    #[test]
    fn region_smaller_than_a_block_still_has_one_block() {
        let w = Workload::new(case("randread:1M:1"), 4096, 0);
        assert_eq!(w.next(0, 12345), Io::Read(0));
    }

    #[test]
    fn rwmix_sets_the_read_share() {
        let w = Workload::new(case("randrw:4K:1"), 1 << 20, 70);
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut reads = 0;
        for _ in 0..10_000 {
            // xorshift64: a fixed sequence, spread over all bits
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if matches!(w.next(0, rng), Io::Read(_)) {
                reads += 1;
            }
        }
        assert!((6_500..7_500).contains(&reads), "{reads} reads of 10000");
        let all_writes = Workload::new(case("randrw:4K:1"), 1 << 20, 0);
        assert!((0..1000u64).all(|r| matches!(all_writes.next(0, r << 41), Io::Write(_))));
    }

    #[test]
    fn verify_pattern_depends_only_on_the_offset() {
        let mut whole = vec![0u8; 8192];
        fill(4096, &mut whole);
        let mut half = vec![0u8; 4096];
        fill(8192, &mut half);
        assert_eq!(&whole[4096..], &half[..], "same bytes whoever wrote them");
        assert_eq!(first_mismatch(4096, &whole), None);
        assert_eq!(
            first_mismatch(0, &whole),
            Some(0),
            "offset is part of the data"
        );
        assert_eq!(
            first_mismatch(4096, &vec![0u8; 4096]),
            Some(0),
            "zeros never verify"
        );
        whole[5000] ^= 1;
        assert_eq!(first_mismatch(4096, &whole), Some(5000));
    }
}
