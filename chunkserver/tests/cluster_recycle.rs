//! Purging deleted volumes with real processes: etcd, `basalt-mds` and three
//! `basalt-chunkserver serve`. A volume's chunks fill every chunkserver's small chunk
//! pool (writes are refused with `NoSpace`); deleting the volume frees nothing, purging it
//! deletes its chunks on every replica (`ChunkInfo` says gone) and a new volume can write
//! as many chunks again; that one is then purged with `basalt volume purge`. Purging an
//! unknown or a live volume is a typed refusal that changes nothing.

mod support;

#[path = "support/mds_env.rs"]
#[allow(dead_code)]
mod mds_env;

use basalt_proto::chunk::{ChunkInfo, RequestId, WriteChunk};
use basalt_proto::ids::{ChunkId, CopysetId, GroupId, LogicalPoolId, SEGMENT_SIZE};
use basalt_proto::mds::{
    CloseVolume, CreateVolume, DeleteVolume, GetSegment, OpenVolume, PurgeVolume, Purged,
    SegmentInfo,
};
use basalt_proto::status::{ChunkError, MdsError};
use bytes::Bytes;
use mds_env::{cluster_map, Env};
use std::time::Duration;
use support::*;

const TEST_LIMIT: Duration = Duration::from_secs(120);

/// Create `name` (one segment), allocate its segment and close it again.
async fn volume(env: &Env, name: &str) -> SegmentInfo {
    let create = CreateVolume {
        name: name.into(),
        size: SEGMENT_SIZE,
        owner: "o".into(),
        auth: None,
    };
    let (r, _) = env.call(env.mds_addr, &create).await.expect("MDS answers");
    r.expect("create volume");
    let open = OpenVolume {
        name: name.into(),
        owner: "o".into(),
        shared: false,
        client: "test".into(),
        auth: None,
    };
    let (r, _) = env.call(env.mds_addr, &open).await.expect("MDS answers");
    let o = r.expect("open volume");
    let get = GetSegment {
        volume: o.volume.id,
        session: o.session.id.clone(),
        index: 0,
        allocate: true,
    };
    let (r, _) = env.call(env.mds_addr, &get).await.expect("MDS answers");
    let seg = r.expect("allocate").expect("a segment");
    let close = CloseVolume {
        volume: o.volume.id,
        session: o.session.id,
    };
    env.call(env.mds_addr, &close)
        .await
        .expect("MDS answers")
        .0
        .expect("close");
    seg
}

/// Write 4 KiB at offset 0 of `chunk` through the leader of `g`.
async fn write(env: &Env, g: GroupId, chunk: ChunkId) -> Result<(), ChunkError> {
    let data = Bytes::from(vec![0x5a; 4096]);
    wait_for(&format!("a write of {chunk} to {g}"), WAIT, || async {
        let name = env.leader_of(g).await;
        let st = env.status(&name, g).await?;
        let req = WriteChunk {
            group: g,
            chunk,
            epoch: st.epoch,
            offset: 0,
            len: data.len() as u32,
            crc32c: crc32c::crc32c(&data),
            req: RequestId::NONE,
        };
        match env
            .call_with(env.cs[&name].addr?, &req, data.clone())
            .await?
        {
            (Ok(_), _) => Some(Ok(())),
            (Err(ChunkError::Redirect { .. } | ChunkError::Unavailable), _) => None,
            (Err(ChunkError::EpochTooOld { .. }), _) => None,
            (Err(e), _) => Some(Err(e)),
        }
    })
    .await
}

/// Whether each replica of `g` holds `chunk` (one answer per chunkserver).
async fn exists_on_replicas(env: &Env, g: GroupId, chunk: ChunkId) -> Vec<bool> {
    let mut out = Vec::new();
    for name in env.cs.keys() {
        let addr = env.cs[name].addr.expect("serving");
        let (r, _) = env
            .call(addr, &ChunkInfo { group: g, chunk })
            .await
            .expect("chunkserver answers");
        out.push(match r {
            Ok(ok) => ok.exists,
            Err(ChunkError::ChunkNotFound { .. }) => false,
            Err(e) => panic!("ChunkInfo {chunk} on {name}: {e}"),
        });
    }
    out
}

/// Write the segment's chunks in order until a chunkserver refuses with `NoSpace`;
/// returns the chunks written.
async fn fill(env: &Env, seg: &SegmentInfo) -> Vec<(GroupId, ChunkId)> {
    let mut written = Vec::new();
    for (cs, chunk) in &seg.chunks {
        let g = GroupId::of(seg.pool, *cs);
        match write(env, g, *chunk).await {
            Ok(()) => written.push((g, *chunk)),
            Err(ChunkError::NoSpace) => return written,
            Err(e) => panic!("write {chunk}: {e}"),
        }
    }
    panic!("64 chunks fit a pool of 6 chunk files");
}

/// Run `basalt --mds ADDR volume purge NAME --format json` with no client config file.
fn cli_purge(env: &Env, name: &str) -> std::process::Output {
    let bin = std::path::Path::new(BIN).with_file_name("basalt");
    assert!(bin.exists(), "build basalt-cli first: {}", bin.display());
    std::process::Command::new(bin)
        .args(["--mds", &env.mds_addr.to_string(), "volume", "purge", name])
        .args(["--format", "json"])
        .env("HOME", env.root.path())
        .env("XDG_CONFIG_HOME", env.root.path())
        .env_remove("BASALT_CLIENT_CONF")
        .env_remove("BASALT_MDS")
        .output()
        .expect("run basalt")
}

async fn purge(env: &Env, name: &str) -> Result<Purged, MdsError> {
    let req = PurgeVolume {
        name: name.into(),
        auth: None,
    };
    env.call(env.mds_addr, &req).await.expect("MDS answers").0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_a_deleted_volume_frees_its_chunks_on_every_replica() {
    bounded(TEST_LIMIT, async {
        // One server per zone, two copysets per chunkserver: 3 × 2 / 3 = 2 copysets,
        // each with a replica on every chunkserver.
        let mut env = Env::start(&cluster_map(1, 2), 3, 10_000).await;
        for i in 1..=3 {
            env.add_cs(&format!("h{i}")).await;
        }
        let (groups, _) = env.placed(2).await;
        env.leaders_known_to_mds(&groups).await;
        assert!(groups.contains(&GroupId::of(LogicalPoolId(1), CopysetId(1))));

        let seg = volume(&env, "v").await;
        let written = fill(&env, &seg).await;
        assert!(
            !written.is_empty(),
            "some chunks fit before the pool is full"
        );
        for (g, c) in &written {
            assert_eq!(exists_on_replicas(&env, *g, *c).await, [true; 3]);
        }

        // Bad input: unknown and live volumes are refused; nothing is deleted.
        assert_eq!(purge(&env, "nope").await, Err(MdsError::VolumeNotFound));
        let live = purge(&env, "v").await;
        assert!(
            matches!(live, Err(MdsError::VolumeNotDeleted { .. })),
            "{live:?}"
        );
        for (g, c) in &written {
            assert_eq!(exists_on_replicas(&env, *g, *c).await, [true; 3]);
        }

        // Delete: recycled, nothing freed yet (default retention is a day).
        let del = DeleteVolume {
            name: "v".into(),
            auth: None,
        };
        env.call(env.mds_addr, &del)
            .await
            .expect("MDS answers")
            .0
            .expect("delete");
        let (g0, c0) = written[0];
        assert_eq!(exists_on_replicas(&env, g0, c0).await, [true; 3]);

        // Purge: every allocated chunk acknowledged, the written ones gone everywhere.
        let out = purge(&env, "v").await.expect("purge");
        assert_eq!(out.volumes.len(), 1);
        assert_eq!(out.chunks, seg.chunks.len() as u64);
        for (g, c) in &written {
            assert_eq!(exists_on_replicas(&env, *g, *c).await, [false; 3]);
        }
        // Purged: a second purge finds nothing.
        assert_eq!(purge(&env, "v").await, Err(MdsError::VolumeNotFound));

        // The space is back: a new volume writes as many chunks (fresh ids).
        let seg2 = volume(&env, "w").await;
        let old: Vec<ChunkId> = seg.chunks.iter().map(|c| c.1).collect();
        assert!(seg2.chunks.iter().all(|c| !old.contains(&c.1)));
        let mut written2 = Vec::new();
        for (cs, chunk) in seg2.chunks.iter().take(written.len()) {
            let g = GroupId::of(seg2.pool, *cs);
            write(&env, g, *chunk)
                .await
                .unwrap_or_else(|e| panic!("write {chunk} after purge: {e}"));
            written2.push((g, *chunk));
        }

        // The CLI: a live volume is refused (non-zero exit), a deleted one purged.
        let out = cli_purge(&env, "w");
        assert!(!out.status.success(), "purge of a live volume succeeded");
        let del = DeleteVolume {
            name: "w".into(),
            auth: None,
        };
        env.call(env.mds_addr, &del)
            .await
            .expect("MDS answers")
            .0
            .expect("delete");
        let out = cli_purge(&env, "w");
        assert!(
            out.status.success(),
            "basalt volume purge: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(doc["chunks"], seg2.chunks.len() as u64);
        for (g, c) in &written2 {
            assert_eq!(exists_on_replicas(&env, *g, *c).await, [false; 3]);
        }
    })
    .await
}
