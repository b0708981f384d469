//! `basalt copyset ls|status|check`: copysets as the MDS sees them, each replica's own
//! state (asked directly), and a health check that fails (exit 4) when any copyset is not
//! healthy.

use super::pool::{copysets_of, pool_ids};
use super::Ctx;
use crate::admin::{block_on, client_file, Admin, ProbeError};
use crate::error::CliError;
use crate::ids::{copyset_name, parse_copyset, parse_pool};
use crate::output::{json, table, Format};
use crate::replicas::{judge, Problem};
use basalt_proto::chunk::{CopysetStatusOk, RaftRole};
use basalt_proto::ids::{GroupId, LogicalPoolId};
use basalt_proto::mds::{CopysetHealth, CopysetInfo, CopysetSummary, GetCopysets};
use futures::future::join_all;
use serde::Serialize;
use std::net::SocketAddr;

/// `copyset` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// List copysets: epoch, peers, leader, health (from the MDS's heartbeats).
    Ls {
        /// Only this logical pool (its ID from `basalt pool ls`).
        #[arg(long, value_parser = parse_pool)]
        pool: Option<LogicalPoolId>,
    },
    /// Ask every peer of a copyset for its replica's raft state.
    Status {
        /// Copyset id, POOL.COPYSET (e.g. 1.5) as `copyset ls` prints it.
        #[arg(value_parser = parse_copyset)]
        copyset: GroupId,
    },
    /// Check every copyset; exit 4 when any is not healthy.
    Check {
        /// Only this logical pool.
        #[arg(long, value_parser = parse_pool)]
        pool: Option<LogicalPoolId>,
        /// Also ask every replica and check that they agree with each other and the MDS.
        #[arg(long)]
        deep: bool,
    },
}

/// Health name.
pub fn health_name(h: CopysetHealth) -> &'static str {
    match h {
        CopysetHealth::Healthy => "healthy",
        CopysetHealth::Degraded => "degraded",
        CopysetHealth::Leaderless => "leaderless",
    }
}

/// A copyset as `ls` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopysetDoc {
    /// `POOL.COPYSET`.
    pub copyset: String,
    /// Raw group id (as logs print it).
    pub group: u64,
    /// Configuration epoch.
    pub epoch: u64,
    /// Voters.
    pub peers: Vec<u32>,
    /// Leader from the latest heartbeats.
    pub leader: Option<u32>,
    /// healthy, degraded or leaderless.
    pub health: &'static str,
}

impl From<&CopysetSummary> for CopysetDoc {
    fn from(c: &CopysetSummary) -> Self {
        CopysetDoc {
            copyset: copyset_name(c.group),
            group: c.group.0,
            epoch: c.epoch.0,
            peers: c.peers.iter().map(|p| p.0).collect(),
            leader: c.leader.map(|l| l.0),
            health: health_name(c.health),
        }
    }
}

fn cs_list(ids: &[u32]) -> String {
    ids.iter()
        .map(|i| format!("cs{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn opt_cs(id: Option<u32>) -> String {
    id.map_or("-".into(), |i| format!("cs{i}"))
}

/// Print copysets.
pub fn print_copysets(ctx: &mut Ctx<'_>, list: &[CopysetSummary]) -> Result<(), CliError> {
    let docs: Vec<CopysetDoc> = list.iter().map(CopysetDoc::from).collect();
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, &docs)?);
    }
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            vec![
                d.copyset.clone(),
                d.epoch.to_string(),
                opt_cs(d.leader),
                cs_list(&d.peers),
                d.health.into(),
            ]
        })
        .collect();
    Ok(table(
        ctx.out,
        &["COPYSET", "EPOCH", "LEADER", "PEERS", "HEALTH"],
        &rows,
    )?)
}

/// One replica in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaDoc {
    /// Chunkserver.
    pub peer: u32,
    /// Its address.
    pub addr: SocketAddr,
    /// Its answer.
    #[serde(flatten)]
    pub state: ReplicaState,
}

/// A replica's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ReplicaState {
    /// It answered.
    Up {
        /// Raft role.
        role: &'static str,
        /// Term.
        term: u64,
        /// Leader as it knows it.
        leader: Option<u32>,
        /// Configuration epoch.
        epoch: u64,
        /// Voters.
        peers: Vec<u32>,
        /// Learners.
        learners: Vec<u32>,
        /// Last log index.
        last_index: u64,
        /// Committed index.
        committed: u64,
        /// Applied index.
        applied: u64,
    },
    /// It did not.
    Down {
        /// Why.
        error: ProbeError,
    },
}

fn role_name(r: RaftRole) -> &'static str {
    match r {
        RaftRole::Leader => "leader",
        RaftRole::Follower => "follower",
        RaftRole::Candidate => "candidate",
        RaftRole::Learner => "learner",
        RaftRole::Shutdown => "shutdown",
    }
}

/// `status` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusDoc {
    /// `POOL.COPYSET`.
    pub copyset: String,
    /// Raw group id.
    pub group: u64,
    /// The MDS's epoch.
    pub epoch: u64,
    /// The MDS's leader (latest heartbeats).
    pub mds_leader: Option<u32>,
    /// Each peer's answer.
    pub replicas: Vec<ReplicaDoc>,
    /// What is wrong (empty: nothing).
    pub problems: Vec<Problem>,
}

/// Build `status` from the MDS's placement and the peers' answers.
pub fn status_doc(
    info: &CopysetInfo,
    answers: &[Result<CopysetStatusOk, ProbeError>],
) -> StatusDoc {
    StatusDoc {
        copyset: copyset_name(info.group),
        group: info.group.0,
        epoch: info.epoch.0,
        mds_leader: info.leader.map(|l| l.0),
        replicas: info
            .peers
            .iter()
            .zip(answers)
            .map(|(p, a)| ReplicaDoc {
                peer: p.id.0,
                addr: p.addr,
                state: match a {
                    Ok(s) => ReplicaState::Up {
                        role: role_name(s.role),
                        term: s.term,
                        leader: s.leader.map(|l| l.0),
                        epoch: s.epoch.0,
                        peers: s.peers.iter().map(|p| p.id.0).collect(),
                        learners: s.learners.iter().map(|p| p.id.0).collect(),
                        last_index: s.last_index,
                        committed: s.committed,
                        applied: s.applied,
                    },
                    Err(e) => ReplicaState::Down { error: e.clone() },
                },
            })
            .collect(),
        problems: judge(info, answers),
    }
}

/// Print `status`.
pub fn print_status(ctx: &mut Ctx<'_>, d: &StatusDoc) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    writeln!(
        ctx.out,
        "copyset {} (group {}): epoch {}, MDS leader {}",
        d.copyset,
        d.group,
        d.epoch,
        opt_cs(d.mds_leader)
    )?;
    let rows: Vec<Vec<String>> = d
        .replicas
        .iter()
        .map(|r| {
            let mut row = vec![format!("cs{}", r.peer), r.addr.to_string()];
            match &r.state {
                ReplicaState::Up {
                    role,
                    term,
                    leader,
                    epoch,
                    peers,
                    last_index,
                    committed,
                    applied,
                    ..
                } => row.extend([
                    role.to_string(),
                    term.to_string(),
                    opt_cs(*leader),
                    epoch.to_string(),
                    cs_list(peers),
                    format!("{last_index}/{committed}/{applied}"),
                ]),
                ReplicaState::Down { error } => row.extend([
                    format!("({error})"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]),
            }
            row
        })
        .collect();
    table(
        ctx.out,
        &[
            "PEER",
            "ADDRESS",
            "ROLE",
            "TERM",
            "LEADER",
            "EPOCH",
            "PEERS",
            "LAST/COMMITTED/APPLIED",
        ],
        &rows,
    )?;
    if d.problems.is_empty() {
        writeln!(ctx.out, "problems: none")?;
    }
    for p in &d.problems {
        writeln!(ctx.out, "problem: {p}")?;
    }
    Ok(())
}

/// The MDS's placement of one copyset, then every peer's answer.
async fn ask_replicas(
    admin: &Admin,
    group: GroupId,
) -> Result<(CopysetInfo, Vec<Result<CopysetStatusOk, ProbeError>>), CliError> {
    let info = admin
        .call(&GetCopysets {
            groups: vec![group],
        })
        .await?
        .into_iter()
        .next()
        .ok_or(CliError::Refused {
            error: basalt_proto::status::MdsError::CopysetNotFound { group },
        })?;
    // Concurrently: an unreachable peer costs one probe timeout, not one per peer.
    let answers = join_all(
        info.peers
            .iter()
            .map(|p| admin.copyset_status(p.addr, group)),
    )
    .await;
    Ok((info, answers))
}

/// One copyset in `check`'s report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckEntry {
    /// `POOL.COPYSET`.
    pub copyset: String,
    /// The MDS's health.
    pub health: &'static str,
    /// Replica problems (with `--deep`).
    pub problems: Vec<String>,
}

/// `check` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckDoc {
    /// Copysets checked.
    pub checked: usize,
    /// Whether the replicas were asked.
    pub deep: bool,
    /// The copysets with a problem.
    pub unhealthy: Vec<CheckEntry>,
}

/// Build the `check` report: a copyset is unhealthy when the MDS says so or (deep) its
/// replicas report a problem. `problems` is keyed by group.
pub fn check_doc(
    list: &[CopysetSummary],
    problems: Option<&[(GroupId, Vec<Problem>)]>,
) -> CheckDoc {
    let unhealthy = list
        .iter()
        .filter_map(|c| {
            let found: Vec<String> = problems
                .and_then(|p| p.iter().find(|(g, _)| *g == c.group))
                .map(|(_, p)| p.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            (c.health != CopysetHealth::Healthy || !found.is_empty()).then(|| CheckEntry {
                copyset: copyset_name(c.group),
                health: health_name(c.health),
                problems: found,
            })
        })
        .collect();
    CheckDoc {
        checked: list.len(),
        deep: problems.is_some(),
        unhealthy,
    }
}

/// Print `check`.
pub fn print_check(ctx: &mut Ctx<'_>, d: &CheckDoc) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    if !d.unhealthy.is_empty() {
        let rows: Vec<Vec<String>> = d
            .unhealthy
            .iter()
            .map(|e| {
                vec![
                    e.copyset.clone(),
                    e.health.into(),
                    if e.problems.is_empty() {
                        "-".into()
                    } else {
                        e.problems.join("; ")
                    },
                ]
            })
            .collect();
        table(ctx.out, &["COPYSET", "HEALTH", "PROBLEMS"], &rows)?;
    }
    writeln!(
        ctx.out,
        "{} copysets checked{}: {} not healthy",
        d.checked,
        if d.deep { " (replicas asked)" } else { "" },
        d.unhealthy.len()
    )?;
    Ok(())
}

async fn pools(admin: &Admin, only: Option<LogicalPoolId>) -> Result<Vec<LogicalPoolId>, CliError> {
    Ok(match only {
        Some(p) => vec![p],
        None => pool_ids(admin).await?,
    })
}

/// Run a `copyset` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Ls { pool } => {
            let list = block_on(async {
                let admin = Admin::new(&file)?;
                copysets_of(&admin, &pools(&admin, pool).await?).await
            })?;
            print_copysets(ctx, &list)
        }
        Verb::Status { copyset } => {
            let doc = block_on(async {
                let admin = Admin::new(&file)?;
                let (info, answers) = ask_replicas(&admin, copyset).await?;
                Ok(status_doc(&info, &answers))
            })?;
            print_status(ctx, &doc)
        }
        Verb::Check { pool, deep } => {
            let doc = block_on(async {
                let admin = Admin::new(&file)?;
                let list = copysets_of(&admin, &pools(&admin, pool).await?).await?;
                if !deep {
                    return Ok(check_doc(&list, None));
                }
                let mut found = Vec::new();
                for c in &list {
                    let (info, answers) = ask_replicas(&admin, c.group).await?;
                    found.push((c.group, judge(&info, &answers)));
                }
                Ok(check_doc(&list, Some(&found)))
            })?;
            print_check(ctx, &doc)?;
            if doc.unhealthy.is_empty() {
                Ok(())
            } else {
                Err(CliError::Unhealthy {
                    unhealthy: doc.unhealthy.len(),
                    total: doc.checked,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_ctx;
    use basalt_proto::ids::{ChunkServerId, CopysetId, Epoch};
    use basalt_proto::status::PeerAddr;

    fn g(n: u32) -> GroupId {
        GroupId::of(LogicalPoolId(1), CopysetId(n))
    }

    fn summaries() -> Vec<CopysetSummary> {
        let cs = |n, leader: Option<u32>, health| CopysetSummary {
            group: g(n),
            epoch: Epoch(1),
            peers: vec![ChunkServerId(1), ChunkServerId(2), ChunkServerId(3)],
            leader: leader.map(ChunkServerId),
            health,
        };
        vec![
            cs(1, Some(1), CopysetHealth::Healthy),
            cs(2, Some(2), CopysetHealth::Degraded),
            cs(3, None, CopysetHealth::Leaderless),
        ]
    }

    #[test]
    fn ls_renders_as_the_snapshots() {
        let list = summaries();
        for (format, name) in [
            (Format::Plain, "copyset-ls.txt"),
            (Format::Json, "copyset-ls.json"),
        ] {
            let text = test_ctx(format, |ctx| print_copysets(ctx, &list));
            crate::snapshot::assert_snapshot(name, &text);
        }
    }

    #[test]
    fn status_renders_as_the_snapshots() {
        let peer = |i: u32| PeerAddr {
            id: ChunkServerId(i),
            addr: format!("127.0.0.1:{}", 6800 + i).parse().unwrap(),
        };
        let info = CopysetInfo {
            group: g(5),
            epoch: Epoch(1),
            peers: vec![peer(1), peer(2), peer(3)],
            leader: Some(ChunkServerId(1)),
        };
        let up = |role, i: u64| {
            Ok(CopysetStatusOk {
                role,
                term: 2,
                leader: Some(ChunkServerId(1)),
                epoch: Epoch(1),
                peers: vec![peer(1), peer(2), peer(3)],
                learners: vec![],
                last_index: 40 + i,
                committed: 40,
                applied: 40,
            })
        };
        let answers = vec![
            up(RaftRole::Leader, 0),
            up(RaftRole::Follower, 1),
            Err(ProbeError::Unreachable),
        ];
        let d = status_doc(&info, &answers);
        assert_eq!(d.problems.len(), 1);
        for (format, name) in [
            (Format::Plain, "copyset-status.txt"),
            (Format::Json, "copyset-status.json"),
        ] {
            let text = test_ctx(format, |ctx| print_status(ctx, &d));
            crate::snapshot::assert_snapshot(name, &text);
        }
    }

    #[test]
    fn check_lists_only_unhealthy_copysets() {
        let list = summaries();
        let d = check_doc(&list, None);
        assert_eq!(d.checked, 3);
        let names: Vec<_> = d.unhealthy.iter().map(|e| e.copyset.as_str()).collect();
        assert_eq!(names, vec!["1.2", "1.3"]);
        let healthy = &list[..1];
        assert!(check_doc(healthy, None).unhealthy.is_empty());
        // Deep: a replica problem makes a copyset the MDS calls healthy fail.
        let found = vec![(g(1), vec![Problem::NoLeader])];
        let d = check_doc(healthy, Some(&found));
        assert_eq!(d.unhealthy[0].problems, vec!["no replica leads"]);
        let text = test_ctx(Format::Plain, |ctx| {
            print_check(ctx, &check_doc(&list, None))
        });
        crate::snapshot::assert_snapshot("copyset-check.txt", &text);
    }
}
