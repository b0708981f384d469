//! The io_uring backend: one ring per instance (per poller thread). Submissions queue SQEs
//! without a syscall; `reap` submits what is queued and collects completions, so a batch of
//! requests drained from the poller's channel costs one `io_uring_enter`.
//!
//! Registered buffers: each ring registers a small arena of fixed slots
//! ([`FIXED_SLOTS`] × [`FIXED_SLOT_SIZE`]). Requests that fit in a free slot go through it
//! (`ReadFixed`/`WriteFixed`: the kernel skips pinning the user pages for each I/O; the data
//! is copied between the caller's buffer and the slot, cheap at these sizes); larger
//! requests, or any when the slots are busy or registration was refused (e.g. a low
//! `RLIMIT_MEMLOCK`), use plain `Read`/`Write` on the caller's buffer.

use super::{
    check_request, io_error, AlignedBuf, BackendKind, IoBackend, IoCompletion, IoOp, IoRequest,
};
use crate::error::{ChunkServerError, Result};
use io_uring::{opcode, squeue, types, IoUring};
use slab_lite::Slab;
use std::os::fd::AsRawFd;

/// Ring size (submission queue entries).
pub const RING_ENTRIES: u32 = 256;
/// Registered buffer slots per ring.
pub const FIXED_SLOTS: usize = 32;
/// Size of one registered buffer slot.
pub const FIXED_SLOT_SIZE: usize = 64 << 10;

/// The registered arena: one allocation cut into slots.
struct Fixed {
    arena: AlignedBuf,
    free: Vec<u16>,
}

struct Inflight {
    req: IoRequest,
    slot: Option<u16>,
}

/// An io_uring instance and the requests it has in flight.
pub struct UringBackend {
    ring: IoUring,
    fixed: Option<Fixed>,
    fixed_ios: u64,
    inflight: Slab<Inflight>,
    rejected: Vec<IoCompletion>,
    unsubmitted: usize,
}

impl std::fmt::Debug for UringBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringBackend")
            .field("in_flight", &self.inflight.len())
            .finish()
    }
}

impl UringBackend {
    /// Set up a ring and check that it really executes requests (a NOP round trip), since
    /// seccomp filters or old kernels may allow `io_uring_setup` but not its use.
    pub fn new() -> Result<Self> {
        let unavailable = |reason: String| ChunkServerError::BackendUnavailable {
            backend: "uring",
            reason,
        };
        let mut ring =
            IoUring::new(RING_ENTRIES).map_err(|e| unavailable(format!("io_uring_setup: {e}")))?;
        let nop = opcode::Nop::new().build().user_data(u64::MAX);
        // SAFETY: a NOP references no memory.
        unsafe { ring.submission().push(&nop) }
            .map_err(|_| unavailable("submission queue full".into()))?;
        ring.submit_and_wait(1)
            .map_err(|e| unavailable(format!("io_uring_enter: {e}")))?;
        let cqe = ring
            .completion()
            .next()
            .ok_or_else(|| unavailable("no completion for NOP".into()))?;
        if cqe.result() < 0 {
            return Err(unavailable(format!(
                "NOP failed: {}",
                std::io::Error::from_raw_os_error(-cqe.result())
            )));
        }
        let fixed = Self::register(&ring);
        Ok(UringBackend {
            ring,
            fixed,
            fixed_ios: 0,
            inflight: Slab::new(),
            rejected: Vec::new(),
            unsubmitted: 0,
        })
    }

    fn register(ring: &IoUring) -> Option<Fixed> {
        let mut arena = AlignedBuf::zeroed(FIXED_SLOTS * FIXED_SLOT_SIZE);
        let base = arena.as_mut_ptr();
        let iovecs: Vec<libc::iovec> = (0..FIXED_SLOTS)
            .map(|i| libc::iovec {
                // SAFETY: slot `i` lies inside the arena.
                iov_base: unsafe { base.add(i * FIXED_SLOT_SIZE) }.cast(),
                iov_len: FIXED_SLOT_SIZE,
            })
            .collect();
        // SAFETY: the iovecs describe memory owned by `arena`, which is stored beside the
        // ring in the backend and dropped after it (field order), so it outlives the
        // registration.
        match unsafe { ring.submitter().register_buffers(&iovecs) } {
            Ok(()) => Some(Fixed {
                arena,
                free: (0..FIXED_SLOTS as u16).rev().collect(),
            }),
            Err(e) => {
                tracing::debug!(error = %e, "io_uring buffer registration refused, using plain buffers");
                None
            }
        }
    }

    /// Whether the ring has registered buffers.
    pub fn has_fixed_buffers(&self) -> bool {
        self.fixed.is_some()
    }

    /// Requests that went through a registered buffer so far.
    pub fn fixed_io_count(&self) -> u64 {
        self.fixed_ios
    }

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: the entry's buffer (if any) belongs to a request kept in `inflight`
            // until its completion is reaped, so it outlives the kernel's use of it.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.unsubmitted += 1;
                return;
            }
            // Queue full: hand what is queued to the kernel and retry.
            if let Err(e) = self.ring.submit() {
                tracing::warn!(error = %e, "io_uring submit failed");
            }
            self.unsubmitted = 0;
        }
    }
}

impl IoBackend for UringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Uring
    }

    fn submit(&mut self, req: IoRequest) {
        let req = match check_request(req) {
            Ok(r) => r,
            Err(c) => return self.rejected.push(c),
        };
        let fd = types::Fd(req.file.as_raw_fd());
        let len = req.buf.len();
        let slot = match (&mut self.fixed, req.op) {
            (Some(f), IoOp::Read | IoOp::Write) if len <= FIXED_SLOT_SIZE => f.free.pop(),
            _ => None,
        };
        let key = self.inflight.insert(Inflight { req, slot });
        let entry = {
            let Inflight { req, slot } = self.inflight.get_mut(key).expect("just inserted");
            match (*slot, &mut self.fixed) {
                (Some(idx), Some(f)) => {
                    self.fixed_ios += 1;
                    let at = idx as usize * FIXED_SLOT_SIZE;
                    let dst = &mut f.arena.as_mut_slice()[at..at + len];
                    let ptr = dst.as_mut_ptr();
                    if req.op == IoOp::Write {
                        dst.copy_from_slice(req.buf.as_slice());
                        opcode::WriteFixed::new(fd, ptr, len as u32, idx)
                            .offset(req.offset)
                            .build()
                    } else {
                        opcode::ReadFixed::new(fd, ptr, len as u32, idx)
                            .offset(req.offset)
                            .build()
                    }
                }
                _ => match req.op {
                    IoOp::Read => opcode::Read::new(fd, req.buf.as_mut_ptr(), len as u32)
                        .offset(req.offset)
                        .build(),
                    IoOp::Write => opcode::Write::new(fd, req.buf.as_ptr(), len as u32)
                        .offset(req.offset)
                        .build(),
                    IoOp::Sync => opcode::Fsync::new(fd)
                        .flags(types::FsyncFlags::DATASYNC)
                        .build(),
                },
            }
        };
        self.push(entry.user_data(key as u64));
    }

    fn reap(&mut self, out: &mut Vec<IoCompletion>, wait: bool) {
        let had_rejected = !self.rejected.is_empty();
        out.append(&mut self.rejected);
        let want = usize::from(wait && !had_rejected && !self.inflight.is_empty());
        if self.unsubmitted > 0 || want > 0 {
            match self.ring.submit_and_wait(want) {
                Ok(_) => self.unsubmitted = 0,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => tracing::warn!(error = %e, "io_uring submit_and_wait failed"),
            }
        }
        for cqe in self.ring.completion() {
            let key = cqe.user_data() as usize;
            let Some(Inflight { mut req, slot }) = self.inflight.try_remove(key) else {
                continue;
            };
            let res = cqe.result();
            if let (Some(idx), Some(f)) = (slot, &mut self.fixed) {
                if req.op == IoOp::Read && res > 0 {
                    let at = idx as usize * FIXED_SLOT_SIZE;
                    let n = res as usize;
                    req.buf.as_mut_slice()[..n].copy_from_slice(&f.arena.as_slice()[at..at + n]);
                }
                f.free.push(idx);
            }
            let result = if res < 0 {
                Err(io_error(req.op, std::io::Error::from_raw_os_error(-res)))
            } else {
                Ok(res as usize)
            };
            out.push(IoCompletion {
                user_data: req.user_data,
                result,
                buf: req.buf,
            });
        }
    }

    fn in_flight(&self) -> usize {
        self.inflight.len() + self.rejected.len()
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        // The kernel may still write into buffers of requests in flight; keep them alive
        // until their completions are in (the poller only stops when nothing is in flight).
        let mut out = Vec::new();
        while !self.inflight.is_empty() {
            self.reap(&mut out, true);
            out.clear();
        }
    }
}

/// A tiny slab (index-stable storage) for in-flight requests.
mod slab_lite {
    /// Index-stable storage with free-slot reuse.
    #[derive(Debug)]
    pub struct Slab<T> {
        slots: Vec<Option<T>>,
        free: Vec<usize>,
        len: usize,
    }

    impl<T> Slab<T> {
        pub fn new() -> Self {
            Slab {
                slots: Vec::new(),
                free: Vec::new(),
                len: 0,
            }
        }
        pub fn insert(&mut self, v: T) -> usize {
            self.len += 1;
            if let Some(i) = self.free.pop() {
                self.slots[i] = Some(v);
                i
            } else {
                self.slots.push(Some(v));
                self.slots.len() - 1
            }
        }
        pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
            self.slots.get_mut(i).and_then(|s| s.as_mut())
        }
        pub fn try_remove(&mut self, i: usize) -> Option<T> {
            let v = self.slots.get_mut(i)?.take()?;
            self.free.push(i);
            self.len -= 1;
            Some(v)
        }
        pub fn len(&self) -> usize {
            self.len
        }
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
    }
}
