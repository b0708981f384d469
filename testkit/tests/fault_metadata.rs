//! Metadata-plane faults under a verified workload (real processes): kill -9 of the
//! active MDS, and of etcd. Volume I/O continues from the client's cached maps while
//! the metadata plane is down or failing over; afterwards metadata operations resume
//! (after etcd comes back, the MDS processes that exited without it are restarted, as
//! a supervisor would).
//! Each test checks the history (no lost acknowledged write, no torn block, no error to
//! the caller) and prints `fault=<name> longest_pause_ms=.. p99_ms=.. writes_verified=.. lost=0`.
//!
//! Needs `basalt-mds`, `basalt-chunkserver` built in the target dir and `etcd` on PATH.

use basalt_proto::ids::SEGMENT_SIZE;
use basalt_testkit::cluster::{process, wait, Liveness};
use basalt_testkit::faults::{FaultRun, PROGRESS_BOUND};
use std::time::Duration;

/// A metadata call works again (bounded): creating a volume.
fn metadata_resumes(run: &FaultRun, name: &str) {
    let client = &run.rig.client;
    let r = run.rig.rt.block_on(async {
        tokio::time::timeout(PROGRESS_BOUND, async {
            loop {
                match client.create_volume(name, SEGMENT_SIZE).await {
                    Ok(v) => return v,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        })
        .await
    });
    let v = r.expect("metadata operations resume");
    assert_eq!(v.name, name);
}

/// Process states and the MDS and etcd log tails, for a failure message.
fn diagnostics(run: &FaultRun) -> String {
    let c = &run.rig.cluster;
    let mut out = format!("{:#?}\n", c.status());
    for s in c.status() {
        if s.name.starts_with("mds") || s.name == "etcd" {
            let plan = &c.process(&s.name).expect("recorded").plan;
            out += &format!(
                "--- {} log tail ---\n{}\n",
                s.name,
                process::log_tail(plan, 15)
            );
        }
    }
    out
}

#[test]
fn kill_the_active_mds_during_io() {
    let mut run = FaultRun::start("mds-kill").unwrap();
    let active = run.rig.cluster.active_mds_name().expect("an active MDS");
    let from = run.workload.now();
    run.rig.cluster.kill(&active).unwrap();
    run.progress(300)
        .expect("I/O continues without the active MDS");
    wait::poll_until(
        "a new active MDS",
        PROGRESS_BOUND,
        Duration::from_millis(100),
        || Ok(run.rig.cluster.active_mds_name().filter(|n| *n != active)),
    )
    .unwrap();
    metadata_resumes(&run, "after-mds-kill");
    run.progress(100).unwrap();
    let report = run.finish("mds-active-kill", from).unwrap();
    assert!(report.check.writes_verified > 0 && report.check.reads_checked > 0);
}

#[test]
fn kill_etcd_during_io() {
    let mut run = FaultRun::start("etcd-kill").unwrap();
    let from = run.workload.now();
    run.rig.cluster.kill("etcd").unwrap();
    run.progress(300).expect("I/O continues without etcd");
    run.rig.cluster.restart("etcd").unwrap();
    // Every MDS exits when etcd goes away (the active one fail-stops on losing its
    // lease; standbys exit on the failed campaign): restart them, as their supervisor
    // would. I/O above ran with neither etcd nor any MDS.
    let exited: Vec<String> = run
        .rig
        .cluster
        .status()
        .into_iter()
        .filter(|s| s.name.starts_with("mds") && s.state == Liveness::Dead)
        .map(|s| s.name)
        .collect();
    println!("MDS processes that exited without etcd: {exited:?}");
    for name in &exited {
        run.rig.cluster.restart(name).unwrap();
    }
    let active = wait::poll_until(
        "an active MDS",
        PROGRESS_BOUND,
        Duration::from_millis(100),
        || Ok(run.rig.cluster.active_mds()),
    );
    if let Err(e) = active {
        panic!("{e}\n{}", diagnostics(&run));
    }
    metadata_resumes(&run, "after-etcd-kill");
    run.progress(100).unwrap();
    let report = run.finish("etcd-kill", from).unwrap();
    assert!(report.check.writes_verified > 0 && report.check.reads_checked > 0);
}
