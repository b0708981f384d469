//! One connection per peer address, dialled on first use and re-dialled after failure,
//! with an exponential back-off between failed dials (a peer that refuses or is down is
//! not hammered; the back-off resets on the first successful dial).

use crate::backoff::{PeerBackoff, RedialBackoff};
use crate::conn::Connection;
use crate::error::TransportError;
use crate::transport::Transport;
use basalt_proto::Rpc;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

type Slot = Arc<tokio::sync::Mutex<SlotState>>;

#[derive(Default)]
struct SlotState {
    conn: Option<Connection>,
    backoff: PeerBackoff,
}

/// A connector keyed by address. Concurrent `get`s for the same address share one dial.
pub struct ConnectionPool<T: Transport> {
    transport: T,
    slots: Mutex<HashMap<T::Addr, Slot>>,
    backoff: RedialBackoff,
}

impl<T: Transport> std::fmt::Debug for ConnectionPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("peers", &self.slots.lock().len())
            .finish()
    }
}

impl<T: Transport> ConnectionPool<T> {
    /// A pool dialling with `transport`, with the default [`RedialBackoff`] (50 ms
    /// doubling up to 1 s: a restarted peer is found again within a second).
    pub fn new(transport: T) -> Self {
        ConnectionPool {
            transport,
            slots: Mutex::new(HashMap::new()),
            backoff: RedialBackoff::default(),
        }
    }

    /// Use this re-dial back-off.
    pub fn with_backoff(mut self, backoff: RedialBackoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The transport used to dial.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The open connection to `addr`, dialling a new one if there is none or it closed.
    /// Within the back-off window after a failed dial, fails at once with that dial's
    /// error instead of dialling again.
    pub async fn get(&self, addr: &T::Addr) -> Result<Connection, TransportError> {
        let slot = self.slots.lock().entry(addr.clone()).or_default().clone();
        let mut guard = slot.lock().await;
        if let Some(c) = guard.conn.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        guard.conn = None;
        guard.backoff.check(tokio::time::Instant::now())?;
        match self.transport.connect(addr).await {
            Ok(conn) => {
                guard.backoff.succeeded();
                guard.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let wait =
                    guard
                        .backoff
                        .failed(&self.backoff, tokio::time::Instant::now(), e.clone());
                tracing::debug!(%addr, error = %e, wait_ms = wait.as_millis() as u64, "dial failed, backing off");
                Err(e)
            }
        }
    }

    /// Forget the connection to `addr` (closing it when nobody else holds it).
    pub fn invalidate(&self, addr: &T::Addr) {
        let slot = self.slots.lock().remove(addr);
        if let Some(slot) = slot {
            if let Ok(mut g) = slot.try_lock() {
                g.conn.take();
            }
        }
    }

    /// Call over the pooled connection to `addr`. A connection that fails with
    /// `PeerGone` is dropped from the pool; the error is returned (no retry here).
    pub async fn call<R: Rpc>(
        &self,
        addr: &T::Addr,
        req: &R,
        payload: Bytes,
    ) -> Result<(R::Reply, Bytes), TransportError> {
        let conn = self.get(addr).await?;
        let r = conn.call(req, payload).await;
        if matches!(r, Err(TransportError::PeerGone { .. })) {
            self.invalidate(addr);
        }
        r
    }

    /// Addresses with an open connection.
    pub fn connected(&self) -> Vec<T::Addr> {
        let slots: Vec<_> = self
            .slots
            .lock()
            .iter()
            .map(|(a, s)| (a.clone(), s.clone()))
            .collect();
        slots
            .into_iter()
            .filter(|(_, s)| {
                s.try_lock()
                    .map(|g| g.conn.as_ref().is_some_and(|c| !c.is_closed()))
                    .unwrap_or(false)
            })
            .map(|(a, _)| a)
            .collect()
    }
}
