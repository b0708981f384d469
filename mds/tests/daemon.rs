//! Two real `basalt-mds` processes on a real etcd: one becomes active, the standby answers
//! `NotLeader` with the active's address; chunkservers register, copysets are created, a
//! volume is created over TCP; the active tells the (fake, TCP) chunkservers to create
//! their copysets once they heartbeat; both serve metrics; the active is SIGKILLed and the
//! standby takes over with every volume.

use basalt_proto::chunk::CreateCopyset;
use basalt_proto::heartbeat::DiskStats;
use basalt_proto::heartbeat::{CopysetReport, Heartbeat};
use basalt_proto::hello::{Identity, Role};
use basalt_proto::ids::GroupId;
use basalt_proto::ids::SEGMENT_SIZE;
use basalt_proto::mds::{CreateVolume, GetMdsLeader, RegisterChunkServer, StatVolume};
use basalt_proto::mds::{ListCopysets, Registered};
use basalt_proto::status::MdsError;
use basalt_testkit::EtcdProcess;
use basalt_transport::{Connection, Router, TcpTransport, TransportOptions};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(30);

struct Mds {
    child: Child,
    addr_file: PathBuf,
    metrics: SocketAddr,
}

impl Drop for Mds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the metrics port has no addr-file).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn spawn(dir: &Path, name: &str, etcd: &str, map: &Path) -> Mds {
    let addr_file = dir.join(format!("{name}.addr"));
    let metrics = free_port();
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "name = \"{name}\"\nlisten = \"127.0.0.1:0\"\naddr-file = \"{}\"\netcd = [\"{etcd}\"]\n\
             election-ttl-ms = 2000\ncluster-map = \"{}\"\ntick-interval-ms = 100\n\
             metrics-listen = \"{metrics}\"\n[copyset-create]\ninterval-ms = 100\nretry-min-ms = 200\n",
            addr_file.display(),
            map.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_basalt-mds"))
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn basalt-mds");
    Mds {
        child,
        addr_file,
        metrics,
    }
}

/// `GET /metrics`, or None while the port is not up.
async fn scrape(addr: SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.starts_with("HTTP/1.0 200").then_some(out)
}

/// A fake chunkserver over TCP recording the copysets it is asked to create.
async fn fake_chunkserver(
    created: Arc<Mutex<BTreeSet<GroupId>>>,
) -> basalt_transport::ServerHandle<SocketAddr> {
    let t = TcpTransport::new(TransportOptions::new(Identity {
        role: Role::ChunkServer,
        chunkserver: None,
        name: "fake-cs".into(),
        cluster: String::new(),
    }))
    .unwrap();
    let router = Router::new().route::<CreateCopyset, _, _>(move |req, _p, _g, _cx| {
        let created = created.clone();
        async move {
            created.lock().unwrap().insert(req.group);
            (Ok(()), bytes::Bytes::new())
        }
    });
    t.serve("127.0.0.1:0".parse().unwrap(), router)
        .await
        .unwrap()
}

async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t0.elapsed() < BOUND, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn addr_of(m: &Mds) -> SocketAddr {
    let f = m.addr_file.clone();
    wait_for("addr file", || {
        let f = f.clone();
        async move { std::fs::read_to_string(&f).ok()?.trim().parse().ok() }
    })
    .await
}

async fn is_leader(conn: &Connection) -> bool {
    matches!(conn.call(&GetMdsLeader {}, bytes::Bytes::new()).await, Ok((r, _)) if r.is_leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_redirects_and_takes_over_after_sigkill() {
    let etcd = EtcdProcess::start().expect("etcd");
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("cluster.toml");
    std::fs::write(
        &map,
        "[[physical-pool]]\nname='p'\n\
         [[zone]]\nname='z1'\nphysical-pool='p'\n[[zone]]\nname='z2'\nphysical-pool='p'\n[[zone]]\nname='z3'\nphysical-pool='p'\n\
         [[server]]\nname='h1'\nzone='z1'\n[[server]]\nname='h2'\nzone='z2'\n[[server]]\nname='h3'\nzone='z3'\n\
         [[logical-pool]]\nname='blocks'\nphysical-pool='p'\nreplicas=3\ncopysets-per-chunkserver=10\n",
    )
    .unwrap();
    let a = spawn(dir.path(), "mds-a", &etcd.endpoint(), &map);
    let b = spawn(dir.path(), "mds-b", &etcd.endpoint(), &map);
    let (addr_a, addr_b) = (addr_of(&a).await, addr_of(&b).await);
    let transport = TcpTransport::new(TransportOptions::new(Identity {
        role: Role::Cli,
        chunkserver: None,
        name: "test".into(),
        cluster: String::new(),
    }))
    .unwrap();
    let ca = transport.connect(addr_a).await.unwrap();
    let cb = transport.connect(addr_b).await.unwrap();
    let (mut active, standby, mut active_mds, standby_addr, active_addr) =
        wait_for("a leader", || {
            let (ca, cb) = (ca.clone(), cb.clone());
            async move {
                if is_leader(&ca).await {
                    Some((ca, cb, "a", addr_b, addr_a))
                } else if is_leader(&cb).await {
                    Some((cb, ca, "b", addr_a, addr_b))
                } else {
                    None
                }
            }
        })
        .await;
    // The standby refuses with the active's address.
    let create = |name: &str| CreateVolume {
        name: name.into(),
        size: 2 * SEGMENT_SIZE,
        owner: "t".into(),
        auth: None,
    };
    let hinted = wait_for("standby hint", || {
        let standby = standby.clone();
        let req = create("x");
        async move {
            match standby.call(&req, bytes::Bytes::new()).await.unwrap().0 {
                Err(MdsError::NotLeader { leader: Some(l) }) => Some(l),
                Err(MdsError::NotLeader { leader: None }) => None,
                other => panic!("standby answered {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(hinted, active_addr);
    // Chunkservers register; the pool's copysets get created by the tick.
    // Both serve metrics; only the active says it leads.
    let (m_active, m_standby) = if active_mds == "a" {
        (a.metrics, b.metrics)
    } else {
        (b.metrics, a.metrics)
    };
    let text = wait_for("active metrics", || scrape(m_active)).await;
    assert!(text.contains("basalt_mds_leader 1"), "{text}");
    let text = wait_for("standby metrics", || scrape(m_standby)).await;
    assert!(text.contains("basalt_mds_leader 0"), "{text}");
    assert!(
        text.contains("basalt_mds_rpc_requests_total{method=\"CreateVolume\"}"),
        "{text}"
    );
    let mut fakes = Vec::new();
    for (i, host) in ["h1", "h2", "h3"].iter().enumerate() {
        let created = Arc::new(Mutex::new(BTreeSet::new()));
        let handle = fake_chunkserver(created.clone()).await;
        let addr = handle.local_addr();
        let req = RegisterChunkServer {
            server: host.to_string(),
            disk_uuid: format!("disk-{i}"),
            addr,
            existing: None,
            disk: DiskStats {
                total_bytes: 1 << 40,
                ..Default::default()
            },
        };
        let reg = active
            .call(&req, bytes::Bytes::new())
            .await
            .unwrap()
            .0
            .unwrap();
        assert!(!reg.cluster.is_empty());
        fakes.push((reg, addr, created, handle));
    }
    let vol = wait_for("volume create", || {
        let active = active.clone();
        let req = create("vol1");
        async move {
            match active.call(&req, bytes::Bytes::new()).await.unwrap().0 {
                Ok(v) => Some(v),
                Err(MdsError::NoCopysets) => None,
                Err(e) => panic!("create: {e:?}"),
            }
        }
    })
    .await;
    assert_eq!(vol.size, 2 * SEGMENT_SIZE);

    // The chunkservers heartbeat what they hold; the active MDS creates every replica.
    let copysets = active
        .call(
            &ListCopysets {
                pool: basalt_proto::ids::LogicalPoolId(1),
            },
            bytes::Bytes::new(),
        )
        .await
        .unwrap()
        .0
        .unwrap();
    let all: BTreeSet<GroupId> = copysets.iter().map(|c| c.group).collect();
    assert_eq!(all.len(), 10, "3 × 10 / 3 copysets");
    let heartbeat = |reg: &Registered, addr: SocketAddr, held: &BTreeSet<GroupId>| Heartbeat {
        id: reg.id,
        token: reg.token.clone(),
        addr,
        disk: DiskStats::default(),
        copysets: held
            .iter()
            .map(|g| CopysetReport {
                group: *g,
                epoch: basalt_mds::copyset_sync::INITIAL_EPOCH,
                leader: None,
                peers: vec![],
                conf_change: None,
            })
            .collect(),
    };
    wait_for("copysets created on every chunkserver", || {
        let active = active.clone();
        let beats: Vec<_> = fakes
            .iter()
            .map(|(reg, addr, created, _)| heartbeat(reg, *addr, &created.lock().unwrap()))
            .collect();
        let done = fakes
            .iter()
            .all(|(_, _, created, _)| *created.lock().unwrap() == all);
        async move {
            for hb in beats {
                active
                    .call(&hb, bytes::Bytes::new())
                    .await
                    .unwrap()
                    .0
                    .unwrap();
            }
            done.then_some(())
        }
    })
    .await;
    let text = wait_for("create metrics", || scrape(m_active)).await;
    let ok: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("basalt_mds_copyset_creates_total{result=\"ok\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no create counter in {text}"));
    assert!(ok >= 30, "10 copysets × 3 replicas accepted, got {ok}");

    // SIGKILL the active; the standby takes over within the TTL (+ slack) with the volume.
    let t0 = Instant::now();
    let mut killed = if active_mds == "a" { a } else { b };
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    active_mds = if active_mds == "a" { "b" } else { "a" };
    active = standby;
    wait_for("takeover", || {
        let c = active.clone();
        async move { is_leader(&c).await.then_some(()) }
    })
    .await;
    let takeover = t0.elapsed();
    println!("MDS takeover after SIGKILL of the active: {takeover:?} (ttl 2 s); now active: {active_mds} at {standby_addr}");
    assert!(takeover < Duration::from_secs(6), "{takeover:?}");
    let stat = active
        .call(
            &StatVolume {
                name: "vol1".into(),
            },
            bytes::Bytes::new(),
        )
        .await
        .unwrap()
        .0;
    assert_eq!(stat.unwrap(), vol);
    drop(killed);
}
