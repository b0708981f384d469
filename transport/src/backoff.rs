//! Re-dial back-off for one peer (sans-IO): after a failed dial the next one waits
//! `initial`, doubling with each further failure up to `max`; a successful dial resets it.

use crate::error::TransportError;
use std::time::Duration;
use tokio::time::Instant;

/// How long a [`crate::ConnectionPool`] waits before dialling a peer again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedialBackoff {
    /// Wait after the first failure.
    pub initial: Duration,
    /// Longest wait, however many failures follow.
    pub max: Duration,
}

impl Default for RedialBackoff {
    fn default() -> Self {
        RedialBackoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        }
    }
}

/// The back-off state of one peer.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerBackoff {
    /// Consecutive failed dials.
    failures: u32,
    /// No dial before this; with the error the last dial failed with.
    blocked: Option<(Instant, TransportError)>,
}

impl PeerBackoff {
    /// Whether a dial may start at `now`; if not, the last dial's error to report.
    pub(crate) fn check(&self, now: Instant) -> Result<(), TransportError> {
        match &self.blocked {
            Some((until, err)) if now < *until => Err(err.clone()),
            _ => Ok(()),
        }
    }

    /// A dial failed at `now` with `err`; returns how long the next one waits.
    pub(crate) fn failed(
        &mut self,
        policy: &RedialBackoff,
        now: Instant,
        err: TransportError,
    ) -> Duration {
        let shift = self.failures.min(31);
        self.failures = self.failures.saturating_add(1);
        let wait = policy
            .initial
            .checked_mul(1u32 << shift)
            .unwrap_or(policy.max)
            .min(policy.max);
        self.blocked = Some((now + wait, err));
        wait
    }

    /// A dial succeeded: the next failure starts from `initial` again.
    pub(crate) fn succeeded(&mut self) {
        *self = PeerBackoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let policy = RedialBackoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(45),
        };
        let err = || TransportError::Unreachable { addr: "a".into() };
        let t0 = Instant::now();
        let mut b = PeerBackoff::default();
        assert!(b.check(t0).is_ok());
        let waits: Vec<u64> = (0..5)
            .map(|_| b.failed(&policy, t0, err()).as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 45, 45]);
        // blocked until the last wait has passed, with the last error
        assert!(matches!(
            b.check(t0 + Duration::from_millis(44)),
            Err(TransportError::Unreachable { .. })
        ));
        assert!(b.check(t0 + Duration::from_millis(45)).is_ok());
        b.succeeded();
        assert!(b.check(t0).is_ok());
        assert_eq!(b.failed(&policy, t0, err()), Duration::from_millis(10));
        // many failures neither overflow nor exceed the cap
        for _ in 0..100 {
            b.failed(&policy, t0, err());
        }
        assert_eq!(b.failed(&policy, t0, err()), Duration::from_millis(45));
    }
}
