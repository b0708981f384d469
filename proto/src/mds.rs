//! MDS service: registration, volumes, sessions, segments, copyset maps, administration.

use crate::credential::Verifier;
use crate::heartbeat::{DiskStats, Operator};
use crate::ids::{ChunkId, ChunkServerId, CopysetId, Epoch, GroupId, LogicalPoolId, VolumeId};
use crate::method::{Method, Rpc};
use crate::status::{MdsError, PeerAddr};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A chunkserver introduces itself. A known disk (same host + disk uuid) keeps its id; a
/// known id with the wrong token is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterChunkServer {
    /// Server (host) name as in the cluster map.
    pub server: String,
    /// Stable id of the disk (written at format time).
    pub disk_uuid: String,
    /// Service address.
    pub addr: SocketAddr,
    /// Id and token from an earlier registration, if the data dir has them.
    pub existing: Option<(ChunkServerId, String)>,
    /// Capacity.
    pub disk: DiskStats,
}

/// Registration result, persisted by the chunkserver in its data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// Assigned id.
    pub id: ChunkServerId,
    /// Secret token to present in heartbeats.
    pub token: String,
    /// Cluster id; a data dir of another cluster is refused.
    pub cluster: String,
}

impl Rpc for RegisterChunkServer {
    const METHOD: Method = Method::RegisterChunkServer;
    type Reply = Result<Registered, MdsError>;
}

/// Volume metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// Id.
    pub id: VolumeId,
    /// Name.
    pub name: String,
    /// Size in bytes (a multiple of the segment size).
    pub size: u64,
    /// Owner.
    pub owner: String,
    /// Logical pool its segments are allocated from.
    pub pool: LogicalPoolId,
    /// Creation time, seconds since the epoch.
    pub ctime: u64,
}

/// Create a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateVolume {
    /// Name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Owner.
    pub owner: String,
    /// Proof of the caller's owner key or of the admin credential (see
    /// [`crate::credential`]); `None` where the MDS does not enforce access control.
    pub auth: Option<Credential>,
}

impl Rpc for CreateVolume {
    const METHOD: Method = Method::CreateVolume;
    type Reply = Result<VolumeInfo, MdsError>;
}

/// Open a volume with a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenVolume {
    /// Name.
    pub name: String,
    /// Caller's owner name.
    pub owner: String,
    /// Share with other openers instead of exclusive open.
    pub shared: bool,
    /// Client instance description, for `volume info`.
    pub client: String,
    /// Proof of the caller's owner key or of the admin credential (see
    /// [`crate::credential`]); `None` where the MDS does not enforce access control.
    pub auth: Option<Credential>,
}

/// An open session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Session id, to refresh and close.
    pub id: String,
    /// Lease length in milliseconds; refresh about 4 times per lease.
    pub lease_ms: u32,
}

/// Answer to [`OpenVolume`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    /// The volume.
    pub volume: VolumeInfo,
    /// The session.
    pub session: Session,
}

impl Rpc for OpenVolume {
    const METHOD: Method = Method::OpenVolume;
    type Reply = Result<Opened, MdsError>;
}

/// Close a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseVolume {
    /// Volume.
    pub volume: VolumeId,
    /// Session id.
    pub session: String,
}

impl Rpc for CloseVolume {
    const METHOD: Method = Method::CloseVolume;
    type Reply = Result<(), MdsError>;
}

/// Refresh a session lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSession {
    /// Volume.
    pub volume: VolumeId,
    /// Session id.
    pub session: String,
}

impl Rpc for RefreshSession {
    const METHOD: Method = Method::RefreshSession;
    /// The volume as it is now (size may have grown).
    type Reply = Result<VolumeInfo, MdsError>;
}

/// Describe a volume by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatVolume {
    /// Name.
    pub name: String,
}

impl Rpc for StatVolume {
    const METHOD: Method = Method::StatVolume;
    type Reply = Result<VolumeInfo, MdsError>;
}

/// List volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVolumes {}

impl Rpc for ListVolumes {
    const METHOD: Method = Method::ListVolumes;
    type Reply = Result<Vec<VolumeInfo>, MdsError>;
}

/// Grow a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendVolume {
    /// Name.
    pub name: String,
    /// New size (larger, a multiple of the segment size).
    pub size: u64,
    /// Proof of the caller's owner key or of the admin credential (see
    /// [`crate::credential`]); `None` where the MDS does not enforce access control.
    pub auth: Option<Credential>,
}

impl Rpc for ExtendVolume {
    const METHOD: Method = Method::ExtendVolume;
    type Reply = Result<VolumeInfo, MdsError>;
}

/// Rename a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameVolume {
    /// Current name.
    pub from: String,
    /// New name.
    pub to: String,
    /// Proof of the caller's owner key or of the admin credential (see
    /// [`crate::credential`]); `None` where the MDS does not enforce access control.
    pub auth: Option<Credential>,
}

impl Rpc for RenameVolume {
    const METHOD: Method = Method::RenameVolume;
    type Reply = Result<VolumeInfo, MdsError>;
}

/// Delete a volume (moved to the recycle area).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteVolume {
    /// Name.
    pub name: String,
    /// Proof of the caller's owner key or of the admin credential (see
    /// [`crate::credential`]); `None` where the MDS does not enforce access control.
    pub auth: Option<Credential>,
}

impl Rpc for DeleteVolume {
    const METHOD: Method = Method::DeleteVolume;
    type Reply = Result<(), MdsError>;
}

/// Purge every recycled (deleted) volume named `name`: their chunks are deleted on the
/// chunkservers, then their segment and recycle records. Idempotent and resumable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeVolume {
    /// Name the volume had when deleted.
    pub name: String,
    /// Proof of the owner's key or of the admin credential; `None` where the MDS does
    /// not enforce access control.
    pub auth: Option<Credential>,
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purged {
    /// Volumes purged (recycled volumes of that name).
    pub volumes: Vec<VolumeId>,
    /// Chunk deletes acknowledged (a chunk already gone counts).
    pub chunks: u64,
}

impl Rpc for PurgeVolume {
    const METHOD: Method = Method::PurgeVolume;
    type Reply = Result<Purged, MdsError>;
}

/// Where a segment's chunks live: `chunks[i]` is chunk `i` of the segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// Logical pool.
    pub pool: LogicalPoolId,
    /// Per chunk: its copyset and id.
    pub chunks: Vec<(CopysetId, ChunkId)>,
}

/// Map of one segment of a volume; with `allocate`, allocate it if absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetSegment {
    /// Volume.
    pub volume: VolumeId,
    /// Session id (allocation needs an open session).
    pub session: String,
    /// Segment index (offset / segment size).
    pub index: u64,
    /// Allocate if absent.
    pub allocate: bool,
}

impl Rpc for GetSegment {
    const METHOD: Method = Method::GetSegment;
    /// `None`: not allocated (and `allocate` was false).
    type Reply = Result<Option<SegmentInfo>, MdsError>;
}

/// A copyset's placement as the MDS knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopysetInfo {
    /// The copyset.
    pub group: GroupId,
    /// Epoch.
    pub epoch: Epoch,
    /// Voters with addresses.
    pub peers: Vec<PeerAddr>,
    /// Leader from the latest heartbeat.
    pub leader: Option<ChunkServerId>,
}

/// Placement of some copysets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetCopysets {
    /// The copysets.
    pub groups: Vec<GroupId>,
}

impl Rpc for GetCopysets {
    const METHOD: Method = Method::GetCopysets;
    type Reply = Result<Vec<CopysetInfo>, MdsError>;
}

/// Which MDS is active. Every MDS answers, standbys included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMdsLeader {}

/// Answer to [`GetMdsLeader`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdsLeader {
    /// The active MDS's address, if one is elected.
    pub leader: Option<SocketAddr>,
    /// Whether the answering MDS is the active one.
    pub is_leader: bool,
}

impl Rpc for GetMdsLeader {
    const METHOD: Method = Method::GetMdsLeader;
    type Reply = MdsLeader;
}

/// A pending operator with its progress, for `operator ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    /// The operator.
    pub op: Operator,
    /// Milliseconds since it was issued.
    pub age_ms: u64,
}

/// List pending operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOperators {}

impl Rpc for ListOperators {
    const METHOD: Method = Method::ListOperators;
    type Reply = Result<Vec<OperatorState>, MdsError>;
}

// --- administration (CLI) ---

/// Liveness of a chunkserver as the MDS sees it (from heartbeat age).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChunkServerState {
    /// Heartbeats arrive.
    Online,
    /// Heartbeats missed for a while: no new placement on it.
    Unstable,
    /// Gone long enough that its copysets are recovered elsewhere.
    Offline,
}

/// Health of a copyset as the MDS sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CopysetHealth {
    /// Every peer online and an online leader known.
    Healthy,
    /// An online leader known, but some peer is not online.
    Degraded,
    /// No online leader known (none reported yet, or it is not online).
    Leaderless,
}

/// Cluster health summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {}

/// Answer to [`ClusterStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatusReply {
    /// The active MDS's address (the one answering).
    pub active_mds: Option<SocketAddr>,
    /// Chunkservers online.
    pub chunkservers_online: u32,
    /// Chunkservers unstable.
    pub chunkservers_unstable: u32,
    /// Chunkservers offline.
    pub chunkservers_offline: u32,
    /// Copysets healthy.
    pub copysets_healthy: u64,
    /// Copysets degraded.
    pub copysets_degraded: u64,
    /// Copysets without a known online leader.
    pub copysets_leaderless: u64,
    /// Bytes used over every chunkserver's disk (latest heartbeats).
    pub used_bytes: u64,
    /// Bytes of every chunkserver's disk.
    pub total_bytes: u64,
    /// Operators in flight.
    pub operators_pending: u32,
}

impl Rpc for ClusterStatus {
    const METHOD: Method = Method::ClusterStatus;
    type Reply = Result<ClusterStatusReply, MdsError>;
}

/// List chunkservers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListChunkServers {}

/// One chunkserver in [`ListChunkServers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkServerSummary {
    /// Id.
    pub id: ChunkServerId,
    /// Server (host) name.
    pub server: String,
    /// Zone name.
    pub zone: String,
    /// Service address.
    pub addr: SocketAddr,
    /// Liveness.
    pub state: ChunkServerState,
    /// Copysets it is a peer of.
    pub copysets: u32,
    /// Copysets it leads (latest heartbeats).
    pub leaders: u32,
    /// Capacity and usage from its latest heartbeat.
    pub disk: DiskStats,
}

impl Rpc for ListChunkServers {
    const METHOD: Method = Method::ListChunkServers;
    type Reply = Result<Vec<ChunkServerSummary>, MdsError>;
}

/// Read the topology as cluster map TOML (the format of the MDS's `cluster-map` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTopology {}

/// A cluster map as TOML text (see `docs/mds.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyMap {
    /// The TOML text.
    pub toml: String,
}

impl Rpc for GetTopology {
    const METHOD: Method = Method::GetTopology;
    type Reply = Result<TopologyMap, MdsError>;
}

/// Apply a cluster map (TOML text). Idempotent: entries already present are left alone,
/// nothing is removed; a map that does not validate or would move an existing entry is
/// refused with [`MdsError::InvalidTopology`] naming the entry, and nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyTopology {
    /// The TOML text.
    pub toml: String,
}

/// What [`ApplyTopology`] added, by name (all empty: nothing changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyChanges {
    /// New physical pools.
    pub physical_pools: Vec<String>,
    /// New zones.
    pub zones: Vec<String>,
    /// New servers.
    pub servers: Vec<String>,
    /// New logical pools.
    pub logical_pools: Vec<String>,
}

impl Rpc for ApplyTopology {
    const METHOD: Method = Method::ApplyTopology;
    type Reply = Result<TopologyChanges, MdsError>;
}

/// List the copysets of a logical pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCopysets {
    /// The logical pool.
    pub pool: LogicalPoolId,
}

/// One copyset in [`ListCopysets`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopysetSummary {
    /// The copyset.
    pub group: GroupId,
    /// Epoch.
    pub epoch: Epoch,
    /// Voters.
    pub peers: Vec<ChunkServerId>,
    /// Leader from the latest heartbeats.
    pub leader: Option<ChunkServerId>,
    /// Health.
    pub health: CopysetHealth,
}

impl Rpc for ListCopysets {
    const METHOD: Method = Method::ListCopysets;
    type Reply = Result<Vec<CopysetSummary>, MdsError>;
}

/// Queue a leader transfer: the copyset's leader gets it in its next heartbeat reply.
/// Refused when the copyset or a chunkserver involved already has an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdsTransferLeader {
    /// The copyset.
    pub group: GroupId,
    /// The new leader (a voter of the copyset).
    pub to: ChunkServerId,
}

impl Rpc for MdsTransferLeader {
    const METHOD: Method = Method::MdsTransferLeader;
    /// The queued operator.
    type Reply = Result<Operator, MdsError>;
}

/// Queue the removal of a peer from a copyset (the leader gets it in its next heartbeat
/// reply). Refused when the copyset or its leader already has an operator, or when the
/// peer is the copyset's only voter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdsRemovePeer {
    /// The copyset.
    pub group: GroupId,
    /// The voter to remove.
    pub peer: ChunkServerId,
}

impl Rpc for MdsRemovePeer {
    const METHOD: Method = Method::MdsRemovePeer;
    /// The queued operator.
    type Reply = Result<Operator, MdsError>;
}

// --- drain, pools, topology dry run ---

/// Retire a chunkserver: placement stops picking it and the MDS's scheduler moves its
/// copysets to other chunkservers (leadership first, one replica per zone kept). With
/// `undo`, it returns to service (operators already in flight finish). Idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainChunkServer {
    /// The chunkserver.
    pub id: ChunkServerId,
    /// Return it to service instead.
    pub undo: bool,
}

/// Where retiring a chunkserver stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DrainState {
    /// Not being retired.
    InService,
    /// Marked draining; copysets or operators remain.
    Draining,
    /// Marked draining and holds no copyset and no operator: safe to stop.
    Drained,
}

/// Drain progress of one chunkserver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    /// The chunkserver.
    pub id: ChunkServerId,
    /// Where it stands.
    pub state: DrainState,
    /// Copysets it is still a voter of.
    pub copysets: u32,
    /// Copysets it still leads.
    pub leaders: u32,
    /// Of `copysets`, those no other chunkserver can take now (no online, non-draining
    /// chunkserver in a zone the copyset may use): the drain waits for one.
    pub blocked: u32,
    /// Operators in flight involving it.
    pub operators: u32,
}

impl Rpc for DrainChunkServer {
    const METHOD: Method = Method::DrainChunkServer;
    /// The chunkserver's drain status after the change.
    type Reply = Result<DrainStatus, MdsError>;
}

/// Drain status of every chunkserver marked draining, in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDrains {}

impl Rpc for ListDrains {
    const METHOD: Method = Method::ListDrains;
    type Reply = Result<Vec<DrainStatus>, MdsError>;
}

/// List logical pools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPools {}

/// One logical pool in [`ListPools`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSummary {
    /// Id (as in the pool's group ids).
    pub id: LogicalPoolId,
    /// Name.
    pub name: String,
    /// Physical pool name.
    pub physical_pool: String,
    /// Replicas per copyset.
    pub replicas: u8,
    /// Copysets per chunkserver asked for at placement.
    pub copysets_per_chunkserver: u32,
    /// Minimum scatter width (0: none).
    pub scatter_width: u32,
    /// Copysets the pool has.
    pub copysets: u32,
    /// Bytes used on the physical pool's chunkservers (latest heartbeats).
    pub used_bytes: u64,
    /// Bytes of the physical pool's chunkservers.
    pub total_bytes: u64,
    /// Segment allocation is refused above this usage, percent.
    pub usage_limit_percent: u64,
}

impl Rpc for ListPools {
    const METHOD: Method = Method::ListPools;
    type Reply = Result<Vec<PoolSummary>, MdsError>;
}

/// What [`ApplyTopology`] with the same text would do; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyTopologyDryRun {
    /// The TOML text.
    pub toml: String,
}

/// What applying a map does to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TopologyChange {
    /// New: apply adds it (with `id`).
    Add,
    /// Exists with a different value of a field the MDS will not change: apply is
    /// refused as a whole.
    Conflict,
    /// Exists with a different value of a field apply leaves alone.
    Ignored,
    /// Only in the cluster: apply keeps it (removal is not a map edit).
    Kept,
}

/// One entry of a [`TopologyPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyPlanEntry {
    /// What happens.
    pub change: TopologyChange,
    /// Entry kind: `physical-pool`, `zone`, `server` or `logical-pool`.
    pub kind: String,
    /// Entry name.
    pub name: String,
    /// Its id: the existing one, or the one apply would assign.
    pub id: u32,
    /// For conflicts and ignored differences: the field, the cluster's value, the map's.
    pub field: Option<(String, String, String)>,
}

/// Answer to [`ApplyTopologyDryRun`]: entries that differ, in kind order then map order
/// (cluster-only entries after each kind's map entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyPlan {
    /// Entries that differ.
    pub entries: Vec<TopologyPlanEntry>,
    /// Entries present and equal on both sides.
    pub unchanged: u32,
}

impl Rpc for ApplyTopologyDryRun {
    const METHOD: Method = Method::ApplyTopologyDryRun;
    /// A map that does not parse or validate is refused with
    /// [`MdsError::InvalidTopology`] as [`ApplyTopology`] would.
    type Reply = Result<TopologyPlan, MdsError>;
}

// --- volume access: owners and credentials ---

/// A proof that the caller holds `principal`'s key (an owner, or [`crate::credential::ADMIN`]),
/// made over a nonce from [`GetAuthNonce`] and the operation it accompanies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Who proves: an owner name or `admin`.
    pub principal: String,
    /// The nonce the MDS issued (single use, short-lived).
    pub nonce: Vec<u8>,
    /// `ClientKey XOR HMAC(StoredKey, message)` (see [`crate::credential`]).
    pub proof: Vec<u8>,
}

/// Ask the active MDS for a single-use nonce and `principal`'s salt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAuthNonce {
    /// Who will prove.
    pub principal: String,
}

/// Answer to [`GetAuthNonce`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthNonce {
    /// Fresh random bytes; valid for one request on this MDS for a short while.
    pub nonce: Vec<u8>,
    /// The principal's salt (empty when the MDS enforces nothing and does not know it).
    pub salt: Vec<u8>,
}

impl Rpc for GetAuthNonce {
    const METHOD: Method = Method::GetAuthNonce;
    type Reply = Result<AuthNonce, MdsError>;
}

/// An owner as the MDS lists it (never its key or verifier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerInfo {
    /// Name.
    pub name: String,
    /// Registration time, seconds since the epoch.
    pub ctime: u64,
    /// When the key was last set, seconds since the epoch.
    pub key_time: u64,
}

/// Register an owner (admin only). The key is made by the caller; only its verifier
/// travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOwner {
    /// Name (volume naming rules; `admin` is reserved).
    pub name: String,
    /// Salt and stored key of the owner's key.
    pub verifier: Verifier,
    /// The admin credential's proof.
    pub auth: Option<Credential>,
}

impl Rpc for CreateOwner {
    const METHOD: Method = Method::CreateOwner;
    type Reply = Result<OwnerInfo, MdsError>;
}

/// Replace an owner's key (rotation; by the admin or the owner itself). The old key stops
/// working at once; sessions already open stay open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetOwnerKey {
    /// Name.
    pub name: String,
    /// The new key's verifier.
    pub verifier: Verifier,
    /// Proof by the admin or by the owner's current key.
    pub auth: Option<Credential>,
}

impl Rpc for SetOwnerKey {
    const METHOD: Method = Method::SetOwnerKey;
    type Reply = Result<OwnerInfo, MdsError>;
}

/// Remove an owner (admin only; refused while it owns volumes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOwner {
    /// Name.
    pub name: String,
    /// The admin credential's proof.
    pub auth: Option<Credential>,
}

impl Rpc for DeleteOwner {
    const METHOD: Method = Method::DeleteOwner;
    type Reply = Result<(), MdsError>;
}

/// List owners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOwners {}

impl Rpc for ListOwners {
    const METHOD: Method = Method::ListOwners;
    type Reply = Result<Vec<OwnerInfo>, MdsError>;
}

#[cfg(test)]
mod drain_pool_tests {
    use super::*;
    use crate::codec;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        assert_eq!(codec::decode::<T>(&codec::encode(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn drain_pool_and_plan_messages_round_trip() {
        round_trip(DrainChunkServer {
            id: ChunkServerId(4),
            undo: true,
        });
        round_trip(vec![DrainStatus {
            id: ChunkServerId(4),
            state: DrainState::Draining,
            copysets: 12,
            leaders: 1,
            blocked: 0,
            operators: 1,
        }]);
        round_trip(vec![PoolSummary {
            id: LogicalPoolId(2),
            name: "cold".into(),
            physical_pool: "p".into(),
            replicas: 3,
            copysets_per_chunkserver: 100,
            scatter_width: 4,
            copysets: 300,
            used_bytes: 1 << 30,
            total_bytes: 1 << 40,
            usage_limit_percent: 85,
        }]);
        round_trip(TopologyPlan {
            entries: vec![TopologyPlanEntry {
                change: TopologyChange::Conflict,
                kind: "server".into(),
                name: "h1".into(),
                id: 1,
                field: Some(("zone".into(), "z1".into(), "z2".into())),
            }],
            unchanged: 3,
        });
    }
}

#[cfg(test)]
mod admin_tests {
    use super::*;
    use crate::codec;
    use crate::status::OperatorRefusal;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        assert_eq!(codec::decode::<T>(&codec::encode(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn admin_messages_round_trip() {
        let addr: SocketAddr = "10.0.0.1:8100".parse().unwrap();
        round_trip(ClusterStatusReply {
            active_mds: Some(addr),
            chunkservers_online: 3,
            chunkservers_unstable: 1,
            chunkservers_offline: 0,
            copysets_healthy: 100,
            copysets_degraded: 2,
            copysets_leaderless: 1,
            used_bytes: 1 << 40,
            total_bytes: 1 << 42,
            operators_pending: 4,
        });
        round_trip(vec![ChunkServerSummary {
            id: ChunkServerId(7),
            server: "h1".into(),
            zone: "z1".into(),
            addr,
            state: ChunkServerState::Unstable,
            copysets: 30,
            leaders: 10,
            disk: DiskStats::default(),
        }]);
        round_trip(vec![CopysetSummary {
            group: GroupId(1 << 32 | 5),
            epoch: Epoch(3),
            peers: vec![ChunkServerId(1), ChunkServerId(2)],
            leader: None,
            health: CopysetHealth::Leaderless,
        }]);
        round_trip(TopologyChanges {
            servers: vec!["h4".into()],
            ..Default::default()
        });
        round_trip(ApplyTopology {
            toml: "[[physical-pool]]\nname = \"p\"\n".into(),
        });
        round_trip(MdsTransferLeader {
            group: GroupId(9),
            to: ChunkServerId(2),
        });
        let r: Result<Operator, MdsError> = Err(MdsError::OperatorRefused {
            group: GroupId(9),
            reason: OperatorRefusal::RemoveLeader,
        });
        round_trip(r);
    }

    #[test]
    fn existing_error_encodings_unchanged() {
        // New variants are appended: the variant indices of the older ones stay put.
        assert_eq!(
            codec::encode(&MdsError::OperatorPending { group: GroupId(1) }).unwrap(),
            vec![16, 1]
        );
        assert_eq!(
            codec::encode(&MdsError::PoolNotFound {
                pool: LogicalPoolId(1)
            })
            .unwrap(),
            vec![17, 1]
        );
    }
}
