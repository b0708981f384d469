//! `basalt peer remove COPYSET CS`: ask the MDS to remove a voter from a copyset; the
//! copyset's leader carries it out after its next heartbeat.
//!
//! `basalt peer reset COPYSET CS --force`: force a copyset that lost its majority down to
//! its surviving replica CS (or `--peers`). The MDS only resolves CS's address; the CLI
//! then sends `ResetPeers` to that chunkserver directly, since the MDS cannot reach a
//! copyset without a leader through heartbeats. The MDS learns the new membership from
//! CS's next heartbeat (higher epoch) and its scheduler adds replicas back.

use super::operator::{print_queued, wait_until, WaitArgs};
use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::ids::{copyset_name, parse_chunkserver, parse_copyset};
use crate::output::{json, Format};
use basalt_proto::chunk::{ResetPeers, ResetPeersError};
use basalt_proto::ids::{ChunkServerId, GroupId};
use basalt_proto::mds::{GetCopysets, MdsRemovePeer};
use basalt_proto::status::{ChunkError, MdsError};
use serde::Serialize;
use std::time::Duration;

/// How long the chunkserver may take to reset (stop, rewrite, restart, elect).
const RESET_TIMEOUT: Duration = Duration::from_secs(30);

/// `peer` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Remove a voter from a copyset (not its leader: transfer leadership first; never the
    /// last voter).
    Remove {
        /// Copyset, POOL.COPYSET (e.g. 1.5).
        #[arg(value_parser = parse_copyset)]
        copyset: GroupId,
        /// The voter to remove (cs3 or 3).
        #[arg(value_parser = parse_chunkserver)]
        peer: ChunkServerId,
        /// Waiting.
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// UNSAFE: force a copyset that lost its majority down to a surviving replica.
    ///
    /// The replica PEER forgets the lost peers: its voters become PEER alone (or
    /// --peers), with a new epoch; it elects itself and serves again, and the MDS adds
    /// replicas back. Writes acknowledged only by the lost replicas are gone, and a lost
    /// replica that comes back could form a majority of the old membership: use it only
    /// when the other replicas are gone for good (disks lost, or wiped). Refused while the
    /// copyset has a live leader.
    Reset {
        /// Copyset, POOL.COPYSET (e.g. 1.5).
        #[arg(value_parser = parse_copyset)]
        copyset: GroupId,
        /// The surviving replica that takes over (cs2 or 2).
        #[arg(value_parser = parse_chunkserver)]
        peer: ChunkServerId,
        /// Voters to force, comma separated, including PEER [default: PEER alone].
        #[arg(long, value_delimiter = ',', value_parser = parse_chunkserver, value_name = "CS,..")]
        peers: Vec<ChunkServerId>,
        /// Confirm that losing the writes only the lost replicas had is accepted.
        #[arg(long)]
        force: bool,
        /// With --force: reset even though a leader looks alive (only when that leader is
        /// known to be gone).
        #[arg(long)]
        ignore_leader: bool,
        /// Waiting.
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// What `peer reset` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetDoc {
    /// `POOL.COPYSET`.
    pub copyset: String,
    /// Raw group id.
    pub group: u64,
    /// The replica that was reset.
    pub peer: u32,
    /// The voters forced on it.
    pub peers: Vec<u32>,
    /// The epoch of the forced membership.
    pub epoch: u64,
}

/// Print `peer reset`'s result.
pub fn print_reset(ctx: &mut Ctx<'_>, d: &ResetDoc) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    let peers: Vec<String> = d.peers.iter().map(|p| format!("cs{p}")).collect();
    writeln!(
        ctx.out,
        "copyset {}: voters forced to {} at epoch {} on cs{}; the MDS adds replicas back",
        d.copyset,
        peers.join(","),
        d.epoch,
        d.peer
    )?;
    Ok(())
}

/// A chunkserver's refusal of `peer reset`, with what to do about it.
pub fn describe_reset(e: &ResetPeersError) -> String {
    match e {
        ResetPeersError::Chunk(ChunkError::CopysetNotFound { .. }) => {
            "it holds no replica of the copyset; pick a surviving peer \
             (`basalt copyset status COPYSET`)"
                .into()
        }
        ResetPeersError::Chunk(e) => e.to_string(),
        ResetPeersError::EmptyPeers { .. } => "the peer list is empty".into(),
        ResetPeersError::DuplicatePeer { peer, .. } => format!("{peer} is named twice in --peers"),
        ResetPeersError::MissingSelf { local, .. } => {
            format!("--peers must include {local}, the replica asked")
        }
        ResetPeersError::UnknownPeer { peer, .. } => format!(
            "{peer} is not in the replica's membership; --peers may list only its current peers"
        ),
        ResetPeersError::LeaderAlive { leader, .. } => format!(
            "{leader} leads it and is alive, so it has a majority: change peers with \
             `basalt peer remove` or let the MDS recover it; if you know {leader} is gone, add \
             --ignore-leader"
        ),
        ResetPeersError::NotInitialized { .. } => {
            "the replica never joined the copyset; pick another survivor".into()
        }
    }
}

/// `peer reset` without `--force` (or `--ignore-leader` alone).
fn unforced() -> CliError {
    CliError::Usage {
        arg: "--force",
        reason: "peer reset is unsafe: writes acknowledged only by the lost replicas are lost, \
                 and a lost replica that comes back can form a majority of the old membership; \
                 make sure the other replicas are gone for good, then add --force"
            .into(),
    }
}

async fn reset(
    admin: &Admin,
    copyset: GroupId,
    peer: ChunkServerId,
    peers: Vec<ChunkServerId>,
    ignore_leader: bool,
) -> Result<ResetDoc, CliError> {
    let info = admin
        .call(&GetCopysets {
            groups: vec![copyset],
        })
        .await?
        .into_iter()
        .next()
        .ok_or(CliError::Refused {
            error: MdsError::CopysetNotFound { group: copyset },
        })?;
    let addr = info
        .peers
        .iter()
        .find(|p| p.id == peer)
        .ok_or(CliError::Refused {
            error: MdsError::NotAPeer {
                group: copyset,
                chunkserver: peer,
            },
        })?
        .addr;
    let req = ResetPeers {
        group: copyset,
        peers: peers.clone(),
        ignore_leader,
    };
    let ok = admin
        .call_chunkserver(addr, &req, RESET_TIMEOUT)
        .await
        .ok_or(CliError::ChunkServerUnreachable {
            group: copyset,
            peer,
            addr,
        })?
        .map_err(|error| CliError::ResetRefused {
            group: copyset,
            peer,
            error,
        })?;
    Ok(ResetDoc {
        copyset: copyset_name(copyset),
        group: copyset.0,
        peer: peer.0,
        peers: peers.iter().map(|p| p.0).collect(),
        epoch: ok.epoch.0,
    })
}

/// Run a `peer` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    if let Verb::Reset { force: false, .. } = args.verb {
        return Err(unforced());
    }
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Remove {
            copyset,
            peer,
            wait,
        } => block_on(async {
            let admin = Admin::new(&file)?;
            let op = admin
                .call(&MdsRemovePeer {
                    group: copyset,
                    peer,
                })
                .await?;
            print_queued(ctx, &op)?;
            if wait.wait {
                let name = copyset_name(copyset);
                (ctx.progress)(&format!("waiting for {peer} to leave {name}"));
                // Done once the MDS sees the copyset past the operator's epoch (its own
                // completion rule): the scheduler may add a peer back right after.
                wait_until(&admin, copyset, wait.timeout, "the removal", |i| {
                    i.epoch > op.epoch || !i.peers.iter().any(|p| p.id == peer)
                })
                .await?;
                (ctx.progress)(&format!("{peer} left {name}"));
            }
            Ok(())
        }),
        Verb::Reset {
            copyset,
            peer,
            peers,
            force: _,
            ignore_leader,
            wait,
        } => {
            let peers = if peers.is_empty() { vec![peer] } else { peers };
            let doc = block_on(async {
                let admin = Admin::new(&file)?;
                let name = copyset_name(copyset);
                (ctx.progress)(&format!("forcing the voters of {name} on {peer}"));
                let doc = reset(&admin, copyset, peer, peers, ignore_leader).await?;
                if wait.wait {
                    (ctx.progress)(&format!("waiting for the MDS to see epoch {}", doc.epoch));
                    let epoch = doc.epoch;
                    wait_until(
                        &admin,
                        copyset,
                        wait.timeout,
                        "the forced membership",
                        |i| i.epoch.0 >= epoch,
                    )
                    .await?;
                }
                Ok(doc)
            })?;
            print_reset(ctx, &doc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_ctx;
    use basalt_proto::ids::{CopysetId, LogicalPoolId};

    #[test]
    fn reset_renders_as_the_snapshots() {
        let g = GroupId::of(LogicalPoolId(1), CopysetId(5));
        let d = ResetDoc {
            copyset: copyset_name(g),
            group: g.0,
            peer: 2,
            peers: vec![2],
            epoch: 41,
        };
        for (format, name) in [
            (Format::Plain, "peer-reset.txt"),
            (Format::Json, "peer-reset.json"),
        ] {
            let text = test_ctx(format, |ctx| print_reset(ctx, &d));
            crate::snapshot::assert_snapshot(name, &text);
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let g = GroupId::of(LogicalPoolId(1), CopysetId(5));
        let e = CliError::ResetRefused {
            group: g,
            peer: ChunkServerId(2),
            error: ResetPeersError::LeaderAlive {
                group: g,
                leader: ChunkServerId(1),
            },
        };
        assert_eq!(e.exit_code(), 1);
        let text = e.to_string();
        assert!(
            text.starts_with("cs2 refused to reset copyset 1.5: cs1 leads it"),
            "{text}"
        );
        assert!(text.contains("--ignore-leader"), "{text}");
        let missing = describe_reset(&ResetPeersError::MissingSelf {
            group: g,
            local: ChunkServerId(2),
        });
        assert_eq!(missing, "--peers must include cs2, the replica asked");
        let not_here = describe_reset(&ResetPeersError::Chunk(ChunkError::CopysetNotFound {
            group: g,
        }));
        assert!(not_here.contains("copyset status"), "{not_here}");
        assert_eq!(unforced().exit_code(), 2);
        assert!(unforced().to_string().contains("add --force"));
    }
}
