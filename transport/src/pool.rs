//! One connection per peer address, dialled on first use and re-dialled after failure.

use crate::conn::Connection;
use crate::error::TransportError;
use crate::transport::Transport;
use basalt_proto::Rpc;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// A connector keyed by address. Concurrent `get`s for the same address share one dial.
pub struct ConnectionPool<T: Transport> {
    transport: T,
    slots: Mutex<HashMap<T::Addr, Slot>>,
}

impl<T: Transport> std::fmt::Debug for ConnectionPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("peers", &self.slots.lock().len())
            .finish()
    }
}

impl<T: Transport> ConnectionPool<T> {
    /// A pool dialling with `transport`.
    pub fn new(transport: T) -> Self {
        ConnectionPool {
            transport,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The transport used to dial.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The open connection to `addr`, dialling a new one if there is none or it closed.
    pub async fn get(&self, addr: &T::Addr) -> Result<Connection, TransportError> {
        let slot = self.slots.lock().entry(addr.clone()).or_default().clone();
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        *guard = None;
        let conn = self.transport.connect(addr).await?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Forget the connection to `addr` (closing it when nobody else holds it).
    pub fn invalidate(&self, addr: &T::Addr) {
        let slot = self.slots.lock().remove(addr);
        if let Some(slot) = slot {
            if let Ok(mut g) = slot.try_lock() {
                g.take();
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
                    .map(|g| g.as_ref().is_some_and(|c| !c.is_closed()))
                    .unwrap_or(false)
            })
            .map(|(a, _)| a)
            .collect()
    }
}
