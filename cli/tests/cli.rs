//! The `basalt` binary: golden `--help` output, JSON output of `dev-cluster status` on a
//! recorded (stopped) cluster, and exit codes for usage errors and an unreachable cluster.
//! Snapshots live in `tests/snapshots/`; `BASALT_UPDATE_SNAPSHOTS=1` rewrites them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("BASALT_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (BASALT_UPDATE_SNAPSHOTS=1 creates it)",
            path.display()
        )
    });
    assert_eq!(actual, want, "snapshot {name} differs");
}

fn basalt(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_basalt"));
    cmd.args(args)
        .env_remove("BASALT_MDS")
        .env_remove("BASALT_CLIENT_CONF")
        .env_remove("BASALT_DEV_CLUSTER_DIR")
        .env("COLUMNS", "100");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run basalt")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn help_output_matches_snapshots() {
    for (args, name) in [
        (&["--help"][..], "help.txt"),
        (&["volume", "--help"][..], "volume-help.txt"),
        (
            &["volume", "create", "--help"][..],
            "volume-create-help.txt",
        ),
        (&["dev-cluster", "--help"][..], "dev-cluster-help.txt"),
        (
            &["dev-cluster", "up", "--help"][..],
            "dev-cluster-up-help.txt",
        ),
    ] {
        let o = basalt(args, &[]);
        assert!(o.status.success(), "{args:?}: {o:?}");
        snapshot(name, &stdout(&o));
    }
}

#[test]
fn usage_errors_exit_2() {
    let o = basalt(&["volume", "frobnicate"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = basalt(
        &[
            "volume",
            "create",
            "v",
            "--size",
            "3parsecs",
            "--mds",
            "127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("parsecs"));
}

#[test]
fn no_mds_answering_exits_3() {
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t0 = std::time::Instant::now();
    let o = basalt(
        &["volume", "ls", "--mds", &format!("127.0.0.1:{port}")],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not reachable"));
    assert!(t0.elapsed() < Duration::from_secs(30));
    // No addresses at all: a configuration error naming the ways to give them.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("none.toml");
    let o = basalt(
        &["volume", "ls"],
        &[("BASALT_CLIENT_CONF", conf.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("dev-cluster up"));
}

fn write_stopped_cluster(dir: &Path) {
    // A state file as `up` + `down` leave it: every process recorded, none running.
    let mut text = String::from(
        "mds = [\"127.0.0.1:41001\"]\netcd = [\"http://127.0.0.1:41000\"]\nclient-configs = []\n",
    );
    for (name, kind, port) in [
        ("etcd", "etcd", 41000),
        ("mds-1", "mds", 41001),
        ("cs-1", "chunkserver", 41002),
    ] {
        text.push_str(&format!(
            "\n[[process]]\nname = \"{name}\"\nkind = \"{kind}\"\nprogram = \"/bin/{name}\"\nargs = []\n\
             log = \"/state/logs/{name}.log\"\naddr = \"127.0.0.1:{port}\"\n\
             [process.ready.addr-file]\npath = \"/state/{name}.addr\"\n"
        ));
    }
    std::fs::write(dir.join("cluster.toml"), text).unwrap();
}

#[test]
fn dev_cluster_status_json_matches_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    write_stopped_cluster(dir.path());
    let state = dir.path().to_str().unwrap();
    let o = basalt(
        &[
            "dev-cluster",
            "status",
            "--state-dir",
            state,
            "--format",
            "json",
        ],
        &[],
    );
    assert!(o.status.success(), "{o:?}");
    snapshot(
        "dev-cluster-status.json",
        &stdout(&o).replace(state, "[STATE]"),
    );
    let o = basalt(&["dev-cluster", "status", "--state-dir", state], &[]);
    assert!(o.status.success(), "{o:?}");
    snapshot("dev-cluster-status.txt", &stdout(&o));
    // Unknown process names are an error that lists the known ones.
    let o = basalt(&["dev-cluster", "kill", "mds-9", "--state-dir", state], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("etcd, mds-1, cs-1"));
    // No cluster at all.
    let empty = tempfile::tempdir().unwrap();
    let o = basalt(
        &[
            "dev-cluster",
            "status",
            "--state-dir",
            empty.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no dev cluster"));
}

/// `dev-cluster up` with real daemons (built next to `basalt` by `cargo build --bins`),
/// volume commands against it through the written client configuration, `down`.
#[test]
fn dev_cluster_up_volume_ls_down() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let conf = dir.path().join("client.toml");
    let state_s = state.to_str().unwrap();
    let env = [
        ("BASALT_CLIENT_CONF", conf.to_str().unwrap()),
        ("BASALT_DEV_CLUSTER_DIR", state_s),
    ];
    // Whatever happens below, stop the cluster (the daemons are detached).
    struct Down<'a>(&'a [(&'a str, &'a str)]);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = basalt(&["dev-cluster", "down"], self.0);
        }
    }
    let _down = Down(&env);
    let o = basalt(
        &["dev-cluster", "up", "--timeout", "30", "--format", "json"],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let procs = st["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 7);
    assert!(procs.iter().all(|p| p["state"] == "running"), "{st}");
    assert!(conf.exists(), "client configuration written");
    // The client configuration is all `volume` needs.
    let o = basalt(&["volume", "ls", "--format", "json"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o).trim(), "[]");
    let o = basalt(&["volume", "info", "nope"], &env);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    // A second `up` on a running cluster is refused.
    let o = basalt(&["dev-cluster", "up"], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already running"));
    // down: every recorded pid gone.
    let pids: Vec<u64> = procs.iter().filter_map(|p| p["pid"].as_u64()).collect();
    assert_eq!(pids.len(), 7);
    let o = basalt(&["dev-cluster", "down"], &env);
    assert!(o.status.success(), "{o:?}");
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or (pid reuse aside) at most a zombie awaiting init.
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "pid {pid} alive: {stat}"
        );
    }
    let o = basalt(&["volume", "ls"], &env);
    assert_eq!(o.status.code(), Some(3), "cluster down: not reachable");
}
