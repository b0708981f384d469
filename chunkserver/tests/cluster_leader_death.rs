//! The leader watch: when a leader's process dies, its followers hand its groups over at
//! once instead of waiting for the election timeout. Three real chunkserver processes on
//! loopback with election timeouts far longer than the bound the test allows, so only
//! the watch can explain a new leader within it.

mod support;

use std::time::{Duration, Instant};
use support::*;

const TEST_LIMIT: Duration = Duration::from_secs(120);
/// Election timeouts (ms) no failover in this test may wait for.
const ELECTION: (u64, u64) = (8_000, 10_000);
/// Bound of a failover through the watch (a dial refused, one transfer-style election),
/// with slack for a loaded 2-core machine; well under `ELECTION.0`.
const HANDOVER_BOUND: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_leader_is_replaced_before_any_election_timeout() {
    bounded(TEST_LIMIT, async {
        let c = Cluster::start_with_config(3, &config_text_with(10_000, ELECTION, true)).await;
        let groups = [group(1), group(2)];
        for g in groups {
            c.create(g, &[1, 2, 3], &[1, 2, 3]).await;
        }
        // Put both groups on one leader, so one kill leaves two groups to hand over.
        let first = c.leader(groups[0], Duration::from_secs(30)).await;
        c.leader(groups[1], Duration::from_secs(30)).await;
        c.transfer(groups[1], first).await;
        let ws = workload(8, 3);
        for g in groups {
            write_all(&c, g, &ws).await;
        }
        // No wait for the watch connections: a watch that starts after the kill is
        // refused on its first dial, which is proof enough.
        let killed_at = Instant::now();
        c.kill(first);
        for g in groups {
            let new = c.leader(g, HANDOVER_BOUND).await;
            assert_ne!(new, first);
            eprintln!(
                "{g}: new leader cs{new} {:?} after SIGKILL of cs{first} (election timeout {} ms)",
                killed_at.elapsed(),
                ELECTION.0
            );
        }
        for g in groups {
            check_all(&c, g, &ws).await;
        }
    })
    .await
}
