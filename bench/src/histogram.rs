//! Latency histograms (HDR, nanoseconds, 3 significant digits) and the summary every
//! measurement reports.

use crate::error::BenchError;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Highest latency a histogram holds (60 s); longer samples are clamped to it.
const MAX_NS: u64 = 60_000_000_000;

/// Percentiles in the JSON tables and the plots.
pub const PERCENTILES: &[f64] = &[
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0, 97.5, 99.0, 99.5,
    99.9, 99.95, 99.99, 100.0,
];

/// A latency recorder.
#[derive(Debug, Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
}

impl Recorder {
    /// An empty recorder (1 ns .. 60 s, 3 significant digits).
    pub fn new() -> Result<Self, BenchError> {
        let hist = Histogram::new_with_bounds(1, MAX_NS, 3).map_err(|e| BenchError::Histogram {
            reason: e.to_string(),
        })?;
        Ok(Recorder { hist })
    }

    /// Record one sample.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos())
            .unwrap_or(MAX_NS)
            .clamp(1, MAX_NS);
        // In bounds by the clamp, so this cannot fail.
        let _ = self.hist.record(ns);
    }

    /// Merge another recorder's samples (per-task recorders of one measurement).
    pub fn merge(&mut self, other: &Recorder) -> Result<(), BenchError> {
        self.hist
            .add(&other.hist)
            .map_err(|e| BenchError::Histogram {
                reason: e.to_string(),
            })
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// Median so far, in ns (for the progress line).
    pub fn p50_ns(&self) -> u64 {
        self.hist.value_at_quantile(0.5)
    }

    /// The summary, or `None` without samples.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let q = |p: f64| self.hist.value_at_quantile(p) as f64;
        Some(LatencySummary {
            samples: self.hist.len(),
            mean_ns: self.hist.mean(),
            p50_ns: q(0.5),
            p90_ns: Some(q(0.9)),
            p99_ns: Some(q(0.99)),
            p999_ns: Some(q(0.999)),
            max_ns: Some(self.hist.max() as f64),
            percentiles: PERCENTILES
                .iter()
                .map(|&p| PercentilePoint {
                    percentile: p,
                    ns: q(p / 100.0),
                })
                .collect(),
        })
    }
}

/// One point of a percentile table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PercentilePoint {
    /// Percentile (0–100).
    pub percentile: f64,
    /// Latency at that percentile, ns.
    pub ns: f64,
}

/// Latency figures of a measurement. External tools (ucx_perftest) give only a median
/// and a mean, so the tail fields are optional.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples behind the figures.
    pub samples: u64,
    /// Mean, ns.
    pub mean_ns: f64,
    /// Median, ns.
    pub p50_ns: f64,
    /// 90th percentile, ns.
    pub p90_ns: Option<f64>,
    /// 99th percentile, ns.
    pub p99_ns: Option<f64>,
    /// 99.9th percentile, ns.
    pub p999_ns: Option<f64>,
    /// Largest sample, ns.
    pub max_ns: Option<f64>,
    /// The percentile table (empty for external tools).
    pub percentiles: Vec<PercentilePoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let mut r = Recorder::new().unwrap();
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us));
        }
        let s = r.summary().unwrap();
        assert_eq!(s.samples, 1000);
        // 3 significant digits: within 0.1 % of the exact order statistic.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1.0;
        assert!(close(s.p50_ns, 500_000.0), "p50 {}", s.p50_ns);
        assert!(close(s.p90_ns.unwrap(), 900_000.0));
        assert!(close(s.p99_ns.unwrap(), 990_000.0));
        assert!(close(s.max_ns.unwrap(), 1_000_000.0));
        assert!(close(s.mean_ns, 500_500.0), "mean {}", s.mean_ns);
        assert_eq!(s.percentiles.len(), PERCENTILES.len());
        assert!(s.percentiles.windows(2).all(|w| w[0].ns <= w[1].ns));
    }

    #[test]
    fn empty_recorder_has_no_summary_and_extremes_are_clamped() {
        let mut r = Recorder::new().unwrap();
        assert!(r.summary().is_none());
        r.record(Duration::ZERO);
        r.record(Duration::from_secs(3600));
        let s = r.summary().unwrap();
        assert_eq!(s.samples, 2);
        assert!(s.max_ns.unwrap() >= MAX_NS as f64 * 0.999);
    }

    #[test]
    fn merge_adds_samples() {
        let mut a = Recorder::new().unwrap();
        let mut b = Recorder::new().unwrap();
        a.record(Duration::from_micros(10));
        b.record(Duration::from_micros(20));
        a.merge(&b).unwrap();
        assert_eq!(a.len(), 2);
    }
}
