//! Basalt's benchmarks: latency and throughput of each layer next to the baselines the
//! hardware gives (raw TCP, raw disk, `ucx_perftest`), measured in the same run so the
//! ratios hold on shared, drifting machines.
//!
//! One module per subcommand ([`baseline`], [`transport_bench`], [`chunkstore_bench`],
//! [`raft_bench`], [`volume_bench`]); shared pieces:
//! [`histogram`] (HDR, ns), [`runner`] (timed loops), [`cpu`] (CPU time per op),
//! [`report`] (measurements, ratios, the table), [`json`] (versioned report), [`plot`]
//! (SVG percentile curves), [`host`] (machine facts), [`progress`] (stderr line).
//! See `docs/benchmarking.md`.

pub mod baseline;
pub mod chunkstore_bench;
pub mod cpu;
pub mod error;
pub mod histogram;
pub mod host;
pub mod json;
pub mod plot;
pub mod progress;
pub mod raft_bench;
pub mod report;
pub mod runner;
pub mod transport_bench;
pub mod units;
pub mod volume_bench;

pub use error::BenchError;
