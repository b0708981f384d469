//! The C boundary: the functions `src/engine.c` calls, and `get_ioengine`, which fio
//! looks up with `dlsym` (exported from Rust because a cdylib only exports Rust
//! `#[no_mangle]` symbols).
//!
//! Pointers handed in come from engine.c, which got them from fio; the contracts are
//! stated per function. Nothing here unwinds into C (errors are returned as codes).

use crate::backend::{open_backend, probe_size};
use crate::engine::{Engine, Op};
use crate::error::FioError;
use crate::options::EngineOptions;
use bytes::Bytes;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::time::Duration;

/// fio's `enum fio_ddir` values the engine serves (io_ddir.h).
mod ddir {
    pub const READ: i32 = 0;
    pub const WRITE: i32 = 1;
    pub const TRIM: i32 = 2;
    pub const SYNC: i32 = 3;
    pub const DATASYNC: i32 = 4;
}

/// The engine options as engine.c passes them (`struct basalt_fio_raw_options`).
#[repr(C)]
pub struct RawOptions {
    mds: *const c_char,
    volume: *const c_char,
    transport: *const c_char,
    busy_poll: c_uint,
    runtime_threads: c_uint,
}

extern "C" {
    fn basalt_fio_c_ops() -> *mut c_void;
    fn basalt_fio_runtime_version() -> *const c_char;
    fn basalt_fio_headers_version() -> *const c_char;
}

/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives the returned borrow.
unsafe fn opt_str<'a>(p: *const c_char, option: &'static str) -> Result<Option<&'a str>, FioError> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and NUL-terminated per this function's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(Some)
        .map_err(|_| FioError::NotUtf8 { option })
}

/// # Safety
/// `o` points to a valid `RawOptions` whose strings are NULL or NUL-terminated.
unsafe fn parse(o: *const RawOptions) -> Result<EngineOptions, FioError> {
    // SAFETY: per this function's contract.
    let o = unsafe { &*o };
    // SAFETY: fio's option strings are NULL or strdup'ed C strings living as long as td->eo.
    let (mds, volume, transport) = unsafe {
        (
            opt_str(o.mds, "mds")?,
            opt_str(o.volume, "volume")?,
            opt_str(o.transport, "transport")?,
        )
    };
    EngineOptions::parse(mds, volume, transport, o.busy_poll != 0, o.runtime_threads)
}

/// Copy `msg` into the caller's buffer, truncated and NUL-terminated.
///
/// # Safety
/// `err` is NULL or valid for `len` bytes of writes.
unsafe fn write_err(err: *mut c_char, len: usize, msg: &str) {
    if err.is_null() || len == 0 {
        return;
    }
    let n = msg.len().min(len - 1);
    // SAFETY: n + 1 <= len bytes, within the caller's buffer; the source is a live &str.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), err.cast::<u8>(), n);
        *err.add(n) = 0;
    }
}

/// fio's entry point (`get_ioengine_t`): the engine's ops, or NULL (fio then reports the
/// engine as not loadable) when the running fio is not the one the engine was built for.
///
/// # Safety
/// `out` is a valid pointer to write the ops pointer to (fio passes one).
#[no_mangle]
pub unsafe extern "C" fn get_ioengine(out: *mut *mut c_void) {
    if out.is_null() {
        return;
    }
    // SAFETY: engine.c returns pointers to static strings (or NULL outside fio).
    let (runtime, headers) = unsafe {
        let r = basalt_fio_runtime_version();
        let h = basalt_fio_headers_version();
        (
            (!r.is_null()).then(|| CStr::from_ptr(r).to_string_lossy().into_owned()),
            CStr::from_ptr(h).to_string_lossy().into_owned(),
        )
    };
    let ops = match crate::version::mismatch(runtime.as_deref(), &headers) {
        None => {
            // SAFETY: returns the address of engine.c's static ops.
            unsafe { basalt_fio_c_ops() }
        }
        Some(why) => {
            eprintln!("fio: basalt: {why}");
            std::ptr::null_mut()
        }
    };
    // SAFETY: `out` is valid per this function's contract.
    unsafe { *out = ops };
}

/// Validate the options and report the volume size (fio's `setup`, parent process: no
/// threads are started). Returns 0, or 1 with a message in `err`.
///
/// # Safety
/// `o` as for [`RawOptions`]; `size` writable; `err` NULL or valid for `errlen` bytes.
#[no_mangle]
pub unsafe extern "C" fn basalt_fio_probe(
    o: *const RawOptions,
    size: *mut u64,
    err: *mut c_char,
    errlen: usize,
) -> c_int {
    // SAFETY: per this function's contract.
    match unsafe { parse(o) }.and_then(|opts| probe_size(&opts)) {
        Ok(s) => {
            // SAFETY: writable per this function's contract.
            unsafe { *size = s };
            0
        }
        Err(e) => {
            // SAFETY: per this function's contract.
            unsafe { write_err(err, errlen, &e.to_string()) };
            1
        }
    }
}

/// Create the job's engine (fio's `init`, in the job process): returns an owned handle, or
/// NULL with a message in `err`.
///
/// # Safety
/// As [`basalt_fio_probe`].
#[no_mangle]
pub unsafe extern "C" fn basalt_fio_init(
    o: *const RawOptions,
    iodepth: c_uint,
    err: *mut c_char,
    errlen: usize,
) -> *mut c_void {
    // SAFETY: per this function's contract.
    let made = unsafe { parse(o) }.and_then(|opts| {
        Engine::open(
            |rt| open_backend(&opts, rt),
            iodepth as usize,
            opts.runtime_threads,
            opts.busy_poll,
        )
    });
    match made {
        Ok(engine) => Box::into_raw(Box::new(engine)).cast(),
        Err(e) => {
            // SAFETY: per this function's contract.
            unsafe { write_err(err, errlen, &e.to_string()) };
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// `eng` is a handle from [`basalt_fio_init`] not yet cleaned up, used by one thread.
unsafe fn engine<'a>(eng: *mut c_void) -> &'a mut Engine {
    // SAFETY: per this function's contract.
    unsafe { &mut *eng.cast::<Engine>() }
}

/// Start one I/O (fio's `queue`). Returns 0 when queued, or a positive errno when it was
/// refused (engine.c then completes the io_u with that error at once).
///
/// # Safety
/// `eng` as for [`engine`]; for writes `buf` is valid for `len` bytes of reads.
#[no_mangle]
pub unsafe extern "C" fn basalt_fio_queue(
    eng: *mut c_void,
    io_u: *mut c_void,
    ddir: c_int,
    offset: u64,
    buf: *const c_void,
    len: u64,
) -> c_int {
    // SAFETY: per this function's contract.
    let engine = unsafe { engine(eng) };
    let op = match ddir {
        ddir::READ => Op::Read {
            offset,
            len: len as usize,
        },
        ddir::WRITE => {
            let data = if len == 0 {
                Bytes::new()
            } else {
                // SAFETY: fio's xfer_buf holds xfer_buflen bytes (this function's contract);
                // they are copied before returning.
                Bytes::copy_from_slice(unsafe {
                    std::slice::from_raw_parts(buf.cast::<u8>(), len as usize)
                })
            };
            Op::Write { offset, data }
        }
        ddir::TRIM => Op::Trim { offset, len },
        ddir::SYNC | ddir::DATASYNC => Op::Flush,
        other => return FioError::UnsupportedDirection { ddir: other }.errno() as c_int,
    };
    match engine.submit(io_u as usize, op) {
        Ok(()) => 0,
        Err(e) => e.errno() as c_int,
    }
}

/// Reap completions (fio's `getevents`): wait for `min`, take up to `max`; a negative
/// `timeout_ns` waits without limit.
///
/// # Safety
/// `eng` as for [`engine`].
#[no_mangle]
pub unsafe extern "C" fn basalt_fio_getevents(
    eng: *mut c_void,
    min: c_uint,
    max: c_uint,
    timeout_ns: i64,
) -> c_int {
    // SAFETY: per this function's contract.
    let engine = unsafe { engine(eng) };
    let timeout = u64::try_from(timeout_ns).ok().map(Duration::from_nanos);
    let n = engine.getevents(min as usize, max as usize, timeout);
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

/// The `i`th reaped completion (fio's `event`): returns its io_u and fills the read data
/// to copy into the io_u's buffer (valid until the next getevents), the errno and resid.
///
/// # Safety
/// `eng` as for [`engine`]; the out-pointers are writable.
#[no_mangle]
pub unsafe extern "C" fn basalt_fio_event(
    eng: *mut c_void,
    i: c_int,
    data: *mut *const c_void,
    data_len: *mut u64,
    error: *mut c_uint,
    resid: *mut u64,
) -> *mut c_void {
    // SAFETY: per this function's contract.
    let engine = unsafe { engine(eng) };
    let Some(c) = usize::try_from(i).ok().and_then(|i| engine.event(i)) else {
        return std::ptr::null_mut();
    };
    let (ptr, n) = match &c.data {
        Some(d) => (d.as_ptr().cast::<c_void>(), d.len() as u64),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: the out-pointers are writable per this function's contract.
    unsafe {
        *data = ptr;
        *data_len = n;
        *error = c.errno;
        *resid = c.resid;
    }
    c.tag as *mut c_void
}

/// fio's `open_file`: the volume needs no per-file open. Returns 0 (1 without an engine).
///
/// # Safety
/// `eng` as for [`engine`].
#[no_mangle]
pub unsafe extern "C" fn basalt_fio_open_file(eng: *mut c_void) -> c_int {
    c_int::from(eng.is_null())
}

/// fio's `close_file`: nothing to release per file. Returns 0 (1 without an engine).
///
/// # Safety
/// `eng` as for [`engine`].
#[no_mangle]
pub unsafe extern "C" fn basalt_fio_close_file(eng: *mut c_void) -> c_int {
    c_int::from(eng.is_null())
}

/// Free the job's engine (fio's `cleanup`).
///
/// # Safety
/// `eng` is NULL or a handle from [`basalt_fio_init`], not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn basalt_fio_cleanup(eng: *mut c_void) {
    if !eng.is_null() {
        // SAFETY: created by Box::into_raw in basalt_fio_init, released once here.
        drop(unsafe { Box::from_raw(eng.cast::<Engine>()) });
    }
}
