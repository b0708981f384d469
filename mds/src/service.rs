//! The MDS RPC service: handlers for the `basalt_proto::mds` and `heartbeat` RPCs on a
//! transport [`Router`].
//!
//! Only the active MDS serves. A standby (or a leader whose lease ran out) answers every
//! request with `MdsError::NotLeader { leader }` carrying the active MDS's address when
//! known; `GetMdsLeader` is answered by everyone. Errors of the state are sent as their
//! wire form ([`Error::to_wire`]).

use crate::error::Error;
use crate::metrics::MdsMetrics;
use crate::state::MdsState;
use basalt_proto::heartbeat::Heartbeat;
use basalt_proto::mds::{
    ApplyTopology, CloseVolume, ClusterStatus, CreateOwner, CreateVolume, DeleteOwner,
    DeleteVolume, ExtendVolume, GetAuthNonce, GetCopysets, GetMdsLeader, GetSegment, GetTopology,
    ListChunkServers, ListCopysets, ListOperators, ListOwners, ListVolumes, MdsLeader,
    MdsRemovePeer, MdsTransferLeader, OpenVolume, PurgeVolume, RefreshSession, RegisterChunkServer,
    RenameVolume, SetOwnerKey, StatVolume, TopologyMap,
};
use basalt_proto::mds::{ApplyTopologyDryRun, DrainChunkServer, ListDrains, ListPools};
use basalt_proto::status::MdsError;
use basalt_proto::{Method, Rpc};
use basalt_transport::Router;
use bytes::Bytes;
use parking_lot::RwLock;
use std::net::SocketAddr;
use std::sync::Arc;

/// Milliseconds since the Unix epoch (wall clock; every use tolerates it going backwards).
pub fn system_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

type LeaderCheck = Arc<dyn Fn() -> bool + Send + Sync>;

struct Active {
    state: Arc<MdsState>,
    still_leader: LeaderCheck,
}

/// The service; shared by every connection's handlers.
pub struct MdsService {
    own_addr: Option<SocketAddr>,
    metrics: MdsMetrics,
    active: RwLock<Option<Active>>,
    leader_hint: RwLock<Option<SocketAddr>>,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for MdsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdsService")
            .field("own_addr", &self.own_addr)
            .field("active", &self.active.read().is_some())
            .finish_non_exhaustive()
    }
}

impl MdsService {
    /// A standby service; `own_addr` is what clients should dial to reach this MDS.
    pub fn new(
        own_addr: Option<SocketAddr>,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Arc<Self> {
        Self::with_metrics(own_addr, clock, MdsMetrics::new())
    }

    /// A standby service counting requests and leadership into `metrics`.
    pub fn with_metrics(
        own_addr: Option<SocketAddr>,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
        metrics: MdsMetrics,
    ) -> Arc<Self> {
        metrics.leader.set(0);
        Arc::new(Self {
            own_addr,
            metrics,
            active: RwLock::new(None),
            leader_hint: RwLock::new(None),
            clock,
        })
    }

    /// Start serving `state` while `still_leader()` holds.
    pub fn activate(&self, state: Arc<MdsState>, still_leader: LeaderCheck) {
        // A hint from standby days would name a former leader once this one steps down.
        *self.leader_hint.write() = None;
        *self.active.write() = Some(Active {
            state,
            still_leader,
        });
        self.metrics.leader.set(1);
    }

    /// Stop serving (stepped down). The leader is unknown until a new hint is set.
    pub fn deactivate(&self) {
        *self.active.write() = None;
        *self.leader_hint.write() = None;
        self.metrics.leader.set(0);
    }

    /// Where standbys send clients.
    pub fn set_leader_hint(&self, leader: Option<SocketAddr>) {
        *self.leader_hint.write() = leader;
    }

    fn state(&self) -> Result<Arc<MdsState>, MdsError> {
        match &*self.active.read() {
            Some(a) if (a.still_leader)() => Ok(a.state.clone()),
            _ => Err(MdsError::NotLeader {
                leader: *self.leader_hint.read(),
            }),
        }
    }

    fn is_active(&self) -> bool {
        self.state().is_ok()
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    /// The method table of the MDS.
    pub fn router(self: &Arc<Self>) -> Router {
        macro_rules! rpc {
            ($router:expr, $req:ty, |$st:ident, $r:ident, $now:ident| $body:expr) => {{
                let svc = self.clone();
                $router.route::<$req, _, _>(move |$r: $req, _payload, _group, _cx| {
                    let svc = svc.clone();
                    svc.metrics.rpc(<$req as Rpc>::METHOD);
                    async move {
                        let reply = match svc.state() {
                            Err(e) => Err(e),
                            Ok($st) => {
                                let $now = svc.now();
                                let out: Result<_, Error> = $body;
                                if let Err(Error::Fenced | Error::LeadershipLost { .. }) = &out {
                                    svc.deactivate();
                                }
                                out.map_err(|e| e.to_wire())
                            }
                        };
                        (reply, Bytes::new())
                    }
                })
            }};
        }
        let r = Router::new();
        let r = rpc!(r, RegisterChunkServer, |st, req, now| st
            .register(&req, now)
            .await);
        let r = rpc!(r, Heartbeat, |st, req, now| st.heartbeat(&req, now).await);
        let r = rpc!(r, CreateVolume, |st, req, now| st
            .create_volume(&req, now)
            .await);
        let r = rpc!(r, OpenVolume, |st, req, now| st
            .open_volume(&req, now)
            .await);
        let r = rpc!(r, CloseVolume, |st, req, _now| st
            .close_volume(req.volume, &req.session)
            .await);
        let r = rpc!(r, RefreshSession, |st, req, now| st
            .refresh_session(req.volume, &req.session, now)
            .await);
        let r = rpc!(r, StatVolume, |st, req, _now| st
            .stat_volume(&req.name)
            .await);
        let r = rpc!(r, ListVolumes, |st, _req, _now| Ok(st.list_volumes().await));
        let r = rpc!(r, ExtendVolume, |st, req, now| st
            .extend_volume(&req, now)
            .await);
        let r = rpc!(r, RenameVolume, |st, req, now| st
            .rename_volume(&req, now)
            .await);
        let r = rpc!(r, DeleteVolume, |st, req, now| st
            .delete_volume(&req, now)
            .await);
        let r = rpc!(r, PurgeVolume, |st, req, now| st
            .purge_volume(&req, now)
            .await);
        let r = rpc!(r, GetAuthNonce, |st, req, now| st
            .auth_nonce(&req.principal, now)
            .await);
        let r = rpc!(r, CreateOwner, |st, req, now| st
            .create_owner(&req, now)
            .await);
        let r = rpc!(r, SetOwnerKey, |st, req, now| st
            .set_owner_key(&req, now)
            .await);
        let r = rpc!(r, DeleteOwner, |st, req, now| st
            .delete_owner(&req, now)
            .await);
        let r = rpc!(r, ListOwners, |st, _req, _now| Ok(st.list_owners().await));
        let r = rpc!(r, GetSegment, |st, req, now| st
            .get_segment(&req, now)
            .await);
        let r = rpc!(r, GetCopysets, |st, req, _now| st
            .get_copysets(&req.groups)
            .await);
        let r = rpc!(r, ListOperators, |st, _req, now| Ok(st
            .list_operators(now)
            .await));
        let own_addr = self.own_addr;
        let r = rpc!(r, ClusterStatus, |st, _req, _now| Ok(st
            .cluster_status(own_addr)
            .await));
        let r = rpc!(r, ListChunkServers, |st, _req, _now| Ok(st
            .list_chunkservers()
            .await));
        let r = rpc!(r, GetTopology, |st, _req, _now| Ok(TopologyMap {
            toml: st.topology_toml().await
        }));
        let r = rpc!(r, ApplyTopology, |st, req, _now| st
            .apply_topology(&req.toml)
            .await);
        let r = rpc!(r, ListCopysets, |st, req, _now| st
            .list_copysets(req.pool)
            .await);
        let r = rpc!(r, MdsTransferLeader, |st, req, now| st
            .transfer_leader(req.group, req.to, now)
            .await);
        let r = rpc!(r, MdsRemovePeer, |st, req, now| st
            .remove_peer(req.group, req.peer, now)
            .await);
        let r = rpc!(r, DrainChunkServer, |st, req, now| st
            .drain_chunkserver(&req, now)
            .await);
        let r = rpc!(r, ListDrains, |st, _req, _now| Ok(st.list_drains().await));
        let r = rpc!(r, ListPools, |st, _req, _now| Ok(st.list_pools().await));
        let r = rpc!(r, ApplyTopologyDryRun, |st, req, _now| st
            .plan_topology(&req.toml)
            .await);
        let svc = self.clone();
        r.route::<GetMdsLeader, _, _>(move |_req, _p, _g, _cx| {
            let svc = svc.clone();
            svc.metrics.rpc(Method::GetMdsLeader);
            async move {
                let is_leader = svc.is_active();
                let leader = if is_leader {
                    svc.own_addr
                } else {
                    *svc.leader_hint.read()
                };
                (MdsLeader { leader, is_leader }, Bytes::new())
            }
        })
    }
}
