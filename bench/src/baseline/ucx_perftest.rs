//! `ucx_perftest -t ucp_am_lat`: UCX's own active-message ping-pong, the floor under
//! Basalt's UCX transport. A server and a client process on loopback (`UCX_NET_DEVICES=lo`)
//! with the given `UCX_TLS`, endpoints in peer error mode (`-e`, like Basalt's).
//!
//! ucx_perftest prints one-way latency (half the round trip): figures here are doubled to
//! round trips, and only the median and the mean exist (no tail).

use crate::cpu::CpuTimes;
use crate::error::BenchError;
use crate::histogram::LatencySummary;
use crate::report::{Kind, Measurement};
use crate::units::fmt_size;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Round trip assumed at least when choosing the iteration count, seconds.
const MIN_RTT_S: f64 = 1e-6;
/// Most iterations of one measured run.
const MAX_ITERATIONS: u64 = 2_000_000;

/// The `Final:` line of a ucx_perftest latency run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerftestFinal {
    /// Iterations measured.
    pub iterations: u64,
    /// One-way latency at the 50th percentile, µs.
    pub p50_us: f64,
    /// Mean one-way latency of the last report interval, µs.
    pub avg_us: f64,
    /// Mean one-way latency over the whole run, µs.
    pub overall_us: f64,
}

/// Parse ucx_perftest's output: `Final: <iters> <p50> <avg> <overall> ...`.
pub fn parse_final(output: &str) -> Option<PerftestFinal> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("Final:"))?;
    let mut f = line.split_whitespace().skip(1);
    let mut next = || f.next()?.replace(',', "").parse::<f64>().ok();
    Some(PerftestFinal {
        iterations: next()? as u64,
        p50_us: next()?,
        avg_us: next()?,
        overall_us: next()?,
    })
}

/// Where ucx_perftest is, if installed.
pub fn find() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join("ucx_perftest"))
        .find(|p| p.is_file())
}

/// Name of the baseline for `tls` and `size`.
pub fn name(tls: &str, size: u64) -> String {
    format!(
        "ucx_perftest/am-lat/{tls}/{}",
        fmt_size(size).replace(' ', "")
    )
}

fn free_port() -> Result<u16, BenchError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(BenchError::io("bind 127.0.0.1:0"))?;
    Ok(l.local_addr().map_err(BenchError::io("local_addr"))?.port())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(bin: &PathBuf, tls: &str) -> Command {
    let mut c = Command::new(bin);
    c.env("UCX_TLS", tls)
        .env("UCX_NET_DEVICES", "lo")
        .env("UCX_MM_ERROR_HANDLING", "y")
        .stdin(Stdio::null());
    c
}

/// Wait for `child` with a deadline, collecting its output; killed when late.
fn wait_output(child: Child, deadline: Instant) -> Result<Output, BenchError> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(r) => r.map_err(BenchError::io("wait for ucx_perftest")),
        Err(_) => {
            // SAFETY: kill(2) on a pid we spawned and have not reaped (the waiting thread
            // reaps it after this signal); no memory is involved.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = rx.recv_timeout(Duration::from_secs(5));
            Err(BenchError::Io {
                what: "ucx_perftest".into(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "did not finish in time"),
            })
        }
    }
}

/// One server + client run; returns the client's final line.
fn run_once(
    bin: &PathBuf,
    tls: &str,
    size: u64,
    iters: u64,
    timeout: Duration,
) -> Result<PerftestFinal, BenchError> {
    let deadline = Instant::now() + timeout;
    let port = free_port()?.to_string();
    let server = command(bin, tls)
        .args(["-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(BenchError::io("spawn ucx_perftest server"))?;
    let mut server = KillOnDrop(server);
    // The server listens shortly after start; the client fails fast until then.
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.0.try_wait() {
            return Err(BenchError::PerftestOutput {
                status: status.to_string(),
                tail: "the server exited before the client connected".into(),
            });
        }
        let client = command(bin, tls)
            .args(["127.0.0.1", "-p", &port, "-t", "ucp_am_lat", "-e"])
            .args(["-s", &size.to_string(), "-n", &iters.to_string()])
            .args(["-w", &(iters / 10).max(100).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(BenchError::io("spawn ucx_perftest client"))?;
        let out = wait_output(client, deadline)?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(f) = parse_final(&text) {
            let _ = server.0.wait();
            return Ok(f);
        }
        last = format!(
            "{}{}",
            text.lines().rev().take(3).collect::<Vec<_>>().join(" | "),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(BenchError::PerftestOutput {
        status: "timeout".into(),
        tail: last,
    })
}

/// Measure `ucp_am_lat` round trips for `size` over `tls` for about `duration`: a short
/// calibration run picks the iteration count.
pub fn am_latency(
    bin: &PathBuf,
    tls: &str,
    size: u64,
    duration: Duration,
    quiet: bool,
) -> Result<Measurement, BenchError> {
    let label = format!("ucx_perftest am_lat {} [{tls}]", fmt_size(size));
    let progress = crate::progress::Progress::start(&label, duration, quiet);
    let budget = duration * 10 + Duration::from_secs(30);
    let calib = run_once(bin, tls, size, 2_000, budget)?;
    // Busy-polling processes on a loaded machine slow down unevenly: assume at least 1 µs
    // per round trip so a fast calibration cannot ask for more than the budget allows.
    let rtt_s = (2.0 * calib.overall_us * 1e-6).max(MIN_RTT_S);
    let iters = ((duration.as_secs_f64() / rtt_s) as u64).clamp(2_000, MAX_ITERATIONS);
    let cpu0 = CpuTimes::of_self().ok();
    let started = Instant::now();
    let f = run_once(bin, tls, size, iters, budget)?;
    let wall = started.elapsed();
    // Both processes have been waited for: their time is in our children's account.
    let cpu = match (CpuTimes::of_self().ok(), cpu0) {
        (Some(n), Some(t)) => Some(n.since(&t).children),
        _ => None,
    };
    let elapsed =
        Duration::from_secs_f64(f.iterations as f64 * 2.0 * f.overall_us * 1e-6).min(wall);
    let mut m = Measurement::new(
        name(tls, size),
        "ucx_perftest am",
        &format!("ucx[{tls}]"),
        Kind::Latency,
        size,
    )
    .with_run(f.iterations, elapsed, cpu);
    m.latency = Some(LatencySummary {
        samples: f.iterations,
        mean_ns: 2.0 * f.overall_us * 1e3,
        p50_ns: 2.0 * f.p50_us * 1e3,
        p90_ns: None,
        p99_ns: None,
        p999_ns: None,
        max_ns: None,
        percentiles: vec![],
    });
    m.note = Some(
        "round trip = 2 × ucx_perftest's one-way latency (p50, mean only); cpu covers both processes \
         including start-up"
            .into(),
    );
    progress.finish(&m.short());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
+--------------+--------------+------------------------------+---------------------+-----------------------+
|    Stage     | # iterations | 50.0%ile | average | overall |  average |  overall |  average  |  overall  |
+--------------+--------------+----------+---------+---------+----------+----------+-----------+-----------+
[thread 0]                41  12004.250 12473.609 12473.609        0.00       0.00          80          80
[thread 0]             19445      7.661   289.015   417.761        0.21       0.15        3460        2394
Final:                 20000      7.581   154.289   410.450        0.40       0.15        6481        2436
";

    #[test]
    fn final_line_is_parsed() {
        let f = parse_final(SAMPLE).unwrap();
        assert_eq!(f.iterations, 20000);
        assert_eq!(f.p50_us, 7.581);
        assert_eq!(f.avg_us, 154.289);
        assert_eq!(f.overall_us, 410.45);
    }

    #[test]
    fn thousands_separators_are_accepted() {
        let f = parse_final("Final:   1,000,000   0.191   0.201   0.205  1.0 1.0 5 5").unwrap();
        assert_eq!(f.iterations, 1_000_000);
        assert_eq!(f.p50_us, 0.191);
    }

    #[test]
    fn output_without_final_line_is_none() {
        assert!(parse_final("").is_none());
        assert!(parse_final("[thread 0] 41 1.0 2.0 3.0").is_none());
        assert!(parse_final("Final: 10 x").is_none());
    }

    #[test]
    fn real_ucx_perftest_round_trip_when_installed() {
        let Some(bin) = find() else {
            eprintln!("ucx_perftest not installed; nothing to check");
            return;
        };
        let f = run_once(&bin, "tcp", 64, 2_000, Duration::from_secs(60)).unwrap();
        assert_eq!(f.iterations, 2_000);
        assert!(f.p50_us > 0.0);
    }
}
