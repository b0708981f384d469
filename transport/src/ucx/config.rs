//! The UCX provider's configuration (the `[ucx]` section of a daemon config).
//!
//! Every UCX setting the provider needs is applied to its own `ucp_config_t`
//! (`ucp_config_read` + `ucp_config_modify`), so one process can hold providers with
//! different settings and nothing depends on `UCX_*` environment variables.

use crate::error::TransportError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// UCX provider settings. Every field has a default; [`UcxConfig::validate`] checks them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct UcxConfig {
    /// UCX transports (`UCX_TLS`), e.g. `"rc,sm,self"` on RDMA hosts, `"sm,tcp"` or
    /// `"tcp"` in tests. `"all"` lets UCX pick.
    pub tls: String,
    /// Network devices UCX may use (`UCX_NET_DEVICES`); `"lo"` in tests (UCX would
    /// otherwise also use every other interface).
    pub net_devices: String,
    /// Let shared-memory transports run with peer error handling
    /// (`UCX_MM_ERROR_HANDLING=y`). Without it UCX 1.13 silently skips shared memory for
    /// endpoints in peer error mode, which the provider always uses.
    pub mm_error_handling: bool,
    /// UCX I/O threads, each owning one worker; connections are spread over them.
    pub threads: usize,
    /// How long an I/O thread keeps polling after activity before it sleeps on the
    /// worker's event fd. 0 (always sleep) on shared hosts and in CI; 20–100 on dedicated
    /// cores.
    pub spin_us: u64,
    /// Deadline for handing an endpoint creation to the I/O thread and getting it back.
    pub connect_timeout_ms: u64,
    /// Deadline of one send (a send still pending then fails the link).
    pub send_timeout_ms: u64,
}

impl Default for UcxConfig {
    fn default() -> Self {
        UcxConfig {
            tls: "all".into(),
            net_devices: "all".into(),
            mm_error_handling: true,
            threads: 1,
            spin_us: 0,
            connect_timeout_ms: 1_000,
            send_timeout_ms: 30_000,
        }
    }
}

/// Most I/O threads a provider may run.
pub const MAX_THREADS: usize = 64;
/// Longest spin window (10 ms): anything longer is a busy loop, not a latency trick.
pub const MAX_SPIN_US: u64 = 10_000;

impl UcxConfig {
    /// Settings for tests: the given transports on the loopback device.
    pub fn loopback(tls: &str) -> Self {
        UcxConfig {
            tls: tls.into(),
            net_devices: "lo".into(),
            ..UcxConfig::default()
        }
    }

    /// Check the fields before UCX is touched.
    pub fn validate(&self) -> Result<(), TransportError> {
        fn list(field: &'static str, v: &str) -> Result<(), TransportError> {
            if v.is_empty() || v.split(',').any(|item| item.trim().is_empty()) {
                return Err(TransportError::Config {
                    field,
                    reason: format!("{v:?} is not a comma-separated list of names"),
                });
            }
            if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(TransportError::Config {
                    field,
                    reason: format!("{v:?} contains whitespace"),
                });
            }
            Ok(())
        }
        list("tls", &self.tls)?;
        list("net-devices", &self.net_devices)?;
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(TransportError::Config {
                field: "threads",
                reason: format!("{} is outside 1..={MAX_THREADS}", self.threads),
            });
        }
        if self.spin_us > MAX_SPIN_US {
            return Err(TransportError::Config {
                field: "spin-us",
                reason: format!("{} is above {MAX_SPIN_US}", self.spin_us),
            });
        }
        for (field, v) in [
            ("connect-timeout-ms", self.connect_timeout_ms),
            ("send-timeout-ms", self.send_timeout_ms),
        ] {
            if v == 0 {
                return Err(TransportError::Config {
                    field,
                    reason: "must be > 0".into(),
                });
            }
        }
        Ok(())
    }

    /// The `(name, value)` pairs given to `ucp_config_modify` (names without `UCX_`).
    /// `MM_ERROR_HANDLING` only when shared memory may be in the list: UCX warns about a
    /// setting no transport consumes.
    pub(crate) fn ucx_settings(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("TLS", self.tls.clone()),
            ("NET_DEVICES", self.net_devices.clone()),
        ];
        if self.may_use_shared_memory() {
            out.push((
                "MM_ERROR_HANDLING",
                if self.mm_error_handling { "y" } else { "n" }.into(),
            ));
        }
        out
    }

    /// Whether the transport list can select a shared-memory (mm) transport.
    fn may_use_shared_memory(&self) -> bool {
        self.tls.starts_with('^')
            || self
                .tls
                .split(',')
                .any(|t| matches!(t, "all" | "sm" | "shm" | "mm" | "posix" | "sysv"))
    }

    /// Whether the configured transport list leaves UCX nothing faster than its own tcp:
    /// every entry is `tcp` (or the loopback-only `self`).
    pub(crate) fn tls_is_tcp_only(&self) -> bool {
        let entries: Vec<&str> = self.tls.split(',').map(str::trim).collect();
        entries.contains(&"tcp") && entries.iter().all(|t| matches!(*t, "tcp" | "self"))
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    pub(crate) fn spin(&self) -> Duration {
        Duration::from_micros(self.spin_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_parse_from_toml() {
        UcxConfig::default().validate().unwrap();
        let cfg: UcxConfig = toml::from_str(
            "tls = \"sm,tcp\"\nnet-devices = \"lo\"\nmm-error-handling = true\nthreads = 2\nspin-us = 50\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.tls, "sm,tcp");
        assert_eq!(cfg.threads, 2);
        assert_eq!(cfg.send_timeout_ms, UcxConfig::default().send_timeout_ms);
        assert!(toml::from_str::<UcxConfig>("tlss = \"tcp\"").is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let field = |cfg: UcxConfig| match cfg.validate() {
            Err(TransportError::Config { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        let base = UcxConfig::loopback("tcp");
        assert_eq!(
            field(UcxConfig {
                tls: "".into(),
                ..base.clone()
            }),
            "tls"
        );
        assert_eq!(
            field(UcxConfig {
                tls: "sm, tcp".into(),
                ..base.clone()
            }),
            "tls"
        );
        assert_eq!(
            field(UcxConfig {
                net_devices: "lo,".into(),
                ..base.clone()
            }),
            "net-devices"
        );
        assert_eq!(
            field(UcxConfig {
                threads: 0,
                ..base.clone()
            }),
            "threads"
        );
        assert_eq!(
            field(UcxConfig {
                spin_us: MAX_SPIN_US + 1,
                ..base.clone()
            }),
            "spin-us"
        );
        assert_eq!(
            field(UcxConfig {
                send_timeout_ms: 0,
                ..base
            }),
            "send-timeout-ms"
        );
    }

    #[test]
    fn tcp_only_detection() {
        assert!(UcxConfig::loopback("tcp").tls_is_tcp_only());
        assert!(UcxConfig::loopback("tcp,self").tls_is_tcp_only());
        assert!(!UcxConfig::loopback("sm,tcp").tls_is_tcp_only());
        assert!(!UcxConfig::loopback("all").tls_is_tcp_only());
        assert!(!UcxConfig::loopback("rc,sm,self").tls_is_tcp_only());
    }

    #[test]
    fn settings_name_ucx_variables_without_prefix() {
        let s = UcxConfig {
            mm_error_handling: false,
            ..UcxConfig::loopback("sm,tcp")
        }
        .ucx_settings();
        assert!(s.contains(&("TLS", "sm,tcp".to_string())));
        assert!(s.contains(&("NET_DEVICES", "lo".to_string())));
        assert!(s.contains(&("MM_ERROR_HANDLING", "n".to_string())));
        let tcp = UcxConfig::loopback("tcp").ucx_settings();
        assert!(!tcp.iter().any(|(name, _)| *name == "MM_ERROR_HANDLING"));
        assert!(UcxConfig::default()
            .ucx_settings()
            .contains(&("MM_ERROR_HANDLING", "y".to_string())));
    }
}
