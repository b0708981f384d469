//! Transport tunables (a section of every daemon's TOML config) and the per-process
//! options that are not configuration (identity, fast-path provider, hooks).

use crate::auth::secret::ClusterSecret;
use crate::error::TransportError;
use crate::fastpath::FastPathProvider;
use crate::hello_hook::HelloHook;
use crate::metrics::TransportMetrics;
use basalt_proto::hello::{Features, Identity, Role};
use basalt_proto::Limits;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Whether connections try to move onto the fast path (UCX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FastPathMode {
    /// Never offer or accept a fast path.
    Off,
    /// Offer and accept when a provider is configured and says it beats TCP here.
    #[default]
    Auto,
    /// Offer and accept whenever a provider is configured (tests, benchmarks).
    Force,
}

/// Transport tunables. Every field has a default; `validate()` checks ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Deadline of a call made without an explicit one.
    pub call_timeout_ms: u64,
    /// How long a connection may take to dial and exchange the hello.
    pub hello_timeout_ms: u64,
    /// Frames queued for the socket writer per connection before senders wait.
    pub send_queue_frames: usize,
    /// Requests a connection handles at once; the reader stops reading beyond this.
    pub max_inflight_requests: usize,
    /// Largest encoded header accepted from a peer.
    pub max_header_len: u32,
    /// Largest payload accepted from a peer.
    pub max_payload_len: u32,
    /// Fast-path (UCX) use.
    pub fast_path: FastPathMode,
    /// How long creating the fast-path endpoint may take.
    pub fast_path_connect_timeout_ms: u64,
    /// How long the confirming ping over a fresh fast-path link may take.
    pub fast_path_ping_timeout_ms: u64,
    /// How long a server's graceful shutdown waits for in-flight handlers.
    pub shutdown_grace_ms: u64,
    /// The cluster secret file (hex, mode 0600; `basalt cluster init` writes one). When
    /// set, every connection authenticates both ways in its hello and peers without the
    /// secret are refused. When absent, nothing is authenticated (a warning says so).
    pub auth_secret_file: Option<PathBuf>,
    /// TCP keepalive: probes start after this long without traffic (then every 10 s, 3
    /// probes), so a vanished host is noticed even on a quiet connection. 0 = off.
    pub tcp_keepalive_ms: u64,
    /// Close a TCP connection on which no whole frame arrived for this long while no call
    /// was pending and no request was being handled (a silent peer, or one stalled in the
    /// middle of a frame). 0 = never.
    pub idle_timeout_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            call_timeout_ms: 30_000,
            hello_timeout_ms: 5_000,
            send_queue_frames: 1024,
            max_inflight_requests: 4096,
            max_header_len: Limits::DEFAULT.max_header_len,
            max_payload_len: Limits::DEFAULT.max_payload_len,
            fast_path: FastPathMode::Auto,
            fast_path_connect_timeout_ms: 1_000,
            fast_path_ping_timeout_ms: 1_000,
            shutdown_grace_ms: 5_000,
            auth_secret_file: None,
            tcp_keepalive_ms: 30_000,
            idle_timeout_ms: 0,
        }
    }
}

impl TransportConfig {
    /// Check ranges.
    pub fn validate(&self) -> Result<(), TransportError> {
        fn positive(field: &'static str, v: u64) -> Result<(), TransportError> {
            if v == 0 {
                return Err(TransportError::Config {
                    field,
                    reason: "must be > 0".into(),
                });
            }
            Ok(())
        }
        positive("call-timeout-ms", self.call_timeout_ms)?;
        positive("hello-timeout-ms", self.hello_timeout_ms)?;
        positive("send-queue-frames", self.send_queue_frames as u64)?;
        positive("max-inflight-requests", self.max_inflight_requests as u64)?;
        positive(
            "fast-path-connect-timeout-ms",
            self.fast_path_connect_timeout_ms,
        )?;
        positive("fast-path-ping-timeout-ms", self.fast_path_ping_timeout_ms)?;
        if self.tcp_keepalive_ms != 0 && self.tcp_keepalive_ms < 1_000 {
            return Err(TransportError::Config {
                field: "tcp-keepalive-ms",
                reason: "0 (off) or at least 1000 (the kernel counts whole seconds)".into(),
            });
        }
        if self.max_header_len < 1024 {
            return Err(TransportError::Config {
                field: "max-header-len",
                reason: format!("{} is below the 1024-byte minimum", self.max_header_len),
            });
        }
        if self.max_inflight_requests > (1 << 20) {
            return Err(TransportError::Config {
                field: "max-inflight-requests",
                reason: "at most 1048576".into(),
            });
        }
        Ok(())
    }

    /// Frame limits enforced on inbound frames.
    pub fn limits(&self) -> Limits {
        Limits {
            max_header_len: self.max_header_len,
            max_payload_len: self.max_payload_len,
        }
    }

    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
    pub(crate) fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.hello_timeout_ms)
    }
    pub(crate) fn fast_path_connect_timeout(&self) -> Duration {
        Duration::from_millis(self.fast_path_connect_timeout_ms)
    }
    pub(crate) fn fast_path_ping_timeout(&self) -> Duration {
        Duration::from_millis(self.fast_path_ping_timeout_ms)
    }
    pub(crate) fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
    pub(crate) fn tcp_keepalive(&self) -> Option<Duration> {
        (self.tcp_keepalive_ms > 0).then(|| Duration::from_millis(self.tcp_keepalive_ms))
    }
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_ms > 0).then(|| Duration::from_millis(self.idle_timeout_ms))
    }
}

/// Everything a transport endpoint (one per process, or per test node) is built from.
#[derive(Clone)]
pub struct TransportOptions {
    pub(crate) config: TransportConfig,
    pub(crate) identity: Identity,
    pub(crate) features: Features,
    pub(crate) accepted_roles: Option<Vec<Role>>,
    pub(crate) fast_path: Option<Arc<dyn FastPathProvider>>,
    pub(crate) hook: Option<Arc<dyn HelloHook>>,
    pub(crate) secret: Option<Arc<ClusterSecret>>,
    pub(crate) metrics: TransportMetrics,
    pub(crate) protocol_version: u16,
}

impl std::fmt::Debug for TransportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportOptions")
            .field("config", &self.config)
            .field("identity", &self.identity)
            .field("features", &self.features)
            .field("fast_path", &self.fast_path.as_ref().map(|p| p.name()))
            .field("authenticates", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl TransportOptions {
    /// Options with default configuration for a process with this identity.
    pub fn new(identity: Identity) -> Self {
        TransportOptions {
            config: TransportConfig::default(),
            identity,
            features: Features::COALESCED_HEARTBEATS,
            accepted_roles: None,
            fast_path: None,
            hook: None,
            secret: None,
            metrics: TransportMetrics::new(),
            protocol_version: basalt_proto::PROTOCOL_VERSION,
        }
    }

    /// Use this configuration (validated when the transport is built).
    pub fn config(mut self, config: TransportConfig) -> Self {
        self.config = config;
        self
    }

    /// Features offered besides the fast path (default: coalesced heartbeats).
    pub fn features(mut self, features: Features) -> Self {
        // UCX and AUTH follow from the provider and the secret
        self.features = features - Features::UCX - Features::AUTH;
        self
    }

    /// Accept only these roles on served connections (default: any).
    pub fn accept_roles(mut self, roles: Vec<Role>) -> Self {
        self.accepted_roles = Some(roles);
        self
    }

    /// Use this fast-path provider (the UCX provider, or a fake in tests).
    pub fn fast_path(mut self, provider: Arc<dyn FastPathProvider>) -> Self {
        self.fast_path = Some(provider);
        self
    }

    /// Authenticate every connection with this cluster secret (instead of loading
    /// `auth-secret-file` from the configuration).
    pub fn cluster_secret(mut self, secret: ClusterSecret) -> Self {
        self.secret = Some(Arc::new(secret));
        self
    }

    /// Whether connections of this endpoint authenticate (a secret was given or the
    /// configured file was loaded).
    pub fn authenticates(&self) -> bool {
        self.secret.is_some()
    }

    /// Plug a hello hook (extra policy on identities; authentication itself is the
    /// cluster secret's job).
    pub fn hello_hook(mut self, hook: Arc<dyn HelloHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Count into these metrics (share one [`TransportMetrics`] between transports of a
    /// process, and register it once with [`TransportMetrics::register`]).
    pub fn metrics(mut self, metrics: TransportMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Speak another protocol version (tests of the version check only).
    #[cfg(feature = "testing")]
    pub fn protocol_version(mut self, version: u16) -> Self {
        self.protocol_version = version;
        self
    }

    /// Validate the configuration and load the cluster secret file it names (unless a
    /// secret was given with [`Self::cluster_secret`]). Without a secret, warns once per
    /// process that connections are not authenticated.
    pub(crate) fn validated(mut self) -> Result<Self, TransportError> {
        self.config.validate()?;
        if self.secret.is_none() {
            if let Some(path) = &self.config.auth_secret_file {
                self.secret = Some(Arc::new(ClusterSecret::load(path)?));
                tracing::info!(path = %path.display(), "cluster authentication on");
            }
        }
        if self.secret.is_none() {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "no auth-secret-file configured: connections are NOT authenticated; \
                     anyone who can reach this process's ports can talk to it"
                );
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_do_not() {
        TransportConfig::default().validate().unwrap();
        let c = TransportConfig {
            call_timeout_ms: 0,
            ..TransportConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(TransportError::Config {
                field: "call-timeout-ms",
                ..
            })
        ));
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../etc/transport.example.toml");
        let c: TransportConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.fast_path, FastPathMode::Auto);
        assert!(toml::from_str::<TransportConfig>("bogus-key = 1").is_err());
        assert_eq!(c.auth_secret_file, None);
        let c: TransportConfig = toml::from_str("auth-secret-file = \"/etc/s\"").unwrap();
        assert_eq!(c.auth_secret_file, Some(PathBuf::from("/etc/s")));
    }

    #[test]
    fn configured_secret_file_is_loaded_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let id = Identity {
            role: Role::Tool,
            chunkserver: None,
            name: "t".into(),
            cluster: String::new(),
        };
        let with_file = |p: &std::path::Path| {
            TransportOptions::new(id.clone()).config(TransportConfig {
                auth_secret_file: Some(p.to_path_buf()),
                ..TransportConfig::default()
            })
        };
        assert!(matches!(
            with_file(&path).validated(),
            Err(TransportError::AuthSecretIo { .. })
        ));
        ClusterSecret::generate().write_new(&path).unwrap();
        assert!(with_file(&path).validated().unwrap().authenticates());
        assert!(!TransportOptions::new(id)
            .validated()
            .unwrap()
            .authenticates());
    }
}
