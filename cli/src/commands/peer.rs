//! `basalt peer remove COPYSET CS`: ask the MDS to remove a voter from a copyset; the
//! copyset's leader carries it out after its next heartbeat. (`peer reset`, forcing a
//! membership on a copyset that lost its majority, needs a chunkserver RPC that does not
//! exist yet.)

use super::operator::{print_queued, wait_until, WaitArgs};
use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::ids::{copyset_name, parse_chunkserver, parse_copyset};
use basalt_proto::ids::{ChunkServerId, GroupId};
use basalt_proto::mds::MdsRemovePeer;

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
}

/// Run a `peer` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
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
    }
}
