//! The derived figures of a raft run (pure functions over counters and baselines).

/// The floor of a replicated write at QD1: one durable local append
/// (`disk_write_fdatasync_mean_ns`) plus two loopback round trips (client → leader and
/// leader → follower), `rtt_mean_ns` each.
pub fn write_floor_ns(disk_write_fdatasync_mean_ns: f64, rtt_mean_ns: f64) -> f64 {
    disk_write_fdatasync_mean_ns + 2.0 * rtt_mean_ns
}

/// Mean ÷ floor (target ≤ 1.5); `None` without a floor.
pub fn target_ratio(mean_ns: f64, floor_ns: f64) -> Option<f64> {
    (floor_ns > 0.0).then(|| mean_ns / floor_ns)
}

/// Elections that happened between two samples of every copyset's highest term. Pre-vote
/// is on, so the term moves only when a candidate really ran: every step is a disruption
/// (a leader change, or an attempt at one).
pub fn elections(before: &[u64], after: &[u64]) -> u64 {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b))
        .sum()
}

/// WAL fsyncs per client write: of the busiest replica (one disk's figure: the group
/// commit target is about this), and of all replicas together.
pub fn fsyncs_per_write(before: &[u64], after: &[u64], writes: u64) -> Option<(f64, f64)> {
    if writes == 0 {
        return None;
    }
    let deltas: Vec<u64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b))
        .collect();
    let max = deltas.iter().copied().max().unwrap_or(0);
    let sum: u64 = deltas.iter().sum();
    Some((max as f64 / writes as f64, sum as f64 / writes as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_ratio() {
        assert_eq!(write_floor_ns(1000.0, 50.0), 1100.0);
        assert_eq!(target_ratio(1650.0, 1100.0), Some(1.5));
        assert_eq!(target_ratio(1.0, 0.0), None);
    }

    #[test]
    fn elections_sum_term_steps() {
        assert_eq!(elections(&[1, 1, 2], &[1, 3, 2]), 2);
        assert_eq!(
            elections(&[5], &[4]),
            0,
            "a term never goes back; no underflow"
        );
        assert_eq!(elections(&[], &[]), 0);
    }

    #[test]
    fn fsyncs_per_write_busiest_and_total() {
        let (max, all) = fsyncs_per_write(&[10, 0, 5], &[35, 20, 25], 100).unwrap();
        assert_eq!(max, 0.25);
        assert_eq!(all, 0.65);
        assert!(fsyncs_per_write(&[0], &[3], 0).is_none());
    }
}
