//! `basalt cluster status`: the MDS instances (active, standby, unreachable), chunkservers
//! by liveness and drain state, copysets by health, space and pending operators.

use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::output::{json, table, Format};
use crate::size::format_size_approx;
use basalt_client::config_file::parse_addrs;
use basalt_proto::mds::{
    ClusterStatus, ClusterStatusReply, DrainState, DrainStatus, ListDrains, MdsLeader,
};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `cluster` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Create a new cluster's credentials: the cluster secret, the admin credential and
    /// a client config using both (nothing is contacted).
    Init {
        /// Directory to write cluster.secret, admin.key, admin.verifier and client.toml to
        /// (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Replace files that exist (invalidates the old secret and admin key).
        #[arg(long)]
        force: bool,
    },
    /// MDS instances, chunkservers online/unstable/offline, copysets
    /// healthy/degraded/leaderless, space, pending operators.
    Status,
}

/// How one configured MDS answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MdsRole {
    /// It is the active MDS.
    Active,
    /// It answered as a standby.
    Standby,
    /// It did not answer.
    Unreachable,
}

/// One MDS instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MdsDoc {
    /// Address.
    pub addr: SocketAddr,
    /// Role.
    pub role: MdsRole,
}

/// Counts by state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkServerCounts {
    /// Online.
    pub online: u32,
    /// Unstable.
    pub unstable: u32,
    /// Offline.
    pub offline: u32,
    /// Being drained (copysets still on them).
    pub draining: u32,
    /// Drained: marked draining and empty, safe to stop.
    pub drained: u32,
}

/// Counts by health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopysetCounts {
    /// Healthy.
    pub healthy: u64,
    /// Degraded.
    pub degraded: u64,
    /// Leaderless.
    pub leaderless: u64,
}

/// Space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpaceDoc {
    /// Bytes used.
    pub used_bytes: u64,
    /// Bytes in total.
    pub total_bytes: u64,
}

/// `cluster status` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusDoc {
    /// The active MDS as the answering MDS names it.
    pub active_mds: Option<SocketAddr>,
    /// Every configured MDS (plus the active one if not configured).
    pub mds: Vec<MdsDoc>,
    /// Chunkservers.
    pub chunkservers: ChunkServerCounts,
    /// Copysets.
    pub copysets: CopysetCounts,
    /// Space.
    pub space: SpaceDoc,
    /// Operators in flight.
    pub operators_pending: u32,
}

/// Build the document from the MDS's answers.
pub fn status_doc(
    reply: &ClusterStatusReply,
    mds: &[(SocketAddr, Option<MdsLeader>)],
    drains: &[DrainStatus],
) -> StatusDoc {
    let drain_count =
        |s| u32::try_from(drains.iter().filter(|d| d.state == s).count()).unwrap_or(u32::MAX);
    let mut list: Vec<MdsDoc> = mds
        .iter()
        .map(|(addr, answer)| MdsDoc {
            addr: *addr,
            role: match answer {
                None => MdsRole::Unreachable,
                Some(l) if l.is_leader => MdsRole::Active,
                Some(_) => MdsRole::Standby,
            },
        })
        .collect();
    if let Some(a) = reply.active_mds {
        if !list.iter().any(|m| m.addr == a) {
            list.push(MdsDoc {
                addr: a,
                role: MdsRole::Active,
            });
        }
    }
    StatusDoc {
        active_mds: reply.active_mds,
        mds: list,
        chunkservers: ChunkServerCounts {
            online: reply.chunkservers_online,
            unstable: reply.chunkservers_unstable,
            offline: reply.chunkservers_offline,
            draining: drain_count(DrainState::Draining),
            drained: drain_count(DrainState::Drained),
        },
        copysets: CopysetCounts {
            healthy: reply.copysets_healthy,
            degraded: reply.copysets_degraded,
            leaderless: reply.copysets_leaderless,
        },
        space: SpaceDoc {
            used_bytes: reply.used_bytes,
            total_bytes: reply.total_bytes,
        },
        operators_pending: reply.operators_pending,
    }
}

fn role_name(r: MdsRole) -> &'static str {
    match r {
        MdsRole::Active => "active",
        MdsRole::Standby => "standby",
        MdsRole::Unreachable => "unreachable",
    }
}

/// Print the document.
pub fn print_status(ctx: &mut Ctx<'_>, d: &StatusDoc) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    let mds = d
        .mds
        .iter()
        .map(|m| format!("{} ({})", m.addr, role_name(m.role)))
        .collect::<Vec<_>>()
        .join(", ");
    let pct = if d.space.total_bytes > 0 {
        format!(
            " ({:.1}%)",
            d.space.used_bytes as f64 * 100.0 / d.space.total_bytes as f64
        )
    } else {
        String::new()
    };
    let c = &d.chunkservers;
    let mut chunkservers = format!(
        "{} online, {} unstable, {} offline",
        c.online, c.unstable, c.offline
    );
    if c.draining + c.drained > 0 {
        chunkservers.push_str(&format!("; {} draining, {} drained", c.draining, c.drained));
    }
    let rows = vec![
        vec!["mds".into(), mds],
        vec!["chunkservers".into(), chunkservers],
        vec![
            "copysets".into(),
            format!(
                "{} healthy, {} degraded, {} leaderless",
                d.copysets.healthy, d.copysets.degraded, d.copysets.leaderless
            ),
        ],
        vec![
            "space".into(),
            format!(
                "{} used of {}{pct}",
                format_size_approx(d.space.used_bytes),
                format_size_approx(d.space.total_bytes)
            ),
        ],
        vec![
            "operators".into(),
            format!("{} pending", d.operators_pending),
        ],
    ];
    Ok(table(ctx.out, &["FIELD", "VALUE"], &rows)?)
}

/// Files `cluster init` writes, by role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitDoc {
    /// The cluster secret (every daemon and client: `[transport] auth-secret-file`).
    pub cluster_secret: PathBuf,
    /// The admin credential's key (admin hosts only; the client config names it).
    pub admin_key: PathBuf,
    /// The admin credential's verifier (every MDS: `admin-verifier-file`).
    pub admin_verifier: PathBuf,
    /// A client config for the admin (MDS addresses from `--mds`).
    pub client_config: PathBuf,
}

fn init_error(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// `cluster init`: write the cluster secret, the admin key and verifier and a client
/// config under `dir`. Refuses to replace any of them unless `force`; checks them all
/// before writing any.
pub fn init(dir: &Path, force: bool, mds: Vec<SocketAddr>) -> Result<InitDoc, CliError> {
    std::fs::create_dir_all(dir).map_err(|e| init_error(dir, e))?;
    let doc = InitDoc {
        cluster_secret: dir.join("cluster.secret"),
        admin_key: dir.join("admin.key"),
        admin_verifier: dir.join("admin.verifier"),
        client_config: dir.join("client.toml"),
    };
    let all = [
        &doc.cluster_secret,
        &doc.admin_key,
        &doc.admin_verifier,
        &doc.client_config,
    ];
    for p in all {
        if p.exists() {
            if !force {
                return Err(CliError::Usage {
                    arg: "--dir",
                    reason: format!("{} exists (--force replaces it)", p.display()),
                });
            }
            std::fs::remove_file(p).map_err(|e| init_error(p, e))?;
        }
    }
    basalt_transport::ClusterSecret::generate()
        .write_new(&doc.cluster_secret)
        .map_err(|e| init_error(&doc.cluster_secret, e))?;
    let (key, verifier) = super::owner::new_key();
    basalt_client::config_file::write_key(&doc.admin_key, &key)?;
    std::fs::write(&doc.admin_verifier, verifier.to_text())
        .map_err(|e| init_error(&doc.admin_verifier, e))?;
    let mut file = basalt_client::ClientFile {
        mds,
        owner: basalt_proto::credential::ADMIN.into(),
        key_file: Some(doc.admin_key.clone()),
        ..Default::default()
    };
    file.transport.auth_secret_file = Some(doc.cluster_secret.clone());
    file.save(&doc.client_config)?;
    Ok(doc)
}

/// Print what `cluster init` wrote and where each file goes.
pub fn print_init(ctx: &mut Ctx<'_>, d: &InitDoc) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    let rows = vec![
        vec![
            "cluster-secret".into(),
            d.cluster_secret.display().to_string(),
            "every MDS, chunkserver and client: [transport] auth-secret-file".into(),
        ],
        vec![
            "admin-verifier".into(),
            d.admin_verifier.display().to_string(),
            "every MDS: admin-verifier-file".into(),
        ],
        vec![
            "admin-key".into(),
            d.admin_key.display().to_string(),
            "admin hosts only (secret; named by the client config)".into(),
        ],
        vec![
            "client-config".into(),
            d.client_config.display().to_string(),
            "the admin's client config ($BASALT_CLIENT_CONF or --client-config)".into(),
        ],
    ];
    Ok(table(ctx.out, &["FILE", "PATH", "GOES TO"], &rows)?)
}

/// Run a `cluster` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    if let Verb::Init { dir, force } = &args.verb {
        let mds = match &ctx.mds {
            Some(list) => parse_addrs(list).map_err(|e| CliError::Usage {
                arg: "--mds",
                reason: e.to_string(),
            })?,
            None => Vec::new(),
        };
        let doc = init(dir, *force, mds)?;
        return print_init(ctx, &doc);
    }
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Init { .. } => Ok(()),
        Verb::Status => {
            let doc = block_on(async {
                let admin = Admin::new(&file)?;
                let reply = admin.call(&ClusterStatus {}).await?;
                let drains = admin.call(&ListDrains {}).await?;
                let mut mds = Vec::new();
                for a in admin.mds_addrs() {
                    mds.push((*a, admin.mds_leader(*a).await));
                }
                Ok(status_doc(&reply, &mds, &drains))
            })?;
            print_status(ctx, &doc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_ctx;

    #[test]
    fn status_renders_as_the_snapshots() {
        let a: SocketAddr = "127.0.0.1:6700".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:6701".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:6702".parse().unwrap();
        let reply = ClusterStatusReply {
            active_mds: Some(a),
            chunkservers_online: 2,
            chunkservers_unstable: 0,
            chunkservers_offline: 1,
            copysets_healthy: 7,
            copysets_degraded: 3,
            copysets_leaderless: 0,
            used_bytes: 3 << 30,
            total_bytes: 12 << 30,
            operators_pending: 1,
        };
        let standby = MdsLeader {
            leader: Some(a),
            is_leader: false,
        };
        let active = MdsLeader {
            leader: Some(a),
            is_leader: true,
        };
        let drain = |id, state| DrainStatus {
            id: basalt_proto::ids::ChunkServerId(id),
            state,
            copysets: 0,
            leaders: 0,
            blocked: 0,
            operators: 0,
        };
        let doc = status_doc(
            &reply,
            &[(a, Some(active)), (b, Some(standby.clone())), (c, None)],
            &[
                drain(2, DrainState::Draining),
                drain(3, DrainState::Drained),
            ],
        );
        assert_eq!(doc.mds[2].role, MdsRole::Unreachable);
        assert_eq!(
            (doc.chunkservers.draining, doc.chunkservers.drained),
            (1, 1)
        );
        for (format, name) in [
            (Format::Plain, "cluster-status.txt"),
            (Format::Json, "cluster-status.json"),
        ] {
            let text = test_ctx(format, |ctx| print_status(ctx, &doc));
            crate::snapshot::assert_snapshot(name, &text);
        }
        // An active MDS missing from the configured list is still shown.
        let doc = status_doc(&reply, &[(b, Some(standby))], &[]);
        assert_eq!(doc.mds.len(), 2);
        let text = test_ctx(Format::Plain, |ctx| print_status(ctx, &doc));
        assert!(
            text.contains("1 offline\n"),
            "no drain part when none: {text}"
        );
        assert_eq!(doc.mds[1].role, MdsRole::Active);
    }
}

#[cfg(test)]
mod init_tests {
    use super::*;
    use basalt_proto::credential::{AuthOp, Verifier};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_writes_a_usable_secret_admin_credential_and_client_config() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("etc");
        let mds: SocketAddr = "127.0.0.1:8100".parse().unwrap();
        let doc = init(&d, false, vec![mds]).unwrap();
        for p in [&doc.cluster_secret, &doc.admin_key] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        basalt_transport::ClusterSecret::load(&doc.cluster_secret).unwrap();
        let file = basalt_client::ClientFile::load(Some(&doc.client_config)).unwrap();
        assert_eq!(file.mds, vec![mds]);
        assert_eq!(
            file.transport.auth_secret_file.as_ref(),
            Some(&doc.cluster_secret)
        );
        let cfg = file.client_config().unwrap();
        assert_eq!(cfg.owner, "admin");
        // The key in the config proves against the verifier the MDS will load.
        let v =
            Verifier::from_text(&std::fs::read_to_string(&doc.admin_verifier).unwrap()).unwrap();
        let op = AuthOp::OpenVolume { name: "v" };
        let proof = cfg.key.unwrap().prove(&v.salt, "admin", b"n", &op);
        assert!(v.check("admin", b"n", &op, &proof));

        // A second init refuses; --force makes a new secret and credential.
        let old = std::fs::read_to_string(&doc.cluster_secret).unwrap();
        assert!(matches!(
            init(&d, false, vec![]),
            Err(CliError::Usage { arg: "--dir", .. })
        ));
        assert_eq!(std::fs::read_to_string(&doc.cluster_secret).unwrap(), old);
        init(&d, true, vec![]).unwrap();
        assert_ne!(std::fs::read_to_string(&doc.cluster_secret).unwrap(), old);
    }
}
