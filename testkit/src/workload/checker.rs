//! Per-block register linearizability (pure logic).
//!
//! Each 4 KiB block is an independent read/write register, and every write carries a
//! unique value ([`Tag`]), so a history is linearizable iff each block's sub-history is.
//! For a block, we search for a total order of its operations that respects real time
//! (an operation that completed before another was invoked comes first) and register
//! semantics (a read returns the latest write before it, or zeros if none) — the
//! Wing & Gong search with memoisation of (linearized set, register value), as in
//! Lowe's and Porcupine's checkers. Acknowledged writes and successful reads must be
//! placed; a write that returned an error may take effect at any time after its invoke,
//! or never; failed reads say nothing.
//!
//! Before the search, cheap checks name the common failures precisely: a corrupt or torn
//! block, a value never written to that block, a read of a write issued after the read
//! returned, and a read that misses an acknowledged write (the lost-write case).

use super::block::{Observed, Tag};
use super::history::{Action, History, Op};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

/// Search nodes explored per block before the checker gives up.
const SEARCH_BUDGET: usize = 2_000_000;
/// Operations shown around a violation.
const CONTEXT_OPS: usize = 12;

/// How a history broke the register model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViolationKind {
    /// A read found a block that is neither zeros nor an intact block of this index.
    Corrupt {
        /// The read.
        read: Op,
    },
    /// A read found an intact block whose value was never written to this block.
    Phantom {
        /// The read.
        read: Op,
    },
    /// A read returned a write that was issued only after the read completed.
    FutureRead {
        /// The read.
        read: Op,
        /// The write it returned.
        write: Op,
    },
    /// An acknowledged write was lost: a read invoked after it completed returned an
    /// older value (or zeros).
    LostWrite {
        /// The acknowledged write that the read should have seen (or a later one).
        write: Op,
        /// The read that missed it.
        read: Op,
    },
    /// No order of the block's operations explains what the reads saw (e.g. reads going
    /// back in time) although no single read is stale on its own.
    NotLinearizable,
    /// The search exceeded its budget (too much concurrency on one block).
    TooComplex {
        /// Nodes explored.
        explored: usize,
    },
}

/// A failed check: what, on which block, and the block's history around it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct Violation {
    /// Block index.
    pub block: u64,
    /// What went wrong.
    pub kind: ViolationKind,
    /// The block's operations around the violation, by invoke time.
    pub context: Vec<Op>,
}

impl Violation {
    fn render(&self) -> String {
        let mut s = format!("block {}: ", self.block);
        match &self.kind {
            ViolationKind::Corrupt { read } => {
                let _ = write!(s, "corrupt or torn block read\n  {read}");
            }
            ViolationKind::Phantom { read } => {
                let _ = write!(s, "read a value never written to this block\n  {read}");
            }
            ViolationKind::FutureRead { read, write } => {
                let _ = write!(
                    s,
                    "read returned a write issued after it\n  {read}\n  {write}"
                );
            }
            ViolationKind::LostWrite { write, read } => {
                let _ = write!(
                    s,
                    "LOST ACKNOWLEDGED WRITE\n  acked: {write}\n  later read missed it: {read}"
                );
            }
            ViolationKind::NotLinearizable => s.push_str("history is not linearizable"),
            ViolationKind::TooComplex { explored } => {
                let _ = write!(s, "checker gave up after {explored} search nodes");
            }
        }
        s.push_str("\nhistory of the block around it:\n");
        for o in &self.context {
            let _ = writeln!(s, "  {o}");
        }
        s
    }
}

/// What a successful check covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckSummary {
    /// Blocks with at least one operation.
    pub blocks: usize,
    /// Acknowledged writes (every one of them placed in a linearization).
    pub writes_verified: usize,
    /// Successful reads checked.
    pub reads_checked: usize,
    /// Writes that returned an error (indeterminate).
    pub failed_writes: usize,
}

/// Check every block of `h`. Returns the first violation found (lowest block).
pub fn check(h: &History) -> Result<CheckSummary, Box<Violation>> {
    let mut blocks: Vec<u64> = h.ops.iter().map(|o| o.block).collect();
    blocks.sort_unstable();
    blocks.dedup();
    let mut sum = CheckSummary {
        blocks: blocks.len(),
        ..Default::default()
    };
    for b in blocks {
        let ops = h.of_block(b);
        check_block(b, &ops)?;
        for o in ops {
            match o.action {
                Action::Write(_) if o.ok() => sum.writes_verified += 1,
                Action::Write(_) => sum.failed_writes += 1,
                Action::Read(_) if o.ok() => sum.reads_checked += 1,
                Action::Read(_) => {}
            }
        }
    }
    Ok(sum)
}

/// Operations of `ops` (sorted by invoke) whose time span touches `[from, to]`, at most
/// [`CONTEXT_OPS`] on either side of the first one inside.
fn context(ops: &[&Op], from: Duration, to: Duration) -> Vec<Op> {
    let first = ops.iter().position(|o| o.complete >= from).unwrap_or(0);
    let last = ops
        .iter()
        .rposition(|o| o.invoke <= to)
        .unwrap_or(ops.len().saturating_sub(1));
    let lo = first.saturating_sub(CONTEXT_OPS);
    let hi = (last + CONTEXT_OPS + 1).min(ops.len()).max(lo);
    ops[lo..hi].iter().map(|o| (*o).clone()).collect()
}

fn violation(
    block: u64,
    ops: &[&Op],
    kind: ViolationKind,
    from: Duration,
    to: Duration,
) -> Box<Violation> {
    Box::new(Violation {
        block,
        kind,
        context: context(ops, from, to),
    })
}

/// Check one block's operations (sorted by invoke time).
fn check_block(block: u64, ops: &[&Op]) -> Result<(), Box<Violation>> {
    let writes: HashMap<Tag, &Op> = ops
        .iter()
        .filter_map(|o| match o.action {
            Action::Write(t) => Some((t, *o)),
            _ => None,
        })
        .collect();
    // Cheap, precise diagnoses first.
    for r in ops.iter().filter(|o| o.ok()) {
        let seen = match &r.action {
            Action::Read(Some(s)) => s,
            _ => continue,
        };
        let from_write = match seen {
            Observed::Corrupt { .. } => {
                return Err(violation(
                    block,
                    ops,
                    ViolationKind::Corrupt { read: (*r).clone() },
                    r.invoke,
                    r.complete,
                ));
            }
            Observed::Zero => None,
            Observed::Tag(t) => match writes.get(t) {
                None => {
                    return Err(violation(
                        block,
                        ops,
                        ViolationKind::Phantom { read: (*r).clone() },
                        r.invoke,
                        r.complete,
                    ));
                }
                Some(w) if w.invoke > r.complete => {
                    return Err(violation(
                        block,
                        ops,
                        ViolationKind::FutureRead {
                            read: (*r).clone(),
                            write: (*w).clone(),
                        },
                        r.invoke,
                        w.complete,
                    ));
                }
                Some(w) => Some(*w),
            },
        };
        // An acknowledged write that completed before the read began and that must
        // follow the write the read saw (or any, if the read saw zeros) was lost.
        let missed = ops.iter().find(|w| {
            w.acked_write().is_some()
                && w.complete < r.invoke
                && from_write.is_none_or(|v| v.ok() && v.complete < w.invoke)
        });
        if let Some(w) = missed {
            return Err(violation(
                block,
                ops,
                ViolationKind::LostWrite {
                    write: (*w).clone(),
                    read: (*r).clone(),
                },
                w.invoke,
                r.complete,
            ));
        }
    }
    match search(ops) {
        Ok(()) => Ok(()),
        Err(None) => {
            let from = ops.first().map_or(Duration::ZERO, |o| o.invoke);
            let to = ops.last().map_or(Duration::ZERO, |o| o.complete);
            Err(violation(
                block,
                ops,
                ViolationKind::NotLinearizable,
                from,
                to,
            ))
        }
        Err(Some(explored)) => Err(violation(
            block,
            ops,
            ViolationKind::TooComplex { explored },
            Duration::ZERO,
            Duration::MAX,
        )),
    }
}

#[derive(Clone, Copy)]
enum Step {
    /// Sets the register to this value id.
    Write(usize),
    /// Must find the register holding this value id.
    Read(usize),
}

#[derive(Clone, Copy)]
struct Entry {
    invoke: Duration,
    /// `Duration::MAX` for failed writes (they may take effect any time).
    complete: Duration,
    step: Step,
    /// Must be linearized (acknowledged writes, successful reads).
    required: bool,
}

struct Search {
    entries: Vec<Entry>,
    required_left: usize,
    done: Vec<bool>,
    seen: HashSet<(Vec<u64>, usize)>,
    explored: usize,
}

impl Search {
    fn key(&self, state: usize) -> (Vec<u64>, usize) {
        let mut bits = vec![0u64; self.done.len().div_ceil(64)];
        for (i, &d) in self.done.iter().enumerate() {
            if d {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        (bits, state)
    }

    /// Ok(true): linearizable from here; Ok(false): not; Err: budget exhausted.
    fn run(&mut self, state: usize) -> Result<bool, usize> {
        if self.required_left == 0 {
            return Ok(true);
        }
        self.explored += 1;
        if self.explored > SEARCH_BUDGET {
            return Err(self.explored);
        }
        if !self.seen.insert(self.key(state)) {
            return Ok(false);
        }
        // Every pending op must wait for the earliest-completing pending op.
        let horizon = self
            .entries
            .iter()
            .zip(&self.done)
            .filter(|(_, d)| !**d)
            .map(|(e, _)| e.complete)
            .min()
            .unwrap_or(Duration::MAX);
        let candidates: Vec<usize> = (0..self.entries.len())
            .filter(|&i| !self.done[i] && self.entries[i].invoke <= horizon)
            .collect();
        // A read that fits the current value can always go first: it changes nothing.
        if let Some(&i) = candidates
            .iter()
            .find(|&&i| matches!(self.entries[i].step, Step::Read(v) if v == state))
        {
            return self.take(i, state);
        }
        for i in candidates {
            if let Step::Write(v) = self.entries[i].step {
                if self.take(i, v)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn take(&mut self, i: usize, next: usize) -> Result<bool, usize> {
        self.done[i] = true;
        let req = self.entries[i].required;
        if req {
            self.required_left -= 1;
        }
        let r = self.run(next);
        self.done[i] = false;
        if req {
            self.required_left += 1;
        }
        r
    }
}

/// Err(None): not linearizable; Err(Some(n)): gave up after n nodes.
fn search(ops: &[&Op]) -> Result<(), Option<usize>> {
    // Value ids: 0 = zeros, 1.. = writes in order.
    let mut ids: HashMap<Tag, usize> = HashMap::new();
    for o in ops {
        if let Action::Write(t) = o.action {
            let n = ids.len() + 1;
            ids.entry(t).or_insert(n);
        }
    }
    let entries: Vec<Entry> = ops
        .iter()
        .filter_map(|o| match &o.action {
            Action::Write(t) => Some(Entry {
                invoke: o.invoke,
                complete: if o.ok() { o.complete } else { Duration::MAX },
                step: Step::Write(ids[t]),
                required: o.ok(),
            }),
            Action::Read(Some(seen)) if o.ok() => {
                let v = match seen {
                    Observed::Zero => 0,
                    Observed::Tag(t) => *ids.get(t)?,
                    Observed::Corrupt { .. } => return None,
                };
                Some(Entry {
                    invoke: o.invoke,
                    complete: o.complete,
                    step: Step::Read(v),
                    required: true,
                })
            }
            Action::Read(_) => None,
        })
        .collect();
    let mut s = Search {
        required_left: entries.iter().filter(|e| e.required).count(),
        done: vec![false; entries.len()],
        entries,
        seen: HashSet::new(),
        explored: 0,
    };
    match s.run(0) {
        Ok(true) => Ok(()),
        Ok(false) => Err(None),
        Err(n) => Err(Some(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::block::SplitMix;

    fn t(seq: u64) -> Tag {
        Tag { writer: 0, seq }
    }

    fn w(seq: u64, invoke: u64, complete: u64) -> Op {
        Op {
            worker: 0,
            block: 7,
            invoke: Duration::from_millis(invoke),
            complete: Duration::from_millis(complete),
            action: Action::Write(t(seq)),
            error: None,
        }
    }

    fn r(seen: Observed, invoke: u64, complete: u64) -> Op {
        Op {
            worker: 1,
            block: 7,
            invoke: Duration::from_millis(invoke),
            complete: Duration::from_millis(complete),
            action: Action::Read(Some(seen)),
            error: None,
        }
    }

    fn rt(seq: u64, invoke: u64, complete: u64) -> Op {
        r(Observed::Tag(t(seq)), invoke, complete)
    }

    fn failed(mut o: Op) -> Op {
        o.error = Some("boom".into());
        o
    }

    fn run(ops: Vec<Op>) -> Result<CheckSummary, Box<Violation>> {
        check(&History { ops })
    }

    #[test]
    fn sequential_and_concurrent_histories_pass() {
        let s = run(vec![
            r(Observed::Zero, 0, 1),
            w(1, 2, 10),
            rt(1, 11, 12),
            w(2, 20, 30),
            // Concurrent with w(2): either value is fine.
            rt(1, 21, 25),
            rt(2, 22, 26),
            rt(2, 31, 32),
        ])
        .unwrap();
        assert_eq!(s.writes_verified, 2);
        assert_eq!(s.reads_checked, 5);
        assert_eq!(s.blocks, 1);
        // Two concurrent writes, reads after both agree on one of them, in any order.
        run(vec![w(1, 0, 10), w(2, 0, 10), rt(1, 11, 12), rt(1, 13, 14)]).unwrap();
        run(vec![w(1, 0, 10), w(2, 0, 10), rt(2, 11, 12), rt(2, 13, 14)]).unwrap();
        // A read that overlaps a write sees zeros, a later one sees the write.
        run(vec![w(1, 5, 50), r(Observed::Zero, 0, 20), rt(1, 30, 40)]).unwrap();
    }

    #[test]
    fn a_lost_acknowledged_write_is_named() {
        // w2 acked at 30; a read starting at 40 returns w1.
        let e = run(vec![w(1, 0, 10), w(2, 20, 30), rt(1, 40, 50)]).unwrap_err();
        match &e.kind {
            ViolationKind::LostWrite { write, read } => {
                assert_eq!(write.action, Action::Write(t(2)));
                assert_eq!(read.invoke, Duration::from_millis(40));
            }
            other => panic!("{other:?}"),
        }
        let text = e.to_string();
        assert!(text.contains("LOST ACKNOWLEDGED WRITE"), "{text}");
        assert!(text.contains("write w0#2"), "{text}");
        assert_eq!(e.context.len(), 3);
        // Zeros after an acknowledged write: lost too.
        let e = run(vec![w(1, 0, 10), r(Observed::Zero, 11, 12)]).unwrap_err();
        assert!(matches!(e.kind, ViolationKind::LostWrite { .. }), "{e}");
    }

    #[test]
    fn corrupt_phantom_and_future_reads_fail() {
        let torn = Observed::Corrupt {
            reason: "torn".into(),
        };
        let e = run(vec![w(1, 0, 10), r(torn, 11, 12)]).unwrap_err();
        assert!(matches!(e.kind, ViolationKind::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("CORRUPT(torn)"));
        // Seq 9 never written to this block.
        let e = run(vec![w(1, 0, 10), rt(9, 11, 12)]).unwrap_err();
        assert!(matches!(e.kind, ViolationKind::Phantom { .. }), "{e}");
        // A read that returned before the write was issued.
        let e = run(vec![rt(1, 0, 5), w(1, 10, 20)]).unwrap_err();
        assert!(matches!(e.kind, ViolationKind::FutureRead { .. }), "{e}");
    }

    #[test]
    fn reads_going_back_in_time_are_not_linearizable() {
        // w2 is slow; one read sees it, a later read sees the older w1 again.
        let e = run(vec![
            w(1, 0, 10),
            w(2, 20, 100),
            rt(2, 30, 40),
            rt(1, 50, 60),
        ])
        .unwrap_err();
        assert_eq!(e.kind, ViolationKind::NotLinearizable, "{e}");
        // The same reads in the other order are fine.
        run(vec![
            w(1, 0, 10),
            w(2, 20, 100),
            rt(1, 30, 40),
            rt(2, 50, 60),
        ])
        .unwrap();
    }

    #[test]
    fn a_failed_write_may_take_effect_late_or_never() {
        // Never: reads keep seeing w1.
        run(vec![w(1, 0, 10), failed(w(2, 20, 30)), rt(1, 40, 50)]).unwrap();
        // Late: after the acknowledged w3.
        run(vec![
            w(1, 0, 10),
            failed(w(2, 20, 30)),
            w(3, 40, 50),
            rt(2, 60, 70),
        ])
        .unwrap();
        // But once seen and then overwritten it stays overwritten.
        let e = run(vec![
            failed(w(2, 0, 5)),
            rt(2, 10, 11),
            w(3, 20, 30),
            rt(3, 40, 41),
            rt(2, 50, 51),
        ])
        .unwrap_err();
        assert_eq!(e.kind, ViolationKind::NotLinearizable, "{e}");
        // Failed reads say nothing.
        let s = run(vec![w(1, 0, 10), failed(r(Observed::Zero, 11, 12))]).unwrap();
        assert_eq!((s.reads_checked, s.failed_writes), (0, 0));
    }

    #[test]
    fn blocks_are_independent() {
        let mut other = w(1, 0, 10);
        other.block = 8;
        // Block 8's write does not explain block 7's read of seq 1.
        let e = run(vec![other, rt(1, 11, 12)]).unwrap_err();
        assert_eq!(e.block, 7);
        assert!(matches!(e.kind, ViolationKind::Phantom { .. }), "{e}");
    }

    /// Random concurrent histories generated from a real register (each op takes effect
    /// at a random instant inside its interval) always pass; a final read-back of zeros
    /// after acknowledged writes always fails.
    #[test]
    fn generated_linearizable_histories_pass() {
        for seed in 0..200u64 {
            let mut rng = SplitMix(seed);
            // (effect time, op) for 4 workers × 15 ops each.
            let mut ops = Vec::new();
            let mut seq = 0;
            for worker in 0..4u32 {
                let mut now = rng.below(5);
                for _ in 0..15 {
                    let invoke = now;
                    let complete = invoke + 1 + rng.below(30);
                    let effect = invoke + rng.below(complete - invoke);
                    let is_write = rng.below(2) == 0;
                    if is_write {
                        seq += 1;
                    }
                    ops.push((effect, worker, invoke, complete, is_write.then_some(seq)));
                    now = complete + rng.below(5);
                }
            }
            ops.sort_by_key(|o| (o.0, o.1));
            let mut value = Observed::Zero;
            let mut hist = Vec::new();
            for (_, worker, invoke, complete, write) in ops {
                let mut o = match write {
                    Some(s) => {
                        value = Observed::Tag(t(s));
                        w(s, invoke, complete)
                    }
                    None => r(value.clone(), invoke, complete),
                };
                o.worker = worker;
                hist.push(o);
            }
            let end = hist.iter().map(|o| o.complete).max().unwrap();
            let end_ms = end.as_millis() as u64;
            let mut good = hist.clone();
            good.push(r(value.clone(), end_ms + 1, end_ms + 2));
            run(good).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            if value != Observed::Zero {
                // Zeros at the end, after acknowledged writes, are always wrong.
                let mut bad = hist;
                bad.push(r(Observed::Zero, end_ms + 1, end_ms + 2));
                let e = run(bad).expect_err("stale final read accepted");
                assert!(
                    matches!(e.kind, ViolationKind::LostWrite { .. }),
                    "seed {seed}: {e}"
                );
            }
        }
    }
}
