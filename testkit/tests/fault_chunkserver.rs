//! Chunkserver faults under a verified workload (4 workers reading and writing tagged
//! blocks of one copyset, real processes): kill -9 of the copyset's leader and of a
//! follower (then restart), SIGSTOP of the leader for longer than the election timeout
//! (then SIGCONT), and a crash-restart loop. Each test checks the whole history for
//! per-block linearizability (no lost acknowledged write, no torn block), that no I/O
//! error reached the caller, and prints
//! `fault=<name> longest_pause_ms=.. p99_ms=.. writes_verified=.. lost=0`.
//!
//! Needs `basalt-mds`, `basalt-chunkserver` built in the target dir and `etcd` on PATH.

use basalt_testkit::faults::{others, FaultRun};
use std::time::{Duration, Instant};

/// Longer than the dev cluster's raft election timeout (1-2 s).
const HANG: Duration = Duration::from_secs(3);

#[test]
fn kill_the_copyset_leader_then_restart_it() {
    let mut run = FaultRun::start("leader-kill").unwrap();
    let leader = run.leader().unwrap();
    let from = run.workload.now();
    run.rig.cluster.kill(&leader).unwrap();
    run.progress(200).expect("I/O resumes on the two survivors");
    run.rig.cluster.restart(&leader).unwrap();
    run.progress(200).unwrap();
    let report = run.finish("chunkserver-leader-kill", from).unwrap();
    assert!(report.check.writes_verified > 0 && report.check.reads_checked > 0);
}

#[test]
fn kill_a_follower_then_restart_it() {
    let mut run = FaultRun::start("follower-kill").unwrap();
    let leader = run.leader().unwrap();
    let follower = others(&run.rig.cluster, &leader)
        .into_iter()
        .next()
        .expect("a follower");
    let from = run.workload.now();
    run.rig.cluster.kill(&follower).unwrap();
    run.progress(200).unwrap();
    run.rig.cluster.restart(&follower).unwrap();
    run.progress(200).unwrap();
    let report = run.finish("chunkserver-follower-kill", from).unwrap();
    assert!(report.check.writes_verified > 0 && report.check.reads_checked > 0);
}

#[test]
fn sigstop_the_leader_past_the_election_timeout_then_sigcont() {
    let mut run = FaultRun::start("leader-hang").unwrap();
    let leader = run.leader().unwrap();
    let from = run.workload.now();
    let stopped = Instant::now();
    run.rig.cluster.stop(&leader).unwrap();
    // I/O must move to a new leader while the old one hangs.
    run.progress(200)
        .expect("I/O resumes while the leader hangs");
    if let Some(rest) = HANG.checked_sub(stopped.elapsed()) {
        std::thread::sleep(rest);
    }
    run.rig.cluster.cont(&leader).unwrap();
    // The old leader wakes up with a stale term: it must not serve stale data.
    run.progress(300).unwrap();
    let report = run.finish("chunkserver-sigstop-leader", from).unwrap();
    assert!(report.check.writes_verified > 0 && report.check.reads_checked > 0);
}

#[test]
fn crash_restart_loop_of_the_leader_during_writes() {
    let mut run = FaultRun::start("crash-loop").unwrap();
    let from = run.workload.now();
    for cycle in 0..3 {
        let leader = run.leader().unwrap();
        run.rig.cluster.kill(&leader).unwrap();
        run.progress(100)
            .unwrap_or_else(|e| panic!("cycle {cycle}: after killing {leader}: {e}"));
        run.rig.cluster.restart(&leader).unwrap();
        run.progress(100)
            .unwrap_or_else(|e| panic!("cycle {cycle}: after restarting {leader}: {e}"));
    }
    let report = run.finish("chunkserver-crash-restart-x3", from).unwrap();
    assert!(report.check.writes_verified > 0 && report.check.reads_checked > 0);
}
