//! Completion queues: I/O submitted with a queue and a tag completes into the queue;
//! `basalt_client_poll` takes completed (tag, result) pairs out.

use super::errors::{Failure, BASALT_CLIENT_EBUSY};
use super::guard;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::ffi::c_int;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One completed I/O.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct basalt_client_event_t {
    /// The tag given at submission.
    pub tag: u64,
    /// Bytes transferred (the request's length; 0 for flush), or a negative
    /// `BASALT_CLIENT_E*` code.
    pub result: i64,
}

#[derive(Default)]
struct State {
    done: VecDeque<basalt_client_event_t>,
    /// Submitted, not yet completed.
    pending: usize,
}

/// The queue proper, shared by its handle and the I/O that will complete into it.
#[derive(Default)]
pub(crate) struct CqShared {
    state: Mutex<State>,
    ready: Condvar,
}

impl CqShared {
    /// An I/O will complete here.
    pub(crate) fn expect_one(&self) {
        self.state.lock().pending += 1;
    }

    /// Undo `expect_one` for an I/O that was not submitted after all.
    pub(crate) fn forget_one(&self) {
        let mut st = self.state.lock();
        st.pending = st.pending.saturating_sub(1);
    }

    /// An I/O completed.
    pub(crate) fn push(&self, ev: basalt_client_event_t) {
        let mut st = self.state.lock();
        st.pending = st.pending.saturating_sub(1);
        st.done.push_back(ev);
        drop(st);
        self.ready.notify_one();
    }

    /// Wait until at least one event is ready (or `timeout`; `None` waits for ever),
    /// then move up to `out.len()` of them into `out`.
    pub(crate) fn poll(
        &self,
        out: &mut [basalt_client_event_t],
        timeout: Option<Duration>,
    ) -> usize {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.state.lock();
        while st.done.is_empty() {
            match deadline {
                None => self.ready.wait(&mut st),
                Some(d) => {
                    if Instant::now() >= d || self.ready.wait_until(&mut st, d).timed_out() {
                        break;
                    }
                }
            }
        }
        let n = out.len().min(st.done.len());
        for (slot, ev) in out.iter_mut().zip(st.done.drain(..n)) {
            *slot = ev;
        }
        if !st.done.is_empty() {
            // another poller may take the rest
            self.ready.notify_one();
        }
        n
    }

    fn pending(&self) -> usize {
        self.state.lock().pending
    }
}

/// A completion queue handle.
#[allow(non_camel_case_types)]
pub struct basalt_cq_t {
    pub(crate) shared: Arc<CqShared>,
}

/// Create a completion queue. Any number of volumes (of any client) may complete into
/// one queue. Release it with `basalt_client_cq_destroy`.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_cq_create(out: *mut *mut basalt_cq_t) -> c_int {
    guard::status(|| {
        guard::out(out, "out")?;
        let cq = Box::new(basalt_cq_t {
            shared: Arc::default(),
        });
        // SAFETY: non-NULL and writable (caller contract).
        unsafe { out.write(Box::into_raw(cq)) };
        Ok(())
    })
}

/// Release a completion queue. Fails with `BASALT_CLIENT_EBUSY` (releasing nothing) while
/// I/O submitted to it has not completed; completed events not yet polled are dropped.
/// NULL is a no-op returning 0.
///
/// # Safety
/// `cq` is NULL or a live handle from `basalt_client_cq_create`, not used by other
/// threads during the call.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_cq_destroy(cq: *mut basalt_cq_t) -> c_int {
    guard::status(|| {
        if cq.is_null() {
            return Ok(());
        }
        // SAFETY: non-NULL live handle (caller contract).
        let pending = unsafe { &*cq }.shared.pending();
        if pending != 0 {
            return Err(Failure::new(
                BASALT_CLIENT_EBUSY,
                format!("{pending} I/O(s) still pending on this queue"),
            ));
        }
        // SAFETY: from Box::into_raw in basalt_client_cq_create, released once.
        drop(unsafe { Box::from_raw(cq) });
        Ok(())
    })
}

/// Take up to `max` completed I/Os from `cq` into `events`. Waits until at least one is
/// ready, for at most `timeout_us` microseconds (0: do not wait; negative: wait without
/// bound). Returns how many were stored (0 on timeout), or a negative code. Several
/// threads may poll one queue; each event is returned once.
///
/// # Safety
/// `cq` is a live queue handle; `events` points to at least `max` writable events.
#[no_mangle]
pub unsafe extern "C" fn basalt_client_poll(
    cq: *mut basalt_cq_t,
    events: *mut basalt_client_event_t,
    max: u32,
    timeout_us: i64,
) -> c_int {
    let mut got = 0usize;
    let st = guard::status(|| {
        // SAFETY: NULL is refused; otherwise a live handle (caller contract).
        let cq = unsafe { guard::arg(cq, "cq") }?;
        guard::out(events, "events")?;
        if max == 0 {
            return Err(Failure::invalid("max is 0"));
        }
        if timeout_us != 0 {
            guard::not_on_library_thread("basalt_client_poll with a timeout")?;
        }
        let timeout = u64::try_from(timeout_us).ok().map(Duration::from_micros);
        // SAFETY: non-NULL, and the caller guarantees room for `max` events.
        let out = unsafe { std::slice::from_raw_parts_mut(events, max as usize) };
        got = cq.shared.poll(out, timeout);
        Ok(())
    });
    if st != 0 {
        return st;
    }
    // at most u32::MAX events fit; report it as a non-negative int
    got.min(c_int::MAX as usize) as c_int
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tag: u64) -> basalt_client_event_t {
        basalt_client_event_t {
            tag,
            result: tag as i64,
        }
    }

    #[test]
    fn events_come_out_in_order_up_to_max() {
        let q = CqShared::default();
        for t in 0..5 {
            q.expect_one();
            q.push(ev(t));
        }
        let mut out = [basalt_client_event_t::default(); 3];
        assert_eq!(q.poll(&mut out, Some(Duration::ZERO)), 3);
        assert_eq!(out.map(|e| e.tag), [0, 1, 2]);
        assert_eq!(q.poll(&mut out, Some(Duration::ZERO)), 2);
        assert_eq!(out[..2].iter().map(|e| e.tag).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(q.poll(&mut out, Some(Duration::from_millis(5))), 0);
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn a_waiting_poll_wakes_on_completion() {
        let q = Arc::new(CqShared::default());
        q.expect_one();
        let pusher = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                q.push(ev(42));
            })
        };
        let mut out = [basalt_client_event_t::default(); 4];
        let n = q.poll(&mut out, Some(Duration::from_secs(10)));
        assert_eq!((n, out[0].tag), (1, 42));
        pusher.join().unwrap();
    }

    #[test]
    fn destroy_refuses_while_io_is_pending() {
        let mut cq: *mut basalt_cq_t = std::ptr::null_mut();
        // SAFETY: `cq` is a writable local.
        assert_eq!(unsafe { basalt_client_cq_create(&mut cq) }, 0);
        // SAFETY: `cq` is the live handle just created.
        let shared = unsafe { &*cq }.shared.clone();
        shared.expect_one();
        // SAFETY: live handle; refused, so still live afterwards.
        assert_eq!(unsafe { basalt_client_cq_destroy(cq) }, BASALT_CLIENT_EBUSY);
        shared.push(ev(1));
        let mut out = [basalt_client_event_t::default(); 1];
        // SAFETY: live handle, `out` has room for one event.
        assert_eq!(unsafe { basalt_client_poll(cq, out.as_mut_ptr(), 1, 0) }, 1);
        // SAFETY: live handle, released here once.
        assert_eq!(unsafe { basalt_client_cq_destroy(cq) }, 0);
    }
}
