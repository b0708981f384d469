//! Transport tunables (a section of every daemon's TOML config) and the per-process
//! options that are not configuration (identity, fast-path provider, hooks).

use crate::error::TransportError;
use crate::fastpath::FastPathProvider;
use crate::hello_hook::HelloHook;
use crate::metrics::TransportMetrics;
use basalt_proto::hello::{Features, Identity, Role};
use basalt_proto::Limits;
use serde::{Deserialize, Serialize};
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
        self.features = features - Features::UCX;
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

    /// Plug a hello hook (authentication, issue 8).
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

    pub(crate) fn validated(self) -> Result<Self, TransportError> {
        self.config.validate()?;
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
    }
}
