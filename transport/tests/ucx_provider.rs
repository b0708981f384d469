//! The UCX fast-path provider on its own: two providers in one process, offers exchanged
//! by hand (as the hello would), frames both ways over UCX tcp and shared memory.
#![cfg(feature = "ucx")]

use basalt_proto::hello::UcxOffer;
use basalt_proto::ids::GroupId;
use basalt_proto::{FrameHeader, FrameKind};
use basalt_transport::fastpath::{
    FastPathError, FastPathLink, FastPathProvider, FrameSink, RawFrame,
};
use basalt_transport::ucx::{self, UcxConfig, UcxLink, UcxProvider};
use basalt_transport::TransportError;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Sink {
    frames: Mutex<Vec<RawFrame>>,
    failures: Mutex<Vec<FastPathError>>,
}

impl FrameSink for Sink {
    fn deliver(&self, frame: RawFrame) {
        self.frames.lock().push(frame);
    }
    fn link_failed(&self, error: FastPathError) {
        self.failures.lock().push(error);
    }
}

impl Sink {
    fn received(&self) -> usize {
        self.frames.lock().len()
    }
    fn failed(&self) -> usize {
        self.failures.lock().len()
    }
}

/// Poll `cond` until it holds or `within` passes.
async fn wait_for(what: &str, within: Duration, cond: impl Fn() -> bool) {
    let until = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn pattern(seed: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| (seed as usize).wrapping_mul(31).wrapping_add(i * 7) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn frame(corr: u64, head_len: usize, payload_len: usize) -> RawFrame {
    let mut header = FrameHeader::new(FrameKind::Request, 9, corr, GroupId(corr + 1));
    header.header_len = head_len as u32;
    header.payload_len = payload_len as u32;
    RawFrame {
        header,
        head: pattern(corr ^ 0x55, head_len),
        payload: pattern(corr, payload_len),
    }
}

fn check_same(got: &RawFrame, want: &RawFrame) {
    assert_eq!(got.header, want.header);
    assert_eq!(
        got.head, want.head,
        "head of frame {}",
        want.header.correlation_id
    );
    assert!(
        got.payload == want.payload,
        "payload of frame {} differs ({} vs {} bytes)",
        want.header.correlation_id,
        got.payload.len(),
        want.payload.len()
    );
}

struct Side {
    provider: Arc<UcxProvider>,
    sink: Arc<Sink>,
    offer: UcxOffer,
}

fn side(cfg: &UcxConfig) -> Side {
    let provider = Arc::new(UcxProvider::new(cfg.clone()).expect("UCX provider starts"));
    let sink = Arc::new(Sink::default());
    let offer = provider.listen(sink.clone()).unwrap();
    Side {
        provider,
        sink,
        offer,
    }
}

struct Pair {
    a: Side,
    b: Side,
    a_to_b: Arc<UcxLink>,
    b_to_a: Arc<UcxLink>,
}

async fn pair(cfg: &UcxConfig) -> Pair {
    let a = side(cfg);
    let b = side(cfg);
    let a_to_b = a
        .provider
        .connect_link(a.offer.conn, &b.offer)
        .await
        .unwrap();
    let b_to_a = b
        .provider
        .connect_link(b.offer.conn, &a.offer)
        .await
        .unwrap();
    Pair {
        a,
        b,
        a_to_b,
        b_to_a,
    }
}

fn sm_cfg() -> UcxConfig {
    UcxConfig {
        mm_error_handling: true,
        ..UcxConfig::loopback("sm,tcp")
    }
}

/// Send `frames` on `link`, all in flight at once; wait until `sink` has them all and
/// check each arrived intact exactly once.
async fn exchange(link: &UcxLink, sink: &Sink, frames: Vec<RawFrame>) {
    let before = sink.received();
    let sends: Vec<_> = frames.iter().map(|f| link.send(f.clone())).collect();
    for r in futures::future::join_all(sends).await {
        r.expect("send completes");
    }
    let n = frames.len();
    wait_for("all frames delivered", Duration::from_secs(20), || {
        sink.received() >= before + n
    })
    .await;
    let got = sink.frames.lock();
    assert_eq!(got.len(), before + n, "no duplicates");
    let by_corr: HashMap<u64, &RawFrame> = got[before..]
        .iter()
        .map(|f| (f.header.correlation_id, f))
        .collect();
    assert_eq!(by_corr.len(), n);
    for want in &frames {
        check_same(by_corr[&want.header.correlation_id], want);
    }
}

async fn sizes_both_ways(cfg: UcxConfig) {
    let p = pair(&cfg).await;
    // (encoded header, payload): empty, small, 4 KiB, a header too big for the AM
    // header, 1 MiB and 16 MiB (rendezvous).
    let shapes = [
        (0usize, 0usize),
        (12, 0),
        (20, 16),
        (30, 4096),
        (20_000, 100),
        (64, 1 << 20),
        (64, 16 << 20),
    ];
    let frames = |base: u64| -> Vec<RawFrame> {
        shapes
            .iter()
            .enumerate()
            .map(|(i, (h, pl))| frame(base + i as u64, *h, *pl))
            .collect()
    };
    // One at a time, then all at once, both directions.
    for f in frames(100) {
        exchange(&p.a_to_b, &p.b.sink, vec![f]).await;
    }
    exchange(&p.a_to_b, &p.b.sink, frames(200)).await;
    exchange(&p.b_to_a, &p.a.sink, frames(300)).await;
    assert_eq!(p.a.sink.failed() + p.b.sink.failed(), 0);
    // Both receive paths were taken: inline (eager) data and rendezvous fetches.
    for s in [p.a.provider.stats(), p.b.provider.stats()] {
        assert!(s.eager_frames > 0 && s.rendezvous_frames > 0, "{s:?}");
        assert_eq!((s.unknown_token, s.malformed), (0, 0), "{s:?}");
    }
    // The same counters are exported through prometheus.
    let mut registry = prometheus_client::registry::Registry::default();
    p.b.provider.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let s = p.b.provider.stats();
    for line in [
        format!("basalt_transport_ucx_eager_frames_total {}", s.eager_frames),
        format!(
            "basalt_transport_ucx_rendezvous_frames_total {}",
            s.rendezvous_frames
        ),
        "basalt_transport_ucx_unknown_token_frames_total 0".to_string(),
        "basalt_transport_ucx_malformed_messages_total 0".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_every_size_cross_ucx_tcp() {
    tokio::time::timeout(TEST_DEADLINE, sizes_both_ways(UcxConfig::loopback("tcp")))
        .await
        .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_every_size_cross_ucx_shared_memory() {
    tokio::time::timeout(TEST_DEADLINE, sizes_both_ways(sm_cfg()))
        .await
        .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_frames_in_flight_on_two_io_threads() {
    tokio::time::timeout(TEST_DEADLINE, async {
        // Two I/O threads, and a spin window before sleeping.
        let cfg = UcxConfig {
            threads: 2,
            spin_us: 50,
            ..sm_cfg()
        };
        let p = pair(&cfg).await;
        let frames: Vec<RawFrame> = (0..600u64)
            .map(|i| frame(i, (i % 50) as usize, ((i * 977) % 70_000) as usize))
            .collect();
        let (x, y) = frames.split_at(300);
        tokio::join!(
            exchange(&p.a_to_b, &p.b.sink, x.to_vec()),
            exchange(&p.b_to_a, &p.a.sink, y.to_vec())
        );
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_link_fails_the_peer_sink_once() {
    tokio::time::timeout(TEST_DEADLINE, async {
        for cfg in [UcxConfig::loopback("tcp"), sm_cfg()] {
            let p = pair(&cfg).await;
            exchange(&p.a_to_b, &p.b.sink, vec![frame(1, 8, 8)]).await;
            p.a_to_b.close();
            p.a_to_b.close(); // idempotent
            wait_for("peer link failure", Duration::from_secs(5), || {
                p.b.sink.failed() > 0
            })
            .await;
            assert!(matches!(
                p.a_to_b.send(frame(2, 0, 0)).await,
                Err(FastPathError::Closed)
            ));
            // A grace period for duplicate reports, then exactly one.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(p.b.sink.failed(), 1, "{:?}", p.b.sink.failures.lock());
            assert_eq!(p.a.sink.failed(), 0, "closing side's sink is not told");
            // The other direction still works until its owner falls back.
            exchange(&p.b_to_a, &p.a.sink, vec![frame(3, 8, 8)]).await;
        }
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_provider_going_away_fails_links_without_hanging() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let p = pair(&UcxConfig::loopback("tcp")).await;
        exchange(&p.a_to_b, &p.b.sink, vec![frame(1, 8, 1000)]).await;
        exchange(&p.b_to_a, &p.a.sink, vec![frame(2, 8, 1000)]).await;
        let Pair {
            a,
            b,
            a_to_b,
            b_to_a,
            ..
        } = p;
        // Provider `a` shuts down (its endpoints are force-closed, no close notice), as
        // if its process had died.
        let a_sink = a.sink.clone();
        drop(a.provider);
        assert_eq!(a_sink.failed(), 1, "own sink told about the shutdown");
        assert!(a_to_b.send(frame(4, 8, 8)).await.is_err());
        wait_for("peer endpoint error", Duration::from_secs(10), || {
            b.sink.failed() > 0
        })
        .await;
        // Sends on the dead link fail rather than hang.
        let r = tokio::time::timeout(Duration::from_secs(10), b_to_a.send(frame(3, 8, 8)))
            .await
            .expect("send does not hang");
        assert!(r.is_err(), "{r:?}");
    })
    .await
    .expect("test deadline");
}

#[test]
fn bogus_transports_are_a_typed_init_error() {
    let err = UcxProvider::new(UcxConfig::loopback("bogus")).unwrap_err();
    assert!(matches!(err, TransportError::UcxInit { .. }), "{err:?}");
    let err = UcxProvider::new(UcxConfig {
        net_devices: "nosuchdev0".into(),
        ..UcxConfig::loopback("tcp")
    })
    .unwrap_err();
    assert!(matches!(err, TransportError::UcxInit { .. }), "{err:?}");
    let err = UcxProvider::new(UcxConfig {
        threads: 0,
        ..UcxConfig::loopback("tcp")
    })
    .unwrap_err();
    assert!(matches!(
        err,
        TransportError::Config {
            field: "threads",
            ..
        }
    ));
    // The fast-path error a connection would log.
    assert!(matches!(
        ucx::unavailable(err),
        FastPathError::Unavailable { .. }
    ));
}

#[test]
fn worthwhile_only_with_more_than_tcp() {
    let tcp = UcxProvider::new(UcxConfig::loopback("tcp")).unwrap();
    assert!(!tcp.worthwhile(), "transports {:?}", tcp.transports());
    assert_eq!(tcp.name(), "ucx");
    let sm = UcxProvider::new(sm_cfg()).unwrap();
    assert!(sm.worthwhile(), "transports {:?}", sm.transports());
    assert!(
        sm.transports().iter().any(|t| t == "posix" || t == "sysv"),
        "{:?}",
        sm.transports()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_memory_lanes_need_mm_error_handling() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let uses_sm = |info: &str| ["posix", "sysv", "cma"].iter().any(|t| info.contains(t));
        let on = pair(&sm_cfg()).await;
        exchange(&on.a_to_b, &on.b.sink, vec![frame(1, 8, 8)]).await;
        let info = on.a_to_b.describe().await.expect("endpoint alive");
        assert!(uses_sm(&info), "expected shared-memory lanes:\n{info}");
        let off = pair(&UcxConfig {
            mm_error_handling: false,
            ..sm_cfg()
        })
        .await;
        exchange(&off.a_to_b, &off.b.sink, vec![frame(1, 8, 8)]).await;
        let info = off.a_to_b.describe().await.expect("endpoint alive");
        assert!(
            !uses_sm(&info),
            "UCX 1.13 skips shm in peer error mode:\n{info}"
        );
    })
    .await
    .expect("test deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_are_refused_or_dropped() {
    tokio::time::timeout(TEST_DEADLINE, async {
        let p = pair(&UcxConfig::loopback("tcp")).await;
        // connect with a token listen never returned
        let err =
            p.a.provider
                .connect(12345, &p.b.offer)
                .await
                .err()
                .expect("refused");
        assert!(matches!(err, FastPathError::Connect { .. }), "{err:?}");
        // frames for a released slot are dropped without harm
        p.b.provider.unlisten(p.b.offer.conn);
        p.a_to_b.send(frame(1, 8, 8)).await.unwrap();
        p.a_to_b.send(frame(2, 8, 200_000)).await.unwrap();
        // a fresh slot on the same provider still works
        let sink = Arc::new(Sink::default());
        let offer = p.b.provider.listen(sink.clone()).unwrap();
        let link =
            p.a.provider
                .connect_link(p.a.offer.conn, &offer)
                .await
                .unwrap();
        exchange(&link, &sink, vec![frame(3, 8, 8)]).await;
        assert_eq!(p.b.sink.received(), 0);
        assert_eq!(p.b.provider.stats().unknown_token, 2);
    })
    .await
    .expect("test deadline");
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_over_repeated_sends() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let p = pair(&sm_cfg()).await;
        let round = |base: u64| {
            (0..200u64)
                .map(|i| frame(base + i, 16, if i % 20 == 0 { 100_000 } else { 512 }))
                .collect::<Vec<_>>()
        };
        for r in 0..5 {
            exchange(&p.a_to_b, &p.b.sink, round(r * 1000)).await;
        }
        p.b.sink.frames.lock().clear();
        let warm = rss_bytes();
        for r in 5..50 {
            exchange(&p.a_to_b, &p.b.sink, round(r * 1000)).await;
            p.b.sink.frames.lock().clear();
        }
        let after = rss_bytes();
        let growth = after.saturating_sub(warm);
        // Loose: 9000 frames (~70 MB moved) may not grow the process by more than 32 MiB.
        assert!(
            growth < 32 << 20,
            "RSS grew {growth} bytes ({warm} -> {after})"
        );
    })
    .await
    .expect("test deadline");
}

/// Round trips through an echoing peer; prints the median (never asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trips() {
    struct Echo {
        back: Mutex<Option<Arc<UcxLink>>>,
        handle: tokio::runtime::Handle,
    }
    impl FrameSink for Echo {
        fn deliver(&self, frame: RawFrame) {
            if let Some(link) = self.back.lock().clone() {
                self.handle.spawn(async move {
                    let _ = link.send(frame).await;
                });
            }
        }
        fn link_failed(&self, _: FastPathError) {}
    }
    tokio::time::timeout(TEST_DEADLINE, async {
        let spinning = UcxConfig {
            spin_us: 100,
            ..sm_cfg()
        };
        for (name, cfg) in [
            ("tcp", UcxConfig::loopback("tcp")),
            ("sm,tcp", sm_cfg()),
            ("sm,tcp spin 100us", spinning),
        ] {
            let a = side(&cfg);
            let b_provider = Arc::new(UcxProvider::new(cfg.clone()).unwrap());
            let echo = Arc::new(Echo {
                back: Mutex::new(None),
                handle: tokio::runtime::Handle::current(),
            });
            let b_offer = b_provider.listen(echo.clone()).unwrap();
            let to_b = a
                .provider
                .connect_link(a.offer.conn, &b_offer)
                .await
                .unwrap();
            let to_a = b_provider
                .connect_link(b_offer.conn, &a.offer)
                .await
                .unwrap();
            *echo.back.lock() = Some(to_a);
            for (label, size) in [("64 B", 64usize), ("4 KiB", 4096)] {
                let mut rtts = Vec::new();
                for i in 0..300u64 {
                    let before = a.sink.received();
                    let t = Instant::now();
                    to_b.send(frame(i, 0, size)).await.unwrap();
                    wait_spin(|| a.sink.received() > before).await;
                    rtts.push(t.elapsed());
                }
                rtts.sort();
                eprintln!(
                    "UCX {name} echo RTT {label}: median {:?}, p90 {:?}",
                    rtts[rtts.len() / 2],
                    rtts[rtts.len() * 9 / 10]
                );
                let got = a.sink.frames.lock();
                check_same(got.last().unwrap(), &frame(299, 0, size));
            }
            echo.back.lock().take();
        }
    })
    .await
    .expect("test deadline");
}

/// Wait for `cond` with yields (the echo measures microseconds; the test deadline bounds it).
async fn wait_spin(cond: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < until, "echo did not come back");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_offers_are_refused_before_reaching_ucx() {
    tokio::time::timeout(TEST_DEADLINE, async {
        // UCX would crash inside ucp_ep_create on any of these.
        let a = side(&UcxConfig::loopback("tcp"));
        let good = a.offer.worker.clone();
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x20;
        let mut other_version = good.clone();
        other_version[5] = other_version[5].wrapping_add(1);
        let raw_ucx_address = good[20..].to_vec();
        for bad in [
            Vec::new(),
            vec![0u8; 3],
            vec![0xffu8; 64],
            good[..good.len() / 2].to_vec(),
            flipped,
            other_version,
            raw_ucx_address,
        ] {
            let offer = UcxOffer {
                worker: bad,
                conn: 1,
            };
            let err = a.provider.connect(a.offer.conn, &offer).await.err();
            assert!(
                matches!(err, Some(FastPathError::Connect { .. })),
                "{err:?}"
            );
        }
        // the provider still works
        let b = side(&UcxConfig::loopback("tcp"));
        let link = a
            .provider
            .connect_link(a.offer.conn, &b.offer)
            .await
            .unwrap();
        exchange(&link, &b.sink, vec![frame(1, 8, 8)]).await;
    })
    .await
    .expect("test deadline");
}
