//! Where the daemon binaries are: `$BASALT_BIN_DIR`, else next to the current executable
//! (or its parent directory: test binaries live in `target/<profile>/deps`). etcd:
//! `$BASALT_ETCD`, else `$PATH`.

use super::error::{ClusterError, Result};
use super::plan::Binaries;
use std::path::{Path, PathBuf};

/// Environment variable naming the directory of `basalt-mds` and `basalt-chunkserver`.
pub const BIN_DIR_ENV: &str = "BASALT_BIN_DIR";
/// Environment variable naming the etcd binary.
pub const ETCD_ENV: &str = "BASALT_ETCD";

fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os(BIN_DIR_ENV) {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(d) = exe.parent() {
            dirs.push(d.to_path_buf());
            if let Some(up) = d.parent() {
                dirs.push(up.to_path_buf());
            }
        }
    }
    dirs
}

fn is_file(p: &Path) -> bool {
    p.metadata().is_ok_and(|m| m.is_file())
}

fn find_in(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| is_file(p))
        .ok_or_else(|| ClusterError::BinaryNotFound {
            name: name.into(),
            searched: dirs.to_vec(),
        })
}

/// Locate every binary a cluster needs.
pub fn find() -> Result<Binaries> {
    let dirs = search_dirs();
    let etcd = match std::env::var_os(ETCD_ENV) {
        Some(p) => PathBuf::from(p),
        None => {
            let path: Vec<PathBuf> = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default();
            find_in("etcd", &path)?
        }
    };
    Ok(Binaries {
        etcd,
        mds: find_in("basalt-mds", &dirs)?,
        chunkserver: find_in("basalt-chunkserver", &dirs)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_file_in_the_first_dir_that_has_it_and_names_the_dirs_otherwise() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("basalt-mds"), "").unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(
            find_in("basalt-mds", &dirs).unwrap(),
            b.path().join("basalt-mds")
        );
        match find_in("basalt-chunkserver", &dirs) {
            Err(ClusterError::BinaryNotFound { searched, .. }) => assert_eq!(searched, dirs),
            other => panic!("{other:?}"),
        }
    }
}
