//! The cluster secret: a file of hex digits (at least 32 random bytes), readable only by
//! the daemons' user.

use crate::error::{SecretProblem, TransportError};
use rand::RngCore;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The shared key that authenticates cluster members to each other. Its `Debug` output
/// does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterSecret({} bytes)", self.key.len())
    }
}

impl ClusterSecret {
    /// Fewest bytes of key accepted (and generated).
    pub const MIN_LEN: usize = 32;
    /// Most bytes of key accepted.
    pub const MAX_LEN: usize = 1024;

    /// A new random secret of [`Self::MIN_LEN`] bytes from the operating system.
    pub fn generate() -> Self {
        let mut key = vec![0u8; Self::MIN_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        ClusterSecret { key }
    }

    /// A secret from raw bytes (tests, or a key kept elsewhere).
    pub fn from_bytes(key: Vec<u8>) -> Result<Self, TransportError> {
        Self::checked(key, "<memory>")
    }

    /// A secret from its file form: hex digits, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> Result<Self, TransportError> {
        Self::parse(text, "<memory>")
    }

    /// Load the secret file. Refuses a file that other users may read or write, and one
    /// that is not hex or holds fewer than [`Self::MIN_LEN`] bytes; warns when the file's
    /// group may read it.
    pub fn load(path: &Path) -> Result<Self, TransportError> {
        let io_err = |op: &'static str, e: std::io::Error| TransportError::AuthSecretIo {
            path: path.to_path_buf(),
            op,
            kind: e.kind(),
            message: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(|e| io_err("stat", e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(TransportError::AuthSecretPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        if mode & 0o070 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "cluster secret file is accessible to its group; chmod 600 unless that is intended"
            );
        }
        // a secret file is small; do not read a huge file someone pointed us at
        let limit = (Self::MAX_LEN * 2 + 64) as u64;
        if meta.len() > limit {
            return Err(TransportError::AuthSecretInvalid {
                source_name: path.display().to_string(),
                problem: SecretProblem::TooLong {
                    bytes: (meta.len() / 2) as usize,
                    max: Self::MAX_LEN,
                },
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| io_err("read", e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Write the secret to a new file with mode 0600 (never overwrites: an existing file
    /// is an error, so a cluster's secret is not replaced by accident).
    pub fn write_new(&self, path: &Path) -> Result<(), TransportError> {
        let io_err = |op: &'static str, e: std::io::Error| TransportError::AuthSecretIo {
            path: path.to_path_buf(),
            op,
            kind: e.kind(),
            message: e.to_string(),
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_err("create", e))?;
        // the umask cannot widen 0600, but a pre-set default ACL could; be explicit
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err("chmod", e))?;
        let mut text = self.to_hex();
        text.push('\n');
        f.write_all(text.as_bytes())
            .map_err(|e| io_err("write", e))?;
        f.sync_all().map_err(|e| io_err("sync", e))?;
        Ok(())
    }

    /// The file form: lower-case hex.
    pub fn to_hex(&self) -> String {
        self.key.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    fn parse(text: &str, source_name: &str) -> Result<Self, TransportError> {
        let invalid = |problem| TransportError::AuthSecretInvalid {
            source_name: source_name.to_string(),
            problem,
        };
        let text = text.trim();
        if let Some(position) = text.chars().position(|c| !c.is_ascii_hexdigit()) {
            return Err(invalid(SecretProblem::NotHex { position }));
        }
        if text.len() % 2 != 0 {
            return Err(invalid(SecretProblem::OddLength));
        }
        let key = text
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                // both are ASCII hex digits (checked above)
                let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                digit(pair[0]) << 4 | digit(pair[1])
            })
            .collect();
        Self::checked(key, source_name)
    }

    fn checked(key: Vec<u8>, source_name: &str) -> Result<Self, TransportError> {
        let problem = if key.len() < Self::MIN_LEN {
            SecretProblem::TooShort {
                bytes: key.len(),
                min: Self::MIN_LEN,
            }
        } else if key.len() > Self::MAX_LEN {
            SecretProblem::TooLong {
                bytes: key.len(),
                max: Self::MAX_LEN,
            }
        } else {
            return Ok(ClusterSecret { key });
        };
        Err(TransportError::AuthSecretInvalid {
            source_name: source_name.to_string(),
            problem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(e: TransportError) -> SecretProblem {
        match e {
            TransportError::AuthSecretInvalid { problem, .. } => problem,
            other => panic!("expected AuthSecretInvalid, got {other:?}"),
        }
    }

    #[test]
    fn generate_write_load_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.secret");
        let s = ClusterSecret::generate();
        assert_ne!(
            s,
            ClusterSecret::generate(),
            "two generated secrets are equal"
        );
        s.write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(ClusterSecret::load(&path).unwrap(), s);
        // never overwritten
        assert!(matches!(
            ClusterSecret::generate().write_new(&path),
            Err(TransportError::AuthSecretIo {
                op: "create",
                kind: std::io::ErrorKind::AlreadyExists,
                ..
            })
        ));
        assert_eq!(ClusterSecret::load(&path).unwrap(), s);
        assert!(!format!("{s:?}").contains(&s.to_hex()[..8]));
    }

    #[test]
    fn bad_files_are_refused_with_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let good = "ab".repeat(32);
        let p = write("world", &good, 0o644);
        assert!(matches!(
            ClusterSecret::load(&p),
            Err(TransportError::AuthSecretPermissions { mode: 0o644, .. })
        ));
        // group-readable is accepted with a warning
        let p = write("group", &format!("  {good}\n"), 0o640);
        assert_eq!(ClusterSecret::load(&p).unwrap().key(), &[0xab; 32][..]);
        let p = write("empty", "\n", 0o600);
        assert_eq!(
            problem(ClusterSecret::load(&p).unwrap_err()),
            SecretProblem::TooShort { bytes: 0, min: 32 }
        );
        let p = write("short", &"ab".repeat(31), 0o600);
        assert_eq!(
            problem(ClusterSecret::load(&p).unwrap_err()),
            SecretProblem::TooShort { bytes: 31, min: 32 }
        );
        let p = write("nothex", &format!("{}zz", "ab".repeat(32)), 0o600);
        assert_eq!(
            problem(ClusterSecret::load(&p).unwrap_err()),
            SecretProblem::NotHex { position: 64 }
        );
        let p = write("odd", &format!("{good}a"), 0o600);
        assert_eq!(
            problem(ClusterSecret::load(&p).unwrap_err()),
            SecretProblem::OddLength
        );
        let p = write("huge", &"ab".repeat(4096), 0o600);
        assert!(matches!(
            problem(ClusterSecret::load(&p).unwrap_err()),
            SecretProblem::TooLong { .. }
        ));
        assert!(matches!(
            ClusterSecret::load(&dir.path().join("missing")),
            Err(TransportError::AuthSecretIo {
                kind: std::io::ErrorKind::NotFound,
                ..
            })
        ));
        assert_eq!(
            problem(ClusterSecret::from_bytes(vec![1; 8]).unwrap_err()),
            SecretProblem::TooShort { bytes: 8, min: 32 }
        );
        assert_eq!(
            ClusterSecret::from_hex(&good).unwrap(),
            ClusterSecret::from_bytes(vec![0xab; 32]).unwrap()
        );
    }
}
