//! The command line: `basalt [global flags] <noun> <verb> [args]`, one module per noun.

pub mod dev_cluster;
pub mod volume;

use crate::error::CliError;
use crate::output::Format;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// Basalt operator CLI.
///
/// Exit codes: 0 ok, 1 error, 2 usage, 3 cluster not reachable (see docs/cli.md).
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
    /// Run a local multi-process cluster for development and tests.
    DevCluster(dev_cluster::Args),
    /// Create, list, inspect, grow and delete volumes.
    Volume(volume::Args),
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
        Noun::DevCluster(a) => dev_cluster::run(a, &mut ctx),
        Noun::Volume(a) => volume::run(a, &mut ctx),
    }
}
