//! The crate's error type.

use basalt_proto::status::MdsError;

/// Everything the MDS library can fail with.
///
/// Request-level refusals (bad name, busy volume, unknown chunkserver, ...) are carried as
/// [`Error::Request`] holding the wire-level [`MdsError`], so the RPC layer can send them
/// back unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An etcd call failed (connection refused, timeout, gRPC status).
    #[error("etcd {op}: {source}")]
    Etcd {
        /// The operation that failed (`get`, `txn`, `campaign`, ...).
        op: &'static str,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// A fenced write was refused because the election key is no longer ours: this MDS
    /// has been deposed and must stop serving.
    #[error("fenced: this MDS no longer holds the leader key")]
    Fenced,
    /// A transaction names the same key in two operations (etcd refuses that too).
    #[error("transaction touches key {key:?} twice")]
    DuplicateKeyInTxn {
        /// The key, lossily printed.
        key: String,
    },
    /// A compare-and-swap loop kept losing to concurrent writers.
    #[error("contention on {key:?} after {attempts} attempts")]
    Contention {
        /// The key fought over.
        key: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A stored value could not be decoded (wrong format version or garbage).
    #[error("corrupt value at {key:?}: {reason}")]
    Corrupt {
        /// The key, lossily printed.
        key: String,
        /// Why.
        reason: String,
    },
    /// Leadership was lost (lease expired, keepalive failed, another leader observed).
    #[error("leadership lost: {reason:?}")]
    LeadershipLost {
        /// Why.
        reason: crate::election::StepDownReason,
    },
    /// A cluster map file could not be read or parsed.
    #[error("cluster map: {0}")]
    ClusterMap(#[from] crate::topology::clustermap::MapError),
    /// A configuration value is out of range.
    #[error("config {field}: {reason}")]
    Config {
        /// The key (kebab-case, as in the file).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The transport failed to bind or serve.
    #[error("transport: {0}")]
    Transport(#[from] basalt_transport::TransportError),
    /// A local file or socket operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A request refused for a reason the client must see.
    #[error(transparent)]
    Request(#[from] MdsError),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn etcd(op: &'static str) -> impl FnOnce(etcd_client::Error) -> Error {
        move |source| Error::Etcd { op, source }
    }

    /// The wire error a client should see for this failure.
    pub fn to_wire(&self) -> MdsError {
        match self {
            Error::Request(e) => e.clone(),
            Error::ClusterMap(e) => MdsError::InvalidTopology {
                reason: e.to_string(),
            },
            Error::Fenced | Error::LeadershipLost { .. } => MdsError::NotLeader { leader: None },
            _ => MdsError::StoreUnavailable,
        }
    }
}
