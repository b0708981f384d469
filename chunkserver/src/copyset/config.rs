//! Copyset (raft) configuration: the `[copyset]` section of the chunkserver config.
//!
//! Defaults are chosen not to flap under load: heartbeats every 400 ms, elections after
//! 2.5–4 s of silence, pre-vote on, and busy groups skip heartbeats (a recent replication
//! ack proves the same liveness).

use openraft::{Config, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Raft settings shared by every copyset of a chunkserver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct CopysetConfig {
    /// Leader heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// Skip a heartbeat to a follower that acked anything within this long.
    pub heartbeat_min_interval_ms: u64,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (sync chunks, purge the WAL) after this many entries.
    pub snapshot_after_entries: u64,
    /// Entries kept behind a snapshot for followers that are only slightly behind.
    pub keep_after_snapshot: u64,
    /// A follower further behind than this gets a snapshot instead of entries.
    pub replication_lag_threshold: u64,
    /// Entries per AppendEntries message.
    pub max_payload_entries: u64,
    /// Bytes of entries per AppendEntries message (a larger batch is sent in parts); must
    /// stay below the transport's `max-payload-len`.
    pub max_append_bytes: u64,
    /// Add/change peer: the learner must be within this many entries of the leader before
    /// it is promoted.
    pub catch_up_margin: u64,
    /// Add/change peer: give up if the learner has not caught up within this long.
    pub catch_up_timeout_ms: u64,
    /// Bytes per pull when copying chunks during a snapshot install.
    pub snapshot_piece_bytes: u64,
    /// Timeout of one raft RPC outside openraft's own (chunk pulls).
    pub rpc_timeout_ms: u64,
    /// Wait after a peer was unreachable before retrying it.
    pub unreachable_backoff_ms: u64,
    /// How long a follower may take to install a snapshot (it copies every chunk of the
    /// group from the leader before answering).
    pub snapshot_install_timeout_ms: u64,
    /// Hand a group over at once when its leader's process is gone (a dial to it is
    /// refused) instead of waiting for the election timeout; see
    /// [`crate::copyset::leader_watch`].
    pub leader_watch: bool,
}

impl Default for CopysetConfig {
    fn default() -> Self {
        CopysetConfig {
            heartbeat_interval_ms: 400,
            heartbeat_min_interval_ms: 400,
            election_timeout_min_ms: 2500,
            election_timeout_max_ms: 4000,
            snapshot_after_entries: 20_000,
            keep_after_snapshot: 1000,
            replication_lag_threshold: 50_000,
            max_payload_entries: 64,
            max_append_bytes: 32 * 1024 * 1024,
            catch_up_margin: 64,
            catch_up_timeout_ms: 60_000,
            snapshot_piece_bytes: 1024 * 1024,
            rpc_timeout_ms: 5000,
            unreachable_backoff_ms: 200,
            snapshot_install_timeout_ms: 600_000,
            leader_watch: true,
        }
    }
}

/// A configuration openraft refuses (rendered reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid copyset config: {0}")]
pub struct CopysetConfigError(pub String);

impl CopysetConfig {
    /// Settings for tests: fast heartbeats and elections.
    pub fn fast_for_tests() -> Self {
        CopysetConfig {
            heartbeat_interval_ms: 50,
            heartbeat_min_interval_ms: 50,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            unreachable_backoff_ms: 50,
            rpc_timeout_ms: 2000,
            catch_up_timeout_ms: 10_000,
            ..CopysetConfig::default()
        }
    }

    /// Check the settings (openraft's own rules included).
    pub fn validate(&self) -> Result<(), CopysetConfigError> {
        self.to_openraft().map(|_| ())
    }

    /// The openraft configuration of every copyset.
    pub fn to_openraft(&self) -> Result<Config, CopysetConfigError> {
        if self.snapshot_piece_bytes == 0
            || self.catch_up_timeout_ms == 0
            || self.max_append_bytes == 0
        {
            return Err(CopysetConfigError(
                "snapshot-piece-bytes, catch-up-timeout-ms and max-append-bytes must be > 0".into(),
            ));
        }
        let c = Config {
            cluster_name: "basalt-copyset".into(),
            heartbeat_interval: self.heartbeat_interval_ms,
            heartbeat_min_interval: Some(self.heartbeat_min_interval_ms),
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            enable_pre_vote: Some(true),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            max_in_snapshot_log_to_keep: self.keep_after_snapshot,
            replication_lag_threshold: self.replication_lag_threshold,
            max_payload_entries: self.max_payload_entries,
            install_snapshot_timeout: self.snapshot_install_timeout_ms,
            ..Config::default()
        };
        c.validate().map_err(|e| CopysetConfigError(e.to_string()))
    }

    /// [`Self::catch_up_timeout_ms`] as a duration.
    pub fn catch_up_timeout(&self) -> Duration {
        Duration::from_millis(self.catch_up_timeout_ms)
    }

    /// [`Self::rpc_timeout_ms`] as a duration.
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms)
    }

    /// How long a leader change may take: the longest election timeout, twice.
    pub fn election_bound(&self) -> Duration {
        Duration::from_millis(2 * self.election_timeout_max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_settings_validate() {
        CopysetConfig::default().validate().unwrap();
        CopysetConfig::fast_for_tests().validate().unwrap();
    }

    #[test]
    fn heartbeat_suppression_too_long_is_refused() {
        let c = CopysetConfig {
            heartbeat_min_interval_ms: 3000,
            ..CopysetConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn parses_kebab_case_and_rejects_unknown_keys() {
        let c: CopysetConfig = toml::from_str("heartbeat-interval-ms = 300").unwrap();
        assert_eq!(c.heartbeat_interval_ms, 300);
        assert_eq!(c.election_timeout_min_ms, 2500);
        assert!(toml::from_str::<CopysetConfig>("heartbeat-interval = 1").is_err());
    }
}
