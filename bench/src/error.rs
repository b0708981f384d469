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
