//! An in-memory, sparse block device: the protocol tests' backend and a reference for
//! what a device must do. 64 KiB pages allocated on first write; trimmed pages are freed.

use crate::consts::{STATE_HOLE, STATE_ZERO};
use crate::device::BlockDevice;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

const PAGE: u64 = 64 * 1024;

/// A sparse in-memory device.
#[derive(Debug)]
pub struct MemDevice {
    size: u64,
    pages: Mutex<HashMap<u64, Box<[u8]>>>,
}

impl MemDevice {
    /// A zeroed device of `size` bytes.
    pub fn new(size: u64) -> Self {
        MemDevice {
            size,
            pages: Mutex::new(HashMap::new()),
        }
    }

    fn for_each_page(offset: u64, len: u64, mut f: impl FnMut(u64, usize, usize, usize)) {
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let page = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let n = ((PAGE - pos % PAGE).min(end - pos)) as usize;
            f(page, in_page, n, (pos - offset) as usize);
            pos += n as u64;
        }
    }

    fn zero(&self, offset: u64, len: u64, punch: bool) {
        let mut pages = self.pages.lock().expect("lock");
        Self::for_each_page(offset, len, |page, at, n, _| {
            if punch && n as u64 == PAGE {
                pages.remove(&page);
            } else if let Some(p) = pages.get_mut(&page) {
                p[at..at + n].fill(0);
            }
        });
    }
}

impl BlockDevice for MemDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, offset: u64, len: u32) -> BoxFuture<'_, io::Result<Bytes>> {
        let mut buf = BytesMut::zeroed(len as usize);
        {
            let pages = self.pages.lock().expect("lock");
            Self::for_each_page(offset, len as u64, |page, at, n, out| {
                if let Some(p) = pages.get(&page) {
                    buf[out..out + n].copy_from_slice(&p[at..at + n]);
                }
            });
        }
        Box::pin(async move { Ok(buf.freeze()) })
    }

    fn write(&self, offset: u64, data: Bytes, _fua: bool) -> BoxFuture<'_, io::Result<()>> {
        {
            let mut pages = self.pages.lock().expect("lock");
            Self::for_each_page(offset, data.len() as u64, |page, at, n, src| {
                let p = pages
                    .entry(page)
                    .or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice());
                p[at..at + n].copy_from_slice(&data[src..src + n]);
            });
        }
        Box::pin(async { Ok(()) })
    }

    fn flush(&self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn trim(&self, offset: u64, len: u32) -> BoxFuture<'_, io::Result<()>> {
        self.zero(offset, len as u64, true);
        Box::pin(async { Ok(()) })
    }

    fn write_zeroes(&self, offset: u64, len: u32, no_hole: bool) -> BoxFuture<'_, io::Result<()>> {
        self.zero(offset, len as u64, !no_hole);
        Box::pin(async { Ok(()) })
    }

    fn block_status(&self, offset: u64, len: u32) -> BoxFuture<'_, io::Result<Vec<(u32, u32)>>> {
        let mut extents: Vec<(u32, u32)> = Vec::new();
        {
            let pages = self.pages.lock().expect("lock");
            Self::for_each_page(offset, len as u64, |page, _, n, _| {
                let flags = if pages.contains_key(&page) {
                    0
                } else {
                    STATE_HOLE | STATE_ZERO
                };
                match extents.last_mut() {
                    Some((l, f)) if *f == flags => *l += n as u32,
                    _ => extents.push((n as u32, flags)),
                }
            });
        }
        Box::pin(async move { Ok(extents) })
    }
}
