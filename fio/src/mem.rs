//! The in-memory sparse volume (`volume=mem:SIZE`). A test backend: it exists to exercise
//! the engine's ABI plumbing under the real fio, not to store anything. Each fio job
//! process gets its own, empty volume.

use crate::backend::{check_range, EngineBackend};
use crate::error::FioError;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::HashMap;

/// Bytes per allocation unit; unwritten or trimmed pages read as zeros.
const PAGE: u64 = 64 * 1024;

/// A sparse in-memory volume.
pub struct MemVolume {
    size: u64,
    pages: Mutex<HashMap<u64, Box<[u8]>>>,
}

impl std::fmt::Debug for MemVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemVolume")
            .field("size", &self.size)
            .field("pages", &self.pages.lock().len())
            .finish()
    }
}

/// Split `[offset, offset+len)` into (page index, offset in page, byte count) pieces.
fn pieces(offset: u64, len: u64) -> impl Iterator<Item = (u64, usize, usize)> {
    let end = offset + len;
    let mut at = offset;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let page = at / PAGE;
        let in_page = at % PAGE;
        let n = (PAGE - in_page).min(end - at);
        at += n;
        Some((page, in_page as usize, n as usize))
    })
}

impl MemVolume {
    /// An empty (all-zero) volume of `size` bytes.
    pub fn new(size: u64) -> Self {
        MemVolume {
            size,
            pages: Mutex::new(HashMap::new()),
        }
    }

    /// Pages currently allocated (for tests of sparseness).
    pub fn allocated_pages(&self) -> usize {
        self.pages.lock().len()
    }

    fn read_now(&self, offset: u64, len: usize) -> Result<Bytes, FioError> {
        check_range(offset, len as u64, self.size)?;
        let mut out = BytesMut::zeroed(len);
        let pages = self.pages.lock();
        let mut pos = 0;
        for (page, at, n) in pieces(offset, len as u64) {
            if let Some(p) = pages.get(&page) {
                out[pos..pos + n].copy_from_slice(&p[at..at + n]);
            }
            pos += n;
        }
        Ok(out.freeze())
    }

    fn write_now(&self, offset: u64, data: &[u8]) -> Result<(), FioError> {
        check_range(offset, data.len() as u64, self.size)?;
        let mut pages = self.pages.lock();
        let mut pos = 0;
        for (page, at, n) in pieces(offset, data.len() as u64) {
            let p = pages
                .entry(page)
                .or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice());
            p[at..at + n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
        }
        Ok(())
    }

    fn trim_now(&self, offset: u64, len: u64) -> Result<(), FioError> {
        check_range(offset, len, self.size)?;
        let mut pages = self.pages.lock();
        for (page, at, n) in pieces(offset, len) {
            if n as u64 == PAGE {
                pages.remove(&page);
            } else if let Some(p) = pages.get_mut(&page) {
                p[at..at + n].fill(0);
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl EngineBackend for MemVolume {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read(&self, offset: u64, len: usize) -> Result<Bytes, FioError> {
        self.read_now(offset, len)
    }

    async fn write(&self, offset: u64, data: Bytes) -> Result<(), FioError> {
        self.write_now(offset, &data)
    }

    async fn trim(&self, offset: u64, len: u64) -> Result<(), FioError> {
        self.trim_now(offset, len)
    }

    async fn flush(&self) -> Result<(), FioError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_read_back_across_page_boundaries() {
        let v = MemVolume::new(4 * PAGE);
        let data: Vec<u8> = (0..(PAGE as usize + 1000))
            .map(|i| (i % 251) as u8)
            .collect();
        let at = PAGE - 500;
        v.write_now(at, &data).unwrap();
        assert_eq!(&v.read_now(at, data.len()).unwrap()[..], &data[..]);
        // untouched bytes around it are zero
        assert!(v
            .read_now(0, (PAGE - 500) as usize)
            .unwrap()
            .iter()
            .all(|b| *b == 0));
        assert_eq!(v.allocated_pages(), 3);
    }

    #[test]
    fn trim_zeroes_and_frees_whole_pages() {
        let v = MemVolume::new(4 * PAGE);
        v.write_now(0, &vec![7u8; (3 * PAGE) as usize]).unwrap();
        v.trim_now(100, 2 * PAGE).unwrap();
        let back = v.read_now(0, (3 * PAGE) as usize).unwrap();
        assert!(back[..100].iter().all(|b| *b == 7));
        assert!(back[100..(2 * PAGE + 100) as usize].iter().all(|b| *b == 0));
        assert!(back[(2 * PAGE + 100) as usize..].iter().all(|b| *b == 7));
        assert_eq!(v.allocated_pages(), 2, "page 1 was wholly trimmed");
    }

    #[test]
    fn out_of_range_is_refused() {
        let v = MemVolume::new(PAGE);
        assert!(matches!(
            v.write_now(PAGE - 1, &[1, 2]),
            Err(FioError::OutOfRange { .. })
        ));
        assert!(matches!(
            v.read_now(u64::MAX, 2),
            Err(FioError::OutOfRange { .. })
        ));
        assert!(v.trim_now(0, PAGE + 1).is_err());
    }
}
