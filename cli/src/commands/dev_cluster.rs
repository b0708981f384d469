//! `basalt dev-cluster up|down|status|kill|stop|cont|restart`: a local cluster of real
//! processes (etcd, MDSs, chunkservers) on loopback, driven by `basalt-testkit`.

use super::Ctx;
use crate::error::CliError;
use crate::output::{json, table, Format};
use basalt_testkit::cluster::{Liveness, ProcessStatus};
use basalt_testkit::{ClusterSpec, DevCluster};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `dev-cluster` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the cluster keeps its state, data and logs [default:
    /// $XDG_STATE_HOME/basalt/dev-cluster or ~/.local/state/basalt/dev-cluster].
    #[arg(
        long,
        global = true,
        env = "BASALT_DEV_CLUSTER_DIR",
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Start etcd, the MDSs and the chunkservers, wait until they serve, and write the
    /// client configuration.
    Up(UpArgs),
    /// Stop every process of the cluster (SIGTERM, then SIGKILL after 5 s).
    Down,
    /// Show which processes run, with pids and addresses.
    Status,
    /// SIGKILL one process (e.g. mds-1, cs-2, etcd).
    Kill(NameArg),
    /// SIGSTOP one process (it hangs until `cont`).
    Stop(NameArg),
    /// SIGCONT one process stopped with `stop`.
    Cont(NameArg),
    /// Kill one process and start it again with the same arguments and data.
    Restart(NameArg),
}

/// A process name.
#[derive(Debug, clap::Args)]
pub struct NameArg {
    /// Process name as shown by `status` (etcd, mds-N, cs-N).
    pub name: String,
}

/// `up` arguments.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// MDS processes.
    #[arg(long = "mds-count", default_value_t = 3)]
    pub mds_count: usize,
    /// Chunkserver processes.
    #[arg(long, default_value_t = 3)]
    pub chunkservers: usize,
    /// Zones (failure domains).
    #[arg(long, default_value_t = 3)]
    pub zones: usize,
    /// Copysets per chunkserver.
    #[arg(long, default_value_t = 10)]
    pub copysets_per_chunkserver: u32,
    /// Seconds each readiness wait may take.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Don't write the client configuration file outside the state dir.
    #[arg(long)]
    pub no_client_config: bool,
    /// Also wait until the MDS knows a leader for every copyset.
    #[arg(long)]
    pub wait_copysets: bool,
}

/// The default state dir.
pub fn default_state_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("basalt").join("dev-cluster"))
}

#[derive(Serialize)]
struct StatusDoc<'a> {
    state_dir: PathBuf,
    mds: &'a [SocketAddr],
    etcd: &'a [String],
    processes: Vec<ProcessStatus>,
}

fn liveness(l: Liveness) -> &'static str {
    match l {
        Liveness::Running => "running",
        Liveness::Stopped => "stopped",
        Liveness::Dead => "dead",
    }
}

fn print_status(c: &DevCluster, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let processes = c.status();
    match ctx.format {
        Format::Json => json(
            ctx.out,
            &StatusDoc {
                state_dir: c.state_dir().to_path_buf(),
                mds: c.mds_addrs(),
                etcd: c.etcd_endpoints(),
                processes,
            },
        )?,
        Format::Plain => {
            let rows: Vec<Vec<String>> = processes
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        liveness(p.state).into(),
                        p.pid.map_or("-".into(), |p| p.to_string()),
                        p.addr.to_string(),
                        p.log.display().to_string(),
                    ]
                })
                .collect();
            table(ctx.out, &["NAME", "STATE", "PID", "ADDRESS", "LOG"], &rows)?;
        }
    }
    Ok(())
}

/// Run a `dev-cluster` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let state_dir = args
        .state_dir
        .or_else(default_state_dir)
        .ok_or(CliError::Usage {
            arg: "--state-dir",
            reason: "no default (neither XDG_STATE_HOME nor HOME is set)".into(),
        })?;
    match args.verb {
        Verb::Up(up) => {
            let mut spec = ClusterSpec::new(&state_dir);
            spec.mds = up.mds_count;
            spec.chunkservers = up.chunkservers;
            spec.zones = up.zones;
            spec.copysets_per_chunkserver = up.copysets_per_chunkserver;
            spec.ready_timeout = Duration::from_secs(up.timeout);
            spec.wait_copysets = up.wait_copysets;
            if !up.no_client_config {
                spec.client_config = basalt_client::ClientFile::default_path();
            }
            let c = DevCluster::up_with_progress(spec, ctx.progress)?;
            for f in c.client_configs() {
                (ctx.progress)(&format!("client configuration written to {}", f.display()));
            }
            print_status(&c, ctx)?;
            c.detach();
            Ok(())
        }
        Verb::Down => {
            let mut c = DevCluster::attach(&state_dir)?;
            c.down_with_progress(ctx.progress)?;
            print_status(&c, ctx)
        }
        Verb::Status => print_status(&DevCluster::attach(&state_dir)?, ctx),
        Verb::Kill(n) => Ok(DevCluster::attach(&state_dir)?.kill(&n.name)?),
        Verb::Stop(n) => Ok(DevCluster::attach(&state_dir)?.stop(&n.name)?),
        Verb::Cont(n) => Ok(DevCluster::attach(&state_dir)?.cont(&n.name)?),
        Verb::Restart(n) => {
            (ctx.progress)(&format!("restarting {}", n.name));
            Ok(DevCluster::attach(&state_dir)?.restart(&n.name)?)
        }
    }
}
