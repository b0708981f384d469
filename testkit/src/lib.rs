//! Basalt's test kit: real processes and wait helpers for integration tests.
//!
//! Never a dependency of product crates (only `[dev-dependencies]`).
//!
//! - [`etcd`]: a real single-node etcd on free loopback ports with a temp data dir.

pub mod etcd;

pub use etcd::{EtcdError, EtcdProcess};
