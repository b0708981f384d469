//! What the caller felt during a fault: the longest stretch with no I/O completing, and
//! the latency distribution of the I/Os issued in the fault window.

use super::history::History;
use std::time::Duration;

/// Figures for one fault window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultStats {
    /// Longest gap with no operation completing that overlaps the window.
    pub longest_pause: Duration,
    /// 99th percentile latency of operations invoked in the window.
    pub p99: Duration,
    /// Operations invoked in the window.
    pub ops_in_window: usize,
}

/// The longest gap between consecutive completions (any outcome) that overlaps
/// `[from, to]`; a gap starting before `from` counts from `from`. With no completion
/// after `from`, the whole window.
pub fn longest_pause(h: &History, from: Duration, to: Duration) -> Duration {
    let mut done: Vec<Duration> = h.ops.iter().map(|o| o.complete).collect();
    done.sort_unstable();
    let mut best = Duration::ZERO;
    let mut prev = from;
    let mut any_after = false;
    for &t in &done {
        if t < from {
            continue;
        }
        any_after = true;
        best = best.max(t - prev);
        prev = t;
        if t > to {
            break;
        }
    }
    if !any_after {
        return to.saturating_sub(from);
    }
    best
}

/// The `q`-quantile (0..=1, nearest rank) of `v`, sorted in place. Zero when empty.
pub fn quantile(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Pause and p99 of the window `[from, to]`.
pub fn fault_stats(h: &History, from: Duration, to: Duration) -> FaultStats {
    let mut lat: Vec<Duration> = h
        .ops
        .iter()
        .filter(|o| o.invoke >= from && o.invoke <= to)
        .map(|o| o.latency())
        .collect();
    FaultStats {
        longest_pause: longest_pause(h, from, to),
        ops_in_window: lat.len(),
        p99: quantile(&mut lat, 0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::block::Tag;
    use crate::workload::history::{Action, Op};

    fn op(invoke: u64, complete: u64) -> Op {
        Op {
            worker: 0,
            block: 0,
            invoke: Duration::from_millis(invoke),
            complete: Duration::from_millis(complete),
            action: Action::Write(Tag {
                writer: 0,
                seq: invoke,
            }),
            error: None,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_pause_is_the_longest_gap_overlapping_the_window() {
        let h = History {
            ops: vec![
                op(0, 10),
                op(10, 20),
                op(20, 900),
                op(900, 910),
                op(910, 2500),
            ],
        };
        // Window 15..1000: gaps 20-15=5, 900-20=880, 10, then 2500-910 (overlaps).
        assert_eq!(longest_pause(&h, ms(15), ms(1000)), ms(1590));
        // Window 15..905: the 910 completion ends the last overlapping gap.
        assert_eq!(longest_pause(&h, ms(15), ms(905)), ms(880));
        // A window after every completion: the whole window.
        assert_eq!(longest_pause(&h, ms(3000), ms(3500)), ms(500));
    }

    #[test]
    fn p99_is_nearest_rank_over_ops_invoked_in_the_window() {
        let mut ops: Vec<Op> = (0..100).map(|i| op(i * 10, i * 10 + 1)).collect();
        ops[50] = op(500, 800);
        ops.push(op(5000, 9000)); // outside the window
        let s = fault_stats(&History { ops }, ms(0), ms(1000));
        assert_eq!(s.ops_in_window, 100);
        assert_eq!(s.p99, ms(1));
        let mut v = vec![ms(3), ms(1), ms(2)];
        assert_eq!(quantile(&mut v, 0.99), ms(3));
        assert_eq!(quantile(&mut v, 0.5), ms(2));
        assert_eq!(quantile(&mut [], 0.99), Duration::ZERO);
    }
}
