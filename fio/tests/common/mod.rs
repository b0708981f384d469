//! Running the real /usr/bin/fio against the built engine, bounded in time.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every fio run is killed after this long.
pub const FIO_DEADLINE: Duration = Duration::from_secs(60);

/// The cdylib cargo built alongside this test binary: the test runs from
/// `target/<profile>/deps/`, the library is `deps/libbasalt_fio.so` (and uplifted to
/// `target/<profile>/libbasalt_fio.so`).
pub fn engine_so() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    for dir in [Some(deps), deps.parent()].into_iter().flatten() {
        let so = dir.join("libbasalt_fio.so");
        if so.is_file() {
            return so;
        }
    }
    panic!("libbasalt_fio.so not found next to {}", exe.display());
}

/// What a finished fio run left.
#[derive(Debug)]
pub struct FioRun {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl FioRun {
    /// Terse (`--minimal`) job lines, split into fields.
    pub fn terse_jobs(&self) -> Vec<Vec<String>> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("3;") || l.starts_with("4;"))
            .map(|l| l.split(';').map(str::to_string).collect())
            .collect()
    }
}

/// Field indices of a terse v3/v4 job line (HOWTO "Terse output"; each data direction
/// takes 41 fields: kb, bandwidth, iops, runtime, ...).
pub mod terse {
    /// The job's error (0 = none).
    pub const ERROR: usize = 4;
    /// First field of the read, write and trim (v4 only) sections.
    pub const READ: usize = 5;
    pub const WRITE: usize = 46;
    pub const TRIM: usize = 87;
    /// Offsets inside a section.
    pub const KB: usize = 0;
    pub const IOPS: usize = 2;
}

/// Parse a numeric terse field.
pub fn num(job: &[String], index: usize) -> f64 {
    job.get(index)
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("terse field {index} missing or not a number in {job:?}"))
}

/// Run `fio ARGS` (engine options go after `--ioengine=external:...`), bounded by
/// [`FIO_DEADLINE`]; the child is killed if it overruns.
pub fn fio(args: &[String]) -> FioRun {
    let dir = tempfile::tempdir().expect("scratch dir");
    let mut child = Command::new("/usr/bin/fio")
        .args(args)
        .current_dir(dir.path())
        // Hermetic: never pick up a developer's client configuration or MDS list.
        .env("BASALT_CLIENT_CONF", dir.path().join("no-client.toml"))
        .env_remove("BASALT_MDS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn /usr/bin/fio (installed by scripts/setup.sh)");
    // Drain the pipes on threads so a chatty fio never blocks on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + FIO_DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for fio") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fio {args:?} overran {FIO_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    FioRun {
        code: status.code(),
        stdout: out_t.join().expect("stdout reader"),
        stderr: err_t.join().expect("stderr reader"),
    }
}

/// `--name=NAME --ioengine=external:SO` followed by `rest`.
pub fn job(name: &str, rest: &[&str]) -> Vec<String> {
    let mut args = vec![
        format!("--name={name}"),
        format!("--ioengine=external:{}", engine_so().display()),
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}
