//! The chunkserver daemon's configuration (TOML, kebab-case, every key optional).
//! See `etc/chunkserver.toml` for the documented example.

use crate::backend::BackendChoice;
use crate::copyset::config::CopysetConfig;
use crate::datadir::{DEFAULT_CHUNK_SIZE, DEFAULT_WAL_SEGMENT_SIZE};
use crate::error::{ChunkServerError, Result};
use crate::poller::{PollMode, PollerOptions};
use basalt_proto::ids::ChunkServerId;
use basalt_transport::TransportConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything the chunkserver daemon reads from its config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ChunkServerConfig {
    /// The data directory (one per disk).
    pub data_dir: PathBuf,
    /// Cluster this chunkserver must belong to (checked against the data dir once registered).
    pub cluster_id: Option<String>,
    /// `[server]`: addresses and request limits of the `serve` daemon.
    pub server: ServerConfig,
    /// `[transport]`: connection tunables (see `etc/transport.example.toml`).
    pub transport: TransportConfig,
    /// `[ucx]`: the UCX fast-path provider (builds with the `ucx` feature only).
    #[cfg(feature = "ucx")]
    pub ucx: basalt_transport::ucx::UcxConfig,
    /// Data I/O: backend and poller threads.
    pub io: IoConfig,
    /// `format` settings: chunk file pool.
    pub pool: PoolConfig,
    /// `format` settings: WAL segments.
    pub wal: WalConfig,
    /// Raft settings of every copyset.
    pub copyset: CopysetConfig,
}

/// `[io]`: how data I/O is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct IoConfig {
    /// `auto` | `uring` | `sync` | `spdk`.
    pub backend: BackendChoice,
    /// Number of poller threads.
    pub pollers: usize,
    /// `park` | `busy` (spin `spin-rounds` empty rounds before parking).
    pub poll_mode: PollMode,
    /// Empty rounds a busy poller spins before parking.
    pub spin_rounds: u32,
    /// Open chunk files with `O_DIRECT`.
    pub direct_io: bool,
    /// SPDK controller transport id (`trtype:PCIe traddr:...`), for the `spdk` backend.
    pub spdk_transport_id: Option<String>,
    /// SPDK namespace id.
    pub spdk_nsid: u32,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            backend: BackendChoice::Auto,
            pollers: 2,
            poll_mode: PollMode::Park,
            spin_rounds: 10_000,
            direct_io: true,
            spdk_transport_id: None,
            spdk_nsid: 1,
        }
    }
}

impl IoConfig {
    /// Poller settings.
    pub fn poller_options(&self) -> PollerOptions {
        PollerOptions {
            threads: self.pollers,
            mode: self.poll_mode,
            spin_rounds: self.spin_rounds,
        }
    }
}

/// `[pool]`: chunk file pool created by `format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Chunk files to create.
    pub size: u64,
    /// Chunk data size in bytes.
    pub chunk_size: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: 64,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// `[wal]`: WAL segments created by `format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct WalConfig {
    /// Preallocated segments.
    pub segments: u64,
    /// Segment size in bytes.
    pub segment_size: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segments: 8,
            segment_size: DEFAULT_WAL_SEGMENT_SIZE,
        }
    }
}

/// `[server]`: what the `serve` daemon listens on and how much it takes at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the chunk service and the raft traffic (`ip:port`; port 0 picks one and
    /// the bound address is written to `<data-dir>/listen-addr`).
    pub listen: String,
    /// Address of the Prometheus `GET /metrics` endpoint (port 0 picks one, written to
    /// `<data-dir>/metrics-addr`).
    pub metrics_listen: String,
    /// MDS addresses (`ip:port`, any order: the active one is found). Set: the chunkserver
    /// registers with the MDS at start (its id comes from there) and sends heartbeats.
    /// Empty: unmanaged; `chunkserver-id` is needed and copysets are created by
    /// `CreateCopyset` requests (test harness, CLI).
    pub mds_addrs: Vec<String>,
    /// Server (host) name presented at registration; must name a server of the MDS's
    /// cluster map. Default: the host name.
    pub server_name: Option<String>,
    /// Period of heartbeats to the MDS.
    pub heartbeat_interval_ms: u64,
    /// Bound of one call to one MDS address (registration, heartbeat).
    pub mds_timeout_ms: u64,
    /// This chunkserver's id when the data dir has none recorded by an MDS registration.
    /// Raft peers are addressed by it, so it must be unique in the cluster.
    pub chunkserver_id: Option<u32>,
    /// Address peers and clients should dial (defaults to the bound listen address; set
    /// it when listening on a wildcard address).
    pub advertise: Option<String>,
    /// Data requests (write, read, delete) handled at once; more are refused with
    /// `Overload`.
    pub max_inflight_data: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8200".into(),
            metrics_listen: "127.0.0.1:8201".into(),
            mds_addrs: Vec::new(),
            server_name: None,
            heartbeat_interval_ms: 2000,
            mds_timeout_ms: 3000,
            chunkserver_id: None,
            advertise: None,
            max_inflight_data: 1024,
        }
    }
}

impl ServerConfig {
    /// The MDS addresses, parsed (validated by [`ChunkServerConfig::validate`]).
    pub fn mds_socket_addrs(&self) -> Vec<SocketAddr> {
        self.mds_addrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    }

    /// [`Self::chunkserver_id`] as an id.
    pub fn chunkserver_id(&self) -> Option<ChunkServerId> {
        self.chunkserver_id.map(ChunkServerId)
    }
}

impl Default for ChunkServerConfig {
    fn default() -> Self {
        ChunkServerConfig {
            data_dir: PathBuf::from("/var/lib/basalt/chunkserver"),
            cluster_id: None,
            server: ServerConfig::default(),
            transport: TransportConfig::default(),
            #[cfg(feature = "ucx")]
            ucx: basalt_transport::ucx::UcxConfig::default(),
            io: IoConfig::default(),
            pool: PoolConfig::default(),
            wal: WalConfig::default(),
            copyset: CopysetConfig::default(),
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ChunkServerError {
    ChunkServerError::Config {
        field,
        reason: reason.into(),
    }
}

impl ChunkServerConfig {
    /// Parse TOML text and validate it.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| invalid("(file)", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ChunkServerError::Disk {
            op: "read config file",
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Check values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data-dir", "empty"));
        }
        let sv = &self.server;
        for (field, v) in [
            ("server.listen", Some(&sv.listen)),
            ("server.metrics-listen", Some(&sv.metrics_listen)),
            ("server.advertise", sv.advertise.as_ref()),
        ] {
            if let Some(v) = v {
                v.parse::<SocketAddr>()
                    .map_err(|e| invalid(field, format!("{v:?}: {e}")))?;
            }
        }
        if let Some(a) = sv
            .mds_addrs
            .iter()
            .find(|a| a.parse::<SocketAddr>().is_err())
        {
            return Err(invalid(
                "server.mds-addrs",
                format!("{a:?} is not an ip:port address"),
            ));
        }
        if sv
            .server_name
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.len() > 128)
        {
            return Err(invalid("server.server-name", "must be 1..=128 bytes"));
        }
        if !(10..=600_000).contains(&sv.heartbeat_interval_ms) {
            return Err(invalid(
                "server.heartbeat-interval-ms",
                format!("{} not in 10..=600000", sv.heartbeat_interval_ms),
            ));
        }
        if sv.mds_timeout_ms == 0 {
            return Err(invalid("server.mds-timeout-ms", "must be > 0"));
        }
        if sv.chunkserver_id == Some(0) {
            return Err(invalid(
                "server.chunkserver-id",
                "0 is not a chunkserver id",
            ));
        }
        if sv.max_inflight_data == 0 {
            return Err(invalid("server.max-inflight-data", "must be > 0"));
        }
        self.transport
            .validate()
            .map_err(|e| invalid("transport", e.to_string()))?;
        #[cfg(feature = "ucx")]
        self.ucx
            .validate()
            .map_err(|e| invalid("ucx", e.to_string()))?;
        if !(1..=256).contains(&self.io.pollers) {
            return Err(invalid(
                "io.pollers",
                format!("{} not in 1..=256", self.io.pollers),
            ));
        }
        for (field, v, min) in [
            ("pool.chunk-size", self.pool.chunk_size, 4096),
            ("wal.segment-size", self.wal.segment_size, 1 << 20),
        ] {
            if v < min || v % 4096 != 0 {
                return Err(invalid(
                    field,
                    format!("{v} is not a multiple of 4096 >= {min}"),
                ));
            }
        }
        if self.wal.segments < 2 {
            return Err(invalid("wal.segments", "at least 2 segments are needed"));
        }
        self.copyset
            .validate()
            .map_err(|e| invalid("copyset", e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_listens_beyond_loopback_by_default() {
        let d = ChunkServerConfig::default();
        for a in [&d.server.listen, &d.server.metrics_listen] {
            let addr: std::net::SocketAddr = a.parse().unwrap();
            assert!(addr.ip().is_loopback(), "{a}");
        }
    }

    #[test]
    fn defaults_validate_and_bad_values_are_refused() {
        ChunkServerConfig::default().validate().unwrap();
        let err = ChunkServerConfig::from_toml("[io]\npollers = 0\n").unwrap_err();
        assert!(matches!(
            err,
            ChunkServerError::Config {
                field: "io.pollers",
                ..
            }
        ));
        let err = ChunkServerConfig::from_toml("[server]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(matches!(
            err,
            ChunkServerError::Config {
                field: "server.listen",
                ..
            }
        ));
        let err = ChunkServerConfig::from_toml("[transport]\ncall-timeout-ms = 0\n").unwrap_err();
        assert!(matches!(
            err,
            ChunkServerError::Config {
                field: "transport",
                ..
            }
        ));
        assert!(ChunkServerConfig::from_toml("bogus-key = 1\n").is_err());
        for (text, field) in [
            ("[server]\nmds-addrs = [\"mds:8100\"]\n", "server.mds-addrs"),
            ("[server]\nserver-name = \"\"\n", "server.server-name"),
            (
                "[server]\nheartbeat-interval-ms = 0\n",
                "server.heartbeat-interval-ms",
            ),
            ("[server]\nmds-timeout-ms = 0\n", "server.mds-timeout-ms"),
        ] {
            let err = ChunkServerConfig::from_toml(text).unwrap_err();
            assert!(
                matches!(err, ChunkServerError::Config { field: f, .. } if f == field),
                "{text}: {err}"
            );
        }
        let cfg = ChunkServerConfig::from_toml(
            "[server]\nmds-addrs = [\"127.0.0.1:8100\", \"[::1]:8100\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.server.mds_socket_addrs().len(), 2);
    }

    #[test]
    fn example_file_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/chunkserver.toml");
        let cfg = ChunkServerConfig::load(Path::new(path)).unwrap();
        assert_eq!(cfg.io.backend, BackendChoice::Auto);
        assert_eq!(cfg.wal.segment_size, 64 << 20);
        assert_eq!(cfg.server, ServerConfig::default());
        assert_eq!(cfg.transport, TransportConfig::default());
    }
}
