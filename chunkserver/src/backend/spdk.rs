//! The SPDK backend: userspace NVMe through a system-installed SPDK (cargo feature `spdk`).
//!
//! Each instance owns one I/O queue pair of the (process-wide) attached controller and is
//! polled by its poller thread. Requests address the namespace directly: `offset` is a byte
//! address on the namespace and the `file` of the request is ignored, so the chunk store
//! (which keeps chunks in files) cannot run on it until a block allocator exists; the
//! backend is here so the FFI and the probe path exist and stay compiling.
//!
//! Without the feature, or without a configured controller, [`open`] reports
//! [`ChunkServerError::BackendUnavailable`] ("SPDK not available").

use super::IoBackend;
use crate::error::{ChunkServerError, Result};

/// Where the SPDK backend finds its device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpdkOptions {
    /// SPDK transport id of the controller, e.g. `trtype:PCIe traddr:0000:01:00.0`.
    pub transport_id: Option<String>,
    /// Namespace id (1 when unset).
    pub nsid: u32,
}

fn unavailable(reason: impl Into<String>) -> ChunkServerError {
    ChunkServerError::BackendUnavailable {
        backend: "spdk",
        reason: format!("SPDK not available: {}", reason.into()),
    }
}

/// Open an SPDK backend instance (one queue pair).
#[cfg(not(feature = "spdk"))]
pub fn open(_opts: &SpdkOptions) -> Result<Box<dyn IoBackend>> {
    Err(unavailable("built without the `spdk` cargo feature"))
}

/// Open an SPDK backend instance (one queue pair).
#[cfg(feature = "spdk")]
pub fn open(opts: &SpdkOptions) -> Result<Box<dyn IoBackend>> {
    let Some(trid) = opts.transport_id.as_deref() else {
        return Err(unavailable("no NVMe transport id configured"));
    };
    imp::SpdkBackend::open(trid, if opts.nsid == 0 { 1 } else { opts.nsid })
        .map(|b| Box::new(b) as Box<dyn IoBackend>)
}

#[cfg(feature = "spdk")]
mod imp {
    use super::unavailable;
    use crate::backend::spdk_ffi as ffi;
    use crate::backend::{check_request, BackendKind, IoBackend, IoCompletion, IoOp, IoRequest};
    use crate::error::{ChunkServerError, Result};
    use std::collections::VecDeque;
    use std::ffi::{c_void, CString};
    use std::sync::OnceLock;

    struct Ctrlr {
        ctrlr: *mut ffi::spdk_nvme_ctrlr,
        ns: *mut ffi::spdk_nvme_ns,
        sector: u32,
    }
    // SAFETY: SPDK controller and namespace handles may be used from any thread; only
    // queue pairs are single-threaded, and those are per backend instance.
    unsafe impl Send for Ctrlr {}
    // SAFETY: as above.
    unsafe impl Sync for Ctrlr {}

    static CTRLR: OnceLock<std::result::Result<Ctrlr, String>> = OnceLock::new();

    unsafe extern "C" fn probe_cb(
        _ctx: *mut c_void,
        _trid: *const ffi::spdk_nvme_transport_id,
        _opts: *mut ffi::spdk_nvme_ctrlr_opts,
    ) -> bool {
        true
    }

    unsafe extern "C" fn attach_cb(
        ctx: *mut c_void,
        _trid: *const ffi::spdk_nvme_transport_id,
        ctrlr: *mut ffi::spdk_nvme_ctrlr,
        _opts: *const ffi::spdk_nvme_ctrlr_opts,
    ) {
        // SAFETY: `ctx` is the `*mut *mut spdk_nvme_ctrlr` passed to `spdk_nvme_probe`.
        unsafe { *(ctx as *mut *mut ffi::spdk_nvme_ctrlr) = ctrlr };
    }

    fn attach(trid: &str, nsid: u32) -> std::result::Result<Ctrlr, String> {
        let mut env = ffi::spdk_env_opts { bytes: [0; 1024] };
        // SAFETY: `env` is a writable block at least as large as `struct spdk_env_opts`.
        unsafe { ffi::spdk_env_opts_init(&mut env) };
        // SAFETY: `env` was initialised by `spdk_env_opts_init`.
        if unsafe { ffi::spdk_env_init(&env) } != 0 {
            return Err("spdk_env_init failed (hugepages, permissions?)".into());
        }
        let mut id = ffi::spdk_nvme_transport_id { bytes: [0; 1024] };
        let s = CString::new(trid).map_err(|_| "transport id contains NUL".to_string())?;
        // SAFETY: `id` is writable and large enough, `s` is NUL-terminated.
        if unsafe { ffi::spdk_nvme_transport_id_parse(&mut id, s.as_ptr()) } != 0 {
            return Err(format!("cannot parse transport id {trid:?}"));
        }
        let mut ctrlr: *mut ffi::spdk_nvme_ctrlr = std::ptr::null_mut();
        // SAFETY: callbacks match SPDK's signatures; the context outlives the call
        // (probe attaches synchronously).
        let rc = unsafe {
            ffi::spdk_nvme_probe(
                &id,
                &mut ctrlr as *mut _ as *mut c_void,
                Some(probe_cb),
                Some(attach_cb),
                None,
            )
        };
        if rc != 0 || ctrlr.is_null() {
            return Err(format!("no NVMe controller attached at {trid}"));
        }
        // SAFETY: `ctrlr` is an attached controller.
        let ns = unsafe { ffi::spdk_nvme_ctrlr_get_ns(ctrlr, nsid) };
        if ns.is_null() {
            return Err(format!("namespace {nsid} not found"));
        }
        // SAFETY: `ns` is a valid namespace of the controller.
        let sector = unsafe { ffi::spdk_nvme_ns_get_sector_size(ns) };
        Ok(Ctrlr { ctrlr, ns, sector })
    }

    struct Pending {
        req: IoRequest,
        dma: *mut c_void,
        done: *mut VecDeque<IoCompletion>,
    }

    unsafe extern "C" fn complete(arg: *mut c_void, cpl: *const ffi::spdk_nvme_cpl) {
        // SAFETY: `arg` is the `Box<Pending>` leaked at submission, reclaimed exactly once.
        let p = unsafe { Box::from_raw(arg as *mut Pending) };
        let Pending { mut req, dma, done } = *p;
        // SAFETY: SPDK passes a valid completion entry.
        let failed = unsafe { (*cpl).is_error() };
        let len = req.buf.len();
        if !failed && req.op == IoOp::Read {
            // SAFETY: `dma` holds `len` bytes read by the device; `buf` has room for them.
            unsafe { std::ptr::copy_nonoverlapping(dma as *const u8, req.buf.as_mut_ptr(), len) };
        }
        if !dma.is_null() {
            // SAFETY: allocated with `spdk_dma_zmalloc`, freed once.
            unsafe { ffi::spdk_dma_free(dma) };
        }
        let result = if failed {
            Err(ChunkServerError::Disk {
                op: "nvme command",
                source: std::io::Error::other("NVMe completion with error status"),
            })
        } else {
            Ok(if req.op == IoOp::Sync { 0 } else { len })
        };
        // SAFETY: `done` points to the owning backend's queue, which outlives its qpair
        // (completions are only processed from `reap`, through `&mut self`).
        unsafe {
            (*done).push_back(IoCompletion {
                user_data: req.user_data,
                result,
                buf: req.buf,
            })
        };
    }

    pub struct SpdkBackend {
        ns: *mut ffi::spdk_nvme_ns,
        qpair: *mut ffi::spdk_nvme_qpair,
        sector: u64,
        // Boxed so completion callbacks can hold a pointer that survives moves of the backend.
        #[allow(clippy::box_collection)]
        done: Box<VecDeque<IoCompletion>>,
        inflight: usize,
    }
    // SAFETY: the queue pair is used only by the thread that owns the backend at a time;
    // moving the owner to its poller thread before first use is allowed by SPDK.
    unsafe impl Send for SpdkBackend {}

    impl SpdkBackend {
        pub fn open(trid: &str, nsid: u32) -> Result<Self> {
            let c = CTRLR
                .get_or_init(|| attach(trid, nsid))
                .as_ref()
                .map_err(|e| unavailable(e.clone()))?;
            // SAFETY: `c.ctrlr` is attached; null options select defaults.
            let qpair =
                unsafe { ffi::spdk_nvme_ctrlr_alloc_io_qpair(c.ctrlr, std::ptr::null(), 0) };
            if qpair.is_null() {
                return Err(unavailable("cannot allocate an I/O queue pair"));
            }
            Ok(SpdkBackend {
                ns: c.ns,
                qpair,
                sector: u64::from(c.sector.max(512)),
                done: Box::new(VecDeque::new()),
                inflight: 0,
            })
        }
    }

    impl Drop for SpdkBackend {
        fn drop(&mut self) {
            // SAFETY: the queue pair was allocated by us and is freed once.
            unsafe { ffi::spdk_nvme_ctrlr_free_io_qpair(self.qpair) };
        }
    }

    impl IoBackend for SpdkBackend {
        fn kind(&self) -> BackendKind {
            BackendKind::Spdk
        }

        fn submit(&mut self, req: IoRequest) {
            let req = match check_request(req) {
                Ok(r) => r,
                Err(c) => return self.done.push_back(c),
            };
            let len = req.buf.len();
            let (lba, count) = (req.offset / self.sector, (len as u64 / self.sector) as u32);
            let dma = if req.op == IoOp::Sync {
                std::ptr::null_mut()
            } else {
                // SAFETY: plain allocation call; null checked below.
                unsafe { ffi::spdk_dma_zmalloc(len, 4096, std::ptr::null_mut()) }
            };
            if req.op != IoOp::Sync && dma.is_null() {
                return self.done.push_back(IoCompletion {
                    user_data: req.user_data,
                    result: Err(ChunkServerError::NoSpace { pool: "dma" }),
                    buf: req.buf,
                });
            }
            if req.op == IoOp::Write {
                // SAFETY: `dma` has room for `len` bytes.
                unsafe { std::ptr::copy_nonoverlapping(req.buf.as_ptr(), dma as *mut u8, len) };
            }
            let op = req.op;
            let done: *mut VecDeque<IoCompletion> = &mut *self.done;
            let arg = Box::into_raw(Box::new(Pending { req, dma, done })) as *mut c_void;
            // SAFETY: ns/qpair are valid; `dma` stays allocated until `complete` frees it;
            // `arg` is reclaimed by `complete` (or below on submission failure).
            let rc = unsafe {
                match op {
                    IoOp::Read => ffi::spdk_nvme_ns_cmd_read(
                        self.ns,
                        self.qpair,
                        dma,
                        lba,
                        count,
                        Some(complete),
                        arg,
                        0,
                    ),
                    IoOp::Write => ffi::spdk_nvme_ns_cmd_write(
                        self.ns,
                        self.qpair,
                        dma,
                        lba,
                        count,
                        Some(complete),
                        arg,
                        0,
                    ),
                    IoOp::Sync => {
                        ffi::spdk_nvme_ns_cmd_flush(self.ns, self.qpair, Some(complete), arg)
                    }
                }
            };
            if rc != 0 {
                // SAFETY: the command was not queued, so `arg` is still ours.
                let p = unsafe { Box::from_raw(arg as *mut Pending) };
                if !p.dma.is_null() {
                    // SAFETY: allocated above, not handed to the device.
                    unsafe { ffi::spdk_dma_free(p.dma) };
                }
                self.done.push_back(IoCompletion {
                    user_data: p.req.user_data,
                    result: Err(ChunkServerError::Disk {
                        op: "nvme submit",
                        source: std::io::Error::from_raw_os_error(-rc),
                    }),
                    buf: p.req.buf,
                });
                return;
            }
            self.inflight += 1;
        }

        fn reap(&mut self, out: &mut Vec<IoCompletion>, wait: bool) {
            loop {
                // SAFETY: the queue pair is owned by this backend and polled on one thread.
                unsafe { ffi::spdk_nvme_qpair_process_completions(self.qpair, 0) };
                let n = self.done.len();
                self.inflight = self.inflight.saturating_sub(n);
                out.extend(self.done.drain(..));
                if n > 0 || !wait || self.inflight == 0 {
                    return;
                }
                std::hint::spin_loop();
            }
        }

        fn in_flight(&self) -> usize {
            self.inflight + self.done.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_not_available() {
        let err = open(&SpdkOptions::default()).err().expect("no SPDK here");
        match err {
            ChunkServerError::BackendUnavailable { backend, reason } => {
                assert_eq!(backend, "spdk");
                assert!(reason.starts_with("SPDK not available"), "{reason}");
            }
            other => panic!("unexpected error {other}"),
        }
    }
}
