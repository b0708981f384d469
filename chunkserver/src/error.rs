//! The chunkserver's error type. Variants carry ids as fields.

use basalt_proto::ids::{ChunkId, GroupId};

/// Everything the chunkserver library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ChunkServerError {
    /// An I/O error on the data disk (the chunkserver fences itself off the disk).
    #[error("disk I/O error during {op}: {source}")]
    Disk {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The chunk file pool or the WAL segment pool is exhausted.
    #[error("no space left in the {pool} pool")]
    NoSpace {
        /// Which pool ("chunk" or "wal").
        pool: &'static str,
    },
    /// `format` found less free space on the data dir's filesystem than the pools it was
    /// asked to preallocate need (plus a reserve for logs and metadata).
    #[error("not enough free space to format {path}: need {need} bytes, {available} available")]
    FormatNoSpace {
        /// The data directory.
        path: std::path::PathBuf,
        /// Bytes the missing pool files need, plus the reserve.
        need: u64,
        /// Bytes available on the filesystem.
        available: u64,
    },
    /// A chunk that does not exist was asked for.
    #[error("{group}/{chunk}: chunk not found")]
    ChunkNotFound {
        /// The copyset.
        group: GroupId,
        /// The chunk.
        chunk: ChunkId,
    },
    /// An I/O range that is misaligned or beyond the chunk.
    #[error("bad I/O range: offset {offset}, len {len}")]
    BadRange {
        /// Offset asked for.
        offset: u64,
        /// Length asked for.
        len: u64,
    },
    /// A log entry that is not there (purged or never written).
    #[error("{group}: log index {index} not available")]
    LogIndexMissing {
        /// The group.
        group: GroupId,
        /// The index.
        index: u64,
    },
    /// Appended entries do not follow on from the log (a bug in the caller).
    #[error("{group}: append at {got} does not follow last index {last}")]
    LogGap {
        /// The group.
        group: GroupId,
        /// Last index in the log.
        last: u64,
        /// First index appended.
        got: u64,
    },
    /// The disk was fenced after an earlier I/O error; nothing more is written to it.
    #[error("disk fenced after an earlier I/O error")]
    Fenced,
    /// A raft peer could not be reached (connection refused or lost, peer down).
    #[error("raft peer cs{peer} unreachable: {reason}")]
    PeerUnreachable {
        /// The peer chunkserver.
        peer: u64,
        /// What the network layer said.
        reason: String,
    },
    /// A raft peer did not answer within the RPC's deadline.
    #[error("raft peer cs{peer} timed out")]
    PeerTimeout {
        /// The peer chunkserver.
        peer: u64,
    },
    /// A raft peer answered a raft message with an error (no such copyset, refused).
    #[error("raft peer cs{peer}: {error}")]
    PeerRefused {
        /// The peer chunkserver.
        peer: u64,
        /// Its answer.
        #[source]
        error: basalt_proto::raft::RaftError,
    },
    /// A raft message, log entry or copyset record that does not encode or decode.
    #[error("{group}: bad raft data: {source}")]
    RaftCodec {
        /// The group.
        group: GroupId,
        /// The codec's explanation.
        #[source]
        source: crate::copyset::codec::CodecError,
    },
    /// openraft failed to start a copyset's raft node (storage unreadable or inconsistent).
    #[error("{group}: raft failed to start: {reason}")]
    RaftStart {
        /// The group.
        group: GroupId,
        /// openraft's error, rendered.
        reason: String,
    },
    /// The data directory has no `meta` file: it was never formatted.
    #[error("{path}: not a formatted data directory (no meta file)")]
    NotFormatted {
        /// The data directory.
        path: std::path::PathBuf,
    },
    /// The data directory's `meta` file fails its checksum or cannot be decoded.
    #[error("{path}: meta file is corrupt ({reason})")]
    MetaCorrupt {
        /// The meta file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The data directory was formatted by an incompatible version of the software.
    #[error("data directory format version {found}, this build supports {supported}")]
    FormatVersion {
        /// Version found on disk.
        found: u32,
        /// Version this build writes and reads.
        supported: u32,
    },
    /// The data directory belongs to another cluster than the one expected.
    #[error("data directory belongs to cluster {found}, expected {expected}")]
    ClusterMismatch {
        /// Cluster id the caller expects.
        expected: String,
        /// Cluster id recorded in the meta file.
        found: String,
    },
    /// A chunk file's header page is corrupt or belongs to another chunk.
    #[error("{path}: bad chunk header ({reason})")]
    ChunkHeaderCorrupt {
        /// The chunk file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A log record (entries plus framing) does not fit in one WAL segment.
    #[error("WAL record of {len} bytes exceeds the segment capacity of {max} bytes")]
    RecordTooLarge {
        /// Encoded record length.
        len: u64,
        /// Largest record a segment can hold.
        max: u64,
    },
    /// An I/O backend cannot run on this machine (or this build).
    #[error("I/O backend {backend} not available: {reason}")]
    BackendUnavailable {
        /// The backend ("uring", "spdk", ...).
        backend: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// A poller thread or the WAL writer thread has stopped (shutdown or panic).
    #[error("{thread} thread has stopped")]
    ThreadGone {
        /// Which thread.
        thread: &'static str,
    },
    /// No MDS answered (unreachable, timed out, or no active MDS elected) after trying
    /// every configured address.
    #[error("no MDS answered (tried {tried} addresses)")]
    MdsUnavailable {
        /// Addresses tried.
        tried: usize,
    },
    /// The active MDS refused a registration or heartbeat (wrong token, unknown server
    /// name or chunkserver id, ...).
    #[error("MDS refused: {source}")]
    MdsRefused {
        /// The MDS's answer.
        #[source]
        source: basalt_proto::status::MdsError,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {field}: {reason}")]
    Config {
        /// The offending field (kebab-case path).
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

/// Result alias.
pub type Result<T, E = ChunkServerError> = std::result::Result<T, E>;
