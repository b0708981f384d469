//! The CLI's errors and their exit codes (see `docs/cli.md`).

use basalt_client::mds_client::MdsCallError;
use basalt_client::ClientError;
use basalt_proto::chunk::ResetPeersError;
use basalt_proto::ids::{ChunkServerId, GroupId};
use basalt_proto::status::{MdsError, OperatorRefusal};
use basalt_testkit::ClusterError;
use std::path::PathBuf;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command failed (refused by the cluster, bad file, I/O error, ...).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: bad command line (unknown flag, bad size, ...). clap uses it too.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: no MDS answered (cluster down or wrong addresses).
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: a check ran and found problems (`copyset check`).
pub const EXIT_UNHEALTHY: u8 = 4;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A value on the command line is invalid (exit 2).
    #[error("{arg}: {reason}")]
    Usage {
        /// The argument.
        arg: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No MDS answered within the client's retry window (exit 3).
    #[error("cluster not reachable: no MDS answered at {addrs}")]
    Unreachable {
        /// The addresses tried, comma separated.
        addrs: String,
    },
    /// The client library failed (exit 1).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A dev-cluster operation failed (exit 1).
    #[error(transparent)]
    DevCluster(#[from] ClusterError),
    /// Writing output failed (exit 1).
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// An async runtime could not be started (exit 1).
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The active MDS refused an administrative request (exit 1).
    #[error("the MDS refused: {}{}", describe(.error), hint(.error))]
    Refused {
        /// The MDS's answer.
        error: MdsError,
    },
    /// A file given on the command line cannot be read or parsed (exit 1).
    #[error("{}: {reason}", .path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// The reader's or parser's explanation.
        reason: String,
    },
    /// The MDS does not know this chunkserver (exit 1).
    #[error("chunkserver {id} not found (see `basalt chunkserver ls`)")]
    ChunkServerNotFound {
        /// The id asked for.
        id: ChunkServerId,
    },
    /// `--wait` ran out of time before the change was seen (exit 1).
    #[error("copyset {}: {what} not seen after {secs} s (the operator may still run: `basalt operator ls`)", copyset(.group))]
    WaitTimeout {
        /// The copyset.
        group: GroupId,
        /// What was waited for.
        what: &'static str,
        /// Seconds waited.
        secs: u64,
    },
    /// `chunkserver drain --wait` ran out of time before the chunkserver was empty (exit 1).
    #[error("{id} not drained after {secs} s: {copysets} copysets left ({blocked} without a spare chunkserver); the drain goes on (`basalt chunkserver info {id}`)")]
    DrainTimeout {
        /// The chunkserver.
        id: ChunkServerId,
        /// Copysets it still holds.
        copysets: u32,
        /// Of those, copysets no other chunkserver can take now.
        blocked: u32,
        /// Seconds waited.
        secs: u64,
    },
    /// `chunkserver drain --wait`: the chunkserver was returned to service meanwhile (exit 1).
    #[error("{id} was returned to service (`chunkserver drain --undo`) while waiting")]
    DrainUndone {
        /// The chunkserver.
        id: ChunkServerId,
    },
    /// The MDS answered something this CLI cannot read (a version mismatch) (exit 1).
    #[error("cannot read the MDS's answer: {reason}")]
    BadAnswer {
        /// The parser's explanation.
        reason: String,
    },
    /// `topology apply --dry-run` found changes the MDS would refuse (exit 1).
    #[error(
        "the MDS would refuse this map: {conflicts} conflicting entries (nothing was changed)"
    )]
    MapConflicts {
        /// Entries in conflict.
        conflicts: usize,
    },
    /// A chunkserver refused `peer reset`; nothing was changed (exit 1).
    #[error("{peer} refused to reset copyset {}: {}", copyset(.group), crate::commands::peer::describe_reset(.error))]
    ResetRefused {
        /// The copyset.
        group: GroupId,
        /// The chunkserver asked.
        peer: ChunkServerId,
        /// Its answer.
        error: ResetPeersError,
    },
    /// A chunkserver asked directly did not answer in time (exit 1).
    #[error("{peer} at {addr} did not answer in time; check `basalt copyset status {}` before retrying", copyset(.group))]
    ChunkServerUnreachable {
        /// The copyset the call was about.
        group: GroupId,
        /// The chunkserver.
        peer: ChunkServerId,
        /// Its address.
        addr: std::net::SocketAddr,
    },
    /// `copyset check` found copysets that are not healthy (exit 4).
    #[error("{unhealthy} of {total} copysets not healthy")]
    Unhealthy {
        /// Copysets with a problem.
        unhealthy: usize,
        /// Copysets checked.
        total: usize,
    },
}

fn copyset(g: &GroupId) -> String {
    crate::ids::copyset_name(*g)
}

/// An MDS error in the CLI's terms (copysets as `POOL.COPYSET`).
fn describe(e: &MdsError) -> String {
    match e {
        MdsError::CopysetNotFound { group } => format!("copyset {} not found", copyset(group)),
        MdsError::OperatorPending { group } => {
            format!("copyset {} already has an operator running", copyset(group))
        }
        MdsError::NotAPeer { group, chunkserver } => {
            format!("{chunkserver} is not a voter of copyset {}", copyset(group))
        }
        MdsError::LeaderUnknown { group } => {
            format!("copyset {} has no online leader", copyset(group))
        }
        MdsError::OperatorRefused { group, reason } => {
            let why = match reason {
                OperatorRefusal::AlreadyLeader => "the target already leads it",
                OperatorRefusal::LastPeer => "it would leave the copyset without voters",
                OperatorRefusal::RemoveLeader => "the peer to remove is its leader",
                OperatorRefusal::TargetNotOnline => "the target chunkserver is not online",
            };
            format!("copyset {}: {why}", copyset(group))
        }
        e => e.to_string(),
    }
}

/// What to do about an MDS refusal, as a suffix of the message.
fn hint(e: &MdsError) -> &'static str {
    match e {
        MdsError::VolumeAccessDenied { .. } | MdsError::OwnerAccessDenied { .. } => {
            " (act as the owner or admin: owner and key-file in the client config, or --as and --key-file)"
        }
        MdsError::OperatorPending { .. } | MdsError::ChunkServerBusy { .. } => {
            "; wait for the running operator (`basalt operator ls`) and retry"
        }
        MdsError::OperatorRefused {
            reason: OperatorRefusal::RemoveLeader,
            ..
        } => "; move the leadership first: `basalt leader transfer COPYSET --to CS`",
        MdsError::OperatorRefused {
            reason: OperatorRefusal::TargetNotOnline,
            ..
        } => "; pick an online peer (`basalt copyset status COPYSET`)",
        MdsError::NotAPeer { .. } => "; see the peers with `basalt copyset status COPYSET`",
        MdsError::LeaderUnknown { .. } => {
            "; the copyset has no online leader: check its peers with `basalt copyset status`"
        }
        MdsError::CopysetNotFound { .. } => "; list copysets with `basalt copyset ls`",
        MdsError::PoolNotFound { .. } => "; list pools with `basalt pool ls`",
        MdsError::InvalidTopology { .. } => "; nothing was changed",
        _ => "",
    }
}

impl From<MdsCallError> for CliError {
    fn from(e: MdsCallError) -> Self {
        match e {
            MdsCallError::Mds(error) => CliError::Refused { error },
            MdsCallError::Unavailable => CliError::Client(ClientError::MdsUnavailable),
        }
    }
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage { .. } => EXIT_USAGE,
            CliError::Unreachable { .. } | CliError::Client(ClientError::MdsUnavailable) => {
                EXIT_UNREACHABLE
            }
            CliError::Unhealthy { .. } => EXIT_UNHEALTHY,
            _ => EXIT_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        let usage = CliError::Usage {
            arg: "--size",
            reason: "x".into(),
        };
        assert_eq!(usage.exit_code(), 2);
        assert_eq!(CliError::Client(ClientError::MdsUnavailable).exit_code(), 3);
        assert_eq!(
            CliError::Unreachable {
                addrs: "127.0.0.1:1".into()
            }
            .exit_code(),
            3
        );
        assert_eq!(CliError::Client(ClientError::NoSpace).exit_code(), 1);
        let doc = include_str!("../../docs/cli.md");
        assert_eq!(
            CliError::Unhealthy {
                unhealthy: 1,
                total: 2
            }
            .exit_code(),
            4
        );
        let refused = CliError::from(MdsCallError::Mds(MdsError::OperatorRefused {
            group: GroupId(1),
            reason: OperatorRefusal::RemoveLeader,
        }));
        assert_eq!(refused.exit_code(), 1);
        assert_eq!(
            refused.to_string(),
            "the MDS refused: copyset 0.1: the peer to remove is its leader; move the leadership \
             first: `basalt leader transfer COPYSET --to CS`"
        );
        assert_eq!(CliError::from(MdsCallError::Unavailable).exit_code(), 3);
        for code in [
            EXIT_OK,
            EXIT_ERROR,
            EXIT_USAGE,
            EXIT_UNREACHABLE,
            EXIT_UNHEALTHY,
        ] {
            assert!(
                doc.contains(&format!("| {code} |")),
                "docs/cli.md lists exit {code}"
            );
        }
    }
}
