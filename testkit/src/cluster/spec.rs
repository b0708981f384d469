//! What a dev cluster is made of: [`ClusterSpec`].

use super::error::{ClusterError, Result};
use basalt_transport::FastPathMode;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// How chunkservers get their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkserverIds {
    /// Register with the MDS (`[server] mds-addrs` + `server-name` from the cluster map).
    Register,
    /// Unmanaged chunkservers: fixed ids on the command line (`--chunkserver-id N`), no
    /// MDS registration or heartbeats; the MDS then creates no copysets on them.
    Static,
}

/// Where one chunkserver runs on the network when it has a namespace of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkserverNet {
    /// The network namespace it runs in (`ip netns exec NAME`).
    pub netns: String,
    /// Its address inside that namespace (it listens and is dialled there).
    pub addr: Ipv4Addr,
}

/// Chunkservers in network namespaces of their own (the network fault tests): each
/// listens on its own address, the MDSs on `host` (an address of the root namespace the
/// namespaces can reach, e.g. a bridge's), etcd stays on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkLayout {
    /// Address of the root namespace the MDSs listen on (and clients dial them at).
    pub host: Ipv4Addr,
    /// The `ip` program (iproute2) used to enter a namespace.
    pub ip_program: PathBuf,
    /// One entry per chunkserver, in order.
    pub chunkservers: Vec<ChunkserverNet>,
}

/// The shape and timings of a dev cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Where logs, data dirs, configs and the state file (`cluster.toml`) live.
    pub state_dir: PathBuf,
    /// etcd members (1 for dev).
    pub etcd: usize,
    /// MDS processes (1 active + standbys).
    pub mds: usize,
    /// Chunkserver processes, spread round-robin over the zones (one server each).
    pub chunkservers: usize,
    /// Zones (failure domains) of the single physical pool; at least 3 for 3 replicas.
    pub zones: usize,
    /// Copysets per chunkserver in the cluster map's logical pool.
    pub copysets_per_chunkserver: u32,
    /// MDS election lease TTL (at least 2 s).
    pub election_ttl: Duration,
    /// MDS tick (liveness, scheduling, copyset creation).
    pub mds_tick: Duration,
    /// Chunkserver → MDS heartbeat interval (with registration).
    pub cs_heartbeat: Duration,
    /// Raft heartbeat interval of every copyset.
    pub raft_heartbeat: Duration,
    /// Raft election timeout range of every copyset.
    pub raft_election: (Duration, Duration),
    /// Transport fast path (UCX) mode of every daemon.
    pub fast_path: FastPathMode,
    /// Chunk files formatted per chunkserver (16 MiB each).
    pub pool_chunks: u64,
    /// WAL segments formatted per chunkserver.
    pub wal_segments: u64,
    /// How chunkservers get their ids.
    pub chunkserver_ids: ChunkserverIds,
    /// Also write the client configuration here (the state dir always gets `client.toml`).
    pub client_config: Option<PathBuf>,
    /// Bound of each readiness wait.
    pub ready_timeout: Duration,
    /// Also wait until the active MDS knows a leader for every copyset (needs chunkserver
    /// registration and heartbeats that carry copyset leaders; off by default until the
    /// MDS reports them, see docs/cli.md).
    pub wait_copysets: bool,
    /// Run each chunkserver in a network namespace of its own (None: every process on
    /// loopback in the current namespace).
    pub network: Option<NetworkLayout>,
    /// Data dirs of the chunkservers, one per chunkserver, outside the state dir (e.g. on
    /// a small tmpfs); empty: `<state-dir>/cs-N`.
    pub chunkserver_data_dirs: Vec<PathBuf>,
    /// Authenticate every connection with a fresh cluster secret (`cluster.secret` in
    /// the state dir, named by every daemon and client config), as a cluster made by
    /// `basalt cluster init` does. Off only to test an unauthenticated cluster.
    pub authenticate: bool,
}

impl ClusterSpec {
    /// The default dev cluster (1 etcd, 3 MDS, 3 chunkservers in 3 zones) in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ClusterSpec {
            state_dir: state_dir.into(),
            etcd: 1,
            mds: 3,
            chunkservers: 3,
            zones: 3,
            copysets_per_chunkserver: 10,
            election_ttl: Duration::from_secs(2),
            mds_tick: Duration::from_millis(200),
            cs_heartbeat: Duration::from_millis(500),
            raft_heartbeat: Duration::from_millis(200),
            raft_election: (Duration::from_millis(1000), Duration::from_millis(2000)),
            fast_path: FastPathMode::Off,
            pool_chunks: 16,
            wal_segments: 2,
            chunkserver_ids: ChunkserverIds::Register,
            client_config: None,
            ready_timeout: Duration::from_secs(60),
            wait_copysets: false,
            network: None,
            chunkserver_data_dirs: Vec::new(),
            authenticate: true,
        }
    }

    /// Check the counts and timings.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| {
            Err(ClusterError::InvalidSpec {
                field,
                reason: reason.into(),
            })
        };
        if self.etcd == 0 || self.etcd > 9 {
            return bad("etcd", "must be 1..=9");
        }
        if self.mds == 0 || self.mds > 16 {
            return bad("mds", "must be 1..=16");
        }
        if self.chunkservers > 64 {
            return bad("chunkservers", "must be at most 64");
        }
        if self.zones == 0 {
            return bad("zones", "must be at least 1");
        }
        if self.chunkservers > 0 && self.zones > self.chunkservers {
            return bad("zones", "more zones than chunkservers leaves zones empty");
        }
        if self.copysets_per_chunkserver == 0 {
            return bad("copysets-per-chunkserver", "must be at least 1");
        }
        if self.election_ttl < Duration::from_secs(2) {
            return bad(
                "election-ttl",
                "must be at least 2 s (the MDS refuses less)",
            );
        }
        if self.mds_tick.is_zero()
            || self.raft_heartbeat.is_zero()
            || self.cs_heartbeat < Duration::from_millis(10)
        {
            return bad(
                "mds-tick/raft-heartbeat/cs-heartbeat",
                "must be > 0 (cs-heartbeat >= 10 ms)",
            );
        }
        let (lo, hi) = self.raft_election;
        if lo <= self.raft_heartbeat || hi < lo {
            return bad(
                "raft-election",
                "need heartbeat < election min <= election max",
            );
        }
        if self.pool_chunks == 0 || self.wal_segments == 0 {
            return bad("pool-chunks/wal-segments", "must be > 0");
        }
        if self
            .network
            .as_ref()
            .is_some_and(|n| n.chunkservers.len() != self.chunkservers)
        {
            return bad("network", "needs one namespace per chunkserver");
        }
        if !self.chunkserver_data_dirs.is_empty()
            && self.chunkserver_data_dirs.len() != self.chunkservers
        {
            return bad(
                "chunkserver-data-dirs",
                "needs one data dir per chunkserver (or none)",
            );
        }
        Ok(())
    }

    /// Replicas of the logical pool: 3, or fewer when there are fewer zones.
    pub fn replicas(&self) -> u8 {
        u8::try_from(self.zones.min(3)).unwrap_or(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_valid_and_three_way() {
        let s = ClusterSpec::new("/tmp/x");
        s.validate().unwrap();
        assert_eq!((s.mds, s.chunkservers, s.zones, s.etcd), (3, 3, 3, 1));
        assert_eq!(s.replicas(), 3);
    }

    #[test]
    fn bad_specs_name_the_field() {
        let base = ClusterSpec::new("/tmp/x");
        for (spec, field) in [
            (
                ClusterSpec {
                    mds: 0,
                    ..base.clone()
                },
                "mds",
            ),
            (
                ClusterSpec {
                    etcd: 0,
                    ..base.clone()
                },
                "etcd",
            ),
            (
                ClusterSpec {
                    zones: 4,
                    ..base.clone()
                },
                "zones",
            ),
            (
                ClusterSpec {
                    election_ttl: Duration::from_secs(1),
                    ..base.clone()
                },
                "election-ttl",
            ),
            (
                ClusterSpec {
                    raft_election: (Duration::from_millis(100), Duration::from_millis(50)),
                    ..base.clone()
                },
                "raft-election",
            ),
        ] {
            match spec.validate() {
                Err(ClusterError::InvalidSpec { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut netted = base.clone();
        netted.network = Some(NetworkLayout {
            host: Ipv4Addr::new(10, 77, 0, 1),
            ip_program: "ip".into(),
            chunkservers: Vec::new(),
        });
        assert!(matches!(
            netted.validate(),
            Err(ClusterError::InvalidSpec {
                field: "network",
                ..
            })
        ));
        let mut dirs = base.clone();
        dirs.chunkserver_data_dirs = vec!["/mnt/a".into()];
        assert!(matches!(
            dirs.validate(),
            Err(ClusterError::InvalidSpec {
                field: "chunkserver-data-dirs",
                ..
            })
        ));
        let one_zone = ClusterSpec {
            zones: 1,
            chunkservers: 1,
            ..base
        };
        one_zone.validate().unwrap();
        assert_eq!(one_zone.replicas(), 1);
    }
}
