//! The I/O loop of one case: `jobs × iodepth` tasks, each issuing the workload's next
//! I/O as soon as its previous one completes (closed loop, as fio with an async engine).
//! A warm-up pass records nothing; the measured pass records every I/O's latency.

use super::workload::{fill, first_mismatch, Io, Workload};
use crate::error::BenchError;
use crate::histogram::Recorder;
use basalt_client::Volume;
use basalt_transport::TcpTransport;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Instant;

/// The volume under test.
pub type Vol = Arc<Volume<TcpTransport>>;

/// What one pass measured.
#[derive(Debug)]
pub struct Pass {
    /// Latency of every I/O issued before the end.
    pub recorder: Recorder,
    /// I/Os completed.
    pub ops: u64,
}

/// How the I/Os carry data.
#[derive(Debug, Clone)]
pub enum Data {
    /// Every write sends this buffer; reads are not checked.
    Fixed(Bytes),
    /// Writes carry [`fill`]'s pattern for their offset; reads are checked against it.
    Verify,
}

/// One I/O of `bs` bytes.
pub async fn one_io(vol: &Vol, io: Io, bs: u64, data: &Data) -> Result<(), BenchError> {
    match io {
        Io::Write(offset) => {
            let buf = match data {
                Data::Fixed(b) => b.clone(),
                Data::Verify => {
                    let mut v = vec![0u8; bs as usize];
                    fill(offset, &mut v);
                    Bytes::from(v)
                }
            };
            vol.write(offset, buf)
                .await
                .map_err(|source| BenchError::Client {
                    op: "write",
                    offset,
                    source,
                })
        }
        Io::Read(offset) => {
            let got = vol
                .read(offset, bs)
                .await
                .map_err(|source| BenchError::Client {
                    op: "read",
                    offset,
                    source,
                })?;
            if let Data::Verify = data {
                if let Some(first_diff) = first_mismatch(offset, &got) {
                    return Err(BenchError::VerifyMismatch {
                        offset,
                        len: bs,
                        first_diff,
                    });
                }
            }
            Ok(())
        }
    }
}

/// Run the workload until `end` with every job's `iodepth` tasks.
pub async fn pass(
    vol: &Vol,
    workload: &Arc<Workload>,
    data: &Data,
    end: Instant,
) -> Result<Pass, BenchError> {
    let case = workload.case();
    let mut tasks = tokio::task::JoinSet::new();
    for job in 0..case.jobs {
        for _ in 0..case.iodepth {
            let (vol, wl, data) = (vol.clone(), workload.clone(), data.clone());
            tasks.spawn(async move {
                let mut rng = StdRng::from_entropy();
                let mut rec = Recorder::new()?;
                let mut ops = 0u64;
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    let io = wl.next(job, rng.gen());
                    one_io(&vol, io, case.bs, &data).await?;
                    rec.record(t.elapsed());
                    ops += 1;
                }
                Ok::<_, BenchError>(Pass { recorder: rec, ops })
            });
        }
    }
    let mut total = Pass {
        recorder: Recorder::new()?,
        ops: 0,
    };
    let mut first_err = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(p)) => {
                total.recorder.merge(&p.recorder)?;
                total.ops += p.ops;
            }
            Ok(Err(e)) => {
                // Stop the others: one failed I/O fails the case.
                tasks.abort_all();
                first_err.get_or_insert(e);
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                tasks.abort_all();
                first_err.get_or_insert(BenchError::Io {
                    what: "volume benchmark task".into(),
                    source: std::io::Error::other(e.to_string()),
                });
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// Write `[0, region)` sequentially in `bs` pieces with `depth` in flight, with the
/// verify pattern (so that later reads return data, not zeros from unallocated chunks,
/// and `--verify` can check them).
pub async fn prefill(vol: &Vol, region: u64, bs: u64, depth: usize) -> Result<(), BenchError> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..depth.max(1) {
        let (vol, next) = (vol.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let off = next.fetch_add(bs, std::sync::atomic::Ordering::Relaxed);
                if off >= region {
                    return Ok::<_, BenchError>(());
                }
                let len = bs.min(region - off);
                one_io(&vol, Io::Write(off), len, &Data::Verify).await?;
            }
        });
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let r = joined.map_err(|e| BenchError::Io {
            what: "prefill task".into(),
            source: std::io::Error::other(e.to_string()),
        });
        if let Err(e) = r.and_then(|r| r) {
            tasks.abort_all();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}
