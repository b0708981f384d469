//! `basalt-nbd`: serve Basalt volumes over NBD, or list what a server exports.
//!
//! ```text
//! basalt-nbd serve --volume vol1[,vol2] [--socket PATH | --listen ADDR] [--config FILE] [--mds ADDRS]
//! basalt-nbd ls [--socket PATH | --listen ADDR]
//! ```
//! With neither `--socket` nor `--listen`, the server uses a UNIX socket (nothing listens
//! on the network unless asked). Kernel hosts: `nbd-client -unix PATH /dev/nbd0 -N vol1`.

use anyhow::{bail, Context, Result};
use basalt_client::config_file::{parse_addrs, ClientFile};
use basalt_client::OpenOptions;
use basalt_nbd::handshake::ExportInfo;
use basalt_nbd::server::{Export, NbdServer, ServerConfig};
use basalt_nbd::volume_device::VolumeDevice;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "basalt-nbd", version, about = "Serve Basalt volumes over NBD")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Export volumes.
    Serve(ServeArgs),
    /// List the exports of a running server.
    Ls(Endpoint),
}

#[derive(Args, Clone)]
struct Endpoint {
    /// UNIX socket path (default: $XDG_RUNTIME_DIR/basalt-nbd.sock or /tmp/basalt-nbd.sock).
    #[arg(long, conflicts_with = "listen")]
    socket: Option<PathBuf>,
    /// TCP address to listen on / connect to, e.g. 127.0.0.1:10809.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[derive(Args)]
struct ServeArgs {
    /// Volumes to export (comma-separated); each is an export of the same name.
    #[arg(long, value_delimiter = ',', required = true)]
    volume: Vec<String>,
    #[command(flatten)]
    endpoint: Endpoint,
    /// Client configuration file (default: see basalt_client::config_file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// MDS addresses, overriding the file and $BASALT_MDS.
    #[arg(long)]
    mds: Option<String>,
    /// Owner to open the volumes as (overrides the file's `owner`).
    #[arg(long)]
    owner: Option<String>,
    /// File with the owner's key (overrides the file's `key-file`).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Share volumes with other openers instead of opening them exclusively.
    #[arg(long)]
    shared: bool,
    /// Export read-only.
    #[arg(long)]
    read_only: bool,
}

fn default_socket() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("basalt-nbd.sock")
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut file = ClientFile::load(args.config.as_deref())?;
    if let Some(m) = &args.mds {
        file.mds = parse_addrs(m)?;
    }
    if let Some(o) = &args.owner {
        file.owner = o.clone();
    }
    if let Some(k) = &args.key_file {
        file.key_file = Some(k.clone());
    }
    let cluster = file.cluster()?;
    let mut exports = Vec::new();
    for name in &args.volume {
        let vol = cluster
            .open(
                name,
                OpenOptions {
                    shared: args.shared,
                },
            )
            .await
            .with_context(|| format!("opening volume {name}"))?;
        exports.push(Export {
            info: ExportInfo {
                name: name.clone(),
                size: vol.size(),
                read_only: args.read_only,
                description: format!("basalt volume {name}"),
            },
            device: Arc::new(VolumeDevice::new(vol)),
        });
    }
    let mut cfg = ServerConfig::default();
    cfg.block_sizes.minimum = file.sector as u32;
    let server = NbdServer::new(exports, cfg);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, std::io::Error>(())
    };
    match args.endpoint.listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            eprintln!(
                "basalt-nbd: serving {:?} on nbd://{}",
                args.volume,
                l.local_addr()?
            );
            tokio::select! { r = server.serve_tcp(l) => r?, r = shutdown => r? }
        }
        None => {
            let path = args.endpoint.socket.unwrap_or_else(default_socket);
            if path.exists() {
                // A stale socket from a dead server; a live one would still accept.
                if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                    bail!("{} is in use by a running server", path.display());
                }
                std::fs::remove_file(&path)?;
            }
            let l = tokio::net::UnixListener::bind(&path)
                .with_context(|| format!("binding {}", path.display()))?;
            eprintln!(
                "basalt-nbd: serving {:?} on nbd+unix:///?socket={}",
                args.volume,
                path.display()
            );
            let r = tokio::select! { r = server.serve_unix(l) => r.map_err(anyhow::Error::from), r = shutdown => r.map_err(anyhow::Error::from) };
            let _ = std::fs::remove_file(&path);
            r?
        }
    }
    Ok(())
}

async fn ls(ep: Endpoint) -> Result<()> {
    let names = match ep.listen {
        Some(addr) => {
            let mut s = tokio::net::TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?;
            basalt_nbd::list_client::list_exports(&mut s).await?
        }
        None => {
            let path = ep.socket.unwrap_or_else(default_socket);
            let mut s = tokio::net::UnixStream::connect(&path)
                .await
                .with_context(|| format!("connecting to {}", path.display()))?;
            basalt_nbd::list_client::list_exports(&mut s).await?
        }
    };
    for n in names {
        println!("{n}");
    }
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BASALT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        match cli.cmd {
            Cmd::Serve(a) => serve(a).await,
            Cmd::Ls(e) => ls(e).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_defaults_to_a_unix_socket() {
        let Cli {
            cmd: Cmd::Serve(args),
        } = Cli::try_parse_from(["basalt-nbd", "serve", "--volume", "v"]).unwrap()
        else {
            panic!("not serve");
        };
        assert_eq!(args.endpoint.listen, None);
        assert_eq!(args.endpoint.socket, None);
        assert!(default_socket().ends_with("basalt-nbd.sock"));
        // TCP only when asked for, on the address given.
        let Cli {
            cmd: Cmd::Serve(args),
        } = Cli::try_parse_from([
            "basalt-nbd",
            "serve",
            "--volume",
            "v",
            "--listen",
            "127.0.0.1:10809",
        ])
        .unwrap()
        else {
            panic!("not serve");
        };
        assert!(args.endpoint.listen.unwrap().ip().is_loopback());
    }
}
