//! [`MdsState`]: topology, namespace and operators, persisted through a [`MetaStore`].
//!
//! The state lives in memory (the MDS's cache) and etcd is the source of truth at load.
//! Every change is validated in memory first (sans-IO logic), written to the store in
//! one transaction (guarded by `absent`/`mod_revision` compares, and by the leader fence
//! when the store is a [`crate::store::fence::FencedStore`]), and applied in memory only
//! after the store accepted it. One async mutex serialises mutations: the active MDS is
//! the only writer, and an etcd round trip is ~1 ms.
//!
//! Not stored: sessions (see [`crate::namespace`]), chunkserver liveness (recomputed from
//! heartbeats; after a load every chunkserver starts as just seen), leader hints, and
//! pending operators (recomputed by the scheduler).

mod drain;

use crate::access::{Access, OwnerRecord};
use crate::admin;
use crate::copyset_sync::{self, CreateConfig, CreateTracker, Reported};
use crate::error::{Error, Result};
use crate::heartbeat;
use crate::keys;
use crate::metrics::{MdsMetrics, Observation, OperatorEvent};
use crate::namespace::Namespace;
use crate::placement::{place, place_checked, pools_to_place, PlacementPlan};
use crate::scheduler::Reconciled;
use crate::scheduler::{schedule, OperatorSet, PendingOp, SchedulerConfig};
use crate::store::{list_all, next_ids, Compare, MetaStore, Op, Txn, MAX_TXN_OPS};
use crate::topology::clustermap::{diff, ClusterMap, TopologyDiff};
use crate::topology::liveness::{self, LivenessConfig};
use crate::topology::registration::register;
use crate::topology::{ChunkServer, CopysetRecord, LogicalPool, OnlineState, Topology};
use basalt_proto::credential::{AuthOp, Verifier};
use basalt_proto::heartbeat::{Heartbeat, HeartbeatReply, Operator};
use basalt_proto::ids::{
    ChunkId, ChunkServerId, CopysetId, GroupId, LogicalPoolId, VolumeId, CHUNKS_PER_SEGMENT,
};
use basalt_proto::mds::{
    AuthNonce, ChunkServerSummary, ClusterStatusReply, CopysetInfo, CopysetSummary, CreateOwner,
    CreateVolume, DeleteOwner, DeleteVolume, ExtendVolume, GetSegment, OpenVolume, Opened,
    OperatorState, OwnerInfo, PurgeVolume, Purged, RegisterChunkServer, Registered, RenameVolume,
    SegmentInfo, SetOwnerKey, TopologyChanges, VolumeInfo,
};
use basalt_proto::status::{MdsError, PeerAddr};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Settings of the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct StateConfig {
    /// Session lease, ms.
    pub session_lease_ms: u64,
    /// Refuse segment allocation above this pool usage (percent).
    pub pool_usage_limit_percent: u64,
    /// Chunk ids fetched from the counter at once (a multiple of 64 is best).
    pub chunk_id_batch: u64,
    /// Page size of listings at load.
    pub load_page: usize,
    /// Chunkserver liveness.
    pub liveness: LivenessConfig,
    /// Scheduler.
    pub scheduler: SchedulerConfig,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            session_lease_ms: crate::namespace::DEFAULT_LEASE_MS,
            pool_usage_limit_percent: 85,
            chunk_id_batch: 1024,
            load_page: 500,
            liveness: LivenessConfig::default(),
            scheduler: SchedulerConfig::default(),
        }
    }
}

/// The cluster record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// Cluster id handed to chunkservers at registration.
    pub id: String,
}

struct Inner {
    topo: Topology,
    ns: Namespace,
    ops: OperatorSet,
    chunk_ids: VecDeque<ChunkId>,
    rng: rand::rngs::StdRng,
    cluster: ClusterRecord,
    /// Copysets in each chunkserver's latest heartbeat since the load.
    reported: Reported,
    /// Placement plans of logical pools (see [`PlacementPlan`]).
    plans: std::collections::BTreeMap<LogicalPoolId, PlacementPlan>,
    /// Volume owners, the admin verifier and nonces (see [`crate::access`]).
    access: Access,
}

/// The MDS state.
pub struct MdsState {
    store: Arc<dyn MetaStore>,
    cfg: StateConfig,
    inner: Mutex<Inner>,
    metrics: MdsMetrics,
    /// Sends chunk deletes for purges (set by the daemon once active).
    purger: std::sync::OnceLock<Arc<dyn crate::recycle::PurgeRunner>>,
}

impl std::fmt::Debug for MdsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdsState")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

async fn load_all<T: serde::de::DeserializeOwned>(
    store: &dyn MetaStore,
    prefix: &str,
    page: usize,
) -> Result<Vec<(Vec<u8>, T)>> {
    let kvs = list_all(store, prefix.as_bytes(), page).await?;
    kvs.into_iter()
        .map(|kv| Ok((kv.key.clone(), keys::decode(&kv.key, &kv.value)?)))
        .collect()
}

fn refused(e: MdsError) -> Error {
    Error::Request(e)
}

impl MdsState {
    /// Load everything from `store` (a fenced store for the active MDS). `now_ms` counts
    /// as every chunkserver's last heartbeat.
    pub async fn load(store: Arc<dyn MetaStore>, cfg: StateConfig, now_ms: u64) -> Result<Self> {
        let s = &*store;
        let page = cfg.load_page.max(1);
        let mut topo = Topology::default();
        for (_, v) in load_all::<crate::topology::PhysicalPool>(s, keys::PPOOL, page).await? {
            topo.ppools.insert(v.id, v);
        }
        for (_, v) in load_all::<crate::topology::Zone>(s, keys::ZONE, page).await? {
            topo.zones.insert(v.id, v);
        }
        for (_, v) in load_all::<crate::topology::Server>(s, keys::SERVER, page).await? {
            topo.servers.insert(v.id, v);
        }
        for (_, mut v) in load_all::<ChunkServer>(s, keys::CHUNKSERVER, page).await? {
            v.last_seen_ms = now_ms;
            v.state = OnlineState::Online;
            topo.chunkservers.insert(v.id, v);
        }
        for (_, v) in load_all::<LogicalPool>(s, keys::LPOOL, page).await? {
            topo.lpools.insert(v.id, v);
        }
        for (_, v) in load_all::<CopysetRecord>(s, keys::COPYSET, page).await? {
            topo.copysets.insert(v.group, v);
        }
        for (_, v) in load_all::<drain::DrainRecord>(s, keys::DRAIN, page).await? {
            topo.draining.insert(v.id);
        }
        let mut plans = std::collections::BTreeMap::new();
        for (k, v) in load_all::<PlacementPlan>(s, keys::PLACEMENT, page).await? {
            let id = k
                .strip_prefix(keys::PLACEMENT.as_bytes())
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(|b| LogicalPoolId(u32::from_be_bytes(b)))
                .ok_or_else(|| Error::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "bad placement key".into(),
                })?;
            plans.insert(id, v);
        }
        let mut ns = Namespace::new(cfg.session_lease_ms);
        for (_, v) in load_all::<VolumeInfo>(s, keys::VOLUME, page).await? {
            ns.commit_volume(v);
        }
        for (_, v) in load_all::<crate::recycle::RecycledVolume>(s, keys::RECYCLE, page).await? {
            ns.commit_recycled(v);
        }
        let mut cursor_sizes = std::collections::HashMap::new();
        for (k, seg) in load_all::<SegmentInfo>(s, keys::SEGMENT, page).await? {
            let Some((vol, idx)) = keys::parse_segment(&k) else {
                return Err(Error::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "bad segment key".into(),
                });
            };
            let n = *cursor_sizes
                .entry(seg.pool)
                .or_insert_with(|| topo.copysets_of(seg.pool).count());
            ns.commit_segment(vol, idx, seg, n);
        }
        let mut access = Access::new(None);
        for (_, v) in load_all::<OwnerRecord>(s, keys::OWNER, page).await? {
            access.commit_owner(v);
        }
        let mut rng = rand::rngs::StdRng::from_entropy();
        let cluster = match s.get(keys::CLUSTER.as_bytes()).await? {
            Some(kv) => keys::decode(&kv.key, &kv.value)?,
            None => {
                let rec = ClusterRecord {
                    id: crate::topology::registration::new_token(&mut rng),
                };
                let txn = Txn::new()
                    .when(Compare::absent(keys::CLUSTER))
                    .then(Op::put(keys::CLUSTER, keys::encode(&rec)));
                if !s.txn(txn).await?.succeeded {
                    let kv = s
                        .get(keys::CLUSTER.as_bytes())
                        .await?
                        .ok_or(Error::Contention {
                            key: keys::CLUSTER.into(),
                            attempts: 1,
                        })?;
                    keys::decode(&kv.key, &kv.value)?
                } else {
                    rec
                }
            }
        };
        tracing::info!(
            volumes = ns.list().len(),
            segments = ns.segment_count(),
            copysets = topo.copysets.len(),
            chunkservers = topo.chunkservers.len(),
            "MDS state loaded"
        );
        Ok(Self {
            store,
            inner: Mutex::new(Inner {
                topo,
                ns,
                ops: OperatorSet::default(),
                chunk_ids: VecDeque::new(),
                rng,
                cluster,
                reported: Reported::new(),
                plans,
                access,
            }),
            cfg,
            metrics: MdsMetrics::new(),
            purger: std::sync::OnceLock::new(),
        })
    }

    /// Enforce volume access control with this admin verifier (`None`: allow everything).
    pub fn with_admin_verifier(mut self, admin: Option<Verifier>) -> Self {
        self.inner.get_mut().access.set_admin(admin);
        self
    }

    /// Count operator events into `metrics` (shared with the service and daemon).
    pub fn with_metrics(mut self, metrics: MdsMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn count_reconciled(&self, r: &Reconciled) {
        self.metrics
            .operators(OperatorEvent::completed, r.completed.len());
        self.metrics
            .operators(OperatorEvent::timed_out, r.timed_out.len());
    }

    /// Write a transaction; a failed compare is contention on the first guarded key.
    async fn commit(&self, txn: Txn) -> Result<()> {
        let first = txn
            .compares
            .first()
            .map(|c| String::from_utf8_lossy(&c.key).into_owned())
            .unwrap_or_default();
        if self.store.txn(txn).await?.succeeded {
            Ok(())
        } else {
            Err(Error::Contention {
                key: first,
                attempts: 1,
            })
        }
    }

    /// The cluster id.
    pub async fn cluster_id(&self) -> String {
        self.inner.lock().await.cluster.id.clone()
    }

    /// A copy of the topology (for inspection and tests).
    pub async fn topology(&self) -> Topology {
        self.inner.lock().await.topo.clone()
    }

    // ---------------- topology ----------------

    /// Apply a cluster map: add what is missing (one transaction per 128 keys).
    pub async fn apply_cluster_map(&self, map: &ClusterMap) -> Result<TopologyDiff> {
        let mut g = self.inner.lock().await;
        let d = diff(map, &g.topo)?;
        let mut ops: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        ops.extend(
            d.ppools
                .iter()
                .map(|v| (keys::ppool(v.id), keys::encode(v))),
        );
        ops.extend(d.zones.iter().map(|v| (keys::zone(v.id), keys::encode(v))));
        ops.extend(
            d.servers
                .iter()
                .map(|v| (keys::server(v.id), keys::encode(v))),
        );
        ops.extend(
            d.lpools
                .iter()
                .map(|v| (keys::lpool(v.id), keys::encode(v))),
        );
        for chunk in ops.chunks(MAX_TXN_OPS / 2) {
            let mut txn = Txn::new();
            for (k, v) in chunk {
                txn = txn
                    .when(Compare::absent(k.clone()))
                    .then(Op::put(k.clone(), v.clone()));
            }
            self.commit(txn).await?;
        }
        d.apply_to(&mut g.topo);
        Ok(d)
    }

    /// Register a chunkserver.
    pub async fn register(&self, req: &RegisterChunkServer, now_ms: u64) -> Result<Registered> {
        let mut g = self.inner.lock().await;
        let inner = &mut *g;
        let r = register(&inner.topo, req, now_ms, &mut inner.rng).map_err(refused)?;
        let key = keys::chunkserver(r.chunkserver.id);
        let guard = if r.new {
            Compare::absent(key.clone())
        } else {
            Compare {
                key: key.clone(),
                op: crate::store::CmpOp::Greater,
                target: crate::store::CmpTarget::Version(0),
            }
        };
        self.commit(
            Txn::new()
                .when(guard)
                .then(Op::put(key, keys::encode(&r.chunkserver))),
        )
        .await?;
        tracing::info!(cs = %r.chunkserver.id, new = r.new, server = %req.server, "chunkserver registered");
        let out = Registered {
            id: r.chunkserver.id,
            token: r.chunkserver.token.clone(),
            cluster: inner.cluster.id.clone(),
        };
        inner
            .topo
            .chunkservers
            .insert(r.chunkserver.id, r.chunkserver);
        Ok(out)
    }

    /// Logical pools whose copysets the daemon should create now
    /// ([`crate::placement::pools_to_place`]).
    pub async fn pools_to_place(&self, min_online: usize) -> Vec<LogicalPoolId> {
        let g = self.inner.lock().await;
        pools_to_place(&g.topo, &g.plans, min_online)
    }

    /// The placement plan of a logical pool, once its copyset creation started.
    pub async fn placement_plan(&self, pool: LogicalPoolId) -> Option<PlacementPlan> {
        self.inner.lock().await.plans.get(&pool).cloned()
    }

    /// Create the copysets of a logical pool over its online chunkservers; returns how
    /// many were written. The placement's inputs (`seed`, members) are stored first as a
    /// [`PlacementPlan`], then the copysets in batches: if this MDS dies or is deposed
    /// half-way, a later call (by any MDS) recomputes the same placement from the plan
    /// and writes only the missing copysets. Idempotent: a complete pool, or one with
    /// copysets but no plan (placed before plans existed), is left alone (returns 0).
    pub async fn create_copysets(&self, pool: LogicalPoolId, seed: u64) -> Result<usize> {
        let mut g = self.inner.lock().await;
        let lp = g.topo.lpools.get(&pool).cloned().ok_or_else(|| {
            refused(MdsError::InvalidTopology {
                reason: format!("unknown logical pool {pool}"),
            })
        })?;
        let plan = match g.plans.get(&pool) {
            Some(p) => p.clone(),
            None if g.topo.copysets_of(pool).next().is_some() => return Ok(0),
            None => {
                let members = g
                    .topo
                    .chunkservers_in(lp.physical)
                    .into_iter()
                    .filter(|c| crate::placement::placeable(&g.topo, *c))
                    .filter_map(|c| Some((c, g.topo.zone_of(c)?)))
                    .collect();
                let mut plan = PlacementPlan {
                    seed,
                    members,
                    copysets: 0,
                };
                let (placed, seed) = place_checked(
                    &plan.request(pool, lp.replicas, lp.copysets_per_chunkserver),
                    lp.scatter_width,
                )
                .map_err(refused)?;
                plan.seed = seed;
                let n = placed.len();
                plan.copysets = u32::try_from(n).map_err(|_| {
                    refused(MdsError::InvalidTopology {
                        reason: format!("logical pool {pool}: {n} copysets"),
                    })
                })?;
                let k = keys::placement(pool);
                self.commit(
                    Txn::new()
                        .when(Compare::absent(k.clone()))
                        .then(Op::put(k, keys::encode(&plan))),
                )
                .await?;
                g.plans.insert(pool, plan.clone());
                plan
            }
        };
        let placed: Vec<CopysetRecord> =
            place(&plan.request(pool, lp.replicas, lp.copysets_per_chunkserver))
                .map_err(refused)?
                .into_iter()
                .filter(|c| !g.topo.copysets.contains_key(&c.group))
                .collect();
        let mut n = 0;
        for chunk in placed.chunks(MAX_TXN_OPS / 2) {
            let mut txn = Txn::new();
            for c in chunk {
                let k = keys::copyset(c.group);
                txn = txn
                    .when(Compare::absent(k.clone()))
                    .then(Op::put(k, keys::encode(c)));
            }
            self.commit(txn).await?;
            // In memory batch by batch: a failed later batch leaves memory equal to etcd.
            for c in chunk {
                g.topo.copysets.insert(c.group, c.clone());
            }
            n += chunk.len();
        }
        if n > 0 {
            tracing::info!(%pool, copysets = n, total = plan.copysets, "copysets created");
        }
        Ok(n)
    }

    /// Handle a heartbeat: liveness, membership by epoch, operators and strays in the reply.
    pub async fn heartbeat(&self, hb: &Heartbeat, now_ms: u64) -> Result<HeartbeatReply> {
        let mut g = self.inner.lock().await;
        let inner = &mut *g;
        let before: Vec<(GroupId, Option<CopysetRecord>)> = hb
            .copysets
            .iter()
            .map(|r| (r.group, inner.topo.copysets.get(&r.group).cloned()))
            .collect();
        let cs_before = inner.topo.chunkservers.get(&hb.id).cloned();
        let out = heartbeat::handle(&mut inner.topo, hb, now_ms).map_err(refused)?;
        let mut txn = Txn::new();
        for rec in &out.changed {
            txn = txn.then(Op::put(keys::copyset(rec.group), keys::encode(rec)));
        }
        if out.addr_changed {
            if let Some(cs) = inner.topo.chunkservers.get(&hb.id) {
                txn = txn.then(Op::put(keys::chunkserver(hb.id), keys::encode(cs)));
            }
        }
        if !txn.ops.is_empty() {
            if let Err(e) = self.commit(txn).await {
                // Undo the in-memory changes so memory never runs ahead of the store.
                for (grp, rec) in before {
                    match rec {
                        Some(r) => inner.topo.copysets.insert(grp, r),
                        None => inner.topo.copysets.remove(&grp),
                    };
                }
                if let Some(cs) = cs_before {
                    inner.topo.chunkservers.insert(hb.id, cs);
                }
                return Err(e);
            }
        }
        inner
            .reported
            .insert(hb.id, hb.copysets.iter().map(|r| r.group).collect());
        let r = inner
            .ops
            .reconcile(&inner.topo, now_ms, &self.cfg.scheduler);
        self.count_reconciled(&r);
        let strays = out
            .strays
            .into_iter()
            .filter(|grp| !inner.ops.adds(*grp, hb.id))
            .collect();
        Ok(HeartbeatReply {
            operators: inner.ops.for_leader(&inner.topo, hb.id),
            strays,
        })
    }

    /// One scheduling round at `now_ms`: refresh liveness, drop finished/expired
    /// operators, add new ones. Returns the new operators.
    pub async fn tick(&self, now_ms: u64) -> Vec<Operator> {
        let mut g = self.inner.lock().await;
        let inner = &mut *g;
        liveness::refresh(&mut inner.topo, now_ms, &self.cfg.liveness);
        let r = inner
            .ops
            .reconcile(&inner.topo, now_ms, &self.cfg.scheduler);
        self.count_reconciled(&r);
        let new = schedule(&inner.topo, &inner.ops, now_ms, &self.cfg.scheduler);
        self.metrics.operators(OperatorEvent::issued, new.len());
        let out = new.iter().map(|p| p.op).collect();
        inner.ops.extend(new);
        out
    }

    /// Which copyset replicas need a `CreateCopyset` now (see [`crate::copyset_sync`]).
    pub async fn plan_creates(
        &self,
        tracker: &CreateTracker,
        now_ms: u64,
        cfg: &CreateConfig,
    ) -> copyset_sync::Plan {
        let g = self.inner.lock().await;
        copyset_sync::plan(&g.topo, &g.reported, tracker, now_ms, cfg)
    }

    /// Snapshot for the metrics' gauges.
    pub async fn observe(&self, now_ms: u64) -> Observation {
        let g = self.inner.lock().await;
        admin::observe(&g.topo, g.ops.len(), now_ms)
    }

    /// Cluster status; `active_mds` is this MDS's advertised address.
    pub async fn cluster_status(&self, active_mds: Option<SocketAddr>) -> ClusterStatusReply {
        let g = self.inner.lock().await;
        admin::cluster_status(&g.topo, g.ops.len(), active_mds)
    }

    /// Every chunkserver.
    pub async fn list_chunkservers(&self) -> Vec<ChunkServerSummary> {
        admin::list_chunkservers(&self.inner.lock().await.topo)
    }

    /// The copysets of a logical pool.
    pub async fn list_copysets(&self, pool: LogicalPoolId) -> Result<Vec<CopysetSummary>> {
        admin::list_copysets(&self.inner.lock().await.topo, pool).map_err(refused)
    }

    /// The topology as cluster map TOML.
    pub async fn topology_toml(&self) -> String {
        admin::render_cluster_map(&admin::to_cluster_map(&self.inner.lock().await.topo))
    }

    /// Parse and apply cluster map TOML; returns what was added.
    pub async fn apply_topology(&self, text: &str) -> Result<TopologyChanges> {
        let map = ClusterMap::parse(text)?;
        let d = self.apply_cluster_map(&map).await?;
        if !d.is_empty() {
            tracing::info!(?d, "cluster map applied");
        }
        Ok(admin::changes(&d))
    }

    /// Queue an operator planned by `plan` after dropping finished ones.
    async fn queue_admin_op(
        &self,
        now_ms: u64,
        plan: impl FnOnce(&Topology, &OperatorSet) -> std::result::Result<PendingOp, MdsError>,
    ) -> Result<Operator> {
        let mut g = self.inner.lock().await;
        let inner = &mut *g;
        let r = inner
            .ops
            .reconcile(&inner.topo, now_ms, &self.cfg.scheduler);
        self.count_reconciled(&r);
        let p = plan(&inner.topo, &inner.ops).map_err(refused)?;
        let op = p.op;
        inner.ops.extend([p]);
        self.metrics.operators(OperatorEvent::issued, 1);
        tracing::info!(group = %op.group, kind = ?op.kind, "admin operator queued");
        Ok(op)
    }

    /// Queue a leader transfer for the copyset leader's next heartbeat.
    pub async fn transfer_leader(
        &self,
        group: GroupId,
        to: ChunkServerId,
        now_ms: u64,
    ) -> Result<Operator> {
        self.queue_admin_op(now_ms, |t, o| {
            admin::plan_transfer_leader(t, o, group, to, now_ms)
        })
        .await
    }

    /// Queue the removal of a peer for the copyset leader's next heartbeat.
    pub async fn remove_peer(
        &self,
        group: GroupId,
        peer: ChunkServerId,
        now_ms: u64,
    ) -> Result<Operator> {
        self.queue_admin_op(now_ms, |t, o| {
            admin::plan_remove_peer(t, o, group, peer, now_ms)
        })
        .await
    }

    /// Pending operators.
    pub async fn list_operators(&self, now_ms: u64) -> Vec<OperatorState> {
        self.inner.lock().await.ops.list(now_ms)
    }

    /// Copyset placements.
    pub async fn get_copysets(&self, groups: &[GroupId]) -> Result<Vec<CopysetInfo>> {
        let g = self.inner.lock().await;
        groups
            .iter()
            .map(|grp| {
                let rec = g
                    .topo
                    .copysets
                    .get(grp)
                    .ok_or(refused(MdsError::CopysetNotFound { group: *grp }))?;
                let peers = rec
                    .peers
                    .iter()
                    .filter_map(|p| {
                        g.topo.chunkservers.get(p).map(|c| PeerAddr {
                            id: *p,
                            addr: c.addr,
                        })
                    })
                    .collect();
                Ok(CopysetInfo {
                    group: rec.group,
                    epoch: rec.epoch,
                    peers,
                    leader: rec.leader,
                })
            })
            .collect()
    }

    // ---------------- namespace ----------------

    /// Create a volume in the first logical pool that has copysets.
    pub async fn create_volume(&self, req: &CreateVolume, now_ms: u64) -> Result<VolumeInfo> {
        let mut g = self.inner.lock().await;
        let op = AuthOp::CreateVolume {
            name: &req.name,
            size: req.size,
            owner: &req.owner,
        };
        g.access
            .authorize_volume(&req.name, &req.owner, req.auth.as_ref(), &op, now_ms)
            .map_err(refused)?;
        let pool = g
            .topo
            .lpools
            .keys()
            .copied()
            .find(|p| g.topo.copysets_of(*p).next().is_some())
            .ok_or(refused(MdsError::NoCopysets))?;
        // Validate before spending an id.
        g.ns.plan_create(req, VolumeId(0), pool, now_ms / 1000)
            .map_err(refused)?;
        let id = next_ids(&*self.store, keys::ID_VOLUME.as_bytes(), 1)
            .await?
            .start;
        let v =
            g.ns.plan_create(req, VolumeId(id), pool, now_ms / 1000)
                .map_err(refused)?;
        let k = keys::volume(v.id);
        self.commit(
            Txn::new()
                .when(Compare::absent(k.clone()))
                .then(Op::put(k, keys::encode(&v))),
        )
        .await?;
        g.ns.commit_volume(v.clone());
        tracing::info!(volume = %v.id, name = %v.name, size = v.size, "volume created");
        Ok(v)
    }

    async fn rewrite_volume(&self, g: &mut Inner, v: VolumeInfo) -> Result<VolumeInfo> {
        let k = keys::volume(v.id);
        let cur = self
            .store
            .get(&k)
            .await?
            .ok_or(refused(MdsError::VolumeNotFound))?;
        self.commit(
            Txn::new()
                .when(Compare::mod_revision(k.clone(), cur.mod_revision))
                .then(Op::put(k, keys::encode(&v))),
        )
        .await?;
        g.ns.commit_volume(v.clone());
        Ok(v)
    }

    /// Check `auth` for `op` on the existing volume `name` (see [`crate::access`]).
    fn authorize_existing(
        g: &mut Inner,
        name: &str,
        auth: Option<&basalt_proto::mds::Credential>,
        op: &AuthOp<'_>,
        now_ms: u64,
    ) -> Result<()> {
        let owner = g.ns.stat(name).map_err(refused)?.owner.clone();
        g.access
            .authorize_volume(name, &owner, auth, op, now_ms)
            .map_err(refused)?;
        Ok(())
    }

    /// Grow a volume.
    pub async fn extend_volume(&self, req: &ExtendVolume, now_ms: u64) -> Result<VolumeInfo> {
        let mut g = self.inner.lock().await;
        let op = AuthOp::ExtendVolume {
            name: &req.name,
            size: req.size,
        };
        Self::authorize_existing(&mut g, &req.name, req.auth.as_ref(), &op, now_ms)?;
        let v = g.ns.plan_extend(&req.name, req.size).map_err(refused)?;
        self.rewrite_volume(&mut g, v).await
    }

    /// Rename a volume.
    pub async fn rename_volume(&self, req: &RenameVolume, now_ms: u64) -> Result<VolumeInfo> {
        let mut g = self.inner.lock().await;
        let op = AuthOp::RenameVolume {
            from: &req.from,
            to: &req.to,
        };
        Self::authorize_existing(&mut g, &req.from, req.auth.as_ref(), &op, now_ms)?;
        let v = g.ns.plan_rename(&req.from, &req.to).map_err(refused)?;
        self.rewrite_volume(&mut g, v).await
    }

    /// Delete a volume: moved to the recycle area in one transaction.
    pub async fn delete_volume(&self, req: &DeleteVolume, now_ms: u64) -> Result<()> {
        let mut g = self.inner.lock().await;
        let op = AuthOp::DeleteVolume { name: &req.name };
        Self::authorize_existing(&mut g, &req.name, req.auth.as_ref(), &op, now_ms)?;
        let v = g.ns.plan_delete(&req.name, now_ms).map_err(refused)?;
        let txn = Txn::new()
            .when(Compare {
                key: keys::volume(v.id),
                op: crate::store::CmpOp::Greater,
                target: crate::store::CmpTarget::Version(0),
            })
            .then(Op::delete(keys::volume(v.id)))
            .then(Op::put(
                keys::recycled(v.id),
                keys::encode(&crate::recycle::RecycledVolume {
                    volume: v.clone(),
                    deleted_s: now_ms / 1000,
                }),
            ));
        self.commit(txn).await?;
        g.ns.commit_delete(v.id, now_ms / 1000);
        tracing::info!(volume = %v.id, name = %v.name, "volume deleted (recycled)");
        Ok(())
    }

    /// Use `purger` for [`Self::purge_volume`] (the first one set stays).
    pub fn set_purger(&self, purger: Arc<dyn crate::recycle::PurgeRunner>) {
        let _ = self.purger.set(purger);
    }

    /// Purge the recycled volumes named `req.name` (see [`crate::recycle`]).
    pub async fn purge_volume(&self, req: &PurgeVolume, now_ms: u64) -> Result<Purged> {
        let ids = self.purge_candidates(req, now_ms).await?;
        let purger = self
            .purger
            .get()
            .ok_or(refused(MdsError::StoreUnavailable))?;
        purger.purge(self, &ids).await
    }

    /// Recycled volumes a purge of `req.name` selects, after checking `req.auth` against
    /// the volume's owner (or the admin) as a delete does.
    pub async fn purge_candidates(&self, req: &PurgeVolume, now_ms: u64) -> Result<Vec<VolumeId>> {
        let mut g = self.inner.lock().await;
        let inner = &mut *g;
        let vols = crate::recycle::select_by_name(
            &inner.ns.recycle_records(),
            inner.ns.stat(&req.name).ok(),
            &req.name,
        )
        .map_err(refused)?;
        let op = AuthOp::PurgeVolume { name: &req.name };
        for v in &vols {
            inner
                .access
                .authorize_volume(&req.name, &v.owner, req.auth.as_ref(), &op, now_ms)
                .map_err(refused)?;
        }
        Ok(vols.iter().map(|v| v.id).collect())
    }

    /// Recycled volumes deleted at least `retention_s` before `now_s`.
    pub async fn due_purges(&self, now_s: u64, retention_s: u64) -> Vec<VolumeId> {
        let g = self.inner.lock().await;
        crate::recycle::due(&g.ns.recycle_records(), now_s, retention_s)
    }

    /// Every allocated chunk of recycled volume `volume`, with its copyset's peers
    /// (leader hint first). A volume not in the recycle area is refused.
    pub async fn purge_targets(
        &self,
        volume: VolumeId,
    ) -> Result<Vec<crate::recycle::ChunkTarget>> {
        let g = self.inner.lock().await;
        if g.ns.recycled_volume(volume).is_none() {
            return Err(refused(MdsError::VolumeNotFound));
        }
        let mut out = Vec::new();
        for (_, seg) in g.ns.segments_of(volume) {
            for (copyset, chunk) in &seg.chunks {
                let group = GroupId::of(seg.pool, *copyset);
                let (epoch, peers) = match g.topo.copysets.get(&group) {
                    Some(rec) => {
                        let mut ids = rec.peers.clone();
                        if let Some(l) = rec.leader.filter(|l| ids.contains(l)) {
                            ids.retain(|p| *p != l);
                            ids.insert(0, l);
                        }
                        let addrs = ids
                            .iter()
                            .filter_map(|p| g.topo.chunkservers.get(p).map(|c| c.addr))
                            .collect();
                        (rec.epoch, addrs)
                    }
                    None => (basalt_proto::ids::Epoch(0), Vec::new()),
                };
                out.push(crate::recycle::ChunkTarget {
                    group,
                    chunk: *chunk,
                    epoch,
                    peers,
                });
            }
        }
        Ok(out)
    }

    /// Remove a purged volume's records: its segment records (batched fenced
    /// transactions), then its recycle record. Call only once every chunk is deleted.
    /// Idempotent: records already gone are skipped.
    pub async fn finish_purge(&self, volume: VolumeId) -> Result<()> {
        let mut g = self.inner.lock().await;
        if g.ns.recycled_volume(volume).is_none() {
            return Ok(());
        }
        let indexes: Vec<u64> = g.ns.segments_of(volume).iter().map(|(i, _)| *i).collect();
        for batch in indexes.chunks(MAX_TXN_OPS) {
            let mut txn = Txn::new();
            for i in batch {
                txn = txn.then(Op::delete(keys::segment(volume, *i)));
            }
            self.commit(txn).await?;
            for i in batch {
                g.ns.commit_purged_segment(volume, *i);
            }
        }
        self.commit(Txn::new().then(Op::delete(keys::recycled(volume))))
            .await?;
        g.ns.commit_purged(volume);
        Ok(())
    }

    /// Describe a volume.
    pub async fn stat_volume(&self, name: &str) -> Result<VolumeInfo> {
        Ok(self
            .inner
            .lock()
            .await
            .ns
            .stat(name)
            .map_err(refused)?
            .clone())
    }

    /// List volumes.
    pub async fn list_volumes(&self) -> Vec<VolumeInfo> {
        self.inner.lock().await.ns.list()
    }

    /// Open a volume with a session.
    pub async fn open_volume(&self, req: &OpenVolume, now_ms: u64) -> Result<Opened> {
        let mut g = self.inner.lock().await;
        let inner = &mut *g;
        let op = AuthOp::OpenVolume { name: &req.name };
        Self::authorize_existing(inner, &req.name, req.auth.as_ref(), &op, now_ms)?;
        inner
            .ns
            .open(&req.name, req.shared, &req.client, now_ms, &mut inner.rng)
            .map_err(refused)
    }

    // ---------------- owners ----------------

    /// A single-use nonce for a credential of `principal`.
    pub async fn auth_nonce(&self, principal: &str, now_ms: u64) -> Result<AuthNonce> {
        let mut g = self.inner.lock().await;
        let inner = &mut *g;
        inner
            .access
            .issue_nonce(principal, now_ms, &mut inner.rng)
            .map_err(refused)
    }

    /// Every owner.
    pub async fn list_owners(&self) -> Vec<OwnerInfo> {
        self.inner.lock().await.access.owners()
    }

    /// Register an owner (admin).
    pub async fn create_owner(&self, req: &CreateOwner, now_ms: u64) -> Result<OwnerInfo> {
        let mut g = self.inner.lock().await;
        let op = AuthOp::CreateOwner {
            name: &req.name,
            verifier: &req.verifier,
        };
        g.access
            .authorize_owner(&req.name, req.auth.as_ref(), &op, false, now_ms)
            .map_err(refused)?;
        let rec = g
            .access
            .plan_create_owner(&req.name, &req.verifier, now_ms / 1000)
            .map_err(refused)?;
        let k = keys::owner(&rec.name);
        self.commit(
            Txn::new()
                .when(Compare::absent(k.clone()))
                .then(Op::put(k, keys::encode(&rec))),
        )
        .await?;
        tracing::info!(owner = %rec.name, "owner created");
        let info = rec.info();
        g.access.commit_owner(rec);
        Ok(info)
    }

    /// Replace an owner's key (admin or the owner).
    pub async fn set_owner_key(&self, req: &SetOwnerKey, now_ms: u64) -> Result<OwnerInfo> {
        let mut g = self.inner.lock().await;
        let op = AuthOp::SetOwnerKey {
            name: &req.name,
            verifier: &req.verifier,
        };
        g.access
            .authorize_owner(&req.name, req.auth.as_ref(), &op, true, now_ms)
            .map_err(refused)?;
        let rec = g
            .access
            .plan_set_key(&req.name, &req.verifier, now_ms / 1000)
            .map_err(refused)?;
        let k = keys::owner(&rec.name);
        let cur = self.store.get(&k).await?.ok_or_else(|| {
            refused(MdsError::OwnerNotFound {
                owner: rec.name.clone(),
            })
        })?;
        self.commit(
            Txn::new()
                .when(Compare::mod_revision(k.clone(), cur.mod_revision))
                .then(Op::put(k, keys::encode(&rec))),
        )
        .await?;
        tracing::info!(owner = %rec.name, "owner key replaced");
        let info = rec.info();
        g.access.commit_owner(rec);
        Ok(info)
    }

    /// Remove an owner (admin); refused while it owns volumes.
    pub async fn delete_owner(&self, req: &DeleteOwner, now_ms: u64) -> Result<()> {
        let mut g = self.inner.lock().await;
        let op = AuthOp::DeleteOwner { name: &req.name };
        g.access
            .authorize_owner(&req.name, req.auth.as_ref(), &op, false, now_ms)
            .map_err(refused)?;
        if g.access.owner(&req.name).is_none() {
            return Err(refused(MdsError::OwnerNotFound {
                owner: req.name.clone(),
            }));
        }
        let volumes = g.ns.list().iter().filter(|v| v.owner == req.name).count() as u64;
        if volumes > 0 {
            return Err(refused(MdsError::OwnerHasVolumes {
                owner: req.name.clone(),
                volumes,
            }));
        }
        let k = keys::owner(&req.name);
        self.commit(
            Txn::new()
                .when(Compare {
                    key: k.clone(),
                    op: crate::store::CmpOp::Greater,
                    target: crate::store::CmpTarget::Version(0),
                })
                .then(Op::delete(k)),
        )
        .await?;
        tracing::info!(owner = %req.name, "owner deleted");
        g.access.commit_delete_owner(&req.name);
        Ok(())
    }

    /// Refresh a session.
    pub async fn refresh_session(
        &self,
        volume: VolumeId,
        session: &str,
        now_ms: u64,
    ) -> Result<VolumeInfo> {
        self.inner
            .lock()
            .await
            .ns
            .refresh(volume, session, now_ms)
            .map_err(refused)
    }

    /// Close a session.
    pub async fn close_volume(&self, volume: VolumeId, session: &str) -> Result<()> {
        self.inner
            .lock()
            .await
            .ns
            .close(volume, session)
            .map_err(refused)
    }

    /// Segment map; allocates on request (needs a live session).
    pub async fn get_segment(&self, req: &GetSegment, now_ms: u64) -> Result<Option<SegmentInfo>> {
        let mut g = self.inner.lock().await;
        if let Some(s) = g.ns.segment(req.volume, req.index) {
            return Ok(Some(s.clone()));
        }
        g.ns.volume(req.volume).map_err(refused)?;
        if !req.allocate {
            return Ok(None);
        }
        g.ns.check_session(req.volume, &req.session, now_ms)
            .map_err(refused)?;
        let pool = g.ns.volume(req.volume).map_err(refused)?.pool;
        let physical = g
            .topo
            .lpools
            .get(&pool)
            .map(|p| p.physical)
            .ok_or(refused(MdsError::NoCopysets))?;
        let healthy: Vec<CopysetId> = g
            .topo
            .copysets_of(pool)
            .filter(|c| {
                let up = c
                    .peers
                    .iter()
                    .filter(|p| {
                        g.topo
                            .chunkservers
                            .get(p)
                            .is_some_and(|x| x.state == OnlineState::Online)
                    })
                    .count();
                up * 2 > c.peers.len()
            })
            .map(|c| c.group.copyset())
            .collect();
        let usage = g.topo.usage_percent(physical);
        let need = CHUNKS_PER_SEGMENT as usize;
        // Validate before spending ids.
        let probe: Vec<ChunkId> = vec![ChunkId(0); need];
        g.ns.plan_segment(
            req.volume,
            req.index,
            &healthy,
            &probe,
            usage,
            self.cfg.pool_usage_limit_percent,
        )
        .map_err(refused)?;
        if g.chunk_ids.len() < need {
            let batch = self.cfg.chunk_id_batch.max(CHUNKS_PER_SEGMENT);
            let ids = next_ids(&*self.store, keys::ID_CHUNK.as_bytes(), batch).await?;
            g.chunk_ids.extend(ids.map(ChunkId));
        }
        let ids: Vec<ChunkId> = g.chunk_ids.iter().take(need).copied().collect();
        let seg =
            g.ns.plan_segment(
                req.volume,
                req.index,
                &healthy,
                &ids,
                usage,
                self.cfg.pool_usage_limit_percent,
            )
            .map_err(refused)?;
        let k = keys::segment(req.volume, req.index);
        self.commit(
            Txn::new()
                .when(Compare::absent(k.clone()))
                .when(Compare {
                    key: keys::volume(req.volume),
                    op: crate::store::CmpOp::Greater,
                    target: crate::store::CmpTarget::Version(0),
                })
                .then(Op::put(k, keys::encode(&seg))),
        )
        .await?;
        g.chunk_ids.drain(..need);
        g.ns.commit_segment(req.volume, req.index, seg.clone(), healthy.len());
        Ok(Some(seg))
    }
}
