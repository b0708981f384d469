//! The `basalt` binary: golden `--help` output, JSON output of `dev-cluster status` on a
//! recorded (stopped) cluster, exit codes for usage errors and an unreachable cluster, and
//! the commands against a real dev cluster.
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
        (&["volume", "purge", "--help"][..], "volume-purge-help.txt"),
        (
            &["volume", "create", "--help"][..],
            "volume-create-help.txt",
        ),
        (&["dev-cluster", "--help"][..], "dev-cluster-help.txt"),
        (&["copyset", "--help"][..], "copyset-help.txt"),
        (
            &["topology", "apply", "--help"][..],
            "topology-apply-help.txt",
        ),
        (
            &["leader", "transfer", "--help"][..],
            "leader-transfer-help.txt",
        ),
        (
            &["dev-cluster", "up", "--help"][..],
            "dev-cluster-up-help.txt",
        ),
        (
            &["chunkserver", "drain", "--help"][..],
            "chunkserver-drain-help.txt",
        ),
        (&["peer", "reset", "--help"][..], "peer-reset-help.txt"),
        (&["owner", "--help"][..], "owner-help.txt"),
        (&["cluster", "init", "--help"][..], "cluster-init-help.txt"),
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
fn peer_reset_without_force_is_a_usage_error() {
    for args in [
        &["peer", "reset", "1.5", "cs2", "--mds", "127.0.0.1:1"][..],
        &["peer", "reset", "1.5", "cs2", "--ignore-leader"][..],
    ] {
        let o = basalt(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("unsafe") && err.contains("add --force"),
            "{err}"
        );
    }
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
    owners_and_keys(dir.path(), &env);
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

/// Volume owners through the CLI on a dev cluster (whose client config holds the admin
/// credential): another owner's key, no matching key and a rotated-out key are refused.
fn owners_and_keys(dir: &Path, env: &[(&str, &str)]) {
    let key = |n: &str| dir.join(format!("{n}.key")).to_str().unwrap().to_string();
    let (alice, bob, alice2) = (key("alice"), key("bob"), key("alice2"));
    let ok = |args: &[&str]| {
        let o = basalt(args, env);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    let refused = |args: &[&str]| {
        let o = basalt(args, env);
        assert_eq!(o.status.code(), Some(1), "{args:?} not refused: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(err.contains("permission denied"), "{args:?}: {err}");
    };
    ok(&["owner", "create", "alice", "--out", &alice]);
    ok(&["owner", "create", "bob", "--out", &bob]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&alice).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // An owner may not register owners.
    refused(&["owner", "create", "eve", "--as", "bob", "--key-file", &bob]);
    // Copysets may still be being created right after `up` (NoCopysets until then).
    let o = until_exit(
        &[
            "volume",
            "create",
            "a-vol",
            "--size",
            "1GiB",
            "--as",
            "alice",
            "--key-file",
            &alice,
            "--format",
            "json",
        ],
        env,
        0,
        30,
    );
    assert_eq!(json_of(&o)["owner"], "alice");
    // bob's key, and alice's name with the admin's key, are refused.
    refused(&[
        "volume",
        "extend",
        "a-vol",
        "--size",
        "2GiB",
        "--as",
        "bob",
        "--key-file",
        &bob,
    ]);
    refused(&["volume", "rm", "a-vol", "--as", "alice"]);
    ok(&[
        "volume",
        "extend",
        "a-vol",
        "--size",
        "2GiB",
        "--as",
        "alice",
        "--key-file",
        &alice,
    ]);
    let o = ok(&["owner", "ls", "--format", "json"]);
    let names: Vec<String> = json_of(&o)
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let o = basalt(&["owner", "rm", "alice"], env);
    assert_eq!(o.status.code(), Some(1), "an owner with volumes: {o:?}");
    // alice rotates her own key: the old one stops working.
    ok(&[
        "owner",
        "rotate",
        "alice",
        "--out",
        &alice2,
        "--as",
        "alice",
        "--key-file",
        &alice,
    ]);
    refused(&[
        "volume",
        "rm",
        "a-vol",
        "--as",
        "alice",
        "--key-file",
        &alice,
    ]);
    ok(&[
        "volume",
        "rename",
        "a-vol",
        "b-vol",
        "--as",
        "alice",
        "--key-file",
        &alice2,
    ]);
    // The admin (the config's credential) may remove anyone's volume.
    ok(&["volume", "rm", "b-vol"]);
    ok(&["owner", "rm", "alice"]);
}

/// `cluster init` writes the secret, the admin credential and a client config, and
/// refuses to overwrite them without `--force`.
#[test]
fn cluster_init_writes_credentials_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("etc");
    let d_s = d.to_str().unwrap();
    let o = basalt(
        &[
            "cluster",
            "init",
            "--dir",
            d_s,
            "--mds",
            "127.0.0.1:8100",
            "--format",
            "json",
        ],
        &[],
    );
    let doc = json_of(&o);
    let secret = doc["cluster_secret"].as_str().unwrap().to_string();
    let before = std::fs::read_to_string(&secret).unwrap();
    let conf = std::fs::read_to_string(doc["client_config"].as_str().unwrap()).unwrap();
    assert!(conf.contains("owner = \"admin\""), "{conf}");
    assert!(conf.contains("auth-secret-file"), "{conf}");
    let o = basalt(&["cluster", "init", "--dir", d_s], &[]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), before);
    let o = basalt(&["cluster", "init", "--dir", d_s, "--force"], &[]);
    assert!(o.status.success(), "{o:?}");
    assert_ne!(std::fs::read_to_string(&secret).unwrap(), before);
}

fn json_of(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{o:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Run `args` until it exits with `code`, at most `secs` seconds (state the MDS learns from
/// heartbeats settles a little after the change).
fn until_exit(args: &[&str], env: &[(&str, &str)], code: i32, secs: u64) -> Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let o = basalt(args, env);
        if o.status.code() == Some(code) || std::time::Instant::now() > deadline {
            return o;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Voters of the first copyset of a `copyset ls --format json` listing.
fn copyset_peers(ls: &serde_json::Value) -> Vec<u64> {
    ls[0]["peers"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_u64()).collect())
        .unwrap_or_default()
}

/// Run the command `make` builds from a fresh `copyset ls` with `--wait --timeout 10
/// --format json`, again while it is refused because leadership moved or another operator
/// runs (the MDS balances leaders by itself), at most 30 s. The queued operator.
fn retry_on_leader_moves(
    env: &[(&str, &str)],
    make: impl Fn(&serde_json::Value) -> Option<Vec<String>>,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ls = json_of(&basalt(&["copyset", "ls", "--format", "json"], env));
        if let Some(mut args) = make(&ls) {
            args.extend(["--wait", "--timeout", "10", "--format", "json"].map(String::from));
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = basalt(&a, env);
            if o.status.success() {
                return json_of(&o);
            }
            let err = String::from_utf8_lossy(&o.stderr);
            let transient = [
                "wait for the running operator",
                "already leads",
                "is its leader",
                "no online leader",
                "not seen after",
            ]
            .iter()
            .any(|t| err.contains(t));
            assert!(transient, "{args:?}: {o:?}");
        }
        assert!(std::time::Instant::now() < deadline, "gave up retrying");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The administrative nouns against a real dev cluster: status, topology (show, YAML
/// apply, dry run, idempotence, conflict), servers, pools, chunkservers, copysets (ls,
/// status asking the replicas, check), a leader transfer and a peer removal carried out by
/// the chunkservers, refusals with their hints, and `check --deep` failing (exit 4) once a
/// chunkserver is killed.
#[test]
fn admin_nouns_against_a_dev_cluster() {
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let conf = dir.path().join("client.toml");
    let env = [
        ("BASALT_CLIENT_CONF", conf.to_str().unwrap()),
        ("BASALT_DEV_CLUSTER_DIR", state.to_str().unwrap()),
    ];
    struct Down<'a>(&'a [(&'a str, &'a str)]);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = basalt(&["dev-cluster", "down"], self.0);
        }
    }
    let _down = Down(&env);
    let o = basalt(
        &[
            "dev-cluster",
            "up",
            "--timeout",
            "40",
            "--copysets-per-chunkserver",
            "3",
            "--wait-copysets",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        json_of(&basalt(&a, &env))
    };

    // cluster status: one active MDS of three, every chunkserver online.
    let st = j(&["cluster", "status"]);
    let roles: Vec<&str> = st["mds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.len(), 3, "{st}");
    assert_eq!(roles.iter().filter(|r| **r == "active").count(), 1, "{st}");
    assert_eq!(st["chunkservers"]["online"], 3, "{st}");
    assert!(st["space"]["total_bytes"].as_u64().unwrap() > 0, "{st}");
    let o = basalt(&["cluster", "status"], &env);
    assert!(stdout(&o).contains("3 online"), "{}", stdout(&o));

    // topology: show round-trips through apply with no change.
    let o = basalt(&["topology", "show"], &env);
    assert!(o.status.success(), "{o:?}");
    let shown = dir.path().join("shown.toml");
    std::fs::write(&shown, stdout(&o)).unwrap();
    let none = j(&["topology", "apply", shown.to_str().unwrap()]);
    assert_eq!(none["servers"], serde_json::json!([]), "{none}");
    // A YAML map adding a server: dry run first (nothing changes), then apply, twice.
    let yaml = dir.path().join("more.yaml");
    std::fs::write(
        &yaml,
        "physical-pool: [{ name: pool-1 }]\nzone: [{ name: zone-1, physical-pool: pool-1 }]\n\
         server: [{ name: host-9, zone: zone-1 }]\n",
    )
    .unwrap();
    let y = yaml.to_str().unwrap();
    let d = j(&["topology", "apply", y, "--dry-run"]);
    let adds: Vec<&serde_json::Value> = d["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["change"] == "add")
        .collect();
    assert_eq!(adds.len(), 1, "{d}");
    assert_eq!(adds[0]["name"], "host-9");
    let srv = j(&["server", "ls"]);
    assert_eq!(
        srv.as_array().unwrap().len(),
        3,
        "dry run changed nothing: {srv}"
    );
    let added = j(&["topology", "apply", y]);
    assert_eq!(added["servers"], serde_json::json!(["host-9"]), "{added}");
    let again = j(&["topology", "apply", y]);
    assert_eq!(
        again["servers"],
        serde_json::json!([]),
        "idempotent: {again}"
    );
    // Moving a server is refused, by the dry run and by the MDS, and changes nothing.
    let bad = dir.path().join("move.toml");
    std::fs::write(
        &bad,
        "[[physical-pool]]\nname = \"pool-1\"\n[[zone]]\nname = \"zone-2\"\nphysical-pool = \"pool-1\"\n\
         [[server]]\nname = \"host-9\"\nzone = \"zone-2\"\n",
    )
    .unwrap();
    let o = basalt(
        &["topology", "apply", bad.to_str().unwrap(), "--dry-run"],
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("conflict"), "{}", stdout(&o));
    let o = basalt(&["topology", "apply", bad.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("host-9"),
        "{o:?}"
    );

    // servers, pools, chunkservers.
    let srv = j(&["server", "ls"]);
    let srv = srv.as_array().unwrap();
    assert_eq!(srv.len(), 4);
    let h9 = srv.iter().find(|s| s["name"] == "host-9").unwrap();
    assert_eq!(h9["chunkservers"], serde_json::json!([]));
    assert_eq!(
        srv.iter()
            .map(|s| s["chunkservers"].as_array().unwrap().len())
            .sum::<usize>(),
        3
    );
    let pools = j(&["pool", "ls"]);
    assert_eq!(pools[0]["id"], 1, "{pools}");
    assert_eq!(pools[0]["name"], "blocks");
    let n_copysets = pools[0]["copysets"].as_u64().unwrap();
    assert!(n_copysets >= 3, "{pools}");
    let css = j(&["chunkserver", "ls"]);
    assert_eq!(css.as_array().unwrap().len(), 3);
    assert!(css
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["state"] == "online"));
    let id = css[0]["id"].as_u64().unwrap();
    let info = j(&["chunkserver", "info", &format!("cs{id}")]);
    assert_eq!(info["id"], id);
    assert_eq!(
        info["peer_of"].as_array().unwrap().len() as u64,
        css[0]["copysets"].as_u64().unwrap()
    );
    let o = basalt(&["chunkserver", "info", "cs99"], &env);
    assert_eq!(o.status.code(), Some(1), "{o:?}");

    // copysets: the MDS's list, each replica's own answer, and a passing check.
    let ls = j(&["copyset", "ls"]);
    assert_eq!(ls.as_array().unwrap().len() as u64, n_copysets);
    assert_eq!(j(&["copyset", "ls", "--pool", "1"]), ls);
    let cs0 = ls[0]["copyset"].as_str().unwrap().to_string();
    // Every replica is created and agrees with the MDS a little after the MDS knows the
    // leaders (what `up --wait-copysets` waits for): a deep check passes.
    let o = until_exit(&["copyset", "check", "--deep"], &env, 0, 20);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("0 not healthy"), "{}", stdout(&o));
    let st = j(&["copyset", "status", &cs0]);
    let reps = st["replicas"].as_array().unwrap();
    assert_eq!(reps.len(), 3, "{st}");
    assert!(
        reps.iter().all(|r| r["role"].is_string()),
        "every peer answers: {st}"
    );

    // Refusals name the problem and what to do.
    for args in [
        &["peer", "remove", &cs0, "cs99"][..],
        &["leader", "transfer", &cs0, "--to", "cs99"],
    ] {
        // The check for a running operator comes first; the scheduler may have one.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let o = loop {
            let o = basalt(args, &env);
            let busy = String::from_utf8_lossy(&o.stderr).contains("wait for the running");
            if !busy || std::time::Instant::now() > deadline {
                break o;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("cs99 is not a voter"), "{err}");
        assert!(err.contains("basalt copyset status"), "{err}");
    }
    // A reset of a healthy copyset is refused by the replica: its leader is alive.
    let peer = format!("cs{}", copyset_peers(&ls)[0]);
    let o = basalt(&["peer", "reset", &cs0, &peer, "--force"], &env);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("leads it and is alive"), "{err}");
    assert!(err.contains("--ignore-leader"), "{err}");
    let o = basalt(&["peer", "reset", &cs0, "cs99", "--force"], &env);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cs99 is not a voter"));

    // A leader transfer and a peer removal, carried out and seen by the MDS. The MDS's
    // own scheduler balances leaders meanwhile, so each picks its chunkserver from a fresh
    // listing and tries again when the leadership moved under it.
    let op = retry_on_leader_moves(&env, |ls| {
        let leader = ls[0]["leader"].as_u64()?;
        let to = copyset_peers(ls).into_iter().find(|p| *p != leader)?;
        Some(vec![
            "leader".into(),
            "transfer".into(),
            cs0.clone(),
            "--to".into(),
            format!("cs{to}"),
        ])
    });
    assert_eq!(op["kind"], "transfer-leader", "{op}");
    let ops = j(&["operator", "ls"]);
    assert!(ops.is_array(), "{ops}");
    let op = retry_on_leader_moves(&env, |ls| {
        let leader = ls[0]["leader"].as_u64()?;
        let follower = copyset_peers(ls).into_iter().find(|p| *p != leader)?;
        Some(vec![
            "peer".into(),
            "remove".into(),
            cs0.clone(),
            follower.to_string(),
        ])
    });
    assert_eq!(op["kind"], "remove-peer", "{op}");
    // Drain: with one chunkserver per zone its replicas have nowhere to go, so it stays
    // draining (shown by ls, info and status), `--wait` times out saying why, and undo
    // returns it to service.
    let cs = format!("cs{id}");
    let d = j(&["chunkserver", "drain", &cs]);
    assert_eq!(d["state"], "draining", "{d}");
    assert!(d["blocked"].as_u64().unwrap() > 0, "{d}");
    let css = j(&["chunkserver", "ls"]);
    let me = css
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    assert_eq!(me["drain"], "draining", "{css}");
    let info = j(&["chunkserver", "info", &cs]);
    assert_eq!(info["drain_progress"]["state"], "draining", "{info}");
    let st = j(&["cluster", "status"]);
    assert_eq!(st["chunkservers"]["draining"], 1, "{st}");
    let o = basalt(
        &["chunkserver", "drain", &cs, "--wait", "--timeout", "1"],
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not drained after 1 s"), "{err}");
    assert!(err.contains("without a spare chunkserver"), "{err}");
    let u = j(&["chunkserver", "drain", &cs, "--undo"]);
    assert_eq!(u["state"], "in-service", "{u}");
    let st = j(&["cluster", "status"]);
    assert_eq!(st["chunkservers"]["draining"], 0, "{st}");
    let o = basalt(&["chunkserver", "drain", "cs99"], &env);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cs99 not found"),
        "{o:?}"
    );
    // A killed chunkserver: the replicas it held do not answer, so a deep check fails.
    let o = basalt(&["dev-cluster", "kill", "cs-1"], &env);
    assert!(o.status.success(), "{o:?}");
    let o = basalt(&["copyset", "check", "--deep", "--format", "json"], &env);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!d["unhealthy"].as_array().unwrap().is_empty(), "{d}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not healthy"));
    assert!(t0.elapsed() < Duration::from_secs(90), "{:?}", t0.elapsed());
}

#[test]
fn admin_usage_errors_exit_2_before_any_network() {
    for args in [
        &["copyset", "status", "5"][..],
        &["copyset", "status", "x.y"],
        &["leader", "transfer", "1.1", "--to", "host-1"],
        &["leader", "transfer", "1.1"],
        &["peer", "remove", "1.1"],
        &["peer", "reset", "1.1", "--force"],
        &["chunkserver", "info", "abc"],
        &["chunkserver", "drain", "abc"],
        &["chunkserver", "drain", "cs1", "--undo", "--wait"],
        &["chunkserver", "drain", "cs1", "--wait", "--timeout", "soon"],
        &["copyset", "ls", "--pool", "blocks"],
        &["topology", "apply"],
        &["topology", "apply", "m.toml", "--syntax", "json"],
        &["cluster", "frobnicate"],
    ] {
        let mut a = args.to_vec();
        // Unreachable on purpose: usage errors must not depend on the cluster.
        a.extend(["--mds", "127.0.0.1:1"]);
        let o = basalt(&a, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
    let o = basalt(&["copyset", "status", "5", "--mds", "127.0.0.1:1"], &[]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("POOL.COPYSET"),
        "{o:?}"
    );
    // A bad map file is reported (exit 1) before the cluster is asked.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.yaml");
    std::fs::write(&f, "server: [{ name: h, zone: nowhere }]\n").unwrap();
    let o = basalt(
        &[
            "topology",
            "apply",
            f.to_str().unwrap(),
            "--mds",
            "127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nowhere"),
        "{o:?}"
    );
}
