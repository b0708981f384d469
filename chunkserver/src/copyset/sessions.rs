//! Client sessions of a copyset: the dedupe table that makes every mutating chunk request
//! apply at most once, however many of its attempts reach the log.
//!
//! A client retries a write whose reply it did not get in time. If the first attempt was
//! appended after all, both attempts commit; applying the second after another client's
//! acknowledged write to the same block would silently undo that write. Every write and
//! delete therefore carries a [`RequestId`] (client, sequence number, and the client's
//! lowest sequence number still in flight), and the state machine remembers, per client,
//! the outcome of each request it applied:
//!
//! - an entry whose id was applied before is skipped and answers the remembered outcome;
//! - an entry below the client's floor (the highest `done_below` seen) belongs to a
//!   request the client finished or abandoned: skipped, answered [`Verdict::Stale`];
//! - anything else is applied and remembered.
//!
//! The table is a pure function of the applied log (no clocks, no randomness), so every
//! replica holds the same one, and it is saved with each snapshot (the log behind a
//! snapshot is purged, so it could not be rebuilt by replay). Its size is bounded: a
//! client's entries below its floor are forgotten as the floor rises; a client not heard
//! from for [`IDLE_ENTRIES`] log entries, or the least recently heard one beyond
//! [`MAX_CLIENTS`], is forgotten entirely; beyond [`MAX_REQUESTS`] remembered requests
//! in all, the lowest ones of the client holding the most are forgotten (raising its
//! floor, so a late retry of one is refused as stale rather than applied twice).

use crate::copyset::types::ChunkOpResult;
use basalt_proto::chunk::RequestId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Clients remembered at most per copyset.
pub const MAX_CLIENTS: usize = 1024;
/// Requests remembered at most per copyset (all clients together).
pub const MAX_REQUESTS: usize = 16 * 1024;
/// A client with no entry in this many log entries is forgotten.
pub const IDLE_ENTRIES: u64 = 1 << 20;

/// What to do with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Apply it (then [`Sessions::record`] its outcome).
    Apply,
    /// Applied before with this outcome: skip it.
    Duplicate(ChunkOpResult),
    /// Below the client's floor: the client no longer waits for it; skip it.
    Stale,
}

/// What is remembered of one client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Client {
    /// Requests below this are finished or abandoned by the client.
    floor: u64,
    /// Outcomes of the applied requests at or above `floor`.
    applied: BTreeMap<u64, ChunkOpResult>,
    /// Log index of the client's last entry.
    last_index: u64,
}

/// The dedupe table of one copyset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SessionsWire", into = "SessionsWire")]
pub struct Sessions {
    clients: BTreeMap<u64, Client>,
    /// `(last_index, client)` of every client: eviction order.
    by_last: BTreeSet<(u64, u64)>,
    /// Remembered requests, all clients.
    requests: usize,
}

/// The encoded form: the clients alone (the rest is derived).
#[derive(Serialize, Deserialize)]
struct SessionsWire {
    clients: Vec<(u64, Client)>,
}

impl From<SessionsWire> for Sessions {
    fn from(w: SessionsWire) -> Self {
        let clients: BTreeMap<u64, Client> = w.clients.into_iter().collect();
        let by_last = clients.iter().map(|(&id, c)| (c.last_index, id)).collect();
        let requests = clients.values().map(|c| c.applied.len()).sum();
        Sessions {
            clients,
            by_last,
            requests,
        }
    }
}

impl From<Sessions> for SessionsWire {
    fn from(s: Sessions) -> Self {
        SessionsWire {
            clients: s.clients.into_iter().collect(),
        }
    }
}

impl Sessions {
    /// Clients remembered.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Requests remembered, all clients.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Decide what to do with the entry at log `index` carrying `id`, learning the
    /// client's watermark and forgetting what it allows.
    pub fn admit(&mut self, id: RequestId, index: u64) -> Verdict {
        if id.client == 0 {
            return Verdict::Apply;
        }
        self.evict_idle(index);
        let c = match self.clients.get_mut(&id.client) {
            Some(c) => {
                self.by_last.remove(&(c.last_index, id.client));
                c
            }
            None => self.clients.entry(id.client).or_default(),
        };
        c.last_index = index;
        self.by_last.insert((index, id.client));
        // A request never lowers its own floor past itself: done_below <= seq by contract,
        // and a malformed id must not make a request refuse itself.
        let floor = id.done_below.min(id.seq);
        if floor > c.floor {
            c.floor = floor;
            let keep = c.applied.split_off(&floor);
            self.requests -= c.applied.len();
            c.applied = keep;
        }
        let verdict = if id.seq < c.floor {
            Verdict::Stale
        } else if let Some(&r) = c.applied.get(&id.seq) {
            Verdict::Duplicate(r)
        } else {
            Verdict::Apply
        };
        self.evict_over_limit();
        verdict
    }

    /// Remember that the request `id` was applied with `result`.
    pub fn record(&mut self, id: RequestId, result: ChunkOpResult) {
        if id.client == 0 {
            return;
        }
        let Some(c) = self.clients.get_mut(&id.client) else {
            return;
        };
        if id.seq < c.floor {
            return;
        }
        if c.applied.insert(id.seq, result).is_none() {
            self.requests += 1;
        }
        self.evict_over_limit();
    }

    fn forget_client(&mut self, client: u64) {
        if let Some(c) = self.clients.remove(&client) {
            self.by_last.remove(&(c.last_index, client));
            self.requests -= c.applied.len();
        }
    }

    /// Forget clients silent for [`IDLE_ENTRIES`] entries before `index`.
    fn evict_idle(&mut self, index: u64) {
        while let Some(&(last, client)) = self.by_last.first() {
            if last.saturating_add(IDLE_ENTRIES) >= index {
                break;
            }
            self.forget_client(client);
        }
    }

    /// Enforce [`MAX_CLIENTS`] and [`MAX_REQUESTS`].
    fn evict_over_limit(&mut self) {
        while self.clients.len() > MAX_CLIENTS {
            let Some(&(_, client)) = self.by_last.first() else {
                break;
            };
            self.forget_client(client);
        }
        while self.requests > MAX_REQUESTS {
            // The client holding the most requests (lowest id on ties) gives up its lowest.
            let Some((_, c)) = self
                .clients
                .iter_mut()
                .max_by_key(|(&id, c)| (c.applied.len(), std::cmp::Reverse(id)))
            else {
                break;
            };
            let Some((seq, _)) = c.applied.pop_first() else {
                break;
            };
            c.floor = c.floor.max(seq.saturating_add(1));
            self.requests -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: u64, seq: u64, done_below: u64) -> RequestId {
        RequestId {
            client,
            seq,
            done_below,
        }
    }

    #[test]
    fn a_repeated_id_is_a_duplicate_with_the_first_outcome() {
        let mut s = Sessions::default();
        assert_eq!(s.admit(id(7, 1, 1), 10), Verdict::Apply);
        s.record(id(7, 1, 1), ChunkOpResult::Written);
        assert_eq!(
            s.admit(id(7, 1, 1), 12),
            Verdict::Duplicate(ChunkOpResult::Written)
        );
        // Another client's request with the same sequence number is its own.
        assert_eq!(s.admit(id(8, 1, 1), 13), Verdict::Apply);
        // No id: always applied.
        assert_eq!(s.admit(RequestId::NONE, 14), Verdict::Apply);
        s.record(RequestId::NONE, ChunkOpResult::Written);
        assert_eq!(s.admit(RequestId::NONE, 15), Verdict::Apply);
        assert_eq!(s.clients(), 2);
    }

    #[test]
    fn the_watermark_forgets_finished_requests_and_refuses_them_after() {
        let mut s = Sessions::default();
        for seq in 1..=5 {
            assert_eq!(s.admit(id(7, seq, 1), seq), Verdict::Apply);
            s.record(id(7, seq, 1), ChunkOpResult::Written);
        }
        assert_eq!(s.requests(), 5);
        // Requests 1..4 finished: forgotten.
        assert_eq!(s.admit(id(7, 6, 4), 6), Verdict::Apply);
        s.record(id(7, 6, 4), ChunkOpResult::Written);
        assert_eq!(s.requests(), 3);
        // A late attempt of a forgotten request is refused, not applied again.
        assert_eq!(s.admit(id(7, 2, 1), 7), Verdict::Stale);
        // One still remembered is a duplicate.
        assert_eq!(
            s.admit(id(7, 5, 4), 8),
            Verdict::Duplicate(ChunkOpResult::Written)
        );
        // The watermark never moves back, and never past the request carrying it.
        assert_eq!(s.admit(id(7, 9, 100), 9), Verdict::Apply);
        assert_eq!(s.admit(id(7, 8, 1), 10), Verdict::Stale);
    }

    #[test]
    fn idle_clients_are_forgotten_by_log_index() {
        let mut s = Sessions::default();
        s.admit(id(1, 1, 1), 1);
        s.record(id(1, 1, 1), ChunkOpResult::Written);
        s.admit(id(2, 1, 1), 100);
        s.record(id(2, 1, 1), ChunkOpResult::Written);
        s.admit(id(3, 1, 1), 1 + IDLE_ENTRIES);
        assert_eq!(s.clients(), 3);
        s.admit(id(3, 2, 1), 2 + IDLE_ENTRIES);
        assert_eq!(s.clients(), 2);
        assert_eq!(s.requests(), 1);
        assert!(!s.clients.contains_key(&1));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut s = Sessions::default();
        // Many clients, each with one request.
        for c in 1..=(MAX_CLIENTS as u64 + 50) {
            s.admit(id(c, 1, 1), c);
            s.record(id(c, 1, 1), ChunkOpResult::Written);
        }
        assert_eq!(s.clients(), MAX_CLIENTS);
        // The least recently heard were forgotten.
        assert!(!s.clients.contains_key(&1));
        assert!(s.clients.contains_key(&(MAX_CLIENTS as u64 + 50)));
        // One client that never advances its watermark.
        let base = 10_000;
        for seq in 1..=(MAX_REQUESTS as u64 + 100) {
            s.admit(id(0xabc, seq, 1), base + seq);
            s.record(id(0xabc, seq, 1), ChunkOpResult::Written);
            assert!(s.requests() <= MAX_REQUESTS);
        }
        assert_eq!(s.requests(), MAX_REQUESTS);
        // Its oldest were dropped and refuse a late retry instead of applying it twice.
        let newest = MAX_REQUESTS as u64 + 100;
        assert_eq!(s.admit(id(0xabc, 1, 1), base + newest + 1), Verdict::Stale);
        assert_eq!(
            s.admit(id(0xabc, newest, 1), base + newest + 2),
            Verdict::Duplicate(ChunkOpResult::Written)
        );
    }

    #[test]
    fn the_table_round_trips_through_its_encoding() {
        let mut s = Sessions::default();
        for c in 1..=3u64 {
            for seq in 1..=4 {
                s.admit(id(c, seq, 2), c * 10 + seq);
                s.record(id(c, seq, 2), ChunkOpResult::Deleted);
            }
        }
        let enc = crate::copyset::codec::encode(&s).unwrap();
        let back: Sessions = crate::copyset::codec::decode(&enc).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.requests(), 9);
    }
}
