//! `basalt-chunkserver`: the chunkserver daemon binary.
//!
//! Subcommands: `format` prepares a data directory (chunk file pool, WAL segments, meta);
//! `check` verifies one offline; `serve` runs the chunkserver (see `docs/chunkserver.md`).

mod daemon;

use anyhow::{Context, Result};
use basalt_chunkserver::check::check_data_dir;
use basalt_chunkserver::config::ChunkServerConfig;
use basalt_chunkserver::datadir::{DataDir, FormatOptions};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "basalt-chunkserver", version, about = "Basalt chunkserver")]
struct Cli {
    /// Config file (TOML); flags override it.
    #[arg(long, short, global = true, env = "BASALT_CHUNKSERVER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create (or finish creating) a data directory: meta, chunk file pool, WAL segments.
    Format {
        /// Data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Chunk files in the pool.
        #[arg(long)]
        pool_size: Option<u64>,
        /// Preallocated WAL segments.
        #[arg(long)]
        wal_segments: Option<u64>,
        /// WAL segment size in bytes (new data dirs only).
        #[arg(long)]
        wal_segment_size: Option<u64>,
        /// Chunk size in bytes (new data dirs only).
        #[arg(long)]
        chunk_size: Option<u64>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Verify a data directory offline; exits non-zero on corruption.
    Check {
        /// Data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run the chunkserver on a formatted data directory until SIGTERM/SIGINT.
    Serve {
        /// Data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Service address (`ip:port`, port 0 picks one).
        #[arg(long)]
        listen: Option<String>,
        /// Metrics address (`ip:port`, port 0 picks one).
        #[arg(long)]
        metrics_listen: Option<String>,
        /// Address peers and clients dial (default: the bound service address).
        #[arg(long)]
        advertise: Option<String>,
        /// Chunkserver id, while the data dir is not registered with an MDS.
        #[arg(long)]
        chunkserver_id: Option<u32>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut cfg = match &cli.config {
        Some(p) => ChunkServerConfig::load(p).with_context(|| format!("config {}", p.display()))?,
        None => ChunkServerConfig::default(),
    };
    match cli.cmd {
        Cmd::Format {
            data_dir,
            pool_size,
            wal_segments,
            wal_segment_size,
            chunk_size,
            quiet,
        } => {
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            let opts = FormatOptions {
                pool_size: pool_size.unwrap_or(cfg.pool.size),
                wal_segments: wal_segments.unwrap_or(cfg.wal.segments),
                chunk_size: chunk_size.unwrap_or(cfg.pool.chunk_size),
                wal_segment_size: wal_segment_size.unwrap_or(cfg.wal.segment_size),
            };
            let bar = if quiet {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::with_draw_target(
                    None,
                    indicatif::ProgressDrawTarget::stderr(),
                )
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message("formatting");
            let dir = DataDir::format(&cfg.data_dir, &opts, &mut |p| {
                bar.set_length(p.total);
                bar.set_position(p.done);
            })
            .with_context(|| format!("format {}", cfg.data_dir.display()))?;
            bar.finish_with_message("formatted");
            eprintln!(
                "{}: disk {}, {} chunk files, {} WAL segments",
                dir.root().display(),
                dir.meta().disk_uuid,
                opts.pool_size,
                opts.wal_segments
            );
            Ok(())
        }
        Cmd::Serve {
            data_dir,
            listen,
            metrics_listen,
            advertise,
            chunkserver_id,
        } => {
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if let Some(m) = metrics_listen {
                cfg.server.metrics_listen = m;
            }
            if advertise.is_some() {
                cfg.server.advertise = advertise;
            }
            if chunkserver_id.is_some() {
                cfg.server.chunkserver_id = chunkserver_id;
            }
            cfg.validate().context("configuration")?;
            // Disk-error tests (builds with the `failpoints` feature only).
            if let Ok(spec) = std::env::var("FAILPOINTS") {
                let n = basalt_chunkserver::failpoints::configure(&spec).context("FAILPOINTS")?;
                tracing::warn!(failpoints = n, %spec, "failpoints configured");
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("basalt-cs")
                .build()
                .context("tokio runtime")?;
            rt.block_on(async {
                let signals = daemon::Signals::register()?;
                daemon::serve(cfg, signals.wait()).await
            })
        }
        Cmd::Check { data_dir } => {
            let root = data_dir.unwrap_or(cfg.data_dir);
            let report = check_data_dir(&root);
            println!("{report}");
            if report.is_corrupt() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
