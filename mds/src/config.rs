//! The `basalt-mds` daemon configuration (TOML; every key optional; CLI flags override).

use crate::copyset_sync::CreateConfig;
use crate::error::{Error, Result};
use crate::state::StateConfig;
use basalt_transport::TransportConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Daemon configuration. See `etc/mds.toml` for every key with its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct MdsConfig {
    /// Instance name (in the election value and logs).
    pub name: String,
    /// RPC listen address (port 0: any free port).
    pub listen: SocketAddr,
    /// Address clients and chunkservers dial (default: the bound listen address).
    pub advertise: Option<SocketAddr>,
    /// Write the bound listen address to this file once serving (for scripts and tests).
    pub addr_file: Option<PathBuf>,
    /// etcd client endpoints.
    pub etcd: Vec<String>,
    /// Election lease TTL in ms (whole seconds are used; at least 2000).
    pub election_ttl_ms: u64,
    /// Cluster map applied when this MDS becomes active.
    pub cluster_map: Option<PathBuf>,
    /// Scheduler / liveness tick.
    pub tick_interval_ms: u64,
    /// Create an empty logical pool's copysets once this many of its chunkservers are online.
    pub copyset_min_chunkservers: usize,
    /// Serve Prometheus metrics (`GET /metrics`) here; standbys too. None: no metrics port.
    pub metrics_listen: Option<SocketAddr>,
    /// State machine settings.
    pub state: StateConfig,
    /// Telling chunkservers to create their copyset replicas.
    pub copyset_create: CreateConfig,
    /// Transport settings.
    pub transport: TransportConfig,
    /// Purging deleted volumes (`[purge]`, see `docs/mds.md`).
    pub purge: crate::recycle::PurgeConfig,
    /// The admin credential's verifier (`basalt cluster init` writes it). When set, volume
    /// access control is enforced (owner keys, see `docs/security.md`); when absent every
    /// authenticated peer may open any volume and the MDS warns at start-up.
    pub admin_verifier_file: Option<PathBuf>,
}

impl Default for MdsConfig {
    fn default() -> Self {
        Self {
            name: "mds-1".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8100)),
            advertise: None,
            addr_file: None,
            etcd: vec!["http://127.0.0.1:2379".into()],
            election_ttl_ms: 5_000,
            cluster_map: None,
            tick_interval_ms: 1_000,
            copyset_min_chunkservers: 3,
            metrics_listen: None,
            state: StateConfig::default(),
            copyset_create: CreateConfig::default(),
            transport: TransportConfig::default(),
            purge: crate::recycle::PurgeConfig::default(),
            admin_verifier_file: None,
        }
    }
}

fn bad(field: &'static str, reason: &str) -> Error {
    Error::Config {
        field,
        reason: reason.into(),
    }
}

impl MdsConfig {
    /// Parse TOML text and validate.
    pub fn parse(text: &str) -> Result<Self> {
        let c: MdsConfig = toml::from_str(text).map_err(|e| Error::Config {
            field: "file",
            reason: e.to_string(),
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Read, parse and validate a file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            field: "file",
            reason: format!("{}: {e}", path.display()),
        })?;
        Self::parse(&text)
    }

    /// Read the admin verifier named by `admin-verifier-file` (`None` when not set).
    pub fn admin_verifier(&self) -> Result<Option<basalt_proto::credential::Verifier>> {
        let Some(path) = &self.admin_verifier_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            field: "admin-verifier-file",
            reason: format!("{}: {e}", path.display()),
        })?;
        basalt_proto::credential::Verifier::from_text(&text)
            .map(Some)
            .map_err(|e| Error::Config {
                field: "admin-verifier-file",
                reason: format!("{}: {e}", path.display()),
            })
    }

    /// Check ranges.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.contains('@') {
            return Err(bad("name", "must be non-empty and contain no '@'"));
        }
        if self.etcd.is_empty() {
            return Err(bad("etcd", "needs at least one endpoint"));
        }
        if self.election_ttl_ms < 2_000 {
            return Err(bad("election-ttl-ms", "must be >= 2000"));
        }
        if self.tick_interval_ms == 0 {
            return Err(bad("tick-interval-ms", "must be > 0"));
        }
        if self.copyset_min_chunkservers == 0 {
            return Err(bad("copyset-min-chunkservers", "must be > 0"));
        }
        let s = &self.state;
        if s.session_lease_ms == 0 {
            return Err(bad("state.session-lease-ms", "must be > 0"));
        }
        if s.pool_usage_limit_percent == 0 || s.pool_usage_limit_percent > 100 {
            return Err(bad("state.pool-usage-limit-percent", "must be 1..=100"));
        }
        if s.chunk_id_batch < basalt_proto::ids::CHUNKS_PER_SEGMENT {
            return Err(bad("state.chunk-id-batch", "must be >= 64"));
        }
        let p = &self.purge;
        if p.interval_ms == 0 || p.rpc_timeout_ms == 0 || p.attempts == 0 || p.concurrency == 0 {
            return Err(bad(
                "purge",
                "interval-ms, rpc-timeout-ms, attempts and concurrency must be > 0",
            ));
        }
        if s.load_page == 0 {
            return Err(bad("state.load-page", "must be > 0"));
        }
        if s.liveness.unstable_after_ms == 0
            || s.liveness.unstable_after_ms >= s.liveness.offline_after_ms
        {
            return Err(bad(
                "state.liveness",
                "need 0 < unstable-after-ms < offline-after-ms",
            ));
        }
        let c = &self.copyset_create;
        if c.interval_ms == 0 || c.rpc_timeout_ms == 0 || c.concurrency == 0 {
            return Err(bad(
                "copyset-create",
                "interval-ms, rpc-timeout-ms and concurrency must be > 0",
            ));
        }
        if c.retry_min_ms == 0 || c.retry_max_ms < c.retry_min_ms {
            return Err(bad(
                "copyset-create",
                "need 0 < retry-min-ms <= retry-max-ms",
            ));
        }
        self.transport.validate().map_err(|e| Error::Config {
            field: "transport",
            reason: e.to_string(),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_to_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/mds.toml");
        let c = MdsConfig::load(&path).unwrap();
        assert_eq!(
            c.cluster_map.as_deref(),
            Some(Path::new("/etc/basalt/cluster.toml"))
        );
        assert_eq!(
            c.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 8180)))
        );
        let want = MdsConfig {
            cluster_map: c.cluster_map.clone(),
            metrics_listen: c.metrics_listen,
            ..MdsConfig::default()
        };
        assert_eq!(c, want);
    }

    #[test]
    fn purge_retention_zero_is_allowed() {
        let c = MdsConfig::parse("[purge]\nrecycle-retention-secs = 0").unwrap();
        assert_eq!(c.purge.recycle_retention_secs, 0);
        assert_eq!(MdsConfig::default().purge.recycle_retention_secs, 86_400);
    }

    #[test]
    fn nothing_listens_beyond_loopback_by_default() {
        let d = MdsConfig::default();
        assert!(d.listen.ip().is_loopback(), "{}", d.listen);
        assert_eq!(d.metrics_listen, None);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/mds.toml");
        let example = MdsConfig::load(&path).unwrap();
        assert!(example.listen.ip().is_loopback());
        assert!(example.metrics_listen.is_some_and(|a| a.ip().is_loopback()));
        // Access control is off unless an admin verifier is configured.
        assert_eq!(d.admin_verifier().unwrap(), None);
    }

    #[test]
    fn a_bad_admin_verifier_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin.verifier");
        std::fs::write(&p, "not a verifier").unwrap();
        let c = MdsConfig {
            admin_verifier_file: Some(p.clone()),
            ..MdsConfig::default()
        };
        assert!(matches!(
            c.admin_verifier(),
            Err(Error::Config {
                field: "admin-verifier-file",
                ..
            })
        ));
        let v = basalt_proto::credential::OwnerKey::from_bytes([1; 32]).verifier([2; 16]);
        std::fs::write(&p, v.to_text()).unwrap();
        assert_eq!(c.admin_verifier().unwrap(), Some(v));
        let missing = MdsConfig {
            admin_verifier_file: Some(dir.path().join("missing")),
            ..MdsConfig::default()
        };
        assert!(missing.admin_verifier().is_err());
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(MdsConfig::parse("").unwrap(), MdsConfig::default());
    }

    #[test]
    fn bad_values_are_named() {
        for (text, field) in [
            ("etcd = []", "etcd"),
            ("election-ttl-ms = 100", "election-ttl-ms"),
            ("name = \"a@b\"", "name"),
            (
                "[state]\npool-usage-limit-percent = 0",
                "state.pool-usage-limit-percent",
            ),
            (
                "[state.liveness]\nunstable-after-ms = 10\noffline-after-ms = 5",
                "state.liveness",
            ),
            ("colour = 1", "file"),
            (
                "[copyset-create]\nretry-min-ms = 10\nretry-max-ms = 5",
                "copyset-create",
            ),
            ("[copyset-create]\nconcurrency = 0", "copyset-create"),
            ("[purge]\nattempts = 0", "purge"),
            ("[purge]\ninterval-ms = 0", "purge"),
            ("[purge]\nretention = 5", "file"),
            ("metrics-listen = \"x\"", "file"),
            ("listen = \"nope\"", "file"),
        ] {
            match MdsConfig::parse(text) {
                Err(Error::Config { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
