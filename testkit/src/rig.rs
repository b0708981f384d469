//! A small real cluster plus a connected client, as the end-to-end and fault tests use
//! it: etcd, 3 MDSs and 3 chunkservers (one per zone, so every copyset has a replica on
//! each) with few copysets and small data dirs, a tokio runtime for the client, and a
//! temporary state dir removed afterwards.

use crate::workload::WorkloadError;
use crate::{ClusterSpec, DevCluster};
use basalt_client::{ClientFile, Cluster, OpenOptions, Volume};
use basalt_transport::TcpTransport;
use std::sync::Arc;
use std::time::Duration;

/// Cluster, client and runtime of one test. Dropping it kills every process and removes
/// the state dir.
pub struct Rig {
    /// The client (first, so it goes before the cluster and the runtime).
    pub client: Cluster<TcpTransport>,
    /// The processes.
    pub cluster: DevCluster,
    /// Runtime the client and workloads run on.
    pub rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

/// The shape the tests use: 3 chunkservers in 3 zones, 2 copysets each, `pool_chunks`
/// chunk files per chunkserver.
pub fn small_spec(state_dir: &std::path::Path, pool_chunks: u64) -> ClusterSpec {
    let mut spec = ClusterSpec::new(state_dir);
    spec.copysets_per_chunkserver = 2;
    spec.pool_chunks = pool_chunks;
    spec.wait_copysets = true;
    spec.ready_timeout = Duration::from_secs(30);
    spec
}

impl Rig {
    /// Start a cluster of `small_spec(.., pool_chunks)` and connect a client.
    pub fn up(pool_chunks: u64) -> Result<Rig, WorkloadError> {
        Rig::up_shaped(pool_chunks, |_| {})
    }

    /// [`up`](Self::up) with `shape` applied to the spec first (more chunkservers, other
    /// timings).
    pub fn up_shaped(
        pool_chunks: u64,
        shape: impl FnOnce(&mut ClusterSpec),
    ) -> Result<Rig, WorkloadError> {
        let dir = tempfile::tempdir().map_err(WorkloadError::Setup)?;
        let mut spec = small_spec(&dir.path().join("state"), pool_chunks);
        shape(&mut spec);
        let cluster = DevCluster::up(spec)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(WorkloadError::Setup)?;
        let client = {
            let _g = rt.enter();
            ClientFile::load(Some(&cluster.client_configs()[0]))?.cluster()?
        };
        Ok(Rig {
            client,
            cluster,
            rt,
            dir,
        })
    }

    /// A fresh client on the same cluster (a restarted application).
    pub fn new_client(&self) -> Result<Cluster<TcpTransport>, WorkloadError> {
        let _g = self.rt.enter();
        Ok(ClientFile::load(Some(&self.cluster.client_configs()[0]))?.cluster()?)
    }

    /// Create volume `name` of `size` bytes and open it with `client`.
    pub fn create_volume(
        &self,
        client: &Cluster<TcpTransport>,
        name: &str,
        size: u64,
    ) -> Result<Arc<Volume<TcpTransport>>, WorkloadError> {
        self.rt.block_on(async {
            client.create_volume(name, size).await?;
            Ok(Arc::new(client.open(name, OpenOptions::default()).await?))
        })
    }

    /// The state dir (logs are under `logs/`).
    pub fn state_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
