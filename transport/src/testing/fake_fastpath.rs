//! An in-memory [`FastPathProvider`] with fault switches, to test the upgrade and every
//! fallback without UCX. Links reach only slots of the same process.

use crate::fastpath::{FastPathError, FastPathLink, FastPathProvider, FrameSink, RawFrame};
use basalt_proto::hello::UcxOffer;
use basalt_proto::Method;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};

/// Inbound slots of every fake provider of this process, by token.
static SLOTS: LazyLock<Mutex<HashMap<u64, Arc<dyn FrameSink>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn slot(token: u64) -> Option<Arc<dyn FrameSink>> {
    SLOTS.lock().get(&token).cloned()
}

#[derive(Default)]
struct Switches {
    unworthy: AtomicBool,
    refuse_listen: AtomicBool,
    fail_connect: AtomicBool,
    drop_pings: AtomicBool,
}

/// The fake provider. Share one between the sides of a test, or give each its own.
pub struct FakeFastPath {
    shared: Arc<Shared>,
}

struct Shared {
    worker: Vec<u8>,
    switches: Switches,
    links: Mutex<Vec<Weak<FakeLink>>>,
    frames: AtomicU64,
    /// Frames are delivered by a thread of the provider, outside any tokio runtime, as
    /// UCX delivers from its I/O threads.
    delivery: Mutex<std::sync::mpsc::Sender<Delivery>>,
}

type Delivery = (Arc<dyn FrameSink>, RawFrame);

fn delivery_thread() -> std::sync::mpsc::Sender<Delivery> {
    let (tx, rx) = std::sync::mpsc::channel::<Delivery>();
    std::thread::Builder::new()
        .name("fake-fastpath".into())
        .spawn(move || {
            while let Ok((sink, frame)) = rx.recv() {
                sink.deliver(frame);
            }
        })
        .expect("spawn fake fast-path thread");
    tx
}

impl std::fmt::Debug for FakeFastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFastPath")
            .field("links", &self.shared.links.lock().len())
            .finish()
    }
}

impl FakeFastPath {
    /// A working provider (worthwhile, no faults).
    pub fn new() -> Arc<Self> {
        Arc::new(FakeFastPath {
            shared: Arc::new(Shared {
                worker: format!("fake:{}", std::process::id()).into_bytes(),
                switches: Switches::default(),
                links: Mutex::new(Vec::new()),
                frames: AtomicU64::new(0),
                delivery: Mutex::new(delivery_thread()),
            }),
        })
    }

    /// What `worthwhile()` answers.
    pub fn set_worthwhile(&self, yes: bool) {
        self.shared.switches.unworthy.store(!yes, Ordering::SeqCst);
    }

    /// Make `listen` fail (provider unavailable).
    pub fn set_refuse_listen(&self, yes: bool) {
        self.shared
            .switches
            .refuse_listen
            .store(yes, Ordering::SeqCst);
    }

    /// Make `connect` fail.
    pub fn set_fail_connect(&self, yes: bool) {
        self.shared
            .switches
            .fail_connect
            .store(yes, Ordering::SeqCst);
    }

    /// Silently drop `Ping` frames on links of this provider.
    pub fn set_drop_pings(&self, yes: bool) {
        self.shared.switches.drop_pings.store(yes, Ordering::SeqCst);
    }

    /// Break every link made by this provider: sends fail and both ends' sinks see a
    /// link failure.
    pub fn break_links(&self) {
        let links: Vec<_> = self.shared.links.lock().drain(..).collect();
        for l in links.iter().filter_map(Weak::upgrade) {
            l.fail(FastPathError::Link {
                reason: "link broken by test".into(),
            });
        }
    }

    /// Frames carried over links of this provider so far.
    pub fn frames_carried(&self) -> u64 {
        self.shared.frames.load(Ordering::SeqCst)
    }

    /// Open links of this provider.
    pub fn open_links(&self) -> usize {
        let mut links = self.shared.links.lock();
        links.retain(|l| {
            l.upgrade()
                .is_some_and(|l| !l.broken.load(Ordering::SeqCst))
        });
        links.len()
    }
}

struct FakeLink {
    provider: Arc<Shared>,
    local: u64,
    remote: u64,
    broken: AtomicBool,
}

impl FakeLink {
    /// Mark broken and tell both ends (once).
    fn fail(&self, error: FastPathError) {
        if self.broken.swap(true, Ordering::SeqCst) {
            return;
        }
        for token in [self.local, self.remote] {
            if let Some(sink) = slot(token) {
                sink.link_failed(error.clone());
            }
        }
    }
}

impl FastPathLink for FakeLink {
    fn send(&self, frame: RawFrame) -> BoxFuture<'static, Result<(), FastPathError>> {
        let result = if self.broken.load(Ordering::SeqCst) {
            Err(FastPathError::Link {
                reason: "link broken".into(),
            })
        } else if self.provider.switches.drop_pings.load(Ordering::SeqCst)
            && frame.header.method == Method::Ping as u16
        {
            Ok(())
        } else {
            match slot(self.remote) {
                Some(sink) => {
                    self.provider.frames.fetch_add(1, Ordering::SeqCst);
                    self.provider
                        .delivery
                        .lock()
                        .send((sink, frame))
                        .map_err(|_| FastPathError::Link {
                            reason: "delivery thread gone".into(),
                        })
                }
                None => Err(FastPathError::Link {
                    reason: "peer slot gone".into(),
                }),
            }
        };
        futures::future::ready(result).boxed()
    }

    fn close(&self) {
        if self.broken.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(sink) = slot(self.remote) {
            sink.link_failed(FastPathError::Closed);
        }
    }
}

impl FastPathProvider for FakeFastPath {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn worthwhile(&self) -> bool {
        !self.shared.switches.unworthy.load(Ordering::SeqCst)
    }

    fn listen(&self, sink: Arc<dyn FrameSink>) -> Result<UcxOffer, FastPathError> {
        if self.shared.switches.refuse_listen.load(Ordering::SeqCst) {
            return Err(FastPathError::Unavailable {
                reason: "listen refused by test".into(),
            });
        }
        let token = NEXT_TOKEN.fetch_add(1, Ordering::SeqCst);
        SLOTS.lock().insert(token, sink);
        Ok(UcxOffer {
            worker: self.shared.worker.clone(),
            conn: token,
        })
    }

    fn connect(
        &self,
        local: u64,
        remote: &UcxOffer,
    ) -> BoxFuture<'static, Result<Arc<dyn FastPathLink>, FastPathError>> {
        let result = if self.shared.switches.fail_connect.load(Ordering::SeqCst) {
            Err(FastPathError::Connect {
                reason: "connect refused by test".into(),
            })
        } else if remote.worker != self.shared.worker || slot(remote.conn).is_none() {
            Err(FastPathError::Connect {
                reason: "unknown worker or slot".into(),
            })
        } else {
            let link = Arc::new(FakeLink {
                provider: self.shared.clone(),
                local,
                remote: remote.conn,
                broken: AtomicBool::new(false),
            });
            self.shared.links.lock().push(Arc::downgrade(&link));
            Ok(link as Arc<dyn FastPathLink>)
        };
        futures::future::ready(result).boxed()
    }

    fn unlisten(&self, local: u64) {
        SLOTS.lock().remove(&local);
    }
}
