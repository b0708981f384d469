//! A full disk under a verified workload (real processes): every chunkserver's data dir
//! is a tmpfs just big enough for what `format` preallocates, so the disk is full in
//! both senses a chunkserver can be:
//!
//! 1. the chunk pool: `format` preallocates a fixed pool of chunk files (plus the WAL
//!    segments, plus a 64 MiB reserve it insists on). A write that needs a new chunk
//!    when every pool file is in use is refused by the copyset leader before anything
//!    is proposed: the caller gets `ClientError::NoSpace` at once (no retries, no
//!    timeout), and nothing is written;
//! 2. the filesystem: the test then fills what is left of each tmpfs with a ballast
//!    file (ENOSPC for any new allocation). Writes into chunks that exist, the WAL and
//!    reads keep working, since all of them live in preallocated files; no chunkserver
//!    fences its disk.
//!
//! Throughout, 4 workers read and write one existing chunk (the fault suite's
//! workload); the history must be linearizable with no error to the caller, and every
//! acknowledged filler write must read back. Then space is freed (ballast removed,
//! the filler chunks discarded — their files go back to the pool once zeroed) and a new
//! chunk can be written again.
//!
//! Needs root (tmpfs mounts; CI runs as root — the test skips, saying so, only when not
//! root), `basalt-mds` and `basalt-chunkserver` built in the target dir, and `etcd` on
//! PATH.

use basalt_client::ClientError;
use basalt_proto::ids::{CHUNK_SIZE, SEGMENT_SIZE};
use basalt_testkit::cluster::Liveness;
use basalt_testkit::faults::{FaultRun, PROGRESS_BOUND};
use basalt_testkit::host::is_root;
use basalt_testkit::tmpfs::{available_bytes, mount_name, Tmpfs};
use basalt_testkit::workload::block::{decode, encode, Observed, Tag, BLOCK};
use bytes::Bytes;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Chunk files per chunkserver.
const POOL: u64 = 4;
/// WAL segments per chunkserver (the dev cluster's default) and their size (the
/// chunkserver's default, 64 MiB).
const WAL_SEGMENTS: u64 = 2;
const WAL_SEGMENT_SIZE: u64 = 64 << 20;
/// The header page of each chunk file.
const CHUNK_HEADER: u64 = 4096;
/// What `format` insists on keeping free beyond the pools (its FORMAT_SPACE_RESERVE).
const FORMAT_RESERVE: u64 = 64 << 20;
/// Room for the meta file, directories and logs of the daemon.
const SLACK: u64 = 2 << 20;
/// Bound of one filler I/O.
const OP_BOUND: Duration = Duration::from_secs(20);
/// Worker id of the filler's tags (the workload's are 0..4).
const FILLER: u32 = 100;

/// Just what `format` needs, and no more.
fn disk_size() -> u64 {
    POOL * (CHUNK_SIZE + CHUNK_HEADER) + WAL_SEGMENTS * WAL_SEGMENT_SIZE + FORMAT_RESERVE + SLACK
}

/// Fill the filesystem holding `dir` until ENOSPC; returns the bytes written.
fn fill(dir: &Path) -> u64 {
    let mut f = std::fs::File::create(dir.join("ballast")).unwrap();
    let mb = vec![0x5au8; 1 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&mb) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("ballast on {}: {e}", dir.display()),
        }
    }
    // Whatever is left is smaller than a page.
    written
}

/// The tagged block the filler writes at the start of chunk `k`.
fn filler_block(k: u64, seq: u64) -> (u64, Bytes) {
    let offset = k * CHUNK_SIZE;
    let tag = Tag {
        writer: FILLER,
        seq,
    };
    (offset, Bytes::from(encode(tag, offset / BLOCK as u64)))
}

#[test]
fn a_full_disk_refuses_new_chunks_with_no_space_and_loses_nothing() {
    if !is_root() {
        eprintln!("SKIPPED a_full_disk_refuses_new_chunks_with_no_space_and_loses_nothing: needs root for tmpfs mounts");
        return;
    }
    // Declared before the run: the processes are killed before the disks go.
    let mounts = tempfile::tempdir().unwrap();
    let disks: Vec<Tmpfs> = (1..=3)
        .map(|i| Tmpfs::mount(mounts.path().join(mount_name(i)), disk_size()).unwrap())
        .collect();
    let data_dirs = disks.iter().map(|d| d.path().join("data")).collect();
    let run = FaultRun::start_with("disk-full", |s| {
        s.pool_chunks = POOL;
        s.wal_segments = WAL_SEGMENTS;
        s.chunkserver_data_dirs = data_dirs;
    })
    .unwrap();
    let rt = &run.rig.rt;
    let filler = run
        .rig
        .create_volume(&run.rig.client, "filler", SEGMENT_SIZE)
        .unwrap();
    let write = |k: u64, seq: u64| {
        let (offset, data) = filler_block(k, seq);
        rt.block_on(async { tokio::time::timeout(OP_BOUND, filler.write(offset, data)).await })
            .unwrap_or_else(|_| panic!("filler write to chunk {k} hung"))
    };
    let read = |k: u64| {
        let offset = k * CHUNK_SIZE;
        let b = rt
            .block_on(async {
                tokio::time::timeout(OP_BOUND, filler.read(offset, BLOCK as u64)).await
            })
            .unwrap_or_else(|_| panic!("filler read of chunk {k} hung"))
            .unwrap_or_else(|e| panic!("filler read of chunk {k}: {e}"));
        decode(&b, offset / BLOCK as u64)
    };
    let tagged = |seq| {
        Observed::Tag(Tag {
            writer: FILLER,
            seq,
        })
    };
    let from = run.workload.now();

    // 1. Use up the chunk pool: one new chunk per write until the leader refuses.
    let mut chunks = 0u64;
    let (refused, refusal) = loop {
        assert!(
            chunks < POOL * 2,
            "{chunks} new chunks and still no NoSpace"
        );
        let t0 = Instant::now();
        match write(chunks, 1) {
            Ok(()) => chunks += 1,
            Err(e) => break (e, t0.elapsed()),
        }
    };
    println!(
        "pool exhausted after {chunks} filler chunks: `{refused}` after {:?}",
        refusal
    );
    assert!(
        matches!(refused, ClientError::NoSpace),
        "a write needing a new chunk on a full pool: {refused:?}"
    );
    // The workload's chunk holds one pool file on each chunkserver.
    assert_eq!(
        chunks,
        POOL - 1,
        "every pool file but the workload's went to the filler"
    );
    assert_eq!(
        read(chunks),
        Observed::Zero,
        "the refused write left nothing behind"
    );
    for k in 0..chunks {
        assert_eq!(read(k), tagged(1), "filler chunk {k}");
    }
    run.progress(100).expect("I/O to existing chunks goes on");

    // 2. Fill the filesystems too: only preallocated files are written from here on.
    for d in &disks {
        let ballast = fill(d.path());
        let left = available_bytes(d.path()).unwrap();
        println!(
            "{}: {ballast} bytes of ballast, {left} left",
            d.path().display()
        );
        assert!(
            left < 1 << 20,
            "{} still has {left} bytes free",
            d.path().display()
        );
    }
    run.progress(200)
        .expect("I/O to existing chunks goes on with every filesystem full");
    for k in 0..chunks {
        write(k, 2).unwrap_or_else(|e| panic!("overwrite of filler chunk {k} on a full disk: {e}"));
        assert_eq!(read(k), tagged(2), "filler chunk {k} after its overwrite");
    }
    let again = write(chunks, 1).expect_err("a new chunk on a full disk");
    assert!(matches!(again, ClientError::NoSpace), "{again:?}");
    for s in run.rig.cluster.status() {
        assert_ne!(s.state, Liveness::Dead, "{} died on a full disk", s.name);
        let log = std::fs::read_to_string(&s.log).unwrap_or_default();
        assert!(
            !log.contains("fencing the disk"),
            "{} fenced its disk on a full filesystem:\n{log}",
            s.name
        );
    }

    // 3. Free space: ballast gone, filler chunks discarded (their files are zeroed and
    //    go back to the pool); a new chunk is then accepted.
    for d in &disks {
        std::fs::remove_file(d.path().join("ballast")).unwrap();
    }
    rt.block_on(async {
        tokio::time::timeout(OP_BOUND, filler.discard(0, chunks * CHUNK_SIZE)).await
    })
    .expect("discard hung")
    .expect("discard of the filler chunks");
    let t0 = Instant::now();
    loop {
        match write(chunks, 3) {
            Ok(()) => break,
            Err(ClientError::NoSpace) if t0.elapsed() < PROGRESS_BOUND => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("new chunk after freeing space ({:?}): {e}", t0.elapsed()),
        }
    }
    println!(
        "a new chunk was accepted {:?} after freeing space",
        t0.elapsed()
    );
    assert_eq!(read(chunks), tagged(3));
    for k in 0..chunks {
        assert_eq!(read(k), Observed::Zero, "discarded filler chunk {k}");
    }
    run.progress(100).unwrap();
    let report = run.finish("disk-full", from).unwrap();
    assert!(report.check.writes_verified > 0 && report.check.reads_checked > 0);
}
