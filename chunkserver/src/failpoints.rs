//! Failpoints on the disk I/O paths, for disk-error tests (cargo feature `failpoints`,
//! off by default; without it every point compiles to nothing).
//!
//! | name            | fails                                                      |
//! |-----------------|------------------------------------------------------------|
//! | `chunk-write`   | a chunk data write (apply of a write, snapshot install)     |
//! | `chunk-read`    | a chunk data read (client read, read-modify-write, pulls)   |
//! | `chunk-sync`    | an fdatasync of a chunk file (snapshot build)               |
//! | `wal-write`     | the WAL's batch write (`pwrite` of a group commit)          |
//! | `wal-fdatasync` | the WAL's fdatasync                                         |
//!
//! A point that fires fails its operation with `EIO`, exactly as the disk would, so the
//! real error path runs (the disk fence, see [`crate::disk_fence`]). Configure points with
//! [`fail::cfg`] in a test, or with the `FAILPOINTS` environment variable of the daemon
//! (`FAILPOINTS='wal-fdatasync=20*off->return'`: the 21st WAL fdatasync fails). The action
//! `return` fires on every disk of the process; `return(SUFFIX)` only on the disks whose
//! data dir path ends with the component(s) `SUFFIX` (several chunkservers in one test
//! process, e.g. `return(cs2)`).

use std::path::Path;

/// Every failpoint name.
pub const NAMES: &[&str] = &[
    CHUNK_WRITE,
    CHUNK_READ,
    CHUNK_SYNC,
    WAL_WRITE,
    WAL_FDATASYNC,
];
/// A chunk data write.
pub const CHUNK_WRITE: &str = "chunk-write";
/// A chunk data read.
pub const CHUNK_READ: &str = "chunk-read";
/// An fdatasync of a chunk file.
pub const CHUNK_SYNC: &str = "chunk-sync";
/// The WAL's batch write.
pub const WAL_WRITE: &str = "wal-write";
/// The WAL's fdatasync.
pub const WAL_FDATASYNC: &str = "wal-fdatasync";

/// Evaluate failpoint `name` for the disk whose data dir is `root`: `Err(EIO)` when it
/// fires.
#[cfg(feature = "failpoints")]
pub(crate) fn disk(name: &'static str, root: &Path) -> std::io::Result<()> {
    let fires = fail::eval(name, |arg| arg.as_deref().is_none_or(|s| root.ends_with(s)));
    if fires == Some(true) {
        tracing::warn!(failpoint = name, root = %root.display(), "failpoint: injecting EIO");
        return Err(std::io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
}

/// Without the `failpoints` feature: never fires.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn disk(_name: &'static str, _root: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Configure failpoints from a `FAILPOINTS`-style spec: `name=actions` pairs separated by
/// `;` (the `fail` crate's syntax, e.g. `chunk-write=return;wal-fdatasync=5*off->return`).
/// Returns how many points were configured. Without the `failpoints` feature a non-empty
/// spec is refused (the points do not exist in this build).
pub fn configure(spec: &str) -> crate::error::Result<usize> {
    let bad = |reason: String| crate::error::ChunkServerError::Config {
        field: "FAILPOINTS",
        reason,
    };
    let mut points = Vec::new();
    for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, actions)) = item.split_once('=') else {
            return Err(bad(format!("{item:?}: expected name=actions")));
        };
        let name = name.trim();
        if !NAMES.contains(&name) {
            return Err(bad(format!(
                "unknown failpoint {name:?} (known: {NAMES:?})"
            )));
        }
        points.push((name, actions.trim()));
    }
    if points.is_empty() {
        return Ok(0);
    }
    if !cfg!(feature = "failpoints") {
        return Err(bad(
            "this build has no failpoints (cargo feature `failpoints`)".into(),
        ));
    }
    for (name, actions) in &points {
        #[cfg(feature = "failpoints")]
        fail::cfg(*name, actions).map_err(|e| bad(format!("{name}: {e}")))?;
        let _ = (name, actions);
    }
    Ok(points.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_are_refused() {
        #[cfg(feature = "failpoints")]
        let _scenario = fail::FailScenario::setup();
        assert_eq!(configure("").unwrap(), 0);
        assert_eq!(configure(" ; ").unwrap(), 0);
        assert!(configure("chunk-write").is_err());
        assert!(configure("no-such-point=return").is_err());
        assert_eq!(
            configure("chunk-write=return").is_ok(),
            cfg!(feature = "failpoints"),
            "a build without the feature refuses a real spec"
        );
        #[cfg(feature = "failpoints")]
        fail::remove(CHUNK_WRITE);
    }

    #[cfg(feature = "failpoints")]
    #[test]
    fn points_fire_only_on_their_scope() {
        let _scenario = fail::FailScenario::setup();
        let a = Path::new("/data/cs1");
        let b = Path::new("/data/cs2");
        assert!(disk(CHUNK_WRITE, a).is_ok());
        assert_eq!(configure("chunk-write=return(cs2)").unwrap(), 1);
        assert!(disk(CHUNK_WRITE, a).is_ok());
        let e = disk(CHUNK_WRITE, b).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert!(disk(CHUNK_READ, b).is_ok());
        assert!(configure("chunk-read=bogus-action").is_err());
        fail::cfg(WAL_FDATASYNC, "1*off->return").unwrap();
        assert!(disk(WAL_FDATASYNC, a).is_ok());
        assert!(disk(WAL_FDATASYNC, a).is_err());
        assert!(disk(WAL_FDATASYNC, b).is_err());
    }
}
