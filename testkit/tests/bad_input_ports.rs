//! Garbage on every listening port of a real dev cluster (etcd, 3 MDS, 3 chunkservers) and
//! of a `basalt-nbd` server exporting one of its volumes: random bytes, wrong magic,
//! truncated frames, valid headers announcing oversized lengths, a wrong protocol version,
//! a hello without the cluster secret's proof (refused before the requests pipelined
//! behind it are served), stalled half-sent frames (slowloris) and bursts of
//! connections — on the MDS and chunkserver service ports, the chunkservers' metrics HTTP
//! ports and the NBD port. Afterwards every daemon is still running, still serves real
//! requests (a new volume written and read back through the client; NBD write and read
//! through a fresh handshake), closed the stalled connections itself, counted the bad
//! frames, and no log shows a panic.
//!
//! Needs `basalt-mds`, `basalt-chunkserver` and `basalt-nbd` built in the target dir
//! (`cargo build -p basalt-mds -p basalt-chunkserver -p basalt-nbd --bins`) or in
//! `$BASALT_BIN_DIR`, and `etcd` on `PATH`.

use basalt_proto::codec;
use basalt_proto::hello::{Features, Hello, HelloRefusal, HelloReply, Identity, Ping, Role};
use basalt_proto::ids::{GroupId, SEGMENT_SIZE};
use basalt_proto::{FrameHeader, FrameKind, Limits, Method, FRAME_HEADER_LEN};
use basalt_testkit::cluster::plan::Kind;
use basalt_testkit::cluster::{wait, Liveness};
use basalt_testkit::rig::Rig;
use basalt_testkit::workload::block::SplitMix;
use basalt_transport::{ClusterSecret, TcpTransport};
use bytes::Bytes;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Bound of every single exchange with a daemon.
const BOUND: Duration = Duration::from_secs(10);
/// The transport closes a connection that sends no complete hello within 5 s (default
/// `hello-timeout-ms`), the metrics endpoint one that sends no request head within 5 s.
const STALL_CLOSED_WITHIN: Duration = Duration::from_secs(15);
/// Stalled connections opened per port.
const STALLED: usize = 16;
/// Connections of a burst, per port.
const BURST: usize = 48;

type Res<T = ()> = Result<T, String>;

fn random_bytes(rng: &mut SplitMix, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

async fn connect(addr: SocketAddr) -> Res<TcpStream> {
    timeout(BOUND, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: connect timed out"))?
        .map_err(|e| format!("{addr}: connect: {e}"))
}

/// Send `bytes` (a peer that hangs up half way is fine).
async fn send(s: &mut TcpStream, bytes: &[u8]) {
    let _ = timeout(BOUND, s.write_all(bytes)).await;
}

/// The daemon must close the connection (EOF or reset) within [`BOUND`]; whatever it sends
/// first is returned.
async fn expect_closed(s: &mut TcpStream, what: &str) -> Res<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(BOUND, s.read(&mut buf)).await {
            Err(_) => return Err(format!("{what}: connection still open after {BOUND:?}")),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A whole frame with a valid fixed header.
fn frame(version: u16, kind: FrameKind, method: u16, corr: u64, head: &[u8]) -> Vec<u8> {
    let mut h = FrameHeader::new(kind, method, corr, GroupId::NONE);
    h.version = version;
    h.header_len = head.len() as u32;
    let mut v = h.encode().to_vec();
    v.extend_from_slice(head);
    v
}

fn hello(version: u16) -> Vec<u8> {
    let hello = Hello {
        version,
        features: Features::empty(),
        identity: Identity {
            role: Role::Client,
            chunkserver: None,
            name: "garbage:1".into(),
            cluster: String::new(),
        },
        ucx: None,
    };
    frame(
        version,
        FrameKind::Request,
        Method::Hello as u16,
        0,
        &codec::encode(&hello).expect("hello encodes"),
    )
}

/// Read one frame: its fixed header and encoded header (the payload is dropped).
async fn read_frame(s: &mut TcpStream, what: &str) -> Res<(FrameHeader, Vec<u8>)> {
    let mut fixed = [0u8; FRAME_HEADER_LEN];
    timeout(BOUND, s.read_exact(&mut fixed))
        .await
        .map_err(|_| format!("{what}: no reply frame"))?
        .map_err(|e| format!("{what}: reading the reply: {e}"))?;
    let h = FrameHeader::decode(&fixed, &Limits::DEFAULT)
        .map_err(|e| format!("{what}: the daemon sent a bad frame: {e}"))?;
    let mut rest = vec![0u8; h.header_len as usize + h.payload_len as usize];
    timeout(BOUND, s.read_exact(&mut rest))
        .await
        .map_err(|_| format!("{what}: reply frame cut short"))?
        .map_err(|e| format!("{what}: reading the reply: {e}"))?;
    rest.truncate(h.header_len as usize);
    Ok((h, rest))
}

/// Every attack on one Basalt service port (MDS or chunkserver). `bad_request_method` is
/// a method the port serves, sent with an undecodable request; `secret` is the
/// cluster's, which a well-formed hello without its proof lacks.
async fn attack_service(
    addr: SocketAddr,
    bad_request_method: Method,
    seed: u64,
    secret: ClusterSecret,
) -> Res {
    let mut rng = SplitMix(seed);
    let what = |w: &str| format!("{addr} {w}");

    // random bytes
    let mut s = connect(addr).await?;
    send(&mut s, &random_bytes(&mut rng, 64 * 1024)).await;
    expect_closed(&mut s, &what("random bytes")).await?;

    // wrong magic on an otherwise plausible header
    let mut bad_magic = hello(basalt_proto::PROTOCOL_VERSION);
    bad_magic[..4].copy_from_slice(b"XSLT");
    let mut s = connect(addr).await?;
    send(&mut s, &bad_magic).await;
    expect_closed(&mut s, &what("wrong magic")).await?;

    // a valid hello cut short, then the write side closed
    let full = hello(basalt_proto::PROTOCOL_VERSION);
    for cut in [10, FRAME_HEADER_LEN + 3] {
        let mut s = connect(addr).await?;
        send(&mut s, &full[..cut]).await;
        let _ = s.shutdown().await;
        expect_closed(&mut s, &what("truncated hello")).await?;
    }

    // valid fixed headers announcing lengths over the limits (nothing follows)
    for (header_len, payload_len) in [(u32::MAX, 0), (4 * 1024 * 1024 + 1, 0), (0, u32::MAX)] {
        let mut h = FrameHeader::new(FrameKind::Request, Method::Hello as u16, 0, GroupId::NONE);
        h.header_len = header_len;
        h.payload_len = payload_len;
        let mut s = connect(addr).await?;
        send(&mut s, &h.encode()).await;
        expect_closed(&mut s, &what("oversized lengths")).await?;
    }

    // another protocol version: refused with a reply saying so
    let mut s = connect(addr).await?;
    send(&mut s, &hello(99)).await;
    let (_, head) = read_frame(&mut s, &what("wrong version")).await?;
    match codec::decode::<HelloReply>(&head) {
        Ok(HelloReply::Refused(HelloRefusal::VersionMismatch { theirs: 99, .. })) => {}
        other => return Err(what(&format!("wrong version answered {other:?}"))),
    }
    expect_closed(&mut s, &what("wrong version")).await?;

    // a well-formed hello without the cluster secret's proof, with requests pipelined
    // behind it (one unknown, one undecodable, one the port serves): the hello is refused
    // and the connection closed before any request is served, not even answered with an
    // error
    let mut pipelined = hello(basalt_proto::PROTOCOL_VERSION);
    pipelined.extend(frame(
        basalt_proto::PROTOCOL_VERSION,
        FrameKind::Request,
        9999,
        7,
        b"?",
    ));
    pipelined.extend(frame(
        basalt_proto::PROTOCOL_VERSION,
        FrameKind::Request,
        bad_request_method as u16,
        8,
        &[0xff; 9],
    ));
    pipelined.extend(frame(
        basalt_proto::PROTOCOL_VERSION,
        FrameKind::Request,
        Method::Ping as u16,
        9,
        &codec::encode(&Ping { nonce: 9 }).expect("ping encodes"),
    ));
    let mut s = connect(addr).await?;
    send(&mut s, &pipelined).await;
    let (h, head) = read_frame(&mut s, &what("unauthenticated hello")).await?;
    if h.correlation_id != 0
        || !matches!(
            codec::decode::<HelloReply>(&head),
            Ok(HelloReply::Refused(HelloRefusal::AuthFailed))
        )
    {
        return Err(what(&format!(
            "an unauthenticated hello was not refused: {h:?} {:?}",
            codec::decode::<HelloReply>(&head)
        )));
    }
    let after = expect_closed(&mut s, &what("unauthenticated hello")).await?;
    if !after.is_empty() {
        return Err(what(&format!(
            "{} bytes sent after refusing the hello (a request was served)",
            after.len()
        )));
    }

    // the same port still serves a client holding the cluster secret
    let t = TcpTransport::new(wait::probe_options("garbage-check", Some(&secret)))
        .map_err(|e| what(&format!("transport: {e}")))?;
    let conn = timeout(BOUND, t.connect(addr))
        .await
        .map_err(|_| what("authenticated connect timed out"))?
        .map_err(|e| what(&format!("authenticated connect: {e}")))?;
    timeout(BOUND, conn.ping())
        .await
        .map_err(|_| what("authenticated ping timed out"))?
        .map_err(|e| what(&format!("authenticated ping: {e}")))?;

    // a burst of connections, each with garbage
    let mut burst = Vec::new();
    for i in 0..BURST {
        let bytes = random_bytes(&mut rng, 256 + i);
        burst.push(tokio::spawn(async move {
            let mut s = connect(addr).await?;
            send(&mut s, &bytes).await;
            expect_closed(&mut s, &format!("{addr} burst"))
                .await
                .map(drop)
        }));
    }
    for b in burst {
        b.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Connections that send the start of something and stall.
async fn stall(addr: SocketAddr, prefix: &[u8]) -> Res<Vec<TcpStream>> {
    let mut v = Vec::new();
    for _ in 0..STALLED {
        let mut s = connect(addr).await?;
        send(&mut s, prefix).await;
        v.push(s);
    }
    Ok(v)
}

/// Every stalled connection must have been closed by the daemon.
async fn expect_stalled_closed(conns: Vec<(SocketAddr, TcpStream)>) -> Res {
    let deadline = tokio::time::Instant::now() + STALL_CLOSED_WITHIN;
    for (addr, mut s) in conns {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return Err(format!("{addr}: a stalled connection is still open")),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
            }
        }
    }
    Ok(())
}

async fn http(addr: SocketAddr, request: &[u8]) -> Res<String> {
    let mut s = connect(addr).await?;
    send(&mut s, request).await;
    let _ = s.shutdown().await;
    let got = expect_closed(&mut s, &format!("{addr} http")).await?;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// Garbage on a metrics endpoint; each answered with the right status or closed.
async fn attack_metrics(addr: SocketAddr, seed: u64) -> Res {
    let mut rng = SplitMix(seed);
    let mut random = random_bytes(&mut rng, 2000);
    random.retain(|&b| b != b'\n');
    let answer = http(addr, &random).await?;
    if !(answer.is_empty() || answer.starts_with("HTTP/1.0 400")) {
        return Err(format!("{addr}: random bytes answered {answer:?}"));
    }
    for (req, status) in [
        (vec![b'A'; 10 * 1024], "431"),
        (b"\xff\xfe\xfd /metrics HTTP/1.1\r\n\r\n".to_vec(), "400"),
        (b"GET\r\n\r\n".to_vec(), "400"),
        (b"BREW /metrics HTTP/1.1\r\n\r\n".to_vec(), "405"),
        (b"GET /../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(), "404"),
    ] {
        let answer = http(addr, &req).await?;
        if !answer.starts_with(&format!("HTTP/1.0 {status}")) {
            return Err(format!("{addr}: expected {status}, got {answer:?}"));
        }
    }
    Ok(())
}

async fn metrics_text(addr: SocketAddr) -> Res<String> {
    let answer = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    if !answer.starts_with("HTTP/1.0 200") {
        return Err(format!("{addr}: GET /metrics answered {answer:?}"));
    }
    Ok(answer)
}

/// Value of an unlabelled counter in a metrics text.
fn counter(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

// ---- NBD -------------------------------------------------------------------------------

const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const OPT_ABORT: u32 = 2;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;

fn nbd_option(opt: u32, data: &[u8]) -> Vec<u8> {
    let mut v = IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&opt.to_be_bytes());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn nbd_go(export: &str) -> Vec<u8> {
    let mut d = (export.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(export.as_bytes());
    d.extend_from_slice(&0u16.to_be_bytes());
    nbd_option(OPT_GO, &d)
}

fn nbd_request(kind: u16, cookie: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut v = REQUEST_MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&kind.to_be_bytes());
    v.extend_from_slice(&cookie.to_be_bytes());
    v.extend_from_slice(&offset.to_be_bytes());
    v.extend_from_slice(&len.to_be_bytes());
    v
}

async fn read_exact(s: &mut TcpStream, n: usize, what: &str) -> Res<Vec<u8>> {
    let mut b = vec![0u8; n];
    timeout(BOUND, s.read_exact(&mut b))
        .await
        .map_err(|_| format!("{what}: timed out"))?
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(b)
}

/// Connect, read the greeting and send the client flags (fixed newstyle, no zeroes).
async fn nbd_open(addr: SocketAddr) -> Res<TcpStream> {
    let mut s = connect(addr).await?;
    let greeting = read_exact(&mut s, 18, "nbd greeting").await?;
    if greeting[..8] != *b"NBDMAGIC" {
        return Err(format!("nbd greeting {greeting:?}"));
    }
    send(&mut s, &3u32.to_be_bytes()).await;
    Ok(s)
}

/// Option replies up to (and including) the final one; returns its type.
async fn nbd_replies(s: &mut TcpStream) -> Res<u32> {
    loop {
        let h = read_exact(s, 20, "nbd option reply").await?;
        if u64::from_be_bytes(h[0..8].try_into().unwrap()) != OPT_REPLY_MAGIC {
            return Err(format!("bad option reply {h:?}"));
        }
        let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap()) as usize;
        read_exact(s, len, "nbd option reply data").await?;
        if kind == REP_ACK || kind & (1 << 31) != 0 {
            return Ok(kind);
        }
    }
}

/// Handshake to transmission on `export`.
async fn nbd_session(addr: SocketAddr, export: &str) -> Res<TcpStream> {
    let mut s = nbd_open(addr).await?;
    send(&mut s, &nbd_go(export)).await;
    match nbd_replies(&mut s).await? {
        REP_ACK => Ok(s),
        e => Err(format!("GO {export} refused with {e:#x}")),
    }
}

/// The simple reply to `cookie`: its error value.
async fn nbd_reply(s: &mut TcpStream, cookie: u64) -> Res<u32> {
    let r = read_exact(s, 16, "nbd reply").await?;
    if u32::from_be_bytes(r[0..4].try_into().unwrap()) != SIMPLE_REPLY_MAGIC
        || u64::from_be_bytes(r[8..16].try_into().unwrap()) != cookie
    {
        return Err(format!("unexpected nbd reply {r:?} for cookie {cookie}"));
    }
    Ok(u32::from_be_bytes(r[4..8].try_into().unwrap()))
}

async fn attack_nbd(addr: SocketAddr, export: &str, seed: u64) -> Res {
    let mut rng = SplitMix(seed);
    // random bytes in place of the client flags
    let mut s = connect(addr).await?;
    send(&mut s, &random_bytes(&mut rng, 4096)).await;
    expect_closed(&mut s, "nbd random bytes").await?;
    // an option with the wrong magic
    let mut s = nbd_open(addr).await?;
    let mut bad = nbd_go(export);
    bad[0] ^= 0xff;
    send(&mut s, &bad).await;
    expect_closed(&mut s, "nbd option magic").await?;
    // an option announcing 4 GiB of data
    let mut s = nbd_open(addr).await?;
    let mut huge = nbd_option(OPT_GO, &[]);
    huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    send(&mut s, &huge).await;
    expect_closed(&mut s, "nbd huge option").await?;
    // an unknown export is refused, the connection stays usable, ABORT closes it
    let mut s = nbd_open(addr).await?;
    send(&mut s, &nbd_go("no-such-export")).await;
    if nbd_replies(&mut s).await? == REP_ACK {
        return Err("GO on an unknown export succeeded".into());
    }
    send(&mut s, &nbd_option(OPT_ABORT, &[])).await;
    expect_closed(&mut s, "nbd abort").await?;
    // transmission: a read past the end gets an error reply, then a bad request magic
    // closes the connection
    let mut s = nbd_session(addr, export).await?;
    send(&mut s, &nbd_request(CMD_READ, 1, u64::MAX - 511, 512)).await;
    if nbd_reply(&mut s, 1).await? == 0 {
        return Err("nbd read past the end succeeded".into());
    }
    let mut bad = nbd_request(CMD_READ, 2, 0, 512);
    bad[0] ^= 0xff;
    send(&mut s, &bad).await;
    expect_closed(&mut s, "nbd request magic").await?;
    // a write announcing more payload than the maximum block size closes the connection
    let mut s = nbd_session(addr, export).await?;
    send(&mut s, &nbd_request(CMD_WRITE, 3, 0, u32::MAX)).await;
    expect_closed(&mut s, "nbd oversized write").await?;
    // a request header cut short
    let mut s = nbd_session(addr, export).await?;
    send(&mut s, &nbd_request(CMD_WRITE, 4, 0, 4096)[..20]).await;
    let _ = s.shutdown().await;
    expect_closed(&mut s, "nbd truncated request").await?;
    Ok(())
}

/// A real NBD client session: write a block, read it back, disconnect.
async fn nbd_serves(addr: SocketAddr, export: &str) -> Res {
    let mut s = nbd_session(addr, export).await?;
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut req = nbd_request(CMD_WRITE, 10, 8192, 4096);
    req.extend_from_slice(&data);
    send(&mut s, &req).await;
    if nbd_reply(&mut s, 10).await? != 0 {
        return Err("nbd write failed".into());
    }
    send(&mut s, &nbd_request(CMD_READ, 11, 8192, 4096)).await;
    if nbd_reply(&mut s, 11).await? != 0 {
        return Err("nbd read failed".into());
    }
    if read_exact(&mut s, 4096, "nbd read data").await? != data {
        return Err("nbd read back other data".into());
    }
    send(&mut s, &nbd_request(CMD_DISC, 12, 0, 0)).await;
    Ok(())
}

/// `basalt-nbd serve` as a child process; killed when dropped.
struct NbdServer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("BASALT_BIN_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    let exe = std::env::current_exe().expect("current exe");
    dirs.extend(exe.ancestors().skip(1).take(2).map(Path::to_path_buf));
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found in {dirs:?}: build it with cargo build -p basalt-nbd --bins")
        })
}

/// Start `basalt-nbd serve` on a loopback port; its stderr goes to `log` once it has said
/// where it listens.
fn start_nbd(client_config: &Path, volume: &str, log: PathBuf) -> NbdServer {
    let mut child = Command::new(find_binary("basalt-nbd"))
        .args([
            "serve",
            "--volume",
            volume,
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(client_config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn basalt-nbd");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut out = std::fs::File::create(&log2).expect("nbd log file");
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            use std::io::Write;
            let _ = writeln!(out, "{line}");
            if let Some(addr) = line.split("nbd://").nth(1) {
                if let (Some(tx), Ok(a)) = (tx.take(), addr.trim().parse::<SocketAddr>()) {
                    let _ = tx.send(a);
                }
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "basalt-nbd did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    };
    NbdServer { child, addr, log }
}

// ---- the test ----------------------------------------------------------------------------

#[test]
fn every_port_survives_garbage_and_still_serves() {
    let rig = Rig::up(8).expect("cluster up");
    let client_config = rig.cluster.client_configs()[0].clone();
    let secret = rig
        .cluster
        .secret()
        .cloned()
        .expect("the dev cluster authenticates");
    let status = rig.cluster.status();
    let mds: Vec<SocketAddr> = rig.cluster.mds_addrs().to_vec();
    let chunkservers: Vec<(String, SocketAddr)> = status
        .iter()
        .filter(|s| s.kind == Kind::Chunkserver)
        .map(|s| (s.name.clone(), s.addr))
        .collect();
    assert_eq!((mds.len(), chunkservers.len()), (3, 3), "{status:?}");
    let metrics: Vec<SocketAddr> = chunkservers
        .iter()
        .map(|(name, _)| {
            let p = rig.cluster.state_dir().join(name).join("metrics-addr");
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            text.trim().parse().expect("metrics address")
        })
        .collect();

    let export = "garbage-nbd";
    rig.rt
        .block_on(rig.client.create_volume(export, SEGMENT_SIZE))
        .expect("create the NBD volume");
    let nbd = start_nbd(
        &client_config,
        export,
        rig.state_dir().join("basalt-nbd.log"),
    );

    let result: Res = rig.rt.block_on(async {
        // stalled connections first: they stay open while everything else happens
        let half_hello = hello(basalt_proto::PROTOCOL_VERSION)[..7].to_vec();
        let mut stalled = Vec::new();
        for &a in mds.iter().chain(chunkservers.iter().map(|(_, a)| a)) {
            stalled.extend(stall(a, &half_hello).await?.into_iter().map(|s| (a, s)));
        }
        for &a in &metrics {
            stalled.extend(stall(a, b"GET /metr").await?.into_iter().map(|s| (a, s)));
        }
        let nbd_stalled = stall(nbd.addr, &[0, 0]).await?;

        let mut attacks = Vec::new();
        for (i, &a) in mds.iter().enumerate() {
            attacks.push(tokio::spawn(attack_service(
                a,
                Method::CreateVolume,
                i as u64,
                secret.clone(),
            )));
        }
        for (i, (_, a)) in chunkservers.iter().enumerate() {
            attacks.push(tokio::spawn(attack_service(
                *a,
                Method::WriteChunk,
                100 + i as u64,
                secret.clone(),
            )));
        }
        for (i, &a) in metrics.iter().enumerate() {
            attacks.push(tokio::spawn(attack_metrics(a, 200 + i as u64)));
        }
        let nbd_addr = nbd.addr;
        attacks.push(tokio::spawn(async move {
            attack_nbd(nbd_addr, export, 300).await
        }));
        for a in attacks {
            a.await.map_err(|e| format!("attack task: {e}"))??;
        }

        // still serving, with the stalled connections open: a new volume written and read
        // back through the client, and an NBD session on the exported one
        let vol = timeout(BOUND, async {
            rig.client
                .create_volume("after-garbage", SEGMENT_SIZE)
                .await?;
            rig.client
                .open("after-garbage", basalt_client::OpenOptions::default())
                .await
        })
        .await
        .map_err(|_| "create/open after garbage timed out".to_string())?
        .map_err(|e| format!("create/open after garbage: {e}"))?;
        let data = Bytes::from(vec![0x5a; 64 * 1024]);
        timeout(BOUND, vol.write(1 << 20, data.clone()))
            .await
            .map_err(|_| "write after garbage timed out".to_string())?
            .map_err(|e| format!("write after garbage: {e}"))?;
        let back = timeout(BOUND, vol.read(1 << 20, 64 * 1024))
            .await
            .map_err(|_| "read after garbage timed out".to_string())?
            .map_err(|e| format!("read after garbage: {e}"))?;
        if back != data {
            return Err("read after garbage returned other data".into());
        }
        nbd_serves(nbd.addr, export).await?;

        // the daemons closed the stalled connections themselves (NBD allows a whole
        // 30 s negotiation, longer than this test waits: those are only kept open)
        expect_stalled_closed(stalled).await?;
        drop(nbd_stalled);

        // and counted what they refused
        for &a in &metrics {
            let text = metrics_text(a).await?;
            let bad = counter(&text, "basalt_transport_bad_frames_total").unwrap_or(0.0);
            if bad < 1.0 {
                return Err(format!("{a}: bad frames not counted ({bad})"));
            }
        }
        Ok(())
    });
    result.unwrap_or_else(|e| panic!("{e}"));

    // every process still runs, and none panicked
    let after = rig.cluster.status();
    assert!(
        after.iter().all(|s| s.state == Liveness::Running),
        "{after:?}"
    );
    let mut nbd = nbd;
    assert!(
        nbd.child.try_wait().expect("nbd status").is_none(),
        "basalt-nbd exited"
    );
    let mut logs: Vec<PathBuf> = after.iter().map(|s| s.log.clone()).collect();
    logs.push(nbd.log.clone());
    for log in &logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            !text.contains("panicked"),
            "{}: a panic in the log:\n{text}",
            log.display()
        );
    }
    // the service logs say why they closed the garbage connections (at the default level)
    if std::env::var_os("RUST_LOG").is_none() {
        for s in after.iter().filter(|s| s.kind != Kind::Etcd) {
            let text = std::fs::read_to_string(&s.log).unwrap_or_default();
            assert!(
                text.contains("bad frame"),
                "{}: no bad-frame warning in the log",
                s.name
            );
        }
    }
}
