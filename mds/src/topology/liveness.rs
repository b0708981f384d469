//! Chunkserver liveness: online → unstable → offline by heartbeat age.
//!
//! The state is a pure function of the time since the last heartbeat, so it is recomputed
//! whenever the MDS looks (time is passed in; nothing here reads a clock).

use super::model::{OnlineState, Topology};
use serde::{Deserialize, Serialize};

/// Liveness thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct LivenessConfig {
    /// No heartbeat for this long → unstable (no new placement on it).
    pub unstable_after_ms: u64,
    /// No heartbeat for this long → offline (its copysets are recovered elsewhere).
    pub offline_after_ms: u64,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            unstable_after_ms: 30_000,
            offline_after_ms: 300_000,
        }
    }
}

/// State of a chunkserver last seen at `last_seen_ms`, at time `now_ms`.
pub fn state_at(last_seen_ms: u64, now_ms: u64, cfg: &LivenessConfig) -> OnlineState {
    let age = now_ms.saturating_sub(last_seen_ms);
    if age >= cfg.offline_after_ms {
        OnlineState::Offline
    } else if age >= cfg.unstable_after_ms {
        OnlineState::Unstable
    } else {
        OnlineState::Online
    }
}

/// Recompute every chunkserver's state; returns the ids whose state changed.
pub fn refresh(
    topo: &mut Topology,
    now_ms: u64,
    cfg: &LivenessConfig,
) -> Vec<basalt_proto::ids::ChunkServerId> {
    let mut changed = Vec::new();
    for cs in topo.chunkservers.values_mut() {
        let s = state_at(cs.last_seen_ms, now_ms, cfg);
        if s != cs.state {
            tracing::info!(cs = %cs.id, from = ?cs.state, to = ?s, "chunkserver state change");
            cs.state = s;
            changed.push(cs.id);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_heartbeat_age() {
        let c = LivenessConfig {
            unstable_after_ms: 10,
            offline_after_ms: 100,
        };
        assert_eq!(state_at(1000, 1000, &c), OnlineState::Online);
        assert_eq!(state_at(1000, 1009, &c), OnlineState::Online);
        assert_eq!(state_at(1000, 1010, &c), OnlineState::Unstable);
        assert_eq!(state_at(1000, 1099, &c), OnlineState::Unstable);
        assert_eq!(state_at(1000, 1100, &c), OnlineState::Offline);
        // A clock that went backwards does not make anything offline.
        assert_eq!(state_at(1000, 10, &c), OnlineState::Online);
    }
}
