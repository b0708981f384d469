//! The client configuration file: written by `basalt dev-cluster up` (and by operators),
//! read by every front (NBD server, fio engine, CLI, bench) so none needs address flags.
//!
//! Location: `$BASALT_CLIENT_CONF`, else `$XDG_CONFIG_HOME/basalt/client.toml`, else
//! `$HOME/.config/basalt/client.toml`. `$BASALT_MDS` (comma-separated addresses) overrides
//! the file's MDS list; command-line flags override both.
//!
//! ```toml
//! mds = ["127.0.0.1:6700", "127.0.0.1:6701", "127.0.0.1:6702"]
//! owner = "basalt"
//! key-file = "/etc/basalt/basalt.key"   # the owner's key (hex, mode 0600); optional
//! sector = 512
//! max-inflight = 256
//! [transport]          # basalt_transport::TransportConfig
//! fast-path = "auto"
//! [ucx]                # basalt_transport::ucx::UcxConfig (builds with the `ucx` feature)
//! tls = "sm,tcp"
//! ```

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::volume::Cluster;
use basalt_proto::credential::OwnerKey;
use basalt_proto::hello::{Identity, Role};
use basalt_transport::{TcpTransport, TransportConfig, TransportOptions};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Environment variable naming the client configuration file.
pub const CONF_ENV: &str = "BASALT_CLIENT_CONF";
/// Environment variable overriding the MDS addresses.
pub const MDS_ENV: &str = "BASALT_MDS";

/// The file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClientFile {
    /// MDS addresses.
    #[serde(default)]
    pub mds: Vec<SocketAddr>,
    /// Owner name for volumes this client creates and opens (`admin` with the admin
    /// credential).
    #[serde(default = "default_owner")]
    pub owner: String,
    /// File holding `owner`'s key (hex; refused when other users may read it). Needed
    /// to open or change volumes on an MDS that enforces access control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Sector size I/O must be aligned to: 512 or 4096.
    #[serde(default = "default_sector")]
    pub sector: u64,
    /// Chunk requests in flight per volume.
    #[serde(default = "default_inflight")]
    pub max_inflight: usize,
    /// Transport tunables.
    #[serde(default)]
    pub transport: TransportConfig,
    /// UCX settings (used by builds with the `ucx` feature; ignored with a log line otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ucx: Option<toml::Table>,
}

fn default_owner() -> String {
    "basalt".into()
}
fn default_sector() -> u64 {
    512
}
fn default_inflight() -> usize {
    256
}

impl Default for ClientFile {
    fn default() -> Self {
        ClientFile {
            mds: Vec::new(),
            owner: default_owner(),
            key_file: None,
            sector: default_sector(),
            max_inflight: default_inflight(),
            transport: TransportConfig::default(),
            ucx: None,
        }
    }
}

fn config_error(reason: impl Into<String>) -> ClientError {
    ClientError::Config {
        reason: reason.into(),
    }
}

impl ClientFile {
    /// Where the file is looked for.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(CONF_ENV) {
            return Some(PathBuf::from(p));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("basalt").join("client.toml"))
    }

    /// Parse a file's text.
    pub fn from_toml(text: &str) -> Result<Self, ClientError> {
        let f: ClientFile = toml::from_str(text).map_err(|e| config_error(e.to_string()))?;
        f.validate()?;
        Ok(f)
    }

    /// Load `path`, or the default path; a missing default file gives the defaults
    /// (addresses must then come from `$BASALT_MDS` or flags). `$BASALT_MDS` is applied.
    pub fn load(path: Option<&Path>) -> Result<Self, ClientError> {
        let mut file = match path.map(PathBuf::from).or_else(Self::default_path) {
            Some(p) if p.exists() || path.is_some() => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| config_error(format!("cannot read {}: {e}", p.display())))?;
                Self::from_toml(&text).map_err(|e| config_error(format!("{}: {e}", p.display())))?
            }
            _ => ClientFile::default(),
        };
        if let Ok(list) = std::env::var(MDS_ENV) {
            file.mds = parse_addrs(&list)?;
        }
        Ok(file)
    }

    /// Write the file (the dev cluster does this), creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let text = toml::to_string_pretty(self).map_err(|e| config_error(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| config_error(format!("{}: {e}", dir.display())))?;
        }
        std::fs::write(path, text).map_err(|e| config_error(format!("{}: {e}", path.display())))
    }

    /// Check values.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.sector != 512 && self.sector != 4096 {
            return Err(config_error(format!(
                "sector must be 512 or 4096, not {}",
                self.sector
            )));
        }
        if self.max_inflight == 0 {
            return Err(config_error("max-inflight must be at least 1"));
        }
        self.transport
            .validate()
            .map_err(|e| config_error(format!("[transport]: {e}")))
    }

    /// The library configuration this file describes.
    pub fn client_config(&self) -> Result<ClientConfig, ClientError> {
        if self.mds.is_empty() {
            return Err(config_error(format!(
                "no MDS addresses: start a cluster with `basalt dev-cluster up`, or set {MDS_ENV}, or pass --mds"
            )));
        }
        let mut cfg = ClientConfig::new(self.mds.clone());
        cfg.owner = self.owner.clone();
        cfg.key = self.key_file.as_deref().map(load_key).transpose()?;
        cfg.sector = self.sector;
        cfg.max_inflight = self.max_inflight;
        Ok(cfg)
    }

    /// A TCP transport (with UCX when built in and configured) for a process of `role`.
    pub fn transport(&self, role: Role, name: &str) -> Result<TcpTransport, ClientError> {
        let identity = Identity {
            role,
            chunkserver: None,
            name: name.to_string(),
            cluster: String::new(),
        };
        #[allow(unused_mut)]
        let mut opts = TransportOptions::new(identity).config(self.transport.clone());
        #[cfg(feature = "ucx")]
        if let Some(table) = &self.ucx {
            let ucx: basalt_transport::ucx::UcxConfig = table
                .clone()
                .try_into()
                .map_err(|e| config_error(format!("[ucx]: {e}")))?;
            match basalt_transport::ucx::UcxProvider::new(ucx) {
                Ok(p) => opts = opts.fast_path(std::sync::Arc::new(p)),
                Err(e) => tracing::warn!(error = %e, "UCX unavailable; using TCP only"),
            }
        }
        #[cfg(not(feature = "ucx"))]
        if self.ucx.is_some() {
            tracing::info!("[ucx] configured but this build has no UCX support; using TCP");
        }
        TcpTransport::new(opts).map_err(|e| config_error(format!("transport: {e}")))
    }

    /// A cluster handle for a client process.
    pub fn cluster(&self) -> Result<Cluster<TcpTransport>, ClientError> {
        let name = format!("client-{}", std::process::id());
        Ok(Cluster::new(
            self.transport(Role::Client, &name)?,
            self.client_config()?,
        ))
    }
}

/// Read an owner key file: hex text, not readable by other users.
pub fn load_key(path: &Path) -> Result<OwnerKey, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_error(format!("key-file {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| config_error(format!("key-file {}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o007 != 0 {
            return Err(config_error(format!(
                "key-file {}: readable by other users (mode {:o}); run chmod 600",
                path.display(),
                mode & 0o777
            )));
        }
    }
    OwnerKey::from_hex(&text).map_err(|e| config_error(format!("key-file {}: {e}", path.display())))
}

/// Write a new owner key file (mode 0600); refuses to replace an existing file.
pub fn write_key(path: &Path, key: &OwnerKey) -> Result<(), ClientError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| config_error(format!("{}: {e}", path.display())))?;
    writeln!(f, "{}", key.to_hex()).map_err(|e| config_error(format!("{}: {e}", path.display())))
}

/// Parse `host:port[,host:port...]`.
pub fn parse_addrs(list: &str) -> Result<Vec<SocketAddr>, ClientError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e| config_error(format!("bad address {s:?}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_in_the_docs_parses() {
        let f = ClientFile::from_toml(
            r#"
mds = ["127.0.0.1:6700", "127.0.0.1:6701"]
owner = "alice"
sector = 4096
[transport]
fast-path = "off"
"#,
        )
        .unwrap();
        assert_eq!(f.mds.len(), 2);
        assert_eq!(f.client_config().unwrap().sector, 4096);
        assert_eq!(f.client_config().unwrap().owner, "alice");
    }

    #[test]
    fn bad_files_give_clear_errors() {
        for (text, needle) in [
            ("sector = 1000", "sector must be"),
            ("mds = [\"nope\"]", "invalid socket address"),
            ("bogus = 1", "unknown field"),
            ("max-inflight = 0", "max-inflight"),
        ] {
            let e = ClientFile::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let e = ClientFile::default()
            .client_config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("basalt dev-cluster up"), "{e}");
    }

    #[test]
    fn key_files_are_read_checked_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.key");
        let key = OwnerKey::from_bytes([7; 32]);
        write_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(write_key(&path, &key).is_err(), "overwrote a key file");
        let f = ClientFile::from_toml(&format!(
            "mds = [\"127.0.0.1:1\"]\nowner = \"alice\"\nkey-file = {:?}\n",
            path.to_str().unwrap()
        ))
        .unwrap();
        let cfg = f.client_config().unwrap();
        assert_eq!(cfg.principal().map(|(o, _)| o), Some("alice"));
        assert_eq!(cfg.key, Some(key));
        // Readable by others: refused. Not hex: refused. Missing: refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = f.client_config().unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "zz").unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_key(&bad).is_err());
        assert!(load_key(&dir.path().join("missing")).is_err());
        // Without a key file nothing is proven.
        assert!(ClientFile::default().key_file.is_none());
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/client.toml");
        let f = ClientFile {
            mds: parse_addrs("127.0.0.1:1, 127.0.0.1:2").unwrap(),
            ..Default::default()
        };
        f.save(&path).unwrap();
        assert_eq!(ClientFile::load(Some(&path)).unwrap().mds, f.mds);
        assert!(ClientFile::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
