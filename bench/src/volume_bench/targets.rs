//! The end-to-end performance targets (issues 5 and 7), computed from one run's
//! measurements and printed under the table. Reported, never enforced.

use super::case::{Case, Pattern};
use crate::baseline::disk_qd::read_name;
use crate::report::Measurement;

/// Raw TCP round trip the latency targets use (a 4 KiB ping-pong: a 4 KiB write's payload).
pub const RTT_SIZE: u64 = 4096;
/// Name of the raw disk 4 KiB write+fdatasync baseline (see `baseline::disk`).
pub const DISK_WRITE: &str = "disk/write-fdatasync/4KiB";
/// Name of the raw disk 4 KiB random read baseline at queue depth 1.
pub const DISK_READ: &str = "disk/rand-read/4KiB";
/// Name of the raw disk sequential 1 MiB write baseline.
pub const DISK_SEQ: &str = "disk/seq-write/1MiB";

/// One target: `value` compared with `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What is compared, for people.
    pub what: String,
    /// The measured ratio.
    pub value: f64,
    /// The bound.
    pub limit: f64,
    /// `value ≤ limit` is met (else `value ≥ limit`).
    pub at_most: bool,
}

impl Target {
    /// Whether the target is met.
    pub fn met(&self) -> bool {
        if self.at_most {
            self.value <= self.limit
        } else {
            self.value >= self.limit
        }
    }

    /// One printed line.
    pub fn line(&self) -> String {
        let op = if self.at_most { "≤" } else { "≥" };
        format!(
            "  {:<66} {:>6.2}  (target {op} {}: {})",
            self.what,
            self.value,
            self.limit,
            if self.met() { "met" } else { "missed" }
        )
    }
}

fn find<'a>(all: &'a [Measurement], name: &str) -> Option<&'a Measurement> {
    all.iter().find(|m| m.name == name && m.ops > 0)
}

fn mean(m: &Measurement) -> Option<f64> {
    m.latency.as_ref().map(|l| l.mean_ns).filter(|v| *v > 0.0)
}

/// The volume measurement of `pattern` with block size `bs` whose total depth is 1
/// (`qd1 = true`) or the deepest one above 1.
fn volume<'a>(
    all: &'a [Measurement],
    cases: &[Case],
    pattern: Pattern,
    bs: u64,
    qd1: bool,
) -> Option<(&'a Measurement, Case)> {
    cases
        .iter()
        .filter(|c| c.pattern == pattern && c.bs == bs)
        .filter(|c| (c.total_depth() == 1) == qd1)
        .max_by_key(|c| c.total_depth())
        .and_then(|c| find(all, &c.name()).map(|m| (m, *c)))
}

/// Every target whose measurements are all present.
pub fn targets(all: &[Measurement], cases: &[Case]) -> Vec<Target> {
    let rtt = find(all, &crate::baseline::tcp::ping_pong_name(RTT_SIZE)).and_then(mean);
    let disk_w = find(all, DISK_WRITE);
    let disk_r = find(all, DISK_READ).and_then(mean);
    let mut out = Vec::new();
    if let (Some((v, _)), Some(w), Some(rtt)) = (
        volume(all, cases, Pattern::Randwrite, 4096, true),
        disk_w.and_then(mean),
        rtt,
    ) {
        if let Some(vm) = mean(v) {
            out.push(Target {
                what: "4K randwrite QD1 mean ÷ (raw write+fdatasync mean + 2 × TCP RTT)".into(),
                value: vm / (w + 2.0 * rtt),
                limit: 1.5,
                at_most: true,
            });
        }
    }
    if let (Some((v, _)), Some(r), Some(rtt)) = (
        volume(all, cases, Pattern::Randread, 4096, true),
        disk_r,
        rtt,
    ) {
        if let Some(vm) = mean(v) {
            out.push(Target {
                what: "4K randread QD1 mean ÷ (raw O_DIRECT read mean + TCP RTT)".into(),
                value: vm / (r + rtt),
                limit: 1.5,
                at_most: true,
            });
        }
    }
    if let Some((v, c)) = volume(all, cases, Pattern::Randread, 4096, false) {
        if let Some(raw) = find(all, &read_name(c.total_depth())) {
            if raw.iops() > 0.0 {
                out.push(Target {
                    what: format!(
                        "4K randread QD{} IOPS ÷ raw O_DIRECT QD{} IOPS",
                        c.total_depth(),
                        c.total_depth()
                    ),
                    value: v.iops() / raw.iops(),
                    limit: 0.4,
                    at_most: false,
                });
            }
        }
    }
    if let (Some((v, c)), Some(w)) = (volume(all, cases, Pattern::Randwrite, 4096, false), disk_w) {
        if w.iops() > 0.0 {
            out.push(Target {
                what: format!(
                    "4K randwrite QD{} IOPS ÷ raw write+fdatasync QD1 IOPS",
                    c.total_depth()
                ),
                value: v.iops() / w.iops(),
                limit: 4.0,
                at_most: false,
            });
        }
    }
    let seq = cases
        .iter()
        .filter(|c| c.pattern == Pattern::Write && c.bs == 1 << 20)
        .max_by_key(|c| c.total_depth())
        .and_then(|c| find(all, &c.name()));
    if let (Some(v), Some(raw)) = (seq, find(all, DISK_SEQ)) {
        if raw.bandwidth() > 0.0 {
            out.push(Target {
                what: "1M seq write bandwidth ÷ (raw seq write bandwidth ÷ 6)".into(),
                value: v.bandwidth() / (raw.bandwidth() / 6.0),
                limit: 0.6,
                at_most: false,
            });
        }
    }
    out
}

/// The name of the baseline a volume case is compared with in the table's ratio column.
pub fn baseline_of(case: &Case, raw_qd: usize) -> Option<String> {
    match (case.pattern, case.bs, case.total_depth()) {
        (Pattern::Randwrite, 4096, 1) => Some(DISK_WRITE.into()),
        (Pattern::Randread, 4096, 1) => Some(DISK_READ.into()),
        (Pattern::Randread, 4096, d) if d == raw_qd => Some(read_name(raw_qd)),
        (Pattern::Write, b, _) if b == 1 << 20 => Some(DISK_SEQ.into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::LatencySummary;
    use crate::report::Kind;
    use std::time::Duration;

    fn m(name: &str, kind: Kind, size: u64, ops: u64, mean_us: f64) -> Measurement {
        let mut m = Measurement::new(name, "s", "b", kind, size).with_run(
            ops,
            Duration::from_secs(1),
            None,
        );
        m.latency = Some(LatencySummary {
            samples: ops,
            mean_ns: mean_us * 1e3,
            p50_ns: mean_us * 1e3,
            p90_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            percentiles: vec![],
        });
        m
    }

    fn cases() -> Vec<Case> {
        [
            "randwrite:4K:1",
            "randread:4K:1",
            "randread:4K:32",
            "randwrite:4K:32",
            "write:1M:4",
        ]
        .iter()
        .map(|s| Case::parse(s).unwrap())
        .collect()
    }

    #[test]
    fn the_five_targets_from_known_figures() {
        let c = cases();
        let all = vec![
            m("raw-tcp/ping-pong/4KiB", Kind::Latency, 4096, 1000, 20.0),
            m(DISK_WRITE, Kind::Latency, 4096, 500, 1000.0),
            m(DISK_READ, Kind::Latency, 4096, 1000, 100.0),
            m(&read_name(32), Kind::Throughput, 4096, 50_000, 600.0),
            m(DISK_SEQ, Kind::Throughput, 1 << 20, 600, 1000.0),
            m(&c[0].name(), Kind::Latency, 4096, 100, 1560.0),
            m(&c[1].name(), Kind::Latency, 4096, 100, 150.0),
            m(&c[2].name(), Kind::Throughput, 4096, 25_000, 1.0),
            m(&c[3].name(), Kind::Throughput, 4096, 1_500, 1.0),
            m(&c[4].name(), Kind::Throughput, 1 << 20, 50, 1.0),
        ];
        let t = targets(&all, &c);
        assert_eq!(t.len(), 5, "{t:?}");
        // 1560 / (1000 + 2 × 20) = 1.5: met exactly at the bound.
        assert!((t[0].value - 1.5).abs() < 1e-9 && t[0].met());
        // 150 / (100 + 20) = 1.25
        assert!((t[1].value - 1.25).abs() < 1e-9 && t[1].met());
        // 25 000 / 50 000 = 0.5 ≥ 0.4
        assert!((t[2].value - 0.5).abs() < 1e-9 && t[2].met());
        assert!(t[2].what.contains("QD32"));
        // 1 500 / 500 = 3 < 4: missed
        assert!((t[3].value - 3.0).abs() < 1e-9 && !t[3].met());
        // 50 MiB/s ÷ (600 MiB/s ÷ 6) = 0.5 < 0.6: missed
        assert!((t[4].value - 0.5).abs() < 1e-9 && !t[4].met());
        assert!(t[4].line().contains("missed") && t[0].line().contains("met"));
    }

    #[test]
    fn targets_need_their_baselines() {
        let c = cases();
        let all = vec![
            m(&c[0].name(), Kind::Latency, 4096, 100, 1560.0),
            m(DISK_WRITE, Kind::Latency, 4096, 500, 1000.0),
        ];
        assert!(targets(&all, &c).is_empty(), "no RTT: no write target");
        // A case with zero ops is not a figure.
        let all = vec![
            m("raw-tcp/ping-pong/4KiB", Kind::Latency, 4096, 1000, 20.0),
            m(DISK_WRITE, Kind::Latency, 4096, 500, 1000.0),
            m(&c[0].name(), Kind::Latency, 4096, 0, 1560.0),
        ];
        assert!(targets(&all, &c).is_empty());
    }

    #[test]
    fn baselines_match_cases() {
        let c = cases();
        assert_eq!(baseline_of(&c[0], 32).as_deref(), Some(DISK_WRITE));
        assert_eq!(baseline_of(&c[1], 32).as_deref(), Some(DISK_READ));
        assert_eq!(baseline_of(&c[2], 32), Some(read_name(32)));
        assert_eq!(baseline_of(&c[2], 16), None);
        assert_eq!(baseline_of(&c[3], 32), None);
        assert_eq!(baseline_of(&c[4], 32).as_deref(), Some(DISK_SEQ));
    }
}
