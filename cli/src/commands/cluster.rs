//! `basalt cluster status`: the MDS instances (active, standby, unreachable), chunkservers
//! by liveness, copysets by health, space and pending operators.

use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::output::{json, table, Format};
use crate::size::format_size_approx;
use basalt_proto::mds::{ClusterStatus, ClusterStatusReply, MdsLeader};
use serde::Serialize;
use std::net::SocketAddr;

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
) -> StatusDoc {
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
    let rows = vec![
        vec!["mds".into(), mds],
        vec![
            "chunkservers".into(),
            format!(
                "{} online, {} unstable, {} offline",
                d.chunkservers.online, d.chunkservers.unstable, d.chunkservers.offline
            ),
        ],
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

/// Run a `cluster` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Status => {
            let doc = block_on(async {
                let admin = Admin::new(&file)?;
                let reply = admin.call(&ClusterStatus {}).await?;
                let mut mds = Vec::new();
                for a in admin.mds_addrs() {
                    mds.push((*a, admin.mds_leader(*a).await));
                }
                Ok(status_doc(&reply, &mds))
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
        let doc = status_doc(
            &reply,
            &[(a, Some(active)), (b, Some(standby.clone())), (c, None)],
        );
        assert_eq!(doc.mds[2].role, MdsRole::Unreachable);
        for (format, name) in [
            (Format::Plain, "cluster-status.txt"),
            (Format::Json, "cluster-status.json"),
        ] {
            let text = test_ctx(format, |ctx| print_status(ctx, &doc));
            crate::snapshot::assert_snapshot(name, &text);
        }
        // An active MDS missing from the configured list is still shown.
        let doc = status_doc(&reply, &[(b, Some(standby))]);
        assert_eq!(doc.mds.len(), 2);
        assert_eq!(doc.mds[1].role, MdsRole::Active);
    }
}
