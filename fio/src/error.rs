//! The crate's one error type.

/// Everything the engine can fail with: bad options (reported by fio as a failed job
/// setup) and failed I/O (reported to fio as a positive errno in the io_u).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FioError {
    /// The `volume` option is missing or empty.
    #[error("option volume is required (a volume name, or mem:SIZE)")]
    MissingVolume,
    /// `volume=mem:SIZE` with a size that is not a positive number with an optional
    /// k/m/g/t suffix.
    #[error("bad size in volume={spec}: expected mem:SIZE, e.g. mem:64m")]
    BadMemSize {
        /// The whole option value.
        spec: String,
    },
    /// A named volume could not be opened: no MDS addresses (option `mds`, the client
    /// configuration file or `$BASALT_MDS`), no MDS answering, or the volume refused.
    #[error("volume {volume}: {reason}")]
    ClientOpen {
        /// The volume name given.
        volume: String,
        /// The client library's explanation.
        reason: String,
    },
    /// The client library failed an I/O permanently (transient faults are retried inside it).
    #[error("volume i/o failed: {reason}")]
    Client {
        /// The errno handed to fio.
        errno: i32,
        /// The client library's explanation.
        reason: String,
    },
    /// The `mds` list has an empty entry.
    #[error("bad mds list {list:?}: empty address")]
    BadMds {
        /// The option value.
        list: String,
    },
    /// `transport` is not one of tcp, ucx, auto (fio checks it too; this guards direct use).
    #[error("bad transport {value:?}: expected tcp, ucx or auto")]
    BadTransport {
        /// The option value.
        value: String,
    },
    /// An option string handed over by fio is not UTF-8.
    #[error("option {option} is not valid UTF-8")]
    NotUtf8 {
        /// The option name.
        option: &'static str,
    },
    /// The per-job async runtime could not be created.
    #[error("cannot start the engine runtime: {message}")]
    Runtime {
        /// The OS error.
        message: String,
    },
    /// An I/O reaches past the end of the volume.
    #[error("i/o at {offset}+{len} is beyond the volume size {size}")]
    OutOfRange {
        /// Start of the I/O.
        offset: u64,
        /// Its length.
        len: u64,
        /// The volume size.
        size: u64,
    },
    /// fio asked for a data direction the engine does not implement (e.g. sync_file_range).
    #[error("unsupported i/o direction {ddir}")]
    UnsupportedDirection {
        /// fio's `enum fio_ddir` value.
        ddir: i32,
    },
    /// More I/Os were queued than the job's iodepth.
    #[error("queue full: {depth} i/os already in flight")]
    QueueFull {
        /// The job's iodepth.
        depth: usize,
    },
    /// An I/O was issued after the job closed its volume (fio's cleanup ran).
    #[error("volume already closed")]
    Closed,
    /// The backend failed an I/O.
    #[error("backend i/o error: {reason}")]
    Backend {
        /// What failed.
        reason: String,
    },
}

impl FioError {
    /// The positive errno fio gets in `io_u->error` for a failed I/O.
    pub fn errno(&self) -> u32 {
        let e = match self {
            FioError::OutOfRange { .. } => libc_errno::EINVAL,
            FioError::UnsupportedDirection { .. } => libc_errno::EOPNOTSUPP,
            FioError::QueueFull { .. } => libc_errno::EBUSY,
            FioError::Client { errno, .. } => *errno,
            _ => libc_errno::EIO,
        };
        e as u32
    }
}

/// The errno values used (Linux), without a libc dependency.
mod libc_errno {
    pub const EIO: i32 = 5;
    pub const EBUSY: i32 = 16;
    pub const EINVAL: i32 = 22;
    pub const EOPNOTSUPP: i32 = 95;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_positive_and_distinct_by_kind() {
        let range = FioError::OutOfRange {
            offset: 1,
            len: 2,
            size: 2,
        };
        assert_eq!(range.errno(), 22);
        assert_eq!(FioError::UnsupportedDirection { ddir: 5 }.errno(), 95);
        assert_eq!(FioError::Backend { reason: "x".into() }.errno(), 5);
    }
}
