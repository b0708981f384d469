//! What to do after each outcome of a chunk request: the client's routing and retry rules
//! as pure functions (no sockets, no clocks: elapsed time and jitter are passed in).
//!
//! Rules (after CurveBS's client, tightened for a ≤ 1.5 s pause target):
//! - redirect with a hint → retry at the hinted leader at once;
//! - redirect without a hint, timeout, unreachable peer, unavailable → ask the copyset's
//!   peers who leads (then the MDS), retry;
//! - epoch too old, copyset not found → refetch the copyset map from the MDS, retry;
//! - overload → exponential backoff with ±10 % jitter;
//! - a read of a chunk that does not exist → zeros; a delete of one → done;
//! - invalid request, no space → fail at once (permanent);
//! - everything transient is retried without bound unless `give_up_after` is set.

use crate::error::ClientError;
use basalt_proto::ids::ChunkServerId;
use basalt_proto::status::{ChunkError, PeerAddr};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Tunables of the retry rules.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// First RPC timeout of a chunk request.
    pub rpc_timeout: Duration,
    /// Ceiling of the RPC timeout as it doubles after repeated timeouts.
    pub max_rpc_timeout: Duration,
    /// Timeouts retried with the base timeout before doubling starts (the leader may
    /// simply have moved; a longer timeout would only slow failover).
    pub timeouts_before_backoff: u32,
    /// First overload backoff.
    pub overload_backoff: Duration,
    /// Ceiling of the overload backoff.
    pub max_overload_backoff: Duration,
    /// Pause before retrying after an unreachable peer or a hint-less redirect (doubling,
    /// capped at `max_retry_pause`), so a leaderless copyset is not hammered.
    pub retry_pause: Duration,
    /// Ceiling of `retry_pause` doubling.
    pub max_retry_pause: Duration,
    /// Give up on an I/O after this long (None: never, the block-device default).
    pub give_up_after: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            rpc_timeout: Duration::from_millis(500),
            max_rpc_timeout: Duration::from_secs(8),
            timeouts_before_backoff: 5,
            overload_backoff: Duration::from_millis(10),
            max_overload_backoff: Duration::from_secs(2),
            retry_pause: Duration::from_millis(5),
            max_retry_pause: Duration::from_millis(200),
            give_up_after: None,
        }
    }
}

/// The kind of chunk operation (rules differ for a missing chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Read.
    Read,
    /// Write.
    Write,
    /// Delete (discard of a whole chunk).
    Delete,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success.
    Ok,
    /// The chunkserver answered with an error.
    Chunk(ChunkError),
    /// No answer within the RPC timeout.
    Timeout,
    /// Could not reach the chunkserver (refused, reset, peer gone).
    Unreachable,
}

/// Where the next attempt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The same chunkserver as the last attempt.
    Same,
    /// This chunkserver (a redirect hint). The shell also records it as leader.
    Peer(PeerAddr),
    /// Whoever the copyset's peers (then the MDS) say leads.
    AskLeader,
    /// Refetch the copyset map from the MDS first.
    RefreshCopyset,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The request is complete.
    Done,
    /// A read of a missing chunk: the caller's buffer is zeros.
    ReturnZeros,
    /// Try again.
    Retry {
        /// Where.
        to: Target,
        /// After this pause.
        after: Duration,
        /// With this RPC timeout.
        timeout: Duration,
    },
    /// Fail the I/O with a permanent error.
    Fail(ClientError),
}

/// Per-request retry state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts made so far.
    pub attempts: u32,
    /// Consecutive timeouts.
    pub timeouts: u32,
    /// Consecutive overloads.
    pub overloads: u32,
    /// Consecutive attempts that found no leader (hint-less redirect, unreachable).
    pub leaderless: u32,
}

fn doubled(base: Duration, times: u32, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << times.min(20)).min(cap)
}

/// The RPC timeout for the next attempt.
pub fn rpc_timeout(policy: &RetryPolicy, state: &Attempts) -> Duration {
    let extra = state
        .timeouts
        .saturating_sub(policy.timeouts_before_backoff);
    doubled(policy.rpc_timeout, extra, policy.max_rpc_timeout)
}

/// Decide what follows `outcome`. `elapsed` is the time since the I/O started; `jitter`
/// is a uniform random number in `[0, 1)`.
pub fn decide(
    policy: &RetryPolicy,
    state: &mut Attempts,
    op: OpKind,
    outcome: &Outcome,
    elapsed: Duration,
    jitter: f64,
) -> Action {
    state.attempts += 1;
    let (to, after) = match outcome {
        Outcome::Ok => return Action::Done,
        Outcome::Chunk(err) => match err {
            ChunkError::ChunkNotFound { .. } => match op {
                OpKind::Read => return Action::ReturnZeros,
                OpKind::Delete => return Action::Done,
                // A write creates its chunk; "not found" means our map is stale.
                OpKind::Write => (Target::RefreshCopyset, Duration::ZERO),
            },
            ChunkError::InvalidRequest { reason } => {
                return Action::Fail(ClientError::InvalidRequest {
                    reason: format!("{reason:?}"),
                })
            }
            ChunkError::NoSpace => return Action::Fail(ClientError::NoSpace),
            ChunkError::Redirect {
                leader: Some(leader),
                ..
            } => {
                state.timeouts = 0;
                state.leaderless = 0;
                (Target::Peer(*leader), Duration::ZERO)
            }
            ChunkError::Redirect { leader: None, .. }
            | ChunkError::Unavailable
            | ChunkError::DiskError { .. } => {
                state.leaderless += 1;
                let pause = doubled(
                    policy.retry_pause,
                    state.leaderless - 1,
                    policy.max_retry_pause,
                );
                (Target::AskLeader, pause)
            }
            ChunkError::Overload { .. } => {
                state.overloads += 1;
                let base = doubled(
                    policy.overload_backoff,
                    state.overloads - 1,
                    policy.max_overload_backoff,
                );
                let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
                (Target::Same, base.mul_f64(factor))
            }
            ChunkError::EpochTooOld { .. } | ChunkError::CopysetNotFound { .. } => {
                (Target::RefreshCopyset, Duration::ZERO)
            }
            ChunkError::CopysetExists { .. } | ChunkError::ConfChangeInProgress { .. } => {
                (Target::Same, policy.retry_pause)
            }
        },
        Outcome::Timeout => {
            state.timeouts += 1;
            (Target::AskLeader, Duration::ZERO)
        }
        Outcome::Unreachable => {
            state.leaderless += 1;
            let pause = doubled(
                policy.retry_pause,
                state.leaderless - 1,
                policy.max_retry_pause,
            );
            (Target::AskLeader, pause)
        }
    };
    if let Some(limit) = policy.give_up_after {
        if elapsed + after >= limit {
            return Action::Fail(ClientError::GaveUp {
                attempts: state.attempts,
            });
        }
    }
    Action::Retry {
        to,
        after,
        timeout: rpc_timeout(policy, state),
    }
}

/// Per-chunkserver health as the client sees it: a chunkserver that keeps timing out is
/// marked unstable (the shell then probes it with a short health check instead of
/// sending it I/O), and becomes stable again on any success.
#[derive(Debug, Clone, Default)]
pub struct PeerHealth {
    timeouts: HashMap<ChunkServerId, u32>,
    unstable: HashSet<ChunkServerId>,
    threshold: u32,
}

impl PeerHealth {
    /// Mark unstable after `threshold` consecutive timeouts.
    pub fn new(threshold: u32) -> Self {
        PeerHealth {
            threshold: threshold.max(1),
            ..Default::default()
        }
    }

    /// Record a timeout; returns true when this made the chunkserver unstable.
    pub fn on_timeout(&mut self, id: ChunkServerId) -> bool {
        let n = self.timeouts.entry(id).or_default();
        *n += 1;
        *n >= self.threshold && self.unstable.insert(id)
    }

    /// Record any answer from the chunkserver.
    pub fn on_answer(&mut self, id: ChunkServerId) {
        self.timeouts.remove(&id);
        self.unstable.remove(&id);
    }

    /// Whether the chunkserver is currently considered unstable.
    pub fn is_unstable(&self, id: ChunkServerId) -> bool {
        self.unstable.contains(&id)
    }

    /// Unstable chunkservers, to probe.
    pub fn unstable(&self) -> impl Iterator<Item = ChunkServerId> + '_ {
        self.unstable.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::{ChunkId, Epoch, GroupId};
    use basalt_proto::status::InvalidReason;

    fn p() -> RetryPolicy {
        RetryPolicy::default()
    }
    fn leader() -> PeerAddr {
        PeerAddr {
            id: ChunkServerId(3),
            addr: "127.0.0.1:7003".parse().unwrap(),
        }
    }
    fn run(op: OpKind, o: Outcome) -> Action {
        decide(&p(), &mut Attempts::default(), op, &o, Duration::ZERO, 0.5)
    }

    #[test]
    fn redirect_with_hint_goes_straight_to_the_leader() {
        let a = run(
            OpKind::Write,
            Outcome::Chunk(ChunkError::Redirect {
                group: GroupId(1),
                leader: Some(leader()),
            }),
        );
        assert_eq!(
            a,
            Action::Retry {
                to: Target::Peer(leader()),
                after: Duration::ZERO,
                timeout: p().rpc_timeout
            }
        );
    }

    #[test]
    fn missing_chunk_depends_on_the_op() {
        let nf = || Outcome::Chunk(ChunkError::ChunkNotFound { chunk: ChunkId(1) });
        assert_eq!(run(OpKind::Read, nf()), Action::ReturnZeros);
        assert_eq!(run(OpKind::Delete, nf()), Action::Done);
        assert!(matches!(
            run(OpKind::Write, nf()),
            Action::Retry {
                to: Target::RefreshCopyset,
                ..
            }
        ));
    }

    #[test]
    fn permanent_errors_fail_at_once() {
        assert_eq!(
            run(OpKind::Write, Outcome::Chunk(ChunkError::NoSpace)),
            Action::Fail(ClientError::NoSpace)
        );
        assert!(matches!(
            run(
                OpKind::Read,
                Outcome::Chunk(ChunkError::InvalidRequest {
                    reason: InvalidReason::Misaligned
                })
            ),
            Action::Fail(ClientError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn stale_maps_are_refetched() {
        for e in [
            ChunkError::EpochTooOld {
                group: GroupId(1),
                sent: Epoch(1),
                current: Epoch(2),
            },
            ChunkError::CopysetNotFound { group: GroupId(1) },
        ] {
            assert!(matches!(
                run(OpKind::Write, Outcome::Chunk(e)),
                Action::Retry {
                    to: Target::RefreshCopyset,
                    ..
                }
            ));
        }
    }

    #[test]
    fn overload_backs_off_exponentially_with_bounded_jitter() {
        let mut s = Attempts::default();
        let ov = Outcome::Chunk(ChunkError::Overload { inflight: 9 });
        let mut last = Duration::ZERO;
        for i in 0..12 {
            let Action::Retry { after, to, .. } =
                decide(&p(), &mut s, OpKind::Write, &ov, Duration::ZERO, 0.0)
            else {
                panic!()
            };
            assert_eq!(to, Target::Same);
            assert!(
                after >= last || after >= p().max_overload_backoff.mul_f64(0.9),
                "step {i}"
            );
            assert!(after <= p().max_overload_backoff.mul_f64(1.1));
            last = after;
        }
        assert_eq!(last, p().max_overload_backoff.mul_f64(0.9));
        // jitter stays within ±10 %
        for j in [0.0, 0.25, 0.999] {
            let Action::Retry { after, .. } = decide(
                &p(),
                &mut Attempts::default(),
                OpKind::Read,
                &ov,
                Duration::ZERO,
                j,
            ) else {
                panic!()
            };
            let base = p().overload_backoff.as_secs_f64();
            assert!((after.as_secs_f64() - base).abs() <= base * 0.1 + 1e-9);
        }
    }

    #[test]
    fn timeouts_ask_for_the_leader_and_grow_the_timeout_only_later() {
        let mut s = Attempts::default();
        let policy = p();
        let mut timeouts = vec![];
        for _ in 0..10 {
            let Action::Retry { to, timeout, .. } = decide(
                &policy,
                &mut s,
                OpKind::Write,
                &Outcome::Timeout,
                Duration::ZERO,
                0.5,
            ) else {
                panic!()
            };
            assert_eq!(to, Target::AskLeader);
            timeouts.push(timeout);
        }
        assert!(timeouts[..4].iter().all(|t| *t == policy.rpc_timeout));
        assert_eq!(timeouts[5], policy.rpc_timeout * 2);
        assert_eq!(
            timeouts[9],
            policy.max_rpc_timeout.min(policy.rpc_timeout * 32)
        );
        // a redirect with a leader resets the timeout growth
        decide(
            &policy,
            &mut s,
            OpKind::Write,
            &Outcome::Chunk(ChunkError::Redirect {
                group: GroupId(1),
                leader: Some(leader()),
            }),
            Duration::ZERO,
            0.5,
        );
        assert_eq!(rpc_timeout(&policy, &s), policy.rpc_timeout);
    }

    #[test]
    fn transient_faults_never_fail_unless_a_bound_is_set() {
        let mut s = Attempts::default();
        for _ in 0..10_000 {
            let a = decide(
                &p(),
                &mut s,
                OpKind::Write,
                &Outcome::Unreachable,
                Duration::from_secs(3600),
                0.5,
            );
            assert!(matches!(a, Action::Retry { .. }));
        }
        let bounded = RetryPolicy {
            give_up_after: Some(Duration::from_secs(1)),
            ..p()
        };
        let a = decide(
            &bounded,
            &mut Attempts::default(),
            OpKind::Write,
            &Outcome::Timeout,
            Duration::from_secs(2),
            0.5,
        );
        assert_eq!(a, Action::Fail(ClientError::GaveUp { attempts: 1 }));
    }

    #[test]
    fn unreachable_pauses_grow_and_are_capped() {
        let mut s = Attempts::default();
        let mut pauses = vec![];
        for _ in 0..12 {
            let Action::Retry { after, .. } = decide(
                &p(),
                &mut s,
                OpKind::Read,
                &Outcome::Unreachable,
                Duration::ZERO,
                0.5,
            ) else {
                panic!()
            };
            pauses.push(after);
        }
        assert_eq!(pauses[0], p().retry_pause);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*pauses.last().unwrap(), p().max_retry_pause);
    }

    #[test]
    fn peer_health_marks_and_clears_unstable() {
        let mut h = PeerHealth::new(3);
        let id = ChunkServerId(7);
        assert!(!h.on_timeout(id));
        assert!(!h.on_timeout(id));
        assert!(h.on_timeout(id));
        assert!(!h.on_timeout(id), "only reported once");
        assert!(h.is_unstable(id));
        assert_eq!(h.unstable().collect::<Vec<_>>(), vec![id]);
        h.on_answer(id);
        assert!(!h.is_unstable(id));
        assert!(!h.on_timeout(id));
    }
}
