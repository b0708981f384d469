//! Raw TCP on loopback: the floor under Basalt's TCP transport. A blocking socket pair
//! (NODELAY) served by a second thread; no framing, no runtime.

use crate::error::BenchError;
use crate::report::{Kind, Measurement};
use crate::runner::{latency_sync, Timing};
use crate::units::fmt_size;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

/// Name of the ping-pong baseline for `size`.
pub fn ping_pong_name(size: u64) -> String {
    format!("raw-tcp/ping-pong/{}", fmt_size(size).replace(' ', ""))
}

/// Name of the streaming baseline for `size`.
pub fn stream_name(size: u64) -> String {
    format!("raw-tcp/stream/{}", fmt_size(size).replace(' ', ""))
}

fn pair() -> Result<(TcpStream, TcpStream), BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(BenchError::io("bind 127.0.0.1:0"))?;
    let addr = listener
        .local_addr()
        .map_err(BenchError::io("local_addr"))?;
    let client = TcpStream::connect(addr).map_err(BenchError::io(format!("connect {addr}")))?;
    let (server, _) = listener.accept().map_err(BenchError::io("accept"))?;
    for s in [&client, &server] {
        s.set_nodelay(true).map_err(BenchError::io("TCP_NODELAY"))?;
    }
    Ok((client, server))
}

/// Closed-loop ping-pong of `size`-byte messages: write, then read the echo.
pub fn ping_pong(size: u64, timing: Timing) -> Result<Measurement, BenchError> {
    let (mut client, mut server) = pair()?;
    let n = size as usize;
    let echo = thread::Builder::new()
        .name("raw-tcp-echo".into())
        .spawn(move || {
            let mut buf = vec![0u8; n];
            // Ends when the client shuts its side down (read_exact then fails).
            while server.read_exact(&mut buf).is_ok() {
                if server.write_all(&buf).is_err() {
                    break;
                }
            }
        })
        .map_err(BenchError::io("spawn echo thread"))?;
    let msg = vec![0x5au8; n];
    let mut back = vec![0u8; n];
    let label = format!("raw tcp ping-pong {}", fmt_size(size));
    let run = latency_sync(timing, &label, || {
        client
            .write_all(&msg)
            .map_err(BenchError::io("raw tcp write"))?;
        client
            .read_exact(&mut back)
            .map_err(BenchError::io("raw tcp read"))
    });
    let _ = client.shutdown(Shutdown::Both);
    let _ = echo.join();
    let run = run?;
    let mut m = Measurement::new(
        ping_pong_name(size),
        "raw tcp ping-pong",
        "loopback",
        Kind::Latency,
        size,
    )
    .with_run(run.ops, run.elapsed, run.cpu);
    m.latency = run.recorder.summary();
    m.note = Some("two threads, blocking sockets, TCP_NODELAY; the floor for TCP RPC".into());
    Ok(m)
}

/// One-way stream of `size`-byte writes; the reader acknowledges once at the end so the
/// interval covers every byte arriving.
pub fn stream(size: u64, timing: Timing) -> Result<Measurement, BenchError> {
    let (mut client, mut server) = pair()?;
    let n = size as usize;
    let sink = thread::Builder::new()
        .name("raw-tcp-sink".into())
        .spawn(move || -> std::io::Result<u64> {
            let mut buf = vec![0u8; n.max(64 * 1024)];
            let mut total = 0u64;
            loop {
                match server.read(&mut buf)? {
                    0 => break,
                    k => total += k as u64,
                }
            }
            server.write_all(&[1])?;
            Ok(total)
        })
        .map_err(BenchError::io("spawn sink thread"))?;
    let label = format!("raw tcp stream {}", fmt_size(size));
    let progress =
        crate::progress::Progress::start(&label, timing.warmup + timing.duration, timing.quiet);
    let msg = vec![0x5au8; n];
    let result = (|| {
        let warm_end = Instant::now() + timing.warmup;
        while Instant::now() < warm_end {
            client
                .write_all(&msg)
                .map_err(BenchError::io("raw tcp write"))?;
        }
        let cpu0 = crate::cpu::CpuTimes::of_self().ok();
        let start = Instant::now();
        let end = start + timing.duration;
        let mut ops = 0u64;
        while Instant::now() < end {
            client
                .write_all(&msg)
                .map_err(BenchError::io("raw tcp write"))?;
            ops += 1;
        }
        client
            .shutdown(Shutdown::Write)
            .map_err(BenchError::io("shutdown"))?;
        let mut ack = [0u8; 1];
        client
            .read_exact(&mut ack)
            .map_err(BenchError::io("raw tcp ack"))?;
        let elapsed = start.elapsed();
        let cpu = match (crate::cpu::CpuTimes::of_self().ok(), cpu0) {
            (Some(now), Some(then)) => Some(now.since(&then).own),
            _ => None,
        };
        Ok((ops, elapsed, cpu))
    })();
    let _ = client.shutdown(Shutdown::Both);
    let received = sink.join();
    let (ops, elapsed, cpu) = result?;
    let mut m = Measurement::new(
        stream_name(size),
        "raw tcp stream",
        "loopback",
        Kind::Throughput,
        size,
    )
    .with_run(ops, elapsed, cpu);
    if let Ok(Ok(bytes)) = received {
        m.note = Some(format!(
            "one direction, blocking writes; {} MB received in total (warm-up included)",
            bytes / 1_000_000
        ));
    }
    progress.finish(&m.short());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn quick() -> Timing {
        Timing {
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(200),
            quiet: true,
        }
    }

    #[test]
    fn ping_pong_measures_round_trips() {
        let m = ping_pong(4096, quick()).unwrap();
        assert!(m.ops > 0);
        let l = m.latency.unwrap();
        assert_eq!(l.samples, m.ops);
        assert!(l.p50_ns > 0.0);
        assert_eq!(m.name, "raw-tcp/ping-pong/4KiB");
    }

    #[test]
    fn stream_counts_bandwidth() {
        let m = stream(128 * 1024, quick()).unwrap();
        assert!(m.ops > 0);
        assert!(m.bandwidth() > 0.0);
        assert_eq!(m.kind, Kind::Throughput);
    }
}
