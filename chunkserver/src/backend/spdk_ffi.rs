//! Hand-written declarations of the few SPDK functions the `spdk` backend calls
//! (SPDK 23.x ABI). Structures SPDK lets callers allocate are declared as opaque, suitably
//! sized and aligned byte blocks initialised by SPDK's own `*_init`/`*_opts` functions.
//! Linked against the system SPDK (`-lspdk_nvme -lspdk_env_dpdk ...`) only when the
//! `spdk` feature is on; never built into default binaries.

#![allow(non_camel_case_types, missing_docs)]

use std::ffi::{c_char, c_int, c_void};

/// `struct spdk_env_opts`, opaque (larger than the real structure).
#[repr(C, align(8))]
pub struct spdk_env_opts {
    pub bytes: [u8; 1024],
}

/// `struct spdk_nvme_transport_id`, opaque (larger than the real structure).
#[repr(C, align(8))]
pub struct spdk_nvme_transport_id {
    pub bytes: [u8; 1024],
}

/// Opaque controller options.
#[repr(C)]
pub struct spdk_nvme_ctrlr_opts {
    _private: [u8; 0],
}

/// Opaque handles.
#[repr(C)]
pub struct spdk_nvme_ctrlr {
    _private: [u8; 0],
}
#[repr(C)]
pub struct spdk_nvme_ns {
    _private: [u8; 0],
}
#[repr(C)]
pub struct spdk_nvme_qpair {
    _private: [u8; 0],
}
#[repr(C)]
pub struct spdk_nvme_io_qpair_opts {
    _private: [u8; 0],
}

/// `struct spdk_nvme_cpl` (16 bytes); the status word is the last u16.
#[repr(C)]
pub struct spdk_nvme_cpl {
    pub cdw0: u32,
    pub rsvd1: u32,
    pub sqhd: u16,
    pub sqid: u16,
    pub cid: u16,
    pub status: u16,
}

impl spdk_nvme_cpl {
    /// `spdk_nvme_cpl_is_error`: status code or status code type non-zero.
    pub fn is_error(&self) -> bool {
        let sc = (self.status >> 1) & 0xff;
        let sct = (self.status >> 9) & 0x7;
        sc != 0 || sct != 0
    }
}

pub type spdk_nvme_cmd_cb =
    Option<unsafe extern "C" fn(ctx: *mut c_void, cpl: *const spdk_nvme_cpl)>;
pub type spdk_nvme_probe_cb = Option<
    unsafe extern "C" fn(
        cb_ctx: *mut c_void,
        trid: *const spdk_nvme_transport_id,
        opts: *mut spdk_nvme_ctrlr_opts,
    ) -> bool,
>;
pub type spdk_nvme_attach_cb = Option<
    unsafe extern "C" fn(
        cb_ctx: *mut c_void,
        trid: *const spdk_nvme_transport_id,
        ctrlr: *mut spdk_nvme_ctrlr,
        opts: *const spdk_nvme_ctrlr_opts,
    ),
>;
pub type spdk_nvme_remove_cb =
    Option<unsafe extern "C" fn(cb_ctx: *mut c_void, ctrlr: *mut spdk_nvme_ctrlr)>;

extern "C" {
    pub fn spdk_env_opts_init(opts: *mut spdk_env_opts);
    pub fn spdk_env_init(opts: *const spdk_env_opts) -> c_int;
    pub fn spdk_nvme_transport_id_parse(
        trid: *mut spdk_nvme_transport_id,
        str_: *const c_char,
    ) -> c_int;
    pub fn spdk_nvme_probe(
        trid: *const spdk_nvme_transport_id,
        cb_ctx: *mut c_void,
        probe_cb: spdk_nvme_probe_cb,
        attach_cb: spdk_nvme_attach_cb,
        remove_cb: spdk_nvme_remove_cb,
    ) -> c_int;
    pub fn spdk_nvme_detach(ctrlr: *mut spdk_nvme_ctrlr) -> c_int;
    pub fn spdk_nvme_ctrlr_get_ns(ctrlr: *mut spdk_nvme_ctrlr, nsid: u32) -> *mut spdk_nvme_ns;
    pub fn spdk_nvme_ns_get_sector_size(ns: *mut spdk_nvme_ns) -> u32;
    pub fn spdk_nvme_ctrlr_alloc_io_qpair(
        ctrlr: *mut spdk_nvme_ctrlr,
        opts: *const spdk_nvme_io_qpair_opts,
        opts_size: usize,
    ) -> *mut spdk_nvme_qpair;
    pub fn spdk_nvme_ctrlr_free_io_qpair(qpair: *mut spdk_nvme_qpair) -> c_int;
    pub fn spdk_nvme_ns_cmd_read(
        ns: *mut spdk_nvme_ns,
        qpair: *mut spdk_nvme_qpair,
        payload: *mut c_void,
        lba: u64,
        lba_count: u32,
        cb_fn: spdk_nvme_cmd_cb,
        cb_arg: *mut c_void,
        io_flags: u32,
    ) -> c_int;
    pub fn spdk_nvme_ns_cmd_write(
        ns: *mut spdk_nvme_ns,
        qpair: *mut spdk_nvme_qpair,
        payload: *mut c_void,
        lba: u64,
        lba_count: u32,
        cb_fn: spdk_nvme_cmd_cb,
        cb_arg: *mut c_void,
        io_flags: u32,
    ) -> c_int;
    pub fn spdk_nvme_ns_cmd_flush(
        ns: *mut spdk_nvme_ns,
        qpair: *mut spdk_nvme_qpair,
        cb_fn: spdk_nvme_cmd_cb,
        cb_arg: *mut c_void,
    ) -> c_int;
    pub fn spdk_nvme_qpair_process_completions(
        qpair: *mut spdk_nvme_qpair,
        max_completions: u32,
    ) -> i32;
    pub fn spdk_dma_zmalloc(size: usize, align: usize, phys_addr: *mut u64) -> *mut c_void;
    pub fn spdk_dma_free(buf: *mut c_void);
}
