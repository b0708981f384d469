//! Asynchronous I/O: `basalt_client_aio_*` check their arguments synchronously, then run
//! the I/O on the client's runtime and deliver exactly one completion — a callback or an
//! event on a completion queue.

use super::cq::{basalt_client_event_t, basalt_cq_t, CqShared};
use super::errors::{
    set_last_error, Failure, BASALT_CLIENT_ECANCELED, BASALT_CLIENT_EINVAL, BASALT_CLIENT_ERANGE,
};
use super::guard;
use super::volume::basalt_volume_t;
use bytes::Bytes;
use futures::FutureExt;
use std::ffi::{c_int, c_void};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// Largest read or write one call may carry (larger ones: split them).
pub const BASALT_CLIENT_MAX_IO_BYTES: u64 = 64 << 20;

/// A completion callback: `arg` as given, `result` the bytes transferred (the request's
/// length; 0 for flush) or a negative `BASALT_CLIENT_E*` code. Runs on a library thread.
#[allow(non_camel_case_types)]
pub type basalt_client_cb = Option<unsafe extern "C" fn(arg: *mut c_void, result: i64)>;

/// Where an I/O's completion goes: set exactly one of `cb` (callback mode, `arg` passed
/// back) or `cq` (queue mode, `tag` passed back). The struct is copied at submission.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct basalt_client_completion_t {
    /// Callback, or NULL in queue mode.
    pub cb: basalt_client_cb,
    /// Opaque argument for `cb`.
    pub arg: *mut c_void,
    /// Completion queue, or NULL in callback mode.
    pub cq: *mut basalt_cq_t,
    /// Opaque tag reported with the event in `cq`.
    pub tag: u64,
}

/// A caller's pointer carried to a library thread.
#[derive(Clone, Copy)]
struct SendPtr(*mut c_void);
// SAFETY: the C contract makes the pointee (a callback argument or a read buffer) usable
// from library threads until the completion is delivered; we only pass it back or write
// a read's bytes into it before completing.
unsafe impl Send for SendPtr {}

enum Done {
    Callback {
        cb: unsafe extern "C" fn(*mut c_void, i64),
        arg: SendPtr,
    },
    Queue {
        cq: Arc<CqShared>,
        tag: u64,
    },
}

impl Done {
    /// # Safety
    /// `c`, when not NULL, points to a valid completion whose `cq` is NULL or live.
    unsafe fn from_c(c: *const basalt_client_completion_t) -> Result<Done, Failure> {
        // SAFETY: NULL refused; otherwise valid (caller contract).
        let c = unsafe { guard::arg(c, "completion") }?;
        match (c.cb, c.cq.is_null()) {
            (Some(cb), true) => Ok(Done::Callback {
                cb,
                arg: SendPtr(c.arg),
            }),
            (None, false) => {
                // SAFETY: non-NULL live queue handle (caller contract).
                let cq = unsafe { &*c.cq }.shared.clone();
                cq.expect_one();
                Ok(Done::Queue { cq, tag: c.tag })
            }
            (Some(_), false) => Err(Failure::invalid(
                "completion sets both cb and cq: choose one",
            )),
            (None, true) => Err(Failure::invalid("completion sets neither cb nor cq")),
        }
    }

    /// Not submitted after all: no completion will come.
    fn abandon(self) {
        if let Done::Queue { cq, .. } = self {
            cq.forget_one();
        }
    }

    fn deliver(self, result: Result<u64, Failure>) {
        let value = match &result {
            Ok(n) => *n as i64,
            Err(f) => f.code as i64,
        };
        match self {
            Done::Callback { cb, arg } => {
                if let Err(f) = &result {
                    // readable from the callback through basalt_client_last_error
                    set_last_error(&f.message);
                }
                // SAFETY: a C function pointer the caller supplied with its argument.
                unsafe { cb(arg.0, value) }
            }
            Done::Queue { cq, tag } => cq.push(basalt_client_event_t { tag, result: value }),
        }
    }
}

enum Op {
    Read { buf: SendPtr, len: u64 },
    Write(Bytes),
    WriteZeroes(u64),
    Discard(u64),
    Flush,
}

/// Refuse what the volume would refuse, before anything runs.
fn check_range(v: &basalt_volume_t, offset: u64, len: u64) -> Result<(), Failure> {
    let sector = v.client.sector;
    if len == 0 || offset % sector != 0 || len % sector != 0 {
        return Err(Failure::new(
            BASALT_CLIENT_EINVAL,
            format!("offset {offset} and length {len} must be non-zero multiples of the sector size {sector}"),
        ));
    }
    let size = v.volume.size();
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Failure::new(
            BASALT_CLIENT_ERANGE,
            format!("offset {offset} + length {len} is beyond the volume size {size}"),
        )),
    }
}

fn check_buffer(len: u64) -> Result<(), Failure> {
    if len > BASALT_CLIENT_MAX_IO_BYTES {
        return Err(Failure::invalid(format!(
            "length {len} is above BASALT_CLIENT_MAX_IO_BYTES ({BASALT_CLIENT_MAX_IO_BYTES})"
        )));
    }
    Ok(())
}

/// Run one I/O; a read's bytes land in the caller's buffer before this returns.
async fn run(v: &basalt_volume_t, offset: u64, op: Op) -> Result<u64, Failure> {
    let vol = &v.volume;
    match op {
        Op::Read { buf, len } => {
            let data = vol.read(offset, len).await?;
            if data.len() as u64 != len {
                return Err(Failure::new(
                    super::errors::BASALT_CLIENT_EIO,
                    format!("read returned {} bytes, not {len}", data.len()),
                ));
            }
            // SAFETY: the caller keeps `buf` valid and writable for `len` bytes until the
            // completion, which comes after this copy; nothing else writes it meanwhile.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.0.cast::<u8>(), data.len()) };
            Ok(len)
        }
        Op::Write(data) => {
            let n = data.len() as u64;
            vol.write(offset, data).await?;
            Ok(n)
        }
        Op::WriteZeroes(len) => vol
            .write_zeroes(offset, len)
            .await
            .map(|_| len)
            .map_err(Into::into),
        Op::Discard(len) => vol
            .discard(offset, len)
            .await
            .map(|_| len)
            .map_err(Into::into),
        Op::Flush => vol.flush().await.map(|_| 0).map_err(Into::into),
    }
}

/// Spawn the I/O; it delivers its completion exactly once (cancelled by close → ECANCELED,
/// a panic → EINTERNAL).
fn spawn(v: &basalt_volume_t, offset: u64, op: Op, done: Done) {
    let mut cancel = v.io.start();
    let io = v.io.clone();
    let handle = v.client.handle.clone();
    let task_volume = basalt_volume_t {
        client: v.client.clone(),
        volume: v.volume.clone(),
        io: v.io.clone(),
    };
    handle.spawn(async move {
        let result = {
            let work = AssertUnwindSafe(run(&task_volume, offset, op)).catch_unwind();
            tokio::select! {
                r = work => match r {
                    Ok(r) => r,
                    Err(p) => Err(guard::panic_failure(&*p)),
                },
                _ = cancel.wait_for(|c| *c) => Err(Failure::new(
                    BASALT_CLIENT_ECANCELED,
                    "I/O cancelled: the volume was closed",
                )),
            }
        };
        // close waits for `finish`, then needs the only reference to the volume
        drop(task_volume);
        done.deliver(result);
        io.finish();
    });
}

/// Check the handle and completion, then submit.
///
/// # Safety
/// `volume` is NULL or live; `done` is NULL or a valid completion.
unsafe fn submit(
    volume: *const basalt_volume_t,
    done: *const basalt_client_completion_t,
    offset: u64,
    make: impl FnOnce(&basalt_volume_t) -> Result<Op, Failure>,
) -> c_int {
    guard::status(|| {
        // SAFETY: NULL refused; otherwise live (caller contract).
        let v = unsafe { guard::arg(volume, "volume") }?;
        // SAFETY: NULL refused; otherwise a valid completion (caller contract).
        let done = unsafe { Done::from_c(done) }?;
        match make(v) {
            Ok(op) => {
                spawn(v, offset, op, done);
                Ok(())
            }
            Err(f) => {
                done.abandon();
                Err(f)
            }
        }
    })
}

/// Read `len` bytes at `offset` into `buf`. Returns 0 when submitted (exactly one
/// completion follows) or a negative code (nothing submitted, no completion).
/// `offset` and `len` must be multiples of the sector size, `len` at most
/// `BASALT_CLIENT_MAX_IO_BYTES`.
///
/// # Safety
/// `buf` stays valid and writable for `len` bytes, untouched by the caller, until the
/// completion is delivered. `volume` is a live handle; `done` a valid completion.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_aio_read(
    volume: *mut basalt_volume_t,
    offset: u64,
    buf: *mut c_void,
    len: u64,
    done: *const basalt_client_completion_t,
) -> c_int {
    // SAFETY: pointers checked inside; contracts passed on from our caller.
    unsafe {
        submit(volume, done, offset, |v| {
            guard::out(buf, "buf")?;
            check_buffer(len)?;
            check_range(v, offset, len)?;
            Ok(Op::Read {
                buf: SendPtr(buf),
                len,
            })
        })
    }
}

/// Write `len` bytes from `buf` at `offset`; completes once the data is durable on a
/// majority of each copyset. Same rules as `basalt_client_aio_read`.
///
/// # Safety
/// `buf` stays valid for `len` bytes and unmodified until the completion is delivered.
/// `volume` is a live handle; `done` a valid completion.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_aio_write(
    volume: *mut basalt_volume_t,
    offset: u64,
    buf: *const c_void,
    len: u64,
    done: *const basalt_client_completion_t,
) -> c_int {
    let make = |v: &basalt_volume_t| {
        guard::out(buf.cast_mut(), "buf")?;
        check_buffer(len)?;
        check_range(v, offset, len)?;
        // SAFETY: non-NULL and readable for `len` bytes (caller contract). Copied now,
        // so the library never reads the buffer later.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
        Ok(Op::Write(Bytes::copy_from_slice(data)))
    };
    // SAFETY: pointers checked inside; contracts passed on from our caller.
    unsafe { submit(volume, done, offset, make) }
}

/// Zero `len` bytes at `offset` (whole chunks are deallocated). Sector-aligned.
///
/// # Safety
/// `volume` is a live handle; `done` a valid completion.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_aio_write_zeroes(
    volume: *mut basalt_volume_t,
    offset: u64,
    len: u64,
    done: *const basalt_client_completion_t,
) -> c_int {
    // SAFETY: pointers checked inside; contracts passed on from our caller.
    unsafe {
        submit(volume, done, offset, |v| {
            check_range(v, offset, len)?;
            Ok(Op::WriteZeroes(len))
        })
    }
}

/// Discard `len` bytes at `offset`; they read as zeros afterwards. Sector-aligned.
///
/// # Safety
/// `volume` is a live handle; `done` a valid completion.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_aio_discard(
    volume: *mut basalt_volume_t,
    offset: u64,
    len: u64,
    done: *const basalt_client_completion_t,
) -> c_int {
    // SAFETY: pointers checked inside; contracts passed on from our caller.
    unsafe {
        submit(volume, done, offset, |v| {
            check_range(v, offset, len)?;
            Ok(Op::Discard(len))
        })
    }
}

/// Flush. Every completed write is already durable, so this only reports a volume that
/// has gone; it does not wait for writes still in flight.
///
/// # Safety
/// `volume` is a live handle; `done` a valid completion.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_aio_flush(
    volume: *mut basalt_volume_t,
    done: *const basalt_client_completion_t,
) -> c_int {
    // SAFETY: pointers checked inside; contracts passed on from our caller.
    unsafe { submit(volume, done, 0, |_| Ok(Op::Flush)) }
}
