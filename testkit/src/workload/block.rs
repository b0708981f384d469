//! The self-describing 4 KiB block every workload write carries, so that any read can be
//! decoded into "zeros", "the value of write (writer, seq)" or "corrupt".
//!
//! Layout: magic (8) | writer (4) | seq (8) | block index (8) | filler | crc32c (4) over
//! everything before it. A torn block (half of one write, half of another) fails the
//! checksum; a block written to the wrong place fails the index check.

/// Bytes in one workload block.
pub const BLOCK: usize = 4096;

const MAGIC: &[u8; 8] = b"BSLTBLK1";
const CRC_AT: usize = BLOCK - 4;

/// Identity of one write: which worker, its sequence number (unique per worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    /// Worker that wrote it.
    pub writer: u32,
    /// That worker's sequence number (starts at 1).
    pub seq: u64,
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "w{}#{}", self.writer, self.seq)
    }
}

/// What a read of one block found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Observed {
    /// All zeros: never written (or discarded).
    Zero,
    /// An intact block written by this write.
    Tag(Tag),
    /// Neither zeros nor an intact block of this index.
    Corrupt {
        /// What is wrong (bad magic, checksum mismatch, wrong index).
        reason: String,
    },
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Observed::Zero => f.write_str("zeros"),
            Observed::Tag(t) => t.fmt(f),
            Observed::Corrupt { reason } => write!(f, "CORRUPT({reason})"),
        }
    }
}

/// splitmix64: a tiny deterministic generator for filler and workload choices.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The block `tag` writes at block index `index` (volume offset / 4096).
pub fn encode(tag: Tag, index: u64) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    b[..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&tag.writer.to_le_bytes());
    b[12..20].copy_from_slice(&tag.seq.to_le_bytes());
    b[20..28].copy_from_slice(&index.to_le_bytes());
    let mut rng = SplitMix(tag.seq ^ (u64::from(tag.writer) << 48) ^ index.rotate_left(17));
    for c in b[28..CRC_AT].chunks_mut(8) {
        let r = rng.next_u64().to_le_bytes();
        c.copy_from_slice(&r[..c.len()]);
    }
    let crc = crc32c::crc32c(&b[..CRC_AT]);
    b[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decode a block read at block index `index`. `b` must be [`BLOCK`] bytes.
pub fn decode(b: &[u8], index: u64) -> Observed {
    let corrupt = |reason: String| Observed::Corrupt { reason };
    if b.len() != BLOCK {
        return corrupt(format!("read returned {} bytes, not {BLOCK}", b.len()));
    }
    if b.iter().all(|&x| x == 0) {
        return Observed::Zero;
    }
    if &b[..8] != MAGIC {
        let zeros = b.iter().filter(|&&x| x == 0).count();
        return corrupt(format!("bad magic ({zeros} zero bytes of {BLOCK})"));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&b[CRC_AT..]);
    let want = u32::from_le_bytes(crc);
    let got = crc32c::crc32c(&b[..CRC_AT]);
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[8..12]);
    let tag = Tag {
        writer: u32::from_le_bytes(w),
        seq: u64_at(b, 12),
    };
    if want != got {
        return corrupt(format!("checksum mismatch (header says {tag}): torn block"));
    }
    let at = u64_at(b, 20);
    if at != index {
        return corrupt(format!(
            "{tag} was written for block {at}, found at block {index}"
        ));
    }
    Observed::Tag(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_zero_torn_and_misplaced() {
        let t = Tag { writer: 3, seq: 77 };
        let b = encode(t, 12);
        assert_eq!(decode(&b, 12), Observed::Tag(t));
        assert_eq!(decode(&[0u8; BLOCK], 12), Observed::Zero);
        assert!(
            matches!(decode(&b, 13), Observed::Corrupt { reason } if reason.contains("block 12"))
        );
        // Torn: first half of one write, second half of another.
        let other = encode(Tag { writer: 1, seq: 5 }, 12);
        let mut torn = b.clone();
        torn[BLOCK / 2..].copy_from_slice(&other[BLOCK / 2..]);
        assert!(
            matches!(decode(&torn, 12), Observed::Corrupt { reason } if reason.contains("torn"))
        );
        // Half zeros (a lost second half).
        let mut half = b.clone();
        half[2048..].fill(0);
        assert!(matches!(decode(&half, 12), Observed::Corrupt { .. }));
        let mut junk = b;
        junk[0] = b'X';
        assert!(
            matches!(decode(&junk, 12), Observed::Corrupt { reason } if reason.contains("magic"))
        );
        assert!(matches!(decode(&[1u8; 10], 0), Observed::Corrupt { .. }));
    }

    #[test]
    fn different_writes_differ_everywhere_past_the_header() {
        let a = encode(Tag { writer: 0, seq: 1 }, 0);
        let b = encode(Tag { writer: 0, seq: 2 }, 0);
        let same = a[28..CRC_AT]
            .iter()
            .zip(&b[28..CRC_AT])
            .filter(|(x, y)| x == y)
            .count();
        assert!(same < 100, "{same} equal filler bytes");
    }
}
