//! A served address: its connections, in-flight handler count and graceful shutdown.

use crate::conn::ConnInner;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// State shared by a server's accept loop and its connections.
pub(crate) struct ServerShared {
    draining: AtomicBool,
    closed: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
    conns: Mutex<HashMap<u64, Arc<ConnInner>>>,
}

/// Held while a request of a server connection is being handled.
pub(crate) struct ActiveRequest(Arc<ServerShared>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl ServerShared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ServerShared {
            draining: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            conns: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn begin_request(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveRequest(self.clone())
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Track a new connection; false when the server already closed (the caller closes it).
    pub(crate) fn register(&self, conn: &Arc<ConnInner>) -> bool {
        let mut conns = self.conns.lock();
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        conns.insert(conn.id, conn.clone());
        true
    }

    pub(crate) fn unregister(&self, id: u64) {
        let removed = self.conns.lock().remove(&id);
        drop(removed);
    }

    fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.active.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn close_all(&self, reason: &str, flush: bool) {
        let conns: Vec<_> = {
            let mut conns = self.conns.lock();
            self.closed.store(true, Ordering::Release);
            conns.drain().map(|(_, c)| c).collect()
        };
        for c in conns {
            if flush {
                c.close_flushing(reason);
            } else {
                c.close(reason);
            }
        }
    }
}

/// A running server. Dropping it stops accepting and closes its connections at once;
/// [`ServerHandle::shutdown`] lets in-flight requests finish first.
pub struct ServerHandle<A> {
    local_addr: A,
    shared: Arc<ServerShared>,
    accept_task: Option<JoinHandle<()>>,
    on_stop: Option<Box<dyn FnOnce() + Send>>,
    grace: Duration,
}

impl<A: std::fmt::Debug> std::fmt::Debug for ServerHandle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.shared.connection_count())
            .finish()
    }
}

impl<A: Clone> ServerHandle<A> {
    pub(crate) fn new(
        local_addr: A,
        shared: Arc<ServerShared>,
        accept_task: JoinHandle<()>,
        on_stop: Option<Box<dyn FnOnce() + Send>>,
        grace: Duration,
    ) -> Self {
        ServerHandle {
            local_addr,
            shared,
            accept_task: Some(accept_task),
            on_stop,
            grace,
        }
    }

    /// The address the server listens on (the bound port when asked for port 0).
    pub fn local_addr(&self) -> A {
        self.local_addr.clone()
    }

    /// Connections currently open.
    pub fn connection_count(&self) -> usize {
        self.shared.connection_count()
    }

    fn stop_accepting(&mut self) {
        if let Some(t) = self.accept_task.take() {
            t.abort();
        }
        if let Some(f) = self.on_stop.take() {
            f();
        }
    }

    /// Stop accepting, answer new requests with `RemoteError::ShuttingDown`, wait (up to
    /// `shutdown-grace-ms`) for in-flight handlers, then close every connection.
    pub async fn shutdown(mut self) {
        self.stop_accepting();
        self.shared.draining.store(true, Ordering::Release);
        if tokio::time::timeout(self.grace, self.shared.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!("server shutdown: handlers still running after the grace period");
        }
        let conns: Vec<_> = self.shared.conns.lock().values().cloned().collect();
        futures::future::join_all(conns.iter().map(|c| c.fast_path_barrier())).await;
        self.shared.close_all("server shut down", true);
    }
}

impl<A> Drop for ServerHandle<A> {
    fn drop(&mut self) {
        if let Some(t) = self.accept_task.take() {
            t.abort();
        }
        if let Some(f) = self.on_stop.take() {
            f();
        }
        self.shared.close_all("server dropped", false);
    }
}
