//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong while benchmarking.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A duration argument (`--duration`, `--warmup`) is not `<number><unit>`.
    #[error("bad duration {input:?}: {reason}")]
    BadDuration {
        /// The argument as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A size argument is not `<number>[K|M|G][iB]`.
    #[error("bad size {input:?}")]
    BadSize {
        /// The argument as given.
        input: String,
    },
    /// A socket, file or process operation of a benchmark failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file under `/proc` did not have the expected format.
    #[error("cannot parse {path}: {reason}")]
    ProcFormat {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
    /// `ucx_perftest` printed no final result line.
    #[error("ucx_perftest printed no `Final:` line (exit {status}): {tail}")]
    PerftestOutput {
        /// Its exit status.
        status: String,
        /// The end of its output, for the reader.
        tail: String,
    },
    /// A histogram could not be created (bad bounds) or recorded into.
    #[error("histogram: {reason}")]
    Histogram {
        /// hdrhistogram's explanation.
        reason: String,
    },
    /// The transport under test failed.
    #[error("transport ({backend}): {source}")]
    Transport {
        /// The backend being measured.
        backend: String,
        /// The transport's error.
        #[source]
        source: basalt_transport::TransportError,
    },
    /// Writing the JSON report failed.
    #[error("json report: {source}")]
    Json {
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A volume operation through the client library failed (`volume` subcommand).
    #[error("volume {op} at offset {offset}: {source}")]
    Client {
        /// The operation (`read`, `write`, `open`, `create`).
        op: &'static str,
        /// Byte offset of the I/O (0 for non-I/O operations).
        offset: u64,
        /// The client's error.
        #[source]
        source: basalt_client::ClientError,
    },
    /// A read returned other bytes than the ones written there (`volume --verify`).
    #[error("verify: {len} bytes read at offset {offset} differ from what was written (first difference at byte {first_diff})")]
    VerifyMismatch {
        /// Byte offset of the read.
        offset: u64,
        /// Length of the read.
        len: u64,
        /// Index of the first differing byte within the read.
        first_diff: usize,
    },
    /// A `volume` workload argument (`--cases`, `--pattern`, `--rwmix-read`) is malformed.
    #[error("bad workload {input:?}: {reason}")]
    BadWorkload {
        /// The argument as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The chunkserver's storage or raft layer under test failed (setup or an I/O).
    #[error("chunkserver ({what}): {source}")]
    ChunkServer {
        /// The operation.
        what: String,
        /// The chunkserver's error.
        #[source]
        source: basalt_chunkserver::ChunkServerError,
    },
    /// A chunk service call under test was refused.
    #[error("chunk service ({what}): {error:?}")]
    ChunkService {
        /// The operation.
        what: String,
        /// The typed refusal.
        error: basalt_proto::status::ChunkError,
    },
    /// An I/O backend name is not one the storage benchmarks know (`uring`, `sync`).
    #[error("unknown I/O backend {name:?} (uring, sync)")]
    BadBackend {
        /// The name as given.
        name: String,
    },
    /// A benchmark setting is refused (e.g. raft timers openraft rejects).
    #[error("bad setting: {reason}")]
    BadSetting {
        /// Why.
        reason: String,
    },
    /// A benchmark set-up step did not finish in time (no leader elected, ...).
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound, seconds.
        secs: u64,
    },
    /// A chunkserver's metrics endpoint could not be read, or answered something other
    /// than `200 OK` (`volume --breakdown`).
    #[error("metrics of {addr}: {reason}")]
    Scrape {
        /// The metrics endpoint.
        addr: std::net::SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// Drawing the plot failed.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// plotters' explanation.
        reason: String,
    },
}

impl BenchError {
    /// Wrap an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}
