//! Spec → process plan: every file to write and every process to run, with ports and
//! arguments. Pure (no I/O), so the layout is unit-tested.
//!
//! State dir layout:
//!
//! ```text
//! cluster.toml        state file (processes, pids, addresses)   see `state`
//! cluster-map.toml    topology applied by the active MDS
//! client.toml         client configuration (MDS addresses, owner `admin` + admin.key)
//! admin.key           the admin credential (0600; written by `up`, not by the plan)
//! admin.verifier      its verifier, named by every MDS config (`admin-verifier-file`)
//! cluster.secret      the cluster secret (0600; written by `up`, not by the plan), named
//!                     by every daemon and client config (`[transport] auth-secret-file`)
//! mds-N.toml          MDS config;  mds-N.addr: bound address (written by the MDS)
//! cs-N.toml           chunkserver config;  cs-N/: its data dir
//! etcd[-N]/           etcd data dir
//! logs/NAME.log       stdout + stderr of each process
//! ```

use super::spec::{ChunkserverIds, ClusterSpec};
use basalt_transport::FastPathMode;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Paths of the programs a cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// `etcd`.
    pub etcd: PathBuf,
    /// `basalt-mds`.
    pub mds: PathBuf,
    /// `basalt-chunkserver`.
    pub chunkserver: PathBuf,
}

/// Loopback ports chosen for the cluster (kept across restarts, so addresses stay valid).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ports {
    /// (client, peer) per etcd member.
    pub etcd: Vec<(u16, u16)>,
    /// RPC port per MDS.
    pub mds: Vec<u16>,
    /// Service port per chunkserver.
    pub chunkservers: Vec<u16>,
}

impl Ports {
    /// How many ports `spec` needs.
    pub fn count(spec: &ClusterSpec) -> usize {
        spec.etcd * 2 + spec.mds + spec.chunkservers
    }

    /// Split a flat list of distinct ports (at least [`Ports::count`]) by role.
    pub fn assign(spec: &ClusterSpec, ports: &[u16]) -> Ports {
        let mut it = ports.iter().copied();
        let mut take = || it.next().expect("enough ports");
        Ports {
            etcd: (0..spec.etcd).map(|_| (take(), take())).collect(),
            mds: (0..spec.mds).map(|_| take()).collect(),
            chunkservers: (0..spec.chunkservers).map(|_| take()).collect(),
        }
    }
}

/// What kind of daemon a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// etcd member.
    Etcd,
    /// `basalt-mds`.
    Mds,
    /// `basalt-chunkserver serve`.
    Chunkserver,
}

/// When a started process counts as ready.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ready {
    /// etcd answers `GET /health` on this client port.
    EtcdHealth {
        /// Client port.
        port: u16,
    },
    /// The process wrote its bound address to this file (removed before each start).
    AddrFile {
        /// The file.
        path: PathBuf,
    },
}

/// One process to run (or one step to run to completion).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProcessPlan {
    /// Name used by `kill|stop|cont|restart` (`etcd`, `mds-1`, `cs-2`).
    pub name: String,
    /// Daemon kind.
    pub kind: Kind,
    /// Program.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// stdout + stderr go here (appended).
    pub log: PathBuf,
    /// The address it serves on (etcd: client URL's address).
    pub addr: SocketAddr,
    /// Readiness condition.
    pub ready: Ready,
}

/// Everything `up` does, in order: create `dirs`, write `files`, start `etcd`, start the
/// MDSs, run `formats`, start the chunkservers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Directories to create.
    pub dirs: Vec<PathBuf>,
    /// Files to write (path, contents).
    pub files: Vec<(PathBuf, String)>,
    /// Chunkserver `format` steps (run to completion before the chunkservers start).
    pub formats: Vec<ProcessPlan>,
    /// Long-running processes, etcd first, then MDSs, then chunkservers.
    pub processes: Vec<ProcessPlan>,
    /// MDS RPC addresses (for the client configuration).
    pub mds_addrs: Vec<SocketAddr>,
    /// etcd client endpoints.
    pub etcd_endpoints: Vec<String>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Address the MDSs listen on: loopback, or the layout's host address.
fn mds_addr(spec: &ClusterSpec, port: u16) -> SocketAddr {
    match &spec.network {
        Some(n) => SocketAddr::from((n.host, port)),
        None => loopback(port),
    }
}

/// Address chunkserver `i` listens on: loopback, or its namespace's address.
fn chunkserver_addr(spec: &ClusterSpec, i: usize, port: u16) -> SocketAddr {
    match spec.network.as_ref().and_then(|n| n.chunkservers.get(i)) {
        Some(c) => SocketAddr::from((c.addr, port)),
        None => loopback(port),
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn ms(d: std::time::Duration) -> Value {
    Value::Integer(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn fast_path(mode: FastPathMode) -> Value {
    Value::String(
        match mode {
            FastPathMode::Off => "off",
            FastPathMode::Auto => "auto",
            FastPathMode::Force => "force",
        }
        .into(),
    )
}

/// Name of etcd member `i` (0-based): `etcd` when there is one, else `etcd-N`.
pub fn etcd_name(spec: &ClusterSpec, i: usize) -> String {
    if spec.etcd == 1 {
        "etcd".into()
    } else {
        format!("etcd-{}", i + 1)
    }
}

/// Server (host) name of chunkserver `i` (0-based) in the cluster map.
pub fn server_name(i: usize) -> String {
    format!("host-{}", i + 1)
}

/// The cluster map: one physical pool, `zones` zones, one server per chunkserver (spread
/// round-robin over the zones), one logical pool `blocks`.
pub fn cluster_map(spec: &ClusterSpec) -> String {
    let mut s = String::from("# Written by basalt-testkit for a dev cluster.\n");
    s.push_str("[[physical-pool]]\nname = \"pool-1\"\n");
    for z in 0..spec.zones {
        s.push_str(&format!(
            "\n[[zone]]\nname = \"zone-{}\"\nphysical-pool = \"pool-1\"\n",
            z + 1
        ));
    }
    for c in 0..spec.chunkservers {
        s.push_str(&format!(
            "\n[[server]]\nname = \"{}\"\nzone = \"zone-{}\"\n",
            server_name(c),
            c % spec.zones + 1
        ));
    }
    s.push_str(&format!(
        "\n[[logical-pool]]\nname = \"blocks\"\nphysical-pool = \"pool-1\"\nreplicas = {}\n\
         copysets-per-chunkserver = {}\n",
        spec.replicas(),
        spec.copysets_per_chunkserver
    ));
    s
}

/// The admin credential's key file in the state dir.
pub const ADMIN_KEY: &str = "admin.key";
/// Its verifier, read by every MDS.
pub const ADMIN_VERIFIER: &str = "admin.verifier";
/// The cluster secret file in the state dir (when the spec authenticates).
pub const CLUSTER_SECRET: &str = "cluster.secret";

/// The `[transport]` table of a daemon config: fast path, and the cluster secret file.
fn transport_table(spec: &ClusterSpec, dir: &Path) -> Value {
    let mut transport = Table::new();
    transport.insert("fast-path".into(), fast_path(spec.fast_path));
    if spec.authenticate {
        transport.insert(
            "auth-secret-file".into(),
            Value::String(path_str(&dir.join(CLUSTER_SECRET))),
        );
    }
    Value::Table(transport)
}

fn mds_config(spec: &ClusterSpec, i: usize, port: u16, etcd: &[String], dir: &Path) -> String {
    let name = format!("mds-{}", i + 1);
    let mut t = Table::new();
    t.insert("name".into(), Value::String(name.clone()));
    t.insert(
        "listen".into(),
        Value::String(mds_addr(spec, port).to_string()),
    );
    t.insert(
        "addr-file".into(),
        Value::String(path_str(&dir.join(format!("{name}.addr")))),
    );
    t.insert(
        "etcd".into(),
        Value::Array(etcd.iter().cloned().map(Value::String).collect()),
    );
    t.insert("election-ttl-ms".into(), ms(spec.election_ttl));
    t.insert(
        "admin-verifier-file".into(),
        Value::String(path_str(&dir.join(ADMIN_VERIFIER))),
    );
    t.insert(
        "cluster-map".into(),
        Value::String(path_str(&dir.join("cluster-map.toml"))),
    );
    t.insert("tick-interval-ms".into(), ms(spec.mds_tick));
    let min_cs = spec.chunkservers.clamp(1, 3);
    t.insert(
        "copyset-min-chunkservers".into(),
        Value::Integer(i64::try_from(min_cs).unwrap_or(3)),
    );
    t.insert("transport".into(), transport_table(spec, dir));
    toml::to_string(&t).expect("a toml table serialises")
}

fn chunkserver_config(
    spec: &ClusterSpec,
    i: usize,
    port: u16,
    mds: &[SocketAddr],
    data_dir: &Path,
    dir: &Path,
) -> String {
    let mut t = Table::new();
    t.insert("data-dir".into(), Value::String(path_str(data_dir)));
    let mut server = Table::new();
    server.insert(
        "listen".into(),
        Value::String(chunkserver_addr(spec, i, port).to_string()),
    );
    server.insert("metrics-listen".into(), Value::String("127.0.0.1:0".into()));
    if spec.chunkserver_ids == ChunkserverIds::Register {
        server.insert(
            "mds-addrs".into(),
            Value::Array(mds.iter().map(|a| Value::String(a.to_string())).collect()),
        );
        server.insert("server-name".into(), Value::String(server_name(i)));
        server.insert("heartbeat-interval-ms".into(), ms(spec.cs_heartbeat));
    }
    t.insert("server".into(), Value::Table(server));
    t.insert("transport".into(), transport_table(spec, dir));
    let mut pool = Table::new();
    pool.insert(
        "size".into(),
        Value::Integer(i64::try_from(spec.pool_chunks).unwrap_or(16)),
    );
    t.insert("pool".into(), Value::Table(pool));
    let mut wal = Table::new();
    wal.insert(
        "segments".into(),
        Value::Integer(i64::try_from(spec.wal_segments).unwrap_or(2)),
    );
    t.insert("wal".into(), Value::Table(wal));
    let mut copyset = Table::new();
    copyset.insert("heartbeat-interval-ms".into(), ms(spec.raft_heartbeat));
    copyset.insert("election-timeout-min-ms".into(), ms(spec.raft_election.0));
    copyset.insert("election-timeout-max-ms".into(), ms(spec.raft_election.1));
    t.insert("copyset".into(), Value::Table(copyset));
    toml::to_string(&t).expect("a toml table serialises")
}

/// Build the plan. `ports` must come from [`Ports::assign`] for this spec.
pub fn plan(spec: &ClusterSpec, bins: &Binaries, ports: &Ports) -> Plan {
    let dir = spec.state_dir.as_path();
    let logs = dir.join("logs");
    let mut p = Plan {
        dirs: vec![dir.to_path_buf(), logs.clone()],
        files: vec![(dir.join("cluster-map.toml"), cluster_map(spec))],
        formats: Vec::new(),
        processes: Vec::new(),
        mds_addrs: ports.mds.iter().map(|&port| mds_addr(spec, port)).collect(),
        etcd_endpoints: ports
            .etcd
            .iter()
            .map(|&(c, _)| format!("http://{}", loopback(c)))
            .collect(),
    };
    let initial_cluster = ports
        .etcd
        .iter()
        .enumerate()
        .map(|(i, &(_, peer))| format!("{}=http://{}", etcd_name(spec, i), loopback(peer)))
        .collect::<Vec<_>>()
        .join(",");
    for (i, &(client, peer)) in ports.etcd.iter().enumerate() {
        let name = etcd_name(spec, i);
        let data = dir.join(&name);
        let client_url = format!("http://{}", loopback(client));
        let peer_url = format!("http://{}", loopback(peer));
        let args = [
            "--name",
            &name,
            "--data-dir",
            &path_str(&data),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &initial_cluster,
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
        ];
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        p.processes.push(ProcessPlan {
            log: logs.join(format!("{name}.log")),
            name,
            kind: Kind::Etcd,
            program: bins.etcd.clone(),
            args,
            addr: loopback(client),
            ready: Ready::EtcdHealth { port: client },
        });
    }
    for (i, &port) in ports.mds.iter().enumerate() {
        let name = format!("mds-{}", i + 1);
        let cfg = dir.join(format!("{name}.toml"));
        p.files.push((
            cfg.clone(),
            mds_config(spec, i, port, &p.etcd_endpoints, dir),
        ));
        p.processes.push(ProcessPlan {
            log: logs.join(format!("{name}.log")),
            program: bins.mds.clone(),
            args: vec!["--config".into(), path_str(&cfg)],
            kind: Kind::Mds,
            addr: mds_addr(spec, port),
            ready: Ready::AddrFile {
                path: dir.join(format!("{name}.addr")),
            },
            name,
        });
    }
    for (i, &port) in ports.chunkservers.iter().enumerate() {
        let name = format!("cs-{}", i + 1);
        let cfg = dir.join(format!("{name}.toml"));
        let data = spec
            .chunkserver_data_dirs
            .get(i)
            .cloned()
            .unwrap_or_else(|| dir.join(&name));
        let addr = chunkserver_addr(spec, i, port);
        p.files.push((
            cfg.clone(),
            chunkserver_config(spec, i, port, &p.mds_addrs, &data, dir),
        ));
        let log = logs.join(format!("{name}.log"));
        p.formats.push(ProcessPlan {
            name: name.clone(),
            kind: Kind::Chunkserver,
            program: bins.chunkserver.clone(),
            args: vec![
                "--config".into(),
                path_str(&cfg),
                "format".into(),
                "--quiet".into(),
            ],
            log: log.clone(),
            addr,
            ready: Ready::AddrFile {
                path: data.join("listen-addr"),
            },
        });
        let mut args = vec!["--config".into(), path_str(&cfg), "serve".into()];
        if spec.chunkserver_ids == ChunkserverIds::Static {
            args.push("--chunkserver-id".into());
            args.push((i + 1).to_string());
        }
        // In a namespace of its own: `ip netns exec NS chunkserver ARGS` (ip execs the
        // program in place, so the recorded pid is the chunkserver's).
        let (program, args) = match spec.network.as_ref().and_then(|n| {
            n.chunkservers
                .get(i)
                .map(|c| (n.ip_program.clone(), c.netns.clone()))
        }) {
            Some((ip, netns)) => {
                let mut wrapped = vec!["netns".into(), "exec".into(), netns];
                wrapped.push(path_str(&bins.chunkserver));
                wrapped.extend(args);
                (ip, wrapped)
            }
            None => (bins.chunkserver.clone(), args),
        };
        p.processes.push(ProcessPlan {
            name,
            kind: Kind::Chunkserver,
            program,
            args,
            log,
            addr,
            ready: Ready::AddrFile {
                path: data.join("listen-addr"),
            },
        });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins() -> Binaries {
        Binaries {
            etcd: "/usr/bin/etcd".into(),
            mds: "/b/basalt-mds".into(),
            chunkserver: "/b/basalt-chunkserver".into(),
        }
    }

    fn sample(spec: &ClusterSpec) -> Plan {
        let ports: Vec<u16> = (20_000..20_000 + Ports::count(spec) as u16).collect();
        plan(spec, &bins(), &Ports::assign(spec, &ports))
    }

    #[test]
    fn default_plan_has_one_etcd_three_mds_three_chunkservers_on_distinct_ports() {
        let spec = ClusterSpec::new("/state");
        let p = sample(&spec);
        let names: Vec<&str> = p.processes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["etcd", "mds-1", "mds-2", "mds-3", "cs-1", "cs-2", "cs-3"]
        );
        assert_eq!(p.formats.len(), 3);
        let mut addrs: Vec<SocketAddr> = p.processes.iter().map(|p| p.addr).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 7, "every process has its own port");
        assert_eq!(p.mds_addrs.len(), 3);
        assert_eq!(p.etcd_endpoints, ["http://127.0.0.1:20000"]);
        assert!(p.processes.iter().all(|x| x.addr.ip().is_loopback()));
        // etcd is told its own client URL and the initial cluster.
        let etcd = &p.processes[0];
        assert!(etcd
            .args
            .windows(2)
            .any(|w| w[0] == "--listen-client-urls" && w[1] == "http://127.0.0.1:20000"));
        assert!(etcd
            .args
            .windows(2)
            .any(|w| w[0] == "--initial-cluster" && w[1] == "etcd=http://127.0.0.1:20001"));
    }

    #[test]
    fn cluster_map_puts_one_server_per_zone_and_parses() {
        let spec = ClusterSpec::new("/state");
        let text = cluster_map(&spec);
        let t: Table = toml::from_str(&text).unwrap();
        let servers = t["server"].as_array().unwrap();
        assert_eq!(servers.len(), 3);
        let zones: Vec<&str> = servers
            .iter()
            .map(|s| s["zone"].as_str().unwrap())
            .collect();
        assert_eq!(zones, ["zone-1", "zone-2", "zone-3"]);
        assert_eq!(t["logical-pool"][0]["replicas"].as_integer(), Some(3));
        let six = ClusterSpec {
            chunkservers: 6,
            ..spec
        };
        let t: Table = toml::from_str(&cluster_map(&six)).unwrap();
        assert_eq!(t["server"][3]["zone"].as_str(), Some("zone-1"));
    }

    #[test]
    fn mds_config_carries_ports_etcd_map_and_timings() {
        let spec = ClusterSpec::new("/state");
        let p = sample(&spec);
        let (path, text) = p
            .files
            .iter()
            .find(|(f, _)| f.ends_with("mds-2.toml"))
            .unwrap();
        assert_eq!(path, Path::new("/state/mds-2.toml"));
        let t: Table = toml::from_str(text).unwrap();
        assert_eq!(t["name"].as_str(), Some("mds-2"));
        assert_eq!(
            t["listen"].as_str(),
            Some(p.mds_addrs[1].to_string().as_str())
        );
        assert_eq!(t["addr-file"].as_str(), Some("/state/mds-2.addr"));
        assert_eq!(t["etcd"][0].as_str(), Some("http://127.0.0.1:20000"));
        assert_eq!(t["election-ttl-ms"].as_integer(), Some(2000));
        assert_eq!(t["cluster-map"].as_str(), Some("/state/cluster-map.toml"));
        assert_eq!(
            t["admin-verifier-file"].as_str(),
            Some("/state/admin.verifier")
        );
        assert_eq!(t["transport"]["fast-path"].as_str(), Some("off"));
        assert_eq!(
            t["transport"]["auth-secret-file"].as_str(),
            Some("/state/cluster.secret")
        );
        let mds2 = p.processes.iter().find(|x| x.name == "mds-2").unwrap();
        assert_eq!(mds2.args, ["--config", "/state/mds-2.toml"]);
        assert_eq!(
            mds2.ready,
            Ready::AddrFile {
                path: "/state/mds-2.addr".into()
            }
        );
    }

    #[test]
    fn chunkservers_register_by_server_name_or_take_static_ids() {
        let spec = ClusterSpec::new("/state");
        let p = sample(&spec);
        let text = &p
            .files
            .iter()
            .find(|(f, _)| f.ends_with("cs-3.toml"))
            .unwrap()
            .1;
        let t: Table = toml::from_str(text).unwrap();
        assert_eq!(t["data-dir"].as_str(), Some("/state/cs-3"));
        assert_eq!(t["server"]["server-name"].as_str(), Some("host-3"));
        assert_eq!(t["server"]["mds-addrs"].as_array().unwrap().len(), 3);
        assert_eq!(t["pool"]["size"].as_integer(), Some(16));
        assert_eq!(
            t["transport"]["auth-secret-file"].as_str(),
            Some("/state/cluster.secret")
        );
        assert_eq!(
            t["copyset"]["election-timeout-min-ms"].as_integer(),
            Some(1000)
        );
        let cs3 = p.processes.iter().find(|x| x.name == "cs-3").unwrap();
        assert_eq!(cs3.args, ["--config", "/state/cs-3.toml", "serve"]);
        assert_eq!(p.formats[2].args[2..], ["format", "--quiet"]);

        let fixed = ClusterSpec {
            chunkserver_ids: ChunkserverIds::Static,
            ..spec
        };
        let p = sample(&fixed);
        let text = &p
            .files
            .iter()
            .find(|(f, _)| f.ends_with("cs-3.toml"))
            .unwrap()
            .1;
        let t: Table = toml::from_str(text).unwrap();
        assert!(t["server"].get("server-name").is_none());
        assert!(t["server"].get("mds-addrs").is_none());
        let cs3 = p.processes.iter().find(|x| x.name == "cs-3").unwrap();
        assert_eq!(cs3.args[3..], ["--chunkserver-id", "3"]);
    }

    #[test]
    fn an_unauthenticated_spec_names_no_secret_file() {
        let spec = ClusterSpec {
            authenticate: false,
            ..ClusterSpec::new("/state")
        };
        let p = sample(&spec);
        for (path, text) in p.files.iter().filter(|(f, _)| {
            f.extension().is_some_and(|e| e == "toml") && !f.ends_with("cluster-map.toml")
        }) {
            let t: Table = toml::from_str(text).unwrap();
            assert!(
                t["transport"].get("auth-secret-file").is_none(),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn three_etcd_members_share_one_initial_cluster() {
        let spec = ClusterSpec {
            etcd: 3,
            ..ClusterSpec::new("/s")
        };
        let p = sample(&spec);
        let etcds: Vec<&ProcessPlan> = p
            .processes
            .iter()
            .filter(|x| x.kind == Kind::Etcd)
            .collect();
        assert_eq!(etcds.len(), 3);
        assert_eq!(etcds[1].name, "etcd-2");
        let ic = |x: &ProcessPlan| {
            let i = x
                .args
                .iter()
                .position(|a| a == "--initial-cluster")
                .unwrap();
            x.args[i + 1].clone()
        };
        assert_eq!(ic(etcds[0]), ic(etcds[2]));
        assert_eq!(ic(etcds[0]).split(',').count(), 3);
        assert_eq!(p.etcd_endpoints.len(), 3);
    }

    #[test]
    fn chunkservers_in_namespaces_listen_on_their_own_addresses_and_external_data_dirs() {
        use crate::cluster::spec::{ChunkserverNet, NetworkLayout};
        use std::net::Ipv4Addr;
        let mut spec = ClusterSpec::new("/state");
        spec.network = Some(NetworkLayout {
            host: Ipv4Addr::new(10, 77, 5, 1),
            ip_program: "/usr/sbin/ip".into(),
            chunkservers: (1..=3)
                .map(|i| ChunkserverNet {
                    netns: format!("ns-{i}"),
                    addr: Ipv4Addr::new(10, 77, 5, 10 + i),
                })
                .collect(),
        });
        spec.chunkserver_data_dirs = (1..=3).map(|i| format!("/mnt/d{i}").into()).collect();
        let p = sample(&spec);
        assert!(p
            .mds_addrs
            .iter()
            .all(|a| a.ip() == Ipv4Addr::new(10, 77, 5, 1)));
        let cs2 = p.processes.iter().find(|x| x.name == "cs-2").unwrap();
        assert_eq!(cs2.addr.ip(), Ipv4Addr::new(10, 77, 5, 12));
        assert_eq!(cs2.program, Path::new("/usr/sbin/ip"));
        assert_eq!(
            cs2.args[..4],
            ["netns", "exec", "ns-2", "/b/basalt-chunkserver"]
        );
        assert_eq!(cs2.args[4..], ["--config", "/state/cs-2.toml", "serve"]);
        assert_eq!(
            cs2.ready,
            Ready::AddrFile {
                path: "/mnt/d2/listen-addr".into()
            }
        );
        // format runs in the current namespace (it binds nothing).
        assert_eq!(p.formats[1].program, Path::new("/b/basalt-chunkserver"));
        let text = &p
            .files
            .iter()
            .find(|(f, _)| f.ends_with("cs-2.toml"))
            .unwrap()
            .1;
        let t: Table = toml::from_str(text).unwrap();
        assert_eq!(t["data-dir"].as_str(), Some("/mnt/d2"));
        assert_eq!(
            t["server"]["listen"].as_str(),
            Some(cs2.addr.to_string().as_str())
        );
        assert_eq!(
            t["server"]["mds-addrs"][0].as_str(),
            Some(p.mds_addrs[0].to_string().as_str())
        );
        let mds1 = p.processes.iter().find(|x| x.name == "mds-1").unwrap();
        assert_eq!(mds1.addr, p.mds_addrs[0]);
        let etcd = &p.processes[0];
        assert!(etcd.addr.ip().is_loopback());
    }
}
