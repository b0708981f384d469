//! The NBD server against real userspace clients (Debian's libnbd-bin, qemu-utils, fio),
//! backed by the in-memory device: proves the protocol, not the storage behind it.
//! The tools are installed by `scripts/setup.sh`; a missing tool fails the test.

use basalt_nbd::handshake::ExportInfo;
use basalt_nbd::mem_device::MemDevice;
use basalt_nbd::server::{Export, NbdServer, ServerConfig};
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZE: u64 = 64 << 20;

struct Server {
    port: u16,
    sock: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

fn start() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nbd.sock");
    let exports = vec![
        Export {
            info: ExportInfo {
                name: "vol".into(),
                size: SIZE,
                read_only: false,
                description: "test volume".into(),
            },
            device: Arc::new(MemDevice::new(SIZE)),
        },
        Export {
            info: ExportInfo {
                name: "other".into(),
                size: 1 << 20,
                read_only: true,
                description: String::new(),
            },
            device: Arc::new(MemDevice::new(1 << 20)),
        },
    ];
    let server = NbdServer::new(exports, ServerConfig::default());
    let port = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(server.clone().serve_tcp(l));
        let u = tokio::net::UnixListener::bind(&sock).unwrap();
        tokio::spawn(server.serve_unix(u));
        port
    });
    Server {
        port,
        sock,
        _dir: dir,
        _rt: rt,
    }
}

impl Server {
    fn tcp(&self, export: &str) -> String {
        format!("nbd://127.0.0.1:{}/{}", self.port, export)
    }
    fn unix(&self, export: &str) -> String {
        format!("nbd+unix:///{}?socket={}", export, self.sock.display())
    }
}

/// Run a tool with a deadline; panics with its output on timeout.
fn run(prog: &str, args: &[&str]) -> Output {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prog} (installed by scripts/setup.sh?): {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{prog} {args:?} timed out: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ok(prog: &str, args: &[&str]) -> String {
    let out = run(prog, args);
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nbdinfo_sees_exports_sizes_and_flags() {
    let s = start();
    let info = ok("nbdinfo", &["--json", &s.tcp("vol")]);
    assert!(info.contains(&format!("\"export-size\": {SIZE}")), "{info}");
    assert!(info.contains("\"block_size_minimum\": 512"), "{info}");
    assert!(info.contains("\"can_multi_conn\": true"), "{info}");
    assert!(info.contains("base:allocation"), "{info}");
    let list = ok("nbdinfo", &["--list", &s.unix("")]);
    assert!(list.contains("vol") && list.contains("other"), "{list}");
    let ro = ok("nbdinfo", &["--json", &s.tcp("other")]);
    assert!(ro.contains("\"is_read_only\": true"), "{ro}");
    let missing = run("nbdinfo", &[&s.tcp("missing")]);
    assert!(!missing.status.success());
}

#[test]
fn qemu_io_patterns_read_back_by_another_client() {
    let s = start();
    let uri = s.tcp("vol");
    ok(
        "qemu-io",
        &[
            "-f",
            "raw",
            &uri,
            "-c",
            "write -P 0xab 0 1M",
            "-c",
            "write -P 0xcd 4095k 2M",
            "-c",
            "write -z 8M 1M",
            "-c",
            "write -f -P 0x11 12M 4k",
            "-c",
            "discard 16M 64k",
            "-c",
            "flush",
        ],
    );
    // Read back over the UNIX socket with qemu-io's pattern checks...
    let out = ok(
        "qemu-io",
        &[
            "-f",
            "raw",
            &s.unix("vol"),
            "-c",
            "read -P 0xab 0 1M",
            "-c",
            "read -P 0xcd 4095k 2M",
            "-c",
            "read -P 0 8M 1M",
            "-c",
            "read -P 0x11 12M 4k",
        ],
    );
    assert!(!out.contains("verification failed"), "{out}");
    // ...and a negative control: the wrong pattern must be noticed.
    let bad = run("qemu-io", &["-f", "raw", &uri, "-c", "read -P 0xee 0 4k"]);
    let text =
        String::from_utf8_lossy(&bad.stdout).to_string() + &String::from_utf8_lossy(&bad.stderr);
    assert!(text.contains("Pattern verification failed"), "{text}");
    // ...and with nbdcopy to a file, checking bytes ourselves.
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.raw");
    ok("nbdcopy", &[&uri, out_file.to_str().unwrap()]);
    let mut data = Vec::new();
    std::fs::File::open(&out_file)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    assert_eq!(data.len() as u64, SIZE);
    assert!(data[..1 << 20].iter().take(4095 * 1024).all(|b| *b == 0xab));
    assert!(data[4095 * 1024..4095 * 1024 + (2 << 20)]
        .iter()
        .all(|b| *b == 0xcd));
    assert!(data[12 << 20..(12 << 20) + 4096].iter().all(|b| *b == 0x11));
    assert!(data[16 << 20..(16 << 20) + 65536].iter().all(|b| *b == 0));
}

#[test]
fn qemu_img_convert_and_compare_and_nbdcopy_both_ways() {
    let s = start();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("in.raw");
    {
        let mut f = std::fs::File::create(&img).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 8 << 20];
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        // leave a hole in the middle so sparse paths run too
        buf[2 << 20..3 << 20].fill(0);
        f.write_all(&buf).unwrap();
        f.set_len(SIZE).unwrap();
    }
    let img_s = img.to_str().unwrap();
    ok(
        "qemu-img",
        &[
            "convert",
            "-n",
            "-f",
            "raw",
            "-O",
            "raw",
            img_s,
            &s.tcp("vol"),
        ],
    );
    let cmp = ok(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "raw", img_s, &s.tcp("vol")],
    );
    assert!(cmp.contains("Images are identical"), "{cmp}");
    // nbdcopy out of the server, then back into it and compare again
    let back = dir.path().join("back.raw");
    ok("nbdcopy", &[&s.unix("vol"), back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&img).unwrap(), std::fs::read(&back).unwrap());
    ok(
        "qemu-io",
        &["-f", "raw", &s.tcp("vol"), "-c", "write -P 0x55 0 8M"],
    );
    ok("nbdcopy", &[back.to_str().unwrap(), &s.tcp("vol")]);
    let cmp = ok(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "raw", img_s, &s.tcp("vol")],
    );
    assert!(cmp.contains("Images are identical"), "{cmp}");
}

#[test]
fn fio_nbd_engine_verify_job() {
    let s = start();
    let uri = s.tcp("vol");
    let out = ok(
        "fio",
        &[
            "--name=verify",
            "--ioengine=nbd",
            &format!("--uri={uri}"),
            "--rw=randwrite",
            "--bs=4k",
            "--size=16m",
            "--iodepth=16",
            "--verify=crc32c",
            "--do_verify=1",
            // fio would write its verify state file into the crate directory
            "--verify_state_save=0",
            "--output-format=terse",
        ],
    );
    // terse v3: field 5 is the error code
    let line = out
        .lines()
        .find(|l| l.starts_with("3;"))
        .expect("terse line");
    let fields: Vec<&str> = line.split(';').collect();
    assert_eq!(fields[4], "0", "fio reported an error: {line}");
}

/// Raw protocol abuse: the server answers or disconnects, and keeps serving others.
#[test]
fn malformed_requests_do_not_harm_the_server() {
    use std::net::TcpStream;
    let s = start();
    let connect = || {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut g = [0u8; 18];
        c.read_exact(&mut g).unwrap();
        c.write_all(&3u32.to_be_bytes()).unwrap();
        // OPT_EXPORT_NAME "vol"
        let mut o = 0x4948_4156_454f_5054u64.to_be_bytes().to_vec();
        o.extend_from_slice(&1u32.to_be_bytes());
        o.extend_from_slice(&3u32.to_be_bytes());
        o.extend_from_slice(b"vol");
        c.write_all(&o).unwrap();
        let mut r = [0u8; 10];
        c.read_exact(&mut r).unwrap();
        assert_eq!(u64::from_be_bytes(r[0..8].try_into().unwrap()), SIZE);
        c
    };
    let request = |kind: u16, offset: u64, len: u32| {
        let mut b = 0x2560_9513u32.to_be_bytes().to_vec();
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&kind.to_be_bytes());
        b.extend_from_slice(&77u64.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&len.to_be_bytes());
        b
    };
    let reply_error = |c: &mut TcpStream| {
        let mut r = [0u8; 16];
        c.read_exact(&mut r).unwrap();
        assert_eq!(u32::from_be_bytes(r[0..4].try_into().unwrap()), 0x6744_6698);
        assert_eq!(u64::from_be_bytes(r[8..16].try_into().unwrap()), 77);
        u32::from_be_bytes(r[4..8].try_into().unwrap())
    };
    // write beyond the end: ENOSPC, payload consumed, connection still usable
    let mut c = connect();
    c.write_all(&request(1, SIZE - 512, 1024)).unwrap();
    c.write_all(&[0xaa; 1024]).unwrap();
    assert_eq!(reply_error(&mut c), 28);
    c.write_all(&request(99, 0, 512)).unwrap();
    assert_eq!(reply_error(&mut c), 22, "unknown command");
    c.write_all(&request(3, 0, 0)).unwrap();
    assert_eq!(reply_error(&mut c), 0, "flush still works after errors");
    // oversized payload: disconnect, nothing written
    c.write_all(&request(1, 0, u32::MAX)).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        c.read(&mut buf).unwrap_or(0),
        0,
        "server closed the connection"
    );
    // bad magic: disconnect
    let mut c = connect();
    c.write_all(&[0x47; 28]).unwrap();
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    // garbage during negotiation
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink);
    // the server still serves a real client, and the oversized write wrote nothing
    let out = ok(
        "qemu-io",
        &["-f", "raw", &s.tcp("vol"), "-c", "read -P 0 0 64k"],
    );
    assert!(!out.contains("failed"), "{out}");
}

#[test]
fn ls_lists_exports_over_both_sockets() {
    let s = start();
    let bin = env!("CARGO_BIN_EXE_basalt-nbd");
    let tcp = ok(bin, &["ls", "--listen", &format!("127.0.0.1:{}", s.port)]);
    assert_eq!(tcp.lines().collect::<Vec<_>>(), vec!["vol", "other"]);
    let unix = ok(bin, &["ls", "--socket", s.sock.to_str().unwrap()]);
    assert_eq!(unix, tcp);
    // nothing listening: a clear error, non-zero exit
    let out = run(bin, &["ls", "--listen", "127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("connecting to 127.0.0.1:1"));
}
