//! The C ABI called as C would call it (through the `extern "C"` functions), against a
//! fake cluster on real TCP: argument validation, error codes and messages, callback and
//! completion-queue I/O, close cancelling pending I/O, blocking calls refused inside
//! callbacks.

mod capi_fake;

use basalt_client::capi::aio::*;
use basalt_client::capi::client::*;
use basalt_client::capi::cq::*;
use basalt_client::capi::errors::*;
use basalt_client::capi::volume::*;
use basalt_client::capi::*;
use basalt_proto::ids::CHUNK_SIZE;
use capi_fake::FakeCluster;
use parking_lot::{Condvar, Mutex};
use std::ffi::{c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(20);

fn last_error() -> String {
    // SAFETY: the library returns this thread's live NUL-terminated message.
    unsafe { CStr::from_ptr(basalt_client_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// An empty client configuration file, so a developer's own ~/.config is never read.
struct Env {
    _dir: tempfile::TempDir,
    conf: CString,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.toml");
    std::fs::write(&path, "").unwrap();
    Env {
        conf: CString::new(path.to_str().unwrap()).unwrap(),
        _dir: dir,
    }
}

fn config(env: &Env, mds: Option<&CStr>) -> basalt_client_config_t {
    basalt_client_config_t {
        mds: mds.map_or(null(), CStr::as_ptr),
        config_file: env.conf.as_ptr(),
        transport: BASALT_CLIENT_TRANSPORT_TCP,
        max_inflight: 0,
        runtime_threads: 2,
        mds_retry_ms: 2000,
    }
}

fn init(cfg: &basalt_client_config_t) -> Result<*mut basalt_client_t, i32> {
    let mut c = null_mut();
    // SAFETY: `cfg` is a valid config with live strings; `c` is writable.
    match unsafe { basalt_client_init(cfg, &mut c) } {
        0 => Ok(c),
        e => Err(e),
    }
}

fn open(c: *mut basalt_client_t, name: &str) -> Result<(*mut basalt_volume_t, u64), i32> {
    let name = CString::new(name).unwrap();
    let (mut v, mut size) = (null_mut(), 0u64);
    // SAFETY: `c` is live, `name` NUL-terminated, outputs writable.
    match unsafe { basalt_client_open(c, name.as_ptr(), 0, &mut v, &mut size) } {
        0 => Ok((v, size)),
        e => Err(e),
    }
}

fn close(v: *mut basalt_volume_t) -> i32 {
    // SAFETY: `v` is a live volume handle released here once.
    unsafe { basalt_client_close(v) }
}

fn shutdown(c: *mut basalt_client_t) -> i32 {
    // SAFETY: `c` is live; released only when this returns 0.
    unsafe { basalt_client_shutdown(c) }
}

fn queue() -> *mut basalt_cq_t {
    let mut cq = null_mut();
    // SAFETY: `cq` is writable.
    assert_eq!(unsafe { basalt_client_cq_create(&mut cq) }, 0);
    cq
}

fn to_queue(cq: *mut basalt_cq_t, tag: u64) -> basalt_client_completion_t {
    basalt_client_completion_t {
        cb: None,
        arg: null_mut(),
        cq,
        tag,
    }
}

fn write(v: *mut basalt_volume_t, off: u64, data: &[u8], done: &basalt_client_completion_t) -> i32 {
    // SAFETY: `v` live; `data` outlives the completion (every caller waits for it); the
    // library copies writes at submission anyway.
    unsafe { basalt_client_aio_write(v, off, data.as_ptr().cast(), data.len() as u64, done) }
}

fn read(
    v: *mut basalt_volume_t,
    off: u64,
    buf: &mut [u8],
    done: &basalt_client_completion_t,
) -> i32 {
    // SAFETY: `v` live; every caller waits for the completion before touching `buf`.
    unsafe { basalt_client_aio_read(v, off, buf.as_mut_ptr().cast(), buf.len() as u64, done) }
}

/// Poll `cq` until `n` events arrived (bounded).
fn reap(cq: *mut basalt_cq_t, n: usize) -> Vec<basalt_client_event_t> {
    let deadline = Instant::now() + BOUND;
    let mut got = Vec::new();
    let mut buf = [basalt_client_event_t::default(); 8];
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} completions",
            got.len()
        );
        // SAFETY: `cq` live; `buf` holds 8 events.
        let r = unsafe { basalt_client_poll(cq, buf.as_mut_ptr(), 8, 100_000) };
        assert!(r >= 0, "poll failed: {r}");
        got.extend_from_slice(&buf[..r as usize]);
    }
    got
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i / 512) as u8) ^ (i as u8))
        .collect()
}

/// Callback results collected for a test thread to wait on.
#[derive(Default)]
struct Results {
    got: Mutex<Vec<i64>>,
    more: Condvar,
}

impl Results {
    fn wait(&self, n: usize) -> Vec<i64> {
        let deadline = Instant::now() + BOUND;
        let mut got = self.got.lock();
        while got.len() < n {
            if self.more.wait_until(&mut got, deadline).timed_out() {
                assert!(got.len() >= n, "only {} of {n} callbacks", got.len());
            }
        }
        got.clone()
    }
}

unsafe extern "C" fn collect(arg: *mut c_void, result: i64) {
    // SAFETY: every test passes a `Results` that outlives its completions.
    let r = unsafe { &*(arg as *const Results) };
    r.got.lock().push(result);
    r.more.notify_all();
}

fn to_callback(r: &Results) -> basalt_client_completion_t {
    basalt_client_completion_t {
        cb: Some(collect),
        arg: r as *const Results as *mut c_void,
        cq: null_mut(),
        tag: 0,
    }
}

#[test]
fn version_and_error_strings() {
    // SAFETY: a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(basalt_client_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    assert_eq!(basalt_client_abi_version(), BASALT_CLIENT_ABI_VERSION);
    let codes = [
        BASALT_CLIENT_OK,
        BASALT_CLIENT_ENOENT,
        BASALT_CLIENT_EIO,
        BASALT_CLIENT_EAGAIN,
        BASALT_CLIENT_EACCES,
        BASALT_CLIENT_EBUSY,
        BASALT_CLIENT_EEXIST,
        BASALT_CLIENT_EINVAL,
        BASALT_CLIENT_ENOSPC,
        BASALT_CLIENT_ERANGE,
        BASALT_CLIENT_EDEADLK,
        BASALT_CLIENT_ESHUTDOWN,
        BASALT_CLIENT_ETIMEDOUT,
        BASALT_CLIENT_EHOSTUNREACH,
        BASALT_CLIENT_ECANCELED,
        BASALT_CLIENT_EINTERNAL,
    ];
    let mut seen = std::collections::HashSet::new();
    for c in codes.into_iter().chain([-9999, 7]) {
        // SAFETY: strerror returns static NUL-terminated strings.
        let s = unsafe { CStr::from_ptr(basalt_client_strerror(c)) };
        assert!(!s.to_bytes().is_empty());
        seen.insert(s.to_bytes().to_vec());
    }
    // every known code has its own text; the two unknown ones share one
    assert_eq!(seen.len(), codes.len() + 1);
}

#[test]
fn bad_arguments_are_refused_without_a_cluster() {
    let env = env();
    // NULL out-pointer
    // SAFETY: NULL config is allowed; NULL out is refused.
    let rc = unsafe { basalt_client_init(null(), null_mut()) };
    assert_eq!(rc, BASALT_CLIENT_EINVAL);
    assert!(last_error().contains("out is NULL"), "{}", last_error());
    // bad transport value, bad MDS list, no MDS at all
    let mut cfg = config(&env, Some(c"127.0.0.1:1"));
    cfg.transport = 77;
    assert_eq!(init(&cfg).unwrap_err(), BASALT_CLIENT_EINVAL);
    assert!(last_error().contains("transport"), "{}", last_error());
    let cfg = config(&env, Some(c"not-an-address"));
    assert_eq!(init(&cfg).unwrap_err(), BASALT_CLIENT_EINVAL);
    assert!(last_error().contains("not-an-address"), "{}", last_error());
    let cfg = config(&env, None);
    if std::env::var_os("BASALT_MDS").is_none() {
        assert_eq!(init(&cfg).unwrap_err(), BASALT_CLIENT_EINVAL);
        assert!(
            last_error().contains("no MDS addresses"),
            "{}",
            last_error()
        );
    }
    let mut cfg = config(&env, Some(c"127.0.0.1:1"));
    cfg.runtime_threads = 100_000;
    assert_eq!(init(&cfg).unwrap_err(), BASALT_CLIENT_EINVAL);

    // A client for an MDS that is not there: init succeeds (nothing dialled) ...
    let mut cfg = config(&env, Some(c"127.0.0.1:1"));
    cfg.mds_retry_ms = 300;
    let c = init(&cfg).unwrap();
    let mut sector = 0u32;
    // SAFETY: live client, writable output.
    assert_eq!(unsafe { basalt_client_sector_size(c, &mut sector) }, 0);
    assert_eq!(sector, 512);
    // SAFETY: NULL output refused.
    let rc = unsafe { basalt_client_sector_size(c, null_mut()) };
    assert_eq!(rc, BASALT_CLIENT_EINVAL);
    // ... and open reports the unreachable MDS.
    assert_eq!(open(c, "v").unwrap_err(), BASALT_CLIENT_EHOSTUNREACH);
    assert!(last_error().contains("open v"), "{}", last_error());
    // NULL arguments to open
    let (mut v, mut size) = (null_mut(), 0u64);
    // SAFETY: NULL pointers are refused before anything is dereferenced.
    unsafe {
        assert_eq!(
            basalt_client_open(null_mut(), c"v".as_ptr(), 0, &mut v, &mut size),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(
            basalt_client_open(c, null(), 0, &mut v, &mut size),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(
            basalt_client_open(c, c"v".as_ptr(), 0, null_mut(), &mut size),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(
            basalt_client_open(c, c"v".as_ptr(), 0, &mut v, null_mut()),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(
            basalt_client_open(c, c"v".as_ptr(), 0x80, &mut v, &mut size),
            BASALT_CLIENT_EINVAL
        );
        // I/O and poll on NULL handles
        let done = to_queue(null_mut(), 0);
        assert_eq!(
            basalt_client_aio_flush(null_mut(), &done),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(
            basalt_client_aio_flush(null_mut(), null()),
            BASALT_CLIENT_EINVAL
        );
        let mut ev = basalt_client_event_t::default();
        assert_eq!(
            basalt_client_poll(null_mut(), &mut ev, 1, 0),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(basalt_client_size(null(), &mut size), BASALT_CLIENT_EINVAL);
        assert_eq!(basalt_client_close(null_mut()), 0);
        assert_eq!(basalt_client_cq_destroy(null_mut()), 0);
        assert_eq!(basalt_client_cq_create(null_mut()), BASALT_CLIENT_EINVAL);
    }
    assert_eq!(shutdown(c), 0);
    assert_eq!(shutdown(null_mut()), 0);
}

#[test]
fn queue_and_callback_io_round_trip_through_a_cluster() {
    let fake = FakeCluster::start();
    let vol_size = fake.create_volume("v", 1);
    let env = env();
    let mds = CString::new(fake.mds.to_string()).unwrap();
    let c = init(&config(&env, Some(&mds))).unwrap();
    assert_eq!(open(c, "nope").unwrap_err(), BASALT_CLIENT_ENOENT);
    assert!(last_error().contains("nope"), "{}", last_error());
    let (v, size) = open(c, "v").unwrap();
    assert_eq!(size, vol_size);
    let cq = queue();

    // Queue mode: writes across a chunk boundary, a single sector, a large one.
    let writes: Vec<(u64, Vec<u8>)> = vec![
        (CHUNK_SIZE - 8192, pattern(1, 16384)),
        (512, pattern(2, 512)),
        (3 * CHUNK_SIZE, pattern(3, (CHUNK_SIZE + 65536) as usize)),
    ];
    for (tag, (off, data)) in writes.iter().enumerate() {
        assert_eq!(write(v, *off, data, &to_queue(cq, tag as u64 + 100)), 0);
    }
    let mut evs = reap(cq, writes.len());
    evs.sort_by_key(|e| e.tag);
    for (e, (_, data)) in evs.iter().zip(&writes) {
        assert_eq!(e.result, data.len() as i64, "tag {}", e.tag);
    }
    assert!(fake.writes() >= 3);

    // Callback mode: read everything back.
    let results = Results::default();
    let mut bufs: Vec<Vec<u8>> = writes.iter().map(|(_, d)| vec![0xee; d.len()]).collect();
    for ((off, _), buf) in writes.iter().zip(bufs.iter_mut()) {
        assert_eq!(read(v, *off, buf, &to_callback(&results)), 0);
    }
    let got = results.wait(writes.len());
    for (r, ((off, data), buf)) in got.iter().zip(writes.iter().zip(&bufs)) {
        assert!(*r > 0, "read at {off}: {r}");
        assert!(buf == data, "read back at {off} differs");
        assert_eq!(
            &fake.stored("v", *off, 512),
            &data[..512],
            "stored at {off}"
        );
    }

    // Discard and write_zeroes read back as zeros; flush completes with 0.
    // SAFETY: live handle and queue.
    let rc = unsafe { basalt_client_aio_discard(v, 3 * CHUNK_SIZE, CHUNK_SIZE, &to_queue(cq, 1)) };
    assert_eq!(rc, 0);
    // SAFETY: live handle and queue.
    let rc = unsafe { basalt_client_aio_write_zeroes(v, 512, 512, &to_queue(cq, 2)) };
    assert_eq!(rc, 0);
    // SAFETY: live handle and queue.
    assert_eq!(unsafe { basalt_client_aio_flush(v, &to_queue(cq, 3)) }, 0);
    let mut evs = reap(cq, 3);
    evs.sort_by_key(|e| e.tag);
    let results: Vec<i64> = evs.iter().map(|e| e.result).collect();
    assert_eq!(results, [CHUNK_SIZE as i64, 512, 0]);
    let mut buf = vec![0xeeu8; 1024];
    assert_eq!(
        read(
            v,
            3 * CHUNK_SIZE + CHUNK_SIZE - 512,
            &mut buf,
            &to_queue(cq, 4)
        ),
        0
    );
    assert_eq!(reap(cq, 1)[0].result, 1024);
    assert!(
        buf[..512].iter().all(|b| *b == 0),
        "discarded sector reads zeros"
    );
    assert_eq!(
        &buf[512..],
        &writes[2].1[CHUNK_SIZE as usize..CHUNK_SIZE as usize + 512]
    );
    let mut one = vec![0xeeu8; 512];
    assert_eq!(read(v, 512, &mut one, &to_queue(cq, 5)), 0);
    assert_eq!(reap(cq, 1)[0].result, 512);
    assert!(one.iter().all(|b| *b == 0), "zeroed sector reads zeros");

    // Synchronous refusals: nothing is submitted, no completion follows.
    let data = pattern(9, 4096);
    assert_eq!(write(v, 100, &data, &to_queue(cq, 9)), BASALT_CLIENT_EINVAL);
    assert!(last_error().contains("sector"), "{}", last_error());
    assert_eq!(
        write(v, 0, &data[..1000], &to_queue(cq, 9)),
        BASALT_CLIENT_EINVAL
    );
    assert_eq!(
        write(v, size - 512, &data, &to_queue(cq, 9)),
        BASALT_CLIENT_ERANGE
    );
    assert_eq!(
        write(v, u64::MAX - 511, &data[..512], &to_queue(cq, 9)),
        BASALT_CLIENT_ERANGE
    );
    assert_eq!(write(v, 0, &[], &to_queue(cq, 9)), BASALT_CLIENT_EINVAL);
    // SAFETY: NULL buffer and oversized length are refused before any access.
    unsafe {
        assert_eq!(
            basalt_client_aio_write(v, 0, null(), 512, &to_queue(cq, 9)),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(
            basalt_client_aio_read(v, 0, null_mut(), 512, &to_queue(cq, 9)),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(
            basalt_client_aio_read(
                v,
                0,
                one.as_mut_ptr().cast(),
                BASALT_CLIENT_MAX_IO_BYTES + 512,
                &to_queue(cq, 9)
            ),
            BASALT_CLIENT_EINVAL
        );
        assert_eq!(
            basalt_client_aio_discard(v, 0, 100, &to_queue(cq, 9)),
            BASALT_CLIENT_EINVAL
        );
    }
    let both = basalt_client_completion_t {
        cq,
        ..to_callback(&Results::default())
    };
    assert_eq!(write(v, 0, &data, &both), BASALT_CLIENT_EINVAL);
    assert!(last_error().contains("both"), "{}", last_error());
    assert_eq!(
        write(v, 0, &data, &to_queue(null_mut(), 9)),
        BASALT_CLIENT_EINVAL
    );
    let mut ev = basalt_client_event_t::default();
    // SAFETY: live queue; one event of room; max 0 refused.
    unsafe {
        assert_eq!(
            basalt_client_poll(cq, &mut ev, 1, 0),
            0,
            "refused I/O completes nothing"
        );
        assert_eq!(basalt_client_poll(cq, &mut ev, 0, 0), BASALT_CLIENT_EINVAL);
    }

    // Handles with users are not released.
    assert_eq!(shutdown(c), BASALT_CLIENT_EBUSY);
    assert!(last_error().contains("still open"), "{}", last_error());
    assert_eq!(close(v), 0);
    // SAFETY: live queue, nothing pending.
    assert_eq!(unsafe { basalt_client_cq_destroy(cq) }, 0);
    assert_eq!(shutdown(c), 0);
}

#[test]
fn close_cancels_pending_io_and_every_io_completes_once() {
    let fake = FakeCluster::start();
    fake.create_volume("v", 1);
    let env = env();
    let mds = CString::new(fake.mds.to_string()).unwrap();
    let mut cfg = config(&env, Some(&mds));
    cfg.max_inflight = 2; // most of the burst waits inside the library
    let c = init(&cfg).unwrap();
    let (v, _) = open(c, "v").unwrap();
    let cq = queue();
    let data = pattern(4, 1 << 20);
    let n = 64u64;
    for i in 0..n {
        assert_eq!(write(v, i * (1 << 20), &data, &to_queue(cq, i)), 0);
    }
    assert_eq!(close(v), 0);
    // every submission completed before close returned: no waiting needed
    let mut evs = vec![basalt_client_event_t::default(); n as usize + 1];
    // SAFETY: live queue with room for n + 1 events.
    let got = unsafe { basalt_client_poll(cq, evs.as_mut_ptr(), n as u32 + 1, 0) };
    assert_eq!(got, n as i32, "one completion per submission");
    let mut tags: Vec<u64> = evs[..n as usize].iter().map(|e| e.tag).collect();
    tags.sort_unstable();
    assert_eq!(tags, (0..n).collect::<Vec<_>>());
    for e in &evs[..n as usize] {
        assert!(
            e.result == data.len() as i64 || e.result == BASALT_CLIENT_ECANCELED as i64,
            "tag {}: {}",
            e.tag,
            e.result
        );
    }
    // SAFETY: live queue, nothing pending.
    assert_eq!(unsafe { basalt_client_cq_destroy(cq) }, 0);
    assert_eq!(shutdown(c), 0);
}

/// What a callback saw when it tried blocking calls.
struct Reentry {
    client: *mut basalt_client_t,
    cq: *mut basalt_cq_t,
    codes: Mutex<Vec<i32>>,
    done: Condvar,
}

unsafe extern "C" fn reenter(arg: *mut c_void, _result: i64) {
    // SAFETY: the test passes a `Reentry` that outlives the completion.
    let r = unsafe { &*(arg as *const Reentry) };
    let mut ev = basalt_client_event_t::default();
    let (mut v, mut size) = (null_mut(), 0u64);
    // SAFETY: live handles; each call refuses before blocking.
    let codes = unsafe {
        vec![
            basalt_client_poll(r.cq, &mut ev, 1, 1000),
            basalt_client_open(r.client, c"v".as_ptr(), 0, &mut v, &mut size),
            basalt_client_shutdown(r.client),
        ]
    };
    *r.codes.lock() = codes;
    r.done.notify_all();
}

#[test]
fn blocking_calls_inside_a_callback_are_refused() {
    let fake = FakeCluster::start();
    fake.create_volume("v", 1);
    let env = env();
    let mds = CString::new(fake.mds.to_string()).unwrap();
    let c = init(&config(&env, Some(&mds))).unwrap();
    let (v, _) = open(c, "v").unwrap();
    let cq = queue();
    let r = Reentry {
        client: c,
        cq,
        codes: Mutex::new(vec![]),
        done: Condvar::new(),
    };
    let done = basalt_client_completion_t {
        cb: Some(reenter),
        arg: &r as *const Reentry as *mut c_void,
        cq: null_mut(),
        tag: 0,
    };
    // SAFETY: live handle; `r` outlives the completion (waited for below).
    assert_eq!(unsafe { basalt_client_aio_flush(v, &done) }, 0);
    let mut codes = r.codes.lock();
    let deadline = Instant::now() + BOUND;
    while codes.is_empty() {
        assert!(
            !r.done.wait_until(&mut codes, deadline).timed_out(),
            "no callback"
        );
    }
    assert_eq!(*codes, [BASALT_CLIENT_EDEADLK; 3]);
    drop(codes);
    assert_eq!(close(v), 0);
    // SAFETY: live queue, nothing pending.
    assert_eq!(unsafe { basalt_client_cq_destroy(cq) }, 0);
    assert_eq!(shutdown(c), 0);
}
