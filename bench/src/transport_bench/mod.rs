//! `basalt-bench transport`: Basalt RPC latency (closed-loop ping-pong of `Echo` with
//! 64 B / 4 KiB / 64 KiB payloads) and one-way streaming throughput (`WriteChunk` with
//! 128 KiB / 1 MiB payloads, many in flight) per backend, next to the baselines measured
//! in the same run: raw TCP ping-pong and stream, and `ucx_perftest` AM round trips.
//!
//! Target ratios (reported, never asserted): TCP RPC p50 ÷ raw TCP p50 ≤ 1.25, and
//! UCX RPC p50 ÷ ucx_perftest AM round trip ≤ 1.25.

pub mod backend;

use crate::baseline::{tcp, ucx_perftest};
use crate::error::BenchError;
use crate::report::{Kind, Measurement};
use crate::runner::{latency_async, throughput_async, Timing};
use crate::units::fmt_size;
use backend::{Backend, Pair};
use basalt_proto::chunk::WriteChunk;
use basalt_proto::hello::Echo;
use basalt_proto::ids::{ChunkId, Epoch, GroupId};
use bytes::Bytes;
use serde::Serialize;

/// Settings of a transport run.
#[derive(Debug, Clone, Serialize)]
pub struct TransportSettings {
    /// Ping-pong payload sizes.
    pub latency_sizes: Vec<u64>,
    /// Streaming payload sizes.
    pub stream_sizes: Vec<u64>,
    /// Calls in flight while streaming.
    pub depth: usize,
    /// `UCX_TLS` values to measure (UCX builds only).
    pub ucx_tls: Vec<String>,
    /// UCX I/O threads' spin window, µs (0: sleep on the event fd at once).
    pub ucx_spin_us: u64,
    /// Measure the baselines too (ratios need them).
    pub baselines: bool,
}

/// Name of a ping-pong measurement.
fn rpc_name(backend: &Backend, size: u64) -> String {
    format!(
        "rpc/{}/ping-pong/{}",
        backend.label(),
        fmt_size(size).replace(' ', "")
    )
}

/// Name of a streaming measurement.
fn stream_name(backend: &Backend, size: u64) -> String {
    format!(
        "rpc/{}/stream/{}",
        backend.label(),
        fmt_size(size).replace(' ', "")
    )
}

/// The backends this build can measure.
pub fn backends(settings: &TransportSettings) -> Vec<Backend> {
    #[allow(unused_mut)]
    let mut out = vec![Backend::Tcp];
    #[cfg(feature = "ucx")]
    out.extend(
        settings
            .ucx_tls
            .iter()
            .map(|tls| Backend::Ucx { tls: tls.clone() }),
    );
    #[cfg(not(feature = "ucx"))]
    let _ = settings;
    out
}

/// What could not be measured, and why.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Skipped {
    /// Backends (Basalt's own code) that failed to start or failed part-way.
    pub backends: Vec<String>,
    /// External baselines (ucx_perftest) that are missing or failed.
    pub baselines: Vec<String>,
}

/// Run everything; a backend or baseline that cannot run is skipped with a note in
/// `skipped` instead of failing the whole run.
pub async fn run(
    settings: &TransportSettings,
    timing: Timing,
    skipped: &mut Skipped,
) -> Result<Vec<Measurement>, BenchError> {
    let mut out = Vec::new();
    let backends = backends(settings);
    if settings.baselines {
        for &size in &settings.latency_sizes {
            out.push(blocking(move || tcp::ping_pong(size, timing)).await?);
        }
        for &size in &settings.stream_sizes {
            out.push(blocking(move || tcp::stream(size, timing)).await?);
        }
        let ucx_tls: Vec<String> = backends
            .iter()
            .filter_map(|b| match b {
                Backend::Tcp => None,
                #[cfg(feature = "ucx")]
                Backend::Ucx { tls } => Some(tls.clone()),
            })
            .collect();
        if !ucx_tls.is_empty() {
            match ucx_perftest::find() {
                None => skipped
                    .baselines
                    .push("ucx_perftest baselines: ucx_perftest not installed (ucx-utils)".into()),
                Some(bin) => {
                    for tls in &ucx_tls {
                        for &size in &settings.latency_sizes {
                            let (bin, tls2) = (bin.clone(), tls.clone());
                            let r = blocking(move || {
                                ucx_perftest::am_latency(
                                    &bin,
                                    &tls2,
                                    size,
                                    timing.duration,
                                    timing.quiet,
                                )
                            })
                            .await;
                            match r {
                                Ok(m) => out.push(m),
                                Err(e) => skipped
                                    .baselines
                                    .push(format!("ucx_perftest [{tls}] {}: {e}", fmt_size(size))),
                            }
                        }
                    }
                }
            }
        }
    }
    for backend in &backends {
        let mut pair = match Pair::start(backend, settings.ucx_spin_us).await {
            Ok(p) => p,
            Err(e) => {
                skipped.backends.push(format!("{}: {e}", backend.label()));
                continue;
            }
        };
        let result = measure_backend(&pair, backend, settings, timing).await;
        pair.stop().await;
        match result {
            Ok(ms) => out.extend(ms),
            Err(e) => skipped
                .backends
                .push(format!("{} (stopped part-way): {e}", backend.label())),
        }
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BenchError> + Send + 'static,
) -> Result<T, BenchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BenchError::Io {
            what: "baseline thread".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

async fn measure_backend(
    pair: &Pair,
    backend: &Backend,
    settings: &TransportSettings,
    timing: Timing,
) -> Result<Vec<Measurement>, BenchError> {
    let terr = |source| BenchError::Transport {
        backend: backend.label(),
        source,
    };
    let mut out = Vec::new();
    for &size in &settings.latency_sizes {
        let payload = Bytes::from(vec![0x5au8; size as usize]);
        let conn = pair.conn.clone();
        let label = format!("rpc ping-pong {} {}", backend.label(), fmt_size(size));
        let run = latency_async(timing, &label, || {
            let call = conn.call(
                &Echo {
                    tag: 1,
                    delay_us: 0,
                },
                payload.clone(),
            );
            async move {
                let (_reply, back) = call.await.map_err(terr)?;
                if back.len() != size as usize {
                    return Err(terr(basalt_transport::TransportError::Protocol {
                        reason: format!("echo returned {} bytes, sent {size}", back.len()),
                    }));
                }
                Ok(())
            }
        })
        .await?;
        let mut m = Measurement::new(
            rpc_name(backend, size),
            "basalt rpc ping-pong",
            &backend.label(),
            Kind::Latency,
            size,
        )
        .with_run(run.ops, run.elapsed, run.cpu);
        m.latency = run.recorder.summary();
        if settings.baselines {
            m.baseline = Some(match backend {
                Backend::Tcp => tcp::ping_pong_name(size),
                #[cfg(feature = "ucx")]
                Backend::Ucx { tls } => ucx_perftest::name(tls, size),
            });
        }
        m.note = Some("Echo, payload both ways; cpu covers client and server (one process)".into());
        out.push(m);
    }
    for &size in &settings.stream_sizes {
        let payload = Bytes::from(vec![0xa5u8; size as usize]);
        let conn = pair.conn.clone();
        let label = format!("rpc stream {} {}", backend.label(), fmt_size(size));
        let backend_label = backend.label();
        let req = WriteChunk {
            group: GroupId::NONE,
            chunk: ChunkId(1),
            epoch: Epoch(1),
            offset: 0,
            len: size as u32,
            crc32c: 0,
            req: basalt_proto::chunk::RequestId::NONE,
        };
        let run = throughput_async(timing, &label, settings.depth, move || {
            let call = conn.call(&req, payload.clone());
            let backend = backend_label.clone();
            async move {
                match call.await {
                    Ok((Ok(_), _)) => Ok(()),
                    Ok((Err(e), _)) => Err(BenchError::Transport {
                        backend,
                        source: basalt_transport::TransportError::Protocol {
                            reason: format!("server refused the write: {e}"),
                        },
                    }),
                    Err(source) => Err(BenchError::Transport { backend, source }),
                }
            }
        })
        .await?;
        let mut m = Measurement::new(
            stream_name(backend, size),
            "basalt rpc stream",
            &backend.label(),
            Kind::Throughput,
            size,
        )
        .with_run(run.ops, run.elapsed, run.cpu);
        m.latency = run.recorder.summary();
        if settings.baselines {
            m.baseline = Some(tcp::stream_name(size));
        }
        m.note = Some(format!(
            "WriteChunk, payload one way, {} calls in flight; ratio = bandwidth ÷ raw TCP stream",
            settings.depth
        ));
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_backend_measures_latency_and_throughput() {
        let settings = TransportSettings {
            latency_sizes: vec![64],
            stream_sizes: vec![128 * 1024],
            depth: 4,
            ucx_tls: vec![],
            ucx_spin_us: 0,
            baselines: true,
        };
        let timing = Timing {
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(200),
            quiet: true,
        };
        let mut ms = tokio::time::timeout(Duration::from_secs(60), async {
            let mut out = Vec::new();
            out.push(blocking(move || tcp::ping_pong(64, timing)).await.unwrap());
            out.push(
                blocking(move || tcp::stream(128 * 1024, timing))
                    .await
                    .unwrap(),
            );
            let mut pair = Pair::start(&Backend::Tcp, 0).await.unwrap();
            out.extend(
                measure_backend(&pair, &Backend::Tcp, &settings, timing)
                    .await
                    .unwrap(),
            );
            pair.stop().await;
            out
        })
        .await
        .expect("bounded");
        crate::report::compute_ratios(&mut ms);
        let rpc = ms
            .iter()
            .find(|m| m.name == "rpc/tcp/ping-pong/64B")
            .unwrap();
        assert!(rpc.ops > 0);
        assert!(rpc.ratio.unwrap() > 0.0);
        let stream = ms
            .iter()
            .find(|m| m.name == "rpc/tcp/stream/128KiB")
            .unwrap();
        assert!(stream.ops > 0);
        assert!(stream.ratio.unwrap() > 0.0);
    }

    #[cfg(feature = "ucx")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ucx_backends_connect_on_ucx_and_echo() {
        for tls in ["tcp", "sm,tcp"] {
            let backend = Backend::Ucx { tls: tls.into() };
            let mut pair = tokio::time::timeout(Duration::from_secs(30), Pair::start(&backend, 0))
                .await
                .expect("bounded")
                .unwrap_or_else(|e| panic!("{tls}: {e}"));
            let payload = Bytes::from(vec![7u8; 4096]);
            let (reply, back) = tokio::time::timeout(
                Duration::from_secs(30),
                pair.conn.call(
                    &Echo {
                        tag: 9,
                        delay_us: 0,
                    },
                    payload.clone(),
                ),
            )
            .await
            .expect("bounded")
            .unwrap();
            assert_eq!(reply.tag, 9);
            assert_eq!(back, payload);
            pair.stop().await;
        }
    }
}
