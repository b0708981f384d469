//! Drain marks, logical pool listing and the cluster map dry run on [`MdsState`].

use super::{refused, MdsState};
use crate::admin;
use crate::error::Result;
use crate::keys;
use crate::store::{CmpOp, CmpTarget, Compare, Op, Txn};
use crate::topology::clustermap::ClusterMap;
use crate::topology::plan::plan;
use basalt_proto::mds::{DrainChunkServer, DrainStatus, PoolSummary, TopologyPlan};
use serde::{Deserialize, Serialize};

/// The value under [`keys::drain`]: the chunkserver is being retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRecord {
    /// The chunkserver.
    pub id: basalt_proto::ids::ChunkServerId,
    /// When it was marked, ms since the epoch.
    pub since_ms: u64,
}

impl MdsState {
    /// Mark a chunkserver draining (or, with `undo`, back in service) in one fenced
    /// transaction guarded by the chunkserver record's existence; returns its status.
    pub async fn drain_chunkserver(
        &self,
        req: &DrainChunkServer,
        now_ms: u64,
    ) -> Result<DrainStatus> {
        let mut g = self.inner.lock().await;
        let inner = &mut *g;
        if admin::check_drain(&inner.topo, req).map_err(refused)? {
            let k = keys::drain(req.id);
            let exists = Compare {
                key: keys::chunkserver(req.id),
                op: CmpOp::Greater,
                target: CmpTarget::Version(0),
            };
            let txn = if req.undo {
                Txn::new().when(exists).then(Op::delete(k))
            } else {
                let rec = DrainRecord {
                    id: req.id,
                    since_ms: now_ms,
                };
                Txn::new().when(exists).then(Op::put(k, keys::encode(&rec)))
            };
            self.commit(txn).await?;
            if req.undo {
                inner.topo.draining.remove(&req.id);
            } else {
                inner.topo.draining.insert(req.id);
            }
            tracing::info!(cs = %req.id, undo = req.undo, "chunkserver drain mark changed");
        }
        let r = inner
            .ops
            .reconcile(&inner.topo, now_ms, &self.cfg.scheduler);
        self.count_reconciled(&r);
        Ok(admin::drain_status(&inner.topo, &inner.ops, req.id))
    }

    /// Drain status of every draining chunkserver.
    pub async fn list_drains(&self) -> Vec<DrainStatus> {
        let g = self.inner.lock().await;
        admin::list_drains(&g.topo, &g.ops)
    }

    /// Every logical pool.
    pub async fn list_pools(&self) -> Vec<PoolSummary> {
        let g = self.inner.lock().await;
        admin::list_pools(&g.topo, self.cfg.pool_usage_limit_percent)
    }

    /// What applying cluster map TOML would change; nothing is written.
    pub async fn plan_topology(&self, text: &str) -> Result<TopologyPlan> {
        let map = ClusterMap::parse(text)?;
        Ok(plan(&map, &self.inner.lock().await.topo)?)
    }
}
