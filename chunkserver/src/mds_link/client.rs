//! Calls to the active MDS among several addresses.
//!
//! A standby answers `NotLeader { leader }`: the call follows the hint at once. An
//! unreachable address, a timeout or an election in progress moves on to the next address.
//! One [`MdsClient::call`] makes at most a bounded number of attempts and never sleeps;
//! the callers (registration, heartbeat loop) decide when to try again.

use crate::error::{ChunkServerError, Result};
use basalt_proto::status::MdsError;
use basalt_proto::Rpc;
use basalt_transport::{ConnectionPool, TcpTransport, TransportError};
use bytes::Bytes;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::time::Duration;

/// Which MDS address to try, following redirects (sans-IO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    addrs: Vec<SocketAddr>,
    current: usize,
}

impl Targets {
    /// The configured addresses (at least one).
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        Targets { addrs, current: 0 }
    }

    /// The address to try now.
    pub fn current(&self) -> Option<SocketAddr> {
        self.addrs.get(self.current).copied()
    }

    /// Number of known addresses.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// No address known.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// A standby named the active MDS: go there next (learning the address if new).
    pub fn follow(&mut self, leader: SocketAddr) {
        self.current = match self.addrs.iter().position(|a| *a == leader) {
            Some(i) => i,
            None => {
                self.addrs.push(leader);
                self.addrs.len() - 1
            }
        };
    }

    /// The current address did not help: try the next one.
    pub fn advance(&mut self) {
        if !self.addrs.is_empty() {
            self.current = (self.current + 1) % self.addrs.len();
        }
    }
}

/// A client of the MDS group over the chunkserver's transport.
pub struct MdsClient {
    pool: ConnectionPool<TcpTransport>,
    targets: Mutex<Targets>,
    timeout: Duration,
}

impl MdsClient {
    /// Calls through `transport` to the MDS at `addrs`, each call bounded by `timeout`.
    pub fn new(transport: TcpTransport, addrs: Vec<SocketAddr>, timeout: Duration) -> Self {
        MdsClient {
            pool: ConnectionPool::new(transport),
            targets: Mutex::new(Targets::new(addrs)),
            timeout,
        }
    }

    /// The address the next call goes to first.
    pub fn current(&self) -> Option<SocketAddr> {
        self.targets.lock().current()
    }

    /// Call the active MDS: each address at most once, plus followed redirects.
    /// `MdsUnavailable` when none answered; `MdsRefused` when the active one refused.
    pub async fn call<R, X>(&self, req: &R) -> Result<X>
    where
        R: Rpc<Reply = std::result::Result<X, MdsError>>,
    {
        let n = self.targets.lock().len();
        // Every address once, and a redirect after each.
        for _ in 0..2 * n {
            let Some(addr) = self.targets.lock().current() else {
                break;
            };
            let answer =
                match tokio::time::timeout(self.timeout, self.pool.call(&addr, req, Bytes::new()))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(TransportError::Timeout {
                        elapsed_ms: self.timeout.as_millis() as u64,
                    }),
                };
            match answer {
                Ok((Ok(x), _)) => return Ok(x),
                Ok((Err(MdsError::NotLeader { leader: Some(l) }), _)) if l != addr => {
                    tracing::debug!(mds = %addr, leader = %l, "following the active MDS");
                    self.targets.lock().follow(l);
                }
                Ok((Err(MdsError::NotLeader { .. } | MdsError::StoreUnavailable), _)) => {
                    self.targets.lock().advance();
                }
                Ok((Err(e), _)) => return Err(ChunkServerError::MdsRefused { source: e }),
                Err(e) => {
                    tracing::debug!(mds = %addr, error = %e, "MDS call failed");
                    self.pool.invalidate(&addr);
                    self.targets.lock().advance();
                }
            }
        }
        Err(ChunkServerError::MdsUnavailable { tried: n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn follows_redirects_and_rotates() {
        let mut t = Targets::new(vec![a(1), a(2)]);
        assert_eq!(t.current(), Some(a(1)));
        t.advance();
        assert_eq!(t.current(), Some(a(2)));
        t.advance();
        assert_eq!(t.current(), Some(a(1)));
        t.follow(a(2));
        assert_eq!(t.current(), Some(a(2)));
        // An active MDS that was not configured is learned.
        t.follow(a(3));
        assert_eq!((t.current(), t.len()), (Some(a(3)), 3));
        t.advance();
        assert_eq!(t.current(), Some(a(1)));
        let mut empty = Targets::new(vec![]);
        empty.advance();
        assert_eq!(empty.current(), None);
        assert!(empty.is_empty());
    }
}
