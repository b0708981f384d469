//! One UCX I/O thread: owns a single-threaded worker and its endpoints.
//!
//! Tokio tasks hand work over through a channel and wake the thread with
//! `ucp_worker_signal`. The loop: progress until idle → drain commands → handle what the
//! callbacks noted → optional bounded spin → `ucp_worker_arm` + poll on the worker's
//! event fd. Callbacks run inside `ucp_worker_progress`; they never call back into UCX
//! for endpoints or rendezvous data, they note events in a thread-local list that the
//! loop handles after progress returns.

use super::ffi::{self, Armed, SendData, SignalHandle, Started, Worker, WorkerTransfer};
use super::registry::{Counters, Registry};
use super::wire::{self, HeadPlacement};
use crate::error::TransportError;
use crate::fastpath::{FastPathError, RawFrame};
use basalt_proto::FrameHeader;
use bytes::Bytes;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use ucx_sys as sys;

/// How long a closing endpoint may wait for its close notice to go out.
const CLOSE_NOTICE_GRACE: Duration = Duration::from_millis(500);
/// How long a force close or the shutdown may take before resources are abandoned.
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);

/// Work handed to an I/O thread.
pub(crate) enum Command {
    /// Create endpoint `ep_id` to a peer worker for the local connection `local`.
    Connect {
        ep_id: u64,
        local: u64,
        remote: u64,
        address: Vec<u8>,
        reply: oneshot::Sender<Result<(), TransportError>>,
    },
    /// Send a frame on an endpoint.
    Send {
        ep_id: u64,
        frame: RawFrame,
        reply: oneshot::Sender<Result<(), FastPathError>>,
    },
    /// Send the close notice, then force-close the endpoint.
    Close { ep_id: u64 },
    /// `ucp_ep_print_info` of an endpoint (None if it is gone).
    Describe {
        ep_id: u64,
        reply: oneshot::Sender<Option<String>>,
    },
}

/// The other threads' side of an I/O thread.
pub(crate) struct ThreadHandle {
    address: Vec<u8>,
    /// Filled while the worker lives; emptied under the lock before it is destroyed, so
    /// no signal can reach a destroyed worker.
    submit: Mutex<Option<(mpsc::Sender<Command>, SignalHandle)>>,
    /// Set with every command, so a spinning thread notices work without a wakeup.
    queued: AtomicBool,
    stop: AtomicBool,
}

impl ThreadHandle {
    /// The worker address peers create endpoints from, in its envelope
    /// ([`wire::encode_worker_address`]).
    pub(crate) fn address(&self) -> &[u8] {
        &self.address
    }

    /// Queue a command and wake the thread.
    pub(crate) fn submit(&self, cmd: Command) -> Result<(), TransportError> {
        let guard = self.submit.lock();
        let Some((tx, signal)) = guard.as_ref() else {
            return Err(TransportError::Shutdown);
        };
        tx.send(cmd).map_err(|_| TransportError::Shutdown)?;
        self.queued.store(true, Ordering::Release);
        // SAFETY: the worker is alive while the submit slot is filled, and we hold its lock.
        unsafe { signal.signal() };
        Ok(())
    }

    /// Ask the thread to close everything and exit.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let guard = self.submit.lock();
        if let Some((_, signal)) = guard.as_ref() {
            // SAFETY: as in submit.
            unsafe { signal.signal() };
        }
    }
}

/// State the AM callbacks need; boxed, its address is the handlers' `arg`.
struct HandlerCtx {
    registry: Arc<Registry>,
}

/// An endpoint error callback's `arg`.
struct EpCtx {
    ep_id: u64,
}

/// A rendezvous message whose data is still to be fetched.
struct PendingRndv {
    desc: *mut c_void,
    len: usize,
    token: u64,
    header: FrameHeader,
    inline_head: Option<Bytes>,
}

/// What callbacks noted for the loop.
#[derive(Default)]
struct Events {
    failed_eps: Vec<(u64, sys::ucs_status_t)>,
    close_notice_done: Vec<u64>,
    rndv: Vec<PendingRndv>,
}

thread_local! {
    static EVENTS: RefCell<Events> = RefCell::new(Events::default());
}

fn note(f: impl FnOnce(&mut Events)) {
    EVENTS.with(|e| f(&mut e.borrow_mut()));
}

/// How a finished send is reported.
enum SendDone {
    Reply(oneshot::Sender<Result<(), FastPathError>>),
    CloseNotice { ep_id: u64 },
}

/// Everything a send keeps alive until it completes (header and data buffers, iov).
struct SendCtx {
    am_header: Vec<u8>,
    frame: Option<RawFrame>,
    iov: [sys::ucp_dt_iov_t; 2],
    done: SendDone,
}

impl SendCtx {
    fn finish(self, status: sys::ucs_status_t) {
        match self.done {
            SendDone::Reply(reply) => {
                let result = if status == sys::UCS_OK {
                    Ok(())
                } else {
                    Err(FastPathError::Link {
                        reason: format!("UCX send failed: {}", ffi::status_message(status)),
                    })
                };
                // The sender may have given up (timeout): nothing to do then.
                let _ = reply.send(result);
            }
            SendDone::CloseNotice { ep_id } => note(|e| e.close_notice_done.push(ep_id)),
        }
        drop(self.frame);
        drop(self.am_header);
    }
}

/// A rendezvous receive in flight.
struct RecvCtx {
    registry: Arc<Registry>,
    token: u64,
    header: FrameHeader,
    inline_head: Option<Bytes>,
    buf: Vec<u8>,
}

impl RecvCtx {
    fn finish(self, status: sys::ucs_status_t) {
        if status != sys::UCS_OK {
            self.registry.fail(
                self.token,
                FastPathError::Link {
                    reason: format!("UCX receive failed: {}", ffi::status_message(status)),
                },
            );
            return;
        }
        let data = Bytes::from(self.buf);
        let (head, payload) = match self.inline_head {
            Some(head) => (head, data),
            None => {
                let n = self.header.header_len as usize;
                (data.slice(..n), data.slice(n..))
            }
        };
        self.registry.deliver(
            self.token,
            RawFrame {
                header: self.header,
                head,
                payload,
            },
        );
    }
}

/// View a callback's (pointer, length) pair as a slice.
///
/// # Safety
/// When `len > 0`, `ptr` must be valid for reads of `len` bytes for the returned lifetime.
unsafe fn bytes_at<'a>(ptr: *const c_void, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
    }
}

unsafe extern "C" fn on_frame(
    arg: *mut c_void,
    header: *const c_void,
    header_length: usize,
    data: *mut c_void,
    length: usize,
    param: *const sys::ucp_am_recv_param_t,
) -> sys::ucs_status_t {
    // SAFETY: arg is the HandlerCtx box registered with this handler; it outlives the worker.
    let ctx = unsafe { &*arg.cast::<HandlerCtx>() };
    // SAFETY: UCX passes header_length valid header bytes for the callback's duration.
    let am_header = unsafe { bytes_at(header, header_length) };
    // SAFETY: UCX passes a valid param for the callback's duration.
    let rndv = unsafe { (*param).recv_attr } & u64::from(sys::UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
    let inbound = match wire::decode_am_header(am_header, length, &ctx.registry.limits) {
        Ok(f) => f,
        Err(error) => {
            Counters::bump(&ctx.registry.stats.malformed);
            tracing::warn!(%error, "refusing a malformed UCX frame");
            if let Some(token) = wire::token_of(am_header) {
                ctx.registry.fail(
                    token,
                    FastPathError::Link {
                        reason: error.to_string(),
                    },
                );
            }
            // Dropping it (for rendezvous: the sender completes without transfer).
            return sys::UCS_OK;
        }
    };
    if !ctx.registry.contains(inbound.token) {
        Counters::bump(&ctx.registry.stats.unknown_token);
        tracing::debug!(
            token = inbound.token,
            "UCX frame for an unknown connection dropped"
        );
        return sys::UCS_OK;
    }
    let inline_head = match inbound.head {
        HeadPlacement::Header => Some(Bytes::copy_from_slice(&am_header[wire::PREFIX_LEN..])),
        HeadPlacement::Data => None,
    };
    if rndv {
        Counters::bump(&ctx.registry.stats.rendezvous);
        note(|e| {
            e.rndv.push(PendingRndv {
                desc: data,
                len: length,
                token: inbound.token,
                header: inbound.header,
                inline_head,
            })
        });
        return sys::UCS_INPROGRESS;
    }
    Counters::bump(&ctx.registry.stats.eager);
    // Eager data is only valid during the callback: copy it once.
    // SAFETY: for eager messages data points to `length` bytes valid during the callback.
    let data = Bytes::copy_from_slice(unsafe { bytes_at(data, length) });
    let (head, payload) = match inline_head {
        Some(head) => (head, data),
        None => {
            let n = inbound.header.header_len as usize;
            (data.slice(..n), data.slice(n..))
        }
    };
    ctx.registry.deliver(
        inbound.token,
        RawFrame {
            header: inbound.header,
            head,
            payload,
        },
    );
    sys::UCS_OK
}

unsafe extern "C" fn on_close_notice(
    arg: *mut c_void,
    header: *const c_void,
    header_length: usize,
    _data: *mut c_void,
    _length: usize,
    _param: *const sys::ucp_am_recv_param_t,
) -> sys::ucs_status_t {
    // SAFETY: as in on_frame.
    let ctx = unsafe { &*arg.cast::<HandlerCtx>() };
    // SAFETY: as in on_frame.
    let am_header = unsafe { bytes_at(header, header_length) };
    if let Some(token) = wire::token_of(am_header) {
        ctx.registry.fail(
            token,
            FastPathError::Link {
                reason: "the peer closed its UCX link".into(),
            },
        );
    }
    sys::UCS_OK
}

unsafe extern "C" fn on_ep_error(arg: *mut c_void, _ep: sys::ucp_ep_h, status: sys::ucs_status_t) {
    // SAFETY: arg is the endpoint's EpCtx box, kept until its close has completed.
    let ep_id = unsafe { (*arg.cast::<EpCtx>()).ep_id };
    note(|e| e.failed_eps.push((ep_id, status)));
}

unsafe extern "C" fn on_send_done(
    req: *mut c_void,
    status: sys::ucs_status_t,
    user_data: *mut c_void,
) {
    // SAFETY: user_data is the SendCtx leaked by send(); UCX calls this once per request.
    let ctx = unsafe { Box::from_raw(user_data.cast::<SendCtx>()) };
    ctx.finish(status);
    // SAFETY: the request of this callback, freed once (UCX recycles it after we return).
    unsafe { ffi::request_free(req) };
}

unsafe extern "C" fn on_recv_done(
    req: *mut c_void,
    status: sys::ucs_status_t,
    _length: usize,
    user_data: *mut c_void,
) {
    // SAFETY: user_data is the RecvCtx leaked by fetch_rndv(); called once per request.
    let ctx = unsafe { Box::from_raw(user_data.cast::<RecvCtx>()) };
    ctx.finish(status);
    // SAFETY: as in on_send_done.
    unsafe { ffi::request_free(req) };
}

enum EpState {
    Open,
    /// Close notice in flight; force close when it completes or at the deadline.
    Draining(Instant),
}

struct Ep {
    raw: sys::ucp_ep_h,
    ctx: Box<EpCtx>,
    local: u64,
    remote: u64,
    state: EpState,
}

/// A force close in flight.
struct Closing {
    req: *mut c_void,
    ctx: Box<EpCtx>,
    deadline: Instant,
}

/// Start an I/O thread for `worker` and register its AM handlers (before any endpoint).
pub(crate) fn spawn(
    index: usize,
    worker: Worker,
    registry: Arc<Registry>,
    spin: Duration,
) -> Result<(Arc<ThreadHandle>, std::thread::JoinHandle<()>), TransportError> {
    let handler = Box::new(HandlerCtx {
        registry: registry.clone(),
    });
    let arg = (&*handler as *const HandlerCtx).cast_mut().cast::<c_void>();
    // SAFETY: the handler box moves into the loop, which drops it only after the worker.
    unsafe {
        worker.set_am_handler(wire::AM_FRAME, Some(on_frame), arg)?;
        worker.set_am_handler(wire::AM_CLOSE, Some(on_close_notice), arg)?;
    }
    let (tx, rx) = mpsc::channel();
    let (major, minor, _) = ffi::version();
    let handle = Arc::new(ThreadHandle {
        address: wire::encode_worker_address(worker.address(), (major, minor)),
        submit: Mutex::new(Some((tx, worker.signal_handle()))),
        queued: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let transfer = WorkerTransfer(worker);
    let thread_handle = handle.clone();
    let join = std::thread::Builder::new()
        .name(format!("ucx-io-{index}"))
        .spawn(move || {
            let transfer = transfer;
            let io = IoLoop {
                worker: Some(transfer.0),
                handler: Some(handler),
                rx,
                handle: thread_handle,
                registry,
                eps: HashMap::new(),
                closing: Vec::new(),
                spin,
            };
            io.run();
        })
        .map_err(|e| TransportError::io("spawning a UCX I/O thread", &e))?;
    Ok((handle, join))
}

struct IoLoop {
    /// Dropped (destroyed) before `handler`, which its AM callbacks point into.
    worker: Option<Worker>,
    handler: Option<Box<HandlerCtx>>,
    rx: mpsc::Receiver<Command>,
    handle: Arc<ThreadHandle>,
    registry: Arc<Registry>,
    eps: HashMap<u64, Ep>,
    closing: Vec<Closing>,
    spin: Duration,
}

impl IoLoop {
    fn worker(&self) -> &Worker {
        self.worker.as_ref().expect("worker lives until shutdown")
    }

    fn run(mut self) {
        loop {
            let mut busy = false;
            while self.worker().progress() {
                busy = true;
            }
            busy |= self.drain_commands();
            busy |= self.handle_events(false);
            self.poll_closing();
            if self.handle.stop.load(Ordering::Acquire) {
                break;
            }
            if busy {
                continue;
            }
            if !self.spin.is_zero() && self.spin_for_activity() {
                continue;
            }
            if self.worker().arm() == Armed::Busy {
                continue;
            }
            let timeout_ms = if self.closing.is_empty()
                && self.eps.values().all(|e| matches!(e.state, EpState::Open))
            {
                1000
            } else {
                10
            };
            let mut pfd = libc::pollfd {
                fd: self.worker().efd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        }
        self.shutdown();
    }

    /// Poll for up to the spin window; true as soon as anything happened (network
    /// progress, a queued command, a stop request).
    fn spin_for_activity(&self) -> bool {
        let until = Instant::now() + self.spin;
        while Instant::now() < until {
            if self.worker().progress()
                || self.handle.queued.load(Ordering::Acquire)
                || self.handle.stop.load(Ordering::Relaxed)
            {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }

    fn drain_commands(&mut self) -> bool {
        // Cleared before draining: a command queued after this sets it again.
        self.handle.queued.store(false, Ordering::Release);
        let mut any = false;
        while let Ok(cmd) = self.rx.try_recv() {
            any = true;
            match cmd {
                Command::Connect {
                    ep_id,
                    local,
                    remote,
                    address,
                    reply,
                } => self.connect(ep_id, local, remote, &address, reply),
                Command::Send {
                    ep_id,
                    frame,
                    reply,
                } => self.send(ep_id, frame, reply),
                Command::Close { ep_id } => self.begin_close(ep_id),
                Command::Describe { ep_id, reply } => {
                    let info = self.eps.get(&ep_id).map(|ep| {
                        // SAFETY: a live endpoint of this worker.
                        unsafe { self.worker().ep_info(ep.raw) }
                    });
                    let _ = reply.send(info);
                }
            }
        }
        any
    }

    fn connect(
        &mut self,
        ep_id: u64,
        local: u64,
        remote: u64,
        address: &[u8],
        reply: oneshot::Sender<Result<(), TransportError>>,
    ) {
        let (major, minor, _) = ffi::version();
        let address = match wire::decode_worker_address(address, (major, minor)) {
            Ok(a) => a,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let ctx = Box::new(EpCtx { ep_id });
        let arg = (&*ctx as *const EpCtx).cast_mut().cast::<c_void>();
        // SAFETY: the EpCtx box is kept with the endpoint until its close completes; the
        // address passed its envelope check (UCX itself does not validate it).
        match unsafe { self.worker().create_ep(address, Some(on_ep_error), arg) } {
            Ok(raw) => {
                self.eps.insert(
                    ep_id,
                    Ep {
                        raw,
                        ctx,
                        local,
                        remote,
                        state: EpState::Open,
                    },
                );
                if reply.send(Ok(())).is_err() {
                    // The connecting task gave up: nobody will use or close this endpoint.
                    self.force_close(ep_id);
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn send(
        &mut self,
        ep_id: u64,
        frame: RawFrame,
        reply: oneshot::Sender<Result<(), FastPathError>>,
    ) {
        let Some(ep) = self
            .eps
            .get(&ep_id)
            .filter(|e| matches!(e.state, EpState::Open))
        else {
            let _ = reply.send(Err(FastPathError::Link {
                reason: format!("UCX endpoint {ep_id} failed or was closed"),
            }));
            return;
        };
        let h = &frame.header;
        if h.header_len as usize != frame.head.len()
            || h.payload_len as usize != frame.payload.len()
        {
            let e = TransportError::UcxFrameLengths {
                header_len: h.header_len,
                head: frame.head.len(),
                payload_len: h.payload_len,
                payload: frame.payload.len(),
            };
            let _ = reply.send(Err(FastPathError::Link {
                reason: e.to_string(),
            }));
            return;
        }
        let placement = wire::placement(frame.head.len(), self.worker().max_am_header());
        let am_header = wire::encode_am_header(
            ep.remote,
            &frame.header,
            (placement == HeadPlacement::Header).then_some(&frame.head[..]),
        );
        let raw = ep.raw;
        let mut ctx = Box::new(SendCtx {
            am_header,
            frame: Some(frame),
            iov: [sys::ucp_dt_iov_t {
                buffer: std::ptr::null_mut(),
                length: 0,
            }; 2],
            done: SendDone::Reply(reply),
        });
        let data = {
            let frame = ctx.frame.as_ref().expect("just set");
            let mut parts: Vec<&Bytes> = Vec::with_capacity(2);
            if placement == HeadPlacement::Data && !frame.head.is_empty() {
                parts.push(&frame.head);
            }
            if !frame.payload.is_empty() {
                parts.push(&frame.payload);
            }
            match parts.as_slice() {
                [] => SendData::None,
                [one] => SendData::Contig(one.as_ptr(), one.len()),
                [a, b] => {
                    let iov = [
                        sys::ucp_dt_iov_t {
                            buffer: a.as_ptr().cast_mut().cast::<c_void>(),
                            length: a.len(),
                        },
                        sys::ucp_dt_iov_t {
                            buffer: b.as_ptr().cast_mut().cast::<c_void>(),
                            length: b.len(),
                        },
                    ];
                    ctx.iov = iov;
                    SendData::Iov(ctx.iov.as_ptr(), 2)
                }
                _ => unreachable!("at most two parts"),
            }
        };
        let header_ptr = ctx.am_header.as_ptr();
        let header_len = ctx.am_header.len();
        let user = Box::into_raw(ctx);
        // SAFETY: the header, data buffers and iov live in the SendCtx box (heap, stable
        // addresses) that stays alive until completion: reclaimed below when the call
        // finishes inline, by on_send_done otherwise. raw is a live, open endpoint.
        let started = unsafe {
            ffi::am_send(
                raw,
                wire::AM_FRAME,
                std::slice::from_raw_parts(header_ptr, header_len),
                data,
                Some(on_send_done),
                user.cast::<c_void>(),
            )
        };
        match started {
            Started::Pending(_) => {}
            Started::Done => {
                // SAFETY: completed inline: no callback will reclaim the box.
                unsafe { Box::from_raw(user) }.finish(sys::UCS_OK)
            }
            Started::Failed(status) => {
                // SAFETY: failed inline: no callback will reclaim the box.
                unsafe { Box::from_raw(user) }.finish(status)
            }
        }
    }

    /// Local close: tell the peer, then force-close once that went out (or at a deadline).
    fn begin_close(&mut self, ep_id: u64) {
        let Some(ep) = self.eps.get_mut(&ep_id) else {
            return;
        };
        if !matches!(ep.state, EpState::Open) {
            return;
        }
        ep.state = EpState::Draining(Instant::now() + CLOSE_NOTICE_GRACE);
        let raw = ep.raw;
        let ctx = Box::new(SendCtx {
            am_header: wire::encode_close(ep.remote),
            frame: None,
            iov: [sys::ucp_dt_iov_t {
                buffer: std::ptr::null_mut(),
                length: 0,
            }; 2],
            done: SendDone::CloseNotice { ep_id },
        });
        let header_ptr = ctx.am_header.as_ptr();
        let header_len = ctx.am_header.len();
        let user = Box::into_raw(ctx);
        // SAFETY: as in send(): the box holds the header until completion.
        let started = unsafe {
            ffi::am_send(
                raw,
                wire::AM_CLOSE,
                std::slice::from_raw_parts(header_ptr, header_len),
                SendData::None,
                Some(on_send_done),
                user.cast::<c_void>(),
            )
        };
        match started {
            Started::Pending(_) => {}
            Started::Done | Started::Failed(_) => {
                // SAFETY: finished inline: no callback will reclaim the box.
                unsafe { Box::from_raw(user) }.finish(sys::UCS_OK)
            }
        }
    }

    /// Force-close an endpoint now; its pending requests complete as cancelled.
    fn force_close(&mut self, ep_id: u64) {
        let Some(ep) = self.eps.remove(&ep_id) else {
            return;
        };
        // SAFETY: a live endpoint of this worker, removed from the table so closed once.
        match unsafe { ffi::close_ep_force(ep.raw) } {
            Started::Done | Started::Failed(_) => drop(ep.ctx),
            Started::Pending(req) => self.closing.push(Closing {
                req,
                ctx: ep.ctx,
                deadline: Instant::now() + CLOSE_DEADLINE,
            }),
        }
    }

    fn poll_closing(&mut self) {
        let now = Instant::now();
        self.closing.retain_mut(|c| {
            // SAFETY: req is a live close request, not yet freed.
            if unsafe { ffi::request_pending(c.req) } {
                if now < c.deadline {
                    return true;
                }
                tracing::warn!(
                    ep = c.ctx.ep_id,
                    "UCX endpoint close timed out; abandoning it"
                );
                // The error callback may still fire with this context: never free it.
                let ctx = std::mem::replace(&mut c.ctx, Box::new(EpCtx { ep_id: u64::MAX }));
                Box::leak(ctx);
            }
            // SAFETY: freed once; UCX releases an in-progress request when it completes.
            unsafe { ffi::request_free(c.req) };
            false
        });
        // Close notices that did not go out in time.
        let overdue: Vec<u64> = self
            .eps
            .iter()
            .filter(|(_, e)| matches!(e.state, EpState::Draining(d) if d <= now))
            .map(|(id, _)| *id)
            .collect();
        for ep_id in overdue {
            self.force_close(ep_id);
        }
    }

    /// Handle what callbacks noted. When `shutting_down`, rendezvous data is released
    /// instead of fetched and failures are not reported again.
    fn handle_events(&mut self, shutting_down: bool) -> bool {
        let events = EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()));
        let any = !events.failed_eps.is_empty()
            || !events.close_notice_done.is_empty()
            || !events.rndv.is_empty();
        for (ep_id, status) in events.failed_eps {
            if let Some(ep) = self.eps.get(&ep_id) {
                if !shutting_down && matches!(ep.state, EpState::Open) {
                    self.registry.fail(
                        ep.local,
                        FastPathError::Link {
                            reason: format!("UCX endpoint error: {}", ffi::status_message(status)),
                        },
                    );
                }
                self.force_close(ep_id);
            }
        }
        for ep_id in events.close_notice_done {
            self.force_close(ep_id);
        }
        for r in events.rndv {
            if shutting_down {
                // SAFETY: a descriptor held after UCS_INPROGRESS, used once.
                unsafe { ffi::am_data_release(self.worker(), r.desc) };
            } else {
                self.fetch_rndv(r);
            }
        }
        any
    }

    fn fetch_rndv(&mut self, r: PendingRndv) {
        let mut ctx = Box::new(RecvCtx {
            registry: self.registry.clone(),
            token: r.token,
            header: r.header,
            inline_head: r.inline_head,
            buf: vec![0u8; r.len],
        });
        let buf = ctx.buf.as_mut_ptr();
        let user = Box::into_raw(ctx);
        // SAFETY: desc is a rendezvous descriptor held after UCS_INPROGRESS, used once;
        // the buffer lives in the RecvCtx box until completion (reclaimed below when the
        // call finishes inline, by on_recv_done otherwise).
        let started = unsafe {
            ffi::am_recv_data(
                self.worker(),
                r.desc,
                buf,
                r.len,
                Some(on_recv_done),
                user.cast::<c_void>(),
            )
        };
        match started {
            Started::Pending(_) => {}
            Started::Done => {
                // SAFETY: completed inline: no callback will reclaim the box.
                unsafe { Box::from_raw(user) }.finish(sys::UCS_OK)
            }
            Started::Failed(status) => {
                // SAFETY: failed inline: no callback will reclaim the box.
                unsafe { Box::from_raw(user) }.finish(status)
            }
        }
    }

    fn shutdown(mut self) {
        // No more commands or signals: after this the worker may be destroyed.
        let pending = self.handle.submit.lock().take();
        drop(pending);
        // Queued commands are dropped: their reply channels close (the callers see it).
        while self.rx.try_recv().is_ok() {}
        let ids: Vec<u64> = self.eps.keys().copied().collect();
        for ep_id in ids {
            if let Some(ep) = self.eps.get(&ep_id) {
                if matches!(ep.state, EpState::Open) {
                    self.registry.fail(
                        ep.local,
                        FastPathError::Link {
                            reason: "UCX provider shut down".into(),
                        },
                    );
                }
            }
            self.force_close(ep_id);
        }
        let deadline = Instant::now() + CLOSE_DEADLINE;
        loop {
            while self.worker().progress() {}
            self.handle_events(true);
            self.poll_closing();
            if self.closing.is_empty() && self.eps.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!("UCX I/O thread shutdown deadline passed; abandoning endpoints");
                for c in self.closing.drain(..) {
                    Box::leak(c.ctx);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Destroy the worker, then free what its callbacks pointed to.
        drop(self.worker.take());
        drop(self.handler.take());
    }
}
