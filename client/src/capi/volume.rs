//! `basalt_client_open` / `basalt_client_close` / `basalt_client_size`: a volume handle
//! is an open [`Volume`] plus the bookkeeping that lets `close` cancel and wait for its
//! outstanding I/O (after which no library thread touches a caller's buffer).

use super::client::{basalt_client_t, ClientShared};
use super::errors::{Failure, BASALT_CLIENT_EINVAL};
use super::guard::{self, c_str};
use crate::volume::{OpenOptions, Volume};
use basalt_transport::TcpTransport;
use parking_lot::{Condvar, Mutex};
use std::ffi::{c_char, c_int};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Open flag: share the volume with other openers instead of opening it exclusively.
pub const BASALT_CLIENT_OPEN_SHARED: u32 = 1;

/// In-flight I/O of one volume handle, and the signal that cancels it.
pub(crate) struct IoTracker {
    inflight: Mutex<usize>,
    idle: Condvar,
    cancel: tokio::sync::watch::Sender<bool>,
}

impl IoTracker {
    fn new() -> Self {
        IoTracker {
            inflight: Mutex::new(0),
            idle: Condvar::new(),
            cancel: tokio::sync::watch::channel(false).0,
        }
    }

    /// An I/O starts; returns its cancellation signal.
    pub(crate) fn start(&self) -> tokio::sync::watch::Receiver<bool> {
        *self.inflight.lock() += 1;
        self.cancel.subscribe()
    }

    /// An I/O has delivered its completion.
    pub(crate) fn finish(&self) {
        let mut n = self.inflight.lock();
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.idle.notify_all();
        }
    }

    /// Cancel what is in flight and wait until each has delivered its completion.
    fn cancel_and_wait(&self) {
        self.cancel.send_replace(true);
        let mut n = self.inflight.lock();
        while *n != 0 {
            self.idle.wait(&mut n);
        }
    }
}

/// An open volume.
#[allow(non_camel_case_types)]
pub struct basalt_volume_t {
    pub(crate) client: Arc<ClientShared>,
    pub(crate) volume: Arc<Volume<TcpTransport>>,
    pub(crate) io: Arc<IoTracker>,
}

/// Open volume `name`. `flags` is 0 (exclusive) or `BASALT_CLIENT_OPEN_SHARED`. On
/// success `*out` holds the handle (release it with `basalt_client_close`) and `*size`
/// the volume's size in bytes. Blocks while the MDS is asked.
///
/// # Safety
/// `client` is a live client handle; `name` a NUL-terminated string; `out` and `size`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_open(
    client: *mut basalt_client_t,
    name: *const c_char,
    flags: u32,
    out: *mut *mut basalt_volume_t,
    size: *mut u64,
) -> c_int {
    guard::status(|| {
        // SAFETY: NULL is refused; otherwise a live handle (caller contract).
        let client = unsafe { guard::arg(client, "client") }?;
        // SAFETY: NULL is refused; otherwise NUL-terminated (caller contract).
        let name = unsafe { c_str(name, "name") }?;
        guard::out(out, "out")?;
        guard::out(size, "size")?;
        if flags & !BASALT_CLIENT_OPEN_SHARED != 0 {
            return Err(Failure::new(
                BASALT_CLIENT_EINVAL,
                format!("unknown open flags {flags:#x}"),
            ));
        }
        guard::not_on_library_thread("basalt_client_open")?;
        let shared = client.inner.clone();
        let opts = OpenOptions {
            shared: flags & BASALT_CLIENT_OPEN_SHARED != 0,
        };
        let volume = shared
            .handle
            .block_on(shared.cluster.open(name, opts))
            .map_err(|e| {
                let mut f = Failure::from(e);
                f.message = format!("open {name}: {}", f.message);
                f
            })?;
        let bytes = volume.size();
        shared.open_volumes.fetch_add(1, Ordering::SeqCst);
        let handle = Box::new(basalt_volume_t {
            client: shared,
            volume: Arc::new(volume),
            io: Arc::new(IoTracker::new()),
        });
        // SAFETY: both checked non-NULL and writable (caller contract).
        unsafe {
            size.write(bytes);
            out.write(Box::into_raw(handle));
        }
        Ok(())
    })
}

/// Close a volume: I/O still pending is cancelled and completes with
/// `BASALT_CLIENT_ECANCELED` (its effect on the volume is unknown, as with a crash)
/// before this returns; then the session ends. Reap completions first to avoid that.
/// The handle is released even when ending the session fails (the MDS is unreachable:
/// the session then expires on its own). NULL is a no-op returning 0.
///
/// # Safety
/// `volume` is NULL or a live handle from `basalt_client_open`, released once, with no
/// other thread submitting to it during the call.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_close(volume: *mut basalt_volume_t) -> c_int {
    guard::status(|| {
        if volume.is_null() {
            return Ok(());
        }
        guard::not_on_library_thread("basalt_client_close")?;
        // SAFETY: from Box::into_raw in basalt_client_open, released once (caller contract).
        let handle = unsafe { Box::from_raw(volume) };
        let basalt_volume_t { client, volume, io } = *handle;
        io.cancel_and_wait();
        let result = match Arc::try_unwrap(volume) {
            Ok(v) => client.handle.block_on(v.close()).map_err(Failure::from),
            // every I/O task dropped its clone before finishing; nothing else holds one
            Err(_) => Err(Failure::new(
                super::errors::BASALT_CLIENT_EINTERNAL,
                "volume still referenced after its I/O finished",
            )),
        };
        client.open_volumes.fetch_sub(1, Ordering::SeqCst);
        result
    })
}

/// The volume's current size in bytes.
///
/// # Safety
/// `volume` is a live handle; `size` writable.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_size(
    volume: *const basalt_volume_t,
    size: *mut u64,
) -> c_int {
    guard::status(|| {
        // SAFETY: NULL is refused; otherwise a live handle (caller contract).
        let v = unsafe { guard::arg(volume, "volume") }?;
        guard::out(size, "size")?;
        // SAFETY: non-NULL and writable (caller contract).
        unsafe { size.write(v.volume.size()) };
        Ok(())
    })
}
