//! `basalt-bench volume`: end-to-end I/O through `basalt-client` against a running
//! cluster, next to the raw disk and raw TCP baselines measured in the same invocation.
//!
//! - [`case`]: `PATTERN:BS:IODEPTH[:JOBS]` cases,
//! - [`workload`]: offsets and the verify pattern (pure),
//! - [`run_loop`]: the closed-loop I/O tasks and the prefill,
//! - [`cluster_cpu`]: CPU time of every cluster process,
//! - the deep random-read disk baseline comes from [`crate::baseline::disk_qd`],
//! - [`targets`]: the issue-5/7 target ratios,
//! - [`breakdown`]: server-side stage means from the chunkservers' metrics (`--breakdown`).
//!
//! Reads of never-written chunks return zeros without a round trip, so the region every
//! case works in is written first (sequential 1 MiB writes) whenever a case reads.

pub mod breakdown;
pub mod case;
pub mod cluster_cpu;
pub mod run_loop;
pub mod targets;
pub mod workload;

use crate::baseline::{disk, tcp};
use crate::cpu::CpuTimes;
use crate::error::BenchError;
use crate::progress::Progress;
use crate::report::{Kind, Measurement};
use crate::runner::Timing;
use crate::transport_bench::{Skipped, TransportSettings};
use crate::units::fmt_size;
use basalt_client::config_file::parse_addrs;
use basalt_client::{ClientError, ClientFile, OpenOptions};
use basalt_proto::status::MdsError;
use bytes::Bytes;
use case::Case;
use cluster_cpu::Processes;
use run_loop::{Data, Vol};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workload::Workload;

/// Block size of the prefill writes.
pub const PREFILL_BS: u64 = 1 << 20;
/// Prefill writes in flight.
const PREFILL_DEPTH: usize = 4;

/// What `basalt-bench volume` was asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeSettings {
    /// Client configuration file (default: `$BASALT_CLIENT_CONF` or the user's file).
    pub client_config: Option<PathBuf>,
    /// MDS addresses overriding the file (`host:port,...`).
    pub mds: Option<String>,
    /// Volume name.
    pub volume: String,
    /// Create the volume with this size first (an existing volume is used as it is).
    pub create: Option<u64>,
    /// The cases, in order.
    pub cases: Vec<Case>,
    /// Percent reads of `randrw` cases.
    pub rwmix_read: u8,
    /// Bytes at the start of the volume the cases work in.
    pub region: u64,
    /// Write the verify pattern and check every read.
    pub verify: bool,
    /// Skip the prefill (the region was written by an earlier run).
    pub no_prefill: bool,
    /// Dev cluster state dir: pids for the CPU figure, and where the disk baseline runs.
    pub state_dir: Option<PathBuf>,
    /// More pids whose CPU time counts.
    pub pids: Vec<u32>,
    /// Directory of the raw disk baseline's file (default: the state dir, else `.`).
    pub baseline_dir: Option<PathBuf>,
    /// Size of the raw disk baseline's file.
    pub baseline_file_size: u64,
    /// Queue depth of the raw disk random-read baseline.
    pub raw_qd: usize,
    /// Skip the baselines.
    pub no_baselines: bool,
    /// Read the chunkservers' metrics around each case and say where the time goes.
    pub breakdown: bool,
}

/// Name of the in-process Basalt RPC 4 KiB round trip measured for `--breakdown`.
pub fn rpc_floor_name() -> String {
    format!(
        "rpc/tcp/ping-pong/{}",
        fmt_size(targets::RTT_SIZE).replace(' ', "")
    )
}

fn client_err(op: &'static str) -> impl FnOnce(ClientError) -> BenchError {
    move |source| BenchError::Client {
        op,
        offset: 0,
        source,
    }
}

/// Run the baselines, then every case; a case that fails is reported in `skipped`.
pub async fn run(
    s: &VolumeSettings,
    timing: Timing,
    skipped: &mut Skipped,
) -> Result<Vec<Measurement>, BenchError> {
    let mut out = Vec::new();
    let state_dir = s
        .state_dir
        .clone()
        .or_else(cluster_cpu::default_state_dir)
        .filter(|d| d.join("cluster.toml").exists());

    // Baselines first, while the cluster is idle and before the volume's session exists
    // (they block this thread).
    if !s.no_baselines {
        out.push(tcp::ping_pong(targets::RTT_SIZE, timing)?);
        let dir = s
            .baseline_dir
            .clone()
            .or_else(|| state_dir.clone())
            .unwrap_or_else(|| PathBuf::from("."));
        match disk::run(&dir, s.baseline_file_size, timing) {
            Ok(ms) => out.extend(ms),
            Err(e) => skipped.baselines.push(format!("disk: {e}")),
        }
        match crate::baseline::disk_qd::rand_read(&dir, s.baseline_file_size, s.raw_qd, timing) {
            Ok(m) => out.push(m),
            Err(e) => skipped.baselines.push(format!("disk QD{}: {e}", s.raw_qd)),
        }
        if s.breakdown {
            // Basalt's own RPC floor: a 4 KiB echo round trip, both ends in this process.
            let rpc = TransportSettings {
                latency_sizes: vec![targets::RTT_SIZE],
                stream_sizes: Vec::new(),
                depth: 1,
                ucx_tls: Vec::new(),
                ucx_spin_us: 0,
                baselines: false,
            };
            out.extend(crate::transport_bench::run(&rpc, timing, skipped).await?);
        }
    }

    // The chunkservers' metrics endpoints (`--breakdown`).
    let endpoints = match (&state_dir, s.breakdown) {
        (_, false) => None,
        (Some(d), true) => match breakdown::endpoints(d) {
            Ok(a) => Some(a),
            Err(e) => {
                skipped.baselines.push(format!("breakdown: {e}"));
                None
            }
        },
        (None, true) => {
            skipped.baselines.push(
                "breakdown: no dev cluster state dir found (--state-dir): no server figures".into(),
            );
            None
        }
    };

    // Whose CPU time counts.
    let mut pids = s.pids.clone();
    let mut names = Vec::new();
    match &state_dir {
        Some(d) => match cluster_cpu::dev_cluster_pids(d) {
            Ok(ps) => {
                for (name, pid) in ps {
                    names.push(name);
                    pids.push(pid);
                }
            }
            Err(e) => skipped
                .baselines
                .push(format!("cluster CPU: {}: {e}", d.display())),
        },
        None if s.pids.is_empty() => skipped.baselines.push(
            "cluster CPU: no dev cluster state dir found (--state-dir) and no --pids: CPU per op is the bench's only".into(),
        ),
        None => {}
    }
    let procs = Processes::new(pids);

    // The volume.
    let mut file = ClientFile::load(s.client_config.as_deref()).map_err(client_err("config"))?;
    if let Some(list) = &s.mds {
        file.mds = parse_addrs(list).map_err(client_err("config"))?;
    }
    let cluster = file.cluster().map_err(client_err("connect"))?;
    if let Some(size) = s.create {
        match cluster.create_volume(&s.volume, size).await {
            Ok(_) | Err(ClientError::Mds(MdsError::VolumeExists)) => {}
            Err(e) => return Err(client_err("create")(e)),
        }
    }
    let vol: Vol = Arc::new(
        cluster
            .open(&s.volume, OpenOptions::default())
            .await
            .map_err(client_err("open"))?,
    );
    let max_bs = s.cases.iter().map(|c| c.bs).max().unwrap_or(PREFILL_BS);
    let region = (s.region.min(vol.size()) / max_bs.max(PREFILL_BS)) * max_bs.max(PREFILL_BS);
    let region = if region == 0 {
        s.region.min(vol.size())
    } else {
        region
    };
    let data = if s.verify {
        Data::Verify
    } else {
        Data::Fixed(Bytes::from(vec![0xa5u8; max_bs as usize]))
    };
    let reads = s.cases.iter().any(|c| c.pattern.reads());
    let prefilled = (reads || s.verify) && !s.no_prefill;
    if prefilled {
        let p = Progress::start(
            &format!("prefill {} with 1 MiB writes", fmt_size(region)),
            Duration::ZERO,
            timing.quiet,
        );
        let t = Instant::now();
        run_loop::prefill(&vol, region, PREFILL_BS, PREFILL_DEPTH).await?;
        p.finish(&format!(
            "{:.0} MB/s",
            region as f64 / t.elapsed().as_secs_f64().max(1e-9) / 1e6
        ));
    }

    for case in &s.cases {
        let env = CaseEnv {
            region,
            procs: &procs,
            endpoints: endpoints.as_deref(),
            timing,
            prefilled,
        };
        match run_case(&vol, *case, &data, s, &env, skipped).await {
            Ok(m) => out.push(m),
            Err(e) => skipped.backends.push(format!("{}: {e}", case.name())),
        }
    }
    if let Ok(vol) = Arc::try_unwrap(vol) {
        if let Err(e) = vol.close().await {
            tracing::warn!(error = %e, "closing the volume failed");
        }
    }
    Ok(out)
}

/// What every case shares.
struct CaseEnv<'a> {
    region: u64,
    procs: &'a Processes,
    endpoints: Option<&'a [SocketAddr]>,
    timing: Timing,
    prefilled: bool,
}

/// The operation whose server figures a case's breakdown reads (mixed cases: none).
fn breakdown_op(p: case::Pattern) -> Option<&'static str> {
    match p {
        case::Pattern::Randread | case::Pattern::Read => Some("read"),
        case::Pattern::Randwrite | case::Pattern::Write => Some("write"),
        case::Pattern::Randrw => None,
    }
}

async fn run_case(
    vol: &Vol,
    case: Case,
    data: &Data,
    s: &VolumeSettings,
    env: &CaseEnv<'_>,
    skipped: &mut Skipped,
) -> Result<Measurement, BenchError> {
    let CaseEnv {
        region,
        procs,
        timing,
        prefilled,
        ..
    } = *env;
    let data = match data {
        Data::Fixed(b) => Data::Fixed(b.slice(..case.bs as usize)),
        Data::Verify => Data::Verify,
    };
    let wl = Arc::new(Workload::new(case, region, s.rwmix_read));
    let progress = Progress::start(
        &format!("{} {}", case.subject(), fmt_size(case.bs)),
        timing.warmup + timing.duration,
        timing.quiet,
    );
    run_loop::pass(vol, &wl, &data, Instant::now() + timing.warmup).await?;
    // Server metrics around the measured pass only (a scrape takes milliseconds; it
    // happens outside the interval).
    let scrape = |what: &str, skipped: &mut Skipped| {
        let addrs = env.endpoints?;
        breakdown::snapshot(addrs)
            .map_err(|e| {
                skipped
                    .baselines
                    .push(format!("breakdown of {} ({what}): {e}", case.name()))
            })
            .ok()
    };
    let metrics0 = scrape("before", skipped);
    let own0 = CpuTimes::of_self().ok();
    let cluster0 = procs.sample();
    let start = Instant::now();
    let pass = run_loop::pass(vol, &wl, &data, start + timing.duration).await?;
    let elapsed = start.elapsed();
    let cluster = Processes::since(&cluster0, &procs.sample());
    let metrics1 = match metrics0 {
        Some(_) => scrape("after", skipped),
        None => None,
    };
    let own = match (CpuTimes::of_self().ok(), own0) {
        (Some(now), Some(then)) => Some(now.since(&then).own),
        _ => None,
    };
    let kind = if case.total_depth() == 1 {
        Kind::Latency
    } else {
        Kind::Throughput
    };
    let mut m = Measurement::new(
        case.name(),
        &case.subject(),
        "basalt-client tcp",
        kind,
        case.bs,
    )
    .with_run(pass.ops, elapsed, own.map(|o| o + cluster));
    m.latency = pass.recorder.summary();
    m.baseline = targets::baseline_of(&case, s.raw_qd);
    let mut note = format!(
        "{} MiB region{}; CPU/op: bench + {} cluster processes",
        region >> 20,
        if prefilled {
            ", written first with sequential 1 MiB writes"
        } else {
            ""
        },
        procs.len()
    );
    if case.pattern == case::Pattern::Randrw {
        note.push_str(&format!("; {}% reads", s.rwmix_read));
    }
    if s.verify {
        note.push_str("; every read verified");
    }
    m.note = Some(note);
    if let (Some(before), Some(after), Some(op)) =
        (&metrics0, &metrics1, breakdown_op(case.pattern))
    {
        m.extra.extend(breakdown::server_figures(before, after, op));
    }
    progress.finish(&m.short());
    Ok(m)
}

/// Print where each case's time goes (cases measured with `--breakdown` only).
pub fn print_breakdown(all: &[Measurement], cases: &[Case]) {
    let floors = breakdown::Floors::find(
        all,
        targets::DISK_READ,
        targets::DISK_WRITE,
        &crate::baseline::tcp::ping_pong_name(targets::RTT_SIZE),
        &rpc_floor_name(),
    );
    let mut out = Vec::new();
    for case in cases {
        let (Some(op), Some(m)) = (
            breakdown_op(case.pattern),
            all.iter().find(|m| m.name == case.name()),
        ) else {
            continue;
        };
        out.extend(breakdown::lines(m, op, &floors));
    }
    if !out.is_empty() {
        println!(
            "where the time goes (chunkserver figures: their /metrics around each measured pass):"
        );
        for l in out {
            println!("{l}");
        }
    }
}

/// Print the target ratios of the volume cases (nothing when none applies).
pub fn print_targets(all: &[Measurement], cases: &[Case]) {
    let t = targets::targets(all, cases);
    if !t.is_empty() {
        println!("volume targets (issues 5 and 7; reported, not enforced):");
        for t in t {
            println!("{}", t.line());
        }
    }
}
