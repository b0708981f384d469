//! Network faults under a verified workload (real processes): each chunkserver runs in
//! a network namespace of its own, joined to a bridge that etcd's clients, the MDSs and
//! the test's client use (`testkit::netns`). Faults are iptables rules inside the
//! copyset leader's namespace:
//!
//! - a partition: every packet to and from its two peers and the bridge (MDSs and the
//!   client) dropped for longer than the election timeout, then healed;
//! - packet loss: 15 % of the packets in and out of it dropped at random for 5 s.
//!
//! Each test checks the whole history for per-block linearizability (no lost
//! acknowledged write, no torn block), that no I/O error reached the caller, that the
//! fault really dropped packets, and prints
//! `fault=<name> longest_pause_ms=.. p99_ms=.. writes_verified=.. lost=0`.
//!
//! Needs root (namespaces, veths, iptables; CI runs as root — the tests skip, saying
//! so, only when not root), `basalt-mds` and `basalt-chunkserver` built in the target
//! dir, and `etcd` on PATH.

use basalt_testkit::faults::FaultRun;
use basalt_testkit::host::is_root;
use basalt_testkit::netns::NetLab;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long the partition lasts at least: longer than the dev cluster's raft election
/// timeout (1-2 s), so the majority side elects a new leader while it holds.
const PARTITION: Duration = Duration::from_secs(4);
/// Share of packets dropped by the loss fault.
const LOSS: f64 = 0.15;
/// How long the loss lasts.
const LOSS_FOR: Duration = Duration::from_secs(5);

fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root for network namespaces, veths and iptables");
    false
}

/// The lab namespace chunkserver process `name` runs in.
fn node_of(run: &FaultRun, lab: &NetLab, name: &str) -> usize {
    let addr = run
        .rig
        .cluster
        .process(name)
        .expect("a recorded chunkserver")
        .plan
        .addr;
    match addr.ip() {
        IpAddr::V4(v4) => lab.node_of(v4),
        IpAddr::V6(_) => None,
    }
    .unwrap_or_else(|| panic!("{name} at {addr} is in no namespace of the lab"))
}

/// Sleep out the rest of `hold` since `since` (a fault held for a fixed time).
fn hold_until(since: Instant, hold: Duration) {
    if let Some(rest) = hold.checked_sub(since.elapsed()) {
        std::thread::sleep(rest);
    }
}

#[test]
fn partition_the_leader_from_its_peers_and_the_client_then_heal() {
    if !root_or_skip("partition_the_leader_from_its_peers_and_the_client_then_heal") {
        return;
    }
    // Declared first, dropped last: the processes go before their namespaces.
    let lab = NetLab::create(3).expect("test network");
    let run = FaultRun::start_with("partition", |s| s.network = Some(lab.layout())).unwrap();
    let leader = run.leader().unwrap();
    let node = node_of(&run, &lab, &leader);
    let from = run.workload.now();
    let cut = Instant::now();
    lab.isolate(node).unwrap();
    // The two other replicas elect a leader and the client finds it.
    run.progress(200)
        .expect("I/O resumes on the majority side of the partition");
    hold_until(cut, PARTITION);
    let dropped = lab.dropped(node).unwrap();
    lab.heal(node).unwrap();
    // The old leader comes back with a stale term: it must not serve stale data.
    run.progress(200).expect("I/O continues after healing");
    println!(
        "partition of {leader} held {:?}, {dropped} packets dropped",
        cut.elapsed()
    );
    assert!(dropped > 0, "the partition dropped no packet");
    let report = run.finish("network-partition-leader", from).unwrap();
    assert!(report.check.writes_verified > 0 && report.check.reads_checked > 0);
}

#[test]
fn packet_loss_on_the_leader_for_a_few_seconds() {
    if !root_or_skip("packet_loss_on_the_leader_for_a_few_seconds") {
        return;
    }
    let lab = NetLab::create(3).expect("test network");
    let run = FaultRun::start_with("loss", |s| s.network = Some(lab.layout())).unwrap();
    let leader = run.leader().unwrap();
    let node = node_of(&run, &lab, &leader);
    let from = run.workload.now();
    let start = Instant::now();
    lab.loss(node, LOSS).unwrap();
    run.progress(100)
        .expect("I/O makes progress under packet loss");
    hold_until(start, LOSS_FOR);
    let dropped = lab.dropped(node).unwrap();
    lab.heal(node).unwrap();
    run.progress(200)
        .expect("I/O continues after the loss ends");
    println!(
        "{:.0} % loss on {leader} for {:?}, {dropped} packets dropped",
        LOSS * 100.0,
        start.elapsed()
    );
    assert!(dropped > 0, "the loss rule dropped no packet");
    let report = run.finish("network-loss-15pct-leader", from).unwrap();
    assert!(report.check.writes_verified > 0 && report.check.reads_checked > 0);
}
