//! A small tmpfs mounted for one test (a chunkserver data dir that can really fill up),
//! unmounted when dropped, also when the test panics. Needs root.
//!
//! Mount points named by [`mount_name`] carry the test's pid: [`Tmpfs::mount`] first
//! unmounts such tmpfs mounts left by a run that was killed outright (its pid no longer
//! runs), since a tmpfs keeps its memory until unmounted.

use crate::host::{find_program, run, HostError};
use std::path::{Path, PathBuf};

/// A mounted tmpfs; unmounted (lazily, if still busy) on drop.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    mount: PathBuf,
    umount: PathBuf,
}

/// Prefix of [`mount_name`]s.
const NAME_PREFIX: &str = "basalt-disk-";

/// A mount point name for this process's disk `i` (`basalt-disk-<pid>-<i>`).
pub fn mount_name(i: usize) -> String {
    format!("{NAME_PREFIX}{}-{i}", std::process::id())
}

/// The pid in a mount point path whose last component is a [`mount_name`].
fn pid_of_mount(mount_point: &str) -> Option<u32> {
    let name = mount_point.rsplit('/').next()?;
    let rest = name.strip_prefix(NAME_PREFIX)?;
    rest.split('-').next()?.parse().ok()
}

/// Unmount tmpfs mounts named by [`mount_name`] whose process is gone.
fn sweep_stale(umount: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_), Some(point), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let stale =
            pid_of_mount(point).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if fstype == "tmpfs" && stale {
            let _ = run(umount, &["-l", point]);
            let _ = std::fs::remove_dir(point);
        }
    }
}

impl Tmpfs {
    /// Mount a tmpfs of `size` bytes on `path` (created if missing).
    pub fn mount(path: impl Into<PathBuf>, size: u64) -> Result<Tmpfs, HostError> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(|source| HostError::Io {
            op: "create mount point",
            path: path.clone(),
            source,
        })?;
        let me = Tmpfs {
            mount: find_program(&["/usr/bin/mount", "/bin/mount", "mount"]),
            umount: find_program(&["/usr/bin/umount", "/bin/umount", "umount"]),
            path,
        };
        sweep_stale(&me.umount);
        let p = me.path.to_string_lossy();
        run(
            &me.mount,
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &p],
        )?;
        Ok(me)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Grow (or shrink) the filesystem to `size` bytes in place.
    pub fn resize(&self, size: u64) -> Result<(), HostError> {
        let p = self.path.to_string_lossy();
        run(&self.mount, &["-o", &format!("remount,size={size}"), &p]).map(|_| ())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let p = self.path.to_string_lossy();
        if run(&self.umount, &[&p]).is_err() {
            // A daemon still has files open: detach now, freed when they close.
            let _ = run(&self.umount, &["-l", &p]);
        }
    }
}

/// Bytes available on the filesystem holding `path` (`statvfs`).
pub fn available_bytes(path: &Path) -> Result<u64, HostError> {
    use std::os::unix::ffi::OsStrExt;
    let io_err = |source| HostError::Io {
        op: "statvfs",
        path: path.to_path_buf(),
        source,
    };
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "path contains a NUL byte",
        ))
    })?;
    // SAFETY: statvfs is plain data; all-zero bytes are a valid value of it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` a writable statvfs that
    // outlives the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io_err(std::io::Error::last_os_error()));
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between libc targets
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_names_carry_the_pid() {
        let name = mount_name(2);
        assert_eq!(
            pid_of_mount(&format!("/tmp/x/{name}")),
            Some(std::process::id())
        );
        assert_eq!(pid_of_mount("/tmp/.tmpAbc/basalt-disk-77-0"), Some(77));
        assert_eq!(pid_of_mount("/tmp/.tmpAbc/disk-1"), None);
        assert_eq!(pid_of_mount("/dev/shm"), None);
    }
}
