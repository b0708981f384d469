//! The command line: `basalt [global flags] <noun> <verb> [args]`, one module per noun.

pub mod chunkserver;
pub mod cluster;
pub mod copyset;
pub mod dev_cluster;
pub mod leader;
pub mod operator;
pub mod owner;
pub mod peer;
pub mod pool;
pub mod server;
pub mod topology;
pub mod volume;

use crate::error::CliError;
use crate::output::Format;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// Basalt operator CLI.
///
/// Exit codes: 0 ok, 1 error, 2 usage, 3 cluster not reachable, 4 check found problems
/// (see docs/cli.md).
#[derive(Debug, Parser)]
#[command(name = "basalt", version, propagate_version = true)]
pub struct Cli {
    /// Output format of results (progress and errors always go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = Format::Plain)]
    pub format: Format,
    /// MDS addresses, comma separated (overrides $BASALT_MDS and the client config file).
    #[arg(long, global = true, value_name = "ADDR,..")]
    pub mds: Option<String>,
    /// Client configuration file [default: $BASALT_CLIENT_CONF, else
    /// $XDG_CONFIG_HOME/basalt/client.toml or ~/.config/basalt/client.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub client_config: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Noun,
}

/// Nouns.
#[derive(Debug, Subcommand)]
pub enum Noun {
    /// Cluster health at a glance.
    Cluster(cluster::Args),
    /// Show and apply the cluster map (pools, zones, servers).
    Topology(topology::Args),
    /// Logical pools.
    Pool(pool::Args),
    /// Servers (hosts) and their chunkservers.
    Server(server::Args),
    /// Chunkservers: liveness, load, capacity.
    Chunkserver(chunkserver::Args),
    /// Copysets: list, ask the replicas, check health.
    Copyset(copyset::Args),
    /// Move a copyset's leadership.
    Leader(leader::Args),
    /// Change a copyset's membership.
    Peer(peer::Args),
    /// Operators the MDS is running (leader transfers, peer changes).
    Operator(operator::Args),
    /// Create, list, inspect, grow and delete volumes.
    Volume(volume::Args),
    /// Volume owners and their keys.
    Owner(owner::Args),
    /// Run a local multi-process cluster for development and tests.
    DevCluster(dev_cluster::Args),
}

/// What every command gets.
pub struct Ctx<'a> {
    /// Output format.
    pub format: Format,
    /// `--mds`.
    pub mds: Option<String>,
    /// `--client-config`.
    pub client_config: Option<PathBuf>,
    /// Results.
    pub out: &'a mut dyn Write,
    /// Progress lines.
    pub progress: &'a mut dyn FnMut(&str),
}

/// Run a parsed command line.
pub fn run(cli: Cli, out: &mut dyn Write, progress: &mut dyn FnMut(&str)) -> Result<(), CliError> {
    let mut ctx = Ctx {
        format: cli.format,
        mds: cli.mds,
        client_config: cli.client_config,
        out,
        progress,
    };
    match cli.command {
        Noun::Cluster(a) => cluster::run(a, &mut ctx),
        Noun::Topology(a) => topology::run(a, &mut ctx),
        Noun::Pool(a) => pool::run(a, &mut ctx),
        Noun::Server(a) => server::run(a, &mut ctx),
        Noun::Chunkserver(a) => chunkserver::run(a, &mut ctx),
        Noun::Copyset(a) => copyset::run(a, &mut ctx),
        Noun::Leader(a) => leader::run(a, &mut ctx),
        Noun::Peer(a) => peer::run(a, &mut ctx),
        Noun::Operator(a) => operator::run(a, &mut ctx),
        Noun::DevCluster(a) => dev_cluster::run(a, &mut ctx),
        Noun::Volume(a) => volume::run(a, &mut ctx),
        Noun::Owner(a) => owner::run(a, &mut ctx),
    }
}

/// Run `f` with a context writing into a string (unit tests of rendering).
#[cfg(test)]
pub fn test_ctx(format: Format, f: impl FnOnce(&mut Ctx<'_>) -> Result<(), CliError>) -> String {
    let mut out = Vec::new();
    let mut progress = |_: &str| {};
    let mut ctx = Ctx {
        format,
        mds: None,
        client_config: None,
        out: &mut out,
        progress: &mut progress,
    };
    f(&mut ctx).expect("render");
    String::from_utf8(out).expect("utf-8")
}
