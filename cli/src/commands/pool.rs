//! `basalt pool ls`: logical pools as the MDS lists them (`ListPools`), with their
//! copysets' health and the physical pool's space.

use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::cluster_map::{ClusterMap, Syntax};
use crate::error::CliError;
use crate::output::{json, table, Format};
use crate::size::format_size_approx;
use basalt_proto::ids::LogicalPoolId;
use basalt_proto::mds::{
    CopysetHealth, CopysetSummary, GetTopology, ListCopysets, ListPools, PoolSummary,
};
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
    /// List logical pools: id, physical pool, replicas, copysets by health, space.
    Ls,
}

/// The cluster's map as the MDS renders it.
pub async fn cluster_map(admin: &Admin) -> Result<ClusterMap, CliError> {
    let text = admin.call(&GetTopology {}).await?.toml;
    ClusterMap::parse(&text, Syntax::Toml).map_err(|reason| CliError::BadAnswer { reason })
}

/// The ids of every logical pool, as the MDS lists them.
pub async fn pool_ids(admin: &Admin) -> Result<Vec<LogicalPoolId>, CliError> {
    Ok(admin
        .call(&ListPools {})
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect())
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
    /// Minimum scatter width (0: none).
    pub scatter_width: u32,
    /// Copysets.
    pub copysets: u32,
    /// Healthy copysets.
    pub healthy: usize,
    /// Degraded copysets.
    pub degraded: usize,
    /// Leaderless copysets.
    pub leaderless: usize,
    /// Bytes used on the physical pool's chunkservers.
    pub used_bytes: u64,
    /// Bytes of the physical pool's chunkservers.
    pub total_bytes: u64,
    /// Segment allocation is refused above this usage, percent.
    pub usage_limit_percent: u64,
}

/// Build the documents.
pub fn pool_docs(pools: &[PoolSummary], copysets: &[CopysetSummary]) -> Vec<PoolDoc> {
    pools
        .iter()
        .map(|p| {
            let mine: Vec<_> = copysets.iter().filter(|c| c.group.pool() == p.id).collect();
            let n = |h| mine.iter().filter(|c| c.health == h).count();
            PoolDoc {
                id: p.id.0,
                name: p.name.clone(),
                physical_pool: p.physical_pool.clone(),
                replicas: p.replicas,
                copysets_per_chunkserver: p.copysets_per_chunkserver,
                scatter_width: p.scatter_width,
                copysets: p.copysets,
                healthy: n(CopysetHealth::Healthy),
                degraded: n(CopysetHealth::Degraded),
                leaderless: n(CopysetHealth::Leaderless),
                used_bytes: p.used_bytes,
                total_bytes: p.total_bytes,
                usage_limit_percent: p.usage_limit_percent,
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
                d.scatter_width.to_string(),
                format!(
                    "{} healthy, {} degraded, {} leaderless",
                    d.healthy, d.degraded, d.leaderless
                ),
                format!(
                    "{}/{} (limit {}%)",
                    format_size_approx(d.used_bytes),
                    format_size_approx(d.total_bytes),
                    d.usage_limit_percent
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
            "SCATTER",
            "HEALTH",
            "USED/TOTAL",
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
                let pools = admin.call(&ListPools {}).await?;
                let ids: Vec<_> = pools.iter().map(|p| p.id).collect();
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
        let pool = |id: u32, name: &str, copysets| PoolSummary {
            id: LogicalPoolId(id),
            name: name.into(),
            physical_pool: "p".into(),
            replicas: 3,
            copysets_per_chunkserver: 100,
            scatter_width: 0,
            copysets,
            used_bytes: 3 << 30,
            total_bytes: 300 << 30,
            usage_limit_percent: 85,
        };
        // Ids come from the MDS, not from the order: pool 7 keeps its id.
        let pools = vec![pool(1, "blocks", 2), pool(7, "cold", 1)];
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
            cs(7, 1, CopysetHealth::Leaderless),
        ];
        let docs = pool_docs(&pools, &copysets);
        assert_eq!(
            (docs[0].copysets, docs[0].healthy, docs[0].degraded),
            (2, 1, 1)
        );
        assert_eq!(
            (docs[1].id, docs[1].copysets, docs[1].leaderless),
            (7, 1, 1)
        );
        for (format, name) in [
            (Format::Plain, "pool-ls.txt"),
            (Format::Json, "pool-ls.json"),
        ] {
            let text = test_ctx(format, |ctx| print_pools(ctx, &docs));
            crate::snapshot::assert_snapshot(name, &text);
        }
    }
}
