//! `ResetPeers` across real `basalt-chunkserver serve` processes: a copyset whose two
//! other replicas were SIGKILLed for good is forced down to its survivor, which then
//! leads alone, serves the writes acknowledged before the loss and takes new ones (also
//! after a restart). Refusals (live leader, bad peer lists, unknown copyset) change
//! nothing. With a real MDS on a real etcd, the MDS then restores three replicas.

mod support;

#[path = "support/mds_env.rs"]
mod mds_env;

use basalt_proto::chunk::{RaftRole, ResetPeers, ResetPeersError};
use basalt_proto::ids::{ChunkServerId, Epoch, GroupId};
use basalt_proto::status::ChunkError;
use bytes::Bytes;
use std::time::{Duration, Instant};
use support::*;

const TEST_LIMIT: Duration = Duration::from_secs(120);

async fn reset(
    c: &Cluster,
    on: u32,
    g: GroupId,
    peers: &[u32],
    ignore_leader: bool,
) -> Result<Epoch, ResetPeersError> {
    let req = ResetPeers {
        group: g,
        peers: peers.iter().copied().map(ChunkServerId).collect(),
        ignore_leader,
    };
    let (r, _) = c
        .call(on, &req, Bytes::new())
        .await
        .unwrap_or_else(|| panic!("cs{on} reachable"));
    r.map(|ok| ok.epoch)
}

/// Over two election timeouts, `id` never leads `g`, and it refuses a read.
async fn assert_leaderless(c: &Cluster, id: u32, g: GroupId) {
    let until = Instant::now() + Duration::from_millis(2 * ELECTION_MAX_MS);
    while Instant::now() < until {
        let st = c.status(id, g).await.expect("survivor answers");
        assert_ne!(st.role, RaftRole::Leader, "a lone replica of 3 cannot lead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c
        .read_at(id, g, 100, 0, 4096)
        .await
        .expect("survivor answers");
    assert!(
        matches!(
            r,
            Err(ChunkError::Redirect { .. } | ChunkError::Unavailable)
        ),
        "read on a leaderless copyset: {r:?}"
    );
}

/// The survivor leads alone, at `epoch`, and every write reads back.
async fn assert_leads_alone(c: &Cluster, id: u32, g: GroupId, epoch: Epoch, ws: &[Write]) {
    let l = c.leader(g, WAIT).await;
    assert_eq!(l, id);
    let st = c.status(id, g).await.unwrap();
    assert_eq!(st.role, RaftRole::Leader);
    assert_eq!(
        st.peers.iter().map(|p| p.id.0).collect::<Vec<_>>(),
        vec![id]
    );
    assert_eq!(st.epoch, epoch);
    check_all(c, g, ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_forced_to_lead_alone_keeps_acknowledged_writes() {
    bounded(TEST_LIMIT, async {
        let mut c = Cluster::start(3, 10_000).await;
        let g = group(20);
        c.create(g, &[1, 2, 3], &[1, 2, 3]).await;
        let ws = workload(15, 20);
        let last = write_all(&c, g, &ws).await;
        let l = c.leader(g, WAIT).await;
        let s = (1..=3).find(|&i| i != l).unwrap();
        let other = (1..=3).find(|&i| i != l && i != s).unwrap();
        c.applied(s, g, last).await;
        let epoch = c.epoch(g).await;

        // Refused while the leader is alive, on a follower and on the leader itself.
        for on in [s, l] {
            assert_eq!(
                reset(&c, on, g, &[on], false).await,
                Err(ResetPeersError::LeaderAlive {
                    group: g,
                    leader: ChunkServerId(l)
                })
            );
        }
        // Bad requests.
        let me = ChunkServerId(s);
        assert_eq!(
            reset(&c, s, group(99), &[s], true).await,
            Err(ResetPeersError::Chunk(ChunkError::CopysetNotFound {
                group: group(99)
            }))
        );
        assert_eq!(
            reset(&c, s, g, &[], true).await,
            Err(ResetPeersError::EmptyPeers { group: g })
        );
        assert_eq!(
            reset(&c, s, g, &[other], true).await,
            Err(ResetPeersError::MissingSelf {
                group: g,
                local: me
            })
        );
        assert_eq!(
            reset(&c, s, g, &[s, 9], true).await,
            Err(ResetPeersError::UnknownPeer {
                group: g,
                peer: ChunkServerId(9)
            })
        );
        assert_eq!(
            reset(&c, s, g, &[s, s], true).await,
            Err(ResetPeersError::DuplicatePeer { group: g, peer: me })
        );
        // Nothing changed: same leader, same epoch, still writable.
        assert_eq!(c.epoch(g).await, epoch);
        assert_eq!(c.leader(g, WAIT).await, l);

        // Two replicas are lost for good.
        c.kill(l);
        c.kill(other);
        assert_leaderless(&c, s, g).await;

        let forced = reset(&c, s, g, &[s], false).await.expect("reset");
        assert!(forced > epoch, "{forced} > {epoch}");
        assert_leads_alone(&c, s, g, forced, &ws).await;
        let more = workload(9, 21);
        write_all(&c, g, &more).await;
        check_all(&c, g, &more).await;

        // It leads now: a second reset is refused.
        assert_eq!(
            reset(&c, s, g, &[s], false).await,
            Err(ResetPeersError::LeaderAlive {
                group: g,
                leader: me
            })
        );

        // The forced membership is durable.
        c.stop(s).await;
        c.spawn(s).await;
        assert_leads_alone(&c, s, g, forced, &ws).await;
        check_all(&c, g, &more).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_is_reset_once_its_majority_is_stale() {
    bounded(TEST_LIMIT, async {
        let c = Cluster::start(3, 10_000).await;
        let g = group(21);
        c.create(g, &[1, 2, 3], &[1, 2, 3]).await;
        let ws = workload(12, 22);
        write_all(&c, g, &ws).await;
        let l = c.leader(g, WAIT).await;
        let epoch = c.epoch(g).await;
        for f in (1..=3).filter(|&i| i != l) {
            c.kill(f);
        }
        // The old leader keeps its role (it never steps down by itself) but no majority
        // acknowledges it any more: once that is stale, the reset goes through.
        let forced = wait_for("the isolated leader to accept a reset", WAIT, || async {
            match reset(&c, l, g, &[l], false).await {
                Err(ResetPeersError::LeaderAlive { leader, .. }) => {
                    assert_eq!(leader, ChunkServerId(l));
                    None
                }
                r => Some(r.expect("reset")),
            }
        })
        .await;
        assert!(forced > epoch);
        assert_leads_alone(&c, l, g, forced, &ws).await;
        let more = workload(6, 23);
        write_all(&c, g, &more).await;
        check_all(&c, g, &more).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_survivors_of_four_are_forced_to_a_pair() {
    bounded(TEST_LIMIT, async {
        let c = Cluster::start(4, 10_000).await;
        let g = group(22);
        c.create(g, &[1, 2, 3, 4], &[1, 2, 3, 4]).await;
        let ws = workload(12, 24);
        let last = write_all(&c, g, &ws).await;
        let l = c.leader(g, WAIT).await;
        // The survivors: two followers with everything applied; the leader and the
        // other follower are lost (two of four: no majority left).
        let mut followers = (1..=4).filter(|&i| i != l);
        let (a, b, gone) = (
            followers.next().unwrap(),
            followers.next().unwrap(),
            followers.next().unwrap(),
        );
        c.applied(a, g, last).await;
        c.applied(b, g, last).await;
        let epoch = c.epoch(g).await;
        c.kill(l);
        c.kill(gone);
        let forced = wait_for("the survivor to accept the reset", WAIT, || async {
            match reset(&c, a, g, &[a, b], false).await {
                Err(ResetPeersError::LeaderAlive { .. }) => None,
                r => Some(r.expect("reset")),
            }
        })
        .await;
        assert!(forced > epoch);
        // `a` campaigns; `b`, still on the old membership, votes for its longer log and
        // learns the forced membership from the new leader.
        let leader = c.leader(g, WAIT).await;
        assert!(leader == a || leader == b, "leader {leader}");
        let want: Vec<u32> = if a < b { vec![a, b] } else { vec![b, a] };
        for id in [a, b] {
            wait_for(
                &format!("cs{id} to have the pair as voters"),
                WAIT,
                || async {
                    let st = c.status(id, g).await?;
                    let voters: Vec<u32> = st.peers.iter().map(|p| p.id.0).collect();
                    (voters == want && st.epoch >= forced).then_some(())
                },
            )
            .await;
        }
        check_all(&c, g, &ws).await;
        let more = workload(6, 25);
        let last = write_all(&c, g, &more).await;
        check_all(&c, g, &more).await;
        // Both replicate: the new writes reach the follower too.
        c.applied(a, g, last).await;
        c.applied(b, g, last).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mds_restores_the_replicas_of_a_reset_copyset() {
    bounded(TEST_LIMIT, async {
        use basalt_proto::mds::ChunkServerState;
        use mds_env::{cluster_map, Env};
        // Two servers per zone, one copyset per chunkserver: 6 × 1 / 3 = 2 copysets, and
        // every zone keeps a live chunkserver outside the copyset that loses two replicas.
        let mut env = Env::start(&cluster_map(2, 1), 6, 3000).await;
        for i in 1..=6 {
            env.add_cs(&format!("h{i}")).await;
        }
        let (groups, infos) = env.placed(2).await;
        env.leaders_known_to_mds(&groups).await;
        let (g, info) = (groups[0], &infos[0]);
        env.write(g, 7).await;
        let leader = env.leader_of(g).await;
        let names: Vec<String> = info.peers.iter().map(|p| env.name_of(p.id)).collect();
        let survivor = names.iter().find(|n| **n != leader).unwrap().clone();
        let last = env.status(&leader, g).await.unwrap().last_index;
        wait_for("the survivor to apply the write", WAIT, || async {
            let st = env.status(&survivor, g).await?;
            (st.applied >= last).then_some(())
        })
        .await;
        let lost: Vec<ChunkServerId> = info
            .peers
            .iter()
            .map(|p| p.id)
            .filter(|&id| env.name_of(id) != survivor)
            .collect();
        for &id in &lost {
            let name = env.name_of(id);
            env.cs.get_mut(&name).unwrap().proc.kill();
        }
        // The operator's part: make sure they are gone (the MDS would otherwise pick a
        // lost chunkserver it still thinks online as the new replica's home).
        for &id in &lost {
            env.wait_state(id, ChunkServerState::Offline).await;
        }

        let me = env.id_of(&survivor);
        let addr = env.cs[&survivor].addr.unwrap();
        let req = ResetPeers {
            group: g,
            peers: vec![me],
            ignore_leader: false,
        };
        let forced = wait_for("the survivor to accept the reset", WAIT, || async {
            match env.call(addr, &req).await? {
                (Ok(ok), _) => Some(ok.epoch),
                (Err(ResetPeersError::LeaderAlive { .. }), _) => None,
                (Err(e), _) => panic!("reset {g} on {me}: {e}"),
            }
        })
        .await;

        // The survivor's heartbeat carries the forced membership; the scheduler adds a
        // replica in each lost zone, one at a time.
        wait_for(
            "the MDS to restore three replicas",
            Duration::from_secs(60),
            || async {
                let info = env.copysets(&[g]).await?.pop()?;
                let ids: Vec<ChunkServerId> = info.peers.iter().map(|p| p.id).collect();
                let restored = ids.len() == 3
                    && info.epoch > forced
                    && ids.contains(&me)
                    && !lost.iter().any(|l| ids.contains(l));
                restored.then_some(())
            },
        )
        .await;
        env.leaders_known_to_mds(&[g]).await;
        assert!(
            env.read(g).await.iter().all(|&b| b == 7),
            "data before the loss"
        );
        env.write(g, 8).await;
        assert!(env.read(g).await.iter().all(|&b| b == 8), "data after");
    })
    .await
}
