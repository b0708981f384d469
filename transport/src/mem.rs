//! The in-process transport: same connections, hello and dispatch as TCP, frames passed
//! through channels, with fault filters switchable at runtime (drop, delay, partition,
//! isolate, per method) and abrupt endpoint death. For tests and simulation.

use crate::config::TransportOptions;
use crate::conn::{BaseTx, ConnInner, ConnParts, Connection, Endpoint, Side};
use crate::error::TransportError;
use crate::fastpath::RawFrame;
use crate::handshake::{self, FrameIo};
use crate::metrics::TransportMetrics;
use crate::path::PathKind;
use crate::router::Router;
use crate::server::{ServerHandle, ServerShared};
use crate::transport::Transport;
use basalt_proto::Method;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What a matching fault rule does to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// The frame vanishes.
    Drop,
    /// The frame arrives this much later (order among delayed frames is not kept).
    Delay(Duration),
}

/// A filter on frames between endpoints. `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Sending endpoint's node name.
    pub from: Option<String>,
    /// Receiving endpoint's node name.
    pub to: Option<String>,
    /// Method of the frame.
    pub method: Option<Method>,
    /// What happens to matching frames.
    pub action: FaultAction,
}

impl FaultRule {
    fn matches(&self, from: &str, to: &str, method: u16) -> bool {
        self.from.as_deref().is_none_or(|f| f == from)
            && self.to.as_deref().is_none_or(|t| t == to)
            && self.method.is_none_or(|m| m as u16 == method)
    }
}

/// Handle to installed fault rules, to remove them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

struct Listener {
    node: Arc<str>,
    tx: mpsc::Sender<Incoming>,
}

struct Incoming {
    from_node: Arc<str>,
    tx: MemTx,
    rx: mpsc::Receiver<RawFrame>,
}

#[derive(Default)]
struct NetInner {
    listeners: Mutex<HashMap<String, Listener>>,
    rules: RwLock<Vec<(FaultId, FaultRule)>>,
    next_id: AtomicU64,
    killed: Mutex<HashMap<String, watch::Sender<bool>>>,
}

impl NetInner {
    fn verdict(&self, from: &str, to: &str, method: u16) -> Option<FaultAction> {
        let rules = self.rules.read();
        rules
            .iter()
            .find(|(_, r)| r.matches(from, to, method))
            .map(|(_, r)| r.action)
    }

    fn kill_switch(&self, node: &str) -> watch::Receiver<bool> {
        self.killed
            .lock()
            .entry(node.to_string())
            .or_insert_with(|| watch::channel(false).0)
            .subscribe()
    }
}

/// An in-process network of named endpoints. Cheap to clone.
#[derive(Clone, Default)]
pub struct MemNetwork {
    inner: Arc<NetInner>,
}

impl std::fmt::Debug for MemNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemNetwork")
            .field("listeners", &self.inner.listeners.lock().len())
            .field("rules", &self.inner.rules.read().len())
            .finish()
    }
}

impl MemNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// An endpoint (one simulated process) named `node`.
    pub fn endpoint(
        &self,
        node: &str,
        opts: TransportOptions,
    ) -> Result<MemTransport, TransportError> {
        Ok(MemTransport {
            net: self.clone(),
            node: node.into(),
            ep: Endpoint::new(opts)?,
            killed: self.inner.kill_switch(node),
        })
    }

    /// Install rules together; returns their handle.
    pub fn add_faults(&self, rules: Vec<FaultRule>) -> FaultId {
        let id = FaultId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let mut all = self.inner.rules.write();
        for r in rules {
            all.push((id, r));
        }
        id
    }

    /// Install one rule.
    pub fn add_fault(&self, rule: FaultRule) -> FaultId {
        self.add_faults(vec![rule])
    }

    /// Remove the rules installed under `id`.
    pub fn remove_faults(&self, id: FaultId) {
        self.inner.rules.write().retain(|(i, _)| *i != id);
    }

    /// Remove every rule.
    pub fn clear_faults(&self) {
        self.inner.rules.write().clear();
    }

    /// Drop every frame between `a` and `b`, both ways.
    pub fn partition(&self, a: &str, b: &str) -> FaultId {
        let rule = |from: &str, to: &str| FaultRule {
            from: Some(from.into()),
            to: Some(to.into()),
            method: None,
            action: FaultAction::Drop,
        };
        self.add_faults(vec![rule(a, b), rule(b, a)])
    }

    /// Drop every frame to or from `node`.
    pub fn isolate(&self, node: &str) -> FaultId {
        self.add_faults(vec![
            FaultRule {
                from: Some(node.into()),
                to: None,
                method: None,
                action: FaultAction::Drop,
            },
            FaultRule {
                from: None,
                to: Some(node.into()),
                method: None,
                action: FaultAction::Drop,
            },
        ])
    }

    /// Kill `node` as if its process died: its listeners vanish, its connections close
    /// (peers see the connection go), and its transport refuses further use.
    pub fn kill(&self, node: &str) {
        self.inner.listeners.lock().retain(|_, l| &*l.node != node);
        let tx = self
            .inner
            .killed
            .lock()
            .entry(node.to_string())
            .or_insert_with(|| watch::channel(false).0)
            .clone();
        tx.send_replace(true);
    }
}

/// Outbound channel of a connection, through the network's fault filter.
#[derive(Clone)]
pub(crate) struct MemTx {
    net: Arc<NetInner>,
    tx: mpsc::Sender<RawFrame>,
    from: Arc<str>,
    to: Arc<str>,
}

impl MemTx {
    pub(crate) async fn send(&self, frame: RawFrame) -> Result<(), ()> {
        match self.net.verdict(&self.from, &self.to, frame.header.method) {
            None => self.tx.send(frame).await.map_err(|_| ()),
            Some(FaultAction::Drop) => Ok(()),
            Some(FaultAction::Delay(d)) => {
                if self.tx.is_closed() {
                    return Err(());
                }
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = tx.send(frame).await;
                });
                Ok(())
            }
        }
    }
}

struct MemIo<'a> {
    tx: &'a MemTx,
    rx: &'a mut mpsc::Receiver<RawFrame>,
}

impl FrameIo for MemIo<'_> {
    async fn send(&mut self, frame: RawFrame) -> Result<(), TransportError> {
        self.tx
            .send(frame)
            .await
            .map_err(|()| TransportError::peer_gone("closed during the hello"))
    }

    async fn recv(&mut self) -> Result<RawFrame, TransportError> {
        self.rx
            .recv()
            .await
            .ok_or_else(|| TransportError::peer_gone("closed during the hello"))
    }
}

/// One endpoint of a [`MemNetwork`]. Cheap to clone.
#[derive(Clone)]
pub struct MemTransport {
    net: MemNetwork,
    node: Arc<str>,
    ep: Arc<Endpoint>,
    killed: watch::Receiver<bool>,
}

impl std::fmt::Debug for MemTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemTransport")
            .field("node", &self.node)
            .finish()
    }
}

impl MemTransport {
    /// This endpoint's node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// This endpoint's counters.
    pub fn metrics(&self) -> &TransportMetrics {
        &self.ep.opts.metrics
    }

    fn check_alive(&self) -> Result<(), TransportError> {
        if *self.killed.borrow() {
            return Err(TransportError::Shutdown);
        }
        Ok(())
    }

    /// Dial the endpoint serving `addr`.
    pub async fn connect(&self, addr: &str) -> Result<Connection, TransportError> {
        self.check_alive()?;
        let (listener_tx, server_node) = {
            let listeners = self.net.inner.listeners.lock();
            let l = listeners
                .get(addr)
                .ok_or_else(|| TransportError::Unreachable {
                    addr: addr.to_string(),
                })?;
            (l.tx.clone(), l.node.clone())
        };
        let cap = self.ep.opts.config.send_queue_frames;
        let (c2s_tx, c2s_rx) = mpsc::channel(cap);
        let (s2c_tx, mut s2c_rx) = mpsc::channel(cap);
        let to_server = MemTx {
            net: self.net.inner.clone(),
            tx: c2s_tx,
            from: self.node.clone(),
            to: server_node.clone(),
        };
        let to_client = MemTx {
            net: self.net.inner.clone(),
            tx: s2c_tx,
            from: server_node,
            to: self.node.clone(),
        };
        listener_tx
            .send(Incoming {
                from_node: self.node.clone(),
                tx: to_client,
                rx: c2s_rx,
            })
            .await
            .map_err(|_| TransportError::Unreachable {
                addr: addr.to_string(),
            })?;
        let hello_timeout = self.ep.opts.config.hello_timeout();
        let mut io = MemIo {
            tx: &to_server,
            rx: &mut s2c_rx,
        };
        let negotiated = tokio::time::timeout(hello_timeout, handshake::dial(&self.ep, &mut io))
            .await
            .map_err(|_| TransportError::Timeout {
                elapsed_ms: hello_timeout.as_millis() as u64,
            })??;
        let inner = start_connection(
            &self.ep,
            to_server,
            s2c_rx,
            addr.to_string(),
            Side::Dialler,
            negotiated,
            None,
            None,
            self.killed.clone(),
        );
        // the handle first: if this future is dropped during the upgrade, the
        // connection closes instead of lingering without an owner
        let conn = Connection::new(inner.clone());
        inner.upgrade().await;
        Ok(conn)
    }

    /// Serve `router` at `addr` (any name not yet served on this network).
    pub async fn serve(
        &self,
        addr: &str,
        router: Router,
    ) -> Result<ServerHandle<String>, TransportError> {
        self.check_alive()?;
        let (tx, mut rx) = mpsc::channel::<Incoming>(64);
        {
            let mut listeners = self.net.inner.listeners.lock();
            if listeners.contains_key(addr) {
                return Err(TransportError::Io {
                    op: "bind",
                    kind: std::io::ErrorKind::AddrInUse,
                    message: format!("{addr} is already served"),
                });
            }
            listeners.insert(
                addr.to_string(),
                Listener {
                    node: self.node.clone(),
                    tx,
                },
            );
        }
        let shared = ServerShared::new();
        let router = Arc::new(router);
        let ep = self.ep.clone();
        let killed = self.killed.clone();
        let task_shared = shared.clone();
        let accept_task = tokio::spawn(async move {
            while let Some(incoming) = rx.recv().await {
                let ep = ep.clone();
                let router = router.clone();
                let shared = task_shared.clone();
                let killed = killed.clone();
                tokio::spawn(accept_one(ep, incoming, router, shared, killed));
            }
        });
        let net = self.net.inner.clone();
        let name = addr.to_string();
        let node = self.node.clone();
        let on_stop = Box::new(move || {
            let mut listeners = net.listeners.lock();
            if listeners.get(&name).is_some_and(|l| l.node == node) {
                listeners.remove(&name);
            }
        });
        Ok(ServerHandle::new(
            addr.to_string(),
            shared,
            accept_task,
            Some(on_stop),
            self.ep.opts.config.shutdown_grace(),
        ))
    }
}

async fn accept_one(
    ep: Arc<Endpoint>,
    incoming: Incoming,
    router: Arc<Router>,
    shared: Arc<ServerShared>,
    killed: watch::Receiver<bool>,
) {
    let Incoming {
        from_node,
        tx,
        mut rx,
    } = incoming;
    let hello_timeout = ep.opts.config.hello_timeout();
    let mut io = MemIo {
        tx: &tx,
        rx: &mut rx,
    };
    let negotiated =
        match tokio::time::timeout(hello_timeout, handshake::accept(&ep, &mut io)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::debug!(peer = %from_node, error = %e, "hello failed, closing");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %from_node, "no hello in time, closing");
                return;
            }
        };
    let inner = start_connection(
        &ep,
        tx,
        rx,
        from_node.to_string(),
        Side::Acceptor,
        negotiated,
        Some(router),
        Some(shared),
        killed,
    );
    let task = tokio::spawn(inner.clone().upgrade());
    inner.add_task(task);
}

#[allow(clippy::too_many_arguments)]
fn start_connection(
    ep: &Arc<Endpoint>,
    tx: MemTx,
    rx: mpsc::Receiver<RawFrame>,
    peer_addr: String,
    side: Side,
    negotiated: handshake::Negotiated,
    router: Option<Arc<Router>>,
    server: Option<Arc<ServerShared>>,
    killed: watch::Receiver<bool>,
) -> Arc<ConnInner> {
    let inner = ConnInner::new(ConnParts {
        ep: ep.clone(),
        side,
        base_kind: PathKind::Mem,
        base: BaseTx::Mem(tx),
        peer: negotiated.peer,
        peer_addr,
        features: negotiated.features,
        router,
        server,
        fast: negotiated.fast,
    });
    inner.add_task(tokio::spawn(reader_loop(inner.clone(), rx, killed)));
    inner
}

async fn reader_loop(
    inner: Arc<ConnInner>,
    mut rx: mpsc::Receiver<RawFrame>,
    mut killed: watch::Receiver<bool>,
) {
    let dead = async move {
        if killed.wait_for(|k| *k).await.is_err() {
            // the network is gone; only the peer can end this connection now
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(dead);
    loop {
        tokio::select! {
            f = rx.recv() => match f {
                Some(frame) => {
                    inner.on_inbound(frame, PathKind::Mem).await;
                    if inner.is_closed() {
                        return;
                    }
                }
                None => {
                    inner.close("peer closed the connection");
                    return;
                }
            },
            () = &mut dead => {
                inner.close("endpoint killed");
                return;
            }
        }
    }
}

impl Transport for MemTransport {
    type Addr = String;

    async fn connect(&self, addr: &String) -> Result<Connection, TransportError> {
        MemTransport::connect(self, addr).await
    }

    async fn serve(
        &self,
        addr: &String,
        router: Router,
    ) -> Result<ServerHandle<String>, TransportError> {
        MemTransport::serve(self, addr, router).await
    }

    fn metrics(&self) -> &TransportMetrics {
        MemTransport::metrics(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_on_every_given_field() {
        let r = FaultRule {
            from: Some("a".into()),
            to: None,
            method: Some(Method::Echo),
            action: FaultAction::Drop,
        };
        assert!(r.matches("a", "b", Method::Echo as u16));
        assert!(r.matches("a", "c", Method::Echo as u16));
        assert!(!r.matches("b", "a", Method::Echo as u16));
        assert!(!r.matches("a", "b", Method::Ping as u16));
        let net = MemNetwork::new();
        let p = net.partition("x", "y");
        assert_eq!(
            net.inner.verdict("y", "x", Method::Hello as u16),
            Some(FaultAction::Drop)
        );
        assert_eq!(net.inner.verdict("x", "z", Method::Hello as u16), None);
        net.remove_faults(p);
        assert_eq!(net.inner.verdict("y", "x", Method::Hello as u16), None);
    }
}
