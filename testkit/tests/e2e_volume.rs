//! Volume I/O end to end through real processes (etcd, 3 MDS, 3 chunkservers) and the
//! client library over TCP: random patterns across chunk (16 MiB) and segment (1 GiB)
//! boundaries and larger than a chunk, misaligned and out-of-range requests refused
//! with typed errors (and the volume still serving), discard reading back as zeros,
//! concurrent writers on different volumes, and a restarted client finding its data.
//!
//! Needs `basalt-mds`, `basalt-chunkserver` built in the target dir and `etcd` on PATH.

use basalt_client::{ClientError, OpenOptions};
use basalt_proto::ids::{CHUNK_SIZE, SEGMENT_SIZE};
use basalt_proto::status::MdsError;
use basalt_testkit::rig::Rig;
use basalt_testkit::workload::block::SplitMix;
use bytes::Bytes;
use std::time::Duration;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// Bound of every client call (none should take more than a few ms).
const CALL: Duration = Duration::from_secs(20);

fn pattern(seed: u64, len: u64) -> Bytes {
    let mut rng = SplitMix(seed);
    let mut v = Vec::with_capacity(len as usize);
    while (v.len() as u64) < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len as usize);
    Bytes::from(v)
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CALL, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {CALL:?}"))
}

/// Compare without printing megabytes on failure.
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {i} (got {:#04x}, want {:#04x})",
            got[i], want[i]
        );
    }
}

#[test]
fn volume_io_across_boundaries_rejections_discard_concurrency_and_restart() {
    let rig = Rig::up(8).expect("cluster up");
    let vol = rig
        .create_volume(&rig.client, "e2e-a", 2 * SEGMENT_SIZE)
        .expect("create and open e2e-a");
    assert_eq!(vol.size(), 2 * SEGMENT_SIZE);

    // (offset, len) pieces: inside a chunk, across a chunk boundary, longer than a
    // chunk (17 MiB over chunks 0..=1, one request per chunk piece), across the segment
    // boundary, unaligned to 4 KiB but sector (512 B) aligned.
    let cases: Vec<(u64, u64)> = vec![
        (4 * KIB, 8 * KIB),
        (CHUNK_SIZE - 64 * KIB, 128 * KIB),
        (8 * MIB, 17 * MIB),
        (SEGMENT_SIZE - 64 * KIB, 128 * KIB),
        (CHUNK_SIZE + 512, 3 * 512),
    ];
    let mut written: Vec<(u64, Bytes)> = Vec::new();
    rig.rt.block_on(async {
        // Never-written ranges read as zeros, in an allocated and an unallocated segment.
        let z = bounded("read fresh", vol.read(SEGMENT_SIZE + 4 * MIB, 64 * KIB))
            .await
            .unwrap();
        assert!(z.iter().all(|&b| b == 0));
        for (i, &(off, len)) in cases.iter().enumerate() {
            let data = pattern(i as u64 + 1, len);
            bounded("write", vol.write(off, data.clone()))
                .await
                .unwrap_or_else(|e| panic!("write {off}+{len}: {e}"));
            written.push((off, data));
        }
        // Later writes overlap earlier ones (case 2 covers case 1's second half, the
        // 512-byte case sits inside case 2): read back what the last writer left, by
        // replaying the writes over a model.
        let end = CHUNK_SIZE * 2;
        let mut model = vec![0u8; end as usize];
        for (off, data) in &written {
            if off + data.len() as u64 <= end {
                model[*off as usize..*off as usize + data.len()].copy_from_slice(data);
            }
        }
        let got = bounded("read chunks 0-1", vol.read(0, end)).await.unwrap();
        assert_same("chunks 0 and 1", &got, &model);
        let (off, data) = &written[3];
        let got = bounded("read segment boundary", vol.read(*off, data.len() as u64))
            .await
            .unwrap();
        assert_same("across the segment boundary", &got, data);
        // A read straddling the segment boundary with unwritten parts on both sides.
        let got = bounded("read around", vol.read(SEGMENT_SIZE - 128 * KIB, 256 * KIB))
            .await
            .unwrap();
        assert!(got[..64 * KIB as usize].iter().all(|&b| b == 0));
        assert_same("middle", &got[64 * KIB as usize..192 * KIB as usize], data);
        assert!(got[192 * KIB as usize..].iter().all(|&b| b == 0));

        // Misaligned and out-of-range requests: typed errors, nothing sent.
        let size = vol.size();
        for (off, len) in [(100, 4096), (0, 1000), (0, 0), (CHUNK_SIZE - 1, 2)] {
            let e = vol.write(off, pattern(9, len)).await.unwrap_err();
            assert!(
                matches!(e, ClientError::Misaligned { .. }),
                "{off}+{len}: {e}"
            );
            let e = vol.read(off, len).await.unwrap_err();
            assert!(
                matches!(e, ClientError::Misaligned { .. }),
                "{off}+{len}: {e}"
            );
        }
        for (off, len) in [(size, 4096), (size - 4096, 8192), (u64::MAX - 511, 512)] {
            let e = vol.read(off, len).await.unwrap_err();
            assert!(
                matches!(e, ClientError::OutOfRange { .. }),
                "{off}+{len}: {e}"
            );
            let e = vol.discard(off, len).await.unwrap_err();
            assert!(
                matches!(e, ClientError::OutOfRange { .. }),
                "{off}+{len}: {e}"
            );
        }
        // Still serving, nothing changed.
        let got = bounded("read after rejections", vol.read(0, end))
            .await
            .unwrap();
        assert_same("after rejections", &got, &model);

        // Discard: a whole chunk (deleted) and a partial range (zeros written).
        bounded("discard chunk 1", vol.discard(CHUNK_SIZE, CHUNK_SIZE))
            .await
            .unwrap();
        bounded("discard partial", vol.discard(8 * MIB, 64 * KIB))
            .await
            .unwrap();
        model[CHUNK_SIZE as usize..].fill(0);
        model[8 * MIB as usize..(8 * MIB + 64 * KIB) as usize].fill(0);
        let got = bounded("read after discard", vol.read(0, end))
            .await
            .unwrap();
        assert_same("after discard", &got, &model);
        // A discarded chunk takes writes again.
        let again = pattern(77, 64 * KIB);
        bounded("rewrite", vol.write(CHUNK_SIZE + MIB, again.clone()))
            .await
            .unwrap();
        model[(CHUNK_SIZE + MIB) as usize..(CHUNK_SIZE + MIB + 64 * KIB) as usize]
            .copy_from_slice(&again);
        bounded("flush", vol.flush()).await.unwrap();
        let got = bounded("read after rewrite", vol.read(0, end))
            .await
            .unwrap();
        assert_same("after rewrite", &got, &model);
        written = vec![(0, Bytes::from(model))];
    });

    // Concurrent writers on two more volumes (and on e2e-a's segment-boundary range):
    // each writes its own pattern in 64 KiB pieces, all at once.
    let b = rig
        .create_volume(&rig.client, "e2e-b", SEGMENT_SIZE)
        .unwrap();
    let c = rig
        .create_volume(&rig.client, "e2e-c", SEGMENT_SIZE)
        .unwrap();
    rig.rt.block_on(async {
        let mut tasks = Vec::new();
        for (seed, v) in [(100u64, b.clone()), (200, c.clone())] {
            for w in 0..4u64 {
                let v = v.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..8u64 {
                        let off = (w * 8 + i) * 64 * KIB;
                        v.write(off, pattern(seed + w * 8 + i, 64 * KIB)).await?;
                    }
                    Ok::<_, ClientError>(())
                }));
            }
        }
        for t in tasks {
            bounded("concurrent writer", t).await.unwrap().unwrap();
        }
        for (seed, v) in [(100u64, &b), (200, &c)] {
            let got = bounded("read back", v.read(0, 2 * MIB)).await.unwrap();
            for k in 0..32u64 {
                let piece = &got[(k * 64 * KIB) as usize..((k + 1) * 64 * KIB) as usize];
                assert_same(
                    &format!("volume seed {seed} piece {k}"),
                    piece,
                    &pattern(seed + k, 64 * KIB),
                );
            }
        }
    });

    // Client restart: drop every handle (no close), connect a new client, open again,
    // data intact.
    let (model_off, model) = written.pop().unwrap();
    let boundary = cases[3];
    let boundary_data = pattern(4, boundary.1);
    drop((vol, b, c));
    let client = rig.new_client().unwrap();
    rig.rt.block_on(async {
        // The old handles were dropped without closing (as a crashed process leaves
        // them): the exclusive open is refused until the old session's lease lapses.
        let t0 = std::time::Instant::now();
        let vol = loop {
            match bounded("reopen", client.open("e2e-a", OpenOptions::default())).await {
                Ok(v) => break v,
                Err(ClientError::Mds(MdsError::VolumeBusy { .. })) if t0.elapsed() < CALL => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("reopen after {:?}: {e}", t0.elapsed()),
            }
        };
        let got = bounded(
            "read after restart",
            vol.read(model_off, model.len() as u64),
        )
        .await
        .unwrap();
        assert_same("after client restart", &got, &model);
        let got = bounded("boundary after restart", vol.read(boundary.0, boundary.1))
            .await
            .unwrap();
        assert_same(
            "segment boundary after client restart",
            &got,
            &boundary_data,
        );
        let list = bounded("list", client.list_volumes()).await.unwrap();
        let mut names: Vec<&str> = list.iter().map(|v| v.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["e2e-a", "e2e-b", "e2e-c"]);
    });
}
