//! Running the host's administration tools (`ip`, `iptables`, `mount`) for fault tests
//! that change the machine: network namespaces ([`crate::netns`]) and small filesystems
//! ([`crate::tmpfs`]). These need root; [`is_root`] lets a test say why it skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a host administration step failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The program could not be started (not installed, not on PATH).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line, for the message.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// No free name or subnet was found for a test network.
    #[error("no free test subnet 10.77.x.0/24 (all candidates in use)")]
    NoFreeSubnet,
    /// A file of the test setup could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Whether this process runs as root (namespaces, iptables and mounts need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The first of `candidates` that exists, else the bare name of the last (left to PATH).
pub fn find_program(candidates: &[&str]) -> PathBuf {
    candidates
        .iter()
        .map(Path::new)
        .find(|p| p.is_absolute() && p.exists())
        .or_else(|| candidates.last().map(Path::new))
        .unwrap_or(Path::new("true"))
        .to_path_buf()
}

/// Run `program args..` to completion; its stdout on success.
pub fn run(program: &Path, args: &[&str]) -> Result<String, HostError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| HostError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(HostError::Failed {
        command: format!("{} {}", program.display(), args.join(" ")),
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_stdout_or_a_failure_with_stderr() {
        let sh = find_program(&["/bin/sh", "sh"]);
        assert_eq!(run(&sh, &["-c", "echo hi"]).unwrap(), "hi\n");
        match run(&sh, &["-c", "echo broken >&2; exit 4"]) {
            Err(HostError::Failed { stderr, .. }) => assert_eq!(stderr, "broken"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run(Path::new("/nonexistent/prog"), &[]),
            Err(HostError::Spawn { .. })
        ));
    }
}
