//! Leader election against a real etcd: several candidates in one process, each with its
//! own client (like separate MDS processes).

use basalt_mds::election::{leader, Candidate, ElectionConfig, Leadership, StepDownReason};
use basalt_mds::store::etcd::{connect_streaming as connect, EtcdStore};
use basalt_mds::store::fence::FencedStore;
use basalt_mds::store::MetaStore;
use basalt_mds::Error;
use basalt_testkit::EtcdProcess;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const TTL: Duration = Duration::from_secs(2);
const BOUND: Duration = Duration::from_secs(30);

fn cfg(i: usize) -> ElectionConfig {
    let mut c = ElectionConfig::new(format!("mds-{i}@127.0.0.1:{}", 7000 + i));
    c.ttl = TTL;
    c
}

/// Start `n` candidates campaigning; winners are reported on the channel in order.
async fn start(
    endpoint: &str,
    n: usize,
) -> mpsc::UnboundedReceiver<(usize, Candidate, Leadership, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..n {
        let client = connect(&[endpoint.to_string()]).await.unwrap();
        let tx = tx.clone();
        tokio::spawn(async move {
            // Candidates still campaigning when the test ends see etcd go away: not a failure.
            let Ok(mut c) = Candidate::new(client, cfg(i)).await else {
                return;
            };
            if let Ok(l) = c.campaign().await {
                let _ = tx.send((i, c, l, Instant::now()));
            }
        });
    }
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_lease_fails_over_within_ttl_and_fences_the_old_leader() {
    let etcd = EtcdProcess::start().expect("etcd");
    let store: Arc<dyn MetaStore> = Arc::new(EtcdStore::connect(&[etcd.endpoint()]).await.unwrap());
    let client = connect(&[etcd.endpoint()]).await.unwrap();
    let mut rx = start(&etcd.endpoint(), 3).await;
    let (first, cand, lead, _) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(lead.is_leader());
    let seen = leader(&client, basalt_mds::keys::LEADER).await.unwrap();
    assert_eq!(seen, Some(cfg(first).value));
    let old = FencedStore::new(store.clone(), lead.fence());
    old.put(b"/data", b"from first leader").await.unwrap();

    // "Crash": stop keeping the lease alive.
    let t0 = Instant::now();
    cand.abort_keepalive();
    let (second, _c2, lead2, won_at) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let failover = won_at - t0;
    println!("failover after keepalive stop: {failover:?} (ttl {TTL:?})");
    assert_ne!(first, second);
    assert!(failover < TTL + Duration::from_secs(1), "{failover:?}");

    // The old leader knows it lost (local deadline) and cannot write (fence).
    assert!(!lead.is_leader());
    assert!(matches!(
        old.put(b"/data", b"stale").await,
        Err(Error::Fenced)
    ));
    let new = FencedStore::new(store.clone(), lead2.fence());
    new.put(b"/data", b"from second leader").await.unwrap();
    assert_eq!(
        store.get(b"/data").await.unwrap().unwrap().value,
        b"from second leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_resign_hands_over_quickly() {
    let etcd = EtcdProcess::start().expect("etcd");
    let client = connect(&[etcd.endpoint()]).await.unwrap();
    assert_eq!(
        leader(&client, basalt_mds::keys::LEADER).await.unwrap(),
        None,
        "no leader is None, not an error"
    );
    let mut rx = start(&etcd.endpoint(), 2).await;
    let (first, _c1, lead, _) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let t0 = Instant::now();
    lead.resign().await.unwrap();
    let (second, _c2, lead2, won_at) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let handover = won_at - t0;
    println!("graceful hand-over: {handover:?}");
    assert_ne!(first, second);
    assert!(handover < Duration::from_secs(1), "{handover:?}");
    assert!(lead2.is_leader());
    assert_eq!(
        leader(&client, basalt_mds::keys::LEADER).await.unwrap(),
        Some(cfg(second).value)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_when_its_key_is_deleted() {
    let etcd = EtcdProcess::start().expect("etcd");
    let mut rx = start(&etcd.endpoint(), 1).await;
    let (_, _c, lead, _) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    // Someone deletes our key (an operator, or the lease revoked elsewhere).
    let store = EtcdStore::connect(&[etcd.endpoint()]).await.unwrap();
    store.delete(&lead.fence().key).await.unwrap();
    let t0 = Instant::now();
    let reason = tokio::time::timeout(BOUND, lead.stepped_down())
        .await
        .unwrap();
    // Depending on timing etcd ends the observe stream, or our key check notices first.
    assert!(
        matches!(
            reason,
            StepDownReason::KeyLost | StepDownReason::ObserveEnded
        ),
        "{reason:?}"
    );
    assert!(
        t0.elapsed() < TTL,
        "noticed within TTL/3 + a round trip: {:?} ({reason:?})",
        t0.elapsed()
    );
    assert!(!lead.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_outlives_request_timeouts() {
    // Streams (keepalive, observe) must not be cut by a per-request deadline.
    let etcd = EtcdProcess::start().expect("etcd");
    let mut rx = start(&etcd.endpoint(), 1).await;
    let (_, _c, lead, _) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let hold = basalt_mds::store::etcd::REQUEST_TIMEOUT + Duration::from_secs(1);
    let r = tokio::time::timeout(hold, lead.stepped_down()).await;
    assert!(r.is_err(), "stepped down: {r:?}");
    assert!(lead.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_makes_the_leader_step_down() {
    let mut etcd = EtcdProcess::start().expect("etcd");
    let mut rx = start(&etcd.endpoint(), 1).await;
    let (_, _c, lead, _) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let t0 = Instant::now();
    etcd.kill();
    let reason = tokio::time::timeout(BOUND, lead.stepped_down())
        .await
        .unwrap();
    println!("step-down after etcd loss: {:?} ({reason:?})", t0.elapsed());
    assert!(!lead.is_leader());
    assert!(t0.elapsed() < TTL + Duration::from_secs(2));
}

/// Wait (bounded) until the follower reports `want`.
async fn next_value(seen: &mut mpsc::UnboundedReceiver<Option<String>>, want: String) {
    let found = async {
        loop {
            match seen.recv().await {
                Some(Some(v)) if v == want => return,
                Some(_) => {}
                None => panic!("follower ended"),
            }
        }
    };
    tokio::time::timeout(BOUND, found)
        .await
        .unwrap_or_else(|_| panic!("follower never reported {want}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_reports_each_new_leader() {
    let etcd = EtcdProcess::start().expect("etcd");
    let (tx, mut seen) = mpsc::unbounded_channel();
    let follower = tokio::spawn(basalt_mds::election::follow_leader(
        connect(&[etcd.endpoint()]).await.unwrap(),
        basalt_mds::keys::LEADER.to_string(),
        // Longer than BOUND: the new leader can only come through the observe stream.
        Duration::from_secs(60),
        move |v| {
            let _ = tx.send(v);
        },
    ));
    // Nobody leads yet.
    let first_report = tokio::time::timeout(BOUND, seen.recv()).await.unwrap();
    assert_eq!(first_report, Some(None));
    let mut rx = start(&etcd.endpoint(), 2).await;
    let (first, _c1, lead, _) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    next_value(&mut seen, cfg(first).value).await;
    lead.resign().await.unwrap();
    let (second, _c2, _lead2, _) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first, second);
    let t0 = Instant::now();
    next_value(&mut seen, cfg(second).value).await;
    println!(
        "follower saw the new leader {:?} after it won",
        t0.elapsed()
    );
    follower.abort();
}
