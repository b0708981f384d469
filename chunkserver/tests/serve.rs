//! The `serve` daemon as a process: start-up refusals (unformatted or foreign data dir,
//! no chunkserver id), and one single-replica chunkserver's metrics and clean shutdown.

mod support;

use basalt_chunkserver::datadir::DataDir;
use basalt_proto::ids::ChunkServerId;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

/// Run `serve` expecting it to refuse to start; its stderr.
fn refused(dir: &Path, extra: &[&str]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "warn");
    let out = cmd.output().expect("run serve");
    assert!(!out.status.success(), "serve started on {}", dir.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn format_small(dir: &Path, chunk_size: u64) {
    let out = Command::new(BIN)
        .args([
            "format",
            "--quiet",
            "--pool-size",
            "1",
            "--wal-segments",
            "2",
        ])
        .args(["--wal-segment-size", "1048576"])
        .args(["--chunk-size", &chunk_size.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn serve_refuses_data_dirs_it_must_not_use() {
    let root = tempfile::tempdir().unwrap();

    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = refused(&empty, &["--chunkserver-id", "1"]);
    assert!(err.contains("not a formatted data directory"), "{err}");

    let dir = root.path().join("d");
    format_small(&dir, CHUNK);
    let err = refused(&dir, &[]);
    assert!(err.contains("no chunkserver id"), "{err}");

    // registered to another cluster
    let mut d = DataDir::open(&dir, None).unwrap();
    d.set_identity(ChunkServerId(7), "token".into(), "prod-a".into())
        .unwrap();
    let cfg = root.path().join("cs.toml");
    std::fs::write(&cfg, "cluster-id = \"prod-b\"\n").unwrap();
    let err = refused(&dir, &["--config", cfg.to_str().unwrap()]);
    assert!(err.contains("cluster prod-a, expected prod-b"), "{err}");
    // its registered id wins over none, and must agree with a configured one
    let err = refused(&dir, &["--chunkserver-id", "8"]);
    assert!(err.contains("registered as cs7"), "{err}");

    // chunks of another size than the protocol's
    let small = root.path().join("small");
    format_small(&small, 1 << 20);
    let err = refused(&small, &["--chunkserver-id", "1"]);
    assert!(err.contains("1048576-byte chunks"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chunkserver_serves_metrics_and_stops_cleanly() {
    bounded(Duration::from_secs(60), async {
        let mut c = Cluster::start(1, 10_000).await;
        let g = group(1);
        c.create(g, &[1], &[1]).await;
        let ws = workload(6, 1);
        write_all(&c, g, &ws).await;
        check_all(&c, g, &ws).await;

        let m = c.scrape(1).await;
        let value = |name: &str| -> f64 {
            m.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} missing from\n{m}"))
        };
        assert_eq!(
            value("basalt_chunkserver_request_seconds_count{op=\"write\"}"),
            6.0
        );
        assert!(value("basalt_chunkserver_request_seconds_count{op=\"read\"}") >= 6.0);
        assert_eq!(value("basalt_chunkserver_raft_leaders"), 1.0);
        assert_eq!(value("basalt_chunkserver_copysets"), 1.0);
        assert!(value("basalt_chunkserver_wal_records_total") >= 6.0);
        assert!(value("basalt_chunkserver_wal_fsyncs_total") >= 1.0);
        assert!(value("basalt_chunkserver_wal_records_per_fsync") > 0.0);
        assert_eq!(value("basalt_chunkserver_data_inflight"), 0.0);
        assert!(value("basalt_transport_connections_open") >= 1.0);

        // SIGTERM: exit status 0 (checked by stop), address files removed
        c.stop(1).await;
        let dir = c.node(1).dir.clone();
        assert!(!dir.join("listen-addr").exists());
        assert!(!dir.join("metrics-addr").exists());
        c.spawn(1).await;
        check_all(&c, g, &ws).await;
    })
    .await
}
