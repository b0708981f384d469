//! Free loopback ports.

use super::error::{io, Result};
use std::net::TcpListener;

/// `n` distinct free loopback ports (never etcd's well-known 2379/2380). All listeners are
/// held until every port is chosen, so the ports are distinct; another process may still
/// take one before the daemon binds it (the daemon then fails to start and says so).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let l = TcpListener::bind("127.0.0.1:0").map_err(io("bind", "127.0.0.1:0"))?;
        let port = l
            .local_addr()
            .map_err(io("local_addr", "127.0.0.1:0"))?
            .port();
        held.push(l);
        if port != 2379 && port != 2380 {
            ports.push(port);
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let mut p = free_ports(8).unwrap();
        assert_eq!(p.len(), 8);
        for &port in &p {
            TcpListener::bind(("127.0.0.1", port)).expect("free again once released");
        }
        p.sort_unstable();
        p.dedup();
        assert_eq!(p.len(), 8);
    }
}
