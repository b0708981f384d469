//! `basalt chunkserver ls|info|drain`: chunkservers as the MDS sees them (liveness from
//! heartbeats, drain state, copysets and leaders, disk), and retiring one.

use super::pool::{copysets_of, pool_ids};
use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::ids::{copyset_name, parse_chunkserver};
use crate::output::{json, table, Format};
use crate::size::format_size_approx;
use basalt_proto::ids::ChunkServerId;
use basalt_proto::mds::{
    ChunkServerState, ChunkServerSummary, CopysetSummary, DrainChunkServer, DrainState,
    DrainStatus, ListChunkServers, ListDrains,
};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
    /// Retire a chunkserver: no new copysets go to it and the MDS moves its copysets to
    /// other chunkservers (leadership first, one replica per zone kept). Once it holds
    /// none it is "drained" and can be stopped. `--undo` returns it to service.
    Drain(DrainArgs),
}

/// `drain` arguments.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct DrainArgs {
    /// Chunkserver id (cs3 or 3).
    #[arg(value_parser = parse_chunkserver)]
    pub id: ChunkServerId,
    /// Return the chunkserver to service (operators already running finish).
    #[arg(long)]
    pub undo: bool,
    /// Wait until it holds no copyset, printing progress on stderr.
    #[arg(long, conflicts_with = "undo")]
    pub wait: bool,
    /// Seconds `--wait` may take.
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    pub timeout: u64,
}

/// Liveness name.
pub fn state_name(s: ChunkServerState) -> &'static str {
    match s {
        ChunkServerState::Online => "online",
        ChunkServerState::Unstable => "unstable",
        ChunkServerState::Offline => "offline",
    }
}

/// Drain state name (`None`: in service).
pub fn drain_name(s: DrainState) -> Option<&'static str> {
    match s {
        DrainState::InService => None,
        DrainState::Draining => Some("draining"),
        DrainState::Drained => Some("drained"),
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
    /// draining or drained; null when in service.
    pub drain: Option<&'static str>,
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

impl ChunkServerDoc {
    /// The document of `c`, with its drain state from `drains` (`ListDrains`).
    pub fn new(c: &ChunkServerSummary, drains: &[DrainStatus]) -> Self {
        ChunkServerDoc {
            id: c.id.0,
            server: c.server.clone(),
            zone: c.zone.clone(),
            addr: c.addr,
            state: state_name(c.state),
            drain: drains
                .iter()
                .find(|d| d.id == c.id)
                .and_then(|d| drain_name(d.state)),
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
    let mut s = d.state.to_string();
    if let Some(drain) = d.drain {
        s = format!("{s}, {drain}");
    }
    if d.disk_failed {
        s.push_str(" (disk failed)");
    }
    s
}

/// Print chunkservers.
pub fn print_chunkservers(
    ctx: &mut Ctx<'_>,
    list: &[ChunkServerSummary],
    drains: &[DrainStatus],
) -> Result<(), CliError> {
    let docs: Vec<ChunkServerDoc> = list
        .iter()
        .map(|c| ChunkServerDoc::new(c, drains))
        .collect();
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
    /// Drain progress when it is being drained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_progress: Option<DrainDoc>,
}

/// Build `info` from the chunkserver, the drains and every copyset.
pub fn info_doc(
    cs: &ChunkServerSummary,
    drains: &[DrainStatus],
    copysets: &[CopysetSummary],
) -> InfoDoc {
    let mine = copysets.iter().filter(|c| c.peers.contains(&cs.id));
    InfoDoc {
        cs: ChunkServerDoc::new(cs, drains),
        drain_progress: drains
            .iter()
            .find(|d| d.id == cs.id && d.state != DrainState::InService)
            .map(DrainDoc::from),
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
    let mut rows = rows;
    if let Some(p) = &d.drain_progress {
        rows.push(vec!["drain".into(), p.summary()]);
    }
    Ok(table(ctx.out, &["FIELD", "VALUE"], &rows)?)
}

/// Drain progress as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrainDoc {
    /// Chunkserver id.
    pub id: u32,
    /// in-service, draining or drained.
    pub state: &'static str,
    /// Copysets it still holds.
    pub copysets: u32,
    /// Copysets it still leads.
    pub leaders: u32,
    /// Copysets no other chunkserver can take now (the drain waits for a spare).
    pub blocked: u32,
    /// Operators in flight involving it.
    pub operators: u32,
}

impl From<&DrainStatus> for DrainDoc {
    fn from(d: &DrainStatus) -> Self {
        DrainDoc {
            id: d.id.0,
            state: drain_name(d.state).unwrap_or("in-service"),
            copysets: d.copysets,
            leaders: d.leaders,
            blocked: d.blocked,
            operators: d.operators,
        }
    }
}

impl DrainDoc {
    /// One line: state and what is left.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} copysets left ({} led), {} operators running",
            self.state, self.copysets, self.leaders, self.operators
        );
        if self.blocked > 0 {
            s.push_str(&format!(
                ", {} without a spare chunkserver (add one to their zone)",
                self.blocked
            ));
        }
        s
    }
}

/// Print a drain status.
pub fn print_drain(ctx: &mut Ctx<'_>, d: &DrainDoc) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    Ok(writeln!(ctx.out, "cs{} {}", d.id, d.summary())?)
}

/// Poll the drain status of `id` until it is drained, at most `secs` seconds, reporting
/// changes through `progress`.
pub async fn wait_drained(
    admin: &Admin,
    id: ChunkServerId,
    secs: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<DrainStatus, CliError> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    loop {
        // Polled with the read-only listing: a concurrent `--undo` is not overridden.
        let s = admin
            .call(&ListDrains {})
            .await?
            .into_iter()
            .find(|d| d.id == id)
            .ok_or(CliError::DrainUndone { id })?;
        if s.state == DrainState::Drained {
            return Ok(s);
        }
        let line = format!("{id} {}", DrainDoc::from(&s).summary());
        if line != last {
            progress(&line);
            last = line;
        }
        if Instant::now() >= deadline {
            return Err(CliError::DrainTimeout {
                id,
                copysets: s.copysets,
                blocked: s.blocked,
                secs,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Run a `chunkserver` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Ls => {
            let (list, drains) = block_on(async {
                let admin = Admin::new(&file)?;
                let list = admin.call(&ListChunkServers {}).await?;
                Ok((list, admin.call(&ListDrains {}).await?))
            })?;
            print_chunkservers(ctx, &list, &drains)
        }
        Verb::Info { id } => {
            let doc = block_on(async {
                let admin = Admin::new(&file)?;
                let list = admin.call(&ListChunkServers {}).await?;
                let cs = list
                    .iter()
                    .find(|c| c.id == id)
                    .ok_or(CliError::ChunkServerNotFound { id })?;
                let drains = admin.call(&ListDrains {}).await?;
                let copysets = copysets_of(&admin, &pool_ids(&admin).await?).await?;
                Ok(info_doc(cs, &drains, &copysets))
            })?;
            print_info(ctx, &doc)
        }
        Verb::Drain(a) => {
            let progress = &mut *ctx.progress;
            let status = block_on(async {
                let admin = Admin::new(&file)?;
                let s = admin
                    .call(&DrainChunkServer {
                        id: a.id,
                        undo: a.undo,
                    })
                    .await
                    .map_err(|e| match e {
                        CliError::Refused {
                            error: basalt_proto::status::MdsError::UnknownChunkServer { id },
                        } => CliError::ChunkServerNotFound { id },
                        e => e,
                    })?;
                if a.wait && s.state != DrainState::Drained {
                    return wait_drained(&admin, a.id, a.timeout, progress).await;
                }
                Ok(s)
            })?;
            print_drain(ctx, &DrainDoc::from(&status))
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
        let drains = vec![DrainStatus {
            id: ChunkServerId(3),
            state: DrainState::Draining,
            copysets: 10,
            leaders: 0,
            blocked: 2,
            operators: 1,
        }];
        for (format, name) in [
            (Format::Plain, "chunkserver-ls.txt"),
            (Format::Json, "chunkserver-ls.json"),
        ] {
            let text = test_ctx(format, |ctx| print_chunkservers(ctx, &list, &drains));
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
        let d = info_doc(&list[0], &drains, &copysets);
        assert_eq!(d.peer_of, vec!["1.1", "1.2"]);
        assert_eq!(d.leader_of, vec!["1.1"]);
        assert_eq!(d.drain_progress, None);
        let text = test_ctx(Format::Plain, |ctx| print_info(ctx, &d));
        crate::snapshot::assert_snapshot("chunkserver-info.txt", &text);
        let d = info_doc(&list[2], &drains, &copysets);
        assert_eq!(d.cs.drain, Some("draining"));
        assert_eq!(d.drain_progress.as_ref().map(|p| p.blocked), Some(2));
        let text = test_ctx(Format::Plain, |ctx| print_info(ctx, &d));
        crate::snapshot::assert_snapshot("chunkserver-info-draining.txt", &text);
    }

    #[test]
    fn drain_status_renders_as_the_snapshots() {
        let mut s = DrainStatus {
            id: ChunkServerId(4),
            state: DrainState::Draining,
            copysets: 12,
            leaders: 1,
            blocked: 0,
            operators: 1,
        };
        for (format, name) in [
            (Format::Plain, "chunkserver-drain.txt"),
            (Format::Json, "chunkserver-drain.json"),
        ] {
            let text = test_ctx(format, |ctx| print_drain(ctx, &DrainDoc::from(&s)));
            crate::snapshot::assert_snapshot(name, &text);
        }
        s.state = DrainState::Drained;
        s.copysets = 0;
        s.leaders = 0;
        s.operators = 0;
        let text = test_ctx(Format::Plain, |ctx| print_drain(ctx, &DrainDoc::from(&s)));
        assert_eq!(
            text,
            "cs4 drained: 0 copysets left (0 led), 0 operators running\n"
        );
        s.state = DrainState::InService;
        assert_eq!(DrainDoc::from(&s).state, "in-service");
    }
}
