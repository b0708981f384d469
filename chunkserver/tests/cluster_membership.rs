//! Membership changes across real `basalt-chunkserver serve` processes: add, remove and
//! change a peer with a fourth process, and a lost disk replaced by a peer filled by
//! snapshot install.

mod support;

use basalt_proto::chunk::{AddPeer, ChangePeer, DeleteCopyset, RemovePeer};
use basalt_proto::ids::ChunkServerId;
use basalt_proto::status::PeerAddr;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;

const TEST_LIMIT: Duration = Duration::from_secs(150);

fn ids(peers: &[PeerAddr]) -> BTreeSet<u32> {
    peers.iter().map(|p| p.id.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_remove_and_change_peer_with_a_fourth_process() {
    bounded(TEST_LIMIT, async {
        let c = Cluster::start(4, 10_000).await;
        let g = group(10);
        c.create(g, &[1, 2, 3], &[1, 2, 3]).await;
        let ws = workload(15, 10);
        write_all(&c, g, &ws).await;

        // Add cs4: its replica is created pristine first (as the MDS would), then added.
        c.create(g, &[4], &[1, 2, 3, 4]).await;
        let epoch = c.epoch(g).await;
        let peer4 = c.node(4).peer();
        let e1 = c
            .change_members(g, &[1, 2, 3, 4], |epoch| AddPeer {
                group: g,
                epoch,
                peer: peer4,
            })
            .await;
        assert!(e1 > epoch);
        let l = c.leader(g, WAIT).await;
        let st = c.status(l, g).await.unwrap();
        assert_eq!(ids(&st.peers), BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(st.epoch, e1);
        c.transfer(g, 4).await;
        check_all(&c, g, &ws).await;

        // Remove cs4 again (asked of the leader, which is normally cs4 itself), then drop
        // the stray.
        let e2 = c
            .change_members(g, &[1, 2, 3], |epoch| RemovePeer {
                group: g,
                epoch,
                peer: ChunkServerId(4),
            })
            .await;
        assert!(e2 > e1);
        // The removed leader steps down; the remaining voters elect one of them.
        let l = wait_for("a leader other than the removed cs4", WAIT, || async {
            let l = c.leader(g, WAIT).await;
            (l != 4).then_some(l)
        })
        .await;
        assert_eq!(
            ids(&c.status(l, g).await.unwrap().peers),
            BTreeSet::from([1, 2, 3])
        );
        let (r, _) = c
            .call(4, &DeleteCopyset { group: g }, Bytes::new())
            .await
            .expect("cs4 reachable");
        r.expect("delete stray");

        // Change cs3 for cs4 in one step; cs3 becomes the stray.
        let more = workload(6, 11);
        write_all(&c, g, &more).await;
        c.create(g, &[4], &[1, 2, 4]).await;
        let epoch = c.epoch(g).await;
        let e3 = c
            .change_members(g, &[1, 2, 4], |epoch| ChangePeer {
                group: g,
                epoch,
                remove: ChunkServerId(3),
                add: peer4,
            })
            .await;
        assert!(e3 > epoch);
        let l = c.leader(g, WAIT).await;
        assert_ne!(l, 3);
        assert_eq!(
            ids(&c.status(l, g).await.unwrap().peers),
            BTreeSet::from([1, 2, 4])
        );
        let (r, _) = c
            .call(3, &DeleteCopyset { group: g }, Bytes::new())
            .await
            .expect("cs3 reachable");
        r.expect("delete stray");
        c.transfer(g, 4).await;
        check_all(&c, g, &ws).await;
        check_all(&c, g, &more).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_disk_is_replaced_by_a_peer_filled_by_snapshot_install() {
    bounded(TEST_LIMIT, async {
        // Snapshots every 8 entries with nothing kept behind them: the log a new peer
        // would need is gone from the leader, so only a snapshot can fill it.
        let mut c = Cluster::start(4, 8).await;
        let g = group(11);
        c.create(g, &[1, 2, 3], &[1, 2, 3]).await;
        let ws = workload(30, 12);
        write_all(&c, g, &ws).await;
        let l = c.leader(g, WAIT).await;
        let lost = if l == 3 { 2 } else { 3 };

        // The disk of `lost` dies; the process comes back on a wiped, re-formatted disk
        // without the replica: raft traffic for the group is refused there, harmlessly.
        c.wipe(lost);
        c.spawn(lost).await;
        assert!(c.status(lost, g).await.is_none());
        let more = workload(12, 13);
        let last = write_all(&c, g, &more).await;

        // The replacement (cs4) gets a pristine replica and takes the lost peer's place.
        let keep: Vec<u32> = [1, 2, 3].into_iter().filter(|&i| i != lost).collect();
        c.create(g, &[4], &[keep[0], keep[1], 4]).await;
        let peer4 = c.node(4).peer();
        c.change_members(g, &[keep[0], keep[1], 4], |epoch| ChangePeer {
            group: g,
            epoch,
            remove: ChunkServerId(lost),
            add: peer4,
        })
        .await;
        c.applied(4, g, last).await;
        c.transfer(g, 4).await;
        check_all(&c, g, &ws).await;
        check_all(&c, g, &more).await;
        let st = c.status(4, g).await.unwrap();
        assert_eq!(ids(&st.peers), BTreeSet::from([keep[0], keep[1], 4]));
    })
    .await
}
