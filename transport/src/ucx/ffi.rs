//! Thin safe wrappers over the UCP calls the provider makes (the only place besides the
//! I/O thread's callbacks that touches `ucx_sys`).
//!
//! Ownership: [`Context`] is shared (`Arc`) by the workers created from it and is
//! cleaned up after the last of them. A [`Worker`] is created on the provider's thread,
//! moved once into its I/O thread and used only there (UCS_THREAD_MODE_SINGLE).

use crate::error::TransportError;
use std::ffi::{c_void, CStr, CString};
use std::sync::Arc;
use ucx_sys as sys;

/// `ucs_status_string` of a status.
pub(crate) fn status_message(status: sys::ucs_status_t) -> String {
    // SAFETY: ucs_status_string returns a pointer to a static NUL-terminated string for
    // any status value (unknown ones map to a generic text).
    let s = unsafe { CStr::from_ptr(sys::ucs_status_string(status)) };
    s.to_string_lossy().into_owned()
}

/// The loaded library's version.
pub(crate) fn version() -> (u32, u32, u32) {
    let (mut major, mut minor, mut release) = (0, 0, 0);
    // SAFETY: three valid out-pointers.
    unsafe { sys::ucp_get_version(&mut major, &mut minor, &mut release) };
    (major, minor, release)
}

/// Refuse a library older than 1.13 (the bindings' minimum).
pub(crate) fn check_version() -> Result<(), TransportError> {
    let (major, minor, release) = version();
    if (major, minor) < (1, 13) {
        return Err(TransportError::UcxVersionTooOld {
            major,
            minor,
            release,
        });
    }
    Ok(())
}

/// Run `print` against a memory stream and return what it wrote.
fn capture(print: impl FnOnce(*mut sys::FILE)) -> String {
    let mut buf: *mut libc::c_char = std::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: open_memstream with valid out-pointers; the stream is closed below before
    // buf/len are read, as the function requires.
    let stream = unsafe { libc::open_memstream(&mut buf, &mut len) };
    if stream.is_null() {
        return String::new();
    }
    print(stream.cast::<sys::FILE>());
    // SAFETY: stream came from open_memstream and is closed exactly once.
    unsafe { libc::fclose(stream) };
    if buf.is_null() {
        return String::new();
    }
    // SAFETY: after fclose, buf holds len bytes written by the stream (plus a NUL).
    let text = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    let out = String::from_utf8_lossy(text).into_owned();
    // SAFETY: open_memstream's buffer is malloc'ed and owned by us after fclose.
    unsafe { libc::free(buf.cast::<c_void>()) };
    out
}

/// A UCP configuration object (`ucp_config_t`).
pub(crate) struct UcpConfig(*mut sys::ucp_config_t);

impl UcpConfig {
    /// Read the defaults (and any `UCX_*` environment, which explicit settings override).
    pub(crate) fn read() -> Result<Self, TransportError> {
        let mut cfg = std::ptr::null_mut();
        // SAFETY: null prefix and file name select the defaults; cfg is a valid out-pointer.
        let status = unsafe { sys::ucp_config_read(std::ptr::null(), std::ptr::null(), &mut cfg) };
        if status != sys::UCS_OK {
            return Err(TransportError::UcxCall {
                call: "ucp_config_read",
                status: status.into(),
                message: status_message(status),
            });
        }
        Ok(UcpConfig(cfg))
    }

    /// Set one variable (name without `UCX_`).
    pub(crate) fn modify(&mut self, name: &'static str, value: &str) -> Result<(), TransportError> {
        let refuse = |status: sys::ucs_status_t| TransportError::UcxSetting {
            name,
            value: value.to_string(),
            status: status.into(),
            message: status_message(status),
        };
        let c_name = CString::new(name).map_err(|_| refuse(sys::UCS_ERR_INVALID_PARAM))?;
        let c_value = CString::new(value).map_err(|_| refuse(sys::UCS_ERR_INVALID_PARAM))?;
        // SAFETY: self.0 is a live config; both strings are NUL-terminated and outlive the call.
        let status = unsafe { sys::ucp_config_modify(self.0, c_name.as_ptr(), c_value.as_ptr()) };
        if status != sys::UCS_OK {
            return Err(refuse(status));
        }
        Ok(())
    }
}

impl Drop for UcpConfig {
    fn drop(&mut self) {
        // SAFETY: self.0 came from ucp_config_read and is released once.
        unsafe { sys::ucp_config_release(self.0) };
    }
}

/// A UCP context with the AM and WAKEUP features.
pub(crate) struct Context(sys::ucp_context_h);

// SAFETY: a UCP context may be used from several threads to create workers and query
// it; the provider creates all workers from one thread before handing them out and
// destroys the context only after every worker (each holds an Arc).
unsafe impl Send for Context {}
// SAFETY: see Send; no method mutates the context through &self.
unsafe impl Sync for Context {}

impl Context {
    pub(crate) fn new(config: &UcpConfig) -> Result<Arc<Self>, TransportError> {
        // SAFETY: ucp_params_t is a plain C struct for which all-zero is a valid value;
        // only fields named in field_mask are read.
        let mut params: sys::ucp_params_t = unsafe { std::mem::zeroed() };
        params.field_mask = u64::from(sys::UCP_PARAM_FIELD_FEATURES);
        params.features = u64::from(sys::UCP_FEATURE_AM | sys::UCP_FEATURE_WAKEUP);
        let mut ctx = std::ptr::null_mut();
        // SAFETY: params and config are valid for the call; ctx is a valid out-pointer.
        let status = unsafe { sys::ucp_init(&params, config.0, &mut ctx) };
        if status != sys::UCS_OK {
            return Err(TransportError::UcxInit {
                status: status.into(),
                message: status_message(status),
            });
        }
        Ok(Arc::new(Context(ctx)))
    }

    /// `ucp_context_print_info`: the context's configuration and resources.
    pub(crate) fn info(&self) -> String {
        // SAFETY: live context and an open stream.
        capture(|f| unsafe { sys::ucp_context_print_info(self.0, f) })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: every worker holds an Arc<Context>, so none is left; cleaned up once.
        unsafe { sys::ucp_cleanup(self.0) };
    }
}

/// One single-threaded UCP worker. Not `Send`: it moves to its I/O thread inside a
/// [`WorkerTransfer`] and is used only there.
pub(crate) struct Worker {
    handle: sys::ucp_worker_h,
    efd: libc::c_int,
    max_am_header: usize,
    address: Vec<u8>,
    _context: Arc<Context>,
}

/// Carries a freshly created worker to the thread that will own it.
pub(crate) struct WorkerTransfer(pub(crate) Worker);

// SAFETY: the worker has not been progressed or used by any thread yet; after the
// transfer exactly one thread (its I/O thread) uses it, which is what
// UCS_THREAD_MODE_SINGLE requires.
unsafe impl Send for WorkerTransfer {}

/// A worker handle usable from any thread for `ucp_worker_signal` only (documented as
/// thread-safe). Valid while the worker lives; the I/O thread guarantees that by
/// retracting it under the submit lock before destroying the worker.
#[derive(Clone, Copy)]
pub(crate) struct SignalHandle(sys::ucp_worker_h);

// SAFETY: only ucp_worker_signal is called through it, which UCX allows from any thread.
unsafe impl Send for SignalHandle {}
// SAFETY: see Send.
unsafe impl Sync for SignalHandle {}

impl SignalHandle {
    /// Wake the worker's thread out of its event-fd wait.
    ///
    /// # Safety
    /// The worker must not have been destroyed.
    pub(crate) unsafe fn signal(self) {
        // SAFETY: the caller guarantees the worker is alive.
        let status = unsafe { sys::ucp_worker_signal(self.0) };
        if status != sys::UCS_OK {
            tracing::warn!(status = status_message(status), "ucp_worker_signal failed");
        }
    }
}

/// What `ucp_worker_arm` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Armed {
    /// Nothing pending: safe to sleep on the event fd.
    Ready,
    /// Events are pending (or the worker was signalled): progress again first.
    Busy,
}

impl Worker {
    pub(crate) fn new(context: &Arc<Context>) -> Result<Self, TransportError> {
        let fail = |call: &'static str, status: sys::ucs_status_t| TransportError::UcxCall {
            call,
            status: status.into(),
            message: status_message(status),
        };
        // SAFETY: plain C struct; all-zero is valid and only masked fields are read.
        let mut params: sys::ucp_worker_params_t = unsafe { std::mem::zeroed() };
        params.field_mask = u64::from(sys::UCP_WORKER_PARAM_FIELD_THREAD_MODE);
        params.thread_mode = sys::UCS_THREAD_MODE_SINGLE;
        let mut handle = std::ptr::null_mut();
        // SAFETY: live context, valid params and out-pointer.
        let status = unsafe { sys::ucp_worker_create(context.0, &params, &mut handle) };
        if status != sys::UCS_OK {
            return Err(fail("ucp_worker_create", status));
        }
        // From here on `worker` owns the handle and destroys it on any early return.
        let mut worker = Worker {
            handle,
            efd: -1,
            max_am_header: 0,
            address: Vec::new(),
            _context: context.clone(),
        };
        let mut efd = -1;
        // SAFETY: live worker (created with the WAKEUP feature), valid out-pointer.
        let status = unsafe { sys::ucp_worker_get_efd(handle, &mut efd) };
        if status != sys::UCS_OK {
            return Err(fail("ucp_worker_get_efd", status));
        }
        worker.efd = efd;
        // SAFETY: plain C struct; all-zero is valid.
        let mut attr: sys::ucp_worker_attr_t = unsafe { std::mem::zeroed() };
        attr.field_mask = u64::from(sys::UCP_WORKER_ATTR_FIELD_MAX_AM_HEADER);
        // SAFETY: live worker, valid attr.
        let status = unsafe { sys::ucp_worker_query(handle, &mut attr) };
        if status != sys::UCS_OK {
            return Err(fail("ucp_worker_query", status));
        }
        worker.max_am_header = attr.max_am_header;
        let mut addr = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: live worker, valid out-pointers.
        let status = unsafe { sys::ucp_worker_get_address(handle, &mut addr, &mut len) };
        if status != sys::UCS_OK {
            return Err(fail("ucp_worker_get_address", status));
        }
        // SAFETY: UCX returned `len` readable bytes at addr.
        worker.address = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), len) }.to_vec();
        // SAFETY: addr came from ucp_worker_get_address on this worker; released once.
        unsafe { sys::ucp_worker_release_address(handle, addr) };
        Ok(worker)
    }

    pub(crate) fn raw(&self) -> sys::ucp_worker_h {
        self.handle
    }

    pub(crate) fn signal_handle(&self) -> SignalHandle {
        SignalHandle(self.handle)
    }

    /// The worker address peers create endpoints from.
    pub(crate) fn address(&self) -> &[u8] {
        &self.address
    }

    /// Largest AM header this worker can send.
    pub(crate) fn max_am_header(&self) -> usize {
        self.max_am_header
    }

    /// The event fd to sleep on after [`Worker::arm`] returned [`Armed::Ready`].
    pub(crate) fn efd(&self) -> libc::c_int {
        self.efd
    }

    /// One round of progress; returns whether anything happened.
    pub(crate) fn progress(&self) -> bool {
        // SAFETY: live worker, called from its owning thread, never from a callback.
        unsafe { sys::ucp_worker_progress(self.handle) != 0 }
    }

    pub(crate) fn arm(&self) -> Armed {
        // SAFETY: live worker, owning thread.
        match unsafe { sys::ucp_worker_arm(self.handle) } {
            sys::UCS_OK => Armed::Ready,
            sys::UCS_ERR_BUSY => Armed::Busy,
            other => {
                tracing::warn!(status = status_message(other), "ucp_worker_arm failed");
                Armed::Busy
            }
        }
    }

    /// Register the handler of AM `id` (before any endpoint exists: pitfall P6).
    ///
    /// # Safety
    /// `arg` must stay valid, and `cb` safe to call with it, until the worker is destroyed.
    pub(crate) unsafe fn set_am_handler(
        &self,
        id: u32,
        cb: sys::ucp_am_recv_callback_t,
        arg: *mut c_void,
    ) -> Result<(), TransportError> {
        // SAFETY: plain C struct; all-zero is valid.
        let mut p: sys::ucp_am_handler_param_t = unsafe { std::mem::zeroed() };
        p.field_mask = u64::from(
            sys::UCP_AM_HANDLER_PARAM_FIELD_ID
                | sys::UCP_AM_HANDLER_PARAM_FIELD_CB
                | sys::UCP_AM_HANDLER_PARAM_FIELD_ARG
                | sys::UCP_AM_HANDLER_PARAM_FIELD_FLAGS,
        );
        p.id = id;
        p.cb = cb;
        p.arg = arg;
        p.flags = sys::UCP_AM_FLAG_WHOLE_MSG;
        // SAFETY: live worker; the caller keeps arg valid.
        let status = unsafe { sys::ucp_worker_set_am_recv_handler(self.handle, &p) };
        if status != sys::UCS_OK {
            return Err(TransportError::UcxCall {
                call: "ucp_worker_set_am_recv_handler",
                status: status.into(),
                message: status_message(status),
            });
        }
        Ok(())
    }

    /// Create an endpoint to a peer worker address with peer error handling.
    ///
    /// # Safety
    /// `err_arg` must stay valid, and `err_cb` safe to call with it, until the endpoint's
    /// close has completed.
    pub(crate) unsafe fn create_ep(
        &self,
        address: &[u8],
        err_cb: sys::ucp_err_handler_cb_t,
        err_arg: *mut c_void,
    ) -> Result<sys::ucp_ep_h, TransportError> {
        // SAFETY: plain C struct; all-zero is valid.
        let mut p: sys::ucp_ep_params_t = unsafe { std::mem::zeroed() };
        p.field_mask = u64::from(
            sys::UCP_EP_PARAM_FIELD_REMOTE_ADDRESS
                | sys::UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE
                | sys::UCP_EP_PARAM_FIELD_ERR_HANDLER,
        );
        p.address = address.as_ptr().cast::<sys::ucp_address_t>();
        p.err_mode = sys::UCP_ERR_HANDLING_MODE_PEER;
        p.err_handler = sys::ucp_err_handler_t {
            cb: err_cb,
            arg: err_arg,
        };
        let mut ep = std::ptr::null_mut();
        // SAFETY: live worker; address bytes are valid for the call (UCX unpacks them
        // during ucp_ep_create and keeps no pointer into them); the caller keeps err_arg.
        let status = unsafe { sys::ucp_ep_create(self.handle, &p, &mut ep) };
        if status != sys::UCS_OK {
            return Err(TransportError::UcxCall {
                call: "ucp_ep_create",
                status: status.into(),
                message: status_message(status),
            });
        }
        Ok(ep)
    }

    /// `ucp_ep_print_info` of an endpoint of this worker (its lanes and transports).
    ///
    /// # Safety
    /// `ep` must be a live endpoint of this worker.
    pub(crate) unsafe fn ep_info(&self, ep: sys::ucp_ep_h) -> String {
        // SAFETY: the caller guarantees ep; the stream is open.
        capture(|f| unsafe { sys::ucp_ep_print_info(ep, f) })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // SAFETY: the owning thread closed every endpoint first; destroyed once.
        unsafe { sys::ucp_worker_destroy(self.handle) };
    }
}

/// The outcome of starting a non-blocking UCP operation.
pub(crate) enum Started {
    /// Completed inside the call; no callback will come.
    Done,
    /// In flight: the callback will fire (the request is freed there or after polling).
    Pending(*mut c_void),
    /// Failed inside the call; no callback will come.
    Failed(sys::ucs_status_t),
}

impl Started {
    pub(crate) fn from_ptr(ptr: sys::ucs_status_ptr_t) -> Self {
        if ptr.is_null() {
            Started::Done
        } else if sys::ucs_ptr_is_err(ptr) {
            Started::Failed(sys::ucs_ptr_status(ptr))
        } else {
            Started::Pending(ptr)
        }
    }
}

/// Start a force close of an endpoint. Pending requests on it complete with
/// `UCS_ERR_CANCELED`.
///
/// # Safety
/// `ep` must be a live endpoint, closed only once, on its worker's thread.
pub(crate) unsafe fn close_ep_force(ep: sys::ucp_ep_h) -> Started {
    // SAFETY: plain C struct; all-zero is valid.
    let mut p: sys::ucp_request_param_t = unsafe { std::mem::zeroed() };
    p.op_attr_mask = sys::UCP_OP_ATTR_FIELD_FLAGS;
    p.flags = sys::UCP_EP_CLOSE_FLAG_FORCE;
    // SAFETY: the caller's contract.
    Started::from_ptr(unsafe { sys::ucp_ep_close_nbx(ep, &p) })
}

/// Whether a request is still in flight (`ucp_request_check_status`).
///
/// # Safety
/// `req` must be a live request not yet freed.
pub(crate) unsafe fn request_pending(req: *mut c_void) -> bool {
    // SAFETY: the caller's contract.
    unsafe { sys::ucp_request_check_status(req) == sys::UCS_INPROGRESS }
}

/// Release a request (immediately if complete, on completion otherwise).
///
/// # Safety
/// `req` must be a live request, freed once.
pub(crate) unsafe fn request_free(req: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { sys::ucp_request_free(req) }
}

/// The data part of an active message.
pub(crate) enum SendData {
    /// No data.
    None,
    /// One contiguous buffer.
    Contig(*const u8, usize),
    /// An iov array of `count` entries.
    Iov(*const sys::ucp_dt_iov_t, usize),
}

/// Start `ucp_am_send_nbx`.
///
/// # Safety
/// `ep` must be a live endpoint used on its worker's thread; `header`, the data buffers
/// (and the iov array) and `user_data` must stay valid until the operation completes:
/// returned [`Started::Done`]/[`Started::Failed`], or `cb` was called.
pub(crate) unsafe fn am_send(
    ep: sys::ucp_ep_h,
    id: u32,
    header: &[u8],
    data: SendData,
    cb: sys::ucp_send_nbx_callback_t,
    user_data: *mut c_void,
) -> Started {
    // SAFETY: plain C struct; all-zero is valid.
    let mut p: sys::ucp_request_param_t = unsafe { std::mem::zeroed() };
    p.op_attr_mask = sys::UCP_OP_ATTR_FIELD_CALLBACK | sys::UCP_OP_ATTR_FIELD_USER_DATA;
    p.cb.send = cb;
    p.user_data = user_data;
    let (buffer, count) = match data {
        SendData::None => (std::ptr::null::<c_void>(), 0),
        SendData::Contig(ptr, len) => {
            p.op_attr_mask |= sys::UCP_OP_ATTR_FIELD_DATATYPE;
            p.datatype = sys::ucp_dt_make_contig(1);
            (ptr.cast::<c_void>(), len)
        }
        SendData::Iov(iov, n) => {
            p.op_attr_mask |= sys::UCP_OP_ATTR_FIELD_DATATYPE;
            p.datatype = sys::ucp_dt_make_iov();
            (iov.cast::<c_void>(), n)
        }
    };
    // SAFETY: the caller's contract covers every pointer handed over.
    let ptr = unsafe {
        sys::ucp_am_send_nbx(
            ep,
            id,
            header.as_ptr().cast::<c_void>(),
            header.len(),
            buffer,
            count,
            &p,
        )
    };
    Started::from_ptr(ptr)
}

/// Start receiving rendezvous data of an active message into `buf`.
///
/// # Safety
/// `desc` must be a rendezvous descriptor delivered to an AM callback of `worker` (for
/// which the callback returned `UCS_INPROGRESS`), used once; `buf..buf+len` and
/// `user_data` must stay valid until the operation completes.
pub(crate) unsafe fn am_recv_data(
    worker: &Worker,
    desc: *mut c_void,
    buf: *mut u8,
    len: usize,
    cb: sys::ucp_am_recv_data_nbx_callback_t,
    user_data: *mut c_void,
) -> Started {
    // SAFETY: plain C struct; all-zero is valid.
    let mut p: sys::ucp_request_param_t = unsafe { std::mem::zeroed() };
    p.op_attr_mask = sys::UCP_OP_ATTR_FIELD_CALLBACK
        | sys::UCP_OP_ATTR_FIELD_USER_DATA
        | sys::UCP_OP_ATTR_FIELD_DATATYPE;
    p.cb.recv_am = cb;
    p.user_data = user_data;
    p.datatype = sys::ucp_dt_make_contig(1);
    // SAFETY: the caller's contract.
    Started::from_ptr(unsafe {
        sys::ucp_am_recv_data_nbx(worker.raw(), desc, buf.cast::<c_void>(), len, &p)
    })
}

/// Drop a rendezvous descriptor without receiving its data.
///
/// # Safety
/// As for [`am_recv_data`]: a descriptor of `worker` held after `UCS_INPROGRESS`, used once.
pub(crate) unsafe fn am_data_release(worker: &Worker, desc: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { sys::ucp_am_data_release(worker.raw(), desc) }
}
