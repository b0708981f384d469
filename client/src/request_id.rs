//! Request ids of mutating chunk requests (writes, deletes): one client id per process
//! ([`crate::Cluster`]), a sequence number per logical request kept across all its retries,
//! and a watermark that lets the copysets forget the requests below it (see
//! `basalt_chunkserver::copyset::sessions`). Sans-IO.
//!
//! The watermark sent to copyset G is the lowest sequence number still in flight that
//! may still be sent to G: requests bound for G, and requests whose copyset is not known
//! yet. A request stuck on another copyset therefore does not hold back G's pruning.

use basalt_proto::chunk::RequestId;
use basalt_proto::ids::GroupId;
use std::collections::BTreeMap;

/// The request ids of one client.
#[derive(Debug)]
pub struct RequestIds {
    client: u64,
    next: u64,
    /// In-flight requests and the copyset each is bound for, once known.
    inflight: BTreeMap<u64, Option<GroupId>>,
}

impl RequestIds {
    /// Ids of client `client` (0 is replaced by 1: 0 means "no id" on the wire).
    pub fn new(client: u64) -> Self {
        RequestIds {
            client: client.max(1),
            next: 1,
            inflight: BTreeMap::new(),
        }
    }

    /// Ids of a client with a random id.
    pub fn random() -> Self {
        Self::new(rand::random())
    }

    /// The client id.
    pub fn client(&self) -> u64 {
        self.client
    }

    /// Start a logical request: its sequence number, in flight until [`RequestIds::end`].
    pub fn begin(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.inflight.insert(seq, None);
        seq
    }

    /// The id to send with an attempt of request `seq` to copyset `group` (any attempt:
    /// the watermark may have risen since the last one, the sequence number never
    /// changes). The first call binds the request to `group`.
    pub fn id(&mut self, seq: u64, group: GroupId) -> RequestId {
        if let Some(bound @ None) = self.inflight.get_mut(&seq) {
            *bound = Some(group);
        }
        let lowest = self
            .inflight
            .iter()
            .find(|(_, g)| g.is_none_or(|g| g == group))
            .map_or(seq, |(&s, _)| s);
        RequestId {
            client: self.client,
            seq,
            done_below: lowest.min(seq),
        }
    }

    /// Request `seq` is complete (answered, failed or abandoned): it is never sent again.
    pub fn end(&mut self, seq: u64) {
        self.inflight.remove(&seq);
    }

    /// Requests in flight.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: GroupId = GroupId(1);
    const H: GroupId = GroupId(2);

    #[test]
    fn retries_keep_the_id_and_the_watermark_follows_the_oldest_in_flight() {
        let mut ids = RequestIds::new(42);
        let a = ids.begin();
        let b = ids.begin();
        let c = ids.begin();
        assert_eq!((a, b, c), (1, 2, 3));
        assert_eq!(ids.id(c, G).done_below, 1);
        // The same request's retry carries the same client and sequence number.
        assert_eq!(ids.id(b, G).seq, 2);
        assert_eq!(ids.id(b, G).client, 42);
        ids.end(a);
        // The watermark rose; a retry of c now says so.
        assert_eq!(
            ids.id(c, G),
            RequestId {
                client: 42,
                seq: 3,
                done_below: 2
            }
        );
        ids.end(b);
        ids.end(c);
        assert_eq!(ids.inflight(), 0);
        let d = ids.begin();
        assert_eq!(ids.id(d, G).done_below, d);
    }

    #[test]
    fn a_request_stuck_on_another_copyset_does_not_hold_the_watermark() {
        let mut ids = RequestIds::new(7);
        let stuck = ids.begin();
        ids.id(stuck, H);
        let unresolved = ids.begin();
        let x = ids.begin();
        // The unresolved one may still go to G: it holds G's watermark...
        assert_eq!(ids.id(x, G).done_below, unresolved);
        // ...until it is bound elsewhere; the one stuck on H never holds G's.
        ids.id(unresolved, H);
        assert_eq!(ids.id(x, G).done_below, x);
        assert_eq!(ids.id(unresolved, H).done_below, stuck);
        // A request's copyset is bound once.
        assert_eq!(ids.id(x, H).done_below, stuck);
        ids.end(stuck);
        assert_eq!(ids.id(x, G).done_below, x);
    }

    #[test]
    fn the_watermark_never_passes_the_request_itself() {
        let mut ids = RequestIds::new(0);
        assert_eq!(ids.client(), 1, "0 is reserved for no id");
        let a = ids.begin();
        ids.end(a);
        // Ended requests' ids are still well formed (a late attempt after end).
        let id = ids.id(a, G);
        assert!(id.done_below <= id.seq);
    }
}
