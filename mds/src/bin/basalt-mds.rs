//! `basalt-mds`: the metadata server daemon.
//!
//! Exit codes: 0 after a requested stop (SIGINT/SIGTERM; the lease is resigned), 1 on a
//! start-up or runtime error, 2 after losing leadership (restart it as a standby).

use anyhow::Context;
use basalt_mds::config::MdsConfig;
use basalt_mds::daemon::{run, Exit};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Basalt metadata server.
#[derive(Debug, Parser)]
#[command(name = "basalt-mds", version)]
struct Cli {
    /// Configuration file (TOML; see etc/mds.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// RPC listen address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address clients dial.
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// etcd endpoints, comma separated.
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// Instance name.
    #[arg(long)]
    name: Option<String>,
    /// Cluster map applied when active.
    #[arg(long)]
    cluster_map: Option<PathBuf>,
    /// Write the bound listen address to this file.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Serve Prometheus metrics at this address.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn config(cli: Cli) -> anyhow::Result<MdsConfig> {
    let mut cfg = match &cli.config {
        Some(p) => MdsConfig::load(p).with_context(|| format!("config {}", p.display()))?,
        None => MdsConfig::default(),
    };
    if let Some(v) = cli.listen {
        cfg.listen = v;
    }
    if cli.advertise.is_some() {
        cfg.advertise = cli.advertise;
    }
    if !cli.etcd.is_empty() {
        cfg.etcd = cli.etcd;
    }
    if let Some(v) = cli.name {
        cfg.name = v;
    }
    if cli.cluster_map.is_some() {
        cfg.cluster_map = cli.cluster_map;
    }
    if cli.addr_file.is_some() {
        cfg.addr_file = cli.addr_file;
    }
    if cli.metrics_listen.is_some() {
        cfg.metrics_listen = cli.metrics_listen;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = (|| -> anyhow::Result<Exit> {
        let cfg = config(Cli::parse())?;
        let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
        Ok(rt.block_on(run(cfg, shutdown_signal()))?)
    })();
    match result {
        Ok(Exit::Shutdown) => std::process::ExitCode::SUCCESS,
        Ok(Exit::SteppedDown(reason)) => {
            tracing::error!(?reason, "exiting after losing leadership");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "basalt-mds failed");
            std::process::ExitCode::FAILURE
        }
    }
}
