//! `format` (library and binary): layout, resumption after interruption, refusals; and the
//! offline `check` subcommand.

use basalt_chunkserver::chunk_header::{ChunkHeader, HEADER_SIZE};
use basalt_chunkserver::datadir::{encode_meta, DataDir, FormatOptions, FORMAT_VERSION};
use basalt_chunkserver::ChunkServerError;
use basalt_proto::ids::{ChunkId, ChunkServerId, GroupId};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_basalt-chunkserver");

fn opts(pool: u64, wal: u64) -> FormatOptions {
    FormatOptions {
        pool_size: pool,
        wal_segments: wal,
        chunk_size: 256 << 10,
        wal_segment_size: 1 << 20,
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every file under `root` with its length, for "nothing touched" checks.
fn snapshot(root: &Path) -> Vec<(String, u64, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["", "pool", "wal", "chunks", "recycle"] {
        let d = root.join(sub);
        for n in names(&d) {
            let p = d.join(&n);
            if p.is_file() {
                let m = std::fs::read(&p).unwrap();
                out.push((
                    format!("{sub}/{n}"),
                    m.len() as u64,
                    m[..m.len().min(64)].to_vec(),
                ));
            }
        }
    }
    out
}

#[test]
fn format_creates_full_zeroed_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = None;
    let d = DataDir::format(dir.path(), &opts(3, 2), &mut |p| last = Some(p)).unwrap();
    let p = last.unwrap();
    assert_eq!(p.done, p.total);
    assert_eq!(
        p.total,
        3 * (HEADER_SIZE as u64 + (256 << 10)) + 2 * (1 << 20)
    );
    assert_eq!(names(&d.pool_dir()).len(), 3);
    for n in names(&d.pool_dir()) {
        let b = std::fs::read(d.pool_dir().join(n)).unwrap();
        assert_eq!(b.len(), HEADER_SIZE + (256 << 10));
        let h = ChunkHeader::decode(&b[..HEADER_SIZE]).unwrap();
        assert_eq!(
            (h.group, h.chunk, h.chunk_size),
            (GroupId(0), ChunkId(0), 256 << 10)
        );
        assert!(b[HEADER_SIZE..].iter().all(|&x| x == 0));
    }
    assert_eq!(names(&d.wal_dir()), vec!["free-00000000", "free-00000001"]);
    let again = DataDir::open(dir.path(), None).unwrap();
    assert_eq!(again.meta(), d.meta());
    assert_eq!(d.meta().format_version, FORMAT_VERSION);
}

#[test]
fn format_resumes_after_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let d = DataDir::format(dir.path(), &opts(3, 2), &mut |_| {}).unwrap();
    let uuid = d.meta().disk_uuid.clone();
    // what an interrupted run leaves: half-written temp files
    std::fs::write(d.pool_dir().join("00000003.tmp"), b"partial").unwrap();
    std::fs::write(d.wal_dir().join("free-00000002.tmp"), b"partial").unwrap();
    let mut last = None;
    let d = DataDir::format(dir.path(), &opts(5, 3), &mut |p| last = Some(p)).unwrap();
    let p = last.unwrap();
    assert_eq!(
        p.total,
        2 * (HEADER_SIZE as u64 + (256 << 10)) + (1 << 20),
        "only the missing files are written"
    );
    assert_eq!(d.meta().disk_uuid, uuid);
    assert_eq!(names(&d.pool_dir()).len(), 5);
    assert!(names(&d.pool_dir()).iter().all(|n| n.ends_with(".chunk")));
    assert_eq!(names(&d.wal_dir()).len(), 3);
}

#[test]
fn format_binary_killed_midway_then_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("disk");
    let args = |pool: &str| {
        let mut c = Command::new(BIN);
        c.args([
            "format",
            "--quiet",
            "--pool-size",
            pool,
            "--wal-segments",
            "2",
        ])
        .args([
            "--chunk-size",
            "262144",
            "--wal-segment-size",
            "1048576",
            "--data-dir",
        ])
        .arg(&root)
        .env("RUST_LOG", "warn");
        c
    };
    let mut child = args("400").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = std::fs::read_dir(root.join("pool"))
            .map(|d| d.count())
            .unwrap_or(0);
        if n >= 5 {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("format finished ({st}) before it could be interrupted");
        }
        assert!(Instant::now() < deadline, "format made no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // not finished: refused
    assert!(matches!(
        DataDir::open(&root, None),
        Err(ChunkServerError::NotFormatted { .. })
    ));
    // every file with a final name is complete
    for n in names(&root.join("pool")) {
        if n.ends_with(".chunk") {
            let len = std::fs::metadata(root.join("pool").join(&n)).unwrap().len();
            assert_eq!(len, HEADER_SIZE as u64 + (256 << 10), "{n}");
        }
    }
    let st = args("400").status().unwrap();
    assert!(st.success());
    let d = DataDir::open(&root, None).unwrap();
    assert_eq!(names(&d.pool_dir()).len(), 400);
    let st = Command::new(BIN)
        .args(["check", "--data-dir"])
        .arg(&root)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn open_refuses_bad_version_corrupt_meta_and_other_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = DataDir::format(dir.path(), &opts(1, 2), &mut |_| {}).unwrap();
    d.set_identity(ChunkServerId(7), "tok".into(), "cluster-a".into())
        .unwrap();
    DataDir::open(dir.path(), Some("cluster-a")).unwrap();
    let before = snapshot(dir.path());
    assert!(matches!(
        DataDir::open(dir.path(), Some("cluster-b")),
        Err(ChunkServerError::ClusterMismatch { ref expected, ref found }) if expected == "cluster-b" && found == "cluster-a"
    ));
    assert_eq!(snapshot(dir.path()), before);

    let meta_path = dir.path().join("meta");
    let good = std::fs::read(&meta_path).unwrap();
    let mut m = d.meta().clone();
    m.format_version = 99;
    std::fs::write(&meta_path, encode_meta(&m)).unwrap();
    let before = snapshot(dir.path());
    assert!(matches!(
        DataDir::open(dir.path(), None),
        Err(ChunkServerError::FormatVersion {
            found: 99,
            supported: FORMAT_VERSION
        })
    ));
    // format refuses to touch it either
    assert!(matches!(
        DataDir::format(dir.path(), &opts(2, 2), &mut |_| {}),
        Err(ChunkServerError::FormatVersion { .. })
    ));
    assert_eq!(snapshot(dir.path()), before);

    let mut bad = good.clone();
    let at = bad.len() - 5;
    bad[at] ^= 0x01;
    std::fs::write(&meta_path, &bad).unwrap();
    let before = snapshot(dir.path());
    assert!(matches!(
        DataDir::open(dir.path(), None),
        Err(ChunkServerError::MetaCorrupt { .. })
    ));
    assert!(matches!(
        DataDir::format(dir.path(), &opts(2, 2), &mut |_| {}),
        Err(ChunkServerError::MetaCorrupt { .. })
    ));
    assert_eq!(snapshot(dir.path()), before);

    std::fs::write(&meta_path, &good).unwrap();
    let d = DataDir::open(dir.path(), Some("cluster-a")).unwrap();
    assert_eq!(d.meta().chunkserver_id, Some(ChunkServerId(7)));
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        DataDir::open(empty.path(), None),
        Err(ChunkServerError::NotFormatted { .. })
    ));
}

#[test]
fn check_reports_corruption_with_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = DataDir::format(dir.path(), &opts(3, 2), &mut |_| {}).unwrap();
    // a chunk in use, with its header
    let src = d.pool_dir().join("00000000.chunk");
    let g = d.chunks_dir().join("5");
    std::fs::create_dir_all(&g).unwrap();
    let dst = g.join("7");
    std::fs::rename(&src, &dst).unwrap();
    let h = ChunkHeader {
        group: GroupId(5),
        chunk: ChunkId(7),
        sn: 1,
        chunk_size: 256 << 10,
    };
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dst)
        .unwrap()
        .write_all_at(&h.encode(), 0)
        .unwrap();
    let run = || {
        Command::new(BIN)
            .args(["check", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 in use ok, 2 free in pool ok"), "{text}");

    // the header now names another chunk
    let h2 = ChunkHeader {
        chunk: ChunkId(8),
        ..h
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dst)
        .unwrap()
        .write_all_at(&h2.encode(), 0)
        .unwrap();
    let out = run();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("CORRUPT"));

    // a pool file with a flipped header byte
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dst)
        .unwrap()
        .write_all_at(&h.encode(), 0)
        .unwrap();
    assert!(run().status.success());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.pool_dir().join("00000001.chunk"))
        .unwrap();
    f.write_all_at(&[0xff], 20).unwrap();
    let out = run();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("checksum mismatch"));

    // a corrupt meta
    let meta = dir.path().join("meta");
    let mut m = std::fs::read(&meta).unwrap();
    m[20] ^= 1;
    std::fs::write(&meta, m).unwrap();
    assert!(!run().status.success());
}

/// A pool larger than the filesystem's free space is refused before any file is
/// preallocated, with both sizes in the error (instead of ENOSPC half-way through).
#[test]
fn format_refuses_a_pool_larger_than_the_free_space() {
    let dir = tempfile::tempdir().unwrap();
    let avail = basalt_chunkserver::fs_space::available_bytes(dir.path()).unwrap();
    let chunk = 16u64 << 20;
    let too_many = avail / chunk + 1;
    let err = DataDir::format(
        dir.path(),
        &FormatOptions {
            pool_size: too_many,
            wal_segments: 1,
            chunk_size: chunk,
            wal_segment_size: 1 << 20,
        },
        &mut |_| {},
    )
    .unwrap_err();
    match err {
        ChunkServerError::FormatNoSpace {
            need, available, ..
        } => {
            assert!(need > available, "need {need} available {available}");
        }
        e => panic!("unexpected error: {e}"),
    }
    assert!(names(&dir.path().join("pool")).is_empty());
    assert!(names(&dir.path().join("wal")).is_empty());
}
