//! Conformance of every I/O backend that can run here (sync always, io_uring when the
//! probe succeeds) plus the SPDK "not available" path.

use basalt_chunkserver::backend::spdk::SpdkOptions;
use basalt_chunkserver::backend::sync::SyncBackend;
use basalt_chunkserver::backend::uring::UringBackend;
use basalt_chunkserver::backend::{
    AlignedBuf, BackendChoice, BackendFactory, BackendKind, IoBackend, IoCompletion, IoOp,
    IoRequest,
};
use basalt_chunkserver::poller::{PollMode, PollerOptions, Pollers};
use basalt_chunkserver::store::probe_direct_unit;
use basalt_chunkserver::ChunkServerError;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

/// Run a test body on its own thread and fail if it takes longer than the bound.
fn bounded(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(()) => h.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(h.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("test timed out"),
    }
}

const FILE_SIZE: u64 = 4 << 20;

fn backends() -> Vec<Box<dyn IoBackend>> {
    let mut v: Vec<Box<dyn IoBackend>> = vec![Box::new(SyncBackend::new())];
    match UringBackend::new() {
        Ok(u) => v.push(Box::new(u)),
        Err(e) => eprintln!("io_uring not testable here: {e}"),
    }
    v
}

fn direct_file(dir: &tempfile::TempDir) -> (Arc<File>, u64) {
    let path = dir.path().join("data");
    let f = File::create(&path).unwrap();
    f.set_len(FILE_SIZE).unwrap();
    f.sync_all().unwrap();
    let unit = probe_direct_unit(&path).expect("O_DIRECT works on the test filesystem");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .unwrap();
    (Arc::new(f), unit)
}

/// Submit one request and reap until its completion arrives.
fn run_one(
    b: &mut dyn IoBackend,
    op: IoOp,
    file: &Arc<File>,
    offset: u64,
    buf: AlignedBuf,
) -> IoCompletion {
    b.submit(IoRequest {
        op,
        file: file.clone(),
        offset,
        buf,
        user_data: 7,
    });
    let mut out = Vec::new();
    for _ in 0..10_000 {
        b.reap(&mut out, true);
        if let Some(c) = out.pop() {
            assert_eq!(c.user_data, 7);
            assert_eq!(b.in_flight(), 0);
            return c;
        }
    }
    panic!("no completion from {:?}", b.kind());
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn misaligned_requests_are_rejected() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = direct_file(&dir);
        for mut b in backends() {
            for (offset, len) in [(100u64, 512usize), (0, 100), (512, 0), (4096 + 1, 4096)] {
                let c = run_one(
                    b.as_mut(),
                    IoOp::Write,
                    &file,
                    offset,
                    AlignedBuf::zeroed(len),
                );
                assert!(
                    matches!(c.result, Err(ChunkServerError::BadRange { .. })),
                    "{:?} accepted offset {offset} len {len}",
                    b.kind()
                );
                let c = run_one(
                    b.as_mut(),
                    IoOp::Read,
                    &file,
                    offset,
                    AlignedBuf::zeroed(len),
                );
                assert!(matches!(c.result, Err(ChunkServerError::BadRange { .. })));
            }
        }
    });
}

#[test]
fn read_after_write_512_4k_1m() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let (file, unit) = direct_file(&dir);
        for mut b in backends() {
            let kind = b.kind();
            for (i, (offset, len)) in [(512u64, 512usize), (8192, 4096), (1 << 20, 1 << 20)]
                .into_iter()
                .enumerate()
            {
                let data = pattern(len, i as u8 + kind as u8 * 10);
                let c = run_one(
                    b.as_mut(),
                    IoOp::Write,
                    &file,
                    offset,
                    AlignedBuf::from_slice(&data),
                );
                if len as u64 % unit != 0 || offset % unit != 0 {
                    // O_DIRECT below the filesystem's unit: the kernel refuses it (EINVAL);
                    // the chunk store does read-modify-write for this case.
                    assert!(
                        matches!(c.result, Err(ChunkServerError::Disk { .. })),
                        "{kind:?}"
                    );
                    continue;
                }
                assert_eq!(c.result.unwrap(), len, "{kind:?}");
                let c = run_one(b.as_mut(), IoOp::Sync, &file, 0, AlignedBuf::zeroed(0));
                c.result.unwrap();
                let c = run_one(
                    b.as_mut(),
                    IoOp::Read,
                    &file,
                    offset,
                    AlignedBuf::zeroed(len),
                );
                assert_eq!(c.result.unwrap(), len);
                assert_eq!(c.buf.as_slice(), &data[..], "{kind:?} at {offset}");
            }
        }
    });
}

#[test]
fn many_requests_in_flight_complete_once_each() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = direct_file(&dir);
        for mut b in backends() {
            for i in 0..64u64 {
                b.submit(IoRequest {
                    op: IoOp::Write,
                    file: file.clone(),
                    offset: i * 4096,
                    buf: AlignedBuf::from_slice(&pattern(4096, i as u8)),
                    user_data: i,
                });
            }
            let mut seen = [false; 64];
            let mut out = Vec::new();
            while seen.iter().any(|s| !s) {
                b.reap(&mut out, true);
                for c in out.drain(..) {
                    c.result.unwrap();
                    assert!(!seen[c.user_data as usize], "double completion");
                    seen[c.user_data as usize] = true;
                }
            }
            assert_eq!(b.in_flight(), 0);
            for i in 0..64u64 {
                let c = run_one(
                    b.as_mut(),
                    IoOp::Read,
                    &file,
                    i * 4096,
                    AlignedBuf::zeroed(4096),
                );
                assert_eq!(c.buf.as_slice(), &pattern(4096, i as u8)[..]);
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pollers_serve_concurrent_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = direct_file(&dir);
    for choice in [BackendChoice::Sync, BackendChoice::Auto] {
        for mode in [PollMode::Park, PollMode::Busy] {
            let factory = BackendFactory::probe(choice, &SpdkOptions::default()).unwrap();
            let opts = PollerOptions {
                threads: 3,
                mode,
                spin_rounds: 1000,
            };
            let pollers = Arc::new(Pollers::start(opts, &factory).unwrap());
            assert_eq!(pollers.threads(), 3);
            let mut tasks = Vec::new();
            for i in 0..96u64 {
                let (p, f) = (pollers.clone(), file.clone());
                tasks.push(tokio::spawn(async move {
                    let data = pattern(8192, i as u8 ^ 0x5a);
                    p.submit(
                        i,
                        IoOp::Write,
                        f.clone(),
                        i * 8192,
                        AlignedBuf::from_slice(&data),
                    )
                    .await
                    .unwrap();
                    let (n, buf) = p
                        .submit(i, IoOp::Read, f, i * 8192, AlignedBuf::zeroed(8192))
                        .await
                        .unwrap();
                    assert_eq!(n, 8192);
                    assert_eq!(buf.as_slice(), &data[..]);
                }));
            }
            let all = futures::future::join_all(tasks);
            for r in tokio::time::timeout(Duration::from_secs(30), all)
                .await
                .expect("pollers stuck")
            {
                r.unwrap();
            }
        }
    }
}

#[test]
fn uring_uses_registered_buffers_for_small_io() {
    bounded(|| {
        let Ok(mut b) = UringBackend::new() else {
            eprintln!("io_uring not available here");
            return;
        };
        if !b.has_fixed_buffers() {
            eprintln!("io_uring buffer registration refused here");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = direct_file(&dir);
        let small = pattern(64 << 10, 9);
        let c = run_one(
            &mut b,
            IoOp::Write,
            &file,
            0,
            AlignedBuf::from_slice(&small),
        );
        assert_eq!(c.result.unwrap(), small.len());
        assert_eq!(b.fixed_io_count(), 1);
        let c = run_one(
            &mut b,
            IoOp::Read,
            &file,
            0,
            AlignedBuf::zeroed(small.len()),
        );
        assert_eq!(c.buf.as_slice(), &small[..]);
        assert_eq!(b.fixed_io_count(), 2);
        // too big for a slot: plain buffers
        let big = pattern(1 << 20, 3);
        run_one(&mut b, IoOp::Write, &file, 0, AlignedBuf::from_slice(&big))
            .result
            .unwrap();
        assert_eq!(b.fixed_io_count(), 2);
    })
}

#[test]
fn auto_probe_picks_a_working_backend() {
    bounded(|| {
        let f = BackendFactory::probe(BackendChoice::Auto, &SpdkOptions::default()).unwrap();
        let expect = if UringBackend::new().is_ok() {
            BackendKind::Uring
        } else {
            BackendKind::Sync
        };
        assert_eq!(f.kind(), expect);
        assert_eq!(f.create().unwrap().kind(), expect);
    });
}

#[test]
fn spdk_reports_not_available() {
    bounded(|| {
        let opts = SpdkOptions {
            transport_id: Some("trtype:PCIe traddr:0000:ff:00.0".into()),
            nsid: 1,
        };
        for o in [SpdkOptions::default(), opts] {
            match BackendFactory::probe(BackendChoice::Spdk, &o) {
                Err(ChunkServerError::BackendUnavailable {
                    backend: "spdk",
                    reason,
                }) => {
                    assert!(reason.contains("SPDK not available"), "{reason}")
                }
                other => panic!("SPDK probe should fail here: {other:?}"),
            }
        }
        // auto never fails because SPDK is missing
        BackendFactory::probe(BackendChoice::Auto, &SpdkOptions::default()).unwrap();
    });
}
