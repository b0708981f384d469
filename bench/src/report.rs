//! Measurements, their comparison with baselines, and the printed table.

use crate::histogram::LatencySummary;
use crate::units::{fmt_mbps, fmt_size, fmt_us};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// What a measurement measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Closed-loop round trips (or single I/Os) one at a time: latency matters.
    Latency,
    /// Many operations in flight: bandwidth and IOPS matter.
    Throughput,
}

/// One measured figure set.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Unique name within a run, e.g. `rpc/tcp/4KiB`; baselines are referred to by it.
    pub name: String,
    /// What was measured, e.g. `basalt rpc`, `raw tcp ping-pong`.
    pub subject: String,
    /// The path or backend, e.g. `tcp`, `ucx[sm,tcp]`, `O_DIRECT`.
    pub backend: String,
    /// Latency or throughput.
    pub kind: Kind,
    /// Bytes moved per operation (message or I/O size).
    pub size_bytes: u64,
    /// Operations completed in the measured interval.
    pub ops: u64,
    /// The measured interval (warm-up excluded), seconds.
    pub elapsed_s: f64,
    /// Latency figures, when per-operation latency was recorded.
    pub latency: Option<LatencySummary>,
    /// CPU time (user + system) per operation in ns, of every process involved.
    pub cpu_ns_per_op: Option<f64>,
    /// Name of the baseline this is compared with.
    pub baseline: Option<String>,
    /// Latency: p50 ÷ baseline p50. Throughput: bandwidth ÷ baseline bandwidth.
    pub ratio: Option<f64>,
    /// How to read the figure (e.g. "round trip = 2 × ucx_perftest's one-way latency").
    pub note: Option<String>,
    /// Further named figures of this measurement (e.g. `fsyncs_per_write`,
    /// `leader_elections`); absent from the JSON when empty (added in schema 1).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, f64>,
}

impl Measurement {
    /// A measurement without figures yet.
    pub fn new(
        name: impl Into<String>,
        subject: &str,
        backend: &str,
        kind: Kind,
        size: u64,
    ) -> Self {
        Measurement {
            name: name.into(),
            subject: subject.to_string(),
            backend: backend.to_string(),
            kind,
            size_bytes: size,
            ops: 0,
            elapsed_s: 0.0,
            latency: None,
            cpu_ns_per_op: None,
            baseline: None,
            ratio: None,
            note: None,
            extra: std::collections::BTreeMap::new(),
        }
    }

    /// Operations per second.
    pub fn iops(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.ops as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// Bytes per second.
    pub fn bandwidth(&self) -> f64 {
        self.iops() * self.size_bytes as f64
    }

    /// Set ops, interval and CPU per op from a run.
    pub fn with_run(mut self, ops: u64, elapsed: Duration, cpu: Option<Duration>) -> Self {
        self.ops = ops;
        self.elapsed_s = elapsed.as_secs_f64();
        self.cpu_ns_per_op = cpu
            .filter(|_| ops > 0)
            .map(|c| c.as_nanos() as f64 / ops as f64);
        self
    }

    /// One-line summary for the progress output.
    pub fn short(&self) -> String {
        match (&self.kind, &self.latency) {
            (Kind::Latency, Some(l)) => format!(
                "p50 {} µs, p99 {} µs, {:.0} ops/s",
                fmt_us(l.p50_ns),
                l.p99_ns.map_or("-".into(), fmt_us),
                self.iops()
            ),
            _ => format!(
                "{} MB/s, {:.0} ops/s",
                fmt_mbps(self.bandwidth()),
                self.iops()
            ),
        }
    }
}

/// Fill in `ratio` of every measurement that names a baseline present in `all`.
pub fn compute_ratios(all: &mut [Measurement]) {
    let figures: Vec<(String, Kind, Option<f64>, f64)> = all
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                m.kind,
                m.latency.as_ref().map(|l| l.p50_ns),
                m.bandwidth(),
            )
        })
        .collect();
    for m in all.iter_mut() {
        let Some(base) = &m.baseline else { continue };
        let Some((_, bkind, bp50, bbw)) = figures.iter().find(|f| &f.0 == base) else {
            continue;
        };
        m.ratio = match (m.kind, bkind) {
            (Kind::Latency, Kind::Latency) => match (&m.latency, bp50) {
                (Some(l), Some(b)) if *b > 0.0 => Some(l.p50_ns / b),
                _ => None,
            },
            (Kind::Throughput, Kind::Throughput) if *bbw > 0.0 => Some(m.bandwidth() / bbw),
            _ => None,
        };
    }
}

/// The table printed on stdout.
pub fn table(all: &[Measurement]) -> String {
    let mut out = String::new();
    let header = [
        "measurement",
        "size",
        "ops",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "mean µs",
        "kIOPS",
        "MB/s",
        "cpu µs/op",
        "ratio",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let opt = |v: Option<f64>| v.map_or("-".to_string(), fmt_us);
    for m in all {
        let l = m.latency.as_ref();
        rows.push(vec![
            format!("{} {}", m.subject, m.backend),
            fmt_size(m.size_bytes),
            m.ops.to_string(),
            opt(l.map(|l| l.p50_ns)),
            opt(l.and_then(|l| l.p90_ns)),
            opt(l.and_then(|l| l.p99_ns)),
            opt(l.and_then(|l| l.p999_ns)),
            opt(l.and_then(|l| l.max_ns)),
            opt(l.map(|l| l.mean_ns)),
            if m.ops > 0 {
                format!("{:.1}", m.iops() / 1e3)
            } else {
                "-".into()
            },
            if m.ops > 0 {
                fmt_mbps(m.bandwidth())
            } else {
                "-".into()
            },
            m.cpu_ns_per_op
                .map_or("-".into(), |c| format!("{:.2}", c / 1e3)),
            m.ratio.map_or("-".into(), |r| format!("{r:.2}")),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                let _ = write!(out, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "  {}{cell}", " ".repeat(pad));
            }
        }
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    let mut notes: Vec<String> = Vec::new();
    for m in all {
        if let Some(n) = &m.note {
            let line = format!("  {} {}: {n}", m.subject, m.backend);
            if !notes.contains(&line) {
                notes.push(line);
            }
        }
    }
    if !notes.is_empty() {
        out.push_str("notes:\n");
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(name: &str, p50: f64, baseline: Option<&str>) -> Measurement {
        let mut m = Measurement::new(name, "x", "y", Kind::Latency, 64).with_run(
            1000,
            Duration::from_secs(1),
            Some(Duration::from_millis(5)),
        );
        m.latency = Some(LatencySummary {
            samples: 1000,
            mean_ns: p50,
            p50_ns: p50,
            p90_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            percentiles: vec![],
        });
        m.baseline = baseline.map(str::to_string);
        m
    }

    #[test]
    fn ratios_compare_p50_with_the_named_baseline() {
        let mut all = vec![
            lat("raw", 10_000.0, None),
            lat("rpc", 12_500.0, Some("raw")),
            lat("orphan", 1.0, Some("missing")),
        ];
        compute_ratios(&mut all);
        assert_eq!(all[0].ratio, None);
        assert!((all[1].ratio.unwrap() - 1.25).abs() < 1e-9);
        assert_eq!(all[2].ratio, None);
        assert!((all[1].cpu_ns_per_op.unwrap() - 5_000.0).abs() < 1e-6);
    }

    #[test]
    fn throughput_ratio_is_bandwidth_fraction() {
        let base = Measurement::new("raw", "a", "b", Kind::Throughput, 1 << 20).with_run(
            1000,
            Duration::from_secs(1),
            None,
        );
        let mut m = Measurement::new("rpc", "a", "b", Kind::Throughput, 1 << 20).with_run(
            800,
            Duration::from_secs(1),
            None,
        );
        m.baseline = Some("raw".into());
        let mut all = vec![base, m];
        compute_ratios(&mut all);
        assert!((all[1].ratio.unwrap() - 0.8).abs() < 1e-9);
    }

    #[test]
    fn table_has_a_row_per_measurement_and_notes() {
        let mut m = lat("raw", 10_000.0, None);
        m.note = Some("one-way × 2".into());
        let mut m2 = lat("rpc", 12_000.0, None);
        m2.note = m.note.clone();
        let t = table(&[m, m2]);
        // header, rule, two rows, "notes:", one note (the same note once)
        assert_eq!(t.lines().count(), 2 + 2 + 2);
        assert!(t.contains("10.00"));
        assert!(t.contains("one-way × 2"));
    }
}
