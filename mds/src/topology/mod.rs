//! Topology: physical pool → zone → server → chunkserver, logical pools and copysets.

pub mod clustermap;
pub mod liveness;
pub mod model;
pub mod plan;
pub mod registration;

pub use model::{
    ChunkServer, CopysetRecord, LogicalPool, OnlineState, PhysicalPool, Server, Topology, Zone,
};
