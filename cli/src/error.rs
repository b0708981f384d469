//! The CLI's errors and their exit codes (see `docs/cli.md`).

use basalt_client::ClientError;
use basalt_testkit::ClusterError;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command failed (refused by the cluster, bad file, I/O error, ...).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: bad command line (unknown flag, bad size, ...). clap uses it too.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: no MDS answered (cluster down or wrong addresses).
pub const EXIT_UNREACHABLE: u8 = 3;

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
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage { .. } => EXIT_USAGE,
            CliError::Unreachable { .. } | CliError::Client(ClientError::MdsUnavailable) => {
                EXIT_UNREACHABLE
            }
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
        for code in [EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE] {
            assert!(
                doc.contains(&format!("| {code} |")),
                "docs/cli.md lists exit {code}"
            );
        }
    }
}
