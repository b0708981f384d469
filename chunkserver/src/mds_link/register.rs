//! Registration with the MDS at start-up: present the disk (server name, disk uuid,
//! address, earlier id and token), persist the answer in the data dir.
//!
//! A re-formatted disk has a new uuid, so the MDS gives it a new id: a wiped replica never
//! comes back under the id its peers remember (openraft refuses a follower whose log went
//! backwards). A data dir registered to another cluster is refused.

use crate::datadir::{DataDir, DiskMeta};
use crate::error::{ChunkServerError, Result};
use crate::mds_link::client::MdsClient;
use basalt_proto::heartbeat::DiskStats;
use basalt_proto::mds::{RegisterChunkServer, Registered};
use basalt_proto::status::MdsError;
use std::net::SocketAddr;
use std::time::Duration;

/// The registration request for the disk described by `meta`.
pub fn request(
    meta: &DiskMeta,
    server: &str,
    addr: SocketAddr,
    disk: DiskStats,
) -> RegisterChunkServer {
    RegisterChunkServer {
        server: server.to_string(),
        disk_uuid: meta.disk_uuid.clone(),
        addr,
        existing: meta.chunkserver_id.zip(meta.token.clone()),
        disk,
    }
}

/// Whether a refusal may go away by itself (retry) or needs an operator (give up).
pub fn retryable(e: &ChunkServerError) -> bool {
    match e {
        ChunkServerError::MdsUnavailable { .. } => true,
        ChunkServerError::MdsRefused { source } => matches!(
            source,
            MdsError::NotLeader { .. } | MdsError::StoreUnavailable
        ),
        _ => false,
    }
}

/// Check the answer against the data dir and the configured cluster, then record it.
pub fn persist(dir: &mut DataDir, expected_cluster: Option<&str>, reg: &Registered) -> Result<()> {
    let recorded = dir.meta().cluster_id.as_deref();
    for expected in [expected_cluster, recorded].into_iter().flatten() {
        if expected != reg.cluster {
            return Err(ChunkServerError::ClusterMismatch {
                expected: expected.to_string(),
                found: reg.cluster.clone(),
            });
        }
    }
    let m = dir.meta();
    if m.chunkserver_id == Some(reg.id)
        && m.token.as_deref() == Some(reg.token.as_str())
        && recorded == Some(reg.cluster.as_str())
    {
        return Ok(());
    }
    dir.set_identity(reg.id, reg.token.clone(), reg.cluster.clone())
}

/// Register until the MDS answers (back-off 100 ms doubling to 5 s while no MDS is
/// reachable or elected); a refusal is returned at once.
pub async fn register(
    client: &MdsClient,
    dir: &mut DataDir,
    expected_cluster: Option<&str>,
    req: &RegisterChunkServer,
) -> Result<Registered> {
    let mut pause = Duration::from_millis(100);
    loop {
        match client.call(req).await {
            Ok(reg) => {
                persist(dir, expected_cluster, &reg)?;
                tracing::info!(id = %reg.id, cluster = %reg.cluster, server = %req.server, "registered with the MDS");
                return Ok(reg);
            }
            Err(e) if retryable(&e) => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "registration: no MDS answered");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datadir::FormatOptions;
    use basalt_proto::ids::ChunkServerId;

    fn formatted() -> (tempfile::TempDir, DataDir) {
        let t = tempfile::tempdir().unwrap();
        let d = DataDir::format(
            t.path().join("d"),
            &FormatOptions {
                pool_size: 1,
                wal_segments: 2,
                chunk_size: 1 << 20,
                wal_segment_size: 1 << 20,
            },
            &mut |_| {},
        )
        .unwrap();
        (t, d)
    }

    fn reg(id: u32, token: &str, cluster: &str) -> Registered {
        Registered {
            id: ChunkServerId(id),
            token: token.into(),
            cluster: cluster.into(),
        }
    }

    #[test]
    fn request_carries_the_earlier_identity() {
        let (_t, mut d) = formatted();
        let addr: SocketAddr = "127.0.0.1:8200".parse().unwrap();
        let r = request(d.meta(), "h1", addr, DiskStats::default());
        assert_eq!(
            (r.existing, r.disk_uuid.clone()),
            (None, d.meta().disk_uuid.clone())
        );
        persist(&mut d, None, &reg(7, "tok", "c1")).unwrap();
        let r = request(d.meta(), "h1", addr, DiskStats::default());
        assert_eq!(r.existing, Some((ChunkServerId(7), "tok".to_string())));
    }

    #[test]
    fn identity_is_persisted_and_another_cluster_refused() {
        let (t, mut d) = formatted();
        persist(&mut d, Some("c1"), &reg(3, "tok", "c1")).unwrap();
        let reopened = DataDir::open(t.path().join("d"), Some("c1")).unwrap();
        assert_eq!(reopened.meta().chunkserver_id, Some(ChunkServerId(3)));
        assert_eq!(reopened.meta().token.as_deref(), Some("tok"));
        // The disk belongs to c1: an MDS of c2 is refused, nothing changes.
        let err = persist(&mut d, None, &reg(3, "tok", "c2")).unwrap_err();
        assert!(matches!(err, ChunkServerError::ClusterMismatch { .. }));
        // So is a fresh disk configured for c1 meeting an MDS of c2.
        let (_t2, mut fresh) = formatted();
        let err = persist(&mut fresh, Some("c1"), &reg(1, "x", "c2")).unwrap_err();
        assert!(matches!(err, ChunkServerError::ClusterMismatch { .. }));
        assert_eq!(fresh.meta().chunkserver_id, None);
    }

    #[test]
    fn only_unavailability_is_retried() {
        assert!(retryable(&ChunkServerError::MdsUnavailable { tried: 2 }));
        assert!(retryable(&ChunkServerError::MdsRefused {
            source: MdsError::NotLeader { leader: None }
        }));
        assert!(!retryable(&ChunkServerError::MdsRefused {
            source: MdsError::TokenMismatch {
                id: ChunkServerId(1)
            }
        }));
    }
}
