//! `basalt chunkserver ls|info`: chunkservers as the MDS sees them (liveness from
//! heartbeats, copysets and leaders, disk). `drain` needs an MDS RPC that does not exist
//! yet (see docs/cli.md).

use super::pool::{cluster_map, copysets_of, pool_ids};
use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::ids::{copyset_name, parse_chunkserver};
use crate::output::{json, table, Format};
use crate::size::format_size_approx;
use basalt_proto::ids::ChunkServerId;
use basalt_proto::mds::{ChunkServerState, ChunkServerSummary, CopysetSummary, ListChunkServers};
use serde::Serialize;
use std::net::SocketAddr;

/// `chunkserver` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// List chunkservers: server, zone, address, state, copysets, leaders, space.
    Ls,
    /// Describe one chunkserver, with the copysets it serves.
    Info {
        /// Chunkserver id (cs3 or 3).
        #[arg(value_parser = parse_chunkserver)]
        id: ChunkServerId,
    },
}

/// Liveness name.
pub fn state_name(s: ChunkServerState) -> &'static str {
    match s {
        ChunkServerState::Online => "online",
        ChunkServerState::Unstable => "unstable",
        ChunkServerState::Offline => "offline",
    }
}

/// A chunkserver as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkServerDoc {
    /// Id.
    pub id: u32,
    /// Server (host).
    pub server: String,
    /// Zone.
    pub zone: String,
    /// Service address.
    pub addr: SocketAddr,
    /// online, unstable or offline.
    pub state: &'static str,
    /// Copysets it is a voter of.
    pub copysets: u32,
    /// Copysets it leads.
    pub leaders: u32,
    /// Disk bytes used.
    pub used_bytes: u64,
    /// Disk bytes in total.
    pub total_bytes: u64,
    /// Chunk files in use.
    pub used_chunks: u64,
    /// Formatted chunk files free in the pool.
    pub pool_free_chunks: u64,
    /// The chunkserver fenced itself off its disk after an I/O error.
    pub disk_failed: bool,
}

impl From<&ChunkServerSummary> for ChunkServerDoc {
    fn from(c: &ChunkServerSummary) -> Self {
        ChunkServerDoc {
            id: c.id.0,
            server: c.server.clone(),
            zone: c.zone.clone(),
            addr: c.addr,
            state: state_name(c.state),
            copysets: c.copysets,
            leaders: c.leaders,
            used_bytes: c.disk.used_bytes,
            total_bytes: c.disk.total_bytes,
            used_chunks: c.disk.used_chunks,
            pool_free_chunks: c.disk.pool_free_chunks,
            disk_failed: c.disk.disk_failed,
        }
    }
}

fn state_cell(d: &ChunkServerDoc) -> String {
    if d.disk_failed {
        format!("{} (disk failed)", d.state)
    } else {
        d.state.to_string()
    }
}

/// Print chunkservers.
pub fn print_chunkservers(ctx: &mut Ctx<'_>, list: &[ChunkServerSummary]) -> Result<(), CliError> {
    let docs: Vec<ChunkServerDoc> = list.iter().map(ChunkServerDoc::from).collect();
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, &docs)?);
    }
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            vec![
                format!("cs{}", d.id),
                d.server.clone(),
                d.zone.clone(),
                d.addr.to_string(),
                state_cell(d),
                d.copysets.to_string(),
                d.leaders.to_string(),
                format!(
                    "{}/{}",
                    format_size_approx(d.used_bytes),
                    format_size_approx(d.total_bytes)
                ),
            ]
        })
        .collect();
    Ok(table(
        ctx.out,
        &[
            "ID",
            "SERVER",
            "ZONE",
            "ADDRESS",
            "STATE",
            "COPYSETS",
            "LEADERS",
            "USED/TOTAL",
        ],
        &rows,
    )?)
}

/// `chunkserver info` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoDoc {
    /// The chunkserver.
    #[serde(flatten)]
    pub cs: ChunkServerDoc,
    /// Copysets it is a voter of (`POOL.COPYSET`).
    pub peer_of: Vec<String>,
    /// Copysets it leads.
    pub leader_of: Vec<String>,
}

/// Build `info` from the chunkserver and every copyset.
pub fn info_doc(cs: &ChunkServerSummary, copysets: &[CopysetSummary]) -> InfoDoc {
    let mine = copysets.iter().filter(|c| c.peers.contains(&cs.id));
    InfoDoc {
        cs: cs.into(),
        peer_of: mine.clone().map(|c| copyset_name(c.group)).collect(),
        leader_of: mine
            .filter(|c| c.leader == Some(cs.id))
            .map(|c| copyset_name(c.group))
            .collect(),
    }
}

/// Print `info`.
pub fn print_info(ctx: &mut Ctx<'_>, d: &InfoDoc) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    let c = &d.cs;
    let rows = vec![
        vec!["id".into(), format!("cs{}", c.id)],
        vec!["server".into(), c.server.clone()],
        vec!["zone".into(), c.zone.clone()],
        vec!["address".into(), c.addr.to_string()],
        vec!["state".into(), state_cell(c)],
        vec![
            "space".into(),
            format!(
                "{} used of {}",
                format_size_approx(c.used_bytes),
                format_size_approx(c.total_bytes)
            ),
        ],
        vec![
            "chunks".into(),
            format!(
                "{} used, {} free in the pool",
                c.used_chunks, c.pool_free_chunks
            ),
        ],
        vec![
            "copysets".into(),
            format!("{}: {}", d.peer_of.len(), d.peer_of.join(" ")),
        ],
        vec![
            "leads".into(),
            format!("{}: {}", d.leader_of.len(), d.leader_of.join(" ")),
        ],
    ];
    Ok(table(ctx.out, &["FIELD", "VALUE"], &rows)?)
}

/// Run a `chunkserver` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Ls => {
            let list = block_on(async { Admin::new(&file)?.call(&ListChunkServers {}).await })?;
            print_chunkservers(ctx, &list)
        }
        Verb::Info { id } => {
            let doc = block_on(async {
                let admin = Admin::new(&file)?;
                let list = admin.call(&ListChunkServers {}).await?;
                let cs = list
                    .iter()
                    .find(|c| c.id == id)
                    .ok_or(CliError::ChunkServerNotFound { id })?;
                let pools: Vec<_> = pool_ids(&cluster_map(&admin).await?)
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                let copysets = copysets_of(&admin, &pools).await?;
                Ok(info_doc(cs, &copysets))
            })?;
            print_info(ctx, &doc)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::commands::test_ctx;
    use basalt_proto::heartbeat::DiskStats;
    use basalt_proto::ids::{CopysetId, Epoch, GroupId, LogicalPoolId};
    use basalt_proto::mds::CopysetHealth;

    pub(crate) fn sample() -> Vec<ChunkServerSummary> {
        (1..=3u32)
            .map(|i| ChunkServerSummary {
                id: ChunkServerId(i),
                server: format!("host-{i}"),
                zone: format!("zone-{i}"),
                addr: format!("127.0.0.1:{}", 6800 + i).parse().unwrap(),
                state: if i == 3 {
                    ChunkServerState::Offline
                } else {
                    ChunkServerState::Online
                },
                copysets: 10,
                leaders: if i == 1 { 6 } else { 2 },
                disk: DiskStats {
                    total_bytes: 100 << 30,
                    used_bytes: (3 << 30) + (1 << 29),
                    pool_free_chunks: 500,
                    used_chunks: 12,
                    disk_failed: i == 2,
                },
            })
            .collect()
    }

    #[test]
    fn chunkservers_render_as_the_snapshots() {
        let list = sample();
        for (format, name) in [
            (Format::Plain, "chunkserver-ls.txt"),
            (Format::Json, "chunkserver-ls.json"),
        ] {
            let text = test_ctx(format, |ctx| print_chunkservers(ctx, &list));
            crate::snapshot::assert_snapshot(name, &text);
        }
        let g = |n| GroupId::of(LogicalPoolId(1), CopysetId(n));
        let copysets = vec![
            CopysetSummary {
                group: g(1),
                epoch: Epoch(1),
                peers: vec![ChunkServerId(1), ChunkServerId(2)],
                leader: Some(ChunkServerId(1)),
                health: CopysetHealth::Healthy,
            },
            CopysetSummary {
                group: g(2),
                epoch: Epoch(1),
                peers: vec![ChunkServerId(2), ChunkServerId(1)],
                leader: Some(ChunkServerId(2)),
                health: CopysetHealth::Healthy,
            },
            CopysetSummary {
                group: g(3),
                epoch: Epoch(1),
                peers: vec![ChunkServerId(2), ChunkServerId(3)],
                leader: None,
                health: CopysetHealth::Leaderless,
            },
        ];
        let d = info_doc(&list[0], &copysets);
        assert_eq!(d.peer_of, vec!["1.1", "1.2"]);
        assert_eq!(d.leader_of, vec!["1.1"]);
        let text = test_ctx(Format::Plain, |ctx| print_info(ctx, &d));
        crate::snapshot::assert_snapshot("chunkserver-info.txt", &text);
    }
}
