//! Client configuration (the `[client]` file written by the dev cluster, and flags).

use crate::retry::RetryPolicy;
use basalt_proto::credential::OwnerKey;
use std::net::SocketAddr;
use std::time::Duration;

/// How a client reaches and talks to a cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// MDS addresses (any order).
    pub mds: Vec<SocketAddr>,
    /// Owner name presented when creating and opening volumes.
    pub owner: String,
    /// `owner`'s key (or the admin credential when `owner` is `admin`): proves the
    /// caller may open and change the owner's volumes. `None`: no proof is sent, which
    /// only an MDS without access control accepts.
    pub key: Option<OwnerKey>,
    /// Retry rules for chunk I/O.
    pub retry: RetryPolicy,
    /// Chunk requests in flight per volume; more wait (back-pressure).
    pub max_inflight: usize,
    /// Timeout of one MDS call.
    pub mds_call_timeout: Duration,
    /// How long MDS calls are retried across instances before giving up.
    pub mds_retry_for: Duration,
    /// Sector size I/O must be aligned to (512 or 4096).
    pub sector: u64,
    /// Chunkservers marked unstable after this many consecutive timeouts.
    pub unstable_after: u32,
}

impl ClientConfig {
    /// Who proves, with which key (when a key is configured).
    pub fn principal(&self) -> Option<(&str, &OwnerKey)> {
        self.key.as_ref().map(|k| (self.owner.as_str(), k))
    }

    /// Defaults for a cluster whose MDS instances are at `mds`.
    pub fn new(mds: Vec<SocketAddr>) -> Self {
        ClientConfig {
            mds,
            owner: "basalt".into(),
            key: None,
            retry: RetryPolicy::default(),
            max_inflight: 256,
            mds_call_timeout: Duration::from_millis(1000),
            mds_retry_for: Duration::from_secs(10),
            sector: 512,
            unstable_after: 10,
        }
    }
}
