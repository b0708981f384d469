//! Crash test with real processes: a child process appends to the WAL (many groups,
//! truncates, purges) and prints an acknowledgement line only after `Durable` fired (or a
//! durable call returned). The parent SIGKILLs it at a random point, reopens the WAL, and
//! checks every acknowledged entry is there with the right data, truncated data never
//! comes back, and every group's log is contiguous. Several rounds on the same WAL.
//!
//! The child is this same test binary re-run on the `wal_crash_child_entry` test with
//! `BASALT_WAL_CRASH_CHILD=<dir>`; in a normal run that entry returns at once.

use basalt_chunkserver::datadir::{DataDir, FormatOptions};
use basalt_chunkserver::group_log::{GroupLog, LogRecord};
use basalt_chunkserver::wal::Wal;
use basalt_proto::ids::GroupId;
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "BASALT_WAL_CRASH_CHILD";
const GROUPS: u64 = 8;
const ROUNDS: u64 = 6;

fn payload(g: u64, i: u64, gen: u64) -> Bytes {
    let mut v = format!("g{g} i{i} gen{gen} ").into_bytes();
    v.resize(40 + ((i * 37 + gen) % 900) as usize, b'a' + (i % 26) as u8);
    v.into()
}

#[test]
fn wal_keeps_every_acknowledged_entry_across_sigkills() {
    parent();
}

/// The child's entry point (see the module docs); does nothing in a normal test run.
#[test]
fn wal_crash_child_entry() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
}

/// Append forever; print `A g first last gen` once durable, `I g after` before and
/// `T g after` after a truncate, `P g upto` after a purge.
fn child(dir: &Path) {
    let seed: u64 = std::env::var("BASALT_WAL_CRASH_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let wal = Wal::open(&DataDir::open(dir, None).unwrap()).unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let inflight = Arc::new(AtomicUsize::new(0));
    let mut last: Vec<u64> = (0..GROUPS)
        .map(|g| wal.bounds(GroupId(g)).map_or(0, |b| b.1))
        .collect();
    let mut gen = seed * 1000;
    println!("READY");
    loop {
        while inflight.load(Ordering::Acquire) > 128 {
            std::thread::yield_now();
        }
        let g = rng.gen_range(0..GROUPS);
        let n = rng.gen_range(1..=5u64);
        let first = last[g as usize] + 1;
        let recs: Vec<_> = (first..first + n)
            .map(|i| LogRecord {
                index: i,
                data: payload(g, i, gen),
            })
            .collect();
        last[g as usize] += n;
        inflight.fetch_add(1, Ordering::AcqRel);
        let (out2, inflight2, gen2) = (out.clone(), inflight.clone(), gen);
        wal.append(
            GroupId(g),
            recs,
            Box::new(move |r| {
                r.unwrap();
                let mut o = out2.lock().unwrap();
                writeln!(o, "A {g} {first} {} {gen2}", first + n - 1).unwrap();
                o.flush().unwrap();
                inflight2.fetch_sub(1, Ordering::AcqRel);
            }),
        );
        let dice = rng.gen_range(0..100);
        if dice < 3 && last[g as usize] > 3 {
            let after = last[g as usize] - rng.gen_range(1..=3);
            {
                // intent: a kill during the call leaves the truncate done or not
                let mut o = out.lock().unwrap();
                writeln!(o, "I {g} {after}").unwrap();
                o.flush().unwrap();
            }
            wal.truncate_after(GroupId(g), Some(after)).unwrap();
            last[g as usize] = after;
            gen += 1;
            let mut o = out.lock().unwrap();
            writeln!(o, "T {g} {after}").unwrap();
            o.flush().unwrap();
        } else if dice < 6 && last[g as usize] > 40 {
            let upto = last[g as usize] - 30;
            wal.purge_upto(GroupId(g), upto).unwrap();
            let mut o = out.lock().unwrap();
            writeln!(o, "P {g} {upto}").unwrap();
            o.flush().unwrap();
        }
    }
}

#[derive(Default)]
struct Model {
    /// group -> index -> expected data
    entries: BTreeMap<u64, BTreeMap<u64, Bytes>>,
    /// group -> highest purge point asked for
    purged: BTreeMap<u64, u64>,
    /// group -> truncate point of a truncate that was running when the child was killed
    truncating: BTreeMap<u64, u64>,
}

impl Model {
    fn apply(&mut self, line: &str) {
        let f: Vec<u64> = line[2..].split(' ').map(|x| x.parse().unwrap()).collect();
        match &line[..1] {
            "A" => {
                let e = self.entries.entry(f[0]).or_default();
                for i in f[1]..=f[2] {
                    e.insert(i, payload(f[0], i, f[3]));
                }
            }
            "I" => {
                self.truncating.insert(f[0], f[1]);
            }
            "T" => {
                self.truncating.remove(&f[0]);
                self.entries.entry(f[0]).or_default().split_off(&(f[1] + 1));
            }
            "P" => {
                let p = self.purged.entry(f[0]).or_default();
                *p = (*p).max(f[1]);
            }
            other => panic!("bad line {other}"),
        }
    }
}

fn run_child(dir: &Path, seed: u64, kill_after_acks: usize) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wal_crash_child_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir)
        .env("BASALT_WAL_CRASH_SEED", seed.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                // a line cut by the kill has no newline: it was never acknowledged
                Ok(_) if buf.last() == Some(&b'\n') => {
                    let _ = tx.send(String::from_utf8(buf[..buf.len() - 1].to_vec()).unwrap());
                }
                Ok(_) => return,
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    // The test harness prints its banner before the child's protocol starts at READY.
    let mut ready = false;
    let mut lines = Vec::new();
    let mut acks = 0;
    while acks < kill_after_acks {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("child stopped acknowledging");
        if !ready {
            ready = line.ends_with("READY");
            continue;
        }
        if line.starts_with('A') {
            acks += 1;
        }
        lines.push(line);
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FormatOptions {
        pool_size: 0,
        wal_segments: 4,
        chunk_size: 1 << 20,
        wal_segment_size: 1 << 20,
    };
    DataDir::format(dir.path(), &opts, &mut |_| {}).unwrap();
    let mut model = Model::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xBA5A17);
    let mut total_acks = 0;
    for round in 1..=ROUNDS {
        let kill_after = rng.gen_range(50..1500);
        let lines = run_child(dir.path(), round, kill_after);
        total_acks += lines.iter().filter(|l| l.starts_with('A')).count();
        for l in &lines {
            model.apply(l);
        }
        let wal = Wal::open(&DataDir::open(dir.path(), None).unwrap()).unwrap();
        for g in 0..GROUPS {
            let purged = model.purged.get(&g).copied().unwrap_or(0);
            let got: BTreeMap<u64, Bytes> = wal
                .read(GroupId(g), 0, u64::MAX)
                .unwrap()
                .into_iter()
                .map(|r| (r.index, r.data))
                .collect();
            if let (Some(&first), Some(&last)) = (got.keys().next(), got.keys().next_back()) {
                assert_eq!(
                    got.len() as u64,
                    last - first + 1,
                    "round {round} group {g}: log has a hole"
                );
                assert_eq!(wal.bounds(GroupId(g)), Some((first, last)));
            }
            let expected = model.entries.entry(g).or_default();
            let truncating = model.truncating.remove(&g);
            for (i, data) in expected.iter() {
                if *i <= purged {
                    continue;
                }
                if truncating.is_some_and(|after| *i > after) && !got.contains_key(i) {
                    // the interrupted truncate happened: nothing above its point may remain
                    assert!(
                        got.keys().all(|k| *k <= truncating.unwrap()),
                        "round {round} group {g}"
                    );
                    continue;
                }
                assert_eq!(
                    got.get(i),
                    Some(data),
                    "round {round} group {g} index {i} (log {:?}, purged {purged}, truncating {truncating:?}): acknowledged entry lost or wrong",
                    wal.bounds(GroupId(g)),
                );
            }
            // Entries beyond the acknowledged ones were in flight at the kill; they may have
            // reached the WAL. Whatever is there now is the truth the next round builds on.
            *expected = got;
        }
        drop(wal);
        eprintln!(
            "wal_crash: round {round}: killed after {kill_after} acks, {} lines, ok",
            lines.len()
        );
    }
    assert!(total_acks >= 50 * ROUNDS as usize);
}
