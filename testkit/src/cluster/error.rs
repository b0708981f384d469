//! Errors of the process cluster.

use std::path::PathBuf;
use std::time::Duration;

/// Why a dev-cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The spec asks for something the cluster cannot be built with (0 MDS, more zones
    /// than chunkservers, ...).
    #[error("invalid cluster spec: {field}: {reason}")]
    InvalidSpec {
        /// The offending field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A daemon binary was not found next to the current executable, in its parent
    /// directory, in `$BASALT_BIN_DIR`, or (etcd) on `$PATH`.
    #[error("binary {name} not found (looked in {searched:?}; set BASALT_BIN_DIR or build with `cargo build --bins`)")]
    BinaryNotFound {
        /// Binary name.
        name: String,
        /// Directories searched.
        searched: Vec<PathBuf>,
    },
    /// A file or directory of the state dir could not be read or written.
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
    /// A process could not be spawned.
    #[error("cannot spawn {name} ({program}): {source}")]
    Spawn {
        /// Process name (`mds-1`, ...).
        name: String,
        /// Program path.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A one-shot step (chunkserver `format`) exited unsuccessfully.
    #[error("{name}: {step} failed ({status}): {log_tail}")]
    StepFailed {
        /// Process name.
        name: String,
        /// The step.
        step: &'static str,
        /// Exit status.
        status: std::process::ExitStatus,
        /// Last lines of its stderr.
        log_tail: String,
    },
    /// A process exited while the cluster waited for it to become ready.
    #[error("{name} exited while starting: {log_tail}")]
    Exited {
        /// Process name.
        name: String,
        /// Last lines of its log.
        log_tail: String,
    },
    /// A readiness condition did not hold before its deadline.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// The condition.
        what: String,
        /// Time waited.
        waited: Duration,
    },
    /// The state file is missing (no cluster in this state dir).
    #[error("no dev cluster in {state_dir} (no cluster.toml)")]
    NoCluster {
        /// The state dir.
        state_dir: PathBuf,
    },
    /// `up` was asked for a state dir whose cluster still has live processes.
    #[error("a dev cluster is already running in {state_dir} (run `down` first)")]
    AlreadyRunning {
        /// The state dir.
        state_dir: PathBuf,
    },
    /// The state file does not parse.
    #[error("state file {path}: {reason}")]
    BadStateFile {
        /// The file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// A process name given to kill/stop/cont/restart is not in the cluster.
    #[error("no process named {name:?} in this cluster (have: {known})")]
    UnknownProcess {
        /// The name asked for.
        name: String,
        /// The names known, comma separated.
        known: String,
    },
    /// Writing the client configuration file failed.
    #[error("client configuration: {0}")]
    ClientConfig(#[from] basalt_client::ClientError),
}

/// Shorthand.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ClusterError {
    let path = path.into();
    move |source| ClusterError::Io { op, path, source }
}
