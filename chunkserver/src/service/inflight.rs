//! The in-flight limit of data requests: a counter and a guard that gives the slot back
//! when the request finishes (or its task is dropped).

use basalt_proto::status::ChunkError;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Admits at most `limit` data requests at once.
#[derive(Debug)]
pub struct InflightLimit {
    limit: u32,
    current: Arc<AtomicU32>,
}

/// One admitted request; dropping it frees the slot.
#[derive(Debug)]
pub struct InflightSlot {
    current: Arc<AtomicU32>,
}

impl Drop for InflightSlot {
    fn drop(&mut self) {
        self.current.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InflightLimit {
    /// A limit of `limit` requests (at least 1).
    pub fn new(limit: u32) -> Self {
        InflightLimit {
            limit: limit.max(1),
            current: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Take a slot, or `Overload` with the count in flight when all are taken.
    pub fn acquire(&self) -> Result<InflightSlot, ChunkError> {
        let mut cur = self.current.load(Ordering::Acquire);
        loop {
            if cur >= self.limit {
                return Err(ChunkError::Overload { inflight: cur });
            }
            match self.current.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(InflightSlot {
                        current: self.current.clone(),
                    })
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Requests in flight now.
    pub fn current(&self) -> u32 {
        self.current.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_frees_on_drop() {
        let l = InflightLimit::new(2);
        let a = l.acquire().unwrap();
        let b = l.acquire().unwrap();
        assert_eq!(
            l.acquire().unwrap_err(),
            ChunkError::Overload { inflight: 2 }
        );
        drop(a);
        assert_eq!(l.current(), 1);
        let _c = l.acquire().unwrap();
        drop(b);
        assert_eq!(l.current(), 1);
    }

    #[test]
    fn concurrent_acquires_never_exceed_the_limit() {
        let l = Arc::new(InflightLimit::new(4));
        let peak = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (l, peak) = (l.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if let Ok(_s) = l.acquire() {
                            peak.fetch_max(l.current(), Ordering::AcqRel);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::Acquire) <= 4);
        assert_eq!(l.current(), 0);
    }
}
