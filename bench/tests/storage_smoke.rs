//! Smoke runs of `basalt-bench chunkstore` and `basalt-bench raft` (real binary, very short
//! durations): the JSON report has the expected layout and every Basalt measurement did
//! work. No figure is judged.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_basalt-bench");
/// Bound of one run (each takes a few seconds in a debug build).
const LIMIT: Duration = Duration::from_secs(90);

/// Run the tool with `args`, bounded; returns the JSON report and stdout.
fn run(dir: &Path, args: &[&str]) -> (Value, String) {
    let json = dir.join("report.json");
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--duration", "300ms", "--warmup", "50ms", "-q", "--json"])
        .arg(&json)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn basalt-bench");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("basalt-bench {args:?} did not finish in {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        status.success(),
        "basalt-bench {args:?} failed: {status}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&json).expect("report written"))
        .expect("report is JSON");
    (report, stdout)
}

fn measurements(report: &Value) -> &Vec<Value> {
    report["measurements"].as_array().expect("measurements")
}

fn find<'a>(report: &'a Value, name: &str) -> &'a Value {
    measurements(report)
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no measurement {name} in {report:#}"))
}

fn check_worked(m: &Value) {
    assert!(m["ops"].as_u64().unwrap() > 0, "{m:#}");
    let lat = &m["latency"];
    assert_eq!(lat["samples"], m["ops"], "{m:#}");
    for f in ["mean_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"] {
        assert!(lat[f].as_f64().unwrap() > 0.0, "{f} of {m:#}");
    }
}

/// Whether the disk baselines ran (a tmpfs directory has no O_DIRECT: they are skipped).
fn disk_measured(report: &Value) -> bool {
    measurements(report)
        .iter()
        .any(|m| m["name"] == "disk/write-fdatasync/4KiB")
}

#[test]
fn chunkstore_smoke_reports_every_backend_and_the_baselines() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (report, stdout) = run(
        dir.path(),
        &[
            "chunkstore",
            "--file-size",
            "8MiB",
            "--groups",
            "2",
            "--depth",
            "4",
            "--wal-segment-size",
            "4MiB",
            "--backends",
            "sync,uring",
        ],
    );
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["command"], "chunkstore");
    assert_eq!(report["config"]["depth"], 4);
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    // sync always runs; uring runs unless the kernel refuses it (then it says why).
    let mut backends = vec!["sync"];
    if !skipped.iter().any(|s| s.starts_with("uring")) {
        backends.push("uring");
    }
    let with_disk = disk_measured(&report);
    for b in backends {
        for (op, qd) in [("write", 1), ("write", 4), ("read", 1), ("read", 4)] {
            let m = find(&report, &format!("chunkstore/{b}/{op}/4KiB/qd{qd}"));
            check_worked(m);
            if op == "write" {
                let f = m["extra"]["fsyncs_per_write"].as_f64().unwrap();
                assert!(f > 0.0, "every write waits for a WAL fsync: {m:#}");
            }
            if with_disk {
                assert!(m["ratio"].as_f64().unwrap() > 0.0, "{m:#}");
            }
        }
    }
    if with_disk {
        check_worked(find(&report, "disk/write-fdatasync/4KiB/qd4"));
        check_worked(find(&report, "disk/rand-read/4KiB/qd4"));
    }
    assert!(stdout.contains("fsyncs_per_write"), "{stdout}");
    // The data dir and the baseline files are gone.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n != "report.json")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn raft_smoke_replicates_writes_and_reports_the_floor() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let svg = dir.path().join("raft.svg");
    let svg_arg = svg.to_str().unwrap().to_string();
    let (report, stdout) = run(
        dir.path(),
        &[
            "raft",
            "--copysets",
            "4",
            "--depth",
            "4",
            "--backend",
            "sync",
            "--heartbeat-ms",
            "100",
            "--election-timeout-ms",
            "1000,2000",
            "--plot",
            &svg_arg,
        ],
    );
    assert_eq!(report["command"], "raft");
    assert_eq!(report["config"]["copysets"], 4);
    let qd1 = find(&report, "raft/write/4KiB/qd1");
    check_worked(qd1);
    let deep = find(&report, "raft/write/4KiB/qd4/4cs");
    check_worked(deep);
    for m in [qd1, deep] {
        let extra = &m["extra"];
        assert!(extra["fsyncs_per_write"].as_f64().unwrap() > 0.0, "{m:#}");
        assert!(extra["leader_elections"].as_f64().is_some(), "{m:#}");
    }
    assert_eq!(deep["extra"]["copysets"], 4.0);
    check_worked(find(&report, "raw-tcp/ping-pong/4KiB"));
    if disk_measured(&report) {
        assert!(qd1["extra"]["target_ratio"].as_f64().unwrap() > 0.0);
        assert!(qd1["extra"]["floor_mean_us"].as_f64().unwrap() > 0.0);
        assert!(deep["extra"]["iops_vs_raw_write_qd1"].as_f64().unwrap() > 0.0);
    }
    assert!(stdout.contains("leader_elections"), "{stdout}");
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .contains("raft write qd1 tcp"));
}
