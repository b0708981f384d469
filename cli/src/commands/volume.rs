//! `basalt volume create|ls|info|extend|rename|rm` through `basalt_client::Cluster`, and
//! `purge` (deleted volumes' chunks and records) straight to the active MDS.
//!
//! Creating, growing, renaming and deleting prove the configured owner's key (or the
//! admin credential) when the client config names a key file; `--as`/`--key-file`
//! override both.

use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::output::{json, table, Format};
use crate::size::{format_size, parse_size};
use basalt_client::ClientError;
use basalt_proto::credential::AuthOp;
use basalt_proto::mds::{PurgeVolume, VolumeInfo};
use serde::Serialize;
use std::path::PathBuf;

/// `volume` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
    /// Act as this owner (overrides `owner` in the client config; `admin` for the admin
    /// credential).
    #[arg(long = "as", global = true, value_name = "OWNER")]
    pub principal: Option<String>,
    /// Key of the owner acted as (overrides `key-file` in the client config).
    #[arg(long = "key-file", global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Create a volume.
    Create {
        /// Volume name (1..=128 of [A-Za-z0-9._-], not starting with '.' or '-').
        name: String,
        /// Size with a unit, e.g. 10GiB (a multiple of 1 GiB).
        #[arg(long)]
        size: String,
        /// Owner of the new volume [default: the owner acted as]; another owner needs
        /// the admin credential.
        #[arg(long)]
        owner: Option<String>,
    },
    /// List volumes.
    Ls,
    /// Describe a volume.
    Info {
        /// Volume name.
        name: String,
    },
    /// Grow a volume to a new size.
    Extend {
        /// Volume name.
        name: String,
        /// New size with a unit, e.g. 20GiB (a multiple of 1 GiB).
        #[arg(long)]
        size: String,
    },
    /// Rename a volume (refused while it is open).
    Rename {
        /// Current name.
        from: String,
        /// New name.
        to: String,
    },
    /// Delete a volume (moved to the recycle area).
    Rm {
        /// Volume name.
        name: String,
    },
    /// Purge deleted volumes of this name now: their chunks are deleted on the
    /// chunkservers (space is freed), then their records. Safe to repeat.
    Purge {
        /// Name the volume had when deleted.
        name: String,
    },
}

/// A volume as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeDoc {
    /// Id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Size for people.
    pub size_human: String,
    /// Owner.
    pub owner: String,
    /// Logical pool id.
    pub pool: u32,
    /// Creation time, seconds since the epoch.
    pub ctime: u64,
}

impl From<&VolumeInfo> for VolumeDoc {
    fn from(v: &VolumeInfo) -> Self {
        VolumeDoc {
            id: v.id.0,
            name: v.name.clone(),
            size: v.size,
            size_human: format_size(v.size),
            owner: v.owner.clone(),
            pool: v.pool.0,
            ctime: v.ctime,
        }
    }
}

fn size_arg(text: &str) -> Result<u64, CliError> {
    parse_size(text).map_err(|e| CliError::Usage {
        arg: "--size",
        reason: e.to_string(),
    })
}

/// Print volumes as a table or a JSON array.
pub fn print_volumes(ctx: &mut Ctx<'_>, vols: &[VolumeInfo]) -> Result<(), CliError> {
    let docs: Vec<VolumeDoc> = vols.iter().map(VolumeDoc::from).collect();
    match ctx.format {
        Format::Json => json(ctx.out, &docs)?,
        Format::Plain => {
            let rows: Vec<Vec<String>> = docs
                .iter()
                .map(|d| {
                    vec![
                        d.id.to_string(),
                        d.name.clone(),
                        d.size_human.clone(),
                        d.owner.clone(),
                        d.pool.to_string(),
                    ]
                })
                .collect();
            table(ctx.out, &["ID", "NAME", "SIZE", "OWNER", "POOL"], &rows)?;
        }
    }
    Ok(())
}

fn print_one(ctx: &mut Ctx<'_>, v: &VolumeInfo) -> Result<(), CliError> {
    let d = VolumeDoc::from(v);
    match ctx.format {
        Format::Json => json(ctx.out, &d)?,
        Format::Plain => {
            let rows = vec![
                vec!["id".into(), d.id.to_string()],
                vec!["name".into(), d.name],
                vec![
                    "size".into(),
                    format!("{} ({} bytes)", d.size_human, d.size),
                ],
                vec!["owner".into(), d.owner],
                vec!["pool".into(), d.pool.to_string()],
                vec!["ctime".into(), d.ctime.to_string()],
            ];
            table(ctx.out, &["FIELD", "VALUE"], &rows)?;
        }
    }
    Ok(())
}

/// Run a `volume` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    // Validate arguments before touching the network.
    let size = match &args.verb {
        Verb::Create { size, .. } | Verb::Extend { size, .. } => Some(size_arg(size)?),
        _ => None,
    };
    let mut file = client_file(ctx)?;
    if let Some(p) = args.principal {
        file.owner = p;
    }
    if let Some(k) = args.key_file {
        file.key_file = Some(k);
    }
    if let Verb::Purge { name } = &args.verb {
        let out = block_on(async {
            Admin::new(&file)?
                .call_authed(&AuthOp::PurgeVolume { name }, |auth| PurgeVolume {
                    name: name.clone(),
                    auth,
                })
                .await
        })?;
        if ctx.format == Format::Json {
            return Ok(json(ctx.out, &out)?);
        }
        (ctx.progress)(&format!(
            "volume {name} purged ({} volumes, {} chunks deleted)",
            out.volumes.len(),
            out.chunks
        ));
        return Ok(());
    }
    let addrs = file
        .mds
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let unreachable = |e: ClientError| match e {
        ClientError::MdsUnavailable => CliError::Unreachable {
            addrs: addrs.clone(),
        },
        e => CliError::Client(e),
    };
    rt.block_on(async {
        let cluster = file.cluster()?;
        match args.verb {
            Verb::Create { name, owner, .. } => {
                let owner = owner.unwrap_or_else(|| file.owner.clone());
                let v = cluster
                    .create_volume_for(&name, size.unwrap_or_default(), &owner)
                    .await
                    .map_err(unreachable)?;
                print_one(ctx, &v)
            }
            Verb::Ls => {
                let vols = cluster.list_volumes().await.map_err(unreachable)?;
                print_volumes(ctx, &vols)
            }
            Verb::Info { name } => {
                let v = cluster.stat_volume(&name).await.map_err(unreachable)?;
                print_one(ctx, &v)
            }
            Verb::Extend { name, .. } => {
                let v = cluster
                    .extend_volume(&name, size.unwrap_or_default())
                    .await
                    .map_err(unreachable)?;
                print_one(ctx, &v)
            }
            Verb::Rename { from, to } => {
                let v = cluster
                    .rename_volume(&from, &to)
                    .await
                    .map_err(unreachable)?;
                print_one(ctx, &v)
            }
            Verb::Rm { name } => {
                cluster.delete_volume(&name).await.map_err(unreachable)?;
                (ctx.progress)(&format!("volume {name} deleted"));
                Ok(())
            }
            Verb::Purge { .. } => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_proto::ids::{LogicalPoolId, VolumeId};

    #[test]
    fn json_of_a_volume_matches_the_snapshot() {
        let v = VolumeInfo {
            id: VolumeId(7),
            name: "db".into(),
            size: 10 << 30,
            owner: "basalt".into(),
            pool: LogicalPoolId(1),
            ctime: 1_700_000_000,
        };
        let mut out = Vec::new();
        let mut progress = |_: &str| {};
        let mut ctx = Ctx {
            format: Format::Json,
            mds: None,
            client_config: None,
            out: &mut out,
            progress: &mut progress,
        };
        print_volumes(&mut ctx, std::slice::from_ref(&v)).unwrap();
        crate::snapshot::assert_snapshot("volume-ls.json", &String::from_utf8(out).unwrap());
    }
}
