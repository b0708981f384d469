//! A small test network for the network fault tests: a bridge in the current (root)
//! namespace with an address the MDSs, etcd's clients and the test's client use, and one
//! network namespace per chunkserver, joined to the bridge by a veth pair and given its
//! own address. Faults are iptables rules inside a chunkserver's namespace: a partition
//! drops everything to and from chosen addresses, packet loss drops a random share
//! (`-m statistic --mode random`; these kernels have no netem).
//!
//! Names carry this process's pid (`basalt-<pid>-<i>` namespaces, `bsbr<pid>` bridge,
//! `bsv<pid>x<i>` veths) and the subnet `10.77.x.0/24` is one no interface uses yet, so
//! concurrent runs do not collide. Dropping the [`NetLab`] deletes everything it made,
//! also when the test panics; leftovers of a run that was killed outright are swept by
//! the next [`NetLab::create`] (names whose pid no longer runs). Needs root.

use crate::cluster::{ChunkserverNet, NetworkLayout};
use crate::host::{find_program, run, HostError};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// First octets of every test subnet (`10.77.x.0/24`).
const NET_PREFIX: [u8; 2] = [10, 77];
/// Host part of the bridge's (root namespace's) address.
const HOST_OCTET: u8 = 1;
/// Host part of namespace `i`'s address is `NODE_OCTET_BASE + 1 + i`.
const NODE_OCTET_BASE: u8 = 10;
/// Interface name of the veth end inside each namespace.
const NS_IF: &str = "eth0";

/// One namespace of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNode {
    /// Namespace name.
    pub netns: String,
    /// Its address.
    pub addr: Ipv4Addr,
    /// The veth end in the root namespace (on the bridge).
    host_if: String,
}

/// The bridge, the namespaces and their veths; removed on drop.
#[derive(Debug)]
pub struct NetLab {
    ip: PathBuf,
    iptables: PathBuf,
    bridge: Option<String>,
    host: Ipv4Addr,
    nodes: Vec<NetNode>,
    /// A `FORWARD` accept rule for the bridge was inserted (the root namespace's policy
    /// drops forwarded traffic and bridged frames pass through it).
    forward_rule: bool,
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name `<prefix><pid><rest>` (rest starting with a non-digit or empty).
fn pid_in(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The third octet of a free test subnet: starting from one derived from `pid`, the
/// first that no line of `ip -4 -o addr` output `addrs` mentions.
fn free_subnet(pid: u32, addrs: &str) -> Option<u8> {
    (0..200u32)
        .map(|k| u8::try_from((pid + k) % 200 + 20).unwrap_or(20))
        .find(|x| {
            let prefix = format!("{}.{}.{x}.", NET_PREFIX[0], NET_PREFIX[1]);
            !addrs.contains(&prefix)
        })
}

impl NetLab {
    /// Create the bridge and `nodes` namespaces. On failure whatever was made is removed.
    pub fn create(nodes: usize) -> Result<NetLab, HostError> {
        let ip = find_program(&["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "ip"]);
        let iptables = find_program(&["/usr/sbin/iptables", "/sbin/iptables", "iptables"]);
        sweep_stale(&ip);
        let pid = std::process::id();
        let third = free_subnet(pid, &run(&ip, &["-4", "-o", "addr", "show"])?)
            .ok_or(HostError::NoFreeSubnet)?;
        let addr = |host: u8| Ipv4Addr::new(NET_PREFIX[0], NET_PREFIX[1], third, host);
        let mut lab = NetLab {
            ip,
            iptables,
            bridge: None,
            host: addr(HOST_OCTET),
            nodes: Vec::new(),
            forward_rule: false,
        };
        let bridge = format!("bsbr{pid}");
        lab.ip(&["link", "add", &bridge, "type", "bridge"])?;
        lab.bridge = Some(bridge.clone());
        lab.ip(&["addr", "add", &format!("{}/24", lab.host), "dev", &bridge])?;
        lab.ip(&["link", "set", &bridge, "up"])?;
        for i in 0..nodes {
            let octet = u8::try_from(i + 1)
                .ok()
                .and_then(|n| NODE_OCTET_BASE.checked_add(n))
                .ok_or(HostError::NoFreeSubnet)?;
            let node = NetNode {
                netns: format!("basalt-{pid}-{i}"),
                addr: addr(octet),
                host_if: format!("bsv{pid}x{i}"),
            };
            lab.ip(&["netns", "add", &node.netns])?;
            lab.nodes.push(node.clone());
            lab.ip(&["-n", &node.netns, "link", "set", "lo", "up"])?;
            lab.ip(&[
                "link",
                "add",
                &node.host_if,
                "type",
                "veth",
                "peer",
                "name",
                NS_IF,
                "netns",
                &node.netns,
            ])?;
            lab.ip(&["link", "set", &node.host_if, "master", &bridge])?;
            lab.ip(&["link", "set", &node.host_if, "up"])?;
            lab.ip(&[
                "-n",
                &node.netns,
                "addr",
                "add",
                &format!("{}/24", node.addr),
                "dev",
                NS_IF,
            ])?;
            lab.ip(&["-n", &node.netns, "link", "set", NS_IF, "up"])?;
        }
        // Bridged frames go through the root namespace's FORWARD chain when
        // br_netfilter is loaded; a DROP policy there (Docker hosts) would cut the lab.
        let forward = run(&lab.iptables, &["-S", "FORWARD"])?;
        if forward.lines().any(|l| l.trim() == "-P FORWARD DROP") {
            run(
                &lab.iptables,
                &[
                    "-I", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
                ],
            )?;
            lab.forward_rule = true;
        }
        Ok(lab)
    }

    fn ip(&self, args: &[&str]) -> Result<String, HostError> {
        run(&self.ip, args)
    }

    /// iptables inside `node`'s namespace.
    fn iptables_in(&self, node: usize, args: &[&str]) -> Result<String, HostError> {
        let ns = &self.node(node).netns;
        let ipt = self.iptables.to_string_lossy();
        let mut full = vec!["netns", "exec", ns.as_str(), ipt.as_ref()];
        full.extend_from_slice(args);
        run(&self.ip, &full)
    }

    /// The root namespace's address on the bridge.
    pub fn host(&self) -> Ipv4Addr {
        self.host
    }

    /// Namespace `i` (panics when out of range: a test bug).
    pub fn node(&self, i: usize) -> &NetNode {
        &self.nodes[i]
    }

    /// The namespaces, in order.
    pub fn nodes(&self) -> &[NetNode] {
        &self.nodes
    }

    /// The index of the namespace holding `addr`.
    pub fn node_of(&self, addr: Ipv4Addr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr == addr)
    }

    /// The cluster spec's layout: chunkserver `i` in namespace `i`, MDSs on the bridge.
    pub fn layout(&self) -> NetworkLayout {
        NetworkLayout {
            host: self.host,
            ip_program: self.ip.clone(),
            chunkservers: self
                .nodes
                .iter()
                .map(|n| ChunkserverNet {
                    netns: n.netns.clone(),
                    addr: n.addr,
                })
                .collect(),
        }
    }

    /// Drop every packet between namespace `node` and each of `peers`, both ways.
    pub fn partition(&self, node: usize, peers: &[Ipv4Addr]) -> Result<(), HostError> {
        for p in peers {
            let p = p.to_string();
            self.iptables_in(node, &["-A", "INPUT", "-s", &p, "-j", "DROP"])?;
            self.iptables_in(node, &["-A", "OUTPUT", "-d", &p, "-j", "DROP"])?;
        }
        Ok(())
    }

    /// Cut namespace `node` off from every other namespace and from the host (so from
    /// its peers, the MDSs and the client).
    pub fn isolate(&self, node: usize) -> Result<(), HostError> {
        let mut peers: Vec<Ipv4Addr> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != node)
            .map(|(_, n)| n.addr)
            .collect();
        peers.push(self.host);
        self.partition(node, &peers)
    }

    /// Drop each packet into and out of namespace `node` with probability `p` (0..=1).
    pub fn loss(&self, node: usize, p: f64) -> Result<(), HostError> {
        let p = format!("{:.4}", p.clamp(0.0, 1.0));
        for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
            self.iptables_in(
                node,
                &[
                    "-A",
                    chain,
                    dir,
                    NS_IF,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            )?;
        }
        Ok(())
    }

    /// Remove every fault rule of namespace `node`.
    pub fn heal(&self, node: usize) -> Result<(), HostError> {
        self.iptables_in(node, &["-F", "INPUT"])?;
        self.iptables_in(node, &["-F", "OUTPUT"])?;
        Ok(())
    }

    /// Packets the fault rules of namespace `node` dropped so far (INPUT + OUTPUT), to
    /// show that a fault really bit.
    pub fn dropped(&self, node: usize) -> Result<u64, HostError> {
        let mut total = 0;
        for chain in ["INPUT", "OUTPUT"] {
            let out = self.iptables_in(node, &["-L", chain, "-n", "-v", "-x"])?;
            total += out
                .lines()
                .filter(|l| l.contains("DROP"))
                .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        Ok(total)
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        // Best effort, every step: one failure must not leave the rest behind.
        for n in &self.nodes {
            let _ = run(&self.ip, &["link", "del", &n.host_if]);
            let _ = run(&self.ip, &["netns", "del", &n.netns]);
        }
        if let Some(b) = &self.bridge {
            if self.forward_rule {
                let _ = run(
                    &self.iptables,
                    &["-D", "FORWARD", "-i", b, "-o", b, "-j", "ACCEPT"],
                );
            }
            let _ = run(&self.ip, &["link", "del", b]);
        }
    }
}

/// Remove namespaces, bridges and veths of earlier runs whose process is gone (a test
/// killed outright never ran its drop).
fn sweep_stale(ip: &std::path::Path) {
    if let Ok(list) = run(ip, &["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if pid_in(name, "basalt-").is_some_and(|p| !pid_alive(p)) {
                let _ = run(ip, &["netns", "del", name]);
            }
        }
    }
    if let Ok(links) = run(ip, &["-o", "link", "show"]) {
        for name in links.lines().filter_map(|l| {
            // "7: bsbr123: <...>" or "8: bsv123x0@if2: <...>"
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next().unwrap_or(name))
        }) {
            let pid = pid_in(name, "bsbr").or_else(|| pid_in(name, "bsv"));
            if pid.is_some_and(|p| !pid_alive(p)) {
                let _ = run(ip, &["link", "del", name]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_pid() {
        assert_eq!(pid_in("basalt-1234-0", "basalt-"), Some(1234));
        assert_eq!(pid_in("bsv99x2", "bsv"), Some(99));
        assert_eq!(pid_in("bsbr7", "bsbr"), Some(7));
        assert_eq!(pid_in("basalt-x", "basalt-"), None);
        assert_eq!(pid_in("eth0", "bsv"), None);
    }

    #[test]
    fn the_subnet_skips_ones_in_use() {
        let pid = 5;
        let first = free_subnet(pid, "").unwrap();
        assert_eq!(first, 25);
        let used = "3: br0    inet 10.77.25.1/24 scope global br0\n";
        assert_eq!(free_subnet(pid, used), Some(26));
        let all: String = (20..220)
            .map(|x| format!("inet 10.77.{x}.1/24\n"))
            .collect();
        assert_eq!(free_subnet(pid, &all), None);
    }
}
