//! `basalt server ls`: the servers (hosts) of the cluster map with their zone and the
//! chunkservers registered on them.

use super::chunkserver::state_name;
use super::pool::cluster_map;
use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::cluster_map::ClusterMap;
use crate::error::CliError;
use crate::output::{json, table, Format};
use basalt_proto::mds::{ChunkServerSummary, ListChunkServers};
use serde::Serialize;

/// `server` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// List servers: zone, physical pool, chunkservers and their states.
    Ls,
}

/// A chunkserver of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerChunkServer {
    /// Id.
    pub id: u32,
    /// online, unstable or offline.
    pub state: &'static str,
}

/// A server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerDoc {
    /// Name.
    pub name: String,
    /// Zone.
    pub zone: String,
    /// Physical pool of the zone.
    pub physical_pool: String,
    /// Its chunkservers.
    pub chunkservers: Vec<ServerChunkServer>,
}

/// Join the map's servers with the chunkservers registered on them.
pub fn server_docs(map: &ClusterMap, css: &[ChunkServerSummary]) -> Vec<ServerDoc> {
    map.server
        .iter()
        .map(|s| ServerDoc {
            name: s.name.clone(),
            zone: s.zone.clone(),
            physical_pool: map
                .zone
                .iter()
                .find(|z| z.name == s.zone)
                .map(|z| z.physical_pool.clone())
                .unwrap_or_default(),
            chunkservers: css
                .iter()
                .filter(|c| c.server == s.name)
                .map(|c| ServerChunkServer {
                    id: c.id.0,
                    state: state_name(c.state),
                })
                .collect(),
        })
        .collect()
}

/// Print servers.
pub fn print_servers(ctx: &mut Ctx<'_>, docs: &[ServerDoc]) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, &docs)?);
    }
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            let css = d
                .chunkservers
                .iter()
                .map(|c| format!("cs{} ({})", c.id, c.state))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                d.name.clone(),
                d.zone.clone(),
                d.physical_pool.clone(),
                if css.is_empty() { "-".into() } else { css },
            ]
        })
        .collect();
    Ok(table(
        ctx.out,
        &["SERVER", "ZONE", "PHYSICAL-POOL", "CHUNKSERVERS"],
        &rows,
    )?)
}

/// Run a `server` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Ls => {
            let docs = block_on(async {
                let admin = Admin::new(&file)?;
                let map = cluster_map(&admin).await?;
                let css = admin.call(&ListChunkServers {}).await?;
                Ok(server_docs(&map, &css))
            })?;
            print_servers(ctx, &docs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_map::Syntax;
    use crate::commands::test_ctx;

    #[test]
    fn servers_render_as_the_snapshot() {
        let mut text = String::from("[[physical-pool]]\nname = \"pool-1\"\n");
        for i in 1..=4 {
            text.push_str(&format!(
                "[[zone]]\nname = \"zone-{i}\"\nphysical-pool = \"pool-1\"\n\
                 [[server]]\nname = \"host-{i}\"\nzone = \"zone-{i}\"\n"
            ));
        }
        let map = ClusterMap::parse(&text, Syntax::Toml).unwrap();
        let docs = server_docs(&map, &super::super::chunkserver::tests::sample());
        assert!(docs[3].chunkservers.is_empty());
        let out = test_ctx(Format::Plain, |ctx| print_servers(ctx, &docs));
        crate::snapshot::assert_snapshot("server-ls.txt", &out);
    }
}
