//! `basalt leader transfer COPYSET --to CS`: ask the MDS to move a copyset's leadership;
//! the copyset's leader carries it out after its next heartbeat.

use super::operator::{print_queued, wait_until, WaitArgs};
use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::ids::{copyset_name, parse_chunkserver, parse_copyset};
use basalt_proto::ids::{ChunkServerId, GroupId};
use basalt_proto::mds::MdsTransferLeader;

/// `leader` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Move a copyset's leadership to another of its voters (refused while another
    /// operator runs on the copyset or the chunkservers involved).
    Transfer {
        /// Copyset, POOL.COPYSET (e.g. 1.5).
        #[arg(value_parser = parse_copyset)]
        copyset: GroupId,
        /// The new leader (cs3 or 3), a voter of the copyset.
        #[arg(long, value_parser = parse_chunkserver)]
        to: ChunkServerId,
        /// Waiting.
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// Run a `leader` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Transfer { copyset, to, wait } => block_on(async {
            let admin = Admin::new(&file)?;
            let op = admin
                .call(&MdsTransferLeader { group: copyset, to })
                .await?;
            print_queued(ctx, &op)?;
            if wait.wait {
                let name = copyset_name(copyset);
                (ctx.progress)(&format!("waiting for {to} to lead {name}"));
                wait_until(&admin, copyset, wait.timeout, "the new leader", |i| {
                    i.leader == Some(to)
                })
                .await?;
                (ctx.progress)(&format!("{to} leads {name}"));
            }
            Ok(())
        }),
    }
}
