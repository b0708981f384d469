//! `basalt-bench volume` end to end: a small dev cluster of real processes (etcd, one
//! MDS, three chunkservers) comes up through the test kit; the bench binary creates a
//! volume, prefills its region, runs a write, a deep read (every read verified against
//! the pattern written) and a sequential case for a short time, reading the chunkservers'
//! metrics around each case (`--breakdown`), and writes a JSON report whose figures are
//! checked here.
//!
//! Needs `basalt-mds` and `basalt-chunkserver` built in the same target dir
//! (`cargo build -p basalt-mds -p basalt-chunkserver --bins`) or `BASALT_BIN_DIR`, and
//! `etcd` on `PATH`.

use basalt_testkit::{ClusterSpec, DevCluster};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn volume_bench_runs_verified_cases_against_a_dev_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut spec = ClusterSpec::new(&state);
    spec.mds = 1;
    spec.ready_timeout = Duration::from_secs(30);
    // Small data dirs: formatting zero-fills every chunk file.
    spec.pool_chunks = 4;
    spec.copysets_per_chunkserver = 2;
    spec.wait_copysets = true;
    let cluster = DevCluster::up(spec).expect("dev cluster up");
    let conf = state.join("client.toml");
    assert!(conf.exists(), "the dev cluster writes {}", conf.display());

    let json = dir.path().join("volume.json");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_basalt-bench"))
        .args(["--quiet", "--duration", "1s", "--warmup", "200ms", "--json"])
        .arg(&json)
        .args([
            "volume", "--volume", "t", "--create", "1GiB", "--region", "8MiB",
        ])
        .args([
            "--cases",
            "randwrite:4K:1,randread:4K:4,write:1M:2:2",
            "--verify",
            "--breakdown",
        ])
        .args(["--no-baselines", "--client-config"])
        .arg(&conf)
        .arg("--state-dir")
        .arg(&state)
        .spawn()
        .expect("spawn basalt-bench");
    // Bounded: prefill + 3 × 1.2 s of I/O; kill the bench if it hangs.
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            panic!("basalt-bench volume did not finish in 40 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "basalt-bench exited with {status}");

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["command"], "volume");
    assert_eq!(v["config"]["verify"], true);
    let skipped: Vec<String> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert!(
        !skipped
            .iter()
            .any(|s| s.starts_with("volume/") || s.starts_with("cluster CPU")),
        "{skipped:?}"
    );
    let ms = v["measurements"].as_array().unwrap();
    let names: Vec<&str> = ms.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "volume/randwrite/4KiB/qd1x1",
            "volume/randread/4KiB/qd4x1",
            "volume/write/1MiB/qd2x2"
        ]
    );
    for m in ms {
        let ops = m["ops"].as_u64().unwrap();
        assert!(ops > 0, "{m}");
        assert_eq!(m["latency"]["samples"].as_u64().unwrap(), ops);
        assert!(m["cpu_ns_per_op"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["note"].as_str().unwrap().contains("every read verified"));
    }
    // --breakdown: the chunkservers saw every measured I/O (one request per I/O here;
    // retries only add), and the handler's stages fit inside it.
    assert!(
        !skipped.iter().any(|s| s.starts_with("breakdown")),
        "{skipped:?}"
    );
    for m in ms {
        let extra = &m["extra"];
        let requests = extra["server_requests"].as_f64().unwrap_or(0.0);
        assert!(requests >= m["ops"].as_f64().unwrap(), "{m}");
        let handler = extra["server_handler_us"].as_f64().unwrap();
        let copyset = extra["server_copyset_us"].as_f64().unwrap();
        assert!(handler > 0.0 && copyset > 0.0 && copyset <= handler, "{m}");
    }
    assert!(ms[0]["extra"]["wal_records_per_fsync"].as_f64().unwrap() > 0.0);
    assert!(ms[1]["extra"]["server_crc_us"].as_f64().is_some());
    assert_eq!(ms[0]["kind"], "latency");
    assert_eq!(ms[1]["kind"], "throughput");
    drop(cluster);
}
