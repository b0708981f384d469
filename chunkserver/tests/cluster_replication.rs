//! Three real `basalt-chunkserver serve` processes on loopback: replication, leader
//! failover after SIGKILL, and restarts (graceful and SIGKILL) of the whole cluster.

mod support;

use basalt_proto::status::ChunkError;
use bytes::Bytes;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::*;

const TEST_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_replicate_and_every_replica_serves_them_as_leader() {
    bounded(TEST_LIMIT, async {
        let c = Cluster::start(3, 10_000).await;
        let g = group(1);
        c.create(g, &[1, 2, 3], &[1, 2, 3]).await;
        c.leader(g, WAIT).await;
        let ws = workload(24, 1);
        let last = write_all(&c, g, &ws).await;
        for id in 1..=3 {
            c.applied(id, g, last).await;
        }
        // Every replica, once it leads, answers every write.
        for id in 1..=3 {
            c.transfer(g, id).await;
            for (chunk, off, data) in &ws {
                let got = c
                    .read_at(id, g, *chunk, *off, data.len() as u32)
                    .await
                    .expect("leader reachable")
                    .unwrap_or_else(|e| panic!("read at cs{id}: {e}"));
                assert!(got == *data, "cs{id}: {g}/{chunk}@{off} differs");
            }
        }
        let st = c.status(1, g).await.unwrap();
        assert_eq!(st.peers.len(), 3);
        assert!(st.learners.is_empty());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_elects_a_new_one_and_keeps_acked_writes() {
    bounded(TEST_LIMIT, async {
        let mut c = Cluster::start(3, 10_000).await;
        let g = group(2);
        c.create(g, &[1, 2, 3], &[1, 2, 3]).await;
        let old = c.leader(g, WAIT).await;
        let ws = workload(12, 2);
        write_all(&c, g, &ws).await;

        // A writer keeps going while the leader is SIGKILLed under it: every write it
        // saw acknowledged must survive; unacknowledged ones may or may not have landed.
        let stream = workload(36, 6);
        let acked = Mutex::new(Vec::new());
        let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(0usize);
        let writer = async {
            for w in &stream {
                c.write(g, w.0, w.1, &w.2).await;
                acked.lock().unwrap().push(w.clone());
                progress_tx.send_replace(acked.lock().unwrap().len());
            }
        };
        let killer = async {
            progress_rx.wait_for(|&n| n >= 8).await.unwrap();
            let at = Instant::now();
            c.kill(old);
            at
        };
        let ((), killed_at) = tokio::join!(writer, killer);
        // Election bound of the config: two maximal election timeouts, plus slack for
        // a loaded 2-core CI machine (process scheduling, not raft).
        let bound = Duration::from_millis(2 * ELECTION_MAX_MS) + Duration::from_secs(5);
        let new = c.leader(g, bound).await;
        assert_ne!(new, old);
        eprintln!(
            "new leader cs{new}, {:?} after the kill (raft bound {} ms)",
            killed_at.elapsed(),
            2 * ELECTION_MAX_MS
        );
        let acked = acked.into_inner().unwrap();
        assert_eq!(acked.len(), stream.len());
        check_all(&c, g, &ws).await;
        check_all(&c, g, &acked).await;

        // The killed node catches up on restart and serves everything as leader.
        let more = workload(6, 7);
        let last = write_all(&c, g, &more).await;
        c.spawn(old).await;
        c.applied(old, g, last).await;
        c.transfer(g, old).await;
        check_all(&c, g, &ws).await;
        check_all(&c, g, &acked).await;
        check_all(&c, g, &more).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_node_preserves_the_data() {
    bounded(TEST_LIMIT, async {
        let mut c = Cluster::start(3, 10_000).await;
        let (g1, g2) = (group(3), group(4));
        c.create(g1, &[1, 2, 3], &[1, 2, 3]).await;
        c.create(g2, &[1, 2, 3], &[1, 2, 3]).await;
        let w1 = workload(12, 3);
        let w2 = workload(12, 4);
        write_all(&c, g1, &w1).await;
        let last2 = write_all(&c, g2, &w2).await;
        for id in 1..=3 {
            c.applied(id, g2, last2).await;
        }

        // Graceful: SIGTERM exits 0 (asserted by stop), copysets come back from the WAL.
        for id in 1..=3 {
            c.stop(id).await;
        }
        for id in 1..=3 {
            c.spawn(id).await;
        }
        check_all(&c, g1, &w1).await;
        check_all(&c, g2, &w2).await;

        // Crash: every acknowledged write is in the fsynced WAL.
        let w3 = workload(9, 5);
        write_all(&c, g1, &w3).await;
        for id in 1..=3 {
            c.kill(id);
        }
        for id in 1..=3 {
            c.spawn(id).await;
        }
        check_all(&c, g1, &w3).await;
        check_all(&c, g2, &w2).await;
        // and the chunks never written read as zeros where untouched
        let zeros = c.read(g1, 100, (CHUNK - 4096) as u32, 4096).await;
        assert_eq!(zeros, Bytes::from(vec![0u8; 4096]));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_chunk_pool_refuses_new_chunks_with_no_space_and_keeps_serving() {
    bounded(TEST_LIMIT, async {
        // Every data dir has a pool of POOL_CHUNKS chunk files.
        let c = Cluster::start(3, 10_000).await;
        let g = group(4);
        c.create(g, &[1, 2, 3], &[1, 2, 3]).await;
        let block = |i: u64| pattern(4096, 40 + i);
        for chunk in 0..POOL_CHUNKS {
            c.write(g, chunk, 8192, &block(chunk)).await;
        }

        // The pool is exhausted: a write that needs a new chunk is refused up front...
        for _ in 0..3 {
            assert_eq!(
                c.try_write(g, POOL_CHUNKS, 0, &block(99)).await,
                Err(ChunkError::NoSpace)
            );
        }
        // ...while existing chunks still take writes, every daemon keeps running, and
        // nothing written before is damaged.
        c.write(g, 0, 12288, &block(100)).await;
        for id in 1..=3 {
            assert!(c.alive(id), "cs{id} still running");
        }
        for chunk in 0..POOL_CHUNKS {
            assert!(c.read(g, chunk, 8192, 4096).await == block(chunk));
        }
        assert!(c.read(g, 0, 12288, 4096).await == block(100));

        // A deleted chunk's file returns to the pool (once zeroed), and the new chunk fits.
        c.delete_chunk(g, 1).await.unwrap();
        wait_for("the freed chunk file to be usable", WAIT, || async {
            match c.try_write(g, POOL_CHUNKS, 0, &block(99)).await {
                Ok(_) => Some(()),
                Err(ChunkError::NoSpace) => None,
                Err(e) => panic!("write after delete: {e}"),
            }
        })
        .await;
        assert!(c.read(g, POOL_CHUNKS, 0, 4096).await == block(99));

        // Offline check of every disk after a clean stop: headers and WAL intact.
        for id in 1..=3 {
            c.stop(id).await;
            let out = std::process::Command::new(BIN)
                .arg("check")
                .arg("--data-dir")
                .arg(&c.node(id).dir)
                .output()
                .expect("run check");
            assert!(
                out.status.success(),
                "check cs{id}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    })
    .await
}
