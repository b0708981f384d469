//! Basalt's test kit: real processes and wait helpers for integration tests, and the
//! multi-process dev cluster behind `basalt dev-cluster`.
//!
//! Never a dependency of product crates (only `[dev-dependencies]`, plus the CLI's
//! `dev-cluster` developer tool).
//!
//! - [`etcd`]: a real single-node etcd on free loopback ports with a temp data dir.
//! - [`cluster`]: etcd + MDSs + chunkservers as detached processes tracked in a state dir
//!   ([`DevCluster`]).
//! - [`workload`]: the fault suite's workload driver, history and linearizability checker.
//! - [`rig`]: a small real cluster with a connected client, for end-to-end tests.
//! - [`faults`]: finding the process to fault (the leader of a volume's copyset).
//! - [`netns`]: chunkservers in network namespaces, partitions and packet loss (root).
//! - [`tmpfs`]: a small filesystem that can fill up, for the full-disk test (root).
//! - [`host`]: running `ip`, `iptables` and `mount` for those two.

pub mod cluster;
pub mod etcd;
pub mod faults;
pub mod host;
pub mod netns;
pub mod rig;
pub mod tmpfs;
pub mod workload;

pub use cluster::{ClusterError, ClusterSpec, DevCluster};
pub use etcd::{EtcdError, EtcdProcess};
