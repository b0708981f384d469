//! A real C program (`tests/c/capi_smoke.c`) compiled with `cc` against the generated
//! header and linked against the library — once to `libbasalt_client.so`, once to
//! `libbasalt_client.a` — then run against a fake cluster on real TCP: aio writes of a
//! pattern, polled completions, read back and compared, NULL/misaligned arguments refused.

mod capi_fake;

use capi_fake::FakeCluster;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUN_BOUND: Duration = Duration::from_secs(60);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo put the library next to this test binary (`target/debug/deps` or its
/// parent `target/debug`).
fn library(file: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    let candidates = [
        deps.join(file),
        deps.parent().expect("profile dir").join(file),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{file} not built: looked in {candidates:?}"))
        .clone()
}

fn compile(out: &Path, link: &[&str]) {
    let src = manifest_dir().join("tests/c/capi_smoke.c");
    let include = manifest_dir().join("include");
    let status = Command::new("cc")
        .args([
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .arg("-I")
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(out)
        .args(link)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed for {}", out.display());
}

fn run(prog: &Path, fake: &FakeCluster, volume: &str, conf: &Path) {
    let mut child = Command::new(prog)
        .arg(fake.mds.to_string())
        .arg(volume)
        .arg(conf)
        .env_remove("BASALT_MDS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the C program");
    let deadline = Instant::now() + RUN_BOUND;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the C program") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish within {RUN_BOUND:?}", prog.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("C program output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success(),
        "{} failed ({status}):\n{stdout}\n{stderr}",
        prog.display()
    );
    assert!(stdout.contains("capi_smoke: ok"), "{stdout}");
}

#[test]
fn c_program_writes_polls_and_reads_back_through_the_shared_and_static_library() {
    let fake = FakeCluster::start();
    fake.create_volume("c-shared", 1);
    fake.create_volume("c-static", 1);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("client.toml");
    std::fs::write(&conf, "").unwrap();

    let so = library("libbasalt_client.so");
    let so_dir = so.parent().unwrap().to_str().unwrap().to_string();
    let shared = dir.path().join("capi_smoke_shared");
    compile(
        &shared,
        &[
            "-L",
            &so_dir,
            &format!("-Wl,-rpath,{so_dir}"),
            "-lbasalt_client",
            "-lpthread",
        ],
    );
    run(&shared, &fake, "c-shared", &conf);

    let archive = library("libbasalt_client.a");
    let stat = dir.path().join("capi_smoke_static");
    // the native libraries Rust's std needs (`rustc --print native-static-libs`), plus
    // UCX's when it is built in
    let mut link = vec![archive.to_str().unwrap()];
    if cfg!(feature = "ucx") {
        link.extend(["-lucp", "-luct", "-lucs", "-lucm"]);
    }
    link.extend(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"]);
    compile(&stat, &link);
    run(&stat, &fake, "c-static", &conf);

    // what the programs wrote is in the cluster (the static one's last block survives
    // its discard of the first)
    let base = 16 * 1024 * 1024 - 8 * 65536u64;
    let last = base + 31 * 65536;
    let stored = fake.stored("c-static", last, 512);
    let expect: Vec<u8> = (last..last + 512)
        .map(|o| ((o * 31 + (o >> 9) + 7) & 0xff) as u8)
        .collect();
    assert_eq!(stored, expect);
}
