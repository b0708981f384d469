//! CPU time from `/proc/PID/stat` (user + system), to report CPU cost per operation.

use crate::error::BenchError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// User and system time of a process, and of its reaped children.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// utime + stime of the process itself.
    pub own: Duration,
    /// cutime + cstime: children the process has waited for.
    pub children: Duration,
}

impl CpuTimes {
    /// This process.
    pub fn of_self() -> Result<Self, BenchError> {
        Self::read(Path::new("/proc/self/stat"))
    }

    /// Another process (a server being measured).
    pub fn of_pid(pid: u32) -> Result<Self, BenchError> {
        Self::read(&PathBuf::from(format!("/proc/{pid}/stat")))
    }

    fn read(path: &Path) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path)
            .map_err(BenchError::io(format!("read {}", path.display())))?;
        parse_stat(&text, clock_ticks_per_sec()).ok_or_else(|| BenchError::ProcFormat {
            path: path.to_path_buf(),
            reason: "expected `pid (comm) state ...` with at least 17 fields",
        })
    }

    /// Own plus children's time.
    pub fn total(&self) -> Duration {
        self.own + self.children
    }

    /// Time spent between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            own: self.own.saturating_sub(earlier.own),
            children: self.children.saturating_sub(earlier.children),
        }
    }
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Parse `/proc/PID/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`. utime, stime, cutime, cstime are fields 14–17.
fn parse_stat(text: &str, ticks_per_sec: u64) -> Option<CpuTimes> {
    let after = &text[text.rfind(')')? + 1..];
    // `after` starts at field 3 (state).
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> Option<u64> {
        fields
            .get(i - 3)?
            .parse::<i64>()
            .ok()
            .map(|v| v.max(0) as u64)
    };
    let to_d = |ticks: u64| {
        Duration::from_nanos(ticks.saturating_mul(1_000_000_000 / ticks_per_sec.max(1)))
    };
    Some(CpuTimes {
        own: to_d(tick(14)? + tick(15)?),
        children: to_d(tick(16)? + tick(17)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 \
                    12345 1000 100 18446744073709551615";
        let t = parse_stat(line, 100).unwrap();
        assert_eq!(t.own, Duration::from_millis(3000));
        assert_eq!(t.children, Duration::from_millis(100));
        assert_eq!(t.total(), Duration::from_millis(3100));
    }

    #[test]
    fn malformed_stat_is_none() {
        assert!(parse_stat("garbage", 100).is_none());
        assert!(parse_stat("1 (x) S 1 2", 100).is_none());
    }

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = CpuTimes::of_self().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut x = 0u64;
        loop {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            let now = CpuTimes::of_self().unwrap();
            if now.since(&before).own > Duration::ZERO {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU time accounted in 5 s"
            );
        }
    }
}
