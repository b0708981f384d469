//! The client's error type: what a caller of the volume API can see.
//!
//! Transient faults (redirects, timeouts, overload, leader changes) never surface here:
//! the retry core absorbs them. What does surface is permanent.

use basalt_proto::ids::VolumeId;
use basalt_proto::status::MdsError;

/// A permanent error returned to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Offset or length is not a multiple of the sector size the volume was opened with.
    #[error("misaligned I/O: offset {offset}, len {len}, sector {sector}")]
    Misaligned {
        /// Offset asked for.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// Sector size in force.
        sector: u64,
    },
    /// The range goes past the end of the volume.
    #[error("I/O beyond the volume: offset {offset}, len {len}, size {size}")]
    OutOfRange {
        /// Offset asked for.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// Volume size.
        size: u64,
    },
    /// The volume was deleted (or never existed).
    #[error("volume {volume} no longer exists")]
    VolumeGone {
        /// The volume.
        volume: VolumeId,
    },
    /// The MDS refused with a permanent error (permission, name, size, ...).
    #[error("metadata server refused: {0}")]
    Mds(MdsError),
    /// The chunkserver reported a request as invalid: a client bug, not retried.
    #[error("chunkserver rejected the request as invalid: {reason}")]
    InvalidRequest {
        /// The chunkserver's reason, rendered.
        reason: String,
    },
    /// The copyset has no space left for a write (chunk pool or WAL full).
    #[error("no space left on the chunkservers")]
    NoSpace,
    /// The I/O did not complete within the configured give-up bound
    /// (`RetryPolicy::give_up_after`; unbounded by default, as a block device prefers
    /// to wait over an I/O error).
    #[error("I/O gave up after {attempts} attempts")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
    },
    /// No MDS answered within the retry window (administrative calls only: the I/O path
    /// waits for the MDS instead).
    #[error("no MDS answered")]
    MdsUnavailable,
    /// The client configuration (file, environment, flags) is unusable.
    #[error("client configuration: {reason}")]
    Config {
        /// What is wrong and where.
        reason: String,
    },
    /// The volume was closed while I/O was pending.
    #[error("volume closed")]
    Closed,
}
