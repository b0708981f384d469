//! `basalt pool ls`: logical pools with their copysets' health.

use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::cluster_map::{ClusterMap, LogicalPoolEntry, Syntax};
use crate::error::CliError;
use crate::output::{json, table, Format};
use basalt_proto::ids::LogicalPoolId;
use basalt_proto::mds::{CopysetHealth, CopysetSummary, GetTopology, ListCopysets};
use serde::Serialize;

/// `pool` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// List logical pools: id, physical pool, replicas, copysets by health.
    Ls,
}

/// The cluster's map as the MDS renders it.
pub async fn cluster_map(admin: &Admin) -> Result<ClusterMap, CliError> {
    let text = admin.call(&GetTopology {}).await?.toml;
    ClusterMap::parse(&text, Syntax::Toml).map_err(|reason| CliError::BadAnswer { reason })
}

/// The logical pools with their ids.
///
/// The MDS numbers logical pools 1, 2, ... in the order maps add them, never removes one,
/// and renders its map in id order, so the i-th logical pool of the map is pool i + 1.
pub fn pool_ids(map: &ClusterMap) -> Vec<(LogicalPoolId, LogicalPoolEntry)> {
    map.logical_pool
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                LogicalPoolId(u32::try_from(i + 1).unwrap_or(u32::MAX)),
                e.clone(),
            )
        })
        .collect()
}

/// Every copyset of the given pools, pool by pool.
pub async fn copysets_of(
    admin: &Admin,
    pools: &[LogicalPoolId],
) -> Result<Vec<CopysetSummary>, CliError> {
    let mut all = Vec::new();
    for p in pools {
        all.extend(admin.call(&ListCopysets { pool: *p }).await?);
    }
    Ok(all)
}

/// One logical pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolDoc {
    /// Id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Physical pool.
    pub physical_pool: String,
    /// Replicas per copyset.
    pub replicas: u8,
    /// Copysets per chunkserver (placement target).
    pub copysets_per_chunkserver: u32,
    /// Copysets.
    pub copysets: usize,
    /// Healthy copysets.
    pub healthy: usize,
    /// Degraded copysets.
    pub degraded: usize,
    /// Leaderless copysets.
    pub leaderless: usize,
}

/// Build the documents.
pub fn pool_docs(
    pools: &[(LogicalPoolId, LogicalPoolEntry)],
    copysets: &[CopysetSummary],
) -> Vec<PoolDoc> {
    pools
        .iter()
        .map(|(id, e)| {
            let mine: Vec<_> = copysets.iter().filter(|c| c.group.pool() == *id).collect();
            let n = |h| mine.iter().filter(|c| c.health == h).count();
            PoolDoc {
                id: id.0,
                name: e.name.clone(),
                physical_pool: e.physical_pool.clone(),
                replicas: e.replicas,
                copysets_per_chunkserver: e.copysets_per_chunkserver,
                copysets: mine.len(),
                healthy: n(CopysetHealth::Healthy),
                degraded: n(CopysetHealth::Degraded),
                leaderless: n(CopysetHealth::Leaderless),
            }
        })
        .collect()
}

/// Print pools.
pub fn print_pools(ctx: &mut Ctx<'_>, docs: &[PoolDoc]) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, &docs)?);
    }
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.name.clone(),
                d.physical_pool.clone(),
                d.replicas.to_string(),
                d.copysets.to_string(),
                format!(
                    "{} healthy, {} degraded, {} leaderless",
                    d.healthy, d.degraded, d.leaderless
                ),
            ]
        })
        .collect();
    Ok(table(
        ctx.out,
        &[
            "ID",
            "NAME",
            "PHYSICAL-POOL",
            "REPLICAS",
            "COPYSETS",
            "HEALTH",
        ],
        &rows,
    )?)
}

/// Run a `pool` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let file = client_file(ctx)?;
    match args.verb {
        Verb::Ls => {
            let docs = block_on(async {
                let admin = Admin::new(&file)?;
                let pools = pool_ids(&cluster_map(&admin).await?);
                let ids: Vec<_> = pools.iter().map(|(id, _)| *id).collect();
                let copysets = copysets_of(&admin, &ids).await?;
                Ok(pool_docs(&pools, &copysets))
            })?;
            print_pools(ctx, &docs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_ctx;
    use basalt_proto::ids::{ChunkServerId, CopysetId, Epoch, GroupId};

    #[test]
    fn pools_count_their_copysets_by_health() {
        let map = ClusterMap::parse(
            "[[physical-pool]]\nname = \"p\"\n[[zone]]\nname = \"z\"\nphysical-pool = \"p\"\n\
             [[logical-pool]]\nname = \"blocks\"\nphysical-pool = \"p\"\nreplicas = 1\n\
             [[logical-pool]]\nname = \"cold\"\nphysical-pool = \"p\"\nreplicas = 1\n",
            Syntax::Toml,
        )
        .unwrap();
        let pools = pool_ids(&map);
        assert_eq!(pools[1].0, LogicalPoolId(2));
        let cs = |pool, n, health| CopysetSummary {
            group: GroupId::of(LogicalPoolId(pool), CopysetId(n)),
            epoch: Epoch(1),
            peers: vec![ChunkServerId(1)],
            leader: Some(ChunkServerId(1)),
            health,
        };
        let copysets = vec![
            cs(1, 1, CopysetHealth::Healthy),
            cs(1, 2, CopysetHealth::Degraded),
            cs(2, 1, CopysetHealth::Leaderless),
        ];
        let docs = pool_docs(&pools, &copysets);
        assert_eq!(
            (docs[0].copysets, docs[0].healthy, docs[0].degraded),
            (2, 1, 1)
        );
        assert_eq!((docs[1].copysets, docs[1].leaderless), (1, 1));
        let text = test_ctx(Format::Plain, |ctx| print_pools(ctx, &docs));
        crate::snapshot::assert_snapshot("pool-ls.txt", &text);
    }
}
