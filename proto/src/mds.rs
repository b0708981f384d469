//! MDS service: registration, volumes, sessions, segments, copyset maps, administration.

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
}

impl Rpc for DeleteVolume {
    const METHOD: Method = Method::DeleteVolume;
    type Reply = Result<(), MdsError>;
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
