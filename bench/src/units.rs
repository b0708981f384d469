//! Parsing and printing of durations and sizes on the command line and in tables.

use crate::error::BenchError;
use std::time::Duration;

/// Parse `"2s"`, `"500ms"`, `"1.5s"`, `"250us"`, `"1m"`.
pub fn parse_duration(input: &str) -> Result<Duration, BenchError> {
    let bad = |reason| BenchError::BadDuration {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| bad("missing unit (ns, us, ms, s, m)"))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad("not a number"))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        _ => return Err(bad("unknown unit (ns, us, ms, s, m)")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 86_400.0 {
        return Err(bad("longer than a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse `"4096"`, `"4K"`, `"4KiB"`, `"1M"`, `"256MiB"`, `"1G"` (binary multiples).
pub fn parse_size(input: &str) -> Result<u64, BenchError> {
    let bad = || BenchError::BadSize {
        input: input.to_string(),
    };
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim_end_matches("iB").trim_end_matches('B') {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// `64 B`, `4 KiB`, `1 MiB`: sizes as the tables print them.
pub fn fmt_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (scale, unit) in UNITS {
        if bytes >= scale && bytes % scale == 0 {
            return format!("{} {unit}", bytes / scale);
        }
    }
    format!("{bytes} B")
}

/// Nanoseconds as microseconds with two decimals.
pub fn fmt_us(ns: f64) -> String {
    format!("{:.2}", ns / 1_000.0)
}

/// Bytes per second as MB/s (10^6, as ucx_perftest and fio print).
pub fn fmt_mbps(bytes_per_s: f64) -> String {
    format!("{:.0}", bytes_per_s / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("40us").unwrap(), Duration::from_micros(40));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
    }

    #[test]
    fn bad_durations_are_typed_errors() {
        for bad in ["", "2", "s", "2h", "1e9s", "-1s", "99999999s"] {
            assert!(
                matches!(parse_duration(bad), Err(BenchError::BadDuration { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn sizes_parse_binary_multiples() {
        assert_eq!(parse_size("64").unwrap(), 64);
        assert_eq!(parse_size("4K").unwrap(), 4096);
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        for bad in ["", "K", "4X", "4 K", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn sizes_print_in_their_largest_exact_unit() {
        assert_eq!(fmt_size(64), "64 B");
        assert_eq!(fmt_size(4096), "4 KiB");
        assert_eq!(fmt_size(1 << 20), "1 MiB");
        assert_eq!(fmt_size(1536), "1536 B");
        assert_eq!(fmt_us(14_250.0), "14.25");
    }
}
