//! The shared WAL: appends, group commit, truncate/purge, metadata, recycling, recovery.

use basalt_chunkserver::datadir::{DataDir, FormatOptions};
use basalt_chunkserver::group_log::{GroupLog, LogRecord, MetaKey};
use basalt_chunkserver::wal::recovery::recover;
use basalt_chunkserver::wal::Wal;
use basalt_chunkserver::ChunkServerError;
use basalt_proto::ids::GroupId;
use bytes::Bytes;
use std::path::Path;
use std::sync::mpsc;
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

const SEG: u64 = 1 << 20;
const WAIT: Duration = Duration::from_secs(20);

fn format(root: &Path, segments: u64) -> DataDir {
    let opts = FormatOptions {
        pool_size: 0,
        wal_segments: segments,
        chunk_size: 1 << 20,
        wal_segment_size: SEG,
    };
    DataDir::format(root, &opts, &mut |_| {}).unwrap()
}

fn data(g: u64, i: u64, len: usize) -> Bytes {
    let mut v = format!("g{g}-i{i}-").into_bytes();
    v.resize(len.max(v.len()), (g as u8) ^ (i as u8));
    v.into()
}

fn recs(g: u64, from: u64, to: u64, len: usize) -> Vec<LogRecord> {
    (from..=to)
        .map(|i| LogRecord {
            index: i,
            data: data(g, i, len),
        })
        .collect()
}

/// Append and wait for durability.
fn append_sync(wal: &Wal, g: u64, records: Vec<LogRecord>) -> Result<(), ChunkServerError> {
    let (tx, rx) = mpsc::channel();
    wal.append(GroupId(g), records, Box::new(move |r| tx.send(r).unwrap()));
    rx.recv_timeout(WAIT).expect("durable callback")
}

fn indexes(wal: &Wal, g: u64) -> Vec<u64> {
    wal.read(GroupId(g), 0, u64::MAX)
        .unwrap()
        .iter()
        .map(|r| r.index)
        .collect()
}

#[test]
fn append_and_read_many_groups() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 4);
        let wal = Wal::open(&d).unwrap();
        let (tx, rx) = mpsc::channel();
        for round in 0..10u64 {
            for g in 1..=20u64 {
                let tx = tx.clone();
                wal.append(
                    GroupId(g),
                    recs(g, round * 5 + 1, round * 5 + 5, 100),
                    Box::new(move |r| tx.send(r).unwrap()),
                );
                // readable at once, durable or not
                let got = wal.read(GroupId(g), round * 5 + 1, round * 5 + 6).unwrap();
                assert_eq!(got, recs(g, round * 5 + 1, round * 5 + 5, 100));
            }
        }
        for _ in 0..200 {
            rx.recv_timeout(WAIT).unwrap().unwrap();
        }
        for g in 1..=20u64 {
            assert_eq!(wal.bounds(GroupId(g)), Some((1, 50)));
            assert_eq!(wal.read(GroupId(g), 10, 13).unwrap(), recs(g, 10, 12, 100));
        }
        assert_eq!(wal.groups().len(), 20);
        assert!(wal.read(GroupId(99), 0, 10).unwrap().is_empty());
        drop(wal);
        let wal = Wal::open(&d).unwrap();
        for g in 1..=20u64 {
            assert_eq!(wal.read(GroupId(g), 1, 51).unwrap(), recs(g, 1, 50, 100));
        }
    });
}

#[test]
fn group_commit_batches_fsyncs() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 8);
        let wal = Arc::new(Wal::open(&d).unwrap());
        let base_fsyncs = wal.metrics().fsyncs();
        let base_records = wal.metrics().records();
        const THREADS: u64 = 8;
        const PER_THREAD: u64 = 400;
        let (tx, rx) = mpsc::channel();
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (wal, tx) = (wal.clone(), tx.clone());
                std::thread::spawn(move || {
                    for i in 1..=PER_THREAD {
                        let tx = tx.clone();
                        // one group per thread, one entry per append, never waiting in between
                        wal.append(
                            GroupId(t),
                            recs(t, i, i, 64),
                            Box::new(move |r| tx.send(r).unwrap()),
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for _ in 0..THREADS * PER_THREAD {
            rx.recv_timeout(WAIT).unwrap().unwrap();
        }
        let appends = THREADS * PER_THREAD;
        let fsyncs = wal.metrics().fsyncs() - base_fsyncs;
        let records = wal.metrics().records() - base_records;
        println!(
            "group commit: {appends} appends, {records} records, {fsyncs} fsyncs, {:.4} fsyncs/append, {:.1} records/fsync",
            fsyncs as f64 / appends as f64,
            records as f64 / fsyncs.max(1) as f64
        );
        assert_eq!(records, appends);
        assert!(fsyncs >= 1);
        assert!(
            fsyncs * 4 < appends,
            "{fsyncs} fsyncs for {appends} appends"
        );
        for t in 0..THREADS {
            assert_eq!(wal.bounds(GroupId(t)), Some((1, PER_THREAD)));
        }
    });
}

#[test]
fn group_commit_batches_synchronous_appenders() {
    bounded(|| {
        // each thread waits for durability before its next append (one raft group each)
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 8);
        let wal = Arc::new(Wal::open(&d).unwrap());
        let base = wal.metrics().fsyncs();
        const THREADS: u64 = 8;
        const PER_THREAD: u64 = 100;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    for i in 1..=PER_THREAD {
                        append_sync(&wal, t, recs(t, i, i, 64)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let appends = THREADS * PER_THREAD;
        let fsyncs = wal.metrics().fsyncs() - base;
        println!(
            "group commit (waiting appenders): {appends} appends, {fsyncs} fsyncs, {:.3} fsyncs/append",
            fsyncs as f64 / appends as f64
        );
        assert!(fsyncs < appends, "{fsyncs} fsyncs for {appends} appends");
        assert!(fsyncs >= PER_THREAD, "each append waited for its own fsync");
    })
}

#[test]
fn truncate_and_purge_semantics_survive_reopen() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 4);
        let wal = Wal::open(&d).unwrap();
        append_sync(&wal, 1, recs(1, 1, 10, 50)).unwrap();
        wal.truncate_after(GroupId(1), Some(5)).unwrap();
        assert_eq!(wal.bounds(GroupId(1)), Some((1, 5)));
        // a gap is refused, the follow-on index accepted
        assert!(matches!(
            append_sync(&wal, 1, recs(1, 7, 7, 50)),
            Err(ChunkServerError::LogGap {
                last: 5,
                got: 7,
                ..
            })
        ));
        append_sync(&wal, 1, recs(1, 6, 8, 77)).unwrap();
        wal.purge_upto(GroupId(1), 3).unwrap();
        assert_eq!(wal.bounds(GroupId(1)), Some((4, 8)));
        assert!(wal.read(GroupId(1), 0, 4).unwrap().is_empty());
        // group 2: truncated to nothing, then purged past its end
        append_sync(&wal, 2, recs(2, 1, 4, 10)).unwrap();
        wal.truncate_after(GroupId(2), None).unwrap();
        assert_eq!(wal.bounds(GroupId(2)), None);
        append_sync(&wal, 3, recs(3, 1, 4, 10)).unwrap();
        wal.purge_upto(GroupId(3), 10).unwrap();
        assert_eq!(wal.bounds(GroupId(3)), None);
        append_sync(&wal, 3, recs(3, 11, 12, 10)).unwrap();
        drop(wal);

        let wal = Wal::open(&d).unwrap();
        assert_eq!(wal.bounds(GroupId(1)), Some((4, 8)));
        let got = wal.read(GroupId(1), 4, 9).unwrap();
        assert_eq!(got[..2], recs(1, 4, 5, 50)[..]);
        assert_eq!(
            got[2..],
            recs(1, 6, 8, 77)[..],
            "truncated entries came back"
        );
        assert_eq!(wal.bounds(GroupId(2)), None);
        assert_eq!(indexes(&wal, 3), vec![11, 12]);
    });
}

#[test]
fn meta_and_remove_group() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 4);
        let wal = Wal::open(&d).unwrap();
        wal.save_meta(GroupId(4), MetaKey::Vote, Bytes::from_static(b"v1"))
            .unwrap();
        wal.save_meta(GroupId(4), MetaKey::Vote, Bytes::from_static(b"v2"))
            .unwrap();
        wal.save_meta(GroupId(4), MetaKey::Committed, Bytes::from_static(b"c"))
            .unwrap();
        wal.save_meta(GroupId(5), MetaKey::Purged, Bytes::from_static(b"p"))
            .unwrap();
        append_sync(&wal, 5, recs(5, 1, 3, 10)).unwrap();
        assert_eq!(
            wal.load_meta(GroupId(4), MetaKey::Vote).unwrap().unwrap(),
            "v2"
        );
        assert_eq!(wal.load_meta(GroupId(4), MetaKey::Purged).unwrap(), None);
        drop(wal);
        let wal = Wal::open(&d).unwrap();
        assert_eq!(wal.groups(), vec![GroupId(4), GroupId(5)]);
        assert_eq!(
            wal.load_meta(GroupId(4), MetaKey::Vote).unwrap().unwrap(),
            "v2"
        );
        assert_eq!(
            wal.load_meta(GroupId(4), MetaKey::Committed)
                .unwrap()
                .unwrap(),
            "c"
        );
        wal.remove_group(GroupId(5)).unwrap();
        assert_eq!(wal.groups(), vec![GroupId(4)]);
        drop(wal);
        let wal = Wal::open(&d).unwrap();
        assert_eq!(wal.groups(), vec![GroupId(4)]);
        assert_eq!(wal.bounds(GroupId(5)), None);
        assert_eq!(wal.load_meta(GroupId(5), MetaKey::Purged).unwrap(), None);
    });
}

#[test]
fn oversized_records_are_refused() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 2);
        let wal = Wal::open(&d).unwrap();
        let big = vec![LogRecord {
            index: 1,
            data: Bytes::from(vec![0u8; SEG as usize]),
        }];
        assert!(matches!(
            append_sync(&wal, 1, big),
            Err(ChunkServerError::RecordTooLarge { .. })
        ));
        assert_eq!(wal.bounds(GroupId(1)), None);
        assert!(matches!(
            wal.save_meta(
                GroupId(1),
                MetaKey::Vote,
                Bytes::from(vec![0u8; SEG as usize])
            ),
            Err(ChunkServerError::RecordTooLarge { .. })
        ));
    });
}

#[test]
fn segments_are_recycled_and_idle_groups_rewritten_forward() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 3);
        let wal = Wal::open(&d).unwrap();
        // an idle group: one entry and a vote, written once
        append_sync(&wal, 77, recs(77, 1, 1, 300)).unwrap();
        wal.save_meta(GroupId(77), MetaKey::Vote, Bytes::from_static(b"vote"))
            .unwrap();
        // a busy group that purges behind itself: ~10 MiB through 1 MiB segments
        let mut max_in_use = 0;
        for i in 0..400u64 {
            append_sync(&wal, 1, recs(1, i * 8 + 1, i * 8 + 8, 3000)).unwrap();
            if i >= 2 {
                wal.purge_upto(GroupId(1), (i - 2) * 8).unwrap();
            }
            max_in_use = max_in_use.max(wal.segments_in_use());
        }
        assert!(max_in_use <= 4, "{max_in_use} segments in use at once");
        assert_eq!(wal.read(GroupId(77), 1, 2).unwrap(), recs(77, 1, 1, 300));
        drop(wal);
        let wal = Wal::open(&d).unwrap();
        assert_eq!(wal.read(GroupId(77), 1, 2).unwrap(), recs(77, 1, 1, 300));
        assert_eq!(
            wal.load_meta(GroupId(77), MetaKey::Vote).unwrap().unwrap(),
            "vote"
        );
        assert_eq!(wal.bounds(GroupId(1)), Some((397 * 8 + 1, 3200)));
        assert_eq!(
            wal.read(GroupId(1), 3200, 3201).unwrap(),
            recs(1, 3200, 3200, 3000)
        );
    });
}

/// Offset and length of the last valid record of the newest non-empty segment.
fn last_record(wal_dir: &Path) -> (std::path::PathBuf, u64, u64) {
    let rec = recover(wal_dir).unwrap();
    let scan = rec.scans.iter().rev().find(|s| s.records > 0).unwrap();
    let path = rec.segments[&scan.seq].clone();
    let bytes = std::fs::read(&path).unwrap();
    let mut last = (0, 0);
    basalt_chunkserver::wal::segment::scan(&bytes, scan.seq, |r, off| {
        last = (
            off,
            (basalt_chunkserver::wal::record::RECORD_HEADER + r.payload.len()) as u64,
        )
    });
    (path, last.0, last.1)
}

#[test]
fn torn_tail_is_cut_and_garbage_ignored() {
    bounded(|| {
        for mode in ["truncate-file", "garbage"] {
            let dir = tempfile::tempdir().unwrap();
            let d = format(dir.path(), 4);
            let wal = Wal::open(&d).unwrap();
            append_sync(&wal, 1, recs(1, 1, 5, 200)).unwrap();
            append_sync(&wal, 1, recs(1, 6, 6, 200)).unwrap();
            drop(wal);
            let (path, off, len) = last_record(&d.wal_dir());
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            use std::os::unix::fs::FileExt;
            match mode {
                "truncate-file" => f.set_len(off + len / 2).unwrap(),
                _ => {
                    f.write_all_at(&[0xA5; 64], off + len / 2).unwrap();
                    f.write_all_at(&vec![0x5A; 4096], off + len).unwrap();
                }
            }
            drop(f);
            let wal = Wal::open(&d).unwrap();
            assert_eq!(wal.bounds(GroupId(1)), Some((1, 5)), "{mode}");
            append_sync(&wal, 1, recs(1, 6, 7, 99)).unwrap();
            drop(wal);
            let wal = Wal::open(&d).unwrap();
            assert_eq!(wal.read(GroupId(1), 1, 100).unwrap().len(), 7, "{mode}");
            assert_eq!(
                wal.read(GroupId(1), 6, 8).unwrap(),
                recs(1, 6, 7, 99),
                "{mode}"
            );
        }
    });
}

#[test]
fn truncated_entries_never_resurrect_after_reopen() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 4);
        for round in 0..5u64 {
            let wal = Wal::open(&d).unwrap();
            let last = wal.bounds(GroupId(1)).map_or(0, |b| b.1);
            assert_eq!(last, round * 3, "round {round}");
            append_sync(&wal, 1, recs(1, last + 1, last + 10, 40 + round as usize)).unwrap();
            wal.truncate_after(GroupId(1), Some(last + 3)).unwrap();
        }
        let wal = Wal::open(&d).unwrap();
        let got = wal.read(GroupId(1), 1, 100).unwrap();
        assert_eq!(got.len(), 15);
        for (k, r) in got.iter().enumerate() {
            let round = k as u64 / 3;
            assert_eq!(r.data, data(1, k as u64 + 1, 40 + round as usize));
        }
    });
}

#[test]
fn segment_with_torn_header_is_recycled_on_open() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 4);
        let wal = Wal::open(&d).unwrap();
        append_sync(&wal, 1, recs(1, 1, 3, 100)).unwrap();
        wal.save_meta(GroupId(1), MetaKey::Vote, Bytes::from_static(b"v"))
            .unwrap();
        drop(wal);
        // a crash while starting the next segment: renamed, header not (fully) written
        let rec = recover(&d.wal_dir()).unwrap();
        let next = rec.segments.keys().max().unwrap() + 1;
        let seg = basalt_chunkserver::wal::segment::seg_path(&d.wal_dir(), next);
        std::fs::rename(&rec.free[0], &seg).unwrap();
        std::fs::write(&seg, vec![0x42u8; 100]).unwrap();
        let wal = Wal::open(&d).unwrap();
        assert_eq!(wal.read(GroupId(1), 1, 4).unwrap(), recs(1, 1, 3, 100));
        assert_eq!(
            wal.load_meta(GroupId(1), MetaKey::Vote).unwrap().unwrap(),
            "v"
        );
        append_sync(&wal, 1, recs(1, 4, 4, 100)).unwrap();
        drop(wal);
        let rec = recover(&d.wal_dir()).unwrap();
        assert!(
            rec.bad_headers.is_empty(),
            "the torn segment went back to the free files"
        );
        let wal = Wal::open(&d).unwrap();
        assert_eq!(wal.bounds(GroupId(1)), Some((1, 4)));
    });
}

#[test]
fn appends_after_purge_and_remove_follow_the_rules() {
    bounded(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = format(dir.path(), 2);
        let wal = Wal::open(&d).unwrap();
        append_sync(&wal, 1, recs(1, 1, 5, 10)).unwrap();
        // non-contiguous batch
        let bad = vec![
            LogRecord {
                index: 6,
                data: data(1, 6, 10),
            },
            LogRecord {
                index: 8,
                data: data(1, 8, 10),
            },
        ];
        assert!(matches!(
            append_sync(&wal, 1, bad),
            Err(ChunkServerError::LogGap { .. })
        ));
        assert_eq!(wal.bounds(GroupId(1)), Some((1, 5)));
        // empty appends complete once everything before them is durable
        append_sync(&wal, 1, Vec::new()).unwrap();
        wal.remove_group(GroupId(1)).unwrap();
        // a removed group starts over anywhere
        append_sync(&wal, 1, recs(1, 100, 101, 10)).unwrap();
        drop(wal);
        let wal = Wal::open(&d).unwrap();
        assert_eq!(indexes(&wal, 1), vec![100, 101]);
    });
}
