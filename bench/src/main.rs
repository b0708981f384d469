//! `basalt-bench`: Basalt's benchmarks. See `docs/benchmarking.md`.

use anyhow::Context as _;
use basalt_bench::baseline::{disk, tcp, ucx_perftest};
use basalt_bench::host::{git_revision, HostFacts};
use basalt_bench::json::{Report, SCHEMA_VERSION};
use basalt_bench::report::{compute_ratios, table, Measurement};
use basalt_bench::runner::Timing;
use basalt_bench::transport_bench::{self, Skipped, TransportSettings};
use basalt_bench::units::{parse_duration, parse_size};
use basalt_bench::volume_bench::{
    self,
    case::{parse_cases, Case, Pattern},
    VolumeSettings,
};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Parser)]
#[command(
    name = "basalt-bench",
    version,
    about = "Basalt latency and throughput benchmarks"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// Measured time of each measurement (e.g. 2s, 500ms, 1m).
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Unrecorded warm-up before each measurement [default: duration / 10, at most 1s].
    #[arg(long, global = true, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Write the results as JSON (versioned schema) to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Draw latency percentile curves (SVG) to this file.
    #[arg(long, global = true)]
    plot: Option<PathBuf>,
    /// No progress output on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// What the machine gives without Basalt: raw TCP ping-pong, raw disk I/O, ucx_perftest.
    Baseline(BaselineArgs),
    /// Basalt RPC latency and streaming throughput per backend, with the baselines.
    Transport(TransportArgs),
    /// End-to-end volume I/O through basalt-client against a running cluster, with the
    /// raw disk and raw TCP baselines.
    Volume(VolumeArgs),
    /// The chunkserver storage engine alone (WAL + chunk store) per I/O backend, with the raw disk.
    Chunkstore(ChunkstoreArgs),
    /// Replicated 4 KiB writes on 3 in-process chunkservers over loopback TCP, with the floor.
    Raft(RaftArgs),
}

#[derive(Debug, Args)]
struct BaselineArgs {
    /// Directory on the filesystem to measure (a temporary file is created there).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Size of the disk test file (e.g. 256MiB).
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    file_size: u64,
    /// Ping-pong message sizes (e.g. 64,4K).
    #[arg(long, value_delimiter = ',', default_value = "64,4K", value_parser = parse_size)]
    sizes: Vec<u64>,
    /// UCX_TLS values for ucx_perftest; repeat the flag (values hold commas).
    #[arg(long = "ucx-tls", default_values = ["tcp", "sm,tcp"])]
    ucx_tls: Vec<String>,
    /// Skip the raw TCP ping-pong.
    #[arg(long)]
    no_tcp: bool,
    /// Skip the disk.
    #[arg(long)]
    no_disk: bool,
    /// Skip ucx_perftest.
    #[arg(long)]
    no_ucx: bool,
}

#[derive(Debug, Args)]
struct TransportArgs {
    /// Ping-pong payload sizes.
    #[arg(long, value_delimiter = ',', default_value = "64,4K,64K", value_parser = parse_size)]
    sizes: Vec<u64>,
    /// Streaming payload sizes.
    #[arg(long, value_delimiter = ',', default_value = "128K,1M", value_parser = parse_size)]
    stream_sizes: Vec<u64>,
    /// Calls in flight while streaming.
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// UCX_TLS values to measure with UCX builds; repeat the flag (values hold commas).
    #[arg(long = "ucx-tls", default_values = ["tcp", "sm,tcp"])]
    ucx_tls: Vec<String>,
    /// UCX I/O threads' spin window in µs (0: sleep on the event fd when idle).
    #[arg(long, default_value_t = 0)]
    ucx_spin_us: u64,
    /// Skip the baselines (no ratios).
    #[arg(long)]
    no_baselines: bool,
    /// Exit with status 3 when a Basalt backend could not be measured (CI smoke).
    #[arg(long)]
    require_backends: bool,
}

#[derive(Debug, Args)]
struct ChunkstoreArgs {
    /// Directory on the filesystem to measure (data dir and baseline file made there)
    /// [default: $TMPDIR, else /var/tmp].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Chunk data size (and the raw baseline file's size).
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    file_size: u64,
    /// Queue depth of the deep measurements.
    #[arg(long, default_value_t = 32)]
    depth: usize,
    /// Copysets sharing the WAL (each its own log and chunks).
    #[arg(long, default_value_t = 8)]
    groups: u64,
    /// WAL segment size.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    wal_segment_size: u64,
    /// I/O backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "uring,sync")]
    backends: Vec<String>,
    /// Skip the raw-disk baselines (no ratios).
    #[arg(long)]
    no_baselines: bool,
}

#[derive(Debug, Args)]
struct RaftArgs {
    /// Directory holding the data dirs and the disk baseline's file
    /// [default: $TMPDIR, else /var/tmp].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Copysets the deep measurement spreads its writes over.
    #[arg(long, default_value_t = 64)]
    copysets: usize,
    /// Writes in flight in the deep measurement.
    #[arg(long, default_value_t = 32)]
    depth: usize,
    /// I/O backend of the chunk stores (uring, sync).
    #[arg(long, default_value = "uring")]
    backend: String,
    /// Raft heartbeat interval in ms (the chunkserver's default).
    #[arg(long, default_value_t = 400)]
    heartbeat_ms: u64,
    /// Raft election timeout range in ms, MIN,MAX (the chunkserver's default).
    #[arg(long, value_delimiter = ',', default_values_t = [2500, 4000])]
    election_timeout_ms: Vec<u64>,
    /// Skip the baselines (no ratios).
    #[arg(long)]
    no_baselines: bool,
}

/// `--dir` default of the storage benchmarks: `$TMPDIR`, else /var/tmp (a disk
/// filesystem on most systems, unlike a tmpfs /tmp).
fn default_bench_dir() -> PathBuf {
    std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
}

#[derive(Debug, Args)]
struct VolumeArgs {
    /// Client configuration file [default: $BASALT_CLIENT_CONF, else ~/.config/basalt/client.toml].
    #[arg(long)]
    client_config: Option<PathBuf>,
    /// MDS addresses (host:port,...), overriding the client configuration.
    #[arg(long)]
    mds: Option<String>,
    /// Volume to run on.
    #[arg(long, default_value = "bench")]
    volume: String,
    /// Create the volume with this size first (e.g. 4GiB); an existing one is reused.
    #[arg(long, value_parser = parse_size)]
    create: Option<u64>,
    /// Cases PATTERN:BS:IODEPTH[:JOBS], comma-separated (e.g. randwrite:4K:1,randread:4K:32,write:1M:4);
    /// overrides --pattern/--bs/--iodepth/--jobs.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Pattern of the single case: randwrite, randread, write, read, randrw.
    #[arg(long, default_value = "randwrite")]
    pattern: String,
    /// Block size of the single case.
    #[arg(long, default_value = "4K", value_parser = parse_size)]
    bs: u64,
    /// I/Os in flight per job of the single case.
    #[arg(long, default_value_t = 1)]
    iodepth: usize,
    /// Jobs of the single case.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Percent reads of randrw cases.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    rwmix_read: u8,
    /// Bytes at the start of the volume the cases work in (the dev cluster's chunk pools are small).
    #[arg(long, default_value = "128MiB", value_parser = parse_size)]
    region: u64,
    /// Write a self-describing pattern and check every read against it.
    #[arg(long)]
    verify: bool,
    /// Don't write the region before the cases (an earlier run did).
    #[arg(long)]
    no_prefill: bool,
    /// Dev cluster state dir (pids for CPU/op; disk baseline location)
    /// [default: $BASALT_DEV_CLUSTER_DIR, else ~/.local/state/basalt/dev-cluster].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// More pids whose CPU time counts in CPU/op.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// Directory of the raw disk baseline's file [default: the state dir, else .].
    #[arg(long)]
    baseline_dir: Option<PathBuf>,
    /// Size of the raw disk baseline's file.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    baseline_file_size: u64,
    /// Queue depth of the raw disk random-read baseline.
    #[arg(long, default_value_t = 32)]
    raw_qd: usize,
    /// Skip the baselines (no ratios, no targets).
    #[arg(long)]
    no_baselines: bool,
    /// Say where each case's time goes: the chunkservers' handler and stage means (from
    /// their metrics endpoints, dev cluster only) next to the raw disk, raw TCP and
    /// in-process Basalt RPC floors.
    #[arg(long)]
    breakdown: bool,
}

fn volume_settings(a: &VolumeArgs) -> anyhow::Result<VolumeSettings> {
    let cases = if a.cases.is_empty() {
        vec![Case::new(
            Pattern::parse(&a.pattern)?,
            a.bs,
            a.iodepth,
            a.jobs,
        )?]
    } else {
        parse_cases(&a.cases)?
    };
    anyhow::ensure!(a.raw_qd >= 1, "--raw-qd must be at least 1");
    anyhow::ensure!(a.region >= 4096, "--region must be at least 4KiB");
    Ok(VolumeSettings {
        client_config: a.client_config.clone(),
        mds: a.mds.clone(),
        volume: a.volume.clone(),
        create: a.create,
        cases,
        rwmix_read: a.rwmix_read,
        region: a.region,
        verify: a.verify,
        no_prefill: a.no_prefill,
        state_dir: a.state_dir.clone(),
        pids: a.pids.clone(),
        baseline_dir: a.baseline_dir.clone(),
        baseline_file_size: a.baseline_file_size,
        raw_qd: a.raw_qd,
        no_baselines: a.no_baselines,
        breakdown: a.breakdown,
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("basalt-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let c = &cli.common;
    anyhow::ensure!(c.duration > Duration::ZERO, "--duration must be > 0");
    let timing = Timing {
        warmup: c
            .warmup
            .unwrap_or((c.duration / 10).min(Duration::from_secs(1))),
        duration: c.duration,
        quiet: c.quiet,
    };
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let host = HostFacts::gather();
    let mut skipped = Skipped::default();
    let mut code = ExitCode::SUCCESS;
    let mut volume_cases = Vec::new();
    let (command, config, mut measurements) = match &cli.command {
        Command::Baseline(a) => {
            let config = serde_json::json!({
                "duration_s": timing.duration.as_secs_f64(),
                "warmup_s": timing.warmup.as_secs_f64(),
                "dir": a.dir,
                "file_size_bytes": a.file_size,
                "sizes_bytes": a.sizes,
                "ucx_tls": a.ucx_tls,
            });
            ("baseline", config, baseline(a, timing, &mut skipped)?)
        }
        Command::Transport(a) => {
            let settings = TransportSettings {
                latency_sizes: a.sizes.clone(),
                stream_sizes: a.stream_sizes.clone(),
                depth: a.depth.max(1),
                ucx_tls: a.ucx_tls.clone(),
                ucx_spin_us: a.ucx_spin_us,
                baselines: !a.no_baselines,
            };
            let mut config = serde_json::to_value(&settings)?;
            config["duration_s"] = timing.duration.as_secs_f64().into();
            config["warmup_s"] = timing.warmup.as_secs_f64().into();
            config["ucx_built"] = cfg!(feature = "ucx").into();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("start the client runtime")?;
            let ms = rt.block_on(transport_bench::run(&settings, timing, &mut skipped))?;
            if a.require_backends && !skipped.backends.is_empty() {
                code = ExitCode::from(3);
            }
            ("transport", config, ms)
        }
        Command::Chunkstore(a) => {
            let settings = basalt_bench::chunkstore_bench::ChunkstoreSettings {
                dir: a.dir.clone().unwrap_or_else(default_bench_dir),
                file_size: a.file_size,
                depth: a.depth.max(1),
                groups: a.groups.max(1),
                wal_segment_size: a.wal_segment_size,
                backends: a.backends.clone(),
                baselines: !a.no_baselines,
            };
            let mut config = serde_json::to_value(&settings)?;
            config["duration_s"] = timing.duration.as_secs_f64().into();
            config["warmup_s"] = timing.warmup.as_secs_f64().into();
            let ms = basalt_bench::chunkstore_bench::run(&settings, timing, &mut skipped)?;
            ("chunkstore", config, ms)
        }
        Command::Raft(a) => {
            anyhow::ensure!(
                a.election_timeout_ms.len() == 2,
                "--election-timeout-ms takes MIN,MAX"
            );
            let settings = basalt_bench::raft_bench::RaftSettings {
                dir: a.dir.clone().unwrap_or_else(default_bench_dir),
                copysets: a.copysets.max(1),
                depth: a.depth.max(1),
                backend: a.backend.clone(),
                baselines: !a.no_baselines,
                heartbeat_interval_ms: a.heartbeat_ms,
                election_timeout_ms: (a.election_timeout_ms[0], a.election_timeout_ms[1]),
            };
            let mut config = serde_json::to_value(&settings)?;
            config["duration_s"] = timing.duration.as_secs_f64().into();
            config["warmup_s"] = timing.warmup.as_secs_f64().into();
            let ms = basalt_bench::raft_bench::run(&settings, timing, &mut skipped)?;
            ("raft", config, ms)
        }
        Command::Volume(a) => {
            let settings = volume_settings(a)?;
            let mut config = serde_json::to_value(&settings)?;
            config["duration_s"] = timing.duration.as_secs_f64().into();
            config["warmup_s"] = timing.warmup.as_secs_f64().into();
            let threads = settings.cases.iter().map(|c| c.jobs).max().unwrap_or(1);
            let rt = if threads <= 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            }
            .context("start the client runtime")?;
            let ms = rt.block_on(volume_bench::run(&settings, timing, &mut skipped))?;
            if !skipped.backends.is_empty() {
                code = ExitCode::from(3);
            }
            volume_cases = settings.cases;
            ("volume", config, ms)
        }
    };
    compute_ratios(&mut measurements);
    if matches!(cli.command, Command::Chunkstore(_) | Command::Raft(_)) {
        basalt_bench::chunkstore_bench::add_mean_ratios(&mut measurements);
    }
    print!("{}", table(&measurements));
    print_targets(&measurements);
    volume_bench::print_targets(&measurements, &volume_cases);
    volume_bench::print_breakdown(&measurements, &volume_cases);
    print_extras(&measurements);
    if !cfg!(feature = "ucx") && matches!(cli.command, Command::Transport(_)) {
        println!("(built without the `ucx` feature: UCX backends not measured)");
    }
    for s in skipped.backends.iter().chain(&skipped.baselines) {
        println!("skipped: {s}");
    }
    let report = Report {
        schema_version: SCHEMA_VERSION,
        tool: "basalt-bench",
        tool_version: env!("CARGO_PKG_VERSION"),
        command: command.into(),
        config,
        git_revision: git_revision(),
        started_unix_s,
        host,
        skipped: skipped
            .backends
            .iter()
            .chain(&skipped.baselines)
            .cloned()
            .collect(),
        measurements,
    };
    if let Some(path) = &c.json {
        report.write(path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &c.plot {
        basalt_bench::plot::write_svg(
            path,
            &format!("basalt-bench {command}"),
            &report.measurements,
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(code)
}

fn baseline(
    a: &BaselineArgs,
    timing: Timing,
    skipped: &mut Skipped,
) -> anyhow::Result<Vec<Measurement>> {
    let mut out = Vec::new();
    if !a.no_tcp {
        for &size in &a.sizes {
            out.push(tcp::ping_pong(size, timing)?);
        }
    }
    if !a.no_disk {
        match disk::run(&a.dir, a.file_size, timing) {
            Ok(ms) => out.extend(ms),
            Err(e) => skipped.baselines.push(format!("disk: {e}")),
        }
    }
    if !a.no_ucx {
        match ucx_perftest::find() {
            None => skipped
                .baselines
                .push("ucx_perftest: not installed (Debian package ucx-utils)".into()),
            Some(bin) => {
                for tls in &a.ucx_tls {
                    for &size in &a.sizes {
                        match ucx_perftest::am_latency(
                            &bin,
                            tls,
                            size,
                            timing.duration,
                            timing.quiet,
                        ) {
                            Ok(m) => out.push(m),
                            Err(e) => skipped
                                .baselines
                                .push(format!("ucx_perftest [{tls}] {size} B: {e}")),
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The named extra figures of each measurement (fsyncs per write, mean ratios, ...).
fn print_extras(all: &[Measurement]) {
    let lines: Vec<String> = all
        .iter()
        .filter(|m| !m.extra.is_empty())
        .map(|m| {
            let figures: Vec<String> = m.extra.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
            format!("  {:<40} {}", m.name, figures.join(", "))
        })
        .collect();
    if !lines.is_empty() {
        println!("further figures:");
        for l in lines {
            println!("{l}");
        }
    }
}

/// The two headline ratios (targets ≤ 1.25), reported, never enforced.
fn print_targets(all: &[Measurement]) {
    let lines: Vec<String> = all
        .iter()
        .filter(|m| m.name.starts_with("rpc/") && m.name.contains("/ping-pong/"))
        .filter_map(|m| {
            let r = m.ratio?;
            let base = m.baseline.as_deref()?;
            let what = if base.starts_with("ucx_perftest") {
                "UCX RPC p50 ÷ ucx_perftest AM round trip"
            } else {
                "TCP RPC p50 ÷ raw TCP ping-pong p50"
            };
            Some(format!(
                "  {what:<42} {:>10} {:>7}: {r:.2} {}",
                m.backend,
                basalt_bench::units::fmt_size(m.size_bytes),
                if r <= 1.25 {
                    "(target ≤ 1.25 met)"
                } else {
                    "(target ≤ 1.25 missed)"
                }
            ))
        })
        .collect();
    if !lines.is_empty() {
        println!("target ratios:");
        for l in lines {
            println!("{l}");
        }
    }
}
